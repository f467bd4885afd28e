//! `inventory.yaml`: the machines of a lab (what a Vagrantfile and Ansible's
//! hosts file said together).
//!
//! ```yaml
//! lab: ha
//! provider: nspawn            # or: ssh (nodes that already exist)
//! network: {subnet: 10.1.1.0/24, gateway: 10.1.1.1}
//! ssh: {user: vagrant, key: .labctl/id_ed25519}
//! nodes:
//!   nodo1: {address: 10.1.1.101, groups: [nodos]}
//! group_vars: {nodos: {http_port: 80}}
//! vars: {domain: example.com}
//! secrets: [hacluster_password]
//! ```

use crate::error::user;
use crate::user_bail;
use crate::yaml;
use indexmap::IndexMap;
use minijinja::Value;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// How the nodes come to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// systemd-nspawn containers on a bridge of the lab's own (default).
    #[default]
    Nspawn,
    /// Nodes that already exist and are only reached over SSH.
    Ssh,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Nspawn => "nspawn",
            ProviderKind::Ssh => "ssh",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    lab: Spanned<String>,
    #[serde(default)]
    provider: ProviderKind,
    network: Option<Spanned<NetworkFile>>,
    #[serde(default)]
    ssh: SshFile,
    nodes: IndexMap<String, Spanned<NodeFile>>,
    #[serde(default)]
    group_vars: BTreeMap<String, BTreeMap<String, Value>>,
    #[serde(default)]
    vars: BTreeMap<String, Value>,
    #[serde(default)]
    secrets: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkFile {
    subnet: String,
    gateway: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SshFile {
    user: Option<String>,
    key: Option<String>,
    known_hosts: Option<String>,
    port: Option<u16>,
    connect_timeout: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    address: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    vars: BTreeMap<String, Value>,
}

/// An IPv4 subnet such as `10.1.1.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Option<Subnet> {
        let (a, p) = s.split_once('/')?;
        let addr: Ipv4Addr = a.trim().parse().ok()?;
        let prefix: u8 = p.trim().parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let mask = Self::mask_of(prefix);
        Some(Subnet {
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }
    fn mask_of(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & Self::mask_of(self.prefix) == u32::from(self.network)
    }
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(Self::mask_of(self.prefix))
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The lab network: nodes live in `subnet`; the host holds `gateway` on the lab bridge.
#[derive(Debug, Clone)]
pub struct Network {
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
}

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
}

/// One machine of the lab.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub address: Ipv4Addr,
    pub port: u16,
    pub groups: Vec<String>,
    pub vars: BTreeMap<String, Value>,
}

/// A loaded and validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    /// The project directory (the inventory's folder): `templates/`, `files/`, `.labctl/`.
    pub dir: PathBuf,
    pub lab: String,
    pub provider: ProviderKind,
    pub network: Option<Network>,
    pub ssh: SshSettings,
    pub nodes: Vec<Node>,
    pub group_vars: BTreeMap<String, BTreeMap<String, Value>>,
    pub vars: BTreeMap<String, Value>,
    /// Names of variables whose values are never shown.
    pub secrets: Vec<String>,
}

fn valid_lab_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 11
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn valid_node_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

impl Inventory {
    /// Load and validate `path`. Every problem is a user error naming file, line and fix.
    pub fn load(path: &Path) -> anyhow::Result<Inventory> {
        let file: InventoryFile = yaml::load(path, "inventory")?;
        let text_path = path.to_path_buf();
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = abs
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));

        if !valid_lab_name(&file.lab.value) {
            user_bail!(
                "{}: lab name `{}` is not usable: it names the bridge and the nft table\n  fix: use 1 to 11 characters a-z, 0-9 and `-`, starting with a letter (e.g. `lab: ha`)",
                yaml::at(&text_path, &file.lab.referenced),
                file.lab.value
            );
        }

        let network = match &file.network {
            None => None,
            Some(n) => {
                let at = yaml::at(&text_path, &n.referenced);
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
                if !subnet.contains(gateway) {
                    user_bail!("{at}: network.gateway {gateway} is outside network.subnet {subnet}\n  fix: pick a gateway inside the subnet");
                }
                Some(Network { subnet, gateway })
            }
        };
        if file.provider == ProviderKind::Nspawn && network.is_none() {
            user_bail!(
                "{}: provider nspawn needs a `network:` section\n  fix: add `network: {{subnet: 10.1.1.0/24, gateway: 10.1.1.1}}`",
                text_path.display()
            );
        }

        let ssh = SshSettings {
            user: file.ssh.user.clone().unwrap_or_else(|| "vagrant".into()),
            key: dir.join(file.ssh.key.as_deref().unwrap_or(".labctl/id_ed25519")),
            key_given: file.ssh.key.is_some(),
            known_hosts: dir.join(
                file.ssh
                    .known_hosts
                    .as_deref()
                    .unwrap_or(".labctl/known_hosts"),
            ),
            port: file.ssh.port.unwrap_or(22),
            connect_timeout_secs: file.ssh.connect_timeout.unwrap_or(5).max(1),
        };

        if file.nodes.is_empty() {
            user_bail!(
                "{}: `nodes:` is empty\n  fix: declare at least one node, e.g. `nodo1: {{address: 10.1.1.101}}`",
                text_path.display()
            );
        }
        let mut nodes = Vec::new();
        let mut seen: BTreeMap<(Ipv4Addr, u16), String> = BTreeMap::new();
        let groups_known: Vec<&String> =
            file.nodes.values().flat_map(|n| &n.value.groups).collect();
        for (name, spanned) in &file.nodes {
            let at = yaml::at(&text_path, &spanned.referenced);
            let nf = &spanned.value;
            if !valid_node_name(name) {
                user_bail!("{at}: node name `{name}` is not a valid host name\n  fix: use letters, digits and `-` only");
            }
            if name == "all" {
                user_bail!("{at}: `all` is reserved for every node\n  fix: rename the node");
            }
            let address: Ipv4Addr = nf.address.parse().map_err(|_| {
                user(format!(
                    "{at}: node {name}: address `{}` is not an IPv4 address\n  fix: e.g. address: 10.1.1.101",
                    nf.address
                ))
            })?;
            if let Some(net) = &network {
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
            }
            let port = nf.port.unwrap_or(ssh.port);
            if let Some(other) = seen.insert((address, port), name.clone()) {
                user_bail!("{at}: node {name}: address {address} is already used by node {other}\n  fix: give every node its own address");
            }
            for g in &nf.groups {
                if g == "all" || file.nodes.contains_key(g) {
                    user_bail!("{at}: node {name}: group `{g}` has the name of a node or of `all`\n  fix: rename the group");
                }
            }
            nodes.push(Node {
                name: name.clone(),
                address,
                port,
                groups: nf.groups.clone(),
                vars: nf.vars.clone(),
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

        Ok(Inventory {
            path: text_path,
            dir,
            lab: file.lab.value,
            provider: file.provider,
            network,
            ssh,
            nodes,
            group_vars: file.group_vars,
            vars: file.vars,
            secrets: file.secrets,
        })
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
        let mut out: Vec<&Node> = Vec::new();
        for word in pattern
            .split([',', ':'])
            .map(str::trim)
            .filter(|w| !w.is_empty())
        {
            let names: Vec<String> = if let Some(members) = groups.get(word) {
                members.clone()
            } else if self.node(word).is_some() {
                vec![word.to_string()]
            } else {
                return Err(word.to_string());
            };
            for n in self.nodes.iter().filter(|n| names.contains(&n.name)) {
                if !out.iter().any(|o| o.name == n.name) {
                    out.push(n);
                }
            }
        }
        // keep inventory order
        out.sort_by_key(|n| self.nodes.iter().position(|m| m.name == n.name));
        Ok(out)
    }

    /// Names of the nodes and groups, for "did you mean" messages.
    pub fn known_patterns(&self) -> String {
        self.groups().keys().cloned().collect::<Vec<_>>().join(", ")
            + ", "
            + &self
                .nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
    }

    /// The project's lab state folder (`.labctl/` beside the inventory): key pair,
    /// known hosts, last applied scenario.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join(".labctl")
    }

    /// The bridge of an nspawn lab: `lab-<name>` (at most 15 characters).
    pub fn bridge_name(&self) -> String {
        format!("lab-{}", self.lab)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(s: &str) -> anyhow::Result<Inventory> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("inventory.yaml");
        std::fs::write(&p, s).unwrap();
        Inventory::load(&p)
    }

    const GOOD: &str = "lab: ha\nnetwork: {subnet: 10.1.1.0/24, gateway: 10.1.1.1}\nnodes:\n  nodo1: {address: 10.1.1.101, groups: [nodos]}\n  nodo2: {address: 10.1.1.102, groups: [nodos]}\n  dns: {address: 10.1.1.103, groups: [servidor_dns]}\nvars: {domain: example.com}\n";

    #[test]
    fn loads_default_lab() {
        let inv = load_str(GOOD).unwrap();
        assert_eq!(inv.nodes.len(), 3);
        assert_eq!(inv.provider, ProviderKind::Nspawn);
        let sel: Vec<_> = inv
            .select("nodos")
            .unwrap()
            .iter()
            .map(|n| n.name.clone())
            .collect();
        assert_eq!(sel, ["nodo1", "nodo2"]);
        assert_eq!(inv.select("all").unwrap().len(), 3);
        assert_eq!(inv.select("nope").unwrap_err(), "nope");
        assert_eq!(inv.bridge_name(), "lab-ha");
    }

    #[test]
    fn rejects_address_outside_subnet() {
        let e = load_str(&GOOD.replace("10.1.1.103", "10.2.1.103")).unwrap_err();
        assert!(format!("{e}").contains("outside the lab subnet"), "{e}");
        assert_eq!(crate::error::exit_code(&e), 2);
    }

    #[test]
    fn rejects_duplicate_address() {
        let e = load_str(&GOOD.replace("10.1.1.103", "10.1.1.102")).unwrap_err();
        assert!(format!("{e}").contains("already used by node nodo2"), "{e}");
    }

    #[test]
    fn unknown_key_names_line() {
        let e = load_str(&GOOD.replace("groups: [servidor_dns]", "grups: [x]")).unwrap_err();
        let m = format!("{e}");
        assert!(
            m.contains("inventory.yaml:6:") && m.contains("grups") && m.contains("fix:"),
            "{m}"
        );
    }

    #[test]
    fn subnet_math() {
        let s = Subnet::parse("10.1.1.7/24").unwrap();
        assert_eq!(s.to_string(), "10.1.1.0/24");
        assert!(s.contains("10.1.1.200".parse().unwrap()));
        assert!(!s.contains("10.1.2.1".parse().unwrap()));
        assert_eq!(s.netmask().to_string(), "255.255.255.0");
    }
}
