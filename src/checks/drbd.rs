//! `drbd`: a DRBD resource is connected and up to date on every node, with
//! the expected number of Primaries.
//!
//! ```yaml
//! - drbd: {resource: r0, nodes: [nodo1, nodo2]}                 # one Primary
//! - drbd: {resource: r0, nodes: [nodo1, nodo2], primaries: 2, within: 3m}   # dual-primary
//! ```
//!
//! On each node, over SSH as root: `drbdadm role`, `cstate` and `dstate`.
//! Passes when every node is `Connected` and `UpToDate/UpToDate` and the
//! number of Primaries is `primaries:` (default 1). A resync or a reconnect
//! in progress is waited for, up to `within:` (default 1m); a state that does
//! not end by itself (StandAlone, no disk, resource down) fails at once, with
//! what it means and the command that repairs it.

use super::{Check, Ctx, Outcome, PrepareCtx};
use crate::duration::{human_ms, Dur};
use crate::inventory::Node;
use crate::sh;
use crate::shell::Script;
use crate::transport::ssh::Session;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The `drbd:` check as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The DRBD resource (`r0`).
    pub resource: String,
    /// The nodes that hold it.
    pub nodes: Vec<String>,
    /// How many of them are Primary (default 1; 2 for dual-primary).
    pub primaries: Option<usize>,
    /// How long a resync or reconnect may still take (default 1m).
    pub within: Option<Dur>,
}

/// A prepared `drbd` check.
#[derive(Debug, Clone)]
pub struct Plan {
    pub resource: String,
    pub nodes: Vec<Node>,
    pub primaries: usize,
    pub within: Duration,
}

prepare_by_plan!(Spec);

impl Spec {
    pub(crate) fn plan(&self, ctx: &PrepareCtx) -> anyhow::Result<Plan> {
        let resource = self.resource.trim();
        if resource.is_empty()
            || !resource
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(ctx.err(format!(
                "drbd: `resource: {resource}` is not a DRBD resource name\n  fix: the name after `resource` in /etc/drbd.d/*.res, e.g. resource: r0"
            )));
        }
        let names = ctx.nodes("drbd: nodes", &self.nodes)?;
        if names.is_empty() {
            return Err(ctx.err(
                "drbd: `nodes:` is empty\n  fix: list the nodes that hold the resource, e.g. nodes: [nodo1, nodo2]",
            ));
        }
        let primaries = self.primaries.unwrap_or(1);
        if primaries > names.len() {
            return Err(ctx.err(format!(
                "drbd: `primaries: {primaries}` is more than the {} nodes listed",
                names.len()
            )));
        }
        let within = self.within.map(|d| d.0).unwrap_or(Duration::from_secs(60));
        if within > Duration::from_secs(1800) {
            return Err(ctx.err("drbd: `within:` must be at most 30m"));
        }
        Ok(Plan {
            resource: resource.to_string(),
            nodes: names
                .iter()
                .map(|n| ctx.node("drbd: nodes", n))
                .collect::<anyhow::Result<_>>()?,
            primaries,
            within,
        })
    }
}

/// One node's view of a DRBD resource, as `drbdadm` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// `Primary`, `Secondary`, `Unknown`.
    pub role: String,
    /// The connection: `Connected`, `SyncSource`, `StandAlone`, `WFConnection`...
    pub cstate: String,
    /// The local disk: `UpToDate`, `Inconsistent`, `Diskless`...
    pub disk: String,
    /// The peer's disk as this node knows it (`DUnknown` when not connected).
    pub peer_disk: String,
    /// The resource is not up on this node (`drbdadm` found no such device).
    pub down: bool,
}

/// The script that prints a node's state of `resource` (one `key=value` a line).
pub fn state_script(resource: &str) -> Script {
    let mut s = Script::new();
    for what in ["role", "cstate", "dstate"] {
        s.line(sh!(
            "printf '%s=%s\\n' {} \"$(drbdadm {} {} 2>&1 | tr '\\n' ' ')\"",
            what,
            what,
            resource
        ));
    }
    s
}

/// Parse [`state_script`]'s output. A resource that is not up makes drbdadm
/// (8.4's drbdsetup) say "Device minor not allocated" or "Unconfigured".
pub fn parse_state(out: &str) -> NodeState {
    let kv = crate::text::kv_lines(out);
    let get = |k: &str| kv.get(k).cloned().unwrap_or_default();
    let (role, cstate, dstate) = (get("role"), get("cstate"), get("dstate"));
    let down = [&role, &cstate, &dstate].iter().any(|v| {
        v.contains("not allocated")
            || v.contains("Unconfigured")
            || v.contains("no resources defined")
            || v.is_empty()
    });
    let (disk, peer_disk) = match dstate.split_once('/') {
        Some((a, b)) => (a.trim().to_string(), b.trim().to_string()),
        None => (dstate.trim().to_string(), String::new()),
    };
    let role = role.split('/').next().unwrap_or_default().trim().to_string();
    NodeState {
        role,
        cstate: cstate.trim().to_string(),
        disk,
        peer_disk,
        down,
    }
}

/// What a node's state means, when it is not what the check wants: the
/// problem, and whether it ends by itself (a resync, a reconnect).
pub fn problem(node: &str, resource: &str, st: &NodeState) -> Option<(String, bool)> {
    if st.down {
        return Some((
            format!(
                "{node}: {resource} is not up (drbdadm: {})\n  fix: `labctl ssh {node} -- sudo drbdadm up {resource}`, or see `crm_mon -1` (pacemaker starts it)",
                if st.cstate.is_empty() { "no answer" } else { &st.cstate }
            ),
            false,
        ));
    }
    match st.cstate.as_str() {
        "StandAlone" => {
            return Some((
                format!(
                    "{node}: {resource} is StandAlone: not connected to its peer and not trying to (it was disconnected with `drbdadm disconnect`, or it refused to resolve a split brain)\n  fix: `labctl ssh {node} -- sudo drbdadm connect {resource}` (after a split brain: see `drbdadm status {resource}` on both nodes)"
                ),
                false,
            ))
        }
        "Connected" => {}
        c if c.starts_with("Sync")
            || c.starts_with("PausedSync")
            || c.starts_with("WF")
            || c.starts_with("Verify")
            || c == "Connecting"
            || c == "Disconnecting"
            || c == "NetworkFailure"
            || c == "BrokenPipe"
            || c == "Timeout"
            || c == "ProtocolError"
            || c == "TearDown"
            || c == "Unconnected" =>
        {
            let what = if c.starts_with("Sync") || c.starts_with("PausedSync") {
                "resyncing"
            } else if c.starts_with("Verify") {
                "verifying"
            } else {
                "not connected to its peer"
            };
            return Some((
                format!(
                    "{node}: {resource} is {c} ({what}; disk {}/{})",
                    st.disk, st.peer_disk
                ),
                true,
            ));
        }
        c => {
            return Some((
                format!("{node}: {resource} is in connection state `{c}`, not Connected"),
                true,
            ))
        }
    }
    if st.disk == "Diskless" {
        return Some((
            format!(
                "{node}: {resource} has no local disk (Diskless: the backing disk was detached or failed)\n  fix: `labctl ssh {node} -- sudo drbdadm attach {resource}`"
            ),
            false,
        ));
    }
    if st.disk != "UpToDate" || st.peer_disk != "UpToDate" {
        return Some((
            format!(
                "{node}: {resource} is connected but the disks are {}/{} (local/peer), not UpToDate/UpToDate",
                st.disk, st.peer_disk
            ),
            true,
        ));
    }
    None
}

/// How long a rejoining node's resource may stay StandAlone (see [`Plan::judge`]).
pub const STANDALONE_GRACE: Duration = Duration::from_secs(20);

impl Plan {
    /// Every node's state (in the order of `nodes:`), or why one could not be read.
    fn read(&self, ctx: &Ctx, sessions: &mut [Option<Session>]) -> Result<Vec<NodeState>, String> {
        let script = state_script(&self.resource);
        let mut states = Vec::new();
        for (node, sess) in self.nodes.iter().zip(sessions.iter_mut()) {
            if sess.is_none() {
                *sess = Some(ctx.ssh(node)?);
            }
            let s = sess.as_mut().ok_or("no session")?;
            match ctx.remote(s, &script) {
                Ok(o) => states.push(parse_state(&o.stdout)),
                Err(e) => {
                    *sess = None;
                    return Err(e);
                }
            }
        }
        Ok(states)
    }

    /// Judge the states: `Ok(summary)`, or the problem and whether it may end by itself.
    /// `rejoining`: a node has just booted, and pacemaker has yet to bring
    /// its resource up: "not up" is waited for, not a failure, and so is
    /// StandAlone (`drbdadm up` attaches first, StandAlone, then connects:
    /// under load that step was seen to last over a second);
    /// [`Plan::wait`] gives StandAlone [`STANDALONE_GRACE`].
    pub fn judge(&self, states: &[NodeState], rejoining: bool) -> Result<String, (String, bool)> {
        let mut waiting = None;
        for (node, st) in self.nodes.iter().zip(states) {
            if let Some((p, transient)) = problem(&node.name, &self.resource, st) {
                let waited = transient || (rejoining && (st.down || st.cstate == "StandAlone"));
                if !waited {
                    return Err((p, false));
                }
                waiting.get_or_insert(p);
            }
        }
        if let Some(p) = waiting {
            return Err((p, true));
        }
        let primaries: Vec<&str> = self
            .nodes
            .iter()
            .zip(states)
            .filter(|(_, s)| s.role == "Primary")
            .map(|(n, _)| n.name.as_str())
            .collect();
        if primaries.len() != self.primaries {
            let which = if primaries.is_empty() {
                "none".to_string()
            } else {
                primaries.join(", ")
            };
            // pacemaker may be promoting right now
            return Err((
                format!(
                    "{}: {} Primary wanted, found {} ({which})\n  fix: see `crm_mon -1` on a node: pacemaker promotes the DRBD clone",
                    self.resource,
                    self.primaries,
                    primaries.len()
                ),
                true,
            ));
        }
        Ok(format!(
            "{} Connected, UpToDate on {}; Primary: {}",
            self.resource,
            Node::names(&self.nodes),
            if primaries.is_empty() {
                "none".to_string()
            } else {
                primaries.join(", ")
            }
        ))
    }

    /// Poll until the resource is as wanted, a problem that does not end by
    /// itself shows, or `within` passes (`rejoining`: see [`Plan::judge`]).
    pub fn wait(&self, ctx: &Ctx, within: Duration, rejoining: bool) -> Result<String, String> {
        let t = Instant::now();
        let mut sessions: Vec<Option<Session>> = self.nodes.iter().map(|_| None).collect();
        let mut said = String::new();
        let mut standalone_since: Option<Instant> = None;
        loop {
            let last = match self.read(ctx, &mut sessions) {
                Ok(states) => {
                    let standalone = states.iter().any(|s| s.cstate == "StandAlone");
                    if !standalone {
                        standalone_since = None;
                    }
                    match self.judge(&states, rejoining) {
                        Ok(s) => return Ok(s),
                        Err((p, false)) => return Err(p),
                        Err((p, true)) => {
                            // a StandAlone that lasts is a split brain or a
                            // disconnect, not a node on its way up
                            if standalone
                                && standalone_since.get_or_insert_with(Instant::now).elapsed()
                                    >= STANDALONE_GRACE
                            {
                                return Err(format!(
                                    "{p} (for {})",
                                    human_ms(STANDALONE_GRACE.as_millis() as u64)
                                ));
                            }
                            p
                        }
                    }
                }
                Err(e) => e,
            };
            if last != said {
                ctx.progress(&format!("drbd: {}", last.lines().next().unwrap_or("")));
                said = last.clone();
            }
            if t.elapsed() >= within || !ctx.sleep(Duration::from_secs(1)) {
                return Err(format!(
                    "after {}: {last}",
                    human_ms(t.elapsed().as_millis() as u64)
                ));
            }
        }
    }
}

impl Check for Plan {
    fn summary(&self) -> String {
        let nodes = Node::names(&self.nodes);
        format!("drbd {} on {nodes}", self.resource)
    }

    fn deadline(&self) -> Duration {
        self.within + Duration::from_secs(60)
    }

    fn run(&self, ctx: &Ctx) -> Outcome {
        match self.wait(ctx, self.within, false) {
            Ok(s) => Outcome::pass(s),
            Err(e) => Outcome::fail(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> anyhow::Result<Plan> {
        crate::checks::test_plan(yaml, Spec::plan)
    }

    fn st(role: &str, cstate: &str, dstate: &str) -> NodeState {
        parse_state(&format!("role={role}\ncstate={cstate}\ndstate={dstate}\n"))
    }

    #[test]
    fn parses_drbdadm_84() {
        let s = st("Primary/Secondary ", "Connected ", "UpToDate/UpToDate ");
        assert_eq!(s.role, "Primary");
        assert_eq!(s.cstate, "Connected");
        assert_eq!((s.disk.as_str(), s.peer_disk.as_str()), ("UpToDate", "UpToDate"));
        assert!(!s.down);
        // not up: 8.4's drbdsetup says so, and that means down, not broken
        let s = st(
            "0: Failure: (127) Device minor not allocated additional info from kernel: unknown minor Command 'drbdsetup-84 role 0' terminated with exit code 10 ",
            "0: Failure: (127) Device minor not allocated ",
            "0: Failure: (127) Device minor not allocated ",
        );
        assert!(s.down);
        let (p, transient) = problem("nodo1", "r0", &s).unwrap();
        assert!(!transient && p.contains("not up") && p.contains("drbdadm up r0"), "{p}");
        assert!(parse_state("").down);
    }

    #[test]
    fn judges_states() {
        let p = plan("{resource: r0, nodes: [nodo1, nodo2]}").unwrap();
        let good = [
            st("Primary/Secondary", "Connected", "UpToDate/UpToDate"),
            st("Secondary/Primary", "Connected", "UpToDate/UpToDate"),
        ];
        let ok = p.judge(&good, false).unwrap();
        assert!(ok.contains("Primary: nodo1"), "{ok}");
        // a disconnected resource: StandAlone fails at once, saying so
        let broken = [
            st("Primary/Unknown", "StandAlone", "UpToDate/DUnknown"),
            st("Secondary/Unknown", "WFConnection", "UpToDate/DUnknown"),
        ];
        let (m, transient) = p.judge(&broken, false).unwrap_err();
        assert!(!transient, "{m}");
        assert!(m.contains("nodo1: r0 is StandAlone") && m.contains("drbdadm connect r0"), "{m}");
        // a resync is waited for
        let sync = [
            st("Primary/Secondary", "SyncSource", "UpToDate/Inconsistent"),
            st("Secondary/Primary", "SyncTarget", "Inconsistent/UpToDate"),
        ];
        let (m, transient) = p.judge(&sync, false).unwrap_err();
        assert!(transient && m.contains("resyncing"), "{m}");
        // two Primaries where one is wanted
        let two = [
            st("Primary/Primary", "Connected", "UpToDate/UpToDate"),
            st("Primary/Primary", "Connected", "UpToDate/UpToDate"),
        ];
        let (m, _) = p.judge(&two, false).unwrap_err();
        assert!(m.contains("1 Primary wanted, found 2 (nodo1, nodo2)"), "{m}");
        let dual = plan("{resource: r0, nodes: [nodo1, nodo2], primaries: 2}").unwrap();
        assert!(dual.judge(&two, false).is_ok());
        let diskless = [
            st("Primary/Secondary", "Connected", "Diskless/UpToDate"),
            good[1].clone(),
        ];
        let (m, transient) = p.judge(&diskless, false).unwrap_err();
        assert!(!transient && m.contains("Diskless"), "{m}");
        // a node that has just booted: not up yet is waited for only then
        let mut booting = good.clone();
        booting[1].down = true;
        let (_, transient) = p.judge(&booting, false).unwrap_err();
        assert!(!transient);
        let (m, transient) = p.judge(&booting, true).unwrap_err();
        assert!(transient && m.contains("nodo2: r0 is not up"), "{m}");
        // attaching (StandAlone until it connects) is waited for only then
        let (_, transient) = p.judge(&broken, true).unwrap_err();
        assert!(transient);
    }

    #[test]
    fn rejects_bad_specs() {
        let e = plan("{resource: 'r0; reboot', nodes: [nodo1]}").unwrap_err().to_string();
        assert!(e.contains("not a DRBD resource name") && e.contains("s.yaml:1:1"), "{e}");
        let e = plan("{resource: r0, nodes: [nodo9]}").unwrap_err().to_string();
        assert!(e.contains("nodo9"), "{e}");
        let e = plan("{resource: r0, nodes: [nodo1], primaries: 2}").unwrap_err().to_string();
        assert!(e.contains("more than the 1 nodes"), "{e}");
        let e = plan("{resource: r0, nodes: [nodo1], prim: 2}").unwrap_err().to_string();
        assert!(e.contains("prim"), "{e}");
    }
}
