//! `inventory.yaml`: the machines of a lab (what a Vagrantfile and Ansible's
//! hosts file said together).
//!
//! ```yaml
//! lab: ha
//! provider: nspawn            # or: libvirt (VMs), ssh (nodes that already exist)
//! libvirt: {uri: qemu:///system, memory: 1G, cpus: 1, disks: [{size: 512M}]}  # provider libvirt only
//! #  fence: true      # libvirt: `up` runs fence_virtd here for the nodes' stonith:fence_virt (scenario 08)
//! network: {subnet: 10.1.1.0/24, gateway: 10.1.1.1}
//! ssh: {user: vagrant, key: .labctl/id_ed25519}
//! nodes:
//!   nodo1: {address: 10.1.1.101, groups: [nodos]}
//! group_vars: {nodos: {http_port: 80}}
//! vars: {domain: example.com}
//! secrets: [hacluster_password]
//! preinstall: [bind9, apache2]  # nspawn, libvirt: nodes start with these installed (a cached layer / VM image)
//! egress: nat                   # the nodes reach the Internet through the host (default: none, the lab is closed)
//! ```
//!
//! Without `preinstall:`, an nspawn lab's layer holds every package the
//! project's scenarios install (found by `up`, see `catalog::packages`);
//! `preinstall: []` asks for none.

mod hardware;
mod load;
mod names;
mod network;
mod provider;
mod schema;
#[cfg(test)]
mod tests;
mod vagrant;

pub use hardware::{Accel, IncusSettings, LibvirtSettings, Size, VmSpec, DEFAULT_VM_MEMORY};
pub use names::{
    lab_name_of_folder, valid_lab_name, valid_node_name, valid_package_name, valid_user,
    RESERVED_LAB_NAMES,
};
pub use network::{subnet_problem, Network, Subnet, PRIVATE_RANGES};
pub use provider::{with_provider_names, InventoryRules, ProviderName, ProviderSpec, Section};
pub use schema::LibvirtFile;
pub use vagrant::{
    ExtraNet, VagrantShape, VAGRANT_FAILOVER_WITHIN, VAGRANT_MAX_NETWORKS, VAGRANT_NIC,
    VAGRANT_PROVIDERS,
};

use indexmap::IndexMap;
use minijinja::Value;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// How labctl reaches the nodes.
#[derive(Debug, Clone)]
pub struct SshSettings {
    pub user: String,
    /// Private key (absolute path).
    pub key: PathBuf,
    /// Whether the key path came from the inventory (`up` generates the default one).
    pub key_given: bool,
    /// The lab's own known-hosts file (absolute path).
    pub known_hosts: PathBuf,
    pub port: u16,
    pub connect_timeout_secs: u64,
    /// `ssh: {lan: true}`: provider ssh may connect to nodes on a network
    /// that is not a labctl bridge (see [`crate::lab::ensure_safe_target`]).
    pub lan: bool,
}

/// One machine of the lab.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub address: Ipv4Addr,
    pub port: u16,
    pub groups: Vec<String>,
    pub vars: BTreeMap<String, Value>,
    /// Its hardware (provider libvirt; defaults elsewhere, unused).
    pub vm: VmSpec,
}

impl Node {
    /// The nodes' names, joined with `, ` (for messages and summaries).
    pub fn names<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> String {
        nodes
            .into_iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A loaded and validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    /// The project directory (the inventory's folder): `templates/`, `files/`, `.labctl/`.
    pub dir: PathBuf,
    pub lab: String,
    /// The provider, as the registry describes it (`providers::REGISTRY`).
    pub provider: ProviderSpec,
    pub network: Option<Network>,
    pub ssh: SshSettings,
    /// Provider libvirt's settings (`None` for the other providers).
    pub libvirt: Option<LibvirtSettings>,
    /// Provider incus's settings (`None` for the other providers).
    pub incus: Option<IncusSettings>,
    pub nodes: Vec<Node>,
    pub group_vars: BTreeMap<String, BTreeMap<String, Value>>,
    pub vars: BTreeMap<String, Value>,
    /// Names of variables whose values are never shown.
    pub secrets: Vec<String>,
    /// Packages new nspawn nodes start with, installed but not enabled (a
    /// cached layer on the image; the scenarios' tasks enable and start them).
    pub preinstall: Vec<String>,
    /// Whether the inventory wrote `preinstall:` (otherwise `up` of an nspawn
    /// lab takes the packages the project's scenarios install).
    pub preinstall_given: bool,
    /// `egress: nat`: the nodes reach beyond the host (masqueraded); by
    /// default a lab reaches only its own nodes and the host's lab services.
    pub egress_nat: bool,
    /// Read from a `Vagrantfile`: the nodes are shaped like Vagrant's (see
    /// [`VagrantShape`]). `None` for an `inventory.yaml`.
    pub vagrant: Option<VagrantShape>,
    /// The lab's state folder when it is not the project's `.labctl/` (a
    /// class's student lab keeps its own, see `crate::class`).
    pub state: Option<PathBuf>,
    /// The SSH hop to the host that holds the lab's network when it is not
    /// this machine, as the provider tells it (`Provider::jump`, set by
    /// `providers::load_inventory`).
    pub jump: Option<crate::jump::Jump>,
}

impl Inventory {
    /// Whether labctl owns the lab key: the default one, or one the inventory
    /// names inside the project's `.labctl/` (made by `up`, removed by `destroy`).
    /// A key elsewhere is the user's: never made, never removed.
    pub fn key_is_managed(&self) -> bool {
        crate::project::owned(&self.state_dir(), &self.ssh.key)
    }

    /// The file `-i PATH` means: `PATH` itself, or, for the default
    /// `inventory.yaml` when it does not exist, the `Vagrantfile` beside it.
    pub fn locate(path: &Path) -> PathBuf {
        if !path.exists() && path.file_name().is_some_and(|n| n == "inventory.yaml") {
            let vf = path.with_file_name("Vagrantfile");
            if vf.is_file() {
                return vf;
            }
        }
        path.to_path_buf()
    }

    /// The further private networks (a Vagrantfile's `eth2`…; none otherwise).
    pub fn extra_networks(&self) -> &[ExtraNet] {
        self.vagrant
            .as_ref()
            .map(|v| v.extra_networks.as_slice())
            .unwrap_or_default()
    }

    /// The host name of node `name` (a Vagrant machine's `vm.hostname`, else its name).
    pub fn hostname_of<'a>(&'a self, name: &'a str) -> &'a str {
        self.vagrant
            .as_ref()
            .and_then(|v| v.hostnames.get(name))
            .map(String::as_str)
            .unwrap_or(name)
    }

    /// The nodes' interface on the lab network, as their templates and
    /// resources name it: `eth1` on Vagrant-shaped nodes, else the
    /// provider's (its capability `nic`), else the inventory's `vars: {nic: …}`
    /// (default `eth0`).
    pub fn nic(&self) -> String {
        if self.vagrant.is_some() {
            return VAGRANT_NIC.to_string();
        }
        match self.provider.nic {
            Some(nic) => nic.to_string(),
            None => self
                .vars
                .get("nic")
                .map(|v| v.to_string())
                .unwrap_or_else(|| "eth0".to_string()),
        }
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Every group name with its members, in inventory order.
    pub fn groups(&self) -> IndexMap<String, Vec<String>> {
        let mut g: IndexMap<String, Vec<String>> = IndexMap::new();
        g.insert(
            "all".into(),
            self.nodes.iter().map(|n| n.name.clone()).collect(),
        );
        for n in &self.nodes {
            for grp in &n.groups {
                g.entry(grp.clone()).or_default().push(n.name.clone());
            }
        }
        g
    }

    /// Resolve a host pattern: `all`, a group, a node, or several joined by `,` or `:`.
    /// Returns `None` for the first unknown word.
    pub fn select(&self, pattern: &str) -> Result<Vec<&Node>, String> {
        let groups = self.groups();
        let mut chosen: std::collections::HashSet<String> = std::collections::HashSet::new();
        for word in pattern
            .split([',', ':'])
            .map(str::trim)
            .filter(|w| !w.is_empty())
        {
            if let Some(members) = groups.get(word) {
                chosen.extend(members.iter().cloned());
            } else if self.node(word).is_some() {
                chosen.insert(word.to_string());
            } else {
                return Err(word.to_string());
            }
        }
        // in inventory order
        Ok(self
            .nodes
            .iter()
            .filter(|n| chosen.contains(&n.name))
            .collect())
    }

    /// Names of the nodes and groups, for "did you mean" messages.
    pub fn known_patterns(&self) -> String {
        self.groups().keys().cloned().collect::<Vec<_>>().join(", ")
            + ", "
            + &Node::names(&self.nodes)
    }

    /// The project's lab state folder (`.labctl/` beside the inventory): key pair,
    /// known hosts, last applied scenario.
    pub fn state_dir(&self) -> PathBuf {
        self.state
            .clone()
            .unwrap_or_else(|| self.dir.join(".labctl"))
    }

    /// The container (machine) name of node `node`: `<lab>.<node>`, one lab's
    /// node only (neither name holds a `.`). It also names the node's veth on
    /// the host, `vb-<lab>.<node>` (systemd-nspawn hashes names past 15 characters).
    pub fn machine_name(lab: &str, node: &str) -> String {
        format!("{lab}.{node}")
    }

    /// The SSH hop to the host that holds the lab's network, when that is not
    /// this machine (a libvirt lab on a `qemu+ssh://` hypervisor, an Incus lab
    /// on another server or cluster member).
    pub fn jump(&self) -> Option<&crate::jump::Jump> {
        self.jump.as_ref()
    }

    /// The bridge of an nspawn lab: `lab-<name>` (at most 15 characters).
    pub fn bridge_name(&self) -> String {
        format!("lab-{}", self.lab)
    }
}
