//! End-to-end tests that bring up real labs with the `labctl` binary
//! (provider nspawn, and provider ssh pointed at an nspawn lab's nodes).
//!
//! They need root, systemd-container, mmdebstrap, nftables and
//! openssh-client (CI runs as root). The first run builds the base image
//! (about 30 s); later runs reuse it from /var/lib/labctl/images.
//!
//! Labs share the host's network stack, so these tests run one at a time
//! (a global mutex), each on a lab name of its own on 10.1.2.0/24, and always
//! tear down in a guard that also runs on panic, then check for leftovers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::common;
use common::lab::{labctl_at as labctl, ok_at as ok, one_at_a_time, Lab};

const SUBNET: &str = "10.1.2";

fn state_of(inv: &Path) -> Vec<(String, String)> {
    let out = ok(inv, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    v["nodes"]
        .as_array()
        .expect("nodes array")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn states(inv: &Path) -> String {
    state_of(inv)
        .iter()
        .map(|(n, s)| format!("{n}={s}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn nspawn_lab_up_status_ssh_halt_fail_destroy() {
    let _one = one_at_a_time();
    let lab = Lab::new("e2eup", SUBNET);
    let inv = lab.inv();

    // up builds (or reuses) the image and boots 3 nodes
    lab.ok_timed("first `up` (image build if not cached)", &["up"]);
    assert_eq!(states(&inv), "nodo1=running nodo2=running dns=running");
    // the lab's files on the host are root's only
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&lab.lab_dir()), 0o700);
    assert_eq!(mode(&lab.lab_dir().join("nodes/dns/console.log")), 0o600);
    assert_eq!(mode(&lab.path(".labctl")), 0o700);

    // `up` on a running lab does nothing and says so
    let out = labctl(&inv, &["up"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already up"));

    // labctl ssh with the lab key and pinned host key
    assert_eq!(ok(&inv, &["ssh", "dns", "--", "hostname"]).trim(), "dns");

    // plain OpenSSH with the ssh-config output, strict host key checking on
    let cfg = ok(&inv, &["ssh-config"]);
    assert!(cfg.contains("StrictHostKeyChecking yes"), "{cfg}");
    let cfg_path = lab.dir.path().join("lab.ssh");
    std::fs::write(&cfg_path, &cfg).unwrap();
    let out = Command::new("ssh")
        .arg("-F")
        .arg(&cfg_path)
        .args(["-o", "BatchMode=yes", "nodo1", "hostname; sudo -n id -u"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh -F: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "nodo1\n0\n");

    // halt one node: its files are kept and `up` boots it again
    ok(&inv, &["ssh", "nodo2", "--", "echo kept > marker"]);
    ok(&inv, &["halt", "nodo2"]);
    assert_eq!(states(&inv), "nodo1=running nodo2=stopped dns=running");
    lab.ok_timed("`up` of the halted node", &["up"]);
    assert_eq!(states(&inv), "nodo1=running nodo2=running dns=running");
    assert_eq!(
        ok(&inv, &["ssh", "nodo2", "--", "cat marker"]).trim(),
        "kept"
    );

    // a node's root cannot pass for another node's init or nspawn: processes in
    // nodo1 that carry nodo2's tag, PID 1 of a namespace of their own, and one
    // named systemd-nspawn with nodo2's --directory= argument; `fail nodo2`
    // cuts nodo2 only, and `status` does not take the fakes for nodo2
    let nodo2_dir = lab.lab_dir().join("nodes/nodo2/merged");
    ok(
        &inv,
        &[
            "ssh",
            "nodo1",
            "--",
            &format!(
                "setsid -f env LABCTL_MACHINE=e2eup.nodo2 sh -c 'unshare -pf sleep 1000 || sleep 1000' </dev/null >/dev/null 2>&1; \
                 cp /bin/sh /tmp/systemd-nspawn; \
                 setsid -f /tmp/systemd-nspawn -c 'unshare -pf sleep 1000 || sleep 1000; :' x --directory={} </dev/null >/dev/null 2>&1; sleep 1",
                nodo2_dir.display()
            ),
        ],
    );
    let fakes = || {
        ok(
            &inv,
            &["ssh", "nodo1", "--", "pgrep -c -f '[s]leep 1000' || true"],
        )
        .trim()
        .parse::<u32>()
        .unwrap()
    };
    let before = fakes();
    assert!(before >= 2, "the fake inits did not start");
    ok(&inv, &["fail", "nodo2"]);
    assert_eq!(states(&inv), "nodo1=running nodo2=stopped dns=running");
    assert_eq!(fakes(), before, "`fail nodo2` killed processes of nodo1");
    ok(&inv, &["up", "nodo2"]);
    assert_eq!(states(&inv), "nodo1=running nodo2=running dns=running");

    // power cut, then back
    ok(&inv, &["fail", "nodo1"]);
    assert_eq!(states(&inv), "nodo1=stopped nodo2=running dns=running");
    ok(&inv, &["up", "nodo1"]);
    assert_eq!(states(&inv), "nodo1=running nodo2=running dns=running");
    assert_eq!(
        ok(&inv, &["ssh", "nodo1", "--", "hostname"]).trim(),
        "nodo1"
    );

    // a full `up` from nothing, with the image cached
    ok(&inv, &["destroy"]);
    lab.assert_gone();
    lab.ok_timed(
        "`up` of 3 nodes with the image cached, until all answer SSH",
        &["up"],
    );
    assert_eq!(states(&inv), "nodo1=running nodo2=running dns=running");

    // destroy leaves nothing (no process of the lab is left when it returns), and
    // removes only labctl's own files: a link a project kept in .labctl/ goes, the
    // folder it points to stays
    let victim = tempfile::tempdir().unwrap();
    std::fs::write(victim.path().join("precious"), "keep me").unwrap();
    std::os::unix::fs::symlink(victim.path(), lab.path(".labctl/shared")).unwrap();
    std::os::unix::fs::symlink(
        victim.path().join("precious"),
        lab.path(".labctl/precious-link"),
    )
    .unwrap();
    ok(&inv, &["destroy"]);
    lab.assert_gone();
    assert_eq!(
        std::fs::read_to_string(victim.path().join("precious")).unwrap(),
        "keep me"
    );
    let perms = std::fs::read_dir(victim.path()).unwrap().count();
    assert_eq!(perms, 1, "destroy reached through a link");
    ok(&inv, &["destroy"]);
    assert_eq!(states(&inv), "nodo1=absent nodo2=absent dns=absent");

    // destroy after `up` was killed half way
    let mut child = Command::new(env!("CARGO_BIN_EXE_labctl"))
        .arg("-i")
        .arg(&inv)
        .arg("up")
        .spawn()
        .unwrap();
    let t = Instant::now();
    while t.elapsed().as_secs() < 30 && !lab.lab_dir().join("nodes/nodo1/nspawn.pid").exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    ok(&inv, &["destroy"]);
    lab.assert_gone();
}

#[test]
fn ssh_provider_reaches_nodes_of_an_nspawn_lab() {
    let _one = one_at_a_time();
    let lab = Lab::new("e2essh", SUBNET);
    ok(&lab.inv(), &["up"]);
    let state = lab.dir.path().join(".labctl");

    // a second project that only reaches the same machines
    let other = tempfile::tempdir().unwrap();
    let kh = other.path().join("known_hosts");
    std::fs::copy(state.join("known_hosts"), &kh).unwrap();
    let inv2 = other.path().join("inventory.yaml");
    let text = format!(
        "lab: e2essh-x\nprovider: ssh\nnetwork: {{subnet: {SUBNET}.0/24, gateway: {SUBNET}.1}}\nssh: {{user: vagrant, key: {}, known_hosts: {}}}\nnodes:\n  nodo1: {{address: {SUBNET}.101, groups: [nodos]}}\n  nodo2: {{address: {SUBNET}.102, groups: [nodos]}}\n  dns: {{address: {SUBNET}.103, groups: [servidor_dns]}}\nvars: {{domain: example.com}}\n",
        state.join("id_ed25519").display(),
        kh.display()
    );
    std::fs::write(&inv2, text).unwrap();

    let out = labctl(&inv2, &["up"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reachable"));
    assert_eq!(states(&inv2), "nodo1=running nodo2=running dns=running");
    assert_eq!(
        ok(&inv2, &["ssh", "nodo2", "--", "hostname"]).trim(),
        "nodo2"
    );

    // configure converges them over the ssh provider, and a second run changes nothing
    std::fs::write(
        other.path().join("scenario.yaml"),
        "name: e2e-ssh-provider\nplays:\n  - hosts: all\n    tasks:\n      - copy: {content: \"converged by labctl\\n\", dest: /etc/labctl-e2e, mode: \"0644\"}\n",
    )
    .unwrap();
    let scen = other.path().join("scenario.yaml");
    let scen = scen.to_str().unwrap();
    let first: serde_json::Value =
        serde_json::from_str(&ok(&inv2, &["--json", "configure", scen])).expect("configure --json");
    assert_eq!(first["failed"], 0, "{first}");
    assert_eq!(first["changed"], 3, "{first}");
    let second: serde_json::Value =
        serde_json::from_str(&ok(&inv2, &["--json", "configure", scen])).expect("configure --json");
    assert_eq!(second["changed"], 0, "{second}");
    assert_eq!(
        ok(&inv2, &["ssh", "dns", "--", "cat /etc/labctl-e2e"]).trim(),
        "converged by labctl"
    );

    // labctl never powers off or removes machines it did not create
    for args in [
        &["halt"][..],
        &["halt", "--force", "nodo1"],
        &["fail", "nodo1"],
        &["destroy"],
    ] {
        let out = labctl(&inv2, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("provider ssh"),
            "{args:?}"
        );
    }
    assert_eq!(
        states(&lab.inv()),
        "nodo1=running nodo2=running dns=running"
    );

    // a wrong host key pinned: every command refuses to connect
    let good = std::fs::read_to_string(&kh).unwrap();
    let dns_key = good
        .lines()
        .find(|l| l.starts_with(&format!("{SUBNET}.103 ")))
        .unwrap()
        .split_once(' ')
        .unwrap()
        .1
        .to_string();
    let bad: String = good
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{SUBNET}.101 ")) {
                format!("{SUBNET}.101 {dns_key}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&kh, bad).unwrap();
    let out = labctl(&inv2, &["up"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nodo1") && err.contains("does not match"),
        "{err}"
    );
    let out = labctl(&inv2, &["ssh", "nodo1", "--", "hostname"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let out = labctl(&inv2, &["configure", scen]);
    assert!(
        !out.status.success(),
        "configure must refuse a wrong host key"
    );

    ok(&lab.inv(), &["destroy"]);
    lab.assert_gone();
}

/// A project folder with one inventory, for the preflight checks (no lab is brought up).
fn project(inventory: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("inventory.yaml");
    std::fs::write(&p, inventory).unwrap();
    (d, p)
}

#[test]
fn preflight_refuses_with_one_clear_message() {
    let _one = one_at_a_time();

    // a subnet that is not private (loopback) is refused before anything is made
    let (_d, inv) = project(
        "lab: e2epre\nnetwork: {subnet: 127.0.5.0/24, gateway: 127.0.5.1}\nnodes:\n  n1: {address: 127.0.5.101}\n",
    );
    let out = labctl(&inv, &["up"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a private range") && err.contains("fix:"),
        "{err}"
    );
    assert!(!Path::new("/sys/class/net/lab-e2epre").exists());

    // an unknown node
    let (_d2, inv2) = project(&format!(
        "lab: e2epre\nnetwork: {{subnet: {SUBNET}.0/24, gateway: {SUBNET}.1}}\nnodes:\n  n1: {{address: {SUBNET}.101}}\n"
    ));
    let out = labctl(&inv2, &["up", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node named `nope`"));

    // the project's .labctl/ holds another lab's state
    std::fs::create_dir_all(_d2.path().join(".labctl")).unwrap();
    std::fs::write(_d2.path().join(".labctl/lab"), "otherlab\n").unwrap();
    let out = labctl(&inv2, &["up"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds the state of lab `otherlab`"));
    std::fs::remove_file(_d2.path().join(".labctl/lab")).unwrap();

    // the lab name belongs to another inventory on this machine
    let lab_dir = Path::new("/var/lib/labctl/labs/e2epre");
    std::fs::create_dir_all(lab_dir).unwrap();
    std::fs::write(lab_dir.join("owner"), "/elsewhere/inventory.yaml\n").unwrap();
    let up = labctl(&inv2, &["up"]);
    let destroy = labctl(&inv2, &["destroy"]);
    std::fs::remove_dir_all(lab_dir).unwrap();
    for out in [up, destroy] {
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("belongs to /elsewhere/inventory.yaml")
        );
    }
    assert!(!Path::new("/sys/class/net/lab-e2epre").exists());
}
