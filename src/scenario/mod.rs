//! `scenario.yaml`: what to converge on the nodes, and how to prove it works.
//!
//! ```yaml
//! name: dns-round-robin
//! vars: {ttl: 60}
//! plays:
//!   - name: DNS server
//!     hosts: servidor_dns          # a node, a group, `all`, or a list
//!     tasks:
//!       - package: [bind9]
//!       - name: zone file
//!         template: {src: bind/db.zone.j2, dest: /var/cache/bind/db.example.com, mode: "0644"}
//!         notify: restart bind9
//!     handlers:
//!       restart bind9: {service: {name: named, state: restarted}}
//! verify:
//!   - dns: {server: dns, name: "www.{{ domain }}", expect: [10.1.1.101, 10.1.1.102]}
//! ```

use crate::ops::{OpArgs, TaskFile};
use crate::user_bail;
use crate::yaml::{self, OneOrMany};
use indexmap::IndexMap;
use minijinja::Value;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod requires;

/// The one operation `task` names.
fn one_op(task: &TaskFile) -> Result<OpArgs, String> {
    let mut found = task.ops();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!("names no operation\n  fix: add one of: {}", OpArgs::NAMES.join(", "))),
        _ => Err(format!(
            "names {} operations ({}); a task does exactly one thing\n  fix: split it into one task per operation",
            found.len(),
            found.iter().map(|o| o.kind()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// A task ready to plan: where it was written, its name, operation and handlers to notify.
#[derive(Debug, Clone)]
pub struct Task {
    /// `file:line:col` of the task, for error messages.
    pub at: String,
    pub name: String,
    pub op: OpArgs,
    pub notify: Vec<String>,
    /// `timeout:` of the task, if it set one.
    pub timeout: Option<std::time::Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlayFile {
    name: Option<String>,
    /// Plays from another file (a YAML list of plays), relative to this file's folder.
    import: Option<String>,
    hosts: Option<Spanned<OneOrMany>>,
    #[serde(default)]
    vars: BTreeMap<String, Value>,
    #[serde(default)]
    tasks: Vec<Spanned<TaskFile>>,
    #[serde(default)]
    handlers: IndexMap<String, Spanned<TaskFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    /// The whole scenario is another file (relative to this file's folder).
    import: Option<Spanned<String>>,
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, Value>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    plays: Vec<Spanned<PlayFile>>,
    #[serde(default)]
    verify: Vec<Spanned<crate::checks::CheckSpec>>,
    /// The lab it needs (see [`requires`]).
    requires: Option<Spanned<requires::Requires>>,
}

/// One play: a host pattern, its variables, tasks and handlers.
#[derive(Debug, Clone)]
pub struct Play {
    pub at: String,
    pub name: String,
    pub hosts: Vec<String>,
    pub vars: BTreeMap<String, Value>,
    pub tasks: Vec<Task>,
    pub handlers: IndexMap<String, Task>,
}

/// A check of the `verify:` section, with where it was written.
#[derive(Debug, Clone)]
pub struct Check {
    pub at: String,
    pub spec: crate::checks::CheckSpec,
}

/// A loaded scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub path: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub vars: BTreeMap<String, Value>,
    pub secrets: Vec<String>,
    pub plays: Vec<Play>,
    pub verify: Vec<Check>,
    /// `requires:` and where it was written.
    pub requires: Option<(String, requires::Requires)>,
}

fn task_from(path: &Path, t: &Spanned<TaskFile>, what: &str) -> anyhow::Result<Task> {
    let at = yaml::at(path, &t.referenced);
    let op = one_op(&t.value)
        .and_then(|op| op.validate().map(|_| op))
        .map_err(|m| {
            // every input error carries a fix; a message without one gets a pointer
            let fix = if m.contains("\n  fix:") {
                ""
            } else {
                "\n  fix: correct the task's arguments (see the examples in README.md and scenarios/)"
            };
            crate::error::user(format!("{at}: {what}: {m}{fix}"))
        })?;
    let name = t.value.name.clone().unwrap_or_else(|| op.summary());
    let timeout = match &t.value.timeout {
        None => None,
        Some(v) => match crate::duration::Dur::parse(v) {
            Ok(d) if d.0 >= std::time::Duration::from_secs(1) => Some(d.0),
            Ok(_) => user_bail!(
                "{at}: {what}: timeout `{v}` is shorter than a second\n  fix: e.g. timeout: 30s"
            ),
            Err(m) => {
                user_bail!("{at}: {what}: timeout: {m}\n  fix: e.g. timeout: 30s or timeout: 20m")
            }
        },
    };
    Ok(Task {
        at,
        name,
        op,
        notify: t.value.notify.0.clone(),
        timeout,
    })
}

/// The file an `import:` of `path` (written at `at`) names: inside the
/// project folder `project`, and existing.
fn import_target(path: &Path, project: &Path, imp: &str, at: &str) -> anyhow::Result<PathBuf> {
    let base = path.parent().unwrap_or(Path::new("."));
    let target = crate::project::resolve_inside(project, base, imp, &format!("{at}: import"))?;
    if !target.is_file() {
        user_bail!(
            "{at}: import: {} does not exist{}\n  fix: write the path relative to the folder of {}",
            target.display(),
            crate::suggest::file_hint(&target),
            path.display()
        );
    }
    Ok(target)
}

/// Turn the plays of `path` into [`Play`]s, following `import:` (at most 8
/// deep, each inside the project folder `project`).
fn load_plays(
    path: &Path,
    project: &Path,
    list: &[Spanned<PlayFile>],
    plays: &mut Vec<Play>,
    depth: usize,
) -> anyhow::Result<()> {
    for (i, p) in list.iter().enumerate() {
        let at = yaml::at(path, &p.referenced);
        let pf = &p.value;
        if let Some(imp) = &pf.import {
            if pf.name.is_some()
                || pf.hosts.is_some()
                || !pf.vars.is_empty()
                || !pf.tasks.is_empty()
                || !pf.handlers.is_empty()
            {
                user_bail!("{at}: a play with `import:` has no other keys\n  fix: put the other keys in the imported file");
            }
            if depth >= 8 {
                user_bail!("{at}: imports nested more than 8 deep (a loop?)\n  fix: check the `import:` chain");
            }
            let target = import_target(path, project, imp, &at)?;
            let sub: Vec<Spanned<PlayFile>> = yaml::load(&target, "imported plays")?;
            load_plays(&target, project, &sub, plays, depth + 1)?;
            continue;
        }
        let Some(hosts) = &pf.hosts else {
            user_bail!(
                "{at}: play {} has no `hosts:`\n  fix: name a node, a group or `all`",
                i + 1
            );
        };
        if hosts.value.0.is_empty() {
            user_bail!(
                "{at}: play {} has an empty `hosts:`\n  fix: name a node, a group or `all`",
                i + 1
            );
        }
        let mut handlers = IndexMap::new();
        for (hname, h) in &pf.handlers {
            let task = task_from(path, h, &format!("handler `{hname}`"))?;
            if !task.notify.is_empty() {
                user_bail!("{}: handler `{hname}` has `notify:`; handlers cannot notify other handlers\n  fix: remove it", task.at);
            }
            handlers.insert(
                hname.clone(),
                Task {
                    name: hname.clone(),
                    ..task
                },
            );
        }
        let mut tasks = Vec::new();
        for (j, t) in pf.tasks.iter().enumerate() {
            let task = task_from(path, t, &format!("task {}", j + 1))?;
            for n in &task.notify {
                if !handlers.contains_key(n) {
                    let known: Vec<&str> = handlers.keys().map(String::as_str).collect();
                    user_bail!(
                        "{}: task `{}` notifies `{n}`, which is not a handler of this play{}\n  fix: add `{n}:` under the play's `handlers:` (known: {})",
                        task.at,
                        task.name,
                        crate::suggest::hint(n, &known),
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    );
                }
            }
            tasks.push(task);
        }
        plays.push(Play {
            at: yaml::at(path, &hosts.referenced),
            name: pf.name.clone().unwrap_or_else(|| hosts.value.0.join(",")),
            hosts: hosts.value.0.clone(),
            vars: pf.vars.clone(),
            tasks,
            handlers,
        });
    }
    Ok(())
}

impl Scenario {
    /// Load the scenario file `path` of the project in folder `project` (the
    /// inventory's): every file it imports lies inside that folder. A scenario
    /// from outside the project (say labctl's `scenarios/04-ip-failover.yaml`
    /// named from a Vagrant project) brings its own files: its imports lie
    /// inside its own folder.
    pub fn load(path: &Path, project: &Path) -> anyhow::Result<Scenario> {
        let project = &Self::root(path, project);
        if !path.exists() {
            if let Some(meant) = crate::suggest::file(path) {
                user_bail!(
                    "{}: no such scenario file (did you mean `{}`?)\n  fix: give `{}`",
                    path.display(),
                    meant.display(),
                    meant.display()
                );
            }
            user_bail!(
                "{}: no such scenario file\n  fix: give the path of a scenario, e.g. `labctl configure scenario.yaml` or one under scenarios/ (`labctl scenarios` lists them)",
                path.display()
            );
        }
        Scenario::load_file(path, project, 0)
    }

    /// The folder a scenario's imports must lie in: the project's, or the
    /// scenario's own folder when the file is not inside the project.
    /// Refuse a lab that lacks what the scenario's `requires:` asks for.
    pub fn check_lab(&self, inv: &crate::inventory::Inventory) -> anyhow::Result<()> {
        match &self.requires {
            Some((at, r)) => r.check(inv, at),
            None => Ok(()),
        }
    }

    pub fn root(path: &Path, project: &Path) -> std::path::PathBuf {
        let file = crate::project::normalize(path);
        let project = crate::project::normalize(project);
        if file.starts_with(&project) {
            return project;
        }
        file.parent().map(Path::to_path_buf).unwrap_or(project)
    }

    fn load_file(path: &Path, project: &Path, depth: usize) -> anyhow::Result<Scenario> {
        // `requires: {provider: …}` names a registered provider
        let file: ScenarioFile =
            crate::inventory::with_provider_names(&crate::providers::names(), || {
                yaml::load(path, "scenario")
            })?;
        if let Some(imp) = &file.import {
            let at = yaml::at(path, &imp.referenced);
            if file.name.is_some()
                || file.description.is_some()
                || !file.vars.is_empty()
                || !file.secrets.is_empty()
                || !file.plays.is_empty()
                || !file.verify.is_empty()
                || file.requires.is_some()
            {
                user_bail!("{at}: a scenario with `import:` has no other keys (it is the imported scenario)\n  fix: put the other keys in {}, or remove `import:`", imp.value);
            }
            if depth >= 8 {
                user_bail!("{at}: imports nested more than 8 deep (a loop?)\n  fix: check the `import:` chain");
            }
            let target = import_target(path, project, &imp.value, &at)?;
            return Scenario::load_file(&target, project, depth + 1);
        }
        let mut plays = Vec::new();
        load_plays(path, project, &file.plays, &mut plays, 0)?;
        if plays.is_empty() && file.verify.is_empty() {
            user_bail!(
                "{}: the scenario has no plays and no checks, so there is nothing to converge or verify\n  fix: add `plays:` (hosts and tasks) and `verify:` checks; see scenarios/ for examples",
                path.display()
            );
        }
        let verify = file
            .verify
            .iter()
            .map(|c| Check {
                at: yaml::at(path, &c.referenced),
                spec: c.value.clone(),
            })
            .collect();
        let name = file.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Ok(Scenario {
            path: path.to_path_buf(),
            name,
            description: file.description,
            vars: file.vars,
            secrets: file.secrets,
            plays,
            verify,
            requires: file
                .requires
                .map(|r| (yaml::at(path, &r.referenced), r.value)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Scenario;

    fn write(p: &std::path::Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    const PLAY: &str = "- name: p\n  hosts: all\n  tasks:\n    - command: {cmd: 'true'}\n";

    #[test]
    fn a_scenario_outside_the_project_reads_its_imports_from_its_own_folder() {
        let d = tempfile::tempdir().unwrap();
        let project = d.path().join("04-HA-IPFailover");
        let shipped = d.path().join("labctl/scenarios");
        std::fs::create_dir_all(&project).unwrap();
        write(&shipped.join("plays/base.yaml"), PLAY);
        let s = shipped.join("04.yaml");
        write(&s, "name: x\nplays:\n  - import: plays/base.yaml\n");
        assert_eq!(Scenario::root(&s, &project), shipped);
        let sc = Scenario::load(&s, &project).unwrap();
        assert_eq!(sc.plays.len(), 1);

        // inside the project, imports stay inside the project
        write(
            &project.join("scenario.yaml"),
            "name: y\nplays:\n  - import: ../labctl/scenarios/plays/base.yaml\n",
        );
        assert_eq!(
            Scenario::root(&project.join("scenario.yaml"), &project),
            project
        );
        let e = Scenario::load(&project.join("scenario.yaml"), &project).unwrap_err();
        assert!(format!("{e:#}").contains("inside the project"), "{e:#}");
        // and a shipped scenario cannot reach above its own folder
        write(
            &s,
            "name: x\nplays:\n  - import: ../../04-HA-IPFailover/p.yaml\n",
        );
        write(&project.join("p.yaml"), PLAY);
        assert!(Scenario::load(&s, &project).is_err());
    }
}
