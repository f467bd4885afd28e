//! Scenario 06 (DRBD, active/passive) on VM nodes, driven through the
//! `labctl` binary, in one story:
//!
//! - `up` of 2 VMs (nodo1, nodo2, each with a 512M /dev/vdb; the DNS node is
//!   not needed) with the scenario's packages in the image (`preinstall:`);
//! - `configure scenarios/06-drbd.yaml` converges; a second one changes
//!   nothing;
//! - `verify` passes: DRBD connected and UpToDate, the cluster, HTTP on the
//!   VIP, and data written before a power cut of the active node served by
//!   the other, the failed node resynced to an identical copy;
//! - a third `configure` (after that failover) changes nothing, and the file
//!   system is the one made by the first (never reformatted);
//! - a power cut of the Primary, `up` of it, and `configure` at once: it
//!   waits for the cluster to take the node back (pacemaker brings its DRBD
//!   up) and changes nothing, instead of racing the cluster to do it;
//! - `drbdadm disconnect` on one node makes the `drbd` check fail, saying
//!   the resource is StandAlone and how to reconnect it;
//! - 08 (STONITH) on this lab, which has no fence daemon, is refused before
//!   anything runs (its `requires:`), naming the lines to add (`fence: true`);
//! - 07 (GFS2, here without its fence requirement) on this lab's ext4 disk is
//!   refused, and the disk keeps its file system;
//! - `destroy` leaves nothing of the lab.
//!
//! Lab `drbdl` on 10.1.92.0/24 (takes the machine-wide lab-test lock). Needs
//! root and the packages of scripts/install-host-deps. Durations are printed
//! as FIGURE lines, never asserted.

use crate::common;
use common::lab::{check_named, figure, Lab};
use common::libvirt::{assert_vm_gone, two_vm_inventory, VmStory};

fn inventory() -> String {
    two_vm_inventory(
        "drbdl",
        "10.1.92",
        "{memory: 768M, disks: [{size: 512M}]}",
        // TCG emulation (no KVM): DRBD's peer timeout and pacemaker's promotion are slow
        "  failover_within: 30s\n",
    )
}

const SCENARIO: &str = "scenarios/06-drbd.yaml";

/// The UUID of the ext4 on the node's DRBD backing disk.
fn fs_uuid(lab: &Lab, node: &str) -> String {
    lab.on(
        node,
        "sudo blockdev --flushbufs /dev/vdb && sudo blkid -p -n ext4 -s UUID -o value /dev/vdb",
    )
    .trim()
    .to_string()
}

#[test]
fn drbd_lab_story() {
    let story = VmStory::up("drbdl", "10.1.92", &inventory(), "up of 2 VMs (06)");
    let lab = &story.lab;
    lab.ok_timed("first configure 06 on VMs", &["configure", SCENARIO]);
    let uuid = fs_uuid(lab, "nodo1");
    assert!(!uuid.is_empty(), "an ext4 on nodo1's /dev/vdb");
    assert_eq!(
        lab.reconverge(SCENARIO, "06 on VMs"),
        0,
        "a second configure changes nothing"
    );

    let report = lab.verified(SCENARIO, "06");
    println!(
        "FIGURE data failover (token served again after the power cut): {} ms",
        report["failover_ms"]
    );
    let drbd = check_named(&report, |n| n.starts_with("data on"));
    println!("data_failover: {}", drbd["detail"]);

    // after a failover: still nothing to change, and the same file system
    assert_eq!(
        lab.reconverge(SCENARIO, "06 on VMs"),
        0,
        "configure after a failover changes nothing"
    );
    assert_eq!(fs_uuid(lab, "nodo1"), uuid, "nodo1's disk not reformatted");
    assert_eq!(
        fs_uuid(lab, "nodo2"),
        uuid,
        "nodo2 holds the same file system"
    );

    // the Primary loses power and comes back; a configure right away waits
    // for the cluster's own recovery (pacemaker brings the node's DRBD up)
    // instead of doing it itself ("DRBD resource up" changed)
    let primary = ["nodo1", "nodo2"]
        .into_iter()
        .find(|n| lab.on(n, "sudo drbdadm role r0").starts_with("Primary"))
        .expect("a Primary");
    lab.ok(&["fail", primary]);
    figure("up of the failed Primary", || lab.ok(&["up", primary]));
    let out = figure("configure right after a node's return", || {
        lab.labctl(&["--json", "configure", SCENARIO])
    });
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        j["changed"], 0,
        "nothing to change after a node's return: {j}"
    );
    // (how long it waited, if at all, is on stderr: `waited N s for the cluster to settle`)
    assert_eq!(fs_uuid(lab, primary), uuid, "never reformatted");

    // a broken lab: one side disconnected
    lab.on("nodo2", "sudo drbdadm disconnect r0");
    // (the drbd check fails)
    let (detail, report) = lab.failed_verify(SCENARIO, &["cluster", "http", "data_failover"]);
    assert!(
        detail.contains("nodo2: r0 is StandAlone") && detail.contains("drbdadm connect r0"),
        "the failure says what is wrong and how to fix it: {report}"
    );

    // 08 (STONITH) on a lab without the fence daemon: refused before anything runs
    let out = lab.labctl(&["configure", "scenarios/08-stonith.yaml"]);
    assert_eq!(out.status.code(), Some(2), "08 needs the fence daemon");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("the lab's fence daemon")
            && text.contains("libvirt: {memory: 768M, disks: [{size: 512M}], fence: true}"),
        "the refusal names the lines to add: {text}"
    );

    // 07 (GFS2) on this lab's ext4, its fence requirement taken out (the
    // lab has no fence daemon): refused by the DRBD plays, never reformatted
    let gfs2 = std::fs::read_to_string(lab.path("scenarios/07-gfs2.yaml"))
        .unwrap()
        .replace("  fence: true", "  fence: false");
    std::fs::write(lab.path("scenarios/07-nofence.yaml"), gfs2).unwrap();
    let out = lab.labctl(&["configure", "scenarios/07-nofence.yaml"]);
    assert!(!out.status.success(), "07 does not reformat 06's disk");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("holds a ext4 file system, not gfs2")
            && text.contains("labctl destroy && labctl up"),
        "the refusal says why and what to do: {text}"
    );
    assert_eq!(fs_uuid(lab, "nodo1"), uuid, "nodo1's disk not reformatted");

    lab.ok(&["destroy"]);
    assert_vm_gone(lab);
}
