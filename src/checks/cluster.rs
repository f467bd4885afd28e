//! `cluster`: a pacemaker cluster's members are online and its resources are
//! started, as `crm_mon` (XML output) on a member sees them over SSH.
//!
//! ```yaml
//! - cluster: {on: nodo1, nodes: [nodo1, nodo2], resources: [VirtualIP]}
//! - cluster: {nodes: [nodo1, nodo2], resources: [VirtualIP, WebServer], together: true}
//! - cluster: {nodes: [nodo1, nodo2], resources: [{id: VirtualIP, on: nodo1}]}
//! ```
//!
//! `on:` is the member that runs `crm_mon` (default: the first of `nodes:` that
//! can be reached). A resource is a primitive's id, or a group's or clone's id
//! (a group is started when all its members are). `together: true` expects all
//! listed resources on one node (colocation).

use super::{Check, Ctx, Outcome, PrepareCtx};
use crate::inventory::Node;
use crate::shell::Script;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The `cluster:` check as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The member that runs `crm_mon` (default: the first reachable of `nodes`).
    pub on: Option<String>,
    /// Members that must be online.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Resources that must be started: `VirtualIP` or `{id: VirtualIP, on: nodo1}`.
    #[serde(default)]
    pub resources: Vec<ResourceSpec>,
    /// All listed resources must run on one node.
    #[serde(default)]
    pub together: bool,
}

/// A resource that must be started, optionally on a given node.
///
/// Deserialized by hand: serde's `untagged` would replace the map's own error
/// (`unknown field `where``, at its place) with "no variant matched".
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ResourceSpec {
    Id(String),
    On(ResourceOn),
}

impl<'de> Deserialize<'de> for ResourceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ResourceSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a resource id, or {id: RESOURCE, on: NODE}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ResourceSpec, E> {
                Ok(ResourceSpec::Id(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<ResourceSpec, A::Error> {
                ResourceOn::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(ResourceSpec::On)
            }
        }
        d.deserialize_any(V)
    }
}

/// `{id: VirtualIP, on: nodo1}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceOn {
    pub id: String,
    pub on: String,
}

/// How long a resource in the middle of an action may take to settle.
const SETTLE: Duration = Duration::from_secs(20);

/// A prepared `cluster` check.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Members to ask, in order (the first that answers is used).
    pub ask: Vec<Node>,
    pub nodes: Vec<String>,
    /// (resource id, node it must run on)
    pub resources: Vec<(String, Option<String>)>,
    pub together: bool,
}

prepare_by_plan!(Spec);

impl Spec {
    pub(crate) fn plan(&self, ctx: &PrepareCtx) -> anyhow::Result<Plan> {
        let nodes = ctx.nodes("cluster: nodes", &self.nodes)?;
        let ask = match &self.on {
            Some(on) => vec![ctx.node("cluster: on", on)?],
            None if !nodes.is_empty() => nodes
                .iter()
                .map(|n| ctx.node("cluster: nodes", n))
                .collect::<anyhow::Result<_>>()?,
            None => return Err(ctx.err(
                "cluster: no member to ask\n  fix: add `on: <a cluster member>` or `nodes: [..]`",
            )),
        };
        let mut resources = Vec::new();
        for r in &self.resources {
            match r {
                ResourceSpec::Id(id) => resources.push((id.trim().to_string(), None)),
                ResourceSpec::On(r) => resources.push((
                    r.id.trim().to_string(),
                    Some(ctx.node("cluster: resources: on", &r.on)?.name),
                )),
            }
        }
        if nodes.is_empty() && resources.is_empty() {
            return Err(ctx.err(
                "cluster: nothing to check\n  fix: list `nodes:` that must be online and/or `resources:` that must be started",
            ));
        }
        if resources.iter().any(|(id, _)| id.is_empty()) {
            return Err(ctx.err("cluster: a resource id is empty"));
        }
        Ok(Plan {
            ask,
            nodes,
            resources,
            together: self.together,
        })
    }
}

impl Check for Plan {
    fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.nodes.is_empty() {
            parts.push(self.nodes.join("+"));
        }
        if !self.resources.is_empty() {
            parts.push(
                self.resources
                    .iter()
                    .map(|(r, on)| match on {
                        Some(n) => format!("{r}@{n}"),
                        None => r.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join("+"),
            );
        }
        format!("cluster {}", parts.join(" "))
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(30 * self.ask.len() as u64 + 30) + SETTLE * 2
    }

    fn run(&self, ctx: &Ctx) -> Outcome {
        let mut errors = Vec::new();
        for node in &self.ask {
            let mut sess = match ctx.ssh(node) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            // a resource in the middle of an action (Starting, Stopping,
            // Monitoring...) is not a verdict yet: wait a little for it to settle
            let until = Instant::now() + SETTLE;
            loop {
                let st = match crm_status_in(ctx, &mut sess) {
                    Ok(st) => st,
                    Err(e) => return Outcome::fail(e),
                };
                let out = self.judge(&st, &node.name);
                if out.passed
                    || Instant::now() >= until
                    || !self.in_transition(&st)
                    || !ctx.sleep(Duration::from_secs(1))
                {
                    return out;
                }
            }
        }
        Outcome::fail(errors.join("; "))
    }
}

impl Plan {
    /// Whether a listed resource is in the middle of an action, or not
    /// started yet without having failed (pacemaker starts resources a moment
    /// after they are defined, e.g. right after `configure`), or a listed
    /// member is not online yet: not a verdict yet.
    fn in_transition(&self, st: &CrmStatus) -> bool {
        let not_yet = self.resources.iter().any(|(id, _)| {
            let (found, _) = st.named(id);
            !found.is_empty()
                && found.iter().all(|r| !r.failed)
                && st.started_on(id).is_some_and(|w| w.is_empty())
        });
        // a member that is still joining (just started or rebooted)
        let joining = self
            .nodes
            .iter()
            .any(|n| !st.nodes.iter().any(|x| &x.name == n && x.online));
        not_yet
            || joining
            || self.resources.iter().any(|(id, _)| {
                st.named(id).0.iter().any(|r| {
                    r.pending
                        || matches!(
                            r.role.as_str(),
                            "Starting" | "Stopping" | "Promoting" | "Demoting" | "Migrating"
                        )
                })
            })
    }

    /// Compare what crm_mon shows with what the check wants.
    pub(crate) fn judge(&self, st: &CrmStatus, asked: &str) -> Outcome {
        let mut bad = Vec::new();
        let mut good = Vec::new();
        for n in &self.nodes {
            match st.nodes.iter().find(|x| &x.name == n) {
                None => bad.push(format!("{n} is not a cluster member")),
                Some(x) if !x.online => bad.push(format!("{n} is offline")),
                Some(x) if x.unclean => bad.push(format!("{n} is unclean (fencing pending)")),
                Some(x) if x.standby => good.push(format!("{n} online (standby)")),
                Some(_) => good.push(format!("{n} online")),
            }
        }
        let mut placements: Vec<Vec<String>> = Vec::new();
        for (id, on) in &self.resources {
            match st.started_on(id) {
                None => bad.push(format!("resource {id} does not exist")),
                Some(where_) if where_.is_empty() => {
                    bad.push(format!("{id} is not started{}", st.state_of(id)))
                }
                Some(where_) => {
                    if let Some(on) = on {
                        if !where_.contains(on) {
                            bad.push(format!("{id} runs on {}, not on {on}", where_.join(", ")));
                            continue;
                        }
                    }
                    // `{id: dlm, on: nodo1}` and `{id: dlm, on: nodo2}` say it once
                    let line = format!("{id} started on {}", where_.join(", "));
                    if !good.contains(&line) {
                        good.push(line);
                    }
                    placements.push(where_);
                }
            }
        }
        if self.together && bad.is_empty() && placements.len() > 1 {
            let common: Vec<&String> = placements[0]
                .iter()
                .filter(|n| placements.iter().all(|p| p.contains(n)))
                .collect();
            if common.is_empty() {
                bad.push("the resources are not together on one node".into());
            }
        }
        let seen = format!("crm_mon on {asked}: {}", good.join(", "));
        if bad.is_empty() {
            Outcome::pass(seen)
        } else if good.is_empty() {
            Outcome::fail(format!("crm_mon on {asked}: {}", bad.join("; ")))
        } else {
            Outcome::fail(format!("{}; ({seen})", bad.join("; ")))
        }
    }
}

/// The script that prints the cluster status as XML (pacemaker 2.x, then 1.x syntax).
const CRM_MON: &str = "\
PATH=$PATH:/usr/sbin:/sbin
if ! command -v crm_mon >/dev/null 2>&1; then echo 'crm_mon is not installed (package pacemaker)' >&2; exit 127; fi
timeout 20 crm_mon -1 --output-as=xml
rc=$?
if [ $rc -eq 64 ]; then timeout 20 crm_mon -1 --as-xml; rc=$?; fi
exit $rc";

/// Run `crm_mon` in an open session and parse its XML.
pub(crate) fn crm_status_in(
    ctx: &Ctx,
    sess: &mut crate::transport::ssh::Session,
) -> Result<CrmStatus, String> {
    let name = sess.target.name.clone();
    let out = ctx.remote(sess, &Script::lit(CRM_MON))?;
    let text = out.stdout.trim();
    if out.rc == 127 {
        return Err(format!(
            "{name}: {}",
            crate::text::last_lines(&out.stderr, 2)
        ));
    }
    if out.rc == 124 {
        return Err(format!("{name}: crm_mon did not answer within 20 s"));
    }
    match text.find('<') {
        Some(i) => {
            let st = parse_crm_mon(&text[i..]).map_err(|e| format!("{name}: {e}"))?;
            if let Some(err) = &st.error {
                return Err(format!("crm_mon on {name}: {err}"));
            }
            Ok(st)
        }
        None => Err(format!(
            "crm_mon on {name} failed (exit code {}): {}",
            out.rc,
            crate::text::last_lines(&format!("{}{}", out.stderr, out.stdout), 3)
        )),
    }
}

/// A cluster node as crm_mon sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmNode {
    pub name: String,
    pub online: bool,
    pub standby: bool,
    pub unclean: bool,
}

/// A primitive resource (or one clone instance) as crm_mon sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmResource {
    pub id: String,
    /// The group, clone or bundle it belongs to.
    pub parents: Vec<String>,
    pub role: String,
    pub active: bool,
    pub failed: bool,
    /// An action is under way (`pending="Monitoring"`).
    pub pending: bool,
    /// Nodes it runs on.
    pub nodes: Vec<String>,
}

impl CrmResource {
    pub fn started(&self) -> bool {
        self.active
            && !self.failed
            && matches!(
                self.role.as_str(),
                "Started" | "Promoted" | "Master" | "Unpromoted" | "Slave"
            )
    }
}

/// What `crm_mon` showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrmStatus {
    pub nodes: Vec<CrmNode>,
    pub resources: Vec<CrmResource>,
    /// crm_mon's own error (`<status code="102" message="Not connected">`).
    pub error: Option<String>,
}

impl CrmStatus {
    /// The resources a check's id names: the primitive itself, or a group's or
    /// clone's members.
    fn named(&self, id: &str) -> (Vec<&CrmResource>, bool) {
        let direct: Vec<&CrmResource> = self
            .resources
            .iter()
            .filter(|r| r.id == id || r.id.split(':').next() == Some(id))
            .collect();
        if !direct.is_empty() {
            return (direct, false);
        }
        (
            self.resources
                .iter()
                .filter(|r| r.parents.iter().any(|p| p == id))
                .collect(),
            true,
        )
    }

    /// Where `id` is started: `None` if crm_mon does not know it, empty if it is stopped.
    /// A group counts as started where all its members run.
    pub fn started_on(&self, id: &str) -> Option<Vec<String>> {
        let (rs, parent) = self.named(id);
        if rs.is_empty() {
            return None;
        }
        let mut nodes: Vec<String> = Vec::new();
        let is_group = parent && {
            // clone instances share an id; group members have distinct ids
            let mut ids: Vec<&str> = rs
                .iter()
                .map(|r| r.id.split(':').next().unwrap_or(""))
                .collect();
            ids.sort();
            ids.dedup();
            ids.len() > 1
        };
        if is_group {
            if !rs.iter().all(|r| r.started()) {
                return Some(Vec::new());
            }
            let first = &rs[0].nodes;
            for n in first {
                if rs.iter().all(|r| r.nodes.contains(n)) {
                    nodes.push(n.clone());
                }
            }
            return Some(nodes);
        }
        for r in rs.iter().filter(|r| r.started()) {
            for n in &r.nodes {
                if !nodes.contains(n) {
                    nodes.push(n.clone());
                }
            }
        }
        Some(nodes)
    }

    /// ` (role Stopped, failed)` for a failure message.
    fn state_of(&self, id: &str) -> String {
        let (rs, _) = self.named(id);
        let states: Vec<String> = rs
            .iter()
            .map(|r| {
                let mut s = format!("{} {}", r.id, r.role);
                if r.failed {
                    s.push_str(", failed");
                }
                s
            })
            .collect();
        if states.is_empty() {
            String::new()
        } else {
            format!(" ({})", states.join("; "))
        }
    }
}

/// Parse `crm_mon -1 --output-as=xml` (pacemaker 2.x) or `crm_mon --as-xml` (1.x).
pub fn parse_crm_mon(xml: &str) -> Result<CrmStatus, String> {
    let doc = roxmltree::Document::parse(xml)
        .map_err(|e| format!("crm_mon printed XML that cannot be read: {e}"))?;
    let mut st = CrmStatus::default();
    let t = |n: &roxmltree::Node, a: &str| n.attribute(a) == Some("true");
    for n in doc.descendants().filter(|n| n.has_tag_name("node")) {
        let parent = n
            .parent_element()
            .map(|p| p.tag_name().name())
            .unwrap_or("");
        match parent {
            "nodes" => st.nodes.push(CrmNode {
                name: n.attribute("name").unwrap_or_default().to_string(),
                online: t(&n, "online"),
                standby: t(&n, "standby"),
                unclean: t(&n, "unclean"),
            }),
            _ => continue,
        }
    }
    for r in doc.descendants().filter(|n| n.has_tag_name("resource")) {
        // only the resources section (node_history has resource_history, not resource)
        if !r.ancestors().any(|a| a.has_tag_name("resources")) {
            continue;
        }
        let parents = r
            .ancestors()
            .skip(1)
            .take_while(|a| !a.has_tag_name("resources"))
            .filter_map(|a| a.attribute("id").map(String::from))
            .collect();
        st.resources.push(CrmResource {
            id: r.attribute("id").unwrap_or_default().to_string(),
            parents,
            role: r.attribute("role").unwrap_or_default().to_string(),
            active: t(&r, "active"),
            failed: t(&r, "failed"),
            pending: r.attribute("pending").is_some(),
            nodes: r
                .children()
                .filter(|c| c.has_tag_name("node"))
                .filter_map(|c| c.attribute("name").map(String::from))
                .collect(),
        });
    }
    let root = doc.root_element();
    if let Some(status) = root.children().find(|c| c.has_tag_name("status")) {
        let code = status.attribute("code").unwrap_or("0");
        if code != "0" {
            let mut msg = status.attribute("message").unwrap_or("error").to_string();
            let errs: Vec<&str> = status
                .descendants()
                .filter(|e| e.has_tag_name("error"))
                .filter_map(|e| e.text())
                .map(str::trim)
                .collect();
            if !errs.is_empty() {
                msg.push_str(": ");
                msg.push_str(&errs.join("; "));
            }
            st.error = Some(msg);
        }
    }
    if st.error.is_none()
        && st.nodes.is_empty()
        && !root.has_tag_name("crm_mon")
        && !root.has_tag_name("pacemaker-result")
    {
        return Err(format!(
            "unexpected crm_mon output (root element <{}>)",
            root.tag_name().name()
        ));
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from pacemaker 2.1.5 (Debian bookworm), `crm_mon -1 --output-as=xml`.
    const XML2: &str = r#"<pacemaker-result api-version="2.30" request="crm_mon -1 --output-as=xml">
  <summary><stack type="corosync"/><current_dc present="true" version="2.1.5" name="nodo1" id="1" with_quorum="true"/></summary>
  <nodes>
    <node name="nodo1" id="1" online="true" standby="false" standby_onfail="false" maintenance="false" pending="false" unclean="false" shutdown="false" expected_up="true" is_dc="true" resources_running="3" type="member"/>
    <node name="nodo2" id="2" online="false" standby="false" standby_onfail="false" maintenance="false" pending="false" unclean="false" shutdown="false" expected_up="false" is_dc="false" resources_running="0" type="member"/>
  </nodes>
  <resources>
    <resource id="VirtualIP" resource_agent="ocf:heartbeat:IPaddr2" role="Started" active="true" orphaned="false" blocked="false" maintenance="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
      <node name="nodo1" id="1" cached="true"/>
    </resource>
    <group id="web" number_resources="2" maintenance="false" managed="true" disabled="false">
      <resource id="WebIP" resource_agent="ocf:heartbeat:IPaddr2" role="Started" active="true" failed="false" nodes_running_on="1"><node name="nodo1" id="1" cached="true"/></resource>
      <resource id="WebServer" resource_agent="systemd:apache2" role="Started" active="true" failed="false" nodes_running_on="1"><node name="nodo1" id="1" cached="true"/></resource>
    </group>
    <resource id="Stopped1" resource_agent="ocf:heartbeat:Dummy" role="Stopped" active="false" failed="false" nodes_running_on="0"/>
  </resources>
  <node_history><node name="nodo1"><resource_history id="VirtualIP" orphan="false" migration-threshold="1000000"/></node></node_history>
  <status code="0" message="OK"/>
</pacemaker-result>"#;

    const DOWN: &str = r#"<pacemaker-result api-version="2.30" request="crm_mon -1 --output-as=xml">
  <status code="102" message="Not connected">
    <errors>
      <error>crm_mon: Error: cluster is not available on this node</error>
    </errors>
  </status>
</pacemaker-result>"#;

    fn plan(nodes: &[&str], res: &[(&str, Option<&str>)], together: bool) -> Plan {
        Plan {
            ask: vec![],
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            resources: res
                .iter()
                .map(|(r, o)| (r.to_string(), o.map(String::from)))
                .collect(),
            together,
        }
    }

    #[test]
    fn parses_nodes_and_resources() {
        let st = parse_crm_mon(XML2).unwrap();
        assert_eq!(st.nodes.len(), 2, "node_history's <node> is not a member");
        assert!(st.nodes[0].online && !st.nodes[1].online);
        assert_eq!(st.started_on("VirtualIP"), Some(vec!["nodo1".to_string()]));
        assert_eq!(st.started_on("web"), Some(vec!["nodo1".to_string()]));
        assert_eq!(st.started_on("Stopped1"), Some(vec![]));
        assert_eq!(st.started_on("Nope"), None);
        assert!(st.error.is_none());
    }

    #[test]
    fn judges() {
        let st = parse_crm_mon(XML2).unwrap();
        let o = plan(
            &["nodo1"],
            &[("VirtualIP", Some("nodo1")), ("WebServer", None)],
            true,
        )
        .judge(&st, "nodo1");
        assert!(o.passed, "{}", o.detail);
        assert!(
            o.detail.contains("VirtualIP started on nodo1"),
            "{}",
            o.detail
        );
        let o = plan(&["nodo1", "nodo2"], &[("VirtualIP", None)], false).judge(&st, "nodo1");
        assert!(
            !o.passed && o.detail.contains("nodo2 is offline"),
            "{}",
            o.detail
        );
        let o = plan(&[], &[("VirtualIP", Some("nodo2"))], false).judge(&st, "nodo1");
        assert!(
            !o.passed && o.detail.contains("runs on nodo1, not on nodo2"),
            "{}",
            o.detail
        );
        let o = plan(&[], &[("Stopped1", None), ("Ghost", None)], false).judge(&st, "nodo1");
        assert!(
            o.detail
                .contains("Stopped1 is not started (Stopped1 Stopped)"),
            "{}",
            o.detail
        );
        assert!(
            o.detail.contains("resource Ghost does not exist"),
            "{}",
            o.detail
        );
    }

    #[test]
    fn reports_crm_mon_errors() {
        let st = parse_crm_mon(DOWN).unwrap();
        let e = st.error.unwrap();
        assert!(
            e.contains("Not connected") && e.contains("cluster is not available"),
            "{e}"
        );
        assert!(parse_crm_mon("<html/>").is_err());
        assert!(parse_crm_mon("not xml").is_err());
    }

    #[test]
    fn legacy_format() {
        let xml = r#"<?xml version="1.0"?><crm_mon version="1.1.16"><nodes><node name="a" id="1" online="true" standby="false" unclean="false"/></nodes><resources><clone id="c" multi_state="false"><resource id="R" role="Started" active="true" failed="false"><node name="a" id="1" cached="false"/></resource><resource id="R" role="Stopped" active="false" failed="false"/></clone></resources></crm_mon>"#;
        let st = parse_crm_mon(xml).unwrap();
        assert_eq!(st.started_on("R"), Some(vec!["a".to_string()]));
        assert_eq!(st.started_on("c"), Some(vec!["a".to_string()]));
    }
}
