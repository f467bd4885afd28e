//! libvirt for lab tests: `virsh` on the local daemon, the daemons started
//! (and stopped, by their PIDs) when none runs, and the check that a VM lab
//! left nothing behind.

use super::lab::{one_at_a_time, Lab, OneAtATime};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const URI: &str = "qemu:///system";

/// The `preinstall:` of every VM lab test: one VM image (built once per
/// machine, on the host at native speed) holds the packages of scenario.yaml,
/// 06 and 08, so no test installs packages inside a VM under TCG (minutes).
pub const PREINSTALL: &str = "[apache2, bind9, corosync, curl, dlm-controld, drbd-utils, fence-virt, gfs2-utils, pacemaker, pacemaker-cli-utils, psmisc, resource-agents]";

/// A two-VM lab test's inventory: lab `lab` on `<prefix>.0/24` with the
/// shared [`PREINSTALL`], nodo1 and nodo2 (group nodos; `<prefix>.101`,
/// `.102`), `libvirt` its section (`{memory: 768M, …}`), the VIP `<prefix>.100`
/// and `vars`, more lines of `vars:`.
pub fn two_vm_inventory(lab: &str, prefix: &str, libvirt: &str, vars: &str) -> String {
    format!(
        "lab: {lab}
provider: libvirt
libvirt: {libvirt}
preinstall: {PREINSTALL}
network: {{subnet: {prefix}.0/24, gateway: {prefix}.1}}
ssh: {{user: vagrant}}
nodes:
  nodo1: {{address: {prefix}.101, groups: [nodos]}}
  nodo2: {{address: {prefix}.102, groups: [nodos]}}
vars:
  domain: example.com
  vip: {prefix}.100
{vars}"
    )
}

/// A VM lab story's lab: the machine-wide lab-test lock, the libvirt daemons
/// and lab `lab` on `<prefix>.0/24` with `inventory`; on drop the lab goes
/// first, then the daemons this test started, then the lock.
/// [`VmStory::up`] also brings the lab up.
pub struct VmStory {
    pub lab: Lab,
    _daemons: Daemons,
    _one: OneAtATime,
}

impl VmStory {
    pub fn start(lab: &str, prefix: &str, inventory: &str) -> VmStory {
        let one = one_at_a_time();
        let daemons = Daemons::ensure();
        let lab = Lab::new(lab, prefix);
        std::fs::write(lab.inv(), inventory).unwrap();
        VmStory {
            lab,
            _daemons: daemons,
            _one: one,
        }
    }

    /// [`VmStory::start`], then `up`, its time a FIGURE line (`what`).
    pub fn up(lab: &str, prefix: &str, inventory: &str, what: &str) -> VmStory {
        let story = VmStory::start(lab, prefix, inventory);
        story.lab.ok_timed(what, &["up"]);
        story
    }
}

pub fn virsh(args: &[&str]) -> (bool, String) {
    let out = Command::new("virsh")
        .arg("-q")
        .arg("-c")
        .arg(URI)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run virsh");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The libvirt daemons this test started (the ones already running are left alone),
/// and the host state libvirtd changes by itself, put back when they stop: its
/// nft tables (`libvirt_network`) and the host's `ip_forward`.
pub struct Daemons {
    pids: Vec<i32>,
    ip_forward: String,
    tables: String,
}

fn ip_forward() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default()
}

fn nft_tables() -> String {
    Command::new("nft")
        .args(["list", "tables"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

impl Daemons {
    pub fn ensure() -> Daemons {
        let mut pids = Vec::new();
        let (ip_forward, tables) = (ip_forward(), nft_tables());
        if virsh(&["version"]).0 {
            return Daemons {
                pids,
                ip_forward,
                tables,
            };
        }
        for (bin, pidfile, sock) in [
            (
                "virtlogd",
                "/run/virtlogd.pid",
                "/run/libvirt/virtlogd-sock",
            ),
            ("libvirtd", "/run/libvirtd.pid", "/run/libvirt/libvirt-sock"),
        ] {
            let _ = std::fs::remove_file(pidfile);
            let st = Command::new(bin)
                .arg("-d")
                .stdin(Stdio::null())
                .status()
                .unwrap_or_else(|e| {
                    panic!("cannot start {bin} ({e}): run scripts/install-host-deps")
                });
            assert!(st.success(), "{bin} -d failed");
            let t = Instant::now();
            while !(Path::new(pidfile).exists() && Path::new(sock).exists()) {
                assert!(t.elapsed() < Duration::from_secs(30), "{bin} did not start");
                std::thread::sleep(Duration::from_millis(100));
            }
            let pid: i32 = std::fs::read_to_string(pidfile)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            pids.push(pid);
        }
        let t = Instant::now();
        while !virsh(&["version"]).0 {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "libvirtd does not answer"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Daemons {
            pids,
            ip_forward,
            tables,
        }
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        // libvirtd first, then virtlogd; each waited for
        for pid in self.pids.iter().rev() {
            // SAFETY: kill(2) on a PID this test started.
            unsafe { libc::kill(*pid, libc::SIGTERM) };
            let t = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists()
                && t.elapsed() < Duration::from_secs(30)
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if self.pids.is_empty() {
            return;
        }
        for family in ["ip", "ip6"] {
            let t = format!("table {family} libvirt_network");
            if !self.tables.contains(&t) && nft_tables().contains(&t) {
                let _ = Command::new("nft")
                    .args(["delete", "table", family, "libvirt_network"])
                    .status();
            }
        }
        if !self.ip_forward.is_empty() && ip_forward() != self.ip_forward {
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", &self.ip_forward);
        }
    }
}

/// Nothing of the lab left: the nspawn-side checks plus every libvirt object.
pub fn assert_vm_gone(lab: &Lab) {
    lab.assert_gone();
    let (_, doms) = virsh(&["list", "--all", "--name"]);
    let prefix = format!("labctl-{}.", lab.lab);
    assert!(
        !doms.lines().any(|d| d.trim().starts_with(&prefix)),
        "domains left: {doms}"
    );
    let name = format!("labctl-{}", lab.lab);
    let (_, nets) = virsh(&["net-list", "--all", "--name"]);
    assert!(
        !nets.lines().any(|n| n.trim() == name),
        "network left: {nets}"
    );
    let (_, pools) = virsh(&["pool-list", "--all", "--name"]);
    assert!(
        !pools.lines().any(|n| n.trim() == name),
        "pool left: {pools}"
    );
    let dir = format!("/var/lib/labctl/libvirt/{}", lab.lab);
    assert!(!Path::new(&dir).exists(), "{dir} left");
    let qemus = super::command_lines_with(&["qemu-system", &prefix]);
    assert!(qemus.is_empty(), "QEMU processes left: {qemus:?}");
}
