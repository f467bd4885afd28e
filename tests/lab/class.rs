//! A class of three students (labs `cls-ana`, `cls-bob`, `cls-eve` on
//! 10.1.116.0/22, class login `labctl-cls`) from a roster whose keys the test
//! makes: built and configured with scenario.yaml in parallel, `class verify`
//! holds three passing rows; each student's key, through a real sshd the
//! test runs (on loopback) and the config `class ssh-config` gives them,
//! reaches their own node and is refused for another student's node and for
//! a shell on the server; a lab a student broke is put back by `class
//! snapshot restore`; a student who joins gets a lab (10.1.119.0/24) and
//! nobody's seat moves; a student who leaves loses lab and way in, the others
//! keep theirs; `class destroy` leaves no lab and no login.
//!
//! Needs root (CI runs as root); one lab test at a time on this machine; the
//! class is destroyed on drop (also on panic).

use crate::common;
use common::lab::{labctl_at, one_at_a_time, Lab};
use common::{free_port, stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const STUDENTS: [&str; 3] = ["ana", "bob", "eve"];

/// An sshd on 127.0.0.1 that logs in only the class's login, with the
/// system's user database (as the teacher's server would); killed on drop.
struct ServerSshd {
    child: Child,
    port: u16,
    host_pub: String,
    _dir: tempfile::TempDir,
}

impl ServerSshd {
    fn start() -> ServerSshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join("host_key"))
            .status()
            .unwrap();
        assert!(ok.success());
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = free_port();
        let cfg = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile .ssh/authorized_keys\nAllowUsers labctl-cls\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nLogLevel VERBOSE\n",
            d.join("host_key").display(),
            d.join("sshd.pid").display()
        );
        std::fs::write(d.join("sshd_config"), cfg).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-f"])
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/sbin/sshd (package openssh-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        ServerSshd {
            child,
            port,
            host_pub: host_pub
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" "),
            _dir: dir,
        }
    }
}

impl Drop for ServerSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The class: `class destroy` on drop (also on panic).
struct ClassGuard<'a>(&'a Lab);

impl ClassGuard<'_> {
    fn class(&self, args: &[&str]) -> Output {
        let mut a = vec!["class"];
        a.extend_from_slice(args);
        labctl_at(&self.0.inv(), &a)
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.class(args);
        assert!(
            o.status.success(),
            "labctl class {} failed ({})",
            args.join(" "),
            o.status
        );
        stdout(&o)
    }
}

impl Drop for ClassGuard<'_> {
    fn drop(&mut self) {
        self.class(&["destroy"]);
    }
}

/// `ssh -F CONFIG ARGS…` as the student.
fn student_ssh(cfg: &Path, args: &[&str]) -> Output {
    // bounded: a forward the server wrongly allowed would keep `ssh -N` running
    let o = Command::new("timeout")
        .args(["30", "ssh", "-F"])
        .arg(cfg)
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!(
        "$ ssh -F {} {} -> {}\n{}{}",
        cfg.display(),
        args.join(" "),
        o.status,
        stdout(&o),
        stderr(&o)
    );
    o
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let r = f();
    eprintln!("TIME {what}: {:.1} s", t0.elapsed().as_secs_f64());
    r
}

fn assert_lab_gone(lab: &str) {
    let br = format!("lab-{lab}");
    assert!(
        !Path::new("/sys/class/net").join(&br).exists(),
        "bridge {br} left"
    );
    let dir = PathBuf::from("/var/lib/labctl/labs").join(lab);
    assert!(!dir.exists(), "{} left", dir.display());
    let needle = format!("/var/lib/labctl/labs/{lab}/");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(&needle), "mounts of {lab} left");
    let procs = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .filter(|c| c.contains("systemd-nspawn") && c.contains(&needle))
        .count();
    assert_eq!(procs, 0, "nspawn processes of {lab} left");
}

#[test]
fn a_class_of_three_is_built_verified_reached_only_by_its_students_and_removed() {
    let _one = one_at_a_time();
    // the project: the repository's, its own lab never brought up
    let project = Lab::new("clsp", "10.1.1");
    let sshd = ServerSshd::start();
    let keys = tempfile::tempdir().unwrap();
    let mut roster = format!(
        "class: cls\npool: 10.1.116.0/22\nserver: {{host: 127.0.0.1, port: {}, host_key: \"{}\"}}\nstudents:\n",
        sshd.port, sshd.host_pub
    );
    for s in STUDENTS {
        let k = keys.path().join(s);
        assert!(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", s, "-f"])
            .arg(&k)
            .status()
            .unwrap()
            .success());
        let public = std::fs::read_to_string(k.with_extension("pub")).unwrap();
        roster += &format!("  {s}: {{key: \"{}\"}}\n", public.trim());
    }
    std::fs::write(project.path("roster.yaml"), roster).unwrap();
    let class = ClassGuard(&project);

    timed("class up (3 labs)", || class.ok(&["up"]));
    let st: serde_json::Value = serde_json::from_str(&class.ok(&["status", "--json"])).unwrap();
    for s in STUDENTS {
        let nodes = st["students"][s]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 3, "{st}");
        assert!(nodes.iter().all(|n| n["state"] == "running"), "{st}");
        assert_eq!(st["students"][s]["lab"], format!("cls-{s}"), "{st}");
    }
    // the seats are stable: a second `up` changes nothing and moves nobody
    let seats = std::fs::read_to_string(project.path(".labctl/class/seats.json")).unwrap();
    class.ok(&["up"]);
    assert_eq!(
        std::fs::read_to_string(project.path(".labctl/class/seats.json")).unwrap(),
        seats
    );

    timed("class configure scenario.yaml (3 labs)", || {
        class.ok(&["configure", "scenario.yaml"])
    });
    let table = timed("class verify (3 labs, failover included)", || {
        class.ok(&["verify"])
    });
    for s in STUDENTS {
        let row = table
            .lines()
            .find(|l| l.starts_with(s))
            .unwrap_or_else(|| panic!("no row for {s}: {table}"));
        assert!(
            row.contains(&format!("cls-{s}")) && row.ends_with("passed"),
            "{row}"
        );
    }
    assert!(
        table.contains("class verify: 3 of 3 labs passed"),
        "{table}"
    );

    // what each student gets, used as they would use it
    let mut cfgs = Vec::new();
    for s in STUDENTS {
        let kh = keys.path().join(format!("{s}.known_hosts"));
        std::fs::write(&kh, class.ok(&["ssh-config", s, "--known-hosts"])).unwrap();
        let cfg_text = class.ok(&[
            "ssh-config",
            s,
            "--identity",
            &keys.path().join(s).display().to_string(),
            "--known-hosts-file",
            &kh.display().to_string(),
        ]);
        let cfg = keys.path().join(format!("{s}.ssh"));
        std::fs::write(&cfg, cfg_text).unwrap();
        let o = student_ssh(&cfg, &["nodo1", "hostname"]);
        assert!(o.status.success(), "{s} cannot reach their nodo1");
        assert_eq!(stdout(&o).trim(), "nodo1");
        cfgs.push(cfg);
    }
    // ana through her login to bob's node: the server refuses the forward
    let bob_nodo1 = class.ok(&["ssh", "bob", "nodo1", "hostname", "-I"]);
    let bob_ip = bob_nodo1.split_whitespace().next().unwrap().to_string();
    let o = student_ssh(
        &cfgs[0],
        &[
            "-o",
            &format!("HostName={bob_ip}"),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "nodo1",
            "hostname",
        ],
    );
    assert!(!o.status.success(), "ana reached bob's node {bob_ip}");
    assert!(
        stderr(&o).contains("administratively prohibited") || stderr(&o).contains("open failed"),
        "refused for another reason: {}",
        stderr(&o)
    );
    // and no shell on the server
    let o = student_ssh(&cfgs[0], &["cls-jump", "id"]);
    assert!(!o.status.success(), "ana got a shell on the server");
    assert!(!stdout(&o).contains("uid="), "{}", stdout(&o));

    // nor a listening port on it (ssh -R)
    let o = student_ssh(
        &cfgs[0],
        &[
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            "127.0.0.1:7777:127.0.0.1:22",
            "cls-jump",
        ],
    );
    assert!(!o.status.success(), "ana listened on the server");
    assert!(
        stderr(&o).contains("remote port forwarding failed"),
        "{}",
        stderr(&o)
    );

    // a saved starting point; ana breaks her web pages; restore puts them back
    timed("class snapshot save (3 labs)", || {
        class.ok(&["snapshot", "save", "configured"])
    });
    for node in ["nodo1", "nodo2"] {
        let o = student_ssh(
            &cfgs[0],
            &[node, "sudo", "rm", "-f", "/var/www/html/info.txt"],
        );
        assert!(o.status.success());
    }
    let o = class.class(&["verify", "--skip", "failover", "--csv"]);
    assert_eq!(o.status.code(), Some(1), "a broken lab fails verify");
    let csv = stdout(&o);
    assert!(csv.starts_with("student,lab,"), "{csv}");
    let row = |csv: &str, s: &str| {
        csv.lines()
            .find(|l| l.starts_with(&format!("{s},")))
            .unwrap_or_else(|| panic!("no row for {s}: {csv}"))
            .to_string()
    };
    assert!(row(&csv, "ana").ends_with(",false"), "{csv}");
    assert!(row(&csv, "bob").ends_with(",true"), "{csv}");
    timed("class snapshot restore (3 labs)", || {
        class.ok(&["snapshot", "restore", "configured"])
    });
    let j: serde_json::Value =
        serde_json::from_str(&class.ok(&["verify", "--skip", "failover", "--json"])).unwrap();
    for s in STUDENTS {
        assert_eq!(j["students"][s]["passed"], true, "{j}");
    }

    // a student joins: only their lab is built, nobody else's seat moves
    let dan = keys.path().join("dan");
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "dan", "-f"])
        .arg(&dan)
        .status()
        .unwrap()
        .success());
    let dan_pub = std::fs::read_to_string(dan.with_extension("pub")).unwrap();
    let roster_file = project.path("roster.yaml");
    let roster = std::fs::read_to_string(&roster_file).unwrap();
    std::fs::write(
        &roster_file,
        format!("{roster}  dan: {{key: \"{}\"}}\n", dan_pub.trim()),
    )
    .unwrap();
    let out = timed("class up (a 4th student joins)", || class.ok(&["up"]));
    assert!(out.contains("all 4 labs ok"), "{out}");
    let seats_now: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project.path(".labctl/class/seats.json")).unwrap(),
    )
    .unwrap();
    let seats_before: serde_json::Value = serde_json::from_str(&seats).unwrap();
    for s in STUDENTS {
        assert_eq!(seats_now["seats"][s], seats_before["seats"][s]);
    }
    assert_eq!(seats_now["seats"]["dan"]["subnet"], "10.1.119.0/24");
    // eve leaves: her lab and her way in go, the others stay
    let without_eve: String = std::fs::read_to_string(&roster_file)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("eve:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&roster_file, without_eve).unwrap();
    timed("class destroy eve", || class.ok(&["destroy", "eve"]));
    assert_lab_gone("cls-eve");
    let o = student_ssh(&cfgs[2], &["nodo1", "hostname"]);
    assert!(!o.status.success(), "eve still gets in");
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    let o = student_ssh(&cfgs[0], &["nodo1", "hostname"]);
    assert!(o.status.success(), "ana lost her way in when eve left");
    assert!(Path::new("/sys/class/net/lab-cls-ana").exists());

    timed("class destroy (3 labs left)", || class.ok(&["destroy"]));
    for s in ["ana", "bob", "eve", "dan"] {
        assert_lab_gone(&format!("cls-{s}"));
        assert!(!project.path(&format!(".labctl/class/{s}")).exists());
    }
    let o = Command::new("getent")
        .args(["passwd", "labctl-cls"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "the class login is left");
    assert!(!Path::new("/var/lib/labctl/class-logins/labctl-cls").exists());
    assert!(!project.path(".labctl/class/seats.json").exists());
}
