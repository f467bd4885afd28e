//! `labctl snapshot` on Incus: one Incus snapshot of each node's container,
//! all under the name given; the scenario configured last is kept beside, in
//! the lab's state (`/var/lib/labctl/labs/<lab>/snapshots/<name>.scenario`),
//! and put back by `restore`, as for nspawn.

use super::client::{Incus, SHORT};
use super::objects;
use crate::inventory::Inventory;
use crate::progress::Progress;
use crate::providers::host::paths;
use crate::providers::snapshots::SnapshotInfo;
use std::path::PathBuf;

fn scenario_file(lab: &str, name: &str) -> PathBuf {
    paths::snapshots_dir(lab).join(format!("{name}.scenario"))
}

/// Seconds since the epoch of an Incus time stamp (`2026-12-07T03:24:10.123Z`).
pub fn epoch_of(stamp: &str) -> u64 {
    let digits: Vec<u64> = stamp
        .split(|c: char| !c.is_ascii_digit())
        .take(6)
        .filter_map(|s| s.parse().ok())
        .collect();
    let [y, mo, d, h, mi, s] = digits[..] else {
        return 0;
    };
    // days from the civil date (Howard Hinnant's algorithm)
    let (y, mo) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days * 86400 + h * 3600 + mi * 60 + s
}

/// Every snapshot of the lab's nodes: (snapshot name, node, created).
fn all(incus: &Incus, inv: &Inventory) -> anyhow::Result<Vec<(String, String, u64)>> {
    let mut out = Vec::new();
    for (node, _, _) in objects::instances(incus)? {
        if inv.node(&node).is_none() {
            continue;
        }
        let path = format!(
            "/1.0/instances/{node}/snapshots?recursion=1&project={}",
            incus.project
        );
        let v = incus.query(&path)?.unwrap_or_default();
        for s in v.as_array().into_iter().flatten() {
            let name = super::client::str_of(s, "name").to_string();
            out.push((
                name,
                node.clone(),
                epoch_of(super::client::str_of(s, "created_at")),
            ));
        }
    }
    Ok(out)
}

fn info_of(inv: &Inventory, name: &str, snaps: &[(String, String, u64)]) -> Option<SnapshotInfo> {
    let mine: Vec<&(String, String, u64)> = snaps.iter().filter(|s| s.0 == name).collect();
    if mine.is_empty() {
        return None;
    }
    Some(SnapshotInfo {
        name: name.to_string(),
        created: mine.iter().map(|s| s.2).min().unwrap_or(0),
        nodes: mine.iter().map(|s| s.1.clone()).collect(),
        scenario: std::fs::read_to_string(scenario_file(&inv.lab, name))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        bytes: 0,
    })
}

/// Snapshot every created node as `name`.
pub fn save(
    incus: &Incus,
    inv: &Inventory,
    name: &str,
    p: &dyn Progress,
) -> anyhow::Result<SnapshotInfo> {
    if all(incus, inv)?.iter().any(|s| s.0 == name) {
        crate::user_bail!(
            "lab `{}` already has a snapshot `{name}`\n  fix: pick another name, or `labctl snapshot delete {name}` first",
            inv.lab
        );
    }
    let nodes: Vec<String> = objects::instances(incus)?
        .into_iter()
        .map(|i| i.0)
        .filter(|n| inv.node(n).is_some())
        .collect();
    if nodes.is_empty() {
        crate::user_bail!(
            "lab `{}` has no node to save\n  fix: `labctl up` first",
            inv.lab
        );
    }
    for n in &nodes {
        incus.run(&["snapshot", "create", n, name], SHORT)?;
        p.line(&format!("{n}: saved as `{name}`"));
    }
    std::fs::create_dir_all(paths::snapshots_dir(&inv.lab))?;
    let scenario = crate::project::last_scenario(&inv.state_dir(), &inv.dir)
        .ok()
        .flatten()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::write(scenario_file(&inv.lab, name), scenario)?;
    info_of(inv, name, &all(incus, inv)?)
        .ok_or_else(|| anyhow::anyhow!("snapshot `{name}` was made but Incus does not list it"))
}

/// Put every node of snapshot `name` back (power cut first); the caller boots them.
pub fn restore(
    incus: &Incus,
    inv: &Inventory,
    name: &str,
    p: &dyn Progress,
) -> anyhow::Result<SnapshotInfo> {
    let Some(info) = info_of(inv, name, &all(incus, inv)?) else {
        crate::user_bail!(
            "lab `{}` has no snapshot `{name}`\n  fix: `labctl snapshot list` shows the lab's snapshots",
            inv.lab
        );
    };
    for n in &info.nodes {
        super::stop_node(incus, n, true)?;
        incus.run(&["snapshot", "restore", n, name], SHORT)?;
        p.line(&format!("{n}: files put back as saved in `{name}`"));
    }
    crate::project::remember_scenario(
        &inv.state_dir(),
        &inv.dir,
        info.scenario.as_deref().map(std::path::Path::new),
    )?;
    Ok(info)
}

/// The lab's snapshots, oldest first.
pub fn list(incus: &Incus, inv: &Inventory) -> anyhow::Result<Vec<SnapshotInfo>> {
    let snaps = all(incus, inv)?;
    let mut names: Vec<&String> = snaps.iter().map(|s| &s.0).collect();
    names.sort();
    names.dedup();
    let mut v: Vec<SnapshotInfo> = names
        .into_iter()
        .filter_map(|n| info_of(inv, n, &snaps))
        .collect();
    v.sort_by_key(|i| i.created);
    Ok(v)
}

/// Remove snapshot `name` from every node that has it.
pub fn delete(incus: &Incus, inv: &Inventory, name: &str, p: &dyn Progress) -> anyhow::Result<()> {
    let Some(info) = info_of(inv, name, &all(incus, inv)?) else {
        crate::user_bail!(
            "lab `{}` has no snapshot `{name}`\n  fix: `labctl snapshot list` shows the lab's snapshots",
            inv.lab
        );
    };
    for n in &info.nodes {
        incus.run(&["snapshot", "delete", n, name], SHORT)?;
    }
    let _ = std::fs::remove_file(scenario_file(&inv.lab, name));
    p.line(&format!(
        "snapshot `{name}` deleted ({} node(s))",
        info.nodes.len()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn incus_time_stamps_become_epoch_seconds() {
        assert_eq!(super::epoch_of("1970-01-01T00:00:00Z"), 0);
        assert_eq!(super::epoch_of("2026-12-07T03:24:10.123456Z"), 1796613850);
        assert_eq!(super::epoch_of("garbage"), 0);
    }
}
