//! Providers create, power and remove a lab's nodes; the rest of labctl only
//! reaches them over SSH.
//!
//! Like containerlab's node kinds, each provider sits behind one trait and is
//! chosen by name in `inventory.yaml` (`provider: nspawn | libvirt | incus | ssh`):
//!
//! - [`nspawn`] (default): each node is a systemd-nspawn container booting
//!   systemd from a cached Debian image, on a bridge of the lab's own.
//! - [`libvirt`]: each node is a QEMU virtual machine (own kernel, own
//!   disks) driven through libvirt, on this machine or a hypervisor by URI.
//! - [`incus`]: each node is a system container of an Incus server, in a
//!   project of the lab's own.
//! - [`ssh`]: the nodes already exist; labctl only checks that they answer
//!   with the lab key and the pinned host key, and never powers them off.
//!
//! The free functions ([`up`], [`status`], [`halt`], [`fail`], [`destroy`],
//! and [`snapshots`]' save, restore, list and delete) are what the CLI and
//! `verify` call: they pick the provider from the inventory.

pub mod host;
pub mod incus;
pub mod libvirt;
pub mod link;
pub mod nspawn;
pub mod power;
pub mod probe;
pub mod snapshots;
pub mod ssh;
pub mod sshcmd;
#[cfg(test)]
mod toy;

use crate::inventory::{Inventory, InventoryRules, Node, ProviderSpec};
use crate::progress::Progress;
use crate::user_bail;
use serde::Serialize;
use std::time::Duration;

/// What a node is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Booted (nspawn) or answering SSH (ssh provider).
    Running,
    /// Created but powered off (nspawn): its files are kept.
    Stopped,
    /// Never created, or destroyed (nspawn).
    Absent,
    /// Does not answer SSH (ssh provider).
    Unreachable,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Running => "running",
            NodeState::Stopped => "stopped",
            NodeState::Absent => "absent",
            NodeState::Unreachable => "unreachable",
        }
    }
}

/// One line of `labctl status`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub state: NodeState,
    pub provider: &'static str,
    /// The systemd-nspawn process (nspawn provider, when running).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Its network cable (running nodes of providers nspawn and libvirt):
    /// `unplugged` after `labctl unplug`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<link::Link>,
    /// The cluster member that runs it (provider incus on a cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

impl NodeStatus {
    /// `node`'s line: in `state`, nothing more known (no PID, cable or member).
    pub fn new(node: &Node, provider: &'static str, state: NodeState) -> NodeStatus {
        NodeStatus {
            name: node.name.clone(),
            address: node.address.to_string(),
            port: node.port,
            state,
            provider,
            pid: None,
            link: None,
            member: None,
        }
    }
}

/// Which rule proves, before labctl connects into a lab, that the traffic
/// stays on this machine (see `lab::ensure_safe_target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// The lab's bridge on this host (or on the hypervisor, over the SSH hop)
    /// must hold the gateway address.
    LabBridge,
    /// The nodes already exist: only the lab's own subnet, while this host holds it.
    OwnSubnet,
}

/// How `status` and the dashboard learn a node's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusPoll {
    /// Asked of this host (processes, the hypervisor) every so often.
    Host(std::time::Duration),
    /// Asked of each node's sshd: lab traffic, within the dashboard's budget.
    NodeSsh(std::time::Duration),
}

impl StatusPoll {
    pub fn every(self) -> std::time::Duration {
        match self {
            StatusPoll::Host(d) | StatusPoll::NodeSsh(d) => d,
        }
    }
}

/// What a provider can do and needs: everything outside `src/providers/` that
/// differs between providers asks this, never the provider's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// labctl creates the nodes (and their network) itself.
    pub creates_nodes: bool,
    /// Commands that touch the nodes need root (`require_root`).
    pub needs_root: bool,
    /// `fail`/`halt --force` cut a node's power, and `up` boots it again.
    pub power_cut: bool,
    /// `unplug`/`plug` cut and restore a node's cable.
    pub link_cut: bool,
    /// `snapshot save/restore/list/delete`.
    pub snapshots: bool,
    /// A fence agent can power nodes off (STONITH).
    pub fencing: bool,
    /// The nodes have hardware of their own (memory, extra disks, a kernel).
    pub vm_hardware: bool,
    /// With no `preinstall:`, the package layer is derived from the project's scenarios.
    pub derives_layer: bool,
    /// The name of the nodes' lab NIC (`None`: each node says, in the inventory).
    pub nic: Option<&'static str>,
    /// How node states are polled.
    pub status: StatusPoll,
    /// Which safety rule applies before connecting into the lab.
    pub safety: Safety,
}

impl Capabilities {
    /// A provider that creates its nodes (named `nic`) on a lab bridge of its
    /// own, as root, and can cut their power and cable; nothing more.
    pub const fn lab_bridge(nic: &'static str, status: StatusPoll) -> Capabilities {
        Capabilities {
            creates_nodes: true,
            needs_root: true,
            power_cut: true,
            link_cut: true,
            snapshots: false,
            fencing: false,
            vm_hardware: false,
            derives_layer: false,
            nic: Some(nic),
            status,
            safety: Safety::LabBridge,
        }
    }

    /// A provider whose nodes already exist: labctl only reaches them.
    pub const fn existing(nic: Option<&'static str>, status: StatusPoll) -> Capabilities {
        Capabilities {
            creates_nodes: false,
            needs_root: false,
            power_cut: false,
            link_cut: false,
            snapshots: false,
            fencing: false,
            vm_hardware: false,
            derives_layer: false,
            nic,
            status,
            safety: Safety::OwnSubnet,
        }
    }
}

/// A way of making nodes exist. Chosen by name in the inventory.
pub trait Provider {
    /// The name used in `inventory.yaml`.
    fn name(&self) -> &'static str;
    /// What it can do and needs.
    fn capabilities(&self) -> Capabilities;
    /// What it adds to the inventory's checks: a limit on machine names, how
    /// it preinstalls packages, its own section (default: nothing).
    fn inventory_rules(&self) -> InventoryRules {
        InventoryRules::default()
    }
    /// Create (if needed) and boot `nodes`, and return once each answers SSH.
    fn up(&self, inv: &Inventory, nodes: &[&Node], p: &dyn Progress) -> anyhow::Result<()>;
    /// Each node's state, in inventory order.
    fn status(&self, inv: &Inventory) -> anyhow::Result<Vec<NodeStatus>>;
    /// Power `nodes` off: cleanly, or (`force`) by cutting the power at once
    /// (default: refuse, the nodes are not labctl's).
    fn halt(
        &self,
        inv: &Inventory,
        _nodes: &[&Node],
        force: bool,
        _p: &dyn Progress,
    ) -> anyhow::Result<()> {
        let what = if force { "fail (power cut)" } else { "halt" };
        user_bail!(
            "lab `{}` uses provider {}: labctl does not {what} nodes it did not create\n  fix: power the machines off with their own tools (e.g. `labctl ssh NODE -- sudo poweroff`), or use provider nspawn",
            inv.lab,
            self.name()
        )
    }
    /// Remove everything the lab created (default: refuse, the nodes are not labctl's).
    fn destroy(&self, inv: &Inventory, _p: &dyn Progress) -> anyhow::Result<()> {
        user_bail!(
            "lab `{}` uses provider {}: labctl does not destroy nodes it did not create\n  fix: remove the machines with the tool that made them; labctl keeps its hands off",
            inv.lab,
            self.name()
        )
    }
    /// The SSH hop to the host holding the lab's network when it is not this
    /// machine (default: none; see [`crate::jump`]).
    fn jump(&self, _inv: &Inventory) -> anyhow::Result<Option<crate::jump::Jump>> {
        Ok(None)
    }
    /// Refuse, with the fix, to connect to a node the provider knows is not
    /// running (the default: nothing known, connecting will tell).
    fn check_running(&self, _inv: &Inventory, _node: &Node) -> anyhow::Result<()> {
        Ok(())
    }
    /// Remove `nodes` only (the next `up` rebuilds them); the rest of the lab
    /// stays (default: as [`Provider::destroy`]).
    fn destroy_nodes(
        &self,
        inv: &Inventory,
        _nodes: &[&Node],
        p: &dyn Progress,
    ) -> anyhow::Result<()> {
        self.destroy(inv, p)
    }
    /// Cut (`plugged: false`) or plug back the network cable of a running
    /// node, which keeps running (default: refuse, see [`link`]).
    fn set_link(&self, _inv: &Inventory, _node: &Node, _plugged: bool) -> anyhow::Result<()> {
        Err(link::unsupported(self.name()))
    }
    /// The cable of a running node (default: none this provider knows).
    fn link(&self, _inv: &Inventory, _node: &Node) -> anyhow::Result<Option<link::Link>> {
        Ok(None)
    }
    /// Save every node's disk as snapshot `name` (default: refuse).
    fn snapshot_save(
        &self,
        _inv: &Inventory,
        _name: &str,
        _p: &dyn Progress,
    ) -> anyhow::Result<snapshots::SnapshotInfo> {
        Err(snapshots::unsupported(self.name()))
    }
    /// Power the snapshot's nodes off, put their disks back as saved and boot
    /// them; return once each answers SSH (default: refuse).
    fn snapshot_restore(
        &self,
        _inv: &Inventory,
        _name: &str,
        _p: &dyn Progress,
    ) -> anyhow::Result<snapshots::SnapshotInfo> {
        Err(snapshots::unsupported(self.name()))
    }
    /// The lab's snapshots, oldest first (default: refuse).
    fn snapshot_list(&self, _inv: &Inventory) -> anyhow::Result<Vec<snapshots::SnapshotInfo>> {
        Err(snapshots::unsupported(self.name()))
    }
    /// Remove snapshot `name` (default: refuse).
    fn snapshot_delete(
        &self,
        _inv: &Inventory,
        _name: &str,
        _p: &dyn Progress,
    ) -> anyhow::Result<()> {
        Err(snapshots::unsupported(self.name()))
    }
}

/// How the registry makes a provider.
pub type MakeProvider = fn() -> Box<dyn Provider>;

/// The registry: every provider, by the name `inventory.yaml` uses; the
/// first is the default (an inventory without `provider:`, a Vagrantfile).
/// Adding a provider is a folder under `src/providers/` and one line here.
pub const REGISTRY: &[(&str, MakeProvider)] = &[
    ("nspawn", || Box::new(nspawn::Nspawn)),
    ("ssh", || Box::new(ssh::SshHosts)),
    ("libvirt", || Box::new(libvirt::Libvirt)),
    ("incus", || Box::new(incus::IncusProvider)),
    #[cfg(test)]
    ("toy", || Box::new(toy::Toy)),
];

/// The provider registered as `name`.
pub fn by_name(name: &str) -> Option<Box<dyn Provider>> {
    REGISTRY
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, make)| make())
}

/// What the inventory asks of provider `p` (see [`crate::inventory::ProviderSpec`]).
pub fn spec(p: &dyn Provider) -> ProviderSpec {
    let caps = p.capabilities();
    ProviderSpec {
        name: p.name(),
        creates_nodes: caps.creates_nodes,
        vm_hardware: caps.vm_hardware,
        nic: caps.nic,
        rules: p.inventory_rules(),
    }
}

/// "lab `L` is already up: N1, N2 running; nothing to do".
pub fn already_up(inv: &Inventory, nodes: &[&Node], p: &dyn Progress) {
    p.line(&format!(
        "lab `{}` is already up: {} running; nothing to do",
        inv.lab,
        Node::names(nodes.iter().copied())
    ));
}

/// Every registered provider's name, in registry order.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|(n, _)| *n).collect()
}

/// Load and validate an inventory (or a Vagrantfile) for the registered
/// providers (see [`Inventory::load_with`]).
pub fn load_inventory(path: &std::path::Path) -> anyhow::Result<Inventory> {
    let specs: Vec<ProviderSpec> = REGISTRY
        .iter()
        .map(|(_, make)| spec(make().as_ref()))
        .collect();
    let mut inv = Inventory::load_with(path, &specs)?;
    inv.jump = for_inventory(&inv).jump(&inv)?;
    Ok(inv)
}

/// The provider the inventory names.
pub fn for_inventory(inv: &Inventory) -> Box<dyn Provider> {
    let name = inv.provider.as_str();
    by_name(name).unwrap_or_else(|| unreachable!("provider `{name}` is parsed but not registered"))
}

/// What the inventory's provider can do and needs.
pub fn capabilities(inv: &Inventory) -> Capabilities {
    for_inventory(inv).capabilities()
}

/// Resolve node names (empty: every node); an unknown name is a user error.
pub fn select<'a>(inv: &'a Inventory, names: &[String]) -> anyhow::Result<Vec<&'a Node>> {
    if names.is_empty() {
        return Ok(inv.nodes.iter().collect());
    }
    let mut out: Vec<&Node> = Vec::new();
    for n in names {
        match inv.node(n) {
            Some(node) => {
                if !out.iter().any(|o| o.name == node.name) {
                    out.push(node)
                }
            }
            None => user_bail!(
                "{}: no node named `{n}`{}\n  fix: use one of: {}",
                inv.path.display(),
                crate::suggest::hint(n, inv.nodes.iter().map(|n| &n.name)),
                Node::names(&inv.nodes)
            ),
        }
    }
    Ok(out)
}

/// Refuse, before anything else, a command that needs root on this lab: for
/// provider nspawn every command that touches the nodes or reads `.labctl/`
/// (the lab key, pinned host keys, the last scenario: root's, mode 0700). The
/// ssh provider's files are the user's own. `typed` is the command as typed
/// (`configure scenario.yaml`), for the fix.
pub fn require_root(inv: &Inventory, typed: &str) -> anyhow::Result<()> {
    if capabilities(inv).needs_root {
        host::preflight::root(typed)
    } else {
        Ok(())
    }
}

/// `labctl up [NODE…]`: create and boot nodes, return when all answer SSH.
pub fn up(inv: &Inventory, names: &[String], p: &dyn Progress) -> anyhow::Result<()> {
    let nodes = select(inv, names)?;
    for_inventory(inv).up(inv, &nodes, p)
}

/// `labctl status`: every node's state, and the cable of the running ones.
pub fn status(inv: &Inventory) -> anyhow::Result<Vec<NodeStatus>> {
    let provider = for_inventory(inv);
    let mut nodes = provider.status(inv)?;
    for s in nodes.iter_mut() {
        if let Some(node) = inv.node(&s.name) {
            s.link = link::of(provider.as_ref(), inv, node, s.state);
        }
    }
    Ok(nodes)
}

/// `labctl halt [--force] [NODE…]`.
pub fn halt(
    inv: &Inventory,
    names: &[String],
    force: bool,
    p: &dyn Progress,
) -> anyhow::Result<()> {
    let nodes = select(inv, names)?;
    for_inventory(inv).halt(inv, &nodes, force, p)
}

/// `labctl fail NODE…`: cut the power of nodes at once (their whole PID
/// namespace is killed), as a failover test needs.
pub fn fail(inv: &Inventory, names: &[String], p: &dyn Progress) -> anyhow::Result<()> {
    if names.is_empty() {
        user_bail!("name the nodes to fail\n  fix: e.g. `labctl fail nodo1`");
    }
    halt(inv, names, true, p)
}

/// `labctl destroy`.
pub fn destroy(inv: &Inventory, p: &dyn Progress) -> anyhow::Result<()> {
    for_inventory(inv).destroy(inv, p)
}

/// `labctl destroy NODE…`: remove these nodes only; the rest of the lab stays.
pub fn destroy_nodes(inv: &Inventory, names: &[String], p: &dyn Progress) -> anyhow::Result<()> {
    if names.is_empty() {
        user_bail!("name the nodes to destroy\n  fix: e.g. `labctl destroy nodo1`, or `labctl destroy` for the whole lab");
    }
    let nodes = select(inv, names)?;
    for_inventory(inv).destroy_nodes(inv, &nodes, p)
}

/// `labctl up --fresh [NODE…]`: rebuild nodes from the image (their files
/// are lost), leaving the other nodes untouched; every node when none is named.
pub fn up_fresh(inv: &Inventory, names: &[String], p: &dyn Progress) -> anyhow::Result<()> {
    let nodes = select(inv, names)?;
    let provider = for_inventory(inv);
    provider.destroy_nodes(inv, &nodes, p)?;
    provider.up(inv, &nodes, p)
}

/// Whether `node` answers SSH now (TCP connect and an `SSH-` banner within
/// `timeout`). Refuses (error) when the address is not provably local.
pub fn node_answers_ssh(inv: &Inventory, node: &Node, timeout: Duration) -> anyhow::Result<bool> {
    crate::lab::ensure_safe_target(inv, node.address)?;
    Ok(probe::ssh_banner(inv.jump(), node.address, node.port, timeout).is_ok())
}

/// For unit tests: `text` written as `dir/inventory.yaml` and loaded.
#[cfg(test)]
pub(crate) fn inventory_in(dir: &std::path::Path, text: &str) -> Inventory {
    let p = dir.join("inventory.yaml");
    std::fs::write(&p, text).unwrap();
    load_inventory(&p).unwrap()
}

/// Format a duration for people: `4.2 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Run `f` on every node at once (a thread each); results in node order.
pub fn parallel<'a, T: Send>(
    nodes: &[&'a Node],
    f: &(dyn Fn(&Node) -> anyhow::Result<T> + Sync),
) -> Vec<(&'a Node, anyhow::Result<T>)> {
    std::thread::scope(|s| {
        let hs: Vec<_> = nodes.iter().map(|n| (*n, s.spawn(move || f(n)))).collect();
        hs.into_iter()
            .map(|(n, h)| {
                (
                    n,
                    h.join().unwrap_or_else(|_| {
                        Err(anyhow::anyhow!("internal error: thread panicked"))
                    }),
                )
            })
            .collect()
    })
}

/// Fail `up` when some nodes did not come up (`results` from
/// [`probe::wait_ssh`], in `nodes` order), showing for each the last lines of
/// its console: `console(node)` gives (where it is, its last lines).
pub fn boot_failures(
    nodes: &[&Node],
    results: Vec<Result<Duration, anyhow::Error>>,
    console: &dyn Fn(&Node) -> (String, String),
) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for (n, r) in nodes.iter().zip(results) {
        if let Err(e) = r {
            let (path, tail) = console(n);
            errors.push(format!(
                "node {} ({}): {e:#}\n  console ({path}), last lines:\n{}",
                n.name,
                n.address,
                tail.lines()
                    .map(|l| format!("    {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }
    if !errors.is_empty() {
        anyhow::bail!(
            "{} of {} nodes did not come up:\n{}\n  fix: read the console log; `labctl destroy` removes the lab",
            errors.len(),
            nodes.len(),
            errors.join("\n")
        );
    }
    Ok(())
}

/// The refusal of [`Provider::check_running`] for a node in `state`.
pub fn refuse_unless_running(node: &Node, state: NodeState) -> anyhow::Result<()> {
    if state != NodeState::Running {
        crate::user_bail!(
            "node {} is {}\n  fix: `labctl up {}`",
            node.name,
            state.as_str(),
            node.name
        );
    }
    Ok(())
}

/// Run a one-off command (e.g. `systemd-nspawn … /bin/sh -c SCRIPT`), keep
/// its whole output in `log` and return its status and that output.
pub fn run_logged(
    cmd: &mut std::process::Command,
    log: &std::path::Path,
) -> anyhow::Result<(std::process::ExitStatus, String)> {
    let prog = cmd.get_program().to_string_lossy().into_owned();
    let out = host::tool::output(cmd, &prog)?;
    let text = host::tool::all_output(&out);
    let _ = std::fs::write(log, &text);
    Ok((out.status, text))
}
