//! `line`: one line present in (or absent from) a file the node already has,
//! the rest of the file left as it is (Ansible's `lineinfile`, without regexps).
//!
//! ```yaml
//! - line: {path: /etc/default/named, line: 'OPTIONS="-u bind -4"'}
//! - line: {path: /etc/hosts, line: "10.1.1.99 old", state: absent}
//! ```

use super::{Op, Operation, Plan, PrepareCtx, Probe};
use crate::sh;
use crate::shell::Script;
use serde::{Deserialize, Serialize};

/// `state: present | absent`.
pub use super::Presence as State;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub path: String,
    pub line: String,
    #[serde(default)]
    pub state: State,
}

impl Operation for Args {
    /// One line of a file the node has (the file itself is not labctl's).
    fn subject(&self) -> String {
        format!("in {}", self.path)
    }

    fn validate(&self) -> Result<(), String> {
        if !self.path.starts_with('/') {
            return Err(format!(
                "line: path `{}` is not absolute\n  fix: write the full path on the node, e.g. /etc/default/named",
                self.path
            ));
        }
        if self.line.contains('\n') {
            return Err("line: `line:` holds a newline; it manages one line\n  fix: one task per line, or a template for the whole file".into());
        }
        Ok(())
    }

    fn prepare(self, _ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Op>> {
        Ok(Box::new(Line(self)))
    }
}

#[derive(Debug)]
pub struct Line(Args);

impl Op for Line {
    fn probe(&self) -> Script {
        sh!(
            "if [ -f {} ]; then echo file=yes; grep -qxF -e {} -- {} && echo has=yes; fi; true",
            self.0.path,
            self.0.line,
            self.0.path
        )
    }

    fn plan(&self, state: &Probe) -> anyhow::Result<Plan> {
        let s = crate::text::kv_lines(&state.out);
        if !s.contains_key("file") {
            if self.0.state == State::Absent {
                return Ok(Plan::Ok);
            }
            anyhow::bail!(
                "{} does not exist (line: edits an existing file; create it with copy or template first)",
                self.0.path
            );
        }
        let has = s.contains_key("has");
        let (p, l) = (&self.0.path, &self.0.line);
        Ok(match (self.0.state, has) {
            (State::Present, false) => Plan::of(
                vec!["add the line".into()],
                // a file without a final newline gets one before the new line
                sh!(
                    "set -e\n[ -z \"$(tail -c1 -- {})\" ] || echo >> {}\nprintf '%s\\n' {} >> {}",
                    p,
                    p,
                    l,
                    p
                ),
            ),
            (State::Absent, true) => Plan::of(
                vec!["remove the line".into()],
                sh!(
                    "set -e\ntmp=$(mktemp {}.labctl.XXXXXX)\ntrap 'rm -f \"$tmp\"' EXIT\ngrep -vxF -e {} -- {} > \"$tmp\" || true\nchmod --reference={} \"$tmp\"\nchown --reference={} \"$tmp\"\nmv -f \"$tmp\" {}\ntrap - EXIT",
                    p,
                    l,
                    p,
                    p,
                    p,
                    p
                ),
            ),
            _ => Plan::Ok,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh(s: &Script) -> Probe {
        let out = Command::new("sh").arg("-c").arg(s.as_str()).output().unwrap();
        Probe {
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            rc: out.status.code().unwrap_or(-1),
            ..Default::default()
        }
    }

    /// Converge `op` on the local file until nothing changes; returns how many changes it made.
    fn converge(op: &Line) -> usize {
        let mut changes = 0;
        loop {
            match op.plan(&sh(&op.probe())).unwrap() {
                Plan::Ok => return changes,
                Plan::Change(c) => {
                    assert_eq!(sh(&c.script).rc, 0, "{}", c.script);
                    changes += 1;
                    assert!(changes < 3, "does not converge");
                }
                Plan::Wait(w) => panic!("{w}"),
            }
        }
    }

    #[test]
    fn adds_once_removes_once_and_keeps_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("it's a file");
        std::fs::write(&f, "first\nsecond").unwrap();
        let path = f.to_string_lossy().into_owned();
        let hostile = "-e $(touch /tmp/labctl-line-test) `x` 'q' \\ *";
        let add = Line(Args {
            path: path.clone(),
            line: hostile.into(),
            state: State::Present,
        });
        assert_eq!(converge(&add), 1);
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            format!("first\nsecond\n{hostile}\n")
        );
        assert_eq!(converge(&add), 0, "a second run changes nothing");
        let remove = Line(Args {
            path,
            line: "second".into(),
            state: State::Absent,
        });
        assert_eq!(converge(&remove), 1);
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            format!("first\n{hostile}\n")
        );
        assert_eq!(converge(&remove), 0);
        assert!(!std::path::Path::new("/tmp/labctl-line-test").exists());
    }

    #[test]
    fn a_missing_file_is_an_error_unless_the_line_should_be_absent() {
        let present = Line(Args {
            path: "/nonexistent/labctl".into(),
            line: "x".into(),
            state: State::Present,
        });
        assert!(present.plan(&sh(&present.probe())).is_err());
        let absent = Line(Args {
            state: State::Absent,
            ..present.0.clone()
        });
        assert!(matches!(absent.plan(&sh(&absent.probe())).unwrap(), Plan::Ok));
    }
}
