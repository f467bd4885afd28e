//! The link fault on a real nspawn lab (`linkl` on 10.1.91.0/24), through the
//! `labctl` binary: `unplug nodo1` leaves it running (status: running,
//! unplugged) but unreachable from the host and from nodo2; `plug nodo1`
//! brings it back with everything it had (nothing rebooted); the refusals
//! (a node not running, an unknown node) are one clear message, exit 2.
//!
//! Needs root (CI runs as root); takes the machine-wide lab-test lock; the lab
//! is destroyed on drop (also on panic) and checked for leftovers. Waits wait
//! for events with generous deadlines, never for a duration.

use crate::common;
use common::lab::{one_at_a_time, Lab};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const INVENTORY: &str = "lab: linkl
provider: nspawn
network: {subnet: 10.1.91.0/24, gateway: 10.1.91.1}
ssh: {user: vagrant}
nodes:
  nodo1: {address: 10.1.91.101, groups: [nodos]}
  nodo2: {address: 10.1.91.102, groups: [nodos]}
";

/// (state, link) of a node from `status --json`.
fn status(lab: &Lab, node: &str) -> (String, Option<String>) {
    let v = lab.json(&["status", "--json"]);
    let n = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .unwrap()
        .clone();
    (
        n["state"].as_str().unwrap().to_string(),
        n["link"].as_str().map(String::from),
    )
}

fn host_reaches(addr: &str) -> bool {
    let sa: SocketAddr = format!("{addr}:22").parse().unwrap();
    TcpStream::connect_timeout(&sa, Duration::from_secs(3)).is_ok()
}

/// Whether nodo2 opens a TCP connection to nodo1's sshd (exit 0) or not.
fn nodo2_reaches_nodo1(lab: &Lab) -> bool {
    let probe = "timeout 3 bash -c '</dev/tcp/10.1.91.101/22' && echo REACHED || echo CUT";
    lab.on("nodo2", probe).contains("REACHED")
}

#[test]
fn unplug_cuts_a_running_node_off_and_plug_brings_it_back() {
    let _one = one_at_a_time();
    let lab = Lab::new("linkl", "10.1.91");
    std::fs::write(lab.inv(), INVENTORY).unwrap();
    lab.ok(&["up"]);
    assert_eq!(
        status(&lab, "nodo1"),
        ("running".into(), Some("plugged".into()))
    );
    assert!(nodo2_reaches_nodo1(&lab));
    // a mark in /run (tmpfs): still there afterwards means nodo1 never rebooted
    lab.ok(&["ssh", "nodo1", "--", "sudo touch /run/linkl-mark"]);

    let out = lab.ok(&["unplug", "nodo1"]);
    assert!(out.is_empty(), "progress goes to stderr: {out}");
    assert_eq!(
        status(&lab, "nodo1"),
        ("running".into(), Some("unplugged".into()))
    );
    assert_eq!(
        status(&lab, "nodo2"),
        ("running".into(), Some("plugged".into()))
    );
    assert!(!host_reaches("10.1.91.101"), "the host still reaches nodo1");
    assert!(host_reaches("10.1.91.102"), "nodo2 was cut too");
    assert!(!nodo2_reaches_nodo1(&lab), "nodo2 still reaches nodo1");
    let again = lab.labctl(&["unplug", "nodo1"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("nodo1: already unplugged"));

    lab.ok(&["plug", "nodo1"]);
    assert_eq!(
        status(&lab, "nodo1"),
        ("running".into(), Some("plugged".into()))
    );
    let t = Instant::now();
    while !host_reaches("10.1.91.101") {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "nodo1 does not answer after plug"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "FIGURE plug → nodo1 answers: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(nodo2_reaches_nodo1(&lab));
    lab.ok(&["ssh", "nodo1", "--", "test -e /run/linkl-mark"]);

    // refusals: an unknown node, a node not running
    let unknown = lab.labctl(&["unplug", "nodo3"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no node named `nodo3`"));
    lab.ok(&["halt", "nodo2"]);
    assert_eq!(status(&lab, "nodo2"), ("stopped".into(), None));
    let stopped = lab.labctl(&["unplug", "nodo2"]);
    assert_eq!(stopped.status.code(), Some(2));
    let err = String::from_utf8_lossy(&stopped.stderr);
    assert!(
        err.contains("node nodo2 is stopped") && err.contains("fix: `labctl up nodo2`"),
        "{err}"
    );

    lab.ok(&["destroy"]);
    lab.assert_gone();
}
