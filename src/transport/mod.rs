//! Transport: how labctl runs scripts on a node.
//!
//! One [`ssh::Session`] per host, reused for every task: each call of
//! [`Remote::run`] is one channel (one remote round trip) that feeds a shell
//! script to `sh -s` as root (through `sudo -n` when the SSH user is not root).

pub mod ssh;

/// What a remote script printed and how it exited.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub rc: i32,
}

/// Something that runs shell scripts as root on one node.
pub trait Remote: Send {
    /// Run `script` with `sh` as root; stdin of the commands is /dev/null.
    fn run(&mut self, script: &str) -> anyhow::Result<Output>;
}
