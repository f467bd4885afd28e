//! Scenario 07 (DRBD dual-primary, GFS2 on DLM, fencing) on VM nodes, driven
//! through the `labctl` binary, in one story:
//!
//! - `up` of 2 VMs with `libvirt: {fence: true}`;
//! - `configure scenarios/07-gfs2.yaml` converges: both nodes are DRBD
//!   Primary and mount the same GFS2 at the web root; a second `configure`
//!   changes nothing;
//! - a file written on nodo1 before anything else is read on nodo2;
//! - `verify` passes: DRBD Primary/Primary, DLM, the mount and apache on both
//!   nodes, each node serves the shared page, the gfs2 check (a write on one
//!   node is read on the other at once), and a power cut of the VIP's node:
//!   the other fences it, serves what was written before, and the node, back
//!   up, rejoins as Primary with an identical copy;
//! - a third `configure` (after the failover) changes nothing, and the file
//!   of the beginning is still there (nothing was reformatted);
//! - a broken lab: the mount banned from nodo2, the gfs2 check fails naming
//!   the node and where to look;
//! - `destroy` leaves nothing of the lab.
//!
//! Lab `gfsl` on 10.1.93.0/24 (takes the machine-wide lab-test lock). Needs
//! root and the packages of scripts/install-host-deps. Durations are printed
//! as FIGURE lines, never asserted.

use crate::common;
use common::lab::{one_at_a_time, Lab};
use common::libvirt::{assert_vm_gone, Daemons, PREINSTALL};
use std::time::Instant;

fn inventory() -> String {
    format!(
        "lab: gfsl
provider: libvirt
libvirt: {{memory: 768M, disks: [{{size: 512M}}], fence: true}}
preinstall: {PREINSTALL}
network: {{subnet: 10.1.93.0/24, gateway: 10.1.93.1}}
ssh: {{user: vagrant}}
nodes:
  nodo1: {{address: 10.1.93.101, groups: [nodos]}}
  nodo2: {{address: 10.1.93.102, groups: [nodos]}}
vars:
  domain: example.com
  vip: 10.1.93.100
  # TCG emulation (no KVM) is slow
  failover_within: 45s
"
    )
}

const SCENARIO: &str = "scenarios/07-gfs2.yaml";

#[test]
fn gfs2_lab_story() {
    let _one = one_at_a_time();
    let _daemons = Daemons::ensure();
    let lab = Lab::new("gfsl", "10.1.93");
    std::fs::write(lab.inv(), inventory()).unwrap();

    let t = Instant::now();
    lab.ok(&["up"]);
    println!(
        "FIGURE up of 2 VMs (07): {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    lab.ok(&["configure", SCENARIO]);
    println!(
        "FIGURE first configure 07 on VMs: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    for node in ["nodo1", "nodo2"] {
        let role = lab.on(node, "sudo drbdadm role r0");
        assert_eq!(role.trim(), "Primary/Primary", "{node}: {role}");
        let fs = lab.on(node, "findmnt -n -o FSTYPE --mountpoint /var/www/html");
        assert_eq!(fs.trim(), "gfs2", "{node} mounts GFS2 at the web root");
    }
    lab.on(
        "nodo1",
        "echo before-the-reruns | sudo tee /var/www/html/keep.txt >/dev/null && sync",
    );
    assert_eq!(
        lab.on("nodo2", "cat /var/www/html/keep.txt").trim(),
        "before-the-reruns",
        "what nodo1 writes, nodo2 reads"
    );
    assert_eq!(
        lab.reconverge(SCENARIO, "07 on VMs"),
        0,
        "a second configure changes nothing"
    );

    let t = Instant::now();
    let report = lab.json(&["--json", "verify", SCENARIO]);
    println!("FIGURE verify 07: {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(report["passed"], true, "verify 07: {report}");
    let checks = report["checks"].as_array().unwrap();
    let gfs2 = checks
        .iter()
        .find(|c| c["name"].as_str().unwrap_or("").starts_with("gfs2"))
        .cloned()
        .unwrap_or_default();
    assert!(
        gfs2["detail"]
            .as_str()
            .unwrap_or("")
            .contains("nodo1 → nodo2, nodo2 → nodo1"),
        "{gfs2}"
    );
    println!(
        "FIGURE data failover 07 (power cut -> token served): {} ms",
        report["failover_ms"]
    );
    assert_eq!(
        lab.reconverge(SCENARIO, "07 on VMs"),
        0,
        "configure after a failover changes nothing"
    );
    assert_eq!(
        lab.on("nodo1", "cat /var/www/html/keep.txt").trim(),
        "before-the-reruns",
        "the file of before the re-runs is still there: nothing was reformatted"
    );

    // a broken lab: nodo2 may not mount the shared file system
    lab.on("nodo1",
        "sudo crm_resource --ban --resource WebFS-clone --node nodo2 && sudo crm_resource --wait --timeout 120",
    );
    let out = lab.labctl(&[
        "--json",
        "verify",
        SCENARIO,
        "--skip",
        "drbd",
        "--skip",
        "cluster",
        "--skip",
        "http",
        "--skip",
        "data_failover",
    ]);
    assert_eq!(out.status.code(), Some(1), "the gfs2 check fails");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let detail = report["checks"][0]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("on nodo2: not a GFS2 mount") && detail.contains("crm_mon"),
        "the failure names the node and where to look: {report}"
    );

    lab.ok(&["destroy"]);
    assert_vm_gone(&lab);
}
