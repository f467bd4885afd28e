//! A node's seed: its identity, made on this machine before the first boot
//! and applied by the image's `labctl-seed` unit (see [`super::image`]). One
//! tar file, pushed into the stopped instance as `/var/lib/labctl/seed.tar`:
//!
//! ```text
//! root/      files copied onto the node: hostname, hosts, resolv.conf, the
//!            network file (static address on eth0), its ed25519 host key
//!            (pinned by labctl: no trust on first use)
//! lab.pub    the lab's public key
//! setup.sh   makes the lab user with passwordless sudo and that key
//! ```
//!
//! The folder stays in the lab's state (`/var/lib/labctl/labs/<lab>/nodes/<node>/seed/`,
//! root's only) so the host key can be pinned again.

use super::client::{Incus, SHORT};
use crate::inventory::{Inventory, Node};
use crate::providers::host::{paths, rootfs};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The nodes' interface on the lab network (the profile's NIC).
pub const NIC: &str = "eth0";

/// The node's folder in the lab's state on this machine.
pub fn node_dir(lab: &str, node: &str) -> PathBuf {
    paths::nodes_dir(lab).join(node)
}

/// The node's public host key, as labctl made it.
pub fn host_key_pub(lab: &str, node: &str) -> PathBuf {
    node_dir(lab, node).join("seed/root/etc/ssh/ssh_host_ed25519_key.pub")
}

/// Make the node's seed (a new identity: a new host key) and push it into
/// its instance, which must exist and be stopped.
pub fn push(
    incus: &Incus,
    inv: &Inventory,
    node: &Node,
    lab_pubkey: &str,
    nameservers: &[String],
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Some(net) = &inv.network else {
        anyhow::bail!("internal error: incus lab without network");
    };
    let dir = node_dir(&inv.lab, &node.name);
    let seed = dir.join("seed");
    if seed.exists() {
        std::fs::remove_dir_all(&seed)?;
    }
    std::fs::create_dir_all(seed.join("root"))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let mut netf = format!(
        "# labctl: static address on the lab network\n[Match]\nName={NIC}\n\n[Network]\nAddress={}/{}\nGateway={}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n",
        node.address, net.subnet.prefix, net.gateway
    );
    for ns in nameservers {
        netf.push_str(&format!("DNS={ns}\n"));
    }
    let root = seed.join("root");
    rootfs::write_identity(
        inv,
        node,
        &root,
        ("etc/systemd/network/10-labctl.network", &netf),
        nameservers,
    )?;
    rootfs::write(&seed, "lab.pub", &format!("{}\n", lab_pubkey.trim()), 0o644)?;
    let script = rootfs::user_script(inv)?;
    rootfs::write(&seed, "setup.sh", script.as_str(), 0o700)?;
    let tar = dir.join("seed.tar");
    let out = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&seed)
        .arg(".")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run tar: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "packing {}'s seed failed: {}",
            node.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o600))?;
    let target = format!("{}/var/lib/labctl/seed.tar", node.name);
    let r = incus.run(
        &[
            "file",
            "push",
            "--create-dirs",
            "--mode",
            "0600",
            &tar.to_string_lossy(),
            &target,
        ],
        SHORT,
    );
    let _ = std::fs::remove_file(&tar);
    r.map(|_| ())
}
