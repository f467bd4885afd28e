//! A lab read from a `Vagrantfile`: its machines become nodes shaped like
//! Vagrant's (see [`VagrantShape`]), so unmodified playbooks work on them.

use super::schema::InventoryFile;
use super::{lab_name_of_folder, subnet_problem, Inventory, ProviderSpec, Size, Subnet};
use crate::user_bail;
use crate::yaml;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

/// What a lab read from a `Vagrantfile` needs beyond the inventory model:
/// nodes shaped like Vagrant's, so unmodified playbooks work on them.
#[derive(Debug, Clone)]
pub struct VagrantShape {
    /// `config.ssh.insert_key` (false: Vagrant would use its insecure key;
    /// labctl always uses the lab key, at the same path).
    pub insert_key: bool,
    /// Each machine's `vm.hostname` where it differs from its name.
    pub hostnames: BTreeMap<String, String>,
    /// Each machine's box (`vm.box`) and the line of its `vm.define`.
    pub boxes: Vec<(String, String, usize)>,
    /// Machines with settings nspawn nodes do not use (memory, cpus, disks).
    pub vm_settings: Vec<String>,
    /// The private networks after each machine's first (`eth2`, `eth3`, …).
    pub extra_networks: Vec<ExtraNet>,
}

/// A further private network of a Vagrant project: a bridge of its own on
/// this machine (the host at the subnet's `.1`, no NAT: nodes reach the
/// package mirror through the lab network only), one interface on each
/// machine that names an address in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraNet {
    /// `lb2-LAB`, `lb3-LAB`, … (the lab network's bridge is `lab-LAB`).
    pub bridge: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// (node, its interface there: `eth2`…, its address).
    pub members: Vec<(String, String, Ipv4Addr)>,
}

/// The most private networks a Vagrant machine may have (eth1 … eth4).
pub const VAGRANT_MAX_NETWORKS: usize = 4;

/// How long the shipped scenarios' `failover` check waits on a lab read from a
/// Vagrantfile: its cluster is the playbooks' (corosync's default timing: a lost
/// member is noticed after 6.6 s), not labctl's tuned one (2 s).
pub const VAGRANT_FAILOVER_WITHIN: &str = "15s";

/// The interface name of a Vagrant box's first private network.
pub const VAGRANT_NIC: &str = "eth1";

/// The provider spellings of Vagrant's key path
/// (`.vagrant/machines/<node>/<provider>/private_key`) that labctl writes.
pub const VAGRANT_PROVIDERS: [&str; 2] = ["libvirt", "virtualbox"];

/// The further private networks of a Vagrantfile's machines (each machine's
/// second one is its `eth2`, and so on), one bridge per subnet, or what is
/// wrong with them (`at` gives `FILE:LINE`).
fn extra_networks(
    vf: &crate::vagrantfile::Vagrantfile,
    lab: &str,
    lab_subnet: &Subnet,
    at: &dyn Fn(usize) -> String,
) -> anyhow::Result<Vec<ExtraNet>> {
    let mut nets: Vec<ExtraNet> = Vec::new();
    let mut seen: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for m in &vf.machines {
        for (i, net) in m.networks.iter().enumerate().skip(1) {
            let ifname = format!("eth{}", i + 1);
            let subnet = Subnet {
                network: Ipv4Addr::from(u32::from(net.ip) & Subnet::mask_of(net.prefix)),
                prefix: net.prefix,
            };
            if subnet.contains(lab_subnet.network) || lab_subnet.contains(subnet.network) {
                user_bail!(
                    "{}: machine `{}`: its private network {} ({ifname}) is in the lab network {lab_subnet} (eth1): two interfaces in one subnet\n  fix: put the second network in a subnet of its own, e.g. 10.1.2.0/24",
                    at(net.line), m.name, net.ip
                );
            }
            if let Some(why) = subnet_problem(&subnet, 2) {
                user_bail!("{}: machine `{}`: private network {}: {why}\n  fix: use a private subnet such as 10.1.2.0/24", at(net.line), m.name, net.ip);
            }
            let gateway = Ipv4Addr::from(u32::from(subnet.network) + 1);
            if net.ip == gateway || !subnet.is_host(net.ip) {
                user_bail!(
                    "{}: machine `{}`: address {} is its network's gateway (labctl's host side is the subnet's .1) or not a host address\n  fix: give the machine another address, e.g. {}",
                    at(net.line), m.name, net.ip, Ipv4Addr::from(u32::from(subnet.network) + 101)
                );
            }
            if let Some(other) = seen.insert(net.ip, m.name.clone()) {
                user_bail!("{}: machine `{}`: address {} is already machine `{other}`'s\n  fix: give every machine its own address", at(net.line), m.name, net.ip);
            }
            if let Some(other) = nets.iter().find(|n| {
                n.subnet != subnet
                    && (n.subnet.contains(subnet.network) || subnet.contains(n.subnet.network))
            }) {
                user_bail!(
                    "{}: machine `{}`: private network {} overlaps {} of another machine\n  fix: use one prefix for a subnet on every machine",
                    at(net.line), m.name, net.ip, other.subnet
                );
            }
            match nets.iter_mut().find(|n| n.subnet == subnet) {
                Some(n) => {
                    if n.members.iter().any(|(node, _, _)| *node == m.name) {
                        user_bail!("{}: machine `{}`: a second address in {subnet}\n  fix: give the machine one address per network", at(net.line), m.name);
                    }
                    n.members.push((m.name.clone(), ifname, net.ip));
                }
                None => nets.push(ExtraNet {
                    bridge: format!("lb{}-{lab}", nets.len() + 2),
                    subnet,
                    gateway,
                    members: vec![(m.name.clone(), ifname, net.ip)],
                }),
            }
        }
    }
    if nets.len() > 8 {
        user_bail!(
            "{}: more than 8 further private networks\n  fix: merge networks",
            at(1)
        );
    }
    Ok(nets)
}

impl Inventory {
    /// The inventory of a `Vagrantfile`'s machines: the lab is named after the
    /// folder, its subnet is the machines' private network, each machine a node
    /// at its first private address; nodes shaped like Vagrant's
    /// ([`VagrantShape`]); the variables the shipped scenarios' checks use
    /// (`domain: example.com`, `vip`: the subnet's `.100`).
    /// The provider is the registry's default (`providers[0]`).
    pub(super) fn load_vagrantfile(
        path: &Path,
        providers: &[ProviderSpec],
    ) -> anyhow::Result<Inventory> {
        let vf = crate::vagrantfile::load(path)?;
        let at = |line: usize| format!("{}:{line}", path.display());
        let abs = crate::project::normalize(path);
        let folder = abs
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lab = lab_name_of_folder(&folder);
        for m in &vf.machines {
            if let Some(d) = m
                .disks
                .iter()
                .find(|d| Size::parse(d).is_none_or(|s| s.0 < 1 << 20))
            {
                user_bail!("{}: machine `{}`: disk size `{d}` is not a size labctl can make\n  fix: write e.g. :size => '512M'", at(m.line), m.name);
            }
        }
        let mut subnet: Option<(Subnet, usize)> = None;
        let mut yaml_nodes = String::new();
        let mut seen: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
        for m in &vf.machines {
            let Some(net) = m.networks.first() else {
                user_bail!(
                    "{}: machine `{}` has no private network, so labctl cannot give it an address\n  fix: add {}.vm.network :private_network, ip: \"10.1.1.101\"",
                    at(m.line), m.name, m.name
                );
            };
            if let Some(extra) = m.networks.get(VAGRANT_MAX_NETWORKS) {
                user_bail!(
                    "{}: machine `{}`: a private network beyond the {VAGRANT_MAX_NETWORKS} labctl makes (eth1 to eth{VAGRANT_MAX_NETWORKS})\n  fix: remove it, or merge networks",
                    at(extra.line), m.name
                );
            }
            let s = Subnet {
                network: Ipv4Addr::from(u32::from(net.ip) & Subnet::mask_of(net.prefix)),
                prefix: net.prefix,
            };
            match subnet {
                None => subnet = Some((s, net.line)),
                Some((first, line)) if first != s => user_bail!(
                    "{}: machine `{}`'s address {} is in {s}, but the first machine's (line {line}) is in {first}: labctl makes one lab network\n  fix: put every machine's private network in one subnet",
                    at(net.line), m.name, net.ip
                ),
                Some(_) => {}
            }
            if let Some(other) = seen.insert(net.ip, m.name.clone()) {
                user_bail!("{}: machine `{}`: address {} is already machine `{other}`'s\n  fix: give every machine its own address", at(net.line), m.name, net.ip);
            }
            yaml_nodes.push_str(&format!("  {}: {{address: {}}}\n", m.name, net.ip));
        }
        let (subnet, net_line) = subnet.expect("at least one machine");
        if let Some(why) = subnet_problem(&subnet, vf.machines.len()) {
            user_bail!("{}: private network: {why}\n  fix: use a private subnet with room for every node, e.g. 10.1.1.0/24", at(net_line));
        }
        let gateway = Ipv4Addr::from(u32::from(subnet.network) + 1);
        for m in &vf.machines {
            let net = &m.networks[0];
            if net.ip == gateway || !subnet.is_host(net.ip) {
                user_bail!(
                    "{}: machine `{}`: address {} is the lab's gateway (labctl's host side of the network is the subnet's .1) or not a host address\n  fix: give the machine another address, e.g. {}",
                    at(net.line), m.name, net.ip, Ipv4Addr::from(u32::from(subnet.network) + 101)
                );
            }
        }
        let extra_networks = extra_networks(&vf, &lab, &subnet, &at)?;
        let vip = (100..250)
            .map(|i| Ipv4Addr::from(u32::from(subnet.network) + i))
            .find(|a| subnet.is_host(*a) && !seen.contains_key(a));
        let mut text = format!(
            "lab: {lab}\nnetwork: {{subnet: {subnet}, gateway: {gateway}}}\nssh: {{user: vagrant}}\nnodes:\n{yaml_nodes}vars:\n  domain: example.com\n"
        );
        if let Some(v) = vip {
            text.push_str(&format!("  vip: {v}\n"));
        }
        // the project's own playbooks build its cluster, with corosync's defaults
        // (token 3 s + consensus 3.6 s before a member is lost): the shipped
        // scenarios' `failover` check then allows what such a cluster takes
        text.push_str(&format!("  failover_within: {VAGRANT_FAILOVER_WITHIN}\n"));
        // package lists and python3-apt, as on a Vagrant box: apt and Ansible's
        // apt module work from the first task
        text.push_str("preinstall: [python3-apt]\n");
        let file: InventoryFile = yaml::parse(&text, path)?;
        let mut inv = Self::from_file(file, path, providers)?;
        inv.vagrant = Some(VagrantShape {
            insert_key: vf.insert_key,
            hostnames: vf
                .machines
                .iter()
                .filter_map(|m| {
                    m.hostname
                        .clone()
                        .filter(|h| *h != m.name)
                        .map(|h| (m.name.clone(), h))
                })
                .collect(),
            boxes: vf
                .machines
                .iter()
                .filter_map(|m| m.vm_box.clone().map(|b| (m.name.clone(), b, m.line)))
                .collect(),
            vm_settings: vf
                .machines
                .iter()
                .filter(|m| m.memory.is_some() || m.cpus.is_some() || !m.disks.is_empty())
                .map(|m| m.name.clone())
                .collect(),
            extra_networks,
        });
        Ok(inv)
    }
}
