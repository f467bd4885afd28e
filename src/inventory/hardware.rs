//! Sizes and the hardware of VM nodes: `512M`, `1G`, memory, cpus, disks.

use serde::Deserialize;

use std::path::PathBuf;

/// A size as people write it: `512M`, `1G`, `1536M` (binary units); a bare
/// number is MiB (as Vagrant's `memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl Size {
    pub fn parse(s: &str) -> Option<Size> {
        let s = s.trim();
        let (num, mul) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            None => (s, 1u64 << 20),
            Some((i, _)) => {
                let unit = s[i..].trim().to_ascii_uppercase();
                let mul = match unit.trim_end_matches("IB").trim_end_matches('B') {
                    "K" => 1u64 << 10,
                    "M" => 1 << 20,
                    "G" => 1 << 30,
                    "T" => 1 << 40,
                    _ => return None,
                };
                (&s[..i], mul)
            }
        };
        let n: u64 = num.parse().ok()?;
        n.checked_mul(mul).filter(|b| *b > 0).map(Size)
    }
    pub fn mib(self) -> u64 {
        self.0 >> 20
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        if b.is_multiple_of(1 << 30) {
            write!(f, "{}G", b >> 30)
        } else if b.is_multiple_of(1 << 20) {
            write!(f, "{}M", b >> 20)
        } else {
            write!(f, "{}K", b >> 10)
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string(),
            Raw::S(s) => s,
        };
        Size::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a size; write e.g. 512M or 1G (a bare number is MiB)"
            ))
        })
    }
}

/// How libvirt runs the VMs: with the CPU's virtualisation (KVM) or by
/// emulation (TCG); `auto` picks KVM only where it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// Settings of provider incus (`incus: {remote: …, project: …, target: …}`).
#[derive(Debug, Clone, serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IncusSettings {
    /// A remote of Incus's client (`incus remote add NAME https://HOST:8443`)
    /// to talk to (default: the local daemon).
    pub remote: Option<String>,
    /// An existing project to use (default: labctl makes `labctl-<lab>`).
    pub project: Option<String>,
    /// The cluster member to put the nodes on (default: Incus places them).
    pub target: Option<String>,
    /// The SSH login on the server (or member) hosting the lab when it is not
    /// this machine: labctl reaches the nodes through it (default: your own user).
    pub hop_user: Option<String>,
    /// The private key for that login (default: your SSH setup's).
    pub hop_key: Option<PathBuf>,
}

/// Settings of provider libvirt.
#[derive(Debug, Clone)]
pub struct LibvirtSettings {
    /// The hypervisor (`qemu:///system`, `qemu+ssh://root@host/system`).
    pub uri: String,
    /// The SSH hop to the hypervisor host (remote URIs): the lab's network is there.
    pub jump: Option<crate::jump::Jump>,
    pub accel: Accel,
    /// `fence: true`: `up` runs fence_virtd on the host for this lab (the
    /// nodes' `stonith:fence_virt` devices power each other off through it).
    pub fence: bool,
}

/// A VM node's hardware (provider libvirt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub memory: Size,
    pub cpus: u32,
    /// Extra disks, in order: `/dev/vdb`, `/dev/vdc`, …
    pub disks: Vec<Size>,
}

/// A VM's memory when the inventory says none.
pub const DEFAULT_VM_MEMORY: Size = Size(1 << 30);
