//! Provider `incus`: each node is a system container of an Incus server
//! (or cluster), made from labctl's own image, in a project of the lab's own.
//!
//! - [`client`]: every call to Incus, through its own client, as JSON, bounded.
//! - [`objects`]: the lab's project, profile and bridge network.
//! - [`image`]: labctl's Debian image, imported once per server.
//! - [`seed`]: a node's identity, pushed before its first boot.
//! - [`snapshot`]: Incus snapshots of every node under one name.
//! - [`placement`]: which member runs the lab, and the SSH hop to it.
//! - [`tunnel`]: the package cache for a lab reached through a hop.
//!
//! The daemon is the local one (its socket; `INCUS_DIR` as the client
//! reads it), or a remote of Incus's client (`incus: {remote: NAME}`). When
//! the lab's bridge `lab-<lab>` is on this machine, configure, verify and
//! ssh reach the nodes as they reach nspawn nodes, after the same "the
//! bridge holds the gateway" check, and the lab's nft table on this host
//! keeps its traffic to itself as for nspawn. When it is on another host (a
//! remote server, a cluster member), they reach them through an SSH hop to
//! that host, after the check that the bridge there holds the gateway; the
//! bridge keeps the traffic to itself there (Incus's NAT, routing and
//! firewall off).

pub mod client;
pub mod image;
pub mod objects;
pub mod placement;
pub mod seed;
pub mod snapshot;
pub mod tunnel;

use super::{parallel, probe, NodeState, NodeStatus, Provider};
use crate::inventory::{Inventory, Node};
use crate::progress::Progress;
use crate::providers::host::{keys, network, paths, preflight, rootfs, trash};
use client::{Incus, LONG, SHORT};
use std::time::{Duration, Instant};

/// How long a node may take to answer SSH after it starts.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a clean poweroff may take.
const HALT_TIMEOUT: Duration = Duration::from_secs(90);

/// System containers on an Incus server.
pub struct IncusProvider;

/// The lab's project on the server.
pub fn project_of(inv: &Inventory) -> String {
    inv.incus
        .as_ref()
        .and_then(|s| s.project.clone())
        .unwrap_or_else(|| format!("labctl-{}", inv.lab))
}

/// The client for the lab's project.
pub fn client_of(inv: &Inventory) -> Incus {
    let remote = inv.incus.as_ref().and_then(|s| s.remote.as_deref());
    Incus::new(&project_of(inv), remote)
}

/// The member the inventory pins the nodes to (a cluster), if any.
fn target_of(inv: &Inventory) -> Option<String> {
    inv.incus.as_ref().and_then(|s| s.target.clone())
}

/// A node's state from the instance's Incus status.
fn state_of(status: &str) -> NodeState {
    match status {
        "Running" => NodeState::Running,
        "" => NodeState::Absent,
        _ => NodeState::Stopped,
    }
}

/// A node's state and member, from a listing.
fn lookup(list: &[(String, String, String)], name: &str) -> (NodeState, Option<String>) {
    match list.iter().find(|(n, _, _)| n == name) {
        Some((_, status, member)) => (
            state_of(status),
            (!member.is_empty() && member != "none").then(|| member.clone()),
        ),
        None => (NodeState::Absent, None),
    }
}

/// Refuse node names Incus cannot take as instance names.
fn check_names(inv: &Inventory) -> anyhow::Result<()> {
    for n in &inv.nodes {
        let ok = !n.name.is_empty()
            && n.name.len() <= 63
            && n.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !n.name.starts_with('-')
            && !n.name.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            crate::user_bail!(
                "{}: node {}: provider incus names each container after its node, and Incus takes only letters, digits and `-` (not first), starting with a letter\n  fix: rename the node (e.g. {})",
                inv.path.display(),
                n.name,
                n.name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
            );
        }
    }
    Ok(())
}

fn checks(inv: &Inventory, what: &str) -> anyhow::Result<Incus> {
    preflight::root(what)?;
    check_names(inv)?;
    let incus = client_of(inv);
    incus.check_daemon()?;
    if let Some(t) = target_of(inv) {
        check_member(&incus, &t, inv)?;
    }
    Ok(incus)
}

/// Refuse a `target:` that is not a member of the cluster.
fn check_member(incus: &Incus, member: &str, inv: &Inventory) -> anyhow::Result<()> {
    let names = objects::members(incus)?;
    if !names.iter().any(|n| n == member) {
        crate::user_bail!(
            "{}: incus.target `{member}` is not a member of this Incus {}\n  fix: use one of: {}",
            inv.path.display(),
            if names.is_empty() {
                "server (it is not a cluster)"
            } else {
                "cluster"
            },
            if names.is_empty() {
                "no `target:` (a single server places every node itself)".to_string()
            } else {
                names.join(", ")
            }
        );
    }
    Ok(())
}

/// Refuse a project the inventory names that does not exist (labctl makes
/// only its own `labctl-<lab>`).
fn check_project(incus: &Incus, inv: &Inventory) -> anyhow::Result<()> {
    let named = inv.incus.as_ref().is_some_and(|s| s.project.is_some());
    if named && !objects::project_exists(incus)? {
        crate::user_bail!(
            "{}: incus.project `{}` does not exist on this Incus server\n  fix: create it (`incus project create {} -c features.profiles=true -c features.images=false -c features.networks=false`), or remove `project:` (labctl then makes labctl-{})",
            inv.path.display(),
            incus.project,
            incus.project,
            inv.lab
        );
    }
    Ok(())
}

/// Create and boot `nodes` (running ones are left alone), wait until each answers SSH.
pub fn up_nodes(inv: &Inventory, nodes: &[&Node], p: &dyn Progress) -> anyhow::Result<()> {
    let start = Instant::now();
    let incus = checks(inv, "up")?;
    check_project(&incus, inv)?;
    let _lock = paths::lock_lab(inv, p)?;
    preflight::ownership(inv)?;
    let pubkey = keys::ensure_lab_key(inv, p)?;
    preflight::claim(inv)?;
    objects::ensure(&incus, inv)?;
    let clustered = !objects::members(&incus)?.is_empty();
    // the lab's network is on this machine (a local single server), or
    // perhaps not (a remote, a cluster): then the cache goes through the hop
    let may_hop = incus.remote.is_some() || clustered;
    if may_hop {
        tunnel::mark(inv)?;
    } else {
        local_network(inv)?;
    }
    let alias = image::ensure(&incus, inv, p)?;
    let nameservers = rootfs::nameservers(inv);
    let list = objects::instances(&incus)?;
    let todo: Vec<&Node> = nodes
        .iter()
        .copied()
        .filter(|n| lookup(&list, &n.name).0 != NodeState::Running)
        .collect();
    let made = Made {
        incus: &incus,
        inv,
        alias: &alias,
        pubkey: &pubkey,
        nameservers: &nameservers,
        p,
    };
    let member = made.create(&todo, &list, clustered)?;
    let place = placement::locate(&incus, member.as_deref())?;
    placement::save(inv, &place)?;
    let mut inv = inv.clone();
    inv.jump = placement::jump(&inv, &place);
    let inv = &inv;
    match (&inv.jump, may_hop) {
        (Some(j), _) => tunnel::ensure(inv, j)?,
        (None, true) => {
            tunnel::stop(inv)?;
            local_network(inv)?;
        }
        (None, false) => {}
    }
    keys::pin_host_keys_from(inv, &|n| seed::host_key_pub(&inv.lab, n))?;
    if todo.is_empty() {
        super::already_up(inv, nodes, p);
        return Ok(());
    }
    let t_boot = Instant::now();
    boot(&incus, inv, &todo, p)?;
    p.line(&format!(
        "lab `{}` up on Incus (project {}{}): {} node(s) answer SSH; boot took {}, `up` took {}",
        inv.lab,
        incus.project,
        place_label(&place),
        todo.len(),
        super::secs(t_boot.elapsed()),
        super::secs(start.elapsed())
    ));
    Ok(())
}

/// ", member M, reached through HOST" for the `up` line.
fn place_label(place: &placement::Placement) -> String {
    let mut s = String::new();
    if let Some(m) = &place.member {
        s.push_str(&format!(", member {m}"));
    }
    if let Some(h) = &place.host {
        s.push_str(&format!(", reached through {h}"));
    }
    s
}

/// The lab's bridge on this machine: the nft table, its gateway file and
/// the package cache, as for nspawn; refused when Incus made it elsewhere.
fn local_network(inv: &Inventory) -> anyhow::Result<()> {
    if !network::link_exists(&inv.bridge_name()) {
        crate::user_bail!(
            "lab `{}`: Incus made its network {}, but not on this machine; nothing was started\n  fix: name the server as a remote (`incus: {{remote: NAME}}`, added with `incus remote add`), so that labctl reaches the nodes through it over SSH; then `labctl destroy` here removes what was made",
            inv.lab,
            inv.bridge_name()
        );
    }
    network::ensure(inv)
}

/// What making a node needs.
struct Made<'a> {
    incus: &'a Incus,
    inv: &'a Inventory,
    alias: &'a str,
    pubkey: &'a str,
    nameservers: &'a [String],
    p: &'a dyn Progress,
}

impl Made<'_> {
    /// Make the absent nodes of `todo`, all on one member: the one
    /// [`placement::member_for`] names, else the one Incus schedules the
    /// first on. Returns that member (`None`: a single server).
    fn create(
        &self,
        todo: &[&Node],
        list: &[(String, String, String)],
        clustered: bool,
    ) -> anyhow::Result<Option<String>> {
        let mut member = placement::member_for(self.inv, list).filter(|_| clustered);
        let absent: Vec<&Node> = todo
            .iter()
            .copied()
            .filter(|n| lookup(list, &n.name).0 == NodeState::Absent)
            .collect();
        let labels: Vec<&str> = todo.iter().map(|n| n.name.as_str()).collect();
        if !labels.is_empty() {
            self.p.start(&labels);
        }
        let mut rest = &absent[..];
        if let (true, None, Some(first)) = (clustered, &member, absent.first()) {
            self.one(first, None)?;
            let now = objects::instances(self.incus)?;
            member = lookup(&now, &first.name).1;
            rest = &absent[1..];
        }
        let made = parallel(rest, &|n: &Node| self.one(n, member.as_deref()));
        let errors: Vec<String> = made
            .into_iter()
            .filter_map(|(n, r)| r.err().map(|e| format!("{}: {e:#}", n.name)))
            .collect();
        if !errors.is_empty() {
            anyhow::bail!(
                "{}\n  fix: `labctl destroy` removes the lab",
                errors.join("\n")
            );
        }
        Ok(member)
    }

    /// Make one node (on `member`, when given) and push its seed.
    fn one(&self, n: &Node, member: Option<&str>) -> anyhow::Result<()> {
        self.p.set(&n.name, "creating");
        let mut args = vec!["create", self.alias, n.name.as_str()];
        if let Some(m) = member {
            args.extend(["--target", m]);
        }
        self.incus.run(&args, LONG)?;
        seed::push(self.incus, self.inv, n, self.pubkey, self.nameservers)
    }
}

/// Start `todo` and wait until each answers SSH (through the hop, when the
/// inventory has one); the console's last lines of a node that does not.
fn boot(incus: &Incus, inv: &Inventory, todo: &[&Node], p: &dyn Progress) -> anyhow::Result<()> {
    let mut args = vec!["start"];
    args.extend(todo.iter().map(|n| n.name.as_str()));
    incus.run(&args, SHORT)?;
    for n in todo {
        p.set(&n.name, "booting");
        crate::lab::ensure_safe_target(inv, n.address)?;
    }
    let alive = |n: &Node| -> anyhow::Result<()> {
        let list = objects::instances(incus)?;
        if lookup(&list, &n.name).0 != NodeState::Running {
            anyhow::bail!("its container stopped");
        }
        Ok(())
    };
    let login = |n: &Node| super::sshcmd::check_login(inv, n).map(|_| ());
    let results = probe::wait_ssh(inv.jump(), todo, BOOT_TIMEOUT, p, &login, &alive);
    super::boot_failures(todo, results, &|n: &Node| {
        let log = incus
            .run(&["console", n.name.as_str(), "--show-log"], SHORT)
            .unwrap_or_else(|e| format!("{e:#}"));
        (
            format!("incus console {} --show-log", n.name),
            crate::text::last_lines(&log, 15),
        )
    })
}

/// Stop one node: cleanly, or at once (`force`); its state before.
pub fn stop_node(incus: &Incus, name: &str, force: bool) -> anyhow::Result<NodeState> {
    let list = objects::instances(incus)?;
    let before = lookup(&list, name).0;
    if before == NodeState::Running {
        if force {
            incus.run(&["stop", "--force", name], SHORT)?;
        } else {
            let secs = HALT_TIMEOUT.as_secs().to_string();
            incus.run(&["stop", name, "--timeout", &secs], HALT_TIMEOUT + SHORT)?;
        }
    }
    Ok(before)
}

impl Provider for IncusProvider {
    fn name(&self) -> &'static str {
        "incus"
    }

    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities {
            creates_nodes: true,
            needs_root: true,
            power_cut: true,
            link_cut: false,
            snapshots: true,
            fencing: false,
            vm_hardware: false,
            derives_layer: true,
            nic: Some(seed::NIC),
            status: super::StatusPoll::Host(Duration::from_millis(1000)),
            safety: super::Safety::LabBridge,
        }
    }

    fn inventory_rules(&self) -> crate::inventory::InventoryRules {
        crate::inventory::InventoryRules {
            preinstall: Some("a layered image"),
            ..Default::default()
        }
    }

    fn jump(&self, inv: &Inventory) -> anyhow::Result<Option<crate::jump::Jump>> {
        Ok(placement::load(inv).and_then(|p| placement::jump(inv, &p)))
    }

    fn check_running(&self, inv: &Inventory, node: &Node) -> anyhow::Result<()> {
        let list = objects::instances(&client_of(inv))?;
        super::refuse_unless_running(node, lookup(&list, &node.name).0)
    }

    fn up(&self, inv: &Inventory, nodes: &[&Node], p: &dyn Progress) -> anyhow::Result<()> {
        up_nodes(inv, nodes, p)
    }

    fn status(&self, inv: &Inventory) -> anyhow::Result<Vec<NodeStatus>> {
        let incus = client_of(inv);
        incus.check_daemon()?;
        let list = objects::instances(&incus)?;
        Ok(inv
            .nodes
            .iter()
            .map(|n| {
                let (state, member) = lookup(&list, &n.name);
                NodeStatus {
                    name: n.name.clone(),
                    address: n.address.to_string(),
                    port: n.port,
                    state,
                    provider: "incus",
                    pid: None,
                    link: None,
                    member,
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
        let incus = checks(inv, if force { "fail" } else { "halt" })?;
        let _lock = paths::lock_lab(inv, p)?;
        let words = super::power::Words {
            cut: "power cut (incus stop --force)",
            off: "powered off",
        };
        super::power::halt_each(&inv.lab, nodes, force, words, p, &|n: &Node| {
            stop_node(&incus, &n.name, force)
        })
    }

    fn destroy_nodes(
        &self,
        inv: &Inventory,
        nodes: &[&Node],
        p: &dyn Progress,
    ) -> anyhow::Result<()> {
        let incus = checks(inv, "destroy")?;
        let _lock = paths::lock_lab(inv, p)?;
        let list = objects::instances(&incus)?;
        let t = Instant::now();
        let mut present = Vec::new();
        for n in nodes {
            if lookup(&list, &n.name).0 == NodeState::Absent {
                p.line(&format!("{}: absent (never created)", n.name));
            } else {
                present.push(n.name.clone());
            }
        }
        objects::delete_instances(&incus, &present)?;
        for n in &present {
            let dir = seed::node_dir(&inv.lab, n);
            if dir.exists() {
                trash::discard(&dir)?;
            }
            p.line(&format!(
                "{n}: destroyed in {}; `labctl up {n}` rebuilds it from the image",
                super::secs(t.elapsed()),
            ));
        }
        keys::pin_host_keys_from(inv, &|n| seed::host_key_pub(&inv.lab, n))?;
        Ok(())
    }

    fn destroy(&self, inv: &Inventory, p: &dyn Progress) -> anyhow::Result<()> {
        let incus = checks(inv, "destroy")?;
        let _lock = paths::lock_lab(inv, p)?;
        let start = Instant::now();
        tunnel::stop(inv)?;
        if let Some(j) = inv.jump() {
            j.close();
        }
        for what in objects::remove(&incus, inv)? {
            p.line(&format!("removed {what}"));
        }
        network::remove(inv)?;
        let lab_dir = paths::lab_dir(&inv.lab);
        if lab_dir.exists() {
            trash::discard(&lab_dir)?;
        }
        trash::remove_project_state(inv)?;
        p.line(&format!(
            "lab `{}` destroyed in {} (labctl's image stays on the Incus server)",
            inv.lab,
            super::secs(start.elapsed())
        ));
        Ok(())
    }

    fn snapshot_save(
        &self,
        inv: &Inventory,
        name: &str,
        p: &dyn Progress,
    ) -> anyhow::Result<super::snapshots::SnapshotInfo> {
        let incus = checks(inv, "snapshot save")?;
        let _lock = paths::lock_lab(inv, p)?;
        snapshot::save(&incus, inv, name, p)
    }

    fn snapshot_restore(
        &self,
        inv: &Inventory,
        name: &str,
        p: &dyn Progress,
    ) -> anyhow::Result<super::snapshots::SnapshotInfo> {
        let incus = checks(inv, "snapshot restore")?;
        let info = {
            let _lock = paths::lock_lab(inv, p)?;
            snapshot::restore(&incus, inv, name, p)?
        };
        let nodes: Vec<&Node> = inv
            .nodes
            .iter()
            .filter(|n| info.nodes.contains(&n.name))
            .collect();
        up_nodes(inv, &nodes, p)?;
        Ok(info)
    }

    fn snapshot_list(
        &self,
        inv: &Inventory,
    ) -> anyhow::Result<Vec<super::snapshots::SnapshotInfo>> {
        let incus = client_of(inv);
        incus.check_daemon()?;
        snapshot::list(&incus, inv)
    }

    fn snapshot_delete(&self, inv: &Inventory, name: &str, p: &dyn Progress) -> anyhow::Result<()> {
        let incus = checks(inv, "snapshot delete")?;
        let _lock = paths::lock_lab(inv, p)?;
        snapshot::delete(&incus, inv, name, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_members_come_from_the_listing() {
        let list = vec![
            ("nodo1".to_string(), "Running".to_string(), "m2".to_string()),
            ("dns".to_string(), "Stopped".to_string(), "none".to_string()),
        ];
        assert_eq!(
            lookup(&list, "nodo1"),
            (NodeState::Running, Some("m2".to_string()))
        );
        assert_eq!(lookup(&list, "dns"), (NodeState::Stopped, None));
        assert_eq!(lookup(&list, "nodo2"), (NodeState::Absent, None));
    }
}
