//! VM nodes (`provider: libvirt`) on a real libvirt daemon, driven through
//! the `labctl` binary, in one story:
//!
//! - a network and a pool of the lab's name that another machine made (no
//!   owner of ours recorded on the hypervisor): `up` and `destroy` refuse
//!   them (exit 2) and leave them as they were;
//! - `labctl up` killed with SIGKILL while it makes the VMs: `destroy` still
//!   removes everything;
//! - `up` of 3 VMs → `status` shows 3 running → the node runs a kernel of its
//!   own → `/dev/vdb` has the size asked → `modprobe drbd` works;
//! - `fail nodo1` stops it at once → `up nodo1` brings it back with its files
//!   and its disk's content;
//! - `configure scenario.yaml` converges, a second one changes nothing, and
//!   `verify` passes (failover included);
//! - `destroy` leaves no domain, volume, pool, network, bridge, nft table,
//!   QEMU process, mount or file of the lab.
//!
//! Lab `vml` on 10.1.61.0/24 (takes the machine-wide lab-test lock). The libvirt
//! daemons (virtlogd, libvirtd) are started by the test when none runs, and
//! stopped by it (by their PIDs) at the end. Needs root and the packages of
//! scripts/install-host-deps. Durations are printed as FIGURE lines, never asserted.

use crate::common;
use common::lab::Lab;
use common::libvirt::{assert_vm_gone, virsh, VmStory, PREINSTALL};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn inventory(lab: &str) -> String {
    format!(
        "lab: {lab}
provider: libvirt
libvirt: {{memory: 768M, disks: [{{size: 512M}}]}}
# the image shared by the VM lab tests (configure then installs nothing)
preinstall: {PREINSTALL}
network: {{subnet: 10.1.61.0/24, gateway: 10.1.61.1}}
ssh: {{user: vagrant}}
nodes:
  nodo1: {{address: 10.1.61.101, groups: [nodos]}}
  nodo2: {{address: 10.1.61.102, groups: [nodos]}}
  dns: {{address: 10.1.61.103, groups: [servidor_dns], disks: []}}
vars:
  domain: example.com
  vip: 10.1.61.100
  # TCG emulation runs the cluster 3-5x slower than containers (scenarios/04)
  failover_within: 8s
"
    )
}

/// A network and a pool named like lab `vml`'s, as another machine sharing
/// the hypervisor would have made them (no owner of this project recorded);
/// removed on drop, also when the test fails.
struct Foreign {
    pool_dir: String,
}

impl Foreign {
    fn define(lab: &Lab) -> Foreign {
        let net = lab.path("foreign-net.xml");
        std::fs::write(
            &net,
            "<network><name>labctl-vml</name><bridge name='lab-vml'/></network>\n",
        )
        .unwrap();
        let pool_dir = "/var/lib/labctl/libvirt/vml".to_string();
        let pool = lab.path("foreign-pool.xml");
        std::fs::write(
            &pool,
            format!("<pool type='dir'><name>labctl-vml</name><target><path>{pool_dir}</path></target></pool>\n"),
        )
        .unwrap();
        let f = Foreign { pool_dir };
        for args in [
            vec!["net-define", net.to_str().unwrap()],
            vec!["pool-define", pool.to_str().unwrap()],
            vec!["pool-build", "labctl-vml"],
            vec!["pool-start", "labctl-vml"],
            vec!["vol-create-as", "labctl-vml", "theirs.qcow2", "1M"],
        ] {
            let (ok, out) = virsh(&args);
            assert!(ok, "virsh {args:?}: {out}");
        }
        f
    }

    fn assert_intact(&self) {
        let (ok, out) = virsh(&["net-info", "labctl-vml"]);
        assert!(ok, "the other machine's network is gone: {out}");
        let (ok, out) = virsh(&["vol-list", "labctl-vml"]);
        assert!(
            ok && out.contains("theirs.qcow2"),
            "their volume is gone: {out}"
        );
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = virsh(&["net-undefine", "labctl-vml"]);
        let _ = virsh(&["vol-delete", "--pool", "labctl-vml", "theirs.qcow2"]);
        let _ = virsh(&["pool-destroy", "labctl-vml"]);
        let _ = virsh(&["pool-undefine", "labctl-vml"]);
        let _ = std::fs::remove_dir_all(&self.pool_dir);
    }
}

#[test]
fn vm_lab_story() {
    let story = VmStory::start("vml", "10.1.61", &inventory("vml"));
    let lab = &story.lab;

    // another machine's objects of the lab's name: refused and left alone
    {
        let foreign = Foreign::define(lab);
        for verb in ["up", "destroy"] {
            let o = lab.labctl(&[verb]);
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            assert_eq!(o.status.code(), Some(2), "{verb}: {err}");
            assert!(
                err.contains("labctl-vml") && err.contains("leaves it alone"),
                "{verb}: {err}"
            );
            foreign.assert_intact();
        }
    }

    // a killed `up`: destroy still removes everything
    let log = std::fs::File::create(lab.path("killed-up.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_labctl"))
        .arg("up")
        .current_dir(lab.dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let t = Instant::now();
    let dom = "labctl-vml.nodo1";
    loop {
        if virsh(&["domstate", dom]).1.contains("running") {
            break;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "labctl up ended ({st}) before it was killed:\n{}",
                std::fs::read_to_string(lab.path("killed-up.log")).unwrap_or_default()
            );
        }
        // the first run on a machine builds the images (a few minutes)
        assert!(t.elapsed() < Duration::from_secs(900), "no VM started");
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    lab.ok(&["destroy"]);
    assert_vm_gone(lab);
    std::fs::write(lab.inv(), inventory("vml")).unwrap();

    let t = Instant::now();
    let out = lab.labctl(&["up"]);
    assert!(out.status.success(), "labctl up failed");
    // progress goes to stderr
    let out = String::from_utf8_lossy(&out.stderr).into_owned();
    println!(
        "FIGURE up of 3 VMs (images cached): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(
        out.contains("TCG") || out.contains("KVM"),
        "up names the accelerator: {out}"
    );
    let status = lab.json(&["status", "--json"]);
    let states: Vec<&str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["running", "running", "running"], "{status}");

    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let kernel = lab.on("nodo1", "uname -r");
    assert!(kernel.trim().ends_with("-amd64"), "guest kernel: {kernel}");
    assert_ne!(
        kernel.trim(),
        host_kernel.trim(),
        "the VM runs its own kernel"
    );
    let size = lab.on("nodo1", "lsblk -bdno SIZE /dev/vdb");
    assert_eq!(size.trim(), (512u64 << 20).to_string(), "/dev/vdb of 512M");
    let mods = lab.on("nodo1", "sudo modprobe drbd && lsmod");
    assert!(mods.lines().any(|l| l.starts_with("drbd ")), "{mods}");

    // a power cut keeps files and disks
    lab.on(
        "nodo1",
        "echo kept-file | sudo tee /root/mark >/dev/null && printf kept-disk | sudo dd of=/dev/vdb conv=fsync status=none && sync",
    );
    let t = Instant::now();
    lab.ok(&["fail", "nodo1"]);
    println!("FIGURE fail nodo1: {:.2} s", t.elapsed().as_secs_f64());
    let status = lab.json(&["status", "--json"]);
    assert_eq!(status["nodes"][0]["state"], "stopped", "{status}");
    lab.ok(&["up", "nodo1"]);
    assert_eq!(lab.on("nodo1", "sudo cat /root/mark").trim(), "kept-file");
    assert_eq!(
        lab.on("nodo1", "sudo head -c 9 /dev/vdb"),
        "kept-disk",
        "the extra disk keeps its content"
    );

    // the default scenario on VMs
    lab.ok_timed(
        "first configure scenario.yaml on VMs",
        &["configure", "scenario.yaml"],
    );
    let t = Instant::now();
    let again = lab.json(&["--json", "configure", "scenario.yaml"]);
    println!(
        "FIGURE no-op configure on VMs: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        again["changed"], 0,
        "a second configure changes nothing: {again}"
    );
    lab.ok(&["verify"]);

    lab.ok(&["destroy"]);
    assert_vm_gone(lab);
    // and a second destroy is fine
    lab.ok(&["destroy"]);
}
