//! `http`: GET a URL whose host is resolved through the lab DNS server, like
//! `curl http://www.example.com/info.txt` from a client of the lab.
//!
//! ```yaml
//! - http: {url: "http://www.{{ domain }}/info.txt", dns: dns, nodes: [nodo1, nodo2]}
//! - http: {url: "http://{{ vip }}/", expect_body: "It works"}
//! - http: {url: "http://www.{{ domain }}/info.txt", dns: dns, same_node: true}
//! ```
//!
//! Every request resolves the host again (so DNS round robin shows), opens a
//! fresh connection to the first address, and sends HTTP/1.1 with the URL's
//! `Host:` and `Connection: close`. `info.txt` holds the name of the node that
//! served it: `nodes:` expects every listed node to answer at least once over
//! `requests:` requests; `same_node: true` expects one node to answer them all.

use super::http_client::{get, Url};
use super::{dns, Check, Ctx, Host, Outcome, PrepareCtx};
use crate::duration::Dur;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The `http:` check as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `http://HOST[:PORT]/PATH`; HOST is a name (resolved through `dns:`) or an address.
    pub url: String,
    /// The node whose DNS server resolves the URL's host name.
    pub dns: Option<String>,
    /// That DNS server's port (default 53).
    pub dns_port: Option<u16>,
    /// The status every answer must have (default 200).
    pub expect_status: Option<u16>,
    /// Text every answer's body must contain.
    pub expect_body: Option<String>,
    /// Every one of these nodes must answer at least once (`info.txt` names the node).
    pub nodes: Option<Vec<String>>,
    /// Every answer must come from the same node (active/passive).
    #[serde(default)]
    pub same_node: bool,
    /// How many requests, each on a fresh connection (default 1; 10 with `nodes`/`same_node`).
    pub requests: Option<u32>,
    /// Time limit of each request (default 2s).
    pub timeout: Option<Dur>,
}

/// A prepared `http` check.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: Url,
    pub dns: Option<(Host, u16)>,
    pub expect_status: u16,
    pub expect_body: Option<String>,
    pub nodes: Vec<String>,
    pub same_node: bool,
    pub requests: u32,
    pub timeout: Duration,
}

prepare_by_plan!(Spec);

impl Spec {
    pub(crate) fn plan(&self, ctx: &PrepareCtx) -> anyhow::Result<Plan> {
        let url = Url::parse(&self.url).map_err(|m| ctx.err(format!("http: {m}")))?;
        let dns = match &self.dns {
            Some(d) => Some((ctx.host("http: dns", d)?, self.dns_port.unwrap_or(53))),
            None => None,
        };
        if dns.is_none() && url.ip().is_none() {
            return Err(ctx.err(format!(
                "http: `{}` is a name and the check has no `dns:` server to resolve it (the host's resolver is never used)\n  fix: add `dns: <the DNS node>`, e.g. dns: dns",
                url.host
            )));
        }
        let nodes = ctx.nodes("http: nodes", self.nodes.as_deref().unwrap_or_default())?;
        let many = !nodes.is_empty() || self.same_node;
        let requests = self.requests.unwrap_or(if many { 10 } else { 1 });
        if !(1..=1000).contains(&requests) {
            return Err(ctx.err("http: `requests:` must be 1 to 1000"));
        }
        if requests < nodes.len() as u32 {
            return Err(ctx.err(format!(
                "http: {requests} requests cannot reach {} nodes\n  fix: raise `requests:`",
                nodes.len()
            )));
        }
        let timeout = self.timeout.map(|d| d.0).unwrap_or(Duration::from_secs(2));
        if timeout.is_zero() || timeout > Duration::from_secs(60) {
            return Err(ctx.err("http: `timeout:` must be more than 0 and at most 60s"));
        }
        Ok(Plan {
            url,
            dns,
            expect_status: self.expect_status.unwrap_or(200),
            expect_body: self.expect_body.clone(),
            nodes,
            same_node: self.same_node,
            requests,
            timeout,
        })
    }
}

/// Resolve `host` through a lab DNS server: the first A record it answers.
pub(crate) fn resolve(
    ctx: &Ctx,
    server: &Host,
    port: u16,
    host: &str,
    timeout: Duration,
) -> Result<Ipv4Addr, String> {
    ctx.ensure_safe(server.addr)?;
    let a = dns::query(
        ctx.inv.jump(),
        SocketAddr::new(server.addr.into(), port),
        host,
        RecordType::A,
        timeout,
    )
    .map_err(|e| format!("resolving {host} through {}: {e}", server.label))?;
    if a.rcode != ResponseCode::NoError {
        return Err(format!("{} answered {} for {host}", server.label, a.rcode));
    }
    let first = a
        .answers
        .first()
        .ok_or_else(|| format!("{} has no A record for {host}", server.label))?;
    first.parse().map_err(|_| {
        format!(
            "{} answered `{first}` for {host}, not an address",
            server.label
        )
    })
}

impl Check for Plan {
    fn summary(&self) -> String {
        let mut s = format!("http {}", self.url);
        if !self.nodes.is_empty() {
            s.push_str(&format!(" from {}", self.nodes.join("+")));
        }
        if self.same_node {
            s.push_str(" from one node");
        }
        s
    }

    fn deadline(&self) -> Duration {
        let round = self.timeout * self.requests;
        if self.nodes.is_empty() {
            round * 2 + Duration::from_secs(10)
        } else {
            // rounds go on for up to SETTLE while a listed node has not answered
            round * 2 + SETTLE + round + Duration::from_secs(10)
        }
    }

    fn run(&self, ctx: &Ctx) -> Outcome {
        let mut by_node: BTreeMap<String, u32> = BTreeMap::new();
        let mut addrs: Vec<Ipv4Addr> = Vec::new();
        let start = Instant::now();
        let mut sent = 0u32;
        let mut rounds = 0u32;
        loop {
            rounds += 1;
            if let Err(o) = self.round(ctx, &mut by_node, &mut addrs, &mut sent) {
                return o;
            }
            // a listed node that has not answered yet may be on its way back
            // (a load balancer's health checks, a DNS cache): more rounds, up to SETTLE
            let missing = self.nodes.iter().any(|n| !by_node.contains_key(n.as_str()));
            if !missing || start.elapsed() >= SETTLE || !ctx.sleep(Duration::from_millis(500)) {
                break;
            }
        }
        self.judge(&by_node, &addrs, sent, rounds, start.elapsed())
    }
}

impl Plan {
    /// One request: resolve, check the address, GET; the answer's node (if named).
    fn one(&self, ctx: &Ctx) -> Result<(Ipv4Addr, Option<String>), String> {
        let addr = match (&self.dns, self.url.ip()) {
            (_, Some(ip)) => ip,
            (Some((server, port)), None) => {
                resolve(ctx, server, *port, &self.url.host, self.timeout)?
            }
            (None, None) => return Err("no DNS server to resolve the host".into()),
        };
        ctx.ensure_safe(addr)?;
        let r = get(
            ctx.inv.jump(),
            SocketAddr::new(addr.into(), self.url.port),
            &self.url.host_header(),
            &self.url.path,
            self.timeout,
        )?;
        if r.status != self.expect_status {
            return Err(format!(
                "{addr} answered status {} (expected {}){}",
                r.status,
                self.expect_status,
                snippet(&r.body)
            ));
        }
        if let Some(want) = &self.expect_body {
            if !r.body.contains(want.as_str()) {
                return Err(format!(
                    "the answer from {addr} does not contain `{want}`{}",
                    snippet(&r.body)
                ));
            }
        }
        Ok((
            addr,
            super::node_in_body(ctx.inv, &r.body).map(String::from),
        ))
    }

    /// `requests` requests, counting who answered; the failure of the first that failed.
    fn round(
        &self,
        ctx: &Ctx,
        by_node: &mut BTreeMap<String, u32>,
        addrs: &mut Vec<Ipv4Addr>,
        sent: &mut u32,
    ) -> Result<(), Outcome> {
        for i in 0..self.requests {
            if ctx.stopped() {
                return Err(Outcome::fail(format!(
                    "stopped at its time limit after {} requests",
                    *sent
                )));
            }
            *sent += 1;
            match self.one(ctx) {
                Ok((addr, node)) => {
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                    *by_node
                        .entry(node.unwrap_or_else(|| "?".into()))
                        .or_default() += 1;
                }
                Err(e) => {
                    let which = if self.requests > 1 {
                        format!("request {} of {}: ", i + 1, self.requests)
                    } else {
                        String::new()
                    };
                    return Err(Outcome::fail(format!("{which}{e}")));
                }
            }
        }
        Ok(())
    }

    /// The verdict over every answer.
    fn judge(
        &self,
        by_node: &BTreeMap<String, u32>,
        addrs: &[Ipv4Addr],
        sent: u32,
        rounds: u32,
        took: Duration,
    ) -> Outcome {
        let answered = by_node
            .iter()
            .map(|(n, c)| match n.as_str() {
                "?" => format!("a page that names no node ×{c}"),
                _ => format!("{n} ×{c}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let addrs_s = addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mut seen = format!(
            "{} ×{sent} from {addrs_s}; answered by {answered}",
            self.expect_status
        );
        if rounds > 1 {
            seen.push_str(&format!(
                " ({rounds} rounds of {} over {})",
                self.requests,
                crate::duration::human_ms(took.as_millis() as u64)
            ));
        }
        let missing: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| !by_node.contains_key(n.as_str()))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Outcome::fail(format!(
                "{} never answered over {sent} requests in {} ({seen})",
                missing.join(", "),
                crate::duration::human_ms(took.as_millis() as u64)
            ));
        }
        if self.same_node {
            if by_node.len() > 1 {
                return Outcome::fail(format!("answers came from more than one node ({seen})"));
            }
            if by_node.contains_key("?") {
                return Outcome::fail(format!(
                    "the answers name no node of the inventory, so the node cannot be told ({seen})"
                ));
            }
        }
        Outcome::pass(seen)
    }
}

/// How long rounds of requests go on while a node of `nodes:` has not answered.
const SETTLE: Duration = Duration::from_secs(10);

/// `: "first 60 characters of the body"` for failure messages.
fn snippet(body: &str) -> String {
    let t: String = body.trim().chars().take(60).collect();
    if t.is_empty() {
        String::new()
    } else {
        format!(": {:?}", t)
    }
}

