//! `data_failover`: data written before a power cut of the active node is
//! served by the other node afterwards, and the failed node, once back,
//! resyncs to an identical copy (DRBD).
//!
//! ```yaml
//! - data_failover: {vip: "{{ vip }}", dir: /var/www/html, resource: r0,
//!                   members: [nodo1, nodo2], within: 30s, rejoin_within: 3m}
//! - data_failover: {vip: "{{ vip }}", dir: /var/www/html, resource: r0,
//!                   members: [nodo1, nodo2], primaries: 2}   # dual-primary (07)
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
    pub rejoin_within: Option<Dur>,
    /// How many members are DRBD Primary when all is well (default 1; 2 for
    /// dual-primary, scenario 07).
    pub primaries: Option<usize>,
}

/// A prepared `data_failover` check.
#[derive(Debug)]
pub struct Plan {
    pub(crate) target: VipTarget,
    pub(crate) dir: String,
    pub(crate) drbd: drbd::Plan,
    pub(crate) within: Duration,
    pub(crate) rejoin_within: Duration,
    pub(crate) cut: Cut,
}

/// What happens to the active node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Its power is cut (`labctl fail`): `data_failover`.
    Power,
    /// Its network cable is cut, it keeps running (`labctl unplug`): the
    /// cluster must fence it before the other node takes over (`fencing`).
    Link,
}

impl Prepare for Spec {
    fn prepare(&self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Check>> {
        Ok(Box::new(self.plan(ctx, "data_failover")?))
    }
}

impl Spec {
    /// The plan of a `data_failover` (or, by `kind`, `fencing`) check.
    pub(crate) fn plan(&self, ctx: &PrepareCtx, kind: &str) -> anyhow::Result<Plan> {
        let target = VipTarget::from_spec(ctx, kind, Some(&self.vip), None)?;
        let dir = self.dir.trim().trim_end_matches('/');
        if !dir.starts_with('/') {
            return Err(ctx.err(format!(
                "{kind}: `dir: {dir}` is not an absolute path\n  fix: the web root on the replicated disk, e.g. dir: /var/www/html"
            )));
        }
        if self.members.len() < 2 {
            return Err(ctx.err(format!(
                "{kind}: `members:` needs at least two nodes to fail over between"
            )));
        }
        let drbd = drbd::Spec {
            resource: self.resource.clone(),
            nodes: self.members.clone(),
            primaries: Some(self.primaries.unwrap_or(1)),
            within: None,
        }
        .plan(ctx)?;
        let (within, rejoin_within) = failover::bounds(
            ctx,
            kind,
            &self.within,
            self.rejoin_within,
            Duration::from_secs(180),
        )?;
        Ok(Plan {
            target,
            dir: dir.to_string(),
            drbd,
            within,
            rejoin_within,
            cut: Cut::Power,
        })
    }
}

/// How long to keep polling after the cut, past `within`.
const POLL_EXTRA: Duration = Duration::from_secs(60);
/// How long `drbdadm verify` may take.
const VERIFY_LIMIT: Duration = Duration::from_secs(300);

impl Plan {
    fn kind(&self) -> &'static str {
        match self.cut {
            Cut::Power => "data_failover",
            Cut::Link => "fencing",
        }
    }

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
        run_in(ctx, &mut s, node, script)
    }

    /// `drbdadm verify` on `node` until it ends; the blocks found out of sync.
    /// One SSH session for the whole wait: a VM busy verifying (under TCG,
    /// both cores on the checksums) can be slow to accept a new one, and a
    /// poll that fails is tried again until the limit.
    fn verify(&self, ctx: &Ctx, node: &str) -> Result<u64, String> {
        let r = &self.drbd.resource;
        let n = self.node(node).ok_or_else(|| format!("{node} is not a member"))?;
        let mut s = ctx.ssh(n)?;
        let run = |s: &mut _, script: &Script| run_in(ctx, s, node, script);
        run(&mut s, &sh!("drbdadm verify {}", r))?;
        let until = Instant::now() + VERIFY_LIMIT;
        let state = drbd::state_script(r);
        // the verify may not have started yet when the first state is read
        ctx.sleep(Duration::from_secs(1));
        let mut last = String::new();
        loop {
            match run(&mut s, &state) {
                Ok(out) => {
                    let st = drbd::parse_state(&out);
                    if !st.cstate.starts_with("Verify") {
                        if st.cstate != "Connected" {
                            return Err(format!(
                                "{node}: {r} is {} after the verify, not Connected",
                                st.cstate
                            ));
                        }
                        break;
                    }
                }
                Err(e) => {
                    last = format!(" (last poll: {e})");
                    if let Ok(fresh) = ctx.ssh(n) {
                        s = fresh;
                    }
                }
            }
            if Instant::now() >= until || !ctx.sleep(Duration::from_secs(1)) {
                return Err(format!(
                    "`drbdadm verify {r}` on {node} did not end within {}{last}",
                    human_ms(VERIFY_LIMIT.as_millis() as u64)
                ));
            }
        }
        // 8.4: /proc/drbd has `oos:N` (KiB out of sync) per device
        let out = run(&mut s, &Script::lit("cat /proc/drbd"))?;
        parse_oos(&out).ok_or_else(|| format!("{node}: no `oos:` in /proc/drbd: {out}"))
    }

    /// After the cut: bring `holder` back, wait for DRBD, verify. `Ok(summary)` or what went wrong.
    fn after(&self, ctx: &Ctx, holder: &str, survivor: Option<&str>) -> Result<String, String> {
        if self.cut == Cut::Link && ctx.powered(holder).unwrap_or(true) {
            // not fenced: give it its cable back (the lab whole again)
            ctx.cable(holder, true)?;
        }
        let back = self.failover_plan().restore(ctx, holder, survivor);
        if !back.starts_with("; back:") {
            return Err(back.trim_start_matches("; but ").to_string());
        }
        let t = Instant::now();
        ctx.progress(&format!("{}: waiting for DRBD to resync", self.kind()));
        let synced = self
            .drbd
            .wait(ctx, self.rejoin_within, true)
            .map_err(|e| format!("{holder} is back but DRBD is not in sync: {e}"))?;
        let resync = t.elapsed();
        let primary = survivor.unwrap_or(holder);
        ctx.progress(&format!("{}: `drbdadm verify` on {primary}", self.kind()));
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

/// Run `script` in the session `s` on `node`; its stdout, or why it failed.
fn run_in(
    ctx: &Ctx,
    s: &mut crate::transport::ssh::Session,
    node: &str,
    script: &Script,
) -> Result<String, String> {
    let o = ctx.remote(s, script)?;
    if o.rc != 0 {
        return Err(format!(
            "{node}: exit code {}: {}",
            o.rc,
            crate::text::last_lines(&format!("{}{}", o.stdout, o.stderr), 3)
        ));
    }
    Ok(o.stdout)
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
        match self.cut {
            Cut::Power => format!(
                "data on {} survives a power cut of the active node (within {})",
                self.dir,
                human_ms(self.within.as_millis() as u64)
            ),
            Cut::Link => format!(
                "the active node's cable cut: it is fenced and the other serves {} (within {})",
                self.dir,
                human_ms(self.within.as_millis() as u64)
            ),
        }
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
        let (holder, token, path) = match self.place_token(ctx) {
            Ok(placed) => placed,
            Err(e) => return Outcome::fail(e).with_ms(None),
        };
        let unsettled = self.failover_plan().settle(ctx, &holder);
        let w = match self.cut_and_watch(ctx, &holder, &token) {
            Ok(w) => w,
            Err(e) => return Outcome::fail(e).with_ms(None),
        };
        let survivor = w.served_ms.and_then(|_| self.target.holder(ctx).ok());
        let mut detail = self.served_detail(&holder, survivor.as_deref(), &w);
        if self.cut == Cut::Link {
            detail.push_str(&self.fencing_detail(ctx, &holder, &w));
        }
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
        self.verdict(detail, &w, after.is_ok())
    }
}

/// What the polls of the VIP after the cut saw (times since the cut).
struct Watch {
    /// When the cut was made.
    t0: Instant,
    /// When the token was first served again.
    served_ms: Option<u64>,
    /// (link cut) When the holder was first seen powered off.
    fenced_ms: Option<u64>,
    /// (link cut) When the token was served while the holder still had power.
    both_ms: Option<u64>,
    polls: u32,
    last_err: String,
}

/// The steps of [`Check::run`], in order.
impl Plan {
    /// Find the VIP's holder, write a fresh token file on it and see the VIP
    /// serve it: (holder, token, the file's path), or why not.
    fn place_token(&self, ctx: &Ctx) -> Result<(String, String, String), String> {
        let holder = self
            .target
            .holder(ctx)
            .map_err(|e| format!("before the power cut: {e}"))?;
        if self.node(&holder).is_none() {
            return Err(format!(
                "{} is served by {holder}, which is not one of the members {}",
                self.target.addr,
                self.members().join(", ")
            ));
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
        self.on(ctx, &holder, &write)
            .map_err(|e| format!("cannot write the token on {holder}: {e}"))?;
        match self.serves(ctx, &token, Duration::from_secs(3)) {
            Ok(true) => Ok((holder, token, path)),
            Ok(false) => Err(format!(
                "{holder} has {path}, but http://{}/{} does not serve it: is {} the web root?",
                self.target.addr,
                self.file(&token),
                self.dir
            )),
            Err(e) => Err(format!("before the power cut: {e}")),
        }
    }

    /// Cut the holder's power or cable and poll the VIP until the token is
    /// served again (and, for a link cut, the holder is fenced), or time is up.
    fn cut_and_watch(&self, ctx: &Ctx, holder: &str, token: &str) -> Result<Watch, String> {
        ctx.progress(&format!(
            "{}: {holder} serves token {token}; cutting its {}",
            self.kind(),
            if self.cut == Cut::Power { "power" } else { "network cable" }
        ));
        let t0 = Instant::now();
        let cut = match self.cut {
            Cut::Power => ctx.power(holder, false),
            Cut::Link => ctx.cable(holder, false),
        };
        if let Err(e) = cut {
            let _ = self.after(ctx, holder, None);
            return Err(format!("cannot cut {holder}: {e}"));
        }
        // Power: the holder is off, whoever serves the token now is another
        // node. Link: the holder runs on, unreachable; it must be fenced
        // (powered off by the cluster) before another node serves: a sample
        // where the token is served while the holder still has power is two
        // nodes answering for the VIP.
        let until = t0 + self.within + POLL_EXTRA;
        let since = || t0.elapsed().as_millis() as u64;
        let mut w = Watch {
            t0,
            served_ms: None,
            fenced_ms: None,
            both_ms: None,
            polls: 0,
            last_err: String::new(),
        };
        while Instant::now() < until && !ctx.stopped() {
            w.polls += 1;
            if self.cut == Cut::Link && w.fenced_ms.is_none() {
                match ctx.powered(holder) {
                    Ok(false) => w.fenced_ms = Some(since()),
                    Ok(true) => {}
                    Err(e) => w.last_err = e,
                }
            }
            match self.serves(ctx, token, Duration::from_millis(500)) {
                Ok(true) => {
                    if self.cut == Cut::Link && w.fenced_ms.is_none() {
                        // served: is the holder still powered right now?
                        if ctx.powered(holder).unwrap_or(true) {
                            w.both_ms.get_or_insert(since());
                        } else {
                            w.fenced_ms = Some(since());
                        }
                    }
                    w.served_ms.get_or_insert(since());
                    if self.cut == Cut::Power || w.fenced_ms.is_some() {
                        break;
                    }
                }
                Ok(false) => w.last_err = "the VIP answers without the token".into(),
                Err(e) => w.last_err = e,
            }
            ctx.sleep(Duration::from_millis(100));
        }
        Ok(w)
    }

    /// Who served the token again, and when.
    fn served_detail(&self, holder: &str, survivor: Option<&str>, w: &Watch) -> String {
        let what = match self.cut {
            Cut::Power => "the power cut",
            Cut::Link => "the link cut",
        };
        match w.served_ms {
            Some(ms) => format!(
                "token written on {holder}; served by {} {} after {what} (bound {})",
                survivor.unwrap_or("the other node"),
                human_ms(ms),
                human_ms(self.within.as_millis() as u64)
            ),
            None => format!(
                "token written on {holder}; not served again within {} of {what} (last: {})",
                human_ms((self.within + POLL_EXTRA).as_millis() as u64),
                w.last_err
            ),
        }
    }

    /// (link cut) Whether and when the holder was fenced, and whether two
    /// nodes ever answered for the VIP.
    fn fencing_detail(&self, ctx: &Ctx, holder: &str, w: &Watch) -> String {
        let mut detail = match w.fenced_ms {
            Some(f) => format!(
                "; {holder} fenced (powered off) {} after the link cut",
                human_ms(f)
            ),
            None => {
                // what the other node's fencer says about it
                let other = self.members().into_iter().find(|m| *m != holder);
                let history = other
                    .as_deref()
                    .and_then(|o| {
                        self.on(ctx, o, &sh!("stonith_admin --history {} 2>&1 | tail -n 3", holder))
                            .ok()
                            .map(|h| format!(" ({o}'s fence history: {})", h.trim().replace('\n', "; ")))
                    })
                    .unwrap_or_default();
                format!(
                    "; {holder} was never fenced: it still has power {} after the link cut{history}\n  fix: see `stonith_admin --history {holder}` and `crm_mon -1` on the other node (is the fence device there and started?)",
                    human_ms(w.t0.elapsed().as_millis() as u64)
                )
            }
        };
        detail.push_str(&match w.both_ms {
            Some(b) => format!(
                "; TWO nodes answered for the VIP: the token was served {} after the cut while {holder} still had power",
                human_ms(b)
            ),
            None => format!(
                "; never two nodes for the VIP (polled {} times from the cut: the token came only once {holder} was off)",
                w.polls
            ),
        });
        detail
    }

    /// Pass when the token came back within the bound (for a link cut: the
    /// holder fenced in time, never two nodes at once) and the node is back.
    fn verdict(&self, mut detail: String, w: &Watch, back: bool) -> Outcome {
        let within_ms = self.within.as_millis() as u64;
        let fenced_ok = self.cut == Cut::Power
            || (matches!(w.fenced_ms, Some(f) if f <= within_ms) && w.both_ms.is_none());
        let passed = matches!(w.served_ms, Some(m) if m <= within_ms) && fenced_ok && back;
        let mut out = if passed {
            Outcome::pass(detail)
        } else {
            if let Some(m) = w.served_ms.filter(|m| *m > within_ms) {
                detail = format!(
                    "the token came back after {} (more than {}): {detail}",
                    human_ms(m),
                    human_ms(within_ms)
                );
            }
            Outcome::fail(detail)
        };
        let figure = if self.cut == Cut::Link {
            w.served_ms.max(w.fenced_ms)
        } else {
            w.served_ms
        };
        out = out.with_ms(figure);
        out.failover_ms = figure;
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
        let prep = |yaml: &str| super::super::test_plan(yaml, |s: &Spec, ctx| s.prepare(ctx));
        let p = prep("{vip: 10.1.1.100, dir: /var/www/html/, resource: r0, members: [nodo1, nodo2], within: 30s}").unwrap();
        assert_eq!(
            p.summary(),
            "data on /var/www/html survives a power cut of the active node (within 30 s)"
        );
        super::super::assert_refusals(
            prep,
            &[
                (
                    "{vip: 10.1.1.100, dir: www, resource: r0, members: [nodo1, nodo2], within: 30s}",
                    &["not an absolute path"],
                ),
                (
                    "{vip: 10.1.1.100, dir: /w, resource: r0, members: [nodo1], within: 30s}",
                    &["at least two"],
                ),
                (
                    "{vip: 10.1.1.100, dir: /w, resource: r0, members: [nodo1, nodo2], within: 0s}",
                    &["more than 0"],
                ),
            ],
        );
    }
}
