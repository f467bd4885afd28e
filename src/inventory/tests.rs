//! The inventory's own tests, with providers of their own.

use super::*;

/// Providers as the registry would describe them: one that makes container
/// nodes (the default), one whose nodes exist.
fn providers() -> Vec<ProviderSpec> {
    vec![
        ProviderSpec {
            name: "made",
            creates_nodes: true,
            vm_hardware: false,
            nic: Some("host0"),
            rules: InventoryRules {
                machine_name_max: Some(64),
                preinstall: Some("a package layer"),
                section: None,
            },
        },
        ProviderSpec {
            name: "existing",
            creates_nodes: false,
            vm_hardware: false,
            nic: None,
            rules: InventoryRules::default(),
        },
    ]
}

fn load_str(s: &str) -> anyhow::Result<Inventory> {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("inventory.yaml");
    std::fs::write(&p, s).unwrap();
    Inventory::load_with(&p, &providers())
}

fn load_vagrantfile(text: &str) -> anyhow::Result<Inventory> {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("06-DRBD").join("Vagrantfile");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    Inventory::load_with(&p, &providers())
}

fn machines(nets: &[&[&str]]) -> String {
    let mut s = String::from("Vagrant.configure(\"2\") do |config|\n");
    for (i, ips) in nets.iter().enumerate() {
        let n = format!("n{}", i + 1);
        s.push_str(&format!("  config.vm.define :{n} do |{n}|\n"));
        for ip in *ips {
            s.push_str(&format!(
                "    {n}.vm.network :private_network, ip: \"{ip}\"\n"
            ));
        }
        s.push_str("  end\n");
    }
    s.push_str("end\n");
    s
}

#[test]
fn further_private_networks_are_eth2_on_bridges_of_their_own() {
    let inv = load_vagrantfile(&machines(&[
        &["10.1.1.101", "10.1.2.101", "10.1.3.101"],
        &["10.1.1.102", "10.1.2.102"],
        &["10.1.1.103"],
    ]))
    .unwrap();
    let nets = inv.extra_networks();
    assert_eq!(nets.len(), 2);
    assert_eq!(nets[0].bridge, format!("lb2-{}", inv.lab));
    assert_eq!(nets[0].gateway, Ipv4Addr::new(10, 1, 2, 1));
    assert_eq!(
        nets[0].members,
        vec![
            (
                "n1".to_string(),
                "eth2".to_string(),
                Ipv4Addr::new(10, 1, 2, 101)
            ),
            (
                "n2".to_string(),
                "eth2".to_string(),
                Ipv4Addr::new(10, 1, 2, 102)
            ),
        ]
    );
    assert_eq!(nets[1].bridge, format!("lb3-{}", inv.lab));
    assert_eq!(nets[1].members[0].1, "eth3");
    assert!(inv.bridge_name().len() <= 15 && nets[1].bridge.len() <= 15);

    for (bad, says) in [
        (&["10.1.1.101", "10.1.1.111"][..], "subnet of its own"),
        (&["10.1.1.101", "10.1.2.1"][..], "gateway"),
        (&["10.1.1.101", "8.8.8.8"][..], "not a private range"),
        (
            &["10.1.1.101", "10.1.2.5", "10.1.2.6"][..],
            "a second address",
        ),
    ] {
        let e = load_vagrantfile(&machines(&[bad, &["10.1.1.102"]])).unwrap_err();
        let m = format!("{e:#}");
        assert!(
            m.contains(says) && m.contains("Vagrantfile:"),
            "{bad:?}: {m}"
        );
    }
}

const GOOD: &str = "lab: ha\nnetwork: {subnet: 10.1.1.0/24, gateway: 10.1.1.1}\nnodes:\n  nodo1: {address: 10.1.1.101, groups: [nodos]}\n  nodo2: {address: 10.1.1.102, groups: [nodos]}\n  dns: {address: 10.1.1.103, groups: [servidor_dns]}\nvars: {domain: example.com}\n";

#[test]
fn loads_default_lab() {
    let inv = load_str(GOOD).unwrap();
    assert_eq!(inv.nodes.len(), 3);
    assert_eq!(inv.provider.name, "made");
    assert_eq!(inv.nic(), "host0");
    let sel: Vec<_> = inv
        .select("nodos")
        .unwrap()
        .iter()
        .map(|n| n.name.clone())
        .collect();
    assert_eq!(sel, ["nodo1", "nodo2"]);
    assert_eq!(inv.select("all").unwrap().len(), 3);
    assert_eq!(inv.select("nope").unwrap_err(), "nope");
    assert_eq!(inv.bridge_name(), "lab-ha");
}

#[test]
fn rejects_address_outside_subnet() {
    let e = load_str(&GOOD.replace("10.1.1.103", "10.2.1.103")).unwrap_err();
    assert!(format!("{e}").contains("outside the lab subnet"), "{e}");
    assert_eq!(crate::error::exit_code(&e), 2);
}

#[test]
fn rejects_duplicate_address() {
    let e = load_str(&GOOD.replace("10.1.1.103", "10.1.1.102")).unwrap_err();
    assert!(format!("{e}").contains("already used by node nodo2"), "{e}");
}

#[test]
fn unknown_key_names_line() {
    let e = load_str(&GOOD.replace("groups: [servidor_dns]", "grups: [x]")).unwrap_err();
    let m = format!("{e}");
    assert!(
        m.contains("inventory.yaml:6:") && m.contains("grups") && m.contains("fix:"),
        "{m}"
    );
}

#[test]
fn subnet_math() {
    let s = Subnet::parse("10.1.1.7/24").unwrap();
    assert_eq!(s.to_string(), "10.1.1.0/24");
    assert!(s.contains("10.1.1.200".parse().unwrap()));
    assert!(!s.contains("10.1.2.1".parse().unwrap()));
    assert_eq!(s.netmask().to_string(), "255.255.255.0");
}
