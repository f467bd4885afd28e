//! Snapshots of a lab's nodes (`labctl snapshot save|restore|list|delete
//! NAME`, like `vagrant snapshot`): the nodes' disks saved under a name and
//! put back later. Providers that own their nodes' disks implement the
//! snapshot hooks of [`super::Provider`]; the others refuse (the defaults).

use crate::inventory::Inventory;
use crate::progress::Progress;
use crate::user_bail;
use serde::Serialize;

/// One saved snapshot, as `labctl snapshot list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    pub name: String,
    /// When it was saved (seconds since the Unix epoch).
    pub created: u64,
    /// The nodes it holds.
    pub nodes: Vec<String>,
    /// The scenario the lab had last configured when it was saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// Bytes on disk.
    pub bytes: u64,
}

/// Refuse a snapshot name that is not a plain file name (it names a folder).
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok {
        user_bail!(
            "`{name}` is not a usable snapshot name\n  fix: use letters, digits, `.`, `_` and `-` (starting with a letter or digit, at most 64), e.g. `configured`"
        );
    }
    Ok(())
}

/// The refusal of a provider that has no snapshots.
pub fn unsupported(provider: &str) -> anyhow::Error {
    crate::error::user(format!(
        "provider `{provider}` has no `labctl snapshot` in this version of labctl (provider nspawn has)\n  fix: use the machines' own snapshots (e.g. `virsh snapshot-create-as` for VMs)"
    ))
}

/// `labctl snapshot save NAME`.
pub fn save(inv: &Inventory, name: &str, p: &dyn Progress) -> anyhow::Result<SnapshotInfo> {
    check_name(name)?;
    super::for_inventory(inv).snapshot_save(inv, name, p)
}

/// `labctl snapshot restore NAME`.
pub fn restore(inv: &Inventory, name: &str, p: &dyn Progress) -> anyhow::Result<SnapshotInfo> {
    check_name(name)?;
    super::for_inventory(inv).snapshot_restore(inv, name, p)
}

/// `labctl snapshot list`.
pub fn list(inv: &Inventory) -> anyhow::Result<Vec<SnapshotInfo>> {
    super::for_inventory(inv).snapshot_list(inv)
}

/// `labctl snapshot delete NAME`.
pub fn delete(inv: &Inventory, name: &str, p: &dyn Progress) -> anyhow::Result<()> {
    check_name(name)?;
    super::for_inventory(inv).snapshot_delete(inv, name, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_file_names() {
        for ok in ["configured", "a", "step-1.b_2", "0"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "../x",
            "-x",
            "a b",
            &"x".repeat(65),
        ] {
            let e = check_name(bad).unwrap_err();
            assert_eq!(crate::error::exit_code(&e), 2, "{bad}");
        }
    }
}
