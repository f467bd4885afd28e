//! `labctl dashboard` against a real lab (`dashl`, 10.1.81.0/24), seen
//! through headless chromium: with 01 (DNS round robin) converged, the page
//! shows three running nodes and the strip holds answers from both web nodes;
//! with scenario.yaml (IP failover) converged, "power cut" on the VIP holder,
//! confirmed on the page, shows the node down, the other node answering and a
//! failover event with its time in ms; "boot" brings it back online. A
//! screenshot of each state goes to target/dashboard/.
//!
//! The time from the confirmed power cut to the page showing the node down is
//! printed (`MEASURE` lines in the log), not asserted. Needs root, like the
//! other lab tests; takes the machine-wide lab lock; the lab is destroyed on
//! drop, also on panic, and the test checks nothing of it is left.

use crate::common;

use common::dashboard::Dashboard;
use common::lab::{one_at_a_time, Lab};
use common::webdriver::Browser;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `labctl dashboard SCENARIO` on the lab, on a free loopback port.
fn dashboard(lab: &Lab, scenario: &str) -> Dashboard {
    let inv = lab.inv();
    Dashboard::start(
        inv.parent().unwrap(),
        &[
            "-i",
            inv.to_str().unwrap(),
            "dashboard",
            scenario,
            "--listen",
            "127.0.0.1:0",
        ],
    )
}

/// Ctrl-C ends the dashboard with success.
fn stop(mut d: Dashboard) {
    let st = d.interrupt();
    assert!(st.success(), "the dashboard ended with {st} on Ctrl-C");
}

fn shot(b: &Browser, name: &str) {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/dashboard")
        .join(name);
    b.screenshot(&p);
}

fn node_is(node: &str, state: &str) -> String {
    format!(
        "return document.querySelector('.node[data-node=\"{node}\"]')?.dataset.state === '{state}'"
    )
}

#[test]
fn the_page_shows_round_robin_and_a_failover_as_they_happen() {
    let _one = one_at_a_time();
    let lab = Lab::new("dashl", "10.1.81");
    lab.ok(&["up"]);
    lab.ok(&["configure", "scenarios/01-dns-round-robin.yaml"]);
    let b = Browser::start();

    // 01: three running nodes; DNS and HTTP answers from both web nodes
    let d = dashboard(&lab, "scenarios/01-dns-round-robin.yaml");
    b.goto(&d.url);
    for n in ["nodo1", "nodo2", "dns"] {
        b.must(
            &node_is(n, "running"),
            Duration::from_secs(60),
            &format!("{n} running"),
        );
    }
    let both = "return ['nodo1','nodo2'].every(n => document.querySelector('#strip-http .cell[data-node=\"' + n + '\"]') && document.querySelector('#strip-dns .cell[data-node=\"' + n + '\"]'))";
    b.must(
        both,
        Duration::from_secs(60),
        "answers from both web nodes in the strip",
    );
    let active = "return [...document.querySelectorAll('.node[data-node^=\"nodo\"] .svc[data-service=\"apache2\"]')].filter(s => s.classList.contains('active')).length === 2";
    b.must(
        active,
        Duration::from_secs(60),
        "apache2 active on both web nodes",
    );
    std::thread::sleep(Duration::from_secs(3)); // a few seconds of strip for the picture
    shot(&b, "01-round-robin.png");
    stop(d);

    // scenario.yaml: the failover cluster
    lab.ok(&["configure", "scenario.yaml"]);
    let d = dashboard(&lab, "scenario.yaml");
    b.goto(&d.url);
    let holder_js = "const h = document.querySelector('[data-role=\"vip-holder\"]'); return h && h.textContent.startsWith('nodo') && document.querySelectorAll('#cluster tr[data-online=\"true\"]').length === 2 ? h.textContent : null";
    let until = Instant::now() + Duration::from_secs(120);
    let holder = loop {
        if let Some(h) = b.js(holder_js).as_str() {
            break h.to_string();
        }
        assert!(
            Instant::now() < until,
            "no VIP holder with both members online: {}",
            b.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let other = if holder == "nodo1" { "nodo2" } else { "nodo1" };
    let answers = |n: &str| {
        format!("const c = [...document.querySelectorAll('#strip-http .cell')]; return c.length > 0 && c[c.length - 1].dataset.node === '{n}'")
    };
    b.must(
        &answers(&holder),
        Duration::from_secs(60),
        &format!("{holder} answering in the strip"),
    );
    eprintln!("the VIP is on {holder}");
    std::thread::sleep(Duration::from_secs(4)); // a few seconds of strip for the picture
    shot(&b, "04-converged.png");

    // power cut of the VIP holder, from the page
    b.click(&format!(
        "button[data-action=\"power_cut\"][data-node=\"{holder}\"]"
    ));
    let t = Instant::now();
    b.click("#confirm-yes");
    let shown = b.wait_for(
        &node_is(&holder, "running").replace("=== 'running'", "!== 'running'"),
        Duration::from_secs(60),
    );
    match shown {
        Some(_) => eprintln!(
            "MEASURE power cut (confirmed on the page) -> the page shows {holder} down: {} ms",
            t.elapsed().as_millis()
        ),
        None => panic!("{holder} is not shown down: {}", b.text()),
    }
    let failover = "return [...document.querySelectorAll('#events li[data-kind=\"failover\"]')].some(l => /\\d+ ms/.test(l.textContent))";
    b.must(
        failover,
        Duration::from_secs(60),
        "a failover event with its time",
    );
    b.must(
        &answers(other),
        Duration::from_secs(30),
        &format!("{other} answering in the strip"),
    );
    let moved = format!(
        "return document.querySelector('[data-role=\"vip-holder\"]')?.textContent === '{other}'"
    );
    b.must(
        &moved,
        Duration::from_secs(30),
        &format!("the VIP on {other} in the cluster"),
    );
    eprintln!(
        "MEASURE failover as the page logs it: {}",
        b.js("return document.querySelector('#events li[data-kind=\"failover\"]').textContent")
    );
    shot(&b, "04-power-cut.png");

    // boot it again, from the page: online again, in the cluster too
    b.click(&format!(
        "button[data-action=\"boot\"][data-node=\"{holder}\"]"
    ));
    b.click("#confirm-yes");
    let back = node_is(&holder, "running").replace(
        "return ",
        &format!("return !!document.querySelector('#cluster tr[data-member=\"{holder}\"][data-online=\"true\"]') && "),
    );
    b.must(
        &back,
        Duration::from_secs(180),
        &format!("{holder} running and online in the cluster again"),
    );
    shot(&b, "04-back.png");
    drop(b);
    stop(d);
    lab.ok(&["destroy"]);
    lab.assert_gone();
}
