//! Running one operation on many students' labs: a thread per lab, at most
//! `parallel` at once, each lab's failure (or panic) its own, one progress
//! line per lab and one [`LabResult`] each. The operations themselves are
//! the same as the single-lab commands' (`up`, `configure`, `verify`, …),
//! called on each student's inventory.

use super::Member;
use crate::progress::Progress;
use crate::runner::events::{Event, Observer, Recap, Status};
use crate::scenario::Scenario;
use crate::verify::VerifyReport;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What an operation gives back for one lab.
#[derive(Debug, Clone)]
pub enum Outcome {
    Done(String),
    Configured(Recap),
    Verified(VerifyReport),
    Status(Vec<crate::providers::NodeStatus>),
}

impl Outcome {
    /// Whether the lab counts as a success (a failed host or check does not).
    pub fn ok(&self) -> bool {
        match self {
            Outcome::Configured(r) => r.success(),
            Outcome::Verified(r) => r.passed(),
            _ => true,
        }
    }

    /// One line: what happened.
    pub fn summary(&self) -> String {
        match self {
            Outcome::Done(s) => s.clone(),
            Outcome::Configured(r) => format!(
                "configured: {} host(s), changed={} failed={}",
                r.hosts.len(),
                r.changed,
                r.failed
            ),
            Outcome::Verified(r) => {
                let passed = r.checks.iter().filter(|c| c.passed).count();
                let mut s = format!("verify: {passed}/{} checks passed", r.checks.len());
                if let Some(ms) = r.failover_ms {
                    s.push_str(&format!(", failover {ms} ms"));
                }
                s
            }
            Outcome::Status(nodes) => {
                let running = nodes
                    .iter()
                    .filter(|n| n.state == crate::providers::NodeState::Running)
                    .count();
                format!("{running}/{} nodes running", nodes.len())
            }
        }
    }
}

/// One lab's result.
#[derive(Debug, Clone)]
pub struct LabResult {
    pub student: String,
    pub lab: String,
    pub secs: f64,
    /// The outcome, or why the lab failed.
    pub result: Result<Outcome, String>,
}

impl LabResult {
    pub fn ok(&self) -> bool {
        self.result.as_ref().is_ok_and(Outcome::ok)
    }
}

/// A lab's view of the class's progress: every message of its work goes to
/// its own line, labelled with the student.
struct LabLine<'a> {
    outer: &'a dyn Progress,
    label: &'a str,
}

impl Progress for LabLine<'_> {
    fn start(&self, _labels: &[&str]) {}
    fn set(&self, item: &str, msg: &str) {
        self.outer.set(self.label, &format!("{item}: {msg}"));
    }
    fn finish(&self, item: &str, msg: &str) {
        self.outer.set(self.label, &format!("{item}: {msg}"));
    }
    fn line(&self, msg: &str) {
        self.outer.set(self.label, msg);
    }
}

/// The operation run on one lab.
pub type LabOp<'a> = dyn Fn(&Member, &dyn Progress) -> anyhow::Result<Outcome> + Sync + 'a;

/// Run `op` on every member, at most `parallel` at once (at least 1); the
/// results in `members` order.
pub fn each(
    members: &[Member],
    parallel: usize,
    progress: &dyn Progress,
    op: &LabOp,
) -> Vec<LabResult> {
    let labels: Vec<&str> = members.iter().map(|m| m.student.as_str()).collect();
    progress.start(&labels);
    for m in members {
        progress.set(&m.student, &format!("{}: waiting", m.inv.lab));
    }
    let queue = Mutex::new(members.iter().enumerate().collect::<VecDeque<_>>());
    let results: Mutex<Vec<Option<LabResult>>> = Mutex::new(vec![None; members.len()]);
    let workers = parallel.max(1).min(members.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                crate::interrupt::block_in_this_thread();
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some((i, m)) = next else { break };
                let t0 = Instant::now();
                let line = LabLine {
                    outer: progress,
                    label: &m.student,
                };
                let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(m, &line)));
                let result = match res {
                    Ok(Ok(o)) => Ok(o),
                    Ok(Err(e)) => Err(crate::error::format_error(&e)),
                    Err(_) => Err("internal error: the lab's thread panicked".into()),
                };
                let r = LabResult {
                    student: m.student.clone(),
                    lab: m.inv.lab.clone(),
                    secs: t0.elapsed().as_secs_f64(),
                    result,
                };
                let word = if r.ok() { "ok" } else { "FAILED" };
                let what = match &r.result {
                    Ok(o) => o.summary(),
                    Err(e) => crate::text::one_line(e.lines().next().unwrap_or("")).to_string(),
                };
                progress.finish(
                    &m.student,
                    &format!("{}: {word}: {what} ({:.1} s)", r.lab, r.secs),
                );
                if let Ok(mut v) = results.lock() {
                    v[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// `up`: the lab's nodes made and booted, and the student's key on each
/// (again after a rebuild; once).
pub fn up(m: &Member, p: &dyn Progress) -> anyhow::Result<Outcome> {
    let mut inv = m.inv.clone();
    if !inv.preinstall_given && crate::providers::capabilities(&inv).derives_layer {
        inv.preinstall = crate::catalog::packages(&inv);
    }
    let _lock = crate::lock::LabLock::acquire(&inv, "class up")?;
    crate::providers::up(&inv, &[], p)?;
    if let Some(e) = &m.entry {
        p.line("the student's key on the nodes");
        let nodes: Vec<&crate::inventory::Node> = inv.nodes.iter().collect();
        let cmd = super::access::install_key_command(&inv, e);
        let out = crate::runner::adhoc::run(
            &inv,
            &nodes,
            &cmd,
            false,
            std::time::Duration::from_secs(30),
        )?;
        if let Some(bad) = out.iter().find(|o| !o.ok()) {
            anyhow::bail!(
                "cannot put the student's key on {}: {}{}",
                bad.node,
                bad.error.clone().unwrap_or_default(),
                bad.stderr.trim()
            );
        }
    }
    Ok(Outcome::Done(format!(
        "up: {} node(s) on {}",
        inv.nodes.len(),
        m.seat.subnet
    )))
}

/// Collects what a converge run tells: its failures, for the lab's line.
struct Collect(Arc<Mutex<Vec<String>>>);

impl Observer for Collect {
    fn event(&mut self, ev: Event) {
        if let Event::Task {
            host,
            task,
            status: Status::Failed | Status::Unreachable,
            what,
            ..
        } = ev
        {
            if let Ok(mut v) = self.0.lock() {
                v.push(format!("{host}: {task}: {what}"));
            }
        }
    }
}

/// `configure SCENARIO` on the lab; its failures are the lab's error.
pub fn configure(m: &Member, scenario_path: &Path, p: &dyn Progress) -> anyhow::Result<Outcome> {
    let inv = &m.inv;
    let scenario = Scenario::load(scenario_path, &inv.dir)?;
    let _lock = crate::lock::LabLock::acquire(inv, "class configure")?;
    p.line("converging");
    let failures = Arc::new(Mutex::new(Vec::new()));
    let opts = crate::runner::Options::default();
    let recap = crate::runner::run(inv, &scenario, &opts, Box::new(Collect(failures.clone())))?;
    let _ = crate::project::remember_scenario(&inv.state_dir(), &inv.dir, Some(scenario_path));
    if !recap.success() {
        let f = failures.lock().map(|v| v.join("; ")).unwrap_or_default();
        anyhow::bail!(
            "configure: changed={} failed={}: {f}",
            recap.changed,
            recap.failed
        );
    }
    Ok(Outcome::Configured(recap))
}

/// `verify` of the scenario the lab was last configured with (or `scenario`).
pub fn verify(
    m: &Member,
    scenario: Option<&Path>,
    opts: &crate::verify::VerifyOptions,
    p: &dyn Progress,
) -> anyhow::Result<Outcome> {
    let inv = &m.inv;
    let path = match scenario {
        Some(s) => s.to_path_buf(),
        None => match crate::project::last_scenario(&inv.state_dir(), &inv.dir)? {
            Some(s) => s,
            None => anyhow::bail!(
                "no scenario configured on lab {} yet (run `labctl class configure SCENARIO`)",
                inv.lab
            ),
        },
    };
    let scenario = Scenario::load(&path, &inv.dir)?;
    let report = crate::verify::run_checks_with(
        inv,
        &scenario,
        opts,
        &crate::checks::context::ProviderPower,
        &|e| match e {
            crate::verify::Event::Progress(msg) => p.line(msg),
            crate::verify::Event::Done(r) => p.line(&format!("{} done", r.name)),
        },
    )?;
    Ok(Outcome::Verified(report))
}

/// `status` of the lab's nodes.
pub fn status(m: &Member) -> anyhow::Result<Outcome> {
    Ok(Outcome::Status(crate::providers::status(&m.inv)?))
}

/// `snapshot save|restore NAME` on the lab.
pub fn snapshot(
    m: &Member,
    restore: bool,
    name: &str,
    p: &dyn Progress,
) -> anyhow::Result<Outcome> {
    let _lock = crate::lock::LabLock::acquire(&m.inv, "class snapshot")?;
    if restore {
        crate::providers::snapshots::restore(&m.inv, name, p)?;
        Ok(Outcome::Done(format!("restored `{name}`")))
    } else {
        crate::providers::snapshots::save(&m.inv, name, p)?;
        Ok(Outcome::Done(format!("saved `{name}`")))
    }
}

/// `destroy` of the lab (its state folder goes with it).
pub fn destroy(m: &Member, p: &dyn Progress) -> anyhow::Result<Outcome> {
    {
        let _lock = crate::lock::LabLock::acquire(&m.inv, "class destroy")?;
        crate::providers::destroy(&m.inv, p)?;
    }
    // the lock file is the last thing in the student's folder
    let state = m.inv.state_dir();
    if let Some(parent) = state.parent() {
        if crate::project::owned(parent, &state) {
            let _ = crate::project::remove_state_dir(&state, &|_| false);
        }
    }
    Ok(Outcome::Done("destroyed".into()))
}
