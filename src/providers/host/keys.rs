//! The lab's SSH trust: the lab key pair (ed25519, 0600, made by `up` unless
//! the inventory names one) and the known-hosts file that pins every node's
//! own host key, read from the node's file system (no trust on first use).

use super::paths::NodePaths;
use super::tool;
use crate::inventory::Inventory;
use crate::progress::Progress;
use crate::providers::sshcmd;
use crate::user_bail;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// ssh-keygen, as an error names it when it is missing.
const SSH_KEYGEN: &str = "ssh-keygen (package openssh-client)";

/// Make a new ed25519 key pair without passphrase at `key` (and `key.pub`).
pub fn keygen(key: &Path, comment: &str) -> anyhow::Result<()> {
    tool::checked(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(key),
        SSH_KEYGEN,
        |o| {
            format!(
                "ssh-keygen could not make {}: {}",
                key.display(),
                tool::stderr(o)
            )
        },
    )?;
    Ok(())
}

/// Make the lab key pair if needed; return the public key line.
pub fn ensure_lab_key(inv: &Inventory, p: &dyn Progress) -> anyhow::Result<String> {
    let key = &inv.ssh.key;
    if !key.exists() {
        if !inv.key_is_managed() {
            user_bail!(
                "{}: ssh.key {} does not exist\n  fix: point ssh.key at an existing private key, or remove ssh.key and `labctl up` makes one",
                inv.path.display(),
                key.display()
            );
        }
        crate::project::ensure_state_dir(&inv.state_dir())?;
        if let Some(d) = key.parent() {
            std::fs::create_dir_all(d)?;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
        }
        keygen(key, &format!("labctl@{}", inv.lab))?;
        std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600))?;
        p.line(&format!("made the lab key {}", key.display()));
    }
    crate::transport::ssh::check_key(inv)?;
    // the public half derived from the private key, never read from a `.pub`
    // beside it: a `.pub` of several lines would authorize every one of them
    let out = tool::output(
        Command::new("ssh-keygen").arg("-y").arg("-f").arg(key),
        SSH_KEYGEN,
    )?;
    if !out.status.success() {
        user_bail!(
            "cannot read the public half of {}: {}\n  fix: use an unencrypted OpenSSH private key",
            key.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    public_line(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| {
        anyhow::anyhow!(
            "ssh-keygen -y -f {} printed no public key line",
            key.display()
        )
    })
}

/// The one public key line of `ssh-keygen -y` output (`ssh-ed25519 AAAA… comment`):
/// the first line of a key type and base64 only, nothing after it.
pub fn public_line(text: &str) -> Option<String> {
    let line = text.lines().next()?.trim();
    let mut w = line.split_whitespace();
    let (kind, b64) = (w.next()?, w.next()?);
    let ok_kind = kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
    let ok_b64 = b64
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c));
    (ok_kind && ok_b64).then(|| format!("{kind} {b64}"))
}

/// Rewrite the lab's known-hosts file from the nodes' own host keys; returns
/// the nodes whose pinned key changed (a key that was pinned before and differs
/// now: a node re-keyed on purpose; a recreated lab starts with no pins).
pub fn pin_host_keys(inv: &Inventory) -> anyhow::Result<Vec<String>> {
    pin_host_keys_from(inv, &|name| NodePaths::new(&inv.lab, name).host_key_pub())
}

/// [`pin_host_keys`] with each node's public host key read from `pub_of(node)`.
pub fn pin_host_keys_from(
    inv: &Inventory,
    pub_of: &dyn Fn(&str) -> std::path::PathBuf,
) -> anyhow::Result<Vec<String>> {
    let kh = &inv.ssh.known_hosts;
    let state = inv.state_dir();
    let before = crate::project::read_state(&state, kh)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let old_pin = |name: &str| -> Option<String> {
        before
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
    };
    let mut changed = Vec::new();
    let mut text = format!(
        "# lab `{}`: host keys pinned by labctl up from each node's file system\n",
        inv.lab
    );
    for n in &inv.nodes {
        let Ok(pubkey) = std::fs::read_to_string(pub_of(&n.name)) else {
            continue;
        };
        let mut w = pubkey.split_whitespace();
        if let (Some(kind), Some(b64)) = (w.next(), w.next()) {
            let name = sshcmd::known_hosts_name(n);
            if old_pin(&name).is_some_and(|old| old != format!("{kind} {b64}")) {
                changed.push(n.name.clone());
            }
            text.push_str(&format!("{name} {kind} {b64}\n"));
        }
    }
    if text == before {
        return Ok(changed);
    }
    crate::project::write_state(&state, kh, text.as_bytes(), 0o644)?;
    Ok(changed)
}

/// Where Vagrant keeps a machine's private key, in every spelling labctl
/// writes: `.vagrant/machines/<node>/<provider>/private_key` (libvirt and
/// virtualbox), so an Ansible inventory that names that path works.
pub fn vagrant_key_paths(inv: &Inventory) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for n in &inv.nodes {
        for prov in crate::inventory::VAGRANT_PROVIDERS {
            v.push(
                inv.dir
                    .join(".vagrant/machines")
                    .join(&n.name)
                    .join(prov)
                    .join("private_key"),
            );
        }
    }
    v
}

/// Put the lab key where Vagrant puts each machine's key (a lab read from a
/// Vagrantfile only). A key there that is not the lab's (a real Vagrant
/// machine's) is never overwritten.
pub fn write_vagrant_keys(inv: &Inventory) -> anyhow::Result<()> {
    if inv.vagrant.is_none() {
        return Ok(());
    }
    let key = std::fs::read(&inv.ssh.key)?;
    let state = inv.dir.join(".vagrant");
    for p in vagrant_key_paths(inv) {
        match std::fs::read(&p) {
            Ok(old) if old == key => continue,
            Ok(_) => user_bail!(
                "{} exists and is not this lab's key (a Vagrant machine's?); labctl does not overwrite it\n  fix: `vagrant destroy` that machine, or remove the file",
                p.display()
            ),
            Err(_) => crate::project::write_state(&state, &p, &key, 0o600)?,
        }
    }
    Ok(())
}

/// Remove the key copies [`write_vagrant_keys`] made (those that still hold
/// the lab key), and the folders left empty; other files in `.vagrant/` stay.
pub fn remove_vagrant_keys(inv: &Inventory) {
    if inv.vagrant.is_none() {
        return;
    }
    let Ok(key) = std::fs::read(&inv.ssh.key) else {
        return;
    };
    let state = inv.dir.join(".vagrant");
    for p in vagrant_key_paths(inv) {
        if crate::project::read_state(&state, &p).is_ok_and(|b| b == key) {
            let _ = std::fs::remove_file(&p);
        }
        // the provider, machine and machines folders, and .vagrant, if empty
        let mut d = p.parent();
        while let Some(dir) = d {
            if !dir.starts_with(&state) || std::fs::remove_dir(dir).is_err() {
                break;
            }
            d = dir.parent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_public_key_line_only() {
        assert_eq!(
            public_line("ssh-ed25519 AAAAC3Nz+/= labctl@ha\nssh-rsa BBBB evil\n").as_deref(),
            Some("ssh-ed25519 AAAAC3Nz+/=")
        );
        assert_eq!(public_line("command=\"x\" ssh-ed25519 AAAA"), None);
        assert_eq!(public_line(""), None);
    }

    #[test]
    fn a_pub_file_of_several_lines_authorizes_only_the_labs_key() {
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join("id_ed25519");
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(ok.success());
        let real = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        // a hostile project's .pub: the real key and a stranger's
        std::fs::write(
            key.with_extension("pub"),
            format!("{real}ssh-ed25519 AAAAstranger evil@elsewhere\n"),
        )
        .unwrap();
        let inv = crate::providers::inventory_in(
            d.path(),
            "lab: t\nprovider: ssh\nssh: {key: id_ed25519}\nnodes:\n  n1: {address: 127.0.0.1}\n",
        );
        let line = ensure_lab_key(&inv, &crate::progress::Silent).unwrap();
        assert_eq!(line.lines().count(), 1);
        assert!(!line.contains("stranger"), "{line}");
        let mut w = real.split_whitespace();
        assert_eq!(line, format!("{} {}", w.next().unwrap(), w.next().unwrap()));
    }
}
