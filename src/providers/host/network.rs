//! The lab network on the host: a bridge `lab-<lab>` holding the gateway
//! address (nodes join it through `systemd-nspawn --network-bridge`, VMs
//! through libvirt), and an nftables table `labctl_<lab>` (family `inet`) that
//! keeps the lab to itself:
//!
//! - forward: between the lab's own bridges (and between its nodes when
//!   `br_netfilter` makes bridged traffic pass this hook) everything; nothing
//!   else from or to the lab's bridges (the lab network and its further
//!   private networks) is forwarded: no node reaches the LAN, the
//!   Internet, another lab or the host's other networks, and nothing but the
//!   host opens a connection into the lab;
//! - input: from the lab's bridges the host accepts only its lab services on
//!   the lab's own gateway: the package cache ([`super::cache`], TCP 3142,
//!   sent on to where the one cache daemon listens on loopback by a `dnat` in
//!   prerouting; the bridges carry `route_localnet=1` for that, and nothing
//!   else from a lab to a loopback address is accepted),
//!   the fence daemon (TCP 1229, `libvirt: {fence: true}`), ping, and replies
//!   to connections the host opened (SSH to the nodes);
//! - `egress: nat` opens the lab: forwarding from its bridge to anything but
//!   another lab, masqueraded, and the replies. The host's global
//!   `ip_forward` is then set, and put back to what it was when the last
//!   open lab is removed (the value before is kept in
//!   `/var/lib/labctl/ip_forward.before`). Closed labs never touch it.

use crate::inventory::Inventory;
use std::path::Path;
use std::process::Command;

/// The nft table of a lab (`-` is not allowed in nft names).
pub fn nft_table(lab: &str) -> String {
    format!("labctl_{}", lab.replace('-', "_"))
}

/// Run a command; its stderr becomes the error.
fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = super::tool::checked(
        // its output and errors are parsed: English, whatever the host's locale
        Command::new(cmd).args(args).env("LC_ALL", "C"),
        &format!("`{cmd}`"),
        |o| {
            format!(
                "`{cmd} {}` failed: {}",
                args.join(" "),
                super::tool::stderr(o)
            )
        },
    )?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether the network interface exists.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Whether the lab's nft table exists.
pub fn nft_table_exists(lab: &str) -> bool {
    run("nft", &["list", "tables", "inet"])
        .map(|s| {
            s.lines()
                .any(|l| l.trim() == format!("table inet {}", nft_table(lab)))
        })
        .unwrap_or(false)
}

/// Create (or complete) the bridge and the lab's filter table; start (or
/// re-bind) the host's package cache on the lab gateways.
pub fn ensure(inv: &Inventory) -> anyhow::Result<()> {
    let Some(net) = &inv.network else {
        anyhow::bail!("internal error: lab without network");
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
    ensure_extra(inv)?;
    let dir = super::paths::lab_dir(&inv.lab);
    super::paths::private_dir(&dir)?;
    if inv.egress_nat {
        open_forwarding()?;
        std::fs::write(dir.join("egress"), "nat\n")?;
    } else {
        let _ = std::fs::remove_file(dir.join("egress"));
    }
    // from a file of the lab's own folder, not a pipe: labctl never writes to
    // a pipe whose reader may be gone (SIGPIPE ends labctl quietly)
    let file = dir.join("nftables.conf");
    std::fs::write(&file, rules(inv))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
    run("nft", &["-f", &file.to_string_lossy()]).map_err(|e| {
        anyhow::anyhow!("{e}\n  fix: check that nftables works here (`nft list tables`)")
    })?;
    // the cache's dnat to loopback: a per-bridge setting, gone with the bridge
    for b in bridges(inv) {
        let f = format!("/proc/sys/net/ipv4/conf/{b}/route_localnet");
        std::fs::write(&f, "1\n").map_err(|e| anyhow::anyhow!("cannot write {f}: {e}"))?;
    }
    std::fs::write(dir.join("gateway"), format!("{}\n", net.gateway))?;
    super::cache::refresh(&crate::progress::Silent)?;
    Ok(())
}

/// Every bridge of the lab: its network and its further private networks.
fn bridges(inv: &Inventory) -> Vec<String> {
    let mut v = vec![inv.bridge_name()];
    for n in inv.extra_networks() {
        if !v.contains(&n.bridge) {
            v.push(n.bridge.clone());
        }
    }
    v
}

/// The lab's nft table (see the module's documentation).
pub fn rules(inv: &Inventory) -> String {
    let t = nft_table(&inv.lab);
    let brs: Vec<String> = bridges(inv).iter().map(|b| format!("\"{b}\"")).collect();
    let brs = format!("{{ {} }}", brs.join(", "));
    let (gw, sub) = inv
        .network
        .as_ref()
        .map(|n| (n.gateway.to_string(), n.subnet.to_string()))
        .unwrap_or_default();
    let mut gws = vec![gw.clone()];
    for n in inv.extra_networks() {
        gws.push(n.gateway.to_string());
    }
    let gws = format!("{{ {} }}", gws.join(", "));
    let fence = if inv.libvirt.as_ref().is_some_and(|l| l.fence) {
        format!(
            "    iifname {brs} ip daddr {gws} tcp dport {} accept\n",
            crate::providers::libvirt::fence::PORT
        )
    } else {
        String::new()
    };
    let (egress_fwd, nat) = if inv.egress_nat {
        (
            format!(
                "    oifname {brs} ct state established,related accept\n    iifname \"{br}\" oifname != \"lab-*\" oifname != \"lb*\" accept\n",
                br = inv.bridge_name()
            ),
            format!(
                "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    ip saddr {sub} ip daddr != {sub} oifname != \"lab-*\" masquerade\n  }}\n"
            ),
        )
    } else {
        (String::new(), String::new())
    };
    format!(
        "table inet {t} {{}}\nflush table inet {t}\n\
table inet {t} {{\n  comment \"labctl lab {lab}: the lab reaches its own nodes and the host's lab services only{open}\"\n\
  chain forward {{\n    type filter hook forward priority filter; policy accept;\n\
    iifname {brs} oifname {brs} accept\n{egress_fwd}\
    iifname {brs} drop\n    oifname {brs} drop\n  }}\n\
  chain input {{\n    type filter hook input priority filter; policy accept;\n\
    iifname {brs} ct state established,related accept\n\
    iifname {brs} ct status dnat ip daddr {lo} tcp dport {lo_port} accept\n{fence}\
    iifname {brs} ip daddr {gws} icmp type {{ echo-request, destination-unreachable, time-exceeded }} accept\n\
    iifname {brs} drop\n  }}\n\
  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n\
    iifname {brs} ip daddr {gws} tcp dport {cache} dnat ip to {lo}:{lo_port}\n  }}\n{nat}}}\n",
        lab = inv.lab,
        open = if inv.egress_nat { "; egress: nat opens it to the Internet" } else { "" },
        cache = super::cache::PORT,
        lo = super::cache::listen().0,
        lo_port = super::cache::listen().1,
    )
}

/// Where the host's `ip_forward` before the first open lab is kept.
fn forward_before() -> std::path::PathBuf {
    super::paths::root().join("ip_forward.before")
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Forwarding on for an open lab (`egress: nat`), the value before kept once.
fn open_forwarding() -> anyhow::Result<()> {
    let now = std::fs::read_to_string(IP_FORWARD).unwrap_or_default();
    if !forward_before().exists() {
        std::fs::create_dir_all(super::paths::root())?;
        std::fs::write(forward_before(), now.trim())?;
    }
    if now.trim() != "1" {
        std::fs::write(IP_FORWARD, "1")
            .map_err(|e| anyhow::anyhow!("cannot enable IPv4 forwarding: {e}"))?;
    }
    Ok(())
}

/// When no open lab is left: the host's forwarding as it was before the first.
fn restore_forwarding() -> anyhow::Result<()> {
    let open_left = std::fs::read_dir(super::paths::root().join("labs"))
        .map(|rd| rd.flatten().any(|e| e.path().join("egress").exists()))
        .unwrap_or(false);
    if open_left {
        return Ok(());
    }
    if let Ok(before) = std::fs::read_to_string(forward_before()) {
        let v = if before.trim() == "1" { "1" } else { "0" };
        std::fs::write(IP_FORWARD, v)
            .map_err(|e| anyhow::anyhow!("cannot restore IPv4 forwarding to {v}: {e}"))?;
        std::fs::remove_file(forward_before())?;
    }
    Ok(())
}

/// The bridges of the further private networks (a Vagrantfile's `eth2`…):
/// each holds its subnet's `.1`; no NAT, no forwarding rule of their own.
fn ensure_extra(inv: &Inventory) -> anyhow::Result<()> {
    for n in inv.extra_networks() {
        if !link_exists(&n.bridge) {
            run("ip", &["link", "add", "name", &n.bridge, "type", "bridge"])?;
        }
        let has = crate::lab::local_addrs()?
            .iter()
            .any(|a| a.iface == n.bridge && a.addr == n.gateway);
        if !has {
            let cidr = format!("{}/{}", n.gateway, n.subnet.prefix);
            run("ip", &["addr", "add", &cidr, "dev", &n.bridge])?;
        }
        run("ip", &["link", "set", &n.bridge, "up"])?;
    }
    Ok(())
}

/// (interface in the node, its address, its subnet) on the further private
/// networks of node `node`.
pub fn extra_addresses(
    inv: &Inventory,
    node: &str,
) -> Vec<(String, std::net::Ipv4Addr, crate::inventory::Subnet)> {
    inv.extra_networks()
        .iter()
        .flat_map(|n| {
            n.members
                .iter()
                .filter(|(m, _, _)| m == node)
                .map(|(_, ifname, addr)| (ifname.clone(), *addr, n.subnet))
        })
        .collect()
}

/// The veths of node `node` on the further private networks: (host side,
/// node side, bridge). The host side is named from the lab and node (at most
/// 15 characters, `lx` + the network's digit + a hash), so it is the same at
/// every boot and never another lab's.
pub fn extra_links(inv: &Inventory, node: &str) -> Vec<(String, String, String)> {
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(
        format!("{}.{node}", inv.lab).as_bytes(),
    ));
    inv.extra_networks()
        .iter()
        .flat_map(|n| {
            let digit = n.bridge.chars().nth(2).unwrap_or('2');
            let host = format!("lx{digit}-{}", &h[..10]);
            n.members
                .iter()
                .filter(|(m, _, _)| m == node)
                .map(move |(_, ifname, _)| (host.clone(), ifname.clone(), n.bridge.clone()))
        })
        .collect()
}

/// Put a booting node's further veths into their bridges: nspawn makes them
/// (`--network-veth-extra`) but joins only the first to a bridge. Waits up to
/// `limit` for nspawn to create each.
pub fn attach_extra(inv: &Inventory, node: &str, limit: std::time::Duration) -> anyhow::Result<()> {
    for (host, _, bridge) in extra_links(inv, node) {
        let t = std::time::Instant::now();
        while !link_exists(&host) {
            if t.elapsed() > limit {
                anyhow::bail!("{node}: the veth {host} of its network on {bridge} did not appear");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        run("ip", &["link", "set", "dev", &host, "master", &bridge])?;
        run("ip", &["link", "set", "dev", &host, "up"])?;
    }
    Ok(())
}

/// Remove the bridge and the nft table (absent ones are fine); the host's
/// forwarding back as before when no open lab is left; the package cache
/// re-bound to the labs left, or stopped after the last one.
pub fn remove(inv: &Inventory) -> anyhow::Result<()> {
    // every further network's bridge labctl names for this lab, also one the
    // Vagrantfile no longer has
    for k in 2..=9 {
        let extra = format!("lb{k}-{}", inv.lab);
        if link_exists(&extra) {
            run("ip", &["link", "del", &extra])?;
        }
    }
    let br = inv.bridge_name();
    if link_exists(&br) {
        run("ip", &["link", "del", &br])?;
    }
    if nft_table_exists(&inv.lab) {
        run("nft", &["delete", "table", "inet", &nft_table(&inv.lab)])?;
    }
    // a table of an older labctl (family ip, the masquerade)
    if run("nft", &["list", "table", "ip", &nft_table(&inv.lab)]).is_ok() {
        run("nft", &["delete", "table", "ip", &nft_table(&inv.lab)])?;
    }
    let dir = super::paths::lab_dir(&inv.lab);
    let _ = std::fs::remove_file(dir.join("egress"));
    let _ = std::fs::remove_file(dir.join("gateway"));
    restore_forwarding()?;
    super::cache::refresh(&crate::progress::Silent)?;
    Ok(())
}

/// The host side of a running node's veth (its cable into the lab bridge),
/// found from inside: the node's `host0` is `host0@ifN`, N the index of its
/// peer here; the peer must be a port of the lab's bridge.
pub fn node_veth(inv: &Inventory, init: u32) -> anyhow::Result<String> {
    let ns = format!("--net=/proc/{init}/ns/net");
    let out = run(
        "nsenter",
        &[&ns, "ip", "-o", "link", "show", "dev", "host0"],
    )?;
    let index = peer_index(&out).ok_or_else(|| {
        anyhow::anyhow!("cannot read the node's host0 peer from `{}`", out.trim())
    })?;
    let br = inv.bridge_name();
    for e in std::fs::read_dir("/sys/class/net")?.flatten() {
        let idx = std::fs::read_to_string(e.path().join("ifindex")).unwrap_or_default();
        if idx.trim() == index.to_string() {
            let name = e.file_name().to_string_lossy().into_owned();
            let master = std::fs::read_link(e.path().join("master")).ok();
            if master.as_ref().and_then(|m| m.file_name()) != Some(std::ffi::OsStr::new(&br)) {
                anyhow::bail!("the node's veth {name} is not a port of the lab bridge {br}");
            }
            return Ok(name);
        }
    }
    anyhow::bail!("the host side of the node's veth (index {index}) is gone")
}

/// `N` of `2: host0@ifN: <…>` (`ip -o link show`).
fn peer_index(line: &str) -> Option<u32> {
    let after = line.split_once("host0@if")?.1;
    let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Set a host interface down (cable out) or up (cable in).
pub fn set_link(dev: &str, up: bool) -> anyhow::Result<()> {
    run(
        "ip",
        &["link", "set", "dev", dev, if up { "up" } else { "down" }],
    )?;
    Ok(())
}

/// Whether a host interface is administratively up (`IFF_UP`).
pub fn link_is_up(dev: &str) -> anyhow::Result<bool> {
    let flags = std::fs::read_to_string(Path::new("/sys/class/net").join(dev).join("flags"))?;
    let v = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)?;
    Ok(v & 1 == 1)
}

/// Whether something listens on `addr:port` (TCP, this network namespace).
pub fn listening(addr: std::net::Ipv4Addr, port: u16) -> bool {
    // /proc/net/tcp: local address as little-endian hex, state 0A = LISTEN
    let want = format!("{:08X}:{:04X}", u32::from(addr).swap_bytes(), port);
    std::fs::read_to_string("/proc/net/tcp")
        .map(|t| {
            t.lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1] == want && f[3] == "0A"
            })
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_peer_of_host0() {
        assert_eq!(
            super::peer_index("2: host0@if17: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500"),
            Some(17)
        );
        assert_eq!(super::peer_index("2: host0: <BROADCAST>"), None);
    }
}
