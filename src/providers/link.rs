//! The link fault: a node's network cable cut (`labctl unplug NODE`) and
//! plugged back (`labctl plug NODE`) while the node keeps running, as the
//! NixOS test driver's `block`/`unblock` do. The node's own interface only
//! loses its carrier: its processes, addresses and disks are untouched, so
//! the cluster sees exactly what a pulled cable does (the node is alive and
//! believes the other one died).
//!
//! Each provider cuts its own kind of cable ([`super::Provider::set_link`]):
//! nspawn sets the host side of the node's veth down, libvirt sets the VM's
//! virtual NIC's link down (`virsh domif-setlink`). A power cut or reboot
//! gives the node a new cable, plugged.

use super::NodeState;
use crate::inventory::{Inventory, Node};
use crate::progress::Progress;
use serde::Serialize;

/// The state of a running node's network cable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    Plugged,
    Unplugged,
}

impl Link {
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Plugged => "plugged",
            Link::Unplugged => "unplugged",
        }
    }
}

/// The refusal of a provider that has no cable to cut.
pub fn unsupported(provider: &str) -> anyhow::Error {
    crate::error::user(format!(
        "provider `{provider}` cannot unplug a node: labctl does not own these machines' network (providers nspawn and libvirt can)\n  fix: cut the link on the switch or hypervisor that carries it (e.g. `ip link set DEV down` there)"
    ))
}

/// `labctl unplug NODE…` (`plugged: false`) and `labctl plug NODE…`: set the
/// cable of each named node, which must be running.
pub fn set(
    inv: &Inventory,
    names: &[String],
    plugged: bool,
    p: &dyn Progress,
) -> anyhow::Result<()> {
    let verb = if plugged { "plug" } else { "unplug" };
    if names.is_empty() {
        crate::user_bail!("name the nodes to {verb}\n  fix: e.g. `labctl {verb} nodo1`");
    }
    let nodes = super::select(inv, names)?;
    let provider = super::for_inventory(inv);
    for n in &nodes {
        provider.check_running(inv, n)?;
    }
    for n in &nodes {
        let before = provider.link(inv, n)?;
        let want = if plugged {
            Link::Plugged
        } else {
            Link::Unplugged
        };
        if before == Some(want) {
            p.line(&format!("{}: already {}", n.name, want.as_str()));
            continue;
        }
        provider.set_link(inv, n, plugged)?;
        p.line(&format!(
            "{}: {}",
            n.name,
            if plugged {
                "cable plugged back in (its link is up)".to_string()
            } else {
                format!(
                    "cable unplugged (it keeps running, unreachable); `labctl plug {}` puts it back",
                    n.name
                )
            }
        ));
    }
    Ok(())
}

/// The cable of `node` for `status`: known only for a running node of a
/// provider that has one.
pub fn of(
    provider: &dyn super::Provider,
    inv: &Inventory,
    node: &Node,
    state: NodeState,
) -> Option<Link> {
    if state != NodeState::Running {
        return None;
    }
    provider.link(inv, node).ok().flatten()
}
