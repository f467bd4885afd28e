//! Snapshots on a real nspawn lab (`snapl` on 10.1.71.0/24): a snapshot
//! saved after `configure`, then a file changed and a service stopped on a
//! node; `snapshot restore` puts the file and the service back as saved, the
//! pinned host keys still hold and `verify` passes; `destroy` removes the
//! snapshots with the lab.
//!
//! Needs root (CI runs as root); one lab test at a time on this machine; the
//! lab is destroyed on drop (also on panic) and checked for leftovers.

use crate::common;
use common::lab::{one_at_a_time, Lab};
use common::stderr;

/// The names in `snapshot list --json`.
fn names(lab: &Lab) -> Vec<String> {
    lab.json(&["snapshot", "list", "--json"])["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn restore_puts_files_and_services_back_and_destroy_removes_snapshots() {
    let _one = one_at_a_time();
    let lab = Lab::new("snapl", "10.1.71");

    // nothing to save before `up`, and a name that is a path is refused
    let o = lab.labctl(&["snapshot", "save", "early"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("do not exist"), "{}", stderr(&o));
    let o = lab.labctl(&["snapshot", "save", "../x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    lab.ok(&["up"]);
    let j = lab.json(&["configure", "scenarios/01-dns-round-robin.yaml", "--json"]);
    assert_eq!(j["failed"], 0, "{j}");
    let page = lab.ok(&["ssh", "nodo1", "cat", "/var/www/html/info.txt"]);

    lab.ok(&["snapshot", "save", "configured"]);
    // the nodes were frozen while copied, and are thawed after
    for node in ["nodo1", "nodo2", "dns"] {
        let events = format!("/sys/fs/cgroup/unified/labctl/snapl.{node}/cgroup.events");
        if let Ok(e) = std::fs::read_to_string(&events) {
            assert!(e.contains("frozen 0"), "{node} left frozen: {e}");
        }
    }
    assert_eq!(lab.ok(&["ssh", "dns", "--", "echo", "thawed"]), "thawed\n");
    let o = lab.labctl(&["snapshot", "save", "configured"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("already has a snapshot"),
        "{}",
        stderr(&o)
    );
    let list = lab.json(&["snapshot", "list", "--json"]);
    let s = &list["snapshots"][0];
    assert_eq!(s["name"], "configured", "{list}");
    assert_eq!(s["nodes"], serde_json::json!(["nodo1", "nodo2", "dns"]));
    assert!(
        s["scenario"]
            .as_str()
            .unwrap()
            .ends_with("01-dns-round-robin.yaml"),
        "{list}"
    );

    // break the lab: a file changed, a service stopped, a file added
    lab.ok(&[
        "exec",
        "nodo1",
        "--",
        "echo broken > /var/www/html/info.txt && systemctl stop apache2 && touch /root/after",
    ]);
    assert_eq!(
        lab.ok(&["ssh", "nodo1", "cat", "/var/www/html/info.txt"]),
        "broken\n"
    );
    let o = lab.labctl(&["ssh", "nodo1", "systemctl", "is-active", "apache2"]);
    assert!(!o.status.success());

    let o = lab.labctl(&["snapshot", "restore", "configurd"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("did you mean"), "{}", stderr(&o));

    let o = lab.labctl(&["snapshot", "restore", "configured"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("snapshot `configured` of lab `snapl` restored: 3 node(s)"),
        "{}",
        stderr(&o)
    );
    // reached with the pinned host keys (a changed key would be refused)
    assert_eq!(
        lab.ok(&["ssh", "nodo1", "cat", "/var/www/html/info.txt"]),
        page
    );
    assert_eq!(
        lab.ok(&["ssh", "nodo1", "systemctl", "is-active", "apache2"]),
        "active\n"
    );
    assert_eq!(
        lab.ok(&[
            "ssh",
            "nodo1",
            "sudo ls /root/after 2>/dev/null || echo gone"
        ]),
        "gone\n"
    );
    // the restored lab is converged and works (verify uses the saved scenario)
    let j = lab.json(&["configure", "scenarios/01-dns-round-robin.yaml", "--json"]);
    assert_eq!(j["changed"], 0, "{j}");
    lab.ok(&["verify"]);

    lab.ok(&["snapshot", "save", "second"]);
    assert_eq!(names(&lab), ["configured", "second"]);
    lab.ok(&["snapshot", "delete", "configured"]);
    assert_eq!(names(&lab), ["second"]);
    let o = lab.labctl(&["snapshot", "delete", "configured"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    lab.ok(&["destroy"]);
    lab.assert_gone();
    assert!(names(&lab).is_empty());
}
