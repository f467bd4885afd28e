//! `cluster`: pacemaker's configuration (properties, resource defaults,
//! resources, constraints) compared with the live CIB, without pcsd.
//!
//! ```yaml
//! - cluster:
//!     members: nodos                 # a group or a list of nodes; applied from the first one
//!     properties: {stonith-enabled: "false", no-quorum-policy: ignore}
//!     resource_defaults: {resource-stickiness: "100"}
//!     resources:
//!       - {id: VirtualIP, agent: "ocf:heartbeat:IPaddr2", params: {ip: "{{ vip }}", cidr_netmask: "24"},
//!          ops: {monitor: {interval: 1s}}}
//!     constraints:
//!       - {colocation: {id: web-with-ip, resource: WebServer, with: VirtualIP, score: INFINITY}}
//!       - {order: {id: ip-then-web, first: VirtualIP, then: WebServer}}
//! ```
//!
//! Applied once per cluster, from the first member, after every member is
//! online (the probe waits up to `wait` seconds for that). Each element is
//! compared with its live XML; only what differs is created or replaced, so an
//! unchanged cluster changes and restarts nothing, and a changed parameter
//! touches only its resource. Elements not declared are left alone.

use super::{q, Op, Plan, PrepareCtx, Probe};
use base64::Engine;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    pub id: String,
    /// `class:provider:type` (`ocf:heartbeat:IPaddr2`) or `class:type` (`systemd:apache2`).
    pub agent: String,
    #[serde(default)]
    pub params: IndexMap<String, String>,
    #[serde(default)]
    pub meta: IndexMap<String, String>,
    /// Operations by name (`monitor`, `start`, `stop`) with their attributes.
    #[serde(default)]
    pub ops: IndexMap<String, IndexMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Colocation {
    pub id: String,
    pub resource: String,
    pub with: String,
    #[serde(default = "infinity")]
    pub score: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub id: String,
    pub first: String,
    pub then: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub id: String,
    pub resource: String,
    pub node: String,
    #[serde(default = "infinity")]
    pub score: String,
}

fn infinity() -> String {
    "INFINITY".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    pub colocation: Option<Colocation>,
    pub order: Option<Order>,
    pub location: Option<Location>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The cluster's members: a group name or a list of nodes. The first applies the configuration.
    pub members: crate::yaml::OneOrMany,
    #[serde(default)]
    pub properties: IndexMap<String, String>,
    #[serde(default)]
    pub resource_defaults: IndexMap<String, String>,
    #[serde(default)]
    pub op_defaults: IndexMap<String, String>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// Seconds to wait for every member to be online (default 180).
    pub wait: Option<u64>,
}

/// One CIB element labctl manages.
#[derive(Debug, Clone)]
struct Element {
    id: String,
    /// `resources` or `constraints`.
    scope: &'static str,
    xml: String,
}

impl Args {
    pub fn validate(&self) -> Result<(), String> {
        for r in &self.resources {
            let parts = r.agent.split(':').count();
            if !(2..=3).contains(&parts) {
                return Err(format!(
                    "resource {}: agent `{}` is not `class:provider:type` or `class:type`\n  fix: e.g. ocf:heartbeat:IPaddr2 or systemd:apache2",
                    r.id, r.agent
                ));
            }
        }
        for c in &self.constraints {
            let n = usize::from(c.colocation.is_some())
                + usize::from(c.order.is_some())
                + usize::from(c.location.is_some());
            if n != 1 {
                return Err(
                    "each constraint is exactly one of `colocation:`, `order:` or `location:`\n  fix: split it into one constraint per kind"
                        .into(),
                );
            }
        }
        Ok(())
    }

    pub fn prepare(self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Op>> {
        // members: group names are resolved through the `groups` fact
        let groups = ctx.vars.get_attr("groups").ok();
        let mut members: Vec<String> = Vec::new();
        for m in &self.members.0 {
            let from_group = groups
                .as_ref()
                .and_then(|g| g.get_attr(m).ok())
                .filter(|v| !v.is_undefined())
                .and_then(|v| {
                    v.try_iter().ok().map(|it| {
                        it.filter_map(|x| x.as_str().map(String::from))
                            .collect::<Vec<_>>()
                    })
                });
            match from_group {
                Some(list) => members.extend(list),
                None => members.push(m.clone()),
            }
        }
        let me = ctx
            .vars
            .get_attr("inventory_hostname")
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        // every member is a node of the inventory (its name reaches the probe)
        let nodes = ctx.vars.get_attr("nodes").ok();
        for m in &members {
            let known = nodes
                .as_ref()
                .and_then(|n| n.get_attr(m).ok())
                .is_some_and(|v| !v.is_undefined());
            if !known || !crate::inventory::valid_node_name(m) {
                return Err(crate::error::user(format!(
                    "{}: cluster: member {m:?} is neither a node nor a group of the inventory\n  fix: name inventory nodes or a group in `members:`",
                    ctx.at
                )));
            }
        }
        let leader = members.first() == Some(&me);
        if !members.contains(&me) {
            return Err(crate::error::user(format!(
                "{}: cluster: this host ({me}) is not one of the members ({})\n  fix: run the task on the members only (`hosts:` the same group as `members:`)",
                ctx.at,
                members.join(", ")
            )));
        }
        let elements = self.elements();
        Ok(Box::new(Cluster {
            members,
            leader,
            args: self,
            elements,
        }))
    }

    fn elements(&self) -> Vec<Element> {
        let mut v = Vec::new();
        for r in &self.resources {
            v.push(Element {
                id: r.id.clone(),
                scope: "resources",
                xml: primitive_xml(r),
            });
        }
        for c in &self.constraints {
            let (id, xml) = if let Some(c) = &c.colocation {
                (
                    c.id.clone(),
                    format!(
                        "<rsc_colocation id=\"{}\" rsc=\"{}\" with-rsc=\"{}\" score=\"{}\"/>",
                        x(&c.id),
                        x(&c.resource),
                        x(&c.with),
                        x(&c.score)
                    ),
                )
            } else if let Some(o) = &c.order {
                (
                    o.id.clone(),
                    format!(
                        "<rsc_order id=\"{}\" first=\"{}\" then=\"{}\"/>",
                        x(&o.id),
                        x(&o.first),
                        x(&o.then)
                    ),
                )
            } else if let Some(l) = &c.location {
                (
                    l.id.clone(),
                    format!(
                        "<rsc_location id=\"{}\" rsc=\"{}\" node=\"{}\" score=\"{}\"/>",
                        x(&l.id),
                        x(&l.resource),
                        x(&l.node),
                        x(&l.score)
                    ),
                )
            } else {
                continue;
            };
            v.push(Element {
                id,
                scope: "constraints",
                xml,
            });
        }
        v
    }
}

/// Escape for an XML attribute.
fn x(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn nvset(tag: &str, owner: &str, pairs: &IndexMap<String, String>) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let id = format!("{owner}-{tag}");
    let mut s = format!("<{tag} id=\"{}\">", x(&id));
    for (k, v) in pairs {
        s += &format!(
            "<nvpair id=\"{}\" name=\"{}\" value=\"{}\"/>",
            x(&format!("{id}-{k}")),
            x(k),
            x(v)
        );
    }
    s + &format!("</{tag}>")
}

fn primitive_xml(r: &Resource) -> String {
    let parts: Vec<&str> = r.agent.split(':').collect();
    let head = match parts.as_slice() {
        [class, provider, ty] => format!(
            "class=\"{}\" provider=\"{}\" type=\"{}\"",
            x(class),
            x(provider),
            x(ty)
        ),
        [class, ty] => format!("class=\"{}\" type=\"{}\"", x(class), x(ty)),
        _ => String::new(),
    };
    let mut s = format!("<primitive id=\"{}\" {head}>", x(&r.id));
    s += &nvset("instance_attributes", &r.id, &r.params);
    s += &nvset("meta_attributes", &r.id, &r.meta);
    if !r.ops.is_empty() {
        s += "<operations>";
        for (name, attrs) in &r.ops {
            let interval = attrs
                .get("interval")
                .cloned()
                .unwrap_or_else(|| "0s".into());
            let mut op = format!(
                "<op id=\"{}\" name=\"{}\" interval=\"{}\"",
                x(&format!("{}-{name}-interval-{interval}", r.id)),
                x(name),
                x(&interval)
            );
            for (k, v) in attrs.iter().filter(|(k, _)| *k != "interval") {
                op += &format!(" {}=\"{}\"", x(k), x(v));
            }
            s += &op;
            s += "/>";
        }
        s += "</operations>";
    }
    s + "</primitive>"
}

/// A canonical text of an XML element: attributes and children sorted, whitespace ignored, so
/// the live CIB and the wanted element compare equal when they mean the same.
pub fn canonical(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml.trim()).ok()?;
    fn walk(n: roxmltree::Node, out: &mut String) {
        if !n.is_element() {
            return;
        }
        out.push('<');
        out.push_str(n.tag_name().name());
        let mut attrs: Vec<(String, String)> = n
            .attributes()
            .map(|a| (a.name().to_string(), a.value().to_string()))
            .collect();
        attrs.sort();
        for (k, v) in attrs {
            out.push_str(&format!(" {k}={v:?}"));
        }
        out.push('>');
        // the order of nvpairs and ops carries no meaning
        let mut children: Vec<String> = n
            .children()
            .map(|c| {
                let mut s = String::new();
                walk(c, &mut s);
                s
            })
            .filter(|s| !s.is_empty())
            .collect();
        children.sort();
        out.push_str(&children.concat());
        out.push_str("</>");
    }
    let mut out = String::new();
    walk(doc.root_element(), &mut out);
    Some(out)
}

/// The value of a cluster property (`crm_config`) or default (`rsc_defaults`, `op_defaults`).
fn live_attr(doc: &roxmltree::Document, section: &str, name: &str) -> Option<String> {
    let sec = doc.descendants().find(|n| n.has_tag_name(section))?;
    sec.descendants()
        .find(|n| n.has_tag_name("nvpair") && n.attribute("name") == Some(name))
        .and_then(|n| n.attribute("value").map(String::from))
}

#[derive(Debug)]
pub struct Cluster {
    members: Vec<String>,
    leader: bool,
    args: Args,
    elements: Vec<Element>,
}

impl Op for Cluster {
    fn probe(&self) -> String {
        if !self.leader {
            return String::new();
        }
        let wait_tenths = self.args.wait.unwrap_or(180) * 5;
        let mut s = String::from("ok=no\ni=0\nwhile [ $i -lt ");
        s += &format!("{wait_tenths} ]; do\n  m=$(crm_mon -1 --output-as=xml 2>/dev/null)\n  if echo \"$m\" | grep -q '<current_dc present=\"true\"'");
        for n in &self.members {
            s += &format!(" && echo \"$m\" | grep -q '<node name=\"{n}\"[^>]* online=\"true\"'");
        }
        s += "; then ok=yes; break; fi\n  i=$((i+1)); sleep 0.2\ndone\necho \"online=$ok\"\n";
        // the whole CIB in one call; compared locally
        s += "echo \"cib=$(cibadmin --query 2>/dev/null | base64 -w0)\"\n";
        s
    }

    fn plan(&self, state: &Probe) -> anyhow::Result<Plan> {
        if !self.leader {
            return Ok(Plan::Ok);
        }
        let s: BTreeMap<String, String> = super::kv_lines(&state.out);
        if s.get("online").map(String::as_str) != Some("yes") {
            anyhow::bail!(
                "the cluster members ({}) were not all online within {} s (crm_mon); check corosync.conf, the authkey and that corosync and pacemaker run on every member",
                self.members.join(", "),
                self.args.wait.unwrap_or(180)
            );
        }
        let cib = s
            .get("cib")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let doc = roxmltree::Document::parse(&cib)
            .map_err(|e| anyhow::anyhow!("cannot read the CIB (cibadmin --query): {e}"))?;
        let mut what = Vec::new();
        let mut script = String::from("set -e\n");
        for (kind, map) in [
            ("crm_config", &self.args.properties),
            ("rsc_defaults", &self.args.resource_defaults),
            ("op_defaults", &self.args.op_defaults),
        ] {
            for (k, v) in map {
                if live_attr(&doc, kind, k).as_deref() != Some(v.as_str()) {
                    what.push(format!("{k}={v}"));
                    script += &format!(
                        "crm_attribute --type {kind} --name {} --update {}\n",
                        q(k),
                        q(v)
                    );
                }
            }
        }
        for e in &self.elements {
            let live = doc
                .descendants()
                .find(|n| n.is_element() && n.attribute("id") == Some(e.id.as_str()))
                .map(|n| cib[n.range()].to_string());
            if let Some(l) = &live {
                if canonical(l) == canonical(&e.xml) {
                    continue;
                }
            }
            let (verb, word) = if live.is_some() {
                ("--replace", "update")
            } else {
                ("--create", "create")
            };
            what.push(format!("{word} {}", e.id));
            // the XML on stdin, not the command line: resource parameters
            // never show in the node's process list
            let eof = format!("LABCTL_CIB_{:016x}", rand::random::<u64>());
            script += &format!(
                "cibadmin {verb} --scope {} --xml-pipe <<'{eof}'\n{}\n{eof}\n",
                e.scope, e.xml
            );
        }
        // return when the cluster has carried the change out (resources started)
        script += "crm_resource --wait --timeout=120s >/dev/null 2>&1 || true\n";
        Ok(Plan::of(what, script))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitive_xml_matches_live_cib_text() {
        let r = Resource {
            id: "VirtualIP".into(),
            agent: "ocf:heartbeat:IPaddr2".into(),
            params: [
                ("ip".to_string(), "10.1.1.100".to_string()),
                ("cidr_netmask".to_string(), "24".to_string()),
            ]
            .into_iter()
            .collect(),
            meta: IndexMap::new(),
            ops: [(
                "monitor".to_string(),
                [("interval".to_string(), "1s".to_string())]
                    .into_iter()
                    .collect(),
            )]
            .into_iter()
            .collect(),
        };
        let ours = primitive_xml(&r);
        // what cibadmin prints: other attribute order, indentation
        let live = r#"<primitive type="IPaddr2" id="VirtualIP" class="ocf" provider="heartbeat">
  <instance_attributes id="VirtualIP-instance_attributes">
    <nvpair name="ip" value="10.1.1.100" id="VirtualIP-instance_attributes-ip"/>
    <nvpair id="VirtualIP-instance_attributes-cidr_netmask" name="cidr_netmask" value="24"/>
  </instance_attributes>
  <operations>
    <op name="monitor" interval="1s" id="VirtualIP-monitor-interval-1s"/>
  </operations>
</primitive>"#;
        assert_eq!(canonical(&ours), canonical(live));
        assert_ne!(
            canonical(&ours),
            canonical(&live.replace("10.1.1.100", "10.1.1.99"))
        );
    }

    fn cluster(vip: &str) -> Cluster {
        let args: Args = serde_json::from_value(serde_json::json!({
            "members": ["nodo1", "nodo2"],
            "properties": {"stonith-enabled": "false"},
            "resource_defaults": {"resource-stickiness": "100"},
            "resources": [{"id": "VirtualIP", "agent": "ocf:heartbeat:IPaddr2",
                           "params": {"ip": vip, "cidr_netmask": "24"},
                           "ops": {"monitor": {"interval": "1s"}}}],
        }))
        .unwrap();
        let elements = args.elements();
        Cluster {
            members: vec!["nodo1".into(), "nodo2".into()],
            leader: true,
            args,
            elements,
        }
    }

    fn probe_out(cib: &str) -> Probe {
        let b = base64::engine::general_purpose::STANDARD.encode(cib);
        Probe {
            out: format!("online=yes\ncib={b}\n"),
            rc: 0,
        }
    }

    const CIB: &str = r#"<cib epoch="5"><configuration>
  <crm_config><cluster_property_set id="cib-bootstrap-options">
    <nvpair id="cib-bootstrap-options-have-watchdog" name="have-watchdog" value="false"/>
    <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>
  </cluster_property_set></crm_config>
  <nodes/>
  <resources>
    <primitive id="VirtualIP" class="ocf" provider="heartbeat" type="IPaddr2">
      <instance_attributes id="VirtualIP-instance_attributes">
        <nvpair id="VirtualIP-instance_attributes-ip" name="ip" value="10.1.1.100"/>
        <nvpair id="VirtualIP-instance_attributes-cidr_netmask" name="cidr_netmask" value="24"/>
      </instance_attributes>
      <operations><op id="VirtualIP-monitor-interval-1s" name="monitor" interval="1s"/></operations>
    </primitive>
  </resources>
  <constraints/>
  <rsc_defaults><meta_attributes id="build-resource-defaults">
    <nvpair id="build-resource-defaults-resource-stickiness" name="resource-stickiness" value="100"/>
  </meta_attributes></rsc_defaults>
</configuration><status/></cib>"#;

    #[test]
    fn matching_cib_is_ok_and_a_changed_param_updates_only_its_resource() {
        let p = cluster("10.1.1.100").plan(&probe_out(CIB)).unwrap();
        assert!(matches!(p, Plan::Ok), "{p:?}");
        let Plan::Change(c) = cluster("10.1.1.99").plan(&probe_out(CIB)).unwrap() else {
            panic!()
        };
        assert_eq!(c.what, "update VirtualIP");
        assert!(
            c.script.contains("cibadmin --replace --scope resources")
                && !c.script.contains("crm_attribute")
        );
        let empty =
            r#"<cib><configuration><crm_config/><resources/><constraints/></configuration></cib>"#;
        let Plan::Change(c) = cluster("10.1.1.100").plan(&probe_out(empty)).unwrap() else {
            panic!()
        };
        assert_eq!(
            c.what,
            "stonith-enabled=false, resource-stickiness=100, create VirtualIP"
        );
    }
}
