//! A node's file system: an overlay whose lower layer is the cached image
//! (never modified) and whose upper layer is the node's own, so a halted node
//! keeps its files. Nothing a node writes is copied out to the host: its
//! packages come from the host's cache ([`super::cache`]), through the apt
//! proxy written here.
//!
//! On creation the node gets its hostname, `/etc/hosts` with every node, a
//! static address on `host0` (`10-host0.network`, sorting before the image's
//! `80-container-host0.network`), DNS, the apt proxy (the host's package
//! cache on the lab gateway), a machine id, its own ed25519 host key and the
//! lab user with passwordless sudo and the lab's public key.

use super::paths::NodePaths;
use crate::inventory::{Inventory, Node};
use crate::sh;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Mount points (from /proc/mounts) at or below `prefix`.
pub fn mounts_under(prefix: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut v: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(unescape_mount)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(prefix))
        .collect();
    // deepest first, so unmounting in order works
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

pub(super) fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Whether `p` is a mount point.
pub fn is_mounted(p: &Path) -> bool {
    mounts_under(p).iter().any(|m| m == p)
}

fn cpath(p: &Path) -> anyhow::Result<CString> {
    Ok(CString::new(p.as_os_str().as_bytes())?)
}

pub fn mount_overlay(lower: &Path, upper: &Path, work: &Path, target: &Path) -> anyhow::Result<()> {
    for d in [upper, work, target] {
        std::fs::create_dir_all(d)?;
    }
    if is_mounted(target) {
        return Ok(());
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let src = CString::new("overlay")?;
    let fstype = CString::new("overlay")?;
    let data = CString::new(opts.clone())?;
    let tgt = cpath(target)?;
    // SAFETY: all pointers are valid NUL-terminated strings for the call's duration.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr() as *const libc::c_void,
        )
    };
    if rc != 0 {
        anyhow::bail!(
            "cannot mount the overlay on {} ({opts}): {}",
            target.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Unmount `p` if mounted (lazily when busy).
pub fn unmount(p: &Path) -> anyhow::Result<()> {
    if !is_mounted(p) {
        return Ok(());
    }
    let c = cpath(p)?;
    // SAFETY: valid C string.
    if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
        // SAFETY: as above.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            anyhow::bail!(
                "cannot unmount {}: {}",
                p.display(),
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// Unmount both overlays of a node.
pub fn unmount_node(np: &NodePaths) -> anyhow::Result<()> {
    for m in mounts_under(&np.dir) {
        unmount(&m)?;
    }
    Ok(())
}

/// The node's lower layers (`overlay`'s `lowerdir`): chosen when the node is
/// created (`layer:image`, or the image alone) and kept in its folder, so a
/// node always boots on the layers its files were made on.
fn lower_layers(np: &NodePaths, image: &Path, layer: Option<&Path>) -> anyhow::Result<String> {
    if let Ok(s) = std::fs::read_to_string(np.lower()) {
        if !s.trim().is_empty() {
            return Ok(s.trim().to_string());
        }
    }
    if np.created().exists() {
        // made before nodes recorded their layers: the image alone
        return Ok(image.display().to_string());
    }
    let lower = match layer {
        Some(l) => format!("{}:{}", l.display(), image.display()),
        None => image.display().to_string(),
    };
    std::fs::create_dir_all(&np.dir)?;
    std::fs::write(np.lower(), format!("{lower}\n"))?;
    Ok(lower)
}

/// Mount the node's overlays; configure the node's files the first time.
/// A new node gets the package `layer` (if any) between the image and its own files.
pub fn prepare(
    inv: &Inventory,
    node: &Node,
    image: &Path,
    layer: Option<&Path>,
    lab_pubkey: &str,
    nameservers: &[String],
) -> anyhow::Result<()> {
    let np = NodePaths::new(&inv.lab, &node.name);
    let lower = lower_layers(&np, image, layer)?;
    mount_overlay(Path::new(&lower), &np.upper(), &np.work(), &np.merged())?;
    if !np.created().exists() {
        configure(inv, node, &np.merged(), lab_pubkey, nameservers).map_err(|e| {
            anyhow::anyhow!(
                "preparing node {}'s files in {}: {e:#}",
                node.name,
                np.dir.display()
            )
        })?;
        std::fs::write(np.created(), "")?;
    }
    Ok(())
}

pub fn write(root: &Path, rel: &str, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    // a symlink (e.g. resolv.conf) must not be followed out of the node
    if p.symlink_metadata().is_ok() {
        std::fs::remove_file(&p)?;
    }
    std::fs::write(&p, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn configure(
    inv: &Inventory,
    node: &Node,
    root: &Path,
    lab_pubkey: &str,
    nameservers: &[String],
) -> anyhow::Result<()> {
    let Some(net) = &inv.network else {
        anyhow::bail!("internal error: nspawn lab without network");
    };
    // host0, or eth1 on a Vagrant-shaped node (as a box names it)
    let nic = inv.nic();
    let mut netf = format!(
        "# labctl: static address on the lab bridge (sorts before 80-container-host0.network)\n[Match]\nName={nic}\n\n[Network]\nAddress={}/{}\nGateway={}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n",
        node.address, net.subnet.prefix, net.gateway
    );
    for ns in nameservers {
        netf.push_str(&format!("DNS={ns}\n"));
    }
    write_identity(
        inv,
        node,
        root,
        (&format!("etc/systemd/network/10-{nic}.network"), &netf),
        nameservers,
    )?;
    if inv.vagrant.is_some() {
        vagrant_shape(root)?;
    }
    for (ifname, addr, subnet) in super::network::extra_addresses(inv, &node.name) {
        write(
            root,
            &format!("etc/systemd/network/11-{ifname}.network"),
            &format!(
                "# labctl: static address on a further private network (no gateway: the lab network has it)\n[Match]\nName={ifname}\n\n[Network]\nAddress={addr}/{}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n",
                subnet.prefix
            ),
            0o644,
        )?;
    }
    let script = user_script(inv)?;
    // (linger: the user's systemd manager starts at boot, not inside the first
    // SSH session, which made labctl's first remote command ~100 ms slower)
    super::tool::checked(
        Command::new("chroot")
            .arg(root)
            .args(["/bin/sh", "-c", script.as_str()])
            .env("LABCTL_PUBKEY", lab_pubkey.trim()),
        "chroot",
        |o| {
            format!(
                "creating user {} failed: {}",
                inv.ssh.user,
                super::tool::all_output(o)
            )
        },
    )?;
    Ok(())
}

/// What makes a node look like a Vagrant box's: nspawn's `host0` renamed
/// `eth1` at every boot, before networkd starts (no udev in a container, so
/// no `.link` file would do it), and apt installing recommended packages, as
/// Debian does (labctl's image does not).
fn vagrant_shape(root: &Path) -> anyhow::Result<()> {
    write(
        root,
        "etc/systemd/system/labctl-eth1.service",
        "# labctl: the lab network's interface is eth1, as in a Vagrant box\n[Unit]\nDescription=Name the lab interface eth1\nDefaultDependencies=no\nBefore=systemd-networkd.service network-pre.target\nWants=network-pre.target\nConditionPathExists=/sys/class/net/host0\n\n[Service]\nType=oneshot\nExecStart=ip link set dev host0 name eth1\n\n[Install]\nWantedBy=sysinit.target\n",
        0o644,
    )?;
    let wants = root.join("etc/systemd/system/sysinit.target.wants");
    std::fs::create_dir_all(&wants)?;
    let link = wants.join("labctl-eth1.service");
    if link.symlink_metadata().is_err() {
        std::os::unix::fs::symlink("/etc/systemd/system/labctl-eth1.service", &link)?;
    }
    write(
        root,
        "etc/apt/apt.conf.d/91labctl-vagrant",
        "// labctl: a Vagrant-shaped node installs recommended packages, as Debian does\nAPT::Install-Recommends \"true\";\n",
        0o644,
    )
}

/// A node's identity, written under `root` (its file system, or a seed folder
/// that a VM copies onto its own at first boot): hostname, `/etc/hosts` with
/// every node, the network file `network` (path, text), DNS, a machine id and
/// its own ed25519 host key.
pub fn write_identity(
    inv: &Inventory,
    node: &Node,
    root: &Path,
    network: (&str, &str),
    nameservers: &[String],
) -> anyhow::Result<()> {
    write(
        root,
        "etc/hostname",
        &format!("{}\n", inv.hostname_of(&node.name)),
        0o644,
    )?;
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\n# lab nodes (labctl)\n",
    );
    for n in &inv.nodes {
        let h = inv.hostname_of(&n.name);
        if h == n.name {
            hosts.push_str(&format!("{}\t{}\n", n.address, n.name));
        } else {
            hosts.push_str(&format!("{}\t{h} {}\n", n.address, n.name));
        }
    }
    write(root, "etc/hosts", &hosts, 0o644)?;
    write(root, network.0, network.1, 0o644)?;
    let resolv: String = nameservers
        .iter()
        .map(|n| format!("nameserver {n}\n"))
        .collect();
    write(root, "etc/resolv.conf", &resolv, 0o644)?;
    // the cache runs on this machine: nspawn nodes and local VMs (a remote
    // hypervisor's VMs reach the mirror through its libvirt NAT)
    let local = inv
        .libvirt
        .as_ref()
        .is_none_or(|l| l.uri == "qemu:///system");
    if let (Some(net), true) = (&inv.network, local) {
        write(
            root,
            "etc/apt/apt.conf.d/95labctl-proxy",
            &super::cache::node_apt_conf(net.gateway),
            0o644,
        )?;
    }
    let id: u128 = rand::random();
    write(root, "etc/machine-id", &format!("{id:032x}\n"), 0o444)?;
    // No /run/nologin at boot: systemd-tmpfiles makes it and
    // systemd-user-sessions removes it, and when that unit fails under load
    // (seen here) the lab user could never log in. An empty file of the same
    // name masks /usr/lib/tmpfiles.d/systemd-nologin.conf.
    write(root, "etc/tmpfiles.d/systemd-nologin.conf", "", 0o644)?;
    if node.port != 22 {
        write(
            root,
            "etc/ssh/sshd_config.d/10-labctl-port.conf",
            &format!("Port {}\n", node.port),
            0o644,
        )?;
    }
    let key = root.join("etc/ssh/ssh_host_ed25519_key");
    if !key.exists() {
        std::fs::create_dir_all(root.join("etc/ssh"))?;
        super::keys::keygen(&key, &format!("root@{}", node.name))?;
    }
    Ok(())
}

/// The script (run as root on the node, with the lab's public key in
/// `$LABCTL_PUBKEY`) that makes the lab user with passwordless sudo and the
/// lab key, and lets its systemd manager start at boot.
pub fn user_script(inv: &Inventory) -> anyhow::Result<crate::shell::Script> {
    let user = &inv.ssh.user;
    if !crate::inventory::valid_user(user) {
        crate::user_bail!(
            "{}: ssh.user `{user}` is not a usable Linux user name\n  fix: use lower-case letters, digits, `_` and `-` (e.g. vagrant)",
            inv.path.display()
        );
    }
    let home = if user == "root" {
        "/root".to_string()
    } else {
        format!("/home/{user}")
    };
    let mut script = sh!("set -e\nu={}\nh={}", user, home);
    script.line(
        r#"if [ "$u" != root ] && ! id -u "$u" >/dev/null 2>&1; then useradd --create-home --shell /bin/bash -- "$u"; fi
install -d -m 700 -o "$u" -g "$(id -gn "$u")" "$h/.ssh"
printf '%s\n' "$LABCTL_PUBKEY" > "$h/.ssh/authorized_keys"
chown "$u:$(id -gn "$u")" "$h/.ssh/authorized_keys"
chmod 600 "$h/.ssh/authorized_keys"
if [ "$u" != root ]; then printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$u" > /etc/sudoers.d/labctl; chmod 440 /etc/sudoers.d/labctl; fi
mkdir -p /var/lib/systemd/linger && touch "/var/lib/systemd/linger/$u""#,
    );
    // the per-node secrets of packages a package layer installed
    script.line(super::layer::NODE_SECRETS);
    Ok(script)
}

/// The host's DNS servers that a node of an open lab (`egress: nat`) uses
/// through the NAT (not loopback). A closed lab's nodes get none: nothing
/// beyond the lab answers them, and apt needs no name (the proxy resolves).
pub fn nameservers(inv: &Inventory) -> Vec<String> {
    if inv.egress_nat {
        host_nameservers()
    } else {
        Vec::new()
    }
}

/// The host's DNS servers (not loopback).
pub fn host_nameservers() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(|s| s.trim().to_string())
        .filter(|s| {
            s.parse::<std::net::Ipv4Addr>()
                .map(|a| !a.is_loopback())
                .unwrap_or(false)
        })
        .collect()
}
