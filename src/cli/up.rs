//! `labctl up`: create and boot the lab's nodes.

use super::Global;
use clap::Args;

/// Create the lab's nodes and boot them (like `vagrant up`).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labctl up             # every node of ./inventory.yaml\n  labctl up nodo1       # boot (or create) one node"
)]
pub struct UpArgs {
    /// Nodes to bring up (default: all).
    pub nodes: Vec<String>,
}

pub fn run(_a: UpArgs, _g: &Global) -> anyhow::Result<i32> {
    super::not_implemented("up")
}
