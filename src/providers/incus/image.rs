//! labctl's image in Incus: the nspawn provider's Debian root file system
//! (the same mmdebstrap recipe, built once on this machine), with the package
//! layer of the inventory's `preinstall:` (or the scenarios' packages) over it
//! when there is one (the same cached layer nspawn nodes get), plus the unit
//! that applies a node's seed at first boot, packed as an Incus unified
//! tarball (`metadata.yaml` + `rootfs/`) and imported once per server with
//! the alias `labctl-<hash>` (the hash of the recipe, of the layer and of this
//! file's additions), so a second lab, or a second `up`, reuses it.
//!
//! ```text
//! /var/lib/labctl/incus-images/<alias>.tar    the tarball (removed once imported)
//! ```

use super::client::{Incus, LONG};
use crate::inventory::Inventory;
use crate::progress::Progress;
use crate::providers::host::{cache, image as base, layer, paths, rootfs, tool};
use std::path::Path;
use std::process::Command;
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

const SEED_SCRIPT_TEMPLATE: &str = r#"#!/bin/sh
# labctl: copy this node's identity from its seed (pushed by labctl up), once.
set -e
s=/var/lib/labctl/seed
rm -rf "$s"
mkdir -p "$s"
tar -xf /var/lib/labctl/seed.tar -C "$s"
cp -a "$s/root/." /
chmod 600 /etc/ssh/ssh_host_ed25519_key
LABCTL_PUBKEY="$(cat "$s/lab.pub")" sh "$s/setup.sh"
# what the package layer's packages generate per node (the layer holds none)
{node_secrets}
hostname "$(cat /etc/hostname)"
rm -rf "$s" /var/lib/labctl/seed.tar
sync
echo "labctl-seed: identity of $(cat /etc/hostname) applied"
"#;

/// The script the seed unit runs.
fn seed_script() -> String {
    SEED_SCRIPT_TEMPLATE.replace("{node_secrets}", layer::NODE_SECRETS)
}

/// The alias of the image for this host's recipe and the package layer (by
/// its name, which holds the packages' hash), if any.
pub fn alias(recipe: &base::Recipe, layer: Option<&str>) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(
        format!(
            "{}{SEED_UNIT}{}{}",
            recipe.hash(),
            seed_script(),
            layer.unwrap_or_default()
        )
        .as_bytes(),
    );
    format!("labctl-{}", &hex::encode(d)[..16])
}

/// Whether the server has the image `alias`.
fn imported(incus: &Incus, alias: &str) -> anyhow::Result<bool> {
    Ok(incus
        .query(&format!("/1.0/images/aliases/{alias}"))?
        .is_some())
}

/// The image's alias on the server for the inventory's `preinstall:`,
/// imported first when it is not there (the base image and the package layer
/// built first when this machine has none, through the host's package cache).
pub fn ensure(incus: &Incus, inv: &Inventory, p: &dyn Progress) -> anyhow::Result<String> {
    let preinstall = &inv.preinstall;
    // (built in the host's network: the cache's own address)
    let proxy = inv.network.as_ref().map(|_| cache::host_proxy_url());
    let proxy = proxy.as_deref();
    let recipe = base::Recipe::from_host();
    let layer_name =
        (!preinstall.is_empty()).then(|| layer::key(&base::image_dir(&recipe), preinstall));
    let alias = alias(&recipe, layer_name.as_deref());
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
    let layer = if preinstall.is_empty() {
        None
    } else {
        Some(layer::ensure(&image, preinstall, proxy, p)?)
    };
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
    rootfs::write(&extra, "usr/local/sbin/labctl-seed", &seed_script(), 0o755)?;
    // an empty machine id, as in the base image (the package layer removes
    // it): a missing one is systemd's first boot, which enables every unit
    // by preset, so the layer's bind9, apache2, corosync… would start at boot
    rootfs::write(&extra, "etc/machine-id", "", 0o644)?;
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
    // with a layer, the tarball holds the merged view (the layer's deletions applied)
    let root = match &layer {
        Some(l) => {
            let lower = format!("{}:{}", l.display(), image.display());
            let merged = work.join("merged");
            rootfs::mount_overlay(
                Path::new(&lower),
                &work.join("upper"),
                &work.join("ovl"),
                &merged,
            )?;
            merged
        }
        None => image.clone(),
    };
    let packed = pack(&work, &root, &extra, &tarball);
    rootfs::unmount(&work.join("merged"))?;
    packed?;
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
    tool::checked(
        Command::new("tar")
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
            .arg("."),
        "tar",
        |o| format!("packing the Incus image failed: {}", tool::stderr(o)),
    )?;
    Ok(())
}
