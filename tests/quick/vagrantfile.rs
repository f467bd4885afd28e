//! The Vagrantfile corpus: every file under `tests/vagrantfiles/<case>/` is
//! either read (the machines become the lab's nodes) or refused with
//! `Vagrantfile:LINE`, what it is and a fix, exit code 2 — never a panic.
//!
//! Each case is copied into a folder of its own name (the lab is named after
//! the folder) and `labctl ssh-config` runs there with no `inventory.yaml`, so
//! the Vagrantfile is found as `labctl up` finds it. `expect`: the first line
//! is `exit 0` or `exit 2`; every other line must appear in stdout (exit 0)
//! or in the one `error:` message (exit 2).
//! `cargo test --test quick vagrantfile:: -- --nocapture` prints every answer for review.

use std::path::Path;
use std::process::Command;

fn corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vagrantfiles")
}

/// Run one case; returns what is wrong with labctl's answer (empty: all good).
fn run_case(case: &Path, args: &[&str]) -> Vec<String> {
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(case.join("Vagrantfile"), dir.join("Vagrantfile")).unwrap();
    let expect = std::fs::read_to_string(case.join("expect")).unwrap();
    let mut lines = expect.lines();
    let code: i32 = lines
        .next()
        .and_then(|l| l.strip_prefix("exit "))
        .and_then(|c| c.trim().parse().ok())
        .expect("expect starts with `exit N`");
    let out = Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("--- {name} ({})\n{stdout}{stderr}", out.status);
    let mut wrong = Vec::new();
    if out.status.code() != Some(code) {
        wrong.push(format!("exit {:?}, expected {code}", out.status.code()));
    }
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        wrong.push("a panic".into());
    }
    let shown = if code == 0 { &stdout } else { &stderr };
    if code != 0 {
        if stderr.matches("error:").count() != 1 {
            wrong.push("not exactly one `error:` message".into());
        }
        if !stderr.contains("fix: ") {
            wrong.push("no `fix:` line".into());
        }
        if !stdout.is_empty() {
            wrong.push("output on stdout".into());
        }
    }
    for l in lines.filter(|l| !l.trim().is_empty()) {
        if !shown.contains(l) {
            wrong.push(format!("missing {l:?}"));
        }
    }
    wrong.into_iter().map(|w| format!("{name}: {w}")).collect()
}

#[test]
fn every_vagrantfile_is_read_or_refused_with_its_line() {
    let cases = crate::common::corpus_cases(&corpus(), |p| p.join("Vagrantfile").exists());
    assert!(cases.len() >= 20, "the corpus has {} cases", cases.len());
    let refused = cases
        .iter()
        .filter(|c| {
            std::fs::read_to_string(c.join("expect"))
                .unwrap()
                .starts_with("exit 2")
        })
        .count();
    assert!(refused >= 15 && refused < cases.len(), "{refused} refused");
    let wrong: Vec<String> = cases
        .iter()
        .flat_map(|c| run_case(c, &["ssh-config"]))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn dash_i_names_the_vagrantfile() {
    let wrong = run_case(
        &corpus().join("read-course"),
        &["-i", "Vagrantfile", "ssh-config"],
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let wrong = run_case(
        &corpus().join("refused-loop"),
        &["-i", "Vagrantfile", "status"],
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
