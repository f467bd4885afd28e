//! What the dashboard watches, read from the inventory and the scenario:
//! the services that matter on each node (the scenario's `service:` tasks
//! that keep a unit started), the name the strip asks and through which DNS
//! server (the scenario's `http`/`dns` checks), the cluster's members and
//! resources (its `cluster` check) and the VIP (its `failover` check).

use crate::checks::http_client::Url;
use crate::checks::{cluster, dns, failover, http, CheckKind, Host, PrepareCtx};
use crate::inventory::Inventory;
use crate::ops::OpArgs;
use crate::scenario::Scenario;
use std::net::Ipv4Addr;

/// What the strip asks on each sample.
#[derive(Debug, Clone)]
pub struct Www {
    /// The DNS server and its port, and the name to ask it.
    pub dns: Option<(Host, u16, String)>,
    /// The URL to GET (its host resolved through `dns` when it is a name).
    pub url: Option<Url>,
}

/// The cluster to read.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Members to ask `crm_mon`, in order.
    pub ask: Vec<String>,
    /// The resource whose node holds the VIP (the first the scenario's cluster check lists).
    pub vip_resource: Option<String>,
    pub vip: Option<Ipv4Addr>,
}

/// Everything the dashboard watches.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// (node, the scenario's services on it), in inventory order.
    pub services: Vec<(String, Vec<String>)>,
    pub www: Option<Www>,
    pub cluster: Option<Cluster>,
}

impl Targets {
    /// Read them from `scenario` (none: only the nodes are watched).
    pub fn of(inv: &Inventory, scenario: Option<&Scenario>) -> anyhow::Result<Targets> {
        let mut t = Targets {
            services: inv
                .nodes
                .iter()
                .map(|n| (n.name.clone(), Vec::new()))
                .collect(),
            ..Default::default()
        };
        let Some(sc) = scenario else {
            return Ok(t);
        };
        for play in &sc.plays {
            let mut hosts = Vec::new();
            for pattern in &play.hosts {
                if let Ok(nodes) = inv.select(pattern) {
                    hosts.extend(nodes.into_iter().map(|n| n.name.clone()));
                }
            }
            for task in &play.tasks {
                let OpArgs::Service(s) = &task.op else {
                    continue;
                };
                let keeps_running = !matches!(s.state, Some(crate::ops::service::State::Stopped))
                    && (s.state.is_some() || s.enabled == Some(true));
                if !keeps_running || s.name.contains("{{") {
                    continue;
                }
                for (node, list) in t.services.iter_mut() {
                    if hosts.contains(node) && !list.contains(&s.name) {
                        list.push(s.name.clone());
                    }
                }
            }
        }
        let mut http_plan: Option<http::Plan> = None;
        let mut dns_plan: Option<dns::Plan> = None;
        let mut cluster_plan: Option<cluster::Plan> = None;
        let mut failover_plan: Option<failover::Plan> = None;
        for (at, spec) in crate::verify::prepare::render(inv, sc)? {
            let ctx = PrepareCtx { inv, at: &at };
            match &spec.kind {
                CheckKind::Http(s) if http_plan.is_none() => http_plan = Some(s.plan(&ctx)?),
                CheckKind::Dns(s) if dns_plan.is_none() => dns_plan = Some(s.plan(&ctx)?),
                CheckKind::Cluster(s) if cluster_plan.is_none() => {
                    cluster_plan = Some(s.plan(&ctx)?)
                }
                CheckKind::Failover(s) if failover_plan.is_none() => {
                    failover_plan = Some(s.plan(&ctx)?)
                }
                _ => {}
            }
        }
        // the strip: the site as a client of the lab reaches it
        let url = http_plan
            .as_ref()
            .map(|p| p.url.clone())
            .or_else(|| failover_plan.as_ref().map(|f| f.target.url.clone()));
        let dns = match (&http_plan, &dns_plan) {
            (Some(h), _) if h.dns.is_some() && h.url.ip().is_none() => h
                .dns
                .clone()
                .map(|(server, port)| (server, port, h.url.host.clone())),
            (_, Some(d)) => Some((d.server.clone(), d.port, d.name.clone())),
            _ => None,
        };
        if url.is_some() || dns.is_some() {
            t.www = Some(Www { dns, url });
        }
        let members: Vec<String> = match (&cluster_plan, &failover_plan) {
            (Some(c), _) => c.ask.iter().map(|n| n.name.clone()).collect(),
            (None, Some(f)) if !f.members.is_empty() => f.members.clone(),
            _ => Vec::new(),
        };
        if !members.is_empty() {
            let mut ask = members;
            if let Some(c) = &cluster_plan {
                for n in &c.nodes {
                    if !ask.contains(n) {
                        ask.push(n.clone());
                    }
                }
            }
            t.cluster = Some(Cluster {
                ask,
                vip_resource: cluster_plan
                    .as_ref()
                    .and_then(|c| c.resources.first().map(|(id, _)| id.clone())),
                vip: failover_plan.as_ref().map(|f| f.target.addr),
            });
        }
        Ok(t)
    }

    /// The scenario's services on `node`.
    pub fn services_of(&self, node: &str) -> &[String] {
        self.services
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, s)| s.as_slice())
            .unwrap_or_default()
    }
}
