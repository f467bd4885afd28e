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
//!   server-sent events, the actions as POSTs, with the Host, Origin and token
//!   checks.
//!
//! The library prints nothing: the caller gets the URL through `on_start`.

pub mod actions;
pub mod limiter;
pub mod probes;
pub mod server;
pub mod state;
pub mod targets;

use crate::checks::{Env, ProviderPower};
use crate::inventory::{Inventory, ProviderKind};
use crate::scenario::Scenario;
use crate::user_bail;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
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
}

/// Where the dashboard listens, once it does.
#[derive(Debug, Clone)]
pub struct Started {
    pub addr: SocketAddr,
    /// The URL to open (with the token when it is needed).
    pub url: String,
    /// Whether the URL carries a token (off loopback).
    pub token_in_url: bool,
}

/// A random token: 32 hex digits.
fn new_token() -> String {
    let b: [u8; 16] = rand::random();
    hex::encode(b)
}

fn bind(opts: &Options) -> anyhow::Result<tiny_http::Server> {
    let tried = match opts.listen {
        Some(a) => a,
        None => DEFAULT_LISTEN.parse()?,
    };
    match tiny_http::Server::http(tried) {
        Ok(s) => Ok(s),
        Err(_) if opts.listen.is_none() => tiny_http::Server::http("127.0.0.1:0")
            .map_err(|e| anyhow::anyhow!("cannot listen on 127.0.0.1: {e}")),
        Err(e) => user_bail!(
            "--listen {tried}: cannot listen there: {e}\n  fix: give an address of this machine and a free port, e.g. --listen 127.0.0.1:7071"
        ),
    }
}

/// Serve the dashboard of `inv` (with what `scenario` names) until
/// `should_stop` says so. `on_start` gets the URL once the server listens.
pub fn run(
    inv: &Inventory,
    scenario: Option<&Scenario>,
    opts: &Options,
    should_stop: &(dyn Fn() -> bool + Sync),
    on_start: &dyn Fn(&Started),
) -> anyhow::Result<()> {
    let targets = targets::Targets::of(inv, scenario)?;
    if inv.provider == ProviderKind::Nspawn && !crate::lab::bridge_holds_gateway(inv)? {
        user_bail!(
            "lab `{}` is not up: bridge {} does not hold the gateway; the dashboard would have nothing to show\n  fix: run `labctl up` first",
            inv.lab,
            inv.bridge_name()
        );
    }
    let http = bind(opts)?;
    let addr = match http.server_addr().to_ip() {
        Some(a) => a,
        None => user_bail!("the dashboard listens on TCP only"),
    };
    let token = new_token();
    let access = server::Access::for_listen(addr, token.clone());
    let started = Started {
        addr,
        url: if access.token_for_reads {
            format!("http://{addr}/?token={token}")
        } else {
            format!("http://{addr}/")
        },
        token_in_url: access.token_for_reads,
    };
    let shared = state::Shared::new(initial_view(inv, scenario, &targets));
    let limiter = limiter::Limiter::default();
    let stop = AtomicBool::new(false);
    let progress = |_: &str| {};
    let env = Env::new(inv, opts.insecure, &ProviderPower, &progress);
    let probes = probes::Probes::new(inv, &targets, &shared, &limiter, &env, &stop);
    let server = server::Server {
        http,
        access,
        shared: &shared,
        probes: &probes,
        env: &env,
        stop: &stop,
    };
    shared.event(
        "info",
        None,
        format!("dashboard started on {}", started.url),
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
