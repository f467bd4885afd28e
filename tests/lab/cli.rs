//! The small commands on a real nspawn lab (`tcli` on 10.1.41.0/24):
//! `exec` on every node, `ssh NODE CMD` without `--`, and rebuilding one node
//! (`up --fresh NODE`, `destroy NODE` + `up NODE`) while the others keep
//! running untouched; `halt`/`fail` say what really happened.
//!
//! Needs root (CI runs as root); one lab test at a time on this machine; the
//! lab is destroyed on drop (also on panic) and checked for leftovers.

use crate::common;
use common::lab::{one_at_a_time, Lab};
use common::{stderr, stdout};

/// Each node's (state, nspawn PID) from `status --json`.
fn status(lab: &Lab) -> Vec<(String, String, Option<u64>)> {
    let v = lab.json(&["status", "--json"]);
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["state"].as_str().unwrap().to_string(),
                n["pid"].as_u64(),
            )
        })
        .collect()
}

fn node<'a>(
    s: &'a [(String, String, Option<u64>)],
    name: &str,
) -> &'a (String, String, Option<u64>) {
    s.iter().find(|n| n.0 == name).unwrap()
}

#[test]
fn exec_ssh_and_rebuilding_one_node_leave_the_others_untouched() {
    let _one = one_at_a_time();
    let lab = Lab::new("tcli", "10.1.41");

    // halt on a lab with no node says so instead of "halted 3 node(s)"
    let o = lab.labctl(&["halt"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("nothing to halt: lab `tcli` has no node created"),
        "{}",
        stderr(&o)
    );

    lab.ok(&["up"]);

    // exec: one command on every node, grouped per node
    let out = lab.ok(&["exec", "all", "--", "hostname"]);
    for n in ["nodo1", "nodo2", "dns"] {
        assert!(out.contains(&format!("== {n} (ok")), "{out}");
        assert!(out.contains(&format!("\n{n}\n")), "{out}");
    }
    let o = lab.labctl(&["exec", "nodos", "--", "test", "$(hostname)", "=", "nodo1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("== nodo2 (failed, exit status 1"),
        "{}",
        stdout(&o)
    );

    // ssh without `--`, as `vagrant ssh -c` users type it
    assert_eq!(lab.ok(&["ssh", "nodo1", "hostname"]), "nodo1\n");
    assert_eq!(lab.ok(&["ssh", "dns", "cat", "/etc/hostname"]), "dns\n");

    // mark every node's files, then rebuild nodo2 from the image
    lab.ok(&["exec", "all", "--", "echo kept > /root/marker"]);
    let before = status(&lab);
    let o = lab.labctl(&["up", "--fresh", "nodo2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("nodo2: destroyed"), "{}", stderr(&o));
    let after = status(&lab);
    for n in ["nodo1", "dns"] {
        assert_eq!(node(&before, n), node(&after, n), "{n} was touched");
    }
    assert_eq!(node(&after, "nodo2").1, "running");
    assert_ne!(node(&before, "nodo2").2, node(&after, "nodo2").2);
    // nodo2 is new (no marker) and reached with its new, re-pinned host key
    let out = lab.ok(&[
        "exec",
        "all",
        "--",
        "cat /root/marker 2>/dev/null || echo none",
    ]);
    assert!(
        out.contains("== nodo2 (ok") && out.contains("none"),
        "{out}"
    );
    assert_eq!(out.matches("kept").count(), 2, "{out}");
    assert_eq!(lab.ok(&["ssh", "nodo2", "hostname"]), "nodo2\n");

    // destroy NODE removes that node only; up NODE rebuilds it
    let o = lab.labctl(&["destroy", "nodo1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = status(&lab);
    assert_eq!(node(&s, "nodo1").1, "absent");
    assert_eq!(node(&s, "nodo2"), node(&after, "nodo2"));
    assert_eq!(node(&s, "dns"), node(&after, "dns"));
    assert!(lab.lab_dir().join("nodes/nodo2").exists());
    lab.ok(&["up", "nodo1"]);
    assert_eq!(
        lab.ok(&[
            "ssh",
            "nodo1",
            "sudo cat /root/marker 2>/dev/null || echo none"
        ]),
        "none\n"
    );
    assert_eq!(
        lab.ok(&["ssh", "dns", "sudo", "cat", "/root/marker"]),
        "kept\n"
    );

    // a power cut says "power cut", not "failed"
    let o = lab.labctl(&["fail", "nodo2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("power cut 1 node(s)"), "{}", stderr(&o));

    lab.ok(&["destroy"]);
    lab.assert_gone();
}

/// The zone serial on the DNS node (its forward zone file).
fn serial(lab: &Lab) -> u64 {
    let out = lab.ok(&[
        "exec",
        "dns",
        "--",
        "awk '/; serial/ {print $1}' /var/cache/bind/db.example.com",
    ]);
    out.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no serial in: {out}"))
}

#[test]
fn the_zone_serial_only_increases_across_scenario_switches() {
    let _one = one_at_a_time();
    let lab = Lab::new("tcli", "10.1.41");
    lab.ok(&["up", "dns"]);
    let configure =
        |s: &str| -> serde_json::Value { lab.json(&["configure", s, "--limit", "dns", "--json"]) };
    let rr = "scenarios/01-dns-round-robin.yaml";
    configure(rr);
    let s1 = serial(&lab);
    // the same records again: nothing changes, the serial stays
    assert_eq!(configure(rr)["changed"], 0);
    assert_eq!(serial(&lab), s1);
    // 01 → 04 → 01: the serial goes up at each switch, never down
    let j = configure("scenario.yaml");
    assert!(j["changed"].as_u64() > Some(0), "{j}");
    let s4 = serial(&lab);
    assert!(s4 > s1, "{s1} → {s4}");
    configure(rr);
    let s1b = serial(&lab);
    assert!(s1b > s4, "{s4} → {s1b}");
    assert_eq!(configure(rr)["changed"], 0);
    // a preview of a switch moves nothing
    lab.ok(&["configure", "scenario.yaml", "--limit", "dns", "--check"]);
    assert_eq!(configure(rr)["changed"], 0);
    assert_eq!(serial(&lab), s1b);
    lab.ok(&["destroy"]);
    lab.assert_gone();
}
