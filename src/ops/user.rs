//! `user`: a local account with groups and a password (never printed).
//!
//! ```yaml
//! - user: {name: hacluster, password: "{{ hacluster_password }}", groups: [haclient]}
//! - user: {name: alumno, password_hash: "$6$...", shell: /bin/bash}
//! ```
//!
//! `password:` is hashed by labctl (SHA-512 crypt); an existing hash that already
//! matches the password is kept, so re-runs change nothing.

use super::{Change, Op, Operation, Plan, PrepareCtx, Probe};
use crate::sh;
use crate::shell::Script;
use serde::{Deserialize, Serialize};
use sha_crypt::{PasswordHashRef, PasswordHasher, PasswordVerifier, ShaCrypt};

/// `state: present | absent`.
pub use super::Presence as State;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub name: String,
    #[serde(default)]
    pub state: State,
    /// Supplementary groups (added; existing ones are kept).
    #[serde(default)]
    pub groups: Vec<String>,
    pub shell: Option<String>,
    #[serde(default)]
    pub system: bool,
    /// Clear-text password, hashed by labctl.
    pub password: Option<String>,
    /// A ready crypt(3) hash (`$6$...`).
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("name", &self.name)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Operation for Args {
    const MANAGES: Option<&'static str> = Some("users");
    fn subject(&self) -> String {
        self.name.clone()
    }

    fn validate(&self) -> Result<(), String> {
        if self.password.is_some() && self.password_hash.is_some() {
            return Err(
                "give either `password:` or `password_hash:`, not both\n  fix: remove one of them"
                    .into(),
            );
        }
        // names reach useradd/usermod's command line: never an option
        for n in std::iter::once(&self.name).chain(self.groups.iter()) {
            if !n.contains("{{") && !crate::inventory::valid_user(n) {
                return Err(format!(
                    "{n:?} is not a user or group name\n  fix: use lower-case letters, digits, `-` and `_`, starting with a letter or `_`, e.g. name: alumno"
                ));
            }
        }
        Ok(())
    }

    fn prepare(self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Op>> {
        // a password is a secret whatever its variable's name
        if let Ok(mut r) = ctx.secrets.lock() {
            for v in self.password.iter().chain(self.password_hash.iter()) {
                r.add(v);
            }
        }
        Ok(Box::new(User(self)))
    }
}

#[derive(Debug)]
pub struct User(Args);

fn hash_password(pw: &str) -> anyhow::Result<String> {
    let salt: [u8; 12] = rand::random();
    let h = ShaCrypt::SHA512
        .hash_password_with_salt(pw.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
    Ok(h.to_string())
}

fn password_matches(pw: &str, hash: &str) -> bool {
    match PasswordHashRef::new(hash) {
        Ok(h) => ShaCrypt::SHA512.verify_password(pw.as_bytes(), h).is_ok(),
        Err(_) => false,
    }
}

impl Op for User {
    fn probe(&self) -> Script {
        let n = &self.0.name;
        sh!(
            "if e=$(getent passwd {}); then echo exists=yes; echo \"shell=$(echo \"$e\" | cut -d: -f7)\"; echo \"groups=$(id -nG {})\"; echo \"hash=$(getent shadow {} | cut -d: -f2)\"; fi\ntrue",
            n, n, n
        )
    }

    fn plan(&self, state: &Probe) -> anyhow::Result<Plan> {
        let s = crate::text::kv_lines(&state.out);
        let a = &self.0;
        let n = &a.name;
        let exists = s.contains_key("exists");
        let mut what = Vec::new();
        let mut script = Script::lit("set -e");
        if a.state == State::Absent {
            if exists {
                return Ok(Plan::Change(Change {
                    what: "remove".into(),
                    script: sh!("userdel -r {} 2>&1 || userdel {}", n, n),
                    diff: None,
                }));
            }
            return Ok(Plan::Ok);
        }
        let have_groups: Vec<&str> = s
            .get("groups")
            .map(|g| g.split_whitespace().collect())
            .unwrap_or_default();
        let missing: Vec<&String> = a
            .groups
            .iter()
            .filter(|g| !have_groups.contains(&g.as_str()))
            .collect();
        if !exists {
            what.push("create".to_string());
            let mut cmd = Script::lit("useradd -m");
            if a.system {
                cmd.push(" --system");
            }
            if let Some(shell) = &a.shell {
                cmd.push(sh!(" -s {}", shell));
            }
            if !a.groups.is_empty() {
                cmd.push(sh!(" -G {}", a.groups.join(",")));
            }
            cmd.args([n]);
            script.line(cmd);
        } else {
            if let Some(shell) = &a.shell {
                if s.get("shell") != Some(shell) {
                    what.push(format!("shell → {shell}"));
                    script.line(sh!("usermod -s {} {}", shell, n));
                }
            }
            if !missing.is_empty() {
                let m: Vec<&str> = missing.iter().map(|g| g.as_str()).collect();
                what.push(format!("groups + {}", m.join(",")));
                script.line(sh!("usermod -a -G {} {}", m.join(","), n));
            }
        }
        let current = s.get("hash").map(String::as_str).unwrap_or("");
        let new_hash = match (&a.password, &a.password_hash) {
            (Some(pw), _) if !password_matches(pw, current) => Some(hash_password(pw)?),
            (_, Some(h)) if h != current => Some(h.clone()),
            _ => None,
        };
        if let Some(h) = new_hash {
            what.push("password".to_string());
            script.line(sh!("echo {} | chpasswd -e", format!("{}:{h}", a.name)));
        }
        Ok(Plan::of(what, script))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_roundtrip() {
        let h = hash_password("s3cret-pw").unwrap();
        assert!(h.starts_with("$6$"), "{h}");
        assert!(password_matches("s3cret-pw", &h));
        assert!(!password_matches("other", &h));
    }
}
