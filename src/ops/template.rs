//! `template`: render a Jinja template from `templates/` and install it.
//!
//! ```yaml
//! - template: {src: bind/db.zone.j2, dest: /var/cache/bind/db.example.com, owner: bind, group: bind, mode: "0644"}
//! ```

use super::content::ManagedFile;
use super::{Op, Operation, Plan, PrepareCtx, Probe, valid_mode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Template path, relative to `templates/`.
    pub src: String,
    /// Absolute path on the node.
    pub dest: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    /// Never show this file's diff (it holds secrets).
    #[serde(default)]
    pub secret: bool,
}

impl Operation for Args {
    const MANAGES: Option<&'static str> = Some("files");
    fn subject(&self) -> String {
        self.dest.clone()
    }

    fn validate(&self) -> Result<(), String> {
        check_file_args(&self.dest, self.mode.as_deref())
    }

    fn prepare(self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Op>> {
        let content = ctx.templates.render_file(&self.src, ctx.vars, ctx.at)?;
        let secret = self.secret || ctx.holds_secret(content.as_bytes());
        Ok(Box::new(Template(ManagedFile {
            dest: self.dest,
            content: content.into_bytes(),
            owner: self.owner,
            group: self.group,
            mode: self.mode,
            secret,
        })))
    }
}

/// Checks shared by the operations that write a file.
pub fn check_file_args(dest: &str, mode: Option<&str>) -> Result<(), String> {
    if !dest.starts_with('/') && !dest.starts_with("{{") {
        return Err(format!("dest `{dest}` is not an absolute path\n  fix: write the full path on the node, e.g. /etc/{dest}"));
    }
    if let Some(m) = mode {
        if !valid_mode(m) {
            return Err(format!(
                "mode `{m}` is not an octal mode\n  fix: quote it as a string, e.g. mode: \"0644\""
            ));
        }
    }
    Ok(())
}

#[derive(Debug)]
pub struct Template(pub ManagedFile);

impl Op for Template {
    fn probe(&self) -> crate::shell::Script {
        self.0.probe()
    }
    fn plan(&self, state: &Probe) -> anyhow::Result<Plan> {
        self.0.plan(state)
    }
}
