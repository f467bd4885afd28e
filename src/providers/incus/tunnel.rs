//! The package cache for a lab whose network is on another host (see
//! [`super::placement`]): the nodes' apt asks port [`cache::PORT`] of their
//! gateway, as everywhere, and there the hop host's sshd listens for labctl
//! (`ssh -N -R GATEWAY:3142:…`, which needs `GatewayPorts clientspecified`
//! in that sshd's configuration), sending it back to this machine's cache.
//! It listens on the gateway only: the lab's bridge, nothing else.
//!
//! ```text
//! /var/lib/labctl/labs/<lab>/hop               the lab's nodes are reached through a hop:
//!                                              this host's cache runs for it
//! /var/lib/labctl/labs/<lab>/cache-tunnel.pid  the `ssh -R` labctl started (a session of its own)
//! /var/lib/labctl/labs/<lab>/cache-tunnel.log  its messages
//! ```
//!
//! `up` starts it (again, when it ended), `destroy` ends it by its PID,
//! checked against its command line.

use crate::inventory::Inventory;
use crate::jump::Jump;
use crate::providers::host::{cache, paths, process};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long the hop host may take to listen on the gateway.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);

fn dir(inv: &Inventory) -> PathBuf {
    paths::lab_dir(&inv.lab)
}

fn gateway(inv: &Inventory) -> anyhow::Result<std::net::Ipv4Addr> {
    match &inv.network {
        Some(n) => Ok(n.gateway),
        None => anyhow::bail!("internal error: incus lab without network"),
    }
}

/// Mark the lab as reached through a hop, so this host's cache runs for it
/// (the image build needs it too), and start the cache.
pub fn mark(inv: &Inventory) -> anyhow::Result<()> {
    let d = dir(inv);
    paths::private_dir(&d)?;
    std::fs::write(d.join("gateway"), format!("{}\n", gateway(inv)?))?;
    std::fs::write(d.join("hop"), "")?;
    cache::refresh(&crate::progress::Silent)
}

/// The `ssh -R` of the lab, if it still runs.
fn running(inv: &Inventory) -> anyhow::Result<Option<u32>> {
    let pid_file = dir(inv).join("cache-tunnel.pid");
    let Some(pid) = process::recorded(&pid_file) else {
        return Ok(None);
    };
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
    let want = format!("-R {}:{}:", gateway(inv)?, cache::PORT);
    Ok((cmd.starts_with("ssh ") && cmd.contains(&want)).then_some(pid))
}

/// Start the lab's `ssh -R` unless it runs; return once the hop host listens.
pub fn ensure(inv: &Inventory, jump: &Jump) -> anyhow::Result<()> {
    let gw = gateway(inv)?;
    let listen = SocketAddr::from((gw, cache::PORT));
    if running(inv)?.is_none() {
        let log_path = dir(inv).join("cache-tunnel.log");
        let log = std::fs::File::create(&log_path)?;
        let (a, port) = cache::listen();
        let mut cmd = jump.reverse_command(listen, SocketAddr::from((a, port)));
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: setsid(2) and close_range in the child before exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    process::no_inherited_fds();
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run `ssh` (package openssh-client): {e}"))?;
        process::record(&dir(inv).join("cache-tunnel.pid"), child.id());
    }
    let t = Instant::now();
    loop {
        let out = jump.run("ss -Hltn", Duration::from_secs(30))?;
        if out.split_whitespace().any(|w| w == listen.to_string()) {
            return Ok(());
        }
        if running(inv)?.is_none() || t.elapsed() > LISTEN_TIMEOUT {
            let log =
                std::fs::read_to_string(dir(inv).join("cache-tunnel.log")).unwrap_or_default();
            crate::user_bail!(
                "lab `{}`: the package cache's forwarding to {} on {} does not listen{}\n  fix: allow it in that host's sshd_config: `GatewayPorts clientspecified` (and `AllowTcpForwarding yes`), then `labctl up` again",
                inv.lab,
                listen,
                jump.label(),
                crate::text::last_lines(&log, 3)
                    .lines()
                    .map(|l| format!("\n  ssh: {l}"))
                    .collect::<String>()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// End the lab's `ssh -R` (by its PID) and forget the hop.
pub fn stop(inv: &Inventory) -> anyhow::Result<()> {
    if let Some(pid) = running(inv)? {
        // SAFETY: kill(2) of the PID labctl started, checked against its command line.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    for f in ["cache-tunnel.pid", "hop"] {
        let _ = std::fs::remove_file(dir(inv).join(f));
    }
    Ok(())
}
