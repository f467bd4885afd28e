//! `labctl verify`: prove the scenario works (the checks of its `verify:` section).

use super::Global;
use crate::redact::mask;
use crate::scenario::Scenario;
use crate::user_bail;
use crate::verify::{self, Event, ProviderPower, VerifyOptions};
use clap::Args;
use std::path::PathBuf;

/// Run the checks of a scenario's `verify:` section: DNS, HTTP, cluster, failover.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  labctl verify                                  # the scenario last applied with `configure`
  labctl verify scenarios/01-dns-round-robin.yaml
  labctl verify --json                           # one JSON object: passed, checks, failover_ms
  labctl verify --skip failover --skip service_recovery --skip node_down   # nothing disruptive
  labctl verify scenario.yaml --list             # the checks, rendered; runs none

Checks (in the scenario, like Ansible tasks: an optional `name:` and one check):
  verify:
    - dns: {server: dns, name: www.example.com, expect: [10.1.1.101, 10.1.1.102]}
    - dns: {server: dns, name: \"www.{{ domain }}\", round_robin: true}
    - http: {url: \"http://www.{{ domain }}/info.txt\", dns: dns, nodes: [nodo1, nodo2]}
    - cluster: {nodes: [nodo1, nodo2], resources: [VirtualIP]}
    - failover: {vip: \"{{ vip }}\", within: 2s}
    - service_recovery: {service: apache2, vip: \"{{ vip }}\", resource: WebServer, within: 30s}
    - node_down: {node: nodo1, within: 15s, checks: [{http: {url: \"http://www.{{ domain }}/info.txt\", dns: dns, nodes: [nodo2]}}]}
    - file_exists: {on: nodo1, path: /var/www/html/info.txt, contains: nodo1}
    - drbd: {resource: r0, nodes: [nodo1, nodo2], within: 3m}
    - data_failover: {vip: \"{{ vip }}\", dir: /var/www/html, resource: r0, members: [nodo1, nodo2], within: 30s}
    - fencing: {vip: \"{{ vip }}\", dir: /var/www/html, resource: r0, members: [nodo1, nodo2], within: 60s}
    - gfs2: {dir: /var/www/html, nodes: [nodo1, nodo2]}

`failover` cuts the power of the node serving the VIP (`labctl fail`), times the
switch to the other node, then brings the node back (`labctl up`). `node_down`
cuts the power of a node, runs its nested dns/http checks at 2 Hz until they all
pass, reports that time, then brings the node back. `data_failover` writes a
token onto the replicated disk, cuts the active node's power and times until the
other serves it; `fencing` cuts the active node's network cable instead
(`labctl unplug`) and passes only if the cluster powers it off (STONITH) before
the other serves the token. `gfs2` checks that a shared file system is GFS2 on
every node and that a file one node writes, the others read at once.

Exit codes: 0 every check passed, 1 a check failed, 2 bad input.")]
pub struct VerifyArgs {
    /// The scenario file (default: the one last applied with `configure`).
    #[arg(value_name = "SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Leave out the checks of a kind; repeatable.
    #[arg(long, value_name = "KIND", value_parser = clap::builder::PossibleValuesParser::new(crate::checks::CheckKind::NAMES))]
    pub skip: Vec<String>,
    /// Show the checks that would run (rendered), and run none.
    #[arg(long)]
    pub list: bool,
    /// Do not check SSH host keys (for existing hosts you trust; never needed for nspawn labs).
    #[arg(long = "insecure-no-host-key-check")]
    pub insecure: bool,
}

pub fn run(a: VerifyArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    // listing a named scenario's checks reads no lab state; everything else
    // reads root's .labctl/ (the last scenario, the lab key) or cuts power
    if !(a.list && a.scenario.is_some()) {
        super::need_root(&inv)?;
    }
    let path = match a.scenario {
        Some(p) => p,
        None => last_scenario(&inv)?,
    };
    let scenario = Scenario::load(&path, &inv.dir)?;
    let opts = VerifyOptions {
        insecure: a.insecure,
        skip: a.skip,
    };
    let json = g.json;
    let progress = !json || g.verbose > 0;
    if a.list {
        let checks = verify::list_checks(&inv, &scenario, &opts)?;
        if json {
            let v: Vec<serde_json::Value> = checks
                .iter()
                .map(|(name, kind)| serde_json::json!({"name": name, "kind": kind}))
                .collect();
            println!("{}", mask(&serde_json::json!({ "checks": v }).to_string()));
        } else {
            for (i, (name, kind)) in checks.iter().enumerate() {
                println!("{}", mask(&format!("{:>2}. [{kind}] {name}", i + 1)));
            }
        }
        return Ok(0);
    }
    let report = verify::run_checks_with(&inv, &scenario, &opts, &ProviderPower, &|e| match e {
        Event::Progress(msg) if progress => eprintln!("  .. {}", mask(msg)),
        Event::Progress(_) => {}
        Event::Done(r) if !json => println!("{}", mask(&r.line())),
        Event::Done(_) => {}
    })?;
    if json {
        println!("{}", mask(&report.json().to_string()));
    } else {
        println!("{}", mask(&report.summary()));
    }
    Ok(if report.passed() { 0 } else { 1 })
}

/// The scenario `configure` applied last (`.labctl/last-scenario`).
pub fn last_scenario(inv: &crate::inventory::Inventory) -> anyhow::Result<PathBuf> {
    match crate::project::last_scenario(&inv.state_dir(), &inv.dir)? {
        Some(p) => Ok(p),
        None => user_bail!(
            "no scenario given, and none was applied to lab `{}` yet ({} does not exist)\n  fix: name one, e.g. `labctl verify scenario.yaml`, or run `labctl configure scenario.yaml` first",
            inv.lab,
            inv.state_dir().join(crate::project::LAST_SCENARIO).display()
        ),
    }
}
