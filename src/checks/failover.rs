//! `failover`: cut the power of the node serving a virtual IP and time how long
//! the VIP takes to answer from another node; then bring the node back and
//! check it rejoins the cluster.
//!
//! ```yaml
//! - failover: {vip: "{{ vip }}", within: 2s}
//! - failover: {vip: "{{ vip }}", url: "http://www.{{ domain }}/info.txt", within: 2s,
//!              members: [nodo1, nodo2], rejoin_within: 2m}
//! ```
//!
//! Steps: GET `url` (default `http://VIP/info.txt`) on the VIP: `info.txt` names
//! the holder → `labctl fail HOLDER` (a power cut) → poll the VIP at 20 Hz, each
//! request with a 300 ms limit, until a *different* node answers: that time
//! (from the moment the power cut was started) is the failover figure, and it
//! must be at most `within:` → `labctl up HOLDER` (always, also after a
//! failure) → `crm_mon` on the survivor until the holder is online again
//! (`rejoin: false` skips this).

use super::http_client::{get, Url};
use super::{cluster, Check, Ctx, Outcome, PrepareCtx};
use crate::duration::{human_ms, Dur};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `failover:` check as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The virtual IP (default: the URL's host, when it is an address).
    pub vip: Option<String>,
    /// What to GET on the VIP (default `http://VIP/info.txt`); its body names the node.
    pub url: Option<String>,
    /// The longest acceptable failover time (may be a template).
    pub within: crate::duration::DurArg,
    /// The cluster members (default: any node of the inventory the answers name).
    pub members: Option<Vec<String>>,
    /// After the failover, bring the node back and wait until it rejoins (default true).
    pub rejoin: Option<bool>,
    /// How long the node may take to rejoin once it is up again (default 2m).
    pub rejoin_within: Option<Dur>,
}

/// Where to reach a service on a VIP: the address to connect to and the URL to ask.
#[derive(Debug, Clone)]
pub struct VipTarget {
    pub addr: Ipv4Addr,
    pub url: Url,
}

impl VipTarget {
    /// From `vip:` and/or `url:` as written (one of them is needed).
    pub(crate) fn from_spec(
        ctx: &PrepareCtx,
        what: &str,
        vip: Option<&str>,
        url: Option<&str>,
    ) -> anyhow::Result<VipTarget> {
        let vip = match vip.map(str::trim) {
            Some(v) => Some(
                v.parse::<Ipv4Addr>()
                    .map_err(|_| ctx.err(format!("{what}: `vip: {v}` is not an IPv4 address")))?,
            ),
            None => None,
        };
        let url = match (url, vip) {
            (Some(u), _) => Url::parse(u).map_err(|m| ctx.err(format!("{what}: {m}")))?,
            (None, Some(v)) => Url {
                host: v.to_string(),
                port: 80,
                path: "/info.txt".into(),
            },
            (None, None) => {
                return Err(ctx.err(format!(
                    "{what}: no address to check\n  fix: add `vip: <the virtual IP>` (and optionally `url:`)"
                )))
            }
        };
        let addr = match vip.or(url.ip()) {
            Some(a) => a,
            None => {
                return Err(ctx.err(format!(
                    "{what}: `{}` is a name; the check needs the VIP's address\n  fix: add `vip: <the virtual IP>`",
                    url.host
                )))
            }
        };
        Ok(VipTarget { addr, url })
    }

    /// `10.1.1.100` or `10.1.1.100 (http://www.example.com/info.txt)`.
    pub fn label(&self) -> String {
        if self.url.ip() == Some(self.addr) && self.url.path == "/info.txt" {
            self.addr.to_string()
        } else {
            format!("{} ({})", self.addr, self.url)
        }
    }

    /// One GET: the node its answer names (`?` for none), or why it failed.
    pub(crate) fn probe(&self, ctx: &Ctx, timeout: Duration) -> Result<String, String> {
        ctx.ensure_safe(self.addr)?;
        let r = get(
            ctx.inv.jump(),
            SocketAddr::new(self.addr.into(), self.url.port),
            &self.url.host_header(),
            &self.url.path,
            timeout,
        )?;
        if !(200..300).contains(&r.status) {
            return Err(format!("{} answered status {}", self.addr, r.status));
        }
        Ok(super::node_in_body(ctx.inv, &r.body)
            .unwrap_or("?")
            .to_string())
    }

    /// The node serving the VIP now (up to three tries, 1 s each).
    pub(crate) fn holder(&self, ctx: &Ctx) -> Result<String, String> {
        let mut last = String::new();
        for i in 0..3 {
            if i > 0 && !ctx.sleep(Duration::from_millis(300)) {
                break;
            }
            match self.probe(ctx, Duration::from_secs(1)) {
                Ok(n) if n == "?" => {
                    return Err(format!(
                        "{} answers, but its body names no node of the inventory, so the node serving it cannot be told\n  fix: serve a page that holds the node's name (info.txt), or set `url:`",
                        self.label()
                    ))
                }
                Ok(n) => return Ok(n),
                Err(e) => last = e,
            }
        }
        Err(format!("{} does not answer: {last}", self.label()))
    }
}

/// One poll result: when it came (since the start) and what it said.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub at: Duration,
    pub result: Result<String, String>,
}

/// Poll `target` at 20 Hz (each request at most 300 ms, several in flight;
/// through an SSH hop 5 Hz and 2 s) from
/// `t0` until `stop` says so, `until` passes or the check is stopped; the
/// probe that ended it.
pub(crate) fn poll(
    ctx: &Ctx,
    target: &VipTarget,
    t0: Instant,
    until: Instant,
    mut stop: impl FnMut(&Probe) -> bool,
) -> Option<Probe> {
    // through an SSH hop (a lab on another host) each request is a channel
    // of the hop's connection: fewer of them, each allowed longer
    let (every, each) = match ctx.inv.jump() {
        None => (Duration::from_millis(50), Duration::from_millis(300)),
        Some(_) => (Duration::from_millis(200), Duration::from_secs(2)),
    };
    let (tx, rx) = mpsc::channel::<Probe>();
    std::thread::scope(|s| {
        let mut next = Instant::now();
        let mut found = None;
        'outer: while Instant::now() < until && !ctx.stopped() {
            if Instant::now() >= next {
                let tx = tx.clone();
                s.spawn(move || {
                    let result = target.probe(ctx, each);
                    let _ = tx.send(Probe {
                        at: t0.elapsed(),
                        result,
                    });
                });
                // at most one probe per tick, also when this loop ran late
                next = (next + every).max(Instant::now());
            }
            let wait = next
                .min(until)
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            match rx.recv_timeout(wait) {
                Ok(p) => {
                    if stop(&p) {
                        found = Some(p);
                        break 'outer;
                    }
                    // drain what else arrived
                    while let Ok(p) = rx.try_recv() {
                        if stop(&p) {
                            found = Some(p);
                            break 'outer;
                        }
                    }
                }
                Err(_) => continue,
            }
        }
        found
        // the scope waits for the probes still in flight (each ends within `each`)
    })
}

/// A prepared `failover` check.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: VipTarget,
    pub within: Duration,
    pub members: Vec<String>,
    pub rejoin: bool,
    pub rejoin_within: Duration,
}

prepare_by_plan!(Spec);

/// A `kind` check's `within:` (more than 0, at most 10m) and
/// `rejoin_within:` (at most 30m; `rejoin_default` when absent).
pub(crate) fn bounds(
    ctx: &PrepareCtx,
    kind: &str,
    within: &crate::duration::DurArg,
    rejoin_within: Option<Dur>,
    rejoin_default: Duration,
) -> anyhow::Result<(Duration, Duration)> {
    let within = within
        .get()
        .map_err(|e| ctx.err(format!("{kind}: `within:` {e}")))?
        .0;
    if within.is_zero() || within > Duration::from_secs(600) {
        return Err(ctx.err(format!(
            "{kind}: `within:` must be more than 0 and at most 10m"
        )));
    }
    let rejoin_within = rejoin_within.map(|d| d.0).unwrap_or(rejoin_default);
    if rejoin_within > Duration::from_secs(1800) {
        return Err(ctx.err(format!("{kind}: `rejoin_within:` must be at most 30m")));
    }
    Ok((within, rejoin_within))
}

impl Spec {
    pub(crate) fn plan(&self, ctx: &PrepareCtx) -> anyhow::Result<Plan> {
        let target =
            VipTarget::from_spec(ctx, "failover", self.vip.as_deref(), self.url.as_deref())?;
        let members = ctx.nodes(
            "failover: members",
            self.members.as_deref().unwrap_or_default(),
        )?;
        if self.members.is_some() && members.len() < 2 {
            return Err(
                ctx.err("failover: `members:` needs at least two nodes to fail over between")
            );
        }
        let (within, rejoin_within) = bounds(
            ctx,
            "failover",
            &self.within,
            self.rejoin_within,
            Duration::from_secs(120),
        )?;
        Ok(Plan {
            target,
            within,
            members,
            rejoin: self.rejoin.unwrap_or(true),
            rejoin_within,
        })
    }
}

/// How long to wait for the cluster to be idle before the power cut.
const SETTLE: Duration = Duration::from_secs(20);
/// How long a power cut may take.
const CUT_LIMIT: Duration = Duration::from_secs(60);
/// How long booting a node again may take.
const UP_LIMIT: Duration = Duration::from_secs(300);

impl Check for Plan {
    fn summary(&self) -> String {
        format!(
            "failover {} within {}",
            self.target.label(),
            human_ms(self.within.as_millis() as u64)
        )
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(10)
            + SETTLE
            + Duration::from_secs(25)
            + CUT_LIMIT
            + self.poll_limit()
            + UP_LIMIT
            + self.rejoin_within
            + Duration::from_secs(60)
    }

    fn run(&self, ctx: &Ctx) -> Outcome {
        let holder = match self.target.holder(ctx) {
            Ok(h) => h,
            Err(e) => return Outcome::fail(format!("before the power cut: {e}")).with_ms(None),
        };
        if !self.members.is_empty() && !self.members.contains(&holder) {
            return Outcome::fail(format!(
                "{} is served by {holder}, which is not one of the members {}",
                self.target.label(),
                self.members.join(", ")
            ))
            .with_ms(None);
        }
        // a cluster still busy (a node just rejoined, a resource just
        // recovered) would add its own delay to the figure: wait until it is idle
        let unsettled = self.settle(ctx, &holder);
        ctx.progress(&format!(
            "failover: {holder} serves {}; cutting its power",
            self.target.label()
        ));
        let t0 = Instant::now();
        if let Err(e) = ctx.power(&holder, false) {
            let back = self.restore(ctx, &holder, None);
            return Outcome::fail(format!("cannot cut the power of {holder}: {e}{back}"))
                .with_ms(None);
        }
        let until = t0 + self.poll_limit();
        let mut holder_answers = 0u32;
        let mut last_err = String::new();
        let got = poll(ctx, &self.target, t0, until, |p| match &p.result {
            Ok(n) if *n == holder => {
                holder_answers += 1;
                false
            }
            Ok(n) if n == "?" => false,
            Ok(n) => self.members.is_empty() || self.members.contains(n),
            Err(e) => {
                last_err = e.clone();
                false
            }
        });
        let (survivor, ms) = match &got {
            Some(Probe { at, result: Ok(n) }) => (Some(n.clone()), Some(at.as_millis() as u64)),
            _ => (None, None),
        };
        let within_ms = self.within.as_millis() as u64;
        let mut detail = match (&survivor, ms) {
            (Some(s), Some(ms)) => format!(
                "{holder} held {}; {s} answered {} after the power cut (bound {})",
                self.target.addr,
                human_ms(ms),
                human_ms(within_ms)
            ),
            _ => {
                let mut d = format!(
                    "{holder} held {}; no other node answered within {} of the power cut",
                    self.target.addr,
                    human_ms(self.poll_limit().as_millis() as u64)
                );
                if holder_answers > 0 {
                    d.push_str(&format!(" ({holder} itself answered {holder_answers} times: did the power cut work?)"));
                } else if !last_err.is_empty() {
                    d.push_str(&format!(" (last error: {last_err})"));
                }
                d
            }
        };
        if let Some(s) = &survivor {
            ctx.progress(&format!("failover: {s} answered; bringing {holder} back"));
        }
        let back = self.restore(ctx, &holder, survivor.as_deref());
        let restored = back.starts_with("; back:");
        detail.push_str(&back);
        if let Some(u) = unsettled {
            detail.push_str(&format!(" (before the cut the cluster was not idle: {u})"));
        }
        let passed = matches!(ms, Some(ms) if ms <= within_ms) && restored;
        let mut out = if passed {
            Outcome::pass(detail)
        } else {
            if let Some(ms) = ms {
                if ms > within_ms {
                    detail = format!(
                        "failover took {} (more than {}): {detail}",
                        human_ms(ms),
                        human_ms(within_ms)
                    );
                }
            }
            Outcome::fail(detail)
        };
        out = out.with_ms(ms);
        out.failover_ms = ms;
        out
    }
}

impl Plan {
    /// How long to keep polling after the cut: enough to measure a slow failover too.
    fn poll_limit(&self) -> Duration {
        (self.within * 3).clamp(
            self.within + Duration::from_secs(10),
            self.within + Duration::from_secs(60),
        )
    }

    /// Wait (up to [`SETTLE`]) until `crm_mon` on `holder` shows every member
    /// online and no resource starting, stopping, failed or with an action
    /// pending; then a moment more. Why it did not settle, if it did not.
    pub(crate) fn settle(&self, ctx: &Ctx, holder: &str) -> Option<String> {
        let node = ctx.inv.node(holder)?.clone();
        let until = Instant::now() + SETTLE;
        let mut sess = None;
        let mut last;
        loop {
            if sess.is_none() {
                match ctx.ssh(&node) {
                    Ok(s) => sess = Some(s),
                    Err(e) => return Some(e),
                }
            }
            let s = sess.as_mut()?;
            last = match cluster::crm_status_in(ctx, s) {
                Ok(st) => {
                    let offline: Vec<&str> = self
                        .members
                        .iter()
                        .filter(|m| !st.nodes.iter().any(|n| &n.name == *m && n.online))
                        .map(String::as_str)
                        .collect();
                    let busy: Vec<&str> = st
                        .resources
                        .iter()
                        .filter(|r| {
                            r.pending
                                || r.failed
                                || matches!(r.role.as_str(), "Starting" | "Stopping" | "Migrating")
                        })
                        .map(|r| r.id.as_str())
                        .collect();
                    if offline.is_empty() && busy.is_empty() {
                        ctx.sleep(Duration::from_secs(1));
                        return None;
                    }
                    let mut why = Vec::new();
                    if !offline.is_empty() {
                        why.push(format!("{} offline", offline.join(", ")));
                    }
                    if !busy.is_empty() {
                        why.push(format!("{} busy", busy.join(", ")));
                    }
                    why.join(", ")
                }
                Err(e) => {
                    sess = None;
                    e
                }
            };
            if Instant::now() >= until || !ctx.sleep(Duration::from_millis(500)) {
                return Some(last);
            }
        }
    }

    /// Bring `holder` back and (if asked) wait until the survivor's crm_mon shows
    /// it online. `; back: ...` when all went well, `; but ...` otherwise.
    pub(crate) fn restore(&self, ctx: &Ctx, holder: &str, survivor: Option<&str>) -> String {
        ctx.progress(&format!("failover: `labctl up {holder}`"));
        let t_up = Instant::now();
        if let Err(e) = ctx.power(holder, true) {
            return format!("; but bringing {holder} back failed: {e}");
        }
        if !self.rejoin {
            return format!("; back: {holder} is up again");
        }
        let survivor = survivor
            .map(String::from)
            .or_else(|| self.members.iter().find(|m| *m != holder).cloned());
        let Some(survivor) = survivor else {
            return format!(
                "; back: {holder} is up again (no other member known to check that it rejoined)"
            );
        };
        let Some(node) = ctx.inv.node(&survivor).cloned() else {
            return format!("; but {survivor} is not in the inventory");
        };
        ctx.progress(&format!(
            "failover: waiting until {survivor} sees {holder} online"
        ));
        let until = Instant::now() + self.rejoin_within;
        let mut sess = None;
        let mut last = String::new();
        while Instant::now() < until && !ctx.stopped() {
            if sess.is_none() {
                match ctx.ssh(&node) {
                    Ok(s) => sess = Some(s),
                    Err(e) => last = e,
                }
            }
            if let Some(s) = sess.as_mut() {
                match cluster::crm_status_in(ctx, s) {
                    Ok(st) if st.nodes.iter().any(|n| n.name == holder && n.online) => {
                        return format!(
                            "; back: {holder} online in the cluster again {} after `up`",
                            human_ms(t_up.elapsed().as_millis() as u64)
                        )
                    }
                    Ok(_) => last = format!("{survivor} still sees {holder} offline"),
                    Err(e) => {
                        last = e;
                        sess = None;
                    }
                }
            }
            ctx.sleep(Duration::from_secs(2).min(until.saturating_duration_since(Instant::now())));
        }
        format!(
            "; but {holder} did not rejoin the cluster within {} ({last})",
            human_ms(self.rejoin_within.as_millis() as u64)
        )
    }
}
