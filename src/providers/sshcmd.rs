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
            match inv.provider {
                crate::inventory::ProviderKind::Nspawn | crate::inventory::ProviderKind::Libvirt => "run `labctl up` first (it pins every node's host key)".to_string(),
                crate::inventory::ProviderKind::Ssh => format!(
                    "write one line per node, `ADDRESS ssh-ed25519 AAAA…` (the node's /etc/ssh/ssh_host_ed25519_key.pub), into {}",
                    inv.ssh.known_hosts.display()
                ),
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

/// Quote a path for an OpenSSH config file when it needs it.
fn quote(p: &Path) -> String {
    let s = p.display().to_string();
    if s.contains(char::is_whitespace) {
        format!("\"{s}\"")
    } else {
        s
    }
}

/// `labctl ssh-config`: one `Host` block per node.
pub fn config_text(inv: &Inventory) -> String {
    let mut s = format!(
        "# labctl ssh-config for lab `{}` ({})\n# use: labctl ssh-config > lab.ssh && ssh -F lab.ssh {}\n",
        inv.lab,
        inv.path.display(),
        inv.nodes.first().map(|n| n.name.as_str()).unwrap_or("NODE")
    );
    for n in &inv.nodes {
        s.push_str(&format!(
            "\nHost {}\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {}\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  IdentitiesOnly yes\n  PasswordAuthentication no\n",
            n.name,
            n.address,
            n.port,
            inv.ssh.user,
            quote(&inv.ssh.key),
            quote(&inv.ssh.known_hosts),
        ));
        if let Some(j) = inv.jump() {
            s.push_str(&format!(
                "  # the lab's network is on the hypervisor host {}\n  ProxyCommand {}\n",
                j.label(),
                j.proxy_command()
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(text: &str) -> (tempfile::TempDir, Inventory) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("inventory.yaml");
        std::fs::write(&p, text).unwrap();
        let i = Inventory::load(&p).unwrap();
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
        let c = config_text(&i);
        assert_eq!(c.matches("\nHost ").count(), 2);
        assert!(c.contains("Host dns\n  HostName 10.1.2.103\n  Port 2222\n  User vagrant\n"));
        assert_eq!(c.matches("StrictHostKeyChecking yes").count(), 2);
        assert_eq!(c.matches("IdentitiesOnly yes").count(), 2);
        let kh = d.path().join(".labctl/known_hosts");
        assert!(c.contains(&format!("UserKnownHostsFile {}", kh.display())));
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
