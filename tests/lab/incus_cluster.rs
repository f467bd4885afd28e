//! Labs on an Incus cluster (`provider: incus`, `incus: {remote: …}`): three
//! members on this machine, each its own `incusd` in network and mount
//! namespaces of the test's own, joined into one cluster (see
//! `common::incus_cluster`); labctl runs outside them, on the host, and
//! talks to the cluster as a remote of Incus's client. In one story:
//!
//! - the user's mistakes, one message each (exit 2): a remote the client
//!   does not have, one that does not answer, one that refuses the client's
//!   certificate, a `target:` that is not a member;
//! - lab `icla` pinned to member m2 (`target: m2`), lab `iclb` placed by
//!   Incus's scheduler (its first node; the others pinned to the same
//!   member): each lab's nodes on one member, the two labs on two members,
//!   `status --json` names each node's member;
//! - each lab: `configure scenario.yaml` converges (its packages from this
//!   host's cache through the hop's reverse forwarding), `verify` passes
//!   (failover included), every connection through the SSH hop to its
//!   member (that member's sshd saw the forwardings);
//! - `fail` of the node holding the VIP of lab `icla` → the other node takes
//!   it and the DNS and HTTP checks pass through it;
//! - `destroy` of both → nothing of them in the cluster, nothing on this host;
//!   then the cluster is torn down (nothing left: see the common module).
//!
//! Labs `icla` (10.1.102.0/24) and `iclb` (10.1.103.0/24), members on
//! 10.1.104.0/24; the machine-wide lab-test lock. labctl's image is imported
//! once into the cluster and shared by both labs.

use super::incus::figure;
use crate::common;
use common::incus::inventory;
use common::incus_cluster::{client_certificate, Cluster, REMOTE};
use common::lab::{one_at_a_time, Lab};
use std::time::{Duration, Instant};

/// Lab `lab`'s inventory on the cluster. The failover's bound is 10 s: the
/// story is about reaching and placing the nodes (the 2 s bound is the
/// single-server story's); through the hop, on this 2-core machine shared
/// with other lab tests, it measured 1.7 s idle and up to 4.2 s under load.
fn inv(lab: &str, prefix: &str, section: &str) -> String {
    inventory(lab, prefix, &format!("  failover_within: 10s\n{section}"))
}

/// The member each node of the lab runs on, from `status --json`.
fn members_of(lab: &Lab) -> Vec<String> {
    let status = lab.json(&["status", "--json"]);
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert_eq!(n["state"], "running", "{status}");
            n["member"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

/// `labctl ARGS` must fail with exit 2 and say `says` and a fix.
fn refused(lab: &Lab, args: &[&str], says: &str) {
    let o = lab.labctl(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(says) && err.contains("fix:"), "{err}");
}

/// The user's mistakes about the cluster, each refused before anything is made.
fn mistakes(cluster: &Cluster, lab: &Lab) {
    let own = cluster.section(None);
    let write = |section: &str| {
        std::fs::write(lab.inv(), inv("icla", "10.1.102", section)).unwrap();
    };
    write(&own.replace(&format!("remote: {REMOTE}"), "remote: nope"));
    refused(lab, &["status"], "no remote named `nope`");
    write(&cluster.section(Some("m9")));
    refused(lab, &["up"], "incus.target `m9` is not a member");
    // a remote that does not answer, one that does not trust this client
    let conf = cluster.conf().join("config.yml");
    let before = std::fs::read_to_string(&conf).unwrap();
    let extra =
        "  dead:\n    addr: https://10.1.104.1:8449\n    protocol: incus\n    auth_type: tls\n";
    std::fs::write(
        &conf,
        before.replace("remotes:\n", &format!("remotes:\n{extra}")),
    )
    .unwrap();
    write(&own.replace(&format!("remote: {REMOTE}"), "remote: dead"));
    refused(lab, &["status"], "does not answer");
    std::fs::write(&conf, &before).unwrap();
    let keep = cluster.conf().join("kept");
    std::fs::create_dir_all(&keep).unwrap();
    for f in ["client.crt", "client.key"] {
        std::fs::rename(cluster.conf().join(f), keep.join(f)).unwrap();
    }
    client_certificate(&cluster.conf(), "stranger");
    write(&own);
    refused(lab, &["status"], "does not trust this client");
    for f in ["client.crt", "client.key"] {
        std::fs::rename(keep.join(f), cluster.conf().join(f)).unwrap();
    }
}

/// Configure and verify a lab, every connection through `member`'s hop.
fn converge(cluster: &Cluster, lab: &Lab, prefix: &str, member: &str) {
    let t = Instant::now();
    lab.ok(&["configure", "scenario.yaml"]);
    figure(&format!("first configure scenario.yaml of {}", lab.lab), t);
    let t = Instant::now();
    lab.ok(&["verify"]);
    figure(&format!("verify (failover included) of {}", lab.lab), t);
    let m = cluster.members.iter().find(|m| m.name == member).unwrap();
    let hop = m.hop.as_ref().unwrap();
    for n in [101, 102, 103] {
        let addr = format!("{prefix}.{n}");
        assert!(
            hop.forwardings_to(&addr) > 0,
            "{addr} not reached through {member}"
        );
    }
}

/// Which of nodo1/nodo2 holds the VIP.
fn vip_holder(lab: &Lab, vip: &str) -> Option<&'static str> {
    ["nodo1", "nodo2"].into_iter().find(|n| {
        lab.labctl(&["ssh", n, "--", "ip", "-o", "-4", "addr", "show"])
            .stdout
            .windows(vip.len() + 1)
            .any(|w| w == format!("{vip}/").as_bytes())
    })
}

#[test]
fn incus_cluster_story() {
    let _one = one_at_a_time();
    let t = Instant::now();
    let cluster = Cluster::start();
    figure("3-member Incus cluster up", t);
    let (ok, list) = cluster.incus(&["cluster", "list", "--format", "json"]);
    assert!(ok && list.matches("\"Online\"").count() == 3, "{list}");
    let a = Lab::new("icla", "10.1.102");
    let b = Lab::new("iclb", "10.1.103");
    mistakes(&cluster, &a);

    // icla pinned to m2, iclb where the scheduler puts its first node
    std::fs::write(
        a.inv(),
        inv("icla", "10.1.102", &cluster.section(Some("m2"))),
    )
    .unwrap();
    std::fs::write(b.inv(), inv("iclb", "10.1.103", &cluster.section(None))).unwrap();
    let t = Instant::now();
    a.ok(&["up"]);
    figure(
        "first up of 3 containers on member m2 (image import included)",
        t,
    );
    assert_eq!(members_of(&a), ["m2", "m2", "m2"]);
    let t = Instant::now();
    b.ok(&["up"]);
    figure("up of 3 containers placed by the scheduler", t);
    let mb = members_of(&b);
    assert!(mb.iter().all(|m| m == &mb[0]) && mb[0] != "m2", "{mb:?}");
    assert!(
        !std::path::Path::new("/sys/class/net/lab-icla").exists(),
        "bridge made here"
    );

    converge(&cluster, &a, "10.1.102", "m2");
    converge(&cluster, &b, "10.1.103", &mb[0]);

    // a power cut of the VIP's node: the other one takes it
    let vip = "10.1.102.100";
    let holder = vip_holder(&a, vip).expect("no node holds the VIP");
    let other = if holder == "nodo1" { "nodo2" } else { "nodo1" };
    a.ok(&["fail", holder]);
    let t = Instant::now();
    while vip_holder(&a, vip) != Some(other) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{other} did not take the VIP"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    figure("VIP moved after the power cut", t);
    a.ok(&["verify", "--skip", "cluster", "--skip", "failover"]);

    for lab in [&a, &b] {
        let t = Instant::now();
        lab.ok(&["destroy"]);
        figure(&format!("destroy of {}", lab.lab), t);
        lab.assert_gone();
        let project = format!("labctl-{}", lab.lab);
        let (_, projects) = cluster.incus(&["project", "list", "--format", "json"]);
        assert!(!projects.contains(&format!("\"{project}\"")), "{projects}");
        let (_, nets) = cluster.incus(&["network", "list", "--format", "json"]);
        assert!(!nets.contains(&format!("\"lab-{}\"", lab.lab)), "{nets}");
    }
    let (_, all) = cluster.incus(&["list", "--all-projects", "--format", "json"]);
    assert_eq!(all.trim(), "[]", "{all}");
    drop((a, b));
    let t = Instant::now();
    drop(cluster);
    figure("cluster torn down", t);
}
