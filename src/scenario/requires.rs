//! `requires:` of a scenario: the lab it needs (the kind of nodes, their
//! memory and extra disks, the fence daemon, packages in the image), checked
//! against the inventory before anything runs, so a scenario that cannot work
//! on a lab is refused at once (exit 2) with the inventory lines to add,
//! instead of changing nodes and failing later.
//!
//! ```yaml
//! requires:
//!   provider: libvirt          # VM nodes: a kernel and disks of their own
//!   hosts: nodos               # whose memory and disks count (default: all)
//!   memory: 768M               # at least, per node
//!   disks: [512M]              # extra disks, at least these sizes, in order
//!   fence: true                # the lab's fence daemon (`libvirt: {fence: true}`)
//!   preinstall: [dlm-controld] # in the nodes' image (`preinstall:`)
//! ```

use crate::inventory::{Inventory, ProviderName, Size};
use crate::yaml::OneOrMany;
use serde::Deserialize;

/// `requires:` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    /// The provider the lab must use.
    pub provider: Option<ProviderName>,
    /// The nodes the sizes apply to (a node, a group, `all`; default all).
    #[serde(default)]
    pub hosts: Option<OneOrMany>,
    /// The least memory of each of those nodes.
    pub memory: Option<Size>,
    /// The extra disks each of those nodes must have, in order, at least this big.
    #[serde(default)]
    pub disks: Vec<Size>,
    /// The lab's fence daemon.
    #[serde(default)]
    pub fence: bool,
    /// Packages the nodes' image must hold.
    #[serde(default)]
    pub preinstall: Vec<String>,
}

/// Whether the provider's nodes have memory and disks of their own (its capability).
fn vm_hardware(name: &str) -> bool {
    crate::providers::by_name(name).is_some_and(|p| p.capabilities().vm_hardware)
}

impl Requires {
    /// Refuse (a user error naming `at`, the `requires:` line) when `inv`'s
    /// lab lacks something; the fix lists the inventory lines that give it.
    pub fn check(&self, inv: &Inventory, at: &str) -> anyhow::Result<()> {
        let mut missing: Vec<String> = Vec::new();
        let provider = self
            .provider
            .as_ref()
            .map_or(inv.provider.name, |p| p.0.as_str());
        if provider != inv.provider.name {
            missing.push(format!(
                "nodes of provider {provider} (this lab's are {})",
                inv.provider.as_str()
            ));
        }
        let pattern = self
            .hosts
            .as_ref()
            .map(|h| h.0.join(","))
            .unwrap_or_else(|| "all".into());
        let nodes = inv.select(&pattern).map_err(|w| {
            crate::error::user(format!(
                "{at}: requires: hosts: `{w}` is neither a node nor a group of {}\n  fix: use one of: {}",
                inv.path.display(),
                inv.known_patterns()
            ))
        })?;
        // sizes only mean something on the provider that has them
        if provider == inv.provider.name && vm_hardware(provider) {
            for n in &nodes {
                if let Some(m) = self.memory {
                    if n.vm.memory.0 < m.0 {
                        missing.push(format!(
                            "{} with {m} of memory (it has {})",
                            n.name, n.vm.memory
                        ));
                    }
                }
                for (i, want) in self.disks.iter().enumerate() {
                    match n.vm.disks.get(i) {
                        Some(have) if have.0 >= want.0 => {}
                        Some(have) => missing.push(format!(
                            "{}'s extra disk {} of {want} (it is {have})",
                            n.name,
                            i + 1
                        )),
                        None => {
                            missing.push(format!("{}'s extra disk {} of {want}", n.name, i + 1))
                        }
                    }
                }
            }
            if self.fence && !inv.libvirt.as_ref().is_some_and(|l| l.fence) {
                missing.push("the lab's fence daemon".into());
            }
        }
        let absent: Vec<&str> = self
            .preinstall
            .iter()
            .filter(|p| !inv.preinstall.contains(p))
            .map(String::as_str)
            .collect();
        if !absent.is_empty() {
            missing.push(format!("{} in the nodes' image", absent.join(", ")));
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(crate::error::user(format!(
            "{at}: this scenario needs a lab with {}, which the lab `{}` ({}) does not have\n  fix: in {}, {}\n  then rebuild the nodes: `labctl destroy && labctl up` (nothing was changed on them)",
            missing.join(", "),
            inv.lab,
            inv.path.display(),
            inv.path.display(),
            self.lines(inv, provider)
        )))
    }

    /// The inventory lines that give the lab what this asks for.
    fn lines(&self, inv: &Inventory, provider: &str) -> String {
        let mut lines = Vec::new();
        if provider != inv.provider.name {
            lines.push(format!("provider: {provider}"));
        }
        let mut hw = Vec::new();
        if let Some(m) = self.memory {
            hw.push(format!("memory: {m}"));
        }
        if !self.disks.is_empty() {
            let d: Vec<String> = self
                .disks
                .iter()
                .map(|s| format!("{{size: {s}}}"))
                .collect();
            hw.push(format!("disks: [{}]", d.join(", ")));
        }
        if self.fence {
            hw.push("fence: true".into());
        }
        if vm_hardware(provider) && !hw.is_empty() {
            lines.push(format!("{provider}: {{{}}}", hw.join(", ")));
        }
        if !self.preinstall.is_empty() {
            let mut all = inv.preinstall.clone();
            for p in &self.preinstall {
                if !all.contains(p) {
                    all.push(p.clone());
                }
            }
            lines.push(format!("preinstall: [{}]", all.join(", ")));
        }
        format!(
            "set (merging into the sections you have):\n      {}",
            lines.join("\n      ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::providers::inventory_in as inv;

    const NSPAWN: &str = "lab: ha\nnetwork: {subnet: 10.1.1.0/24, gateway: 10.1.1.1}\nnodes:\n  nodo1: {address: 10.1.1.101, groups: [nodos]}\n  dns: {address: 10.1.1.103}\n";

    fn drbd() -> Requires {
        serde_saphyr::from_str(
            "provider: libvirt\nhosts: nodos\nmemory: 768M\ndisks: [512M]\nfence: true\n",
        )
        .unwrap()
    }

    #[test]
    fn a_container_lab_is_told_the_lines_of_a_vm_lab() {
        let d = tempfile::tempdir().unwrap();
        let e = drbd()
            .check(&inv(d.path(), NSPAWN), "s.yaml:3:1")
            .unwrap_err();
        let m = format!("{e:#}");
        assert!(m.starts_with("s.yaml:3:1: this scenario needs a lab with nodes of provider libvirt (this lab's are nspawn)"), "{m}");
        assert!(m.contains("provider: libvirt\n      libvirt: {memory: 768M, disks: [{size: 512M}], fence: true}"), "{m}");
        assert_eq!(crate::error::exit_code(&e), 2);
    }

    #[test]
    fn a_vm_lab_short_of_a_disk_and_the_fence_daemon() {
        let d = tempfile::tempdir().unwrap();
        let text = NSPAWN.replace(
            "lab: ha\n",
            "lab: ha\nprovider: libvirt\nlibvirt: {memory: 1G}\n",
        );
        let e = drbd()
            .check(&inv(d.path(), &text), "s.yaml:3:1")
            .unwrap_err();
        let m = format!("{e:#}");
        assert!(
            m.contains("nodo1's extra disk 1 of 512M, the lab's fence daemon"),
            "{m}"
        );
        assert!(!m.contains("dns"), "only the hosts named count: {m}");
        assert!(!m.contains("provider: libvirt\n"), "{m}");
        let ok = NSPAWN.replace(
            "lab: ha\n",
            "lab: ha\nprovider: libvirt\nlibvirt: {memory: 1G, disks: [{size: 1G}], fence: true}\n",
        );
        drbd().check(&inv(d.path(), &ok), "s.yaml:3:1").unwrap();
    }

    #[test]
    fn packages_missing_from_the_image() {
        let d = tempfile::tempdir().unwrap();
        let r: Requires = serde_saphyr::from_str("preinstall: [gfs2-utils]").unwrap();
        let text = format!("{NSPAWN}preinstall: [apache2]\n");
        let m = format!("{:#}", r.check(&inv(d.path(), &text), "s:1:1").unwrap_err());
        assert!(m.contains("gfs2-utils in the nodes' image"), "{m}");
        assert!(m.contains("preinstall: [apache2, gfs2-utils]"), "{m}");
    }
}
