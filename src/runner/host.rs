//! Converging one host, play by play: gather the play's state in one round
//! trip, plan each task, apply what differs, notify handlers, flush them at the
//! end of the play (also when a later task failed, so no notified restart is lost).

use super::events::{Event, Status};
use super::prepare::{PreparedPlay, PreparedTask};
use super::Options;
use crate::ops::{Change, Plan, Probe};
use crate::sh;
use crate::shell::Script;
use crate::transport::Remote;
use std::sync::mpsc::Sender;

/// Counts for the recap.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HostRecap {
    pub ok: u32,
    pub changed: u32,
    pub failed: u32,
    pub unreachable: bool,
    /// Stopped by Ctrl-C before its work was done (see [`crate::interrupt`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

/// One host's run: its session, counts and progress, kept across plays.
pub struct HostRun<'a> {
    remote: Box<dyn Remote + 'a>,
    opts: &'a Options,
    tx: Sender<Event>,
    host: String,
    pub recap: HostRecap,
    done: usize,
    total: usize,
    /// A task failed (or Ctrl-C): the host takes no part in later plays.
    pub stopped: bool,
    /// The connection broke: nothing more can run on this host.
    lost: bool,
    /// Where the run's hosts tell each other which of them are unreachable.
    unreachable: crate::ops::reach::Unreachable,
    /// `--check`: what earlier tasks would have changed (their probes cannot see it).
    would: crate::ops::Earlier,
    /// The reporter was told this host is done.
    finished: bool,
}

/// Join the probes of `tasks` into one script and split its output per task.
/// The probes' outputs are told apart by a marker line that is new for every
/// gather, so nothing a probe prints (a file's content, a CIB) can pass for
/// another task's state.
fn gather(remote: &mut dyn Remote, tasks: &[&PreparedTask]) -> anyhow::Result<Vec<Probe>> {
    let mark = format!("@@LABCTL-PROBE-{:016x} ", rand::random::<u64>());
    let mut script = Script::new();
    for (i, t) in tasks.iter().enumerate() {
        let p = t.op.probe();
        if p.is_empty() {
            continue;
        }
        script.line(sh!(
            "echo {}\n( {}\n) 2>/dev/null\necho {}\"$?\"",
            format!("{mark}{i}"),
            p,
            format!("{mark}rc=")
        ));
    }
    let mut probes = vec![Probe::default(); tasks.len()];
    if script.is_empty() {
        return Ok(probes);
    }
    let out = remote.run(&script, crate::transport::PROBE_LIMIT)?;
    let mut cur: Option<usize> = None;
    for line in out.stdout.lines() {
        if let Some(rest) = line.strip_prefix(mark.as_str()) {
            if let Some(rc) = rest.strip_prefix("rc=") {
                if let Some(i) = cur {
                    probes[i].rc = rc.trim().parse().unwrap_or(-1);
                }
                cur = None;
            } else {
                cur = rest.trim().parse().ok().filter(|i| *i < tasks.len());
            }
        } else if let Some(i) = cur {
            probes[i].out.push_str(line);
            probes[i].out.push('\n');
        }
    }
    if out.rc != 0 && out.stdout.is_empty() {
        anyhow::bail!(
            "reading state failed (exit {}): {}",
            out.rc,
            out.stderr.trim()
        );
    }
    Ok(probes)
}

impl<'a> HostRun<'a> {
    /// `total`: the number of tasks the host will run (for progress).
    pub fn new(
        host: &str,
        remote: Box<dyn Remote + 'a>,
        opts: &'a Options,
        tx: Sender<Event>,
        total: usize,
    ) -> HostRun<'a> {
        HostRun {
            remote,
            opts,
            tx,
            host: host.to_string(),
            recap: HostRecap::default(),
            done: 0,
            total,
            stopped: false,
            lost: false,
            unreachable: crate::ops::reach::Unreachable::new(),
            would: crate::ops::Earlier::default(),
            finished: false,
        }
    }

    /// Tell the run's other hosts when this one becomes unreachable (through `u`).
    pub fn share_unreachable(&mut self, u: crate::ops::reach::Unreachable) {
        self.unreachable = u;
    }

    /// Run one play's tasks, then the handlers they notified. A failure stops the host.
    pub fn run_play(&mut self, play: &PreparedPlay) {
        let mut notified: Vec<String> = Vec::new();
        let tasks: Vec<&PreparedTask> = play.tasks.iter().collect();
        let failed = self.run_tasks(&tasks, &mut notified);
        // handlers: once each, in the order they are declared, even after a failure
        let handlers: Vec<&PreparedTask> = play
            .handlers
            .iter()
            .filter(|(name, _)| notified.contains(name))
            .map(|(_, h)| h)
            .collect();
        let mut handler_failed = false;
        let mut handlers_started = 0;
        if !handlers.is_empty() && self.lost {
            let names: Vec<&str> = handlers.iter().map(|h| h.name.as_str()).collect();
            self.event(
                "handlers",
                Status::Unreachable,
                format!("notified handlers not run: {}", names.join(", ")),
                None,
            );
        } else if !handlers.is_empty() && !self.recap.interrupted {
            self.total += handlers.len();
            if self.opts.check {
                for h in &handlers {
                    self.recap.changed += 1;
                    self.done += 1;
                    self.event(&h.name, Status::Changed, "handler (would run)".into(), None);
                }
            } else {
                let before = self.done;
                handler_failed = self.run_tasks(&handlers, &mut Vec::new());
                handlers_started = self.done - before;
            }
        }
        self.stopped = failed || handler_failed;
        if self.recap.interrupted {
            let pending: Vec<&str> = handlers
                .iter()
                .skip(handlers_started)
                .map(|h| h.name.as_str())
                .collect();
            self.interrupt(&pending);
        }
    }

    /// Stop this host after Ctrl-C, saying which notified handlers never ran
    /// (the next run will not notify them again: their files are already new).
    pub fn interrupt(&mut self, pending_handlers: &[&str]) {
        self.recap.interrupted = true;
        self.stopped = true;
        let what = if pending_handlers.is_empty() {
            String::new()
        } else {
            format!("notified handlers not run: {}", pending_handlers.join(", "))
        };
        self.event("stopped by Ctrl-C", Status::Interrupted, what, None);
    }

    /// Before the first play: wait (each script bounds itself) for what the
    /// node does by itself that the host's operations manage, so their probes
    /// read the state it leaves (see [`crate::ops::Op::settle`]). Skipped
    /// quietly when it cannot run: the plays' own reads will tell.
    pub fn settle(&mut self, plan: &super::prepare::HostPlan) {
        let mut seen: Vec<&'static str> = Vec::new();
        for play in &plan.plays {
            for t in play.tasks.iter().chain(play.handlers.values()) {
                let Some((what, script)) = t.op.settle() else {
                    continue;
                };
                if seen.contains(&what) || crate::interrupt::interrupted() {
                    continue;
                }
                seen.push(what);
                self.idle(&format!("waiting for {what} to settle"));
                let Ok(out) = self.remote.run(&script, crate::transport::SETTLE_LIMIT) else {
                    continue;
                };
                let waited = out
                    .stdout
                    .lines()
                    .filter_map(|l| l.strip_prefix("waited "))
                    .find_map(|ms| ms.trim().parse::<u64>().ok());
                if let Some(ms) = waited {
                    let _ = self.tx.send(Event::Settled {
                        host: self.host.clone(),
                        what: what.to_string(),
                        ms,
                    });
                }
            }
        }
    }

    /// Tell the reporter this host is finished (once).
    pub fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let _ = self.tx.send(Event::Done {
            host: self.host.clone(),
            recap: self.recap.clone(),
        });
    }

    /// Tell the reporter no task runs on this host for now, and why.
    pub fn idle(&self, why: &str) {
        let _ = self.tx.send(Event::Idle {
            host: self.host.clone(),
            why: why.to_string(),
        });
    }

    fn event(&self, task: &str, status: Status, what: String, diff: Option<String>) {
        let _ = self.tx.send(Event::Task {
            host: self.host.clone(),
            task: task.to_string(),
            status,
            what,
            diff,
        });
    }

    fn progress(&self, task: &str) {
        let _ = self.tx.send(Event::Progress {
            host: self.host.clone(),
            done: self.done,
            total: self.total,
            task: task.to_string(),
        });
    }

    fn diff_text(&mut self, c: &Change) -> Option<String> {
        let d = c.diff.as_ref()?;
        if !self.opts.diff {
            return None;
        }
        if d.secret {
            return Some(format!(
                "--- {}\n+++ {}\n(content not shown: the file holds a secret)\n",
                d.path, d.path
            ));
        }
        let old = if d.exists {
            match self
                .remote
                .run(&sh!("cat -- {}", d.path), crate::transport::PROBE_LIMIT)
            {
                Ok(o) if o.rc == 0 => o.stdout,
                _ => String::new(),
            }
        } else {
            String::new()
        };
        let text = similar::TextDiff::from_lines(&old, &d.new)
            .unified_diff()
            .context_radius(3)
            .header(
                &if d.exists {
                    format!("{} (before)", d.path)
                } else {
                    "/dev/null".into()
                },
                &format!("{} (after)", d.path),
            )
            .to_string();
        Some(text)
    }

    /// Report a failed task; a lost connection makes the host unreachable
    /// (like a host that could not be reached at all), not a failed task.
    fn task_failed(&mut self, task: &str, msg: String) {
        if self.lost {
            self.recap.unreachable = true;
            self.unreachable.mark(&self.host);
            self.event(task, Status::Unreachable, msg, None);
        } else {
            self.recap.failed += 1;
            self.unreachable.mark_stopped(&self.host);
            self.event(task, Status::Failed, msg, None);
        }
    }

    /// Plan and apply one task. Returns Ok(Some(changed)), Ok(None) when its
    /// state must be read again ([`Plan::Wait`]), or Err(message) for a failed task.
    fn run_task(&mut self, t: &PreparedTask, probe: &Probe) -> Result<Option<bool>, String> {
        let plan = if self.opts.check {
            self.plan_in_check(t, probe)
        } else {
            t.op.plan(probe)
        };
        let plan = plan.map_err(|e| crate::error::format_error(&e))?;
        match plan {
            Plan::Ok => {
                self.recap.ok += 1;
                self.event(&t.name, Status::Ok, String::new(), None);
                Ok(Some(false))
            }
            Plan::Wait(why) => {
                self.progress(&format!("{} ({why})", t.name));
                Ok(None)
            }
            Plan::Change(c) => {
                let mut diff = self.diff_text(&c);
                if !self.opts.check {
                    let out = self.remote.run(&c.script, t.timeout).map_err(|e| {
                        self.lost |= crate::transport::is_connection_lost(&e);
                        format!("{e:#}")
                    })?;
                    if out.rc != 0 {
                        let mut msg = format!("{} failed (exit {})", c.what, out.rc);
                        let detail = format!("{}{}", out.stdout, out.stderr);
                        let tail: Vec<&str> = detail.lines().rev().take(15).collect();
                        if !tail.is_empty() {
                            msg.push_str(":\n    ");
                            msg.push_str(
                                &tail.into_iter().rev().collect::<Vec<_>>().join("\n    "),
                            );
                        }
                        return Err(msg);
                    }
                    // -vv: what the change printed; else only labctl's own notes
                    // (e.g. a wait for the apt lock, an interrupted dpkg run finished)
                    let printed = format!("{}{}", out.stdout, out.stderr);
                    let notes: Vec<&str> = printed
                        .lines()
                        .filter(|l| l.starts_with("labctl: "))
                        .collect();
                    if self.opts.change_output && !printed.trim().is_empty() {
                        let text = diff.take().unwrap_or_default() + printed.trim_end();
                        diff = Some(text);
                    } else if !notes.is_empty() {
                        let text = diff.take().unwrap_or_default() + &notes.join("\n");
                        diff = Some(text);
                    }
                }
                self.recap.changed += 1;
                self.event(&t.name, Status::Changed, c.what, diff);
                Ok(Some(true))
            }
        }
    }

    /// `--check`: plan with what earlier tasks would have changed, and remember
    /// what this one would. A task that cannot be planned on the node as it is
    /// now, while earlier tasks would change it, is reported as depending on them
    /// (not as failed): the preview goes on to show the whole run.
    fn plan_in_check(&mut self, t: &PreparedTask, probe: &Probe) -> anyhow::Result<Plan> {
        let mut probe = probe.clone();
        probe.earlier = self.would.clone();
        let plan = match t.op.plan(&probe) {
            Err(e) if self.would.changes > 0 && crate::error::exit_code(&e) != 2 => {
                let first = format!("{e:#}");
                let first = first.lines().next().unwrap_or_default().to_string();
                Plan::of(
                    vec![format!(
                        "depends on earlier changes (on the node as it is now: {first})"
                    )],
                    Script::new(),
                )
            }
            other => other?,
        };
        if let Plan::Change(c) = &plan {
            self.would.changes += 1;
            if let Some(p) = t.op.as_package() {
                if p.state == crate::ops::package::State::Present {
                    for n in &p.names {
                        if !self.would.packages.contains(n) {
                            self.would.packages.push(n.clone());
                        }
                    }
                }
            }
            if let Some(d) = &c.diff {
                self.would.files.push(d.path.clone());
            }
        }
        Ok(plan)
    }

    /// Run a list of tasks in order; state is re-read after each change.
    /// Returns the handlers notified and whether a task failed.
    fn run_tasks(&mut self, tasks: &[&PreparedTask], notified: &mut Vec<String>) -> bool {
        let mut probes: Option<Vec<Probe>> = None;
        let mut base = 0;
        for (i, t) in tasks.iter().enumerate() {
            if crate::interrupt::interrupted() {
                // no new task (or handler) starts after Ctrl-C
                self.recap.interrupted = true;
                return true;
            }
            self.progress(&t.name);
            let res = loop {
                if probes.is_none() || (self.opts.probe_per_task && i > base) {
                    let upto = if self.opts.probe_per_task {
                        i + 1
                    } else {
                        tasks.len()
                    };
                    match gather(self.remote.as_mut(), &tasks[i..upto]) {
                        Ok(p) => {
                            probes = Some(p);
                            base = i;
                        }
                        Err(e) => {
                            self.lost |= crate::transport::is_connection_lost(&e);
                            self.task_failed(&t.name, format!("{e:#}"));
                            return true;
                        }
                    }
                }
                let probe = probes
                    .as_ref()
                    .map(|p| p[i - base].clone())
                    .unwrap_or_default();
                match self.run_task(t, &probe) {
                    // not there yet (the op bounds the wait): read the state again
                    Ok(None) => {
                        probes = None;
                        if crate::interrupt::interrupted() {
                            self.recap.interrupted = true;
                            return true;
                        }
                    }
                    Ok(Some(changed)) => break Ok(changed),
                    Err(msg) => break Err(msg),
                }
            };
            self.done += 1;
            match res {
                Ok(true) => {
                    for n in &t.notify {
                        if !notified.contains(n) {
                            notified.push(n.clone());
                        }
                    }
                    // what this change did may alter the state later tasks read
                    probes = None;
                }
                Ok(false) => {}
                Err(msg) => {
                    self.task_failed(&t.name, msg);
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Output;

    /// A fake node: records scripts, answers probes from a closure.
    struct Fake {
        scripts: Vec<String>,
    }
    impl Remote for Fake {
        fn run(&mut self, script: &Script, _limit: std::time::Duration) -> anyhow::Result<Output> {
            let script = script.as_str();
            self.scripts.push(script.to_string());
            let mut out = String::new();
            for line in script.lines() {
                // echo '@@LABCTL-PROBE-<nonce> <i>'
                if let Some(r) = line.strip_prefix("echo '@@LABCTL-PROBE-") {
                    let (nonce, i) = r.trim_end_matches('\'').split_once(' ').unwrap();
                    let mark = format!("@@LABCTL-PROBE-{nonce} ");
                    out += &format!("{mark}{i}\ntype=absent\n{mark}rc=0\n");
                }
            }
            Ok(Output {
                stdout: out,
                stderr: String::new(),
                rc: 0,
            })
        }
    }

    /// A template task writing an empty file to `dest`, notifying `notify`.
    fn template_task(dest: &str, notify: &[&str]) -> PreparedTask {
        use crate::ops::content::ManagedFile;
        use crate::ops::template::Template;
        PreparedTask {
            name: dest.into(),
            op: Box::new(Template(ManagedFile {
                dest: dest.into(),
                content: vec![],
                owner: None,
                group: None,
                mode: None,
                secret: false,
            })),
            notify: notify.iter().map(|n| n.to_string()).collect(),
            timeout: crate::transport::TASK_LIMIT,
        }
    }

    #[test]
    fn gather_splits_output_per_task() {
        let (a, b) = (template_task("/a", &[]), template_task("/b", &[]));
        let mut f = Fake { scripts: vec![] };
        let p = gather(&mut f, &[&a, &b]).unwrap();
        assert_eq!(f.scripts.len(), 1, "one round trip for the whole play");
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].out, "type=absent\n");
    }

    #[test]
    fn a_probe_cannot_print_another_tasks_state() {
        // a probe whose output holds a fixed marker line claims nothing
        struct Liar;
        impl Remote for Liar {
            fn run(&mut self, script: &Script, _l: std::time::Duration) -> anyhow::Result<Output> {
                let script = script.as_str();
                let mark = script
                    .lines()
                    .find_map(|l| l.strip_prefix("echo '"))
                    .and_then(|l| l.rsplit_once(' '))
                    .map(|(m, _)| m.to_string())
                    .unwrap();
                Ok(Output {
                    stdout: format!(
                        "{mark} 0\n@@LABCTL-PROBE 1\ntype=file\n{mark} rc=0\n{mark} 1\ntype=absent\n{mark} rc=0\n"
                    ),
                    stderr: String::new(),
                    rc: 0,
                })
            }
        }
        let (a, b) = (template_task("/a", &[]), template_task("/b", &[]));
        let p = gather(&mut Liar, &[&a, &b]).unwrap();
        assert_eq!(p[1].out, "type=absent\n");
        assert!(p[0].out.contains("@@LABCTL-PROBE 1"));
    }

    /// A node that dies after its first change: reading the state again breaks.
    struct Dying {
        calls: usize,
    }
    impl Remote for Dying {
        fn run(&mut self, script: &Script, limit: std::time::Duration) -> anyhow::Result<Output> {
            let script = script.as_str();
            self.calls += 1;
            if self.calls > 2 {
                return Err(crate::transport::ConnectionLost("Timed out".into()).into());
            }
            Fake { scripts: vec![] }.run(&Script::user_shell(script), limit)
        }
    }

    #[test]
    fn a_connection_lost_mid_play_makes_the_host_unreachable_and_skips_its_handlers() {
        use crate::ops::content::ManagedFile;
        use crate::ops::template::Template;
        let mk = |d: &str, notify: Vec<String>| PreparedTask {
            name: d.into(),
            op: Box::new(Template(ManagedFile {
                dest: d.into(),
                content: b"x".to_vec(),
                owner: None,
                group: None,
                mode: None,
                secret: false,
            })),
            notify,
            timeout: crate::transport::TASK_LIMIT,
        };
        let mut handlers = indexmap::IndexMap::new();
        handlers.insert("h".to_string(), mk("/h", vec![]));
        let play = PreparedPlay {
            index: 0,
            name: "p".into(),
            tasks: vec![mk("/a", vec!["h".into()]), mk("/b", vec![])],
            handlers,
        };
        let opts = Options::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut run = HostRun::new("n1", Box::new(Dying { calls: 0 }), &opts, tx, 2);
        run.run_play(&play);
        assert!(run.stopped);
        assert!(run.recap.unreachable, "{:?}", run.recap);
        assert_eq!(run.recap.failed, 0, "{:?}", run.recap);
        drop(run);
        let events: Vec<(String, Status, String)> = rx
            .try_iter()
            .filter_map(|e| match e {
                Event::Task {
                    task, status, what, ..
                } => Some((task, status, what)),
                _ => None,
            })
            .collect();
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events[0].1, Status::Changed, "{events:?}");
        assert_eq!(events[1].1, Status::Unreachable, "{events:?}");
        assert!(events[1].2.contains("connection lost"), "{events:?}");
        assert_eq!(events[2].1, Status::Unreachable, "{events:?}");
        assert!(
            events[2].2.contains("notified handlers not run: /h"),
            "{events:?}"
        );
    }

    #[test]
    fn check_on_a_fresh_node_reports_what_depends_on_an_earlier_change_and_goes_on() {
        use crate::ops::package::{Package, State as PkgState};
        use crate::ops::service::{Args as SvcArgs, Service, State as SvcState};
        let pkg = PreparedTask {
            name: "package apache2".into(),
            op: Box::new(Package {
                names: vec!["apache2".into()],
                state: PkgState::Present,
                cache_valid_time: 3600,
                install_recommends: false,
            }),
            notify: vec![],
            timeout: crate::transport::TASK_LIMIT,
        };
        let svc = PreparedTask {
            name: "service apache2".into(),
            op: Box::new(Service(SvcArgs {
                name: "apache2".into(),
                state: Some(SvcState::Started),
                enabled: Some(true),
            })),
            notify: vec![],
            timeout: crate::transport::TASK_LIMIT,
        };
        let play = PreparedPlay {
            index: 0,
            name: "web".into(),
            tasks: vec![pkg, svc],
            handlers: indexmap::IndexMap::new(),
        };
        let opts = Options {
            check: true,
            ..Options::default()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        // the fake node knows no package and no unit
        let mut run = HostRun::new("n1", Box::new(Fake { scripts: vec![] }), &opts, tx, 2);
        run.run_play(&play);
        assert!(!run.stopped, "{:?}", run.recap);
        assert_eq!(
            (run.recap.changed, run.recap.failed),
            (2, 0),
            "{:?}",
            run.recap
        );
        drop(run);
        let whats: Vec<String> = rx
            .try_iter()
            .filter_map(|e| match e {
                Event::Task { what, .. } => Some(what),
                _ => None,
            })
            .collect();
        assert_eq!(
            whats,
            ["install apache2", "start, enable, after installing it"]
        );
    }
}
