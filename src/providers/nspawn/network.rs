//! The lab network on the host: a bridge `lab-<lab>` holding the gateway
//! address, IPv4 forwarding, and an nftables table `labctl_<lab>` that
//! masquerades the lab subnet so nodes reach the package mirror through the
//! host. Nodes join the bridge through `systemd-nspawn --network-bridge`.

use crate::inventory::Inventory;
use std::path::Path;
use std::process::{Command, Stdio};

/// The nft table of a lab (`-` is not allowed in nft names).
pub fn nft_table(lab: &str) -> String {
    format!("labctl_{}", lab.replace('-', "_"))
}

/// Run a command; its stderr becomes the error.
fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run `{cmd}`: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether the network interface exists.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Whether the lab's nft table exists.
pub fn nft_table_exists(lab: &str) -> bool {
    run("nft", &["list", "tables", "ip"])
        .map(|s| {
            s.lines()
                .any(|l| l.trim() == format!("table ip {}", nft_table(lab)))
        })
        .unwrap_or(false)
}

/// Create (or complete) the bridge, forwarding and masquerading.
pub fn ensure(inv: &Inventory) -> anyhow::Result<()> {
    let Some(net) = &inv.network else {
        anyhow::bail!("internal error: nspawn lab without network");
    };
    let br = inv.bridge_name();
    if !link_exists(&br) {
        run("ip", &["link", "add", "name", &br, "type", "bridge"])?;
    }
    let cidr = format!("{}/{}", net.gateway, net.subnet.prefix);
    let has = crate::lab::local_addrs()?
        .iter()
        .any(|a| a.iface == br && a.addr == net.gateway);
    if !has {
        run("ip", &["addr", "add", &cidr, "dev", &br])?;
    }
    run("ip", &["link", "set", &br, "up"])?;
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| anyhow::anyhow!("cannot enable IPv4 forwarding: {e}"))?;
    let t = nft_table(&inv.lab);
    let rules = format!(
        "table ip {t} {{}}\nflush table ip {t}\ntable ip {t} {{\n  comment \"labctl lab {lab}: nodes reach the package mirror through the host\"\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    ip saddr {sub} ip daddr != {sub} masquerade\n  }}\n}}\n",
        lab = inv.lab,
        sub = net.subnet
    );
    // from a file of the lab's own folder, not a pipe: labctl never writes to
    // a pipe whose reader may be gone (SIGPIPE ends labctl quietly)
    let file = super::paths::lab_dir(&inv.lab).join("nftables.conf");
    std::fs::write(&file, rules)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
    run("nft", &["-f", &file.to_string_lossy()]).map_err(|e| {
        anyhow::anyhow!("{e}\n  fix: check that nftables works here (`nft list tables`)")
    })?;
    Ok(())
}

/// Remove the bridge and the nft table (absent ones are fine).
pub fn remove(inv: &Inventory) -> anyhow::Result<()> {
    let br = inv.bridge_name();
    if link_exists(&br) {
        run("ip", &["link", "del", &br])?;
    }
    if nft_table_exists(&inv.lab) {
        run("nft", &["delete", "table", "ip", &nft_table(&inv.lab)])?;
    }
    Ok(())
}
