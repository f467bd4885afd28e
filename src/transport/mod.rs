//! Transport: how labctl runs scripts on a node.
//!
//! One [`ssh::Session`] per host, reused for every task, and in it one root
//! shell (`sh -s`, through `sudo -n` when the SSH user is not root) opened by
//! the first script: each call of [`Remote::run`] is one remote round trip
//! that sends a script to that shell and reads its output up to an end mark.

pub mod ssh;

use crate::shell::Script;
use std::time::Duration;

/// What a remote script printed and how it exited.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub rc: i32,
}

/// How long a task's change may run unless the task sets `timeout:`.
pub const TASK_LIMIT: Duration = Duration::from_secs(600);
/// How long reading a play's state (or a file for `--diff`) may take.
pub const PROBE_LIMIT: Duration = Duration::from_secs(120);
/// How long waiting for what a node does by itself (a cluster rejoining it)
/// may take before `configure` reads its state anyway.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(300);

/// Something that runs shell scripts as root on one node.
pub trait Remote: Send {
    /// Run `script` with `sh` as root; stdin of the commands is /dev/null. A
    /// script that does not parse runs not at all (exit 2); one that runs past
    /// `limit` is stopped with all it started (exit 124 or more). A broken
    /// connection is an error holding [`ConnectionLost`].
    fn run(&mut self, script: &Script, limit: Duration) -> anyhow::Result<Output>;
}

/// The connection to a node broke in the middle of a run (the node lost power,
/// the network went away): the host is unreachable from then on.
#[derive(Debug, thiserror::Error)]
#[error("connection lost (the node went down or the network broke): {0}")]
pub struct ConnectionLost(pub String);

/// Whether `e` is (or was caused by) a lost connection.
pub fn is_connection_lost(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<ConnectionLost>())
}
