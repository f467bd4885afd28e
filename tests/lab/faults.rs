//! Faults on real nspawn labs, driven through the `labctl` binary:
//!
//! - a node powered off (`labctl fail`) in the middle of `configure`: that host is
//!   reported, the others finish, exit code 1; after `up NODE` the next
//!   `configure` converges everything;
//! - host keys: a node whose host key changed is refused (by `configure` and by
//!   `ssh`) with a message saying how to re-pin; `destroy` + `up` re-pins
//!   recreated nodes without any manual step;
//! - `labctl up` killed with SIGKILL in the middle: `destroy` still removes
//!   everything, and the next `up` works;
//! - a first converge of `scenario.yaml`: `--check` previews it all;
//!   a power cut while dpkg works, with the log piped (no long quiet time, the
//!   cluster wait ends at once), then `up` + `configure` converges with no manual
//!   step; 05 → 04 leaves no 05 resource; a double Ctrl-C leaves no process
//!   labctl started on the nodes.
//!
//! Labs `flt*` on 10.1.6.0/24, `tflt*` on 10.1.42.0/24 and 10.1.43.0/24 (those
//! take the machine-wide lab-test lock). Needs root (CI runs as root). Waits have
//! generous deadlines and wait for events (files, lines), never for a duration;
//! durations are printed as FIGURE lines, not asserted.

use crate::common;
use common::lab::{one_at_a_time, Lab};
use common::processes;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SUBNET: &str = "10.1.6";

/// Start labctl in the lab's project folder without waiting for it.
fn spawn(lab: &Lab, args: &[&str]) -> Child {
    eprintln!("$ labctl {} &", args.join(" "));
    common::spawn_labctl(lab.dir.path(), args)
}

/// Wait (up to a generous deadline) until `cond` holds.
fn eventually(what: &str, deadline: Duration, cond: impl Fn() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < end, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A file inside a running node, seen from the host (its overlay's merged view).
fn node_file(lab: &Lab, node: &str, path: &str) -> PathBuf {
    Path::new("/var/lib/labctl/labs")
        .join(&lab.lab)
        .join("nodes")
        .join(node)
        .join("merged")
        .join(path.trim_start_matches('/'))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn state(lab: &Lab, node: &str) -> String {
    let v = lab.json(&["status", "--json"]);
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .map(|n| n["state"].as_str().unwrap().to_string())
        .unwrap()
}

/// Stricter than [`Lab::assert_gone`]: also no container init (orphaned ones
/// carry `LABCTL_MACHINE=<lab>-<node>`), no veth, no project state.
fn assert_all_gone(lab: &Lab) {
    lab.assert_gone();
    let tag = format!("LABCTL_MACHINE={}-", lab.lab);
    let inits: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .map(|b| text(&b).split('\0').any(|v| v.starts_with(&tag)))
                .unwrap_or(false)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(inits.is_empty(), "container inits left: {inits:?}");
    let veths: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("vb-{}", lab.lab)))
        .collect();
    assert!(veths.is_empty(), "veths left: {veths:?}");
    assert!(!lab.path(".labctl").exists(), "project state .labctl/ left");
}

/// Two plays on every node: a slow command (it leaves a marker when it starts,
/// and `creates:` makes it run until it once completes), then a config file.
/// `TAG` names the markers and the file.
const SLOW: &str = r#"
name: slow-everywhere
plays:
  - name: slow step
    hosts: all
    tasks:
      - name: slow step
        command:
          cmd: "touch /var/tmp/TAG-started && sleep 10 && touch /var/tmp/TAG-done"
          creates: /var/tmp/TAG-done
  - name: config
    hosts: all
    tasks:
      - name: TAG.conf
        template: {src: flt.j2, dest: /etc/TAG.conf, mode: "0644"}
"#;

const CONF: &str = "node {{ inventory_hostname }} at {{ node.address }}\n";

fn host<'a>(recap: &'a serde_json::Value, h: &str) -> &'a serde_json::Value {
    &recap["hosts"][h]
}

/// The host side of a node's veth (`vb-<lab>.<node>`), a port of the lab bridge.
fn host_veth(lab: &Lab, node: &str) -> String {
    let name = format!("vb-{}.{node}", lab.lab);
    let ports: Vec<String> = std::fs::read_dir(format!("/sys/class/net/lab-{}/brif", lab.lab))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        ports.contains(&name),
        "no {name} among the bridge ports {ports:?}"
    );
    name
}

/// Run `scenario` (the SLOW one, markers renamed to `tag`), cut nodo2's power
/// in the middle of its slow step, and check the recap. `silent`: first take
/// nodo2's veth down on the host, so its dying kernel cannot close the SSH
/// connection (no FIN, no RST, as when a VM loses power): only TCP keepalives
/// can notice it. Then power nodo2 on again and check that a re-run converges.
fn power_cut_mid_configure(lab: &Lab, tag: &str, silent: bool) {
    let file = format!("{tag}.yaml");
    std::fs::write(lab.path(&file), SLOW.replace("TAG", tag)).unwrap();
    let conf_path = format!("/etc/{tag}.conf");

    let t0 = Instant::now();
    let run = spawn(lab, &["configure", &file, "--json"]);
    let started = node_file(lab, "nodo2", &format!("/var/tmp/{tag}-started"));
    eventually("nodo2 runs its slow step", Duration::from_secs(180), || {
        started.exists()
    });
    eprintln!(
        "FIGURE[{tag}]: nodo2 reached its slow step {:.1} s after configure started",
        t0.elapsed().as_secs_f64()
    );
    if silent {
        let veth = host_veth(lab, "nodo2");
        let o = Command::new("ip")
            .args(["link", "set", "dev", &veth, "down"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    }

    // the power cut: `fail` works while `configure` holds the lab lock
    let t_fail = Instant::now();
    let f = lab.labctl(&["fail", "nodo2"]);
    assert!(
        f.status.success(),
        "`labctl fail` must cut the power while configure runs: {}",
        text(&f.stderr)
    );
    let out = run.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    eprintln!(
        "FIGURE[{tag}]: configure ended {:.1} s after the power cut of nodo2 (whole run {:.1} s; the other nodes' slow step takes 10 s)\n--- stdout\n{stdout}--- stderr\n{stderr}",
        t_fail.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(out.status.code(), Some(1), "exit code");
    let recap: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    for h in ["nodo1", "dns"] {
        let r = host(&recap, h);
        assert_eq!(r["failed"], 0, "{h}: {recap}");
        assert_eq!(r["unreachable"], false, "{h}: {recap}");
        assert_eq!(
            r["changed"], 2,
            "{h} ran the slow step and wrote its file: {recap}"
        );
        let conf = std::fs::read_to_string(node_file(lab, h, &conf_path)).unwrap();
        assert!(
            conf.starts_with(&format!("node {h} at {SUBNET}.")),
            "{conf}"
        );
    }
    let n2 = host(&recap, "nodo2");
    assert_eq!(
        n2["unreachable"], true,
        "a dropped connection is unreachable: {recap}"
    );
    assert_eq!(n2["changed"], 0, "{recap}");
    assert!(recap["failed"].as_u64() > Some(0), "{recap}");
    assert!(
        stderr.contains("unreachable: [nodo2] slow step: connection lost"),
        "stderr names the dead host: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(state(lab, "nodo2"), "stopped");

    // power back on: the next configure converges everything
    lab.ok(&["up", "nodo2"]);
    let again = lab.json(&["configure", &file, "--json"]);
    assert_eq!(again["failed"], 0, "{again}");
    assert_eq!(host(&again, "nodo2")["changed"], 2, "{again}");
    for h in ["nodo1", "dns"] {
        assert_eq!(host(&again, h)["changed"], 0, "{h}: {again}");
    }
    let conf = std::fs::read_to_string(node_file(lab, "nodo2", &conf_path)).unwrap();
    assert_eq!(conf, format!("node nodo2 at {SUBNET}.102\n"));
    let third = lab.json(&["configure", &file, "--json"]);
    assert_eq!(third["changed"], 0, "{third}");
    assert_eq!(third["failed"], 0, "{third}");
}

#[test]
fn a_node_powered_off_mid_configure_is_reported_the_others_finish_and_a_rerun_converges() {
    let _one = one_at_a_time();
    let lab = Lab::new("fltoff", SUBNET);
    std::fs::write(lab.path("templates/flt.j2"), CONF).unwrap();
    lab.ok(&["up"]);
    // `labctl fail`: the node's processes die at once, its kernel closes their sockets
    power_cut_mid_configure(&lab, "cut", false);
    // a node that vanishes without a word: found by the TCP keepalives
    power_cut_mid_configure(&lab, "silent", true);
    lab.ok(&["destroy"]);
    assert_all_gone(&lab);
}

const QUICK: &str = r#"
name: quick
plays:
  - hosts: all
    tasks:
      - name: flt.conf
        template: {src: flt.j2, dest: /etc/flt.conf, mode: "0644"}
"#;

fn known_hosts(lab: &Lab) -> String {
    std::fs::read_to_string(lab.path(".labctl/known_hosts")).unwrap()
}

/// The pinned key line of `addr`.
fn pinned(kh: &str, addr: &str) -> String {
    kh.lines()
        .find(|l| l.split_whitespace().next() == Some(addr))
        .unwrap_or_else(|| panic!("{addr} is not pinned:\n{kh}"))
        .to_string()
}

#[test]
fn a_changed_host_key_is_refused_with_the_re_pin_fix_and_recreated_nodes_are_re_pinned() {
    let _one = one_at_a_time();
    let lab = Lab::new("fltkey", SUBNET);
    std::fs::write(lab.path("quick.yaml"), QUICK).unwrap();
    std::fs::write(lab.path("templates/flt.j2"), CONF).unwrap();
    lab.ok(&["up"]);
    let first = lab.json(&["configure", "quick.yaml", "--json"]);
    assert_eq!(first["failed"], 0, "{first}");
    let kh1 = known_hosts(&lab);
    let nodo1 = format!("{SUBNET}.101");

    // (a) nodo1 gets a new host key (as after a reinstall, or a machine in the middle)
    lab.ok(&[
        "ssh",
        "nodo1",
        "--",
        "sudo",
        "sh",
        "-c",
        "'rm -f /etc/ssh/ssh_host_*key* && ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key && systemctl restart ssh'",
    ]);
    let conf = node_file(&lab, "nodo1", "/etc/flt.conf");
    std::fs::remove_file(&conf).unwrap();
    let o = lab.labctl(&["configure", "quick.yaml"]);
    let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{all}");
    assert!(all.contains("does not match the key pinned"), "{all}");
    assert!(
        all.contains("fix:") && all.contains("labctl up"),
        "the re-pin fix: {all}"
    );
    assert!(
        !conf.exists(),
        "nothing is written to a node that failed the host key check"
    );
    let o = lab.labctl(&["configure", "quick.yaml", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let recap: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(host(&recap, "nodo1")["unreachable"], true, "{recap}");
    for h in ["nodo2", "dns"] {
        assert_eq!(host(&recap, h)["failed"], 0, "{recap}");
        assert_eq!(host(&recap, h)["unreachable"], false, "{recap}");
    }
    let o = lab.labctl(&["ssh", "nodo1", "--", "true"]);
    assert!(!o.status.success(), "ssh refuses a changed host key");
    assert!(
        text(&o.stderr).contains("IDENTIFICATION HAS CHANGED")
            || text(&o.stderr).contains("Host key verification failed"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        known_hosts(&lab),
        kh1,
        "a refused connection never changes the pins"
    );

    // the fix the message gives: `labctl up` re-pins from the nodes' own files
    let up = lab.labctl(&["up"]);
    assert!(up.status.success());
    assert!(
        text(&up.stderr).contains("nodo1"),
        "up says which pin changed: {}",
        text(&up.stderr)
    );
    let kh2 = known_hosts(&lab);
    assert_ne!(pinned(&kh2, &nodo1), pinned(&kh1, &nodo1));
    for a in [format!("{SUBNET}.102"), format!("{SUBNET}.103")] {
        assert_eq!(pinned(&kh2, &a), pinned(&kh1, &a), "other pins kept");
    }
    let again = lab.json(&["configure", "quick.yaml", "--json"]);
    assert_eq!(again["failed"], 0, "{again}");
    assert_eq!(host(&again, "nodo1")["changed"], 1, "{again}");
    assert_eq!(lab.ok(&["ssh", "nodo1", "--", "hostname"]).trim(), "nodo1");

    // (b) destroy + up: new nodes, new keys, pinned without any manual step
    lab.ok(&["destroy"]);
    assert_all_gone(&lab);
    lab.ok(&["up"]);
    let kh3 = known_hosts(&lab);
    for a in [
        nodo1.clone(),
        format!("{SUBNET}.102"),
        format!("{SUBNET}.103"),
    ] {
        assert_ne!(
            pinned(&kh3, &a),
            pinned(&kh2, &a),
            "{a}: a recreated node has a new key"
        );
    }
    let fresh = lab.json(&["configure", "quick.yaml", "--json"]);
    assert_eq!(fresh["failed"], 0, "{fresh}");
    assert_eq!(fresh["changed"], 3, "{fresh}");
    for n in ["nodo1", "nodo2", "dns"] {
        let o = lab.labctl(&["ssh", n, "--", "hostname"]);
        assert!(o.status.success(), "{n}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout).trim(), n);
        assert!(
            !text(&o.stderr).contains("IDENTIFICATION HAS CHANGED"),
            "{}",
            text(&o.stderr)
        );
    }
    lab.ok(&["destroy"]);
    assert_all_gone(&lab);
}

/// Run `labctl up` on a fresh lab and SIGKILL it as soon as its stderr shows
/// a line containing `at`; returns the lines it printed.
fn up_killed_at(lab: &Lab, at: &str) -> Vec<String> {
    let mut child = spawn(lab, &["up"]);
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let end = Instant::now() + Duration::from_secs(600);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                eprintln!("up: {l}");
                let hit = l.contains(at);
                lines.push(l);
                if hit {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`up` never printed {at:?} ({e}): {lines:?}");
            }
        }
    }
    // SIGKILL: no destructor, no cleanup, like a crash or the OOM killer
    child.kill().unwrap();
    let status = child.wait().unwrap();
    drop(rx);
    let _ = reader.join();
    eprintln!("killed `up` after {at:?}: {status:?}");
    lines
}

/// nspawn processes of the lab still running.
fn nspawns_of(lab: &Lab) -> usize {
    let needle = format!("/var/lib/labctl/labs/{}/", lab.lab);
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|b| text(&b).replace('\0', " "))
        .filter(|c| c.contains("systemd-nspawn") && c.contains(&needle))
        .count()
}

#[test]
fn destroy_after_up_was_killed_removes_everything_and_the_next_up_works() {
    let _one = one_at_a_time();
    let lab = Lab::new("fltcrash", SUBNET);
    // the image is cached first, so the kill lands in the node phase
    lab.ok(&["up", "dns"]);
    lab.ok(&["destroy"]);
    assert_all_gone(&lab);

    // killed while creating overlays, and right after the first container started
    for at in ["creating", "booting (systemd-nspawn PID"] {
        eprintln!("===== kill `up` at {at:?}");
        up_killed_at(&lab, at);
        let needle = format!("/var/lib/labctl/labs/{}/", lab.lab);
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        eprintln!(
            "FIGURE: after the kill at {at:?}: {} nspawn process(es) and {} mount(s) of the lab left",
            nspawns_of(&lab),
            mounts.lines().filter(|l| l.contains(&needle)).count()
        );
        let t = Instant::now();
        lab.ok(&["destroy"]);
        eprintln!(
            "FIGURE: destroy after the crash took {:.1} s",
            t.elapsed().as_secs_f64()
        );
        assert_all_gone(&lab);
        // a second destroy is harmless
        lab.ok(&["destroy"]);
        assert_all_gone(&lab);
    }

    // and a crash that left everything behind does not stop the next `up`
    up_killed_at(&lab, "booting (systemd-nspawn PID");
    lab.ok(&["up"]);
    for n in ["nodo1", "nodo2", "dns"] {
        assert_eq!(state(&lab, n), "running", "{n}");
        assert_eq!(lab.ok(&["ssh", n, "--", "hostname"]).trim(), n);
    }
    lab.ok(&["destroy"]);
    assert_all_gone(&lab);
}

// ---- faults in the middle of a first converge, on labs `tflt*` ----

/// The seconds of the day of an off-terminal line (`HH:MM:SS …`).
fn stamp(line: &str) -> Option<u32> {
    let t = line.get(..8)?;
    let p: Vec<u32> = t
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    (p.len() == 3 && line.as_bytes().get(8) == Some(&b' ')).then(|| p[0] * 3600 + p[1] * 60 + p[2])
}

/// The stamped lines of an off-terminal run's stdout, as (seconds, text).
fn stamped(out: &str) -> Vec<(u32, &str)> {
    out.lines()
        .filter_map(|l| stamp(l).map(|s| (s, &l[9..])))
        .collect()
}

/// The longest quiet time between two stamped lines (a day boundary counts as 0).
fn longest_gap(lines: &[(u32, &str)]) -> u32 {
    lines
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].0))
        .max()
        .unwrap_or(0)
}

/// The live CIB, read on `node`.
fn cib(lab: &Lab, node: &str) -> String {
    lab.ok(&["ssh", node, "--", "sudo", "cibadmin", "--query"])
}

/// A teacher's first converge, broken on purpose, on one lab:
/// 1. `--check` on fresh nodes previews the whole run (every play, the cluster
///    too) with exit 0;
/// 2. the first `configure`, its output piped to a file: nodo2 loses power while
///    dpkg unpacks its packages. The log never goes quiet for longer than the
///    heartbeat, and nodo1's cluster task ends at once, naming nodo2 (not a 180 s
///    wait that blames corosync.conf);
/// 3. `up nodo2`, then `configure` converges it with no manual step (dpkg
///    finished by the package operation), and a rerun changes nothing;
/// 4. 05 then 04: 05's WebServer and its constraints leave the cluster, apache
///    keeps serving, and a rerun of 04 changes nothing.
#[test]
fn a_first_converge_survives_a_power_cut_during_its_package_installs() {
    let _one = one_at_a_time();
    let lab = Lab::new("tflt1", "10.1.42");
    // nodes without the package layer: this story is the converge that
    // installs the packages (a default lab's nodes have them already)
    let inv = std::fs::read_to_string(lab.inv()).unwrap();
    std::fs::write(lab.inv(), format!("{inv}preinstall: []\n")).unwrap();
    lab.ok(&["up"]);

    // 1. the preview of a first converge
    let t = Instant::now();
    let check = lab.labctl(&["configure", "scenario.yaml", "--check"]);
    let out = text(&check.stdout);
    eprintln!(
        "FIGURE[tflt1]: --check on fresh nodes took {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(check.status.code(), Some(0), "{out}{}", text(&check.stderr));
    for want in [
        "PLAY [cluster resources] on nodo1, nodo2",
        "would change: [nodo1] service apache2 (start, enable, after installing it)",
        "would change: [nodo1] service corosync (start, enable, after installing it)",
        "would change: [nodo1] cluster nodos (once every member is online: ",
        "create VirtualIP",
        "would change: [dns] service named (start, enable, after installing bind9)",
    ] {
        assert!(out.contains(want), "--check shows `{want}`:\n{out}");
    }
    assert!(!out.contains("failed: ["), "{out}");

    // 2. the power cut during dpkg's work on nodo2, with the log piped
    let t0 = Instant::now();
    let run = spawn(&lab, &["configure", "scenario.yaml"]);
    let updates = node_file(&lab, "nodo2", "/var/lib/dpkg/updates");
    eventually("dpkg unpacks on nodo2", Duration::from_secs(300), || {
        std::fs::read_dir(&updates).is_ok_and(|mut d| d.next().is_some())
    });
    let f = lab.labctl(&["fail", "nodo2"]);
    assert!(f.status.success(), "{}", text(&f.stderr));
    eprintln!(
        "FIGURE[tflt1]: power cut of nodo2 {:.1} s into the first converge",
        t0.elapsed().as_secs_f64()
    );
    let done = run.wait_with_output().unwrap();
    let (out, err) = (text(&done.stdout), text(&done.stderr));
    eprintln!(
        "FIGURE[tflt1]: the first converge ended after {:.1} s\n--- stdout\n{out}--- stderr\n{err}",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(done.status.code(), Some(1), "exit code");
    assert!(!err.contains("panicked"), "{err}");
    let lines = stamped(&out);
    assert!(
        lines.len() > 10,
        "every line off a terminal has the time:\n{out}"
    );
    let gap = longest_gap(&lines);
    eprintln!("FIGURE[tflt1]: longest quiet time in the log {gap} s");
    assert!(
        gap <= 12,
        "the log was quiet for {gap} s (heartbeat 10 s):\n{out}"
    );
    assert!(
        lines
            .iter()
            .any(|(_, l)| l.starts_with("unreachable: [nodo2]")),
        "{out}"
    );
    let header = lines
        .iter()
        .find(|(_, l)| l.starts_with("PLAY [cluster resources]"))
        .unwrap_or_else(|| panic!("the cluster play starts on nodo1:\n{out}"));
    let (at, msg) = lines
        .iter()
        .find(|(_, l)| l.starts_with("failed: [nodo1] cluster"))
        .unwrap_or_else(|| panic!("nodo1's cluster task fails:\n{out}"));
    assert!(
        msg.contains("member nodo2 is unreachable in this run") && !msg.contains("corosync.conf"),
        "{msg}"
    );
    eprintln!(
        "FIGURE[tflt1]: nodo1's cluster wait ended {} s after its play began",
        at - header.0
    );
    assert!(
        at - header.0 < 60,
        "the wait ended at once, not after 180 s:\n{out}"
    );

    // 3. power back on: configure finishes dpkg's work by itself
    lab.ok(&["up", "nodo2"]);
    let again = lab.labctl(&["configure", "scenario.yaml", "-v"]);
    let out = text(&again.stdout);
    assert_eq!(again.status.code(), Some(0), "{out}{}", text(&again.stderr));
    assert!(
        out.contains("changed: [nodo2] package apache2 (finish an interrupted dpkg run, then install apache2)")
            || out.contains("changed: [nodo2] package apache2 (finish an interrupted dpkg run)"),
        "{out}"
    );
    let third = lab.json(&["configure", "scenario.yaml", "--json"]);
    assert_eq!(third["changed"], 0, "{third}");
    assert_eq!(third["failed"], 0, "{third}");

    // 4. switching scenarios: 05, then 04
    let s05 = lab.json(&[
        "configure",
        "scenarios/05-ip-failover-apache.yaml",
        "--json",
    ]);
    assert_eq!(s05["failed"], 0, "{s05}");
    assert!(cib(&lab, "nodo1").contains("id=\"WebServer\""));
    let check = lab.ok(&["configure", "scenario.yaml", "--check"]);
    assert!(
        check.contains("remove WebServer"),
        "--check shows the removal first:\n{check}"
    );
    let back = lab.ok(&["configure", "scenario.yaml"]);
    assert!(
        back.contains("remove web-with-ip, remove ip-then-web, remove WebServer"),
        "{back}"
    );
    let live = cib(&lab, "nodo1");
    for id in ["WebServer", "web-with-ip", "ip-then-web"] {
        assert!(
            !live.contains(&format!("id=\"{id}\"")),
            "{id} left:\n{live}"
        );
    }
    assert!(!live.contains("maintenance-mode"), "{live}");
    let rerun = lab.json(&["configure", "scenario.yaml", "--json"]);
    assert_eq!(rerun["changed"], 0, "{rerun}");
    lab.ok(&["verify", "scenario.yaml", "--skip", "failover"]);
    lab.ok(&["destroy"]);
    assert_all_gone(&lab);
}

/// A second Ctrl-C stops labctl at once, and the nodes stop what it started
/// there (no `apt-get install` left running to hold the dpkg lock against a rerun).
#[test]
fn ctrl_c_twice_leaves_no_labctl_started_process_on_the_nodes() {
    let _one = one_at_a_time();
    let lab = Lab::new("tflt2", "10.1.43");
    lab.ok(&["up"]);
    // a duration of this test's own, to find its processes and no others
    let secs = format!("600.{}", std::process::id());
    std::fs::write(
        lab.path("long.yaml"),
        format!(
            "name: long\nplays:\n  - hosts: all\n    tasks:\n      - command: \"touch /var/tmp/tflt-started; sleep {secs}\"\n"
        ),
    )
    .unwrap();
    let run = spawn(&lab, &["configure", "long.yaml"]);
    eventually(
        "every node runs the long command",
        Duration::from_secs(60),
        || {
            ["nodo1", "nodo2", "dns"]
                .iter()
                .all(|n| node_file(&lab, n, "/var/tmp/tflt-started").exists())
                && processes(&["sleep", &secs]).len() == 3
        },
    );
    // two Ctrl-C, the second once labctl has seen the first (two signals sent
    // at once may arrive as one)
    let mut run = run;
    let (tx, rx) = mpsc::channel::<String>();
    let err = run.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let pid = run.id() as libc::pid_t;
    let ctrl_c = || {
        // SAFETY: kill(2) on the PID of our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    };
    ctrl_c();
    let seen = rx
        .iter()
        .find(|l| l.contains("interrupted: no new task starts"));
    assert!(seen.is_some(), "labctl says it was interrupted");
    ctrl_c();
    let t = Instant::now();
    let o = run.wait_with_output().unwrap();
    let _ = reader.join();
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(o.status.code(), Some(130), "{}", rest.join("\n"));
    eventually(
        "no process labctl started is left on the nodes",
        Duration::from_secs(30),
        || processes(&["sleep", &secs]).is_empty(),
    );
    eprintln!(
        "FIGURE[tflt2]: the nodes stopped labctl's commands {:.1} s after it exited",
        t.elapsed().as_secs_f64()
    );
    lab.ok(&["destroy"]);
    assert_all_gone(&lab);
}
