//! `copy`: install a file from `files/` (or inline `content:`) as it is, no templating.
//!
//! ```yaml
//! - copy: {src: index.html, dest: /var/www/html/index.html, mode: "0644"}
//! - copy: {content: "hello\n", dest: /etc/motd}
//! - copy: {generate: corosync-authkey, size: 256, dest: /etc/corosync/authkey, mode: "0400"}
//! ```
//!
//! `generate:` installs random bytes that labctl makes once per project (kept in
//! `.labctl/generated/NAME`, mode 0600), the same on every host: shared keys such
//! as corosync's authkey. Such a file is a secret: its content is never shown.

use super::content::ManagedFile;
use super::template::check_file_args;
use super::{Op, Operation, Plan, PrepareCtx, Probe};
use crate::error::user;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// File path relative to `files/` in the project folder.
    pub src: Option<String>,
    /// Inline content instead of `src`.
    pub content: Option<String>,
    /// Random bytes generated once per project under this name (a shared key).
    pub generate: Option<String>,
    /// Size of a generated key in bytes (default 256).
    pub size: Option<usize>,
    pub dest: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    #[serde(default)]
    pub secret: bool,
}

impl Operation for Args {
    const MANAGES: Option<&'static str> = Some("files");
    fn subject(&self) -> String {
        self.dest.clone()
    }

    fn validate(&self) -> Result<(), String> {
        let sources = [
            self.src.is_some(),
            self.content.is_some(),
            self.generate.is_some(),
        ];
        if sources.iter().filter(|x| **x).count() != 1 {
            return Err("copy needs exactly one of `src:`, `content:` or `generate:`\n  fix: keep one: `src:` (a file under files/), `content:` (inline text) or `generate:`".into());
        }
        if let Some(g) = &self.generate {
            if g.is_empty()
                || !g
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            {
                return Err(format!(
                    "generate: `{g}` must be a simple name (letters, digits, - and _)\n  fix: e.g. generate: corosync_authkey"
                ));
            }
        }
        if let Some(n) = self.size {
            // a key, not a disk filler: a huge size would exhaust memory
            if self.generate.is_none() || n == 0 || n > MAX_GENERATED {
                return Err(format!(
                    "size: {n} is not a generated key size\n  fix: use `size:` only with `generate:`, from 1 to {MAX_GENERATED} bytes (corosync's authkey is 256)"
                ));
            }
        }
        check_file_args(&self.dest, self.mode.as_deref())
    }

    fn prepare(self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Op>> {
        let content = match (&self.src, &self.content) {
            _ if self.generate.is_some() => generated(
                ctx,
                self.generate.as_deref().unwrap_or_default(),
                self.size.unwrap_or(256),
            )?,
            (Some(src), _) => {
                let p = crate::project::resolve_inside(
                    ctx.project_dir,
                    &ctx.project_dir.join("files"),
                    src,
                    &format!("{}: copy: src", ctx.at),
                )?;
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
        let secret = self.secret || self.generate.is_some() || ctx.holds_secret(&content);
        Ok(Box::new(Copy(ManagedFile {
            dest: self.dest,
            content,
            owner: self.owner,
            group: self.group,
            mode: self.mode,
            secret,
        })))
    }
}

/// The largest `size:` of a generated key, in bytes.
const MAX_GENERATED: usize = 65536;

/// The project's generated key `name`, made on first use.
fn generated(ctx: &PrepareCtx, name: &str, size: usize) -> anyhow::Result<Vec<u8>> {
    let state = ctx.state_dir.to_path_buf();
    let path = state.join("generated").join(name);
    match crate::project::read_state(&state, &path) {
        Ok(b) => return Ok(b),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(user(format!(
                "{}: copy: generate: cannot read {}: {e}\n  fix: remove it; labctl makes a new key",
                ctx.at,
                path.display()
            )))
        }
        Err(_) => {}
    }
    let bytes: Vec<u8> = (0..size.max(1)).map(|_| rand::random::<u8>()).collect();
    crate::project::write_state(&state, &path, &bytes, 0o600)?;
    Ok(bytes)
}

#[derive(Debug)]
pub struct Copy(pub ManagedFile);

impl Op for Copy {
    fn probe(&self) -> crate::shell::Script {
        self.0.probe()
    }
    fn plan(&self, state: &Probe) -> anyhow::Result<Plan> {
        self.0.plan(state)
    }
}
