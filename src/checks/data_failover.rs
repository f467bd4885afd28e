//! `data_failover`: data written before a power cut of the active node is
//! served by the other node afterwards, and the failed node, once back,
//! resyncs to an identical copy (DRBD).
//!
//! ```yaml
//! - data_failover: {vip: "{{ vip }}", dir: /var/www/html, resource: r0,
//!                   members: [nodo1, nodo2], within: 30s, rejoin_within: 3m}
//! ```
//!
//! Steps: GET `http://VIP/info.txt` names the active node → a file with a
//! unique token is written there through SSH into `dir` (the replicated file
//! system served at the web root) and `sync`ed → the VIP serves it →
//! `labctl fail ACTIVE` (a power cut) → the VIP is polled at 10 Hz until it
//! serves the token again: that time (from the cut) is the figure, at most
//! `within:` → `labctl up ACTIVE` (always), wait until it is back in the
//! cluster and DRBD is Connected and UpToDate on both (`rejoin_within:`) →
//! `drbdadm verify` (block by block, the resource's `verify-alg`) finds no
//! block out of sync → the token file is removed.

use super::failover::{self, VipTarget};
use super::http_client::get;
use super::{drbd, Check, Ctx, Outcome, Prepare, PrepareCtx};
use crate::duration::{human_ms, Dur};
use crate::inventory::Node;
use crate::sh;
use crate::shell::Script;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The `data_failover:` check as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The virtual IP the web server answers on.
    pub vip: String,
    /// The folder on the replicated file system that the web root serves.
    pub dir: String,
    /// The DRBD resource under it.
    pub resource: String,
    /// The cluster members (at least two).
    pub members: Vec<String>,
    /// The longest acceptable time from the power cut until the token is served again.
    pub within: crate::duration::DurArg,
    /// How long the failed node may take, once up again, to rejoin and resync (default 3m).
    #[serde(default)]
    pub rejoin_within: Option<Dur>,
}

/// A prepared `data_failover` check.
#[derive(Debug)]
pub struct Plan {
    target: VipTarget,
    dir: String,
    drbd: drbd::Plan,
    within: Duration,
    rejoin_within: Duration,
}

impl Prepare for Spec {
    fn prepare(&self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Check>> {
        let target = VipTarget::from_spec(ctx, "data_failover", Some(&self.vip), None)?;
        let dir = self.dir.trim().trim_end_matches('/');
        if !dir.starts_with('/') {
            return Err(ctx.err(format!(
                "data_failover: `dir: {dir}` is not an absolute path\n  fix: the web root on the replicated disk, e.g. dir: /var/www/html"
            )));
        }
        if self.members.len() < 2 {
            return Err(ctx.err(
                "data_failover: `members:` needs at least two nodes to fail over between",
            ));
        }
        let drbd = drbd::Spec {
            resource: self.resource.clone(),
            nodes: self.members.clone(),
            primaries: Some(1),
            within: None,
        }
        .plan(ctx)?;
        let within = self
            .within
            .get()
            .map_err(|e| ctx.err(format!("data_failover: `within:` {e}")))?
            .0;
        if within.is_zero() || within > Duration::from_secs(600) {
            return Err(ctx.err("data_failover: `within:` must be more than 0 and at most 10m"));
        }
        let rejoin_within = self
            .rejoin_within
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(180));
        if rejoin_within > Duration::from_secs(1800) {
            return Err(ctx.err("data_failover: `rejoin_within:` must be at most 30m"));
        }
        Ok(Box::new(Plan {
            target,
            dir: dir.to_string(),
            drbd,
            within,
            rejoin_within,
        }))
    }
}

/// How long to keep polling after the cut, past `within`.
const POLL_EXTRA: Duration = Duration::from_secs(60);
/// How long `drbdadm verify` may take.
const VERIFY_LIMIT: Duration = Duration::from_secs(300);

impl Plan {
    fn members(&self) -> Vec<String> {
        self.drbd.nodes.iter().map(|n| n.name.clone()).collect()
    }

    fn node(&self, name: &str) -> Option<&Node> {
        self.drbd.nodes.iter().find(|n| n.name == name)
    }

    /// The same steps as `failover` for settling and bringing the node back.
    fn failover_plan(&self) -> failover::Plan {
        failover::Plan {
            target: self.target.clone(),
            within: self.within,
            members: self.members(),
            rejoin: true,
            rejoin_within: self.rejoin_within,
        }
    }

    fn file(&self, token: &str) -> String {
        format!("labctl-data-{token}.txt")
    }

    /// GET the token file on the VIP: whether it holds the token.
    fn serves(&self, ctx: &Ctx, token: &str, timeout: Duration) -> Result<bool, String> {
        ctx.ensure_safe(self.target.addr)?;
        let r = get(
            ctx.inv.jump(),
            SocketAddr::new(self.target.addr.into(), 80),
            &self.target.addr.to_string(),
            &format!("/{}", self.file(token)),
            timeout,
        )?;
        Ok(r.status == 200 && r.body.trim() == token)
    }

    /// Run `script` on `node`; its stdout, or why it failed.
    fn on(&self, ctx: &Ctx, node: &str, script: &Script) -> Result<String, String> {
        let n = self.node(node).ok_or_else(|| format!("{node} is not a member"))?;
        let mut s = ctx.ssh(n)?;
        let o = ctx.remote(&mut s, script)?;
        if o.rc != 0 {
            return Err(format!(
                "{node}: exit code {}: {}",
                o.rc,
                crate::text::last_lines(&format!("{}{}", o.stdout, o.stderr), 3)
            ));
        }
        Ok(o.stdout)
    }

    /// `drbdadm verify` on `node` until it ends; the blocks found out of sync.
    fn verify(&self, ctx: &Ctx, node: &str) -> Result<u64, String> {
        let r = &self.drbd.resource;
        self.on(ctx, node, &sh!("drbdadm verify {}", r))?;
        let until = Instant::now() + VERIFY_LIMIT;
        let state = drbd::state_script(r);
        // the verify may not have started yet when the first state is read
        ctx.sleep(Duration::from_secs(1));
        loop {
            let st = drbd::parse_state(&self.on(ctx, node, &state)?);
            if !st.cstate.starts_with("Verify") {
                if st.cstate != "Connected" {
                    return Err(format!(
                        "{node}: {r} is {} after the verify, not Connected",
                        st.cstate
                    ));
                }
                break;
            }
            if Instant::now() >= until || !ctx.sleep(Duration::from_secs(1)) {
                return Err(format!(
                    "`drbdadm verify {r}` on {node} did not end within {}",
                    human_ms(VERIFY_LIMIT.as_millis() as u64)
                ));
            }
        }
        // 8.4: /proc/drbd has `oos:N` (KiB out of sync) per device
        let out = self.on(ctx, node, &Script::lit("cat /proc/drbd"))?;
        parse_oos(&out).ok_or_else(|| format!("{node}: no `oos:` in /proc/drbd: {out}"))
    }

    /// After the cut: bring `holder` back, wait for DRBD, verify. `Ok(summary)` or what went wrong.
    fn after(&self, ctx: &Ctx, holder: &str, survivor: Option<&str>) -> Result<String, String> {
        let back = self.failover_plan().restore(ctx, holder, survivor);
        if !back.starts_with("; back:") {
            return Err(back.trim_start_matches("; but ").to_string());
        }
        let t = Instant::now();
        ctx.progress("data_failover: waiting for DRBD to resync");
        let synced = self
            .drbd
            .wait(ctx, self.rejoin_within)
            .map_err(|e| format!("{holder} is back but DRBD is not in sync: {e}"))?;
        let resync = t.elapsed();
        let primary = survivor.unwrap_or(holder);
        ctx.progress(&format!("data_failover: `drbdadm verify` on {primary}"));
        let t = Instant::now();
        let oos = self.verify(ctx, primary)?;
        if oos != 0 {
            return Err(format!(
                "{holder} resynced, but `drbdadm verify` finds {oos} KiB that differ between the copies"
            ));
        }
        Ok(format!(
            "{}; {synced} {} later; `drbdadm verify`: both copies identical ({})",
            back.trim_start_matches("; back: "),
            human_ms(resync.as_millis() as u64),
            human_ms(t.elapsed().as_millis() as u64)
        ))
    }
}

/// The sum of the `oos:` (out of sync, KiB) counters of /proc/drbd.
pub fn parse_oos(proc_drbd: &str) -> Option<u64> {
    let mut found = None;
    for w in proc_drbd.split_whitespace() {
        if let Some(n) = w.strip_prefix("oos:").and_then(|n| n.parse::<u64>().ok()) {
            found = Some(found.unwrap_or(0) + n);
        }
    }
    found
}

impl Check for Plan {
    fn summary(&self) -> String {
        format!(
            "data on {} survives a power cut of the active node (within {})",
            self.dir,
            human_ms(self.within.as_millis() as u64)
        )
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(120)
            + self.within
            + POLL_EXTRA
            + Duration::from_secs(300)
            + self.rejoin_within * 2
            + VERIFY_LIMIT
            + Duration::from_secs(60)
    }

    fn run(&self, ctx: &Ctx) -> Outcome {
        let holder = match self.target.holder(ctx) {
            Ok(h) => h,
            Err(e) => return Outcome::fail(format!("before the power cut: {e}")).with_ms(None),
        };
        if self.node(&holder).is_none() {
            return Outcome::fail(format!(
                "{} is served by {holder}, which is not one of the members {}",
                self.target.addr,
                self.members().join(", ")
            ))
            .with_ms(None);
        }
        let token = format!("{:016x}", rand::random::<u64>());
        let path = format!("{}/{}", self.dir, self.file(&token));
        let write = sh!(
            "printf '%s\\n' {} > {}.tmp && mv {}.tmp {} && sync",
            token,
            path,
            path,
            path
        );
        if let Err(e) = self.on(ctx, &holder, &write) {
            return Outcome::fail(format!("cannot write the token on {holder}: {e}")).with_ms(None);
        }
        match self.serves(ctx, &token, Duration::from_secs(3)) {
            Ok(true) => {}
            Ok(false) => {
                return Outcome::fail(format!(
                    "{holder} has {path}, but http://{}/{} does not serve it: is {} the web root?",
                    self.target.addr,
                    self.file(&token),
                    self.dir
                ))
                .with_ms(None)
            }
            Err(e) => return Outcome::fail(format!("before the power cut: {e}")).with_ms(None),
        }
        let fp = self.failover_plan();
        let unsettled = fp.settle(ctx, &holder);
        ctx.progress(&format!(
            "data_failover: {holder} serves token {token}; cutting its power"
        ));
        let t0 = Instant::now();
        if let Err(e) = ctx.power(&holder, false) {
            let back = fp.restore(ctx, &holder, None);
            return Outcome::fail(format!("cannot cut the power of {holder}: {e}{back}"))
                .with_ms(None);
        }
        // the holder is off: whoever serves the token now is another node
        let until = t0 + self.within + POLL_EXTRA;
        let mut last_err = String::new();
        let mut ms = None;
        while Instant::now() < until && !ctx.stopped() {
            match self.serves(ctx, &token, Duration::from_millis(500)) {
                Ok(true) => {
                    ms = Some(t0.elapsed().as_millis() as u64);
                    break;
                }
                Ok(false) => last_err = "the VIP answers without the token".into(),
                Err(e) => last_err = e,
            }
            ctx.sleep(Duration::from_millis(100));
        }
        let survivor = match ms {
            Some(_) => self.target.holder(ctx).ok(),
            None => None,
        };
        let within_ms = self.within.as_millis() as u64;
        let mut detail = match (ms, &survivor) {
            (Some(ms), s) => format!(
                "token written on {holder}; served by {} {} after the power cut (bound {})",
                s.as_deref().unwrap_or("the other node"),
                human_ms(ms),
                human_ms(within_ms)
            ),
            (None, _) => format!(
                "token written on {holder}; not served again within {} of the power cut (last: {last_err})",
                human_ms((self.within + POLL_EXTRA).as_millis() as u64)
            ),
        };
        let after = self.after(ctx, &holder, survivor.as_deref());
        match &after {
            Ok(s) => detail.push_str(&format!("; {s}")),
            Err(e) => detail.push_str(&format!("; but {e}")),
        }
        if after.is_ok() {
            let primary = survivor.as_deref().unwrap_or(&holder);
            let _ = self.on(ctx, primary, &sh!("rm -f {}", path));
        }
        if let Some(u) = unsettled {
            detail.push_str(&format!(" (before the cut the cluster was not idle: {u})"));
        }
        let passed = matches!(ms, Some(m) if m <= within_ms) && after.is_ok();
        let mut out = if passed {
            Outcome::pass(detail)
        } else {
            if let Some(m) = ms.filter(|m| *m > within_ms) {
                detail = format!(
                    "the token came back after {} (more than {}): {detail}",
                    human_ms(m),
                    human_ms(within_ms)
                );
            }
            Outcome::fail(detail)
        };
        out = out.with_ms(ms);
        out.failover_ms = ms;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_out_of_sync_from_proc_drbd() {
        let p = "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: 211FB288A383ED945B83420 \n 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n    ns:1204 nr:0 dw:1204 dr:5301 al:3 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n";
        assert_eq!(parse_oos(p), Some(0));
        let p = p.replace("oos:0", "oos:12");
        assert_eq!(parse_oos(&p), Some(12));
        assert_eq!(parse_oos("version: 8.4.11\n"), None);
    }

    #[test]
    fn prepares_and_rejects() {
        let inv = super::super::test_inventory();
        let prep = |yaml: &str| -> anyhow::Result<Box<dyn Check>> {
            let spec: Spec = crate::yaml::parse(yaml, std::path::Path::new("s.yaml"))?;
            spec.prepare(&PrepareCtx {
                inv: &inv,
                at: "s.yaml:1:1",
            })
        };
        let p = prep("{vip: 10.1.1.100, dir: /var/www/html/, resource: r0, members: [nodo1, nodo2], within: 30s}").unwrap();
        assert_eq!(
            p.summary(),
            "data on /var/www/html survives a power cut of the active node (within 30 s)"
        );
        let e = prep("{vip: 10.1.1.100, dir: www, resource: r0, members: [nodo1, nodo2], within: 30s}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an absolute path"), "{e}");
        let e = prep("{vip: 10.1.1.100, dir: /w, resource: r0, members: [nodo1], within: 30s}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least two"), "{e}");
        let e = prep("{vip: 10.1.1.100, dir: /w, resource: r0, members: [nodo1, nodo2], within: 0s}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 0"), "{e}");
    }
}
