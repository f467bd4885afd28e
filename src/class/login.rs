//! The students' way in: one system user per class on the teacher's server,
//! `labctl-<class>`, with no password, no shell and an `authorized_keys`
//! holding one line per student that only forwards to that student's nodes:
//!
//! `restrict,port-forwarding,permitopen="10.2.0.101:22",…,permitopen="127.0.0.1:7101",permitlisten="127.0.0.1:1",command="/bin/false" ssh-ed25519 AAAA… labctl-class:ana`
//!
//! (`port-forwarding` would also let the key listen on the server with `ssh
//! -R`: `permitlisten` allows only port 1 of loopback, which the login, not
//! root, cannot bind.)
//!
//! A student's ssh config jumps through it (`ProxyJump`), which asks sshd
//! for a forward (`direct-tcpip`) and nothing else; its `LocalForward`
//! reaches the student's own dashboard (see [`super::desk`]) on the server's
//! loopback, and no other student's. labctl makes the user
//! itself, marked in its comment field; it edits and removes only a user
//! that carries the mark, and keeps its home in `/var/lib/labctl/class-logins`
//! (a folder the login can traverse: sshd reads `authorized_keys` as the user).

use crate::user_bail;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

/// The mark in the comment (GECOS) field of a user labctl made.
const MARK: &str = "labctl class";

/// The login of class `class`.
pub fn user_name(class: &str) -> String {
    format!("labctl-{class}")
}

/// Where the login's home (and its `authorized_keys`) lives.
pub fn home(class: &str) -> PathBuf {
    crate::providers::host::paths::root()
        .join("class-logins")
        .join(user_name(class))
}

/// One student's line: their key, allowed to open only `targets` port 22
/// and their own dashboard's port on the server's loopback (`dashboard`).
pub fn key_line(student: &str, key: &str, targets: &[Ipv4Addr], dashboard: Option<u16>) -> String {
    let mut opens: Vec<String> = targets
        .iter()
        .map(|a| format!("permitopen=\"{a}:22\""))
        .collect();
    opens.extend(dashboard.map(|p| format!("permitopen=\"127.0.0.1:{p}\"")));
    format!(
        "restrict,port-forwarding,{},permitlisten=\"127.0.0.1:1\",command=\"/bin/false\" {key} labctl-class:{student}",
        opens.join(",")
    )
}

/// The login's `/etc/passwd` entry: (comment, home), if the user exists.
fn entry(user: &str) -> Option<(String, String)> {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(4)?.to_string(), f.get(5)?.to_string()))
}

/// Whether the login of `class` exists (and is labctl's).
pub fn exists(class: &str) -> anyhow::Result<bool> {
    let user = user_name(class);
    match entry(&user) {
        None => Ok(false),
        Some((comment, _)) if comment.starts_with(MARK) => Ok(true),
        Some(_) => user_bail!(
            "user `{user}` exists on this machine and is not one labctl made (its comment field lacks `{MARK}`); labctl edits only its own logins\n  fix: give the class another name (`class:` in the roster), or remove that user if it is a leftover"
        ),
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Make (or update) the login of `class` so that it holds exactly `lines`.
pub fn write(class: &str, lines: &[String]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let user = user_name(class);
    let home = home(class);
    if !exists(class)? {
        // no password ('*': no password login, the account not locked for
        // sshd), no shell, no home made from /etc/skel
        run(Command::new("useradd")
            .args(["--system", "--no-create-home", "--password", "*"])
            .args(["--shell", "/usr/sbin/nologin"])
            .arg("--home-dir")
            .arg(&home)
            .arg("--comment")
            .arg(format!("{MARK} {class} (labctl class destroy removes it)"))
            .arg(&user))?;
    }
    // root owns the home and the keys: the student can change nothing
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh)?;
    let logins = home
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| home.clone());
    for d in [&logins, &home, &ssh] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    let mut text = format!(
        "# labctl class {class}: one line per student, each forwarding only to that student's nodes\n"
    );
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    let f = ssh.join("authorized_keys");
    let tmp = ssh.join(".authorized_keys.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, &f)?;
    Ok(())
}

/// Remove the login of `class` and its home, if it is labctl's.
pub fn remove(class: &str) -> anyhow::Result<()> {
    if !exists(class)? {
        return Ok(());
    }
    let user = user_name(class);
    run(Command::new("userdel").arg(&user))?;
    let home = home(class);
    if home.starts_with(crate::providers::host::paths::root().join("class-logins")) {
        let _ = std::fs::remove_dir_all(&home);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_students_line_forwards_only_to_their_nodes() {
        let l = super::key_line(
            "ana",
            "ssh-ed25519 AAAAkey",
            &["10.2.0.101".parse().unwrap(), "10.2.0.102".parse().unwrap()],
            Some(7101),
        );
        assert_eq!(
            l,
            "restrict,port-forwarding,permitopen=\"10.2.0.101:22\",permitopen=\"10.2.0.102:22\",permitopen=\"127.0.0.1:7101\",permitlisten=\"127.0.0.1:1\",command=\"/bin/false\" ssh-ed25519 AAAAkey labctl-class:ana"
        );
    }
}
