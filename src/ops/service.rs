//! `service`: a systemd unit started/stopped/restarted/reloaded, enabled/disabled.
//!
//! ```yaml
//! - service: {name: apache2, state: started, enabled: true}
//! handlers:
//!   restart bind9: {service: {name: named, state: restarted}}
//! ```

use super::{kv_lines, q, Op, Plan, PrepareCtx, Probe};
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

impl Args {
    pub fn validate(&self) -> Result<(), String> {
        if self.state.is_none() && self.enabled.is_none() {
            return Err(format!(
                "service {} says neither `state:` nor `enabled:`\n  fix: e.g. {{name: {}, state: started, enabled: true}}",
                self.name, self.name
            ));
        }
        Ok(())
    }

    pub fn prepare(self, _ctx: &PrepareCtx) -> anyhow::Result<Service> {
        Ok(Service(self))
    }
}

#[derive(Debug)]
pub struct Service(Args);

impl Op for Service {
    fn probe(&self) -> String {
        format!(
            "systemctl show -p LoadState -p ActiveState -p UnitFileState -- {}\n",
            q(&self.0.name)
        )
    }

    fn plan(&self, state: &Probe) -> anyhow::Result<Plan> {
        let s = kv_lines(&state.out);
        let name = &self.0.name;
        let n = q(name);
        if s.get("LoadState").map(String::as_str) != Some("loaded") {
            anyhow::bail!(
                "systemd unit `{name}` not found on the node (LoadState={})\n  fix: install its package in an earlier task, or correct the unit name",
                s.get("LoadState").map(String::as_str).unwrap_or("unknown")
            );
        }
        let active = s.get("ActiveState").map(String::as_str) == Some("active");
        let mut what = Vec::new();
        let mut script = String::from("set -e\n");
        match self.0.state {
            Some(State::Started) if !active => {
                what.push("start".to_string());
                script += &format!("systemctl start -- {n}\n");
            }
            Some(State::Stopped) if active => {
                what.push("stop".to_string());
                script += &format!("systemctl stop -- {n}\n");
            }
            Some(State::Restarted) => {
                what.push("restart".to_string());
                script += &format!("systemctl restart -- {n}\n");
            }
            Some(State::Reloaded) => {
                what.push("reload".to_string());
                script += &format!("systemctl reload-or-restart -- {n}\n");
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
                script += &format!("systemctl enable -- {n} 2>&1\n");
            } else if !want && ufs == "enabled" {
                what.push("disable".to_string());
                script += &format!("systemctl disable -- {n} 2>&1\n");
            }
        }
        Ok(Plan::of(what, script))
    }
}
