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
//!       # a promotable clone (DRBD): one instance per node, one of them promoted;
//!       # several operations of one name (one per role) as a list
//!       - {id: Data, agent: "ocf:linbit:drbd", params: {drbd_resource: r0},
//!          ops: {monitor: [{interval: 9s, role: Promoted}, {interval: 11s, role: Unpromoted}]},
//!          promotable: {id: DataClone, meta: {promoted-max: "1", notify: "true"}}}
//!       # a plain clone (DLM, a GFS2 mount): the same resource on every node
//!       - {id: dlm, agent: "ocf:pacemaker:controld", clone: {id: dlm-clone, meta: {interleave: "true"}}}
//!       # a fence device (STONITH): class `stonith`
//!       - {id: fence-nodo1, agent: "stonith:fence_xvm", params: {port: labctl-ha-nodo1}}
//!     constraints:
//!       - {colocation: {id: web-with-ip, resource: WebServer, with: VirtualIP, score: INFINITY}}
//!       - {order: {id: ip-then-web, first: VirtualIP, then: WebServer}}
//!       # roles and actions of a promotable clone
//!       - {colocation: {id: fs-on-primary, resource: WebFS, with: DataClone, with_role: Promoted}}
//!       - {order: {id: promote-then-fs, first: DataClone, first_action: promote, then: WebFS, then_action: start}}
//! ```
//!
//! A clone's or promotable clone's CIB element is the `<clone>` (its `id` is
//! the one constraints name) holding the primitive.
//!
//! Applied once per cluster, from the first member, after every member is
//! online (the wait is read in rounds of a few seconds, up to `wait` seconds;
//! a member the run knows to be unreachable ends it at once). Each element is
//! compared with its live XML; only what differs is created or replaced, so an
//! unchanged cluster changes and restarts nothing, and a changed parameter
//! touches only its resource.
//!
//! The operation owns the cluster's configuration: resources, constraints,
//! properties and defaults the scenario does not declare (say, another
//! scenario's) are removed. The removal happens in maintenance mode and
//! forgets the removed resources' history, so the cluster leaves their
//! services as they are (the scenario's own tasks say whether they run).

mod args;
mod cib;
mod settle;
pub use args::{Args, CloneOf, Colocation, Constraint, Location, Ops, Order, Resource};
use cib::{canonical, live_attr, x, Element};
use settle::wait_idle;
use super::{Op, Operation, Plan, PrepareCtx, Probe};
use crate::sh;
use crate::shell::Script;
use base64::Engine;
use indexmap::IndexMap;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one round of the members' wait lasts on the node.
/// What [`Operation::manages`] calls the cluster's resources (a cluster
/// operation removes those it does not declare).
pub const CLUSTER_RESOURCES: &str = "cluster resources";

const WAIT_ROUND: Duration = Duration::from_secs(5);

/// Properties pacemaker keeps itself (or an operator's switch): never removed.
const OWN_PROPERTIES: &[&str] = &[
    "have-watchdog",
    "dc-version",
    "cluster-infrastructure",
    "cluster-name",
    "last-lrm-refresh",
    "maintenance-mode",
];

impl Operation for Args {
    fn manages(&self) -> Option<(&'static str, Vec<String>)> {
        Some((
            CLUSTER_RESOURCES,
            self.resources.iter().map(|r| r.id.clone()).collect(),
        ))
    }
    fn subject(&self) -> String {
        self.members.0.join(",")
    }

    fn validate(&self) -> Result<(), String> {
        for r in &self.resources {
            if r.clone.is_some() && r.promotable.is_some() {
                return Err(format!(
                    "resource {}: `clone:` and `promotable:` both given\n  fix: keep one (`promotable:` is a clone with promoted instances)",
                    r.id
                ));
            }
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

    fn prepare(self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Op>> {
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
            unreachable: ctx.unreachable.clone(),
            deadline: Mutex::new(None),
            check: ctx.check,
        }))
    }

}

#[derive(Debug)]
pub struct Cluster {
    members: Vec<String>,
    leader: bool,
    args: Args,
    elements: Vec<Element>,
    /// The hosts this run found unreachable.
    unreachable: crate::ops::reach::Unreachable,
    /// When the wait for the members ends (set by the first probe).
    deadline: Mutex<Option<Instant>>,
    /// `--check`: nothing changes, so the members' state is read once, not waited for.
    check: bool,
}

impl Cluster {
    fn wait_secs(&self) -> u64 {
        self.args.wait.map_or(180, |d| d.0.as_secs().max(1))
    }

    /// The end of the members' wait, which starts with the first probe.
    fn deadline(&self) -> Instant {
        let mut d = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        *d.get_or_insert_with(|| Instant::now() + Duration::from_secs(self.wait_secs()))
    }

    /// The live nvpairs of `section` not declared in `wanted` (and not pacemaker's own).
    fn undeclared_attrs(
        doc: &roxmltree::Document,
        section: &str,
        wanted: &IndexMap<String, String>,
    ) -> Vec<String> {
        let Some(sec) = doc.descendants().find(|n| n.has_tag_name(section)) else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for set in sec.children().filter(|n| n.is_element()) {
            // crm_attribute's own set for properties; any set for defaults
            if section == "crm_config" && set.attribute("id") != Some("cib-bootstrap-options") {
                continue;
            }
            for nv in set.children().filter(|n| n.has_tag_name("nvpair")) {
                let Some(name) = nv.attribute("name") else {
                    continue;
                };
                if !wanted.contains_key(name)
                    && !OWN_PROPERTIES.contains(&name)
                    && !out.iter().any(|o| o == name)
                {
                    out.push(name.to_string());
                }
            }
        }
        out
    }
}

impl Op for Cluster {
    fn settle(&self) -> Option<(&'static str, Script)> {
        Some(("the cluster", settle::script()))
    }

    fn probe(&self) -> Script {
        if !self.leader {
            return Script::new();
        }
        // one round of the wait (a few seconds): the runner reads again while
        // the deadline allows, so a member lost meanwhile ends the wait; a member
        // already known to be unreachable gets one look, no wait
        let left = self.deadline().saturating_duration_since(Instant::now());
        let rounds = if self.check || self.unreachable.first_of(&self.members).is_some() {
            1
        } else {
            (left.min(WAIT_ROUND).as_millis() / 200).max(1)
        };
        let mut s = sh!(
            "ok=no\ni=0\nwhile [ $i -lt {} ]; do\n  m=$(crm_mon -1 --output-as=xml 2>/dev/null)\n  if echo \"$m\" | grep -q '<current_dc present=\"true\"'",
            rounds as u64
        );
        for n in &self.members {
            s.push(sh!(
                " && echo \"$m\" | grep -q {}",
                format!("<node name=\"{n}\"[^>]* online=\"true\"")
            ));
        }
        s.push("; then ok=yes; break; fi\n  i=$((i+1)); sleep 0.2\ndone\necho \"online=$ok\"");
        // the whole CIB in one call; compared locally
        s.line("echo \"cib=$(cibadmin --query 2>/dev/null | base64 -w0)\"");
        s
    }

    fn plan(&self, state: &Probe) -> anyhow::Result<Plan> {
        if !self.leader {
            return Ok(Plan::Ok);
        }
        let s: BTreeMap<String, String> = crate::text::kv_lines(&state.out);
        let cib = s
            .get("cib")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let online = s.get("online").map(String::as_str) == Some("yes");
        if !online && self.check {
            // --check on members still to be set up: compare with what can be read
            // (nothing yet on fresh nodes) and say when it would happen
            let cib = if roxmltree::Document::parse(&cib).is_ok() {
                cib
            } else {
                "<cib><configuration/></cib>".to_string()
            };
            let (what, _) = self.changes(&cib)?;
            let what = if what.is_empty() {
                vec!["wait for every member to be online".to_string()]
            } else {
                vec![format!("once every member is online: {}", what.join(", "))]
            };
            return Ok(Plan::of(what, Script::new()));
        }
        if !online {
            if let Some((m, why)) = self.unreachable.first_with_why(&self.members) {
                let fix = if why.contains("unreachable") {
                    format!("bring {m} back (`labctl up {m}`) and run configure again")
                } else {
                    format!("fix {m}'s failed task (above) and run configure again")
                };
                anyhow::bail!(
                    "member {m} {why}; the cluster is configured once every member ({}) is online\n  fix: {fix}",
                    self.members.join(", ")
                );
            }
            if Instant::now() < self.deadline() {
                return Ok(Plan::Wait("waiting for every member to be online".into()));
            }
            anyhow::bail!(
                "the cluster members ({}) were not all online within {} s (crm_mon); check corosync.conf, the authkey and that corosync and pacemaker run on every member",
                self.members.join(", "),
                self.wait_secs()
            );
        }
        let (what, script) = self.changes(&cib)?;
        Ok(Plan::of(what, script))
    }
}

impl Cluster {
    /// What differs between the live CIB and the wanted configuration, and the script that fixes it.
    fn changes(&self, cib: &str) -> anyhow::Result<(Vec<String>, Script)> {
        let doc = roxmltree::Document::parse(cib)
            .map_err(|e| anyhow::anyhow!("cannot read the CIB (cibadmin --query): {e}"))?;
        let mut what = Vec::new();
        let mut script = Script::lit("set -e");
        let mut batch = cib::Batch::default();
        for (kind, map) in [
            ("crm_config", &self.args.properties),
            ("rsc_defaults", &self.args.resource_defaults),
            ("op_defaults", &self.args.op_defaults),
        ] {
            for (k, v) in map {
                if live_attr(&doc, kind, k).as_deref() != Some(v.as_str()) {
                    what.push(format!("{k}={v}"));
                    batch.attr(&doc, kind, k, v);
                }
            }
        }
        let mut replaces = Script::new();
        for e in &self.elements {
            let live = doc
                .descendants()
                .find(|n| n.is_element() && n.attribute("id") == Some(e.id.as_str()))
                .map(|n| cib[n.range()].to_string());
            match &live {
                Some(l) if canonical(l) == canonical(&e.xml) => continue,
                Some(_) => {
                    what.push(format!("update {}", e.id));
                    // the XML on stdin, not the command line: resource parameters
                    // never show in the node's process list
                    replaces.line(sh!(
                        "cibadmin --replace --scope {} --xml-pipe {}",
                        e.scope,
                        Script::heredoc(&e.xml)
                    ));
                }
                None => {
                    what.push(format!("create {}", e.id));
                    batch.create(e.scope, &e.xml);
                }
            }
        }
        if let Some(xml) = batch.xml() {
            script.line(sh!(
                "cibadmin --modify --scope configuration --xml-pipe {}",
                Script::heredoc(&xml)
            ));
        }
        if !replaces.is_empty() {
            script.line(replaces);
        }
        // what the scenario no longer declares (another scenario's), removed
        let mut removal = Script::new();
        for (kind, map) in [
            ("crm_config", &self.args.properties),
            ("rsc_defaults", &self.args.resource_defaults),
            ("op_defaults", &self.args.op_defaults),
        ] {
            for k in Self::undeclared_attrs(&doc, kind, map) {
                what.push(format!("remove {k}"));
                removal.line(sh!("crm_attribute --type {} --name {} --delete", kind, k));
            }
        }
        let mut removed_resources = false;
        // constraints first: they name the resources
        for scope in ["constraints", "resources"] {
            let Some(sec) = doc.descendants().find(|n| {
                n.has_tag_name(scope) && n.parent().is_some_and(|p| p.has_tag_name("configuration"))
            }) else {
                continue;
            };
            for el in sec.children().filter(|n| n.is_element()) {
                let Some(id) = el.attribute("id") else {
                    continue;
                };
                if self.elements.iter().any(|e| e.id == id) {
                    continue;
                }
                removed_resources |= scope == "resources";
                what.push(format!("remove {id}"));
                removal.line(sh!(
                    "cibadmin --delete --scope {} --xml-text {}",
                    scope,
                    format!("<{} id=\"{}\"/>", el.tag_name().name(), x(id))
                ));
            }
        }
        if !removal.is_empty() {
            // in maintenance mode nothing is stopped or started; the removed
            // resources' history is forgotten before it ends, so their services
            // stay as they are
            script.line("crm_attribute --type crm_config --name maintenance-mode --update true");
            script.line(removal);
            if removed_resources {
                script.line("crm_resource --refresh >/dev/null");
                script.line(wait_idle(60));
            }
            script.line("crm_attribute --type crm_config --name maintenance-mode --delete");
        }
        // return when the cluster has carried the change out (resources started)
        script.line(wait_idle(120));
        Ok((what, script))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            unreachable: crate::ops::reach::Unreachable::new(),
            deadline: Mutex::new(None),
            check: false,
        }
    }

    fn probe_out(cib: &str) -> Probe {
        let b = base64::engine::general_purpose::STANDARD.encode(cib);
        Probe {
            out: format!("online=yes\ncib={b}\n"),
            rc: 0,
            ..Default::default()
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
            c.script
                .as_str()
                .contains("cibadmin --replace --scope 'resources'")
                && !c.script.as_str().contains("crm_attribute")
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
        // one CIB update for all of it
        let s = c.script.as_str();
        assert_eq!(s.matches("cibadmin --modify --scope configuration").count(), 1, "{s}");
        assert!(!s.contains("crm_attribute") && !s.contains("--create"), "{s}");
    }

    #[test]
    fn what_the_scenario_no_longer_declares_is_removed_in_maintenance_mode() {
        // a 05 cluster (WebServer, its constraints, one more property) seen by 04
        let cib = CIB
            .replace(
                "</resources>",
                r#"<primitive id="WebServer" class="systemd" type="apache2"/></resources>"#,
            )
            .replace(
                "<constraints/>",
                r#"<constraints><rsc_colocation id="web-with-ip" rsc="WebServer" with-rsc="VirtualIP" score="INFINITY"/><rsc_order id="ip-then-web" first="VirtualIP" then="WebServer"/></constraints>"#,
            )
            .replace(
                "</cluster_property_set>",
                r#"<nvpair id="cib-bootstrap-options-dc-version" name="dc-version" value="2.1.5"/><nvpair id="cib-bootstrap-options-x" name="symmetric-cluster" value="false"/></cluster_property_set>"#,
            );
        let Plan::Change(c) = cluster("10.1.1.100").plan(&probe_out(&cib)).unwrap() else {
            panic!()
        };
        assert_eq!(
            c.what,
            "remove symmetric-cluster, remove web-with-ip, remove ip-then-web, remove WebServer"
        );
        let on = c
            .script
            .as_str()
            .find("maintenance-mode --update true")
            .unwrap();
        let col = c
            .script
            .as_str()
            .find("<rsc_colocation id=\"web-with-ip\"/>")
            .unwrap();
        let web = c
            .script
            .as_str()
            .find("<primitive id=\"WebServer\"/>")
            .unwrap();
        let off = c.script.as_str().find("maintenance-mode --delete").unwrap();
        assert!(on < col && col < web && web < off, "{}", c.script);
        assert!(c.script.as_str().contains("crm_resource --refresh"));
        assert!(
            !c.script.as_str().contains("dc-version"),
            "pacemaker's own properties stay"
        );
    }

    #[test]
    fn a_member_known_unreachable_ends_the_wait_at_once() {
        let c = cluster("10.1.1.100");
        let offline = Probe {
            out: "online=no\ncib=\n".into(),
            rc: 0,
            ..Default::default()
        };
        // members not online yet: read again (a round of a few seconds)
        assert!(
            c.probe().as_str().contains("while [ $i -lt '25' ]"),
            "{}",
            c.probe()
        );
        assert!(matches!(c.plan(&offline).unwrap(), Plan::Wait(_)));
        // nodo2 lost in this run: one look, and a message naming it
        c.unreachable.mark("nodo2");
        assert!(
            c.probe().as_str().contains("while [ $i -lt '1' ]"),
            "{}",
            c.probe()
        );
        let e = c.plan(&offline).unwrap_err().to_string();
        assert!(
            e.starts_with("member nodo2 is unreachable in this run"),
            "{e}"
        );
        assert!(!e.contains("corosync.conf"), "{e}");
        // past the deadline with every member reachable: the configuration is blamed
        let c = cluster("10.1.1.100");
        *c.deadline.lock().unwrap() = Some(Instant::now());
        let e = c.plan(&offline).unwrap_err().to_string();
        assert!(e.contains("were not all online within 180 s"), "{e}");
    }
}
