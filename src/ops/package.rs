//! `package`: Debian packages present or absent, in one apt transaction.
//!
//! ```yaml
//! - package: [apache2, corosync, pacemaker]
//! - package: {name: [nginx], state: absent}
//! ```
//!
//! `apt-get update` runs only when the package lists are older than
//! `cache_valid_time` seconds (default 3600) or a package has no version in
//! them (unknown, or only named by another package, as in an image whose
//! lists were emptied).
//! Every `package` task of a play is merged into one apt run at the first one.
//!
//! A dpkg run cut off in the middle (a power cut, a killed labctl) is finished
//! first (`dpkg --configure -a`, packages cut off while unpacking unpacked
//! again with `apt-get install --reinstall`, then `apt-get -f install`): the probe sees it
//! cheaply (files in `/var/lib/dpkg/updates/`, packages left unpacked or
//! half-configured in dpkg's status file), so a converged node still reads as
//! ok. An apt/dpkg lock held by another process is waited for, up to
//! [`LOCK_WAIT_SECS`], with a message naming that process.

use super::{Change, Op, Operation, Plan, PrepareCtx, Probe};
use crate::sh;
use crate::shell::Script;
use crate::yaml::OneOrMany;
use serde::{Deserialize, Serialize};

/// `state: present | absent`.
pub use super::Presence as State;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgsMap {
    pub name: OneOrMany,
    #[serde(default)]
    pub state: State,
    #[serde(default)]
    pub cache_valid_time: Option<u64>,
    #[serde(default)]
    pub install_recommends: bool,
}

/// `package: [a, b]`, `package: a` or `package: {name: [...], state: ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct Args(pub ArgsMap);

impl From<String> for Args {
    fn from(s: String) -> Args {
        Args(ArgsMap {
            name: OneOrMany(vec![s]),
            state: State::Present,
            cache_valid_time: None,
            install_recommends: false,
        })
    }
}
impl From<ArgsMap> for Args {
    fn from(m: ArgsMap) -> Args {
        Args(m)
    }
}

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Args;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a package name, a list of names, or a map with `name:`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Args, E> {
                Ok(Args::from(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, s: A) -> Result<Args, A::Error> {
                let names: OneOrMany =
                    Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(s))?;
                Ok(Args(ArgsMap {
                    name: names,
                    state: State::Present,
                    cache_valid_time: None,
                    install_recommends: false,
                }))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<Args, A::Error> {
                Ok(Args(Deserialize::deserialize(
                    serde::de::value::MapAccessDeserializer::new(m),
                )?))
            }
        }
        d.deserialize_any(V)
    }
}

impl Args {
    pub fn names(&self) -> &[String] {
        &self.0.name.0
    }
}

impl Operation for Args {
    fn manages(&self) -> Option<(&'static str, Vec<String>)> {
        (self.0.state == State::Present).then(|| ("packages", self.names().to_vec()))
    }
    fn subject(&self) -> String {
        self.names().join(" ")
    }

    fn validate(&self) -> Result<(), String> {
        if self.names().is_empty() {
            return Err(
                "package lists no package\n  fix: name at least one, e.g. package: [apache2]"
                    .into(),
            );
        }
        for n in self.names() {
            if n.is_empty() || n.starts_with('-') || n.contains(char::is_whitespace) {
                return Err(format!(
                    "`{n}` is not a package name\n  fix: write one Debian package name per list item, e.g. [bind9, dnsutils]"
                ));
            }
        }
        Ok(())
    }

    fn prepare(self, _ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Op>> {
        Ok(Box::new(Package {
            names: self.0.name.0,
            state: self.0.state,
            cache_valid_time: self.0.cache_valid_time.unwrap_or(3600),
            install_recommends: self.0.install_recommends,
        }))
    }
}

#[derive(Debug, Clone)]
pub struct Package {
    pub names: Vec<String>,
    pub state: State,
    pub cache_valid_time: u64,
    pub install_recommends: bool,
}

impl Package {
    /// Merge another `package` task of the same play into this one (same state).
    pub fn merge(&mut self, other: &Package) -> bool {
        if other.state != self.state {
            return false;
        }
        for n in &other.names {
            if !self.names.contains(n) {
                self.names.push(n.clone());
            }
        }
        self.install_recommends |= other.install_recommends;
        self.cache_valid_time = self.cache_valid_time.min(other.cache_valid_time);
        true
    }
}

/// How long a change waits for an apt/dpkg lock held by another process.
pub const LOCK_WAIT_SECS: u64 = 300;

/// dpkg states a cut-off run leaves behind (`Status:` lines of /var/lib/dpkg/status).
const UNFINISHED: &str =
    "half-installed|unpacked|half-configured|triggers-awaited|triggers-pending";

/// Shell that waits (bounded) until no other process holds an apt/dpkg lock,
/// saying once who holds it; fails with the holder named after the bound.
fn wait_for_lock() -> Script {
    let mut s = sh!("labctl_wait={}", LOCK_WAIT_SECS);
    s.line(
        r#"labctl_holders() { find /proc/[0-9]*/fd -maxdepth 1 \( -lname '/var/lib/dpkg/lock*' -o -lname /var/lib/apt/lists/lock -o -lname /var/cache/apt/archives/lock \) 2>/dev/null | while read -r f; do p=${f#/proc/}; p=${p%%/*}; [ "$p" != "$$" ] && echo "$p ($(cat /proc/$p/comm 2>/dev/null))"; done | sort -u | tr '\n' ' '; }
labctl_i=0
while h=$(labctl_holders); [ -n "$h" ]; do
  if [ $labctl_i -eq 0 ]; then echo "labctl: waiting (up to $labctl_wait s) for the apt/dpkg lock held by process $h"; fi
  if [ $labctl_i -ge $labctl_wait ]; then echo "labctl: the apt/dpkg lock is still held by process $h after $labctl_wait s; wait for it to finish (or stop it) and run configure again" >&2; exit 75; fi
  labctl_i=$((labctl_i+1)); sleep 1
done"#,
    );
    s
}

/// `labctl_unfinished=…`: the dpkg states of [`UNFINISHED`], for `grep -E`.
fn unfinished_states() -> Script {
    sh!("labctl_unfinished={}", UNFINISHED)
}

/// Shell that finishes a dpkg run cut off in the middle, if there is one.
fn finish_interrupted() -> Script {
    let mut s = unfinished_states();
    s.line(
        r#"if [ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ] || grep -qE "^Status: [a-z]+ [a-z]+ ($labctl_unfinished)\$" /var/lib/dpkg/status; then
  echo "labctl: finishing an interrupted dpkg run (dpkg --configure -a)"
  dpkg --force-confdef --force-confold --configure -a 2>&1 || true
  # a package cut off while unpacking (half-installed, reinstall required) is unpacked again
  labctl_again=$(dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package}\n' 2>/dev/null | awk 'substr($1,2,1) == "H" || substr($1,3,1) == "R" {print $2}')
  if [ -n "$labctl_again" ]; then apt-get install --reinstall -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $labctl_again 2>&1; fi
  apt-get -f install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold 2>&1
fi"#,
    );
    s
}

impl Op for Package {
    fn probe(&self) -> Script {
        let mut s = Script::lit("dpkg-query -W -f='pkg=${Package} ${db:Status-Abbrev}\\n' --");
        s.args(&self.names).push(" 2>/dev/null");
        s.line(unfinished_states());
        s.line("echo \"age=$(( $(date +%s) - $(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo 0) ))\"\necho \"unfinished=$(ls -A /var/lib/dpkg/updates 2>/dev/null | wc -l) $(grep -cE \"^Status: [a-z]+ [a-z]+ ($labctl_unfinished)\\$\" /var/lib/dpkg/status 2>/dev/null)\"");
        s
    }

    fn plan(&self, state: &Probe) -> anyhow::Result<Plan> {
        let mut installed = Vec::new();
        let mut age = u64::MAX;
        let mut unfinished = false;
        for line in state.out.lines() {
            if let Some(rest) = line.strip_prefix("pkg=") {
                let mut it = rest.split_whitespace();
                if let (Some(name), Some(st)) = (it.next(), it.next()) {
                    if st.starts_with("ii") {
                        installed.push(name.split(':').next().unwrap_or(name).to_string());
                    }
                }
            } else if let Some(a) = line.strip_prefix("age=") {
                age = a.trim().parse().unwrap_or(u64::MAX);
            } else if let Some(u) = line.strip_prefix("unfinished=") {
                unfinished = u.split_whitespace().any(|n| n != "0");
            }
        }
        let (todo, verb): (Vec<&String>, &str) = match self.state {
            State::Present => (
                self.names
                    .iter()
                    .filter(|n| !installed.contains(n))
                    .collect(),
                "install",
            ),
            State::Absent => (
                self.names
                    .iter()
                    .filter(|n| installed.contains(n))
                    .collect(),
                "remove",
            ),
        };
        if todo.is_empty() && !unfinished {
            return Ok(Plan::Ok);
        }
        let mut list = Script::new();
        list.args(&todo);
        let mut script = Script::lit("set -e\nexport DEBIAN_FRONTEND=noninteractive");
        script.line(wait_for_lock()).line(finish_interrupted());
        // apt waits for the lock too, should another run take it in between
        let lock = sh!("-o DPkg::Lock::Timeout={}", LOCK_WAIT_SECS);
        if !todo.is_empty() {
            script.line(match self.state {
                State::Present => {
                    let stale = age > self.cache_valid_time;
                    sh!(
                        "if {} || ! (for p in {}; do apt-cache show --no-all-versions -- \"$p\" 2>/dev/null | grep -q '^Package:' || exit 1; done); then apt-get update -q 2>&1; fi\napt-get install -y -q {} {} -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --{} 2>&1",
                        Script::lit(if stale { "true" } else { "false" }),
                        list,
                        lock,
                        Script::lit(if self.install_recommends { "" } else { "--no-install-recommends" }),
                        list
                    )
                }
                State::Absent => sh!("apt-get remove -y -q {} --{} 2>&1", lock, list),
            });
        }
        let mut what: Vec<String> = Vec::new();
        if unfinished {
            what.push("finish an interrupted dpkg run".into());
        }
        if !todo.is_empty() {
            what.push(format!(
                "{verb} {}",
                todo.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        Ok(Plan::Change(Change {
            what: what.join(", then "),
            script,
            diff: None,
        }))
    }

    fn as_package(&self) -> Option<&Package> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_only_missing_packages() {
        let p = Package {
            names: vec!["bind9".into(), "dnsutils".into()],
            state: State::Present,
            cache_valid_time: 3600,
            install_recommends: false,
        };
        let out = "pkg=bind9 ii \nage=10\n";
        let Plan::Change(c) = p
            .plan(&Probe {
                out: out.into(),
                rc: 0,
                ..Default::default()
            })
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(c.what, "install dnsutils");
        assert!(c.script.as_str().contains("if false ||"));
        let out = "pkg=bind9 ii \npkg=dnsutils ii \nage=99999\n";
        assert!(matches!(
            p.plan(&Probe {
                out: out.into(),
                rc: 0,
                ..Default::default()
            })
            .unwrap(),
            Plan::Ok
        ));
    }

    #[test]
    fn an_interrupted_dpkg_run_is_finished_first_and_a_clean_node_stays_ok() {
        let p = Package {
            names: vec!["apache2".into()],
            state: State::Present,
            cache_valid_time: 3600,
            install_recommends: false,
        };
        let plan = |out: &str| {
            p.plan(&Probe {
                out: out.into(),
                rc: 0,
                ..Default::default()
            })
            .unwrap()
        };
        // converged and clean: nothing to do
        assert!(matches!(
            plan("pkg=apache2 ii \nage=10\nunfinished=0 0\n"),
            Plan::Ok
        ));
        // installed, but another package was left half-configured by a power cut
        let Plan::Change(c) = plan("pkg=apache2 ii \nage=10\nunfinished=0 2\n") else {
            panic!()
        };
        assert_eq!(c.what, "finish an interrupted dpkg run");
        assert!(c
            .script
            .as_str()
            .contains("dpkg --force-confdef --force-confold --configure -a"));
        assert!(
            !c.script.as_str().contains("apt-get install -y"),
            "{}",
            c.script
        );
        // left unpacked (iU) with a journal in updates/: finish, then install
        let Plan::Change(c) = plan("pkg=apache2 iU \nage=10\nunfinished=1 1\n") else {
            panic!()
        };
        assert_eq!(
            c.what,
            "finish an interrupted dpkg run, then install apache2"
        );
        let fin = c.script.as_str().find("--configure -a").unwrap();
        let inst = c.script.as_str().find("apt-get install").unwrap();
        assert!(fin < inst, "{}", c.script);
        // the lock held by another process is waited for, bounded
        assert!(c
            .script
            .as_str()
            .contains("waiting (up to $labctl_wait s) for the apt/dpkg lock"));
        assert!(c.script.as_str().contains("labctl_wait='300'"));
        assert!(c.script.as_str().contains("DPkg::Lock::Timeout='300'"));
        let syntax = std::process::Command::new("sh")
            .args(["-n", "-c", c.script.as_str()])
            .output()
            .unwrap();
        assert!(syntax.status.success(), "{syntax:?}");
    }

    #[test]
    fn the_probe_reads_the_unfinished_state_without_running_dpkg() {
        let p = Package {
            names: vec!["bind9".into()],
            state: State::Present,
            cache_valid_time: 3600,
            install_recommends: false,
        };
        let probe = p.probe().into_string();
        assert!(probe.contains("/var/lib/dpkg/updates"), "{probe}");
        assert!(!probe.contains("dpkg --audit") && !probe.contains("--configure"));
    }
}
