//! `labctl up`: create and boot the lab's nodes (provider nspawn), or check
//! that they answer (provider ssh).

use super::Global;
use clap::Args;

/// Create the lab's nodes and boot them (like `vagrant up`).
#[derive(Debug, Args)]
#[command(after_help = "\
Provider nspawn (default, needs root): the first `up` builds a Debian bookworm image once into
/var/lib/labctl/images (mmdebstrap, about 30 s); then each node is an overlay on it, booted with
systemd-nspawn on the bridge lab-<lab>. `up` returns when every node answers SSH. On a running
lab it does nothing; after `halt` it boots the same nodes with their files kept.
Provider ssh: checks that every node accepts the lab key and shows its pinned host key.

`--fresh` rebuilds the named nodes from the image (their files are lost, their new host keys
are pinned); the other nodes keep running untouched.

Examples:
  labctl up             # every node of ./inventory.yaml
  labctl up nodo1       # boot (or create) one node
  labctl up --fresh nodo2   # rebuild nodo2 from the image, leave nodo1 and dns alone
  labctl -i lab2/inventory.yaml up")]
pub struct UpArgs {
    /// Rebuild the nodes from the image first (like `labctl destroy NODE` then `labctl up NODE`).
    #[arg(long)]
    pub fresh: bool,
    /// Nodes to bring up (default: all).
    pub nodes: Vec<String>,
}

pub fn run(a: UpArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::with_scenario_packages(super::load_inventory(g)?);
    super::need_root(&inv)?;
    // one command changes a lab at a time (see crate::lock)
    let _lock = crate::lock::LabLock::acquire(&inv, &super::typed_command())?;
    if let Some(v) = &inv.vagrant {
        for line in vagrant_notes(&inv, v) {
            eprintln!("{line}");
        }
    }
    if a.fresh {
        crate::providers::up_fresh(&inv, &a.nodes, &super::progress::Draw::new())?;
    } else {
        crate::providers::up(&inv, &a.nodes, &super::progress::Draw::new())?;
    }
    Ok(0)
}

/// What a lab read from a Vagrantfile runs instead of what the file asked
/// for: one line for the boxes, one for the VM settings nspawn nodes share.
fn vagrant_notes(
    inv: &crate::inventory::Inventory,
    v: &crate::inventory::VagrantShape,
) -> Vec<String> {
    let mut out = vec![format!(
        "{}: lab `{}` on {} (the folder's name and the private network), nodes shaped like Vagrant's: user vagrant, key in .vagrant/machines/NODE/{{libvirt,virtualbox}}/private_key, eth1",
        inv.path.display(),
        inv.lab,
        inv.network.as_ref().map(|n| n.subnet.to_string()).unwrap_or_default()
    )];
    let other: Vec<&(String, String, usize)> = v
        .boxes
        .iter()
        .filter(|(_, b, _)| {
            !(b.contains("bookworm") || b.contains("debian12") || b.contains("debian-12"))
        })
        .collect();
    if let Some((_, b, line)) = other.first() {
        out.push(format!(
            "{}:{line}: box `{b}`{}: labctl's nodes run Debian 12 bookworm (its own image) instead",
            inv.path.display(),
            if other.len() > 1 {
                format!(" (and {} more)", other.len() - 1)
            } else {
                String::new()
            }
        ));
    }
    if !v.vm_settings.is_empty() {
        out.push(format!(
            "{}: memory, cpus and disks of {} are read but not used: nspawn nodes share this machine's",
            inv.path.display(),
            v.vm_settings.join(", ")
        ));
    }
    out
}
