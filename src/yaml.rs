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
        user(format!(
            "cannot read {what} {}: {e}\n  fix: check the path (see `labctl --help` for -i/--inventory)",
            path.display()
        ))
    })?;
    parse(&text, path)
}

/// Parse YAML text that came from `path` (used in error messages only).
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> anyhow::Result<T> {
    let opts = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options(text, opts).map_err(|e| {
        let shown = path.display().to_string();
        let msg = e.to_string().replace("<input>", &shown);
        let msg = msg.strip_prefix("error: ").unwrap_or(&msg).to_string();
        user(format!("{shown}: {msg}"))
    })
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
