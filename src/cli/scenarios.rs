//! `labctl scenarios`: the project's scenarios and what each one is for.

use super::Global;
use clap::Args;

/// List the scenarios of this project (shipped and local) with their description.
#[derive(Debug, Args)]
#[command(after_help = "\
Lists the shipped scenarios (scenarios/*.yaml in the project folder, the folder of the
inventory) and the local scenario files at the project's top (YAML files with `plays:`),
each with its `name:` and `description:`. Reads files only: no root, no lab needed.

Examples:
  labctl scenarios
  labctl scenarios --json
  labctl show scenarios/02-dns-delegation.yaml     # what one of them does")]
pub struct ScenariosArgs {}

pub fn run(_a: ScenariosArgs, g: &Global) -> anyhow::Result<i32> {
    let project = super::project_dir(g);
    let list = crate::catalog::scenarios(&project);
    if g.json {
        println!("{}", serde_json::json!({ "scenarios": list }));
        return Ok(0);
    }
    if list.is_empty() {
        eprintln!(
            "no scenario files in {} (scenarios/*.yaml, or *.yaml with `plays:`)",
            project.display()
        );
        return Ok(0);
    }
    let w = list
        .iter()
        .map(|e| e.path.display().to_string().len())
        .max()
        .unwrap_or(0);
    for (title, shipped) in [("shipped (scenarios/)", true), ("local", false)] {
        let part: Vec<_> = list.iter().filter(|e| e.shipped == shipped).collect();
        if part.is_empty() {
            continue;
        }
        say!("{title}:");
        for e in part {
            let path = e.path.display().to_string();
            match &e.error {
                Some(err) => say!("  {path:w$}  (does not load: {err})"),
                None => say!("  {path:w$}  {}: {}", e.name, e.description),
            }
        }
    }
    Ok(0)
}
