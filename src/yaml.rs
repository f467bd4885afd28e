//! Reading YAML files with positions in every error.
//!
//! `serde-saphyr` with strict YAML 1.2 booleans (so `NO` stays a string) and
//! errors that name the file, line and column with a snippet.

use crate::error::user;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Read and parse `path`; every failure is a user error naming the file.
pub fn load<T: DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let fix = if what == "inventory" {
            "run labctl in the lab's folder (where inventory.yaml is) or name the file with -i/--inventory"
        } else {
            "give the path of a readable YAML file"
        };
        match crate::suggest::file(path) {
            Some(meant) if e.kind() == std::io::ErrorKind::NotFound => user(format!(
                "{}: cannot read this {what} file: {e} (did you mean `{}`?)\n  fix: give `{}`",
                path.display(),
                meant.display(),
                meant.display()
            )),
            _ => user(format!(
                "{}: cannot read this {what} file: {e}\n  fix: {fix}",
                path.display()
            )),
        }
    })?;
    parse(&text, path)
}

/// Parse YAML text that came from `path` (used in error messages only).
///
/// Errors read `file:line:col: what`, then the lines around it, then `fix: how`.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> anyhow::Result<T> {
    let opts = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options(text, opts).map_err(|e| {
        let shown = path.display().to_string();
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return user(format!(
                "{shown}: the file is empty\n  fix: write its content (see the examples in README.md)"
            ));
        }
        let plain = e.without_snippet().to_string();
        let (place, msg) = match e.location() {
            Some(l) if l.line() > 0 => {
                let suffix = format!(" at line {}, column {}", l.line(), l.column());
                let msg = plain.strip_suffix(&suffix).unwrap_or(&plain).to_string();
                (format!("{shown}:{}:{}", l.line(), l.column()), msg)
            }
            _ => (shown.clone(), plain),
        };
        let (said, fix) = explain(&msg);
        // the snippet: every line of the rendered error after its first
        let rendered = e.to_string().replace("<input>", &shown);
        let snippet: String = rendered
            .lines()
            .skip(1)
            .filter(|l| !l.trim_start().starts_with("-->"))
            .map(|l| format!("{}\n", l.replace(&msg, &said)))
            .collect();
        user(format!("{place}: {said}\n{snippet}  fix: {fix}"))
    })
}

/// The parser's message in the user's words, and how to fix it.
fn explain(msg: &str) -> (String, String) {
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return (
            format!("duplicate key `{key}`"),
            format!("a key appears once per map: rename or remove one `{key}`"),
        );
    }
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let (key, allowed) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let allowed = allowed
            .trim_start_matches("one of ")
            .trim_start_matches("a ")
            .to_string();
        let names = listed(&allowed);
        if let Some(meant) = crate::suggest::closest(key.trim_matches('`'), &names) {
            return (
                format!("unknown field {key} (did you mean `{meant}`?)"),
                format!("rename {key} to `{meant}`; allowed here: {allowed}"),
            );
        }
        return (
            format!("unknown field {key}"),
            if allowed.is_empty() {
                format!("remove {key}")
            } else {
                format!("rename or remove {key}; allowed here: {allowed}")
            },
        );
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let (value, allowed) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let allowed = allowed.trim_start_matches("one of ");
        if let Some(meant) = crate::suggest::closest(value.trim_matches('`'), &listed(allowed)) {
            return (
                format!("unknown value {value} (did you mean `{meant}`?)"),
                format!("write `{meant}`; allowed here: {allowed}"),
            );
        }
        return (
            format!("unknown value {value}"),
            format!("use one of: {allowed}"),
        );
    }
    if let Some(field) = msg.strip_prefix("missing field ") {
        return (
            format!("missing field {field}"),
            format!("add {field} here"),
        );
    }
    if msg.starts_with("expected sequence start") {
        return (
            "expected a list here".into(),
            "write a list: `[a, b]` or one `- item` per line".into(),
        );
    }
    if msg.starts_with("expected mapping start") {
        return (
            "expected a map here".into(),
            "write a map: `{key: value}` or one `key: value` per line".into(),
        );
    }
    if msg.starts_with("invalid u16") {
        return (
            "expected a whole number from 0 to 65535".into(),
            "write a number here (e.g. port: 22)".into(),
        );
    }
    let m = msg.to_ascii_lowercase();
    let fix = if m.contains("expected sequence") {
        "this value is a list: write `[a, b]` or one `- item` per line"
    } else if m.contains("expected mapping") || m.contains("expected a map") {
        "this value is a map: write `{key: value}` or one `key: value` per line"
    } else if m.contains("invalid u") || m.contains("invalid i") || m.contains("integer") {
        "write a whole number here (e.g. port: 22)"
    } else if m.contains("expected string") {
        "write a single value here (quote it if it has special characters: \"...\")"
    } else if m.contains("tab") {
        "indent with spaces, not tabs"
    } else if m.contains("invalid type") || m.contains("expected") {
        "give this key a value of the kind it expects (see the examples in README.md)"
    } else {
        "correct the YAML at that place (indent with spaces; close brackets, braces and quotes)"
    };
    (msg.to_string(), fix.to_string())
}

/// The names of a serde "expected" list (`a, b` or `` `a`, `b` `` or `a or b`).
fn listed(allowed: &str) -> Vec<String> {
    allowed
        .split([',', ' '])
        .map(|w| w.trim().trim_matches('`'))
        .filter(|w| !w.is_empty() && *w != "or")
        .map(str::to_string)
        .collect()
}

/// `file:line:col` for a spanned value, for messages about valid YAML with a wrong value.
pub fn at(path: &Path, loc: &serde_saphyr::Location) -> String {
    if loc.line() == 0 {
        path.display().to_string()
    } else {
        format!("{}:{}:{}", path.display(), loc.line(), loc.column())
    }
}

/// A value written either alone or as a list: `notify: x` or `notify: [x, y]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> serde::Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = a.next_element::<String>()? {
                    v.push(s);
                }
                Ok(OneOrMany(v))
            }
        }
        d.deserialize_any(V)
    }
}
