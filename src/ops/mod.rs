//! Operations (Ansible's "modules"): one file each.
//!
//! The idempotency contract, in the types:
//! 1. [`OpArgs::prepare`] renders the arguments (and template files) for one host,
//!    before any host is touched, so a typo fails early.
//! 2. [`Op::probe`] returns a shell snippet that prints the current state. The
//!    runner joins every task's probe of a play into one script: one remote round
//!    trip per host per play reads the whole play's state.
//! 3. [`Op::plan`] compares that state with the wanted one and returns
//!    [`Plan::Ok`] or a [`Change`]: what differs, and the script that fixes it.
//! 4. The runner applies the change (unless `--check`), notifies handlers, and
//!    re-reads state for the remaining tasks only after something changed.

use crate::shell::Script;
use crate::templates::Templates;
use minijinja::Value;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub mod cluster;
pub mod command;
pub mod content;
pub mod copy;
pub mod file;
pub mod package;
pub mod service;
pub mod template;
pub mod user;

/// The arguments of one task's operation, as written in the scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum OpArgs {
    Package(package::Args),
    Template(template::Args),
    Copy(copy::Args),
    File(file::Args),
    Service(service::Args),
    User(user::Args),
    Command(command::Args),
    Cluster(cluster::Args),
}

/// What the runner knows while preparing a host's tasks.
pub struct PrepareCtx<'a> {
    pub templates: &'a Templates,
    /// The host's variables and facts.
    pub vars: &'a Value,
    /// The project folder (`files/` lives there).
    pub project_dir: &'a Path,
    /// Where the task was written (`file:line:col`), for messages.
    pub at: &'a str,
    /// Values that must never be shown.
    pub secrets: &'a std::sync::Mutex<crate::redact::Redactor>,
    /// The hosts this run finds unreachable (filled in while it runs).
    pub unreachable: &'a crate::reach::Unreachable,
    /// `--check`: nothing will change, so no operation waits for a change to happen.
    pub check: bool,
}

/// The state a probe printed.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub out: String,
    pub rc: i32,
    /// With `--check`: what earlier tasks of this run would have changed on the host.
    pub earlier: Earlier,
}

/// With `--check` nothing changes, so a task's probe cannot see what earlier
/// tasks would have done (a package installed, a file written): the runner
/// tells the plan instead, so it can report "start apache2, after installing it".
#[derive(Debug, Clone, Default)]
pub struct Earlier {
    /// Packages earlier tasks would install.
    pub packages: Vec<String>,
    /// Files earlier tasks would write.
    pub files: Vec<String>,
    /// How many earlier tasks would change something.
    pub changes: usize,
}

impl Earlier {
    /// "after installing it" (`unit` is one of the packages) or "after installing a, b".
    pub fn after_installing(&self, unit: &str) -> Option<String> {
        if self.packages.is_empty() {
            return None;
        }
        let base = unit.strip_suffix(".service").unwrap_or(unit);
        Some(if self.packages.iter().any(|p| p == base) {
            "after installing it".into()
        } else {
            format!("after installing {}", self.packages.join(", "))
        })
    }
}

/// A file diff the runner may show with `--diff` (it fetches the old content only then).
#[derive(Debug, Clone)]
pub struct DiffReq {
    pub path: String,
    pub new: String,
    /// Never show the content (secret files): the diff says only that it changed.
    pub secret: bool,
    /// Whether the file exists now (if not, the old side is empty).
    pub exists: bool,
}

/// A change an operation wants to make.
#[derive(Debug, Clone)]
pub struct Change {
    /// What differs, for the user: `content, mode 0600 → 0644`.
    pub what: String,
    /// The shell script (run as root with `sh`) that makes the change.
    pub script: Script,
    pub diff: Option<DiffReq>,
}

/// The result of comparing the current state with the wanted one.
#[derive(Debug, Clone)]
pub enum Plan {
    Ok,
    Change(Change),
    /// The state is not there yet (other hosts are still on their way): read
    /// it again. The operation bounds the wait itself.
    Wait(String),
}

impl Plan {
    /// `Ok` when nothing differs, else a change described by `what` (joined
    /// with `, `) and made by `script`.
    pub fn of(what: Vec<String>, script: Script) -> Plan {
        if what.is_empty() {
            return Plan::Ok;
        }
        Plan::Change(Change {
            what: what.join(", "),
            script,
            diff: None,
        })
    }
}

/// A prepared operation for one host.
pub trait Op: Send + Sync + std::fmt::Debug {
    /// Shell that prints the current state (empty: nothing to read). It runs as root
    /// inside the play's gather script with stdin closed and stderr discarded.
    fn probe(&self) -> Script;
    /// Compare and decide. An `Err` fails the task with that message.
    fn plan(&self, state: &Probe) -> anyhow::Result<Plan>;
    /// Packages this op installs, so the runner can merge a play's installs into one apt run.
    fn as_package(&self) -> Option<&package::Package> {
        None
    }
}

impl PrepareCtx<'_> {
    /// Whether `content` holds a secret value known so far. Such a file's diff is
    /// never shown: the node's old version may hold a previous secret (before a
    /// rotation) that no variable names any more, so masking cannot catch it.
    pub fn holds_secret(&self, content: &[u8]) -> bool {
        let text = String::from_utf8_lossy(content);
        self.secrets
            .lock()
            .map(|r| r.redact(&text) != text)
            .unwrap_or(true)
    }
}

impl OpArgs {
    /// Every operation's name, as written in a task.
    pub const NAMES: &'static [&'static str] = &[
        "package", "template", "copy", "file", "service", "user", "command", "cluster",
    ];

    pub fn kind(&self) -> &'static str {
        match self {
            OpArgs::Package(_) => "package",
            OpArgs::Template(_) => "template",
            OpArgs::Copy(_) => "copy",
            OpArgs::File(_) => "file",
            OpArgs::Service(_) => "service",
            OpArgs::User(_) => "user",
            OpArgs::Command(_) => "command",
            OpArgs::Cluster(_) => "cluster",
        }
    }

    /// Checks that need no variables (states, modes).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            OpArgs::Package(a) => a.validate(),
            OpArgs::Template(a) => a.validate(),
            OpArgs::Copy(a) => a.validate(),
            OpArgs::File(a) => a.validate(),
            OpArgs::Service(a) => a.validate(),
            OpArgs::User(a) => a.validate(),
            OpArgs::Command(a) => a.validate(),
            OpArgs::Cluster(a) => a.validate(),
        }
    }

    /// A short description used when the task has no `name:`.
    pub fn summary(&self) -> String {
        match self {
            OpArgs::Package(a) => format!("package {}", a.names().join(" ")),
            OpArgs::Template(a) => format!("template {}", a.dest),
            OpArgs::Copy(a) => format!("copy {}", a.dest),
            OpArgs::File(a) => format!("file {}", a.path),
            OpArgs::Service(a) => format!("service {}", a.name),
            OpArgs::User(a) => format!("user {}", a.name),
            OpArgs::Command(a) => format!("command {}", a.cmd),
            OpArgs::Cluster(a) => format!("cluster {}", a.members.0.join(",")),
        }
    }

    /// Render the arguments for one host and build the operation.
    pub fn prepare(&self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Op>> {
        let rendered: OpArgs = ctx.templates.render_args(self, ctx.vars, ctx.at)?;
        // what variables made of the arguments obeys the same rules as what was written
        rendered.validate().map_err(|m| {
            crate::error::user(format!(
                "{}: {} (after its variables were filled in): {m}",
                ctx.at,
                rendered.kind()
            ))
        })?;
        Ok(match rendered {
            OpArgs::Package(a) => Box::new(a.prepare(ctx)?),
            OpArgs::Template(a) => Box::new(a.prepare(ctx)?),
            OpArgs::Copy(a) => Box::new(a.prepare(ctx)?),
            OpArgs::File(a) => Box::new(a.prepare(ctx)?),
            OpArgs::Service(a) => Box::new(a.prepare(ctx)?),
            OpArgs::User(a) => Box::new(a.prepare(ctx)?),
            OpArgs::Command(a) => Box::new(a.prepare(ctx)?),
            OpArgs::Cluster(a) => a.prepare(ctx)?,
        })
    }
}

/// Refuse shell text of the scenario that does not parse, before any host is
/// touched: the host's `sh -n` reads it (and runs nothing). `what` names the
/// field (`command: unless`), `at` the task.
pub fn check_shell(text: &str, what: &str, at: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("sh")
        .arg("-n")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return Ok(()); // no local sh: the node's own check still stops it
    };
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(text.as_bytes());
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr)
            .trim()
            .trim_start_matches("sh: ")
            .to_string();
        return Err(crate::error::user(format!(
            "{at}: {what}: the shell cannot parse it ({why})\n  fix: balance its quotes and brackets (test it with `sh -n`)"
        )));
    }
    Ok(())
}

/// Check an octal mode such as `0644` or `644`.
pub fn valid_mode(m: &str) -> bool {
    (3..=4).contains(&m.len()) && m.bytes().all(|c| (b'0'..=b'7').contains(&c))
}

/// Normalise a mode to what `stat -c %a` prints (`0644` → `644`).
pub fn norm_mode(m: &str) -> String {
    let t = m.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.to_string()
    }
}

/// Deserialize a struct that may also be written as a bare string (its main field).
/// `string_or_struct!(Args, ArgsMap, field)` gives `Args` a Deserialize accepting `"x"` or a map.
#[macro_export]
macro_rules! string_or_struct {
    ($outer:ident, $inner:ident, $field:ident) => {
        impl<'de> serde::Deserialize<'de> for $outer {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $outer;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str(concat!("a string or a map with `", stringify!($field), "`"))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$outer, E> {
                        Ok($outer::from(v.to_string()))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        m: A,
                    ) -> Result<$outer, A::Error> {
                        let i: $inner = serde::Deserialize::deserialize(
                            serde::de::value::MapAccessDeserializer::new(m),
                        )?;
                        Ok($outer::from(i))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert!(
            valid_mode("0644") && valid_mode("600") && !valid_mode("0999") && !valid_mode("rw")
        );
        assert_eq!(norm_mode("0644"), "644");
        assert_eq!(norm_mode("0000"), "0");
    }
}
