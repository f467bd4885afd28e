//! `labctl dashboard --listen 0.0.0.0:PORT`, the classroom mode, seen from
//! another machine: a network namespace of this test's own (`labctl-dashh`)
//! joined to this machine by a veth pair on 10.1.81.252/30 (this machine
//! .253, the namespace .254). From inside it, curl and a headless chromium
//! (its chromedriver in the namespace too) open the watch URL labctl printed
//! for this machine's address on the veth: the page is served and live, the
//! view without the read token is refused, and an action is refused (no
//! `--actions`: read-only off loopback).
//!
//! No lab: the project's nodes are on loopback (`provider: ssh`). Needs root
//! (`ip netns`); takes the lab-test lock, since 10.1.81.0/24 is also the
//! dashboard lab test's subnet. The namespace and the veth are deleted on
//! drop, also on panic, and the test checks they are gone.

use crate::common;

use common::dashboard::Dashboard;
use common::lab::one_at_a_time;
use common::webdriver::Browser;
use std::process::{Command, Output};
use std::time::Duration;

const NS: &str = "labctl-dashh";
const VETH: &str = "dashh-h";
const PEER: &str = "dashh-n";
const HOST_IP: &str = "10.1.81.253";
const NS_IP: &str = "10.1.81.254";

fn ip(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().expect("run ip")
}

fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespace and its veth pair; deleted on drop.
struct Netns;

impl Netns {
    fn new() -> Netns {
        // what a killed run of this test may have left (its own names only)
        Netns::remove();
        let n = Netns;
        ip_ok(&["netns", "add", NS]);
        ip_ok(&[
            "link", "add", VETH, "type", "veth", "peer", "name", PEER, "netns", NS,
        ]);
        ip_ok(&["addr", "add", &format!("{HOST_IP}/30"), "dev", VETH]);
        ip_ok(&["link", "set", VETH, "up"]);
        ip_ok(&["-n", NS, "addr", "add", &format!("{NS_IP}/30"), "dev", PEER]);
        ip_ok(&["-n", NS, "link", "set", PEER, "up"]);
        ip_ok(&["-n", NS, "link", "set", "lo", "up"]);
        n
    }

    fn remove() {
        // deleting the namespace deletes the peer, and with it the pair
        let _ = ip(&["netns", "del", NS]);
        let _ = ip(&["link", "del", VETH]);
    }

    /// `curl` from inside the namespace: (status, body).
    fn curl(&self, args: &[&str]) -> (u16, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", NS, "curl", "-sS", "--max-time", "10"])
            .args(["-w", "\n%{http_code}"])
            .args(args)
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        Netns::remove();
    }
}

#[test]
fn listening_on_all_addresses_serves_another_machines_browser() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("inventory.yaml"),
        "lab: dashh\nprovider: ssh\nssh: {user: root}\nnodes:\n  nodo1: {address: 127.0.0.1, port: 1}\n  nodo2: {address: 127.0.0.2, port: 1}\n",
    )
    .unwrap();
    {
        let ns = Netns::new();
        let port = common::free_port();
        let listen = format!("0.0.0.0:{port}");
        let d = Dashboard::start(dir.path(), &["dashboard", "--listen", &listen]);
        assert!(
            d.operator.is_none(),
            "actions on off loopback without --actions"
        );
        let token = d.read_token().expect("a read token off loopback");
        // a watch URL for the address the other machine reaches
        let url = d
            .watch
            .iter()
            .find(|u| u.starts_with(&format!("http://{HOST_IP}:{port}/")))
            .unwrap_or_else(|| panic!("no watch URL for {HOST_IP}: {:?}", d.watch))
            .clone();

        // curl from the namespace (Host: 10.1.81.253:PORT, as a browser sends it)
        let (st, page) = ns.curl(&[&url]);
        assert_eq!(st, 200, "{page}");
        assert!(page.contains("labctl dashboard"), "{page}");
        let (st, body) = ns.curl(&[&format!("http://{HOST_IP}:{port}/state?token={token}")]);
        assert_eq!(st, 200, "{body}");
        assert!(body.contains("\"lab\":\"dashh\""), "{body}");
        let (st, body) = ns.curl(&[&format!("http://{HOST_IP}:{port}/state")]);
        assert_eq!(st, 403, "without the read token: {body}");
        // no action right: refused, whatever token is sent
        let (st, body) = ns.curl(&[
            "-X",
            "POST",
            "-H",
            &format!("Origin: http://{HOST_IP}:{port}"),
            "-H",
            &format!("X-Labctl-Action: {token}"),
            "-H",
            &format!("X-Labctl-Token: {token}"),
            "--data",
            r#"{"action":"stop_service","node":"nodo1","service":"apache2"}"#,
            &format!("http://{HOST_IP}:{port}/action?token={token}"),
        ]);
        assert_eq!(st, 403, "an action without the action right: {body}");

        // chromium in the namespace: the page is live (the view streamed)
        let t = std::time::Instant::now();
        let b = Browser::start_in_netns(NS, NS_IP, HOST_IP);
        eprintln!(
            "MEASURE chromium in the namespace started in {} ms",
            t.elapsed().as_millis()
        );
        let t = std::time::Instant::now();
        b.goto(&url);
        assert!(
            b.wait_for(
                "return document.querySelector('#conn').textContent === 'live' && document.querySelectorAll('#nodes .node').length === 2",
                Duration::from_secs(30)
            )
            .is_some(),
            "the page is not live in the other machine's browser: {}",
            b.js("return document.body.innerText")
        );
        eprintln!(
            "MEASURE page live in the namespace's browser after {} ms",
            t.elapsed().as_millis()
        );
        assert_eq!(
            b.js("return document.querySelector('#mode').textContent"),
            serde_json::json!("watching")
        );
        assert_eq!(
            b.js("return document.querySelectorAll('button[data-action]').length"),
            serde_json::json!(0)
        );
        let t = std::time::Instant::now();
        drop(b);
        drop(d);
        drop(ns);
        eprintln!("MEASURE cleanup {} ms", t.elapsed().as_millis());
    }
    let left = String::from_utf8_lossy(&ip(&["netns", "list"]).stdout).into_owned();
    assert!(!left.contains(NS), "the namespace is left: {left}");
    assert!(
        !ip(&["link", "show", VETH]).status.success(),
        "the veth is left"
    );
}
