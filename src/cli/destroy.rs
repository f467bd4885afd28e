//! `labctl destroy`: remove everything the lab created.

use super::Global;
use clap::Args;

/// Stop and remove every node, the bridge, the nft table and the lab state; the image cache stays.
#[derive(Debug, Args)]
#[command(after_help = "Safe to run twice and after a crash.\n\nExample:\n  labctl destroy")]
pub struct DestroyArgs {}

pub fn run(_a: DestroyArgs, _g: &Global) -> anyhow::Result<i32> {
    super::not_implemented("destroy")
}
