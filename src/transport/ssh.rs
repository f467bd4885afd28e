//! SSH with the `ssh2` crate: key authentication only, host keys checked against
//! the lab's own known-hosts file, a connect timeout, one session per host.

use super::{Output, Remote};
use crate::jump::Stream;
use crate::sh;
use crate::shell::Script;
use crate::user_bail;
use ssh2::{CheckResult, KnownHostFileKind};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

/// How to reach and trust one node.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub addr: SocketAddr,
    pub user: String,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    /// Skip the host key check (`--insecure-no-host-key-check`).
    pub insecure: bool,
    pub connect_timeout: Duration,
    /// The SSH hop when the node's network is on another host ([`crate::jump`]).
    pub via: Option<crate::jump::Jump>,
}

impl Target {
    /// How to reach `node` of `inv` (`insecure`: skip the host key check).
    pub fn for_node(
        inv: &crate::inventory::Inventory,
        node: &crate::inventory::Node,
        insecure: bool,
    ) -> Target {
        Target {
            name: node.name.clone(),
            addr: SocketAddr::new(node.address.into(), node.port),
            user: inv.ssh.user.clone(),
            key: inv.ssh.key.clone(),
            known_hosts: inv.ssh.known_hosts.clone(),
            insecure,
            connect_timeout: Duration::from_secs(inv.ssh.connect_timeout_secs),
            via: inv.jump().cloned(),
        }
    }
}

/// Why a connection failed: unreachable (network, auth) or refused on purpose (host key).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    HostKey(String),
}

/// Refuse the lab's private key when it is missing or readable by group or
/// others (like OpenSSH does), with the fix.
pub fn check_key(inv: &crate::inventory::Inventory) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let key = &inv.ssh.key;
    let meta = match std::fs::metadata(key) {
        Ok(m) => m,
        Err(_)
            if inv.provider.creates_nodes && inv.key_is_managed() =>
        {
            user_bail!(
                "the lab key {} does not exist yet\n  fix: run `labctl up` first (it creates the key)",
                key.display()
            )
        }
        Err(e) => user_bail!(
            "cannot read the lab's private key {}: {e}\n  fix: point `ssh.key` in {} at an existing private key",
            key.display(),
            inv.path.display()
        ),
    };
    if meta.permissions().mode() & 0o077 != 0 {
        user_bail!(
            "the private key {} is readable by others (mode {:04o}); ssh refuses such keys\n  fix: chmod 600 {}",
            key.display(),
            meta.permissions().mode() & 0o777,
            key.display()
        );
    }
    Ok(())
}

/// An open, authenticated SSH session to one node.
pub struct Session {
    sess: ssh2::Session,
    become_root: bool,
    pub target: Target,
    /// The root shell (`sudo -n sh -s`) that runs every script of this
    /// session, opened by the first [`Remote::run`]: one channel and one sudo
    /// per host and run, not per round trip.
    shell: Option<ssh2::Channel>,
}

impl Session {
    pub fn connect(t: &Target) -> Result<Session, ConnectError> {
        let unreachable =
            |m: String| ConnectError::Unreachable(format!("{} ({}): {m}", t.name, t.addr));
        let tcp = Stream::connect(t.via.as_ref(), t.addr, t.connect_timeout).map_err(|e| {
            unreachable(match &t.via {
                Some(j) => format!("cannot connect through {}: {e}", j.label()),
                None => format!("cannot connect: {e}"),
            })
        })?;
        if let Stream::Direct(tcp) = &tcp {
            let _ = tcp.set_nodelay(true);
            tcp_keepalive(tcp);
        }
        let mut sess = ssh2::Session::new().map_err(|e| unreachable(e.to_string()))?;
        sess.set_tcp_stream(tcp);
        sess.set_timeout(t.connect_timeout.as_millis() as u32);
        sess.handshake()
            .map_err(|e| unreachable(format!("SSH handshake failed: {e}")))?;
        if !t.insecure {
            check_host_key(&sess, t)?;
        }
        sess.userauth_pubkey_file(&t.user, None, &t.key, None)
            .map_err(|e| {
                unreachable(format!(
                    "key authentication as `{}` with {} failed: {e}",
                    t.user,
                    t.key.display()
                ))
            })?;
        if !sess.authenticated() {
            return Err(unreachable(format!(
                "key authentication as `{}` failed",
                t.user
            )));
        }
        // long operations (apt) may take minutes; TCP keepalives (above) detect a
        // node that died in the middle within about 15 s
        sess.set_timeout(15 * 60 * 1000);
        Ok(Session {
            sess,
            become_root: t.user != "root",
            target: t.clone(),
            shell: None,
        })
    }

    /// Run `script` in the session's root shell (opened if needed). The shell
    /// first stores the script in a temporary file (a here-document with a
    /// random end line, so nothing in the script can end it early) and checks
    /// that it parses (`sh -n`): a script that cannot parse runs not at all and
    /// fails at once. Then it runs under `timeout` (`limit`, then SIGKILL to the
    /// script's whole process group), stdin /dev/null, stderr to a temporary
    /// file; then the shell prints an end mark with the exit status, the
    /// stderr's length and how the script ended, and the stderr. When the shell
    /// itself ends (sudo refused), its output and exit status are the result and
    /// the next run opens a new one.
    fn run_in_shell(&mut self, script: &Script, limit: Duration) -> anyhow::Result<Output> {
        if self.shell.is_none() {
            let mut ch = self.sess.channel_session()?;
            ch.exec(if self.become_root {
                "sudo -n sh -s"
            } else {
                "sh -s"
            })?;
            ch.write_all(die_with_the_connection().as_bytes())?;
            self.shell = Some(ch);
        }
        // the session waits a little longer than the script may run
        self.sess
            .set_timeout((limit + Duration::from_secs(30)).as_millis() as u32);
        let ch = self.shell.as_mut().expect("opened above");
        let end = format!("@@LABCTL-END-{:016x} ", rand::random::<u64>());
        let wrapped = wrap(script, &end, limit);
        ch.write_all(wrapped.as_str().as_bytes())?;
        ch.flush()?;
        let mut buf: Vec<u8> = Vec::new();
        let mut dropped = 0usize;
        let mut chunk = [0u8; 32 * 1024];
        let needle = format!("\n{end}");
        let mut scanned = 0;
        // stdout up to the end mark
        let (at, line_end) = loop {
            if let Some(i) = find(&buf[scanned..], needle.as_bytes()).map(|i| i + scanned) {
                if let Some(j) = buf[i + needle.len()..].iter().position(|&b| b == b'\n') {
                    break (i, i + needle.len() + j);
                }
            } else {
                // no end mark yet: keep only the output's tail in memory
                if buf.len() > 2 * OUTPUT_CAP {
                    let cut = buf.len() - OUTPUT_CAP;
                    buf.drain(..cut);
                    dropped += cut;
                }
                scanned = buf.len().saturating_sub(needle.len());
            }
            let n = ch.read(&mut chunk)?;
            if n == 0 {
                // the shell ended: its output and exit status are the answer
                let stderr = read_tail(&mut ch.stderr())?;
                ch.wait_close()?;
                let rc = ch.exit_status()?;
                self.shell = None;
                return Ok(Output {
                    stdout: with_dropped(dropped, &buf),
                    stderr,
                    rc,
                });
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let mark = String::from_utf8_lossy(&buf[at + needle.len()..line_end]).into_owned();
        let mut parts = mark.split_whitespace();
        let rc: i32 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(-1);
        let err_len: usize = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let ended = parts.next().unwrap_or("ran").to_string();
        // then exactly err_len bytes of stderr (never more read; only the tail kept)
        let mut err: Vec<u8> = buf.get(line_end + 1..).unwrap_or_default().to_vec();
        err.truncate(err_len);
        let mut remaining = err_len - err.len();
        let mut err_dropped = 0usize;
        while remaining > 0 {
            let want = remaining.min(chunk.len());
            let n = ch.read(&mut chunk[..want])?;
            anyhow::ensure!(
                n > 0,
                "the remote shell ended while sending a script's errors"
            );
            err.extend_from_slice(&chunk[..n]);
            remaining -= n;
            if err.len() > 2 * OUTPUT_CAP {
                let cut = err.len() - OUTPUT_CAP;
                err.drain(..cut);
                err_dropped += cut;
            }
        }
        let stderr = with_dropped(err_dropped, &err);
        let stderr = match ended.as_str() {
            "syntax" => format!(
                "the script does not parse, so none of it ran: {}",
                stderr.trim()
            ),
            "timeout" => format!(
                "stopped: it ran longer than its time limit of {} s (a task may set `timeout:`)\n{stderr}",
                limit.as_secs()
            ),
            _ => stderr,
        };
        Ok(Output {
            stdout: with_dropped(dropped, &buf[..at]),
            stderr,
            rc,
        })
    }
}

/// The most of a script's stdout, and of its stderr, labctl keeps: the tail
/// (where the error is); what came before is dropped as it arrives, so a node
/// printing without end (`yes`) or announcing a huge stderr cannot grow
/// labctl's memory.
pub const OUTPUT_CAP: usize = 4 * 1024 * 1024;

/// `tail` as text, after a note of how many bytes before it were dropped.
fn with_dropped(dropped: usize, tail: &[u8]) -> String {
    let text = String::from_utf8_lossy(tail);
    if dropped == 0 {
        text.into_owned()
    } else {
        format!("[labctl: the first {dropped} bytes of this output were dropped; the last {} follow]\n{text}", tail.len())
    }
}

/// All of `r` read, keeping the last [`OUTPUT_CAP`] bytes or so.
fn read_tail(r: &mut impl Read) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut dropped = 0;
    let mut chunk = [0u8; 32 * 1024];
    loop {
        let n = r.read(&mut chunk)?;
        if n == 0 {
            return Ok(with_dropped(dropped, &buf));
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 2 * OUTPUT_CAP {
            let cut = buf.len() - OUTPUT_CAP;
            buf.drain(..cut);
            dropped += cut;
        }
    }
}

/// The text sent to the root shell for one script: store it in a file (a
/// here-document ended by a random line; the shell makes its two temporary
/// files once and removes them when it ends), check that it parses, run it under
/// `timeout`, then print the end mark `END<rc> <stderr bytes> <ran|syntax|timeout>`
/// and the stderr. Stdout goes straight to the channel.
fn wrap(script: &Script, end: &str, limit: Duration) -> Script {
    let mut s = Script::lit(
        "[ -n \"$labctl_s\" ] || { labctl_s=$(mktemp) && labctl_err=$(mktemp) && trap 'rm -f \"$labctl_s\" \"$labctl_err\"' EXIT; }",
    );
    s.line(sh!(
        "cat >\"$labctl_s\" {}",
        Script::heredoc(script.as_str())
    ));
    s.line(sh!(
        "if sh -n \"$labctl_s\" 2>\"$labctl_err\"; then \
         timeout --verbose -k 5 {} sh \"$labctl_s\" </dev/null 2>\"$labctl_err\"; labctl_rc=$?; labctl_end=ran; \
         if [ \"$labctl_rc\" -ge 124 ] && grep -q '^timeout: sending signal' \"$labctl_err\"; then labctl_end=timeout; fi; \
         else labctl_rc=2; labctl_end=syntax; fi",
        limit.as_secs().max(1)
    ));
    s.line(sh!(
        "printf '\\n%s%s %s %s\\n' {} \"$labctl_rc\" \"$(wc -c <\"$labctl_err\")\" \"$labctl_end\"; cat \"$labctl_err\"",
        end
    ));
    // the root shell runs a line once its newline arrives
    s.push("\n");
    s
}

/// The first lines the root shell runs: a watchdog that stops everything this
/// shell started (its scripts, apt-get, dpkg…) once the SSH connection is gone,
/// be it labctl stopped by a second Ctrl-C, killed, or its host gone. sshd starts
/// each session's commands in a session (`setsid`) of their own; when the sshd
/// process serving this one exits, the watchdog sends SIGTERM to every process
/// of that session (`timeout` puts each script in a process group of its own,
/// so the session, not the group, is what holds them all), then SIGKILL two
/// seconds later (a cut-off dpkg run is finished by the next `configure`, see
/// [`crate::ops::package`]). Found no sshd above the shell: no watchdog. It
/// holds none of the channel's streams, so a shell that ends still closes the
/// channel at once; it costs nothing per script.
fn die_with_the_connection() -> &'static str {
    r#"labctl_p=$PPID
while [ "${labctl_p:-0}" -gt 1 ] && [ "$(cat /proc/$labctl_p/comm 2>/dev/null)" != sshd ]; do
  labctl_p=$(sed -n 's/^[0-9]* (.*) [A-Za-z] \([0-9]*\) .*/\1/p' /proc/$labctl_p/stat 2>/dev/null)
done
labctl_sid=$(sed -n 's/^[0-9]* (.*) [A-Za-z] [0-9]* [0-9]* \([0-9]*\) .*/\1/p' /proc/$$/stat 2>/dev/null)
if [ "${labctl_p:-0}" -gt 1 ] && [ "${labctl_sid:-0}" -gt 1 ]; then
  ( trap '' TERM; tail --pid="$labctl_p" -f /dev/null; exec sh -c 'S=$0
    k() { for f in /proc/[0-9]*/stat; do
      read -r l <"$f" 2>/dev/null || continue; set -- ${l##*") "}
      p=${f#/proc/}; p=${p%/stat}
      [ "$4" = "$S" ] && [ "$p" != "$$" ] && kill -"$K" "$p" 2>/dev/null
    done; }
    K=TERM; k; sleep 2; K=KILL; k' "$labctl_sid" ) </dev/null >/dev/null 2>&1 &
fi
"#
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Remote for Session {
    fn run(&mut self, script: &Script, limit: Duration) -> anyhow::Result<Output> {
        let out = self.run_in_shell(script, limit).map_err(|e| {
            self.shell = None;
            anyhow::Error::new(super::ConnectionLost(format!("{e:#}")))
        })?;
        if self.become_root && out.rc == 1 && out.stderr.contains("sudo: a password is required") {
            anyhow::bail!(
                "user `{}` on {} cannot run sudo without a password; labctl needs passwordless sudo (or `ssh: {{user: root}}`)",
                self.target.user,
                self.target.name
            );
        }
        Ok(out)
    }
}

fn check_host_key(sess: &ssh2::Session, t: &Target) -> Result<(), ConnectError> {
    let fix_up = format!(
        "  fix: if the node was recreated or re-keyed on purpose, re-pin its key: `labctl up` (provider nspawn: it reads every node's key from the node's own files); for provider ssh: ssh-keygen -R {host} -f {kh} && ssh-keyscan -t ed25519 -p {port} {ip} >> {kh} (compare the fingerprint with the node's console first). Otherwise someone else answers at {ip}: do not connect",
        host = known_hosts_name(t.addr),
        kh = t.known_hosts.display(),
        port = t.addr.port(),
        ip = t.addr.ip(),
    );
    let (key, _) = sess.host_key().ok_or_else(|| {
        ConnectError::Unreachable(format!("{}: the server sent no host key", t.name))
    })?;
    let mut kh = sess
        .known_hosts()
        .map_err(|e| ConnectError::Unreachable(e.to_string()))?;
    if t.known_hosts.exists() {
        kh.read_file(&t.known_hosts, KnownHostFileKind::OpenSSH)
            .map_err(|e| {
                ConnectError::HostKey(format!(
                    "cannot read known-hosts file {}: {e}",
                    t.known_hosts.display()
                ))
            })?;
    }
    match kh.check_port(&t.addr.ip().to_string(), t.addr.port(), key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(ConnectError::HostKey(format!(
            "host key of {} ({}) does not match the key pinned in {}: refusing to connect (a recreated node, or someone in the middle)\n{fix_up}",
            t.name,
            t.addr,
            t.known_hosts.display()
        ))),
        CheckResult::NotFound => Err(ConnectError::HostKey(format!(
            "no host key pinned for {} ({}) in {}: refusing to connect\n{fix_up}",
            t.name,
            t.addr,
            t.known_hosts.display()
        ))),
        CheckResult::Failure => Err(ConnectError::HostKey(format!(
            "cannot check the host key of {} against {}",
            t.name,
            t.known_hosts.display()
        ))),
    }
}

/// Kernel keepalives on the connection: a node that loses power mid-run is
/// noticed in about 15 s (5 s idle, then 4 probes 2 s apart), even while a long
/// remote command prints nothing. (libssh2's own keepalives need the caller to
/// send them and break blocking reads.)
fn tcp_keepalive(tcp: &TcpStream) {
    use std::os::fd::AsRawFd;
    let fd = tcp.as_raw_fd();
    let set = |level: libc::c_int, opt: libc::c_int, val: libc::c_int| {
        // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int
        unsafe {
            libc::setsockopt(
                fd,
                level,
                opt,
                &val as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 5);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 2);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 4);
    set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 15_000);
}

/// The name of `addr` in a known-hosts file: `10.1.1.101`, or `[10.1.1.101]:2222`.
pub fn known_hosts_name(addr: SocketAddr) -> String {
    if addr.port() == 22 {
        addr.ip().to_string()
    } else {
        format!("[{}]:{}", addr.ip(), addr.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `wrap(script)` to a local `sh`, as the node's root shell gets it;
    /// returns (stdout, the end mark's fields).
    fn run_wrapped(script: &str, limit: Duration) -> (String, Vec<String>) {
        let end = "@@LABCTL-END-test ";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(wrap(&Script::user_shell(script), end, limit).as_str())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (before, after) = text.split_once(&format!("\n{end}")).expect("end mark");
        let fields = after
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect();
        (before.to_string(), fields)
    }

    #[test]
    fn a_script_that_cannot_parse_runs_not_at_all_and_returns_at_once() {
        let t = std::time::Instant::now();
        let (out, f) = run_wrapped("echo first\necho \"unbalanced\n", Duration::from_secs(60));
        assert_eq!(f[0], "2");
        assert_eq!(f[2], "syntax");
        assert!(!out.contains("first"), "nothing of it ran: {out}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_script_past_its_limit_is_stopped_with_its_children() {
        let (_, f) = run_wrapped("sleep 30 & sleep 30\n", Duration::from_secs(1));
        assert_eq!(f[2], "timeout", "{f:?}");
        assert!(f[0].parse::<i32>().unwrap() >= 124);
    }

    #[test]
    fn no_line_of_the_script_ends_its_here_document() {
        let script = "echo a\nLABCTL_EOF\nLABCTL_0000000000000000\necho '$(x) `y`'\nexit 3";
        let (out, f) = run_wrapped(script, Duration::from_secs(30));
        // the look-alike end lines are plain (failing) commands of the script
        assert_eq!(f[0], "3", "{out}");
        assert_eq!(out.lines().collect::<Vec<_>>(), ["a", "$(x) `y`"]);
        let (out, f) = run_wrapped("echo '$(x) `y`'; exit 3", Duration::from_secs(30));
        assert_eq!(
            (out.trim(), f[0].as_str(), f[2].as_str()),
            ("$(x) `y`", "3", "ran")
        );
    }

    #[test]
    fn the_watchdog_walks_up_from_each_process_to_its_parent() {
        // one step of the walk, from a shell whose parent is this test process
        let step = die_with_the_connection()
            .lines()
            .find(|l| l.contains("sed -n"))
            .expect("the walk reads each parent from /proc/PID/stat")
            .trim();
        let script = format!("labctl_p=$$\n{step}\necho \"$labctl_p\"\n");
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            std::process::id().to_string()
        );
    }

    #[test]
    fn the_watchdog_knows_the_session_it_stops() {
        let line = die_with_the_connection()
            .lines()
            .find(|l| l.starts_with("labctl_sid="))
            .expect("the watchdog reads its session from /proc/$$/stat");
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("{line}\necho \"$labctl_sid\"\n")])
            .output()
            .unwrap();
        // SAFETY: getsid(0) only reads the calling process's session id.
        let sid = unsafe { libc::getsid(0) };
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), sid.to_string());
    }
}
