//! labctl's image in Incus: the nspawn provider's Debian root file system
//! (the same mmdebstrap recipe, built once on this machine), plus the unit
//! that applies a node's seed at first boot, packed as an Incus unified
//! tarball (`metadata.yaml` + `rootfs/`) and imported once per server with
//! the alias `labctl-<hash>` (the hash of the recipe and of this file's
//! additions), so a second lab, or a second `up`, reuses it.
//!
//! ```text
//! /var/lib/labctl/incus-images/<alias>.tar    the tarball (removed once imported)
//! ```

use super::client::{Incus, LONG};
use crate::progress::Progress;
use crate::providers::host::{image as base, paths, rootfs};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The unit that applies `/var/lib/labctl/seed.tar` (pushed by `up` before
/// the first boot), once, before the network and sshd.
const SEED_UNIT: &str = "[Unit]
Description=labctl: this node's identity (hostname, address, keys, lab user) from its seed
DefaultDependencies=no
# after sysusers: useradd and systemd-sysusers both lock /etc/passwd
After=local-fs.target systemd-sysusers.service
Before=network-pre.target systemd-networkd.service ssh.service sysinit.target
Wants=network-pre.target
ConditionPathExists=/var/lib/labctl/seed.tar

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/labctl-seed
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=sysinit.target
";

const SEED_SCRIPT: &str = r#"#!/bin/sh
# labctl: copy this node's identity from its seed (pushed by labctl up), once.
set -e
s=/var/lib/labctl/seed
rm -rf "$s"
mkdir -p "$s"
tar -xf /var/lib/labctl/seed.tar -C "$s"
cp -a "$s/root/." /
chmod 600 /etc/ssh/ssh_host_ed25519_key
LABCTL_PUBKEY="$(cat "$s/lab.pub")" sh "$s/setup.sh"
hostname "$(cat /etc/hostname)"
rm -rf "$s" /var/lib/labctl/seed.tar
sync
echo "labctl-seed: identity of $(cat /etc/hostname) applied"
"#;

/// The alias of the image for this host's recipe.
pub fn alias(recipe: &base::Recipe) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("{}{SEED_UNIT}{SEED_SCRIPT}", recipe.hash()).as_bytes());
    format!("labctl-{}", &hex::encode(d)[..16])
}

/// Whether the server has the image `alias`.
fn imported(incus: &Incus, alias: &str) -> anyhow::Result<bool> {
    Ok(incus
        .query(&format!("/1.0/images/aliases/{alias}"))?
        .is_some())
}

/// The image's alias on the server, imported first when it is not there
/// (the base image built first when this machine has none).
pub fn ensure(incus: &Incus, proxy: Option<&str>, p: &dyn Progress) -> anyhow::Result<String> {
    let recipe = base::Recipe::from_host();
    let alias = alias(&recipe);
    if imported(incus, &alias)? {
        return Ok(alias);
    }
    let dir = paths::root().join("incus-images");
    std::fs::create_dir_all(&dir)?;
    let _lock = paths::lock_file(&dir.join(".lock"), "the Incus image", p)?;
    if imported(incus, &alias)? {
        return Ok(alias);
    }
    let image = base::ensure(&recipe, proxy, p)?;
    let start = Instant::now();
    let work = dir.join(format!("{alias}.tmp"));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    let extra = work.join("extra");
    rootfs::write(
        &extra,
        "etc/systemd/system/labctl-seed.service",
        SEED_UNIT,
        0o644,
    )?;
    rootfs::write(&extra, "usr/local/sbin/labctl-seed", SEED_SCRIPT, 0o755)?;
    let wants = extra.join("etc/systemd/system/sysinit.target.wants");
    std::fs::create_dir_all(&wants)?;
    std::os::unix::fs::symlink(
        "/etc/systemd/system/labctl-seed.service",
        wants.join("labctl-seed.service"),
    )?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rootfs::write(
        &work,
        "metadata.yaml",
        &format!(
            "architecture: {}\ncreation_date: {created}\nproperties:\n  description: labctl {alias} (Debian {}, from {})\n  os: debian\n  release: {}\n",
            std::env::consts::ARCH,
            recipe.suite,
            image.display(),
            recipe.suite
        ),
        0o644,
    )?;
    let tarball = dir.join(format!("{alias}.tar"));
    pack(&work, &image, &extra, &tarball)?;
    let r = incus.call(
        &[
            "image",
            "import",
            &tarball.to_string_lossy(),
            "--alias",
            &alias,
        ],
        LONG,
    );
    let _ = std::fs::remove_file(&tarball);
    let _ = std::fs::remove_dir_all(&work);
    let r = r?;
    if !r.ok {
        anyhow::bail!("`incus image import` of labctl's image failed: {}", r.why());
    }
    p.line(&format!(
        "incus image: {alias} imported in {}",
        crate::providers::secs(start.elapsed())
    ));
    Ok(alias)
}

/// A unified tarball: `metadata.yaml`, then the image's files and the extra
/// files under `rootfs/` (symbolic links' targets untouched).
fn pack(work: &Path, image: &Path, extra: &Path, out: &Path) -> anyhow::Result<()> {
    let o = Command::new("tar")
        .arg("-cf")
        .arg(out)
        .arg("--numeric-owner")
        .arg("-C")
        .arg(work)
        .arg("metadata.yaml")
        .arg("--transform")
        .arg(r"s,^\.,rootfs,S")
        .arg("-C")
        .arg(image)
        .arg(".")
        .arg("-C")
        .arg(extra)
        .arg(".")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run tar: {e}"))?;
    if !o.status.success() {
        anyhow::bail!(
            "packing the Incus image failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(())
}
