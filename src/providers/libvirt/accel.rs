//! KVM or TCG: QEMU runs a VM with the CPU's virtualisation (KVM) only where
//! a guest can really use it; elsewhere it emulates the CPU (TCG: slower, but
//! it works everywhere). Detected without starting anything that could hang:
//! `/dev/kvm` must open read-write and the CPU must show `vmx` or `svm` (a
//! nested guest without them has a `/dev/kvm` its guests cannot use).

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
        Accel::Auto => Ok(Choice {
            domain_type: "qemu",
            why:
                "a remote hypervisor (say `accel: kvm` in the inventory's libvirt: to use its KVM)"
                    .into(),
        }),
    }
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
}
