//! Every request labctl makes of the hypervisor: `virsh -c URI …`, each one
//! bounded in time (a daemon that does not answer is an error, never a hang:
//! the `virsh` labctl started is ended by its PID).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The usual bound of one request.
pub const SHORT: Duration = Duration::from_secs(30);

/// A hypervisor, by libvirt URI.
#[derive(Debug, Clone)]
pub struct Virsh {
    pub uri: String,
}

/// What one `virsh` run printed.
#[derive(Debug)]
pub struct Reply {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Virsh {
    pub fn new(uri: &str) -> Virsh {
        Virsh {
            uri: uri.to_string(),
        }
    }

    /// Whether the hypervisor is this machine (so its bridges and files are ours to see).
    pub fn is_local(&self) -> bool {
        self.uri == "qemu:///system"
    }

    /// Run `virsh -c URI args…` within `limit`; its output, whatever the exit status.
    pub fn call(&self, args: &[&str], limit: Duration) -> anyhow::Result<Reply> {
        let child = Command::new("virsh")
            .env("LC_ALL", "C") // its English output is parsed, whatever the host's locale
            .arg("-q")
            .arg("-c")
            .arg(&self.uri)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot run virsh: {e}\n  fix: install libvirt's client (`apt-get install libvirt-clients`, or scripts/install-host-deps)"
                )
            })?;
        let crate::child::Finished {
            status,
            stdout,
            stderr,
        } = crate::child::wait_within(child, limit)?;
        match status {
            None => anyhow::bail!(
                "the libvirt daemon at {} did not answer `virsh {}` within {} s\n  fix: check that libvirtd runs and answers (`virsh -c {} version`)",
                self.uri,
                args.join(" "),
                limit.as_secs(),
                self.uri
            ),
            Some(st) => Ok(Reply {
                ok: st.success(),
                stdout,
                stderr,
            }),
        }
    }

    /// [`Virsh::call`] that must succeed; returns stdout.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run_for(args, SHORT)
    }

    /// [`Virsh::run`] with a bound of its own.
    pub fn run_for(&self, args: &[&str], limit: Duration) -> anyhow::Result<String> {
        let r = self.call(args, limit)?;
        if !r.ok {
            anyhow::bail!(
                "`virsh -c {} {}` failed: {}",
                self.uri,
                args.join(" "),
                r.stderr.trim()
            );
        }
        Ok(r.stdout)
    }

    /// Refuse, with what to start, when no daemon answers at the URI.
    pub fn check_daemon(&self) -> anyhow::Result<()> {
        let r = self.call(&["version"], Duration::from_secs(15))?;
        if r.ok && r.stdout.contains("Running hypervisor") {
            return Ok(());
        }
        let why = r.stderr.trim().lines().last().unwrap_or("").to_string();
        if self.is_local() {
            crate::user_bail!(
                "no libvirt daemon answers at {}: {why}\n  fix: start it: `virtlogd -d && libvirtd -d` (on a host with systemd: `systemctl start libvirtd`); scripts/install-host-deps installs libvirt and QEMU",
                self.uri
            );
        }
        crate::user_bail!(
            "the hypervisor at {} does not answer: {why}\n  fix: check that you can log in there without a password (`ssh` with your key) and that libvirtd runs there (`virsh -c {} version`)",
            self.uri,
            self.uri
        )
    }

    /// Define an object (`define`, `net-define`, `pool-define`) from XML,
    /// written first to `file` (labctl's own state folder).
    pub fn define(&self, verb: &str, xml: &str, file: &Path) -> anyhow::Result<()> {
        if let Some(d) = file.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(file, xml)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
        self.run(&[verb, &file.to_string_lossy()])?;
        Ok(())
    }

    /// A domain's state (`running`, `shut off`, `paused`, …), `None` when it does not exist.
    pub fn domstate(&self, dom: &str) -> anyhow::Result<Option<String>> {
        let r = self.call(&["domstate", dom], SHORT)?;
        if r.ok {
            return Ok(Some(r.stdout.trim().to_string()));
        }
        if r.stderr.contains("ailed to get domain") || r.stderr.contains("no domain with") {
            return Ok(None);
        }
        anyhow::bail!("`virsh domstate {dom}` failed: {}", r.stderr.trim())
    }

    /// Names from a `--name` listing (`list --all --name`, `net-list --all --name`, …).
    pub fn names(&self, args: &[&str]) -> anyhow::Result<Vec<String>> {
        Ok(self
            .run(args)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    }

    /// Whether a network / pool exists and whether it is active.
    pub fn object_state(&self, kind: &str, name: &str) -> anyhow::Result<Option<bool>> {
        let r = self.call(&[&format!("{kind}-info"), name], SHORT)?;
        if !r.ok {
            return Ok(None);
        }
        // networks say `Active: yes`, pools `State: running`
        Ok(Some(r.stdout.lines().any(|l| {
            let mut w = l.splitn(2, ':');
            matches!(
                (w.next().map(str::trim), w.next().map(str::trim)),
                (Some("Active"), Some("yes")) | (Some("State"), Some("running"))
            )
        })))
    }

    /// The path of a volume on the hypervisor, `None` when absent.
    pub fn vol_path(&self, pool: &str, vol: &str) -> anyhow::Result<Option<String>> {
        let r = self.call(&["vol-path", "--pool", pool, vol], SHORT)?;
        Ok(r.ok.then(|| r.stdout.trim().to_string()))
    }
}
