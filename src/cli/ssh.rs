//! `labctl ssh` and `labctl ssh-config`.

use super::Global;
use clap::Args;

/// Open a shell on a node, or run one command, with the lab key and pinned host key.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  labctl ssh nodo1\n  labctl ssh dns -- hostname")]
pub struct SshArgs {
    /// The node.
    pub node: String,
    /// A command to run instead of a shell (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Print an OpenSSH client config for every node (like `vagrant ssh-config`).
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  labctl ssh-config > lab.ssh && ssh -F lab.ssh nodo1")]
pub struct SshConfigArgs {}

pub fn run(_a: SshArgs, _g: &Global) -> anyhow::Result<i32> {
    super::not_implemented("ssh")
}

pub fn run_config(_a: SshConfigArgs, _g: &Global) -> anyhow::Result<i32> {
    super::not_implemented("ssh-config")
}
