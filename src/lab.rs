//! Lab safety: lab traffic never leaves this machine.
//!
//! Before labctl connects to a node it checks that the address can only be
//! reached locally: for an nspawn lab, the lab's bridge must hold the gateway
//! address (so a missing bridge can never send 10.x traffic out of the default
//! route); for the ssh provider, the address must be loopback, or inside the
//! lab's `network:` while a local interface holds an address of that network;
//! for a VM lab on a remote hypervisor, the lab's bridge there must hold the
//! gateway, and the traffic goes through the SSH hop to it ([`crate::jump`]).

use crate::inventory::{Inventory, ProviderKind, Subnet};
use crate::user_bail;
use std::net::Ipv4Addr;
use std::process::Command;

/// One IPv4 address held by a local interface.
#[derive(Debug, Clone)]
pub struct LocalAddr {
    pub iface: String,
    pub addr: Ipv4Addr,
    pub subnet: Subnet,
}

/// Parse `ip -o -4 addr show` output.
pub fn parse_ip_addr(out: &str) -> Vec<LocalAddr> {
    let mut v = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(pos) = f.iter().position(|w| *w == "inet") else {
            continue;
        };
        let (Some(iface), Some(cidr)) = (f.get(1), f.get(pos + 1)) else {
            continue;
        };
        let Some((a, _)) = cidr.split_once('/') else {
            continue;
        };
        if let (Ok(addr), Some(subnet)) = (a.parse(), Subnet::parse(cidr)) {
            v.push(LocalAddr {
                iface: iface.trim_end_matches(':').to_string(),
                addr,
                subnet,
            });
        }
    }
    v
}

/// The IPv4 addresses this machine holds now.
pub fn local_addrs() -> anyhow::Result<Vec<LocalAddr>> {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run `ip` (package iproute2): {e}"))?;
    Ok(parse_ip_addr(&String::from_utf8_lossy(&out.stdout)))
}

/// Whether the lab's bridge exists and holds the gateway address.
pub fn bridge_holds_gateway(inv: &Inventory) -> anyhow::Result<bool> {
    let Some(net) = &inv.network else {
        return Ok(false);
    };
    let br = inv.bridge_name();
    Ok(local_addrs()?
        .iter()
        .any(|a| a.iface == br && a.addr == net.gateway))
}

/// Refuse to connect to `addr` unless the traffic provably stays on this machine.
pub fn ensure_safe_target(inv: &Inventory, addr: Ipv4Addr) -> anyhow::Result<()> {
    if addr.is_loopback() {
        return Ok(());
    }
    if let (ProviderKind::Libvirt, Some(j)) = (inv.provider, inv.jump()) {
        let gw = inv.network.as_ref().map(|n| n.gateway);
        let held = match gw {
            Some(gw) => j.bridge_holds(&inv.bridge_name(), gw)?,
            None => false,
        };
        if !held {
            user_bail!(
                "lab `{}` is not up on {}: its bridge {} there does not hold the gateway {}; refusing to send traffic to {addr}\n  fix: run `labctl up` first",
                inv.lab,
                j.label(),
                inv.bridge_name(),
                gw.map(|g| g.to_string()).unwrap_or_default()
            );
        }
        return Ok(());
    }
    match inv.provider {
        ProviderKind::Nspawn | ProviderKind::Libvirt => {
            if !bridge_holds_gateway(inv)? {
                let gw = inv.network.as_ref().map(|n| n.gateway.to_string());
                user_bail!(
                    "lab `{}` is not up: bridge {} does not hold the gateway {}; refusing to send traffic to {addr}\n  fix: run `labctl up` first",
                    inv.lab,
                    inv.bridge_name(),
                    gw.unwrap_or_default()
                );
            }
            Ok(())
        }
        ProviderKind::Ssh => {
            // only the lab's own network (inventory load requires one for any
            // address that is not loopback), and only while this machine holds it
            let Some(net) = inv.network.as_ref().filter(|n| n.subnet.contains(addr)) else {
                user_bail!(
                    "refusing to connect to {addr}: it is not in the lab's network\n  fix: add the lab's `network:` to {} and give the nodes addresses in it",
                    inv.path.display()
                )
            };
            let local = local_addrs()?;
            if local
                .iter()
                .any(|l| net.subnet.contains(l.addr) && l.subnet.contains(addr))
            {
                Ok(())
            } else {
                user_bail!(
                    "refusing to connect to {addr}: no local interface holds an address of the lab network {}, so the traffic would leave this machine\n  fix: bring up the network that holds the nodes (e.g. the nspawn lab they belong to)",
                    net.subnet
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_output() {
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n5: lab-ha    inet 10.1.1.1/24 brd 10.1.1.255 scope global lab-ha\\       valid_lft forever\n";
        let v = parse_ip_addr(out);
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].iface, "lab-ha");
        assert_eq!(v[1].addr.to_string(), "10.1.1.1");
        assert!(v[1].subnet.contains("10.1.1.50".parse().unwrap()));
    }
}
