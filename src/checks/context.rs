//! What checks run in: [`Env`], shared by every check of a run (the inventory,
//! SSH options, the power switch, the progress sink, the addresses already
//! proven safe), and [`Ctx`], one check's view of it with that check's stop
//! signal.
//!
//! A check stops when its deadline passes: the runner calls [`Ctx::stop`],
//! [`Ctx::sleep`] returns at once from then on, polling loops end on
//! [`Ctx::stopped`], and remote scripts are bounded by the time left
//! ([`Ctx::remote`]), so the check's thread ends and is joined before the next
//! check starts.

use crate::inventory::{Inventory, Node};
use crate::shell::Script;
use crate::transport::ssh::{check_key, ConnectError, Session};
use crate::transport::{Output, Remote};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Cuts and restores a node's power for the checks that need a node down
/// (`failover`, `node_down`).
pub trait Power: Sync {
    /// Cut the power of `node` (`on: false`, like `labctl fail NODE`) or boot
    /// it again (`on: true`, like `labctl up NODE`); why it failed, if it did.
    fn switch(&self, inv: &Inventory, node: &str, on: bool) -> Result<(), String>;

    /// Unplug (`plugged: false`, like `labctl unplug NODE`) or plug back the
    /// node's network cable, the node left running (`fencing`).
    fn cable(&self, _inv: &Inventory, node: &str, _plugged: bool) -> Result<(), String> {
        Err(format!("this lab has no cable of {node} to cut"))
    }

    /// Whether the node has power (the provider's view, not the network's).
    fn powered(&self, _inv: &Inventory, node: &str) -> Result<bool, String> {
        Err(format!("this lab cannot tell whether {node} has power"))
    }
}

/// The lab's own provider, in process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProviderPower;

impl Power for ProviderPower {
    fn switch(&self, inv: &Inventory, node: &str, on: bool) -> Result<(), String> {
        let names = [node.to_string()];
        let r = if on {
            crate::providers::up(inv, &names, &crate::progress::Silent)
        } else {
            crate::providers::fail(inv, &names, &crate::progress::Silent)
        };
        r.map_err(|e| crate::error::format_error(&e))
    }

    fn cable(&self, inv: &Inventory, node: &str, plugged: bool) -> Result<(), String> {
        crate::providers::link::set(inv, &[node.to_string()], plugged, &crate::progress::Silent)
            .map_err(|e| crate::error::format_error(&e))
    }

    fn powered(&self, inv: &Inventory, node: &str) -> Result<bool, String> {
        let all = crate::providers::status(inv).map_err(|e| crate::error::format_error(&e))?;
        all.iter()
            .find(|n| n.name == node)
            .map(|n| n.state == crate::providers::NodeState::Running)
            .ok_or_else(|| format!("{node} is not a node of the lab"))
    }
}

/// What every check of one run shares.
pub struct Env<'a> {
    pub inv: &'a Inventory,
    /// Skip SSH host key checks (existing hosts you trust).
    pub insecure: bool,
    power: &'a dyn Power,
    progress: &'a (dyn Fn(&str) + Sync),
    safe: Mutex<HashSet<Ipv4Addr>>,
}

impl<'a> Env<'a> {
    pub fn new(
        inv: &'a Inventory,
        insecure: bool,
        power: &'a dyn Power,
        progress: &'a (dyn Fn(&str) + Sync),
    ) -> Env<'a> {
        Env {
            inv,
            insecure,
            power,
            progress,
            safe: Mutex::new(HashSet::new()),
        }
    }

    /// The context of one check that may run until `deadline`.
    pub fn ctx(&self, deadline: Instant) -> Ctx<'_> {
        Ctx {
            env: self,
            inv: self.inv,
            deadline,
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        }
    }
}

/// One check's context: the shared [`Env`] and the check's stop signal.
pub struct Ctx<'a> {
    env: &'a Env<'a>,
    pub inv: &'a Inventory,
    deadline: Instant,
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Ctx<'_> {
    /// Tell the check to stop: its waits end and its loops give up.
    pub fn stop(&self) {
        if let Ok(mut s) = self.stopped.lock() {
            *s = true;
        }
        self.wake.notify_all();
    }

    /// Whether the check was told to stop.
    pub fn stopped(&self) -> bool {
        self.stopped.lock().map(|s| *s).unwrap_or(true)
    }

    /// Wait `d`, or less when told to stop; whether the check may go on.
    pub fn sleep(&self, d: Duration) -> bool {
        let Ok(g) = self.stopped.lock() else {
            return false;
        };
        match self.wake.wait_timeout_while(g, d, |stopped| !*stopped) {
            Ok((g, _)) => !*g,
            Err(_) => false,
        }
    }

    /// The time left until the check's deadline.
    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Refuse to send to `addr` unless the traffic provably stays on this machine:
    /// [`crate::lab::ensure_safe_target`], and for a lab with a `network:` the
    /// address must be in its subnet (a DNS answer could name any address).
    pub fn ensure_safe(&self, addr: Ipv4Addr) -> Result<(), String> {
        if let Ok(s) = self.env.safe.lock() {
            if s.contains(&addr) {
                return Ok(());
            }
        }
        if !addr.is_loopback() {
            if let Some(net) = &self.inv.network {
                if !net.subnet.contains(addr) {
                    return Err(format!(
                        "refusing to send traffic to {addr}: it is outside the lab subnet {}",
                        net.subnet
                    ));
                }
            }
        }
        crate::lab::ensure_safe_target(self.inv, addr)
            .map_err(|e| crate::error::format_error(&e))?;
        if let Ok(mut s) = self.env.safe.lock() {
            s.insert(addr);
        }
        Ok(())
    }

    /// A progress line (for the long checks).
    pub fn progress(&self, msg: &str) {
        (self.env.progress)(msg)
    }

    /// Open an SSH session to `node` (after the safety check).
    pub fn ssh(&self, node: &Node) -> Result<Session, String> {
        self.ensure_safe(node.address)?;
        check_key(self.inv).map_err(|e| crate::error::format_error(&e))?;
        let t = crate::transport::ssh::Target::for_node(self.inv, node, self.env.insecure);
        Session::connect(&t).map_err(|e| match e {
            ConnectError::Unreachable(m) | ConnectError::HostKey(m) => m,
        })
    }

    /// Run a script as root over SSH, bounded by the time the check has left.
    pub fn remote(&self, sess: &mut Session, script: &Script) -> Result<Output, String> {
        let limit = crate::transport::PROBE_LIMIT
            .min(self.time_left())
            .max(Duration::from_secs(1));
        sess.run(script, limit)
            .map_err(|e| format!("{}: {}", sess.target.name, crate::error::format_error(&e)))
    }

    /// Unplug (`plugged: false`) or plug back `node`'s network cable.
    pub fn cable(&self, node: &str, plugged: bool) -> Result<(), String> {
        let verb = if plugged { "plug" } else { "unplug" };
        as_command(verb, node, self.env.power.cable(self.inv, node, plugged))
    }

    /// Whether `node` has power.
    pub fn powered(&self, node: &str) -> Result<bool, String> {
        self.env.power.powered(self.inv, node)
    }

    /// Cut the power of `node` (`up: false`) or boot it again (`up: true`).
    pub fn power(&self, node: &str, up: bool) -> Result<(), String> {
        let verb = if up { "up" } else { "fail" };
        as_command(verb, node, self.env.power.switch(self.inv, node, up))
    }
}

/// A power or cable switch's error, named as the command that does it
/// (`labctl fail nodo1`).
fn as_command<E: std::fmt::Display>(
    verb: &str,
    node: &str,
    r: Result<(), E>,
) -> Result<(), String> {
    r.map_err(|e| format!("`labctl {verb} {node}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_check_wakes_from_its_sleep() {
        let inv = super::super::test_inventory();
        let env = Env::new(&inv, false, &ProviderPower, &|_| {});
        let ctx = env.ctx(Instant::now() + Duration::from_secs(60));
        assert!(ctx.sleep(Duration::from_millis(1)));
        let t = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                ctx.stop();
            });
            assert!(!ctx.sleep(Duration::from_secs(30)));
        });
        assert!(t.elapsed() < Duration::from_secs(10));
        assert!(ctx.stopped());
        assert!(!ctx.sleep(Duration::from_secs(30)));
    }
}
