//! `halt` and `fail` over a provider's nodes: every node at once, a line for
//! each from its state before, and a last line saying what really happened.

use super::{parallel, secs, NodeState};
use crate::inventory::Node;
use crate::progress::Progress;
use std::time::{Duration, Instant};

/// How a provider words what happened to a node that was running.
#[derive(Debug, Clone, Copy)]
pub struct Words {
    /// `fail`, `halt --force`: e.g. `power cut (PID namespace killed)`.
    pub cut: &'static str,
    /// `halt`: e.g. `powered off (ACPI)`.
    pub off: &'static str,
}

/// Power `nodes` off at once (`force`: cut the power) with `off`, which
/// returns a node's state before; report each node and the whole.
pub fn halt_each(
    lab: &str,
    nodes: &[&Node],
    force: bool,
    words: Words,
    p: &dyn Progress,
    off: &(dyn Fn(&Node) -> anyhow::Result<NodeState> + Sync),
) -> anyhow::Result<()> {
    let start = Instant::now();
    let results = parallel(nodes, &|n: &Node| {
        let t = Instant::now();
        let before = off(n)?;
        Ok((before, t.elapsed()))
    });
    let mut errors = Vec::new();
    let mut befores = Vec::new();
    for (n, r) in results {
        match r {
            Ok((before, took)) => {
                p.line(&format!("{}: {}", n.name, line(words, before, force, took)));
                befores.push(before);
            }
            Err(e) => errors.push(format!("{}: {e:#}", n.name)),
        }
    }
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join("\n"));
    }
    p.line(&summary(lab, &befores, force, start.elapsed()));
    Ok(())
}

/// What `halt`/`fail` did to one node, from its state before.
fn line(words: Words, before: NodeState, force: bool, took: Duration) -> String {
    match before {
        NodeState::Running => {
            let what = if force { words.cut } else { words.off };
            format!("{what} in {}", secs(took))
        }
        NodeState::Absent => "absent (never created)".to_string(),
        _ => "already stopped".to_string(),
    }
}

/// The last line of `halt`/`fail`: what really happened, from the nodes' states before.
fn summary(lab: &str, befores: &[NodeState], force: bool, took: Duration) -> String {
    let running = befores.iter().filter(|s| **s == NodeState::Running).count();
    let verb = if force { "power cut" } else { "halted" };
    if running > 0 {
        return format!("{verb} {running} node(s) in {}", secs(took));
    }
    let what = if force {
        "nothing to cut"
    } else {
        "nothing to halt"
    };
    if befores.iter().all(|s| *s == NodeState::Absent) {
        format!("{what}: lab `{lab}` has no node created (`labctl up` creates them)")
    } else {
        format!("{what}: no node of lab `{lab}` is running")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halt_says_what_really_happened() {
        use NodeState::*;
        let t = Duration::from_millis(1500);
        assert_eq!(
            summary("ha", &[Absent, Absent, Absent], false, t),
            "nothing to halt: lab `ha` has no node created (`labctl up` creates them)"
        );
        assert_eq!(
            summary("ha", &[Stopped, Absent], false, t),
            "nothing to halt: no node of lab `ha` is running"
        );
        assert_eq!(
            summary("ha", &[Running, Stopped], false, t),
            "halted 1 node(s) in 1.5 s"
        );
        assert_eq!(
            summary("ha", &[Running], true, t),
            "power cut 1 node(s) in 1.5 s"
        );
        assert!(summary("ha", &[Stopped], true, t).starts_with("nothing to cut"));
        let words = Words {
            cut: "power cut (PID namespace killed)",
            off: "powered off",
        };
        assert_eq!(
            line(words, Running, true, t),
            "power cut (PID namespace killed) in 1.5 s"
        );
        assert_eq!(line(words, Running, false, t), "powered off in 1.5 s");
        assert_eq!(line(words, Absent, false, t), "absent (never created)");
        assert_eq!(line(words, Stopped, true, t), "already stopped");
    }
}
