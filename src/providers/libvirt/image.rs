//! The VM image: the nspawn image's Debian (the same recipe) plus a kernel,
//! udev and what a VM boot needs, built once on this machine at native speed
//! (`systemd-nspawn` runs apt in a copy of the base image), made into an ext4
//! disk with `mkfs.ext4 -d` (no loop device, no nbd) and converted to qcow2:
//!
//! ```text
//! /var/lib/labctl/vm-images/<hash>/disk.qcow2   root file system (never modified)
//!                                  vmlinuz      the kernel and initrd, for
//!                                  initrd.img   libvirt's direct kernel boot
//! /var/lib/labctl/vm-images/<hash>.recipe       what was built
//! ```
//!
//! The hash covers the base recipe and this file's steps, so a change of
//! either builds a new image. On the hypervisor the three files are volumes
//! of the pool `labctl-images`, uploaded once through libvirt (so a remote
//! hypervisor gets them the same way); nodes are qcow2 overlays on the disk.
//!
//! A node's identity comes from its seed disk at first boot (see
//! [`super::seed`]): the image carries the unit that applies it.

use super::virsh::Virsh;
use super::xml;
use crate::progress::Progress;
use crate::providers::host::{image as base, paths, tool};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Bump when the steps below change.
const VM_STEPS_VERSION: u32 = 1;

/// What the VM image adds to the base image.
const VM_PACKAGES: &[&str] = &["linux-image-amd64", "initramfs-tools", "udev", "kmod"];

/// The virtual size of the root disk (qcow2 stores only what is used).
pub const ROOT_SIZE: &str = "8G";

/// The unit that applies the seed disk, once, before the network and sshd.
const SEED_UNIT: &str = "[Unit]
Description=labctl: this node's identity (hostname, address, keys, lab user) from its seed disk
DefaultDependencies=no
# after sysusers: useradd and systemd-sysusers both lock /etc/passwd
After=systemd-udev-trigger.service local-fs.target systemd-remount-fs.service systemd-sysusers.service
Wants=systemd-udev-trigger.service
Before=network-pre.target systemd-networkd.service ssh.service sysinit.target
Wants=network-pre.target
ConditionPathExists=!/var/lib/labctl/seed-applied

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
# labctl: copy this node's identity from its seed disk (label labctl-seed), once.
set -e
dev=/dev/disk/by-label/labctl-seed
i=0
while [ ! -e "$dev" ] && [ "$i" -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -e "$dev" ]; then echo "labctl-seed: no seed disk ($dev)" >&2; exit 1; fi
m=/run/labctl-seed
mkdir -p "$m"
mount -o ro "$dev" "$m"
cp -a "$m/root/." /
LABCTL_PUBKEY="$(cat "$m/lab.pub")" sh "$m/setup.sh"
hostname "$(cat /etc/hostname)"
umount "$m"
mkdir -p /var/lib/labctl
: > /var/lib/labctl/seed-applied
sync
echo "labctl-seed: identity of $(cat /etc/hostname) applied"
"#;

/// The steps run inside the copy of the base image (as root, with the host's
/// network): the kernel, then the inventory's `preinstall:` packages,
/// installed with nothing enabled (as the nspawn package layer does).
fn steps(preinstall: &[String]) -> String {
    let pre = if preinstall.is_empty() {
        String::new()
    } else {
        let mut list = crate::shell::Script::new();
        list.args(preinstall);
        format!(
            "set -- {}\n{}\n",
            list.as_str(),
            crate::providers::host::layer::INSTALL_DISABLED
        )
    };
    format!(
        "set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends {pkgs}
{pre}printf '%s\\n' '/dev/vda / ext4 rw,errors=remount-ro 0 1' > /etc/fstab
chmod 755 /usr/local/sbin/labctl-seed
systemctl enable labctl-seed.service
for t in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do systemctl mask \"$t\" >/dev/null 2>&1 || true; done
apt-get clean
rm -f /var/lib/apt/lists/*_Packages /var/lib/apt/lists/*_Translation-* || true
: > /etc/machine-id
",
        pkgs = VM_PACKAGES.join(" ")
    )
}

/// A built VM image on this machine.
#[derive(Debug, Clone)]
pub struct VmImage {
    pub hash: String,
    pub dir: PathBuf,
}

impl VmImage {
    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk.qcow2")
    }
    pub fn kernel(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initrd.img")
    }
}

fn recipe_text(base_recipe: &base::Recipe, preinstall: &[String]) -> String {
    // no line without preinstall: the images built before it keep their hash
    let pre = if preinstall.is_empty() {
        String::new()
    } else {
        format!("preinstall: {}\n", preinstall.join(","))
    };
    format!(
        "{}vm_steps: {VM_STEPS_VERSION}\nvm_packages: {}\n{pre}root_size: {ROOT_SIZE}\n",
        base_recipe.text(),
        VM_PACKAGES.join(",")
    )
}

fn hash_of(text: &str, preinstall: &[String]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(
        format!("{text}{SEED_UNIT}{SEED_SCRIPT}{}", steps(preinstall)).as_bytes(),
    );
    format!("bookworm-vm-{}", &hex::encode(d)[..16])
}

/// Run a host command; its stderr becomes the error.
fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    tool::checked(cmd, what, |o| {
        let text = tool::all_output(o);
        let last = crate::text::last_lines(&text, 15);
        format!("{what} failed ({}); last lines:\n{last}", o.status)
    })?;
    Ok(())
}

/// Install the VM's packages and `preinstall` into the image being built
/// in `tmp` (its `root/`), the log beside the images; on failure `tmp` goes.
fn install(images: &Path, hash: &str, tmp: &Path, preinstall: &[String]) -> anyhow::Result<()> {
    let log = images.join(format!("{hash}.log"));
    let mut cmd = Command::new("systemd-nspawn");
    let cgroup = format!("build-{}", std::process::id());
    crate::providers::host::cgroup::enter(&mut cmd, &cgroup)?;
    let installed = crate::providers::run_logged(
        cmd.args(["-q", "--register=no", "--keep-unit", "--pipe"])
            .arg("--resolv-conf=copy-host")
            .arg(format!("--directory={}", tmp.join("root").display()))
            .args(["/bin/sh", "-c", &steps(preinstall)]),
        &log,
    );
    crate::providers::host::cgroup::remove(&cgroup);
    let (status, text) = installed?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(tmp);
        anyhow::bail!(
            "installing the VM kernel failed ({status}); last lines (full log: {}):\n{}\n  fix: check that this machine reaches the mirror (`apt-get update` on the host)",
            log.display(),
            crate::text::last_lines(&text, 15)
        );
    }
    Ok(())
}

/// The VM image for this host's recipe and the inventory's `preinstall:`
/// packages (each package set has an image of its own): reused when
/// present, else built.
pub fn ensure(preinstall: &[String], p: &dyn Progress) -> anyhow::Result<VmImage> {
    let mut preinstall = preinstall.to_vec();
    preinstall.sort();
    let recipe = base::Recipe::from_host();
    let text = recipe_text(&recipe, &preinstall);
    let hash = hash_of(&text, &preinstall);
    let images = paths::root().join("vm-images");
    std::fs::create_dir_all(&images)?;
    let img = VmImage {
        hash: hash.clone(),
        dir: images.join(&hash),
    };
    let marker = images.join(format!("{hash}.recipe"));
    let done = || marker.exists() && img.disk().exists() && img.kernel().exists();
    if done() {
        p.line(&format!("vm image: using cached {}", img.dir.display()));
        return Ok(img);
    }
    let base_dir = base::ensure(&recipe, None, p)?;
    let _lock = paths::lock_file(&images.join(".lock"), "the VM image cache", p)?;
    if done() {
        return Ok(img);
    }
    let start = Instant::now();
    let step = |what: &str| {
        p.line(&format!(
            "vm image: [{:5.1}s] {what}",
            start.elapsed().as_secs_f64()
        ))
    };
    step(&format!(
        "building {} (the base image + a kernel) — about two minutes, once",
        img.dir.display()
    ));
    let tmp = images.join(format!(".build-{hash}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    let root = tmp.join("root");
    run(
        Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(&base_dir)
            .arg(&root),
        "copying the base image",
    )?;
    let w = |rel: &str, text: &str, mode: u32| {
        crate::providers::host::rootfs::write(&root, rel, text, mode)
    };
    w("etc/systemd/system/labctl-seed.service", SEED_UNIT, 0o644)?;
    w("usr/local/sbin/labctl-seed", SEED_SCRIPT, 0o755)?;
    step(&format!(
        "installing {} (apt)",
        VM_PACKAGES
            .iter()
            .copied()
            .chain(preinstall.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    install(&images, &hash, &tmp, &preinstall)?;
    let find = |prefix: &str| -> anyhow::Result<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("boot"))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .collect();
        v.sort();
        v.pop()
            .ok_or_else(|| anyhow::anyhow!("the VM image has no /boot/{prefix}*"))
    };
    let out_dir = tmp.join("out");
    std::fs::create_dir_all(&out_dir)?;
    std::fs::copy(find("vmlinuz-")?, out_dir.join("vmlinuz"))?;
    std::fs::copy(find("initrd.img-")?, out_dir.join("initrd.img"))?;
    step("making the ext4 root file system (mkfs.ext4 -d)");
    let raw = tmp.join("disk.raw");
    run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "labctl-root", "-E", "root_owner=0:0"])
            .arg("-d")
            .arg(&root)
            .arg(&raw)
            .arg(ROOT_SIZE),
        "mkfs.ext4",
    )?;
    step("converting to qcow2");
    run(
        Command::new("qemu-img")
            .args(["convert", "-O", "qcow2"])
            .arg(&raw)
            .arg(out_dir.join("disk.qcow2")),
        "qemu-img convert",
    )?;
    std::fs::remove_file(&raw)?;
    use std::os::unix::fs::PermissionsExt;
    for f in ["vmlinuz", "initrd.img", "disk.qcow2"] {
        std::fs::set_permissions(out_dir.join(f), std::fs::Permissions::from_mode(0o644))?;
    }
    if img.dir.exists() {
        std::fs::remove_dir_all(&img.dir)?;
    }
    std::fs::rename(&out_dir, &img.dir)?;
    std::fs::write(&marker, &text)?;
    let _ = std::fs::remove_dir_all(&tmp);
    step(&format!("built {}", img.dir.display()));
    Ok(img)
}

/// Where the image's files are on the hypervisor.
pub struct Uploaded {
    pub disk: String,
    pub kernel: String,
    pub initrd: String,
}

/// The image's three volumes in the pool `labctl-images`, uploaded when the
/// hypervisor lacks them (a last, empty volume marks a complete upload).
pub fn upload(v: &Virsh, img: &VmImage, p: &dyn Progress) -> anyhow::Result<Uploaded> {
    super::ensure_pool(v, xml::IMAGE_POOL, &super::images_pool_path())?;
    let vols = [
        (format!("{}.qcow2", img.hash), img.disk()),
        (format!("{}.vmlinuz", img.hash), img.kernel()),
        (format!("{}.initrd", img.hash), img.initrd()),
    ];
    let ok_vol = format!("{}.ok", img.hash);
    let pool = xml::IMAGE_POOL;
    if v.vol_path(pool, &ok_vol)?.is_none() {
        let _lock = paths::lock_file(
            &paths::root().join("vm-images/.upload.lock"),
            "the VM image upload",
            p,
        )?;
        v.run(&["pool-refresh", pool])?;
        if v.vol_path(pool, &ok_vol)?.is_none() {
            let t = Instant::now();
            for (name, file) in &vols {
                if v.vol_path(pool, name)?.is_some() {
                    v.run(&["vol-delete", "--pool", pool, name])?;
                }
                let size = std::fs::metadata(file)?.len().to_string();
                v.run(&["vol-create-as", pool, name, &size, "--format", "raw"])?;
                p.line(&format!(
                    "vm image: uploading {} to {} ({} MB)",
                    name,
                    v.uri,
                    std::fs::metadata(file)?.len() >> 20
                ));
                v.run_for(
                    &["vol-upload", "--pool", pool, name, &file.to_string_lossy()],
                    Duration::from_secs(1800),
                )?;
            }
            v.run(&["vol-create-as", pool, &ok_vol, "0", "--format", "raw"])?;
            p.line(&format!(
                "vm image: uploaded to {} in {}",
                v.uri,
                crate::providers::secs(t.elapsed())
            ));
        }
    }
    let path = |name: &str| -> anyhow::Result<String> {
        v.vol_path(pool, name)?
            .ok_or_else(|| anyhow::anyhow!("volume {name} vanished from pool {pool}"))
    };
    Ok(Uploaded {
        disk: path(&vols[0].0)?,
        kernel: path(&vols[1].0)?,
        initrd: path(&vols[2].0)?,
    })
}
