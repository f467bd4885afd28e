//! `labctl destroy`: remove everything the lab created.

use super::Global;
use clap::Args;

/// Stop and remove every node, the bridge, the nft table and the lab state; the image cache stays.
#[derive(Debug, Args)]
#[command(after_help = "\
Removes, for provider nspawn: the nodes' processes (only those of this lab), their overlays
and mounts, the bridge lab-<lab>, the nft table labctl_<lab>, /var/lib/labctl/labs/<lab> and
the project's .labctl/ state (a key named in the inventory is kept). The cached image and the
shared package pool stay. Safe to run twice and after a crash. Provider ssh refuses.

Example:
  labctl destroy")]
pub struct DestroyArgs {}

pub fn run(_a: DestroyArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    // one command changes a lab at a time (see crate::lock)
    let _lock = crate::lock::LabLock::acquire(&inv, "destroy")?;
    crate::providers::destroy(&inv)?;
    Ok(0)
}
