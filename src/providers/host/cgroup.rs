//! A cgroup of its own for every systemd-nspawn process labctl starts.
//!
//! With `--keep-unit` and no host systemd, nspawn makes its `supervisor` and
//! `payload` cgroups below the cgroup it was started in. Started from the same
//! cgroup, every node of a lab got the same `payload`, so the nodes' systemds
//! shared one `system.slice`: when one node's `labctl-eth1.service` finished
//! and its cgroup was removed, another node starting the same unit failed with
//! "Failed to attach to cgroup … No such file or directory" (status
//! 219/CGROUP), and that node came up without its lab address. So each nspawn
//! process is moved, between fork and exec, into `labctl/<name>` of each
//! hierarchy nspawn uses: the cgroup2 one and the v1 `name=systemd` one.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The mount points of the hierarchies nspawn places its payload in, read
/// from a `/proc/self/mountinfo` text: cgroup2, and cgroup v1 with `name=systemd`.
pub fn hierarchies(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split_whitespace().nth(4)?;
            let mut r = right.split_whitespace();
            let fstype = r.next()?;
            let _source = r.next();
            let options = r.next().unwrap_or("");
            let wanted = fstype == "cgroup2"
                || (fstype == "cgroup" && options.split(',').any(|o| o == "name=systemd"));
            wanted.then(|| PathBuf::from(super::rootfs::unescape_mount(mount_point)))
        })
        .collect()
}

/// The folders of process `name`'s cgroup, one per hierarchy.
fn dirs(name: &str) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    hierarchies(&info)
        .into_iter()
        .map(|m| m.join("labctl").join(name))
        .collect()
}

/// Remove a cgroup folder and the ones below it, deepest first. A cgroup that
/// still holds a process stays (the kernel refuses): best effort, as the
/// folders are empty groups and hold no data.
fn remove_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Remove process `name`'s cgroups (after its processes are gone).
pub fn remove(name: &str) {
    for d in dirs(name) {
        remove_tree(&d);
    }
}

/// Make `cmd` start in cgroup `labctl/<name>` of every hierarchy (what a
/// previous run of `name` left there is removed first). Returns the folders.
pub fn enter(cmd: &mut Command, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    let dirs = dirs(name);
    let mut procs = Vec::new();
    for d in &dirs {
        remove_tree(d);
        std::fs::create_dir_all(d)
            .map_err(|e| anyhow::anyhow!("cannot create cgroup {}: {e}", d.display()))?;
        procs.push(
            CString::new(d.join("cgroup.procs").as_os_str().as_encoded_bytes())
                .map_err(|_| anyhow::anyhow!("cgroup path {} holds a NUL", d.display()))?,
        );
    }
    // SAFETY: open, write and close are async-signal-safe; the paths were
    // made before the fork. Writing "0" moves the writing process (the child).
    unsafe {
        cmd.pre_exec(move || {
            for p in &procs {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if n != 1 {
                    return Err(err);
                }
            }
            Ok(())
        });
    }
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_unified_and_the_named_systemd_hierarchies() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
            35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
            40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            hierarchies(info),
            [
                PathBuf::from("/sys/fs/cgroup/systemd"),
                PathBuf::from("/sys/fs/cgroup/unified")
            ]
        );
    }

    #[test]
    fn a_unified_only_host_has_one_hierarchy() {
        let info = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(hierarchies(info), [PathBuf::from("/sys/fs/cgroup")]);
    }
}
