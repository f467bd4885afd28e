//! The lab's fence daemon (`libvirt: {fence: true}`): fence_virtd on this
//! machine, listening on the lab's gateway address (TCP 1229) with a key of
//! the lab's own, and powering off or on only this lab's domains through
//! libvirt. The nodes' fence devices (`stonith:fence_virt` with `ipaddr:` the
//! gateway) send it signed requests; no node gets a login or a shell on the
//! host, and nothing outside the lab can ask it anything without the key.
//!
//! - The key (512 random bytes, a secret: never printed) is made once in
//!   `/var/lib/labctl/labs/<lab>/fence/`, and copied by `up` to each node as
//!   `/etc/cluster/fence_xvm.key` (mode 0600; fence_virt's default path).
//! - fence_virtd runs in a mount namespace of its own, with a private `/run`
//!   in that folder: its pid file (`/run/fence_virtd.pid`, one per machine)
//!   never touches the host's, so two labs can each have one. It reaches
//!   libvirtd through the socket bound into that folder.
//! - `up` starts it (once; a running one is kept), `destroy` stops it, by its
//!   PID, checked against its command line.

use crate::inventory::{Inventory, Node};
use crate::progress::Progress;
use crate::providers::host::paths;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// fence_virtd's TCP port (fence_virt's default).
pub const PORT: u16 = 1229;
/// Where the nodes keep the key (fence_virt's default `key_file`).
pub const NODE_KEY: &str = "/etc/cluster/fence_xvm.key";
/// How long fence_virtd may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(15);

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(lab: &str) -> Files {
        Files {
            dir: paths::lab_dir(lab).join("fence"),
        }
    }
    fn key(&self) -> PathBuf {
        self.dir.join("fence_xvm.key")
    }
    fn conf(&self) -> PathBuf {
        self.dir.join("fence_virt.conf")
    }
    fn pid(&self) -> PathBuf {
        self.dir.join("fence_virtd.labctl-pid")
    }
    fn log(&self) -> PathBuf {
        self.dir.join("fence_virtd.log")
    }
}

/// The daemon's configuration for `inv`: the TCP listener on the gateway,
/// the libvirt backend through the bound socket, one group with the lab's
/// nodes (their addresses may ask; their domains may be fenced).
pub fn conf_text(inv: &Inventory, gw: Ipv4Addr, dir: &std::path::Path) -> anyhow::Result<String> {
    let names = super::xml::Names::new(inv);
    let mut group = String::new();
    for n in &inv.nodes {
        group.push_str(&format!("\t\tip = \"{}\";\n", n.address));
    }
    for n in &inv.nodes {
        group.push_str(&format!(
            "\t\tuuid = \"{}\";\n",
            quotable(&names.domain(&n.name))?
        ));
    }
    let key = dir.join("fence_xvm.key");
    let sock = dir.join("libvirt-run/libvirt-sock");
    Ok(format!(
        "# Managed by labctl: the fence daemon of lab {lab}\n\
fence_virtd {{\n\tlistener = \"tcp\";\n\tbackend = \"libvirt\";\n}}\n\
listeners {{\n\ttcp {{\n\t\tkey_file = \"{key}\";\n\t\taddress = \"{gw}\";\n\t\tport = \"{PORT}\";\n\t}}\n}}\n\
backends {{\n\tlibvirt {{\n\t\turi = \"qemu:///system?socket={sock}\";\n\t}}\n}}\n\
groups {{\n\tgroup {{\n\t\tname = \"labctl-{lab}\";\n{group}\t}}\n}}\n",
        lab = quotable(&inv.lab)?,
        key = quotable(&key.to_string_lossy())?,
        sock = quotable(&sock.to_string_lossy())?,
    ))
}

/// A value fence_virtd's configuration can hold between double quotes: no
/// quote, backslash, `;`, `{`, `}`, `#` or control character (its parser
/// has no escapes), so a name or a path can never add a setting; refused
/// otherwise.
fn quotable(s: &str) -> anyhow::Result<&str> {
    if s.chars()
        .any(|c| c.is_control() || matches!(c, '"' | '\\' | ';' | '{' | '}' | '#'))
    {
        anyhow::bail!(
            "{s:?} cannot be written into fence_virtd's configuration (quotes, `\\`, `;`, braces, `#` and control characters are refused)"
        );
    }
    Ok(s)
}

/// The PID of this lab's running fence_virtd, if any (checked against its
/// command line: a reused PID is not it).
fn running(f: &Files) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(f.pid()).ok()?.trim().parse().ok()?;
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
    (cmd.contains("fence_virtd") && cmd.contains(&f.conf().display().to_string())).then_some(pid)
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("new");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The lab's key, made once.
fn ensure_key(f: &Files) -> anyhow::Result<Vec<u8>> {
    if let Ok(k) = std::fs::read(f.key()) {
        if k.len() >= 64 {
            return Ok(k);
        }
    }
    let mut key = vec![0u8; 512];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    write_private(&f.key(), &key)?;
    Ok(key)
}

/// Start (or keep) the lab's fence daemon, and give `nodes` (running, SSH
/// answering) the key. Nothing when the inventory does not ask for fencing.
pub fn ensure(inv: &Inventory, nodes: &[&Node], p: &dyn Progress) -> anyhow::Result<()> {
    if !inv.libvirt.as_ref().is_some_and(|l| l.fence) {
        return Ok(());
    }
    let bin = ["/usr/sbin/fence_virtd", "/sbin/fence_virtd"]
        .into_iter()
        .find(|b| std::path::Path::new(b).exists())
        .ok_or_else(|| {
            crate::error::user(
                "libvirt.fence: fence_virtd is not installed on this machine\n  fix: `apt-get install fence-virtd` (scripts/install-host-deps does)",
            )
        })?;
    let gw = inv
        .network
        .as_ref()
        .map(|n| n.gateway)
        .ok_or_else(|| anyhow::anyhow!("internal error: a libvirt lab without a network"))?;
    let f = Files::new(&inv.lab);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&f.dir)?;
    }
    let key = ensure_key(&f)?;
    let conf = conf_text(inv, gw, &f.dir)?;
    let same = std::fs::read_to_string(f.conf()).is_ok_and(|c| c == conf);
    if !same {
        write_private(&f.conf(), conf.as_bytes())?;
    }
    match running(&f) {
        Some(_) if same => {}
        found => {
            if let Some(pid) = found {
                stop_pid(pid);
            }
            start(gw, &f, bin)?;
        }
    }
    for n in nodes {
        push_key(inv, n, &key).map_err(|e| anyhow::anyhow!("{}: fence key: {e}", n.name))?;
    }
    if !nodes.is_empty() {
        p.line(&format!(
            "fence daemon: fence_virtd on {}:{PORT} for lab `{}`; the key is in {} on each node",
            gw, inv.lab, NODE_KEY
        ));
    }
    Ok(())
}

fn start(gw: Ipv4Addr, f: &Files, bin: &str) -> anyhow::Result<()> {
    let d = f.dir.display().to_string();
    let script = crate::sh!(
        "set -e\nmkdir -p {}/run {}/libvirt-run\nmount --bind /run/libvirt {}/libvirt-run\nmount --bind {}/run /run\nexec {} -F -f {}",
        d,
        d,
        d,
        d,
        bin,
        f.conf().display().to_string()
    );
    let log = std::fs::File::create(f.log())?;
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(script.as_str())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid(2) in the child before exec: no allocation, no locks.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start fence_virtd (unshare): {e}"))?;
    std::fs::write(f.pid(), child.id().to_string())?;
    let t = Instant::now();
    while !crate::providers::host::network::listening(gw, PORT) {
        if let Ok(Some(st)) = child.try_wait() {
            let _ = std::fs::remove_file(f.pid());
            let text = std::fs::read_to_string(f.log()).unwrap_or_default();
            anyhow::bail!(
                "fence_virtd ended ({st}) before it listened on {}:{PORT}; last lines of {}:\n{}",
                gw,
                f.log().display(),
                crate::text::last_lines(&text, 10)
            );
        }
        if t.elapsed() > START_TIMEOUT {
            stop_pid(child.id() as i32);
            let _ = std::fs::remove_file(f.pid());
            anyhow::bail!(
                "fence_virtd did not listen on {}:{PORT} within {} s (see {})",
                gw,
                START_TIMEOUT.as_secs(),
                f.log().display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The key onto the node, as root, mode 0600; written only when it differs.
/// It goes through ssh's standard input, never a command line.
fn push_key(inv: &Inventory, n: &Node, key: &[u8]) -> anyhow::Result<()> {
    let script = crate::sh!(
        "set -e; umask 077; mkdir -p /etc/cluster; t={}.labctl-new; cat > \"$t\"; if cmp -s \"$t\" {}; then rm -f \"$t\"; else mv -f \"$t\" {}; fi",
        NODE_KEY,
        NODE_KEY,
        NODE_KEY
    );
    let mut child = super::super::sshcmd::base_command(inv, n)
        .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR"])
        .arg(n.address.to_string())
        .arg(format!(
            "sudo sh -c {}",
            crate::shell::quote(script.as_str())
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdin"))?
        .write_all(key)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        anyhow::bail!(
            "copying it failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn stop_pid(pid: i32) {
    // SAFETY: kill(2) on the PID of the fence_virtd this lab started
    // (checked against its command line by the caller).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let t = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        if t.elapsed() > Duration::from_secs(5) {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stop the lab's fence daemon, if it runs (`destroy`).
pub fn stop(inv: &Inventory, p: &dyn Progress) {
    let f = Files::new(&inv.lab);
    if let Some(pid) = running(&f) {
        stop_pid(pid);
        p.line(&format!("fence daemon of lab `{}` stopped", inv.lab));
    }
    let _ = std::fs::remove_file(f.pid());
}

#[cfg(test)]
mod tests {

    #[test]
    fn hostile_names_and_paths_add_no_setting() {
        assert_eq!(quotable("labctl-ha.nodo1").unwrap(), "labctl-ha.nodo1");
        assert!(quotable("/var/lib/labctl/labs/ha/fence/fence_xvm.key").is_ok());
        for bad in [
            "a\"; uri = \"x",
            "a\nb",
            "a\\b",
            "a}b",
            "a{",
            "a#b",
            "a]]>\u{1}",
        ] {
            assert!(quotable(bad).is_err(), "{bad:?}");
        }
    }

    use super::*;

    #[test]
    fn listening_address_format() {
        // 10.1.94.1:1229 as /proc/net/tcp writes it
        let want = format!(
            "{:08X}:{:04X}",
            u32::from(Ipv4Addr::new(10, 1, 94, 1)).swap_bytes(),
            PORT
        );
        assert_eq!(want, "015E010A:04CD");
    }
}
