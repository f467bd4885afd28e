//! `labctl verify` against real labs: each shipped
//! scenario configured on fresh nspawn nodes passes `verify`; a lab broken on
//! purpose fails with the right check named; the failover and node_down
//! figures are printed (`FIGURE ...` lines in the log); and a soak of the
//! failover cluster under CPU load sees no spurious failover or membership
//! change.
//!
//! One lab (`vlab`, 10.1.5.0/24) at a time (the lab tests' shared lock and
//! common lab, tests/common/lab.rs), rebuilt from fresh nodes (`destroy` +
//! `up`) for each scenario; destroyed also on panic, and each test checks at
//! the end that nothing of it is left. They need root, like the other lab
//! tests (CI runs as root).
//!
//! Nothing here asserts a duration: the times are printed; the failover
//! bound is the scenario's own `within:` (the product's check).

use crate::common;

use common::lab::one_at_a_time;
use labctl::checks::cluster::{parse_crm_mon, CrmStatus};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const NET: &str = "10.1.5";

/// The lab tests' common lab ([`common::lab::Lab`]: a copy of the project as
/// lab `vlab` on 10.1.5.0/24, destroyed on drop, also on panic) with what the
/// verify tests add: fresh nodes, timed configure, `verify --json`, commands
/// as root on a node, the cluster's state.
struct Lab(common::lab::Lab);

impl std::ops::Deref for Lab {
    type Target = common::lab::Lab;
    fn deref(&self) -> &common::lab::Lab {
        &self.0
    }
}

impl Lab {
    fn new() -> Lab {
        Lab(common::lab::Lab::new("vlab", NET))
    }

    /// Fresh nodes: `destroy` + `up` (again, if a node failed to boot).
    fn fresh(&self) {
        for attempt in 1..=3 {
            self.labctl(&["destroy"]);
            let out = self.labctl(&["up"]);
            if out.status.success() {
                return;
            }
            eprintln!("`up` failed (attempt {attempt} of 3); trying again from scratch");
        }
        panic!("`labctl up` failed 3 times");
    }

    /// `configure SCENARIO` (must succeed), with its time printed.
    fn configure(&self, scenario: &str) {
        let t = Instant::now();
        self.ok(&["configure", scenario]);
        eprintln!(
            "FIGURE configure {scenario}: {:.0} s",
            t.elapsed().as_secs_f64()
        );
    }

    /// `verify [ARGS] --json`: the report.
    fn verify(&self, args: &[&str]) -> Report {
        let mut a = vec!["--json", "verify"];
        a.extend_from_slice(args);
        let out = self.labctl(&a);
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "verify --json printed no JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(
            out.status.success(),
            j["passed"] == true,
            "exit code and `passed` disagree: {j}"
        );
        Report(j)
    }

    /// A command as root on a node (`labctl ssh NODE -- sudo sh -c SCRIPT`).
    fn root(&self, node: &str, script: &str) -> Output {
        self.labctl(&["ssh", node, "--", "sudo", "sh", "-c", &shell_quote(script)])
    }

    /// crm_mon on a node, parsed.
    fn crm(&self, node: &str) -> Result<CrmStatus, String> {
        let out = Command::new(env!("CARGO_BIN_EXE_labctl"))
            .arg("-i")
            .arg(self.inv())
            .args([
                "ssh",
                node,
                "--",
                "sudo",
                "crm_mon",
                "-1",
                "--output-as=xml",
            ])
            .output()
            .map_err(|e| e.to_string())?;
        let s = String::from_utf8_lossy(&out.stdout);
        match s.find('<') {
            Some(i) => parse_crm_mon(&s[i..]),
            None => Err(format!(
                "crm_mon on {node}: {}",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }

    /// `Ring ID:` of `corosync-quorumtool -s` on a node.
    fn ring_id(&self, node: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_labctl"))
            .arg("-i")
            .arg(self.inv())
            .args(["ssh", node, "--", "sudo", "corosync-quorumtool", "-s"])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout);
        s.lines()
            .find(|l| l.trim_start().starts_with("Ring ID"))
            .map(|l| {
                l.split(':')
                    .skip(1)
                    .collect::<Vec<_>>()
                    .join(":")
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|| format!("(no ring id: {s})"))
    }

    /// For the CI log when verify failed: what the nodes' cluster and web
    /// services logged lately.
    fn diagnose(&self) {
        for n in ["nodo1", "nodo2", "dns"] {
            self.root(
                n,
                "journalctl --no-pager -o short-precise --since -3min -u corosync -u pacemaker -u apache2 -u named -u haproxy -u dnsmasq | grep -v 'debug' | tail -n 60",
            );
        }
    }

    /// Destroy now and check nothing is left (the guard destroys again, harmlessly).
    fn finish(&self) {
        self.ok(&["destroy"]);
        self.assert_gone();
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A `verify --json` report.
struct Report(serde_json::Value);

impl Report {
    fn passed(&self) -> bool {
        self.0["passed"] == true
    }

    fn checks(&self) -> Vec<&serde_json::Value> {
        self.0["checks"].as_array().unwrap().iter().collect()
    }

    /// The checks whose name starts with `prefix` (names default to the kind first).
    fn named(&self, prefix: &str) -> Vec<&serde_json::Value> {
        self.checks()
            .into_iter()
            .filter(|c| c["name"].as_str().unwrap_or("").starts_with(prefix))
            .collect()
    }

    fn failed_names(&self) -> Vec<String> {
        self.checks()
            .into_iter()
            .filter(|c| c["passed"] != true)
            .map(|c| c["name"].as_str().unwrap_or("").to_string())
            .collect()
    }

    fn assert_passed(&self, lab: &Lab, what: &str) {
        if !self.passed() {
            lab.diagnose();
        }
        assert!(self.passed(), "{what}: verify failed: {:#}", self.0);
    }

    /// Print the failover / node_down / recovery figures for the CI log.
    fn print_figures(&self, scenario: &str) {
        if let Some(ms) = self.0["failover_ms"].as_u64() {
            eprintln!("FIGURE {scenario} failover: {ms} ms");
        }
        for c in self.checks() {
            let name = c["name"].as_str().unwrap_or("");
            let kind = ["node_down", "service_recovery", "failover"]
                .into_iter()
                .find(|k| name.starts_with(k));
            if let (Some(k), Some(ms)) = (kind, c["ms"].as_u64()) {
                eprintln!("FIGURE {scenario} {k}: {ms} ms ({name})");
            }
        }
    }
}

/// 01: verify passes; bind stopped → the dns checks fail (named); one A
/// record removed from the zone → the round-robin dns check fails.
#[test]
fn lab_01_passes_and_names_the_broken_dns() {
    let _one = one_at_a_time();
    let lab = Lab::new();
    lab.fresh();
    let s01 = "scenarios/01-dns-round-robin.yaml";
    lab.configure(s01);
    let r = lab.verify(&[s01]);
    r.assert_passed(&lab, "01 configured");
    let rr = "dns www.example.com A @dns";
    assert_eq!(r.named(rr).len(), 1, "the round-robin check: {:#}", r.0);

    // bind stopped: the dns check fails, named, and so does verify
    let out = lab.root("dns", "systemctl stop named");
    assert!(out.status.success());
    let r = lab.verify(&[s01]);
    assert!(!r.passed());
    let dns = r.named(rr);
    assert_eq!(dns[0]["passed"], false, "{:#}", r.0);
    eprintln!("with bind stopped: FAILED {:?}", r.failed_names());

    // bind back: passes again
    assert!(lab.root("dns", "systemctl start named").status.success());
    lab.verify(&[s01])
        .assert_passed(&lab, "01 with bind started again");

    // the zone with one A record for www (a copy of 01 whose dns_records lists
    // nodo1 only): the round-robin check fails, saying what is missing
    let one = std::fs::read_to_string(lab.path(s01)).unwrap().replace(
        "- {name: www, type: A, group: nodos}",
        "- {name: www, type: A, value: \"{{ nodes.nodo1.address }}\"}",
    );
    assert!(one.contains("nodes.nodo1.address }}\"}"), "{one}");
    std::fs::write(lab.path("scenarios/01-one-record.yaml"), one).unwrap();
    lab.configure("scenarios/01-one-record.yaml");
    let r = lab.verify(&[s01]);
    assert!(!r.passed());
    let dns = r.named(rr);
    assert_eq!(dns[0]["passed"], false, "{:#}", r.0);
    let detail = dns[0]["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("missing {NET}.102")), "{detail}");
    eprintln!("with one A record: FAILED {:?}", r.failed_names());

    lab.finish();
}

/// 04 (scenario.yaml): verify passes, failover time printed; a soak of at
/// least two minutes with both members under CPU load sees no failover and
/// no membership change; pacemaker stopped on both nodes → `cluster` fails.
#[test]
fn lab_04_failover_soak_and_stopped_cluster() {
    let _one = one_at_a_time();
    let lab = Lab::new();
    lab.fresh();
    lab.configure("scenario.yaml");
    let r = lab.verify(&["scenario.yaml"]);
    r.print_figures("04");
    r.assert_passed(&lab, "04 configured");
    assert!(r.0["failover_ms"].as_u64().is_some(), "{:#}", r.0);

    soak(&lab);

    // pacemaker stopped on both members: the cluster check fails, named
    for n in ["nodo1", "nodo2"] {
        assert!(lab.root(n, "systemctl stop pacemaker").status.success());
    }
    let r = lab.verify(&["scenario.yaml", "--skip", "failover"]);
    assert!(!r.passed());
    let c = r.named("cluster");
    assert_eq!(c.len(), 1, "{:#}", r.0);
    assert_eq!(c[0]["passed"], false, "{:#}", r.0);
    eprintln!("with pacemaker stopped: FAILED {:?}", r.failed_names());

    lab.finish();
}

/// How long the soak watches (at least two minutes).
const SOAK: Duration = Duration::from_secs(140);

/// Both members busy (two spinning shells and a loop of synced 200 MB disk
/// writes each, for a little longer than the soak) while the cluster is watched every 5 s: the VIP stays where it is,
/// both nodes stay online, and corosync's ring id (which changes with every
/// membership change) is the same at the end as at the start.
fn soak(lab: &Lab) {
    // the cluster has just seen a failover and a rejoin: let it settle
    let t = Instant::now();
    let before = loop {
        match lab.crm("nodo1") {
            Ok(st)
                if st.nodes.iter().filter(|n| n.online).count() == 2
                    && st.started_on("VirtualIP").is_some_and(|w| w.len() == 1) =>
            {
                break st
            }
            other => {
                assert!(
                    t.elapsed() < Duration::from_secs(120),
                    "the cluster did not settle before the soak: {other:?}"
                );
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    };
    std::thread::sleep(Duration::from_secs(10));
    let vip_node = before.started_on("VirtualIP").unwrap()[0].clone();
    let rings: Vec<String> = ["nodo1", "nodo2"].iter().map(|n| lab.ring_id(n)).collect();
    eprintln!("soak: VirtualIP on {vip_node}; ring ids {rings:?}");

    let secs = SOAK.as_secs() + 15;
    for n in ["nodo1", "nodo2"] {
        let out = lab.root(
            n,
            &format!(
                "for i in 1 2; do setsid timeout {secs} sh -c 'while :; do :; done' </dev/null >/dev/null 2>&1 & done; \
                 setsid timeout {secs} sh -c 'while :; do dd if=/dev/zero of=/var/tmp/soak bs=1M count=200 conv=fsync; rm -f /var/tmp/soak; done' </dev/null >/dev/null 2>&1 & \
                 echo started"
            ),
        );
        assert!(out.status.success());
    }
    let t = Instant::now();
    let mut polls = 0;
    let mut changes = Vec::new();
    while t.elapsed() < SOAK {
        std::thread::sleep(Duration::from_secs(5));
        polls += 1;
        let at = t.elapsed().as_secs();
        match lab.crm("nodo1") {
            Ok(st) => {
                for n in &st.nodes {
                    if !n.online {
                        changes.push(format!("{at} s: {} offline", n.name));
                    }
                }
                match st.started_on("VirtualIP") {
                    Some(w) if w == [vip_node.clone()] => {}
                    w => changes.push(format!("{at} s: VirtualIP on {w:?}, not {vip_node}")),
                }
            }
            Err(e) => changes.push(format!("{at} s: crm_mon failed: {e}")),
        }
    }
    let load = lab.root("nodo1", "cat /proc/loadavg; pgrep -c -f 'while :' || true");
    eprintln!(
        "soak: load inside nodo1 at the end: {}",
        String::from_utf8_lossy(&load.stdout).trim()
    );
    let after: Vec<String> = ["nodo1", "nodo2"].iter().map(|n| lab.ring_id(n)).collect();
    for n in ["nodo1", "nodo2"] {
        lab.root(n, "pkill -f 'while :' || true; rm -f /var/tmp/soak");
    }
    eprintln!(
        "soak: {polls} polls over {} s under load; ring ids after {after:?}; changes: {changes:?}",
        t.elapsed().as_secs()
    );
    assert_eq!(rings, after, "corosync membership changed during the soak");
    assert!(
        changes.is_empty(),
        "the cluster changed during the soak: {changes:?}"
    );
}

/// 02, 03 and 05, each on fresh nodes: configure → verify passes, including
/// the node_down checks (02, 03), service_recovery and failover (05).
#[test]
fn lab_02_03_05_pass() {
    let _one = one_at_a_time();
    let lab = Lab::new();
    for (short, s) in [
        ("02", "scenarios/02-dns-delegation.yaml"),
        ("03", "scenarios/03-haproxy.yaml"),
        ("05", "scenarios/05-ip-failover-apache.yaml"),
    ] {
        lab.fresh();
        lab.configure(s);
        let r = lab.verify(&[s]);
        r.print_figures(short);
        r.assert_passed(&lab, short);
        if short != "05" {
            assert_eq!(r.named("node_down").len(), 1, "{:#}", r.0);
        } else {
            assert!(r.0["failover_ms"].as_u64().is_some(), "{:#}", r.0);
            assert_eq!(r.named("service_recovery").len(), 1, "{:#}", r.0);
        }
    }
    lab.finish();
}
