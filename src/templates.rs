//! Templates: minijinja, strict about undefined variables, plus the variables and
//! facts each host sees.
//!
//! A typo in a template is an error naming the template and line, never a
//! silently empty config. Strings in task arguments are templates too
//! (`dest: "/etc/{{ name }}"`).

use crate::error::user;
use crate::inventory::{Inventory, Node};
use crate::serial::ZoneSerials;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The template environment of a project (`templates/` beside the inventory).
pub struct Templates {
    env: Environment<'static>,
    project: PathBuf,
    dir: PathBuf,
}

/// The work one rendering may do (minijinja's fuel: about one unit per
/// instruction). The shipped scenarios use well under 1% of it.
const TEMPLATE_FUEL: u64 = 50_000_000;
/// The largest text one rendering may produce.
const MAX_RENDERED: usize = 16 << 20;

/// Refuse a rendering larger than [`MAX_RENDERED`].
fn capped(out: String, place: &str, at: &str) -> anyhow::Result<String> {
    if out.len() > MAX_RENDERED {
        return Err(user(format!(
            "{place}: renders {} MiB (used by the task at {at}); labctl renders at most {} MiB\n  fix: bound the template's loops",
            out.len() >> 20,
            MAX_RENDERED >> 20
        )));
    }
    Ok(out)
}

impl Templates {
    /// The templates of the project `project` in its folder `dir` (`templates/`),
    /// with zone serials kept in memory only.
    pub fn new(project: &Path, dir: &Path) -> Templates {
        Templates::with_zone_serials(project, dir, ZoneSerials::in_memory())
    }

    /// The templates of the project `project` in its folder `dir` (`templates/`),
    /// whose `zone_serial` filter keeps the project's serials (see
    /// [`crate::serial`]). A template, or a template it includes, resolves
    /// inside the project after following links, or is refused.
    pub fn with_zone_serials(project: &Path, dir: &Path, serials: ZoneSerials) -> Templates {
        let mut env = Environment::new();
        let (root, base) = (project.to_path_buf(), dir.to_path_buf());
        env.set_loader(
            move |name: &str| -> Result<Option<String>, minijinja::Error> {
                let path = crate::project::resolve_inside(&root, &base, name, "template").map_err(
                    |e| {
                        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
                    },
                )?;
                match std::fs::read_to_string(&path) {
                    Ok(text) => Ok(Some(text)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("cannot read {}: {e}", path.display()),
                    )),
                }
            },
        );
        // a template loop has a bound: this much work, this much output
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // name the undefined variable in errors in release builds too (the
        // default follows debug_assertions)
        env.set_debug(true);
        let mut syntax = minijinja::syntax::SyntaxConfig::builder();
        syntax.keep_trailing_newline(true);
        // like Ansible: a block tag's own newline is not output
        syntax.trim_blocks(true);
        if let Ok(s) = syntax.build() {
            env.set_syntax(s);
        }
        env.add_filter("reverse_ptr", reverse_ptr);
        env.add_filter("last_octet", last_octet);
        env.add_filter("reverse_zone", reverse_zone);
        env.add_filter("conf_word", conf_word);
        let serials = Arc::new(serials);
        env.add_filter(
            "zone_serial",
            move |state: &minijinja::State, records: String, zone: Option<String>| {
                zone_serial(&serials, state, &records, zone)
            },
        );
        Templates {
            env,
            project: project.to_path_buf(),
            dir: dir.to_path_buf(),
        }
    }

    /// Render `templates/<name>` for a host. `at` says which task asked for it.
    pub fn render_file(&self, name: &str, vars: &Value, at: &str) -> anyhow::Result<String> {
        let path = crate::project::resolve_inside(
            &self.project,
            &self.dir,
            name,
            &format!("{at}: template"),
        )?;
        if !path.is_file() {
            return Err(user(format!(
                "{at}: template `{name}` not found (looked for {}){}\n  fix: create the file or correct `src:` (relative to templates/)",
                path.display(),
                crate::suggest::file(&path)
                    .map(|p| format!(
                        " (did you mean `src: {}`?)",
                        p.strip_prefix(&self.dir).unwrap_or(&p).display()
                    ))
                    .unwrap_or_default()
            )));
        }
        let fail = |e: minijinja::Error| template_error(&e, at, &self.dir);
        let tmpl = self.env.get_template(name).map_err(fail)?;
        let out = tmpl.render(vars).map_err(fail)?;
        capped(out, &format!("templates/{name}"), at)
    }

    /// Render a string that came from a scenario (its name in errors is `at`).
    pub fn render_str(&self, s: &str, vars: &Value, at: &str) -> anyhow::Result<String> {
        if !s.contains("{{") && !s.contains("{%") {
            return Ok(s.to_string());
        }
        let out = self
            .env
            .render_named_str(at, s, vars)
            .map_err(|e| template_error(&e, at, &self.dir))?;
        capped(out, at, at)
    }

    /// Render every string inside `args` (any serde type) for a host.
    pub fn render_args<T: Serialize + DeserializeOwned>(
        &self,
        args: &T,
        vars: &Value,
        at: &str,
    ) -> anyhow::Result<T> {
        let mut v = serde_json::to_value(args)?;
        self.render_json(&mut v, vars, at)?;
        Ok(serde_json::from_value(v)?)
    }

    fn render_json(&self, v: &mut serde_json::Value, vars: &Value, at: &str) -> anyhow::Result<()> {
        match v {
            serde_json::Value::String(s) => *s = self.render_str(s, vars, at)?,
            serde_json::Value::Array(a) => {
                for x in a {
                    self.render_json(x, vars, at)?;
                }
            }
            serde_json::Value::Object(m) => {
                for x in m.values_mut() {
                    self.render_json(x, vars, at)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A template error as a user error, in the house style:
/// `templates/NAME:LINE:COL: what (used by the task at FILE:LINE:COL)` then `fix: how`.
/// For a string of the scenario (a task argument, a variable) the place is `at`.
fn template_error(e: &minijinja::Error, at: &str, dir: &Path) -> anyhow::Error {
    let what = match e.kind() {
        minijinja::ErrorKind::UndefinedError => {
            "define the variable (inventory `vars:`, `group_vars:`, the node's `vars:`, or the scenario's `vars:`), or use `| default(...)`"
        }
        minijinja::ErrorKind::SyntaxError => {
            "correct the template syntax (`{{ var }}`, `{% if x %}...{% endif %}`, `{% for x in xs %}...{% endfor %}`)"
        }
        minijinja::ErrorKind::UnknownFilter => "use a filter minijinja knows (e.g. default, upper, join) or remove it",
        minijinja::ErrorKind::UnknownFunction => "use a function minijinja knows (e.g. range) or remove the call",
        minijinja::ErrorKind::TemplateNotFound => {
            "create the included template under templates/ or correct its name"
        }
        minijinja::ErrorKind::OutOfFuel => {
            "the template does too much work (an unbounded loop?): bound its loops"
        }
        minijinja::ErrorKind::InvalidOperation if e.to_string().contains("inside the project") => {
            "copy the file into the project's templates/ and name it relative to templates/"
        }
        _ => "correct the template at that place",
    };
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    let place = match e.name() {
        // a template file: name it as the user sees it, with line and column
        Some(name) if name != at => {
            let col = e
                .range()
                .zip(std::fs::read_to_string(dir.join(name)).ok())
                .and_then(|(r, src)| column_of(&src, r.start));
            let pos = match (e.line(), col) {
                (Some(l), Some(c)) => format!(":{l}:{c}"),
                (Some(l), None) => format!(":{l}"),
                _ => String::new(),
            };
            format!("templates/{name}{pos}")
        }
        _ => at.to_string(),
    };
    let origin = if place.starts_with("templates/") {
        format!(" (used by the task at {at})")
    } else {
        String::new()
    };
    user(format!(
        "{place}: {}{detail}{origin}\n  fix: {what}",
        e.kind()
    ))
}

/// The 1-based column (in characters) of byte offset `at` in `src`.
fn column_of(src: &str, at: usize) -> Option<usize> {
    let before = src.get(..at)?;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    Some(before[line_start..].chars().count() + 1)
}

/// `10.1.1.103` → `103.1.1.10.in-addr.arpa`.
fn reverse_ptr(addr: String) -> String {
    let mut p: Vec<&str> = addr.split('.').collect();
    p.reverse();
    format!("{}.in-addr.arpa", p.join("."))
}

/// A value written as one word of a configuration file another program
/// reads (corosync's `key: value`): letters, digits, `_`, `.`, `-` only, so a
/// variable can never add a line, a section or a comment there.
fn conf_word(v: minijinja::Value) -> Result<String, minijinja::Error> {
    let s = v.to_string();
    if !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        Ok(s)
    } else {
        Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!(
                "{s:?} cannot be written into this configuration file: only letters, digits, `_`, `.` and `-`, up to 64 characters"
            ),
        ))
    }
}

/// `10.1.1.103` → `103`.
fn last_octet(addr: String) -> String {
    addr.rsplit('.').next().unwrap_or_default().to_string()
}

/// `10.1.1.0/24` → `1.1.10.in-addr.arpa` (whole octets of the network part).
fn reverse_zone(subnet: String) -> String {
    let (addr, prefix) = subnet.split_once('/').unwrap_or((&subnet, "24"));
    let octets = (prefix.parse::<usize>().unwrap_or(24) / 8).clamp(1, 3);
    let mut p: Vec<&str> = addr.split('.').take(octets).collect();
    p.reverse();
    format!("{}.in-addr.arpa", p.join("."))
}

/// `{{ records | zone_serial(zone) }}`: a zone serial that stays the same
/// while the records (the text it filters) do not change and only ever
/// increases when they do ([`crate::serial`]). Serials are kept per host and
/// zone (`zone`, by default the template's name).
fn zone_serial(
    serials: &ZoneSerials,
    state: &minijinja::State,
    records: &str,
    zone: Option<String>,
) -> Result<u32, minijinja::Error> {
    let host = state
        .lookup("inventory_hostname")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let zone = zone.unwrap_or_else(|| state.name().to_string());
    serials
        .serial(&format!("{host}/{zone}"), records)
        .map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("{e:#}"))
        })
}

fn node_fact(n: &Node) -> Value {
    Value::from(minijinja::value::Serde(serde_json::json!({
        "name": n.name,
        "address": n.address.to_string(),
        "groups": n.groups,
    })))
}

/// The facts every host of an inventory shares (`nodes`, `groups`, `lab`),
/// built once per run: values are shared, not copied, so preparing N hosts
/// costs N, not N².
#[derive(Debug, Clone)]
pub struct Facts {
    nodes: Value,
    groups: Value,
    lab: Value,
    node: BTreeMap<String, Value>,
}

impl Facts {
    pub fn of(inv: &Inventory) -> Facts {
        let node: BTreeMap<String, Value> = inv
            .nodes
            .iter()
            .map(|n| (n.name.clone(), node_fact(n)))
            .collect();
        let nic = inv.nic();
        let lab = match &inv.network {
            Some(net) => serde_json::json!({
                "name": inv.lab,
                "nic": nic,
                "subnet": net.subnet.to_string(),
                "network": net.subnet.network.to_string(),
                "prefix": net.subnet.prefix,
                "netmask": net.subnet.netmask().to_string(),
                "gateway": net.gateway.to_string(),
            }),
            None => serde_json::json!({"name": inv.lab, "nic": nic}),
        };
        Facts {
            nodes: Value::from(node.clone()),
            groups: Value::from(minijinja::value::Serde(inv.groups())),
            lab: Value::from(minijinja::value::Serde(lab)),
            node,
        }
    }
}

/// Every variable and fact a host sees, lowest precedence first:
/// inventory `vars` < `group_vars` < the node's `vars` < scenario `vars` < play `vars`,
/// then the facts `inventory_hostname`, `node`, `nodes`, `groups`, `lab`.
/// String variables may use other variables (`www: "www.{{ domain }}"`).
pub fn host_vars(
    inv: &Inventory,
    facts: &Facts,
    node: &Node,
    scenario_vars: &BTreeMap<String, Value>,
    play_vars: &BTreeMap<String, Value>,
    templates: &Templates,
) -> anyhow::Result<Value> {
    let mut m: BTreeMap<String, Value> = BTreeMap::new();
    m.extend(inv.vars.clone());
    if let Some(all) = inv.group_vars.get("all") {
        m.extend(all.clone());
    }
    for g in &node.groups {
        if let Some(gv) = inv.group_vars.get(g) {
            m.extend(gv.clone());
        }
    }
    m.extend(node.vars.clone());
    m.extend(scenario_vars.clone());
    m.extend(play_vars.clone());

    m.insert("inventory_hostname".into(), Value::from(node.name.clone()));
    m.insert(
        "node".into(),
        facts
            .node
            .get(&node.name)
            .cloned()
            .unwrap_or_else(|| node_fact(node)),
    );
    m.insert("nodes".into(), facts.nodes.clone());
    m.insert("groups".into(), facts.groups.clone());
    m.insert("lab".into(), facts.lab.clone());

    // one pass of variable-in-variable rendering (e.g. `www: "www.{{ domain }}"`),
    // also inside lists and maps
    let ctx = Value::from(m.clone());
    for (k, v) in m.iter_mut() {
        if v.is_undefined()
            || v.is_none()
            || v.is_number()
            || v.kind() == minijinja::value::ValueKind::Bool
        {
            continue;
        }
        let text = v.to_string();
        if text.contains("{{") || text.contains("{%") {
            let at = format!("variable `{k}`");
            if let Some(s) = v.as_str() {
                *v = Value::from(templates.render_str(s, &ctx, &at)?);
            } else {
                let json = serde_json::to_value(&*v)?;
                let rendered: serde_json::Value = templates.render_args(&json, &ctx, &at)?;
                *v = Value::from(minijinja::value::Serde(rendered));
            }
        }
    }
    Ok(Value::from(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_undefined_names_template_and_line() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.j2"), "line1\n{{ nope }}\n").unwrap();
        let t = Templates::new(d.path(), d.path());
        let e = t
            .render_file(
                "a.j2",
                &Value::from(BTreeMap::<String, Value>::new()),
                "s.yaml:3:5",
            )
            .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("a.j2:2") && m.contains("undefined"), "{m}");
        assert_eq!(crate::error::exit_code(&e), 2);
    }

    #[test]
    fn a_config_word_is_one_word() {
        assert_eq!(conf_word("lab-1.x_y".into()).unwrap(), "lab-1.x_y");
        assert_eq!(conf_word(1000.into()).unwrap(), "1000");
        for bad in [
            "",
            "a b",
            "lab\n}\ntotem {",
            "a#b",
            "a:b",
            "x\"y",
            "a{",
            "<&]]>",
        ] {
            assert!(conf_word(bad.into()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keeps_trailing_newline_and_filters() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("a.j2"),
            "{{ ip | reverse_ptr }} {{ ip | last_octet }}\n",
        )
        .unwrap();
        let t = Templates::new(d.path(), d.path());
        let mut m = BTreeMap::new();
        m.insert("ip".to_string(), Value::from("10.1.1.103"));
        let out = t.render_file("a.j2", &Value::from(m), "x").unwrap();
        assert_eq!(out, "103.1.1.10.in-addr.arpa 103\n");
    }
}
