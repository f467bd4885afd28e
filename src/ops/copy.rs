//! `copy`: install a file from `files/` (or inline `content:`) as it is, no templating.
//!
//! ```yaml
//! - copy: {src: index.html, dest: /var/www/html/index.html, mode: "0644"}
//! - copy: {content: "hello\n", dest: /etc/motd}
//! ```

use super::content::ManagedFile;
use super::template::check_file_args;
use super::{Op, Plan, PrepareCtx, Probe};
use crate::error::user;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// File path relative to `files/` in the project folder.
    pub src: Option<String>,
    /// Inline content instead of `src`.
    pub content: Option<String>,
    pub dest: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    #[serde(default)]
    pub secret: bool,
}

impl Args {
    pub fn validate(&self) -> Result<(), String> {
        if self.src.is_some() == self.content.is_some() {
            return Err("copy needs exactly one of `src:` or `content:`".into());
        }
        check_file_args(&self.dest, self.mode.as_deref())
    }

    pub fn prepare(self, ctx: &PrepareCtx) -> anyhow::Result<Copy> {
        let content = match (&self.src, &self.content) {
            (Some(src), _) => {
                let p = ctx.project_dir.join("files").join(src);
                std::fs::read(&p).map_err(|e| {
                    user(format!(
                        "{}: copy: cannot read {}: {e}\n  fix: put the file under files/ or correct `src:`",
                        ctx.at,
                        p.display()
                    ))
                })?
            }
            (None, Some(c)) => c.clone().into_bytes(),
            (None, None) => Vec::new(),
        };
        Ok(Copy(ManagedFile {
            dest: self.dest,
            content,
            owner: self.owner,
            group: self.group,
            mode: self.mode,
            secret: self.secret,
        }))
    }
}

#[derive(Debug)]
pub struct Copy(pub ManagedFile);

impl Op for Copy {
    fn probe(&self) -> String {
        self.0.probe()
    }
    fn plan(&self, state: &Probe) -> anyhow::Result<Plan> {
        self.0.plan(state)
    }
}
