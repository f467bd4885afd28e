//! One command changes a lab at a time.
//!
//! Commands that change a lab (`up`, `halt`, `destroy`, `configure`) take
//! an exclusive, non-blocking `flock` on `<state dir>/lock` and hold it until the
//! [`LabLock`] guard drops (or the process dies: the kernel releases the lock, so a
//! crashed labctl never leaves a stale lock behind). A second such command refuses
//! at once, naming the holder's PID and command line. Read-only commands
//! (`status`, `verify`, `ssh`, `configure --check`) take no lock, and neither does a
//! power cut (`fail`, `halt --force`): it is meant to happen at any moment, also in
//! the middle of a `configure`.
//!
//! The lock file is opened close-on-exec, so processes labctl starts (containers
//! that outlive it) never inherit the lock.

use crate::inventory::Inventory;
use anyhow::Context;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Holds the lab's lock; released on drop.
#[derive(Debug)]
pub struct LabLock {
    file: File,
    path: PathBuf,
}

impl LabLock {
    /// Lock the lab of `inv` for `command` (e.g. `configure scenario.yaml`), or refuse
    /// at once (exit code 1) when another labctl command holds it.
    pub fn acquire(inv: &Inventory, command: &str) -> anyhow::Result<LabLock> {
        LabLock::acquire_at(&inv.state_dir(), &inv.lab, command)
    }

    /// [`LabLock::acquire`] for a state folder (`lab` is only for the message).
    pub fn acquire_at(state_dir: &Path, lab: &str, command: &str) -> anyhow::Result<LabLock> {
        crate::project::ensure_state_dir(state_dir).with_context(|| {
            format!("cannot create the lab state folder {}", state_dir.display())
        })?;
        let path = state_dir.join("lock");
        // never through a link: the lock file is truncated on release
        let mut file = crate::project::open_nofollow(
            &path,
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
        )
        .with_context(|| format!("cannot open the lab lock {}", path.display()))?;
        // A holder that is gone (killed) can leave the lock held for a moment by a
        // process it was starting (between fork and exec, before close-on-exec
        // lets go), and a lock changing hands holds an empty file for a moment:
        // wait a little for those, never for a live holder.
        let patience = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(err)) => {
                    return Err(err).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
            let mut holder = String::new();
            file.rewind()?;
            let _ = file.read_to_string(&mut holder);
            // An empty file is a lock changing hands: its holder has just taken
            // it and not yet written its name, or is releasing it (it forgets
            // its name first). Both last a moment, like a holder that is gone.
            let gone = crate::text::kv_lines(&holder)
                .get("pid")
                .and_then(|p| p.parse::<i32>().ok())
                .is_some_and(|pid| !process_alive(pid));
            let changing_hands = holder.trim().is_empty();
            if !(gone || changing_hands) || std::time::Instant::now() >= patience {
                anyhow::bail!("{}", busy_message(lab, &path, &holder));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let me = format!(
            "pid={}\ncommand=labctl {}\n",
            std::process::id(),
            command.trim()
        );
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(me.as_bytes())?;
        file.flush()?;
        Ok(LabLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LabLock {
    fn drop(&mut self) {
        // forget who held it while still holding it; closing the file releases the lock
        let _ = self.file.set_len(0);
    }
}

/// Whether process `pid` exists (signal 0 checks without sending anything).
fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The refusal: who holds the lab, and what to do.
fn busy_message(lab: &str, path: &Path, holder: &str) -> String {
    let kv = crate::text::kv_lines(holder);
    let who = match (kv.get("pid"), kv.get("command")) {
        (Some(pid), Some(cmd)) => format!("`{cmd}` (pid {pid}) is changing it"),
        (Some(pid), None) => format!("another labctl command (pid {pid}) is changing it"),
        _ => "another labctl command is changing it".to_string(),
    };
    let wait = match kv.get("pid") {
        Some(pid) => format!("wait for it to finish (or stop it: kill -INT {pid})"),
        None => "wait for it to finish".to_string(),
    };
    format!(
        "lab `{lab}` is busy: {who} (lock {})\n  fix: {wait}, then run this command again; read-only commands (status, verify, ssh, configure --check) work meanwhile",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `held` is let go 300 ms from now: a second acquire waits for it and gets the lock.
    fn released_soon_is_waited_for(held: LabLock, state: &Path) {
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        let got = LabLock::acquire_at(state, "ha", "destroy");
        releaser.join().unwrap();
        assert!(got.is_ok(), "{:?}", got.err());
    }

    #[test]
    fn a_lock_left_for_a_moment_by_a_dead_holder_is_waited_for() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join(".labctl");
        let held = LabLock::acquire_at(&state, "ha", "up").unwrap();
        // the file names a process that has exited, as after `kill -9` of `up`
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        std::fs::write(
            state.join("lock"),
            format!("pid={dead_pid}\ncommand=labctl up\n"),
        )
        .unwrap();
        released_soon_is_waited_for(held, &state);
    }

    #[test]
    fn a_lock_being_released_is_waited_for() {
        // the holder has forgotten its name (empty file) but not yet let go:
        // the moment the flaky run of the test above met
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join(".labctl");
        let held = LabLock::acquire_at(&state, "ha", "up").unwrap();
        held.file.set_len(0).unwrap();
        released_soon_is_waited_for(held, &state);
    }

    #[test]
    fn a_lock_file_that_is_a_link_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join(".labctl");
        std::fs::create_dir_all(&state).unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, state.join("lock")).unwrap();
        assert!(LabLock::acquire_at(&state, "ha", "up").is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn second_lock_refuses_and_names_the_holder_then_drop_releases() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join(".labctl");
        let held = LabLock::acquire_at(&state, "ha", "up nodo1").unwrap();
        let e = LabLock::acquire_at(&state, "ha", "configure s.yaml").unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains(&format!("`labctl up nodo1` (pid {})", std::process::id())),
            "{m}"
        );
        assert!(m.contains("fix: wait"), "{m}");
        assert_eq!(crate::error::exit_code(&e), 1);
        drop(held);
        assert_eq!(std::fs::read_to_string(state.join("lock")).unwrap(), "");
        let again = LabLock::acquire_at(&state, "ha", "configure s.yaml").unwrap();
        assert!(std::fs::read_to_string(again.path())
            .unwrap()
            .contains("command=labctl configure s.yaml"));
    }
}
