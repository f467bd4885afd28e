//! `verify`: the checks of a scenario's `verify:` section, run from the host.
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
//! ```
//!
//! Flow: [`prepare`] renders every check with the scenario's variables and
//! resolves node names (an input mistake is an error, exit 2, before any packet
//! is sent) → each check runs in order on a worker thread with its own deadline,
//! so a stuck check fails instead of hanging → a [`VerifyReport`].
//!
//! Lab traffic safety: every lab address passes [`crate::lab::ensure_safe_target`]
//! (and, for labs with a `network:`, must lie in the lab subnet) before the
//! first packet is sent to it.

pub mod cluster;
pub mod dns;
pub mod failover;
pub mod http;
pub mod node_down;
pub mod service_recovery;

use crate::error::user;
use crate::inventory::{Inventory, Node};
use crate::scenario::Scenario;
use crate::templates::{host_vars, Templates};
use crate::transport::ssh::{check_key, ConnectError, Session};
use crate::transport::{Output, Remote};
use crate::user_bail;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The spec: what a scenario writes
// ---------------------------------------------------------------------------

/// One entry of a scenario's `verify:` section: an optional name and one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CheckFile", into = "CheckFile")]
pub struct CheckSpec {
    /// Shown in the report; a summary of the check when absent.
    pub name: Option<String>,
    pub kind: CheckKind,
}

/// The check itself, one per kind.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    Dns(dns::Spec),
    Http(http::Spec),
    Cluster(cluster::Spec),
    Failover(failover::Spec),
    ServiceRecovery(service_recovery::Spec),
    NodeDown(node_down::Spec),
}

impl CheckKind {
    /// The check kinds, as written in a scenario.
    pub const NAMES: &'static [&'static str] = &[
        "dns",
        "http",
        "cluster",
        "failover",
        "service_recovery",
        "node_down",
    ];

    /// The key this check is written with.
    pub fn key(&self) -> &'static str {
        match self {
            CheckKind::Dns(_) => "dns",
            CheckKind::Http(_) => "http",
            CheckKind::Cluster(_) => "cluster",
            CheckKind::Failover(_) => "failover",
            CheckKind::ServiceRecovery(_) => "service_recovery",
            CheckKind::NodeDown(_) => "node_down",
        }
    }
}

/// A check as written: `name:` plus one check key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dns: Option<dns::Spec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http: Option<http::Spec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster: Option<cluster::Spec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failover: Option<failover::Spec>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "service-recovery"
    )]
    service_recovery: Option<service_recovery::Spec>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "node-down")]
    node_down: Option<node_down::Spec>,
}

impl TryFrom<CheckFile> for CheckSpec {
    type Error = String;
    fn try_from(f: CheckFile) -> Result<CheckSpec, String> {
        let mut found = Vec::new();
        if let Some(s) = f.dns {
            found.push(CheckKind::Dns(s));
        }
        if let Some(s) = f.http {
            found.push(CheckKind::Http(s));
        }
        if let Some(s) = f.cluster {
            found.push(CheckKind::Cluster(s));
        }
        if let Some(s) = f.failover {
            found.push(CheckKind::Failover(s));
        }
        if let Some(s) = f.service_recovery {
            found.push(CheckKind::ServiceRecovery(s));
        }
        if let Some(s) = f.node_down {
            found.push(CheckKind::NodeDown(s));
        }
        match found.len() {
            1 => Ok(CheckSpec {
                name: f.name,
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
        let mut f = CheckFile {
            name: c.name,
            ..Default::default()
        };
        match c.kind {
            CheckKind::Dns(s) => f.dns = Some(s),
            CheckKind::Http(s) => f.http = Some(s),
            CheckKind::Cluster(s) => f.cluster = Some(s),
            CheckKind::Failover(s) => f.failover = Some(s),
            CheckKind::ServiceRecovery(s) => f.service_recovery = Some(s),
            CheckKind::NodeDown(s) => f.node_down = Some(s),
        }
        f
    }
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub name: String,
    /// The check's kind (`dns`, `http`, ...); not part of the JSON report.
    #[serde(skip)]
    pub kind: &'static str,
    pub passed: bool,
    /// What was seen: the figures when it passed, the reason when it failed.
    pub detail: String,
    /// The check's figure: the failover or recovery time, else how long the check took.
    pub ms: Option<u64>,
}

/// The results of a whole run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerifyReport {
    pub scenario: String,
    pub checks: Vec<CheckResult>,
    /// The measured failover time of the first `failover` check, if it got that far.
    pub failover_ms: Option<u64>,
}

impl VerifyReport {
    /// Whether every check passed (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// The check with this name, if any.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// `{"passed", "checks": [{"name", "passed", "detail", "ms"}], "failover_ms"}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "passed": self.passed(),
            "checks": self.checks,
            "failover_ms": self.failover_ms,
        })
    }

    /// The closing summary line of the text report.
    pub fn summary(&self) -> String {
        let n = self.checks.len();
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect();
        let mut s = if failed.is_empty() {
            format!("verify {}: all {n} checks passed", self.scenario)
        } else {
            format!(
                "verify {}: {} of {n} checks FAILED: {}",
                self.scenario,
                failed.len(),
                failed.join("; ")
            )
        };
        if let Some(ms) = self.failover_ms {
            s.push_str(&format!(" (failover {ms} ms)"));
        }
        s
    }

    /// The whole text report: one line per check and the summary.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.checks {
            s.push_str(&c.line());
            s.push('\n');
        }
        s.push_str(&self.summary());
        s.push('\n');
        s
    }
}

impl CheckResult {
    /// One line of the text report: `PASS  name: detail (12 ms)`.
    pub fn line(&self) -> String {
        let mark = if self.passed { "PASS" } else { "FAIL" };
        let fig = match self.ms {
            Some(ms) => format!(" ({ms} ms)"),
            None => String::new(),
        };
        let detail = self.detail.replace('\n', "\n      ");
        format!("{mark}  {}: {detail}{fig}", self.name)
    }
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

/// How `verify` runs.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Skip host key checks for SSH (existing hosts you trust).
    pub insecure: bool,
    /// Omit checks of these kinds (e.g. `failover`, which cuts a node's power).
    pub skip: Vec<String>,
    /// Progress of long checks on stderr (`failover: cutting the power of nodo1`).
    pub progress: bool,
    /// A program run as `PROGRAM -i INVENTORY fail|up NODE` to cut and restore a
    /// node's power in the failover check (default: the lab's provider, in process).
    pub labctl: Option<PathBuf>,
}

/// Run every check of `scenario` in order. Input mistakes (an undefined
/// variable, an unknown node) are errors before anything is sent; a check that
/// cannot run fails with the reason.
pub fn run_checks(
    inv: &Inventory,
    scenario: &Scenario,
    opts: &VerifyOptions,
) -> anyhow::Result<VerifyReport> {
    run_checks_with(inv, scenario, opts, &mut |_| {})
}

/// The checks `run_checks` would run, as (name, kind), without sending anything:
/// renders and resolves every check, so input mistakes show up here too.
pub fn list_checks(
    inv: &Inventory,
    scenario: &Scenario,
    opts: &VerifyOptions,
) -> anyhow::Result<Vec<(String, &'static str)>> {
    Ok(prepare(inv, scenario, opts)?
        .into_iter()
        .map(|p| (p.name, p.plan.key()))
        .collect())
}

/// [`run_checks`], calling `on_done` after each check (to print it at once).
pub fn run_checks_with(
    inv: &Inventory,
    scenario: &Scenario,
    opts: &VerifyOptions,
    on_done: &mut dyn FnMut(&CheckResult),
) -> anyhow::Result<VerifyReport> {
    let plans = prepare(inv, scenario, opts)?;
    let ctx = Arc::new(Ctx::new(inv.clone(), opts));
    let mut report = VerifyReport {
        scenario: scenario.name.clone(),
        ..Default::default()
    };
    for plan in plans {
        let name = plan.name.clone();
        let kind = plan.plan.key();
        let limit = plan.plan.deadline();
        let (tx, rx) = mpsc::channel();
        let c = Arc::clone(&ctx);
        let start = Instant::now();
        let spawned = std::thread::Builder::new()
            .name(format!("verify-{kind}"))
            .spawn(move || {
                let out = plan.plan.run(&c);
                let _ = tx.send(out);
            });
        let outcome = match spawned {
            Err(e) => Outcome::fail(format!("cannot start the check: {e}")),
            Ok(_) => match rx.recv_timeout(limit) {
                Ok(o) => o,
                Err(mpsc::RecvTimeoutError::Timeout) => Outcome::fail(format!(
                    "gave up after {} s (the check's time limit)",
                    limit.as_secs()
                )),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    Outcome::fail("the check stopped unexpectedly".to_string())
                }
            },
        };
        let ms = match outcome.figure {
            Figure::Elapsed => Some(start.elapsed().as_millis() as u64),
            Figure::Ms(ms) => Some(ms),
            Figure::Unknown => None,
        };
        if report.failover_ms.is_none() {
            report.failover_ms = outcome.failover_ms;
        }
        let res = CheckResult {
            name,
            kind,
            passed: outcome.passed,
            detail: outcome.detail,
            ms,
        };
        on_done(&res);
        report.checks.push(res);
    }
    Ok(report)
}

/// What a check found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub passed: bool,
    pub detail: String,
    pub figure: Figure,
    pub failover_ms: Option<u64>,
}

/// A check's figure in the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Figure {
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

/// A check rendered and resolved, ready to run.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    Dns(dns::Plan),
    Http(http::Plan),
    Cluster(cluster::Plan),
    Failover(failover::Plan),
    ServiceRecovery(service_recovery::Plan),
    NodeDown(node_down::Plan),
}

impl Plan {
    pub(crate) fn key(&self) -> &'static str {
        match self {
            Plan::Dns(_) => "dns",
            Plan::Http(_) => "http",
            Plan::Cluster(_) => "cluster",
            Plan::Failover(_) => "failover",
            Plan::ServiceRecovery(_) => "service_recovery",
            Plan::NodeDown(_) => "node_down",
        }
    }
    /// The most this check may take; past it, it fails.
    pub(crate) fn deadline(&self) -> Duration {
        match self {
            Plan::Dns(p) => p.deadline(),
            Plan::Http(p) => p.deadline(),
            Plan::Cluster(p) => p.deadline(),
            Plan::Failover(p) => p.deadline(),
            Plan::ServiceRecovery(p) => p.deadline(),
            Plan::NodeDown(p) => p.deadline(),
        }
    }
    pub(crate) fn run(&self, ctx: &Ctx) -> Outcome {
        match self {
            Plan::Dns(p) => p.run(ctx),
            Plan::Http(p) => p.run(ctx),
            Plan::Cluster(p) => p.run(ctx),
            Plan::Failover(p) => p.run(ctx),
            Plan::ServiceRecovery(p) => p.run(ctx),
            Plan::NodeDown(p) => p.run(ctx),
        }
    }
}

/// A prepared check with its display name.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub name: String,
    pub plan: Plan,
}

/// What a check needs while it prepares: the inventory, and where it was written.
pub(crate) struct PrepareCtx<'a> {
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

    fn node_names(&self) -> String {
        self.inv
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A host a check talks to: its name in the report and its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub label: String,
    pub addr: Ipv4Addr,
}

/// Render every check with the scenario's variables and resolve its node names.
pub(crate) fn prepare(
    inv: &Inventory,
    scenario: &Scenario,
    opts: &VerifyOptions,
) -> anyhow::Result<Vec<Prepared>> {
    for k in &opts.skip {
        if !CheckKind::NAMES.contains(&k.replace('-', "_").as_str()) {
            user_bail!(
                "--skip {k}: not a check kind\n  fix: use one of: {}",
                CheckKind::NAMES.join(", ")
            );
        }
    }
    if scenario.verify.is_empty() {
        user_bail!(
            "{}: the scenario has no `verify:` checks\n  fix: add a `verify:` section, e.g. `verify: [{{dns: {{server: dns, name: www.example.com}}}}]`",
            scenario.path.display()
        );
    }
    let templates = Templates::new(&inv.dir, &inv.dir.join("templates"));
    let Some(first) = inv.nodes.first() else {
        user_bail!("{}: the inventory has no nodes", inv.path.display());
    };
    let facts = crate::templates::Facts::of(inv);
    let vars = host_vars(
        inv,
        &facts,
        first,
        &scenario.vars,
        &BTreeMap::new(),
        &templates,
    )?;
    // a secret a check names (say, in a URL) is masked in everything shown
    let names: Vec<&String> = inv.secrets.iter().chain(scenario.secrets.iter()).collect();
    let mut secrets = crate::redact::Redactor::new();
    crate::redact::add_named(&mut secrets, &vars, &names);
    crate::redact::remember(&secrets);
    let mut out = Vec::new();
    for check in &scenario.verify {
        if opts
            .skip
            .iter()
            .any(|k| k.replace('-', "_") == check.spec.kind.key())
        {
            continue;
        }
        let spec: CheckSpec = templates.render_args(&check.spec, &vars, &check.at)?;
        let ctx = PrepareCtx { inv, at: &check.at };
        let p = prepare_check(&spec, &ctx)?;
        out.push(p);
    }
    if out.is_empty() {
        user_bail!("every check of the scenario was skipped (--skip)\n  fix: skip fewer kinds");
    }
    Ok(out)
}

/// One rendered check, resolved into its plan, with its display name.
pub(crate) fn prepare_check(spec: &CheckSpec, ctx: &PrepareCtx) -> anyhow::Result<Prepared> {
    let plan = match &spec.kind {
        CheckKind::Dns(s) => Plan::Dns(s.prepare(ctx)?),
        CheckKind::Http(s) => Plan::Http(s.prepare(ctx)?),
        CheckKind::Cluster(s) => Plan::Cluster(s.prepare(ctx)?),
        CheckKind::Failover(s) => Plan::Failover(s.prepare(ctx)?),
        CheckKind::ServiceRecovery(s) => Plan::ServiceRecovery(s.prepare(ctx)?),
        CheckKind::NodeDown(s) => Plan::NodeDown(s.prepare(ctx, &|c| prepare_check(c, ctx))?),
    };
    let name = match &spec.name {
        Some(n) if !n.trim().is_empty() => n.trim().to_string(),
        _ => match &plan {
            Plan::Dns(p) => p.summary(),
            Plan::Http(p) => p.summary(),
            Plan::Cluster(p) => p.summary(),
            Plan::Failover(p) => p.summary(),
            Plan::ServiceRecovery(p) => p.summary(),
            Plan::NodeDown(p) => p.summary(),
        },
    };
    Ok(Prepared { name, plan })
}

// ---------------------------------------------------------------------------
// What checks share while they run
// ---------------------------------------------------------------------------

/// The context checks run in: the inventory, options and the addresses already
/// proven safe to send to.
pub(crate) struct Ctx {
    pub inv: Inventory,
    pub insecure: bool,
    pub progress: bool,
    pub labctl: Option<PathBuf>,
    safe: Mutex<HashSet<Ipv4Addr>>,
}

impl Ctx {
    fn new(inv: Inventory, opts: &VerifyOptions) -> Ctx {
        Ctx {
            inv,
            insecure: opts.insecure,
            progress: opts.progress,
            labctl: opts.labctl.clone(),
            safe: Mutex::new(HashSet::new()),
        }
    }

    /// Refuse to send to `addr` unless the traffic provably stays on this machine:
    /// [`crate::lab::ensure_safe_target`], and for a lab with a `network:` the
    /// address must be in its subnet (a DNS answer could name any address).
    pub fn ensure_safe(&self, addr: Ipv4Addr) -> Result<(), String> {
        if let Ok(s) = self.safe.lock() {
            if s.contains(&addr) {
                return Ok(());
            }
        }
        if !addr.is_loopback() {
            if let Some(net) = &self.inv.network {
                if !net.subnet.contains(addr) {
                    return Err(format!(
                        "refusing to send traffic to {addr}: it is outside the lab subnet {}",
                        net.subnet
                    ));
                }
            }
        }
        crate::lab::ensure_safe_target(&self.inv, addr)
            .map_err(|e| crate::error::format_error(&e))?;
        if let Ok(mut s) = self.safe.lock() {
            s.insert(addr);
        }
        Ok(())
    }

    /// A progress line on stderr (for the long checks).
    pub fn progress(&self, msg: &str) {
        if self.progress {
            eprintln!("  .. {}", crate::redact::mask(msg));
        }
    }

    /// Open an SSH session to `node` (after the safety check).
    pub fn ssh(&self, node: &Node) -> Result<Session, String> {
        self.ensure_safe(node.address)?;
        check_key(&self.inv).map_err(|e| crate::error::format_error(&e))?;
        let t = crate::transport::ssh::Target::for_node(&self.inv, node, self.insecure);
        Session::connect(&t).map_err(|e| match e {
            ConnectError::Unreachable(m) | ConnectError::HostKey(m) => m,
        })
    }

    /// Cut the power of `node` (`up: false`) or boot it again (`up: true`):
    /// through the lab's provider, or by running `VerifyOptions::labctl` as
    /// `LABCTL -i INVENTORY fail|up NODE` (bounded by `limit`) when it is set.
    pub fn power(&self, node: &str, up: bool, limit: Duration) -> Result<(), String> {
        let verb = if up { "up" } else { "fail" };
        match &self.labctl {
            Some(exe) => {
                let inv =
                    std::path::absolute(&self.inv.path).unwrap_or_else(|_| self.inv.path.clone());
                let mut cmd = Command::new(exe);
                cmd.arg("-i").arg(&inv).args([verb, node]);
                run_with_timeout(cmd, limit)
                    .map(|_| ())
                    .map_err(|e| format!("`labctl {verb} {node}`: {e}"))
            }
            None => {
                let names = [node.to_string()];
                let r = if up {
                    crate::providers::up(&self.inv, &names, &crate::progress::Silent)
                } else {
                    crate::providers::fail(&self.inv, &names, &crate::progress::Silent)
                };
                r.map_err(|e| format!("`labctl {verb} {node}`: {}", crate::error::format_error(&e)))
            }
        }
    }
}

/// Run a command with a time limit; its output, or why it failed (killing it on timeout).
pub(crate) fn run_with_timeout(mut cmd: Command, limit: Duration) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let read = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                s = String::from_utf8_lossy(&buf).into_owned();
            }
            s
        })
    };
    let out = read(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        None => Err(format!("timed out after {} s", limit.as_secs())),
        Some(st) if st.success() => Ok(stdout),
        Some(st) => {
            let msg = crate::text::last_lines(&format!("{stderr}{stdout}"), 3);
            Err(format!(
                "exit code {}: {msg}",
                st.code().map(|c| c.to_string()).unwrap_or("signal".into())
            ))
        }
    }
}

/// Run a script as root over SSH (scripts bound their own commands with `timeout`).
pub(crate) fn remote(sess: &mut Session, script: &str) -> Result<Output, String> {
    sess.run(
        &crate::shell::Script::from_checked_format(script.to_string()),
        crate::transport::PROBE_LIMIT,
    )
    .map_err(|e| format!("{}: {}", sess.target.name, crate::error::format_error(&e)))
}

/// The node of the inventory an HTTP body names (`info.txt` holds the node's name).
pub(crate) fn node_in_body<'a>(inv: &'a Inventory, body: &str) -> Option<&'a str> {
    body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| !w.is_empty())
        .find_map(|w| {
            inv.nodes
                .iter()
                .find(|n| n.name == w)
                .map(|n| n.name.as_str())
        })
}

/// `names` as written in a scenario, checked to be inventory nodes.
pub(crate) fn node_list(
    ctx: &PrepareCtx,
    field: &str,
    names: &[String],
) -> anyhow::Result<Vec<String>> {
    names
        .iter()
        .map(|n| ctx.node(field, n).map(|n| n.name))
        .collect()
}

/// For unit tests: an inventory of three loopback nodes (nodo1, nodo2, dns)
/// reached over the ssh provider, loaded from a file in a folder that is gone
/// once loaded (preparing checks reads nothing from it).
#[cfg(test)]
pub(crate) fn test_inventory() -> crate::inventory::Inventory {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("inventory.yaml");
    std::fs::write(
        &p,
        "lab: t\nprovider: ssh\nnodes:\n  nodo1: {address: 127.0.0.1}\n  nodo2: {address: 127.0.0.2}\n  dns: {address: 127.0.0.3}\n",
    )
    .unwrap();
    crate::inventory::Inventory::load(&p).unwrap()
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
            CheckKind::Failover(f) => assert_eq!(f.within.ms(), 2000),
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
        let e = parse("- htp: {url: http://x/}\n").unwrap_err().to_string();
        assert!(e.contains("htp") && e.contains("s.yaml"), "{e}");
        let e = parse("- dns: {server: dns, nme: x}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nme"), "{e}");
        let e = parse("- name: nothing\n").unwrap_err().to_string();
        assert!(e.contains("names no check kind"), "{e}");
        let e = parse("- dns: {server: dns, name: x}\n  http: {url: http://x/}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 check kinds (dns, http)"), "{e}");
        let e = parse("- failover: {vip: 10.1.1.100, within: soon}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a duration"), "{e}");
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
    fn report_json_has_the_exact_shape() {
        let r = VerifyReport {
            scenario: "s".into(),
            checks: vec![CheckResult {
                name: "a".into(),
                kind: "dns",
                passed: true,
                detail: "ok".into(),
                ms: Some(3),
            }],
            failover_ms: None,
        };
        let j = r.json();
        assert_eq!(
            j,
            serde_json::json!({"passed": true, "checks": [{"name": "a", "passed": true, "detail": "ok", "ms": 3}], "failover_ms": null})
        );
        assert!(r.text().contains("PASS  a: ok (3 ms)"));
        assert!(r.summary().contains("all 1 checks passed"));
    }

    #[test]
    fn finds_the_node_named_in_a_body() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("inventory.yaml");
        std::fs::write(
            &p,
            "lab: t\nprovider: ssh\nnodes:\n  nodo1: {address: 127.0.0.1, port: 1}\n  nodo10: {address: 127.0.0.1, port: 2}\n",
        )
        .unwrap();
        let inv = Inventory::load(&p).unwrap();
        assert_eq!(node_in_body(&inv, "nodo10\n"), Some("nodo10"));
        assert_eq!(node_in_body(&inv, "served by nodo1."), Some("nodo1"));
        assert_eq!(node_in_body(&inv, "nobody"), None);
    }
}
