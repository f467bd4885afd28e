//! `service`: a systemd unit started/stopped/restarted/reloaded, enabled/disabled.
//!
//! ```yaml
//! - service: {name: apache2, state: started, enabled: true}
//! handlers:
//!   restart bind9: {service: {name: named, state: restarted}}
//! ```

use super::{Op, Operation, Plan, PrepareCtx, Probe};
use crate::sh;
use crate::shell::Script;
use crate::text::kv_lines;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Started,
    Stopped,
    /// Always restarts (use it in handlers).
    Restarted,
    /// Always reloads (use it in handlers).
    Reloaded,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub name: String,
    pub state: Option<State>,
    pub enabled: Option<bool>,
}

impl Operation for Args {
    const MANAGES: Option<&'static str> = Some("services");
    fn subject(&self) -> String {
        self.name.clone()
    }

    fn validate(&self) -> Result<(), String> {
        if self.state.is_none() && self.enabled.is_none() {
            return Err(format!(
                "service {} says neither `state:` nor `enabled:`\n  fix: e.g. {{name: {}, state: started, enabled: true}}",
                self.name, self.name
            ));
        }
        Ok(())
    }

    fn prepare(self, _ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Op>> {
        Ok(Box::new(Service(self)))
    }
}

#[derive(Debug)]
pub struct Service(pub Args);

impl Op for Service {
    fn probe(&self) -> Script {
        sh!(
            "systemctl show -p LoadState -p ActiveState -p UnitFileState -- {}",
            self.0.name
        )
    }

    fn plan(&self, state: &Probe) -> anyhow::Result<Plan> {
        let s = kv_lines(&state.out);
        let name = &self.0.name;
        if s.get("LoadState").map(String::as_str) != Some("loaded") {
            // --check: the package that brings the unit would be installed first
            if let Some(after) = state.earlier.after_installing(name) {
                let mut what: Vec<&str> = match self.0.state {
                    Some(State::Started) => vec!["start"],
                    Some(State::Restarted) => vec!["restart"],
                    Some(State::Reloaded) => vec!["reload"],
                    Some(State::Stopped) | None => vec![],
                };
                if self.0.enabled == Some(true) {
                    what.push("enable");
                }
                if !what.is_empty() {
                    return Ok(Plan::of(
                        vec![format!("{}, {after}", what.join(", "))],
                        Script::new(),
                    ));
                }
                return Ok(Plan::Ok);
            }
            anyhow::bail!(
                "systemd unit `{name}` not found on the node (LoadState={})\n  fix: install its package in an earlier task, or correct the unit name",
                s.get("LoadState").map(String::as_str).unwrap_or("unknown")
            );
        }
        let active = s.get("ActiveState").map(String::as_str) == Some("active");
        let mut what = Vec::new();
        let mut script = Script::lit("set -e");
        match self.0.state {
            Some(State::Started) if !active => {
                what.push("start".to_string());
                script.line(retry_on_cgroup_race("start", name));
            }
            Some(State::Stopped) if active => {
                what.push("stop".to_string());
                script.line(sh!("systemctl stop -- {}", name));
            }
            Some(State::Restarted) => {
                what.push("restart".to_string());
                script.line(retry_on_cgroup_race("restart", name));
            }
            Some(State::Reloaded) => {
                what.push("reload".to_string());
                script.line(retry_on_cgroup_race("reload-or-restart", name));
            }
            _ => {}
        }
        if let Some(want) = self.0.enabled {
            let ufs = s.get("UnitFileState").map(String::as_str).unwrap_or("");
            let is_enabled = matches!(
                ufs,
                "enabled" | "enabled-runtime" | "static" | "alias" | "indirect" | "generated"
            );
            if want && !is_enabled {
                what.push("enable".to_string());
                script.line(sh!("{} systemctl enable -- {} 2>&1", Script::lit(SKIP_SYSV), name));
            } else if !want && ufs == "enabled" {
                what.push("disable".to_string());
                script.line(sh!("{} systemctl disable -- {} 2>&1", Script::lit(SKIP_SYSV), name));
            }
        }
        Ok(Plan::of(what, script))
    }
}

/// Enabling a native unit that also has a SysV script (apache2, named,
/// corosync, pacemaker on Debian) makes systemctl run `update-rc.d` for the
/// script's rc.d links too: a perl run that more than doubles the time of
/// each `enable` (0.45 s against 0.18 s, measured in a node). A systemd node
/// never reads those links while a native unit exists (systemd-sysv-generator
/// skips the script), so they are left as they are; the systemd side (the
/// `.wants/` links, the daemon's reload) is what it always was.
const SKIP_SYSV: &str = "SYSTEMCTL_SKIP_SYSV=1";

/// `systemctl VERB -- UNIT`, tried once more a second later when the unit
/// failed with status 219/CGROUP: in an nspawn node a service started right
/// after it stopped (a restart, or a start after a failed start) now and then
/// finds systemd still removing its old cgroup. Any other failure fails at once.
fn retry_on_cgroup_race(verb: &'static str, unit: &str) -> Script {
    let verb = Script::lit(verb);
    sh!(
        "systemctl {} -- {} || {{ [ \"$(systemctl show -p ExecMainStatus --value -- {})\" = 219 ] && sleep 1 && systemctl reset-failed -- {} && systemctl {} -- {}; }}",
        verb, unit, unit, unit, verb, unit
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn retries_only_after_a_cgroup_race() {
        let s = super::retry_on_cgroup_race("restart", "apache2").into_string();
        assert!(s.starts_with("systemctl restart -- 'apache2' || {"), "{s}");
        assert!(
            s.contains("ExecMainStatus --value -- 'apache2')\" = 219 ]"),
            "{s}"
        );
        assert!(
            s.trim_end().ends_with("systemctl restart -- 'apache2'; }"),
            "{s}"
        );
    }
}
