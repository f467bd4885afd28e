//! What the user sees while a run goes on and at its end: one line per task
//! result (changed and failed always, ok with `-v`), one progress bar per host on
//! a terminal, and the recap. Every text passes through the [`Redactor`].
//!
//! On a terminal a host's bar shows what it is doing right now (a task, waiting
//! for the other hosts, done). Off a terminal (a log file, CI) every line starts
//! with the time, each play prints a header, and while nothing else is printed a
//! `still running: TASK on HOST (N s)` line comes every [`HEARTBEAT`], so a log
//! never goes quiet for longer than that.

use super::host::HostRecap;
use crate::redact::Redactor;
use indexmap::IndexMap;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Off a terminal, the longest quiet time before a `still running` line.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Unreachable,
    /// The run stopped on Ctrl-C before this host's work was done.
    Interrupted,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Failed => "failed",
            Status::Unreachable => "unreachable",
            Status::Interrupted => "interrupted",
        }
    }
}

/// What host workers tell the reporter.
#[derive(Debug)]
pub enum Event {
    Task {
        host: String,
        task: String,
        status: Status,
        what: String,
        diff: Option<String>,
    },
    Progress {
        host: String,
        done: usize,
        total: usize,
        task: String,
    },
    /// A play starts on these hosts.
    Play {
        name: String,
        hosts: Vec<String>,
    },
    /// The host waits (for the other hosts to finish a play): no task runs on it.
    Idle {
        host: String,
        why: String,
    },
    Done {
        host: String,
        recap: HostRecap,
    },
}

/// Prints events as they come.
pub struct Reporter {
    verbose: u8,
    json: bool,
    redactor: Redactor,
    bars: Option<(MultiProgress, IndexMap<String, ProgressBar>)>,
    check: bool,
    /// What each busy host runs, and since when.
    busy: IndexMap<String, (String, Instant)>,
    /// When the last line was printed (off a terminal: the heartbeat's clock).
    last_line: Instant,
}

impl Reporter {
    pub fn new(
        hosts: &[String],
        verbose: u8,
        json: bool,
        check: bool,
        redactor: Redactor,
    ) -> Reporter {
        let bars = if std::io::stderr().is_terminal() {
            let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{prefix:>12} [{pos}/{len}] {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            let width = hosts.iter().map(|h| h.len()).max().unwrap_or(0);
            let mut m = IndexMap::new();
            for h in hosts {
                let pb = mp.add(ProgressBar::new(0));
                pb.set_style(style.clone());
                pb.set_prefix(format!("{h:<width$}"));
                pb.set_message("connecting");
                m.insert(h.clone(), pb);
            }
            Some((mp, m))
        } else {
            None
        };
        let now = Instant::now();
        Reporter {
            verbose,
            json,
            redactor,
            bars,
            check,
            busy: hosts
                .iter()
                .map(|h| (h.clone(), ("connecting".to_string(), now)))
                .collect(),
            last_line: now,
        }
    }

    /// Called between events (at least every second): off a terminal, a
    /// `still running` line per busy host once the log has been quiet for [`HEARTBEAT`].
    pub fn tick(&mut self) {
        if self.bars.is_some() || self.last_line.elapsed() < HEARTBEAT {
            return;
        }
        let lines: Vec<String> = self
            .busy
            .iter()
            .map(|(h, (task, since))| {
                format!(
                    "still running: {task} on {h} ({} s)",
                    since.elapsed().as_secs()
                )
            })
            .collect();
        for l in &lines {
            self.line(l);
        }
        // nothing busy (between phases): the clock restarts all the same
        self.last_line = Instant::now();
    }

    /// A line for the user: stdout in text mode, stderr with `--json` (stdout
    /// holds only JSON); off a terminal it starts with the time (UTC).
    fn line(&mut self, s: &str) {
        self.last_line = Instant::now();
        let s = self.redactor.redact(s);
        let s = if self.bars.is_none() {
            format!("{} {s}", clock())
        } else {
            s
        };
        match &self.bars {
            Some((mp, _)) if !self.json => mp.suspend(|| println!("{s}")),
            Some((mp, _)) => mp.suspend(|| eprintln!("{s}")),
            None if self.json => eprintln!("{s}"),
            None => println!("{s}"),
        }
    }

    pub fn handle(&mut self, ev: Event) {
        match ev {
            Event::Task {
                host,
                task,
                status,
                what,
                diff,
            } => {
                // a host that failed or was lost runs nothing more
                if matches!(status, Status::Failed | Status::Unreachable) {
                    self.busy.shift_remove(&host);
                }
                if status == Status::Ok && self.verbose == 0 {
                    return;
                }
                let word = if self.check && status == Status::Changed {
                    "would change"
                } else {
                    status.word()
                };
                let mut l = format!("{word}: [{host}] {task}");
                if !what.is_empty() {
                    let colon = what.contains('\n')
                        || matches!(
                            status,
                            Status::Failed | Status::Unreachable | Status::Interrupted
                        );
                    if colon {
                        l.push_str(": ");
                    } else {
                        l.push_str(" (");
                    }
                    l.push_str(&what);
                    if !colon {
                        l.push(')');
                    }
                }
                self.line(&l);
                if let Some(d) = diff {
                    self.line(d.trim_end());
                }
            }
            Event::Play { name, hosts } => {
                self.line(&format!("PLAY [{name}] on {}", hosts.join(", ")));
            }
            Event::Idle { host, why } => {
                self.busy.shift_remove(&host);
                if let Some((_, m)) = &self.bars {
                    if let Some(pb) = m.get(&host) {
                        pb.set_message(why);
                    }
                }
            }
            Event::Progress {
                host,
                done,
                total,
                task,
            } => {
                let task = self.redactor.redact(&task);
                if self.busy.get(&host).map(|(t, _)| t) != Some(&task) {
                    self.busy
                        .insert(host.clone(), (task.clone(), Instant::now()));
                }
                if let Some((_, m)) = &self.bars {
                    if let Some(pb) = m.get(&host) {
                        pb.set_length(total as u64);
                        pb.set_position(done as u64);
                        pb.set_message(task);
                    }
                }
            }
            Event::Done { host, recap } => {
                self.busy.shift_remove(&host);
                if let Some((_, m)) = &self.bars {
                    if let Some(pb) = m.get(&host) {
                        let msg = if recap.interrupted {
                            "interrupted".to_string()
                        } else if recap.unreachable {
                            "unreachable".to_string()
                        } else if recap.failed > 0 {
                            "failed".to_string()
                        } else {
                            format!("done, changed={}", recap.changed)
                        };
                        pb.finish_with_message(msg);
                    }
                }
            }
        }
    }

    pub fn finish(&mut self) {
        if let Some((mp, _)) = self.bars.take() {
            let _ = mp.clear();
        }
    }
}

/// The time of day (UTC), `HH:MM:SS`, for lines off a terminal.
fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The recap of a whole run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Recap {
    pub hosts: IndexMap<String, HostRecap>,
    pub changed: u32,
    pub failed: u32,
    /// The run stopped on Ctrl-C: the recap covers only what ran before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

impl Recap {
    pub fn add(&mut self, host: &str, r: HostRecap) {
        self.changed += r.changed;
        self.failed += r.failed + u32::from(r.unreachable);
        self.interrupted |= r.interrupted;
        self.hosts.insert(host.to_string(), r);
    }

    pub fn success(&self) -> bool {
        self.failed == 0
    }

    pub fn text(&self) -> String {
        let width = self.hosts.keys().map(|h| h.len()).max().unwrap_or(4).max(4);
        let mut s = String::from(if self.interrupted {
            "RECAP (interrupted by Ctrl-C: only what ran before it)\n"
        } else {
            "RECAP\n"
        });
        for (h, r) in &self.hosts {
            s += &format!(
                "{h:<width$}  ok={:<3} changed={:<3} failed={:<3} unreachable={}\n",
                r.ok,
                r.changed,
                r.failed,
                u8::from(r.unreachable)
            );
            if r.interrupted {
                s.insert_str(s.len() - 1, "  interrupted");
            }
        }
        s
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }
}
