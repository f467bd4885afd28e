//! `file_exists`: a file is on a node, like `ssh nodo1 test -e PATH`.
//!
//! ```yaml
//! - file_exists: {on: nodo1, path: /var/www/html/info.txt}
//! - file_exists: {on: nodo2, path: /etc/motd, contains: "Welcome"}
//! ```
//!
//! Over SSH as root: the path must exist and, with `contains:`, hold that text.

use super::{Check, Ctx, Outcome, Prepare, PrepareCtx};
use crate::inventory::Node;
use crate::sh;
use crate::shell::Script;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The `file_exists:` check as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The node to look on.
    pub on: String,
    /// An absolute path.
    pub path: String,
    /// Text the file must hold.
    pub contains: Option<String>,
}

/// A prepared `file_exists` check.
#[derive(Debug)]
pub struct Plan {
    node: Node,
    path: String,
    contains: Option<String>,
}

impl Prepare for Spec {
    fn prepare(&self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Check>> {
        let node = ctx.node("file_exists: on", &self.on)?;
        let path = self.path.trim();
        if !path.starts_with('/') {
            return Err(ctx.err(format!(
                "file_exists: `path: {path}` is not an absolute path\n  fix: e.g. path: /var/www/html/info.txt"
            )));
        }
        Ok(Box::new(Plan {
            node,
            path: path.to_string(),
            contains: self.contains.clone(),
        }))
    }
}

impl Plan {
    /// Exit 0 when all is well, 3 when the file is missing, 4 when it lacks the text.
    fn script(&self) -> Script {
        let mut s = sh!("test -e {} || exit 3", self.path);
        if let Some(text) = &self.contains {
            s.line(sh!("grep -qF -e {} -- {} || exit 4", text, self.path));
        }
        s
    }
}

impl Check for Plan {
    fn summary(&self) -> String {
        format!("file_exists {} on {}", self.path, self.node.name)
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn run(&self, ctx: &Ctx) -> Outcome {
        let mut sess = match ctx.ssh(&self.node) {
            Ok(s) => s,
            Err(e) => return Outcome::fail(e),
        };
        let (node, path) = (&self.node.name, &self.path);
        match ctx.remote(&mut sess, &self.script()) {
            Ok(o) if o.rc == 0 => match &self.contains {
                Some(t) => Outcome::pass(format!("{path} on {node} holds `{t}`")),
                None => Outcome::pass(format!("{path} exists on {node}")),
            },
            Ok(o) if o.rc == 3 => Outcome::fail(format!("{path} does not exist on {node}")),
            Ok(o) if o.rc == 4 => Outcome::fail(format!(
                "{path} on {node} does not hold `{}`",
                self.contains.as_deref().unwrap_or_default()
            )),
            Ok(o) => Outcome::fail(format!(
                "cannot read {path} on {node} (exit code {}): {}",
                o.rc,
                crate::text::last_lines(&o.stderr, 2)
            )),
            Err(e) => Outcome::fail(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_prepare as prepare;

    #[test]
    fn prepares_from_the_registry() {
        crate::checks::assert_prepares(
            "- file_exists: {on: nodo1, path: /var/www/html/info.txt}\n",
            "file_exists",
            "file_exists /var/www/html/info.txt on nodo1",
        );
        crate::checks::assert_refusals(
            prepare,
            &[
                (
                    "- file_exists: {on: nodo1, path: relative}\n",
                    &["s.yaml:1:1", "not an absolute path"],
                ),
                (
                    "- file_exists: {on: nodo9, path: /x}\n",
                    &["nodo9", "fix: use one of"],
                ),
                ("- file_exists: {on: nodo1, pth: /x}\n", &["pth"]),
            ],
        );
    }

    #[test]
    fn hostile_paths_and_texts_stay_one_word() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a 'b' $(touch x) `y`");
        std::fs::write(&f, "line\n-n $(z)\n").unwrap();
        let run = |path: &str, contains: Option<&str>| {
            let p = Plan {
                node: super::super::test_inventory().nodes[0].clone(),
                path: path.to_string(),
                contains: contains.map(String::from),
            };
            std::process::Command::new("sh")
                .arg("-c")
                .arg(p.script().as_str())
                .current_dir(d.path())
                .status()
                .unwrap()
                .code()
        };
        let path = f.to_str().unwrap();
        assert_eq!(run(path, None), Some(0));
        assert_eq!(run(path, Some("-n $(z)")), Some(0));
        assert_eq!(run(path, Some("absent\ntext")), Some(4));
        assert_eq!(run(&format!("{path}\nx"), None), Some(3));
        assert!(!d.path().join("x").exists() && !d.path().join("y").exists());
    }
}
