//! `labctl halt` and `labctl fail`: power nodes off, cleanly or not.

use super::Global;
use clap::Args;

/// Power nodes off cleanly (like `vagrant halt`); their files are kept.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labctl halt              # every node\n  labctl halt nodo2\n  labctl halt --force nodo1   # power cut, same as `labctl fail nodo1`"
)]
pub struct HaltArgs {
    /// Cut the power instead of a clean shutdown.
    #[arg(long)]
    pub force: bool,
    /// Nodes to halt (default: all).
    pub nodes: Vec<String>,
}

/// Cut a node's power at once (its whole PID namespace killed), to test failover.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  labctl fail nodo1 && labctl verify && labctl up nodo1")]
pub struct FailArgs {
    /// Nodes to fail.
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

pub fn run(_a: HaltArgs, _g: &Global) -> anyhow::Result<i32> {
    super::not_implemented("halt")
}

pub fn run_fail(_a: FailArgs, _g: &Global) -> anyhow::Result<i32> {
    super::not_implemented("fail")
}
