//! Prepare: for every selected host, render each play's tasks and handlers with
//! the host's variables. Runs before any host is touched, so an undefined
//! variable or a missing template fails the whole run early (exit 2).

use crate::inventory::{Inventory, Node};
use crate::ops::reach::Unreachable;
use crate::ops::{Op, PrepareCtx};
use crate::redact::Redactor;
use crate::scenario::{Scenario, Task};
use crate::templates::{host_vars, Facts, Templates};
use crate::user_bail;
use indexmap::IndexMap;
use std::sync::Mutex;

/// A task rendered for one host.
#[derive(Debug)]
pub struct PreparedTask {
    pub name: String,
    pub op: Box<dyn Op>,
    pub notify: Vec<String>,
    /// How long its change may run.
    pub timeout: std::time::Duration,
}

/// A play rendered for one host.
#[derive(Debug)]
pub struct PreparedPlay {
    /// The play's position in the scenario (plays run in this order on all hosts).
    pub index: usize,
    pub name: String,
    pub tasks: Vec<PreparedTask>,
    pub handlers: IndexMap<String, PreparedTask>,
}

/// Everything one host will do.
#[derive(Debug)]
pub struct HostPlan {
    pub node: Node,
    pub plays: Vec<PreparedPlay>,
}

/// Which hosts a run touches: every play's hosts, narrowed by `--limit`.
pub fn prepare(
    inv: &Inventory,
    scenario: &Scenario,
    limit: Option<&str>,
    redactor: &mut Redactor,
    check: bool,
) -> anyhow::Result<Vec<HostPlan>> {
    prepare_run(inv, scenario, limit, redactor, check, &Unreachable::new())
}

/// [`prepare`] for a run whose hosts share what they learn in `unreachable`
/// (`check`: a `--check` run).
pub fn prepare_run(
    inv: &Inventory,
    scenario: &Scenario,
    limit: Option<&str>,
    redactor: &mut Redactor,
    check: bool,
    unreachable: &Unreachable,
) -> anyhow::Result<Vec<HostPlan>> {
    scenario.check_lab(inv)?;
    // zone serials are the project's; a preview (`check`) never records one
    let templates = Templates::with_zone_serials(
        &inv.dir,
        &inv.dir.join("templates"),
        crate::serial::ZoneSerials::open(&inv.state_dir(), !check),
    );
    let facts = Facts::of(inv);
    let limited: Option<Vec<String>> = match limit {
        None => None,
        Some(l) => match inv.select(l) {
            Ok(v) => Some(v.into_iter().map(|n| n.name.clone()).collect()),
            Err(w) => user_bail!(
                "--limit: `{w}` is neither a node nor a group of {}{}\n  fix: use one of: {}",
                inv.path.display(),
                crate::suggest::hint(&w, inv.known_patterns().split(", ")),
                inv.known_patterns()
            ),
        },
    };
    let secret_names: Vec<&String> = inv.secrets.iter().chain(scenario.secrets.iter()).collect();
    let secrets = Mutex::new(std::mem::take(redactor));
    let mut plans: Vec<HostPlan> = Vec::new();
    let mut index_of: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (index, play) in scenario.plays.iter().enumerate() {
        let mut nodes: Vec<&Node> = Vec::new();
        for pattern in &play.hosts {
            match inv.select(pattern) {
                Ok(v) => nodes.extend(v),
                Err(w) => user_bail!(
                    "{}: hosts: `{w}` is neither a node nor a group of {}{}\n  fix: use one of: {}",
                    play.at,
                    inv.path.display(),
                    crate::suggest::hint(&w, inv.known_patterns().split(", ")),
                    inv.known_patterns()
                ),
            }
        }
        let state_dir = inv.state_dir();
        for node in nodes {
            if let Some(l) = &limited {
                if !l.contains(&node.name) {
                    continue;
                }
            }
            let vars = host_vars(inv, &facts, node, &scenario.vars, &play.vars, &templates)?;
            if let Ok(mut r) = secrets.lock() {
                crate::redact::add_named(&mut r, &vars, &secret_names);
            }
            let prep = |t: &Task| -> anyhow::Result<PreparedTask> {
                let ctx = PrepareCtx {
                    templates: &templates,
                    vars: &vars,
                    project_dir: &inv.dir,
                    state_dir: &state_dir,
                    at: &t.at,
                    secrets: &secrets,
                    unreachable,
                    check,
                };
                Ok(PreparedTask {
                    name: t.name.clone(),
                    op: t.op.prepare(&ctx)?,
                    notify: t.notify.clone(),
                    timeout: t.timeout.unwrap_or(crate::transport::TASK_LIMIT),
                })
            };
            let mut tasks = Vec::new();
            for t in &play.tasks {
                tasks.push(prep(t)?);
            }
            let tasks = merge_packages(tasks);
            let mut handlers = IndexMap::new();
            for (name, h) in &play.handlers {
                handlers.insert(name.clone(), prep(h)?);
            }
            let pp = PreparedPlay {
                index,
                name: play.name.clone(),
                tasks,
                handlers,
            };
            match index_of.get(&node.name) {
                Some(&i) => plans[i].plays.push(pp),
                None => {
                    index_of.insert(node.name.clone(), plans.len());
                    plans.push(HostPlan {
                        node: node.clone(),
                        plays: vec![pp],
                    })
                }
            }
        }
    }
    *redactor = secrets.into_inner().unwrap_or_default();
    crate::redact::remember(redactor);
    let order: std::collections::HashMap<&str, usize> = inv
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    plans.sort_by_key(|p| order.get(p.node.name.as_str()).copied());
    Ok(plans)
}

/// One apt transaction per play: later `package` tasks with the same state are
/// merged into the first one (their `notify` too).
fn merge_packages(tasks: Vec<PreparedTask>) -> Vec<PreparedTask> {
    let mut out: Vec<PreparedTask> = Vec::new();
    for t in tasks {
        if let Some(pkg) = t.op.as_package() {
            if let Some(first) = out.iter_mut().find(|o| {
                o.op.as_package()
                    .map(|p| p.state == pkg.state)
                    .unwrap_or(false)
            }) {
                let mut merged = first
                    .op
                    .as_package()
                    .cloned()
                    .unwrap_or_else(|| pkg.clone());
                merged.merge(pkg);
                first.name = format!("package {}", merged.names.join(" "));
                first.op = Box::new(merged);
                for n in t.notify {
                    if !first.notify.contains(&n) {
                        first.notify.push(n);
                    }
                }
                continue;
            }
        }
        out.push(t);
    }
    out
}
