//! A class of three students (labs `cls-ana`, `cls-bob`, `cls-eve` on
//! 10.1.116.0/22, class login `labctl-cls`) from a roster whose keys the test
//! makes: built and configured with scenario.yaml in parallel, `class verify`
//! holds three passing rows; each student's key, through a real sshd the
//! test runs (on loopback) and the config `class ssh-config` gives them,
//! reaches their own node and is refused for another student's node and for
//! a shell on the server; a lab a student broke is put back by `class
//! snapshot restore`; the teacher's page (`class dashboard`, in headless
//! chromium) shows the three labs and a check of ana's turning from failing
//! (she stopped apache2 from her own dashboard, through her forward) to
//! passing (she started it again over her SSH) as `class verify` records it,
//! and saves its picture to target/class-dashboard/ (docs/class-dashboard.png
//! is one); ana's key is refused a forward to bob's dashboard and her action
//! token is refused by it; a student who joins gets a lab (10.1.119.0/24) and
//! nobody's seat moves; a student who leaves loses lab and way in, the others
//! keep theirs; `class destroy` leaves no lab and no login.
//!
//! Needs root (CI runs as root); one lab test at a time on this machine; the
//! class is destroyed on drop (also on panic).

use crate::common;
use common::dashboard::{action_request, parse_answer, post, Dashboard};
use common::lab::{assert_lab_gone, labctl_at, ok_at, one_at_a_time, Lab};
use common::webdriver::Browser;
use common::{keygen, stderr, stdout, Sshd};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const STUDENTS: [&str; 3] = ["ana", "bob", "eve"];

/// The class: `class destroy` on drop (also on panic).
struct ClassGuard<'a>(&'a Lab);

impl ClassGuard<'_> {
    fn class(&self, args: &[&str]) -> Output {
        let mut a = vec!["class"];
        a.extend_from_slice(args);
        labctl_at(&self.0.inv(), &a)
    }
    fn ok(&self, args: &[&str]) -> String {
        let mut a = vec!["class"];
        a.extend_from_slice(args);
        ok_at(&self.0.inv(), &a)
    }
}

impl Drop for ClassGuard<'_> {
    fn drop(&mut self) {
        self.class(&["destroy"]);
    }
}

/// `ssh -F CONFIG ARGS…` as the student.
fn student_ssh(cfg: &Path, args: &[&str]) -> Output {
    student_ssh_with(cfg, args, "")
}

/// [`student_ssh`] with `input` on its standard input.
fn student_ssh_with(cfg: &Path, args: &[&str], input: &str) -> Output {
    // bounded: a forward the server wrongly allowed would keep `ssh -N` running
    let mut child = Command::new("timeout")
        .args(["30", "ssh", "-F"])
        .arg(cfg)
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let o = child.wait_with_output().unwrap();
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

/// What ssh says when the server refuses a forward.
const FORWARD_REFUSED: &[&str] = &["administratively prohibited", "open failed"];

/// `o` failed (else: `what`), as the server refused it: its stderr says one of `why`.
fn refused(o: &Output, what: &str, why: &[&str]) {
    assert!(!o.status.success(), "{what}");
    let err = stderr(o);
    assert!(
        why.iter().any(|w| err.contains(w)),
        "{what}: refused for another reason: {err}"
    );
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let r = f();
    eprintln!("TIME {what}: {:.1} s", t0.elapsed().as_secs_f64());
    r
}

#[test]
fn a_class_of_three_is_built_verified_reached_only_by_its_students_and_removed() {
    let _one = one_at_a_time();
    // the project: the repository's, its own lab never brought up
    let project = Lab::new("clsp", "10.1.1");
    // the teacher's server: its sshd logs in only the class's login
    let sshd = Sshd::for_system_users("labctl-cls");
    let keys = tempfile::tempdir().unwrap();
    let mut roster = format!(
        "class: cls\npool: 10.1.116.0/22\nserver: {{host: 127.0.0.1, port: {}, host_key: \"{}\"}}\nstudents:\n",
        sshd.ports[0],
        sshd.host_key()
    );
    for s in STUDENTS {
        let k = keys.path().join(s);
        keygen(&k, s);
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
    refused(
        &o,
        &format!("ana reached bob's node {bob_ip}"),
        FORWARD_REFUSED,
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
    refused(
        &o,
        "ana listened on the server",
        &["remote port forwarding failed"],
    );

    the_teacher_sees_a_fix_and_each_student_acts_on_their_own_lab_only(&class, &cfgs);

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
    keygen(&dan, "dan");
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
    refused(&o, "eve still gets in", &["Permission denied"]);
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

/// A student's dashboard port and action token (`.labctl/class/STUDENT/desk.json`).
fn desk(project: &Lab, student: &str) -> (u16, String) {
    let f = project.path(&format!(".labctl/class/{student}/desk.json"));
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
    (
        j["port"].as_u64().unwrap() as u16,
        j["action_token"].as_str().unwrap().to_string(),
    )
}

/// One HTTP request to the server's 127.0.0.1:`port`, through the student's
/// login (`ssh -W`, the forward their `LocalForward` asks for).
fn through_jump(cfg: &Path, port: u16, request: &str) -> Output {
    student_ssh_with(
        cfg,
        &["-W", &format!("127.0.0.1:{port}"), "cls-jump"],
        request,
    )
}

/// Whether the page shows `student`'s lab with its last verify `passed`
/// (and, failing, a failing check), every node up.
fn lab_shown(student: &str, passed: bool) -> String {
    format!(
        "const l = document.querySelector('.lab[data-student=\"{student}\"][data-passed=\"{passed}\"]'); return !!l && l.querySelectorAll('.pill[data-state=\"running\"]').length === 3 && (l.querySelector('.check[data-passed=\"false\"]') === null) === {passed}"
    )
}

/// `class verify` of ana's lab (failover skipped), which fails or passes
/// (`passed`); then the teacher's page, live, shows it.
fn verify_ana_and_see(class: &ClassGuard, b: &Browser, passed: bool) {
    let o = timed(&format!("class verify ana (passing: {passed})"), || {
        class.class(&["verify", "--skip", "failover", "ana"])
    });
    assert_eq!(o.status.success(), passed, "{}", stdout(&o));
    let t = Instant::now();
    b.must(
        &lab_shown("ana", passed),
        Duration::from_secs(10),
        &format!("ana's lab with passed={passed}"),
    );
    eprintln!(
        "MEASURE class verify ended -> the page shows ana's lab passed={passed}: {} ms",
        t.elapsed().as_millis()
    );
}

fn the_teacher_sees_a_fix_and_each_student_acts_on_their_own_lab_only(
    class: &ClassGuard,
    cfgs: &[PathBuf],
) {
    let project = class.0;
    let (ana_port, ana_token) = desk(project, "ana");
    let (bob_port, _) = desk(project, "bob");
    let inv = project.inv();
    let mut d = Dashboard::start(
        inv.parent().unwrap(),
        &[
            "-i",
            inv.to_str().unwrap(),
            "class",
            "dashboard",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let b = Browser::start();
    b.goto(&d.url);
    for s in STUDENTS {
        b.must(
            &lab_shown(s, true),
            Duration::from_secs(60),
            &format!("{s}'s lab up and verified"),
        );
    }

    // ana reaches her own dashboard through her login, and not bob's
    let state = |port: u16| {
        format!("GET /state HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
    };
    let o = through_jump(&cfgs[0], ana_port, &state(ana_port));
    let (status, _, body) = parse_answer(&stdout(&o));
    assert_eq!(status, 200, "ana's own dashboard through her login: {body}");
    assert!(body.contains("\"lab\":\"cls-ana\""), "{body}");
    let o = through_jump(&cfgs[0], bob_port, &state(bob_port));
    refused(&o, "ana reached bob's dashboard", FORWARD_REFUSED);
    assert!(!stdout(&o).contains("cls-bob"), "{}", stdout(&o));
    // ana's action token does not act on bob's lab
    let stop = |n: &str| {
        format!("{{\"action\":\"stop_service\",\"node\":\"{n}\",\"service\":\"apache2\"}}")
    };
    let bob = format!("127.0.0.1:{bob_port}");
    let (status, body) = post(
        &bob,
        Some(&format!("http://{bob}")),
        Some(&ana_token),
        &stop("nodo1"),
    );
    assert_eq!(status, 403, "bob's dashboard took ana's token: {body}");

    // ana breaks her lab from her dashboard, through her forward: apache2 stopped
    let ana = format!("127.0.0.1:{ana_port}");
    for n in ["nodo1", "nodo2"] {
        let req = action_request(
            &ana,
            Some(&format!("http://{ana}")),
            Some(&ana_token),
            &stop(n),
        );
        let o = through_jump(&cfgs[0], ana_port, &req);
        assert_eq!(
            parse_answer(&stdout(&o)).0,
            202,
            "ana's action on her {n}: {}",
            stdout(&o)
        );
    }
    let active = |s: &str, n: &str| {
        stdout(&class.class(&["ssh", s, n, "systemctl", "is-active", "apache2"]))
            .trim()
            .to_string()
    };
    let until = Instant::now() + Duration::from_secs(30);
    while ["nodo1", "nodo2"]
        .iter()
        .any(|n| active("ana", n) != "inactive")
    {
        assert!(
            Instant::now() < until,
            "ana's dashboard did not stop apache2"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        active("bob", "nodo1"),
        "active",
        "ana's action reached bob's lab"
    );
    verify_ana_and_see(class, &b, false);
    b.must(
        &lab_shown("bob", true),
        Duration::from_secs(10),
        "bob still passing",
    );
    // (docs/class-dashboard.png is this picture from a run, copied by hand:
    // a test run writes nothing into the source tree)
    b.screenshot(&Path::new(env!("CARGO_MANIFEST_DIR")).join("target/class-dashboard/failing.png"));

    // ana fixes it over her own SSH; the next verify of her lab turns it green
    for n in ["nodo1", "nodo2"] {
        let o = student_ssh(&cfgs[0], &[n, "sudo", "systemctl", "start", "apache2"]);
        assert!(o.status.success(), "ana cannot start apache2 on her {n}");
    }
    verify_ana_and_see(class, &b, true);
    b.screenshot(&Path::new(env!("CARGO_MANIFEST_DIR")).join("target/class-dashboard/fixed.png"));

    // the drill-down: ana's lab's own page, watch only
    b.goto(&format!("{}lab/ana/", d.url));
    b.must(
        "return document.querySelector('#lab')?.textContent === 'cls-ana' && document.querySelector('.node[data-node=\"nodo1\"]')?.dataset.state === 'running' && document.querySelectorAll('button[data-action]').length === 0",
        Duration::from_secs(30),
        "ana's lab page, watch only",
    );
    drop(b);
    let st = d.interrupt();
    assert!(st.success(), "class dashboard ended with {st} on Ctrl-C");
}
