//! `labctl dashboard`: serve the lab's live page until Ctrl-C.

use super::Global;
use crate::dashboard::{self, Options};
use crate::scenario::Scenario;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A live page of the lab: nodes, services, cluster, who answers www, events, faults.
#[derive(Debug, Args)]
#[command(after_help = "\
Serves one page (built into labctl: no CDN, no network) that shows, live: the nodes (state,
address, groups) and the scenario's services on each; the cluster (members, resources, the VIP
holder); a strip over the last minute of who answered `www` by DNS (the records' order) and by
HTTP (which node's info.txt); and an event log (power cuts, nodes back, failovers with their
time). A state not measured yet shows as unknown, with no button. Every text on the page is
masked like labctl's output (the values of `secrets:`). \"Open www through the lab\" fetches
the site through the lab's DNS, without touching this machine's resolver.

Two URLs are printed. The watch URL is for the class: it shows the page, read-only. The
operator's URL is for you alone: it also carries the action token (after `#`), and only a page
opened from it offers the buttons, each confirmed: cut a node's power or boot it (as `labctl fail`
/ `labctl up`), stop or start the scenario's services. Do not project or share it; whoever can
open it can cut power.

Default: http://127.0.0.1:7070/ (another free port when that one is busy): other users of this
machine can watch, only you can act. Off loopback (e.g. --listen 0.0.0.0:8080, for the class's
browsers) every request needs the read token the watch URLs carry, and the page is read-only
unless --actions is given. Listening on all addresses prints a watch URL for each address of
this machine.

Limits, whatever a client sends: a request head of at most 16 KiB and 48 lines, a body of 4 KiB,
10 s to send it; 256 connections waiting for their request (the oldest dropped first), 128
answered at once, 96 pages open at once. The probes send at most 10 requests a second to the lab
in all, to lab addresses only. Ctrl-C stops the server.

Examples:
  labctl dashboard                        # the scenario configured last
  labctl dashboard scenarios/01-dns-round-robin.yaml
  labctl dashboard --listen 0.0.0.0:8080  # for the class: share the printed watch URL
  labctl dashboard --listen 0.0.0.0:8080 --actions   # and act from your operator's URL")]
pub struct DashboardArgs {
    /// The scenario whose services and checks the page shows (default: the last one configured).
    #[arg(value_name = "SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Where to listen (ADDR:PORT; 0.0.0.0:PORT for every address of this machine).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Allow the actions (power, services) off loopback too, from the operator's URL only.
    #[arg(long)]
    pub actions: bool,
    /// Do not check SSH host keys (for existing hosts you trust; never needed for nspawn labs).
    #[arg(long = "insecure-no-host-key-check")]
    pub insecure: bool,
}

/// `--listen ADDR:PORT`, if given (the example names `port`).
pub fn parse_listen(listen: Option<&str>, port: u16) -> anyhow::Result<Option<SocketAddr>> {
    let Some(s) = listen else { return Ok(None) };
    let a = s.parse::<SocketAddr>().map_err(|_| {
        crate::error::user(format!(
            "--listen {s}: not an ADDR:PORT\n  fix: e.g. --listen 127.0.0.1:{port} or --listen 0.0.0.0:8080"
        ))
    })?;
    Ok(Some(a))
}

pub fn run(a: DashboardArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    super::need_root(&inv)?;
    let listen = parse_listen(a.listen.as_deref(), 7070)?;
    let path = match a.scenario {
        Some(p) => Some(p),
        None => crate::project::last_scenario(&inv.state_dir(), &inv.dir)?,
    };
    let scenario = match &path {
        Some(p) => Some(Scenario::load(p, &inv.dir)?),
        None => None,
    };
    crate::interrupt::install_for_server()?;
    let opts = Options {
        listen,
        insecure: a.insecure,
        actions: a.actions,
        action_token: None,
    };
    dashboard::run(
        &inv,
        scenario.as_ref(),
        &opts,
        &crate::interrupt::interrupted,
        &|s| {
            let what = match &scenario {
                Some(sc) => format!("lab `{}`, scenario {}", inv.lab, sc.name),
                None => format!("lab `{}` (no scenario configured yet: nodes only)", inv.lab),
            };
            println!("dashboard of {what}");
            for (i, u) in s.watch.iter().enumerate() {
                let label = if i == 0 { "watch:" } else { "      " };
                println!("  {label}   {u}");
            }
            if s.token_in_url {
                println!("           (the watch URL carries the read token: share it with the class only)");
            }
            match &s.operator {
                Some(u) => {
                    println!("  actions: {u}");
                    println!("           (yours alone: it can cut power; do not project or share it)");
                }
                None => println!(
                    "  actions: off (read-only off loopback; --actions to act from an operator's URL)"
                ),
            }
            println!("  Ctrl-C stops it");
        },
    )?;
    eprintln!("dashboard stopped");
    Ok(0)
}
