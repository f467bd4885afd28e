//! A node's processes: one `systemd-nspawn --boot` per node, started in its
//! own session, detached, with its console appended to the node's
//! `console.log`; the container's init is that process's child.
//!
//! labctl recognises a node's nspawn process by its exact
//! `--directory=/var/lib/labctl/labs/<lab>/nodes/<node>/merged` argument in
//! the host's PID namespace (so only this lab's processes are ever
//! signalled), a node's init as PID 1 of a namespace in the node's own
//! cgroup `labctl/<lab>.<node>` (never by anything a node's process can
//! copy, such as its environment), and records the PIDs it
//! started in the node's folder. A clean halt sends SIGRTMIN+4 (poweroff) to
//! the container's init; a power cut sends it SIGKILL, which kills the whole
//! PID namespace at once (killing nspawn alone would leave the container).

use super::paths::NodePaths;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A process's state letter from /proc/PID/stat (`Z` for a zombie).
fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    after.split_whitespace().next()?.chars().next()
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(c) if c != 'Z' && c != 'X')
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn directory_arg(merged: &Path) -> String {
    format!("--directory={}", merged.display())
}

/// The live systemd-nspawn process of a node, found by its `--directory=`
/// argument in the host's PID namespace (a node's process may copy the name
/// and the arguments, not the namespace).
pub fn find_nspawn(np: &NodePaths) -> Option<u32> {
    let want = directory_arg(&np.merged());
    all_pids().into_iter().find(|&pid| {
        alive(pid)
            && in_my_pid_ns(pid)
            && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim() == "systemd-nspawn")
                .unwrap_or(false)
            && cmdline(pid).contains(&want)
    })
}

/// The container's init: the child of the nspawn process in another PID namespace.
pub fn find_init(nspawn: u32) -> Option<u32> {
    let mine = std::fs::read_link("/proc/self/ns/pid").ok();
    let tasks = std::fs::read_dir(format!("/proc/{nspawn}/task")).ok()?;
    for t in tasks.flatten() {
        let Ok(children) = std::fs::read_to_string(t.path().join("children")) else {
            continue;
        };
        for c in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            let ns = std::fs::read_link(format!("/proc/{c}/ns/pid")).ok();
            if ns.is_some() && ns != mine && alive(c) {
                return Some(c);
            }
        }
    }
    None
}

/// The environment variable nspawn gives each node's init:
/// `LABCTL_MACHINE=<lab>.<node>`, for whoever looks at it. labctl does not
/// trust it: any process of any node can set it.
const TAG: &str = "LABCTL_MACHINE";

fn pid_ns(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// Whether `pid` runs in labctl's own PID namespace (the host's): a node's
/// processes never do, whatever they call themselves.
fn in_my_pid_ns(pid: u32) -> bool {
    let mine = pid_ns(std::process::id());
    mine.is_some() && pid_ns(pid) == mine
}

/// Whether a `/proc/PID/status` text is that of PID 1 of its own namespace
/// (the last `NSpid` field is 1) below labctl's.
fn status_is_ns_init(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .is_some_and(|f| {
            let ids: Vec<&str> = f.split_whitespace().collect();
            ids.len() > 1 && ids.last() == Some(&"1")
        })
}

/// Container inits of this node found by their cgroup, also those whose
/// nspawn process died (an orphaned container keeps running): PID 1 of a PID
/// namespace in cgroup `labctl/<lab>.<node>`, which only labctl (root on the
/// host) makes and fills. A process's environment is not asked: a node's
/// root could copy another node's there.
pub fn find_cgroup_inits(np: &NodePaths) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&pid| {
            alive(pid)
                && !in_my_pid_ns(pid)
                && std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .is_ok_and(|s| status_is_ns_init(&s))
                && super::cgroup::holds(pid, &np.machine)
        })
        .collect()
}

/// Every live init of the node: nspawn's child, the recorded one, tagged ones.
pub fn inits(np: &NodePaths, nspawn: Option<u32>) -> Vec<u32> {
    let mut v: Vec<u32> = nspawn.and_then(find_init).into_iter().collect();
    v.extend(recorded(&np.init_pid()).filter(|&p| super::cgroup::holds(p, &np.machine)));
    v.extend(find_cgroup_inits(np));
    v.sort_unstable();
    v.dedup();
    v
}

/// `PID STARTTIME` of a process, to recognise it later despite PID reuse.
fn start_time(pid: u32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    after.split_whitespace().nth(19).map(String::from)
}

/// Write `PID STARTTIME` of `pid` to `path` (read back by [`recorded`]).
pub fn record(path: &Path, pid: u32) {
    let _ = std::fs::write(
        path,
        format!("{pid} {}\n", start_time(pid).unwrap_or_default()),
    );
}

/// A recorded PID that is still the same process.
pub fn recorded(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut w = text.split_whitespace();
    let pid: u32 = w.next()?.parse().ok()?;
    let st = w.next()?;
    (alive(pid) && start_time(pid).as_deref() == Some(st)).then_some(pid)
}

/// Boot the node: systemd-nspawn in the background; returns its PID.
pub fn start(
    np: &NodePaths,
    bridge: &str,
    extra: &[(String, String, String)],
) -> anyhow::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mut console = crate::project::open_nofollow(
        &np.console(),
        std::fs::OpenOptions::new().create(true).append(true),
    )?;
    // the console shows the node's boot and logins: root's only
    console.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    {
        use std::io::Write;
        let _ = writeln!(
            console,
            "\n=== labctl: booting {} (unix time {}) ===",
            np.machine,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        );
    }
    let mut cmd = Command::new("systemd-nspawn");
    cmd.arg("--boot")
        .arg("--register=no")
        .arg("--keep-unit")
        .arg(format!("--network-bridge={bridge}"))
        .args(
            extra
                .iter()
                .map(|(host, node, _)| format!("--network-veth-extra={host}:{node}")),
        )
        .arg(directory_arg(&np.merged()))
        .arg(format!("--machine={}", np.machine))
        .arg(format!("--setenv={TAG}={}", np.machine))
        .arg("--resolv-conf=off")
        .arg("--link-journal=no")
        .arg("--console=read-only")
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console);
    let cgroups = super::cgroup::enter(&mut cmd, &np.machine)?;
    // SAFETY: setsid and close_range are async-signal-safe. The child gets
    // its own session, so a Ctrl-C on labctl's terminal does not reach the
    // node, and none of the descriptors labctl inherited (say, the lock of
    // `flock LOCK labctl up`): a node lives on after labctl and must not hold
    // its caller's files open.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            no_inherited_fds();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| spawn_error(&e, &cgroups))?;
    let pid = child.id();
    record(&np.nspawn_pid(), pid);
    // Reap it when it exits, so it never lingers as a zombie while labctl runs.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(pid)
}

/// Why systemd-nspawn did not start: not installed, or its cgroup refused it.
pub fn spawn_error(e: &std::io::Error, cgroups: &[std::path::PathBuf]) -> anyhow::Error {
    if !super::preflight::in_path("systemd-nspawn") {
        return anyhow::anyhow!(
            "cannot run systemd-nspawn: {e}\n  fix: apt-get install systemd-container"
        );
    }
    anyhow::anyhow!(
        "cannot start systemd-nspawn in its cgroup ({}): {e}\n  fix: check that /sys/fs/cgroup is mounted read-write (labctl runs as root)",
        cgroups
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Mark every descriptor above stderr close-on-exec (in a child between fork
/// and exec): the program run gets stdin, stdout and stderr only. Where the
/// kernel lacks `close_range` (before 5.11) nothing changes.
pub fn no_inherited_fds() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 4;
    // SAFETY: close_range only changes this process's descriptor flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        );
    }
}

/// Wait (up to `timeout`) for the container's init and record it.
pub fn record_init(np: &NodePaths, nspawn: u32, timeout: Duration) -> Option<u32> {
    let t = Instant::now();
    while t.elapsed() < timeout && alive(nspawn) {
        if let Some(i) = find_init(nspawn) {
            record(&np.init_pid(), i);
            return Some(i);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn signal(pid: u32, sig: i32) -> bool {
    // SAFETY: plain kill(2) on a PID we recognised as ours.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

/// Wait until `pid` is gone; false on timeout.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let t = Instant::now();
    while alive(pid) {
        if t.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    true
}

/// Clean poweroff: SIGRTMIN+4 to the container's init (or SIGTERM to nspawn,
/// which forwards a shutdown), then wait for nspawn and init to exit. Also
/// works for a container whose nspawn process was killed (its init recorded).
pub fn poweroff(np: &NodePaths, nspawn: Option<u32>, timeout: Duration) -> anyhow::Result<()> {
    let init = inits(np, nspawn).into_iter().next();
    match (init, nspawn) {
        (Some(i), _) => {
            signal(i, libc::SIGRTMIN() + 4);
        }
        (None, Some(n)) => {
            signal(n, libc::SIGTERM);
        }
        (None, None) => return Ok(()),
    }
    let t = Instant::now();
    let gone = nspawn.is_none_or(|n| wait_gone(n, timeout))
        && init.is_none_or(|i| wait_gone(i, timeout.saturating_sub(t.elapsed())));
    if !gone {
        anyhow::bail!(
            "node {} did not power off within {}\n  fix: cut its power with `labctl halt --force {}`",
            np.machine,
            super::super::secs(timeout),
            np.dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
        );
    }
    Ok(())
}

/// Power cut: SIGKILL the container's init (its whole PID namespace dies at
/// once), then make sure nspawn is gone too. When nspawn has not forked the
/// init yet, wait for it rather than kill nspawn alone (which would leave the
/// container running without it); orphaned inits are found by their tag.
pub fn kill(np: &NodePaths, nspawn: Option<u32>) -> anyhow::Result<()> {
    let t = Instant::now();
    let mut killed: Vec<u32> = Vec::new();
    loop {
        let found = inits(np, nspawn);
        for &i in &found {
            signal(i, libc::SIGKILL);
        }
        killed.extend(&found);
        let nspawn_alive = nspawn.is_some_and(alive);
        if !nspawn_alive || !found.is_empty() || t.elapsed() > Duration::from_secs(5) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(n) = nspawn {
        if !wait_gone(n, Duration::from_secs(10)) {
            signal(n, libc::SIGKILL);
            if !wait_gone(n, Duration::from_secs(5)) {
                anyhow::bail!("systemd-nspawn of {} (PID {n}) does not exit", np.machine);
            }
        }
    }
    // an init forked at the last moment, or left behind by a killed nspawn
    for i in find_cgroup_inits(np) {
        signal(i, libc::SIGKILL);
        killed.push(i);
    }
    for i in killed {
        if !wait_gone(i, Duration::from_secs(5)) {
            anyhow::bail!("the init of {} (PID {i}) does not exit", np.machine);
        }
    }
    Ok(())
}

/// Every live process whose command line names a folder under `lab_dir`: the
/// lab's systemd-nspawn processes (the main one and the children it forks).
pub fn lab_processes(lab_dir: &Path) -> Vec<u32> {
    let needle = format!("{}/", lab_dir.display());
    all_pids()
        .into_iter()
        .filter(|&pid| {
            alive(pid)
                && in_my_pid_ns(pid)
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "systemd-nspawn")
                && cmdline(pid).iter().any(|a| a.contains(&needle))
        })
        .collect()
}

/// Wait until no process of the lab is left (see [`lab_processes`]): after
/// `patience` the stragglers get SIGKILL; an error if any outlives `limit`.
pub fn wait_lab_gone(lab_dir: &Path, patience: Duration, limit: Duration) -> anyhow::Result<()> {
    let t = Instant::now();
    loop {
        let left = lab_processes(lab_dir);
        if left.is_empty() {
            return Ok(());
        }
        if t.elapsed() > limit {
            anyhow::bail!(
                "processes of the lab are still running after {} s: PIDs {left:?}",
                limit.as_secs()
            );
        }
        if t.elapsed() > patience {
            for pid in left {
                signal(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The last `n` lines of the node's console, without colour codes.
pub fn console_tail(np: &NodePaths, n: usize) -> String {
    let text = std::fs::read_to_string(np.console()).unwrap_or_default();
    let clean = strip_ansi(&text);
    let lines: Vec<&str> = clean.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            if it.peek() == Some(&'[') {
                it.next();
                for d in it.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colours() {
        assert_eq!(
            strip_ansi("[\x1b[0;32m  OK  \x1b[0m] Started"),
            "[  OK  ] Started"
        );
    }

    #[test]
    fn an_init_is_pid_1_of_a_namespace_below_the_hosts() {
        assert!(status_is_ns_init("Name:\tsystemd\nNSpid:\t4242\t1\n"));
        assert!(!status_is_ns_init("Name:\tsleep\nNSpid:\t4250\t37\n"));
        // the host's own init is no node's
        assert!(!status_is_ns_init("Name:\tinit\nNSpid:\t1\n"));
        assert!(!status_is_ns_init("Name:\tx\n"));
        assert!(!status_is_ns_init(
            &std::fs::read_to_string("/proc/self/status").unwrap()
        ));
        assert!(in_my_pid_ns(std::process::id()));
    }

    #[test]
    fn own_process_is_alive() {
        assert!(alive(std::process::id()));
        assert!(start_time(std::process::id()).is_some());
    }
}
