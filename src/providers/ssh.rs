//! Provider `ssh`: the nodes already exist (VMs, servers, or another lab's
//! containers) and labctl only reaches them.
//!
//! `up` checks that every node accepts the lab key and presents the host key
//! pinned in the lab's known-hosts file (no trust on first use); `status`
//! tells which nodes answer SSH; `halt`, `fail` and `destroy` refuse (the
//! [`Provider`] defaults), because labctl never powers off or removes
//! machines it did not create.

use super::{probe, sshcmd, NodeState, NodeStatus, Provider};
use crate::inventory::{Inventory, Node};
use crate::progress::Progress;
use std::time::{Duration, Instant};

/// Nodes that already exist, reached over SSH.
pub struct SshHosts;

impl Provider for SshHosts {
    fn name(&self) -> &'static str {
        "ssh"
    }
    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities::existing(None, super::StatusPoll::NodeSsh(Duration::from_secs(3)))
    }

    fn up(&self, inv: &Inventory, nodes: &[&Node], p: &dyn Progress) -> anyhow::Result<()> {
        let start = Instant::now();
        crate::transport::ssh::check_key(inv)?;
        sshcmd::check_known_hosts(inv)?;
        for n in nodes {
            crate::lab::ensure_safe_target(inv, n.address)?;
        }
        let labels: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        p.start(&labels);
        let results: Vec<Result<Duration, String>> = std::thread::scope(|s| {
            let hs: Vec<_> = nodes
                .iter()
                .map(|n| {
                    s.spawn(move || {
                        p.set(&n.name, &format!("checking {} with the lab key", n.address));
                        let r = sshcmd::check_login(inv, n);
                        match &r {
                            Ok(d) => p.finish(
                                &n.name,
                                &format!("reachable, host key matches ({})", super::secs(*d)),
                            ),
                            Err(_) => p.finish(&n.name, "refused"),
                        }
                        r
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("internal error".into())))
                .collect()
        });
        let failed: Vec<String> = nodes
            .iter()
            .zip(&results)
            .filter_map(|(n, r)| {
                r.as_ref()
                    .err()
                    .map(|e| format!("{} ({}): {e}", n.name, n.address))
            })
            .collect();
        if !failed.is_empty() {
            anyhow::bail!(
                "{} of {} nodes cannot be reached:\n{}",
                failed.len(),
                nodes.len(),
                failed.join("\n")
            );
        }
        p.line(&format!(
            "lab `{}` (provider ssh): {} node(s) reachable in {}",
            inv.lab,
            nodes.len(),
            super::secs(start.elapsed())
        ));
        Ok(())
    }

    fn status(&self, inv: &Inventory) -> anyhow::Result<Vec<NodeStatus>> {
        let timeout = Duration::from_secs(inv.ssh.connect_timeout_secs);
        std::thread::scope(|s| {
            let hs: Vec<_> = inv
                .nodes
                .iter()
                .map(|n| {
                    s.spawn(move || -> anyhow::Result<NodeStatus> {
                        crate::lab::ensure_safe_target(inv, n.address)?;
                        let up = probe::ssh_banner(None, n.address, n.port, timeout).is_ok();
                        let state = if up {
                            NodeState::Running
                        } else {
                            NodeState::Unreachable
                        };
                        Ok(NodeStatus::new(n, "ssh", state))
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(anyhow::anyhow!("internal error: status thread panicked"))
                    })
                })
                .collect()
        })
    }
}
