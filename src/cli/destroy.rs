//! `labctl destroy`: remove everything the lab created.

use super::Global;
use clap::Args;

/// Remove the lab (nodes, bridge, nft table, state), or only the nodes named.
#[derive(Debug, Args)]
#[command(after_help = "\
Removes, for provider nspawn: the nodes' processes (only those of this lab), their overlays
and mounts, the bridge lab-<lab>, the nft table labctl_<lab>, /var/lib/labctl/labs/<lab> and
the project's .labctl/ state (a key named in the inventory is kept). The cached image and the
shared package pool stay. Safe to run twice and after a crash. Provider ssh refuses.

With node names, only those nodes are removed (processes, overlays, files; their downloaded
packages go to the pool and their host keys are unpinned); the other nodes, the bridge and the
lab state stay, and `labctl up NODE` rebuilds them from the image.

Examples:
  labctl destroy                  # the whole lab
  labctl destroy nodo2 && labctl up nodo2   # rebuild one node (= labctl up --fresh nodo2)")]
pub struct DestroyArgs {
    /// Remove only these nodes (default: the whole lab).
    pub nodes: Vec<String>,
}

pub fn run(a: DestroyArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    super::need_root(&inv)?;
    // one command changes a lab at a time (see crate::lock)
    let _lock = crate::lock::LabLock::acquire(&inv, &super::typed_command())?;
    if a.nodes.is_empty() {
        crate::providers::destroy(&inv, &super::progress::Draw::new())?;
    } else {
        crate::providers::destroy_nodes(&inv, &a.nodes, &super::progress::Draw::new())?;
    }
    Ok(0)
}
