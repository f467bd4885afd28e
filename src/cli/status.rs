//! `labctl status`: each node's state.

use super::Global;
use clap::Args;

/// Show each node's state (running / stopped / absent), address and provider.
#[derive(Debug, Args)]
#[command(after_help = "\
States: running (booted; for provider ssh: answers SSH), stopped (halted, files kept),
absent (not created, or destroyed), unreachable (provider ssh: does not answer).
LINK: a running node's network cable, plugged or unplugged (`labctl unplug`/`plug`);
`-` where there is none to show (provider ssh, a node not running).

Examples:
  labctl status
  labctl status --json")]
pub struct StatusArgs {}

pub fn run(_a: StatusArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    let nodes = crate::providers::status(&inv)?;
    if g.json {
        let v = serde_json::json!({
            "lab": inv.lab,
            "provider": inv.provider.as_str(),
            "bridge": inv.provider.creates_nodes.then(|| inv.bridge_name()),
            "nodes": nodes,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let w = nodes.iter().map(|n| n.name.len()).max().unwrap_or(4).max(4);
    println!("lab `{}` (provider {})", inv.lab, inv.provider.as_str());
    println!(
        "{:w$}  {:11}  {:15}  {:9}  PID",
        "NODE", "STATE", "ADDRESS", "LINK"
    );
    for n in &nodes {
        println!(
            "{:w$}  {:11}  {:15}  {:9}  {}",
            n.name,
            n.state.as_str(),
            n.address,
            n.link.map(|l| l.as_str()).unwrap_or("-"),
            n.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
        );
    }
    Ok(0)
}
