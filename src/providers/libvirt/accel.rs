//! KVM or TCG: QEMU runs a VM with the CPU's virtualisation (KVM) only where
//! a guest can really use it; elsewhere it emulates the CPU (TCG: slower, but
//! it works everywhere). Detected without starting anything that could hang:
//! `/dev/kvm` must open read-write and the CPU must show `vmx` or `svm` (a
//! nested guest without them has a `/dev/kvm` its guests cannot use). On a
//! remote hypervisor the same two facts come from libvirt: KVM guests offered
//! (`domcapabilities --virttype kvm`) and vmx/svm in its host CPU (`capabilities`).

use super::virsh::Virsh;
use crate::inventory::Accel;

/// The domain type to use and why.
#[derive(Debug, Clone)]
pub struct Choice {
    /// `kvm` or `qemu`.
    pub domain_type: &'static str,
    pub why: String,
}

impl Choice {
    pub fn label(&self) -> &'static str {
        if self.domain_type == "kvm" {
            "KVM"
        } else {
            "TCG (emulation)"
        }
    }
}

fn cpu_flags(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|w| w == "vmx" || w == "svm"))
}

fn kvm_here() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm: {e}"))?;
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if !cpu_flags(&info) {
        return Err("the CPU shows no vmx/svm flag (a nested guest without virtualisation)".into());
    }
    Ok(())
}

/// Decide for the lab's hypervisor.
pub fn choose(v: &Virsh, want: Accel) -> anyhow::Result<Choice> {
    match want {
        Accel::Tcg => Ok(Choice {
            domain_type: "qemu",
            why: "accel: tcg in the inventory".into(),
        }),
        Accel::Kvm => {
            let r = v.call(
                &["domcapabilities", "--virttype", "kvm"],
                super::virsh::SHORT,
            )?;
            if !r.ok {
                crate::user_bail!(
                    "the inventory asks for accel: kvm, but {} cannot run KVM guests: {}\n  fix: remove `accel: kvm` (labctl then uses KVM only where it works, TCG elsewhere)",
                    v.uri,
                    r.stderr.trim()
                );
            }
            Ok(Choice {
                domain_type: "kvm",
                why: "accel: kvm in the inventory".into(),
            })
        }
        Accel::Auto if v.is_local() => Ok(match kvm_here() {
            Ok(()) => Choice {
                domain_type: "kvm",
                why: "/dev/kvm works and the CPU has virtualisation".into(),
            },
            Err(why) => Choice {
                domain_type: "qemu",
                why: format!("no usable KVM: {why}"),
            },
        }),
        Accel::Auto => remote(v),
    }
}

/// Whether libvirt's host capabilities show the CPU's virtualisation.
fn caps_have_virtualisation(caps: &str) -> bool {
    let host = caps.split("</host>").next().unwrap_or("");
    host.contains("<feature name='vmx'/>") || host.contains("<feature name='svm'/>")
}

/// A remote hypervisor, asked through libvirt only: KVM when libvirt offers
/// KVM guests there and its host CPU shows vmx or svm.
fn remote(v: &Virsh) -> anyhow::Result<Choice> {
    let kvm = v.call(
        &["domcapabilities", "--virttype", "kvm"],
        super::virsh::SHORT,
    )?;
    let caps = v.run(&["capabilities"])?;
    Ok(match (kvm.ok, caps_have_virtualisation(&caps)) {
        (true, true) => Choice {
            domain_type: "kvm",
            why: "the hypervisor offers KVM and its CPU has virtualisation".into(),
        },
        (false, _) => Choice {
            domain_type: "qemu",
            why: "the hypervisor offers no KVM guests".into(),
        },
        (true, false) => Choice {
            domain_type: "qemu",
            why:
                "the hypervisor's CPU shows no vmx/svm flag (a nested guest without virtualisation)"
                    .into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_virtualisation_flags() {
        assert!(cpu_flags("processor: 0\nflags\t\t: fpu vme vmx sse\n"));
        assert!(cpu_flags("flags : svm lm\n"));
        assert!(!cpu_flags("flags : fpu vme sse hypervisor\n"));
        assert!(!cpu_flags("vmx flags missing\n"));
    }

    #[test]
    fn reads_virtualisation_from_libvirt_capabilities() {
        let with = "<capabilities><host><cpu><model>Skylake</model><feature name='vmx'/></cpu></host><guest/></capabilities>";
        assert!(caps_have_virtualisation(with));
        let without = "<capabilities><host><cpu><feature name='hypervisor'/></cpu></host><guest><feature name='vmx'/></guest></capabilities>";
        assert!(!caps_have_virtualisation(without));
    }
}
