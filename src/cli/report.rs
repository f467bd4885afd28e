//! What the user sees while a run goes on and at its end: one line per task
//! result (changed and failed always, ok with `-v`), one progress bar per host on
//! a terminal, and the recap. The runner masks every text before it comes here.
//!
//! On a terminal a host's bar shows what it is doing right now (a task, waiting
//! for the other hosts, done). Off a terminal (a log file, CI) every line starts
//! with the time, each play prints a header, and while nothing else is printed a
//! `still running: TASK on HOST (N s)` line comes every [`HEARTBEAT`], so a log
//! never goes quiet for longer than that.

use crate::runner::{Event, Observer, Recap, Status};
use indexmap::IndexMap;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Off a terminal, the longest quiet time before a `still running` line.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// Prints events as they come.
pub struct Reporter {
    verbose: u8,
    json: bool,
    bars: Option<(MultiProgress, IndexMap<String, ProgressBar>)>,
    check: bool,
    /// What each busy host runs, and since when.
    busy: IndexMap<String, (String, Instant)>,
    /// When the last line was printed (off a terminal: the heartbeat's clock).
    last_line: Instant,
}

impl Reporter {
    /// `verbose`: also the ok tasks; `json`: lines go to stderr (stdout holds the JSON).
    pub fn new(verbose: u8, json: bool) -> Reporter {
        Reporter {
            verbose,
            json,
            bars: None,
            check: false,
            busy: IndexMap::new(),
            last_line: Instant::now(),
        }
    }

    /// The run's hosts are known: a bar each on a terminal.
    fn start(&mut self, hosts: &[String], check: bool) {
        self.check = check;
        if std::io::stderr().is_terminal() {
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
            self.bars = Some((mp, m));
        }
        let now = Instant::now();
        self.busy = hosts
            .iter()
            .map(|h| (h.clone(), ("connecting".to_string(), now)))
            .collect();
        self.last_line = now;
    }

    /// Called between events (at least every second): off a terminal, a
    /// `still running` line per busy host once the log has been quiet for [`HEARTBEAT`].
    fn heartbeat(&mut self) {
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
        let s = &crate::text::printable(s);
        let s = if self.bars.is_none() {
            format!("{} {s}", clock())
        } else {
            s.to_string()
        };
        match &self.bars {
            Some((mp, _)) if !self.json => mp.suspend(|| println!("{s}")),
            Some((mp, _)) => mp.suspend(|| eprintln!("{s}")),
            None if self.json => eprintln!("{s}"),
            None => println!("{s}"),
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Start { hosts, check } => self.start(&hosts, check),
            // the times of a run's phases, for benchmarks
            Event::Timing { what, ms } => eprintln!("timing: {what} at {ms} ms"),
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
            Event::Settled { host, what, ms } => {
                self.line(&format!(
                    "{host}: waited {:.1} s for {what} to settle before reading state",
                    ms as f64 / 1000.0
                ));
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
}

impl Observer for Reporter {
    fn event(&mut self, ev: Event) {
        self.handle(ev);
    }

    fn tick(&mut self) {
        self.heartbeat();
    }

    fn finish(&mut self) {
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

/// The recap as text (`RECAP` and a line per host).
pub fn recap_text(recap: &Recap) -> String {
    let width = recap
        .hosts
        .keys()
        .map(|h| h.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut s = String::from(if recap.interrupted {
        "RECAP (interrupted by Ctrl-C: only what ran before it)\n"
    } else {
        "RECAP\n"
    });
    for (h, r) in &recap.hosts {
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

/// The recap as `--json` prints it.
pub fn recap_json(recap: &Recap) -> String {
    serde_json::to_string_pretty(recap).unwrap_or_else(|_| "{}".into())
}
