//! Scenario switching on one real nspawn lab (`switchl` on 10.1.72.0/24)
//! whose nodes start from the package layer (`preinstall:` every package of
//! the shipped scenarios): a first converge on fresh nodes reports what it
//! changed (services enabled and started, nothing installed) and a second
//! one changed=0; a halted and booted node starts its services again;
//! 01 → 04 → 03, each verified. 01 → 04 leaves nothing 04 does not manage,
//! so a plain `configure` switches; 04 → 03 would leave the cluster stack on
//! the web nodes, which `configure` says (naming it and the fix), and
//! `configure --fresh` rebuilds the nodes first: the result is that of fresh
//! nodes (no pacemaker), verified, and a second run changes nothing.
//!
//! Needs root (CI runs as root); one lab test at a time on this machine; the
//! lab is destroyed on drop (also on panic) and checked for leftovers.

use crate::common;
use common::lab::{one_at_a_time, Lab};
use common::{stderr, stdout};

fn converge(lab: &Lab, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["configure"];
    a.extend_from_slice(args);
    a.push("--json");
    let o = lab.labctl(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["failed"], 0, "{j}");
    j
}

#[test]
fn switching_01_to_04_to_03_gives_what_fresh_nodes_give() {
    let _one = one_at_a_time();
    let lab = Lab::new("switchl", "10.1.72");
    let inv = std::fs::read_to_string(lab.inv()).unwrap()
        + "preinstall: [bind9, apache2, haproxy, dnsmasq, corosync, pacemaker, pacemaker-cli-utils, resource-agents]\n";
    std::fs::write(lab.inv(), inv).unwrap();
    lab.ok(&["up"]);
    let rr = "scenarios/01-dns-round-robin.yaml";
    lab.first_converge_from_the_layer(rr);
    assert_eq!(converge(&lab, &[rr])["changed"], 0);
    lab.ok(&["verify"]);
    lab.ok(&["halt", "dns"]);
    lab.ok(&["up", "dns"]);
    lab.ok(&["verify"]);

    // 04 manages everything 01 set up: no note, a plain configure switches
    let o = lab.labctl(&["configure", "scenario.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("note:"), "{}", stdout(&o));
    lab.ok(&["verify", "--skip", "failover"]);

    // 04 → 03: the cluster stack would stay on the web nodes; configure says so
    let o = lab.labctl(&["configure", "scenarios/03-haproxy.yaml", "--check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let note = stdout(&o);
    assert!(
        note.contains("note: this lab last ran scenario `ip-failover`"),
        "{note}"
    );
    assert!(note.contains("services: corosync, pacemaker"), "{note}");
    assert!(
        note.contains("`labctl configure scenarios/03-haproxy.yaml --fresh`"),
        "{note}"
    );

    // --fresh: the nodes rebuilt from the image, then converged, as fresh ones
    let j = converge(&lab, &["scenarios/03-haproxy.yaml", "--fresh"]);
    assert!(j["changed"].as_u64() > Some(0), "{j}");
    // as on fresh nodes: the cluster stack neither configured nor running
    let out = lab.ok(&[
        "exec",
        "nodos",
        "--",
        "test -e /etc/corosync/authkey || systemctl is-active -q pacemaker || echo none",
    ]);
    assert_eq!(out.matches("none").count(), 2, "{out}");
    lab.ok(&["verify"]);
    let j = converge(&lab, &["scenarios/03-haproxy.yaml"]);
    assert_eq!(j["changed"], 0, "{j}");

    lab.ok(&["destroy"]);
    lab.assert_gone();
}
