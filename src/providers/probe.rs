//! Waiting for nodes: "answers SSH" means a TCP connection to the node's SSH
//! port gets an `SSH-2.0-…` banner. Several nodes are waited for in parallel,
//! each reporting to the caller's [`Progress`].

use crate::inventory::Node;
use crate::jump::{Jump, Stream};
use crate::progress::Progress;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Connect to `addr:port` (through `via` when the lab's network is on
/// another host) and read the SSH banner's first line.
pub fn ssh_banner(
    via: Option<&Jump>,
    addr: Ipv4Addr,
    port: u16,
    timeout: Duration,
) -> std::io::Result<String> {
    let sa = SocketAddr::from((addr, port));
    let mut s = Stream::connect(via, sa, timeout)?;
    // through a hop, the read waits for the hop's own login too
    s.set_read_timeout(Some(if via.is_some() {
        timeout.max(Duration::from_secs(10))
    } else {
        timeout
    }))?;
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    while !got.contains(&b'\n') && got.len() < 255 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    if line.starts_with("SSH-") {
        Ok(line)
    } else {
        Err(std::io::Error::other(format!(
            "not an SSH banner: {line:?}"
        )))
    }
}

/// Wait in parallel until every node answers SSH or `timeout` passes.
/// Once a node shows its SSH banner, `login(node)` must succeed too (a node
/// that is still booting shows the banner but refuses logins while
/// `/run/nologin` exists). `alive(node)` is asked between tries: when it
/// returns an error (the node's container died), waiting for that node stops
/// with that error. Returns, per node in order, the time it took or the error.
/// `via`: the SSH hop when the nodes' network is on another host.
pub fn wait_ssh(
    via: Option<&Jump>,
    nodes: &[&Node],
    timeout: Duration,
    progress: &dyn Progress,
    login: &(dyn Fn(&Node) -> Result<(), String> + Sync),
    alive: &(dyn Fn(&Node) -> anyhow::Result<()> + Sync),
) -> Vec<Result<Duration, anyhow::Error>> {
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|node| {
                s.spawn(move || {
                    progress.set(&node.name, "waiting for SSH");
                    let mut last = String::new();
                    let mut banner = false;
                    loop {
                        if !banner
                            && ssh_banner(via, node.address, node.port, Duration::from_millis(500))
                                .is_ok()
                        {
                            banner = true;
                            progress.set(&node.name, "SSH answers; logging in");
                        }
                        if banner {
                            match login(node) {
                                Ok(()) => {
                                    let took = start.elapsed();
                                    progress.finish(
                                        &node.name,
                                        &format!("answers SSH after {}", super::secs(took)),
                                    );
                                    return Ok(took);
                                }
                                Err(e) => last = e,
                            }
                        }
                        if let Err(e) = alive(node) {
                            progress.finish(&node.name, "failed");
                            return Err(e);
                        }
                        if start.elapsed() > timeout {
                            progress.finish(&node.name, "timed out");
                            return Err(anyhow::anyhow!(
                                "node {} ({}) did not answer SSH within {}{}",
                                node.name,
                                node.address,
                                super::secs(timeout),
                                if last.is_empty() {
                                    String::new()
                                } else {
                                    format!("; last login attempt: {last}")
                                }
                            ));
                        }
                        std::thread::sleep(Duration::from_millis(150));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(anyhow::anyhow!("internal error: waiting thread panicked"))
                })
            })
            .collect()
    })
}
