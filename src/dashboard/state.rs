//! What the page shows, as one value the probes update and the server sends:
//! the nodes, the cluster, the strip of recent answers and the event log.
//! Every change bumps a version and wakes the page streams waiting for one.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the strip looks back.
pub const STRIP: Duration = Duration::from_secs(60);
/// How many events the log keeps.
const EVENTS: usize = 200;

/// Milliseconds since the Unix epoch (what the page's clock uses).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A node as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub name: String,
    pub address: String,
    pub groups: Vec<String>,
    /// The provider's word: running, stopped, absent, unreachable (`unknown` before the first look).
    pub state: String,
    /// The scenario's services on this node, with whether each is active
    /// (`None`: not measured, so the page offers no button for it).
    pub services: Vec<ServiceView>,
}

/// One service of the scenario on one node.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    pub name: String,
    pub active: Option<bool>,
}

/// The cluster as `crm_mon` on a member shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterView {
    /// The member that answered.
    pub asked: Option<String>,
    pub members: Vec<MemberView>,
    pub resources: Vec<ResourceView>,
    /// The virtual IP's address (from the scenario's failover check).
    pub vip: Option<String>,
    /// The node holding the VIP's resource now.
    pub vip_holder: Option<String>,
    /// Why the cluster could not be read, when it could not.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub name: String,
    pub online: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceView {
    pub id: String,
    pub role: String,
    pub nodes: Vec<String>,
}

/// One sample of the strip: who answered `www` by DNS and by HTTP.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t: u64,
    /// The DNS answers in the order sent: node names where an address is a
    /// node's, else the address (a VIP); `None` when there is no DNS probe.
    pub dns: Option<Vec<String>>,
    /// The node whose `info.txt` answered, or `None` when there is no HTTP probe.
    pub http: Option<String>,
    /// What failed in this sample, if anything.
    pub error: Option<String>,
}

/// One entry of the event log.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub t: u64,
    /// power_cut, boot, node_down, node_back, failover, service, action_failed, info.
    pub kind: String,
    pub node: Option<String>,
    pub text: String,
    /// A measured time (the failover's).
    pub ms: Option<u64>,
}

/// An action the page may offer for a node.
#[derive(Debug, Clone, Serialize)]
pub struct ActionView {
    pub action: String,
    pub label: String,
    pub node: String,
    pub service: Option<String>,
}

/// Everything the page shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct View {
    pub lab: String,
    pub scenario: Option<String>,
    pub nodes: Vec<NodeView>,
    pub cluster: Option<ClusterView>,
    /// What the strip asks: `www.example.com via dns`.
    pub probing: Option<String>,
    pub samples: VecDeque<Sample>,
    pub events: VecDeque<Event>,
    pub actions: Vec<ActionView>,
    /// Whether "open www through the lab" works (the scenario has a site to open).
    pub www: bool,
    pub version: u64,
}

/// The view, shared by the probes and the page streams.
#[derive(Debug, Default)]
pub struct Shared {
    view: Mutex<View>,
    changed: Condvar,
}

impl Shared {
    pub fn new(view: View) -> Shared {
        Shared {
            view: Mutex::new(view),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Change the view; the page streams are woken.
    pub fn update<R>(&self, f: impl FnOnce(&mut View) -> R) -> R {
        let r = {
            let mut v = self.lock();
            let r = f(&mut v);
            v.version += 1;
            r
        };
        self.changed.notify_all();
        r
    }

    /// A copy of the view.
    pub fn snapshot(&self) -> View {
        self.lock().clone()
    }

    /// The view as JSON with every string in it masked like the CLI's
    /// output ([`crate::redact::mask`]): names, addresses, events, errors.
    pub fn masked_json(&self) -> String {
        let v = serde_json::to_value(&*self.lock()).unwrap_or_default();
        masked_value(v).to_string()
    }

    /// Read the view without copying it.
    pub fn read<R>(&self, f: impl FnOnce(&View) -> R) -> R {
        f(&self.lock())
    }

    /// Wait until the version is past `seen`, or `timeout`; the version now.
    pub fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let g = self.lock();
        match self
            .changed
            .wait_timeout_while(g, timeout, |v| v.version <= seen)
        {
            Ok((g, _)) => g.version,
            Err(e) => e.into_inner().0.version,
        }
    }

    /// Wake every waiting stream (on shutdown).
    pub fn wake_all(&self) {
        self.changed.notify_all();
    }

    /// Add an event to the log.
    pub fn event(&self, kind: &str, node: Option<&str>, text: String, ms: Option<u64>) {
        self.update(|v| {
            v.events.push_back(Event {
                t: now_ms(),
                kind: kind.to_string(),
                node: node.map(str::to_string),
                text,
                ms,
            });
            while v.events.len() > EVENTS {
                v.events.pop_front();
            }
        });
    }

    /// Add a sample to the strip, dropping those older than [`STRIP`].
    pub fn sample(&self, s: Sample) {
        self.update(|v| {
            let oldest =
                s.t.saturating_sub(u64::try_from(STRIP.as_millis()).unwrap_or(0));
            v.samples.push_back(s);
            while v.samples.front().is_some_and(|x| x.t < oldest) {
                v.samples.pop_front();
            }
        });
    }
}

/// `v` with every string (keys too) masked.
pub fn masked_value(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(crate::redact::mask(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(masked_value).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (crate::redact::mask(&k), masked_value(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strip_keeps_a_minute_and_waiters_wake() {
        let s = Shared::new(View::default());
        let t0 = now_ms();
        for i in 0..5u64 {
            s.sample(Sample {
                t: t0 + i * 30_000,
                dns: None,
                http: Some("nodo1".into()),
                error: None,
            });
        }
        let v = s.snapshot();
        assert_eq!(v.samples.len(), 3, "{:?}", v.samples);
        assert_eq!(v.samples[0].t, t0 + 60_000);
        let seen = v.version;
        std::thread::scope(|sc| {
            sc.spawn(|| s.event("info", None, "x".into(), None));
            assert!(s.wait_past(seen, Duration::from_secs(30)) > seen);
        });
    }

    #[test]
    fn every_string_of_the_view_is_masked() {
        let mut r = crate::redact::Redactor::new();
        r.add("dashboard-unit-s3cret");
        crate::redact::remember(&r);
        let s = Shared::new(View {
            lab: "lab".into(),
            probing: Some("HTTP http://dashboard-unit-s3cret/".into()),
            ..Default::default()
        });
        s.event("info", Some("x"), "said dashboard-unit-s3cret".into(), None);
        let json = s.masked_json();
        assert!(!json.contains("dashboard-unit-s3cret"), "{json}");
        assert!(json.contains("said ********"), "{json}");
    }
}
