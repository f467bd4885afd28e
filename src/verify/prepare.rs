//! From a scenario's `verify:` section to prepared checks: `--skip` applied,
//! every check rendered with the scenario's variables, then resolved by its
//! own [`Prepare`](crate::checks::Prepare).

use super::VerifyOptions;
use crate::checks::{prepare_check, CheckKind, CheckSpec, PrepareCtx, Prepared};
use crate::inventory::Inventory;
use crate::scenario::Scenario;
use crate::templates::{host_vars, Templates};
use crate::user_bail;
use std::collections::BTreeMap;

/// Render every check with the scenario's variables and resolve its node names.
pub fn prepare(
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
    let mut out = Vec::new();
    for (at, spec) in render(inv, scenario)? {
        if opts
            .skip
            .iter()
            .any(|k| k.replace('-', "_") == spec.kind.key())
        {
            continue;
        }
        let ctx = PrepareCtx { inv, at: &at };
        out.push(prepare_check(&spec, &ctx)?);
    }
    if out.is_empty() {
        user_bail!("every check of the scenario was skipped (--skip)\n  fix: skip fewer kinds");
    }
    Ok(out)
}

/// Every check of `scenario` rendered with its variables (the first node's
/// view, as checks run from the host), with where it was written; secrets the
/// checks name are remembered for masking.
pub fn render(inv: &Inventory, scenario: &Scenario) -> anyhow::Result<Vec<(String, CheckSpec)>> {
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
    scenario
        .verify
        .iter()
        .map(|check| {
            let spec: CheckSpec = templates.render_args(&check.spec, &vars, &check.at)?;
            Ok((check.at.clone(), spec))
        })
        .collect()
}
