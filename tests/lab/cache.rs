//! The default lab is the fast, closed lab (two real nspawn labs on the
//! default inventory's shape: `cachea` on 10.1.74.0/24, `cacheb` on
//! 10.1.75.0/24):
//!
//! - with no `preinstall:` the nodes start from the package layer of the
//!   project's scenarios, nothing of it enabled: a first converge of 01
//!   changes things (services started, nothing installed), a second none;
//! - a node's `apt-get install` of a package outside the layer works through
//!   the host's cache, while a connection to a target of the test's own beyond
//!   the lab (a network namespace joined to the host by a veth, with a
//!   listener; and a listener of the host itself) is refused, even with
//!   forwarding switched on for the lab's bridge: the nft table stops it;
//! - the second lab cannot reach the first; its nodes install the same
//!   package and converge the same scenario, and the cache's own log shows
//!   that nothing was fetched from the mirror for them;
//! - a setuid file and a non-package file planted in a node's apt cache
//!   never reach the host as such (`up --fresh`, `destroy`); labctl's
//!   folders holding node files are 0700;
//! - after the last lab is destroyed, the host's forwarding setting and nft
//!   rules are as before and the cache daemon is gone, its cache kept.
//!
//! Needs root (CI runs as root); one lab test at a time on this machine; the
//! labs and the network namespace are removed on drop (also on panic).

use crate::common;
use common::lab::{one_at_a_time, Lab};
use common::{stderr, stdout};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};

const NETNS: &str = "cachet";

/// The test's own target beyond the labs: netns `cachet` with 10.1.76.2
/// (listener on 8000), joined by veth `cachet0` (host side, 10.1.76.1, a
/// host listener on 8001).
struct Target {
    listeners: Vec<Child>,
}

fn sh(cmd: &str) -> (bool, String) {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

impl Target {
    fn start() -> Target {
        let _ = sh(&format!(
            "ip netns del {NETNS} 2>/dev/null; ip link del cachet0 2>/dev/null"
        ));
        for c in [
            format!("ip netns add {NETNS}"),
            "ip link add cachet0 type veth peer name cachet1".to_string(),
            format!("ip link set cachet1 netns {NETNS}"),
            "ip addr add 10.1.76.1/24 dev cachet0".to_string(),
            "ip link set cachet0 up".to_string(),
            format!("ip -n {NETNS} addr add 10.1.76.2/24 dev cachet1"),
            format!("ip -n {NETNS} link set cachet1 up"),
            format!("ip -n {NETNS} link set lo up"),
            // replies would find their way back: only the filter stops a node
            format!("ip -n {NETNS} route add 10.1.74.0/23 via 10.1.76.1"),
        ] {
            let (ok, out) = sh(&c);
            assert!(ok, "{c}: {out}");
        }
        let spawn = |args: &[&str]| {
            Command::new(args[0])
                .args(&args[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let t = Target {
            listeners: vec![
                spawn(&[
                    "ip",
                    "netns",
                    "exec",
                    NETNS,
                    "python3",
                    "-m",
                    "http.server",
                    "8000",
                    "--bind",
                    "10.1.76.2",
                ]),
                spawn(&[
                    "python3",
                    "-m",
                    "http.server",
                    "8001",
                    "--bind",
                    "10.1.76.1",
                ]),
            ],
        };
        // both answer from the host
        for url in ["http://10.1.76.2:8000/", "http://10.1.76.1:8001/"] {
            let mut up = false;
            for _ in 0..50 {
                if sh(&format!("curl -s -o /dev/null --max-time 1 {url}")).0 {
                    up = true;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            assert!(up, "the test's listener {url} does not answer the host");
        }
        t
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        for c in &mut self.listeners {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh(&format!(
            "ip netns del {NETNS}; ip link del cachet0 2>/dev/null"
        ));
    }
}

/// Whether `node` of `lab` opens a TCP connection to `addr:port` (3 s).
fn opens(lab: &Lab, node: &str, addr: &str, port: u16) -> bool {
    let out = lab.on(
        node,
        &format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{addr}/{port}' 2>/dev/null && echo OPEN || echo CLOSED"),
    );
    out.contains("OPEN")
}

fn forwarding_on(dev: &str) {
    std::fs::write(format!("/proc/sys/net/ipv4/conf/{dev}/forwarding"), "1").unwrap();
}

const LOG: &str = "/var/lib/labctl/apt-cache/log/apt-cacher.log";

/// The PID of the cache daemon labctl started (its record), checked alive.
fn cache_pid() -> String {
    let pid = std::fs::read_to_string("/var/lib/labctl/apt-cache/labctl.pid").unwrap_or_default();
    let pid = pid.trim().to_string();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists() && !pid.is_empty(),
        "the cache daemon does not run ({pid:?})"
    );
    pid
}

fn log_len() -> u64 {
    std::fs::metadata(LOG).map(|m| m.len()).unwrap_or(0)
}

fn mode(p: &str) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn labctl_tables() -> Vec<String> {
    let (_, out) = sh("nft list tables");
    out.lines()
        .filter(|l| l.contains("labctl_"))
        .map(String::from)
        .collect()
}

#[test]
fn the_default_lab_is_fast_closed_and_served_by_one_cache() {
    let _one = one_at_a_time();
    let forward_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let tables_before = labctl_tables();
    let a = Lab::new("cachea", "10.1.74");
    let b = Lab::new("cacheb", "10.1.75");
    let target = Target::start();

    // the default inventory: the layer of the scenarios' packages, built once
    let o = a.labctl(&["up"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rr = "scenarios/01-dns-round-robin.yaml";
    a.first_converge_from_the_layer(rr);
    let j = a.json(&["--json", "configure", rr]);
    assert_eq!(j["changed"], 0, "{j}");

    // a package outside the layer installs through the host's cache...
    let o = a.labctl(&[
        "ssh",
        "nodo1",
        "--",
        "sudo apt-get install -y -q tree && tree --version",
    ]);
    assert!(
        o.status.success(),
        "apt-get install through the cache: {}{}",
        stdout(&o),
        stderr(&o)
    );
    // ...while nothing beyond the lab answers, even with forwarding on for
    // the lab's bridge (the nft table stops it, not the sysctl)
    forwarding_on("lab-cachea");
    forwarding_on("cachet0");
    for (ip, port, reached, wrong) in [
        (
            "10.1.76.2",
            8000,
            false,
            "a node reached a target beyond its lab",
        ),
        (
            "10.1.76.1",
            8001,
            false,
            "a node reached a host service that is not a lab service",
        ),
        ("10.1.74.102", 22, true, "a node does not reach its own lab"),
        ("10.1.74.1", 3142, true, "a node does not reach the cache"),
    ] {
        assert_eq!(opens(&a, "nodo1", ip, port), reached, "{wrong}");
    }

    // the second lab: the same package and the same scenario, nothing fetched
    let from = log_len();
    let daemon = cache_pid();
    b.ok(&["up"]);
    assert_eq!(
        cache_pid(),
        daemon,
        "a lab coming restarted the cache (another lab's download in flight would fail)"
    );
    forwarding_on("lab-cacheb");
    assert!(
        !opens(&b, "nodo1", "10.1.74.101", 22),
        "lab cacheb reached lab cachea"
    );
    assert!(
        !opens(&b, "nodo1", "10.1.74.1", 3142),
        "lab cacheb reached cachea's gateway"
    );
    let o = b.labctl(&["ssh", "nodo1", "--", "sudo apt-get install -y -q tree"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = b.json(&["--json", "configure", rr]);
    assert!(j["changed"].as_u64().unwrap() > 0, "{j}");
    let (fetched, served) = labctl::providers::host::cache::transfers_for(from, "10.1.75.");
    println!("FIGURE second lab: {fetched} bytes fetched from the mirror, {served} bytes served by the cache");
    assert_eq!(fetched, 0, "the second lab fetched from the mirror");
    assert!(
        served > 0,
        "the second lab's packages did not come from the cache"
    );

    // nothing a node writes in its apt cache reaches the host as such
    let plant = "set -e; cd /var/cache/apt/archives; cp /bin/true evil_1.0_amd64.deb; chmod 4755 evil_1.0_amd64.deb; echo not-a-package > notes_1.0_all.deb; echo hi > plain.txt; chattr +i plain.txt 2>/dev/null || true";
    a.on("nodo2", &format!("sudo sh -c '{plant}'"));
    a.ok(&["up", "--fresh", "nodo2"]);
    b.on("nodo2", &format!("sudo sh -c '{plant}'"));
    b.ok(&["destroy"]);
    assert_eq!(cache_pid(), daemon, "a lab going restarted the cache");
    let (_, found) = sh("find /var/lib/labctl -path /var/lib/labctl/trash -prune -o \\( -name 'evil_1.0_amd64.deb' -o -name 'notes_1.0_all.deb' -o -name plain.txt \\) -print");
    assert!(found.trim().is_empty(), "node files on the host: {found}");
    for d in [
        "/var/lib/labctl/labs",
        "/var/lib/labctl/labs/cachea",
        "/var/lib/labctl/trash",
    ] {
        assert_eq!(mode(d), 0o700, "{d} is not root's only");
    }

    // the last lab gone: forwarding and rules as before, the daemon gone, its cache kept
    a.ok(&["destroy"]);
    drop(target);
    a.assert_gone();
    b.assert_gone();
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        forward_before
    );
    assert_eq!(labctl_tables(), tables_before);
    let other_labs = std::fs::read_dir("/var/lib/labctl/labs")
        .map(|rd| rd.flatten().any(|e| e.path().join("gateway").exists()))
        .unwrap_or(false);
    if other_labs {
        println!("another lab runs on this machine: the cache daemon stays for it");
    } else {
        let (_, ps) = sh("ps -eo args | grep '[a]pt-cacher-ng -c /var/lib/labctl' || true");
        assert!(ps.trim().is_empty(), "apt-cacher-ng still runs: {ps}");
    }
    let (_, n) = sh("find /var/lib/labctl/apt-cache/cache -name '*.deb' | wc -l");
    assert!(
        n.trim().parse::<u32>().unwrap_or(0) > 0,
        "the cache was not kept"
    );
}
