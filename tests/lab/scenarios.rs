//! Every shipped scenario converges fresh nspawn nodes with one `configure`,
//! stays converged on a re-run (`changed: 0`), and serves what it promises:
//! checked from the host with `labctl verify` (without the power-cut checks,
//! which tests/lab/verify.rs covers) and, for the clusters, `crm_mon` on a member.
//! Needs root (CI runs as root).

use crate::common;
use common::lab::{one_at_a_time, Lab};
use std::time::Instant;

/// (scenario file, a cluster scenario?)
const SCENARIOS: &[(&str, bool)] = &[
    ("scenarios/01-dns-round-robin.yaml", false),
    ("scenarios/02-dns-delegation.yaml", false),
    ("scenarios/03-haproxy.yaml", false),
    ("scenario.yaml", true),
    ("scenarios/05-ip-failover-apache.yaml", true),
];

fn configure_twice(lab: &Lab, scenario: &str) {
    let t = Instant::now();
    let first = lab.json(&["configure", scenario, "--json"]);
    eprintln!(
        "FIGURE: first configure of {scenario}: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(first["failed"], 0, "{first}");
    assert!(first["changed"].as_u64() > Some(0), "{first}");
    let t = Instant::now();
    let second = lab.json(&["configure", scenario, "--json"]);
    eprintln!(
        "FIGURE: no-op configure of {scenario}: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        second["changed"], 0,
        "second configure of {scenario} changed something: {second}"
    );
    assert_eq!(second["failed"], 0, "{second}");
}

/// Change one variable (the zone TTL): only the two zone files change and only
/// bind9 restarts; nothing on the web nodes.
fn one_variable_changes_only_what_uses_it(lab: &Lab) {
    let s = std::fs::read_to_string(lab.path("scenarios/01-dns-round-robin.yaml")).unwrap();
    let changed = s.replacen("vars:\n", "vars:\n  dns_ttl: 30\n", 1);
    std::fs::write(lab.path("scenarios/01-ttl.yaml"), changed).unwrap();
    let out = lab.labctl(&["configure", "scenarios/01-ttl.yaml", "-v"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    // off a terminal each line starts with the time
    let changed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.find("changed: [").map(|i| &l[i..]))
        .collect();
    assert_eq!(
        changed,
        [
            "changed: [dns] forward zone (content)",
            "changed: [dns] reverse zone (content)",
            "changed: [dns] restart bind9 (restart)",
        ],
        "{text}"
    );
    let again = lab.json(&["configure", "scenarios/01-ttl.yaml", "--json"]);
    assert_eq!(again["changed"], 0, "{again}");
}

/// The `user` operation on real nodes: created with groups and a hashed
/// password, unchanged on a re-run (the password is checked against the hash),
/// and the password never shown.
fn user_accounts_converge_and_passwords_stay_secret(lab: &Lab) {
    let pw = "s3cret-alumno-pw";
    std::fs::write(
        lab.path("scenarios/users.yaml"),
        format!(
            "name: users\nsecrets: [alumno_password]\nvars: {{alumno_password: \"{pw}\"}}\nplays:\n  - hosts: nodos\n    tasks:\n      - user: {{name: alumno, groups: [www-data], shell: /bin/bash, password: \"{{{{ alumno_password }}}}\"}}\n"
        ),
    )
    .unwrap();
    let out = lab.labctl(&["configure", "scenarios/users.yaml", "-vv", "--diff"]);
    assert!(out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(pw), "the password was shown: {all}");
    assert!(all.contains("changed: [nodo1] user alumno"), "{all}");
    let again = lab.json(&["configure", "scenarios/users.yaml", "--json"]);
    assert_eq!(again["changed"], 0, "{again}");
    let id = lab.ok(&["ssh", "nodo2", "--", "id", "-nG", "alumno"]);
    assert!(id.contains("www-data"), "{id}");
    let hash = lab.ok(&["ssh", "nodo2", "--", "sudo", "getent", "shadow", "alumno"]);
    assert!(
        hash.contains(":$6$"),
        "password not set as a SHA-512 hash: {hash}"
    );
}

/// 06 (DRBD) on the default container lab: refused at once (exit 2), naming
/// the inventory lines of a VM lab, and no node touched (base.yaml, its first
/// play, would have written policy-rc.d on every node).
fn a_vm_scenario_is_refused_before_anything_changes(lab: &Lab) {
    lab.ok(&["up"]);
    let out = lab.labctl(&["configure", "scenarios/06-drbd.yaml"]);
    assert_eq!(out.status.code(), Some(2), "06 needs VM nodes");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("needs a lab with nodes of provider libvirt (this lab's are nspawn)")
            && text.contains(
                "provider: libvirt\n      libvirt: {memory: 768M, disks: [{size: 512M}]}"
            ),
        "{text}"
    );
    for node in ["nodo1", "nodo2", "dns"] {
        let out = lab.labctl(&["ssh", node, "--", "test", "-e", "/usr/sbin/policy-rc.d"]);
        assert_eq!(out.status.code(), Some(1), "{node} was changed");
    }
}

#[test]
fn every_scenario_converges_fresh_nodes_and_stays_converged() {
    let _one = one_at_a_time();
    let lab = Lab::new("e2esc", "10.1.4");
    a_vm_scenario_is_refused_before_anything_changes(&lab);
    for (scenario, cluster) in SCENARIOS {
        eprintln!("===== {scenario}");
        lab.ok(&["up"]);
        configure_twice(&lab, scenario);
        if scenario.contains("01-") {
            one_variable_changes_only_what_uses_it(&lab);
            user_accounts_converge_and_passwords_stay_secret(&lab);
        }
        let report = lab.labctl(&[
            "verify",
            scenario,
            "--json",
            "--skip",
            "failover",
            "--skip",
            "service_recovery",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap_or_default();
        assert_eq!(v["passed"], true, "verify of {scenario}: {v}");
        if *cluster {
            let mon = lab.ok(&["ssh", "nodo1", "--", "sudo", "crm_mon", "-1"]);
            assert!(mon.contains("Online: [ nodo1 nodo2 ]"), "{mon}");
            assert!(
                mon.contains("VirtualIP") && !mon.contains("Stopped"),
                "{mon}"
            );
        }
        // the next scenario starts from fresh nodes
        lab.ok(&["destroy"]);
    }
    lab.assert_gone();
}
