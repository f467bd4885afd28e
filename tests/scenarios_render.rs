//! Every shipped scenario loads and its templates render for the default lab,
//! with the content each scenario depends on (no lab needed).

use labctl::inventory::Inventory;
use labctl::ops::OpArgs;
use labctl::scenario::Scenario;
use labctl::templates::{host_vars, Templates};
use std::collections::BTreeMap;
use std::path::Path;

/// Render every template task of `scenario` for every host: (host, dest) → content.
fn render_all(scenario: &str) -> BTreeMap<(String, String), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let inv = Inventory::load(&root.join("inventory.yaml")).unwrap();
    let sc = Scenario::load(&root.join(scenario), root).unwrap();
    let t = Templates::new(root, &root.join("templates"));
    let facts = labctl::templates::Facts::of(&inv);
    let mut out = BTreeMap::new();
    for play in &sc.plays {
        for pattern in &play.hosts {
            for node in inv.select(pattern).unwrap() {
                let vars = host_vars(&inv, &facts, node, &sc.vars, &play.vars, &t).unwrap();
                for task in &play.tasks {
                    if let OpArgs::Template(a) = &task.op {
                        let a: labctl::ops::template::Args =
                            t.render_args(a, &vars, &task.at).unwrap();
                        let text = t.render_file(&a.src, &vars, &task.at).unwrap();
                        out.insert((node.name.clone(), a.dest.clone()), text);
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_scenario_renders() {
    for s in [
        "scenario.yaml",
        "scenarios/01-dns-round-robin.yaml",
        "scenarios/02-dns-delegation.yaml",
        "scenarios/03-haproxy.yaml",
        "scenarios/04-ip-failover.yaml",
        "scenarios/05-ip-failover-apache.yaml",
    ] {
        let files = render_all(s);
        assert!(files.len() >= 6, "{s}: {} files", files.len());
        if std::env::var("SHOW").is_ok() {
            for ((h, d), c) in &files {
                println!("===== {s} {h} {d}\n{c}");
            }
        }
    }
}

#[test]
fn round_robin_zone_has_both_web_nodes() {
    let f = render_all("scenarios/01-dns-round-robin.yaml");
    let zone = &f[&(
        "dns".to_string(),
        "/var/cache/bind/db.example.com".to_string(),
    )];
    assert!(zone.contains("www      IN A     10.1.1.101"), "{zone}");
    assert!(zone.contains("www      IN A     10.1.1.102"), "{zone}");
    assert!(zone.contains("dns      IN A     10.1.1.103"), "{zone}");
    let rev = &f[&(
        "dns".to_string(),
        "/var/cache/bind/db.1.1.10.in-addr.arpa".to_string(),
    )];
    assert!(rev.contains("101      IN PTR  nodo1.example.com."), "{rev}");
    assert_eq!(
        f[&("nodo2".to_string(), "/var/www/html/info.txt".to_string())],
        "nodo2\n"
    );
}

#[test]
fn zone_serial_changes_only_with_the_records() {
    let serial = |z: &str| {
        z.lines()
            .find(|l| l.contains("; serial"))
            .unwrap()
            .trim()
            .to_string()
    };
    let a = render_all("scenarios/01-dns-round-robin.yaml");
    let b = render_all("scenarios/01-dns-round-robin.yaml");
    let c = render_all("scenarios/04-ip-failover.yaml");
    let k = (
        "dns".to_string(),
        "/var/cache/bind/db.example.com".to_string(),
    );
    assert_eq!(serial(&a[&k]), serial(&b[&k]));
    assert_ne!(serial(&a[&k]), serial(&c[&k]));
}

#[test]
fn corosync_conf_lists_both_members_with_two_node() {
    let f = render_all("scenario.yaml");
    let conf = &f[&(
        "nodo1".to_string(),
        "/etc/corosync/corosync.conf".to_string(),
    )];
    assert!(
        conf.contains("ring0_addr: 10.1.1.101") && conf.contains("ring0_addr: 10.1.1.102"),
        "{conf}"
    );
    assert!(
        conf.contains("two_node: 1")
            && conf.contains("token: 400")
            && conf.contains("knet_ping_timeout: 1000"),
        "{conf}"
    );
    let zone = &f[&(
        "dns".to_string(),
        "/var/cache/bind/db.example.com".to_string(),
    )];
    assert!(zone.contains("www      IN A     10.1.1.100"), "{zone}");
}
