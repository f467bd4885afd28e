//! The runner: one worker per host (at most `-j` at once), one SSH session each.
//!
//! load → [`prepare`] (render everything, fail early) → connect → [`host::converge`]
//! per host in parallel → [`report::Recap`].

pub mod host;
pub mod prepare;
pub mod redact;
pub mod report;

use crate::inventory::{Inventory, Node};
use crate::scenario::Scenario;
use crate::transport::ssh::{check_key, ConnectError, Session, Target};
use report::{Event, Recap, Reporter, Status};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// How `configure` runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Report what would change; change nothing.
    pub check: bool,
    /// Show unified diffs of files.
    pub diff: bool,
    /// Only these hosts (a node, a group, or a list).
    pub limit: Option<String>,
    /// Hosts converged at once (0: all).
    pub jobs: usize,
    pub verbose: u8,
    pub json: bool,
    /// Skip host key checks (existing hosts you trust).
    pub insecure: bool,
}

/// The SSH target of a node.
pub fn target(inv: &Inventory, node: &Node, insecure: bool) -> Target {
    Target {
        name: node.name.clone(),
        addr: SocketAddr::new(node.address.into(), node.port),
        user: inv.ssh.user.clone(),
        key: inv.ssh.key.clone(),
        known_hosts: inv.ssh.known_hosts.clone(),
        insecure,
        connect_timeout: Duration::from_secs(inv.ssh.connect_timeout_secs),
    }
}

/// Converge `scenario` on the inventory's nodes. Input mistakes are errors
/// (exit 2) before any host is touched; host failures are in the recap.
pub fn run(inv: &Inventory, scenario: &Scenario, opts: &Options) -> anyhow::Result<Recap> {
    let mut redactor = redact::Redactor::new();
    let plans = prepare::prepare(inv, scenario, opts.limit.as_deref(), &mut redactor)?;
    if plans.is_empty() {
        return Ok(Recap::default());
    }
    check_key(&inv.ssh.key)?;
    for p in &plans {
        crate::lab::ensure_safe_target(inv, p.node.address)?;
    }

    let hosts: Vec<String> = plans.iter().map(|p| p.node.name.clone()).collect();
    let mut reporter = Reporter::new(&hosts, opts.verbose, opts.json, opts.check, redactor);
    let jobs = if opts.jobs == 0 {
        plans.len()
    } else {
        opts.jobs.min(plans.len())
    };
    let queue: Arc<Mutex<VecDeque<prepare::HostPlan>>> = Arc::new(Mutex::new(plans.into()));
    let (tx, rx) = mpsc::channel::<Event>();

    let mut recap = Recap::default();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let queue = Arc::clone(&queue);
            let tx = tx.clone();
            s.spawn(move || loop {
                let Some(plan) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                    break;
                };
                let name = plan.node.name.clone();
                let t = target(inv, &plan.node, opts.insecure);
                let r = match Session::connect(&t) {
                    Ok(mut sess) => host::converge(&plan, &mut sess, opts, &tx),
                    Err(e) => {
                        let _ = tx.send(Event::Task {
                            host: name.clone(),
                            task: "connect".into(),
                            status: Status::Unreachable,
                            what: match &e {
                                ConnectError::Unreachable(m) | ConnectError::HostKey(m) => {
                                    m.clone()
                                }
                            },
                            diff: None,
                        });
                        host::HostRecap {
                            unreachable: true,
                            ..Default::default()
                        }
                    }
                };
                let _ = tx.send(Event::Done {
                    host: name,
                    recap: r,
                });
            });
        }
        drop(tx);
        for ev in rx {
            if let Event::Done { host, recap: r } = &ev {
                recap.add(host, r.clone());
            }
            reporter.handle(ev);
        }
    });
    reporter.finish();
    // keep inventory order in the recap
    recap
        .hosts
        .sort_by_cached_key(|h, _| hosts.iter().position(|x| x == h));
    Ok(recap)
}
