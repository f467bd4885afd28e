//! Two hardening stories against a real sshd on loopback:
//!
//! - one command changes a lab at a time: a second `configure` refuses at once,
//!   naming the running one, while read-only commands still work;
//! - Ctrl-C (SIGINT) stops a run promptly: no new task starts on any host, the
//!   recap so far is printed, the exit code is 130, and every managed file is
//!   either old or new, never partial (also when labctl is stopped mid-write).
//!
//! "Slow" tasks here wait for a file the test creates, so nothing depends on timing.

use crate::common;
use common::{processes, stderr, stdout, Project};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

/// Start labctl in the project folder without waiting for it.
fn spawn(p: &Project, args: &[&str]) -> Child {
    common::spawn_labctl(p.dir.path(), args)
}

/// Wait (up to a generous deadline) until `cond` holds.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send SIGINT to a labctl this test started.
fn interrupt(child: &Child) {
    // SAFETY: kill(2) on the PID of our own child process.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
}

/// Files whose name starts with `.labctl.` (the content op's temp files) under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                todo.push(path);
            } else if e.file_name().to_string_lossy().starts_with(".labctl.") {
                out.push(path);
            }
        }
    }
    out
}

const SLOW_SCENARIO: &str = r#"
name: slow
plays:
  - hosts: web
    tasks:
      - name: big config
        template: {src: big.j2, dest: "{{ root }}/etc/big.conf"}
        notify: reload app
      - name: slow step
        command: "touch {{ root }}/started; while [ ! -e {{ root }}/go ]; do sleep 0.05; done"
      - name: later config
        template: {src: later.j2, dest: "{{ root }}/etc/later.conf"}
      - name: marker
        command: "touch {{ root }}/marker"
    handlers:
      reload app: {command: "echo reloaded >> {{ root }}/handler.log"}
"#;

/// A project whose nodes already hold old versions of the managed files.
fn slow_project(nodes: usize) -> Project {
    let p = Project::new(nodes);
    p.write("scenario.yaml", SLOW_SCENARIO);
    p.write(
        "templates/big.j2",
        "{% for i in range(20000) %}new line {{ i }} of {{ inventory_hostname }}\n{% endfor %}",
    );
    p.write("templates/later.j2", "later = new\n");
    for n in 1..=nodes {
        p.write(&format!("root/n{n}/etc/big.conf"), "old big\n");
        p.write(&format!("root/n{n}/etc/later.conf"), "later = old\n");
    }
    p
}

fn big_new(host: &str) -> String {
    (0..20000)
        .map(|i| format!("new line {i} of {host}\n"))
        .collect()
}

fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

#[test]
fn a_second_configure_refuses_while_one_runs_and_check_still_works() {
    let p = slow_project(1);
    let first = spawn(&p, &["configure", "scenario.yaml"]);
    eventually("the first configure reaches its slow step", || {
        p.path("root/n1/started").exists()
    });

    // a second change to the same lab refuses at once and says who holds it
    let o = p.labctl(&["configure", "scenario.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let e = stderr(&o);
    assert_eq!(e.matches("error:").count(), 1, "{e}");
    assert!(e.contains("lab `test` is busy"), "{e}");
    assert!(
        e.contains(&format!(
            "`labctl configure scenario.yaml` (pid {})",
            first.id()
        )),
        "{e}"
    );
    assert!(e.contains("fix: wait for it to finish"), "{e}");
    assert!(!e.contains("panicked"), "{e}");

    // a read-only command is not blocked by the lock
    let o = p.labctl(&["configure", "scenario.yaml", "--check"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("RECAP"), "{}", stdout(&o));

    // the first one finishes normally, and releases the lab
    p.write("root/n1/go", "");
    let o = finish(first);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(p.read("root/n1/etc/later.conf"), "later = new\n");
    let o = p.labctl(&["configure", "scenario.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn the_lock_held_by_another_process_names_it() {
    let p = slow_project(1);
    let inv = labctl::providers::load_inventory(&p.path("inventory.yaml")).unwrap();
    let held = labctl::lock::LabLock::acquire(&inv, "up").unwrap();
    let o = p.labctl(&["configure", "scenario.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("`labctl up` (pid {})", std::process::id())),
        "{e}"
    );
    assert!(
        !p.path("root/n1/started").exists(),
        "a refused run touched a node"
    );
    // every command that changes the lab refuses; read-only ones run, and so
    // does a power cut (`fail`, which provider ssh refuses for its own reason)
    for args in [&["up"][..], &["halt"], &["destroy"]] {
        let o = p.labctl(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("lab `test` is busy"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    for args in [
        &["status"][..],
        &["configure", "scenario.yaml", "--check"],
        &["fail", "n1"],
    ] {
        let o = p.labctl(args);
        assert!(!stderr(&o).contains("busy"), "{args:?}: {}", stderr(&o));
    }
    drop(held);
    p.write(
        "quick.yaml",
        "plays:\n  - hosts: web\n    tasks:\n      - template: {src: later.j2, dest: \"{{ root }}/etc/later.conf\"}\n",
    );
    let o = p.labctl(&["configure", "quick.yaml"]);
    assert_eq!(o.status.code(), Some(0), "released: {}", stderr(&o));
    assert_eq!(p.read("root/n1/etc/later.conf"), "later = new\n");
}

#[test]
fn ctrl_c_stops_every_host_before_its_next_task_and_prints_the_recap() {
    let p = slow_project(2);
    let child = spawn(&p, &["configure", "scenario.yaml"]);
    eventually("both hosts run their slow step", || {
        p.path("root/n1/started").exists() && p.path("root/n2/started").exists()
    });

    interrupt(&child);
    // the in-flight remote scripts finish; nothing new starts
    p.write("root/n1/go", "");
    p.write("root/n2/go", "");
    let o = finish(child);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(130), "{out}{err}");
    assert!(
        out.contains("RECAP (interrupted by Ctrl-C"),
        "recap printed: {out}"
    );
    for n in ["n1", "n2"] {
        let line = out.lines().find(|l| l.starts_with(n)).unwrap_or_default();
        assert!(
            line.contains("changed=2") && line.contains("interrupted"),
            "{n}: {out}"
        );
        let root = p.path(&format!("root/{n}"));
        // done before the signal: new; after it: untouched (old), never partial
        assert_eq!(
            p.read(&format!("root/{n}/etc/big.conf")),
            big_new(n),
            "{n} big.conf"
        );
        assert_eq!(p.read(&format!("root/{n}/etc/later.conf")), "later = old\n");
        assert!(
            !root.join("marker").exists(),
            "{n}: a task started after Ctrl-C"
        );
        assert!(
            !root.join("handler.log").exists(),
            "{n}: a handler started after Ctrl-C"
        );
        assert_eq!(temp_files(&root), Vec::<PathBuf>::new());
    }
    // the user learns which notified handler never ran
    assert!(
        out.contains("interrupted: [n1] stopped by Ctrl-C: notified handlers not run: reload app"),
        "{out}"
    );
    assert!(err.contains("labctl: interrupted"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // the next run converges the rest
    let o = p.labctl(&["configure", "scenario.yaml", "--limit", "n1"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(p.read("root/n1/etc/later.conf"), "later = new\n");
}

#[test]
fn ctrl_c_twice_during_a_large_write_leaves_the_old_file_or_the_new_one() {
    // 8 MB of plain text: a long transfer, so some interrupts land mid-write
    let p = Project::new(1);
    let big: String = (0..200_000)
        .map(|i| format!("line {i:08} of the new content\n"))
        .collect();
    p.write("templates/huge.j2", &big);
    let pauses = [0u64, 100, 250, 500, 1000, 2000];
    for (i, pause) in pauses.iter().enumerate() {
        let dest = format!("root/n1/huge-{i}.conf");
        p.write(&dest, "old\n");
        p.write(
            &format!("s{i}.yaml"),
            &format!(
                "plays:\n  - hosts: web\n    tasks:\n      - template: {{src: huge.j2, dest: \"{{{{ root }}}}/huge-{i}.conf\"}}\n"
            ),
        );
        let child = spawn(&p, &["configure", &format!("s{i}.yaml")]);
        std::thread::sleep(Duration::from_millis(*pause));
        interrupt(&child);
        interrupt(&child);
        let o = finish(child);
        let status = o.status;
        assert!(
            status.code() == Some(130)
                || status.code() == Some(0)
                || status.signal() == Some(libc::SIGINT),
            "pause {pause} ms: {status:?} {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        // a script cut off never starts; one stopped on the node removes its temp file
        eventually("no temp file is left on the node", || {
            temp_files(&p.path("root/n1")).is_empty()
        });
        let now = p.read(&dest);
        assert!(
            now == "old\n" || now == big,
            "pause {pause} ms: {dest} is partial ({} bytes)",
            now.len()
        );
    }
}

#[test]
fn ctrl_c_twice_stops_what_labctl_started_on_the_nodes() {
    let p = Project::new(2);
    // a duration of this test's own, to find its processes and no others
    let secs = format!("600.{}", std::process::id());
    p.write(
        "s.yaml",
        &format!(
            "plays:\n  - hosts: web\n    tasks:\n      - command: \"touch {{{{ root }}}}/started; sleep {secs}\"\n"
        ),
    );
    let mut child = spawn(&p, &["configure", "s.yaml"]);
    eventually("both nodes run the long command", || {
        p.path("root/n1/started").exists()
            && p.path("root/n2/started").exists()
            && processes(&["sleep", &secs]).len() == 2
    });
    // the second Ctrl-C once labctl has seen the first (two signals sent at
    // once may arrive as one)
    interrupt(&child);
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("interrupted: no new task starts") {
        line.clear();
        let n = std::io::BufRead::read_line(&mut err, &mut line).unwrap();
        assert!(n > 0, "labctl says it was interrupted");
    }
    interrupt(&child);
    let o = finish(child);
    assert_eq!(o.status.code(), Some(130), "{:?}", o.status);
    // the SSH connections are gone: the nodes stop what labctl started there
    eventually("no command labctl started is left running", || {
        processes(&["sleep", &secs]).is_empty()
    });
}
