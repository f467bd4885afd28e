//! Loading and validating `inventory.yaml`, a section at a time. Every
//! problem is a user error naming file, line and fix.

use super::schema::{InventoryFile, LibvirtFile, NodeFile};
use super::{
    subnet_problem, valid_lab_name, valid_node_name, valid_package_name, valid_user, Inventory,
    Network, Node, ProviderSpec, SshSettings, Subnet, VmSpec, DEFAULT_VM_MEMORY,
    RESERVED_LAB_NAMES,
};
use crate::error::user;
use crate::user_bail;
use crate::yaml;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

impl Inventory {
    /// Load and validate `path` (an `inventory.yaml`, or a `Vagrantfile`; see
    /// [`Inventory::locate`]) for the registered `providers` (the first is the
    /// default); `providers::load_inventory` passes the registry's. Every
    /// problem is a user error naming file, line and fix.
    pub fn load_with(path: &Path, providers: &[ProviderSpec]) -> anyhow::Result<Inventory> {
        let path = &Self::locate(path);
        if path.file_name().is_some_and(|n| n == "Vagrantfile") {
            return Self::load_vagrantfile(path, providers);
        }
        let names: Vec<&'static str> = providers.iter().map(|p| p.name).collect();
        let file: InventoryFile =
            super::with_provider_names(&names, || yaml::load(path, "inventory"))?;
        Self::from_file(file, path, providers)
    }

    pub(super) fn from_file(
        file: InventoryFile,
        path: &Path,
        providers: &[ProviderSpec],
    ) -> anyhow::Result<Inventory> {
        let text_path = path.to_path_buf();
        let abs = crate::project::normalize(path);
        let dir = abs
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let provider = match &file.provider {
            name if name.0.is_empty() => providers[0],
            name => *providers
                .iter()
                .find(|p| p.name == name.0)
                .unwrap_or_else(|| unreachable!("provider `{}` is parsed but not given", name.0)),
        };
        check_lab_name(&file, &text_path)?;
        let network = network(&file, &text_path)?;
        if provider.creates_nodes && network.is_none() {
            user_bail!(
                "{}: provider {} needs a `network:` section\n  fix: add `network: {{subnet: 10.1.1.0/24, gateway: 10.1.1.1}}`",
                text_path.display(),
                provider.as_str()
            );
        }
        let section = provider_section(&file, &provider, &text_path)?;
        let libvirt = match provider.rules.section {
            Some(s) => {
                let at = file
                    .libvirt
                    .as_ref()
                    .map(|l| yaml::at(&text_path, &l.referenced))
                    .unwrap_or_else(|| text_path.display().to_string());
                Some((s.settings)(section, &at)?)
            }
            None => None,
        };
        let incus = incus_section(&file, &provider, &text_path, &dir)?;
        let ssh = ssh_settings(&file, &provider, &text_path, &dir)?;
        let nodes = nodes(
            &file,
            &provider,
            &text_path,
            &ssh,
            network.as_ref(),
            section,
        )?;
        let preinstall = preinstall(&file, &provider, providers, &text_path)?;
        let egress_nat = egress(&file, &provider, &text_path)?;
        Ok(Inventory {
            path: text_path,
            dir,
            lab: file.lab.value,
            provider,
            network,
            ssh,
            libvirt,
            incus,
            nodes,
            group_vars: file.group_vars,
            vars: file.vars,
            secrets: file.secrets,
            preinstall_given: file.preinstall.is_some(),
            preinstall,
            egress_nat,
            vagrant: None,
            state: None,
            jump: None,
        })
    }
}

fn check_lab_name(file: &InventoryFile, text_path: &Path) -> anyhow::Result<()> {
    if !valid_lab_name(&file.lab.value) {
        user_bail!(
            "{}: lab name `{}` is not usable: it names the bridge and the nft table\n  fix: use 1 to 11 characters a-z, 0-9 and `-`, starting with a letter (e.g. `lab: ha`)",
            yaml::at(text_path, &file.lab.referenced),
            file.lab.value
        );
    }
    if RESERVED_LAB_NAMES.contains(&file.lab.value.as_str()) {
        user_bail!(
            "{}: lab name `{}` is reserved: labctl's shared image pool (`labctl-images`) has that name, and the lab's objects would be the pool's\n  fix: choose another lab name (e.g. `lab: {}1`)",
            yaml::at(text_path, &file.lab.referenced),
            file.lab.value,
            file.lab.value
        );
    }
    Ok(())
}

/// `network:`, checked.
fn network(file: &InventoryFile, text_path: &Path) -> anyhow::Result<Option<Network>> {
    let Some(n) = &file.network else {
        return Ok(None);
    };
    let at = yaml::at(text_path, &n.referenced);
    let subnet = Subnet::parse(&n.value.subnet).ok_or_else(|| {
        user(format!(
            "{at}: network.subnet `{}` is not an IPv4 subnet\n  fix: write it as address/prefix, e.g. 10.1.1.0/24",
            n.value.subnet
        ))
    })?;
    let gateway: Ipv4Addr = n.value.gateway.parse().map_err(|_| {
        user(format!(
            "{at}: network.gateway `{}` is not an IPv4 address\n  fix: e.g. gateway: 10.1.1.1",
            n.value.gateway
        ))
    })?;
    if let Some(why) = subnet_problem(&subnet, file.nodes.len()) {
        user_bail!("{at}: network.subnet: {why}\n  fix: use a private subnet with room for every node, e.g. 10.1.1.0/24");
    }
    if !subnet.is_host(gateway) {
        user_bail!("{at}: network.gateway {gateway} is not a usable host address of network.subnet {subnet} (outside it, or its network or broadcast address)\n  fix: pick a gateway inside the subnet, e.g. {}", Ipv4Addr::from(u32::from(subnet.network) + 1));
    }
    Ok(Some(Network { subnet, gateway }))
}

/// The provider's own section (`libvirt:`), refused when it is another provider's.
fn provider_section<'a>(
    file: &'a InventoryFile,
    provider: &ProviderSpec,
    text_path: &Path,
) -> anyhow::Result<Option<&'a LibvirtFile>> {
    match &file.libvirt {
        Some(l) if provider.owns_section("libvirt") => Ok(Some(&l.value)),
        Some(l) => user_bail!(
            "{}: `libvirt:` is for provider libvirt, but this inventory's provider is {}\n  fix: add `provider: libvirt`, or remove the `libvirt:` section",
            yaml::at(text_path, &l.referenced),
            provider.as_str()
        ),
        None => Ok(None),
    }
}

/// Provider incus's `incus:` section (its settings, defaults when not
/// written), refused for another provider.
// TODO(house): one generic provider Section would take this too
fn incus_section(
    file: &InventoryFile,
    provider: &ProviderSpec,
    text_path: &Path,
    dir: &Path,
) -> anyhow::Result<Option<super::IncusSettings>> {
    let own = provider.name == "incus";
    match &file.incus {
        Some(i) if own => {
            let mut v = i.value.clone();
            check_incus_words(&v, &yaml::at(text_path, &i.referenced))?;
            if let Some(k) = &v.hop_key {
                v.hop_key = Some(crate::project::normalize(&dir.join(k)));
            }
            Ok(Some(v))
        }
        Some(i) => user_bail!(
            "{}: `incus:` is for provider incus, but this inventory's provider is {}\n  fix: add `provider: incus`, or remove the `incus:` section",
            yaml::at(text_path, &i.referenced),
            provider.as_str()
        ),
        None => Ok(own.then(super::IncusSettings::default)),
    }
}

/// The words of `incus:` reach Incus's and ssh's command lines: plain ones only.
fn check_incus_words(s: &super::IncusSettings, at: &str) -> anyhow::Result<()> {
    let words = [
        ("remote", s.remote.as_deref()),
        ("project", s.project.as_deref()),
        ("target", s.target.as_deref()),
        ("hop_user", s.hop_user.as_deref()),
    ];
    for (key, v) in words {
        let Some(v) = v else { continue };
        let plain = !v.is_empty()
            && !v.starts_with('-')
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !plain {
            user_bail!(
                "{at}: incus.{key} {v:?} is not a plain name (it reaches Incus's and ssh's command lines)\n  fix: use letters, digits, `.`, `_` and `-` (not first)"
            );
        }
    }
    if let Some(k) = &s.hop_key {
        let k = k.to_string_lossy();
        if crate::project::has_control(&k) || k.contains('"') {
            user_bail!(
                "{at}: incus.hop_key {k:?} holds a control character or a quote\n  fix: use a plain path"
            );
        }
    }
    Ok(())
}

/// `ssh:`, checked: the user, the key and known-hosts paths, the timeouts.
fn ssh_settings(
    file: &InventoryFile,
    provider: &ProviderSpec,
    text_path: &Path,
    dir: &Path,
) -> anyhow::Result<SshSettings> {
    let state_dir = dir.join(".labctl");
    crate::project::check_state_dir(&state_dir)?;
    let user_name = file.ssh.user.clone().unwrap_or_else(|| "vagrant".into());
    if !valid_user(&user_name) {
        user_bail!(
            "{}: ssh.user {user_name:?} is not a usable Linux user name (it reaches SSH configs, sudoers and command lines)\n  fix: use 1 to 32 lower-case letters, digits, `_` and `-`, starting with a letter or `_` (e.g. vagrant)",
            text_path.display()
        );
    }
    let ssh_path = |key: &str, given: Option<&str>, default: &str| -> anyhow::Result<PathBuf> {
        let v = given.unwrap_or(default);
        if crate::project::has_control(v) || v.contains('"') {
            user_bail!(
                "{}: ssh.{key} {v:?} holds a control character or a quote (it reaches SSH configs and command lines)\n  fix: use a plain path",
                text_path.display()
            );
        }
        Ok(crate::project::normalize(&dir.join(v)))
    };
    let key = ssh_path("key", file.ssh.key.as_deref(), ".labctl/id_ed25519")?;
    let known_hosts = ssh_path(
        "known_hosts",
        file.ssh.known_hosts.as_deref(),
        ".labctl/known_hosts",
    )?;
    // labctl writes (and destroy removes) the known-hosts file of the labs it
    // creates: it must be labctl's own, inside .labctl/
    if provider.creates_nodes && !known_hosts.starts_with(crate::project::normalize(&state_dir)) {
        user_bail!(
            "{}: ssh.known_hosts {} is outside the lab state folder {}; labctl rewrites and deletes that file, so it must be its own\n  fix: remove `known_hosts:` (labctl keeps it in .labctl/known_hosts) or name a file inside .labctl/",
            text_path.display(),
            known_hosts.display(),
            state_dir.display()
        );
    }
    Ok(SshSettings {
        user: user_name,
        key,
        key_given: file.ssh.key.is_some(),
        known_hosts,
        port: file.ssh.port.unwrap_or(22),
        connect_timeout_secs: match file.ssh.connect_timeout.unwrap_or(5) {
            t @ 1..=600 => t,
            t => user_bail!(
                "{}: ssh.connect_timeout {t} is out of range\n  fix: give 1 to 600 seconds (default 5)",
                text_path.display()
            ),
        },
        lan: file.ssh.lan.unwrap_or(false),
    })
}

/// `nodes:` (and the groups `group_vars:` names), checked.
fn nodes(
    file: &InventoryFile,
    provider: &ProviderSpec,
    text_path: &Path,
    ssh: &SshSettings,
    network: Option<&Network>,
    section: Option<&LibvirtFile>,
) -> anyhow::Result<Vec<Node>> {
    let lab_vm = VmSpec {
        memory: section.and_then(|l| l.memory).unwrap_or(DEFAULT_VM_MEMORY),
        cpus: section.and_then(|l| l.cpus).unwrap_or(1),
        disks: section
            .map(|l| l.disks.iter().map(|d| d.size).collect())
            .unwrap_or_default(),
    };
    if file.nodes.is_empty() {
        user_bail!(
            "{}: `nodes:` is empty\n  fix: declare at least one node, e.g. `nodo1: {{address: 10.1.1.101}}`",
            text_path.display()
        );
    }
    let mut nodes = Vec::new();
    let mut seen: BTreeMap<(Ipv4Addr, u16), String> = BTreeMap::new();
    let groups_known: Vec<&String> = file.nodes.values().flat_map(|n| &n.value.groups).collect();
    for (name, spanned) in &file.nodes {
        let at = yaml::at(text_path, &spanned.referenced);
        let nf = &spanned.value;
        check_node_name(file, provider, &at, name)?;
        let address = node_address(&at, name, nf, network)?;
        let port = nf.port.unwrap_or(ssh.port);
        if let Some(other) = seen.insert((address, port), name.clone()) {
            user_bail!("{at}: node {name}: address {address} is already used by node {other}\n  fix: give every node its own address");
        }
        for g in &nf.groups {
            if g == "all" || file.nodes.contains_key(g) {
                user_bail!("{at}: node {name}: group `{g}` has the name of a node or of `all`\n  fix: rename the group");
            }
        }
        let vm = node_hardware(provider, &at, name, nf, &lab_vm)?;
        nodes.push(Node {
            name: name.clone(),
            address,
            port,
            groups: nf.groups.clone(),
            vars: nf.vars.clone(),
            vm,
        });
    }
    for g in file.group_vars.keys() {
        if !groups_known.contains(&g) && g != "all" {
            user_bail!(
                "{}: group_vars names group `{g}`, which no node belongs to\n  fix: add `groups: [{g}]` to a node or remove the entry",
                text_path.display()
            );
        }
    }
    Ok(nodes)
}

fn check_node_name(
    file: &InventoryFile,
    provider: &ProviderSpec,
    at: &str,
    name: &str,
) -> anyhow::Result<()> {
    if !valid_node_name(name) {
        user_bail!("{at}: node name {name:?} is not a valid host name\n  fix: use 1 to 63 letters, digits and `-`, not starting or ending with `-`");
    }
    let machine = file.lab.value.len() + 1 + name.len();
    if let Some(max) = provider.rules.machine_name_max.filter(|m| machine > *m) {
        user_bail!(
            "{at}: node name `{name}` is too long for lab `{}`: its container is named `{}.{name}` ({machine} characters; systemd accepts {max})\n  fix: use a node name of at most {} characters",
            file.lab.value,
            file.lab.value,
            max - 1 - file.lab.value.len()
        );
    }
    if name == "all" {
        user_bail!("{at}: `all` is reserved for every node\n  fix: rename the node");
    }
    Ok(())
}

fn node_address(
    at: &str,
    name: &str,
    nf: &NodeFile,
    network: Option<&Network>,
) -> anyhow::Result<Ipv4Addr> {
    let address: Ipv4Addr = nf.address.parse().map_err(|_| {
        user(format!(
            "{at}: node {name}: address `{}` is not an IPv4 address\n  fix: e.g. address: 10.1.1.101",
            nf.address
        ))
    })?;
    if let Some(net) = network {
        if !net.subnet.contains(address) {
            user_bail!(
                "{at}: node {name}: address {address} is outside the lab subnet {}\n  fix: use an address in {} or change network.subnet",
                net.subnet,
                net.subnet
            );
        }
        if address == net.gateway {
            user_bail!("{at}: node {name}: address {address} is the lab gateway\n  fix: give the node another address");
        }
        if !net.subnet.is_host(address) {
            user_bail!("{at}: node {name}: address {address} is the network or broadcast address of {}\n  fix: give the node a host address, e.g. {}", net.subnet, Ipv4Addr::from(u32::from(net.subnet.network) + 101));
        }
    } else if !address.is_loopback() {
        // a provider that makes no network, without a lab network: only
        // loopback nodes are provably local
        user_bail!(
            "{at}: node {name}: address {address} is not loopback and the inventory has no `network:`; labctl connects only to addresses of the lab's own network\n  fix: add `network: {{subnet: SUBNET, gateway: HOST_ADDRESS}}` naming the network that holds the nodes"
        );
    }
    Ok(address)
}

/// A node's hardware: its own `memory`/`cpus`/`disks` (VM providers only),
/// else the provider section's.
fn node_hardware(
    provider: &ProviderSpec,
    at: &str,
    name: &str,
    nf: &NodeFile,
    lab_vm: &VmSpec,
) -> anyhow::Result<VmSpec> {
    let has_vm = nf.memory.is_some() || nf.cpus.is_some() || nf.disks.is_some();
    if has_vm && !provider.vm_hardware {
        user_bail!(
            "{at}: node {name}: `memory`, `cpus` and `disks` are for VM nodes, but this inventory's provider is {}\n  fix: add `provider: libvirt`, or remove them",
            provider.as_str()
        );
    }
    let vm = VmSpec {
        memory: nf.memory.unwrap_or(lab_vm.memory),
        cpus: nf.cpus.unwrap_or(lab_vm.cpus),
        disks: nf
            .disks
            .as_ref()
            .map(|d| d.iter().map(|d| d.size).collect())
            .unwrap_or_else(|| lab_vm.disks.clone()),
    };
    if vm.memory.mib() < 256 || vm.cpus == 0 || vm.cpus > 64 || vm.disks.len() > 20 {
        user_bail!(
            "{at}: node {name}: memory {} / cpus {} / {} disks is not a machine labctl can make\n  fix: give at least 256M of memory, 1 to 64 cpus and at most 20 disks",
            vm.memory,
            vm.cpus,
            vm.disks.len()
        );
    }
    if let Some(d) = vm.disks.iter().find(|d| d.0 < 1 << 20) {
        user_bail!("{at}: node {name}: a disk of {d} is too small\n  fix: give disks at least 1M, e.g. {{size: 512M}}");
    }
    Ok(vm)
}

/// `preinstall:`, checked: package names, for a provider that installs them.
fn preinstall(
    file: &InventoryFile,
    provider: &ProviderSpec,
    providers: &[ProviderSpec],
    text_path: &Path,
) -> anyhow::Result<Vec<String>> {
    let mut preinstall: Vec<String> = Vec::new();
    let Some(pre) = &file.preinstall else {
        return Ok(preinstall);
    };
    for name in &pre.value {
        if !valid_package_name(name) {
            user_bail!(
                "{}: preinstall: `{name}` is not a Debian package name\n  fix: list package names, e.g. `preinstall: [bind9, apache2]`",
                yaml::at(text_path, &pre.referenced)
            );
        }
        if !preinstall.contains(name) {
            preinstall.push(name.clone());
        }
    }
    if provider.rules.preinstall.is_none() {
        let able: Vec<String> = providers
            .iter()
            .filter_map(|p| p.rules.preinstall.map(|how| format!("{} ({how})", p.name)))
            .collect();
        let able = match able.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => able.join(""),
        };
        user_bail!(
            "{}: preinstall: only providers {able} install packages before the nodes boot (provider {} does not)\n  fix: remove `preinstall:`",
            yaml::at(text_path, &pre.referenced),
            provider.as_str()
        );
    }
    Ok(preinstall)
}

/// `egress:`: whether the nodes reach beyond the host.
fn egress(file: &InventoryFile, provider: &ProviderSpec, text_path: &Path) -> anyhow::Result<bool> {
    Ok(match &file.egress {
        None => false,
        Some(e) if e.value == "nat" => {
            if !provider.creates_nodes {
                user_bail!(
                    "{}: egress: provider {} has no lab network of labctl's to open\n  fix: remove `egress:`",
                    yaml::at(text_path, &e.referenced),
                    provider.as_str()
                );
            }
            true
        }
        Some(e) if e.value == "none" => false,
        Some(e) => user_bail!(
            "{}: egress: `{}` is not a choice\n  fix: write `egress: nat` (the nodes reach the Internet through this machine) or `egress: none` (the default: nothing leaves the lab but package downloads through the host's cache)",
            yaml::at(text_path, &e.referenced),
            e.value.escape_debug()
        ),
    })
}
