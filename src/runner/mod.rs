//! The runner: one worker per host (at most `-j` at once), one SSH session each.
//!
//! load → [`prepare`] (render everything, fail early) → connect → [`host::converge`]
//! per host in parallel → [`Recap`]. What happens on the way goes to an
//! [`Observer`] as [`Event`]s (the CLI prints them).

pub mod adhoc;
pub mod host;
pub mod leftovers;
pub mod prepare;

pub mod events;

use crate::inventory::Inventory;
use crate::scenario::Scenario;
use crate::transport::ssh::{check_key, ConnectError, Session, Target};
pub use events::{Event, Observer, Recap, Status};
use std::collections::VecDeque;

use std::sync::{mpsc, Mutex};
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
    /// Skip host key checks (existing hosts you trust).
    pub insecure: bool,
    /// A changed task's event carries all that its change printed (`-vv`),
    /// not only labctl's own notes.
    pub change_output: bool,
    /// Read each task's state in a round trip of its own, as Ansible does,
    /// instead of one per play (for `scripts/bench`: what the batched gather
    /// saves; the results are the same).
    pub probe_per_task: bool,
    /// Send [`Event::Timing`] at the end of each phase (for benchmarks).
    pub timing: bool,
}

/// A host of the run: what it will do, its run once connected.
struct Slot<'a> {
    plan: prepare::HostPlan,
    run: Option<host::HostRun<'a>>,
    /// The recap of a host that could not be reached.
    recap: host::HostRecap,
}

/// Run `f` on every item, at most `jobs` at once (0: all at once).
fn parallel<T: Send>(items: &mut [T], jobs: usize, f: impl Fn(&mut T) + Sync) {
    let mut refs: Vec<&mut T> = items.iter_mut().collect();
    parallel_refs(&mut refs, jobs, f);
}

fn parallel_refs<T: Send>(items: &mut Vec<&mut T>, jobs: usize, f: impl Fn(&mut T) + Sync) {
    let n = if jobs == 0 {
        items.len()
    } else {
        jobs.min(items.len())
    };
    let queue = Mutex::new(items.drain(..).collect::<VecDeque<&mut T>>());
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| loop {
                // Ctrl-C goes to the main thread, never into a blocking SSH read
                crate::interrupt::block_in_this_thread();
                let Some(item) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                    break;
                };
                f(item);
            });
        }
    });
}

/// The hosts a run of `scenario` touches (every play's hosts, narrowed by
/// `limit`), once its tasks are checked: input mistakes are errors (exit 2)
/// here too, so a caller can act on the hosts first (`configure --fresh`).
pub fn hosts(
    inv: &Inventory,
    scenario: &Scenario,
    limit: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let mut redactor = crate::redact::Redactor::new();
    let plans = prepare::prepare(inv, scenario, limit, &mut redactor, true)?;
    Ok(plans.into_iter().map(|p| p.node.name).collect())
}

/// Converge `scenario` on the inventory's nodes. Input mistakes are errors
/// (exit 2) before any host is touched; host failures are in the recap.
pub fn run(
    inv: &Inventory,
    scenario: &Scenario,
    opts: &Options,
    mut observer: Box<dyn Observer>,
) -> anyhow::Result<Recap> {
    let mut redactor = crate::redact::Redactor::new();
    let unreachable = crate::ops::reach::Unreachable::new();
    let plans = prepare::prepare_run(
        inv,
        scenario,
        opts.limit.as_deref(),
        &mut redactor,
        opts.check,
        &unreachable,
    )?;
    if plans.is_empty() {
        return Ok(Recap::default());
    }
    check_key(inv)?;
    for p in &plans {
        crate::lab::ensure_safe_target(inv, p.node.address)?;
    }

    let hosts: Vec<String> = plans.iter().map(|p| p.node.name.clone()).collect();
    let (tx, rx) = mpsc::channel::<Event>();
    let _ = tx.send(Event::Start {
        hosts,
        check: opts.check,
    });
    let printer = std::thread::spawn(move || observe(rx, observer.as_mut(), &redactor));

    let t0 = std::time::Instant::now();
    let lap = |what: &str| {
        if opts.timing {
            let _ = tx.send(Event::Timing {
                what: what.to_string(),
                ms: t0.elapsed().as_millis(),
            });
        }
    };

    // connect to every host (in parallel), keeping one session per host
    let mut slots: Vec<Slot> = plans
        .into_iter()
        .map(|plan| Slot {
            plan,
            run: None,
            recap: host::HostRecap::default(),
        })
        .collect();
    connect(inv, &mut slots, opts, &tx, &unreachable);

    lap("connected");

    // what the nodes are doing by themselves (a cluster recovering) is over
    // before any play reads their state
    parallel(&mut slots, opts.jobs, |slot| {
        if let Some(run) = slot.run.as_mut() {
            run.settle(&slot.plan);
        }
    });
    lap("settled");

    // plays in order, like Ansible: a play starts when the one before it has
    // finished on every host (so HAProxy starts after the web servers it checks)
    for idx in 0..scenario.plays.len() {
        if crate::interrupt::interrupted() {
            // no new play starts after Ctrl-C
            for slot in slots.iter_mut() {
                let more = slot.plan.plays.iter().any(|p| p.index >= idx);
                if let Some(run) = slot.run.as_mut().filter(|r| !r.stopped && more) {
                    run.interrupt(&[]);
                }
            }
            break;
        }
        let mut todo: Vec<&mut Slot> = slots
            .iter_mut()
            .filter(|s| s.run.as_ref().is_some_and(|r| !r.stopped))
            .filter(|s| s.plan.plays.iter().any(|p| p.index == idx))
            .collect();
        if todo.is_empty() {
            continue;
        }
        let _ = tx.send(Event::Play {
            name: scenario.plays[idx].name.clone(),
            hosts: todo.iter().map(|s| s.plan.node.name.clone()).collect(),
        });
        parallel_refs(&mut todo, opts.jobs, |slot| {
            if let (Some(run), Some(play)) = (
                slot.run.as_mut(),
                slot.plan.plays.iter().find(|p| p.index == idx),
            ) {
                run.run_play(play);
                // a host with nothing more to do is done now, not at the run's end
                if run.stopped || !slot.plan.plays.iter().any(|p| p.index > idx) {
                    run.finish();
                } else {
                    run.idle("waiting for the other hosts to finish the play");
                }
            }
        });
        lap(&format!(
            "play {} ({}) done",
            idx + 1,
            scenario.plays[idx].name
        ));
    }

    let recap = recap_of(slots, &tx);
    drop(tx);
    let _ = printer.join();
    Ok(recap)
}

/// Hand the run's events, masked, to `observer` (and tick it twice a
/// second) until every sender is gone.
fn observe(
    rx: mpsc::Receiver<Event>,
    observer: &mut dyn Observer,
    redactor: &crate::redact::Redactor,
) {
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(ev) => observer.event(ev.masked(redactor)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        observer.tick();
    }
    observer.finish();
}

/// Connect to every slot's host (in parallel), keeping one session per host;
/// a host that does not answer is marked unreachable for the whole run.
fn connect<'a>(
    inv: &Inventory,
    slots: &mut [Slot<'a>],
    opts: &'a Options,
    tx: &mpsc::Sender<Event>,
    unreachable: &crate::ops::reach::Unreachable,
) {
    parallel(slots, opts.jobs, |slot| {
        let name = slot.plan.node.name.clone();
        if crate::interrupt::interrupted() {
            slot.recap.interrupted = true;
            return;
        }
        let t = Target::for_node(inv, &slot.plan.node, opts.insecure);
        match Session::connect(&t) {
            Ok(sess) => {
                let total = slot.plan.plays.iter().map(|p| p.tasks.len()).sum();
                let mut run = host::HostRun::new(&name, Box::new(sess), opts, tx.clone(), total);
                run.share_unreachable(unreachable.clone());
                slot.run = Some(run);
            }
            Err(e) => {
                unreachable.mark(&name);
                let _ = tx.send(Event::Task {
                    host: name,
                    task: "connect".into(),
                    status: Status::Unreachable,
                    what: match &e {
                        ConnectError::Unreachable(m) | ConnectError::HostKey(m) => m.clone(),
                    },
                    diff: None,
                });
                slot.recap.unreachable = true;
            }
        }
    });
}

/// The run's recap: each host's, finishing the runs still open.
fn recap_of(slots: Vec<Slot>, tx: &mpsc::Sender<Event>) -> Recap {
    let mut recap = Recap::default();
    for slot in slots {
        match slot.run {
            Some(mut run) => {
                run.finish();
                recap.add(&slot.plan.node.name, run.recap.clone());
            }
            None => {
                let _ = tx.send(Event::Done {
                    host: slot.plan.node.name.clone(),
                    recap: slot.recap.clone(),
                });
                recap.add(&slot.plan.node.name, slot.recap);
            }
        }
    }
    recap
}
