//! What the user sees while a run goes on and at its end: one line per task
//! result (changed and failed always, ok with `-v`), one progress bar per host on
//! a terminal, and the recap. Every text passes through the [`Redactor`].

use super::host::HostRecap;
use crate::redact::Redactor;
use indexmap::IndexMap;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

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
        Reporter {
            verbose,
            json,
            redactor,
            bars,
            check,
        }
    }

    /// A line for the user: stdout in text mode, stderr with `--json` (stdout holds only JSON).
    fn line(&self, s: &str) {
        let s = self.redactor.redact(s);
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
            Event::Progress {
                host,
                done,
                total,
                task,
            } => {
                if let Some((_, m)) = &self.bars {
                    if let Some(pb) = m.get(&host) {
                        pb.set_length(total as u64);
                        pb.set_position(done as u64);
                        pb.set_message(self.redactor.redact(&task));
                    }
                }
            }
            Event::Done { host, recap } => {
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
