//! `labctl status`: each node's state.

use super::Global;
use clap::Args;

/// Show each node's state (running / stopped / absent), address and provider.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  labctl status\n  labctl status --json")]
pub struct StatusArgs {}

pub fn run(_a: StatusArgs, _g: &Global) -> anyhow::Result<i32> {
    super::not_implemented("status")
}
