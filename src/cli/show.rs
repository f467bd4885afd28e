//! `labctl show`: what a scenario does, without running it.

use super::Global;
use clap::Args;
use std::path::PathBuf;

/// Show a scenario's plays, hosts, tasks, handlers and checks, without running anything.
#[derive(Debug, Args)]
#[command(after_help = "\
Reads the scenario (and the inventory, when there is one, to say which nodes each play runs
on and to render the checks' names). Connects to nothing; needs no root and no running lab.

Examples:
  labctl show scenario.yaml
  labctl show scenarios/01-dns-round-robin.yaml
  labctl show scenarios/05-ip-failover-apache.yaml --json")]
pub struct ShowArgs {
    /// The scenario file.
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
}

pub fn run(a: ShowArgs, g: &Global) -> anyhow::Result<i32> {
    // an inventory that exists must load; without one the hosts stay as written
    let inv = if crate::inventory::Inventory::locate(&g.inventory).exists() {
        Some(super::load_inventory(g)?)
    } else {
        None
    };
    let project = inv
        .as_ref()
        .map(|i| i.dir.clone())
        .unwrap_or_else(|| super::project_dir(g));
    let scenario = crate::scenario::Scenario::load(&a.scenario, &project)?;
    let o = crate::catalog::outline(&scenario, inv.as_ref())?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&o)?);
        return Ok(0);
    }
    say!("scenario `{}` ({})", o.name, o.path.display());
    if !o.description.is_empty() {
        say!("  {}", o.description);
    }
    for (i, p) in o.plays.iter().enumerate() {
        let on = match &p.nodes {
            Some(n) => format!(" → {}", n.join(", ")),
            None => String::new(),
        };
        say!(
            "\nplay {}: {} (hosts: {}{on})",
            i + 1,
            p.name,
            p.hosts.join(", ")
        );
        for (j, t) in p.tasks.iter().enumerate() {
            say!(
                "  {:>2}. [{}] {}{}",
                j + 1,
                t.op,
                t.name,
                notifies(&t.notify)
            );
        }
        if !p.handlers.is_empty() {
            say!("  handlers:");
            for h in &p.handlers {
                say!("      [{}] {}", h.op, h.name);
            }
        }
    }
    if o.checks.is_empty() {
        say!("\nno checks (`verify:` is empty)");
    } else {
        say!("\nchecks (labctl verify):");
        for (i, c) in o.checks.iter().enumerate() {
            say!("  {:>2}. [{}] {}", i + 1, c.kind, c.name);
        }
    }
    Ok(0)
}

fn notifies(n: &[String]) -> String {
    if n.is_empty() {
        String::new()
    } else {
        format!(" → notifies {}", n.join(", "))
    }
}
