//! Reaching lab addresses through the hypervisor host.
//!
//! A VM lab on a hypervisor reached by `qemu+ssh://USER@HOST/system` has its
//! network (the bridge `lab-<lab>` holding the gateway) on HOST, not here: the
//! node addresses mean something only there. So every connection labctl makes
//! to a node of such a lab goes through one SSH hop to HOST (`ssh -W
//! NODE:PORT`), logged in the way libvirt's own `qemu+ssh` transport is (the
//! user's SSH setup and the URI's `keyfile`), never asking for a password
//! (`BatchMode`) and never trusting a host key it does not know
//! (`StrictHostKeyChecking=yes`). Before any of it, the lab bridge on HOST must
//! hold the gateway ([`Jump::bridge_holds`]), as for a lab on this machine.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The SSH hop to a hypervisor host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The private key for the hop (the URI's `?keyfile=`), else the user's own.
    pub keyfile: Option<PathBuf>,
    /// Where the hop's shared connection listens (OpenSSH's `ControlPath`),
    /// when the provider keeps one: every later `ssh -W` rides on it (a
    /// channel, not a new login), and it ends [`CONTROL_PERSIST_SECS`] after
    /// its last use, or at [`Jump::close`].
    pub control: Option<PathBuf>,
}

/// How long a shared hop connection outlives its last use.
pub const CONTROL_PERSIST_SECS: u32 = 15;

/// How long the hop's own TCP connect and login may take.
const HOP_CONNECT_SECS: u32 = 10;

impl Jump {
    /// The hop of a libvirt URI: `None` for this machine (`qemu:///system`),
    /// the host of `qemu+ssh://[USER@]HOST[:PORT]/system[?keyfile=PATH]`, or
    /// what is wrong with the URI.
    pub fn from_uri(uri: &str) -> Result<Option<Jump>, String> {
        if uri == "qemu:///system" {
            return Ok(None);
        }
        let Some(rest) = uri.strip_prefix("qemu+ssh://") else {
            return Err(
                "labctl drives QEMU's system instance only, here (qemu:///system) or over SSH (qemu+ssh://)"
                    .into(),
            );
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let Some(authority) = rest.strip_suffix("/system") else {
            return Err("a remote URI must end in /system (QEMU's system instance)".into());
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                Some(
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| format!("`{p}` is not a port"))?,
                ),
            ),
            _ => (hostport, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.starts_with('-') || host.contains('/') {
            return Err("a remote URI must name the host: qemu+ssh://USER@HOST/system".into());
        }
        if user
            .as_deref()
            .is_some_and(|u| u.is_empty() || u.starts_with('-'))
        {
            return Err("the user before `@` is empty or starts with `-`".into());
        }
        let mut keyfile = None;
        for kv in query.into_iter().flat_map(|q| q.split('&')) {
            match kv.split_once('=') {
                Some(("keyfile", p)) if p.starts_with('/') => keyfile = Some(PathBuf::from(p)),
                Some(("keyfile", _)) => {
                    return Err("keyfile= must be an absolute path".into());
                }
                Some(("no_verify", _)) => {
                    return Err(
                        "no_verify= would trust any host key on first use; labctl refuses that (add the host's key to your known_hosts instead)"
                            .into(),
                    );
                }
                _ => {
                    return Err(format!(
                        "the URI parameter `{kv}` is not supported (labctl passes keyfile= only)"
                    ))
                }
            }
        }
        Ok(Some(Jump {
            user,
            host: host.to_string(),
            port,
            keyfile,
            control: None,
        }))
    }

    /// `USER@HOST` (with `:PORT` when not 22), for messages.
    pub fn label(&self) -> String {
        let mut s = String::new();
        if let Some(u) = &self.user {
            s.push_str(u);
            s.push('@');
        }
        s.push_str(&self.host);
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        s
    }

    /// The arguments of `ssh` for the hop, up to and including the host,
    /// sharing the hop's connection when it has one.
    fn args(&self) -> Vec<String> {
        let mut a = self.login_args();
        if let Some(c) = &self.control {
            let host = a.pop().expect("the host is always there");
            for o in [
                "ControlMaster=auto".to_string(),
                format!("ControlPath={}", c.display()),
                format!("ControlPersist={CONTROL_PERSIST_SECS}"),
            ] {
                a.push("-o".into());
                a.push(o);
            }
            a.push(host);
        }
        a
    }

    /// End the hop's shared connection, if it has one (absent is fine).
    pub fn close(&self) {
        let Some(c) = &self.control else { return };
        if !c.exists() {
            return;
        }
        let mut a = self.login_args();
        let host = a.pop().expect("the host is always there");
        let _ = Command::new("ssh")
            .args(a)
            .arg("-o")
            .arg(format!("ControlPath={}", c.display()))
            .args(["-O", "exit"])
            .arg(host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// The arguments of `ssh` for one login to the hop, up to and including the host.
    fn login_args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push("-o".into());
        a.push(format!("ConnectTimeout={HOP_CONNECT_SECS}"));
        if let Some(p) = self.port {
            a.push("-p".into());
            a.push(p.to_string());
        }
        if let Some(k) = &self.keyfile {
            a.push("-i".into());
            a.push(k.to_string_lossy().into_owned());
            a.push("-o".into());
            a.push("IdentitiesOnly=yes".into());
        }
        if let Some(u) = &self.user {
            a.push("-l".into());
            a.push(u.clone());
        }
        a.push(self.host.clone());
        a
    }

    /// The hop as an OpenSSH `ProxyCommand` (for `labctl ssh` and `ssh-config`).
    pub fn proxy_command(&self) -> String {
        let mut words = vec!["ssh".to_string()];
        let args = self.args();
        let (host, opts) = args.split_last().expect("the host is always there");
        // ssh expands `%` tokens in a ProxyCommand: the hop's own words keep theirs
        words.extend(opts.iter().map(|a| word(a).replace('%', "%%")));
        words.push("-W".into());
        words.push("'[%h]:%p'".into());
        words.push(word(host).replace('%', "%%"));
        words.join(" ")
    }

    /// `ssh -N -R LISTEN:TO` over the hop: the host listens on `listen` and
    /// sends what comes there to `to` on this machine (the package cache);
    /// it ends when the forwarding cannot be set up.
    pub fn reverse_command(&self, listen: SocketAddr, to: SocketAddr) -> Command {
        // a login of its own: it outlives any shared connection
        let mut args = self.login_args();
        let host = args.pop().expect("the host is always there");
        let mut c = Command::new("ssh");
        c.args(args)
            .args(["-N", "-o", "ExitOnForwardFailure=yes", "-R"])
            .arg(format!(
                "{}:{}:{}:{}",
                listen.ip(),
                listen.port(),
                to.ip(),
                to.port()
            ))
            .arg(host);
        c
    }

    /// Run `cmd` (a fixed command line labctl wrote) on the hypervisor host
    /// within `limit`: its stdout, or an error with ssh's message and the fix.
    pub fn run(&self, cmd: &str, limit: Duration) -> anyhow::Result<String> {
        let child = Command::new("ssh")
            .args(self.args())
            .arg("--")
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run `ssh` (package openssh-client): {e}"))?;
        let crate::child::Finished {
            status,
            stdout,
            stderr,
        } = crate::child::wait_within(child, limit)?;
        match status {
            None => anyhow::bail!(
                "the hypervisor host {} did not answer over SSH within {} s",
                self.label(),
                limit.as_secs()
            ),
            // 255: ssh itself failed (connect, host key, login)
            Some(st) if st.code() == Some(255) => crate::user_bail!(
                "cannot log in to the hypervisor host {} over SSH: {}\n  fix: make `ssh {}` work without a password or a question (your key, its host key in your known_hosts), as libvirt's qemu+ssh needs too",
                self.label(),
                stderr.trim().lines().last().unwrap_or("ssh failed"),
                self.label()
            ),
            Some(_) => Ok(stdout),
        }
    }

    /// Whether the bridge `bridge` on the hypervisor host holds `gateway`.
    pub fn bridge_holds(&self, bridge: &str, gateway: Ipv4Addr) -> anyhow::Result<bool> {
        // the bridge name is labctl's own (`lab-` + a checked lab name)
        let out = self.run(
            &format!("ip -o -4 addr show dev {bridge} 2>/dev/null || true"),
            Duration::from_secs(30),
        )?;
        Ok(holds(&out, bridge, gateway))
    }

    /// A byte stream to `addr` as the hypervisor host sees it: `ssh -W`
    /// with its stdin and stdout on one end of a socket pair.
    pub fn connect(&self, addr: SocketAddr) -> std::io::Result<JumpStream> {
        let (ours, theirs) = UnixStream::pair()?;
        let theirs: OwnedFd = theirs.into();
        let theirs2 = theirs.try_clone()?;
        let child = Command::new("ssh")
            .args(self.args())
            .arg("-W")
            .arg(format!("[{}]:{}", addr.ip(), addr.port()))
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::from(theirs2))
            .stderr(Stdio::null())
            .spawn()?;
        Ok(JumpStream { sock: ours, child })
    }
}

/// Whether `ip -o -4 addr show` output has `gateway` on `bridge`.
fn holds(ip_out: &str, bridge: &str, gateway: Ipv4Addr) -> bool {
    ip_out.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.get(1).map(|i| i.trim_end_matches(':')) == Some(bridge)
            && w.windows(2).any(|p| {
                p[0] == "inet" && p[1].split('/').next() == Some(gateway.to_string().as_str())
            })
    })
}

/// `s` as one word of a `ProxyCommand` (run by the user's shell): quoted when it needs it.
fn word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c))
    {
        s.to_string()
    } else {
        crate::shell::quote(s)
    }
}

/// A connection to a node through the hop; the `ssh -W` behind it is ended
/// (by its PID: labctl started it) when the stream is dropped.
pub struct JumpStream {
    sock: UnixStream,
    child: Child,
}

impl JumpStream {
    pub fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.sock.set_read_timeout(t)
    }
}

impl Read for JumpStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.sock.read(buf)
    }
}

impl Write for JumpStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sock.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.sock.flush()
    }
}

impl AsRawFd for JumpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl Drop for JumpStream {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection to a node: direct (its bridge is on this machine) or through the hop.
pub enum Stream {
    Direct(TcpStream),
    Hop(JumpStream),
}

impl Stream {
    /// Connect to `addr`, through `via` when the lab's network is on another host.
    pub fn connect(
        via: Option<&Jump>,
        addr: SocketAddr,
        timeout: Duration,
    ) -> std::io::Result<Stream> {
        match via {
            None => Ok(Stream::Direct(TcpStream::connect_timeout(&addr, timeout)?)),
            Some(j) => Ok(Stream::Hop(j.connect(addr)?)),
        }
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Direct(s) => s.set_read_timeout(t),
            Stream::Hop(s) => s.set_read_timeout(t),
        }
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Direct(s) => s.set_write_timeout(t),
            Stream::Hop(s) => s.sock.set_write_timeout(t),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Direct(s) => s.read(buf),
            Stream::Hop(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Direct(s) => s.write(buf),
            Stream::Hop(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Direct(s) => s.flush(),
            Stream::Hop(s) => s.flush(),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Direct(s) => s.as_raw_fd(),
            Stream::Hop(s) => s.as_raw_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_hop_of_a_libvirt_uri() {
        assert_eq!(Jump::from_uri("qemu:///system"), Ok(None));
        let j = Jump::from_uri("qemu+ssh://root@hv1/system")
            .unwrap()
            .unwrap();
        assert_eq!(j.user.as_deref(), Some("root"));
        assert_eq!(j.host, "hv1");
        assert_eq!(j.port, None);
        assert_eq!(j.label(), "root@hv1");
        let j = Jump::from_uri("qemu+ssh://ana@10.0.0.5:2222/system?keyfile=/home/ana/.ssh/hv")
            .unwrap()
            .unwrap();
        assert_eq!(j.port, Some(2222));
        assert_eq!(j.keyfile, Some(PathBuf::from("/home/ana/.ssh/hv")));
        assert_eq!(j.label(), "ana@10.0.0.5:2222");
        let j = Jump::from_uri("qemu+ssh://hv1/system").unwrap().unwrap();
        assert_eq!(j.user, None);
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for (uri, why) in [
            ("qemu:///session", "system instance"),
            ("qemu+tls://hv/system", "system instance"),
            ("qemu+ssh://root@hv/session", "end in /system"),
            ("qemu+ssh:///system", "name the host"),
            ("qemu+ssh://root@hv:x/system", "not a port"),
            ("qemu+ssh://root@hv/system?no_verify=1", "first use"),
            ("qemu+ssh://root@hv/system?keyfile=rel/key", "absolute"),
            ("qemu+ssh://root@hv/system?socket=/x", "not supported"),
            ("qemu+ssh://-oProxyCommand=x/system", "name the host"),
        ] {
            let e = Jump::from_uri(uri).unwrap_err();
            assert!(e.contains(why), "{uri}: {e}");
        }
    }

    #[test]
    fn reads_the_gateway_on_the_bridge() {
        let out = "7: lab-vmr    inet 10.1.62.1/24 brd 10.1.62.255 scope global lab-vmr\\       valid_lft forever\n";
        let gw: Ipv4Addr = "10.1.62.1".parse().unwrap();
        assert!(holds(out, "lab-vmr", gw));
        assert!(!holds(out, "lab-vml", gw));
        assert!(!holds(out, "lab-vmr", "10.1.62.2".parse().unwrap()));
        assert!(!holds("", "lab-vmr", gw));
    }

    #[test]
    fn the_proxy_command_keeps_the_hop_strict() {
        let j = Jump::from_uri("qemu+ssh://root@127.0.0.1:2222/system?keyfile=/k/id")
            .unwrap()
            .unwrap();
        let p = j.proxy_command();
        assert!(p.starts_with("ssh "), "{p}");
        assert!(p.contains("StrictHostKeyChecking=yes") && p.contains("BatchMode=yes"));
        assert!(p.contains("-p 2222") && p.contains("-i /k/id") && p.contains("-l root"));
        assert!(p.ends_with("-W '[%h]:%p' 127.0.0.1"), "{p}");
    }
}
