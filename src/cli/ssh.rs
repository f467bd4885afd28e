//! `labctl ssh` and `labctl ssh-config`: reach a node with the lab key and
//! its pinned host key, through the system OpenSSH client.

use super::Global;
use crate::providers::sshcmd;
use clap::Args;
use std::os::unix::process::CommandExt;

/// Open a shell on a node, or run one command, with the lab key and pinned host key.
#[derive(Debug, Args)]
#[command(after_help = "\
Runs the system `ssh` with the lab key, the lab's known-hosts file and strict host key
checking (no ~/.ssh/config). The exit code is the remote command's. Every word after the node
is the command, its options too (as with `vagrant ssh -c`); `--` before it is optional.
labctl's own options (`-i`, `-v`) go before the node. For one command on several nodes:
`labctl exec`.

Examples:
  labctl ssh nodo1
  labctl ssh dns hostname
  labctl ssh nodo1 sudo crm_mon -1        # the cluster's state, once
  labctl ssh nodo2 -- ip -br addr")]
pub struct SshArgs {
    /// The node.
    pub node: String,
    /// A command to run instead of a shell (`--` before it is optional).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

/// Print an OpenSSH client config for every node (like `vagrant ssh-config`).
#[derive(Debug, Args)]
#[command(after_help = "\
Each node gets a Host block with HostName, Port, User, IdentityFile, the lab's known-hosts
file and StrictHostKeyChecking yes, so plain ssh, scp, rsync and Ansible reach the nodes too.

Examples:
  labctl ssh-config > lab.ssh && ssh -F lab.ssh nodo1
  scp -F lab.ssh notes.txt nodo2:")]
pub struct SshConfigArgs {}

pub fn run(a: SshArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    super::need_root(&inv)?;
    let node = crate::providers::select(&inv, std::slice::from_ref(&a.node))?[0];
    crate::lab::ensure_safe_target(&inv, node.address)?;
    crate::providers::for_inventory(&inv).check_running(&inv, node)?;
    crate::transport::ssh::check_key(&inv)?;
    sshcmd::check_known_hosts(&inv)?;
    let mut cmd = sshcmd::base_command(&inv, node);
    cmd.args(["-o", "LogLevel=ERROR"]);
    if a.command.is_empty() {
        cmd.arg(node.address.to_string());
    } else {
        cmd.arg(node.address.to_string()).arg("--").args(&a.command);
    }
    let err = cmd.exec();
    Err(anyhow::anyhow!(
        "cannot run `ssh` (package openssh-client): {err}"
    ))
}

pub fn run_config(_a: SshConfigArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    print!("{}", sshcmd::config_text(&inv)?);
    Ok(0)
}
