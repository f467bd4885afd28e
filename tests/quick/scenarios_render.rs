//! Every shipped scenario loads and its templates render for the default lab,
//! with the content each scenario depends on (no lab needed).

use labctl::ops::OpArgs;
use labctl::scenario::Scenario;
use labctl::serial::ZoneSerials;
use labctl::templates::{host_vars, Templates};
use std::collections::BTreeMap;
use std::path::Path;

/// Render every template task of `scenario` for every host: (host, dest) → content.
/// The rendered file `path` of `node`.
fn file<'a>(f: &'a BTreeMap<(String, String), String>, node: &str, path: &str) -> &'a String {
    &f[&(node.to_string(), path.to_string())]
}

fn render_all(scenario: &str) -> BTreeMap<(String, String), String> {
    render_with(scenario, ZoneSerials::in_memory())
}

/// [`render_all`] with the zone serials of a project state folder.
fn render_with(scenario: &str, serials: ZoneSerials) -> BTreeMap<(String, String), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let inv = labctl::providers::load_inventory(&root.join("inventory.yaml")).unwrap();
    let sc = Scenario::load(&root.join(scenario), root).unwrap();
    let t = Templates::with_zone_serials(root, &root.join("templates"), serials);
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
        "scenarios/06-drbd.yaml",
        "scenarios/07-gfs2.yaml",
        "scenarios/08-stonith.yaml",
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
fn only_07_lets_drbd_have_two_primaries() {
    let r0 = |s: &str| file(&render_all(s), "nodo1", "/etc/drbd.d/r0.res").clone();
    assert!(r0("scenarios/07-gfs2.yaml").contains("allow-two-primaries yes;"));
    for s in ["scenarios/06-drbd.yaml", "scenarios/08-stonith.yaml"] {
        assert!(!r0(s).contains("allow-two-primaries"), "{s}");
    }
}

#[test]
fn round_robin_zone_has_both_web_nodes() {
    let f = render_all("scenarios/01-dns-round-robin.yaml");
    let zone = file(&f, "dns", "/var/cache/bind/db.example.com");
    assert!(zone.contains("www      IN A     10.1.1.101"), "{zone}");
    assert!(zone.contains("www      IN A     10.1.1.102"), "{zone}");
    assert!(zone.contains("dns      IN A     10.1.1.103"), "{zone}");
    let rev = file(&f, "dns", "/var/cache/bind/db.1.1.10.in-addr.arpa");
    assert!(rev.contains("101      IN PTR  nodo1.example.com."), "{rev}");
    assert_eq!(
        f[&("nodo2".to_string(), "/var/www/html/info.txt".to_string())],
        "nodo2\n"
    );
}

#[test]
fn zone_serial_changes_only_with_the_records_and_only_increases() {
    let serial = |z: &str| -> u32 {
        z.lines()
            .find(|l| l.contains("; serial"))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    // one project, its state kept between runs (each run opens it afresh)
    let state = tempfile::tempdir().unwrap();
    let run = |s: &str| render_with(s, ZoneSerials::open(state.path(), true));
    let zone = (
        "dns".to_string(),
        "/var/cache/bind/db.example.com".to_string(),
    );
    let rev = (
        "dns".to_string(),
        "/var/cache/bind/db.1.1.10.in-addr.arpa".to_string(),
    );
    let a = run("scenarios/01-dns-round-robin.yaml");
    let b = run("scenarios/01-dns-round-robin.yaml");
    // the same records: the same serial (a second configure changes nothing)
    assert_eq!(a[&zone], b[&zone]);
    assert_eq!(serial(&a[&rev]), serial(&b[&rev]));
    // switching scenarios 01 → 04 → 01 → 03: the serial only goes up
    let mut last = serial(&a[&zone]);
    for s in [
        "scenarios/04-ip-failover.yaml",
        "scenarios/01-dns-round-robin.yaml",
        "scenarios/03-haproxy.yaml",
        "scenarios/01-dns-round-robin.yaml",
    ] {
        let now = serial(&run(s)[&zone]);
        assert!(now > last, "{s}: serial {now} after {last}");
        last = now;
    }
    // above every serial of the old hash-based scheme (nine digits)
    assert!(last > 999_999_999, "{last}");
    // the reverse zone's records are the same in every scenario: its serial stays
    assert_eq!(
        serial(&run("scenarios/04-ip-failover.yaml")[&rev]),
        serial(&a[&rev])
    );
    // a preview (--check) does not record its serial: the next real run of the
    // same records as before keeps the serial it had
    let before = serial(&run("scenarios/01-dns-round-robin.yaml")[&zone]);
    let _ = render_with(
        "scenarios/04-ip-failover.yaml",
        ZoneSerials::open(state.path(), false),
    );
    assert_eq!(
        serial(&run("scenarios/01-dns-round-robin.yaml")[&zone]),
        before
    );
}

#[test]
fn corosync_conf_lists_both_members_with_two_node() {
    let f = render_all("scenario.yaml");
    let conf = file(&f, "nodo1", "/etc/corosync/corosync.conf");
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
    let zone = file(&f, "dns", "/var/cache/bind/db.example.com");
    assert!(zone.contains("www      IN A     10.1.1.100"), "{zone}");
}
