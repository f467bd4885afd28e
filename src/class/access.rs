//! What a student gets: an OpenSSH config whose nodes are reached through a
//! jump over the class's login on the teacher's server (see [`super::login`]),
//! with every host key pinned, and the student's key on their own nodes.

use super::roster::{Roster, Student};
use crate::inventory::Inventory;
use crate::shell::quote;

/// Where the student's files are, as their config names them.
#[derive(Debug, Clone)]
pub struct ClientPaths {
    /// The student's private key (default `~/.ssh/id_ed25519`).
    pub identity: String,
    /// The known-hosts file of [`known_hosts`] (default `~/.ssh/labctl-<lab>.known_hosts`).
    pub known_hosts: String,
}

impl ClientPaths {
    pub fn default_for(lab: &str) -> ClientPaths {
        ClientPaths {
            identity: "~/.ssh/id_ed25519".into(),
            known_hosts: format!("~/.ssh/labctl-{lab}.known_hosts"),
        }
    }
}

fn plain(what: &str, v: &str) -> anyhow::Result<String> {
    if v.is_empty() || v.chars().any(|c| c.is_control() || c == '"' || c == ' ') {
        crate::user_bail!(
            "{what} {v:?} cannot go into an OpenSSH config (empty, a space, a quote or a control character)\n  fix: give a plain path"
        );
    }
    Ok(v.to_string())
}

/// The jump host's name in the config.
pub fn jump_name(roster: &Roster) -> String {
    format!("{}-jump", roster.class)
}

/// The student's ssh config for their lab `inv`: `ssh -F FILE nodo1`; with
/// their `desk`, the jump also forwards their dashboard's port (`ssh -F FILE
/// -N JUMP`, then their URL in a browser).
pub fn config(
    roster: &Roster,
    student: &Student,
    inv: &Inventory,
    paths: &ClientPaths,
    desk: Option<&super::desk::Desk>,
) -> anyhow::Result<String> {
    let id = plain("--identity", &paths.identity)?;
    let kh = plain("--known-hosts", &paths.known_hosts)?;
    let jump = jump_name(roster);
    let mut s = format!(
        "# labctl class {}: lab {} of student {} (ssh -F THIS_FILE {})\n# the nodes' host keys: `labctl class ssh-config {} --known-hosts` into {kh}\n",
        roster.class,
        inv.lab,
        student.name,
        inv.nodes.first().map(|n| n.name.as_str()).unwrap_or("NODE"),
        student.name
    );
    let common = format!(
        "  IdentityFile {id}\n  IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  StrictHostKeyChecking yes\n  PasswordAuthentication no\n"
    );
    if let Some(d) = desk {
        s.push_str(&format!(
            "# your lab's dashboard: `ssh -F THIS_FILE -N {jump}`, then open (yours alone: it can cut power)\n#   {}\n",
            d.url()
        ));
    }
    s.push_str(&format!(
        "\nHost {jump}\n  HostName {}\n  Port {}\n  User {}\n{common}",
        roster.server.host,
        roster.server.port,
        super::login::user_name(&roster.class)
    ));
    if let Some(d) = desk {
        s.push_str(&format!(
            "  LocalForward 127.0.0.1:{p} 127.0.0.1:{p}\n",
            p = d.port
        ));
    }
    for n in &inv.nodes {
        s.push_str(&format!(
            "\nHost {}\n  HostName {}\n  Port 22\n  User {}\n  ProxyJump {jump}\n{common}",
            n.name, n.address, inv.ssh.user
        ));
    }
    Ok(s)
}

/// The known-hosts lines of the student's config: the server's key (when the
/// roster gives it) and the nodes' keys labctl pinned.
pub fn known_hosts(roster: &Roster, inv: &Inventory) -> String {
    let mut s = String::new();
    if let Some(k) = &roster.server.host_key {
        let name = if roster.server.port == 22 {
            roster.server.host.clone()
        } else {
            format!("[{}]:{}", roster.server.host, roster.server.port)
        };
        s.push_str(&format!("{name} {k}\n"));
    }
    let pinned = crate::project::read_state(&inv.state_dir(), &inv.ssh.known_hosts)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    for n in &inv.nodes {
        let name = crate::providers::sshcmd::known_hosts_name(n);
        for l in pinned.lines() {
            if l.split_whitespace().next() == Some(name.as_str()) {
                s.push_str(l);
                s.push('\n');
            }
        }
    }
    s
}

/// The shell line that puts the student's key on a node (the ssh user's
/// `authorized_keys`), once.
pub fn install_key_command(inv: &Inventory, student: &Student) -> String {
    let line = format!("{} labctl-class:{}", student.key, student.name);
    format!(
        "h=$(getent passwd {u} | cut -d: -f6) && f=\"$h/.ssh/authorized_keys\" && {{ grep -qxF {l} \"$f\" || printf '%s\\n' {l} >> \"$f\"; }}",
        u = quote(&inv.ssh.user),
        l = quote(&line)
    )
}
