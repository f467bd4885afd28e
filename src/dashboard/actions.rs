//! The page's actions: power cut and boot a node (the same library calls as
//! `labctl fail NODE` and `labctl up NODE`, through the checks' [`Power`]),
//! stop and start a service the scenario names on that node (over SSH, as the
//! `service` operation does). Each one is checked against what the page
//! offers, runs on a thread of its own and is logged before and after.

use super::probes::Probes;
use super::state::ActionView;
use super::targets::Targets;
use crate::inventory::Inventory;
use crate::sh;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// An action as the page posts it: `{"action": "power_cut", "node": "nodo1"}`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub action: String,
    pub node: String,
    #[serde(default)]
    pub service: Option<String>,
}

/// What an action does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    PowerCut(String),
    Boot(String),
    StopService(String, String),
    StartService(String, String),
}

/// The actions the page offers for every node.
pub fn offered(inv: &Inventory, targets: &Targets) -> Vec<ActionView> {
    let mut v = Vec::new();
    let can_power = crate::providers::capabilities(inv).power_cut;
    for n in &inv.nodes {
        if can_power {
            for (action, label) in [("power_cut", "power cut"), ("boot", "boot")] {
                v.push(ActionView {
                    action: action.into(),
                    label: label.into(),
                    node: n.name.clone(),
                    service: None,
                });
            }
        }
        // cutting and restoring a node's link: once a provider has that fault
        for s in targets.services_of(&n.name) {
            for (action, label) in [("stop_service", "stop"), ("start_service", "start")] {
                v.push(ActionView {
                    action: action.into(),
                    label: format!("{label} {s}"),
                    node: n.name.clone(),
                    service: Some(s.clone()),
                });
            }
        }
    }
    v
}

impl Action {
    /// The action a request names, if the page offers it; why not otherwise.
    pub fn parse(r: &Request, offered: &[ActionView]) -> Result<Action, String> {
        let ok = offered
            .iter()
            .any(|a| a.action == r.action && a.node == r.node && a.service == r.service);
        if !ok {
            return Err(format!(
                "`{}` on `{}`{} is not an action this dashboard offers",
                r.action,
                r.node,
                r.service
                    .as_deref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            ));
        }
        let node = r.node.clone();
        let svc = || r.service.clone().unwrap_or_default();
        Ok(match r.action.as_str() {
            "power_cut" => Action::PowerCut(node),
            "boot" => Action::Boot(node),
            "stop_service" => Action::StopService(node, svc()),
            "start_service" => Action::StartService(node, svc()),
            other => return Err(format!("`{other}` is not an action")),
        })
    }

    pub fn node(&self) -> &str {
        match self {
            Action::PowerCut(n)
            | Action::Boot(n)
            | Action::StopService(n, _)
            | Action::StartService(n, _) => n,
        }
    }

    fn describe(&self) -> String {
        match self {
            Action::PowerCut(n) => format!("power cut of {n}"),
            Action::Boot(n) => format!("booting {n}"),
            Action::StopService(n, s) => format!("stopping {s} on {n}"),
            Action::StartService(n, s) => format!("starting {s} on {n}"),
        }
    }

    /// Run it, logging it in the page's event log.
    pub fn run(&self, p: &Probes) {
        let node = self.node();
        let kind = match self {
            Action::PowerCut(_) => "power_cut",
            Action::Boot(_) => "boot",
            _ => "service",
        };
        p.shared.event(
            kind,
            Some(node),
            format!("{} (from the page)", self.describe()),
            None,
        );
        let t = Instant::now();
        let ctx = p.env.ctx(Instant::now() + Duration::from_secs(300));
        let r = match self {
            Action::PowerCut(n) => {
                p.power_cut_started(n);
                ctx.power(n, false)
            }
            Action::Boot(n) => ctx.power(n, true),
            Action::StopService(n, s) | Action::StartService(n, s) => {
                let verb = if matches!(self, Action::StopService(..)) {
                    "stop"
                } else {
                    "start"
                };
                match p.inv.node(n) {
                    None => Err(format!("no node {n}")),
                    Some(node) => ctx.ssh(node).and_then(|mut sess| {
                        let out = ctx.remote(&mut sess, &sh!("systemctl {} -- {}", verb, s))?;
                        if out.rc == 0 {
                            Ok(())
                        } else {
                            Err(crate::text::last_lines(&out.stderr, 2))
                        }
                    }),
                }
            }
        };
        let ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
        match r {
            Ok(()) => p.shared.event(
                kind,
                Some(node),
                format!("{} done ({ms} ms)", self.describe()),
                None,
            ),
            Err(e) => p.shared.event(
                "action_failed",
                Some(node),
                format!("{} failed: {e}", self.describe()),
                None,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_offered_actions_parse() {
        let offered = vec![ActionView {
            action: "stop_service".into(),
            label: "stop apache2".into(),
            node: "nodo1".into(),
            service: Some("apache2".into()),
        }];
        let r = |a: &str, n: &str, s: Option<&str>| Request {
            action: a.into(),
            node: n.into(),
            service: s.map(str::to_string),
        };
        assert_eq!(
            Action::parse(&r("stop_service", "nodo1", Some("apache2")), &offered),
            Ok(Action::StopService("nodo1".into(), "apache2".into()))
        );
        // another service, another node, another action: refused
        for bad in [
            r("stop_service", "nodo1", Some("sshd")),
            r("stop_service", "nodo2", Some("apache2")),
            r("power_cut", "nodo1", None),
        ] {
            assert!(Action::parse(&bad, &offered).is_err(), "{bad:?}");
        }
    }
}
