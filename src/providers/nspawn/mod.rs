//! Provider `nspawn` (default): each node is a systemd-nspawn container that
//! boots systemd from a cached Debian image, on a bridge of the lab's own.
//!
//! - [`image`]: the cached base image (mmdebstrap, built once per recipe).
//! - [`layer`]: the inventory's `preinstall:` packages, a cached layer on the image.
//! - [`rootfs`]: a node's overlay on the image and its first-boot files.
//! - [`network`]: the lab bridge and the nft table that keeps the lab to itself.
//! - [`cache`]: the host's package cache (apt-cacher-ng) on the lab gateways.
//! - [`cgroup`]: a cgroup of its own for each nspawn process.
//! - [`process`]: starting, finding, halting and killing the nspawn processes.
//! - [`keys`]: the lab key pair and the pinned host keys.
//! - [`preflight`]: root, host tools, subnet and ownership checks.
//! - [`snapshot`]: saved copies of the nodes' files, put back on `restore`.
//! - [`paths`]: where all of it lives (`/var/lib/labctl`).
//!
//! Works without a host systemd or D-Bus (`--register=no --keep-unit`).
//! The library functions [`up_nodes`], [`halt_node`], [`fail_node`] and
//! [`node_state`] are what `verify`'s failover checks call.

pub mod snapshot;

use super::host::{
    cache, cgroup, image, keys, layer, network, paths, preflight, process, rootfs, trash,
};

use super::link::Link;
use super::snapshots::SnapshotInfo;
use super::{parallel, power, probe, NodeState, NodeStatus, Provider};
use crate::inventory::{Inventory, Node};
use crate::progress::Progress;
use paths::NodePaths;
use std::time::{Duration, Instant};

/// How long a node may take to answer SSH after its container starts.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a clean poweroff may take.
const HALT_TIMEOUT: Duration = Duration::from_secs(90);

/// systemd-nspawn containers on a lab bridge.
pub struct Nspawn;

/// The node's state and its nspawn PID when running. A container whose
/// nspawn process was killed from outside still runs: its recorded init is
/// alive (then the PID is `None`).
pub fn node_state(inv: &Inventory, name: &str) -> (NodeState, Option<u32>) {
    let np = NodePaths::new(&inv.lab, name);
    if let Some(pid) = process::find_nspawn(&np) {
        return (NodeState::Running, Some(pid));
    }
    if !process::inits(&np, None).is_empty() {
        return (NodeState::Running, None);
    }
    if np.created().exists() || np.upper().exists() {
        (NodeState::Stopped, None)
    } else {
        (NodeState::Absent, None)
    }
}

fn checks(inv: &Inventory, what: &str) -> anyhow::Result<()> {
    preflight::root(what)?;
    preflight::tools()?;
    preflight::ownership(inv)
}

/// Create and boot `nodes` (already running ones are left alone) and wait
/// until every one answers SSH. Prints one progress line per node.
pub fn up_nodes(inv: &Inventory, nodes: &[&Node], p: &dyn Progress) -> anyhow::Result<()> {
    let start = Instant::now();
    checks(inv, "up")?;
    let _lock = paths::lock_lab(inv, p)?;
    preflight::subnet_free(inv)?;
    for n in nodes {
        // a node left frozen by a `snapshot save` stopped at once runs again
        cgroup::thaw(&NodePaths::new(&inv.lab, &n.name).machine);
    }

    let todo: Vec<&Node> = nodes
        .iter()
        .copied()
        .filter(|n| node_state(inv, &n.name).0 != NodeState::Running)
        .collect();
    let bridge_ok = crate::lab::bridge_holds_gateway(inv)? && network::nft_table_exists(&inv.lab);
    if todo.is_empty() && bridge_ok {
        repin(inv, p)?;
        super::already_up(inv, nodes, p);
        return Ok(());
    }

    // the key first: a mistake in ssh.key is reported before minutes of image build
    let pubkey = keys::ensure_lab_key(inv, p)?;
    keys::write_vagrant_keys(inv)?;
    preflight::claim(inv)?;
    // the network first: the image and the layer are fetched through the
    // package cache on its gateway
    network::ensure(inv)?;
    // (the builds run in the host's network: the cache's own address)
    let proxy = inv.network.as_ref().map(|_| cache::host_proxy_url());
    let recipe = image::Recipe::from_host();
    let image = image::ensure(&recipe, proxy.as_deref(), p)?;
    let layer = if inv.preinstall.is_empty() {
        None
    } else {
        Some(layer::ensure(&image, &inv.preinstall, proxy.as_deref(), p)?)
    };
    let nameservers = rootfs::nameservers(inv);
    if inv.egress_nat {
        p.line(&format!(
            "warning: lab `{}` is open (egress: nat): its nodes reach the Internet through this machine",
            inv.lab
        ));
        if nameservers.is_empty() {
            p.line("warning: no usable nameserver in /etc/resolv.conf; nodes will have no DNS until configured");
        }
    }

    if todo.is_empty() {
        repin(inv, p)?;
        p.line(&format!(
            "lab `{}`: bridge {} and nft table {} restored; every node was already running",
            inv.lab,
            inv.bridge_name(),
            network::nft_table(&inv.lab)
        ));
        return Ok(());
    }
    let labels: Vec<&str> = todo.iter().map(|n| n.name.as_str()).collect();
    p.start(&labels);
    let progress = p;
    for n in &todo {
        let np = NodePaths::new(&inv.lab, &n.name);
        let state = node_state(inv, &n.name).0;
        progress.set(
            &n.name,
            if state == NodeState::Absent {
                "creating"
            } else {
                "booting (files kept)"
            },
        );
        // A node that powered itself off leaves its overlays mounted: remount fresh.
        rootfs::unmount_node(&np)?;
        rootfs::prepare(inv, n, &image, layer.as_deref(), &pubkey, &nameservers)?;
    }
    repin(inv, p)?;
    let t_boot = Instant::now();
    boot_and_wait(inv, &todo, progress)?;
    p.line(&format!(
        "lab `{}` up: {} node(s) answer SSH; boot took {}, `up` took {}",
        inv.lab,
        todo.len(),
        super::secs(t_boot.elapsed()),
        super::secs(start.elapsed())
    ));
    Ok(())
}

/// Start `todo`'s containers (prepared), attach their further links, and
/// wait until each answers SSH; a node that does not is shown with its console.
fn boot_and_wait(inv: &Inventory, todo: &[&Node], progress: &dyn Progress) -> anyhow::Result<()> {
    for n in todo {
        let np = NodePaths::new(&inv.lab, &n.name);
        let pid = process::start(&np, &inv.bridge_name(), &network::extra_links(inv, &n.name))?;
        progress.set(&n.name, &format!("booting (systemd-nspawn PID {pid})"));
    }
    for n in todo {
        network::attach_extra(inv, &n.name, Duration::from_secs(10))?;
    }
    // every node is checked for safety before we connect to it
    for n in todo {
        crate::lab::ensure_safe_target(inv, n.address)?;
    }
    for n in todo {
        let np = NodePaths::new(&inv.lab, &n.name);
        if let Some(pid) = process::find_nspawn(&np) {
            process::record_init(&np, pid, Duration::from_secs(5));
        }
    }
    let alive = |n: &Node| -> anyhow::Result<()> {
        let np = NodePaths::new(&inv.lab, &n.name);
        if process::find_nspawn(&np).is_none() {
            anyhow::bail!("its container exited");
        }
        Ok(())
    };
    let login = |n: &Node| super::sshcmd::check_login(inv, n).map(|_| ());
    let results = probe::wait_ssh(None, todo, BOOT_TIMEOUT, progress, &login, &alive);
    super::boot_failures(todo, results, &|n: &Node| {
        let np = NodePaths::new(&inv.lab, &n.name);
        (
            np.console().display().to_string(),
            process::console_tail(&np, 15),
        )
    })?;
    Ok(())
}

/// Pin every node's host key, read from its own files (`up` does this each
/// time, so a node whose key changed is re-pinned by `labctl up`, the fix the
/// host key refusal names), and say which pins changed.
fn repin(inv: &Inventory, p: &dyn Progress) -> anyhow::Result<()> {
    for name in keys::pin_host_keys(inv)? {
        p.line(&format!(
            "{name}: its host key changed on the node; re-pinned the new key (read from the node's files) in {}",
            inv.ssh.known_hosts.display()
        ));
    }
    Ok(())
}

/// The host side of a running node's veth.
fn node_veth(inv: &Inventory, node: &Node) -> anyhow::Result<String> {
    let np = NodePaths::new(&inv.lab, &node.name);
    let (state, pid) = node_state(inv, &node.name);
    super::refuse_unless_running(node, state)?;
    let Some(init) = process::inits(&np, pid).first().copied() else {
        anyhow::bail!("node {}: its container init is gone", node.name);
    };
    network::node_veth(inv, init)
}

/// Power one node off cleanly and unmount its overlays (files kept).
pub fn halt_node(inv: &Inventory, name: &str) -> anyhow::Result<NodeState> {
    let np = NodePaths::new(&inv.lab, name);
    let (state, pid) = node_state(inv, name);
    if state == NodeState::Running {
        cgroup::thaw(&np.machine);
        process::poweroff(&np, pid, HALT_TIMEOUT)?;
    }
    rootfs::unmount_node(&np)?;
    cgroup::remove(&np.machine);
    Ok(state)
}

/// Cut one node's power at once: SIGKILL to the container's init kills its
/// whole PID namespace; then nspawn is reaped and the overlays unmounted, so
/// `up_nodes` can boot it again with its files kept.
pub fn fail_node(inv: &Inventory, name: &str) -> anyhow::Result<NodeState> {
    preflight::root("fail")?;
    let np = NodePaths::new(&inv.lab, name);
    let (state, pid) = node_state(inv, name);
    if pid.is_some() || !process::inits(&np, None).is_empty() {
        process::kill(&np, pid)?;
    }
    rootfs::unmount_node(&np)?;
    cgroup::remove(&np.machine);
    Ok(state)
}

/// The longest machine name systemd accepts (a host name: 64 characters):
/// a container is named `<lab>.<node>`.
pub const MAX_MACHINE_NAME: usize = 64;

impl Provider for Nspawn {
    fn name(&self) -> &'static str {
        "nspawn"
    }
    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities {
            snapshots: true,
            derives_layer: true,
            ..super::Capabilities::lab_bridge(
                "host0",
                super::StatusPoll::Host(Duration::from_millis(250)),
            )
        }
    }
    fn inventory_rules(&self) -> crate::inventory::InventoryRules {
        crate::inventory::InventoryRules {
            machine_name_max: Some(MAX_MACHINE_NAME),
            preinstall: Some("a package layer"),
            section: None,
        }
    }

    fn check_running(&self, inv: &Inventory, node: &Node) -> anyhow::Result<()> {
        let (state, _) = node_state(inv, &node.name);
        super::refuse_unless_running(node, state)
    }

    fn up(&self, inv: &Inventory, nodes: &[&Node], p: &dyn Progress) -> anyhow::Result<()> {
        up_nodes(inv, nodes, p)
    }

    fn set_link(&self, inv: &Inventory, node: &Node, plugged: bool) -> anyhow::Result<()> {
        preflight::root(if plugged { "plug" } else { "unplug" })?;
        network::set_link(&node_veth(inv, node)?, plugged)
    }

    fn link(&self, inv: &Inventory, node: &Node) -> anyhow::Result<Option<Link>> {
        let up = network::link_is_up(&node_veth(inv, node)?)?;
        Ok(Some(if up { Link::Plugged } else { Link::Unplugged }))
    }

    fn status(&self, inv: &Inventory) -> anyhow::Result<Vec<NodeStatus>> {
        Ok(inv
            .nodes
            .iter()
            .map(|n| {
                let (state, pid) = node_state(inv, &n.name);
                NodeStatus {
                    pid,
                    ..NodeStatus::new(n, "nspawn", state)
                }
            })
            .collect())
    }

    fn halt(
        &self,
        inv: &Inventory,
        nodes: &[&Node],
        force: bool,
        p: &dyn Progress,
    ) -> anyhow::Result<()> {
        checks(inv, if force { "fail" } else { "halt" })?;
        let _lock = paths::lock_lab(inv, p)?;
        let words = power::Words {
            cut: "power cut (PID namespace killed)",
            off: "powered off",
        };
        power::halt_each(&inv.lab, nodes, force, words, p, &|n: &Node| {
            if force {
                fail_node(inv, &n.name)
            } else {
                halt_node(inv, &n.name)
            }
        })
    }

    fn destroy_nodes(
        &self,
        inv: &Inventory,
        nodes: &[&Node],
        p: &dyn Progress,
    ) -> anyhow::Result<()> {
        destroy_nodes(inv, nodes, p)
    }

    fn snapshot_save(
        &self,
        inv: &Inventory,
        name: &str,
        p: &dyn Progress,
    ) -> anyhow::Result<SnapshotInfo> {
        snapshot::save(inv, name, p)
    }

    fn snapshot_restore(
        &self,
        inv: &Inventory,
        name: &str,
        p: &dyn Progress,
    ) -> anyhow::Result<SnapshotInfo> {
        snapshot::restore(inv, name, p)
    }

    fn snapshot_list(&self, inv: &Inventory) -> anyhow::Result<Vec<SnapshotInfo>> {
        snapshot::list(inv)
    }

    fn snapshot_delete(&self, inv: &Inventory, name: &str, p: &dyn Progress) -> anyhow::Result<()> {
        snapshot::delete(inv, name, p)
    }

    fn destroy(&self, inv: &Inventory, p: &dyn Progress) -> anyhow::Result<()> {
        checks(inv, "destroy")?;
        let _lock = paths::lock_lab(inv, p)?;
        let start = Instant::now();
        let lab_dir = paths::lab_dir(&inv.lab);
        // every node the lab ever created, in the inventory or not
        let mut names: Vec<String> = std::fs::read_dir(paths::nodes_dir(&inv.lab))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        for n in &inv.nodes {
            if !names.contains(&n.name) {
                names.push(n.name.clone());
            }
        }
        for name in &names {
            let np = NodePaths::new(&inv.lab, name);
            let pid = process::find_nspawn(&np);
            if pid.is_some() || !process::inits(&np, None).is_empty() {
                process::kill(&np, pid)?;
                p.line(&format!("{name}: power cut"));
            }
            rootfs::unmount_node(&np)?;
            // nspawn leaves an empty propagation folder behind
            let _ = std::fs::remove_dir(
                std::path::Path::new("/run/systemd/nspawn/propagate").join(&np.machine),
            );
        }
        // destroy returns when nothing of the lab runs any more
        process::wait_lab_gone(&lab_dir, Duration::from_secs(5), Duration::from_secs(15))?;
        for name in &names {
            cgroup::remove(&NodePaths::new(&inv.lab, name).machine);
        }
        network::remove(inv)?;
        let left = rootfs::mounts_under(&lab_dir);
        if !left.is_empty() {
            anyhow::bail!(
                "refusing to delete {}: still mounted: {}",
                lab_dir.display(),
                left.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if lab_dir.exists() {
            trash::discard(&lab_dir)?;
        }
        trash::remove_project_state(inv)?;
        p.line(&format!(
            "lab `{}` destroyed in {} (the image cache in {} and the package cache in {} are kept)",
            inv.lab,
            super::secs(start.elapsed()),
            paths::root().join("images").display(),
            cache::dir().join("cache").display()
        ));
        Ok(())
    }
}

/// Remove `nodes` and only them: each one's processes are killed, its
/// overlays unmounted and its folder removed (nothing of it is kept), so the next `up` rebuilds it from the image; the other nodes, the
/// bridge and the lab's state stay. The removed nodes' host keys are unpinned
/// (the rebuilt node gets a new key, pinned by `up`).
pub fn destroy_nodes(inv: &Inventory, nodes: &[&Node], p: &dyn Progress) -> anyhow::Result<()> {
    checks(inv, "destroy")?;
    let _lock = paths::lock_lab(inv, p)?;
    for n in nodes {
        let t = Instant::now();
        let np = NodePaths::new(&inv.lab, &n.name);
        if !np.dir.exists() {
            p.line(&format!("{}: absent (never created)", n.name));
            continue;
        }
        let pid = process::find_nspawn(&np);
        if pid.is_some() || !process::inits(&np, None).is_empty() {
            process::kill(&np, pid)?;
        }
        rootfs::unmount_node(&np)?;
        cgroup::remove(&np.machine);
        let left = rootfs::mounts_under(&np.dir);
        if !left.is_empty() {
            anyhow::bail!(
                "refusing to delete {}: still mounted: {}",
                np.dir.display(),
                left.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        trash::discard(&np.dir)?;
        let _ = std::fs::remove_dir(
            std::path::Path::new("/run/systemd/nspawn/propagate").join(&np.machine),
        );
        p.line(&format!(
            "{}: destroyed in {}; `labctl up {}` rebuilds it from the image",
            n.name,
            super::secs(t.elapsed()),
            n.name
        ));
    }
    keys::pin_host_keys(inv)?;
    Ok(())
}
