//! Ad-hoc commands: one shell command on many nodes at once (`labctl exec`,
//! like `ansible all -a`), over the same SSH transport as `configure` (the lab
//! key, pinned host keys, one session per node) and after the same lab safety
//! check. Returns each node's output; the CLI prints it grouped per node.

use crate::inventory::{Inventory, Node};
use crate::redact::Redactor;
use crate::transport::{ssh::Session, Remote};
use crate::user_bail;
use serde::Serialize;
use std::time::{Duration, Instant};

/// What the command did on one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeOutput {
    pub node: String,
    /// The command's exit status (`None`: it could not run; see `error`).
    pub rc: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Why the node could not run it (unreachable, host key refused…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub ms: u128,
}

impl NodeOutput {
    pub fn ok(&self) -> bool {
        self.rc == Some(0)
    }
}

/// The nodes `target` names: a node, a group, `all`, or several joined by `,`.
pub fn targets<'a>(inv: &'a Inventory, target: &str) -> anyhow::Result<Vec<&'a Node>> {
    match inv.select(target) {
        Ok(v) if !v.is_empty() => Ok(v),
        Ok(_) => user_bail!(
            "`{target}` names no node of {}\n  fix: use one of: {}",
            inv.path.display(),
            inv.known_patterns()
        ),
        Err(w) => user_bail!(
            "`{w}` is neither a node nor a group of {}{}\n  fix: use one of: {}",
            inv.path.display(),
            crate::suggest::hint(&w, inv.known_patterns().split(", ")),
            inv.known_patterns()
        ),
    }
}

/// The values of the inventory's secret variables, masked in every output.
fn redactor(inv: &Inventory) -> Redactor {
    let mut r = Redactor::new();
    let maps = std::iter::once(&inv.vars)
        .chain(inv.group_vars.values())
        .chain(inv.nodes.iter().map(|n| &n.vars));
    for m in maps {
        for name in &inv.secrets {
            if let Some(v) = m.get(name).and_then(|v| v.as_str()) {
                r.add(v);
            }
        }
    }
    r
}

/// Run `command` (a shell line, as root) on `nodes` in parallel, each stopped
/// (with all it started) after `limit`. Every node is checked to be this
/// lab's, locally reachable, before any is contacted.
pub fn run(
    inv: &Inventory,
    nodes: &[&Node],
    command: &str,
    insecure: bool,
    limit: Duration,
) -> anyhow::Result<Vec<NodeOutput>> {
    if command.trim().is_empty() {
        user_bail!(
            "no command given\n  fix: put it after `--`, e.g. `labctl exec all -- hostname`"
        );
    }
    crate::transport::ssh::check_key(inv)?;
    for n in nodes {
        crate::lab::ensure_safe_target(inv, n.address)?;
    }
    let secrets = redactor(inv);
    crate::redact::remember(&secrets);
    let one = |n: &Node| -> NodeOutput {
        let t0 = Instant::now();
        let target = crate::transport::ssh::Target::for_node(inv, n, insecure);
        let res = Session::connect(&target)
            .map_err(anyhow::Error::new)
            .and_then(|mut s| s.run(&crate::shell::Script::user_shell(command), limit));
        let mask = |s: &str| secrets.redact(s);
        match res {
            Ok(o) => NodeOutput {
                node: n.name.clone(),
                rc: Some(o.rc),
                stdout: mask(&o.stdout),
                stderr: mask(&o.stderr),
                error: None,
                ms: t0.elapsed().as_millis(),
            },
            Err(e) => NodeOutput {
                node: n.name.clone(),
                rc: None,
                stdout: String::new(),
                stderr: String::new(),
                error: Some(mask(&format!("{e:#}"))),
                ms: t0.elapsed().as_millis(),
            },
        }
    };
    Ok(std::thread::scope(|s| {
        let hs: Vec<_> = nodes
            .iter()
            .map(|n| {
                let one = &one;
                s.spawn(move || one(n))
            })
            .collect();
        hs.into_iter()
            .zip(nodes)
            .map(|(h, n)| {
                h.join().unwrap_or_else(|_| NodeOutput {
                    node: n.name.clone(),
                    rc: None,
                    stdout: String::new(),
                    stderr: String::new(),
                    error: Some("internal error: the worker thread panicked".into()),
                    ms: 0,
                })
            })
            .collect()
    }))
}
