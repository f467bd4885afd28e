//! `node_down`: cut a node's power and expect the lab to keep working without
//! it: the nested checks (dns, http) must all pass within `within:`.
//!
//! ```yaml
//! - node_down:
//!     node: nodo1
//!     within: 15s
//!     checks:
//!       - dns: {server: dns, name: "www.{{ domain }}", expect: ["{{ nodes.nodo2.address }}"]}
//!       - http: {url: "http://www.{{ domain }}/info.txt", dns: dns, nodes: [nodo2], requests: 10}
//! ```
//!
//! Steps: the node must answer SSH (else there is nothing to cut) → `labctl
//! fail NODE` (a power cut, as in `failover`) → an *attempt* runs every nested
//! check fully, in order; a new attempt starts every 500 ms (2 Hz; a few run
//! at once when the lab is slow to answer, each bounded by its checks' own
//! timeouts) until one attempt passes completely or the polling ends
//! (`within:` plus some slack, so a slow lab still gets its figure). The figure
//! is the time from the power cut to the end of the first attempt that passed;
//! it must be at most `within:`. Then, always (also after a failure), `labctl
//! up NODE` and wait until the node answers SSH again; the node must not have
//! answered SSH while it was down (else the power cut did not happen).

use super::{Check, Ctx, Outcome, PrepareCtx};
use crate::duration::{human_ms, Dur};
use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `node_down:` check as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The node whose power is cut.
    pub node: String,
    /// The longest acceptable time from the power cut until every nested check passes.
    pub within: Dur,
    /// What must work without the node: `dns` and `http` checks, as in `verify:`.
    pub checks: Vec<super::CheckSpec>,
    /// How long the node may take to answer SSH again after `up` (default 2m).
    pub back_within: Option<Dur>,
}

/// A prepared `node_down` check.
#[derive(Debug)]
pub struct Plan {
    pub node: String,
    pub within: Duration,
    /// The nested checks: (name, plan).
    pub(crate) checks: Vec<(String, Box<dyn Check>)>,
    pub back_within: Duration,
}

/// A new attempt starts this often.
const EVERY: Duration = Duration::from_millis(500);
/// At most this many attempts run at once.
const IN_FLIGHT: usize = 6;
/// How long a power cut may take.
const CUT_LIMIT: Duration = Duration::from_secs(60);
/// How long booting the node again may take.
const UP_LIMIT: Duration = Duration::from_secs(300);

prepare_by_plan!(Spec);

impl Spec {
    fn plan(&self, ctx: &PrepareCtx) -> anyhow::Result<Plan> {
        let node = ctx.node("node_down: node", &self.node)?.name;
        if self.within.0.is_zero() || self.within.0 > Duration::from_secs(600) {
            return Err(ctx.err("node_down: `within:` must be more than 0 and at most 10m"));
        }
        if self.checks.is_empty() {
            return Err(ctx.err(
                "node_down: `checks:` is empty; it lists what must still work without the node\n  fix: e.g. checks: [{http: {url: \"http://www.example.com/info.txt\", dns: dns, nodes: [nodo2]}}]",
            ));
        }
        let mut checks = Vec::new();
        for c in &self.checks {
            let key = c.kind.key();
            if !matches!(key, "dns" | "http") {
                return Err(ctx.err(format!(
                    "node_down: a `{key}` check cannot be nested; only dns and http checks run while the node is down\n  fix: move it out of `checks:` (to the scenario's `verify:` list)"
                )));
            }
            let p = super::prepare_check(c, ctx)?;
            checks.push((p.name, p.plan));
        }
        let back_within = self
            .back_within
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(120));
        if back_within > Duration::from_secs(1800) {
            return Err(ctx.err("node_down: `back_within:` must be at most 30m"));
        }
        Ok(Plan {
            node,
            within: self.within.0,
            checks,
            back_within,
        })
    }
}

/// One attempt's result: when it ended (since the power cut) and what it found.
struct Attempt {
    n: u32,
    at: Duration,
    /// Every nested check's detail when all passed, else the first failure.
    result: Result<Vec<String>, String>,
}

impl Check for Plan {
    fn summary(&self) -> String {
        format!(
            "node_down {}: {} within {}",
            self.node,
            self.checks
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(" + "),
            human_ms(self.within.as_millis() as u64)
        )
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(10)
            + CUT_LIMIT
            + self.poll_limit()
            + self.attempt_limit()
            + UP_LIMIT
            + self.back_within
            + Duration::from_secs(30)
    }

    fn run(&self, ctx: &Ctx) -> Outcome {
        let node = match ctx.inv.node(&self.node) {
            Some(n) => n.clone(),
            None => return Outcome::fail(format!("{} is not in the inventory", self.node)),
        };
        if let Err(e) = ctx.ensure_safe(node.address) {
            return Outcome::fail(e).with_ms(None);
        }
        if !answers_ssh(ctx, &node, Duration::from_secs(2)) {
            return Outcome::fail(format!(
                "{} does not answer SSH before the power cut (is it up? `labctl up {}`)",
                self.node, self.node
            ))
            .with_ms(None);
        }
        ctx.progress(&format!("node_down: cutting the power of {}", self.node));
        let t0 = Instant::now();
        if let Err(e) = ctx.power(&self.node, false) {
            let back = self.restore(ctx, &node);
            return Outcome::fail(format!("cannot cut the power of {}: {e}{back}", self.node))
                .with_ms(None);
        }
        let (found, attempts, last_err) = self.poll(ctx, t0, t0 + self.poll_limit());
        // the cut must have worked: the node must not answer now
        let still_up = answers_ssh(ctx, &node, Duration::from_millis(500));
        let within_ms = self.within.as_millis() as u64;
        let mut detail = match &found {
            Some(a) => {
                let ms = a.at.as_millis() as u64;
                let seen = a.result.as_ref().map(|v| v.join("; ")).unwrap_or_default();
                format!(
                    "{} down; every check passed {} after the power cut (attempt {} of {attempts}; bound {}): {seen}",
                    self.node,
                    human_ms(ms),
                    a.n,
                    human_ms(within_ms)
                )
            }
            None => format!(
                "{} down; the checks did not all pass within {} of the power cut ({attempts} attempts; last: {last_err})",
                self.node,
                human_ms(self.poll_limit().as_millis() as u64)
            ),
        };
        if still_up {
            detail.push_str(&format!(
                "; but {} still answers SSH after the power cut: did the cut work?",
                self.node
            ));
        }
        let ms = found.as_ref().map(|a| a.at.as_millis() as u64);
        ctx.progress(&format!("node_down: `labctl up {}`", self.node));
        let back = self.restore(ctx, &node);
        let restored = back.starts_with("; back:");
        detail.push_str(&back);
        let passed = matches!(ms, Some(ms) if ms <= within_ms) && restored && !still_up;
        if let Some(ms) = ms {
            if ms > within_ms {
                detail = format!(
                    "took {} (more than {}): {detail}",
                    human_ms(ms),
                    human_ms(within_ms)
                );
            }
        }
        let out = if passed {
            Outcome::pass(detail)
        } else {
            Outcome::fail(detail)
        };
        out.with_ms(ms)
    }

}

impl Plan {
    /// How long one attempt may take (its checks run one after the other).
    fn attempt_limit(&self) -> Duration {
        self.checks.iter().map(|(_, p)| p.deadline()).sum()
    }

    /// How long to keep trying after the cut: `within` and some more, so a
    /// slow lab still gets its figure.
    pub(crate) fn poll_limit(&self) -> Duration {
        self.within
            + self
                .within
                .clamp(Duration::from_secs(5), Duration::from_secs(30))
    }

    /// Run every nested check once, in order; stop at the first failure.
    fn attempt(&self, ctx: &Ctx) -> Result<Vec<String>, String> {
        let mut seen = Vec::new();
        for (name, plan) in &self.checks {
            if ctx.stopped() {
                return Err(format!("{name}: stopped at the check's time limit"));
            }
            let o = plan.run(ctx);
            if !o.passed {
                return Err(format!("{name}: {}", o.detail));
            }
            seen.push(format!("{name}: {}", o.detail));
        }
        Ok(seen)
    }

    /// Start an attempt every [`EVERY`] (at most [`IN_FLIGHT`] at once) from
    /// `t0` until one passes or `until`; the first that passed, the number of
    /// attempts, and the last failure.
    fn poll(&self, ctx: &Ctx, t0: Instant, until: Instant) -> (Option<Attempt>, u32, String) {
        let (tx, rx) = mpsc::channel::<Attempt>();
        std::thread::scope(|s| {
            let mut started = 0u32;
            let mut running = 0usize;
            let mut next = Instant::now();
            let mut last_err = String::new();
            let mut last_n = 0u32;
            let mut found = None;
            while Instant::now() < until && !ctx.stopped() {
                let now = Instant::now();
                if now >= next && running < IN_FLIGHT {
                    started += 1;
                    running += 1;
                    let n = started;
                    let tx = tx.clone();
                    s.spawn(move || {
                        let result = self.attempt(ctx);
                        let _ = tx.send(Attempt {
                            n,
                            at: t0.elapsed(),
                            result,
                        });
                    });
                    // at most one attempt per tick, also when this loop ran late
                    next = (next + EVERY).max(now);
                }
                let wait = next
                    .min(until)
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(5));
                match rx.recv_timeout(wait) {
                    Ok(a) => {
                        running -= 1;
                        match a.result {
                            Ok(_) => {
                                found = Some(a);
                                break;
                            }
                            Err(ref e) if a.n >= last_n => {
                                // keep the failure of the latest attempt
                                last_n = a.n;
                                last_err = e.clone();
                            }
                            Err(_) => {}
                        }
                    }
                    Err(_) => continue,
                }
            }
            (found, started, last_err)
            // the scope waits for attempts still running (each bounded by its checks)
        })
    }

    /// Boot the node again and wait until it answers SSH. `; back: ...` when
    /// all went well, `; but ...` otherwise.
    fn restore(&self, ctx: &Ctx, node: &crate::inventory::Node) -> String {
        let t_up = Instant::now();
        if let Err(e) = ctx.power(&self.node, true) {
            return format!("; but bringing {} back failed: {e}", self.node);
        }
        let until = Instant::now() + self.back_within;
        loop {
            if answers_ssh(ctx, node, Duration::from_secs(1)) {
                return format!(
                    "; back: {} answers SSH again {} after `up`",
                    self.node,
                    human_ms(t_up.elapsed().as_millis() as u64)
                );
            }
            if Instant::now() >= until || !ctx.sleep(Duration::from_millis(300)) {
                return format!(
                    "; but {} does not answer SSH {} after `up`",
                    self.node,
                    human_ms(t_up.elapsed().as_millis() as u64)
                );
            }
        }
    }
}

/// Whether `node` answers SSH (an `SSH-` banner) within `timeout`.
fn answers_ssh(ctx: &Ctx, node: &crate::inventory::Node, timeout: Duration) -> bool {
    ctx.ensure_safe(node.address).is_ok()
        && crate::providers::node_answers_ssh(ctx.inv, node, timeout).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_plan;

    #[test]
    fn prepares_nested_dns_and_http() {
        let p = test_plan(
            "{node: nodo1, within: 15s, checks: [{dns: {server: dns, name: www.example.com, expect: [127.0.0.2]}}, {name: web, http: {url: \"http://www.example.com/info.txt\", dns: dns, nodes: [nodo2], requests: 10}}]}", Spec::plan)
        .unwrap();
        assert_eq!(p.node, "nodo1");
        assert_eq!(p.within, Duration::from_secs(15));
        let names: Vec<&str> = p.checks.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["dns www.example.com A @dns", "web"]);
        assert_eq!(p.back_within, Duration::from_secs(120));
        assert!(p
            .summary()
            .starts_with("node_down nodo1: dns www.example.com A @dns + web within 15 s"));
        // polling goes on past `within` to measure a slow lab, and the deadline covers it all
        assert!(p.poll_limit() > p.within);
        assert!(p.deadline() > p.poll_limit() + UP_LIMIT);
    }

    #[test]
    fn refuses_what_cannot_run_while_a_node_is_down() {
        crate::checks::assert_refusals(
            |y| test_plan(y, Spec::plan),
            &[
                (
                    "{node: nodo9, within: 5s, checks: [{dns: {server: dns, name: x.example.com}}]}",
                    &["nodo9", "fix: use one of"],
                ),
                (
                    "{node: nodo1, within: 5s, checks: []}",
                    &["`checks:` is empty"],
                ),
                (
                    "{node: nodo1, within: 5s, checks: [{failover: {vip: 127.0.0.9, within: 2s}}]}",
                    &["a `failover` check cannot be nested"],
                ),
                (
                    "{node: nodo1, within: 0s, checks: [{dns: {server: dns, name: x.example.com}}]}",
                    &["`within:` must be more than 0"],
                ),
                // a mistake inside a nested check is reported as such
                (
                    "{node: nodo1, within: 5s, checks: [{dns: {server: nowhere, name: x.example.com}}]}",
                    &["nowhere"],
                ),
                (
                    "{node: nodo1, within: 5s, checks: [{dns: {server: dns, name: x}}], extra: 1}",
                    &[],
                ),
            ],
        );
    }
}
