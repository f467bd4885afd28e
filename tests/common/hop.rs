//! An SSH hop for lab tests whose lab network is on "another host": a real
//! sshd letting root in with the test's key, logging (LogLevel DEBUG1) the
//! forwardings it is asked for, on 127.0.0.1 or on an address of a network
//! namespace of the test's own; killed by its PID on drop. And [`Pinned`]:
//! its host key in root's `~/.ssh/known_hosts` for the test's duration (what
//! a user of such a hop has), the file put back as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Hop {
    // `ip netns exec` execs sshd: the child is sshd itself
    _child: super::Owned,
    pub addr: String,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Hop {
    /// An sshd on `addr:port`, in network namespace `netns` when given
    /// (`ip netns exec`), with `extra` lines of configuration.
    pub fn start(addr: &str, port: u16, netns: Option<&str>, extra: &str) -> Hop {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for k in ["host_key", "client_key"] {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(k))
                .status()
                .unwrap();
            assert!(st.success());
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let cfg = format!(
            "Port {port}\nListenAddress {addr}\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\nStrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nAllowTcpForwarding yes\nMaxStartups 100:30:200\nLogLevel DEBUG1\n{extra}",
            hk = d.join("host_key").display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display(),
        );
        std::fs::write(d.join("sshd_config"), cfg).unwrap();
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "/usr/sbin/sshd"]);
                c
            }
            None => Command::new("/usr/sbin/sshd"),
        };
        let child = cmd
            .args(["-D", "-f"])
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/sbin/sshd (package openssh-server)");
        let t = Instant::now();
        while std::net::TcpStream::connect((addr, port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(10), "sshd did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Hop {
            _child: super::Owned(child),
            addr: addr.to_string(),
            port,
            dir,
        }
    }

    /// The private key that logs in as root.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// Let in the holder of `key` (a private key with its `.pub` beside it) too.
    pub fn authorize(&self, key: &Path) {
        let mut pubkey = key.as_os_str().to_owned();
        pubkey.push(".pub");
        let line = std::fs::read_to_string(&pubkey).unwrap();
        let ak = self.dir.path().join("authorized_keys");
        let mut now = std::fs::read_to_string(&ak).unwrap();
        now.push_str(&line);
        std::fs::write(ak, now).unwrap();
    }

    /// The line a user's known_hosts holds for this host.
    pub fn known_hosts_line(&self) -> String {
        let key = std::fs::read_to_string(self.dir.path().join("host_key.pub")).unwrap();
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let name = if self.port == 22 {
            self.addr.clone()
        } else {
            format!("[{}]:{}", self.addr, self.port)
        };
        format!("{name} {}\n", key.join(" "))
    }

    /// How many forwardings (`ssh -W`) to `addr` the sshd was asked for.
    pub fn forwardings_to(&self, addr: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join("sshd.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("direct-tcpip") || l.contains("direct_tcpip"))
            .filter(|l| l.contains(&format!("{addr} port")) || l.contains(&format!("{addr}:")))
            .count()
    }
}

/// root's `~/.ssh/known_hosts` with more lines for the test's duration,
/// put back byte for byte (or removed, with `~/.ssh`, when it did not exist).
pub struct Pinned {
    file: PathBuf,
    before: Option<Vec<u8>>,
    made_dir: bool,
}

impl Pinned {
    pub fn add(lines: &str) -> Pinned {
        // OpenSSH reads the home of the user database, not $HOME
        // SAFETY: getpwuid returns a pointer into static storage or null
        let home = unsafe {
            let pw = libc::getpwuid(libc::getuid());
            assert!(!pw.is_null());
            std::ffi::CStr::from_ptr((*pw).pw_dir)
                .to_string_lossy()
                .into_owned()
        };
        let dir = Path::new(&home).join(".ssh");
        let made_dir = !dir.exists();
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("known_hosts");
        let before = std::fs::read(&file).ok();
        let mut now = before.clone().unwrap_or_default();
        if !now.is_empty() && !now.ends_with(b"\n") {
            now.push(b'\n');
        }
        now.extend_from_slice(lines.as_bytes());
        std::fs::write(&file, now).unwrap();
        Pinned {
            file,
            before,
            made_dir,
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        match &self.before {
            Some(b) => {
                let _ = std::fs::write(&self.file, b);
            }
            None => {
                let _ = std::fs::remove_file(&self.file);
                if self.made_dir {
                    if let Some(d) = self.file.parent() {
                        let _ = std::fs::remove_dir(d);
                    }
                }
            }
        }
    }
}
