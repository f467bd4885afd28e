//! Incus for lab tests: a real `incusd` of the test's own, in a folder of the
//! test's own (`INCUS_DIR`), started with no host systemd and stopped on drop
//! (also on panic), with whatever it changes on the host put back.
//!
//! - Start: `/usr/libexec/incus/incusd --group incus-admin` with
//!   `INCUS_DIR=<tempdir>/incus`, `incus admin waitready`, then `incus admin
//!   init --preseed` (a btrfs storage pool `default` in a loop file in the
//!   folder, as a server has a copy-on-write pool: a container is a snapshot
//!   of the image, not a copy; the default profile's
//!   root disk on it, no network: labctl makes the lab's own).
//! - `INCUS_DIR` is set in this test process's environment while the daemon
//!   runs, so the `labctl` and `incus` commands the test runs talk to it.
//! - Stop: `incus admin shutdown` (it stops the instances), then SIGKILL to
//!   the daemon and to every process left whose command line names the
//!   test's folder (its `[lxc monitor]`s, a dnsmasq): only what it started;
//!   its mounts under the folder are unmounted and the folder removed.
//! - Put back: the bridges of the networks it managed, its nft tables
//!   (named `incus…`) and `net.ipv4.ip_forward`, as they were before.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const INCUSD: &str = "/usr/libexec/incus/incusd";

const PRESEED: &str = "config:
  images.auto_update_interval: \"0\"
storage_pools:
- name: default
  driver: btrfs
  config:
    size: 12GiB
profiles:
- name: default
  devices:
    root:
      path: /
      pool: default
      type: disk
";

/// The inventory of a 3-node Incus lab `lab` on `PREFIX.0/24` (the default
/// scenario's nodes and variables), with `extra` lines (an `incus:` section).
pub fn inventory(lab: &str, prefix: &str, extra: &str) -> String {
    format!(
        "lab: {lab}
provider: incus
network: {{subnet: {prefix}.0/24, gateway: {prefix}.1}}
ssh: {{user: vagrant}}
nodes:
  nodo1: {{address: {prefix}.101, groups: [nodos]}}
  nodo2: {{address: {prefix}.102, groups: [nodos]}}
  dns: {{address: {prefix}.103, groups: [servidor_dns]}}
vars:
  domain: example.com
  vip: {prefix}.100
{extra}"
    )
}

/// Run `incus ARGS` on the test's daemon: (success, stdout + stderr).
pub fn incus(args: &[&str]) -> (bool, String) {
    incus_at(None, args)
}

/// Run `incus ARGS` on the daemon of `INCUS_DIR` `dir` (`None`: as the
/// environment says): (success, stdout + stderr).
pub fn incus_at(dir: Option<&Path>, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("incus");
    if let Some(d) = dir {
        cmd.env("INCUS_DIR", d);
    }
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run incus (scripts/install-host-deps installs it)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `incus ARGS --format json` (`incus query PATH` as it is), which must succeed.
pub fn incus_json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    if a.first() != Some(&"query") {
        a.extend(["--format", "json"]);
    }
    let (ok, out) = incus(&a);
    assert!(ok, "incus {}: {out}", a.join(" "));
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("incus {}: not JSON ({e}): {out}", a.join(" ")))
}

pub fn ip_forward() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default()
}

pub fn nft_tables() -> Vec<String> {
    Command::new("nft")
        .args(["list", "tables"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub fn links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// PIDs of the processes whose command line names `needle`.
fn processes_naming(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| *pid != me)
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|b| {
                            String::from_utf8_lossy(&b)
                                .replace('\0', " ")
                                .contains(needle)
                        })
                        .unwrap_or(false)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `incus admin init --preseed` with `yaml`, on the daemon of `INCUS_DIR`
/// `dir` (`None`: as the environment says), which must succeed.
pub fn preseed(dir: Option<&Path>, yaml: &str) {
    let mut cmd = Command::new("incus");
    if let Some(d) = dir {
        cmd.env("INCUS_DIR", d);
    }
    let mut init = cmd
        .args(["admin", "init", "--preseed"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        init.stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
    }
    let out = init.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "incus admin init --preseed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A folder of the test's own for Incus daemons (in /var/tmp: a `dir`
/// pool holds full copies of the image); Incus must be installed.
pub fn test_folder(prefix: &str) -> tempfile::TempDir {
    assert!(
        Path::new(INCUSD).exists(),
        "{INCUSD} is missing: run scripts/install-host-deps (Incus from bookworm-backports)"
    );
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// Stop the `incusd` `child` of `INCUS_DIR` `state`: `incus admin
/// shutdown` (it stops the instances), SIGKILL after 30 s, then SIGKILL to
/// every process left whose command line names `state` (only what the test
/// started), and its mounts under `state` unmounted.
pub fn stop_daemon(mut child: Child, state: &Path) {
    let _ = incus_at(Some(state), &["admin", "shutdown", "--timeout", "60"]);
    let t = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let needle = state.to_string_lossy().into_owned();
    for pid in processes_naming(&needle) {
        // SAFETY: kill(2) on a process whose command line names this test's folder.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let t = Instant::now();
    while !processes_naming(&needle).is_empty() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut under: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&needle))
        .collect();
    under.reverse();
    for m in under {
        let _ = Command::new("umount").args(["-l", m]).status();
    }
}

/// A running `incusd` of the test's own.
pub struct Daemon {
    child: Option<Child>,
    _dir: tempfile::TempDir,
    /// Its `INCUS_DIR`.
    pub state: PathBuf,
    ip_forward: String,
    tables: Vec<String>,
    links: Vec<String>,
}

impl Daemon {
    /// Start a daemon in a new folder and initialise it; panics (after
    /// cleaning up) when it does not come up.
    pub fn start() -> Daemon {
        let dir = test_folder("labctl-incus-");
        let state = dir.path().join("incus");
        std::fs::create_dir_all(&state).unwrap();
        let (ip_forward, tables, links) = (ip_forward(), nft_tables(), links());
        let log = std::fs::File::create(dir.path().join("incusd.log")).unwrap();
        std::env::set_var("INCUS_DIR", &state);
        let child = Command::new(INCUSD)
            .args(["--group", "incus-admin"])
            .env("INCUS_DIR", &state)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start incusd");
        let d = Daemon {
            child: Some(child),
            _dir: dir,
            state,
            ip_forward,
            tables,
            links,
        };
        let (ok, out) = incus(&["admin", "waitready", "--timeout", "60"]);
        assert!(ok, "incusd did not come up: {out}\n{}", d.log());
        preseed(None, PRESEED);
        d
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("incusd.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        let managed: Vec<String> = {
            let (ok, out) = incus(&["network", "list", "--format", "json"]);
            if ok {
                serde_json::from_str::<serde_json::Value>(&out)
                    .ok()
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter(|n| n["managed"].as_bool() == Some(true))
                    .filter_map(|n| n["name"].as_str().map(String::from))
                    .collect()
            } else {
                Vec::new()
            }
        };
        if let Some(child) = self.child.take() {
            stop_daemon(child, &self.state);
        }
        for br in managed {
            if !self.links.contains(&br) && links().contains(&br) {
                let _ = Command::new("ip").args(["link", "del", &br]).status();
            }
        }
        for t in nft_tables() {
            if self.tables.contains(&t) {
                continue;
            }
            let words: Vec<&str> = t.split_whitespace().collect();
            if let ["table", family, name] = words[..] {
                if name.starts_with("incus") {
                    let _ = Command::new("nft")
                        .args(["delete", "table", family, name])
                        .status();
                }
            }
        }
        if !self.ip_forward.is_empty() && ip_forward() != self.ip_forward {
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", &self.ip_forward);
        }
        std::env::remove_var("INCUS_DIR");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Nothing of lab `lab` left in Incus: no project, instance, network or profile.
pub fn assert_incus_gone(lab: &str) {
    let project = format!("labctl-{lab}");
    let projects = incus_json(&["project", "list"]);
    assert!(
        !projects
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == project.as_str()),
        "project left: {projects}"
    );
    let all = incus_json(&["list", "--all-projects"]);
    assert!(
        !all.as_array()
            .unwrap()
            .iter()
            .any(|i| i["project"] == project.as_str()),
        "instances left: {all}"
    );
    let br = format!("lab-{lab}");
    let nets = incus_json(&["network", "list"]);
    assert!(
        !nets
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == br.as_str()),
        "network left: {nets}"
    );
    let profiles = incus_json(&["profile", "list", "--all-projects"]);
    assert!(
        !profiles
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["project"] == project.as_str()),
        "profiles left: {profiles}"
    );
}
