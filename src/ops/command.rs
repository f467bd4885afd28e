//! `command`: run a shell command, guarded so it runs only when needed.
//!
//! ```yaml
//! - command: {cmd: "corosync-keygen -l", creates: /etc/corosync/authkey}
//! - command: {cmd: "a2enmod ssl", unless: "test -e /etc/apache2/mods-enabled/ssl.load"}
//! - command: "touch /tmp/x"          # no guard: runs (and reports changed) every time
//! ```

use super::{Change, Op, Operation, Plan, PrepareCtx, Probe};
use crate::sh;
use crate::shell::Script;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgsMap {
    pub cmd: String,
    /// Skip when this path exists.
    pub creates: Option<String>,
    /// Skip when this command exits 0.
    pub unless: Option<String>,
    /// Run in this folder.
    pub chdir: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Args(pub ArgsMap);

impl std::ops::Deref for Args {
    type Target = ArgsMap;
    fn deref(&self) -> &ArgsMap {
        &self.0
    }
}
impl From<String> for Args {
    fn from(cmd: String) -> Args {
        Args(ArgsMap {
            cmd,
            creates: None,
            unless: None,
            chdir: None,
        })
    }
}
impl From<ArgsMap> for Args {
    fn from(m: ArgsMap) -> Args {
        Args(m)
    }
}
crate::string_or_struct!(Args, ArgsMap, cmd);

impl Operation for Args {
    /// A command's effect has no name to list.
    fn subject(&self) -> String {
        self.cmd.clone()
    }

    fn validate(&self) -> Result<(), String> {
        if self.cmd.trim().is_empty() {
            return Err("command has an empty `cmd:`\n  fix: write the shell command to run, e.g. command: \"systemctl daemon-reload\"".into());
        }
        Ok(())
    }

    fn prepare(self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Op>> {
        super::check_shell(&self.0.cmd, "command: cmd", ctx.at)?;
        if let Some(u) = &self.0.unless {
            super::check_shell(u, "command: unless", ctx.at)?;
        }
        Ok(Box::new(Command(self.0)))
    }
}

#[derive(Debug)]
pub struct Command(ArgsMap);

impl Op for Command {
    fn probe(&self) -> Script {
        let mut s = Script::new();
        if let Some(c) = &self.0.creates {
            s.line(sh!("[ -e {} ] && echo creates=yes", c));
        }
        if let Some(u) = &self.0.unless {
            s.line(sh!(
                "( {} ) >/dev/null 2>&1 && echo unless=yes",
                Script::user_shell(u)
            ));
        }
        s.line("true");
        s
    }

    fn plan(&self, state: &Probe) -> anyhow::Result<Plan> {
        let s = crate::text::kv_lines(&state.out);
        if s.contains_key("creates") || s.contains_key("unless") {
            return Ok(Plan::Ok);
        }
        let mut script = Script::new();
        if let Some(d) = &self.0.chdir {
            script.line(sh!("cd {} || exit 1", d));
        }
        script.line(Script::user_shell(&self.0.cmd));
        Ok(Plan::Change(Change {
            what: "run".into(),
            script,
            diff: None,
        }))
    }
}
