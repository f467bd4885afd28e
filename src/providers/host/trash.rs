//! Removing what a lab leaves on this host: its folder (through the trash,
//! deleted in the background) and the project's `.labctl/` state.

use super::{keys, paths, process};
use crate::inventory::Inventory;

/// Remove a lab folder: renamed at once into `/var/lib/labctl/trash/` (so
/// the lab's name is free immediately), then deleted by a detached `rm -rf
/// --one-file-system` (deleting a few hundred MB of node files takes tens of
/// seconds on slow disks). Leftovers of an interrupted delete are retried by
/// the next `destroy`. The trash is root's only (0700), and the immutable and
/// append-only flags a node's root may have set on its files are cleared
/// first, so `rm` can delete everything.
pub fn discard(dir: &std::path::Path) -> anyhow::Result<()> {
    let trash = paths::root().join("trash");
    paths::private_dir(&trash)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = trash.join(format!("{name}-{stamp}"));
    std::fs::rename(dir, &target).map_err(|e| {
        anyhow::anyhow!("cannot move {} to {}: {e}", dir.display(), target.display())
    })?;
    let entries: Vec<std::path::PathBuf> = std::fs::read_dir(&trash)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    // chattr -i -a on every file first (a node's root can set them; rm then
    // fails on the file and its folder), then rm; both detached
    let mut script = crate::shell::Script::new();
    for e in &entries {
        script.line(crate::sh!(
            "chattr -R -f -i -a -- {} 2>/dev/null; rm -rf --one-file-system -- {}",
            e.display().to_string(),
            e.display().to_string()
        ));
    }
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(script.as_str())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setsid and close_range are async-signal-safe (the detached rm
    // holds none of labctl's descriptors).
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            process::no_inherited_fds();
            Ok(())
        });
    }
    match cmd.spawn() {
        Ok(mut child) => {
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
        Err(_) => {
            clear_flags(&target);
            std::fs::remove_dir_all(&target)?
        }
    }
    Ok(())
}

/// Clear the immutable and append-only flags (FS_IOC_SETFLAGS) of every
/// file and folder under `dir`, never following a link.
pub fn clear_flags(dir: &std::path::Path) {
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let Ok(m) = p.symlink_metadata() else {
            continue;
        };
        if m.file_type().is_symlink() {
            continue;
        }
        if !(m.is_dir() || m.is_file()) {
            continue;
        }
        clear_flags_of(&p, m.is_dir());
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                todo.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
}

fn clear_flags_of(p: &std::path::Path, dir: bool) {
    use std::os::unix::fs::OpenOptionsExt;
    const FS_IMMUTABLE_FL: libc::c_long = 0x10;
    const FS_APPEND_FL: libc::c_long = 0x20;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(
            libc::O_NOFOLLOW
                | libc::O_NONBLOCK
                | libc::O_NOCTTY
                | if dir { libc::O_DIRECTORY } else { 0 },
        )
        .open(p);
    let Ok(f) = f else {
        return;
    };
    use std::os::fd::AsRawFd;
    let mut flags: libc::c_long = 0;
    // SAFETY: FS_IOC_GETFLAGS/SETFLAGS on a descriptor we own, with a pointer
    // to a long that outlives the calls.
    unsafe {
        if libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) == 0
            && flags & (FS_IMMUTABLE_FL | FS_APPEND_FL) != 0
        {
            flags &= !(FS_IMMUTABLE_FL | FS_APPEND_FL);
            libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags);
        }
    }
}

/// Remove the project's `.labctl/` state, keeping a key of the user's. Only
/// labctl's own files go: the folder is refused if it is a link, and a link
/// inside it is removed, never followed.
pub fn remove_project_state(inv: &Inventory) -> anyhow::Result<()> {
    keys::remove_vagrant_keys(inv);
    let sd = inv.state_dir();
    let user_key = !inv.key_is_managed();
    let pubkey = {
        let mut s = inv.ssh.key.as_os_str().to_owned();
        s.push(".pub");
        std::path::PathBuf::from(s)
    };
    let keep = |p: &std::path::Path| {
        let p = crate::project::normalize(p);
        user_key && (p == inv.ssh.key || p == pubkey)
    };
    crate::project::remove_state_dir(&sd, &keep)
}
