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

/// An operation's arguments, as written in a task: what each operation file
/// gives the registry ([`operations!`]).
pub trait Operation: Sized {
    /// The kind of thing the task puts on a node under the name
    /// [`Operation::subject`] (`files`, `services`, …), for the note on
    /// switching scenarios (`runner::leftovers`); `None` for what has no name
    /// to list (a command).
    const MANAGES: Option<&'static str> = None;
    /// What the task acts on, as its summary reads after the operation's
    /// name (`/etc/hosts` in `copy /etc/hosts`): the summary is used when the
    /// task has no `name:`.
    fn subject(&self) -> String;
    /// Checks that need no variables (states, modes).
    fn validate(&self) -> Result<(), String>;
    /// What the task puts on a node, by kind and name (default: the subject,
    /// as [`Operation::MANAGES`]).
    fn manages(&self) -> Option<(&'static str, Vec<String>)> {
        Self::MANAGES.map(|kind| (kind, vec![self.subject()]))
    }
    /// Build the operation for one host, from arguments whose variables are
    /// filled in; input mistakes are [`crate::error::UserError`]s.
    fn prepare(self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Op>>;
}

/// The registry: from one list of `key => Variant`, the operation modules,
/// [`OpArgs`] (one variant each) and [`TaskFile`] (a task as written: its
/// common keys and one optional key per operation, so serde's derive reads
/// it with exact positions and refuses unknown keys).
macro_rules! operations {
    ($($key:ident => $variant:ident),* $(,)?) => {
        $(pub mod $key;)*

        /// The arguments of one task's operation, as written in the scenario.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        pub enum OpArgs {
            $($variant($key::Args),)*
        }

        impl OpArgs {
            /// Every operation's name, as written in a task.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($key)),*];

            pub fn kind(&self) -> &'static str {
                match self {
                    $(OpArgs::$variant(_) => stringify!($key),)*
                }
            }

            fn args(&self) -> &dyn DynOperation {
                match self {
                    $(OpArgs::$variant(a) => a,)*
                }
            }

            fn into_prepared(self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Op>> {
                match self {
                    $(OpArgs::$variant(a) => a.prepare(ctx),)*
                }
            }
        }

        /// A task as written: `name`, `notify`, `timeout` and one operation.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct TaskFile {
            pub name: Option<String>,
            #[serde(default)]
            pub notify: crate::yaml::OneOrMany,
            /// How long the task's change may run (`30s`, `10m`; default 10m).
            pub timeout: Option<String>,
            $(pub $key: Option<$key::Args>,)*
        }

        impl TaskFile {
            /// The operations this task names (one, unless it is a mistake).
            pub fn ops(&self) -> Vec<OpArgs> {
                let mut found = Vec::new();
                $(if let Some(a) = &self.$key {
                    found.push(OpArgs::$variant(a.clone()));
                })*
                found
            }
        }
    };
}

// Each operation is a file `ops/KEY.rs` whose `Args` implements [`Operation`].
operations! {
    package => Package,
    template => Template,
    copy => Copy,
    file => File,
    service => Service,
    user => User,
    command => Command,
    cluster => Cluster,
    line => Line,
}

pub mod content;
pub mod reach;

/// Whether a thing (a package, a user, a line) should be there: `state:` of
/// several operations.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    #[default]
    Present,
    Absent,
}

/// [`Operation`] without its by-value `prepare`, for `&dyn` use.
trait DynOperation {
    fn subject(&self) -> String;
    fn validate(&self) -> Result<(), String>;
    fn manages(&self) -> Option<(&'static str, Vec<String>)>;
}

impl<T: Operation> DynOperation for T {
    fn subject(&self) -> String {
        Operation::subject(self)
    }
    fn validate(&self) -> Result<(), String> {
        Operation::validate(self)
    }
    fn manages(&self) -> Option<(&'static str, Vec<String>)> {
        Operation::manages(self)
    }
}

/// What the runner knows while preparing a host's tasks.
pub struct PrepareCtx<'a> {
    pub templates: &'a Templates,
    /// The host's variables and facts.
    pub vars: &'a Value,
    /// The project folder (`files/` lives there).
    pub project_dir: &'a Path,
    /// The lab's state folder (`.labctl/`, or a class student's own): its generated keys live there.
    pub state_dir: &'a Path,
    /// Where the task was written (`file:line:col`), for messages.
    pub at: &'a str,
    /// Values that must never be shown.
    pub secrets: &'a std::sync::Mutex<crate::redact::Redactor>,
    /// The hosts this run finds unreachable (filled in while it runs).
    pub unreachable: &'a crate::ops::reach::Unreachable,
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
    /// What the node may be doing by itself that this op's kind manages (a
    /// cluster rejoining a node that came back and starting its resources),
    /// named, and a script that returns once that is over (bounded) and
    /// prints `waited MS` if it had to wait. The runner runs it once per host
    /// and name before the scenario's first play reads any state, so no task
    /// does (and reports) the work the node was about to do itself.
    fn settle(&self) -> Option<(&'static str, Script)> {
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
    /// Checks that need no variables (states, modes).
    pub fn validate(&self) -> Result<(), String> {
        self.args().validate()
    }

    /// A short description used when the task has no `name:`.
    pub fn summary(&self) -> String {
        format!("{} {}", self.kind(), self.args().subject())
    }

    /// What the task puts on a node (see [`Operation::manages`]).
    pub fn manages(&self) -> Option<(&'static str, Vec<String>)> {
        self.args().manages()
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
        rendered.into_prepared(ctx)
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
