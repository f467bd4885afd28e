//! A node's seed disk: its identity, made on this machine before first boot
//! and applied by the image's `labctl-seed` unit (no cloud-init, no network
//! fetch). It is a small ext4 file system (label `labctl-seed`, made with
//! `mkfs.ext4 -d`) holding:
//!
//! ```text
//! root/      files copied onto the node: hostname, hosts, resolv.conf, the
//!            network file (static address on the NIC with the node's MAC),
//!            its ed25519 host key (pinned by labctl: no trust on first use)
//! lab.pub    the lab's public key
//! setup.sh   makes the lab user with passwordless sudo and that key
//! ```
//!
//! The folder stays in the lab's state (`/var/lib/labctl/labs/<lab>/nodes/<node>/seed/`,
//! root's only) so the host key can be pinned again; the disk is uploaded as
//! the node's volume `<node>-seed.img`.

use super::xml;
use crate::inventory::{Inventory, Node};
use crate::providers::host;
use std::path::PathBuf;
use std::process::Command;

pub use crate::providers::host::seed::{host_key_pub, node_dir};

/// Make the node's seed (a new identity: a new host key) and return the disk image.
pub fn make(
    inv: &Inventory,
    node: &Node,
    lab_pubkey: &str,
    nameservers: &[String],
) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let matching = format!("MACAddress={}", xml::mac(&inv.lab, &node.name));
    let seed = host::seed::make(inv, node, &matching, lab_pubkey, nameservers)?;
    // systemd makes the VM's machine id at first boot
    std::fs::remove_file(seed.join("root/etc/machine-id"))?;
    let dir = node_dir(&inv.lab, &node.name);
    let img = dir.join("seed.img");
    let _ = std::fs::remove_file(&img);
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args([
        "-q",
        "-F",
        "-L",
        "labctl-seed",
        "-E",
        "root_owner=0:0",
        "-d",
    ])
    .args([seed.as_os_str(), img.as_os_str()])
    .arg("16M");
    host::tool::checked(&mut mkfs, "mkfs.ext4 (package e2fsprogs)", |o| {
        let why = host::tool::stderr(o);
        format!("mkfs.ext4 of {}'s seed failed: {why}", node.name)
    })?;
    std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o600))?;
    Ok(img)
}
