//! Every request labctl makes of Incus: its own client, `incus …`, each call
//! bounded in time (a daemon that does not answer is an error, never a hang:
//! the `incus` labctl started is ended by its PID). Answers are read as JSON
//! (`--format json`, `incus query`), never as the client's tables.
//!
//! The client finds the daemon as it always does: `INCUS_DIR` (or
//! `INCUS_SOCKET`) for a daemon of its own, else `/var/lib/incus`'s socket;
//! or, with `incus: {remote: NAME}`, the remote of that name in the client's
//! configuration (`INCUS_CONF`, else `~/.config/incus`), added the Incus way
//! (`incus remote add NAME https://HOST:8443` and a trust token): every call
//! then runs with `INCUS_REMOTE=NAME`, once the name is checked to be there
//! (the client would otherwise fall back to the local daemon).

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The usual bound of one request.
pub const SHORT: Duration = Duration::from_secs(60);
/// Creating an instance (the image unpacked into the pool), importing an image.
pub const LONG: Duration = Duration::from_secs(300);

/// One Incus daemon (or cluster), reached through its client; every call
/// names the lab's project.
#[derive(Debug, Clone)]
pub struct Incus {
    pub project: String,
    /// The client's remote to talk to (`None`: the local daemon).
    pub remote: Option<String>,
}

/// What one `incus` run printed.
#[derive(Debug)]
pub struct Reply {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    /// The last line of its error output (`Error: …`), for messages.
    pub fn why(&self) -> String {
        self.stderr
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .trim_start_matches("Error: ")
            .to_string()
    }
}

/// Whether an error reply says the object is not there.
pub fn not_found(r: &Reply) -> bool {
    let w = r.why().to_ascii_lowercase();
    w.contains("not found") || w.contains("no such object")
}

impl Incus {
    pub fn new(project: &str, remote: Option<&str>) -> Incus {
        Incus {
            project: project.to_string(),
            remote: remote.map(str::to_string),
        }
    }

    /// Run `incus ARGS…` (no project added) within `limit`; its output, whatever the exit status.
    pub fn call(&self, args: &[&str], limit: Duration) -> anyhow::Result<Reply> {
        let mut cmd = Command::new("incus");
        if let Some(r) = &self.remote {
            cmd.env("INCUS_REMOTE", r);
        }
        let child = cmd
            .args(args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                crate::error::user(format!(
                    "cannot run incus (Incus's client): {e}\n  fix: `apt-get install -t bookworm-backports incus-client` (scripts/install-host-deps installs Incus)"
                ))
            })?;
        let done = crate::child::wait_within(child, limit)?;
        let Some(st) = done.status else {
            anyhow::bail!(
                "Incus did not answer `incus {}` within {} s\n  fix: check that incusd runs and answers (`incus info`)",
                args.join(" "),
                limit.as_secs()
            );
        };
        Ok(Reply {
            ok: st.success(),
            stdout: done.stdout,
            stderr: done.stderr,
        })
    }

    /// [`Incus::call`] with `--project P` added; must succeed: stdout.
    pub fn run(&self, args: &[&str], limit: Duration) -> anyhow::Result<String> {
        let r = self.in_project(args, limit)?;
        if !r.ok {
            anyhow::bail!(
                "`incus {} --project {}` failed: {}",
                args.join(" "),
                self.project,
                r.why()
            );
        }
        Ok(r.stdout)
    }

    /// [`Incus::call`] with `--project P` added, whatever the exit status.
    pub fn in_project(&self, args: &[&str], limit: Duration) -> anyhow::Result<Reply> {
        let mut a = args.to_vec();
        a.extend(["--project", &self.project]);
        self.call(&a, limit)
    }

    /// `incus ARGS… --format json` in the project, parsed.
    pub fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut a = args.to_vec();
        a.extend(["--format", "json"]);
        let out = self.run(&a, SHORT)?;
        serde_json::from_str(&out)
            .map_err(|e| anyhow::anyhow!("`incus {}`: its answer is not JSON ({e})", a.join(" ")))
    }

    /// `incus query PATH` (the REST API, JSON), `None` when not found.
    pub fn query(&self, path: &str) -> anyhow::Result<Option<Value>> {
        let r = self.call(&["query", path], SHORT)?;
        if !r.ok {
            if not_found(&r) {
                return Ok(None);
            }
            anyhow::bail!("`incus query {path}` failed: {}", r.why());
        }
        Ok(Some(serde_json::from_str(&r.stdout).map_err(|e| {
            anyhow::anyhow!("`incus query {path}`: its answer is not JSON ({e})")
        })?))
    }

    /// `incus query -X METHOD --data BODY PATH`, which must succeed (`what`
    /// names the change in the error).
    pub fn send(&self, method: &str, path: &str, body: &Value, what: &str) -> anyhow::Result<()> {
        let body = body.to_string();
        let r = self.call(&["query", "-X", method, "--data", &body, path], SHORT)?;
        if !r.ok {
            anyhow::bail!("{what} failed: {}", r.why());
        }
        Ok(())
    }

    /// The address (`https://HOST:PORT`) of the remote, as the client's
    /// configuration has it; a user error when it has no such remote.
    pub fn remote_addr(&self) -> anyhow::Result<Option<String>> {
        let Some(name) = &self.remote else {
            return Ok(None);
        };
        let plain = Incus::new(&self.project, None);
        let r = plain.call(&["remote", "list", "--format", "json"], SHORT)?;
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
        match v[name.as_str()]["Addr"].as_str() {
            Some(a) if a.starts_with("https://") => Ok(Some(a.to_string())),
            Some(a) => crate::user_bail!(
                "incus.remote `{name}` is {a}, not an Incus server over HTTPS\n  fix: name a remote added with `incus remote add {name} https://HOST:8443`"
            ),
            None => crate::user_bail!(
                "Incus's client has no remote named `{name}` (incus.remote){}\n  fix: add it once: on the server `incus config trust add labctl` prints a token, here `incus remote add {name} https://SERVER:8443 --token TOKEN` (the client's configuration: INCUS_CONF, else ~/.config/incus)",
                if r.ok { String::new() } else { format!(": {}", r.why()) }
            ),
        }
    }

    /// Refuse, with what to start, when no daemon answers.
    pub fn check_daemon(&self) -> anyhow::Result<()> {
        let addr = self.remote_addr()?;
        let r = self.call(&["query", "/1.0"], Duration::from_secs(20))?;
        if r.ok {
            let v: Value = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
            if v["auth"] == "trusted" {
                return Ok(());
            }
            crate::user_bail!(
                "Incus{} answers but does not trust this client (auth: {})\n  fix: run labctl as root or as a member of group incus-admin, or add this client's certificate to the server's trust store (`incus config trust add` on the server, then `incus remote add` here with its token)",
                addr.as_deref().map(|a| format!(" at {a}")).unwrap_or_default(),
                v["auth"]
            );
        }
        if let (Some(name), Some(a)) = (&self.remote, &addr) {
            let why = r.why();
            let cert = why.to_ascii_lowercase().contains("certificate");
            crate::user_bail!(
                "the Incus remote `{name}` ({a}) {}: {why}\n  fix: {}",
                if cert {
                    "refuses this client's certificate"
                } else {
                    "does not answer"
                },
                if cert {
                    format!("trust this client again: on the server `incus config trust add labctl`, here `incus remote remove {name}` and `incus remote add {name} {a} --token TOKEN`")
                } else {
                    format!("check that incusd runs there and listens on {a} (`incus config set core.https_address :8443` on the server), and that this machine reaches it")
                }
            );
        }
        crate::user_bail!(
            "no Incus daemon answers: {}\n  fix: start it (`systemctl start incus`; with no host systemd: `/usr/libexec/incus/incusd --group incus-admin &` then `incus admin waitready`), and initialise it once (`incus admin init`); scripts/install-host-deps installs Incus",
            r.why()
        )
    }
}

/// A string value of a JSON object, `""` when absent.
pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_are_read_from_the_last_line() {
        let r = Reply {
            ok: false,
            stdout: String::new(),
            stderr: "some noise\nError: Instance not found\n".into(),
        };
        assert_eq!(r.why(), "Instance not found");
        assert!(not_found(&r));
        let r = Reply {
            ok: false,
            stdout: String::new(),
            stderr: "Error: Failed to connect\n".into(),
        };
        assert!(!not_found(&r));
    }
}
