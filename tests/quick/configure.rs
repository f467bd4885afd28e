//! `labctl configure` against a real OpenSSH server on loopback: idempotency,
//! check mode, diffs, handlers, key permissions, early template errors.

use crate::common;
use common::{json, stderr, stdout, Project};
use std::os::unix::fs::PermissionsExt;

const SCENARIO: &str = r#"
name: files
plays:
  - hosts: web
    vars: {greeting: hello}
    tasks:
      - name: config dir
        file: {path: "{{ root }}/etc/app", state: directory, mode: "0755"}
      - name: main config
        template: {src: app.conf.j2, dest: "{{ root }}/etc/app/app.conf", mode: "0640"}
        notify: reload app
      - name: static file
        copy: {src: static.txt, dest: "{{ root }}/etc/app/static.txt"}
        notify: reload app
      - name: marker
        command: {cmd: "echo made > {{ root }}/marker", creates: "{{ root }}/marker"}
    handlers:
      reload app: {command: "echo reloaded >> {{ root }}/handler.log"}
"#;

fn setup(nodes: usize) -> Project {
    let p = Project::new(nodes);
    p.write(
        "templates/app.conf.j2",
        "# {{ inventory_hostname }} at {{ node.address }}\ngreeting = {{ greeting }}\ndomain = {{ domain }}\npeers = {% for n in groups.web %}{{ n }} {% endfor %}\n",
    );
    p.write("files/static.txt", "static\n");
    p.write("scenario.yaml", SCENARIO);
    p
}

fn mtimes(p: &Project, files: &[&str]) -> Vec<std::time::SystemTime> {
    files
        .iter()
        .map(|f| std::fs::metadata(p.path(f)).unwrap().modified().unwrap())
        .collect()
}

#[test]
fn first_run_changes_second_run_changes_nothing() {
    let p = setup(2);
    let o = p.labctl(&["configure", "scenario.yaml", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let j = json(&o);
    assert_eq!(j["failed"], 0);
    assert_eq!(j["hosts"]["n1"]["changed"], 5, "{j}"); // dir, template, copy, command, handler
    assert_eq!(j["hosts"]["n2"]["unreachable"], false);
    let conf = p.read("root/n2/etc/app/app.conf");
    assert!(
        conf.contains("# n2 at 127.0.0.1") && conf.contains("peers = n1 n2"),
        "{conf}"
    );
    let mode = std::fs::metadata(p.path("root/n1/etc/app/app.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    // the handler was notified twice and ran once
    assert_eq!(p.read("root/n1/handler.log"), "reloaded\n");

    let files = [
        "root/n1/etc/app/app.conf",
        "root/n1/etc/app/static.txt",
        "root/n1/marker",
        "root/n1/handler.log",
    ];
    let before = mtimes(&p, &files);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let o = p.labctl(&["configure", "scenario.yaml", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let j = json(&o);
    assert_eq!(j["changed"], 0, "{j}");
    assert_eq!(j["hosts"]["n1"]["ok"], 4);
    assert_eq!(before, mtimes(&p, &files), "a no-op run wrote files");
    assert_eq!(
        p.read("root/n1/handler.log"),
        "reloaded\n",
        "a no-op run ran a handler"
    );

    // text recap
    let o = p.labctl(&["configure", "scenario.yaml"]);
    let out = stdout(&o);
    assert!(
        out.contains("RECAP") && out.contains("n1") && out.contains("changed=0"),
        "{out}"
    );
}

#[test]
fn check_mode_changes_nothing_and_diff_shows_the_template_change() {
    let p = setup(1);
    assert_eq!(
        p.labctl(&["configure", "scenario.yaml"]).status.code(),
        Some(0)
    );
    p.write(
        "scenario.yaml",
        &SCENARIO.replace("greeting: hello", "greeting: bonjour"),
    );
    let before = p.read("root/n1/etc/app/app.conf");

    let o = p.labctl(&["configure", "scenario.yaml", "--check", "--diff"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("-greeting = hello") && out.contains("+greeting = bonjour"),
        "{out}"
    );
    assert!(out.contains("would change: [n1] main config"), "{out}");
    assert_eq!(
        p.read("root/n1/etc/app/app.conf"),
        before,
        "--check wrote a file"
    );
    assert_eq!(
        p.read("root/n1/handler.log"),
        "reloaded\n",
        "--check ran a handler"
    );

    // for real: only the template changes and the handler runs once more
    let o = p.labctl(&["configure", "scenario.yaml", "--json"]);
    let j = json(&o);
    assert_eq!(j["hosts"]["n1"]["changed"], 2, "{j}"); // template + handler
    assert_eq!(p.read("root/n1/handler.log"), "reloaded\nreloaded\n");
}

#[test]
fn failing_task_still_flushes_notified_handlers() {
    let p = setup(1);
    p.write(
        "scenario.yaml",
        &SCENARIO.replace(
            "      - name: marker\n",
            "      - name: boom\n        command: \"echo broken >&2; exit 3\"\n      - name: marker\n",
        ),
    );
    let o = p.labctl(&["configure", "scenario.yaml", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["hosts"]["n1"]["failed"], 1);
    assert!(
        stderr(&o).contains("broken"),
        "the failure's output is shown: {}",
        stderr(&o)
    );
    assert_eq!(
        p.read("root/n1/handler.log"),
        "reloaded\n",
        "notified handler did not run"
    );
    assert!(
        !p.path("root/n1/marker").exists(),
        "tasks after the failure ran"
    );
}

#[test]
fn group_readable_key_is_refused_with_the_fix() {
    let p = setup(1);
    let key = p.path(".labctl/id_ed25519");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = p.labctl(&["configure", "scenario.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains(&format!("chmod 600 {}", key.display())), "{e}");
    assert!(!e.contains("panicked") && !e.contains("backtrace"));
    assert!(!p.path("root/n1/etc").exists());
}

#[test]
fn undefined_variable_fails_before_any_host_is_touched() {
    let p = setup(2);
    p.write("templates/app.conf.j2", "ok = 1\nbad = {{ greting }}\n");
    let o = p.labctl(&["configure", "scenario.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("app.conf.j2:2") && e.contains("undefined"),
        "{e}"
    );
    assert!(
        !p.path("root/n1/etc").exists() && !p.path("root/n2/etc").exists(),
        "a host was touched"
    );
}

#[test]
fn wrong_pinned_host_key_is_refused() {
    let p = setup(1);
    let other = tempfile::tempdir().unwrap();
    let k = other.path().join("k");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&k)
        .status()
        .unwrap();
    let pubkey = std::fs::read_to_string(k.with_extension("pub")).unwrap();
    let fake: Vec<&str> = pubkey.split_whitespace().take(2).collect();
    p.write(
        ".labctl/known_hosts",
        &format!("[127.0.0.1]:{} {}\n", p.sshd.ports[0], fake.join(" ")),
    );
    let o = p.labctl(&["configure", "scenario.yaml", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["hosts"]["n1"]["unreachable"], true);
    assert!(stderr(&o).contains("does not match"), "{}", stderr(&o));
    assert!(!p.path("root/n1/etc").exists());
}

#[test]
fn limit_selects_hosts() {
    let p = setup(2);
    let o = p.labctl(&["configure", "scenario.yaml", "--limit", "n2", "--json"]);
    let j = json(&o);
    assert!(
        j["hosts"].get("n1").is_none() && j["hosts"]["n2"]["changed"].as_u64() > Some(0),
        "{j}"
    );
    let o = p.labctl(&["configure", "scenario.yaml", "--limit", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("`nope`"));
}

#[test]
fn a_task_past_its_timeout_is_stopped_and_the_run_goes_on() {
    let p = setup(1);
    p.write(
        "scenario.yaml",
        &SCENARIO.replace(
            "      - name: marker\n",
            "      - name: slow\n        timeout: 1s\n        command: \"sleep 41.5\"\n      - name: marker\n",
        ),
    );
    let t = std::time::Instant::now();
    let o = p.labctl(&["configure", "scenario.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = format!("{}{}", stdout(&o), stderr(&o));
    assert!(e.contains("slow") && e.contains("time limit of 1 s"), "{e}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(40),
        "it waited for the sleep"
    );
    // what the task started is gone with it
    let left = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|d| std::fs::read(d.path().join("cmdline")).ok())
        .any(|c| String::from_utf8_lossy(&c).contains("sleep\u{0}41.5"));
    assert!(!left, "the timed-out command still runs");
    assert_eq!(p.read("root/n1/handler.log"), "reloaded\n");
}

#[test]
fn a_command_that_cannot_parse_is_refused_before_any_host_is_touched() {
    for (field, task) in [
        ("cmd", "command: \"echo 'unbalanced\""),
        (
            "unless",
            "command: {cmd: \"true\", unless: \"test -e \\\"/x\"}",
        ),
    ] {
        let p = setup(1);
        p.write(
            "scenario.yaml",
            &SCENARIO.replace(
                "      - name: marker\n",
                &format!("      - name: broken\n        {task}\n      - name: marker\n"),
            ),
        );
        let t = std::time::Instant::now();
        let o = p.labctl(&["configure", "scenario.yaml"]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("scenario.yaml:")
                && e.contains(&format!("command: {field}"))
                && e.contains("cannot parse")
                && e.contains("fix:"),
            "{e}"
        );
        assert!(t.elapsed() < std::time::Duration::from_secs(20));
        assert!(!p.path("root/n1/etc").exists(), "a host was touched");
    }
}

/// The seconds of the day of an off-terminal line (`HH:MM:SS …`).
fn stamp(line: &str) -> Option<u32> {
    let p: Vec<u32> = line
        .get(..8)?
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    (p.len() == 3).then(|| p[0] * 3600 + p[1] * 60 + p[2])
}

#[test]
fn off_a_terminal_every_line_has_the_time_and_a_long_task_gets_heartbeats() {
    let p = Project::new(1);
    p.write(
        "s.yaml",
        "plays:\n  - name: slow\n    hosts: web\n    tasks:\n      - name: long step\n        command: \"sleep 23\"\n",
    );
    let o = p.labctl(&["configure", "s.yaml"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    let body: Vec<&str> = out.lines().take_while(|l| *l != "RECAP").collect();
    let stamps: Vec<u32> = body
        .iter()
        .map(|l| stamp(l).unwrap_or_else(|| panic!("no time: {l}\n{out}")))
        .collect();
    assert!(body[0].ends_with(" PLAY [slow] on n1"), "{out}");
    let beats: Vec<&&str> = body
        .iter()
        .filter(|l| l[9..].starts_with("still running: long step on n1 ("))
        .collect();
    assert!(
        beats.len() >= 2,
        "a 23 s task, a heartbeat every 10 s:\n{out}"
    );
    let gap = stamps
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(0);
    assert!(gap <= 12, "quiet for {gap} s:\n{out}");
}
