//! Capacity: before `class up` builds anything, whether this host can hold
//! the class — from what one lab measurably costs and what the host has.
//!
//! load ([`Host::read`]: MemAvailable, the cores this process may use, the
//! labs already running = labctl's lab bridges) → plan ([`lab_cost`]: the
//! project's nodes at the measured per-node cost below; [`decide`]) → the CLI
//! refuses a class that does not fit (exit 2, the numbers and the fix) unless
//! `--force`.
//!
//! Memory counts only the labs still to build: the running ones are already
//! out of MemAvailable. CPU counts every lab on the host (running or new): an
//! idle HA lab is not idle (corosync passes its token several times a
//! second, pacemaker monitors the VIP), and the clusters' failure detection
//! (token 400 ms) needs CPU to spare, so all the labs' idle CPU together must
//! stay within [`CPU_BUDGET_PCT`] of the cores.

use crate::inventory::Inventory;

/// Memory of one container node of a converged `scenario.yaml` lab, MiB.
/// Measured by `scripts/bench-class` (2 cores, 24 GB, Debian 12,
/// 2026-12-07, N=20): a lab of 3 nodes holds 346 MiB of PSS (its nodes'
/// processes), and the host's MemAvailable fell by 379 MiB per lab (page
/// cache and kernel memory included: the figure that counts), rounded up.
pub const NODE_MEM_MIB: u64 = 130;

/// Idle CPU of one container node of a converged `scenario.yaml` lab, in
/// thousandths of a core (the lab's nodes' cgroup `cpu.stat` over the
/// bench's 10-minute soak, N=20): 45 per lab of 3 nodes with the VIP
/// monitored every 10 s (corosync ~40 of it, the DNS node 0); a 1 s monitor
/// made it 82-90.
pub const NODE_CPU_MILLICORES: u64 = 15;

/// inotify instances of root each container node holds: its systemd 5,
/// logind 1, agetty 1 (counted on a converged `scenario.yaml` node). The
/// nodes share the host's root (no user namespace), so all the labs together
/// must stay within `fs.inotify.max_user_instances` (the kernel's default,
/// 128, stops the 7th lab of 3 nodes: "Failed to allocate manager object:
/// Too many open files" on its console).
pub const NODE_INOTIFY: u64 = 7;

/// inotify instances kept for the host's own processes.
pub const HOST_INOTIFY_RESERVE: u64 = 16;

/// QEMU's own memory beside a VM node's declared memory (an estimate, not
/// measured here: the class density bench runs container labs).
pub const VM_OVERHEAD_MIB: u64 = 150;

/// How much of the cores the labs' idle CPU may take together: the rest is
/// for converging, `verify`'s failovers, the students' own work and the
/// clusters' timing margin. 20 labs (0.9 of 2 cores) held every VIP for 10
/// minutes with no spurious move, on a host kept 100% busy by compilers
/// beside them (corosync runs SCHED_RR in the nodes); 50% of 2 cores is 22
/// labs, so the estimate stays within what was measured.
pub const CPU_BUDGET_PCT: u64 = 50;

/// Memory kept free for the host itself and labctl's own work, MiB.
pub const HOST_RESERVE_MIB: u64 = 1024;

/// What one lab costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub mem_mib: u64,
    pub cpu_millicores: u64,
    /// inotify instances of root (container nodes; VMs hold none of the host's).
    pub inotify: u64,
}

/// What the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    pub mem_available_mib: u64,
    pub cores: u64,
    /// labctl labs running now (their bridges), this class's included.
    pub running_labs: u64,
    /// `fs.inotify.max_user_instances`, and how many root holds now.
    pub inotify_max: u64,
    pub inotify_used: u64,
}

/// The estimate for a class: what fits, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    pub cost: Cost,
    pub host: Host,
    /// Labs this `class up` would build.
    pub new_labs: u64,
    pub mem_need_mib: u64,
    pub cpu_need_millicores: u64,
    pub cpu_budget_millicores: u64,
    /// How many new labs would fit (memory, CPU and inotify).
    pub fit: u64,
    /// What runs out first.
    pub limit: Limit,
}

/// The resource that bounds a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Memory,
    Cpu,
    Inotify,
}

impl Estimate {
    pub fn fits(&self) -> bool {
        self.new_labs <= self.fit
    }

    /// The numbers, one line each.
    pub fn lines(&self) -> Vec<String> {
        let c = &self.cost;
        let h = &self.host;
        let gib = |m: u64| format!("{:.1} GiB", m as f64 / 1024.0);
        let cores = |m: u64| format!("{:.2} cores", m as f64 / 1000.0);
        vec![
            format!(
                "memory: {} new lab(s) x {} MiB = {} (+{} kept for the host); MemAvailable {}",
                self.new_labs,
                c.mem_mib,
                gib(self.new_labs * c.mem_mib),
                gib(HOST_RESERVE_MIB),
                gib(h.mem_available_mib)
            ),
            format!(
                "CPU: {} lab(s) ({} running + {} new) x {} millicores idle = {}; the clusters' timing needs it within {CPU_BUDGET_PCT}% of {} cores = {}",
                h.running_labs + self.new_labs,
                h.running_labs,
                self.new_labs,
                c.cpu_millicores,
                cores(self.cpu_need_millicores),
                h.cores,
                cores(self.cpu_budget_millicores)
            ),
            format!(
                "inotify: {} new lab(s) x {} instances of root = {}; fs.inotify.max_user_instances {}, {} in use",
                self.new_labs,
                c.inotify,
                self.new_labs * c.inotify,
                h.inotify_max,
                h.inotify_used
            ),
        ]
    }
}

/// Decide whether `new_labs` more labs of `cost` fit on `host`.
pub fn decide(cost: Cost, host: Host, new_labs: u64) -> Estimate {
    let mem_free = host.mem_available_mib.saturating_sub(HOST_RESERVE_MIB);
    let by_mem = mem_free / cost.mem_mib.max(1);
    let budget = host.cores * 10 * CPU_BUDGET_PCT;
    let by_cpu = (budget / cost.cpu_millicores.max(1)).saturating_sub(host.running_labs);
    let by_inotify = match cost.inotify {
        0 => u64::MAX,
        per => {
            let free = host
                .inotify_max
                .saturating_sub(host.inotify_used + HOST_INOTIFY_RESERVE);
            free / per
        }
    };
    let (fit, limit) = [
        (by_mem, Limit::Memory),
        (by_cpu, Limit::Cpu),
        (by_inotify, Limit::Inotify),
    ]
    .into_iter()
    .min_by_key(|(n, _)| *n)
    .unwrap_or((0, Limit::Memory));
    Estimate {
        cost,
        host,
        new_labs,
        mem_need_mib: new_labs * cost.mem_mib + HOST_RESERVE_MIB,
        cpu_need_millicores: (host.running_labs + new_labs) * cost.cpu_millicores,
        cpu_budget_millicores: budget,
        fit,
        limit,
    }
}

/// What one lab of `inv` costs: each node at the measured container figure,
/// or (a VM) its declared memory and QEMU's overhead.
pub fn lab_cost(inv: &Inventory) -> Cost {
    let vm = crate::providers::capabilities(inv).vm_hardware;
    let mem_mib = inv
        .nodes
        .iter()
        .map(|n| {
            if vm {
                n.vm.memory.mib() + VM_OVERHEAD_MIB
            } else {
                NODE_MEM_MIB
            }
        })
        .sum();
    let nodes = inv.nodes.len() as u64;
    Cost {
        mem_mib,
        cpu_millicores: nodes * NODE_CPU_MILLICORES,
        inotify: if vm { 0 } else { nodes * NODE_INOTIFY },
    }
}

impl Host {
    /// This host now: MemAvailable, the cores this process may run on, and
    /// the labctl labs whose bridge (`lab-NAME`) is up.
    pub fn read() -> anyhow::Result<Host> {
        let meminfo = std::fs::read_to_string("/proc/meminfo")
            .map_err(|e| anyhow::anyhow!("cannot read /proc/meminfo: {e}"))?;
        let Some(kib) = mem_available_kib(&meminfo) else {
            anyhow::bail!("/proc/meminfo has no MemAvailable line");
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let inotify_max = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(128);
        Ok(Host {
            mem_available_mib: kib / 1024,
            cores,
            running_labs: running_labs().len() as u64,
            inotify_max,
            inotify_used: root_inotify_instances(),
        })
    }
}

/// The estimate for `class up` of `students` (none: the whole roster): the
/// labs to build are the roster's students whose lab's bridge is not up.
/// A class that does not fit is refused (a user error: the numbers and the
/// fix) unless `force`; then the numbers come back as notes to print.
pub fn check(
    class: &super::Class,
    students: &[String],
    force: bool,
) -> anyhow::Result<Vec<String>> {
    let running = running_labs();
    let mut new_labs = 0;
    for s in class.roster.students.values() {
        if !students.is_empty() && !students.contains(&s.name) {
            continue;
        }
        let lab = match class.seats.seats.get(&s.name) {
            Some(seat) => seat.lab.clone(),
            None => class.roster.lab_name(s)?,
        };
        if !running.contains(&lab) {
            new_labs += 1;
        }
    }
    let cost = lab_cost(&class.project);
    let e = decide(cost, Host::read()?, new_labs);
    if e.fits() {
        return Ok(Vec::new());
    }
    let mut lines = e.lines();
    let why = format!(
        "this host cannot hold {new_labs} more lab(s) of {} ({} node(s) each, {} MiB and {} millicores idle per lab, as measured in README's *A class*); it holds {} more",
        class.project.path.display(),
        class.project.nodes.len(),
        cost.mem_mib,
        cost.cpu_millicores,
        e.fit
    );
    if force {
        lines.insert(0, format!("--force: {why}"));
        return Ok(lines);
    }
    let raise = match e.limit {
        Limit::Inotify => format!(
            "raise root's inotify instances first (`sysctl -w fs.inotify.max_user_instances={}`, and in /etc/sysctl.d/ to keep it; scripts/install-host-deps sets 4096), or ",
            (e.host.inotify_used + HOST_INOTIFY_RESERVE + new_labs * cost.inotify).next_power_of_two()
        ),
        Limit::Memory | Limit::Cpu => String::new(),
    };
    crate::user_bail!(
        "{}: {why}\n  {}\n  fix: {raise}fewer students at once (`labctl class up STUDENT…` for at most {} of them here), or put part of the class on another host (another project, or `provider: incus` on a cluster member), or a bigger host; `labctl class up --force` builds past the estimate (the clusters may then fail over by themselves)",
        class.roster.path.display(),
        lines.join("\n  "),
        e.fit
    );
}

/// The names of the labs whose bridge is up on this host.
pub fn running_labs() -> Vec<String> {
    let mut labs: Vec<String> = crate::lab::routes()
        .into_iter()
        .filter(|r| r.iface.starts_with("lab-") && crate::lab::is_labctl_bridge(&r.iface))
        .filter_map(|r| r.iface.strip_prefix("lab-").map(str::to_string))
        .collect();
    labs.sort();
    labs.dedup();
    labs
}

/// The inotify instances root's processes hold (what this process can see:
/// all of them as root): their `anon_inode:inotify` file descriptors.
fn root_inotify_instances() -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
    for p in procs.flatten() {
        if p.metadata().map_or(true, |m| m.uid() != 0) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        n += fds
            .flatten()
            .filter(|f| {
                std::fs::read_link(f.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:inotify")
            })
            .count() as u64;
    }
    n
}

/// `MemAvailable:` of a `/proc/meminfo` text, KiB.
fn mem_available_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: Cost = Cost {
        mem_mib: 600,
        cpu_millicores: 60,
        inotify: 21,
    };

    fn host(mem_gib: u64, cores: u64, running: u64) -> Host {
        Host {
            mem_available_mib: mem_gib * 1024,
            cores,
            running_labs: running,
            inotify_max: 4096,
            inotify_used: running * 21,
        }
    }

    #[test]
    fn a_class_fits_until_memory_or_cpu_runs_out() {
        // 4 cores: 2000 millicores for the clusters = 33 labs; 23 GiB: 37 labs
        let e = decide(LAB, host(23, 4, 0), 20);
        assert!(e.fits(), "{e:?}");
        assert_eq!((e.fit, e.limit), (33, Limit::Cpu));
        assert_eq!(e.cpu_need_millicores, 1200);
        // running labs take their share of the CPU
        let e = decide(LAB, host(23, 4, 20), 20);
        assert_eq!(e.fit, 13);
        assert!(!e.fits());
        assert_eq!(e.cpu_need_millicores, 2400);
        // memory is the limit on a small host with many cores
        let e = decide(LAB, host(4, 16, 0), 6);
        assert_eq!((e.fit, e.limit), (5, Limit::Memory), "(4096 - 1024) / 600");
        assert!(!e.fits());
        assert!(e.lines()[0].contains("6 new lab(s) x 600 MiB = 3.5 GiB"));
        // nothing to build always fits, even on a full host
        assert!(decide(LAB, host(0, 1, 40), 0).fits());
        // 500 labs fit nowhere near this machine
        let e = decide(LAB, host(23, 2, 0), 500);
        assert!(!e.fits());
        assert!(e.lines()[1].contains("500 lab(s) (0 running + 500 new)"));
    }

    #[test]
    fn the_kernels_default_inotify_limit_stops_a_class_of_twenty() {
        // 128 instances, 16 kept for the host, 21 per lab of 3 nodes
        let mut h = host(23, 2, 0);
        h.inotify_max = 128;
        let e = decide(LAB, h, 20);
        assert_eq!((e.fit, e.limit), (5, Limit::Inotify));
        assert!(e.lines()[2].contains("20 new lab(s) x 21 instances of root = 420"));
        // VM labs hold none of root's
        let vm = Cost { inotify: 0, ..LAB };
        assert_eq!(decide(vm, h, 20).limit, Limit::Cpu, "1000 / 60 = 16 labs");
    }

    #[test]
    fn a_container_lab_costs_its_nodes_measured_figure() {
        // the project's own default lab: nodo1, nodo2, dns
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.yaml");
        let inv = crate::providers::load_inventory(&p).unwrap();
        assert_eq!(
            lab_cost(&inv),
            Cost {
                mem_mib: 3 * NODE_MEM_MIB,
                cpu_millicores: 3 * NODE_CPU_MILLICORES,
                inotify: 3 * NODE_INOTIFY
            }
        );
    }

    #[test]
    fn reads_mem_available() {
        let t =
            "MemTotal:       24684000 kB\nMemFree:        1000 kB\nMemAvailable:   23612000 kB\n";
        assert_eq!(mem_available_kib(t), Some(23612000));
        assert_eq!(mem_available_kib("MemTotal: 1 kB\n"), None);
    }
}
