//! Where an nspawn lab keeps its things on the host, all named after the lab:
//!
//! ```text
//! /var/lib/labctl/images/<recipe-hash>/        cached base image (never modified)
//! /var/lib/labctl/layers/<image>-<hash>/       a package layer on it (`preinstall:`)
//! /var/lib/labctl/apt-cache/                   the host's package cache (see `cache`)
//! /var/lib/labctl/locks/<lab>.lock             one labctl at a time per lab
//! /var/lib/labctl/labs/<lab>/owner             the inventory that owns the lab
//! /var/lib/labctl/labs/<lab>/nodes/<node>/     upper/ work/ merged/ (the node's overlay)
//!                                              console.log, nspawn.pid, init.pid, lower
//! /var/lib/labctl/labs/<lab>/snapshots/<name>/ nodes/<node>/upper (a copy), scenario, info
//! ```
//!
//! `labs/`, each lab's folder and `trash/` hold the nodes' files: mode 0700,
//! no other user traverses them.
//!
//! `LABCTL_ROOT` moves `/var/lib/labctl` elsewhere.

use crate::inventory::Inventory;
use crate::progress::Progress;
use std::path::{Path, PathBuf};

/// `/var/lib/labctl` (or `$LABCTL_ROOT`).
pub fn root() -> PathBuf {
    std::env::var_os("LABCTL_ROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/labctl"))
}

/// Make `dir` (and `labs/` or `trash/` above it) a folder only root
/// traverses (0700): it holds files a node made. A link is refused.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut todo = vec![dir.to_path_buf()];
    if let Some(parent) = dir.parent() {
        if parent == root().join("labs") || parent == root().join("trash") {
            todo.insert(0, parent.to_path_buf());
        }
    }
    for d in todo {
        std::fs::create_dir_all(&d)?;
        let m = d.symlink_metadata()?;
        if m.file_type().is_symlink() || !m.is_dir() {
            anyhow::bail!("refusing {}: it is not a folder of labctl's", d.display());
        }
        if m.permissions().mode() & 0o7777 != 0o700 {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// The lab's folder.
pub fn lab_dir(lab: &str) -> PathBuf {
    root().join("labs").join(lab)
}

/// The folder of every node the lab has created.
pub fn nodes_dir(lab: &str) -> PathBuf {
    lab_dir(lab).join("nodes")
}

/// The lab's snapshots (removed with the lab by `destroy`).
pub fn snapshots_dir(lab: &str) -> PathBuf {
    lab_dir(lab).join("snapshots")
}

/// One node's folder and the files in it.
#[derive(Debug, Clone)]
pub struct NodePaths {
    pub dir: PathBuf,
    pub machine: String,
}

impl NodePaths {
    pub fn new(lab: &str, node: &str) -> NodePaths {
        NodePaths {
            dir: nodes_dir(lab).join(node),
            machine: Inventory::machine_name(lab, node),
        }
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
    pub fn console(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    pub fn nspawn_pid(&self) -> PathBuf {
        self.dir.join("nspawn.pid")
    }
    pub fn init_pid(&self) -> PathBuf {
        self.dir.join("init.pid")
    }
    /// The node's lower layers (`layer:image` or the image), chosen at creation.
    pub fn lower(&self) -> PathBuf {
        self.dir.join("lower")
    }
    /// Written once the node's files are configured.
    pub fn created(&self) -> PathBuf {
        self.dir.join("created")
    }
    /// The node's own public host key (in the overlay's upper layer).
    pub fn host_key_pub(&self) -> PathBuf {
        self.upper().join("etc/ssh/ssh_host_ed25519_key.pub")
    }
}

/// An exclusive `flock` held until dropped.
pub struct Lock(#[allow(dead_code)] std::fs::File);

/// Take an exclusive lock on `path`, saying so when it has to wait.
pub fn lock_file(path: &Path, what: &str, p: &dyn Progress) -> anyhow::Result<Lock> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot open lock {}: {e}", path.display()))?;
    if f.try_lock().is_err() {
        p.line(&format!(
            "waiting for another labctl working on {what} ({})",
            path.display()
        ));
        f.lock()
            .map_err(|e| anyhow::anyhow!("cannot lock {}: {e}", path.display()))?;
    }
    Ok(Lock(f))
}

/// Hold the lab's lock (one labctl changing a lab at a time).
pub fn lock_lab(inv: &Inventory, p: &dyn Progress) -> anyhow::Result<Lock> {
    lock_file(
        &root().join("locks").join(format!("{}.lock", inv.lab)),
        &format!("lab `{}`", inv.lab),
        p,
    )
}
