//! `service_recovery`: stop a cluster-managed service on the active node and
//! expect the cluster to bring it back (scenario 05: apache2 as a pacemaker
//! resource).
//!
//! ```yaml
//! - service_recovery: {service: apache2, vip: "{{ vip }}", resource: WebServer, within: 30s}
//! ```
//!
//! Steps: GET `url` (default `http://VIP/info.txt`): its body names the active
//! node → over SSH on that node, stop the service behind pacemaker's back →
//! poll the URL at 20 Hz: it must stop answering, then answer again within
//! `within:` (measured from the stop) → with `resource:`, `crm_resource
//! --cleanup` clears the failure pacemaker recorded (so later runs start
//! clean) and `crm_mon` must show the resource started.
//!
//! `method: stop` (default) is what an operator's mistake looks like:
//! `systemctl stop --no-block SERVICE` when systemd runs it (pacemaker
//! `systemd:` resources; not waiting, so a stop that hangs cannot stall the
//! check), else SIGTERM to the processes named SERVICE (pacemaker `ocf:`
//! agents start the daemon themselves, outside its systemd unit). Both leave
//! recovery to pacemaker's monitor. `method: kill` sends SIGKILL instead (a
//! crash; note that a unit with `Restart=` may then be restarted by systemd).

use super::failover::{poll, VipTarget};
use super::{cluster, Check, Ctx, Outcome, PrepareCtx};
use crate::sh;
use crate::shell::Script;
use crate::duration::{human_ms, Dur};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How the service is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// `systemctl stop`, or SIGTERM when systemd does not run it.
    #[default]
    Stop,
    /// SIGKILL to its processes (a crash).
    Kill,
}

/// The `service_recovery:` check as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The service (systemd unit and process name), e.g. apache2.
    pub service: String,
    /// The virtual IP the service answers on.
    pub vip: Option<String>,
    /// What to GET (default `http://VIP/info.txt`); its body names the node.
    pub url: Option<String>,
    /// The pacemaker resource of the service: cleaned up and checked afterwards.
    pub resource: Option<String>,
    /// The longest acceptable time until the URL answers again.
    pub within: Dur,
    /// `stop` (default) or `kill`.
    pub method: Option<Method>,
}

/// A prepared `service_recovery` check.
#[derive(Debug, Clone)]
pub struct Plan {
    pub service: String,
    pub target: VipTarget,
    pub resource: Option<String>,
    pub within: Duration,
    pub method: Method,
}

fn shell_safe(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':'))
}

prepare_by_plan!(Spec);

impl Spec {
    fn plan(&self, ctx: &PrepareCtx) -> anyhow::Result<Plan> {
        let service = self.service.trim().trim_end_matches(".service").to_string();
        if !shell_safe(&service) {
            return Err(ctx.err(format!(
                "service_recovery: `service: {}` is not a service name\n  fix: e.g. service: apache2",
                self.service
            )));
        }
        let resource = self.resource.as_deref().map(str::trim).map(String::from);
        if let Some(r) = &resource {
            if !shell_safe(r) {
                return Err(ctx.err(format!(
                    "service_recovery: `resource: {r}` is not a resource id"
                )));
            }
        }
        let target = VipTarget::from_spec(
            ctx,
            "service_recovery",
            self.vip.as_deref(),
            self.url.as_deref(),
        )?;
        if self.within.0.is_zero() || self.within.0 > Duration::from_secs(600) {
            return Err(ctx.err("service_recovery: `within:` must be more than 0 and at most 10m"));
        }
        Ok(Plan {
            service,
            target,
            resource,
            within: self.within.0,
            method: self.method.unwrap_or_default(),
        })
    }
}

/// After the stop, the URL must fail within this long, or the stop did nothing.
const MUST_FAIL_WITHIN: Duration = Duration::from_secs(3);

impl Check for Plan {
    fn summary(&self) -> String {
        format!(
            "service_recovery {} on {} within {}",
            self.service,
            self.target.label(),
            human_ms(self.within.as_millis() as u64)
        )
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(120) + self.poll_limit()
    }

    fn run(&self, ctx: &Ctx) -> Outcome {
        let active = match self.target.holder(ctx) {
            Ok(h) => h,
            Err(e) => return Outcome::fail(format!("before the stop: {e}")).with_ms(None),
        };
        let Some(node) = ctx.inv.node(&active).cloned() else {
            return Outcome::fail(format!("{active} is not in the inventory")).with_ms(None);
        };
        let mut sess = match ctx.ssh(&node) {
            Ok(s) => s,
            Err(e) => return Outcome::fail(e).with_ms(None),
        };
        ctx.progress(&format!(
            "service_recovery: stopping {} on {active}",
            self.service
        ));
        let t0 = Instant::now();
        let how = match ctx.remote(&mut sess, &self.stop_script()) {
            Ok(o) if o.rc == 0 => o.stdout.trim().to_string(),
            Ok(o) => {
                return Outcome::fail(format!(
                    "stopping {} on {active} failed: {}",
                    self.service,
                    crate::text::last_lines(&format!("{}{}", o.stderr, o.stdout), 2)
                ))
                .with_ms(None)
            }
            Err(e) => return Outcome::fail(e).with_ms(None),
        };
        let mut down_at: Option<Duration> = None;
        let mut stale = false;
        let got = poll(
            ctx,
            &self.target,
            t0,
            t0 + self.poll_limit(),
            |p| match &p.result {
                Err(_) => {
                    down_at.get_or_insert(p.at);
                    false
                }
                Ok(_) if down_at.is_some() => true,
                Ok(_) if p.at > MUST_FAIL_WITHIN => {
                    stale = true;
                    true
                }
                Ok(_) => false,
            },
        );
        let within_ms = self.within.as_millis() as u64;
        let clean = self.cleanup(ctx, &mut sess);
        if stale {
            return Outcome::fail(format!(
                "{} kept answering after `{how}` on {active}: nothing to recover (is {} what serves it?){clean}",
                self.target.label(),
                self.service
            ))
            .with_ms(None);
        }
        match got {
            Some(p) => {
                let ms = p.at.as_millis() as u64;
                let by = p.result.unwrap_or_default();
                let place = if by == active {
                    format!("restarted on {active}")
                } else {
                    format!("moved from {active} to {by}")
                };
                let detail = format!(
                    "{how} on {active}; {} answered again after {} ({place}; bound {}){clean}",
                    self.target.label(),
                    human_ms(ms),
                    human_ms(within_ms)
                );
                let ok = ms <= within_ms && !clean.starts_with("; but");
                if ok {
                    Outcome::pass(detail)
                } else {
                    Outcome::fail(detail)
                }
                .with_ms(Some(ms))
            }
            None => Outcome::fail(format!(
                "{how} on {active}; {} did not answer again within {}{clean}",
                self.target.label(),
                human_ms(self.poll_limit().as_millis() as u64)
            ))
            .with_ms(None),
        }
    }

}

impl Plan {
    fn poll_limit(&self) -> Duration {
        self.within + Duration::from_secs(30)
    }

    /// The script that stops the service.
    fn stop_script(&self) -> Script {
        let svc = &self.service;
        match self.method {
            Method::Stop => sh!(
                "if systemctl is-active --quiet {} 2>/dev/null; then
  timeout 20 systemctl stop --no-block {} && echo {}
elif pkill -TERM -x {}; then
  echo {}
else
  echo {} >&2; exit 3
fi",
                svc,
                svc,
                format!("systemctl stop {svc}"),
                svc,
                format!("SIGTERM to the {svc} processes"),
                format!("{svc} is not running here")
            ),
            Method::Kill => sh!(
                "if pkill -KILL -x {}; then echo {}; else echo {} >&2; exit 3; fi",
                svc,
                format!("SIGKILL to the {svc} processes"),
                format!("{svc} is not running here")
            ),
        }
    }

    /// With `resource:`: clear pacemaker's record of the failure, then check
    /// the resource is started. `; ...` to append to the detail.
    fn cleanup(&self, ctx: &Ctx, sess: &mut crate::transport::ssh::Session) -> String {
        let Some(r) = &self.resource else {
            return String::new();
        };
        let script = sh!(
            "PATH=$PATH:/usr/sbin:/sbin; timeout 30 crm_resource --cleanup --resource {} >/dev/null 2>&1; true",
            r
        );
        if let Err(e) = ctx.remote(sess, &script) {
            return format!("; but cleaning up {r} failed: {e}");
        }
        // after a cleanup pacemaker probes the resource again: give it a moment
        let mut last = String::new();
        for _ in 0..15 {
            if !ctx.sleep(Duration::from_secs(1)) {
                break;
            }
            match cluster::crm_status_in(ctx, sess) {
                Ok(st) => match st.started_on(r) {
                    None => return format!("; but resource {r} does not exist"),
                    Some(w) if w.is_empty() => last = format!("resource {r} is not started"),
                    Some(w) => return format!("; {r} started on {}", w.join(", ")),
                },
                Err(e) => last = e,
            }
        }
        format!("; but after cleanup: {last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_plan;

    #[test]
    fn prepares_and_refuses_unsafe_names() {
        let p = test_plan(
            "{service: apache2.service, vip: 10.1.1.100, resource: WebServer, within: 30s}", Spec::plan)
        .unwrap();
        assert_eq!(p.service, "apache2");
        assert_eq!(p.target.url.to_string(), "http://10.1.1.100/info.txt");
        assert_eq!(p.method, Method::Stop);
        assert!(p
            .stop_script()
            .as_str()
            .contains("systemctl stop --no-block 'apache2'"));
        let p = test_plan(
            "{service: apache2, url: \"http://10.1.1.100:8080/x\", within: 5s, method: kill}", Spec::plan)
        .unwrap();
        assert!(p.stop_script().as_str().contains("pkill -KILL -x 'apache2'"));
        assert_eq!(p.target.addr.to_string(), "10.1.1.100");
        let e =
            test_plan("{service: \"apache2; rm -rf /\", vip: 10.1.1.100, within: 30s}", Spec::plan).unwrap_err();
        assert!(e.to_string().contains("is not a service name"), "{e}");
        let e = test_plan("{service: apache2, within: 30s}", Spec::plan).unwrap_err();
        assert!(e.to_string().contains("add `vip:"), "{e}");
        let e = test_plan("{service: apache2, url: \"http://www.example.com/\", within: 30s}", Spec::plan)
            .unwrap_err();
        assert!(e.to_string().contains("needs the VIP's address"), "{e}");
        assert!(
            test_plan("{service: apache2, vip: 10.1.1.100, within: 30s, method: reboot}", Spec::plan).is_err()
        );
    }
}
