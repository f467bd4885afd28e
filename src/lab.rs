//! Lab safety: lab traffic never leaves this machine.
//!
//! Before labctl connects to a node it checks that the address can only be
//! reached locally: for an nspawn lab, the lab's bridge must hold the gateway
//! address (so a missing bridge can never send 10.x traffic out of the default
//! route); for the ssh provider, the address must be loopback, or inside the
//! lab's `network:` while a local interface holds an address of that network;
//! for a VM lab on a remote hypervisor, the lab's bridge there must hold the
//! gateway, and the traffic goes through the SSH hop to it ([`crate::jump`]).

use crate::inventory::{Inventory, Subnet};
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
        .env("LC_ALL", "C") // parsed: the same words whatever the host's locale
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run `ip` (package iproute2): {e}"))?;
    Ok(parse_ip_addr(&String::from_utf8_lossy(&out.stdout)))
}

/// One IPv4 route of this machine (not the default one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub iface: String,
    pub subnet: Subnet,
}

/// The IPv4 routes of this machine but the default one, from the kernel's own
/// table (`/proc/net/route`: no tool output, no locale).
pub fn routes() -> Vec<Route> {
    std::fs::read_to_string("/proc/net/route")
        .map(|t| parse_proc_route(&t))
        .unwrap_or_default()
}

/// Parse `/proc/net/route` (addresses in hex, in the kernel's byte order).
pub fn parse_proc_route(text: &str) -> Vec<Route> {
    let ip = |h: &str| {
        u32::from_str_radix(h, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.swap_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (iface, dest, mask) = (f.first()?, ip(f.get(1)?)?, ip(f.get(7)?)?);
            let prefix = u32::from(mask).leading_ones() as u8;
            (prefix > 0).then(|| Route {
                iface: iface.to_string(),
                subnet: Subnet {
                    network: dest,
                    prefix,
                },
            })
        })
        .collect()
}

/// The first of `routes` that overlaps `subnet` (either holds the other),
/// leaving out the routes of the lab's own interfaces `own`.
pub fn overlapping_route<'a>(
    subnet: &Subnet,
    routes: &'a [Route],
    own: &[&str],
) -> Option<&'a Route> {
    routes.iter().find(|r| {
        !own.contains(&r.iface.as_str())
            && (subnet.contains(r.subnet.network) || r.subnet.contains(subnet.network))
    })
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
    // the nodes' network is on another host (libvirt by URI): ask it there
    if let Some(j) = inv.jump() {
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
    match inv.provider.creates_nodes {
        true => {
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
        false => {
            // only the lab's own network (inventory load requires one for any
            // address that is not loopback), and only while this machine holds it
            let Some(net) = inv.network.as_ref().filter(|n| n.subnet.contains(addr)) else {
                user_bail!(
                    "refusing to connect to {addr}: it is not in the lab's network\n  fix: add the lab's `network:` to {} and give the nodes addresses in it",
                    inv.path.display()
                )
            };
            let local = local_addrs()?;
            let holders: Vec<&LocalAddr> = local
                .iter()
                .filter(|l| net.subnet.contains(l.addr) && l.subnet.contains(addr))
                .collect();
            if holders.iter().any(|l| is_labctl_bridge(&l.iface)) {
                return Ok(());
            }
            if !inv.ssh.lan {
                let node = inv.nodes.iter().find(|n| n.address == addr);
                let at = match node.and_then(|n| node_line(&inv.path, &n.name)) {
                    Some(line) => format!("{}:{line}", inv.path.display()),
                    None => inv.path.display().to_string(),
                };
                user_bail!(
                    "{at}: node {}address {addr} is neither loopback nor on a labctl lab's bridge: provider ssh connects to other networks (the LAN) only when the inventory says so\n  fix: point the node at a lab's address, or, if {addr} is a machine of yours on this machine's network, add `ssh: {{lan: true}}` to {}",
                    node.map(|n| format!("{}: ", n.name)).unwrap_or_default(),
                    inv.path.display()
                );
            }
            if holders.is_empty() {
                user_bail!(
                    "refusing to connect to {addr}: no local interface holds an address of the lab network {}, so the traffic would leave this machine\n  fix: bring up the network that holds the nodes (e.g. the nspawn lab they belong to)",
                    net.subnet
                )
            }
            Ok(())
        }
    }
}

/// Whether interface `iface` is a bridge labctl makes for a lab: `lab-LAB`
/// (a lab network) or `lbN-LAB` (a Vagrant project's further networks), and
/// a bridge.
pub fn is_labctl_bridge(iface: &str) -> bool {
    let named = iface.starts_with("lab-")
        || iface
            .strip_prefix("lb")
            .and_then(|r| r.split_once('-'))
            .is_some_and(|(n, lab)| {
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !lab.is_empty()
            });
    named
        && !iface.contains('/')
        && std::path::Path::new("/sys/class/net")
            .join(iface)
            .join("bridge")
            .is_dir()
}

/// The line of node `name` under `nodes:` in an inventory file, if found.
fn node_line(path: &std::path::Path, name: &str) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    node_line_in(&text, name)
}

fn node_line_in(text: &str, name: &str) -> Option<usize> {
    let mut in_nodes = false;
    for (i, line) in text.lines().enumerate() {
        if !line.starts_with([' ', '\t', '#']) && !line.is_empty() {
            in_nodes = line.trim_end().starts_with("nodes:");
            continue;
        }
        let t = line.trim_start();
        let key = t
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(['"', '\'']);
        if in_nodes && key == name && t.contains(':') {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_subnet_overlapping_a_route_is_found() {
        // default via eth0, a VPN's 10.0.0.0/8 on tun0, the lab's own bridge
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
tun0\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n\
lab-ha\t0001010A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let routes = parse_proc_route(table);
        assert_eq!(routes.len(), 2, "the default route is left out: {routes:?}");
        assert_eq!(routes[0].iface, "tun0");
        assert_eq!(routes[0].subnet.to_string(), "10.0.0.0/8");
        assert_eq!(routes[1].subnet.to_string(), "10.1.1.0/24");
        let lab = Subnet {
            network: "10.1.1.0".parse().unwrap(),
            prefix: 24,
        };
        let hit = overlapping_route(&lab, &routes, &["lab-ha"]).unwrap();
        assert_eq!(hit.iface, "tun0", "the VPN route is shadowed by the lab");
        let other = Subnet {
            network: "192.168.7.0".parse().unwrap(),
            prefix: 24,
        };
        assert!(overlapping_route(&other, &routes, &["lab-ha"]).is_none());
        // a route inside the lab subnet counts too
        let wide = Subnet {
            network: "10.1.0.0".parse().unwrap(),
            prefix: 16,
        };
        let only = parse_proc_route(&table.replace("tun0", "lab-x").replace("lab-ha", "eth9"));
        assert_eq!(
            overlapping_route(&wide, &only, &["lab-x"]).unwrap().iface,
            "eth9"
        );
        // the live table parses
        let _ = routes_now();
    }

    fn routes_now() -> Vec<Route> {
        routes()
    }

    #[test]
    fn finds_a_nodes_line() {
        let text = "lab: t\nprovider: ssh\nnodes:\n  web: {address: 192.0.2.10}\n  \"db\": {address: 192.0.2.11}\nvars:\n  web: 1\n";
        assert_eq!(node_line_in(text, "web"), Some(4));
        assert_eq!(node_line_in(text, "db"), Some(5));
        assert_eq!(node_line_in(text, "vars"), None);
    }

    #[test]
    fn only_labctl_bridges_count_as_lab_networks() {
        // names alone: no such interfaces here
        assert!(!is_labctl_bridge("eth0"));
        assert!(!is_labctl_bridge("lo"));
        assert!(!is_labctl_bridge("lab-nosuchlab-here"));
        assert!(!is_labctl_bridge("lb-x"));
        assert!(!is_labctl_bridge("lab-../../x"));
    }

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
