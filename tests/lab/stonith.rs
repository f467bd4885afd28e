//! Scenario 08 (DRBD with STONITH) on VM nodes, driven through the `labctl`
//! binary, in one story:
//!
//! - `up` of 2 VMs with `libvirt: {fence: true}`: fence_virtd runs on the
//!   host for the lab, and a node reaches it with the lab's key (`fence_virt
//!   -o list` names both VMs);
//! - `configure scenarios/08-stonith.yaml` converges; a second one changes
//!   nothing;
//! - `verify` passes: DRBD, the cluster with both fence devices started,
//!   HTTP on the VIP, and the fencing check: the active node's cable is cut,
//!   the other node powers it off through the fence device, then serves the
//!   data written before the cut, never both at once; the fenced node comes
//!   back and resyncs to an identical copy;
//! - a third `configure` (after the fencing) changes nothing;
//! - a broken lab: both fence devices disabled, the fencing check fails
//!   saying the node was never fenced and where to look;
//! - `destroy` stops the fence daemon and leaves nothing of the lab.
//!
//! Lab `stonl` on 10.1.94.0/24 (takes the machine-wide lab-test lock). Needs
//! root and the packages of scripts/install-host-deps. Durations are printed
//! as FIGURE lines, never asserted.

use crate::common;
use common::lab::check_named;
use common::libvirt::{assert_vm_gone, two_vm_inventory, VmStory};

fn inventory() -> String {
    two_vm_inventory(
        "stonl",
        "10.1.94",
        "{memory: 768M, disks: [{size: 512M}], fence: true}",
        // TCG emulation (no KVM) is slow
        "  failover_within: 30s\n  fencing_within: 45s\n",
    )
}

const SCENARIO: &str = "scenarios/08-stonith.yaml";

/// The PIDs of fence_virtd processes serving this lab.
fn fence_daemons() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let c = std::fs::read(e.path().join("cmdline")).ok()?;
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            (c.contains("fence_virtd") && c.contains("/labs/stonl/"))
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

#[test]
fn stonith_lab_story() {
    let story = VmStory::up("stonl", "10.1.94", &inventory(), "up of 2 VMs (08)");
    let lab = &story.lab;
    assert_eq!(fence_daemons().len(), 1, "one fence daemon for the lab");
    let list = lab.on("nodo1", "sudo fence_virt -T 10.1.94.1 -o list");
    assert!(
        list.contains("labctl-stonl.nodo1") && list.contains("labctl-stonl.nodo2"),
        "the node reaches the fence daemon with the lab's key: {list}"
    );
    // a second `up` keeps the same daemon
    let before = fence_daemons();
    lab.ok(&["up"]);
    assert_eq!(fence_daemons(), before, "up keeps a running fence daemon");

    lab.ok_timed("first configure 08 on VMs", &["configure", SCENARIO]);
    assert_eq!(
        lab.reconverge(SCENARIO, "08 on VMs"),
        0,
        "a second configure changes nothing"
    );

    let report = lab.verified(SCENARIO, "08");
    let fencing = check_named(&report, |n| n.contains("fenced"));
    let detail = fencing["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("fenced (powered off)") && detail.contains("never two nodes"),
        "{fencing}"
    );
    println!(
        "FIGURE fencing (link cut -> fenced -> data served): {} ms",
        report["failover_ms"]
    );
    println!("fencing: {detail}");
    assert_eq!(
        lab.reconverge(SCENARIO, "08 on VMs"),
        0,
        "configure after a fencing changes nothing"
    );

    // a broken lab: no usable fence device
    lab.on("nodo1",
        "sudo crm_resource -r fence-nodo1 --meta -p target-role -v Stopped && sudo crm_resource -r fence-nodo2 --meta -p target-role -v Stopped",
    );
    // (the fencing check fails)
    let (detail, report) = lab.failed_verify(SCENARIO, &["drbd", "cluster", "http"]);
    assert!(
        detail.contains("was never fenced") && detail.contains("stonith_admin --history"),
        "the failure says what is wrong and where to look: {report}"
    );

    lab.ok(&["destroy"]);
    assert!(fence_daemons().is_empty(), "destroy stops the fence daemon");
    assert_vm_gone(lab);
}
