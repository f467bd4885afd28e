//! `labctl snapshot save|restore|list|delete`: the nodes' disks saved under a
//! name and put back (like `vagrant snapshot`).

use super::Global;
use clap::{Args, Subcommand};

/// Save the lab's nodes under a name and put them back later (like `vagrant snapshot`).
#[derive(Debug, Args)]
#[command(after_help = "\
Provider nspawn: a snapshot is a copy of every node's own files (its overlay's upper layer) in
/var/lib/labctl/labs/<lab>/snapshots/NAME, taken while the nodes run. `restore` cuts the nodes'
power (their present state is thrown away), puts the saved files back and boots them; it returns
when every node answers SSH. The host keys are part of the node's files, so the pinned keys stay
valid; `verify` afterwards checks the scenario that was configured when the snapshot was saved.
`labctl destroy` removes the snapshots with the lab. Provider ssh refuses.

Examples:
  labctl configure scenario.yaml && labctl snapshot save configured
  labctl snapshot restore configured && labctl verify   # back to the saved point
  labctl snapshot list
  labctl snapshot delete configured")]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Save every node's files as snapshot NAME.
    Save { name: String },
    /// Power the nodes off, put snapshot NAME back and boot them.
    Restore { name: String },
    /// The lab's snapshots, oldest first.
    List,
    /// Remove snapshot NAME.
    Delete { name: String },
}

pub fn run(a: SnapshotArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    super::need_root(&inv)?;
    let draw = super::progress::Draw::new();
    use crate::providers::snapshots;
    match a.action {
        Action::List => {
            let list = snapshots::list(&inv)?;
            if g.json {
                let v = serde_json::json!({"lab": inv.lab, "snapshots": list});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if list.is_empty() {
                println!(
                    "lab `{}` has no snapshot (`labctl snapshot save NAME` saves one)",
                    inv.lab
                );
            } else {
                let w = list.iter().map(|s| s.name.len()).max().unwrap_or(4).max(4);
                println!("{:w$}  {:19}  {:>7}  NODES", "NAME", "SAVED (UTC)", "SIZE");
                for s in &list {
                    println!(
                        "{:w$}  {:19}  {:>4} MB  {}",
                        s.name,
                        utc(s.created),
                        s.bytes / 1_000_000,
                        s.nodes.join(", ")
                    );
                }
            }
            return Ok(0);
        }
        Action::Save { name } => {
            // one command changes a lab at a time (see crate::lock)
            let _lock = crate::lock::LabLock::acquire(&inv, &super::typed_command())?;
            snapshots::save(&inv, &name, &draw)?;
        }
        Action::Restore { name } => {
            let _lock = crate::lock::LabLock::acquire(&inv, &super::typed_command())?;
            snapshots::restore(&inv, &name, &draw)?;
        }
        Action::Delete { name } => {
            let _lock = crate::lock::LabLock::acquire(&inv, &super::typed_command())?;
            snapshots::delete(&inv, &name, &draw)?;
        }
    }
    Ok(0)
}

/// `2026-12-02 05:10:00` from seconds since the epoch (UTC).
fn utc(secs: u64) -> String {
    let (y, m, d) = crate::duration::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_796_188_200), "2026-12-02 05:10:00");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00:00");
    }
}
