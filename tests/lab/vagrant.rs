//! A course-style Vagrant project on real nspawn nodes, as a student runs it:
//! `labctl up` in the folder (a `Vagrantfile`, no `inventory.yaml`), then the
//! real `ansible-playbook` from `ansible/`, unmodified (INI `hosts` naming
//! Vagrant's key path and `ansible_ssh_host`, `ansible.cfg`, roles with apt,
//! copy, template, service, user and command tasks, handlers, a pacemaker role
//! that builds the cluster with `pcs` and an `IPaddr2` on `nic=eth1`); then the
//! checks by hand (`dig @10.1.1.103 www.example.com`, `curl` through it) and
//! a second private network as `eth2` (round robin project), and
//! `labctl verify` with the matching shipped scenario; then `destroy` leaves
//! nothing, Vagrant's key paths included.
//!
//! The projects are in `tests/vagrant_projects/`, on the course's 10.1.1.0/24.
//! ansible-core comes from PyPI into a virtualenv under `target/` (made once).
//! Needs root; one lab test at a time on this machine; labs are destroyed on
//! drop (also on panic). Durations are printed as FIGURE lines, never asserted.

use crate::common;
use common::lab::{one_at_a_time, Lab};
use common::{stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The ansible-core release the tests run (the one current on Debian 12's
/// Python), and passlib, which its `password_hash` filter needs (Ansible's docs).
const ANSIBLE: [&str; 2] = ["ansible-core==2.17.14", "passlib==1.7.4"];

/// `ansible-playbook` from a virtualenv under `target/`, installed from PyPI
/// the first time.
fn ansible_playbook() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-tools/ansible-core-2.17.14-passlib");
    let bin = venv.join("bin/ansible-playbook");
    if bin.exists() {
        return bin;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let t = Instant::now();
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3")
        .success();
    assert!(ok, "python3 -m venv failed");
    let out = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check"])
        .args(ANSIBLE)
        .output()
        .expect("pip");
    assert!(
        out.status.success(),
        "pip install {} failed:\n{}",
        ANSIBLE.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "FIGURE pip install {}: {:.1} s",
        ANSIBLE.join(" "),
        t.elapsed().as_secs_f64()
    );
    bin
}

/// `labctl ARGS` in the project folder, without `-i`: labctl finds the Vagrantfile.
fn labctl_in(lab: &Lab, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args(args)
        .current_dir(&lab.project)
        .output()
        .unwrap();
    eprintln!(
        "$ (in {}) labctl {} -> {}\n{}{}",
        lab.project.display(),
        args.join(" "),
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Run the project's playbook as the course says: `cd ansible && ansible-playbook site.yaml`.
fn run_playbook(lab: &Lab, playbook: &str) {
    let bin = ansible_playbook();
    let t = Instant::now();
    let out = Command::new(&bin)
        .arg(playbook)
        .current_dir(lab.path("ansible"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env_remove("ANSIBLE_CONFIG")
        .output()
        .unwrap();
    eprintln!(
        "$ ansible-playbook {playbook} -> {}\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    assert!(out.status.success(), "ansible-playbook {playbook} failed");
    eprintln!(
        "FIGURE ansible-playbook {playbook}: {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// Lab safety before the test itself talks to a lab address: the lab's bridge
/// holds the gateway.
fn assert_bridge_holds(lab: &Lab, gateway: &str) {
    let out = Command::new("ip")
        .args([
            "-o",
            "-4",
            "addr",
            "show",
            "dev",
            &format!("lab-{}", lab.lab),
        ])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains(&format!("inet {gateway}/")),
        "bridge lab-{} does not hold {gateway}: refusing to send traffic",
        lab.lab
    );
}

fn dig(server: &str, name: &str) -> Vec<String> {
    let out = Command::new("dig")
        .args(["+short", "+time=2", "+tries=1", &format!("@{server}"), name])
        .output()
        .expect("dig (package bind9-dnsutils)");
    let mut v: Vec<String> = stdout(&out).lines().map(|l| l.trim().to_string()).collect();
    v.sort();
    v
}

fn curl(url: &str, resolve: Option<(&str, &str)>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "5", "--noproxy", "*"]);
    if let Some((host, ip)) = resolve {
        cmd.arg("--resolve").arg(format!("{host}:80:{ip}"));
    }
    let out = cmd.arg(url).output().unwrap();
    assert!(out.status.success(), "curl {url}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn repo_scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
        .display()
        .to_string()
}

fn vagrant_keys(lab: &Lab) -> Vec<PathBuf> {
    ["nodo1", "nodo2", "dns"]
        .iter()
        .flat_map(|n| {
            ["libvirt", "virtualbox"]
                .map(|p| lab.path(&format!(".vagrant/machines/{n}/{p}/private_key")))
        })
        .collect()
}

#[test]
fn course_style_ip_failover_project_runs_unmodified() {
    let _one = one_at_a_time();
    let _ = ansible_playbook();
    let lab = Lab::vagrant("ha-ipfailover", "04-HA-IPFailover");

    let t = Instant::now();
    let o = labctl_in(&lab, &["up"]);
    assert!(o.status.success(), "labctl up failed");
    eprintln!(
        "FIGURE labctl up (3 Vagrant-shaped nodes): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        said.contains("shaped like Vagrant's"),
        "up says what it read: {said}"
    );
    for k in vagrant_keys(&lab) {
        assert!(k.is_file(), "{} missing", k.display());
    }
    // each node's systemd in a cgroup of its own: nodes sharing one lost
    // each other's unit cgroups at boot (labctl-eth1 failed, no address)
    let cgroups = lab.init_cgroups();
    assert_eq!(cgroups.len(), 3, "one init per node: {cgroups:?}");
    for (node, cg) in &cgroups {
        assert!(
            cg.starts_with(&format!("/labctl/{}.{node}/", lab.lab)),
            "{node}'s init is in {cg}, not in a cgroup of its own: {cgroups:?}"
        );
    }
    let o = labctl_in(&lab, &["status"]);
    assert!(o.status.success());
    for n in ["nodo1", "nodo2", "dns"] {
        assert!(stdout(&o).contains(n), "{}", stdout(&o));
    }

    run_playbook(&lab, "site.yaml");

    // what the student checks by hand
    assert_bridge_holds(&lab, "10.1.1.1");
    assert_eq!(dig("10.1.1.103", "www.example.com"), ["10.1.1.100"]);
    assert_eq!(dig("10.1.1.103", "nodo2.example.com"), ["10.1.1.102"]);
    let who = curl(
        "http://www.example.com/info.txt",
        Some(("www.example.com", "10.1.1.100")),
    );
    assert!(who == "nodo1" || who == "nodo2", "info.txt: {who:?}");
    let page = curl("http://10.1.1.101/", None);
    assert!(
        page.contains("nodo1") && page.contains("10.1.1.101"),
        "eth1 facts in the page: {page}"
    );

    // the shipped scenario's checks, failover included
    let t = Instant::now();
    let o = labctl_in(&lab, &["verify", &repo_scenario("04-ip-failover.yaml")]);
    assert!(o.status.success(), "verify 04 failed");
    eprintln!(
        "FIGURE labctl verify 04 (failover included): {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let o = labctl_in(&lab, &["destroy"]);
    assert!(o.status.success());
    for k in vagrant_keys(&lab) {
        assert!(!k.exists(), "{} left", k.display());
    }
    lab.assert_gone();
}

#[test]
fn course_style_dns_round_robin_project_runs_unmodified() {
    let _one = one_at_a_time();
    let _ = ansible_playbook();
    let lab = Lab::vagrant("dns-roundrobin", "01-DNS-RoundRobin");

    // `-i Vagrantfile` names the file as well as the folder does
    lab.ok(&["up"]);
    // the second private network is eth2, on a bridge of its own
    for (n, me, peer) in [
        ("nodo1", "10.1.2.101", "10.1.2.102"),
        ("nodo2", "10.1.2.102", "10.1.2.101"),
    ] {
        // (the peer's sshd answers on its eth2 address: no ping in the image)
        let probe = format!(
            "ip -4 -o addr show dev eth2; timeout 3 bash -c 'exec 3<>/dev/tcp/{peer}/22; head -c 4 <&3'"
        );
        let out = lab.ok(&["ssh", n, "--", &probe]);
        assert!(out.contains(&format!("inet {me}/24")), "{out}");
        assert!(out.contains("SSH-"), "{peer} did not answer on eth2: {out}");
    }
    assert!(Path::new(&format!("/sys/class/net/lb2-{}", lab.lab)).exists());
    run_playbook(&lab, "site.yaml");

    assert_bridge_holds(&lab, "10.1.1.1");
    assert_eq!(
        dig("10.1.1.103", "www.example.com"),
        ["10.1.1.101", "10.1.1.102"]
    );
    let mut seen = std::collections::BTreeSet::new();
    for ip in dig("10.1.1.103", "www.example.com") {
        seen.insert(curl(
            "http://www.example.com/info.txt",
            Some(("www.example.com", &ip)),
        ));
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["nodo1", "nodo2"]);

    let o = labctl_in(&lab, &["verify", &repo_scenario("01-dns-round-robin.yaml")]);
    assert!(o.status.success(), "verify 01 failed");
    // a scenario whose checks do not match the lab fails and says why
    let o = labctl_in(
        &lab,
        &[
            "verify",
            &repo_scenario("04-ip-failover.yaml"),
            "--skip",
            "failover",
        ],
    );
    assert!(!o.status.success(), "verify 04 on a round-robin lab passed");

    lab.ok(&["destroy"]);
    for k in vagrant_keys(&lab) {
        assert!(!k.exists(), "{} left", k.display());
    }
    lab.assert_gone();
}
