//! `file`: a directory, a symlink, an absent path, or the owner/mode of an existing file.
//!
//! ```yaml
//! - file: {path: /var/www/html, state: directory, owner: www-data, mode: "0755"}
//! - file: {path: /etc/nginx/sites-enabled/default, state: absent}
//! - file: {path: /etc/alternatives/x, state: link, src: /usr/bin/y}
//! ```

use super::{Op, Operation, Plan, PrepareCtx, Probe, norm_mode, valid_mode};
use crate::sh;
use crate::shell::Script;
use crate::text::kv_lines;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Directory,
    Absent,
    Link,
    /// The file must exist already; only owner/group/mode are managed.
    File,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub path: String,
    #[serde(default)]
    pub state: State,
    /// Link target (state: link).
    pub src: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
}

impl Operation for Args {
    const MANAGES: Option<&'static str> = Some("files");
    fn subject(&self) -> String {
        self.path.clone()
    }

    fn validate(&self) -> Result<(), String> {
        if !self.path.starts_with('/') && !self.path.starts_with("{{") {
            return Err(format!(
                "path `{}` is not absolute\n  fix: write the full path on the node, e.g. /etc/{}",
                self.path, self.path
            ));
        }
        if (self.state == State::Link) != self.src.is_some() {
            return Err(
                "`src:` (the link target) goes with `state: link`, and only with it\n  fix: e.g. {path: /etc/x, state: link, src: /usr/share/x}".into(),
            );
        }
        if let Some(m) = &self.mode {
            if !valid_mode(m) {
                return Err(format!(
                    "mode `{m}` is not an octal mode\n  fix: quote it, e.g. mode: \"0755\""
                ));
            }
        }
        Ok(())
    }

    fn prepare(self, _ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Op>> {
        Ok(Box::new(File(self)))
    }
}

#[derive(Debug)]
pub struct File(Args);

impl File {
    fn attrs(
        &self,
        s: &std::collections::BTreeMap<String, String>,
        what: &mut Vec<String>,
        script: &mut Script,
    ) {
        let a = &self.0;
        let p = &a.path;
        if let Some(o) = &a.owner {
            if s.get("owner") != Some(o) {
                what.push(format!("owner → {o}"));
                script.line(sh!("chown {} {}", o, p));
            }
        }
        if let Some(g) = &a.group {
            if s.get("group") != Some(g) {
                what.push(format!("group → {g}"));
                script.line(sh!("chgrp {} {}", g, p));
            }
        }
        if let Some(m) = &a.mode {
            if s.get("mode").map(|x| norm_mode(x)) != Some(norm_mode(m)) {
                what.push(format!("mode → {}", norm_mode(m)));
                script.line(sh!("chmod {} {}", m, p));
            }
        }
    }
}

impl Op for File {
    fn probe(&self) -> Script {
        sh!(
            "f={}\nif [ -L \"$f\" ]; then echo type=link; echo \"target=$(readlink \"$f\")\"\nelif [ -d \"$f\" ]; then echo type=directory\nelif [ -e \"$f\" ]; then echo type=file\nelse echo type=absent; fi\n[ -e \"$f\" ] && stat -c 'owner=%U\ngroup=%G\nmode=%a' \"$f\"\ntrue",
            self.0.path
        )
    }

    fn plan(&self, state: &Probe) -> anyhow::Result<Plan> {
        let s = kv_lines(&state.out);
        let ty = s.get("type").map(String::as_str).unwrap_or("absent");
        let p = &self.0.path;
        let mut what = Vec::new();
        let mut script = Script::lit("set -e");
        match self.0.state {
            State::Absent => {
                if ty != "absent" {
                    what.push(format!("remove {ty}"));
                    script.line(sh!("rm -rf -- {}", p));
                }
            }
            State::Directory => {
                if ty == "absent" {
                    what.push("create directory".into());
                    script.line(sh!("mkdir -p -- {}", p));
                    let none = Default::default();
                    self.attrs(&none, &mut what, &mut script);
                } else if ty != "directory" {
                    anyhow::bail!("{} exists and is a {ty}, not a directory", self.0.path);
                } else {
                    self.attrs(&s, &mut what, &mut script);
                }
            }
            State::Link => {
                let target = self.0.src.clone().unwrap_or_default();
                if ty == "directory" {
                    anyhow::bail!(
                        "{} is a directory; refusing to replace it with a link",
                        self.0.path
                    );
                }
                if ty != "link" || s.get("target") != Some(&target) {
                    what.push(format!("link → {target}"));
                    script.line(sh!("ln -sfn -- {} {}", target, p));
                }
            }
            State::File => {
                if ty == "absent" {
                    anyhow::bail!("{} does not exist (state: file manages an existing file; use copy or template to create one)", self.0.path);
                }
                self.attrs(&s, &mut what, &mut script);
            }
        }
        Ok(Plan::of(what, script))
    }
}
