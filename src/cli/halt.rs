//! `labctl halt` and `labctl fail`: power nodes off, cleanly or not.

use super::Global;
use clap::Args;

/// Power nodes off cleanly (like `vagrant halt`); their files are kept.
#[derive(Debug, Args)]
#[command(after_help = "\
A clean halt asks each node's systemd to power off and waits for it; `--force` cuts the power
at once (the container's whole PID namespace is killed), as `labctl fail` does. `labctl up`
boots halted nodes again with their files kept. Provider ssh refuses: labctl never powers off
machines it did not create.

Examples:
  labctl halt              # every node
  labctl halt nodo2
  labctl halt --force nodo1   # power cut, same as `labctl fail nodo1`")]
pub struct HaltArgs {
    /// Cut the power instead of a clean shutdown.
    #[arg(long)]
    pub force: bool,
    /// Nodes to halt (default: all).
    pub nodes: Vec<String>,
}

/// Cut a node's power at once (its whole PID namespace killed), to test failover.
#[derive(Debug, Args)]
#[command(after_help = "\
The node's processes all die at the same instant, like pulling the plug of a VM; its files are
kept and `labctl up NODE` boots it again.

Example:
  labctl fail nodo1 && labctl verify && labctl up nodo1")]
pub struct FailArgs {
    /// Nodes to fail.
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

pub fn run(a: HaltArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    // one command changes a lab at a time (see crate::lock)
    let _lock = crate::lock::LabLock::acquire(&inv, &format!("halt {}", a.nodes.join(" ")))?;
    crate::providers::halt(&inv, &a.nodes, a.force)?;
    Ok(0)
}

pub fn run_fail(a: FailArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    // one command changes a lab at a time (see crate::lock)
    let _lock = crate::lock::LabLock::acquire(&inv, &format!("fail {}", a.nodes.join(" ")))?;
    crate::providers::fail(&inv, &a.nodes)?;
    Ok(0)
}
