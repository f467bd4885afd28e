//! `verify`: run a scenario's checks from the host, in order, each within its
//! deadline, and report what they found.
//!
//! Flow: [`prepare`](prepare::prepare) renders every check of the scenario's
//! `verify:` section with its variables and resolves node names (an input
//! mistake is an error, exit 2, before any packet is sent) → [`deadline`] runs
//! each check on a worker thread of its own; past its deadline the check is
//! told to stop and its thread is joined before the next check starts → a
//! [`VerifyReport`] ([`report`]).
//!
//! The library prints nothing: progress and each finished check reach the
//! caller as [`Event`]s. Power cuts go through a [`Power`] (the lab's provider
//! by default; tests inject their own). What the checks are and how each one
//! runs is [`crate::checks`].

pub mod deadline;
pub mod prepare;
pub mod report;

pub use crate::checks::{Power, ProviderPower};
pub use report::{CheckResult, VerifyReport};

use crate::checks::Env;
use crate::inventory::Inventory;
use crate::scenario::Scenario;

/// How `verify` runs.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Skip host key checks for SSH (existing hosts you trust).
    pub insecure: bool,
    /// Omit checks of these kinds (e.g. `failover`, which cuts a node's power).
    pub skip: Vec<String>,
}

/// What a run tells its caller while it goes.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A step of a long check (`failover: cutting the power of nodo1`).
    Progress(&'a str),
    /// A check finished.
    Done(&'a CheckResult),
}

/// Run every check of `scenario` in order, cutting power through the lab's
/// provider. Input mistakes (an undefined variable, an unknown node) are
/// errors before anything is sent; a check that cannot run fails with the reason.
pub fn run_checks(
    inv: &Inventory,
    scenario: &Scenario,
    opts: &VerifyOptions,
) -> anyhow::Result<VerifyReport> {
    run_checks_with(inv, scenario, opts, &ProviderPower, &|_| {})
}

/// [`run_checks`] with a power switch of the caller's, telling `on` about
/// progress and each finished check (progress comes from the check's thread).
pub fn run_checks_with(
    inv: &Inventory,
    scenario: &Scenario,
    opts: &VerifyOptions,
    power: &dyn Power,
    on: &(dyn Fn(Event<'_>) + Sync),
) -> anyhow::Result<VerifyReport> {
    // a lab the scenario cannot run on is refused before anything is sent
    // (`list_checks` shows a scenario's checks on any lab)
    scenario.check_lab(inv)?;
    let plans = prepare::prepare(inv, scenario, opts)?;
    let progress = |msg: &str| on(Event::Progress(msg));
    let env = Env::new(inv, opts.insecure, power, &progress);
    let mut report = VerifyReport {
        scenario: scenario.name.clone(),
        ..Default::default()
    };
    for p in plans {
        let (outcome, ms) = deadline::run(&env, p.plan.as_ref());
        if report.failover_ms.is_none() {
            report.failover_ms = outcome.failover_ms;
        }
        let res = CheckResult {
            name: p.name,
            kind: p.key,
            passed: outcome.passed,
            detail: outcome.detail,
            ms,
        };
        on(Event::Done(&res));
        report.checks.push(res);
    }
    Ok(report)
}

/// The checks `run_checks` would run, as (name, kind), without sending anything:
/// renders and resolves every check, so input mistakes show up here too.
pub fn list_checks(
    inv: &Inventory,
    scenario: &Scenario,
    opts: &VerifyOptions,
) -> anyhow::Result<Vec<(String, &'static str)>> {
    Ok(prepare::prepare(inv, scenario, opts)?
        .into_iter()
        .map(|p| (p.name, p.key))
        .collect())
}
