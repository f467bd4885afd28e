//! A node's seed folder, shared by the providers whose image applies it at
//! first boot (its `labctl-seed` unit): libvirt packs it into a small disk,
//! incus into a tar pushed into the instance. Kept in the lab's state
//! (`/var/lib/labctl/labs/<lab>/nodes/<node>/seed/`, root's only) so the host
//! key can be pinned again:
//!
//! ```text
//! root/      files copied onto the node: hostname, hosts, resolv.conf, the
//!            network file (static address), its ed25519 host key (pinned by
//!            labctl: no trust on first use)
//! lab.pub    the lab's public key
//! setup.sh   makes the lab user with passwordless sudo and that key
//! ```

use super::{paths, rootfs};
use crate::inventory::{Inventory, Node};
use std::path::PathBuf;

/// The node's folder in the lab's state on this machine.
pub fn node_dir(lab: &str, node: &str) -> PathBuf {
    paths::nodes_dir(lab).join(node)
}

/// The node's public host key, as labctl made it.
pub fn host_key_pub(lab: &str, node: &str) -> PathBuf {
    node_dir(lab, node).join("seed/root/etc/ssh/ssh_host_ed25519_key.pub")
}

/// Make the node's seed folder anew (a new identity: a new host key) and
/// return it. `matching` is the systemd-networkd `[Match]` line of the
/// node's lab NIC (`Name=eth0`, `MACAddress=…`).
pub fn make(
    inv: &Inventory,
    node: &Node,
    matching: &str,
    lab_pubkey: &str,
    nameservers: &[String],
) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let Some(net) = &inv.network else {
        anyhow::bail!("internal error: lab `{}` without network", inv.lab);
    };
    let dir = node_dir(&inv.lab, &node.name);
    let seed = dir.join("seed");
    if seed.exists() {
        std::fs::remove_dir_all(&seed)?;
    }
    std::fs::create_dir_all(seed.join("root"))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let mut netf = format!(
        "# labctl: static address on the lab network\n[Match]\n{matching}\n\n[Network]\nAddress={}/{}\nGateway={}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n",
        node.address, net.subnet.prefix, net.gateway
    );
    for ns in nameservers {
        netf.push_str(&format!("DNS={ns}\n"));
    }
    rootfs::write_identity(
        inv,
        node,
        &seed.join("root"),
        ("etc/systemd/network/10-labctl.network", &netf),
        nameservers,
    )?;
    rootfs::write(&seed, "lab.pub", &format!("{}\n", lab_pubkey.trim()), 0o644)?;
    let script = rootfs::user_script(inv)?;
    rootfs::write(&seed, "setup.sh", script.as_str(), 0o700)?;
    Ok(seed)
}
