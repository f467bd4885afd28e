//! Property tests ("fuzzing") of everything labctl reads from the user: the
//! inventory and scenario parsers, the planning that renders a scenario for each
//! host, and template loading and rendering.
//!
//! The property is the same everywhere: whatever the text, labctl never panics,
//! and when it refuses the input the error is a user error (exit code 2).
//!
//! Inputs come from four sources: valid files with random edits (insertions,
//! deletions, duplicated lines), YAML-ish character soup, arbitrary Unicode, and
//! JSON trees (JSON is YAML) built from the real keys with values of every type.
//!
//! CI runs proptest's default 256 cases per property (a few seconds). A longer run:
//! `PROPTEST_CASES=100000 cargo test --release --test quick fuzz::`.

use labctl::error::exit_code;
use labctl::redact::Redactor;
use labctl::runner::prepare::prepare;
use labctl::scenario::Scenario;
use labctl::templates::Templates;
use proptest::prelude::*;
use serde_json::Value as Json;
use std::path::Path;

const INVENTORY: &str = r#"lab: ha
provider: ssh
network: {subnet: 10.1.1.0/24, gateway: 10.1.1.1}
ssh: {user: root, key: .labctl/id_ed25519, known_hosts: .labctl/known_hosts, port: 22, connect_timeout: 5}
nodes:
  nodo1: {address: 10.1.1.101, groups: [nodos], vars: {weight: 1}}
  nodo2: {address: 10.1.1.102, port: 2222, groups: [nodos]}
  dns:
    address: 10.1.1.103
    groups: [servidor_dns]
group_vars: {nodos: {http_port: 80}, all: {ntp: pool.ntp.org}}
vars: {domain: example.com, www: "www.{{ domain }}"}
secrets: [hacluster_password]
"#;

const SCENARIO: &str = r#"name: fuzz-seed
description: every operation once
vars: {vip: 10.1.1.100, hacluster_password: s3cret-pw}
secrets: [hacluster_password]
plays:
  - name: dns
    hosts: servidor_dns
    vars: {ttl: 60}
    tasks:
      - package: [bind9, dnsutils]
      - template: {src: zone.j2, dest: "/etc/bind/db.{{ domain }}", owner: bind, group: bind, mode: "0644"}
        notify: restart bind9
      - copy: {content: "hello\n", dest: /etc/motd}
      - copy: {generate: authkey, size: 128, dest: /etc/corosync/authkey, mode: "0400"}
      - file: {path: /srv/www, state: directory, mode: "0755"}
      - command: {cmd: "echo hi", creates: /tmp/hi, chdir: /tmp}
      - user: {name: alumno, password: "{{ hacluster_password }}", groups: [sudo]}
    handlers:
      restart bind9: {service: {name: named, state: restarted}}
  - hosts: [nodos, dns]
    tasks:
      - service: {name: apache2, state: started, enabled: true}
      - command: "true"
verify:
  - dns: {server: dns, name: "www.{{ domain }}", expect: ["{{ vip }}"]}
"#;

const TEMPLATE: &str = "$TTL {{ ttl | default(60) }}\n{% for n in groups.nodos %}www IN A {{ nodes[n].address }}\n{% endfor %}{% if domain %}; {{ domain | upper }}{% endif %}\n{# note #}{{ lab.name }}\n";

const INVENTORY_KEYS: &[&str] = &[
    "lab",
    "provider",
    "network",
    "subnet",
    "gateway",
    "ssh",
    "user",
    "key",
    "known_hosts",
    "port",
    "connect_timeout",
    "nodes",
    "nodo1",
    "dns",
    "address",
    "groups",
    "vars",
    "group_vars",
    "secrets",
    "nodos",
    "all",
];

const SCENARIO_KEYS: &[&str] = &[
    "name",
    "description",
    "vars",
    "secrets",
    "plays",
    "verify",
    "hosts",
    "import",
    "tasks",
    "handlers",
    "notify",
    "package",
    "template",
    "copy",
    "file",
    "service",
    "user",
    "command",
    "cluster",
    "src",
    "dest",
    "owner",
    "group",
    "mode",
    "content",
    "generate",
    "size",
    "path",
    "state",
    "cmd",
    "creates",
    "unless",
    "chdir",
    "password",
    "password_hash",
    "enabled",
    "dns",
    "http",
    "members",
    "resources",
];

/// Strings a parser is likely to care about.
const WORDS: &[&str] = &[
    "",
    "all",
    "nodos",
    "web",
    "ha",
    "nspawn",
    "ssh",
    "10.1.1.0/24",
    "10.1.1.1",
    "10.1.1.101",
    "10.1.2.3",
    "999.1.1.1",
    "1.2.3.4/33",
    "0644",
    "rwx",
    "/etc/x",
    "x",
    "zone.j2",
    "nope.j2",
    "started",
    "present",
    "directory",
    "link",
    "{{ domain }}",
    "{{ nope }}",
    "{% if %}",
    "-",
    ":",
    "~",
    "null",
    "yes",
    "NO",
    "1e999",
    "..",
    "../../etc/passwd",
    "0",
    "65536",
];

/// Random edits of a valid file: insert, delete, replace, duplicate a line.
fn mutated(seed: &'static str) -> impl Strategy<Value = String> {
    let edit = (any::<usize>(), 0u8..4, "[ -~\n\t]{0,8}");
    prop::collection::vec(edit, 1..6).prop_map(move |edits| {
        let mut s: Vec<char> = seed.chars().collect();
        for (pos, kind, text) in edits {
            let at = pos % (s.len() + 1);
            let end = (at + text.len() + 1).min(s.len());
            match kind {
                0 => {
                    s.splice(at..at, text.chars());
                }
                1 => {
                    s.drain(at..end);
                }
                2 => {
                    s.splice(at..end, text.chars());
                }
                _ => {
                    let start = s[..at]
                        .iter()
                        .rposition(|c| *c == '\n')
                        .map_or(0, |i| i + 1);
                    let stop = s[at..]
                        .iter()
                        .position(|c| *c == '\n')
                        .map_or(s.len(), |i| at + i + 1);
                    let line: Vec<char> = s[start..stop].to_vec();
                    s.splice(stop..stop, line);
                }
            }
        }
        s.into_iter().collect()
    })
}

/// Characters YAML gives meaning to, in random order.
fn yaml_soup() -> impl Strategy<Value = String> {
    "[a-z_:{}\\[\\],\\- \n\"'#&*!|>0-9./%]{0,300}"
}

/// JSON trees (JSON is valid YAML) with the schema's keys and values of any type.
fn tree(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(Json::from),
        prop::sample::select(WORDS).prop_map(Json::from),
        "[ -~]{0,12}".prop_map(Json::from),
    ];
    leaf.prop_recursive(5, 96, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec((prop::sample::select(keys), inner), 0..6).prop_map(|kv| {
                Json::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
    .prop_map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
}

/// Any text a user might feed labctl as `seed`'s kind of file.
fn yaml_input(seed: &'static str, keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => mutated(seed),
        2 => tree(keys),
        1 => yaml_soup(),
        1 => any::<String>(),
    ]
}

/// Jinja-ish token soup, valid templates with random edits, and arbitrary text.
fn template_input() -> impl Strategy<Value = String> {
    const TOKENS: &[&str] = &[
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        "{%-",
        "-%}",
        " ",
        "\n",
        "x",
        "domain",
        "nodes",
        "groups.nodos",
        "loop.index",
        "if",
        "else",
        "endif",
        "for",
        "in",
        "endfor",
        "set",
        "=",
        "macro",
        "m()",
        "endmacro",
        "include",
        "'t.j2'",
        "'nope.j2'",
        "|",
        "default(1)",
        "upper",
        "reverse_ptr",
        "last_octet",
        "nofilter",
        "(",
        ")",
        "[",
        "]",
        "'",
        "\"",
        "1",
        "0",
        "/",
        "~",
        "range(3)",
        "lab.name",
        "node.address",
        "raw",
        "endraw",
        "not",
        "and",
        ".",
        ",",
        ":",
    ];
    prop_oneof![
        2 => prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|t| t.concat()),
        2 => mutated(TEMPLATE),
        1 => any::<String>(),
    ]
}

/// The outcome every input must have: success, or a user error.
fn user_error_or_ok<T>(what: &str, r: anyhow::Result<T>) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        let code = exit_code(&e);
        prop_assert_eq!(code, 2, "{} gave a non-user error: {:#}", what, e);
        let shown = e.to_string();
        prop_assert!(!shown.is_empty(), "{} gave an empty error", what);
    }
    Ok(())
}

/// A project folder with the valid inventory, templates and files.
fn project() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("templates")).unwrap();
    std::fs::create_dir_all(d.path().join("files")).unwrap();
    std::fs::write(d.path().join("inventory.yaml"), INVENTORY).unwrap();
    std::fs::write(d.path().join("templates/zone.j2"), TEMPLATE).unwrap();
    d
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_seed_files_are_valid() {
    // the mutations start from files that work, so they probe the edges of validity
    let d = project();
    let inv = labctl::providers::load_inventory(&d.path().join("inventory.yaml")).unwrap();
    let s = Scenario::load(&write(d.path(), "scenario.yaml", SCENARIO), d.path()).unwrap();
    let plans = prepare(&inv, &s, None, &mut Redactor::new(), true).unwrap();
    assert_eq!(plans.len(), 3);
}

proptest! {
    #[test]
    fn inventory_parser_never_panics(text in yaml_input(INVENTORY, INVENTORY_KEYS)) {
        let d = project();
        let p = write(d.path(), "inventory.yaml", &text);
        user_error_or_ok("Inventory::load", labctl::providers::load_inventory(&p))?;
    }

    #[test]
    fn scenario_parser_and_planning_never_panic(text in yaml_input(SCENARIO, SCENARIO_KEYS)) {
        let d = project();
        let p = write(d.path(), "scenario.yaml", &text);
        let loaded = Scenario::load(&p, d.path());
        if let Ok(s) = &loaded {
            // planning renders every task for every host, before any host is touched
            let inv = labctl::providers::load_inventory(&d.path().join("inventory.yaml")).unwrap();
            user_error_or_ok("prepare", prepare(&inv, s, None, &mut Redactor::new(), true))?;
        }
        user_error_or_ok("Scenario::load", loaded)?;
    }

    #[test]
    fn templates_never_panic(text in template_input()) {
        let d = project();
        write(&d.path().join("templates"), "t.j2", &text);
        let vars = minijinja::Value::from(minijinja::value::Serde(serde_json::json!({
            "domain": "example.com",
            "ttl": 60,
            "lab": {"name": "ha"},
            "node": {"name": "nodo1", "address": "10.1.1.101"},
            "nodes": {"nodo1": {"address": "10.1.1.101"}, "nodo2": {"address": "10.1.1.102"}},
            "groups": {"nodos": ["nodo1", "nodo2"]},
        })));
        let t = Templates::new(d.path(), &d.path().join("templates"));
        user_error_or_ok("render_file", t.render_file("t.j2", &vars, "scenario.yaml:1:1"))?;
        user_error_or_ok("render_str", t.render_str(&text, &vars, "scenario.yaml:1:1"))?;
    }
}

/// Path segments a hostile scenario or inventory would use.
fn path_input() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just("".to_string()),
        Just(".labctl".to_string()),
        Just("templates".to_string()),
        Just("etc".to_string()),
        Just("link".to_string()),
        "[a-z]{1,6}",
    ];
    (any::<bool>(), prop::collection::vec(seg, 1..8))
        .prop_map(|(abs, segs)| format!("{}{}", if abs { "/" } else { "" }, segs.join("/")))
}

/// Names: what a lab or node name could be written as.
fn name_input() -> impl Strategy<Value = String> {
    "[a-z0-9-]{0,14}"
}

proptest! {
    #[test]
    fn a_path_either_resolves_inside_the_project_or_is_refused(rel in path_input()) {
        let d = project();
        let root = d.path();
        std::fs::create_dir_all(root.join("templates/etc")).unwrap();
        std::fs::write(root.join("templates/etc/f"), "x").unwrap();
        let _ = std::os::unix::fs::symlink("/etc", root.join("templates/link"));
        let real_root = root.canonicalize().unwrap();
        match labctl::project::resolve_inside(root, &root.join("templates"), &rel, "t") {
            Ok(p) => {
                let real = p.canonicalize().unwrap_or(p.clone());
                prop_assert!(real.starts_with(&real_root), "{rel} -> {}", real.display());
            }
            Err(e) => user_error_or_ok("resolve_inside", Err::<(), _>(e))?,
        }
        // labctl owns a file only inside its state folder, never through a link
        let state = root.join(".labctl");
        std::fs::create_dir_all(&state).unwrap();
        let _ = std::os::unix::fs::symlink("/etc", state.join("link"));
        let target = labctl::project::normalize(&state.join(&rel));
        if labctl::project::owned(&state, &target) {
            prop_assert!(target.starts_with(&state) && target != state, "{rel}");
            prop_assert!(!target.starts_with(state.join("link")), "{rel}");
        }
    }

    #[test]
    fn container_names_belong_to_one_lab_and_node(lab in name_input(), node in name_input(), lab2 in name_input(), node2 in name_input()) {
        use labctl::inventory::{valid_lab_name, valid_node_name, Inventory};
        let ok = |l: &str, n: &str| valid_lab_name(l) && valid_node_name(n);
        if ok(&lab, &node) && ok(&lab2, &node2) && (lab != lab2 || node != node2) {
            prop_assert_ne!(Inventory::machine_name(&lab, &node), Inventory::machine_name(&lab2, &node2));
        }
    }

    #[test]
    fn an_accepted_lab_network_is_private_with_room_for_its_nodes(a in any::<u32>(), prefix in 0u8..=32, nodes in 1usize..300) {
        use labctl::inventory::{subnet_problem, Subnet, PRIVATE_RANGES};
        let s = Subnet::parse(&format!("{}/{prefix}", std::net::Ipv4Addr::from(a))).unwrap();
        if subnet_problem(&s, nodes).is_none() {
            let inside = PRIVATE_RANGES.iter().any(|(net, p)| {
                let range = Subnet { network: *net, prefix: *p };
                s.prefix >= *p && range.contains(s.network) && range.contains(s.broadcast())
            });
            prop_assert!(inside, "{s} is not private");
            prop_assert!((1u64 << (32 - s.prefix)) - 2 > nodes as u64);
            prop_assert!(!s.is_host(s.network) && !s.is_host(s.broadcast()));
        }
    }

    #[test]
    fn inventory_networks_and_names_never_panic(a in any::<u32>(), prefix in 0u8..=33, gw in any::<u32>(), node in name_input(), user in "[a-z_\\-\n ]{0,10}") {
        let d = project();
        let text = format!(
            "lab: fz\nnetwork: {{subnet: {}/{prefix}, gateway: {}}}\nssh: {{user: {user:?}}}\nnodes:\n  {node:?}: {{address: {}}}\n",
            std::net::Ipv4Addr::from(a),
            std::net::Ipv4Addr::from(gw),
            std::net::Ipv4Addr::from(a.wrapping_add(5)),
        );
        let p = write(d.path(), "inventory.yaml", &text);
        user_error_or_ok("Inventory::load", labctl::providers::load_inventory(&p))?;
    }
}
