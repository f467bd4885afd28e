//! The system OpenSSH client, set up for a lab: the lab key only, the lab's own
//! known-hosts file with strict checking, and no user config (`-F /dev/null`,
//! so a `ProxyJump` or `Host 10.*` in `~/.ssh/config` can never send lab
//! traffic elsewhere; a lab on a remote hypervisor is reached through the
//! SSH hop of [`crate::jump`], as a `ProxyCommand`). Used by `labctl ssh`, `labctl ssh-config` and the ssh
//! provider's reachability check.

use crate::inventory::{Inventory, Node};
use crate::user_bail;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Refuse when the lab's known-hosts file is missing.
pub fn check_known_hosts(inv: &Inventory) -> anyhow::Result<()> {
    if !inv.ssh.known_hosts.exists() {
        user_bail!(
            "the lab's known-hosts file {} does not exist, so no host key is pinned\n  fix: {}",
            inv.ssh.known_hosts.display(),
            if super::capabilities(inv).creates_nodes {
                "run `labctl up` first (it pins every node's host key)".to_string()
            } else {
                format!(
                    "write one line per node, `ADDRESS ssh-ed25519 AAAA…` (the node's /etc/ssh/ssh_host_ed25519_key.pub), into {}",
                    inv.ssh.known_hosts.display()
                )
            }
        );
    }
    Ok(())
}

/// The known-hosts name of a node: `10.1.1.101`, or `[10.1.1.101]:2222`.
pub fn known_hosts_name(node: &Node) -> String {
    crate::transport::ssh::known_hosts_name(std::net::SocketAddr::new(
        node.address.into(),
        node.port,
    ))
}

/// `ssh` with the lab's options, up to (not including) the destination.
pub fn base_command(inv: &Inventory, node: &Node) -> Command {
    let mut c = Command::new("ssh");
    c.arg("-F")
        .arg("/dev/null")
        .arg("-i")
        .arg(&inv.ssh.key)
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            inv.ssh.known_hosts.display()
        ))
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "StrictHostKeyChecking=yes"])
        .args(["-o", "IdentitiesOnly=yes"])
        .args(["-o", "PasswordAuthentication=no"])
        .args(["-o", "KbdInteractiveAuthentication=no"])
        .arg("-o")
        .arg(format!("ConnectTimeout={}", inv.ssh.connect_timeout_secs))
        .arg("-p")
        .arg(node.port.to_string())
        .arg("-l")
        .arg(&inv.ssh.user);
    if let Some(j) = inv.jump() {
        c.arg("-o")
            .arg(format!("ProxyCommand={}", j.proxy_command()));
    }
    c
}

/// Run `true` on the node with BatchMode: checks key and pinned host key.
/// Returns how long it took, or ssh's own message.
pub fn check_login(inv: &Inventory, node: &Node) -> Result<Duration, String> {
    let t = std::time::Instant::now();
    let out = base_command(inv, node)
        .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR"])
        .arg(node.address.to_string())
        .arg("true")
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Err(e) => Err(format!("cannot run `ssh` (package openssh-client): {e}")),
        Ok(o) if o.status.success() => Ok(t.elapsed()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
            Err(explain_ssh_error(inv, &err))
        }
    }
}

/// Turn ssh's stderr into one message with the fix.
pub fn explain_ssh_error(inv: &Inventory, err: &str) -> String {
    let kh = inv.ssh.known_hosts.display();
    let first = err
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with("@@@"))
        .unwrap_or(err);
    if err.contains("host key is known for") {
        return format!(
            "no host key for it is pinned in {kh}; refusing to connect\n  fix: add the node's line (`ADDRESS ssh-ed25519 AAAA…`, from its /etc/ssh/ssh_host_ed25519_key.pub) to {kh}"
        );
    }
    if err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || err.contains("Host key verification failed")
    {
        return format!(
            "its host key does not match the one pinned in {kh}; refusing to connect\n  fix: if the node was rebuilt, replace its line in {kh} with the key from the node's /etc/ssh/ssh_host_ed25519_key.pub"
        );
    }
    if err.contains("Permission denied") {
        return format!(
            "the lab key {} was refused for user {}\n  fix: put the key's .pub in ~{}/.ssh/authorized_keys on the node",
            inv.ssh.key.display(),
            inv.ssh.user,
            inv.ssh.user
        );
    }
    first.to_string()
}

/// A value for an OpenSSH config file: refused (exit 2) when it holds a
/// control character (a newline would start a line of its own, e.g. a
/// `ProxyCommand`), a quote or a backslash (the config's own quoting); `%`
/// doubled (ssh expands `%h`, `%d`… in these values); double-quoted unless plain.
/// `what` names the value for the message.
fn config_value(what: &str, s: &str) -> anyhow::Result<String> {
    if s.chars()
        .any(|c| c.is_control() || c == '"' || c == '\\' || c == '\'')
    {
        user_bail!(
            "{what} `{}` holds a quote, a backslash or a control character, which an OpenSSH config file cannot hold safely\n  fix: rename the file or move the project so the path has none (letters, digits, spaces, `-`, `_`, `.` and `/` are safe)",
            crate::text::one_line(s)
        );
    }
    let v = s.replace('%', "%%");
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./@:+,%".contains(c));
    Ok(if plain { v } else { format!("\"{v}\"") })
}

/// A path for an OpenSSH config file ([`config_value`]).
fn config_path(what: &str, p: &Path) -> anyhow::Result<String> {
    match p.to_str() {
        Some(s) => config_value(what, s),
        None => user_bail!(
            "{what} {} is not UTF-8, which an OpenSSH config file cannot hold\n  fix: move the project to a folder whose path is plain text",
            p.display()
        ),
    }
}

/// Text for a `#` comment line of an OpenSSH config: one line, printable.
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `labctl ssh-config`: one `Host` block per node. Every value that comes
/// from a path or a name is checked for the config's format
/// ([`config_value`]): none can add a line of its own.
pub fn config_text(inv: &Inventory) -> anyhow::Result<String> {
    let mut s = format!(
        "# labctl ssh-config for lab `{}` ({})\n# use: labctl ssh-config > lab.ssh && ssh -F lab.ssh {}\n",
        comment(&inv.lab),
        comment(&inv.path.display().to_string()),
        comment(inv.nodes.first().map(|n| n.name.as_str()).unwrap_or("NODE"))
    );
    let key = config_path("the lab key", &inv.ssh.key)?;
    let kh = config_path("the known-hosts file", &inv.ssh.known_hosts)?;
    let user = config_value("the ssh user", &inv.ssh.user)?;
    let proxy = match inv.jump() {
        Some(j) => {
            let cmd = j.proxy_command();
            if has_config_breaker(&cmd) {
                user_bail!(
                    "{}: the hypervisor hop `{}` holds a control character, which an OpenSSH config file cannot hold\n  fix: write the libvirt URI as plain text",
                    inv.path.display(),
                    crate::text::one_line(&j.label())
                );
            }
            Some((comment(&j.label()), cmd))
        }
        None => None,
    };
    for n in &inv.nodes {
        let host = config_value("the node name", &n.name)?;
        s.push_str(&format!(
            "\nHost {}\n  HostName {}\n  Port {}\n  User {user}\n  IdentityFile {key}\n  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  IdentitiesOnly yes\n  PasswordAuthentication no\n",
            host,
            n.address,
            n.port,
        ));
        if let Some((label, cmd)) = &proxy {
            s.push_str(&format!(
                "  # the lab's network is on the hypervisor host {label}\n  ProxyCommand {cmd}\n"
            ));
        }
    }
    Ok(s)
}

/// Whether `s` would break out of its line in an OpenSSH config file.
fn has_config_breaker(s: &str) -> bool {
    s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(text: &str) -> (tempfile::TempDir, Inventory) {
        let d = tempfile::tempdir().unwrap();
        let i = crate::providers::inventory_in(d.path(), text);
        (d, i)
    }

    const INV: &str = "lab: t\nnetwork: {subnet: 10.1.2.0/24, gateway: 10.1.2.1}\nnodes:\n  nodo1: {address: 10.1.2.101}\n  dns: {address: 10.1.2.103, port: 2222}\n";

    #[test]
    fn known_hosts_names_use_brackets_for_other_ports() {
        let (_d, i) = inv(INV);
        assert_eq!(known_hosts_name(&i.nodes[0]), "10.1.2.101");
        assert_eq!(known_hosts_name(&i.nodes[1]), "[10.1.2.103]:2222");
    }

    #[test]
    fn ssh_config_has_one_strict_block_per_node() {
        let (d, i) = inv(INV);
        let c = config_text(&i).unwrap();
        assert_eq!(c.matches("\nHost ").count(), 2);
        assert!(c.contains("Host dns\n  HostName 10.1.2.103\n  Port 2222\n  User vagrant\n"));
        assert_eq!(c.matches("StrictHostKeyChecking yes").count(), 2);
        assert_eq!(c.matches("IdentitiesOnly yes").count(), 2);
        let kh = d.path().join(".labctl/known_hosts");
        assert!(c.contains(&format!("UserKnownHostsFile {}", kh.display())));
    }

    #[test]
    fn a_hostile_folder_name_adds_no_line_to_the_ssh_config() {
        for folder in [
            "p\"\n  ProxyCommand touch /tmp/owned\n#",
            "p\rProxyCommand x",
            "p\\\" ProxyCommand x",
            "q'x",
        ] {
            let d = tempfile::tempdir().unwrap();
            let dir = d.path().join(folder);
            std::fs::create_dir_all(&dir).unwrap();
            let i = crate::providers::inventory_in(&dir, INV);
            let e = config_text(&i).unwrap_err();
            assert_eq!(crate::error::exit_code(&e), 2, "{e}");
            assert!(e.to_string().contains("fix:"), "{e}");
            assert!(
                !e.to_string().contains('\n') || e.to_string().lines().count() == 2,
                "{e}"
            );
        }
        // `%` is ssh's token: doubled; spaces: quoted; the lines are the usual ones
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("my %d lab");
        std::fs::create_dir_all(&dir).unwrap();
        let c = config_text(&crate::providers::inventory_in(&dir, INV)).unwrap();
        assert!(c.contains("my %%d lab/.labctl/known_hosts\""), "{c}");
        let (_d2, plain) = inv(INV);
        assert_eq!(
            c.lines().count(),
            config_text(&plain).unwrap().lines().count()
        );
    }

    #[test]
    fn ssh_errors_become_one_message_with_the_fix() {
        let (_d, i) = inv(INV);
        let changed = "@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n...\nHost key verification failed.";
        let m = explain_ssh_error(&i, changed);
        assert!(m.contains("does not match") && m.contains("fix:"), "{m}");
        let unknown = "No ED25519 host key is known for 10.1.2.101 and you have requested strict checking.\nHost key verification failed.";
        assert!(explain_ssh_error(&i, unknown).contains("no host key for it is pinned"));
        let denied = "vagrant@10.1.2.101: Permission denied (publickey).";
        assert!(explain_ssh_error(&i, denied).contains("was refused for user vagrant"));
    }

    #[test]
    fn a_key_readable_by_others_is_refused_with_chmod() {
        use std::os::unix::fs::PermissionsExt;
        let (d, i) = inv(INV);
        std::fs::create_dir_all(d.path().join(".labctl")).unwrap();
        std::fs::write(&i.ssh.key, "x").unwrap();
        std::fs::set_permissions(&i.ssh.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = crate::transport::ssh::check_key(&i).unwrap_err();
        assert!(format!("{e}").contains("chmod 600"));
        assert_eq!(crate::error::exit_code(&e), 2);
        std::fs::set_permissions(&i.ssh.key, std::fs::Permissions::from_mode(0o600)).unwrap();
        crate::transport::ssh::check_key(&i).unwrap();
    }
}
