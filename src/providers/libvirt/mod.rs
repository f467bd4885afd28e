//! Provider `libvirt`: each node is a QEMU virtual machine with a kernel of
//! its own (so it loads modules: DRBD, GFS2, DLM) and disks of its own,
//! driven only through libvirt (`virsh -c URI`): domains, a network and
//! storage volumes, all named after the lab, so the same lab runs on a
//! hypervisor reached by URI.
//!
//! - [`image`]: the VM image (the nspawn recipe + a kernel), built once here,
//!   uploaded once per hypervisor into the pool `labctl-images`.
//! - [`seed`]: a node's identity (hostname, address, host key, lab user) on
//!   a small disk the image applies at first boot.
//! - [`xml`]: the network, pool and domain definitions.
//! - [`accel`]: KVM where a guest can use it, TCG elsewhere.
//! - [`virsh`]: every call, bounded in time.
//! - [`fence`]: the lab's fence daemon on the host (`libvirt: {fence: true}`).
//!
//! On the hypervisor a lab is: the network `labctl-<lab>` (bridge `lab-<lab>`
//! holding the gateway, NAT to the outside, no DHCP), the pool `labctl-<lab>`
//! (`/var/lib/labctl/libvirt/<lab>/`: each node's copy-on-write root disk,
//! extra disks, seed and console log) and the domains `labctl-<lab>.<node>`.
//! labctl's own state is in `/var/lib/labctl/labs/<lab>/` as for nspawn.

pub mod accel;
pub mod fence;
pub mod image;
mod owner;
pub mod section;
pub mod seed;
pub mod virsh;
pub mod xml;

use super::link::Link;
use super::{power, probe, NodeState, NodeStatus, Provider};
use crate::inventory::{Inventory, Node};
use crate::progress::Progress;
use crate::providers::host::{keys, network, paths, preflight, process, rootfs, trash};
use std::time::{Duration, Instant};
use virsh::Virsh;
use xml::Names;

/// How long a VM may take to answer SSH after it starts (TCG is slow).
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a clean (ACPI) poweroff may take.
const HALT_TIMEOUT: Duration = Duration::from_secs(120);

/// QEMU virtual machines through libvirt.
pub struct Libvirt;

/// The image pool's folder on the hypervisor.
pub fn images_pool_path() -> String {
    paths::root()
        .join("libvirt/images")
        .to_string_lossy()
        .into_owned()
}

/// A lab pool's folder on the hypervisor.
pub fn lab_pool_path(lab: &str) -> String {
    paths::root()
        .join("libvirt")
        .join(lab)
        .to_string_lossy()
        .into_owned()
}

fn virsh_of(inv: &Inventory) -> Virsh {
    let uri = inv
        .libvirt
        .as_ref()
        .map(|l| l.uri.as_str())
        .unwrap_or("qemu:///system");
    Virsh::new(uri)
}

/// Define (if needed) and start a directory pool.
pub fn ensure_pool(v: &Virsh, name: &str, path: &str) -> anyhow::Result<()> {
    let state = v.object_state("pool", name)?;
    if state.is_none() {
        let file = paths::root()
            .join("libvirt-xml")
            .join(format!("pool-{name}.xml"));
        v.define("pool-define", &xml::pool(name, path), &file)?;
        let _ = std::fs::remove_file(&file);
    }
    if state != Some(true) {
        v.run(&["pool-build", name])?;
        v.run(&["pool-start", name])?;
    }
    Ok(())
}

fn checks(inv: &Inventory, what: &str) -> anyhow::Result<Virsh> {
    preflight::root(what)?;
    preflight::require_tools(
        "libvirt",
        &[
            ("virsh", "libvirt-clients"),
            ("qemu-img", "qemu-utils"),
            ("mkfs.ext4", "e2fsprogs"),
            ("ssh-keygen", "openssh-client"),
            ("ssh", "openssh-client"),
        ],
    )?;
    preflight::ownership(inv)?;
    let v = virsh_of(inv);
    v.check_daemon()?;
    Ok(v)
}

/// The state of `node`'s domain (`None`: there is none), refusing a domain
/// of that name that is not this lab's: one whose metadata does not record
/// this machine and project as its owner ([`xml::owner_id`]). Every action on
/// a domain (start, power cut, link, undefine) asks here first.
fn domain_state(v: &Virsh, inv: &Inventory, node: &str) -> anyhow::Result<Option<String>> {
    let dom = Names::new(inv).domain(node);
    let Some(state) = v.domstate(&dom)? else {
        return Ok(None);
    };
    owner::check_domain(v, inv, &dom)?;
    Ok(Some(state))
}

fn state_of(v: &Virsh, inv: &Inventory, node: &str) -> anyhow::Result<NodeState> {
    Ok(match domain_state(v, inv, node)?.as_deref() {
        None => NodeState::Absent,
        Some("running" | "paused" | "in shutdown" | "blocked" | "idle") => NodeState::Running,
        Some(_) => NodeState::Stopped,
    })
}

/// The network: defined and started. On this machine an `open` network
/// (libvirt adds no rule of its own) closed by labctl's nft table and served
/// by the host's package cache, as for nspawn (see `host::network`). On a
/// remote hypervisor, libvirt's NAT, as before: its nodes reach the mirror
/// (and beyond) through the hypervisor; labctl's filter and cache are not
/// there.
fn ensure_network(v: &Virsh, inv: &Inventory, p: &dyn Progress) -> anyhow::Result<()> {
    let name = Names::new(inv).network();
    let file = paths::lab_dir(&inv.lab).join("network.xml");
    let state = v.object_state("net", &name)?;
    let nat = !v.is_local();
    if state.is_none() {
        v.define("net-define", &xml::network(inv, nat)?, &file)?;
    }
    if state != Some(true) {
        let r = v.call(&["net-start", &name], virsh::SHORT)?;
        if !r.ok {
            if !nat || !r.stderr.contains("firewall") {
                anyhow::bail!("`virsh net-start {name}` failed: {}", r.stderr.trim());
            }
            let why = r
                .stderr
                .lines()
                .find(|l| l.contains("firewall"))
                .unwrap_or("")
                .trim()
                .trim_start_matches("error: ")
                .to_string();
            v.run(&["net-undefine", &name])?;
            v.define("net-define", &xml::network(inv, false)?, &file)?;
            v.run(&["net-start", &name])?;
            p.line(&format!("warning: the hypervisor refuses libvirt's NAT rules ({why}): the nodes cannot reach a package mirror"));
        }
    }
    if v.is_local() {
        let xml_now = v.run(&["net-dumpxml", &name])?;
        if !xml_now.contains("mode='open'") {
            anyhow::bail!(
                "the libvirt network {name} of an older labctl forwards the lab to the outside\n  fix: `labctl destroy` the lab, then `labctl up` (the new network is closed)"
            );
        }
        network::ensure(inv)?;
        if inv.egress_nat {
            p.line(&format!(
                "warning: lab `{}` is open (egress: nat): its nodes reach the Internet through this machine",
                inv.lab
            ));
        }
    }
    Ok(())
}

fn vol_exists(v: &Virsh, pool: &str, vol: &str) -> anyhow::Result<bool> {
    Ok(v.vol_path(pool, vol)?.is_some())
}

/// Make what a node needs on the hypervisor (volumes, the domain); a node
/// whose root disk exists keeps it, its disks and its identity.
fn prepare_node(
    v: &Virsh,
    inv: &Inventory,
    node: &Node,
    boot: &xml::Boot,
    base_disk: &str,
    pubkey: &str,
    nameservers: &[String],
) -> anyhow::Result<()> {
    let names = Names::new(inv);
    let pool = names.pool();
    let root_vol = Names::root_vol(&node.name);
    let fresh = !vol_exists(v, &pool, &root_vol)?;
    let seed_vol = Names::seed_vol(&node.name);
    // the identity first, then the root disk: a root disk always has its seed
    if fresh {
        let img = seed::make(inv, node, pubkey, nameservers)?;
        if vol_exists(v, &pool, &seed_vol)? {
            v.run(&["vol-delete", "--pool", &pool, &seed_vol])?;
        }
        let size = std::fs::metadata(&img)?.len().to_string();
        v.run(&["vol-create-as", &pool, &seed_vol, &size, "--format", "raw"])?;
        v.run(&[
            "vol-upload",
            "--pool",
            &pool,
            &seed_vol,
            &img.to_string_lossy(),
        ])?;
        let _ = std::fs::remove_file(&img);
        v.run(&[
            "vol-create-as",
            &pool,
            &root_vol,
            image::ROOT_SIZE,
            "--format",
            "qcow2",
            "--backing-vol",
            base_disk,
            "--backing-vol-format",
            "qcow2",
        ])?;
    } else if !seed::host_key_pub(&inv.lab, &node.name).exists()
        || !vol_exists(v, &pool, &seed_vol)?
    {
        crate::user_bail!(
            "node {} has its disk but labctl lost its seed (its identity)\n  fix: `labctl up --fresh {}` rebuilds it from the image",
            node.name,
            node.name
        );
    }
    for (i, size) in node.vm.disks.iter().enumerate() {
        let vol = Names::disk_vol(&node.name, i);
        if !vol_exists(v, &pool, &vol)? {
            v.run(&[
                "vol-create-as",
                &pool,
                &vol,
                &size.0.to_string(),
                "--format",
                "qcow2",
            ])?;
        }
    }
    let file = seed::node_dir(&inv.lab, &node.name).join("domain.xml");
    v.define("define", &xml::domain(inv, node, boot), &file)?;
    Ok(())
}

/// The last lines of a node's serial console.
pub fn console_tail(v: &Virsh, inv: &Inventory, node: &str, n: usize) -> String {
    let text = if v.is_local() {
        std::fs::read_to_string(xml::console_path(inv, node)).unwrap_or_default()
    } else {
        let local = seed::node_dir(&inv.lab, node).join("console.log");
        let pool = Names::new(inv).pool();
        let _ = v.run(&["pool-refresh", &pool]);
        let _ = v.run(&[
            "vol-download",
            "--pool",
            &pool,
            &Names::console_vol(node),
            &local.to_string_lossy(),
        ]);
        std::fs::read_to_string(&local).unwrap_or_default()
    };
    let clean = process::strip_ansi(&text);
    let lines: Vec<&str> = clean.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn repin(inv: &Inventory, p: &dyn Progress) -> anyhow::Result<()> {
    for name in keys::pin_host_keys_from(inv, &|n| seed::host_key_pub(&inv.lab, n))? {
        p.line(&format!(
            "{name}: its host key changed; re-pinned the new key in {}",
            inv.ssh.known_hosts.display()
        ));
    }
    Ok(())
}

/// Create and boot `nodes` (running ones are left alone) and wait until each answers SSH.
pub fn up_nodes(inv: &Inventory, nodes: &[&Node], p: &dyn Progress) -> anyhow::Result<()> {
    let start = Instant::now();
    let v = checks(inv, "up")?;
    let _lock = paths::lock_lab(inv, p)?;
    if v.is_local() {
        preflight::subnet_free(inv)?;
    }
    let mut todo = Vec::new();
    for n in nodes {
        if state_of(&v, inv, &n.name)? != NodeState::Running {
            todo.push(*n);
        }
    }
    let pubkey = keys::ensure_lab_key(inv, p)?;
    let settings = inv
        .libvirt
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("internal error: libvirt lab without settings"))?;
    let accel = accel::choose(&v, settings.accel)?;
    p.line(&format!(
        "libvirt at {}: VMs run under {} ({})",
        v.uri,
        accel.label(),
        accel.why
    ));
    let img = image::ensure(&inv.preinstall, p)?;
    let uploaded = image::upload(&v, &img, p)?;
    preflight::claim(inv)?;
    // another machine's or project's network or pool of this name: refused
    // before anything is made
    owner::check_network(&v, inv)?;
    owner::check_pool(&v, inv, &lab_vols(&v, inv)?)?;
    ensure_network(&v, inv, p)?;
    ensure_pool(&v, &Names::new(inv).pool(), &lab_pool_path(&inv.lab))?;
    owner::check_pool(&v, inv, &lab_vols(&v, inv)?)?;
    repin(inv, p)?;
    if todo.is_empty() {
        fence::ensure(inv, nodes, p)?;
        p.line(&format!(
            "lab `{}` is up: every node was already running",
            inv.lab
        ));
        return Ok(());
    }
    // a local lab is closed like an nspawn one (no DNS beyond it unless
    // `egress: nat`); a remote hypervisor's lab has libvirt's NAT
    let nameservers = if v.is_local() {
        rootfs::nameservers(inv)
    } else {
        rootfs::host_nameservers()
    };
    let boot = xml::Boot {
        kernel: uploaded.kernel.clone(),
        initrd: uploaded.initrd.clone(),
        domain_type: accel.domain_type,
    };
    let labels: Vec<&str> = todo.iter().map(|n| n.name.as_str()).collect();
    p.start(&labels);
    for n in &todo {
        let state = state_of(&v, inv, &n.name)?;
        p.set(
            &n.name,
            if state == NodeState::Absent {
                "creating"
            } else {
                "booting (disks kept)"
            },
        );
        prepare_node(&v, inv, n, &boot, &uploaded.disk, &pubkey, &nameservers)
            .map_err(|e| anyhow::anyhow!("preparing node {}: {e:#}", n.name))?;
    }
    repin(inv, p)?;
    let names = Names::new(inv);
    let t_boot = Instant::now();
    for n in &todo {
        v.run(&["start", &names.domain(&n.name)])?;
        p.set(&n.name, &format!("booting under {}", accel.label()));
    }
    for n in &todo {
        crate::lab::ensure_safe_target(inv, n.address)?;
    }
    let alive = |n: &Node| -> anyhow::Result<()> {
        match state_of(&v, inv, &n.name)? {
            NodeState::Running => Ok(()),
            other => anyhow::bail!("its VM is {}", other.as_str()),
        }
    };
    let login = |n: &Node| super::sshcmd::check_login(inv, n).map(|_| ());
    let results = probe::wait_ssh(inv.jump(), &todo, BOOT_TIMEOUT, p, &login, &alive);
    super::boot_failures(&todo, results, &|n: &Node| {
        (
            xml::console_path(inv, &n.name),
            console_tail(&v, inv, &n.name, 15),
        )
    })?;
    fence::ensure(inv, nodes, p)?;
    p.line(&format!(
        "lab `{}` up: {} VM(s) under {} answer SSH; boot took {}, `up` took {}",
        inv.lab,
        todo.len(),
        accel.label(),
        super::secs(t_boot.elapsed()),
        super::secs(start.elapsed())
    ));
    Ok(())
}

/// Power one node off: ACPI poweroff waited for, or (`force`) at once.
fn power_off(v: &Virsh, inv: &Inventory, node: &str, force: bool) -> anyhow::Result<NodeState> {
    let before = state_of(v, inv, node)?;
    if before != NodeState::Running {
        return Ok(before);
    }
    let dom = Names::new(inv).domain(node);
    if force {
        v.run(&["destroy", &dom])?;
        return Ok(before);
    }
    v.run(&["shutdown", &dom, "--mode", "acpi"])?;
    let t = Instant::now();
    while state_of(v, inv, node)? == NodeState::Running {
        if t.elapsed() > HALT_TIMEOUT {
            anyhow::bail!(
                "did not power off within {} s of the ACPI request\n  fix: `labctl halt --force {node}` cuts the power",
                HALT_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(before)
}

/// Remove one node's domain and volumes, and its state here.
fn remove_node(v: &Virsh, inv: &Inventory, node: &str, vols: &[String]) -> anyhow::Result<bool> {
    let names = Names::new(inv);
    let dom = names.domain(node);
    let mut had = false;
    if let Some(state) = domain_state(v, inv, node)? {
        had = true;
        if state != "shut off" {
            v.run(&["destroy", &dom])?;
        }
        v.run(&["undefine", &dom])?;
    }
    let pool = names.pool();
    for vol in vols.iter().filter(|vol| Names::vol_is_nodes(vol, node)) {
        v.run(&["vol-delete", "--pool", &pool, vol])?;
        had = true;
    }
    let dir = seed::node_dir(&inv.lab, node);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
        had = true;
    }
    Ok(had)
}

/// The volumes of the lab's pool (none when there is no pool).
fn lab_vols(v: &Virsh, inv: &Inventory) -> anyhow::Result<Vec<String>> {
    let pool = Names::new(inv).pool();
    match v.object_state("pool", &pool)? {
        None => return Ok(Vec::new()),
        Some(false) => {
            v.run(&["pool-start", &pool])?;
        }
        Some(true) => {}
    }
    v.run(&["pool-refresh", &pool])?;
    // `vol-list` prints `NAME PATH` (labctl's volume names have no spaces)
    Ok(v.run(&["vol-list", "--pool", &pool])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect())
}

impl Provider for Libvirt {
    fn name(&self) -> &'static str {
        "libvirt"
    }
    fn jump(&self, inv: &Inventory) -> anyhow::Result<Option<crate::jump::Jump>> {
        Ok(inv.libvirt.as_ref().and_then(|l| l.jump.clone()))
    }
    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities {
            fencing: true,
            vm_hardware: true,
            // virsh asks the hypervisor, not the lab
            ..super::Capabilities::lab_bridge(
                "eth0",
                super::StatusPoll::Host(Duration::from_millis(500)),
            )
        }
    }
    fn inventory_rules(&self) -> crate::inventory::InventoryRules {
        crate::inventory::InventoryRules {
            machine_name_max: None,
            preinstall: Some("the VM image"),
            section: Some(crate::inventory::Section {
                key: "libvirt",
                settings: section::settings,
            }),
        }
    }

    fn check_running(&self, inv: &Inventory, node: &Node) -> anyhow::Result<()> {
        let v = virsh_of(inv);
        let state = state_of(&v, inv, &node.name)?;
        super::refuse_unless_running(node, state)
    }

    fn up(&self, inv: &Inventory, nodes: &[&Node], p: &dyn Progress) -> anyhow::Result<()> {
        up_nodes(inv, nodes, p)
    }

    /// The VM's NIC (by its MAC) loses its link live; the next boot has it back.
    fn set_link(&self, inv: &Inventory, node: &Node, plugged: bool) -> anyhow::Result<()> {
        let v = virsh_of(inv);
        let dom = Names::new(inv).domain(&node.name);
        let mac = xml::mac(&inv.lab, &node.name);
        v.run(&[
            "domif-setlink",
            &dom,
            &mac,
            if plugged { "up" } else { "down" },
        ])?;
        Ok(())
    }

    fn link(&self, inv: &Inventory, node: &Node) -> anyhow::Result<Option<Link>> {
        let v = virsh_of(inv);
        let dom = Names::new(inv).domain(&node.name);
        let out = v.run(&["domif-getlink", &dom, &xml::mac(&inv.lab, &node.name)])?;
        Ok(match out.split_whitespace().last() {
            Some("up") => Some(Link::Plugged),
            Some("down") => Some(Link::Unplugged),
            _ => None,
        })
    }

    fn status(&self, inv: &Inventory) -> anyhow::Result<Vec<NodeStatus>> {
        let v = virsh_of(inv);
        v.check_daemon()?;
        inv.nodes
            .iter()
            .map(|n| {
                let state = state_of(&v, inv, &n.name)?;
                Ok(NodeStatus::new(n, "libvirt", state))
            })
            .collect()
    }

    fn halt(
        &self,
        inv: &Inventory,
        nodes: &[&Node],
        force: bool,
        p: &dyn Progress,
    ) -> anyhow::Result<()> {
        let v = checks(inv, if force { "fail" } else { "halt" })?;
        let _lock = paths::lock_lab(inv, p)?;
        let words = power::Words {
            cut: "power cut (VM stopped at once)",
            off: "powered off (ACPI)",
        };
        power::halt_each(&inv.lab, nodes, force, words, p, &|n: &Node| {
            power_off(&v, inv, &n.name, force)
        })
    }

    fn destroy_nodes(
        &self,
        inv: &Inventory,
        nodes: &[&Node],
        p: &dyn Progress,
    ) -> anyhow::Result<()> {
        let v = checks(inv, "destroy")?;
        let _lock = paths::lock_lab(inv, p)?;
        let vols = lab_vols(&v, inv)?;
        for n in nodes {
            let t = Instant::now();
            if remove_node(&v, inv, &n.name, &vols)? {
                p.line(&format!(
                    "{}: destroyed in {} (domain and disks); `labctl up {}` rebuilds it from the image",
                    n.name,
                    super::secs(t.elapsed()),
                    n.name
                ));
            } else {
                p.line(&format!("{}: absent (never created)", n.name));
            }
        }
        keys::pin_host_keys_from(inv, &|n| seed::host_key_pub(&inv.lab, n))?;
        Ok(())
    }

    fn destroy(&self, inv: &Inventory, p: &dyn Progress) -> anyhow::Result<()> {
        let v = checks(inv, "destroy")?;
        let _lock = paths::lock_lab(inv, p)?;
        let start = Instant::now();
        let names = Names::new(inv);
        // every node the lab ever created, in the inventory or not
        let mut nodes: Vec<String> = std::fs::read_dir(paths::nodes_dir(&inv.lab))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        for n in &inv.nodes {
            if !nodes.contains(&n.name) {
                nodes.push(n.name.clone());
            }
        }
        // nothing is removed unless the network and pool of the lab's name are its own
        let vols = lab_vols(&v, inv)?;
        owner::check_network(&v, inv)?;
        owner::check_pool(&v, inv, &vols)?;
        fence::stop(inv, p);
        for n in &nodes {
            match domain_state(&v, inv, n)?.as_deref() {
                Some("shut off") => p.line(&format!("{n}: domain removed")),
                Some(_) => p.line(&format!("{n}: power cut, domain removed")),
                None => {}
            }
            remove_node(&v, inv, n, &vols)?;
        }
        let pool = names.pool();
        if v.object_state("pool", &pool)?.is_some() {
            // whatever is left in the lab's own pool is the lab's (console logs)
            for vol in lab_vols(&v, inv)? {
                v.run(&["vol-delete", "--pool", &pool, &vol])?;
            }
            v.run(&["pool-destroy", &pool])?;
            v.run(&["pool-delete", &pool])?;
            v.run(&["pool-undefine", &pool])?;
        }
        let net = names.network();
        if let Some(active) = v.object_state("net", &net)? {
            if active {
                v.run(&["net-destroy", &net])?;
            }
            v.run(&["net-undefine", &net])?;
        }
        if v.is_local() {
            network::remove(inv)?;
        }
        let lab_dir = paths::lab_dir(&inv.lab);
        if lab_dir.exists() {
            trash::discard(&lab_dir)?;
        }
        trash::remove_project_state(inv)?;
        p.line(&format!(
            "lab `{}` destroyed in {} (domains, volumes, network and pool of the lab; the image cache is kept)",
            inv.lab,
            super::secs(start.elapsed()),
        ));
        Ok(())
    }
}
