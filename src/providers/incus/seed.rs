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
use crate::providers::host;
use std::process::Command;

/// The nodes' interface on the lab network (the profile's NIC).
pub const NIC: &str = "eth0";

pub use crate::providers::host::seed::{host_key_pub, node_dir};

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
    let seed = host::seed::make(inv, node, &format!("Name={NIC}"), lab_pubkey, nameservers)?;
    let dir = node_dir(&inv.lab, &node.name);
    let tar = dir.join("seed.tar");
    host::tool::checked(
        Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
            .arg(&seed)
            .arg("."),
        "tar",
        |o| {
            format!(
                "packing {}'s seed failed: {}",
                node.name,
                host::tool::stderr(o)
            )
        },
    )?;
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
