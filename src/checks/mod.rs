//! The checks a scenario's `verify:` section declares: what each one is as
//! written (its spec), how it is prepared (rendered values checked, node names
//! resolved) and how it runs from the host.
//!
//! A check is written like an Ansible task: a map with an optional `name:` and
//! exactly one check key.
//!
//! ```yaml
//! verify:
//!   - dns: {server: dns, name: "www.{{ domain }}", expect: [10.1.1.101, 10.1.1.102], round_robin: true}
//!   - http: {url: "http://www.{{ domain }}/info.txt", dns: dns, nodes: [nodo1, nodo2]}
//!   - cluster: {on: nodo1, nodes: [nodo1, nodo2], resources: [VirtualIP]}
//!   - name: the VIP moves when its holder loses power
//!     failover: {vip: "{{ vip }}", within: 2s}
//!   - service_recovery: {service: apache2, vip: "{{ vip }}", resource: WebServer, within: 30s}
//!   - node_down: {node: nodo1, within: 15s, checks: [{http: {url: "http://www.{{ domain }}/info.txt", dns: dns, nodes: [nodo2]}}]}
//!   - drbd: {resource: r0, nodes: [nodo1, nodo2]}
//!   - data_failover: {vip: "{{ vip }}", dir: /var/www/html, resource: r0, members: [nodo1, nodo2], within: 30s}
//!   - gfs2: {dir: /var/www/html, nodes: [nodo1, nodo2]}
//!   - fencing: {vip: "{{ vip }}", dir: /var/www/html, resource: r0, members: [nodo1, nodo2], within: 60s}
//! ```
//!
//! Adding a check: a new file here whose `Spec` (serde `Deserialize`, with
//! `deny_unknown_fields`) implements [`Prepare`], returning a plan that
//! implements [`Check`]; then one line in the `checks!` list below. The list
//! declares the module, the [`CheckKind`] variant and the field of the YAML
//! map the check is written with.
//!
//! Checks run in a [`Ctx`]: the inventory, the lab-safety test every address
//! passes before the first packet ([`Ctx::ensure_safe`]), SSH sessions, power
//! switching ([`Power`]), progress, and the stop signal of the check's
//! deadline, which every wait and remote call honours. Running them in order
//! with their deadlines and reporting is `crate::verify`'s job; this module
//! does not depend on it, nor on the scenario that holds the specs.

pub mod context;
pub mod http_client;

pub use context::{Ctx, Env, Power, ProviderPower};

use crate::error::user;
use crate::inventory::{Inventory, Node};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::time::Duration;

/// `impl Prepare for $spec` where the spec's own `plan(ctx)` is the check
/// (every kind whose plan needs nothing more).
macro_rules! prepare_by_plan {
    ($spec:ty) => {
        impl $crate::checks::Prepare for $spec {
            fn prepare(
                &self,
                ctx: &$crate::checks::PrepareCtx,
            ) -> anyhow::Result<Box<dyn $crate::checks::Check>> {
                Ok(Box::new(self.plan(ctx)?))
            }
        }
    };
}

/// The check registry: `module => Variant` (with the YAML key's other spelling,
/// if it has one). One line per check.
macro_rules! checks {
    ($($key:ident $(| $alias:tt)? => $Variant:ident),* $(,)?) => {
        $(pub mod $key;)*

        /// The check itself, one variant per kind.
        #[derive(Debug, Clone, PartialEq)]
        pub enum CheckKind {
            $($Variant($key::Spec)),*
        }

        impl CheckKind {
            /// The check kinds, as written in a scenario.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($key)),*];

            /// The key this check is written with.
            pub fn key(&self) -> &'static str {
                match self {
                    $(CheckKind::$Variant(_) => stringify!($key)),*
                }
            }

            fn spec(&self) -> &dyn Prepare {
                match self {
                    $(CheckKind::$Variant(s) => s),*
                }
            }
        }

        /// A check as written: `name:` plus one check key.
        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct CheckFile {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            name: Option<String>,
            $(
                #[serde(default, skip_serializing_if = "Option::is_none" $(, alias = $alias)?)]
                $key: Option<$key::Spec>,
            )*
        }

        impl CheckFile {
            /// Every check key the map holds.
            fn kinds(self) -> (Option<String>, Vec<CheckKind>) {
                let mut found = Vec::new();
                $(if let Some(s) = self.$key {
                    found.push(CheckKind::$Variant(s));
                })*
                (self.name, found)
            }

            fn of(name: Option<String>, kind: CheckKind) -> CheckFile {
                let mut f = CheckFile { name, ..Default::default() };
                match kind {
                    $(CheckKind::$Variant(s) => f.$key = Some(s)),*
                }
                f
            }
        }
    };
}

checks! {
    dns => Dns,
    http => Http,
    cluster => Cluster,
    failover => Failover,
    service_recovery | "service-recovery" => ServiceRecovery,
    node_down | "node-down" => NodeDown,
    file_exists => FileExists,
    drbd => Drbd,
    data_failover | "data-failover" => DataFailover,
    fencing => Fencing,
    gfs2 => Gfs2,
}

/// One entry of a scenario's `verify:` section: an optional name and one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CheckFile", into = "CheckFile")]
pub struct CheckSpec {
    /// Shown in the report; a summary of the check when absent.
    pub name: Option<String>,
    pub kind: CheckKind,
}

impl TryFrom<CheckFile> for CheckSpec {
    type Error = String;
    fn try_from(f: CheckFile) -> Result<CheckSpec, String> {
        let (name, mut found) = f.kinds();
        match found.len() {
            1 => Ok(CheckSpec {
                name,
                kind: found.remove(0),
            }),
            0 => Err(format!(
                "this check names no check kind; fix: add one of: {}",
                CheckKind::NAMES.join(", ")
            )),
            n => Err(format!(
                "this check names {n} check kinds ({}); a check does exactly one thing; fix: split it into one check per kind",
                found.iter().map(|k| k.key()).collect::<Vec<_>>().join(", ")
            )),
        }
    }
}

impl From<CheckSpec> for CheckFile {
    fn from(c: CheckSpec) -> CheckFile {
        CheckFile::of(c.name, c.kind)
    }
}

/// A check's spec as written: checks its values and resolves its names into
/// the plan that runs.
pub trait Prepare {
    fn prepare(&self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Check>>;
}

/// A prepared check, ready to run.
pub trait Check: Send + Sync + std::fmt::Debug {
    /// What the check does, in one line (its name in the report unless the scenario names it).
    fn summary(&self) -> String;
    /// The most the check may take; past it, it is stopped and fails.
    fn deadline(&self) -> Duration;
    /// Run it: what it found. Long waits end early once [`Ctx::stopped`].
    fn run(&self, ctx: &Ctx) -> Outcome;
}

/// A prepared check with its display name and kind.
#[derive(Debug)]
pub struct Prepared {
    pub name: String,
    pub key: &'static str,
    pub plan: Box<dyn Check>,
}

/// One rendered check, resolved into its plan, with its display name.
pub fn prepare_check(spec: &CheckSpec, ctx: &PrepareCtx) -> anyhow::Result<Prepared> {
    let plan = spec.kind.spec().prepare(ctx)?;
    let name = match &spec.name {
        Some(n) if !n.trim().is_empty() => n.trim().to_string(),
        _ => plan.summary(),
    };
    Ok(Prepared {
        name,
        key: spec.kind.key(),
        plan,
    })
}

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub passed: bool,
    pub detail: String,
    pub figure: Figure,
    /// The measured failover time (the `failover` check).
    pub failover_ms: Option<u64>,
}

/// A check's figure in the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Figure {
    /// How long the check took (dns, http, cluster).
    #[default]
    Elapsed,
    /// A measured time (failover, recovery).
    Ms(u64),
    /// The time the check exists to measure could not be measured.
    Unknown,
}

impl Outcome {
    pub fn pass(detail: impl Into<String>) -> Outcome {
        Outcome {
            passed: true,
            detail: detail.into(),
            ..Default::default()
        }
    }
    pub fn fail(detail: impl Into<String>) -> Outcome {
        Outcome {
            passed: false,
            detail: detail.into(),
            ..Default::default()
        }
    }
    pub fn with_ms(mut self, ms: Option<u64>) -> Outcome {
        self.figure = match ms {
            Some(ms) => Figure::Ms(ms),
            None => Figure::Unknown,
        };
        self
    }
}

/// What a check needs while it prepares: the inventory, and where it was written.
pub struct PrepareCtx<'a> {
    pub inv: &'a Inventory,
    /// `file:line:col` of the check.
    pub at: &'a str,
}

impl PrepareCtx<'_> {
    /// A user error about this check.
    pub fn err(&self, msg: impl std::fmt::Display) -> anyhow::Error {
        user(format!("{}: {msg}", self.at))
    }

    /// `server: dns` → the node named `dns` (by name; an address of the lab is accepted too).
    pub fn host(&self, field: &str, s: &str) -> anyhow::Result<Host> {
        let s = s.trim();
        if let Some(n) = self.inv.node(s) {
            return Ok(Host {
                label: n.name.clone(),
                addr: n.address,
            });
        }
        if let Ok(addr) = s.parse::<Ipv4Addr>() {
            return Ok(Host {
                label: s.to_string(),
                addr,
            });
        }
        Err(self.err(format!(
            "`{field}: {s}` is not a node of {}\n  fix: use one of: {}",
            self.inv.path.display(),
            self.node_names()
        )))
    }

    /// A node of the inventory, by name (for checks that log in over SSH).
    pub fn node(&self, field: &str, s: &str) -> anyhow::Result<Node> {
        self.inv.node(s.trim()).cloned().ok_or_else(|| {
            self.err(format!(
                "`{field}` names `{s}`, which is not a node of {}\n  fix: use one of: {}",
                self.inv.path.display(),
                self.node_names()
            ))
        })
    }

    /// `names` as written in a scenario, checked to be inventory nodes.
    pub fn nodes(&self, field: &str, names: &[String]) -> anyhow::Result<Vec<String>> {
        names
            .iter()
            .map(|n| self.node(field, n).map(|n| n.name))
            .collect()
    }

    fn node_names(&self) -> String {
        Node::names(&self.inv.nodes)
    }
}

/// A host a check talks to: its name in the report and its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub label: String,
    pub addr: Ipv4Addr,
}

/// The node of the inventory an HTTP body names (`info.txt` holds the node's name).
pub fn node_in_body<'a>(inv: &'a Inventory, body: &str) -> Option<&'a str> {
    body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| !w.is_empty())
        .find_map(|w| {
            inv.nodes
                .iter()
                .find(|n| n.name == w)
                .map(|n| n.name.as_str())
        })
}

/// For unit tests: an inventory of three loopback nodes (nodo1, nodo2, dns)
/// reached over the ssh provider, loaded from a file in a folder that is gone
/// once loaded (preparing checks reads nothing from it).
#[cfg(test)]
pub(crate) fn test_inventory() -> crate::inventory::Inventory {
    let d = tempfile::tempdir().unwrap();
    crate::providers::inventory_in(
        d.path(),
        "lab: t\nprovider: ssh\nnodes:\n  nodo1: {address: 127.0.0.1}\n  nodo2: {address: 127.0.0.2}\n  dns: {address: 127.0.0.3}\n",
    )
}

/// For unit tests: `yaml` parsed as a check's spec and prepared by `plan`
/// against [`test_inventory`], as if written at `s.yaml:1:1`.
#[cfg(test)]
pub(crate) fn test_plan<S: serde::de::DeserializeOwned, P>(
    yaml: &str,
    plan: impl Fn(&S, &PrepareCtx) -> anyhow::Result<P>,
) -> anyhow::Result<P> {
    let inv = test_inventory();
    let spec: S = crate::yaml::parse(yaml, std::path::Path::new("s.yaml"))?;
    plan(
        &spec,
        &PrepareCtx {
            inv: &inv,
            at: "s.yaml:1:1",
        },
    )
}

/// For unit tests: assert that `f` refuses each `(yaml, parts)` with an
/// error naming every one of `parts`.
#[cfg(test)]
pub(crate) fn assert_refusals<T>(f: impl Fn(&str) -> anyhow::Result<T>, cases: &[(&str, &[&str])]) {
    for (yaml, parts) in cases {
        let Err(e) = f(yaml) else {
            panic!("accepted: {yaml}")
        };
        let e = e.to_string();
        assert!(parts.iter().all(|p| e.contains(p)), "{yaml}: {e}");
    }
}

/// For unit tests: assert that the first check of `yaml` prepares from the
/// registry as kind `key`, named `name`.
#[cfg(test)]
pub(crate) fn assert_prepares(yaml: &str, key: &str, name: &str) {
    let p = test_prepare(yaml).unwrap();
    assert_eq!(p.key, key);
    assert_eq!(p.name, name);
}

/// For unit tests: the first check of `yaml` (a `verify:` list) prepared
/// from the registry, as [`test_plan`] does.
#[cfg(test)]
pub(crate) fn test_prepare(yaml: &str) -> anyhow::Result<Prepared> {
    test_plan(yaml, |spec: &Vec<CheckSpec>, ctx| {
        prepare_check(&spec[0], ctx)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> anyhow::Result<Vec<CheckSpec>> {
        crate::yaml::parse(yaml, std::path::Path::new("s.yaml"))
    }

    #[test]
    fn parses_every_kind() {
        let v = parse(
            r#"
- dns: {server: dns, name: "www.{{ domain }}", type: A, expect: ["{{ nodes.nodo1.address }}", 10.1.1.102], round_robin: true}
- http: {url: "http://www.{{ domain }}/info.txt", dns: dns, expect_status: 200, nodes: [nodo1, nodo2], requests: 10}
- name: active/passive
  http: {url: "http://www.{{ domain }}/info.txt", dns: dns, same_node: true}
- cluster: {on: nodo1, nodes: [nodo1, nodo2], resources: [VirtualIP, {id: WebServer, on: nodo1}]}
- failover: {vip: "{{ vip }}", url: "http://{{ vip }}/info.txt", within: 2s, members: [nodo1, nodo2]}
- service_recovery: {service: apache2, vip: "{{ vip }}", resource: WebServer, within: 30s}
- service-recovery: {service: apache2, vip: 10.1.1.100, within: 30}
- node_down: {node: nodo1, within: 15s, checks: [{dns: {server: dns, name: "www.{{ domain }}", expect: ["{{ nodes.nodo2.address }}"]}}, {http: {url: "http://www.{{ domain }}/info.txt", dns: dns, nodes: [nodo2]}}]}
"#,
        )
        .unwrap();
        assert_eq!(v.len(), 8);
        let keys: Vec<&str> = v.iter().map(|c| c.kind.key()).collect();
        assert_eq!(
            keys,
            [
                "dns",
                "http",
                "http",
                "cluster",
                "failover",
                "service_recovery",
                "service_recovery",
                "node_down"
            ]
        );
        assert_eq!(v[2].name.as_deref(), Some("active/passive"));
        match &v[4].kind {
            CheckKind::Failover(f) => assert_eq!(f.within.get().unwrap().ms(), 2000),
            k => panic!("{k:?}"),
        }
        match &v[6].kind {
            CheckKind::ServiceRecovery(s) => assert_eq!(s.within.ms(), 30_000),
            k => panic!("{k:?}"),
        }
        match &v[7].kind {
            CheckKind::NodeDown(n) => {
                assert_eq!(n.node, "nodo1");
                assert_eq!(n.checks.len(), 2);
                assert_eq!(n.checks[1].kind.key(), "http");
            }
            k => panic!("{k:?}"),
        }
        // nested checks survive the JSON round trip rendering goes through
        let j = serde_json::to_value(&v[7]).unwrap();
        let back: CheckSpec = serde_json::from_value(j).unwrap();
        assert_eq!(back, v[7]);
    }

    #[test]
    fn rejects_unknown_keys_and_zero_or_two_kinds() {
        assert_refusals(
            parse,
            &[
                ("- htp: {url: http://x/}\n", &["htp", "s.yaml"]),
                ("- dns: {server: dns, nme: x}\n", &["nme"]),
                ("- name: nothing\n", &["names no check kind"]),
                (
                    "- dns: {server: dns, name: x}\n  http: {url: http://x/}\n",
                    &["2 check kinds (dns, http)"],
                ),
                (
                    "- failover: {vip: 10.1.1.100, within: soon}\n",
                    &["not a duration"],
                ),
            ],
        );
    }

    #[test]
    fn json_round_trip_keeps_the_spec() {
        // rendering goes through serde_json; nothing may be lost on the way
        let v = parse(
            "- name: n\n  cluster: {nodes: [a], resources: [R, {id: S, on: a}], together: true}\n- failover: {vip: 1.2.3.4, within: 1.5s, rejoin: false}\n",
        )
        .unwrap();
        for c in v {
            let j = serde_json::to_value(&c).unwrap();
            let back: CheckSpec = serde_json::from_value(j).unwrap();
            assert_eq!(back, c);
        }
    }

    #[test]
    fn finds_the_node_named_in_a_body() {
        let d = tempfile::tempdir().unwrap();
        let inv = crate::providers::inventory_in(
            d.path(),
            "lab: t\nprovider: ssh\nnodes:\n  nodo1: {address: 127.0.0.1, port: 1}\n  nodo10: {address: 127.0.0.1, port: 2}\n",
        );
        assert_eq!(node_in_body(&inv, "nodo10\n"), Some("nodo10"));
        assert_eq!(node_in_body(&inv, "served by nodo1."), Some("nodo1"));
        assert_eq!(node_in_body(&inv, "nobody"), None);
    }
}
