//! Snapshots of nspawn nodes. A node's own files are its overlay's upper
//! layer (the image below never changes), so a snapshot is a copy of each
//! node's upper layer (`cp -a --reflink=auto`: shared blocks where the file
//! system can, a plain copy elsewhere) under the lab's folder:
//!
//! ```text
//! /var/lib/labctl/labs/<lab>/snapshots/<name>/info                when, which nodes
//! /var/lib/labctl/labs/<lab>/snapshots/<name>/scenario            the last scenario configured
//! /var/lib/labctl/labs/<lab>/snapshots/<name>/nodes/<node>/upper  the node's files
//! /var/lib/labctl/labs/<lab>/snapshots/<name>/nodes/<node>/lower  the layers below them
//! ```
//!
//! `save` copies each node's files while the node is frozen (its cgroup2
//! `cgroup.freeze`, or SIGSTOP to its processes where the host has no cgroup2
//! freezer; thawed after, also on an error or a panic), so no file changes
//! under the copy, and under the lab's lock, so no other labctl changes them
//! meanwhile; `restore` cuts the nodes' power (their
//! present state is being thrown away), puts the saved upper layers back and
//! boots them. The host keys are in the upper layer, so the pinned keys stay
//! valid. A snapshot is built in a temporary folder renamed into place when
//! complete; `destroy` removes the lab's folder and its snapshots with it.

use super::node_state;
use crate::inventory::{Inventory, Node};
use crate::progress::Progress;
use crate::providers::host::paths::{self, NodePaths};
use crate::providers::host::{process, rootfs, tool};
use crate::providers::snapshots::SnapshotInfo;
use crate::providers::{secs, NodeState};
use crate::user_bail;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn snapshot_dir(inv: &Inventory, name: &str) -> PathBuf {
    paths::snapshots_dir(&inv.lab).join(name)
}

fn saved_upper(dir: &Path, node: &str) -> PathBuf {
    dir.join("nodes").join(node).join("upper")
}

/// How long a node may take to freeze before `save` gives up.
const FREEZE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// `cp -a --reflink=auto FROM TO` (TO must not exist).
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d)?;
    }
    tool::checked(
        Command::new("cp")
            .args(["-a", "--reflink=auto", "--"])
            .arg(from)
            .arg(to),
        "cp",
        |o| {
            let (from, to) = (from.display(), to.display());
            format!("copying {from} to {to} failed: {}", tool::stderr(o))
        },
    )?;
    Ok(())
}

/// Bytes a folder takes on disk (its files' blocks).
fn disk_bytes(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = p.symlink_metadata() else {
        return 0;
    };
    let mut n = m.blocks() * 512;
    if m.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            n += rd.flatten().map(|e| disk_bytes(&e.path())).sum::<u64>();
        }
    }
    n
}

fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Read a snapshot folder back (`None` when it is not a complete snapshot).
fn read_info(dir: &Path) -> Option<SnapshotInfo> {
    let text = std::fs::read_to_string(dir.join("info")).ok()?;
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(": ")))
            .map(str::to_string)
    };
    let scenario = std::fs::read_to_string(dir.join("scenario"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    Some(SnapshotInfo {
        name: dir.file_name()?.to_string_lossy().into_owned(),
        created: field("created")?.parse().ok()?,
        nodes: field("nodes")?
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        scenario,
        bytes: disk_bytes(dir),
    })
}

/// `node: error` for each node whose part failed.
fn failures(results: Vec<(&Node, anyhow::Result<()>)>) -> Vec<String> {
    results
        .into_iter()
        .filter_map(|(n, r)| r.err().map(|e| format!("{}: {e:#}", n.name)))
        .collect()
}

/// The user error for a snapshot that does not exist, with the ones that do.
fn no_such(inv: &Inventory, name: &str) -> anyhow::Error {
    let have: Vec<String> = list(inv)
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.name)
        .collect();
    let fix = if have.is_empty() {
        "save one first: `labctl snapshot save NAME`".to_string()
    } else {
        format!("use one of: {}", have.join(", "))
    };
    crate::error::user(format!(
        "lab `{}` has no snapshot named `{name}`{}\n  fix: {fix}",
        inv.lab,
        crate::suggest::hint(name, have.iter())
    ))
}

/// `labctl snapshot save NAME`: copy every node's files, while they run.
pub fn save(inv: &Inventory, name: &str, p: &dyn Progress) -> anyhow::Result<SnapshotInfo> {
    let start = Instant::now();
    super::checks(inv, "snapshot save")?;
    let _lock = paths::lock_lab(inv, p)?;
    for n in &inv.nodes {
        // left frozen by a labctl stopped at once in a previous save
        super::cgroup::thaw(&NodePaths::new(&inv.lab, &n.name).machine);
    }
    let dir = snapshot_dir(inv, name);
    if dir.exists() {
        user_bail!(
            "lab `{}` already has a snapshot named `{name}`\n  fix: save under another name, or `labctl snapshot delete {name}` first",
            inv.lab
        );
    }
    let absent: Vec<&str> = inv
        .nodes
        .iter()
        .filter(|n| node_state(inv, &n.name).0 == NodeState::Absent)
        .map(|n| n.name.as_str())
        .collect();
    if !absent.is_empty() {
        user_bail!(
            "node(s) {} of lab `{}` do not exist: nothing to save\n  fix: `labctl up` first",
            absent.join(", "),
            inv.lab
        );
    }
    let tmp = paths::snapshots_dir(&inv.lab).join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        crate::providers::host::trash::discard(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    let nodes: Vec<&Node> = inv.nodes.iter().collect();
    let labels: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    p.start(&labels);
    let results = super::parallel(&nodes, &|n: &Node| {
        let np = NodePaths::new(&inv.lab, &n.name);
        p.set(&n.name, "freezing it");
        // thawed when dropped, also on an error or a panic
        let _still = super::cgroup::freeze(&np.machine, FREEZE_TIMEOUT)?;
        p.set(&n.name, "saving its files (frozen)");
        copy_tree(&np.upper(), &saved_upper(&tmp, &n.name))?;
        if let Ok(lower) = std::fs::read(np.lower()) {
            std::fs::write(tmp.join("nodes").join(&n.name).join("lower"), lower)?;
        }
        p.finish(&n.name, "saved");
        Ok(())
    });
    let errors = failures(results);
    if !errors.is_empty() {
        let _ = crate::providers::host::trash::discard(&tmp);
        anyhow::bail!("snapshot `{name}` not saved:\n{}", errors.join("\n"));
    }
    if let Ok(Some(s)) = crate::project::last_scenario(&inv.state_dir(), &inv.dir) {
        std::fs::write(tmp.join("scenario"), s.to_string_lossy().as_bytes())?;
    }
    std::fs::write(
        tmp.join("info"),
        format!("created: {}\nnodes: {}\n", now(), labels.join(" ")),
    )?;
    std::fs::rename(&tmp, &dir)?;
    let info = read_info(&dir)
        .ok_or_else(|| anyhow::anyhow!("internal error: snapshot {} unreadable", dir.display()))?;
    p.line(&format!(
        "snapshot `{name}` of lab `{}` saved: {} node(s), {}, in {}",
        inv.lab,
        info.nodes.len(),
        mb(info.bytes),
        secs(start.elapsed())
    ));
    Ok(info)
}

/// `labctl snapshot restore NAME`: power the nodes off, put their saved files
/// back, boot them and wait until they answer SSH.
pub fn restore(inv: &Inventory, name: &str, p: &dyn Progress) -> anyhow::Result<SnapshotInfo> {
    let start = Instant::now();
    super::checks(inv, "snapshot restore")?;
    let dir = snapshot_dir(inv, name);
    let Some(info) = read_info(&dir) else {
        return Err(no_such(inv, name));
    };
    let nodes: Vec<&Node> = info.nodes.iter().filter_map(|n| inv.node(n)).collect();
    for n in info.nodes.iter().filter(|n| inv.node(n).is_none()) {
        p.line(&format!(
            "warning: snapshot `{name}` holds node {n}, which the inventory no longer has: not restored"
        ));
    }
    {
        let _lock = paths::lock_lab(inv, p)?;
        let labels: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        p.start(&labels);
        let results = super::parallel(&nodes, &|n: &Node| {
            let np = NodePaths::new(&inv.lab, &n.name);
            let pid = process::find_nspawn(&np);
            if pid.is_some() || !process::inits(&np, None).is_empty() {
                p.set(&n.name, "power cut (its present state is thrown away)");
                process::kill(&np, pid)?;
            }
            rootfs::unmount_node(&np)?;
            p.set(&n.name, "putting its saved files back");
            for d in [np.upper(), np.work()] {
                if d.exists() {
                    crate::providers::host::trash::discard(&d)?;
                }
            }
            copy_tree(&saved_upper(&dir, &n.name), &np.upper())?;
            // the layers the saved files were made on
            match std::fs::read(dir.join("nodes").join(&n.name).join("lower")) {
                Ok(lower) => std::fs::write(np.lower(), lower)?,
                Err(_) => {
                    let _ = std::fs::remove_file(np.lower());
                }
            }
            std::fs::write(np.created(), "")?;
            p.finish(&n.name, "files restored");
            Ok(())
        });
        let errors = failures(results);
        if !errors.is_empty() {
            anyhow::bail!(
                "snapshot `{name}` not restored:\n{}\n  fix: run `labctl snapshot restore {name}` again",
                errors.join("\n")
            );
        }
        crate::project::remember_scenario(
            &inv.state_dir(),
            &inv.dir,
            info.scenario.as_deref().map(std::path::Path::new),
        )?;
    }
    let files = start.elapsed();
    super::up_nodes(inv, &nodes, p)?;
    p.line(&format!(
        "snapshot `{name}` of lab `{}` restored: {} node(s) in {} (files {}, the rest booting)",
        inv.lab,
        nodes.len(),
        secs(start.elapsed()),
        secs(files)
    ));
    Ok(info)
}

/// `labctl snapshot list`: the lab's snapshots, oldest first.
pub fn list(inv: &Inventory) -> anyhow::Result<Vec<SnapshotInfo>> {
    let Ok(rd) = std::fs::read_dir(paths::snapshots_dir(&inv.lab)) else {
        return Ok(Vec::new());
    };
    let mut v: Vec<SnapshotInfo> = rd
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| read_info(&e.path()))
        .collect();
    v.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    Ok(v)
}

/// `labctl snapshot delete NAME`.
pub fn delete(inv: &Inventory, name: &str, p: &dyn Progress) -> anyhow::Result<()> {
    super::checks(inv, "snapshot delete")?;
    let _lock = paths::lock_lab(inv, p)?;
    let dir = snapshot_dir(inv, name);
    if read_info(&dir).is_none() {
        return Err(no_such(inv, name));
    }
    crate::providers::host::trash::discard(&dir)?;
    p.line(&format!("snapshot `{name}` of lab `{}` deleted", inv.lab));
    Ok(())
}
