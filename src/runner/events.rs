//! What a run tells the world: [`Event`]s while it goes on (to an
//! [`Observer`]: the CLI prints them) and the [`Recap`] at its end. Every text
//! an event carries is masked by the run's redactor before it leaves.

use super::host::HostRecap;
use crate::redact::Redactor;
use indexmap::IndexMap;

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
    pub fn word(self) -> &'static str {
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
    /// Before its first play the host waited `ms` for what the node was
    /// doing by itself (`what`: "the cluster") to be over.
    Settled {
        host: String,
        what: String,
        ms: u64,
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
    /// The run's hosts are known (first event): `check` is `--check`.
    Start {
        hosts: Vec<String>,
        check: bool,
    },
    /// `--timing`: a phase of the run ended, `ms` after it started.
    Timing {
        what: String,
        ms: u128,
    },
}

impl Event {
    /// The event with every text masked (no secret leaves the library).
    pub fn masked(self, r: &Redactor) -> Event {
        match self {
            Event::Task {
                host,
                task,
                status,
                what,
                diff,
            } => Event::Task {
                host,
                task: r.redact(&task),
                status,
                what: r.redact(&what),
                diff: diff.map(|d| r.redact(&d)),
            },
            Event::Progress {
                host,
                done,
                total,
                task,
            } => Event::Progress {
                host,
                done,
                total,
                task: r.redact(&task),
            },
            Event::Play { name, hosts } => Event::Play {
                name: r.redact(&name),
                hosts,
            },
            Event::Idle { host, why } => Event::Idle {
                host,
                why: r.redact(&why),
            },
            other => other,
        }
    }
}

/// Where a run's events go: the CLI prints them, a test may collect them.
pub trait Observer: Send {
    fn event(&mut self, ev: Event);
    /// Called about every half second, between events.
    fn tick(&mut self) {}
    /// The run is over (called once, after the last event).
    fn finish(&mut self) {}
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
}
