//! `labctl dashboard`: a live page of the lab for a class to watch — the
//! nodes and the scenario's services on them, the cluster and who holds the
//! VIP, a strip of who answered `www` over the last minute (DNS order and
//! HTTP node), an event log, and the faults one click away.
//!
//! - [`targets`]: what to watch, from the inventory and the scenario's checks;
//! - [`probes`]: the threads that watch it, within one request budget
//!   ([`limiter`]), reusing verify's DNS and HTTP clients and cluster reader;
//! - [`state`]: the view they update and the page shows;
//! - [`actions`]: power cut, boot, stop/start a service;
//! - [`server`]: the page (built into the binary, `page/`), the view as
//!   server-sent events, the actions as POSTs, with the Host, Origin and the
//!   read and action tokens' checks;
//! - [`http`]: the HTTP/1.1 server under it, bounded in memory, threads and
//!   time whatever a client sends.
//!
//! The library prints nothing: the caller gets the URLs through `on_start`.

pub mod actions;
pub mod class;
pub mod http;
pub mod limiter;
pub mod probes;
pub mod server;
pub mod state;
pub mod targets;

use crate::checks::{Env, ProviderPower};
use crate::inventory::Inventory;
use crate::scenario::Scenario;
use crate::user_bail;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The address the dashboard listens on unless told otherwise (a free port
/// is taken when this one is busy).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// How the dashboard runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; `None`: [`DEFAULT_LISTEN`], or a free port on loopback.
    pub listen: Option<SocketAddr>,
    /// Skip SSH host key checks (existing hosts you trust).
    pub insecure: bool,
    /// Offer the actions even when listening off loopback (on loopback they
    /// always are, to the operator's URL only).
    pub actions: bool,
    /// The action token to use (a class's student keeps theirs); `None`: a new one.
    pub action_token: Option<String>,
}

/// Where the dashboard listens, once it does.
#[derive(Debug, Clone)]
pub struct Started {
    pub addr: SocketAddr,
    /// The URLs to watch the page (for the class): one per address of the
    /// machine when listening on all of them; with the read token off loopback.
    pub watch: Vec<String>,
    /// The operator's URL: the page with the action token (in its
    /// fragment); `None` when actions are off.
    pub operator: Option<String>,
    /// Whether the watch URLs carry a token (off loopback).
    pub token_in_url: bool,
}

/// A random token: 32 hex digits.
fn new_token() -> String {
    let b: [u8; 16] = rand::random();
    hex::encode(b)
}

/// Listen on `listen`, or on `default` (a free loopback port when that one is busy).
fn bind(listen: Option<SocketAddr>, default: &str) -> anyhow::Result<http::Server> {
    let tried = match listen {
        Some(a) => a,
        None => default.parse()?,
    };
    match http::Server::bind(tried, http::Limits::default()) {
        Ok(s) => Ok(s),
        Err(_) if listen.is_none() => {
            http::Server::bind(([127, 0, 0, 1], 0).into(), http::Limits::default())
                .map_err(|e| anyhow::anyhow!("cannot listen on 127.0.0.1: {e}"))
        }
        Err(e) => user_bail!(
            "--listen {tried}: cannot listen there: {e}\n  fix: give an address of this machine and a free port, e.g. --listen 127.0.0.1:7071"
        ),
    }
}

/// The IPv4 addresses of this machine's interfaces that are up, loopback last.
fn local_addresses() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs(3) fills `head` with a list freed below by freeifaddrs(3);
    // each entry is read only while the list lives.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return vec![IpAddr::from([127, 0, 0, 1])];
        }
        let mut p = head;
        while !p.is_null() {
            let ifa = &*p;
            let up = ifa.ifa_flags & (libc::IFF_UP as libc::c_uint) != 0;
            if up
                && !ifa.ifa_addr.is_null()
                && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET
            {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let ip = IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes());
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
            p = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out.sort_by_key(|ip| ip.is_loopback());
    out
}

/// The URLs for the class and for the operator.
fn urls(addr: SocketAddr, access: &server::Access) -> (Vec<String>, Option<String>) {
    let query = if access.token_for_reads {
        format!("?token={}", access.read_token)
    } else {
        String::new()
    };
    let hosts: Vec<SocketAddr> = if addr.ip().is_unspecified() {
        local_addresses()
            .into_iter()
            .map(|ip| SocketAddr::new(ip, addr.port()))
            .collect()
    } else {
        vec![addr]
    };
    let watch: Vec<String> = hosts
        .iter()
        .filter(|h| !h.ip().is_loopback() || addr.ip().is_loopback() || hosts.len() == 1)
        .map(|h| format!("http://{h}/{query}"))
        .collect();
    // the operator sits at this machine: loopback when it is listened on
    let own = if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::from([127, 0, 0, 1]), addr.port())
    } else {
        addr
    };
    let operator = access
        .action_token
        .as_ref()
        .map(|t| format!("http://{own}/{query}#act={t}"));
    (watch, operator)
}

/// Remember every secret the inventory and the scenario name, for every
/// node, so the page masks them as the CLI does.
fn remember_secrets(inv: &Inventory, scenario: Option<&Scenario>) {
    let names: Vec<&String> = inv
        .secrets
        .iter()
        .chain(scenario.into_iter().flat_map(|s| s.secrets.iter()))
        .collect();
    if names.is_empty() {
        return;
    }
    let templates = crate::templates::Templates::new(&inv.dir, &inv.dir.join("templates"));
    let facts = crate::templates::Facts::of(inv);
    let empty = BTreeMap::new();
    let mut r = crate::redact::Redactor::new();
    for node in &inv.nodes {
        let vars = scenario.map(|s| &s.vars).unwrap_or(&empty);
        if let Ok(v) = crate::templates::host_vars(inv, &facts, node, vars, &empty, &templates) {
            crate::redact::add_named(&mut r, &v, &names);
        }
    }
    crate::redact::remember(&r);
}

/// Serve the dashboard of `inv` (with what `scenario` names) until
/// `should_stop` says so. `on_start` gets the URLs once the server listens.
pub fn run(
    inv: &Inventory,
    scenario: Option<&Scenario>,
    opts: &Options,
    should_stop: &(dyn Fn() -> bool + Sync),
    on_start: &dyn Fn(&Started),
) -> anyhow::Result<()> {
    let shared = state::Shared::new(state::View::default());
    serve(inv, scenario, opts, &shared, should_stop, on_start)
}

/// [`run`], with the view in `shared` (which others may read meanwhile,
/// as the class's page does).
pub fn serve(
    inv: &Inventory,
    scenario: Option<&Scenario>,
    opts: &Options,
    shared: &state::Shared,
    should_stop: &(dyn Fn() -> bool + Sync),
    on_start: &dyn Fn(&Started),
) -> anyhow::Result<()> {
    remember_secrets(inv, scenario);
    let targets = targets::Targets::of(inv, scenario)?;
    if crate::providers::capabilities(inv).safety == crate::providers::Safety::LabBridge
        && inv.jump().is_none()
        && !crate::lab::bridge_holds_gateway(inv)?
    {
        user_bail!(
            "lab `{}` is not up: bridge {} does not hold the gateway; the dashboard would have nothing to show\n  fix: run `labctl up` first",
            inv.lab,
            inv.bridge_name()
        );
    }
    let http = bind(opts.listen, DEFAULT_LISTEN)?;
    let addr = http.local_addr()?;
    let actions_on = addr.ip().is_loopback() || opts.actions;
    let action_token = opts.action_token.clone().unwrap_or_else(new_token);
    let access = server::Access::for_listen(addr, new_token(), actions_on.then_some(action_token));
    let (watch, operator) = urls(addr, &access);
    let started = Started {
        addr,
        watch,
        operator,
        token_in_url: access.token_for_reads,
    };
    let mut view = initial_view(inv, scenario, &targets);
    if !actions_on {
        view.actions.clear();
    }
    shared.update(|v| {
        view.version = v.version;
        *v = view;
    });
    let limiter = limiter::Limiter::default();
    let stop = AtomicBool::new(false);
    let progress = |_: &str| {};
    let env = Env::new(inv, opts.insecure, &ProviderPower, &progress);
    let probes = probes::Probes::new(inv, &targets, shared, &limiter, &env, &stop);
    let server = server::Server {
        http,
        access,
        shared,
        probes: &probes,
        env: &env,
        stop: &stop,
        streams: AtomicUsize::new(0),
    };
    shared.event(
        "info",
        None,
        format!(
            "dashboard started on port {}{}",
            addr.port(),
            if actions_on { "" } else { " (read-only)" }
        ),
        None,
    );
    on_start(&started);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !should_stop() {
                std::thread::sleep(Duration::from_millis(100));
            }
            stop.store(true, Ordering::SeqCst);
        });
        probes.spawn(s);
        server.serve(s);
    });
    Ok(())
}

fn initial_view(inv: &Inventory, scenario: Option<&Scenario>, t: &targets::Targets) -> state::View {
    let probing = t.www.as_ref().map(|w| {
        let mut parts = Vec::new();
        if let Some((server, _, name)) = &w.dns {
            parts.push(format!("DNS {name} @{}", server.label));
        }
        if let Some(u) = &w.url {
            parts.push(format!("HTTP {u}"));
        }
        parts.join(" · ")
    });
    state::View {
        lab: inv.lab.clone(),
        scenario: scenario.map(|s| s.name.clone()),
        nodes: inv
            .nodes
            .iter()
            .map(|n| state::NodeView {
                name: n.name.clone(),
                address: n.address.to_string(),
                groups: n.groups.clone(),
                state: "unknown".into(),
                services: t
                    .services_of(&n.name)
                    .iter()
                    .map(|s| state::ServiceView {
                        name: s.clone(),
                        active: None,
                    })
                    .collect(),
            })
            .collect(),
        cluster: None,
        probing,
        www: t.www.as_ref().is_some_and(|w| w.url.is_some()),
        actions: actions::offered(inv, t),
        ..Default::default()
    }
}
