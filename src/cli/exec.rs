//! `labctl exec`: one command on many nodes at once (like `ansible all -a`).

use super::Global;
use clap::Args;

/// Run one shell command on many nodes at once (like `ansible all -a`), output per node.
#[derive(Debug, Args)]
#[command(after_help = "\
The command runs as root (through the lab user's sudo) over the same SSH connection as
`configure`: the lab key, the pinned host keys, and the lab safety check first. Every node
runs it at once; each node's output is printed together once all are done, under a header
with its exit status. Exit code: 0 when it succeeded on every node, 1 when it failed (or
could not run) on any, 2 bad input.

Examples:
  labctl exec all -- hostname
  labctl exec nodos -- systemctl is-active apache2
  labctl exec nodo1,dns -- 'ip -br addr | grep host0'
  labctl exec all --json -- uptime     # {\"nodes\": [{\"node\", \"rc\", \"stdout\", \"stderr\", \"ms\"}]}
  labctl exec dns --timeout 5 -- systemctl is-active named")]
pub struct ExecArgs {
    /// Where: a node, a group, `all`, or several joined by `,`.
    #[arg(value_name = "TARGET")]
    pub target: String,
    /// The command (a shell line; after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
    /// Stop the command (and all it started) on a node after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = crate::transport::TASK_LIMIT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
    /// Do not check host keys (for existing hosts you trust; never needed for nspawn labs).
    #[arg(long = "insecure-no-host-key-check")]
    pub insecure: bool,
}

pub fn run(a: ExecArgs, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    super::need_root(&inv)?;
    let nodes = crate::runner::adhoc::targets(&inv, &a.target)?;
    let limit = std::time::Duration::from_secs(a.timeout.max(1));
    let results = crate::runner::adhoc::run(&inv, &nodes, &a.command.join(" "), a.insecure, limit)?;
    let all_ok = results.iter().all(|r| r.ok());
    if g.json {
        println!("{}", serde_json::json!({ "nodes": results, "ok": all_ok }));
    } else {
        for r in &results {
            let status = match (&r.error, r.rc) {
                (Some(e), _) => format!("could not run: {e}"),
                (None, Some(0)) => "ok".to_string(),
                (None, Some(rc)) => format!("failed, exit status {rc}"),
                (None, None) => "failed".to_string(),
            };
            println!("== {} ({status}, {} ms)", r.node, r.ms);
            print!("{}", crate::text::printable(&with_newline(&r.stdout)));
            if !r.stderr.is_empty() {
                eprint!("{}", crate::text::printable(&with_newline(&r.stderr)));
            }
        }
        let failed: Vec<&str> = results
            .iter()
            .filter(|r| !r.ok())
            .map(|r| r.node.as_str())
            .collect();
        if !failed.is_empty() {
            eprintln!(
                "failed on {} of {} node(s): {}",
                failed.len(),
                results.len(),
                failed.join(", ")
            );
        }
    }
    Ok(if all_ok { 0 } else { 1 })
}

fn with_newline(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}
