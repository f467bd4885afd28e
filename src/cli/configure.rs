//! `labctl configure`: converge the nodes to a scenario (like `ansible-playbook`).

use super::Global;
use crate::lock::LabLock;
use crate::runner::{self, Options};
use crate::scenario::Scenario;
use clap::Args;
use std::path::PathBuf;

/// Converge the nodes to a scenario, idempotently: only what differs changes.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  labctl configure scenario.yaml                  # converge every node
  labctl configure scenario.yaml --check --diff   # show what would change, change nothing
  labctl configure scenarios/01-dns-round-robin.yaml --limit dns
  labctl configure scenario.yaml --json           # one JSON object with the recap
  labctl configure scenarios/03-haproxy.yaml --fresh   # switch: rebuild the nodes first

A second run reports changed=0, restarts nothing and writes nothing.
Switching scenarios: on a lab that last ran another scenario, configure first lists
what that one set up and this one does not manage (it stays on the nodes); `--fresh`
rebuilds the scenario's nodes from the image first (as `labctl up --fresh`: files
lost, new host keys pinned, bridge and lab key kept), so the result is that of fresh nodes.
Only one command changes a lab at a time: a second `configure` (or `up`, `halt`,
`destroy`) refuses while one runs. Ctrl-C stops starting tasks, lets the running
ones finish, prints the recap so far and exits 130; Ctrl-C again stops at once.
Exit codes: 0 no host failed, 1 a host failed or was unreachable (or the lab is
busy), 2 bad input, 130 interrupted.")]
pub struct ConfigureArgs {
    /// The scenario file.
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
    /// Report what would change without changing anything.
    #[arg(long)]
    pub check: bool,
    /// Show a unified diff for every file that changes (secrets are masked).
    #[arg(long)]
    pub diff: bool,
    /// Only these hosts: a node, a group, or several joined by `,`.
    #[arg(long, value_name = "HOST|GROUP")]
    pub limit: Option<String>,
    /// How many hosts to converge at once (default: all).
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 0)]
    pub jobs: usize,
    /// Rebuild the scenario's nodes (those of `--limit`) from the image first, as
    /// `labctl up --fresh` does: the result is that of fresh nodes.
    #[arg(long, conflicts_with = "check")]
    pub fresh: bool,
    /// Do not check host keys (for existing hosts you trust; never needed for nspawn labs).
    #[arg(long = "insecure-no-host-key-check")]
    pub insecure: bool,
    /// Read each task's state in a round trip of its own, as Ansible does (for
    /// scripts/bench: what one round trip per play saves).
    #[arg(long, hide = true)]
    pub probe_per_task: bool,
    /// Print when each phase of the run ends (for scripts/bench).
    #[arg(long, hide = true)]
    pub timing: bool,
}

pub fn run(a: ConfigureArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    // the lab key and pinned host keys are root's (provider nspawn)
    super::need_root(&inv)?;
    let scenario = Scenario::load(&a.scenario, &inv.dir)?;
    if scenario.plays.is_empty() {
        crate::user_bail!(
            "{}: the scenario has no plays, so configure has nothing to converge\n  fix: add `plays:` with `hosts:` and `tasks:` (see scenarios/ for examples), or run `labctl verify {}` for its checks",
            a.scenario.display(),
            a.scenario.display()
        );
    }
    // one command changes a lab at a time; `--check` changes nothing and takes no lock
    let _lock = if a.check {
        None
    } else {
        Some(LabLock::acquire(
            &inv,
            &format!("configure {}", a.scenario.display()),
        )?)
    };
    if a.fresh {
        let hosts = runner::hosts(&inv, &scenario, a.limit.as_deref())?;
        let made = super::with_scenario_packages(inv.clone());
        crate::providers::up_fresh(&made, &hosts, &super::progress::Draw::new())?;
    }
    crate::interrupt::install()?;
    if !a.fresh {
        switching_note(&inv, &scenario, g.json);
    }
    let opts = Options {
        check: a.check,
        diff: a.diff,
        limit: a.limit,
        jobs: a.jobs,
        insecure: a.insecure,
        change_output: g.verbose >= 2,
        probe_per_task: a.probe_per_task,
        timing: a.timing,
    };
    let reporter = super::report::Reporter::new(g.verbose, g.json);
    let recap = runner::run(&inv, &scenario, &opts, Box::new(reporter))?;
    if g.json {
        println!("{}", super::report::recap_json(&recap));
    } else {
        print!("{}", super::report::recap_text(&recap));
    }
    if crate::interrupt::interrupted() {
        return Ok(crate::interrupt::EXIT_CODE);
    }
    if !a.check {
        remember_scenario(&inv, &a.scenario);
    }
    Ok(if recap.success() { 0 } else { 1 })
}

/// When the lab last ran another scenario, list what that one left on the nodes.
fn switching_note(inv: &crate::inventory::Inventory, scenario: &Scenario, json: bool) {
    let Ok(Some(last)) = crate::project::last_scenario(&inv.state_dir(), &inv.dir) else {
        return;
    };
    if let Some(note) = runner::leftovers::note(inv, &last, scenario) {
        if json {
            eprintln!("{note}");
        } else {
            println!("{note}");
        }
    }
}

/// `labctl verify` with no argument uses the scenario last applied.
fn remember_scenario(inv: &crate::inventory::Inventory, scenario: &std::path::Path) {
    let _ = crate::project::remember_scenario(&inv.state_dir(), &inv.dir, Some(scenario));
}
