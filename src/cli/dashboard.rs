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
time). Buttons, each confirmed, cut a node's power or boot it (as `labctl fail` / `labctl up`)
and stop or start the scenario's services. \"Open www through the lab\" fetches the site
through the lab's DNS, without touching this machine's resolver.

The probes send at most 10 requests a second to the lab in all, to lab addresses only.
Default: http://127.0.0.1:7070/ (another free port when that one is busy). Listening on
another address needs the random token the printed URL carries; actions always need the
page's token and its own Origin. Ctrl-C stops the server.

Examples:
  labctl dashboard                        # the scenario configured last
  labctl dashboard scenarios/01-dns-round-robin.yaml
  labctl dashboard --listen 0.0.0.0:8080  # for the classroom's projector: open the printed URL")]
pub struct DashboardArgs {
    /// The scenario whose services and checks the page shows (default: the last one configured).
    #[arg(value_name = "SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Where to listen (ADDR:PORT).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Do not check SSH host keys (for existing hosts you trust; never needed for nspawn labs).
    #[arg(long = "insecure-no-host-key-check")]
    pub insecure: bool,
}

pub fn run(a: DashboardArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    super::need_root(&inv)?;
    let listen = match &a.listen {
        None => None,
        Some(s) => Some(s.parse::<SocketAddr>().map_err(|_| {
            crate::error::user(format!(
                "--listen {s}: not an ADDR:PORT\n  fix: e.g. --listen 127.0.0.1:7070 or --listen 0.0.0.0:8080"
            ))
        })?),
    };
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
            println!("dashboard of {what}: {}", s.url);
            if s.token_in_url {
                println!("  the URL carries the access token: share it only with the class");
            }
            println!("  Ctrl-C stops it");
        },
    )?;
    eprintln!("dashboard stopped");
    Ok(0)
}
