//! What scenarios a project has, and what is in one, without running anything:
//! the data behind `labctl scenarios` and `labctl show`. Reads files only (no
//! root, no lab, no connection).

use crate::inventory::Inventory;
use crate::scenario::Scenario;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One scenario file of a project.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The path as a user types it from the project folder (`scenarios/01-….yaml`).
    pub path: PathBuf,
    pub name: String,
    /// Its `description:` on one line (empty when it has none).
    pub description: String,
    /// Shipped (under `scenarios/`) or a local file at the project's top.
    pub shipped: bool,
    /// Why the file does not load, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether a top-level YAML file is meant as a scenario (it has `plays:`,
/// or is another scenario by `import:`).
fn looks_like_scenario(p: &Path) -> bool {
    std::fs::read_to_string(p)
        .map(|t| {
            t.lines()
                .any(|l| l.starts_with("plays:") || l.starts_with("import:"))
        })
        .unwrap_or(false)
}

fn entry(project: &Path, path: &Path, shipped: bool) -> Entry {
    let shown = path.strip_prefix(project).unwrap_or(path).to_path_buf();
    match Scenario::load(path, project) {
        Ok(s) => Entry {
            path: shown,
            name: s.name,
            description: s
                .description
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            shipped,
            error: None,
        },
        Err(e) => Entry {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: shown,
            description: String::new(),
            shipped,
            error: Some(
                format!("{e:#}")
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
        },
    }
}

/// The scenarios of the project in `project`: `scenarios/*.yaml` (shipped),
/// then the top folder's YAML files that have `plays:` (local), each with its
/// name and description; a file that does not load is listed with its error.
pub fn scenarios(project: &Path) -> Vec<Entry> {
    let mut out: Vec<Entry> = yaml_files(&project.join("scenarios"))
        .iter()
        .map(|p| entry(project, p, true))
        .collect();
    out.extend(
        yaml_files(project)
            .iter()
            .filter(|p| looks_like_scenario(p))
            .map(|p| entry(project, p, false)),
    );
    out
}

/// Every package the project's scenarios that this lab can run (their `requires:`) install (`package` tasks and
/// handlers with `state: present`, names without a template), sorted: the
/// package layer of a lab whose inventory names no `preinstall:`. A file that
/// does not load adds nothing (`configure` reports it when it is used).
pub fn packages(inv: &crate::inventory::Inventory) -> Vec<String> {
    let project = &inv.dir;
    let mut out: Vec<String> = Vec::new();
    for e in scenarios(project) {
        let Ok(s) = Scenario::load(&project.join(&e.path), project) else {
            continue;
        };
        // not those of a scenario this lab cannot run (06-08 on containers)
        if s.check_lab(inv).is_err() {
            continue;
        }
        for play in &s.plays {
            for t in play.tasks.iter().chain(play.handlers.values()) {
                let crate::ops::OpArgs::Package(a) = &t.op else {
                    continue;
                };
                if a.0.state != crate::ops::Presence::Present {
                    continue;
                }
                for n in a.names() {
                    if crate::inventory::valid_package_name(n) && !out.contains(n) {
                        out.push(n.clone());
                    }
                }
            }
        }
    }
    out.sort();
    out
}

/// One task or handler of a play, as `show` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskLine {
    pub name: String,
    /// The operation (`package`, `template`, …).
    pub op: &'static str,
    pub notify: Vec<String>,
    /// `file:line:col` where it is written.
    pub at: String,
}

/// One play, as `show` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PlayLine {
    pub name: String,
    /// The hosts as written (`nodos`, `all`, …).
    pub hosts: Vec<String>,
    /// The nodes they are in the inventory (when one was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,
    pub tasks: Vec<TaskLine>,
    pub handlers: Vec<TaskLine>,
}

/// One check of `verify:`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckLine {
    pub kind: &'static str,
    pub name: String,
}

/// What a scenario does, for reading: its plays (with the nodes they run on),
/// tasks, handlers and checks.
#[derive(Debug, Clone, Serialize)]
pub struct Outline {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    pub plays: Vec<PlayLine>,
    pub checks: Vec<CheckLine>,
}

fn task_line(t: &crate::scenario::Task) -> TaskLine {
    TaskLine {
        name: t.name.clone(),
        op: t.op.kind(),
        notify: t.notify.clone(),
        at: t.at.clone(),
    }
}

/// The outline of `scenario`. With an inventory, each play's hosts are
/// resolved to nodes and the checks' names rendered (as `verify --list`);
/// without, they are shown as written.
pub fn outline(scenario: &Scenario, inv: Option<&Inventory>) -> anyhow::Result<Outline> {
    let plays = scenario
        .plays
        .iter()
        .map(|p| PlayLine {
            name: p.name.clone(),
            hosts: p.hosts.clone(),
            nodes: inv.map(|inv| {
                let mut v: Vec<String> = Vec::new();
                for h in &p.hosts {
                    if let Ok(nodes) = inv.select(h) {
                        for n in nodes {
                            if !v.contains(&n.name) {
                                v.push(n.name.clone());
                            }
                        }
                    }
                }
                v
            }),
            tasks: p.tasks.iter().map(task_line).collect(),
            handlers: p.handlers.values().map(task_line).collect(),
        })
        .collect();
    let checks = match inv {
        Some(inv) => {
            let opts = crate::verify::VerifyOptions::default();
            if scenario.verify.is_empty() {
                Vec::new()
            } else {
                crate::verify::list_checks(inv, scenario, &opts)?
                    .into_iter()
                    .map(|(name, kind)| CheckLine { kind, name })
                    .collect()
            }
        }
        None => scenario
            .verify
            .iter()
            .map(|c| CheckLine {
                kind: c.spec.kind.key(),
                name: c.spec.name.clone().unwrap_or_else(|| c.at.clone()),
            })
            .collect(),
    };
    Ok(Outline {
        path: scenario.path.clone(),
        name: scenario.name.clone(),
        description: scenario
            .description
            .clone()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        plays,
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn lists_the_shipped_and_local_scenarios_with_descriptions() {
        let list = scenarios(repo());
        let paths: Vec<String> = list.iter().map(|e| e.path.display().to_string()).collect();
        assert!(
            paths.contains(&"scenarios/01-dns-round-robin.yaml".to_string()),
            "{paths:?}"
        );
        assert!(paths.contains(&"scenario.yaml".to_string()), "{paths:?}");
        // the inventory and the imported plays are not scenarios
        assert!(
            !paths
                .iter()
                .any(|p| p.contains("inventory") || p.contains("plays/")),
            "{paths:?}"
        );
        for e in &list {
            assert!(e.error.is_none(), "{e:?}");
            assert!(!e.description.is_empty(), "{e:?}");
        }
        let rr = list.iter().find(|e| e.name == "dns-round-robin").unwrap();
        assert!(rr.shipped && rr.description.starts_with("Load balancing with DNS alone"));
    }

    #[test]
    fn outlines_a_scenario_with_and_without_an_inventory() {
        let s =
            Scenario::load(&repo().join("scenarios/05-ip-failover-apache.yaml"), repo()).unwrap();
        let bare = outline(&s, None).unwrap();
        assert!(bare.plays.iter().all(|p| p.nodes.is_none()));
        let inv = crate::providers::load_inventory(&repo().join("inventory.yaml")).unwrap();
        let o = outline(&s, Some(&inv)).unwrap();
        let ops: Vec<&str> = o
            .plays
            .iter()
            .flat_map(|p| p.tasks.iter().map(|t| t.op))
            .collect();
        assert!(
            ops.contains(&"package") && ops.contains(&"cluster"),
            "{ops:?}"
        );
        let web = o
            .plays
            .iter()
            .find(|p| p.hosts == ["nodos"])
            .expect("a play on nodos");
        assert_eq!(
            web.nodes.as_deref(),
            Some(&["nodo1".to_string(), "nodo2".to_string()][..])
        );
        assert!(o.plays.iter().any(|p| !p.handlers.is_empty()));
        let kinds: Vec<&str> = o.checks.iter().map(|c| c.kind).collect();
        assert!(
            kinds.contains(&"failover") && kinds.contains(&"service_recovery"),
            "{kinds:?}"
        );
        assert_eq!(o.checks.len(), bare.checks.len());
    }
}
