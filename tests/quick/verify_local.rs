//! `labctl verify` without a lab: a tiny DNS responder (hickory-proto over a
//! UdpSocket, rotating its answers like bind9) and a tiny web server on
//! loopback addresses, with an inventory (`provider: ssh`) whose nodes live on
//! 127.0.0.x. No packet leaves loopback.

use crate::common;

use common::fake::{FakeDns, FakeWeb, Order, Threads};

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const N1: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const N2: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A project folder with an inventory whose nodes live on loopback.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("inventory.yaml"),
            "lab: local\nprovider: ssh\nssh: {user: root}\nnodes:\n  nodo1: {address: 127.0.0.1, groups: [nodos]}\n  nodo2: {address: 127.0.0.2, groups: [nodos]}\n  dns: {address: 127.0.0.1, port: 2222}\nvars: {domain: example.com}\n",
        )
        .unwrap();
        Lab { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn scenario(&self, dns_port: u16, web_port: u16, extra: &str) -> PathBuf {
        let s = format!(
            r#"name: local-rr
vars: {{dns_port: {dns_port}, web: "www.{{{{ domain }}}}:{web_port}"}}
verify:
  - dns: {{server: dns, port: {dns_port}, name: "www.{{{{ domain }}}}", expect: ["{{{{ nodes.nodo1.address }}}}", "{{{{ nodes.nodo2.address }}}}"], round_robin: true, timeout: 500ms}}
  - name: both web nodes answer
    http: {{url: "http://{{{{ web }}}}/info.txt", dns: dns, dns_port: {dns_port}, nodes: [nodo1, nodo2], requests: 10, timeout: 1s}}
  - http: {{url: "http://{{{{ nodes.nodo2.address }}}}:{web_port}/info.txt", same_node: true, expect_body: nodo2, requests: 3}}
{extra}"#
        );
        let p = self.path("scenario.yaml");
        std::fs::write(&p, s).unwrap();
        p
    }

    /// `verify SCENARIO --json`, which must exit with `code`: its report.
    fn report(&self, scenario: &str, code: i32) -> serde_json::Value {
        let o = self.labctl(&["verify", scenario, "--json"]);
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
        json(&o)
    }

    fn labctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_labctl"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

/// The `checks` entry with this name.
fn check<'a>(j: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {j}"))
}

/// Assert that check `name` of report `j` failed, its detail saying `text`.
fn failed_with(j: &serde_json::Value, name: &str, text: &str) {
    let c = check(j, name);
    assert_eq!(c["passed"], false, "{c}");
    let detail = c["detail"].as_str().unwrap();
    assert!(detail.contains(text), "{name}: {detail}");
}

/// A DNS server answering `www.example.com` with `answers` in `order`, the
/// web nodes, and the project with the scenario of both.
fn setup(answers: Vec<Ipv4Addr>, order: Order) -> (FakeDns, FakeWeb, Lab) {
    let dns = FakeDns::start("www.example.com", answers, order);
    let web = web();
    let lab = Lab::new();
    lab.scenario(dns.port, web.port, "");
    (dns, web, lab)
}

fn web() -> FakeWeb {
    FakeWeb::start(&[(N1, "nodo1"), (N2, "nodo2")])
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_working_lab_passes() {
    let (dns, web, lab) = setup(vec![N1, N2], Order::Cyclic);
    let o = lab.labctl(&["verify", "scenario.yaml"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("PASS  dns www.example.com A @dns: "), "{out}");
    assert!(
        out.contains("first answer varied over 10 queries (127.0.0.1 ×5, 127.0.0.2 ×5)"),
        "{out}"
    );
    assert!(out.contains("PASS  both web nodes answer: 200 ×10 from 127.0.0.1, 127.0.0.2; answered by nodo1 ×5, nodo2 ×5"), "{out}");
    assert!(
        out.contains(&format!(
            "PASS  http http://127.0.0.2:{}/info.txt from one node",
            web.port
        )),
        "{out}"
    );
    assert!(
        out.contains("verify local-rr: all 3 checks passed"),
        "{out}"
    );
    // 10 round-robin queries, then one per HTTP request
    assert_eq!(dns.queries.load(Ordering::SeqCst), 20);
    // the URL's host went out as the Host header
    let hosts = web.hosts.lock().unwrap().clone();
    assert!(
        hosts.contains(&format!("www.example.com:{}", web.port)),
        "{hosts:?}"
    );
}

#[test]
fn json_has_the_exact_shape() {
    let (_dns, _web, lab) = setup(vec![N1, N2], Order::Cyclic);
    let j = lab.report("scenario.yaml", 0);
    let mut keys: Vec<&String> = j.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["checks", "failover_ms", "passed"]);
    assert_eq!(j["passed"], true);
    assert!(j["failover_ms"].is_null());
    let checks = j["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3);
    for c in checks {
        let mut keys: Vec<&String> = c.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["detail", "ms", "name", "passed"], "{c}");
        assert!(c["name"].is_string() && c["detail"].is_string() && c["passed"].is_boolean());
        assert!(c["ms"].is_u64(), "{c}");
    }
    assert_eq!(checks[1]["name"], "both web nodes answer");
}

#[test]
fn dns_server_down_fails_the_dns_check_by_name() {
    let web = web();
    let lab = Lab::new();
    lab.scenario(free_udp_port(), web.port, "");
    let t = Instant::now();
    let j = lab.report("scenario.yaml", 1);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(j["passed"], false);
    failed_with(
        &j,
        "dns www.example.com A @dns",
        "no DNS server answers on 127.0.0.1:",
    );
    failed_with(
        &j,
        "both web nodes answer",
        "resolving www.example.com through dns",
    );
    // the check by address does not need DNS
    assert_eq!(j["checks"][2]["passed"], true, "{j}");

    // text: one FAIL line per failed check and a summary naming them
    let o = lab.labctl(&["verify", "scenario.yaml"]);
    let out = stdout(&o);
    assert!(out.contains("FAIL  dns www.example.com A @dns: "), "{out}");
    assert!(
        out.contains("2 of 3 checks FAILED: dns www.example.com A @dns; both web nodes answer"),
        "{out}"
    );
}

#[test]
fn a_silent_dns_server_times_out_instead_of_hanging() {
    let (dns, _web, lab) = setup(vec![N1, N2], Order::Silent);
    let t = Instant::now();
    let o = lab.labctl(&["verify", "scenario.yaml", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j = json(&o);
    let detail = check(&j, "dns www.example.com A @dns")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("query 1 of 10: no answer from the DNS server 127.0.0.1:")
            && detail.contains("within 500 ms"),
        "{detail}"
    );
    // dns gives up after 500 ms, http after its 1 s DNS timeout
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(
        dns.queries.load(Ordering::SeqCst),
        4,
        "each lookup is sent twice at most"
    );
}

#[test]
fn a_missing_a_record_fails_round_robin_and_the_node_check() {
    let dns = FakeDns::start("www.example.com", vec![N1], Order::Cyclic);
    let web = web();
    let lab = Lab::new();
    lab.scenario(
        dns.port,
        web.port,
        &format!("  - name: round robin only\n    dns: {{server: dns, port: {}, name: www.example.com, round_robin: true}}\n", dns.port),
    );
    let j = lab.report("scenario.yaml", 1);
    failed_with(&j, "dns www.example.com A @dns", "missing 127.0.0.2");
    failed_with(
        &j,
        "round robin only",
        "round robin needs at least two answers; got 1",
    );
    failed_with(&j, "both web nodes answer", "nodo2 never answered over");
}

#[test]
fn a_fixed_order_fails_round_robin() {
    let (_dns, _web, lab) = setup(vec![N1, N2], Order::Fixed);
    let j = lab.report("scenario.yaml", 1);
    failed_with(
        &j,
        "dns www.example.com A @dns",
        "the order never varied over 10 queries (first answer always 127.0.0.1 ×10)",
    );
    assert_eq!(check(&j, "both web nodes answer")["passed"], false);
}

#[test]
fn http_status_body_and_same_node_failures_are_named() {
    let dns = FakeDns::start("www.example.com", vec![N1, N2], Order::Cyclic);
    let web = web();
    let lab = Lab::new();
    let p = lab.path("s.yaml");
    std::fs::write(
        &p,
        format!(
            r#"verify:
  - name: missing page
    http: {{url: "http://127.0.0.1:{w}/nope", expect_status: 200}}
  - name: wrong body
    http: {{url: "http://127.0.0.1:{w}/info.txt", expect_body: nodo2}}
  - name: active/passive
    http: {{url: "http://www.example.com:{w}/info.txt", dns: dns, dns_port: {d}, same_node: true, requests: 4}}
  - name: nobody listens
    http: {{url: "http://127.0.0.1:{closed}/info.txt", timeout: 500ms}}
"#,
            w = web.port,
            d = dns.port,
            closed = free_udp_port()
        ),
    )
    .unwrap();
    let j = lab.report("s.yaml", 1);
    failed_with(&j, "missing page", "answered status 404 (expected 200)");
    failed_with(&j, "wrong body", "does not contain `nodo2`: \"nodo1\"");
    failed_with(&j, "active/passive", "answers came from more than one node");
    failed_with(&j, "nobody listens", "cannot connect to 127.0.0.1:");
    assert!(
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == false),
        "{j}"
    );
}

#[test]
fn without_an_argument_it_uses_the_last_applied_scenario() {
    let dns = FakeDns::start("www.example.com", vec![N1, N2], Order::Cyclic);
    let web = web();
    let lab = Lab::new();
    let o = lab.labctl(&["verify"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("no scenario given") && e.contains("labctl verify scenario.yaml"),
        "{e}"
    );
    let s = lab.scenario(dns.port, web.port, "");
    std::fs::create_dir_all(lab.path(".labctl")).unwrap();
    std::fs::write(
        lab.path(".labctl/last-scenario"),
        s.to_string_lossy().as_bytes(),
    )
    .unwrap();
    let o = lab.labctl(&["verify"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("verify local-rr: all 3 checks passed"));
}

#[test]
fn bad_input_is_exit_2_before_anything_is_sent() {
    let dns = FakeDns::start("www.example.com", vec![N1, N2], Order::Cyclic);
    let lab = Lab::new();
    let cases = [
        (
            "  - dns: {server: nodo9, name: x}\n",
            "`dns: server: nodo9` is not a node",
        ),
        (
            "  - dns: {server: dns, name: \"{{ nope }}\"}\n",
            "undefined",
        ),
        (
            "  - http: {url: \"http://www.example.com/\"}\n",
            "has no `dns:` server",
        ),
        (
            "  - dns: {server: dns, name: x, colour: blue}\n",
            "unknown field `colour`",
        ),
        (
            "  - failover: {vip: 10.1.1.100}\n",
            "missing field `within`",
        ),
        (
            "  - cluster: {nodes: [nodo1], resources: [{id: X, where: nodo1}]}\n",
            "unknown field `where`",
        ),
    ];
    for (check, msg) in cases {
        std::fs::write(
            lab.path("bad.yaml"),
            format!(
                "verify:\n  - dns: {{server: dns, port: {}, name: www.example.com}}\n{check}",
                dns.port
            ),
        )
        .unwrap();
        let o = lab.labctl(&["verify", "bad.yaml"]);
        assert_eq!(o.status.code(), Some(2), "{check}: {}", stderr(&o));
        assert!(stderr(&o).contains(msg), "{check}: {}", stderr(&o));
        assert!(stderr(&o).contains("bad.yaml"), "{}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
    assert_eq!(
        dns.queries.load(Ordering::SeqCst),
        0,
        "a query was sent despite bad input"
    );
    let o = lab.labctl(&["verify", "bad.yaml", "--skip", "dsn"]);
    assert_eq!(o.status.code(), Some(2));
    std::fs::write(lab.path("empty.yaml"), "name: e\n").unwrap();
    let o = lab.labctl(&["verify", "empty.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no plays and no checks"),
        "{}",
        stderr(&o)
    );
    std::fs::write(
        lab.path("plays-only.yaml"),
        "plays:\n  - hosts: all\n    tasks:\n      - file: {path: /tmp/x, state: directory}\n",
    )
    .unwrap();
    let o = lab.labctl(&["verify", "plays-only.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no `verify:` checks"), "{}", stderr(&o));
}

#[test]
fn skip_leaves_out_a_kind() {
    let dns = FakeDns::start("www.example.com", vec![N1, N2], Order::Cyclic);
    let web = web();
    let lab = Lab::new();
    lab.scenario(
        dns.port,
        web.port,
        "  - failover: {vip: 127.0.0.1, within: 2s}\n",
    );
    let o = lab.labctl(&["verify", "scenario.yaml", "--skip", "failover", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["checks"].as_array().unwrap().len(), 3);
}

#[test]
fn a_lab_that_is_not_up_gets_no_packets() {
    if !common::lab::is_root() {
        eprintln!("verify on an nspawn lab needs root: this test needs root");
        return;
    }
    // an nspawn lab whose bridge does not exist: nothing may be sent to 10.x
    let lab = Lab::new();
    std::fs::write(
        lab.path("inventory.yaml"),
        "lab: nolab\nnetwork: {subnet: 10.251.7.0/24, gateway: 10.251.7.1}\nnodes:\n  nodo1: {address: 10.251.7.101}\n  dns: {address: 10.251.7.103}\n",
    )
    .unwrap();
    std::fs::write(
        lab.path("s.yaml"),
        "verify:\n  - dns: {server: dns, name: www.example.com}\n  - http: {url: http://10.251.7.101/info.txt}\n  - cluster: {nodes: [nodo1]}\n",
    )
    .unwrap();
    let o = lab.labctl(&["verify", "s.yaml", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j = json(&o);
    for c in j["checks"].as_array().unwrap() {
        assert_eq!(c["passed"], false);
        let d = c["detail"].as_str().unwrap();
        assert!(
            d.contains("lab `nolab` is not up") && d.contains("refusing"),
            "{d}"
        );
    }
}

#[test]
fn cluster_check_reports_why_crm_mon_cannot_answer() {
    // a real sshd on loopback: the check logs in and runs crm_mon, which is
    // missing here (or finds no cluster): the check fails with that reason
    let p = common::Project::new(1);
    p.write(
        "scenario.yaml",
        "verify:\n  - cluster: {nodes: [n1], resources: [VirtualIP]}\n",
    );
    let o = p.labctl(&["verify", "scenario.yaml", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}{}",
        common::stdout(&o),
        common::stderr(&o)
    );
    let j = common::json(&o);
    let c = &j["checks"][0];
    assert_eq!(c["name"], "cluster n1 VirtualIP");
    assert_eq!(c["passed"], false);
    let d = c["detail"].as_str().unwrap();
    assert!(d.contains("crm_mon"), "{d}");
}

#[test]
fn the_library_entry_point_runs_checks() {
    let dns = FakeDns::start("www.example.com", vec![N1, N2], Order::Cyclic);
    let web = web();
    let lab = Lab::new();
    let s = lab.scenario(dns.port, web.port, "");
    let inv = labctl::providers::load_inventory(&lab.path("inventory.yaml")).unwrap();
    let scenario = labctl::scenario::Scenario::load(Path::new(&s), &inv.dir).unwrap();
    let opts = labctl::verify::VerifyOptions::default();
    let r = labctl::verify::run_checks(&inv, &scenario, &opts).unwrap();
    assert!(r.passed(), "{}", r.text());
    assert_eq!(r.checks.len(), 3);
    assert!(r.check("both web nodes answer").unwrap().passed);
    assert_eq!(r.failover_ms, None);
    let _ = SocketAddr::from((N1, 0));
}

/// A VIP on 127.0.0.1 served by `nodo1` until a fake `labctl fail` (a script
/// that drops a file) cuts it: then nothing answers for `gap`, then `nodo2` does.
struct FlipWeb {
    port: u16,
    _threads: Threads,
}

impl FlipWeb {
    fn start(flag: PathBuf, gap: Duration) -> FlipWeb {
        let l = TcpListener::bind((N1, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut cut: Option<Instant> = None;
            while !s2.load(Ordering::SeqCst) {
                let Ok((mut c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                if cut.is_none() && flag.exists() {
                    cut = Some(Instant::now());
                }
                let name = match cut {
                    None => "nodo1",
                    Some(t) if t.elapsed() < gap => continue, // dropped: the VIP is down
                    Some(_) => "nodo2",
                };
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf);
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\n{name}\n"
                );
            }
        });
        FlipWeb {
            port,
            _threads: Threads {
                stop,
                handles: vec![handle],
            },
        }
    }
}

/// A power switch that logs `fail`/`up` calls and "cuts the power" by
/// creating `cut`; `fail` fails when `broken`.
struct FakePower {
    cut: PathBuf,
    broken: bool,
    calls: std::sync::Mutex<String>,
}

impl labctl::verify::Power for FakePower {
    fn switch(
        &self,
        _inv: &labctl::inventory::Inventory,
        node: &str,
        on: bool,
    ) -> Result<(), String> {
        let verb = if on { "up" } else { "fail" };
        self.calls
            .lock()
            .unwrap()
            .push_str(&format!("{verb} {node}\n"));
        if !on {
            if self.broken {
                return Err("power switch broken".into());
            }
            std::fs::write(&self.cut, "").map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

fn run_failover(within: &str, broken: bool) -> (labctl::verify::VerifyReport, String) {
    let lab = Lab::new();
    let web = FlipWeb::start(lab.path("cut"), Duration::from_millis(400));
    std::fs::write(
        lab.path("s.yaml"),
        format!(
            "name: fo\nverify:\n  - failover: {{vip: 127.0.0.1, url: \"http://127.0.0.1:{}/info.txt\", within: {within}, members: [nodo1, nodo2], rejoin: false}}\n",
            web.port
        ),
    )
    .unwrap();
    let inv = labctl::providers::load_inventory(&lab.path("inventory.yaml")).unwrap();
    let scenario = labctl::scenario::Scenario::load(&lab.path("s.yaml"), &inv.dir).unwrap();
    let power = FakePower {
        cut: lab.path("cut"),
        broken,
        calls: Default::default(),
    };
    let opts = labctl::verify::VerifyOptions::default();
    let r = labctl::verify::run_checks_with(&inv, &scenario, &opts, &power, &|_| {}).unwrap();
    let calls = power.calls.lock().unwrap().clone();
    (r, calls)
}

#[test]
fn failover_is_timed_and_the_node_brought_back() {
    let (r, calls) = run_failover("2s", false);
    let c = &r.checks[0];
    assert!(c.passed, "{}", r.text());
    let ms = r.failover_ms.expect("a failover time");
    assert!((400..2000).contains(&ms), "{ms} ms: {}", r.text());
    assert_eq!(c.ms, Some(ms));
    assert!(
        c.detail.starts_with("nodo1 held 127.0.0.1; nodo2 answered"),
        "{}",
        c.detail
    );
    assert!(c.detail.contains("back: nodo1 is up again"), "{}", c.detail);
    assert_eq!(calls, "fail nodo1\nup nodo1\n");
}

#[test]
fn a_slow_failover_fails_with_its_time() {
    let (r, calls) = run_failover("100ms", false);
    let c = &r.checks[0];
    assert!(!c.passed);
    assert!(
        c.detail.starts_with("failover took") && c.detail.contains("(more than 100 ms)"),
        "{}",
        c.detail
    );
    assert!(r.failover_ms.unwrap() >= 400, "{:?}", r.failover_ms);
    assert_eq!(
        calls, "fail nodo1\nup nodo1\n",
        "the node is brought back after a failed check too"
    );
}

#[test]
fn a_power_cut_that_fails_is_reported_and_the_node_brought_back() {
    let (r, calls) = run_failover("2s", true);
    let c = &r.checks[0];
    assert!(!c.passed);
    assert!(
        c.detail.contains("cannot cut the power of nodo1")
            && c.detail.contains("power switch broken"),
        "{}",
        c.detail
    );
    assert_eq!(r.failover_ms, None);
    assert_eq!(c.ms, None);
    assert_eq!(calls, "fail nodo1\nup nodo1\n");
}

#[test]
fn every_shipped_scenario_has_valid_checks() {
    // rendered and resolved against the default inventory; --list sends nothing
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut scenarios = vec![root.join("scenario.yaml")];
    if let Ok(rd) = std::fs::read_dir(root.join("scenarios")) {
        scenarios.extend(
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml")),
        );
    }
    scenarios.retain(|p| p.exists());
    for s in &scenarios {
        let o = Command::new(env!("CARGO_BIN_EXE_labctl"))
            .arg("-i")
            .arg(root.join("inventory.yaml"))
            .args(["verify", "--list", "--json"])
            .arg(s)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}: {}", s.display(), stderr(&o));
        let j = json(&o);
        assert!(
            !j["checks"].as_array().unwrap().is_empty(),
            "{}: {j}",
            s.display()
        );
    }
}

#[test]
fn file_exists_looks_on_the_node_over_ssh() {
    let p = common::Project::new(1);
    p.write("root/n1/www/info.txt", "n1\n");
    let dir = p.path("root/n1/www");
    p.write(
        "s.yaml",
        &format!(
            "name: files\nverify:\n  - name: present\n    file_exists: {{on: n1, path: \"{d}/info.txt\", contains: n1}}\n  - name: absent\n    file_exists: {{on: n1, path: \"{d}/it's gone $(x)\"}}\n  - name: other text\n    file_exists: {{on: n1, path: \"{d}/info.txt\", contains: n2}}\n",
            d = dir.display()
        ),
    );
    let o = p.labctl(&["--json", "verify", "s.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
    let j = common::json(&o);
    let passed = |name: &str| check(&j, name)["passed"].as_bool().unwrap();
    assert!(passed("present"), "{j}");
    assert!(!passed("absent") && !passed("other text"), "{j}");
    let d = check(&j, "absent")["detail"].as_str().unwrap().to_string();
    assert!(d.contains("does not exist on n1"), "{d}");
    let d = check(&j, "other text")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(d.contains("does not hold `n2`"), "{d}");
}
