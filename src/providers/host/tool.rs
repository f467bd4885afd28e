//! Running a host tool once (`cp`, `mkfs.ext4`, `ssh-keygen`, `chroot`,
//! `nft`…) with its input closed, and failing with what it said.

use std::process::{Command, Output, Stdio};

/// Run `cmd` to its end with stdin closed; `what` names the tool in the
/// error when it cannot start (e.g. `ssh-keygen (package openssh-client)`).
pub fn output(cmd: &mut Command, what: &str) -> anyhow::Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {what}: {e}"))
}

/// [`output`], and an error when the tool fails: `failed` words it from the
/// tool's output (most often with [`stderr`]).
pub fn checked(
    cmd: &mut Command,
    what: &str,
    failed: impl FnOnce(&Output) -> String,
) -> anyhow::Result<Output> {
    let out = output(cmd, what)?;
    if !out.status.success() {
        anyhow::bail!("{}", failed(&out));
    }
    Ok(out)
}

/// What a finished tool wrote to stderr, trimmed.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// What a finished tool wrote, stdout then stderr.
pub fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_tool_is_worded_by_the_caller_with_its_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo ' bad thing ' >&2; exit 3"]);
        let e = checked(&mut cmd, "sh", |o| format!("sh failed: {}", stderr(o))).unwrap_err();
        assert_eq!(e.to_string(), "sh failed: bad thing");
        let out = output(&mut cmd, "sh").unwrap();
        assert_eq!(all_output(&out), "out\n bad thing \n");
        let e = output(
            &mut Command::new("/nonexistent/tool"),
            "the tool (package x)",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot run the tool (package x): "),
            "{e}"
        );
    }
}
