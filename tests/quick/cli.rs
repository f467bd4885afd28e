//! The command line itself, without a lab: a closed stdout never makes labctl
//! panic, root-only commands say so first as a normal user, and the small
//! commands (`scenarios`, `show`, `exec`, `ssh CMD` without `--`) against a
//! real sshd on loopback.

use crate::common;
use common::{stderr, stdout, Project};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The write end of a pipe whose read end is already closed: the first write
/// to it fails with EPIPE (a `| head` that has exited).
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are ours; the read end is closed at once.
    unsafe {
        drop(OwnedFd::from_raw_fd(fds[0]));
        Stdio::from(OwnedFd::from_raw_fd(fds[1]))
    }
}

/// A scenario for the loopback project: a template and a command, a check.
const SCENARIO: &str = r#"name: cli-test
description: a scenario for the command line tests
plays:
  - hosts: web
    tasks:
      - template: {src: app.j2, dest: "{{ root }}/app.conf"}
      - command: {cmd: "touch {{ root }}/ran", creates: "{{ root }}/ran"}
verify:
  - http: {url: "http://127.0.0.1:9/", nodes: [n1]}
"#;

fn project(nodes: usize) -> Project {
    let p = Project::new(nodes);
    p.write("scenario.yaml", SCENARIO);
    p.write("templates/app.j2", "server_name www.{{ domain }}\n");
    p
}

#[test]
fn a_closed_stdout_never_panics() {
    let p = project(2);
    let commands: &[&[&str]] = &[
        &["--help"],
        &["help", "configure"],
        &["configure", "--help"],
        &["--version"],
        &["status"],
        &["status", "--json"],
        &["ssh-config"],
        &["configure", "scenario.yaml", "--check", "--diff"],
        &["configure", "scenario.yaml", "--check", "--json"],
        &["verify", "scenario.yaml", "--list"],
        &["verify", "scenario.yaml"],
        &["scenarios"],
        &["scenarios", "--json"],
        &["show", "scenario.yaml"],
        &["show", "scenario.yaml", "--json"],
        &["exec", "all", "--", "seq", "1", "100000"],
        &["exec", "all", "--json", "--", "hostname"],
        &["ssh", "n1", "seq", "1", "100000"],
    ];
    let mut wrong = Vec::new();
    for args in commands {
        // stdout closed; stderr too in a second run (`2>&1 | head`)
        for close_stderr in [false, true] {
            let o = Command::new(env!("CARGO_BIN_EXE_labctl"))
                .args(*args)
                .current_dir(p.dir.path())
                .env("RUST_BACKTRACE", "1")
                .stdout(closed_pipe())
                .stderr(if close_stderr {
                    closed_pipe()
                } else {
                    Stdio::piped()
                })
                .output()
                .unwrap();
            let err = stderr(&o);
            if o.status.code() == Some(101)
                || err.contains("panicked")
                || err.contains("Broken pipe")
            {
                wrong.push(format!(
                    "labctl {} (stderr closed: {close_stderr}): {}\n{err}",
                    args.join(" "),
                    o.status
                ));
            }
            // ended by the closed pipe, like any Unix tool (or done before
            // writing); `ssh` is OpenSSH's own (labctl execs it)
            if args[0] != "ssh" && !(o.status.signal() == Some(libc::SIGPIPE) || o.status.success())
            {
                wrong.push(format!(
                    "labctl {} (stderr closed: {close_stderr}) ended with {}: {err}",
                    args.join(" "),
                    o.status
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // the preview changed nothing on the nodes
    assert!(!p.path("root/n1/app.conf").exists());
}

/// A world-readable project with the default (nspawn) inventory, on lab `tcli`.
fn nspawn_project() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let inv = std::fs::read_to_string(root.join("inventory.yaml"))
        .unwrap()
        .replace("lab: ha", "lab: tcli")
        .replace("10.1.1.", "10.1.41.");
    std::fs::write(d.path().join("inventory.yaml"), inv).unwrap();
    std::fs::copy(root.join("scenario.yaml"), d.path().join("scenario.yaml")).unwrap();
    for sub in ["scenarios", "templates"] {
        common::lab::copy_dir(&root.join(sub), &d.path().join(sub));
    }
    d
}

fn as_nobody(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_labctl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run setpriv (util-linux)")
}

#[test]
fn root_only_commands_say_so_first_to_a_normal_user() {
    if !common::lab::is_root() {
        eprintln!("this test switches to user nobody: it needs root");
        return;
    }
    let d = nspawn_project();
    let root_only: &[&[&str]] = &[
        &["up"],
        &["up", "nodo1"],
        &["up", "--fresh", "nodo2"],
        &["halt"],
        &["halt", "--force", "nodo1"],
        &["fail", "nodo1"],
        &["destroy"],
        &["destroy", "nodo2"],
        &["configure", "scenario.yaml"],
        &["configure", "scenario.yaml", "--check"],
        &["verify"],
        &["verify", "scenario.yaml"],
        &["ssh", "nodo1"],
        &["ssh", "nodo1", "hostname"],
        &["exec", "all", "--", "hostname"],
    ];
    let mut wrong = Vec::new();
    for args in root_only {
        let o = as_nobody(d.path(), args);
        let err = stderr(&o);
        let typed = args.join(" ");
        if o.status.code() != Some(2)
            || !err.starts_with("error: ")
            || !err.contains("needs root")
            || !err.contains(&format!("fix: run it as root: `sudo labctl {typed}`"))
        {
            wrong.push(format!("labctl {typed}: {}\n{err}", o.status));
        }
    }
    // what needs no root works as a normal user
    for args in [
        &["status"][..],
        &["ssh-config"],
        &["scenarios"],
        &["show", "scenarios/01-dns-round-robin.yaml"],
        &["verify", "scenario.yaml", "--list"],
    ] {
        let o = as_nobody(d.path(), args);
        if !o.status.success() {
            wrong.push(format!(
                "labctl {} as nobody: {}\n{}",
                args.join(" "),
                o.status,
                stderr(&o)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn scenarios_lists_shipped_and_local_scenarios_with_their_description() {
    let p = project(1);
    p.write(
        "scenarios/01-first.yaml",
        "name: first\ndescription: >\n  The first\n  one.\nplays: [{hosts: web, tasks: []}]\n",
    );
    p.write("scenarios/02-broken.yaml", "name: [\n");
    p.write("notes.yaml", "just: data\n");
    let o = p.labctl(&["scenarios"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("scenarios/01-first.yaml") && out.contains("first: The first one."),
        "{out}"
    );
    assert!(
        out.contains("scenarios/02-broken.yaml") && out.contains("does not load"),
        "{out}"
    );
    assert!(
        out.contains("scenario.yaml") && out.contains("a scenario for the command line tests"),
        "{out}"
    );
    assert!(
        !out.contains("notes.yaml") && !out.contains("inventory.yaml"),
        "{out}"
    );
    let j = common::json(&p.labctl(&["scenarios", "--json"]));
    assert_eq!(j["scenarios"].as_array().unwrap().len(), 3, "{j}");
}

#[test]
fn show_lists_plays_tasks_handlers_and_checks_without_running_anything() {
    let p = project(2);
    p.write(
        "scenario.yaml",
        &SCENARIO
            .replace(
                "      - command:",
                "        notify: reload app\n      - command:",
            )
            .replace(
                "verify:",
                "    handlers:\n      reload app: {command: \"true\"}\nverify:",
            ),
    );
    let o = p.labctl(&["show", "scenario.yaml"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    for want in [
        "scenario `cli-test`",
        "hosts: web → n1, n2",
        "[template]",
        "notifies reload app",
        "[command]",
        "handlers:",
        "reload app",
        "[http]",
    ] {
        assert!(out.contains(want), "no `{want}` in:\n{out}");
    }
    assert!(!p.path("root/n1/app.conf").exists() && !p.path("root/n1/ran").exists());
    let j = common::json(&p.labctl(&["show", "scenario.yaml", "--json"]));
    assert_eq!(j["plays"][0]["nodes"], serde_json::json!(["n1", "n2"]));
    assert_eq!(j["plays"][0]["tasks"][1]["op"], "command");
}

#[test]
fn exec_runs_on_every_target_node_and_fails_if_any_failed() {
    let p = project(2);
    let o = p.labctl(&["exec", "all", "--", "echo", "hello from", "$(id -u)"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    // grouped per node: each header followed by its own output
    let n1 = out.find("== n1 (ok").expect(&out);
    let n2 = out.find("== n2 (ok").expect(&out);
    assert!(n1 < n2, "{out}");
    // as root on the nodes (uid 0; a normal user's test sshd has a sudo that stays that user)
    // SAFETY: geteuid has no preconditions.
    let me = format!("hello from {}\n", unsafe { libc::geteuid() });
    assert_eq!(out.matches(me.as_str()).count(), 2, "{out}");
    // a group; --json; a failure on one node only
    let j = common::json(&p.labctl(&["exec", "web", "--json", "--", "echo", "x"]));
    assert_eq!(j["ok"], true, "{j}");
    assert_eq!(j["nodes"][1]["stdout"], "x\n", "{j}");
    let n1_root = p.path("root/n1").display().to_string();
    let o = p.labctl(&[
        "exec",
        "all",
        "--",
        "test",
        "-e",
        &format!("{n1_root}/flag"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    std::fs::write(p.path("root/n1/flag"), "").unwrap();
    let o = p.labctl(&["exec", "n1", "--", "test", "-e", &format!("{n1_root}/flag")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = p.labctl(&["exec", "n1,n2", "--", "sh", "-c", "'exit 4'"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("failed, exit status 4"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("failed on 2 of 2 node(s): n1, n2"),
        "{}",
        stderr(&o)
    );
    // a typo in the target: exit 2 with a suggestion, nothing run
    let o = p.labctl(&["exec", "wbe", "--", "touch", "/tmp/never"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("did you mean `web`?"), "{}", stderr(&o));
}

#[test]
fn ssh_runs_a_command_given_without_double_dash() {
    let p = project(1);
    let o = p.labctl(&["ssh", "n1", "echo", "one", "-n", "two"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "one -n two\n");
    let o = p.labctl(&["ssh", "n1", "--", "exit", "3"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn endless_remote_output_is_capped_to_its_tail_and_echoed_without_escapes() {
    let p = project(1);
    // 40 MB of stdout and 20 MB of stderr: labctl keeps the tail of each
    let o = p.labctl(&[
        "exec",
        "all",
        "--",
        "head -c 40000000 /dev/zero | tr '\\0' y; printf 'LAST\\033]0;owned\\007\\n'; head -c 20000000 /dev/zero | tr '\\0' e >&2; echo ERRTAIL >&2",
    ]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        &err[err.len().saturating_sub(500)..]
    );
    assert!(
        out.len() < 10_000_000,
        "stdout not capped: {} bytes",
        out.len()
    );
    assert!(
        err.len() < 10_000_000,
        "stderr not capped: {} bytes",
        err.len()
    );
    assert!(
        out.contains("bytes of this output were dropped"),
        "{}",
        &out[..200.min(out.len())]
    );
    assert!(
        out.contains("LAST\\x1b]0;owned\\x07"),
        "the tail is kept, its escapes shown, not sent"
    );
    assert!(!out.contains('\x1b') && !out.contains('\x07'));
    assert!(err.contains("ERRTAIL"));
}
