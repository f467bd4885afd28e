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
kept and `labctl up NODE` boots it again. It works at any moment, also while `labctl configure`
runs (it does not wait for the lab lock): the run reports the node unreachable.

Examples:
  labctl fail nodo1 && labctl verify && labctl up nodo1
  labctl configure scenario.yaml & sleep 5; labctl fail nodo2   # a node dies mid-run")]
pub struct FailArgs {
    /// Nodes to fail.
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

pub fn run(a: HaltArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    super::need_root(&inv)?;
    if a.force {
        // a power cut, like `labctl fail`: no lab lock
        crate::providers::halt(&inv, &a.nodes, true, &super::progress::Draw::new())?;
        return Ok(0);
    }
    // one command changes a lab at a time (see crate::lock)
    let _lock = crate::lock::LabLock::acquire(&inv, &format!("halt {}", a.nodes.join(" ")))?;
    crate::providers::halt(&inv, &a.nodes, false, &super::progress::Draw::new())?;
    Ok(0)
}

/// A power cut takes no lab lock ([`crate::lock`]): it is meant to happen at
/// any moment, also in the middle of a `configure` (which holds the lock for its
/// whole run), to test what a dead node does to it. It changes no file labctl
/// manages; the provider's own lock still orders it with `up`, `halt` and
/// `destroy` of the containers.
pub fn run_fail(a: FailArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    super::need_root(&inv)?;
    crate::providers::fail(&inv, &a.nodes, &super::progress::Draw::new())?;
    Ok(0)
}
