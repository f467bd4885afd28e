//! `labctl dashboard` without a lab: the real binary serving a project whose
//! nodes live on loopback (`provider: ssh`), with the fake DNS server and web
//! servers of the verify tests standing in for bind9 and apache2, seen through
//! headless chromium (Debian's `chromium` + `chromium-driver`). No packet
//! leaves loopback.
//!
//! It checks what the page shows (the nodes, the strip with both web nodes),
//! that it shows no state it has not measured (services unknown, no button),
//! that it masks the scenario's secrets, that an action from the operator's
//! page reaches the server and is logged, the safety checks (Host, Origin,
//! the action token none but the operator has), the request budget, the site
//! fetched through the lab, and that Ctrl-C stops the server; and that a
//! hostile client (an endless header line, 1000 idle connections, a crowd of
//! page streams) leaves the server's memory, threads and descriptors bounded
//! and the page served. Screenshots go to target/dashboard/.

use crate::common;

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

/// A raw HTTP request to the dashboard: (status, the whole answer).
fn exchange(host: &str, raw: &str) -> (u16, String) {
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
    (status, text)
}

/// A raw HTTP request to the dashboard: (status, body).
fn http(host: &str, raw: &str) -> (u16, String) {
    let (status, text) = exchange(host, raw);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A raw HTTP request: the head of the answer.
fn http_head(host: &str, raw: &str) -> (u16, String) {
    let (status, text) = exchange(host, raw);
    (
        status,
        text.split("\r\n\r\n").next().unwrap_or("").to_string(),
    )
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
        h += &format!("X-Labctl-Action: {t}\r\n");
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
secrets: [domain]
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
    let action = d.action_token().expect("an operator's URL on loopback");
    assert_eq!(action.len(), 32);
    assert!(d.watch.iter().all(|u| !u.contains(&action)));
    {
        let (st, page) = get(&d.host, "/", &d.host);
        assert_eq!(st, 200, "{page}");
        assert!(
            !page.contains("http://") || !page.contains("<script src=\"http"),
            "the page loads nothing from outside"
        );
        // what any local user reads holds no action token
        assert!(
            !page.contains(&action),
            "the page gives away the action token"
        );
        for p in ["/", "/state", "/app.js"] {
            let raw = format!(
                "GET {p} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                d.host
            );
            let (_, head) = http_head(&d.host, &raw);
            assert!(
                head.to_ascii_lowercase()
                    .contains("referrer-policy: no-referrer"),
                "{p}: {head}"
            );
        }
    }

    // secrets: the scenario's `domain` is one; the page shows it masked, as the CLI does
    let (st, state) = get(&d.host, "/state", &d.host);
    assert_eq!(st, 200, "{state}");
    assert!(
        !state.contains("example.com") && state.contains("www.********"),
        "the view shows a secret: {state}"
    );

    // not measured: no SSH answers on these nodes, so no service state and no button
    let v: serde_json::Value = serde_json::from_str(&state).unwrap();
    for n in v["nodes"].as_array().unwrap() {
        for svc in n["services"].as_array().unwrap() {
            assert!(svc["active"].is_null(), "{n}");
        }
    }

    // safety: another Host, a POST without the action token or from another origin
    let (st, body) = get(&d.host, "/state", "evil.example");
    assert_eq!(st, 403, "{body}");
    let origin = format!("http://{}", d.host);
    let stop_apache = r#"{"action":"stop_service","node":"nodo1","service":"apache2"}"#;
    let (st, body) = post(&d.host, Some(&origin), None, stop_apache);
    assert_eq!(st, 403, "{body}");
    // the action token only counts as one
    let (st, body) = http(
        &d.host,
        &format!(
            "POST /action HTTP/1.1\r\nHost: {0}\r\nOrigin: {origin}\r\nX-Labctl-Token: {action}\r\nContent-Length: {1}\r\nConnection: close\r\n\r\n{stop_apache}",
            d.host,
            stop_apache.len()
        ),
    );
    assert_eq!(st, 403, "{body}");
    let (st, body) = post(
        &d.host,
        Some("http://evil.example"),
        Some(&action),
        stop_apache,
    );
    assert_eq!(st, 403, "{body}");
    let (st, body) = post(&d.host, None, Some(&action), stop_apache);
    assert_eq!(st, 403, "{body}");
    // an action the page does not offer (a service the scenario does not name; no power on ssh nodes)
    for bad in [
        r#"{"action":"stop_service","node":"nodo1","service":"sshd"}"#,
        r#"{"action":"power_cut","node":"nodo1"}"#,
        r#"{"action":"rm","node":"nodo1"}"#,
    ] {
        let (st, body) = post(&d.host, Some(&origin), Some(&action), bad);
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

    // the operator's page took the action token out of the address bar
    assert_eq!(b.js("return location.hash"), serde_json::json!(""));
    assert_eq!(
        b.js("return document.querySelector('#mode').textContent"),
        serde_json::json!("operator")
    );
    // services not measured: shown unknown, with no button to stop or start them
    assert_eq!(
        b.js("return document.querySelector('.node[data-node=\"nodo1\"] .svc[data-service=\"apache2\"]').dataset.active"),
        serde_json::json!("unknown")
    );
    assert_eq!(
        b.js("return document.querySelectorAll('button[data-action]').length"),
        serde_json::json!(0),
        "a button for a state not measured"
    );
    assert!(
        !b.js("return document.body.innerText")
            .as_str()
            .unwrap()
            .contains("example.com"),
        "the page shows a secret"
    );

    // an action from the operator's page (as its confirm button posts it): it
    // reaches the server (action token and origin accepted) and is logged;
    // with no sshd on the node it fails, and says so
    b.js("fetch('action', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-Labctl-Action': sessionStorage.getItem('labctl-act')}, body: JSON.stringify({action: 'stop_service', node: 'nodo1', service: 'apache2'})}); return true");
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
    // the class's page: watching only
    b.js("sessionStorage.clear(); return true");
    b.goto(&d.watch[0]);
    assert!(b
        .wait_for(
            "return document.querySelector('#mode').textContent === 'watching'",
            Duration::from_secs(30)
        )
        .is_some());

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

/// A line of `/proc/PID/status` (`VmRSS`, `VmHWM`, `Threads`) as a number (kB for sizes).
fn status_of(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// `GET /state` answered 200 within `limit`, on a connection of its own.
fn serves(host: &str, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Ok(mut s) =
            TcpStream::connect_timeout(&host.parse().unwrap(), Duration::from_secs(1))
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let raw = format!("GET /state HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            if s.write_all(raw.as_bytes()).is_ok() {
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                if buf.starts_with(b"HTTP/1.1 200") {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_hostile_client_leaves_the_server_bounded_and_serving() {
    // this test holds 1150+ sockets itself: a normal user's soft limit is
    // often 1024, so it is raised to the hard limit first (the server,
    // started after, inherits it)
    raise_open_files_limit();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("inventory.yaml"),
        "lab: dashlocal\nprovider: ssh\nssh: {user: root}\nnodes:\n  nodo1: {address: 127.0.0.1, port: 1}\n",
    )
    .unwrap();
    let d = Dashboard::start(dir.path(), &["dashboard", "--listen", "127.0.0.1:0"]);
    let pid = d.pid();
    assert!(serves(&d.host, Duration::from_secs(10)));
    let rss0 = status_of(pid, "VmRSS");
    let threads0 = status_of(pid, "Threads");
    eprintln!(
        "MEASURE at rest: VmRSS {rss0} kB, {threads0} threads, {} fds",
        open_fds(pid)
    );

    // an endless header line: up to 128 MiB of it; the server must stop reading long before
    let mut s = TcpStream::connect(&d.host).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\nX-Endless: ", d.host).as_bytes())
        .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0usize;
    while sent < 128 << 20 {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    drop(s);
    let hwm = status_of(pid, "VmHWM");
    eprintln!(
        "MEASURE endless header: {} KiB sent before the server cut it; peak VmRSS {hwm} kB",
        sent >> 10
    );
    assert!(
        hwm < rss0 + 32 * 1024,
        "an endless header line grew the server to {hwm} kB (from {rss0} kB)"
    );
    assert!(
        sent < 128 << 20,
        "the server read 128 MiB of one header line"
    );
    assert!(
        serves(&d.host, Duration::from_secs(5)),
        "not serving after the endless header"
    );

    // 1000 idle connections, half with a head begun and never ended, and a
    // crowd of page streams: the page is still served, at once, with the
    // server's threads and descriptors bounded
    let mut idle = Vec::new();
    for i in 0..1000 {
        match TcpStream::connect(&d.host) {
            Ok(mut c) => {
                if i % 2 == 0 {
                    let _ = c.write_all(b"GET /state HTTP/1.1\r\nHost: ");
                }
                idle.push(c);
            }
            Err(e) => eprintln!("connection {i}: {e}"),
        }
    }
    let mut streams = Vec::new();
    let mut streaming = 0;
    for _ in 0..150 {
        let mut c = TcpStream::connect(&d.host).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let raw = format!("GET /events HTTP/1.1\r\nHost: {}\r\n\r\n", d.host);
        c.write_all(raw.as_bytes()).unwrap();
        let mut head = [0u8; 12];
        if c.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200" {
            streaming += 1;
        }
        streams.push(c);
    }
    let t = Instant::now();
    assert!(
        serves(&d.host, Duration::from_secs(3)),
        "not serving with 1000 idle connections open"
    );
    eprintln!(
        "MEASURE with 1000 idle connections and 150 streams asked: served in {} ms",
        t.elapsed().as_millis()
    );
    let rss = status_of(pid, "VmRSS");
    let threads = status_of(pid, "Threads");
    let fds = open_fds(pid);
    eprintln!("MEASURE under load: VmRSS {rss} kB, {threads} threads, {fds} fds, {streaming} streams served");
    assert!(streaming <= 96, "{streaming} page streams at once");
    assert!(
        threads < threads0 + 110,
        "{threads} threads (at rest {threads0})"
    );
    assert!(fds < 500, "{fds} descriptors open");
    assert!(rss < rss0 + 64 * 1024, "VmRSS {rss} kB (at rest {rss0} kB)");
    drop(idle);
    drop(streams);
    assert!(serves(&d.host, Duration::from_secs(5)));
}

/// The soft limit on open files up to the hard one (allowed to any user).
fn raise_open_files_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}
