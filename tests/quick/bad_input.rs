//! The bad-input corpus: every broken file a user is likely to write gets one
//! clear message and changes nothing.
//!
//! Each folder under `tests/bad_input/` is one case, run against a fresh project
//! (inventory with one node `n1` on a real sshd on loopback, a working scenario
//! that would write files on the node, `templates/app.j2`, a key pair):
//!
//! - the files of the case replace the project's (`@PORT@` is the node's SSH
//!   port, `@ROOT@` the folder the node's managed files go to);
//! - `setup` (optional): `rm FILE`, `chmod MODE FILE`, `mv FROM TO` or
//!   `ln TARGET LINK` (a symlink) lines, run first;
//! - `cmd` (optional): labctl's arguments, default `configure scenario.yaml`;
//! - `expect`: lines that must each appear in the error message.
//!
//! Every case must: exit with code 2; print exactly one `error:` message to
//! stderr and nothing to stdout; name the file (the `expect` lines give the
//! `file:line:col` where there is one); carry a `fix:` hint; show no panic and no
//! backtrace; and leave the node untouched (its managed-files folder stays empty).

use crate::common;
use common::{stderr, stdout, Project};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// A scenario that works: if a case did not stop labctl, the node would be changed.
const WORKING_SCENARIO: &str = r#"plays:
  - hosts: web
    tasks:
      - template: {src: app.j2, dest: "{{ root }}/app.conf"}
      - command: "touch {{ root }}/ran"
"#;

fn corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input")
}

/// Copy the case's files (all but `expect`, `cmd`, `setup`) into the project.
fn copy_case_files(case: &Path, rel: &Path, p: &Project, port: u16, root: &str) {
    for e in std::fs::read_dir(case.join(rel)).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel_file = rel.join(&name);
        if e.path().is_dir() {
            copy_case_files(case, &rel_file, p, port, root);
        } else if !(rel.as_os_str().is_empty()
            && ["expect", "cmd", "setup"].contains(&name.as_str()))
        {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let text = text
                .replace("@PORT@", &port.to_string())
                .replace("@ROOT@", root);
            p.write(&rel_file.to_string_lossy(), &text);
        }
    }
}

fn setup(p: &Project, lines: &str) {
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["rm", file] => std::fs::remove_file(p.path(file)).unwrap(),
            ["mv", from, to] => std::fs::rename(p.path(from), p.path(to)).unwrap(),
            ["ln", target, link] => std::os::unix::fs::symlink(target, p.path(link)).unwrap(),
            ["chmod", mode, file] => {
                let mode = u32::from_str_radix(mode, 8).unwrap();
                std::fs::set_permissions(p.path(file), std::fs::Permissions::from_mode(mode))
                    .unwrap()
            }
            _ => panic!("unknown setup line: {line}"),
        }
    }
}

/// Run one case; returns what is wrong with labctl's answer (empty: all good).
fn run_case(case: &Path) -> Vec<String> {
    let p = Project::new(1);
    p.write("scenario.yaml", WORKING_SCENARIO);
    p.write("templates/app.j2", "server_name www.{{ domain }}\n");
    let root = p.path("root/n1");
    copy_case_files(
        case,
        Path::new(""),
        &p,
        p.sshd.ports[0],
        &root.to_string_lossy(),
    );
    if let Ok(s) = std::fs::read_to_string(case.join("setup")) {
        setup(&p, &s);
    }
    let cmd = std::fs::read_to_string(case.join("cmd"))
        .unwrap_or_else(|_| "configure scenario.yaml".into());
    let args: Vec<&str> = cmd.split_whitespace().collect();
    // every case ends at once; one that does not (a server that started)
    // is stopped after a minute and fails, instead of hanging the suite
    let o = Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_labctl"))
        .args(&args)
        .current_dir(p.dir.path())
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    // `cargo test --test quick bad_input -- --nocapture` shows every message for review
    println!("== {}\n{err}", case.display());

    let mut wrong = Vec::new();
    if o.status.code() != Some(2) {
        wrong.push(format!("exit code {:?}, not 2", o.status.code()));
    }
    if !err.starts_with("error: ") || err.lines().filter(|l| l.starts_with("error:")).count() != 1 {
        wrong.push("not exactly one `error:` message".into());
    }
    if !err.contains("\n  fix: ") {
        wrong.push("no `fix:` hint".into());
    }
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        if err.contains(bad) {
            wrong.push(format!("shows `{bad}`"));
        }
    }
    if !out.is_empty() {
        wrong.push(format!("printed to stdout: {out}"));
    }
    let expect = std::fs::read_to_string(case.join("expect")).expect("every case has `expect`");
    for line in expect.lines().filter(|l| !l.is_empty()) {
        if !err.contains(line) {
            wrong.push(format!("does not say `{line}`"));
        }
    }
    let touched: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if !touched.is_empty() {
        wrong.push(format!("the node was touched: {touched:?}"));
    }
    if !wrong.is_empty() {
        wrong.push(format!("stderr was:\n{err}"));
    }
    wrong
}

#[test]
fn every_bad_input_gets_one_clear_error_and_touches_nothing() {
    let cases = common::corpus_cases(&corpus(), |p| p.is_dir());
    assert!(cases.len() >= 30, "the corpus is missing");
    let mut report = String::new();
    for case in &cases {
        let wrong = run_case(case);
        if !wrong.is_empty() {
            let name = case.file_name().unwrap().to_string_lossy();
            report += &format!("\n== {name}: {}\n", wrong.join("\n   "));
        }
    }
    assert!(report.is_empty(), "bad input handled badly:{report}");
}

#[test]
fn the_working_scenario_of_the_corpus_does_change_the_node() {
    // the control case: without a mistake, the same project converges
    let p = Project::new(1);
    p.write("scenario.yaml", WORKING_SCENARIO);
    p.write("templates/app.j2", "server_name www.{{ domain }}\n");
    let o = p.labctl(&["configure", "scenario.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(p.read("root/n1/app.conf"), "server_name www.example.com\n");
    assert!(p.path("root/n1/ran").exists());
}
