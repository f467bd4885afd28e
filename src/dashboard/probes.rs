//! The probes behind the page, each on a thread of its own so a node that
//! stops answering stalls only its own probe:
//!
//! - the nodes' states from the provider, four times a second (for nspawn
//!   this reads the host's process table, no lab traffic): power cuts and
//!   nodes coming back become events;
//! - the strip: who answers `www` by DNS (the lab's DNS server, through
//!   verify's DNS client, so the record order is the server's) and by HTTP
//!   (verify's HTTP client, `info.txt` names the node), about three times a
//!   second; right after the node answering HTTP lost power, HTTP only and
//!   faster, to time the failover;
//! - the cluster (`crm_mon` on each member, every 2 s) and the scenario's
//!   services on each node (`systemctl is-active`, every 3 s), over SSH.
//!
//! Every request to the lab takes a token from the one [`Limiter`] and every
//! address passes the lab-safety check first ([`Ctx::ensure_safe`]).

use super::limiter::Limiter;
use super::state::{now_ms, ClusterView, MemberView, ResourceView, Sample, ServiceView, Shared};
use super::targets::Targets;
use crate::checks::cluster::{crm_status_in, CrmStatus};
use crate::checks::http_client::get;
use crate::checks::{dns, node_in_body, Env};
use crate::inventory::{Inventory, Node};
use crate::providers::NodeState;
use crate::shell::Script;
use crate::transport::ssh::Session;
use crate::transport::Remote;
use hickory_proto::rr::RecordType;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one SSH probe (crm_mon, systemctl) may take.
const SSH_LIMIT: Duration = Duration::from_secs(8);

/// A power cut of the node that answered the site, waiting for another node to answer.
#[derive(Debug, Clone)]
struct Pending {
    node: String,
    since: Instant,
}

/// What the probes share.
pub struct Probes<'a> {
    pub inv: &'a Inventory,
    pub targets: &'a Targets,
    pub shared: &'a Shared,
    pub limiter: &'a Limiter,
    pub env: &'a Env<'a>,
    pub stop: &'a AtomicBool,
    /// The node whose `info.txt` answered last.
    last_http: Mutex<Option<String>>,
    pending: Mutex<Option<Pending>>,
}

impl<'a> Probes<'a> {
    pub fn new(
        inv: &'a Inventory,
        targets: &'a Targets,
        shared: &'a Shared,
        limiter: &'a Limiter,
        env: &'a Env<'a>,
        stop: &'a AtomicBool,
    ) -> Probes<'a> {
        Probes {
            inv,
            targets,
            shared,
            limiter,
            env,
            stop,
            last_http: Mutex::new(None),
            pending: Mutex::new(None),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleep `d` in small steps; whether to go on.
    fn nap(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.stopped() {
                return false;
            }
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
        }
        !self.stopped()
    }

    fn take(&self) -> bool {
        self.limiter.take(&|| self.stopped())
    }

    /// The A records the scenario's DNS server (`www`'s) gives for its name,
    /// asked within the request budget; `None`: no such server, or stopping.
    pub fn www_dns(
        &self,
        ctx: &crate::checks::Ctx,
        timeout: Duration,
    ) -> Option<Result<Vec<String>, String>> {
        let (server, port, name) = self.targets.www.as_ref()?.dns.as_ref()?;
        if !self.take() {
            return None;
        }
        let to = SocketAddr::new(server.addr.into(), *port);
        let r = ctx
            .ensure_safe(server.addr)
            .and_then(|_| dns::query(ctx.inv.jump(), to, name, RecordType::A, timeout));
        Some(r.map(|a| a.answers))
    }

    /// Start every probe on `s`; they end once `stop` is set.
    pub fn spawn<'s>(&'s self, s: &'s std::thread::Scope<'s, '_>) {
        s.spawn(|| self.nodes());
        if self.targets.www.is_some() {
            s.spawn(|| self.strip());
        }
        if let Some(c) = &self.targets.cluster {
            for m in &c.ask {
                s.spawn(move || self.member(m));
            }
        }
        for (node, services) in &self.targets.services {
            if !services.is_empty() {
                s.spawn(move || self.services(node, services));
            }
        }
    }

    /// The power cut of `node` was just started (from the page): time the failover from now.
    pub fn power_cut_started(&self, node: &str) {
        self.watch_failover(node, Instant::now());
    }

    fn watch_failover(&self, node: &str, since: Instant) {
        if self.targets.cluster.is_none() {
            return;
        }
        let answered = self.last_http.lock().map(|l| l.clone()).unwrap_or(None);
        if answered.as_deref() != Some(node) {
            return;
        }
        if let Ok(mut p) = self.pending.lock() {
            if p.is_none() {
                *p = Some(Pending {
                    node: node.to_string(),
                    since,
                });
            }
        }
    }

    fn node_state(&self, name: &str) -> String {
        self.shared.read(|v| {
            v.nodes
                .iter()
                .find(|n| n.name == name)
                .map(|n| n.state.clone())
                .unwrap_or_default()
        })
    }

    /// The nodes' states; transitions become events.
    fn nodes(&self) {
        let poll = crate::providers::capabilities(self.inv).status;
        let every = poll.every();
        let mut first = true;
        loop {
            if matches!(poll, crate::providers::StatusPoll::NodeSsh(_)) {
                for _ in &self.inv.nodes {
                    if !self.take() {
                        return;
                    }
                }
            }
            let seen = Instant::now();
            match crate::providers::status(self.inv) {
                Ok(list) => {
                    let mut changes = Vec::new();
                    self.shared.update(|v| {
                        for st in &list {
                            if let Some(n) = v.nodes.iter_mut().find(|n| n.name == st.name) {
                                let new = st.state.as_str().to_string();
                                if n.state != new {
                                    changes.push((n.name.clone(), n.state.clone(), st.state));
                                    // a node without power runs nothing; any
                                    // other change: not measured until the next probe
                                    let off =
                                        matches!(st.state, NodeState::Stopped | NodeState::Absent);
                                    for s in &mut n.services {
                                        s.active = off.then_some(false);
                                    }
                                    n.state = new;
                                }
                            }
                        }
                    });
                    for (name, old, new) in changes {
                        if first {
                            continue;
                        }
                        match new {
                            NodeState::Running => self.shared.event(
                                "node_back",
                                Some(&name),
                                format!("{name} is running again"),
                                None,
                            ),
                            _ if old == "running" => {
                                self.shared.event(
                                    "node_down",
                                    Some(&name),
                                    format!("{name} is down ({})", new.as_str()),
                                    None,
                                );
                                self.watch_failover(&name, seen);
                            }
                            _ => {}
                        }
                    }
                    first = false;
                }
                Err(e) => self.shared.event(
                    "info",
                    None,
                    format!(
                        "cannot read the nodes' states: {}",
                        crate::error::format_error(&e)
                    ),
                    None,
                ),
            }
            if !self.nap(every) {
                return;
            }
        }
    }

    /// The strip: DNS and HTTP samples of `www`, about three a second; while
    /// a failover is timed, [`Self::time_failover`].
    fn strip(&self) {
        let Some(www) = &self.targets.www else {
            return;
        };
        let ctx = self
            .env
            .ctx(Instant::now() + Duration::from_secs(365 * 24 * 3600));
        let every = Duration::from_millis(300);
        let mut next = Instant::now();
        // the address the name resolved to last (a VIP keeps it through a failover)
        let mut last_addr: Option<Ipv4Addr> = None;
        loop {
            let pending = self.pending.lock().map(|p| p.is_some()).unwrap_or(false);
            if let (true, Some(url)) = (pending, &www.url) {
                if let Some(addr) = url.ip().or(last_addr) {
                    if !self.time_failover(&ctx, url, addr) {
                        return;
                    }
                    next = Instant::now();
                    continue;
                }
            }
            let mut sample = Sample {
                t: now_ms(),
                dns: None,
                http: None,
                error: None,
            };
            let mut first_answer: Option<Ipv4Addr> = None;
            if www.dns.is_some() {
                match self.www_dns(&ctx, Duration::from_millis(500)) {
                    None => return,
                    Some(Ok(answers)) => {
                        first_answer = answers.first().and_then(|s| s.parse().ok());
                        sample.dns = Some(answers.iter().map(|s| self.label(s)).collect());
                    }
                    Some(Err(e)) => {
                        sample.dns = Some(Vec::new());
                        sample.error = Some(format!("DNS: {e}"));
                    }
                }
            }
            if let Some(url) = &www.url {
                let addr = url.ip().or(first_answer);
                if addr.is_some() {
                    last_addr = addr;
                }
                match addr {
                    Some(addr) => {
                        if !self.take() {
                            return;
                        }
                        let (who, err) =
                            self.http_probe(&ctx, url, addr, Duration::from_millis(700));
                        sample.http = Some(who);
                        if let Some(e) = err {
                            sample.error.get_or_insert(e);
                        }
                    }
                    None => sample.http = Some(String::new()),
                }
            }
            self.shared.sample(sample);
            next = (next + every).max(Instant::now());
            if !self.nap(next.saturating_duration_since(Instant::now())) {
                return;
            }
        }
    }

    /// One GET of the site on `addr`: the node its `info.txt` names (empty
    /// when it did not answer), and what went wrong.
    fn http_probe(
        &self,
        ctx: &crate::checks::Ctx,
        url: &crate::checks::http_client::Url,
        addr: Ipv4Addr,
        timeout: Duration,
    ) -> (String, Option<String>) {
        let got = ctx.ensure_safe(addr).and_then(|_| {
            get(
                ctx.inv.jump(),
                SocketAddr::new(addr.into(), url.port),
                &url.host_header(),
                &url.path,
                timeout,
            )
        });
        match got {
            Ok(r) if (200..300).contains(&r.status) => {
                let who = node_in_body(self.inv, &r.body).unwrap_or("?").to_string();
                self.answered(&who);
                (who, None)
            }
            Ok(r) => (String::new(), Some(format!("HTTP status {}", r.status))),
            Err(e) => (String::new(), Some(format!("HTTP: {e}"))),
        }
    }

    /// The node that answered the site lost power: GET it every 100 ms, each
    /// request within 300 ms and several in flight (as the failover check
    /// does, within the budget), until another node answers or two minutes
    /// pass; every answer is a sample of the strip. Whether to go on.
    fn time_failover(
        &self,
        ctx: &crate::checks::Ctx,
        url: &crate::checks::http_client::Url,
        addr: Ipv4Addr,
    ) -> bool {
        const EVERY: Duration = Duration::from_millis(100);
        let until = Instant::now() + Duration::from_secs(120);
        std::thread::scope(|s| {
            let mut next = Instant::now();
            loop {
                let still = self.pending.lock().map(|p| p.is_some()).unwrap_or(false);
                if !still {
                    return true;
                }
                if Instant::now() >= until {
                    if let Some(p) = self.pending.lock().ok().and_then(|mut p| p.take()) {
                        self.shared.event(
                            "info",
                            Some(&p.node),
                            format!(
                                "no other node answered the site within 2 min of {}'s power cut",
                                p.node
                            ),
                            None,
                        );
                    }
                    return true;
                }
                if !self.take() {
                    return false;
                }
                s.spawn(move || {
                    let t = now_ms();
                    let (who, error) = self.http_probe(ctx, url, addr, Duration::from_millis(300));
                    self.shared.sample(Sample {
                        t,
                        dns: None,
                        http: Some(who),
                        error,
                    });
                });
                next = (next + EVERY).max(Instant::now());
                if !self.nap(next.saturating_duration_since(Instant::now())) {
                    return false;
                }
            }
        })
    }

    /// A node's name for a DNS answer that is its address; the address otherwise.
    fn label(&self, addr: &str) -> String {
        self.inv
            .nodes
            .iter()
            .find(|n| n.address.to_string() == addr)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| addr.to_string())
    }

    /// `who`'s `info.txt` answered: the end of a failover being timed, if another node took over.
    fn answered(&self, who: &str) {
        if let Ok(mut l) = self.last_http.lock() {
            *l = Some(who.to_string());
        }
        let done = {
            let Ok(mut p) = self.pending.lock() else {
                return;
            };
            match p.as_ref() {
                Some(x) if x.node != who && who != "?" => p.take(),
                _ => None,
            }
        };
        if let Some(p) = done {
            let ms = u64::try_from(p.since.elapsed().as_millis()).unwrap_or(u64::MAX);
            let what = self
                .targets
                .cluster
                .as_ref()
                .and_then(|c| c.vip)
                .map(|v| format!("the VIP {v}"))
                .unwrap_or_else(|| "the site".into());
            self.shared.event(
                "failover",
                Some(who),
                format!(
                    "failover: {what} answers from {who} {ms} ms after {} lost power",
                    p.node
                ),
                Some(ms),
            );
        }
    }

    /// An SSH session to `node`, kept in `slot` and opened again when it broke.
    fn session<'s>(
        &self,
        node: &Node,
        slot: &'s mut Option<Session>,
    ) -> Result<&'s mut Session, String> {
        if slot.is_none() {
            let ctx = self.env.ctx(Instant::now() + SSH_LIMIT);
            *slot = Some(ctx.ssh(node)?);
        }
        slot.as_mut().ok_or_else(|| "no session".to_string())
    }

    /// `crm_mon` on one member, every 2 s while it runs; the freshest answer is shown.
    fn member(&self, name: &str) {
        let Some(node) = self.inv.node(name).cloned() else {
            return;
        };
        let mut sess: Option<Session> = None;
        loop {
            if self.node_state(name) == "running"
                || !crate::providers::capabilities(self.inv).creates_nodes
            {
                if !self.take() {
                    return;
                }
                let got = self.session(&node, &mut sess).and_then(|s| {
                    let ctx = self.env.ctx(Instant::now() + SSH_LIMIT);
                    crm_status_in(&ctx, s)
                });
                match got {
                    Ok(st) => self.show_cluster(name, &st),
                    Err(e) => {
                        sess = None;
                        self.cluster_error(name, e);
                    }
                }
            } else {
                sess = None;
            }
            if !self.nap(Duration::from_secs(2)) {
                return;
            }
        }
    }

    fn show_cluster(&self, asked: &str, st: &CrmStatus) {
        let c = self.targets.cluster.as_ref();
        let holder = c
            .and_then(|c| c.vip_resource.as_ref())
            .and_then(|r| st.started_on(r))
            .and_then(|w| w.first().cloned());
        let view = ClusterView {
            asked: Some(asked.to_string()),
            members: st
                .nodes
                .iter()
                .map(|n| MemberView {
                    name: n.name.clone(),
                    online: n.online,
                })
                .collect(),
            resources: st
                .resources
                .iter()
                .map(|r| ResourceView {
                    id: r.id.clone(),
                    role: r.role.clone(),
                    nodes: r.nodes.clone(),
                })
                .collect(),
            vip: c.and_then(|c| c.vip).map(|v| v.to_string()),
            vip_holder: holder,
            error: None,
        };
        self.shared.update(|v| v.cluster = Some(view));
    }

    fn cluster_error(&self, asked: &str, e: String) {
        self.shared.update(|v| {
            let c = v.cluster.get_or_insert_with(ClusterView::default);
            // a member that cannot answer shows only while no member answers
            if c.asked.is_none() || c.asked.as_deref() == Some(asked) {
                c.asked = None;
                c.error = Some(e);
            }
        });
    }

    /// `systemctl is-active` of the scenario's services on `name`, every 3 s while it runs.
    fn services(&self, name: &str, services: &[String]) {
        let Some(node) = self.inv.node(name).cloned() else {
            return;
        };
        let mut sess: Option<Session> = None;
        loop {
            let state = self.node_state(name);
            let running =
                state == "running" || !crate::providers::capabilities(self.inv).creates_nodes;
            // measured off: nothing runs; not measured yet (unknown, unreachable): not known
            let off = state == "stopped" || state == "absent";
            let states: Vec<Option<bool>> = if running {
                if !self.take() {
                    return;
                }
                let mut script = Script::lit("systemctl is-active --");
                script.args(services).push(Script::lit(" || true"));
                match self.session(&node, &mut sess).and_then(|s| {
                    s.run(&script, SSH_LIMIT)
                        .map_err(|e| crate::error::format_error(&e))
                }) {
                    Ok(out) => {
                        let lines: Vec<&str> = out.stdout.lines().collect();
                        (0..services.len())
                            .map(|i| lines.get(i).map(|l| l.trim() == "active"))
                            .collect()
                    }
                    Err(_) => {
                        sess = None;
                        vec![None; services.len()]
                    }
                }
            } else {
                sess = None;
                vec![off.then_some(false); services.len()]
            };
            self.shared.update(|v| {
                if let Some(n) = v.nodes.iter_mut().find(|n| n.name == name) {
                    n.services = services
                        .iter()
                        .zip(states)
                        .map(|(s, active)| ServiceView {
                            name: s.clone(),
                            active,
                        })
                        .collect();
                }
            });
            if !self.nap(Duration::from_secs(3)) {
                return;
            }
        }
    }
}
