//! `labctl dashboard` without a lab: the real binary serving a project whose
//! nodes live on loopback (`provider: ssh`), with the fake DNS server and web
//! servers of the verify tests standing in for bind9 and apache2, seen through
//! headless chromium (Debian's `chromium` + `chromium-driver`). No packet
//! leaves loopback.
//!
//! It checks what the page shows (the nodes, the strip with both web nodes),
//! that an action confirmed on the page reaches the server and is logged, the
//! safety checks (Host, Origin, token), the request budget, the site fetched
//! through the lab, and that Ctrl-C stops the server. Screenshots go to
//! target/dashboard/.

mod common;

use common::dashboard::Dashboard;
use common::fake::{FakeDns, FakeWeb, Order};
use common::webdriver::Browser;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const N1: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const N2: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A raw HTTP request to the dashboard: (status, body).
fn http(host: &str, raw: &str) -> (u16, String) {
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get(host: &str, path: &str, host_header: &str) -> (u16, String) {
    http(
        host,
        &format!("GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n"),
    )
}

fn post(host: &str, origin: Option<&str>, token: Option<&str>, body: &str) -> (u16, String) {
    let mut h = String::new();
    if let Some(o) = origin {
        h += &format!("Origin: {o}\r\n");
    }
    if let Some(t) = token {
        h += &format!("X-Labctl-Token: {t}\r\n");
    }
    http(
        host,
        &format!(
            "POST /action HTTP/1.1\r\nHost: {host}\r\n{h}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard")
}

#[test]
fn the_page_shows_the_lab_and_guards_its_actions() {
    let web = FakeWeb::start(&[(N1, "nodo1"), (N2, "nodo2")]);
    let dns = FakeDns::start("www.example.com", vec![N1, N2], Order::Cyclic);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("inventory.yaml"),
        "lab: dashlocal\nprovider: ssh\nssh: {user: root}\nnodes:\n  nodo1: {address: 127.0.0.1, port: 1, groups: [nodos]}\n  nodo2: {address: 127.0.0.2, port: 1, groups: [nodos]}\n  dns: {address: 127.0.0.1, port: 2, groups: [servidor_dns]}\nvars: {domain: example.com}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("scenario.yaml"),
        format!(
            r#"name: local-dashboard
plays:
  - hosts: nodos
    tasks:
      - service: {{name: apache2, state: started}}
verify:
  - http: {{url: "http://www.{{{{ domain }}}}:{}/info.txt", dns: dns, dns_port: {}, nodes: [nodo1, nodo2]}}
"#,
            web.port, dns.port
        ),
    )
    .unwrap();
    let mut d = Dashboard::start(
        dir.path(),
        &["dashboard", "scenario.yaml", "--listen", "127.0.0.1:0"],
    );
    let t0 = Instant::now();
    let token = {
        let (st, page) = get(&d.host, "/", &d.host);
        assert_eq!(st, 200, "{page}");
        assert!(
            !page.contains("http://") || !page.contains("<script src=\"http"),
            "the page loads nothing from outside"
        );
        let m = page
            .split("name=\"labctl-token\" content=\"")
            .nth(1)
            .unwrap();
        m.split('"').next().unwrap().to_string()
    };
    assert_eq!(token.len(), 32);

    // safety: another Host, a POST without the token or from another origin
    let (st, body) = get(&d.host, "/state", "evil.example");
    assert_eq!(st, 403, "{body}");
    let origin = format!("http://{}", d.host);
    let stop_apache = r#"{"action":"stop_service","node":"nodo1","service":"apache2"}"#;
    let (st, body) = post(&d.host, Some(&origin), None, stop_apache);
    assert_eq!(st, 403, "{body}");
    let (st, body) = post(
        &d.host,
        Some("http://evil.example"),
        Some(&token),
        stop_apache,
    );
    assert_eq!(st, 403, "{body}");
    let (st, body) = post(&d.host, None, Some(&token), stop_apache);
    assert_eq!(st, 403, "{body}");
    // an action the page does not offer (a service the scenario does not name; no power on ssh nodes)
    for bad in [
        r#"{"action":"stop_service","node":"nodo1","service":"sshd"}"#,
        r#"{"action":"power_cut","node":"nodo1"}"#,
        r#"{"action":"rm","node":"nodo1"}"#,
    ] {
        let (st, body) = post(&d.host, Some(&origin), Some(&token), bad);
        assert_eq!(st, 400, "{bad}: {body}");
    }

    let b = Browser::start();
    b.goto(&d.url);
    let took = b.wait_for(
        "return document.querySelectorAll('#nodes .node').length === 3",
        Duration::from_secs(30),
    );
    assert!(took.is_some(), "the page does not show three nodes");
    let both = "return ['nodo1','nodo2'].every(n => document.querySelector('#strip-http .cell[data-node=\"' + n + '\"]')) && ['nodo1','nodo2'].every(n => document.querySelector('#strip-dns .cell[data-node=\"' + n + '\"]'))";
    assert!(
        b.wait_for(both, Duration::from_secs(30)).is_some(),
        "the strip does not hold DNS and HTTP answers from both web nodes: {}",
        b.js("return document.querySelector('#strip-box').innerText")
    );
    // ssh-provider nodes with nothing listening: unreachable, shown as such
    assert!(b
        .wait_for(
            "return document.querySelector('.node[data-node=\"nodo1\"]').dataset.state === 'unreachable'",
            Duration::from_secs(30)
        )
        .is_some());
    b.screenshot(&screenshots().join("no-lab.png"));

    // an action, confirmed on the page: it reaches the server (token and
    // origin accepted) and is logged; with no sshd on the node it fails, and says so
    b.click("button[data-action=\"stop_service\"][data-node=\"nodo1\"]");
    b.click("#confirm-yes");
    assert!(
        b.wait_for(
            "return [...document.querySelectorAll('#events li')].some(l => l.dataset.kind === 'action_failed' && l.textContent.includes('stopping apache2 on nodo1'))",
            Duration::from_secs(60)
        )
        .is_some(),
        "{}",
        b.js("return document.querySelector('#events').innerText")
    );
    assert!(b
        .js("return document.querySelector('#events').innerText.includes('stopping apache2 on nodo1 (from the page)')")
        .as_bool()
        .unwrap());

    // the site through the lab: resolved by the lab's DNS, fetched from a web node
    let (st, body) = get(&d.host, "/www/info.txt", &d.host);
    assert_eq!(st, 200, "{body}");
    assert!(body == "nodo1\n" || body == "nodo2\n", "{body:?}");

    // the request budget: at most 10 a second to the lab, in all
    let sent = dns.queries.load(Ordering::SeqCst) + web.hosts.lock().unwrap().len();
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("MEASURE dashboard sent {sent} requests to the lab in {secs:.1} s");
    assert!(
        sent as f64 <= 10.0 * (secs + 1.0),
        "{sent} requests in {secs:.1} s"
    );

    drop(b);
    let st = d.interrupt();
    assert!(st.success(), "Ctrl-C: {st}");
}

#[test]
fn bad_input_is_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("inventory.yaml"),
        "lab: dashlocal\nprovider: ssh\nssh: {user: root}\nnodes:\n  nodo1: {address: 127.0.0.1, port: 1}\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_labctl"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run(&["dashboard", "--listen", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--listen nowhere") && err.contains("fix:"),
        "{err}"
    );
    let out = run(&["dashboard", "missing.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.yaml"), "{err}");
}
