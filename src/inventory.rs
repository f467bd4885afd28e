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
    /// Virtual machines (QEMU, with KVM or TCG) through libvirt.
    Libvirt,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Nspawn => "nspawn",
            ProviderKind::Ssh => "ssh",
            ProviderKind::Libvirt => "libvirt",
        }
    }

    /// Whether labctl creates this provider's nodes (and their network) itself.
    pub fn creates_nodes(self) -> bool {
        matches!(self, ProviderKind::Nspawn | ProviderKind::Libvirt)
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
    libvirt: Option<Spanned<LibvirtFile>>,
    nodes: IndexMap<String, Spanned<NodeFile>>,
    #[serde(default)]
    group_vars: BTreeMap<String, BTreeMap<String, Value>>,
    #[serde(default)]
    vars: BTreeMap<String, Value>,
    #[serde(default)]
    secrets: Vec<String>,
    preinstall: Option<Spanned<Vec<String>>>,
    egress: Option<Spanned<String>>,
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
    /// Provider ssh: nodes may be on a network of this machine that is not
    /// a labctl bridge (the LAN): an explicit opt-in.
    lan: Option<bool>,
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
    #[serde(default)]
    memory: Option<Size>,
    #[serde(default)]
    cpus: Option<u32>,
    #[serde(default)]
    disks: Option<Vec<DiskFile>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LibvirtFile {
    uri: Option<String>,
    accel: Option<Accel>,
    /// A fence daemon on the host for this lab's nodes (scenario 08).
    #[serde(default)]
    fence: bool,
    memory: Option<Size>,
    cpus: Option<u32>,
    #[serde(default)]
    disks: Vec<DiskFile>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct DiskFile {
    size: Size,
}

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
    /// The broadcast address (all host bits set).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !Self::mask_of(self.prefix))
    }
    /// Whether `a` is a usable host address of the subnet: inside it, and
    /// neither its network nor its broadcast address.
    pub fn is_host(&self, a: Ipv4Addr) -> bool {
        self.contains(a) && a != self.network && a != self.broadcast()
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
    /// Provider libvirt's settings (`None` for the other providers).
    pub libvirt: Option<LibvirtSettings>,
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
}

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

/// A Debian package name (`bind9`, `libc6`, `g++`).
pub fn valid_package_name(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(c))
}

/// A libvirt URI's hop (`None`: this machine), or what is wrong with it
/// (labctl passes it to `virsh -c`, so it must be one word of the kinds
/// labctl knows).
pub fn parse_uri(uri: &str) -> Result<Option<crate::jump::Jump>, String> {
    if uri.is_empty()
        || uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "'\"`$\\;|<>".contains(c))
    {
        return Err("it is empty or holds spaces, quotes or shell characters".into());
    }
    crate::jump::Jump::from_uri(uri)
}

/// A lab name: it names the bridge (`lab-NAME`, at most 15 characters), the
/// nft table and, with `.` and the node's name, each container (a host name:
/// no `-` at the end of a label).
pub fn valid_lab_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 11
        && b[0].is_ascii_lowercase()
        && !s.ends_with('-')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Names no lab may have: they are labctl's own objects (`images`: the
/// libvirt pool `labctl-images` and its folder, shared by every lab).
pub const RESERVED_LAB_NAMES: &[&str] = &["images"];

/// The lab name of a Vagrant project in `folder`: the folder's name when it
/// is a usable lab name; else its letters and digits (lower case, `-` between
/// words, a `v` first when it starts with a digit), shortened with four hex
/// digits of the folder name's hash when too long, so two course folders
/// (`03-HA-IPFailover`, `04-HA-IPFailover-Apache2`) get different names.
pub fn lab_name_of_folder(folder: &str) -> String {
    if valid_lab_name(folder) && !RESERVED_LAB_NAMES.contains(&folder) {
        return folder.to_string();
    }
    let mut s = String::new();
    for c in folder.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-').to_string();
    let s = if s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s
    } else {
        format!("v{s}")
    };
    if valid_lab_name(&s) && !RESERVED_LAB_NAMES.contains(&s.as_str()) {
        return s;
    }
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(folder.as_bytes()));
    let head: String = s.chars().take(6).collect();
    format!("{}-{}", head.trim_end_matches('-'), &h[..4])
}

/// A node name: a host name label (letters, digits, `-`; no `-` at either end).
pub fn valid_node_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && !s.ends_with('-')
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

/// The longest machine name systemd accepts (a host name: 64 characters).
pub const MAX_MACHINE_NAME: usize = 64;

/// A Linux user name safe in a shell line, a sudoers file and an SSH config:
/// lower-case letters, digits, `_` and `-`, not starting with `-`.
pub fn valid_user(u: &str) -> bool {
    let b = u.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// The private IPv4 ranges a lab may use (RFC 1918): a lab subnet lies inside
/// one of them, so no route labctl adds can capture public, link-local
/// (cloud metadata) or loopback traffic.
pub const PRIVATE_RANGES: [(Ipv4Addr, u8); 3] = [
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
];

/// Why `subnet` cannot be a lab network for `nodes` nodes, if it cannot.
pub fn subnet_problem(subnet: &Subnet, nodes: usize) -> Option<String> {
    let private = PRIVATE_RANGES.iter().any(|(net, p)| {
        subnet.prefix >= *p
            && Subnet {
                network: *net,
                prefix: *p,
            }
            .contains(subnet.network)
    });
    if !private {
        return Some(format!(
            "{subnet} is not a private range: a lab subnet lies inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 (labctl routes it to the lab bridge for the whole machine)"
        ));
    }
    if subnet.prefix < 16 {
        return Some(format!(
            "{subnet} is wider than /16: labctl routes the whole subnet to the lab bridge, and one that wide would cover networks this machine reaches elsewhere (a VPN, a LAN); a lab needs no more than a /16"
        ));
    }
    if subnet.prefix > 30 {
        return Some(format!(
            "{subnet} has no room for a gateway and nodes (prefix /{} leaves no usable host addresses)",
            subnet.prefix
        ));
    }
    let usable = (1u64 << (32 - subnet.prefix)) - 2;
    if usable < nodes as u64 + 1 {
        return Some(format!(
            "{subnet} has {usable} usable addresses, too few for the gateway and {nodes} node(s)"
        ));
    }
    None
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

    /// Load and validate `path` (an `inventory.yaml`, or a `Vagrantfile`; see
    /// [`Inventory::locate`]). Every problem is a user error naming file, line and fix.
    pub fn load(path: &Path) -> anyhow::Result<Inventory> {
        let path = &Self::locate(path);
        if path.file_name().is_some_and(|n| n == "Vagrantfile") {
            return Self::load_vagrantfile(path);
        }
        let file: InventoryFile = yaml::load(path, "inventory")?;
        Self::from_file(file, path)
    }

    /// The inventory of a `Vagrantfile`'s machines: the lab is named after the
    /// folder, its subnet is the machines' private network, each machine a node
    /// at its first private address; nodes shaped like Vagrant's
    /// ([`VagrantShape`]); the variables the shipped scenarios' checks use
    /// (`domain: example.com`, `vip`: the subnet's `.100`).
    pub fn load_vagrantfile(path: &Path) -> anyhow::Result<Inventory> {
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
            "lab: {lab}\nprovider: nspawn\nnetwork: {{subnet: {subnet}, gateway: {gateway}}}\nssh: {{user: vagrant}}\nnodes:\n{yaml_nodes}vars:\n  domain: example.com\n"
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
        let mut inv = Self::from_file(file, path)?;
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
    /// resources name it: `eth1` on Vagrant-shaped nodes, `host0` for nspawn,
    /// `eth0` for libvirt, the inventory's `vars: {nic: …}` (default `eth0`) for ssh.
    pub fn nic(&self) -> String {
        if self.vagrant.is_some() {
            return VAGRANT_NIC.to_string();
        }
        match self.provider {
            ProviderKind::Nspawn => "host0".to_string(),
            ProviderKind::Libvirt => "eth0".to_string(),
            ProviderKind::Ssh => self
                .vars
                .get("nic")
                .map(|v| v.to_string())
                .unwrap_or_else(|| "eth0".to_string()),
        }
    }

    fn from_file(file: InventoryFile, path: &Path) -> anyhow::Result<Inventory> {
        let text_path = path.to_path_buf();
        let abs = crate::project::normalize(path);
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
        if RESERVED_LAB_NAMES.contains(&file.lab.value.as_str()) {
            user_bail!(
                "{}: lab name `{}` is reserved: labctl's shared image pool (`labctl-images`) has that name, and the lab's objects would be the pool's\n  fix: choose another lab name (e.g. `lab: {}1`)",
                yaml::at(&text_path, &file.lab.referenced),
                file.lab.value,
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
                if let Some(why) = subnet_problem(&subnet, file.nodes.len()) {
                    user_bail!("{at}: network.subnet: {why}\n  fix: use a private subnet with room for every node, e.g. 10.1.1.0/24");
                }
                if !subnet.is_host(gateway) {
                    user_bail!("{at}: network.gateway {gateway} is not a usable host address of network.subnet {subnet} (outside it, or its network or broadcast address)\n  fix: pick a gateway inside the subnet, e.g. {}", Ipv4Addr::from(u32::from(subnet.network) + 1));
                }
                Some(Network { subnet, gateway })
            }
        };
        if file.provider.creates_nodes() && network.is_none() {
            user_bail!(
                "{}: provider {} needs a `network:` section\n  fix: add `network: {{subnet: 10.1.1.0/24, gateway: 10.1.1.1}}`",
                text_path.display(),
                file.provider.as_str()
            );
        }
        let libvirt_file = match (&file.libvirt, file.provider) {
            (Some(l), ProviderKind::Libvirt) => Some(&l.value),
            (None, ProviderKind::Libvirt) => None,
            (Some(l), other) => user_bail!(
                "{}: `libvirt:` is for provider libvirt, but this inventory's provider is {}\n  fix: add `provider: libvirt`, or remove the `libvirt:` section",
                yaml::at(&text_path, &l.referenced),
                other.as_str()
            ),
            (None, _) => None,
        };
        let libvirt = if file.provider == ProviderKind::Libvirt {
            let uri = libvirt_file
                .and_then(|l| l.uri.clone())
                .unwrap_or_else(|| "qemu:///system".to_string());
            let jump = match parse_uri(&uri) {
                Ok(j) => j,
                Err(why) => user_bail!(
                    "{}: libvirt.uri `{uri}`: {why}\n  fix: use qemu:///system (this machine) or qemu+ssh://USER@HOST[:PORT]/system[?keyfile=/PATH/TO/KEY]",
                    file.libvirt.as_ref().map(|l| yaml::at(&text_path, &l.referenced)).unwrap_or_else(|| text_path.display().to_string())
                ),
            };
            let fence = libvirt_file.is_some_and(|l| l.fence);
            if fence && jump.is_some() {
                user_bail!(
                    "{}: libvirt.fence: the fence daemon runs on this machine, but the hypervisor is {uri}\n  fix: use `uri: qemu:///system`, or remove `fence: true`",
                    file.libvirt.as_ref().map(|l| yaml::at(&text_path, &l.referenced)).unwrap_or_else(|| text_path.display().to_string())
                );
            }
            Some(LibvirtSettings {
                uri,
                jump,
                accel: libvirt_file.and_then(|l| l.accel).unwrap_or_default(),
                fence,
            })
        } else {
            None
        };
        let lab_vm = VmSpec {
            memory: libvirt_file
                .and_then(|l| l.memory)
                .unwrap_or(DEFAULT_VM_MEMORY),
            cpus: libvirt_file.and_then(|l| l.cpus).unwrap_or(1),
            disks: libvirt_file
                .map(|l| l.disks.iter().map(|d| d.size).collect())
                .unwrap_or_default(),
        };

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
        if file.provider.creates_nodes()
            && !known_hosts.starts_with(crate::project::normalize(&state_dir))
        {
            user_bail!(
                "{}: ssh.known_hosts {} is outside the lab state folder {}; labctl rewrites and deletes that file, so it must be its own\n  fix: remove `known_hosts:` (labctl keeps it in .labctl/known_hosts) or name a file inside .labctl/",
                text_path.display(),
                known_hosts.display(),
                state_dir.display()
            );
        }
        let ssh = SshSettings {
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
                user_bail!("{at}: node name {name:?} is not a valid host name\n  fix: use 1 to 63 letters, digits and `-`, not starting or ending with `-`");
            }
            let machine = file.lab.value.len() + 1 + name.len();
            if file.provider == ProviderKind::Nspawn && machine > MAX_MACHINE_NAME {
                user_bail!(
                    "{at}: node name `{name}` is too long for lab `{}`: its container is named `{}.{name}` ({machine} characters; systemd accepts {MAX_MACHINE_NAME})\n  fix: use a node name of at most {} characters",
                    file.lab.value,
                    file.lab.value,
                    MAX_MACHINE_NAME - 1 - file.lab.value.len()
                );
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
                if !net.subnet.is_host(address) {
                    user_bail!("{at}: node {name}: address {address} is the network or broadcast address of {}\n  fix: give the node a host address, e.g. {}", net.subnet, Ipv4Addr::from(u32::from(net.subnet.network) + 101));
                }
            } else if !address.is_loopback() {
                // provider ssh without a lab network: only loopback nodes are
                // provably local
                user_bail!(
                    "{at}: node {name}: address {address} is not loopback and the inventory has no `network:`; labctl connects only to addresses of the lab's own network\n  fix: add `network: {{subnet: SUBNET, gateway: HOST_ADDRESS}}` naming the network that holds the nodes"
                );
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
            let has_vm = nf.memory.is_some() || nf.cpus.is_some() || nf.disks.is_some();
            if has_vm && file.provider != ProviderKind::Libvirt {
                user_bail!(
                    "{at}: node {name}: `memory`, `cpus` and `disks` are for VM nodes, but this inventory's provider is {}\n  fix: add `provider: libvirt`, or remove them",
                    file.provider.as_str()
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

        let mut preinstall: Vec<String> = Vec::new();
        if let Some(pre) = &file.preinstall {
            for name in &pre.value {
                if !valid_package_name(name) {
                    user_bail!(
                        "{}: preinstall: `{name}` is not a Debian package name\n  fix: list package names, e.g. `preinstall: [bind9, apache2]`",
                        yaml::at(&text_path, &pre.referenced)
                    );
                }
                if !preinstall.contains(name) {
                    preinstall.push(name.clone());
                }
            }
            if file.provider == ProviderKind::Ssh {
                user_bail!(
                    "{}: preinstall: only providers nspawn (a package layer) and libvirt (the VM image) install packages before the nodes boot (provider {} does not)\n  fix: remove `preinstall:`",
                    yaml::at(&text_path, &pre.referenced),
                    file.provider.as_str()
                );
            }
        }

        let egress_nat = match &file.egress {
            None => false,
            Some(e) if e.value == "nat" => {
                if file.provider == ProviderKind::Ssh {
                    user_bail!(
                        "{}: egress: provider ssh has no lab network of labctl's to open\n  fix: remove `egress:`",
                        yaml::at(&text_path, &e.referenced)
                    );
                }
                true
            }
            Some(e) if e.value == "none" => false,
            Some(e) => user_bail!(
                "{}: egress: `{}` is not a choice\n  fix: write `egress: nat` (the nodes reach the Internet through this machine) or `egress: none` (the default: nothing leaves the lab but package downloads through the host's cache)",
                yaml::at(&text_path, &e.referenced),
                e.value.escape_debug()
            ),
        };
        Ok(Inventory {
            path: text_path,
            dir,
            lab: file.lab.value,
            provider: file.provider,
            network,
            ssh,
            libvirt,
            nodes,
            group_vars: file.group_vars,
            vars: file.vars,
            secrets: file.secrets,
            preinstall_given: file.preinstall.is_some(),
            preinstall,
            egress_nat,
            vagrant: None,
            state: None,
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
    /// this machine (a libvirt lab on a `qemu+ssh://` hypervisor).
    pub fn jump(&self) -> Option<&crate::jump::Jump> {
        self.libvirt.as_ref().and_then(|l| l.jump.as_ref())
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

    fn load_vagrantfile(text: &str) -> anyhow::Result<Inventory> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("06-DRBD").join("Vagrantfile");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        Inventory::load(&p)
    }

    fn machines(nets: &[&[&str]]) -> String {
        let mut s = String::from("Vagrant.configure(\"2\") do |config|\n");
        for (i, ips) in nets.iter().enumerate() {
            let n = format!("n{}", i + 1);
            s.push_str(&format!("  config.vm.define :{n} do |{n}|\n"));
            for ip in *ips {
                s.push_str(&format!(
                    "    {n}.vm.network :private_network, ip: \"{ip}\"\n"
                ));
            }
            s.push_str("  end\n");
        }
        s.push_str("end\n");
        s
    }

    #[test]
    fn further_private_networks_are_eth2_on_bridges_of_their_own() {
        let inv = load_vagrantfile(&machines(&[
            &["10.1.1.101", "10.1.2.101", "10.1.3.101"],
            &["10.1.1.102", "10.1.2.102"],
            &["10.1.1.103"],
        ]))
        .unwrap();
        let nets = inv.extra_networks();
        assert_eq!(nets.len(), 2);
        assert_eq!(nets[0].bridge, format!("lb2-{}", inv.lab));
        assert_eq!(nets[0].gateway, Ipv4Addr::new(10, 1, 2, 1));
        assert_eq!(
            nets[0].members,
            vec![
                (
                    "n1".to_string(),
                    "eth2".to_string(),
                    Ipv4Addr::new(10, 1, 2, 101)
                ),
                (
                    "n2".to_string(),
                    "eth2".to_string(),
                    Ipv4Addr::new(10, 1, 2, 102)
                ),
            ]
        );
        assert_eq!(nets[1].bridge, format!("lb3-{}", inv.lab));
        assert_eq!(nets[1].members[0].1, "eth3");
        assert!(inv.bridge_name().len() <= 15 && nets[1].bridge.len() <= 15);

        for (bad, says) in [
            (&["10.1.1.101", "10.1.1.111"][..], "subnet of its own"),
            (&["10.1.1.101", "10.1.2.1"][..], "gateway"),
            (&["10.1.1.101", "8.8.8.8"][..], "not a private range"),
            (
                &["10.1.1.101", "10.1.2.5", "10.1.2.6"][..],
                "a second address",
            ),
        ] {
            let e = load_vagrantfile(&machines(&[bad, &["10.1.1.102"]])).unwrap_err();
            let m = format!("{e:#}");
            assert!(
                m.contains(says) && m.contains("Vagrantfile:"),
                "{bad:?}: {m}"
            );
        }
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
