//! `verify`: checks declared in a scenario, run from the host.

use std::collections::BTreeMap;

/// One check of a scenario's `verify:` section (refined by the verify issue).
pub type CheckSpec = BTreeMap<String, minijinja::Value>;
