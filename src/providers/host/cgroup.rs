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

/// Whether the cgroup path of a `/proc/PID/cgroup` line is `/labctl/<name>`
/// or below it.
fn under(path: &str, name: &str) -> bool {
    let own = format!("/labctl/{name}");
    path == own || path.strip_prefix(&own).is_some_and(|r| r.starts_with('/'))
}

/// Whether a `/proc/PID/cgroup` text places the process in cgroup
/// `labctl/<name>` (or below) of every hierarchy labctl starts nodes in (the
/// cgroup2 one, `0::`, and the v1 `name=systemd` one), and of at least one.
/// Only the host's root makes and fills these cgroups: a node's processes are
/// confined below their own node's, whatever their environment says.
pub fn in_own(proc_cgroup: &str, name: &str) -> bool {
    let mut seen = false;
    for line in proc_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_id), Some(ctrl), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ctrl.is_empty() || ctrl.split(',').any(|c| c == "name=systemd") {
            if !under(path, name) {
                return false;
            }
            seen = true;
        }
    }
    seen
}

/// Whether process `pid` lives in cgroup `labctl/<name>` (see [`in_own`]).
pub fn holds(pid: u32, name: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|t| in_own(&t, name))
}

/// Every process in cgroup `dir` and below it.
fn procs_below(dir: &Path) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                v.extend(procs_below(&e.path()));
            }
        }
    }
    v
}

/// How a node is held still: the cgroup2 freezer, or SIGSTOP to each process.
enum Hold {
    Freezer(PathBuf),
    Stopped(Vec<u32>),
}

/// A node's processes held still while its files are copied; thawed when
/// dropped (also on an error or a panic unwinding past it).
pub struct Frozen {
    hold: Hold,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        match &self.hold {
            Hold::Freezer(dir) => {
                let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
            }
            Hold::Stopped(pids) => {
                for &p in pids {
                    // SAFETY: kill(2) on processes of the node's own cgroup.
                    unsafe { libc::kill(p as libc::pid_t, libc::SIGCONT) };
                }
            }
        }
    }
}

/// Whether a `cgroup.events` text says the cgroup is frozen.
fn events_frozen(events: &str) -> bool {
    events.lines().any(|l| l.trim() == "frozen 1")
}

/// Hold every process of `name`'s cgroup still: cgroup2's `cgroup.freeze`
/// (waiting up to `timeout` until the kernel reports it frozen), or, where
/// the host has no cgroup2 freezer, SIGSTOP to every process found in the
/// cgroup (SIGCONT when the guard drops).
pub fn freeze(name: &str, timeout: std::time::Duration) -> anyhow::Result<Frozen> {
    let dirs = dirs(name);
    if let Some(dir) = dirs
        .iter()
        .find(|d| d.join("cgroup.freeze").exists())
        .cloned()
    {
        std::fs::write(dir.join("cgroup.freeze"), "1")
            .map_err(|e| anyhow::anyhow!("cannot freeze cgroup {}: {e}", dir.display()))?;
        let guard = Frozen {
            hold: Hold::Freezer(dir.clone()),
        };
        let t = std::time::Instant::now();
        while !std::fs::read_to_string(dir.join("cgroup.events")).is_ok_and(|e| events_frozen(&e)) {
            if t.elapsed() > timeout {
                anyhow::bail!(
                    "cgroup {} did not freeze within {} s",
                    dir.display(),
                    timeout.as_secs()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        return Ok(guard);
    }
    let mut guard = Frozen {
        hold: Hold::Stopped(Vec::new()),
    };
    // twice: a process forked while the first round was being stopped is caught
    for _ in 0..2 {
        for d in &dirs {
            for p in procs_below(d) {
                let Hold::Stopped(done) = &mut guard.hold else {
                    unreachable!()
                };
                if !done.contains(&p) && holds(p, name) {
                    // SAFETY: kill(2) on a process of the node's own cgroup.
                    unsafe { libc::kill(p as libc::pid_t, libc::SIGSTOP) };
                    done.push(p);
                }
            }
        }
    }
    Ok(guard)
}

/// Thaw `name`'s cgroup2 cgroup, left frozen by a labctl stopped at once
/// (a second Ctrl-C, SIGKILL) in the middle of `snapshot save`.
pub fn thaw(name: &str) {
    for d in dirs(name) {
        if d.join("cgroup.freeze").exists() {
            let _ = std::fs::write(d.join("cgroup.freeze"), "0");
        }
    }
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

    #[test]
    fn a_process_is_a_nodes_only_in_its_cgroup() {
        let init = "12:name=systemd:/labctl/lab.nodo2/payload/init.scope\n\
            7:freezer:/\n\
            0::/labctl/lab.nodo2/payload/init.scope\n";
        assert!(in_own(init, "lab.nodo2"));
        assert!(!in_own(init, "lab.nodo1"));
        // the same name as a prefix of another node's is not that node
        assert!(!in_own(init, "lab.nodo"));
        // a process of nodo1 that claims nodo2 (in its environment) is still in nodo1's cgroup
        let other = "12:name=systemd:/labctl/lab.nodo1/payload/system.slice\n\
            0::/labctl/lab.nodo1/payload/system.slice\n";
        assert!(!in_own(other, "lab.nodo2"));
        // a host process, and one that is under it in one hierarchy only
        assert!(!in_own("0::/\n", "lab.nodo2"));
        assert!(!in_own(
            "12:name=systemd:/labctl/lab.nodo2\n0::/user.slice\n",
            "lab.nodo2"
        ));
        assert!(!in_own("", "lab.nodo2"));
        assert!(in_own("0::/labctl/lab.nodo2\n", "lab.nodo2"));
    }

    #[test]
    fn reads_the_frozen_state() {
        assert!(events_frozen("populated 1\nfrozen 1\n"));
        assert!(!events_frozen("populated 1\nfrozen 0\n"));
    }
}
