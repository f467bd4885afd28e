//! The package layer: the inventory's `preinstall:` packages installed once
//! into an overlay layer on the base image, cached in
//! `/var/lib/labctl/layers/<image>-<hash>/` and shared (read-only) by every
//! node created with it: such a node's overlay has the layer between the
//! image and its own upper layer, so a first `configure` finds the packages
//! installed and only configures and starts them.
//!
//! The layer is keyed by the image and the exact package set: a change of
//! either builds a new one, an existing one is reused. Nothing in it runs at
//! boot: the units the packages enabled are disabled again (their new links
//! in /etc/systemd/system removed, aliases too, so `systemctl is-enabled` says
//! disabled; the scenarios' `service` tasks enable and start them), so a preinstalled bind9 never
//! primes its cache from the Internet and pacemaker never forms a cluster
//! before `configure` says so. Per-node secrets the packages generate (bind9's
//! `rndc.key`, the snakeoil certificate) are removed from the layer and made
//! again for each node when it is created ([`NODE_SECRETS`]).

use super::paths;
use crate::progress::Progress;
use crate::sh;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Bump when the build steps change, so layers are rebuilt.
const STEPS_VERSION: u32 = 1;

/// Shell run in a new node (chroot) whose image has a layer: the per-node
/// secrets the layer's packages would have generated at install.
pub const NODE_SECRETS: &str = r#"if [ -x /usr/sbin/rndc-confgen ] && [ -d /etc/bind ] && [ ! -e /etc/bind/rndc.key ]; then
  rndc-confgen -a -A hmac-sha256 >/dev/null 2>&1 && chown root:bind /etc/bind/rndc.key && chmod 640 /etc/bind/rndc.key
fi
if [ -x /usr/sbin/make-ssl-cert ] && [ ! -e /etc/ssl/private/ssl-cert-snakeoil.key ]; then
  make-ssl-cert generate-default-snakeoil --force-overwrite >/dev/null 2>&1
fi"#;

/// Shell that installs the packages named in `"$@"` with nothing started,
/// then disables every unit they enabled and removes what is per node (the
/// secrets [`NODE_SECRETS`] makes again, the machine id, the hostname). The
/// package layer runs it, and so does the VM image for `preinstall:`.
pub const INSTALL_DISABLED: &str = r#"printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
# /var/lock is a link to /run/lock, which nothing makes in a build container: dpkg
# then sees a dangling link, and refuses a package that ships /var/lock/ (drbd-utils:
# "trying to overwrite '/var/lock', which is also in package base-files")
mkdir -p /run/lock
chmod 755 /usr/sbin/policy-rc.d
wanted() { find /etc/systemd/system -type l | sort; }
wanted > /tmp/labctl-before
apt-get update -q
apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -- "$@"
wanted > /tmp/labctl-after
comm -13 /tmp/labctl-before /tmp/labctl-after | while read -r l; do echo "disabled: $l"; rm -f "$l"; done
rm -f /tmp/labctl-before /tmp/labctl-after /usr/sbin/policy-rc.d
rm -f /etc/bind/rndc.key /etc/ssl/private/ssl-cert-snakeoil.key /etc/ssl/certs/ssl-cert-snakeoil.pem
rm -f /etc/machine-id /etc/hostname"#;

/// Where layers are cached.
pub fn layers_dir() -> PathBuf {
    paths::root().join("layers")
}

/// The layer's name for `image` and `packages`.
pub fn key(image: &Path, packages: &[String]) -> String {
    use sha2::Digest;
    let mut sorted = packages.to_vec();
    sorted.sort();
    let text = format!(
        "steps: {STEPS_VERSION}\nimage: {}\npackages: {}\n",
        image.display(),
        sorted.join(" ")
    );
    let d = sha2::Sha256::digest(text.as_bytes());
    let image_name = image
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{image_name}-{}", &hex::encode(d)[..16])
}

/// The layer of `packages` on `image`: reused when present, else built (a few
/// minutes, once).
/// `proxy`: the host's package cache the build fetches through.
pub fn ensure(
    image: &Path,
    packages: &[String],
    proxy: Option<&str>,
    p: &dyn Progress,
) -> anyhow::Result<PathBuf> {
    let dir = layers_dir();
    std::fs::create_dir_all(&dir)?;
    let name = key(image, packages);
    let layer = dir.join(&name);
    let done = dir.join(format!("{name}.packages"));
    if layer.is_dir() && done.exists() {
        p.line(&format!("layer: using cached {}", layer.display()));
        return Ok(layer);
    }
    let _lock = paths::lock_file(&dir.join(".lock"), "the package layers", p)?;
    if layer.is_dir() && done.exists() {
        return Ok(layer);
    }
    let start = Instant::now();
    p.line(&format!(
        "layer: installing {} into {} — a few minutes, once",
        packages.join(" "),
        layer.display()
    ));
    let tmp = dir.join(format!(".build-{name}"));
    discard_tmp(&tmp)?;
    let result = build(
        image,
        packages,
        proxy,
        &tmp,
        &dir.join(format!("{name}.log")),
    );
    let merged = tmp.join("merged");
    super::rootfs::unmount(&merged)?;
    if let Err(e) = result {
        discard_tmp(&tmp)?;
        return Err(e);
    }
    if layer.exists() {
        std::fs::remove_dir_all(&layer)?;
    }
    std::fs::rename(tmp.join("upper"), &layer)?;
    discard_tmp(&tmp)?;
    std::fs::write(&done, format!("{}\n", packages.join("\n")))?;
    p.line(&format!(
        "layer: built {} in {}",
        layer.display(),
        crate::providers::secs(start.elapsed())
    ));
    Ok(layer)
}

fn discard_tmp(tmp: &Path) -> anyhow::Result<()> {
    if tmp.exists() {
        for m in super::rootfs::mounts_under(tmp) {
            super::rootfs::unmount(&m)?;
        }
        std::fs::remove_dir_all(tmp)?;
    }
    Ok(())
}

fn build(
    image: &Path,
    packages: &[String],
    proxy: Option<&str>,
    tmp: &Path,
    log: &Path,
) -> anyhow::Result<()> {
    let merged = tmp.join("merged");
    super::rootfs::mount_overlay(image, &tmp.join("upper"), &tmp.join("work"), &merged)?;
    // through the host's cache while building; the file is not in the layer
    let proxy_conf = "etc/apt/apt.conf.d/95labctl-proxy";
    if let Some(url) = proxy {
        super::rootfs::write(
            &merged,
            proxy_conf,
            &format!("Acquire::http::Proxy \"{url}\";\nAcquire::Retries \"3\";\n"),
            0o644,
        )?;
    }
    let mut list = crate::shell::Script::new();
    list.args(packages);
    let mut script = sh!("set -e\nset -- {}", list);
    script.line(INSTALL_DISABLED);
    let mut cmd = Command::new("systemd-nspawn");
    let cgroup = format!("build-{}", std::process::id());
    super::cgroup::enter(&mut cmd, &cgroup)?;
    let run = crate::providers::run_logged(
        cmd.arg("--quiet")
            .arg("--register=no")
            .arg("--keep-unit")
            .arg("--resolv-conf=bind-host")
            .arg("--setenv=DEBIAN_FRONTEND=noninteractive")
            .arg("-D")
            .arg(&merged)
            .args(["/bin/sh", "-c", script.as_str()]),
        log,
    );
    super::cgroup::remove(&cgroup);
    if proxy.is_some() {
        let _ = std::fs::remove_file(merged.join(proxy_conf));
    }
    // nothing downloaded stays in the layer (the host's cache has it)
    if let Ok(rd) = std::fs::read_dir(merged.join("var/cache/apt/archives")) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().ends_with(".deb") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let (status, text) = run?;
    if !status.success() {
        anyhow::bail!(
            "installing the preinstall packages into the layer failed ({status}); last lines (full log: {}):\n{}\n  fix: check the names in `preinstall:` (`apt-cache show NAME` on a node) and that this machine reaches the mirror",
            log.display(),
            crate::text::last_lines(&text, 15)
        );
    }
    Ok(())
}
