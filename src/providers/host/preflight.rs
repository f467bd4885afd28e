//! Checks before an nspawn lab is changed, each failing with one message and
//! its fix: root, the host tools, a subnet already used elsewhere, and lab
//! state that belongs to another inventory or lab.

use super::paths;
use crate::inventory::Inventory;
use crate::user_bail;
use std::path::{Path, PathBuf};

/// Refuse unless running as root. `what` is the command as typed (`up`,
/// `configure scenario.yaml`), so the fix can be copied.
pub fn root(what: &str) -> anyhow::Result<()> {
    if !is_root() {
        user_bail!(
            "`labctl {what}` with provider nspawn needs root: the lab's containers, bridge, nft table and mounts, and its key and state in .labctl/, belong to root\n  fix: run it as root: `sudo labctl {what}`"
        );
    }
    Ok(())
}

/// Whether labctl runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn in_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .any(|d| d.join(tool).is_file())
}

/// Refuse when a host tool is missing, naming the Debian packages.
pub fn tools() -> anyhow::Result<()> {
    require_tools(
        "nspawn",
        &[
            ("systemd-nspawn", "systemd-container"),
            ("mmdebstrap", "mmdebstrap"),
            ("nft", "nftables"),
            ("ip", "iproute2"),
            ("ssh-keygen", "openssh-client"),
            ("ssh", "openssh-client"),
            ("chroot", "coreutils"),
        ],
    )
}

/// Refuse when one of the (tool, Debian package) pairs `need` of `provider` is missing.
pub fn require_tools(provider: &str, need: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&(&str, &str)> = need.iter().filter(|(t, _)| !in_path(t)).collect();
    if !missing.is_empty() {
        let mut pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
        pkgs.dedup();
        user_bail!(
            "provider {provider} needs {} on this machine\n  fix: apt-get install {} (scripts/install-host-deps installs everything)",
            missing
                .iter()
                .map(|(t, _)| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", "),
            pkgs.join(" ")
        );
    }
    Ok(())
}

/// Refuse when another interface already holds an address in the lab subnet.
pub fn subnet_free(inv: &Inventory) -> anyhow::Result<()> {
    let Some(net) = &inv.network else {
        return Ok(());
    };
    let br = inv.bridge_name();
    let addrs = crate::lab::local_addrs()?;
    for n in inv.extra_networks() {
        for a in &addrs {
            if a.iface != n.bridge
                && (n.subnet.contains(a.addr) || a.subnet.contains(n.subnet.network))
            {
                user_bail!(
                    "the private network {} ({}) is already used by interface {} ({}/{}) on this machine\n  fix: pick another subnet for that network in {}, or remove that interface (another lab? `labctl -i ITS_INVENTORY destroy`)",
                    n.subnet, n.members.first().map(|m| m.1.as_str()).unwrap_or("eth2"), a.iface, a.addr, a.subnet.prefix, inv.path.display()
                );
            }
        }
    }
    // a route (a VPN's 10.0.0.0/8, a static route to a LAN) the lab would shadow
    let routes = crate::lab::routes();
    let mut own: Vec<&str> = vec![br.as_str()];
    own.extend(inv.extra_networks().iter().map(|n| n.bridge.as_str()));
    let mut nets = vec![(
        net.subnet,
        "`network.subnet` (and node addresses)".to_string(),
    )];
    nets.extend(inv.extra_networks().iter().map(|n| {
        (
            n.subnet,
            format!("subnet for the private network {}", n.subnet),
        )
    }));
    for (subnet, what) in nets {
        if let Some(r) = crate::lab::overlapping_route(&subnet, &routes, &own) {
            user_bail!(
                "the lab subnet {subnet} overlaps the route to {} (interface {}) of this machine: the lab would take that route's traffic\n  fix: pick another {what} in {}, outside {}",
                r.subnet,
                r.iface,
                inv.path.display(),
                r.subnet
            );
        }
    }
    for a in addrs {
        if a.iface == br {
            continue;
        }
        if net.subnet.contains(a.addr) || a.subnet.contains(net.subnet.network) {
            user_bail!(
                "the lab subnet {} is already used by interface {} ({}/{}) on this machine\n  fix: pick another `network.subnet` (and node addresses) in {}, or remove that interface (another lab? `labctl -i ITS_INVENTORY destroy`)",
                net.subnet,
                a.iface,
                a.addr,
                a.subnet.prefix,
                inv.path.display()
            );
        }
    }
    Ok(())
}

fn owner_file(lab: &str) -> PathBuf {
    paths::lab_dir(lab).join("owner")
}

fn marker_file(inv: &Inventory) -> PathBuf {
    inv.state_dir().join("lab")
}

fn canonical_inventory(inv: &Inventory) -> PathBuf {
    std::fs::canonicalize(&inv.path)
        .unwrap_or_else(|_| inv.dir.join(inv.path.file_name().unwrap_or_default()))
}

/// Refuse when the lab's host state belongs to another inventory, or the
/// project's `.labctl/` to another lab.
pub fn ownership(inv: &Inventory) -> anyhow::Result<()> {
    let me = canonical_inventory(inv);
    if let Ok(owner) = std::fs::read_to_string(owner_file(&inv.lab)) {
        let owner = owner.trim();
        if Path::new(owner) != me {
            user_bail!(
                "lab `{}` already exists on this machine and belongs to {owner}\n  fix: destroy it there (`labctl -i {owner} destroy`), or give this lab another name (`lab:` in {})",
                inv.lab,
                inv.path.display()
            );
        }
    }
    if let Ok(other) = crate::project::read_state(&inv.state_dir(), &marker_file(inv)) {
        let other = String::from_utf8_lossy(&other);
        let other = other.trim();
        if !other.is_empty() && other != inv.lab {
            user_bail!(
                "{} holds the state of lab `{other}`, but {} now names lab `{}`\n  fix: destroy the old lab first (set `lab: {other}` back and run `labctl destroy`), or remove {}",
                inv.state_dir().display(),
                inv.path.display(),
                inv.lab,
                inv.state_dir().display()
            );
        }
    }
    Ok(())
}

/// Record that this inventory owns the lab.
pub fn claim(inv: &Inventory) -> anyhow::Result<()> {
    let o = owner_file(&inv.lab);
    // node files, consoles and keys of the lab: root's only (and labs/ too)
    paths::private_dir(&paths::lab_dir(&inv.lab))?;
    std::fs::write(&o, format!("{}\n", canonical_inventory(inv).display()))?;
    crate::project::write_state(
        &inv.state_dir(),
        &marker_file(inv),
        format!("{}\n", inv.lab).as_bytes(),
        0o600,
    )
}
