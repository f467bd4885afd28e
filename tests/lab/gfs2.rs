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
use common::lab::check_named;
use common::libvirt::{assert_vm_gone, two_vm_inventory, VmStory};

fn inventory() -> String {
    two_vm_inventory(
        "gfsl",
        "10.1.93",
        "{memory: 768M, disks: [{size: 512M}], fence: true}",
        // TCG emulation (no KVM) is slow
        "  failover_within: 45s\n",
    )
}

const SCENARIO: &str = "scenarios/07-gfs2.yaml";

#[test]
fn gfs2_lab_story() {
    let story = VmStory::up("gfsl", "10.1.93", &inventory(), "up of 2 VMs (07)");
    let lab = &story.lab;
    lab.ok_timed("first configure 07 on VMs", &["configure", SCENARIO]);
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

    let report = lab.verified(SCENARIO, "07");
    let gfs2 = check_named(&report, |n| n.starts_with("gfs2"));
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
    // (the gfs2 check fails)
    let skip = ["drbd", "cluster", "http", "data_failover"];
    let (detail, report) = lab.failed_verify(SCENARIO, &skip);
    assert!(
        detail.contains("on nodo2: not a GFS2 mount") && detail.contains("crm_mon"),
        "the failure names the node and where to look: {report}"
    );

    lab.ok(&["destroy"]);
    assert_vm_gone(lab);
}
