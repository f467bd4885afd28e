//! `labctl verify`: prove the scenario works.

use super::Global;
use clap::Args;
use std::path::PathBuf;

/// Run the checks of a scenario's `verify:` section: DNS, HTTP, cluster, failover.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labctl verify                  # the scenario last applied to the lab\n  labctl verify scenarios/01-dns-round-robin.yaml"
)]
pub struct VerifyArgs {
    /// The scenario file (default: the one last applied with `configure`).
    pub scenario: Option<PathBuf>,
}

pub fn run(_a: VerifyArgs, _g: &Global) -> anyhow::Result<i32> {
    super::not_implemented("verify")
}
