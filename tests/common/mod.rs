//! Test harness: a real OpenSSH server on loopback with keys it generates,
//! a project folder in a temporary directory, and the real `labctl` binary.
//! [`lab`] has the harness for tests with real nspawn labs.
#![allow(dead_code)]

pub mod dashboard;
pub mod fake;
pub mod hop;
pub mod incus;
pub mod incus_cluster;
pub mod lab;
pub mod libvirt;
pub mod webdriver;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A process the test started, killed (by its PID) and reaped on drop.
pub struct Owned(pub Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An sshd listening on 127.0.0.1 on one port per node; killed (by its PID) on drop.
pub struct Sshd {
    _child: Owned,
    pub ports: Vec<u16>,
    pub dir: tempfile::TempDir,
}

/// A TCP port free on 127.0.0.1 now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run helper command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new ed25519 key pair at `path` (and `path`.pub), without a passphrase.
pub fn keygen(path: &Path, comment: &str) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path));
}

/// `/usr/sbin/sshd -D -f CONFIG`, logging to `log` (else nowhere), once it
/// listens on 127.0.0.1 on every one of `ports`.
pub fn spawn_sshd(config: &Path, log: Option<&Path>, ports: &[u16]) -> Child {
    if lab::is_root() {
        // sshd's privilege separation folder (no host systemd makes it)
        std::fs::create_dir_all("/run/sshd").unwrap();
    }
    let mut cmd = Command::new("/usr/sbin/sshd");
    cmd.args(["-D", "-f"]).arg(config);
    match log {
        Some(l) => cmd.arg("-E").arg(l),
        None => cmd.arg("-e"),
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start /usr/sbin/sshd (package openssh-server)");
    let deadline = Instant::now() + Duration::from_secs(10);
    for p in ports {
        while std::net::TcpStream::connect(("127.0.0.1", *p)).is_err() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("sshd did not listen on {p}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    child
}

impl Sshd {
    /// Start sshd with `nodes` listening ports, trusting `client_pub`.
    pub fn start(nodes: usize, client_pub: &Path) -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"), "");
        std::fs::copy(client_pub, d.join("authorized_keys")).unwrap();
        let mut extra = "LogLevel ERROR\n".to_string();
        if !lab::is_root() {
            // a normal user's sshd logs in only that user, whom labctl runs
            // through `sudo -n`: here a sudo that just runs the command
            std::fs::create_dir_all(d.join("bin")).unwrap();
            std::fs::write(
                d.join("bin/sudo"),
                "#!/bin/sh\n[ \"$1\" = -n ] && shift\nexec \"$@\"\n",
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d.join("bin/sudo"), std::fs::Permissions::from_mode(0o755))
                .unwrap();
            extra += &format!(
                "SetEnv PATH={}:/usr/local/bin:/usr/bin:/bin\n",
                d.join("bin").display()
            );
        }
        let ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect();
        let mut cfg: String = ports.iter().map(|p| format!("Port {p}\n")).collect();
        cfg += &format!(
            "ListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\nStrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n{extra}",
            hk = d.join("host_key").display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display(),
        );
        std::fs::write(d.join("sshd_config"), cfg).unwrap();
        let child = spawn_sshd(&d.join("sshd_config"), None, &ports);
        Sshd {
            _child: Owned(child),
            ports,
            dir,
        }
    }

    /// An sshd on one port of 127.0.0.1 as a server's own would be: the
    /// system's users with their own `~/.ssh/authorized_keys`, only those of
    /// `allow_users` (sshd's `AllowUsers`), logging into `sshd.log` of its folder.
    pub fn for_system_users(allow_users: &str) -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"), "server");
        let ports = vec![free_port()];
        let cfg = format!(
            "Port {}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile .ssh/authorized_keys\nAllowUsers {allow_users}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nLogLevel VERBOSE\n",
            ports[0],
            d.join("host_key").display(),
            d.join("sshd.pid").display()
        );
        std::fs::write(d.join("sshd_config"), cfg).unwrap();
        let child = spawn_sshd(&d.join("sshd_config"), Some(&d.join("sshd.log")), &ports);
        Sshd {
            _child: Owned(child),
            ports,
            dir,
        }
    }

    /// The server's host key: `TYPE BASE64`.
    pub fn host_key(&self) -> String {
        let key = std::fs::read_to_string(self.dir.path().join("host_key.pub")).unwrap();
        key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    }

    /// known_hosts lines pinning this server's host key on every port.
    pub fn known_hosts(&self) -> String {
        let key = self.host_key();
        self.ports
            .iter()
            .map(|p| format!("[127.0.0.1]:{p} {key}\n"))
            .collect()
    }
}

/// A project folder: inventory (nodes n1..nN on the test sshd), key, known_hosts,
/// templates/, files/, and a `root/` folder where the nodes' "managed files" live.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub sshd: Sshd,
}

impl Project {
    pub fn new(nodes: usize) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join(".labctl")).unwrap();
        let key = d.join(".labctl/id_ed25519");
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key));
        let sshd = Sshd::start(nodes, &key.with_extension("pub"));
        std::fs::write(d.join(".labctl/known_hosts"), sshd.known_hosts()).unwrap();
        let mut inv = format!(
            "lab: test\nprovider: ssh\nssh: {{user: {}}}\nnodes:\n",
            user()
        );
        for (i, p) in sshd.ports.iter().enumerate() {
            let n = i + 1;
            inv += &format!(
                "  n{n}: {{address: 127.0.0.1, port: {p}, groups: [web], vars: {{root: \"{}/root/n{n}\"}}}}\n",
                d.display()
            );
        }
        inv += "vars: {domain: example.com}\n";
        std::fs::write(d.join("inventory.yaml"), inv).unwrap();
        std::fs::create_dir_all(d.join("templates")).unwrap();
        std::fs::create_dir_all(d.join("files")).unwrap();
        for i in 1..=nodes {
            std::fs::create_dir_all(d.join(format!("root/n{i}"))).unwrap();
        }
        Project { dir, sshd }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// Run labctl in the project folder.
    pub fn labctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_labctl"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }
}

/// The user the test sshd logs in: root, or the normal user running the tests.
pub fn user() -> String {
    if lab::is_root() {
        "root".into()
    } else {
        std::env::var("USER").unwrap_or_else(|_| "root".into())
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parse `--json` output.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

/// The PIDs of processes on this machine (lab nodes' included: they share its
/// kernel) whose command line is exactly `words`.
pub fn processes(words: &[&str]) -> Vec<String> {
    let want: String = words.iter().map(|w| format!("{w}\0")).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The cases of a test corpus: the entries of `dir` that `is_case`, sorted.
pub fn corpus_cases(dir: &Path, is_case: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_case(p))
        .collect();
    cases.sort();
    cases
}

/// The command lines (NULs as spaces) of the processes on this machine whose
/// command line contains every one of `parts`.
pub fn command_lines_with(parts: &[&str]) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .filter(|c| parts.iter().all(|p| c.contains(p)))
        .collect()
}

/// Start labctl in `dir` without waiting for it (stdout and stderr piped).
pub fn spawn_labctl(dir: &std::path::Path, args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}
