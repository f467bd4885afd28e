//! A file whose content labctl manages (shared by `template` and `copy`).
//!
//! Probe: type, owner, group, mode and SHA-256 of the file (never its content).
//! Apply: written atomically (temp file in the same folder, then rename), so a
//! managed file is always either old or new, never partial.

use super::{norm_mode, Change, DiffReq, Plan, Probe};
use crate::sh;
use crate::shell::Script;
use crate::text::kv_lines;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct ManagedFile {
    pub dest: String,
    pub content: Vec<u8>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    /// Never show a diff of this file.
    pub secret: bool,
}

impl ManagedFile {
    pub fn probe(&self) -> Script {
        sh!(
            "f={}\nif [ -L \"$f\" ]; then echo type=link\nelif [ -f \"$f\" ]; then echo type=file; stat -c 'owner=%U\ngroup=%G\nmode=%a' \"$f\"; echo \"sha=$(sha256sum < \"$f\" | cut -d' ' -f1)\"\nelif [ -e \"$f\" ]; then echo type=other\nelse echo type=absent; fi",
            self.dest
        )
    }

    pub fn plan(&self, state: &Probe) -> anyhow::Result<Plan> {
        let s = kv_lines(&state.out);
        let ty = s.get("type").map(String::as_str).unwrap_or("absent");
        if ty == "other" {
            anyhow::bail!(
                "{} exists and is not a regular file (a directory?)",
                self.dest
            );
        }
        let want_sha = hex::encode(Sha256::digest(&self.content));
        let exists = ty == "file";
        let mut what = Vec::new();
        let content_differs = !exists || s.get("sha") != Some(&want_sha);
        if !exists {
            what.push(
                if ty == "link" {
                    "replace symlink"
                } else {
                    "create"
                }
                .to_string(),
            );
        } else if content_differs {
            what.push("content".to_string());
        }
        let mut attrs = Vec::new();
        if let Some(o) = &self.owner {
            if exists && s.get("owner") != Some(o) {
                attrs.push(format!(
                    "owner {} → {o}",
                    s.get("owner").cloned().unwrap_or_default()
                ));
            }
        }
        if let Some(g) = &self.group {
            if exists && s.get("group") != Some(g) {
                attrs.push(format!(
                    "group {} → {g}",
                    s.get("group").cloned().unwrap_or_default()
                ));
            }
        }
        if let Some(m) = &self.mode {
            let want = norm_mode(m);
            if exists && s.get("mode").map(|x| norm_mode(x)) != Some(want.clone()) {
                attrs.push(format!(
                    "mode {} → {want}",
                    s.get("mode").cloned().unwrap_or_default()
                ));
            }
        }
        if !content_differs && attrs.is_empty() {
            return Ok(Plan::Ok);
        }
        what.extend(attrs);
        let script = if content_differs {
            self.write_script(exists)
        } else {
            self.attr_script(sh!("{}", self.dest))
        };
        Ok(Plan::Change(Change {
            what: what.join(", "),
            script,
            diff: content_differs.then(|| DiffReq {
                path: self.dest.clone(),
                new: String::from_utf8_lossy(&self.content).into_owned(),
                secret: self.secret,
                exists,
            }),
        }))
    }

    /// Owner, group and mode of `target` (a quoted path, or `"$tmp"`).
    fn attr_script(&self, target: Script) -> Script {
        let mut s = Script::new();
        match (&self.owner, &self.group) {
            (Some(o), Some(g)) => s.line(sh!("chown {}:{} {}", o, g, target)),
            (Some(o), None) => s.line(sh!("chown {} {}", o, target)),
            (None, Some(g)) => s.line(sh!("chgrp {} {}", g, target)),
            (None, None) => &mut s,
        };
        if let Some(m) = &self.mode {
            s.line(sh!("chmod {} {}", m, target));
        }
        s
    }

    fn write_script(&self, exists: bool) -> Script {
        let mut s = sh!(
            "set -e\nf={}\nd=$(dirname \"$f\")\nmkdir -p \"$d\"\ntmp=$(mktemp \"$d/.labctl.XXXXXX\")\ntrap 'rm -f \"$tmp\"' EXIT\ntrap 'exit 143' HUP INT TERM\nbase64 -d > \"$tmp\" {}",
            self.dest,
            Script::base64_heredoc(&self.content)
        );
        if exists {
            s.line("chmod --reference=\"$f\" \"$tmp\"\nchown --reference=\"$f\" \"$tmp\"");
        } else if self.secret {
            // a file holding a secret is root's only unless `mode:` says otherwise
            s.line("chmod 0600 \"$tmp\"");
        } else {
            s.line("chmod 0644 \"$tmp\"");
        }
        s.line(self.attr_script(Script::lit("\"$tmp\"")));
        s.line("mv -f \"$tmp\" \"$f\"\ntrap - EXIT");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mf() -> ManagedFile {
        ManagedFile {
            dest: "/etc/x.conf".into(),
            content: b"hello\n".to_vec(),
            owner: Some("root".into()),
            group: None,
            mode: Some("0640".into()),
            secret: false,
        }
    }

    #[test]
    fn a_new_secret_file_without_mode_is_0600() {
        let f = ManagedFile {
            mode: None,
            secret: true,
            ..mf()
        };
        let Plan::Change(c) = f
            .plan(&Probe {
                out: "type=absent\n".into(),
                rc: 0,
                ..Default::default()
            })
            .unwrap()
        else {
            panic!()
        };
        assert!(
            c.script.as_str().contains("chmod 0600 \"$tmp\""),
            "{}",
            c.script
        );
        assert!(!c.script.as_str().contains("0644"));
    }

    #[test]
    fn absent_file_is_created() {
        let p = mf()
            .plan(&Probe {
                out: "type=absent\n".into(),
                rc: 0,
                ..Default::default()
            })
            .unwrap();
        let Plan::Change(c) = p else {
            panic!("expected change")
        };
        assert_eq!(c.what, "create");
        assert!(c.script.as_str().contains("mv -f \"$tmp\" \"$f\""));
    }

    #[test]
    fn same_file_is_ok_and_mode_only_change_keeps_content() {
        let sha = hex::encode(Sha256::digest(b"hello\n"));
        let out = format!("type=file\nowner=root\ngroup=root\nmode=640\nsha={sha}\n");
        assert!(matches!(
            mf().plan(&Probe {
                out: out.clone(),
                rc: 0,
                ..Default::default()
            })
            .unwrap(),
            Plan::Ok
        ));
        let out = out.replace("mode=640", "mode=644");
        let Plan::Change(c) = mf()
            .plan(&Probe {
                out,
                rc: 0,
                ..Default::default()
            })
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(c.what, "mode 644 → 640");
        assert!(!c.script.as_str().contains("base64") && c.diff.is_none());
    }
}
