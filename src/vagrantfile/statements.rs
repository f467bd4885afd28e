//! One reader per statement kind of a Vagrantfile (see [`super::HANDLERS`]).
//! Each answers `Ok(false)` for a statement that is not its kind.

use super::ruby::{
    host_label, ident, literal, netmask_prefix, number, options, short, size_text, split_commas,
    what_is,
};
use super::{Block, PrivateNet, Reader, Settings, Stmt};
use std::net::Ipv4Addr;

/// `end`: closes the innermost block.
pub(super) fn end(r: &mut Reader, s: &Stmt) -> anyhow::Result<bool> {
    if s.text != "end" {
        return Ok(false);
    }
    if r.blocks.pop().is_none() {
        return Err(s.bad("`end` without an open block", "remove it"));
    }
    Ok(true)
}

/// `Vagrant.configure("2") do |config|`, outside every block.
pub(super) fn configure(r: &mut Reader, s: &Stmt) -> anyhow::Result<bool> {
    let (Some((head, var)), true) = (&s.opens, r.blocks.is_empty()) else {
        return Ok(false);
    };
    let h = head.replace(' ', "");
    if h == "Vagrant.configure(\"2\")"
        || h == "Vagrant.configure('2')"
        || h == "Vagrant.configure(2)"
    {
        if r.configured {
            return Err(s.bad(
                "a second Vagrant.configure block",
                "put every machine in one Vagrant.configure(\"2\") block",
            ));
        }
        r.configured = true;
        r.blocks.push(Block::Configure { var: var.clone() });
        return Ok(true);
    }
    if head.starts_with("Vagrant.configure") {
        return Err(s.bad(
            "only configuration version \"2\" is read",
            "write Vagrant.configure(\"2\") do |config|",
        ));
    }
    Ok(false)
}

/// `config.vm.define "name" do |x|`: a machine.
pub(super) fn define(r: &mut Reader, s: &Stmt) -> anyhow::Result<bool> {
    let (Some((head, var)), Some(cv)) = (&s.opens, r.config_or_machine_var()) else {
        return Ok(false);
    };
    let Some(rest) = head.strip_prefix(&format!("{cv}.vm.define")) else {
        return Ok(false);
    };
    if r.machine().is_some() {
        return Err(s.bad(
            "a vm.define inside another machine's block",
            "close the first machine's block with `end` before the next vm.define",
        ));
    }
    let mut args = split_commas(rest.trim().trim_start_matches('(').trim_end_matches(')'));
    let name = literal(&args.remove(0)).ok_or_else(|| s.other())?;
    if let Some(extra) = args.iter().find(|a| !a.trim().is_empty()) {
        return Err(s.bad(
            &format!("vm.define option `{}` is not read", extra.trim()),
            "remove the option (every machine is made by `labctl up`)",
        ));
    }
    if !host_label(&name) || name == "all" {
        return Err(s.bad(
            &format!(
                "machine name {name:?} cannot be a node name (a host name: letters, digits and `-`)"
            ),
            "rename the machine, e.g. config.vm.define \"nodo1\"",
        ));
    }
    if let Some(first) = r.machines.iter().find(|m| m.0 == name) {
        return Err(s.bad(
            &format!(
                "machine `{name}` is defined twice (first at line {})",
                first.1
            ),
            "give every machine its own name",
        ));
    }
    r.machines.push((name, s.line, Settings::default()));
    r.blocks.push(Block::Machine {
        var: var.clone(),
        index: r.machines.len() - 1,
    });
    Ok(true)
}

/// A provider block: on this machine (`x.vm.provider :libvirt do |p|`) or,
/// as Vagrant does, for every machine (`config.vm.provider`).
pub(super) fn provider_block(r: &mut Reader, s: &Stmt) -> anyhow::Result<bool> {
    let (Some((head, var)), Some(_)) = (&s.opens, r.config_or_machine_var()) else {
        return Ok(false);
    };
    let on_machine = r.machine().and_then(|(i, mv)| {
        head.strip_prefix(&format!("{mv}.vm.provider"))
            .map(|rest| (Some(i), rest))
    });
    let on_all = r.config_var().and_then(|c| {
        head.strip_prefix(&format!("{c}.vm.provider"))
            .map(|rest| (None, rest))
    });
    let Some((target, rest)) = on_machine.or(on_all) else {
        return Ok(false);
    };
    let kind = literal(rest.trim().trim_start_matches('(').trim_end_matches(')'))
        .ok_or_else(|| s.other())?;
    if kind != "libvirt" && kind != "virtualbox" {
        return Err(s.bad(
            &format!("provider `{kind}`: labctl reads libvirt and virtualbox provider blocks"),
            "use `config.vm.provider :libvirt do |libvirt|` (or :virtualbox)",
        ));
    }
    let st = r.settings(target);
    if !st.providers.contains(&kind) {
        st.providers.push(kind.clone());
    }
    r.blocks.push(Block::Provider {
        var: var.clone(),
        kind,
        machine: target,
    });
    Ok(true)
}

/// A setting inside a provider block: `memory`, `cpus`, libvirt's `storage`.
pub(super) fn provider_setting(r: &mut Reader, s: &Stmt) -> anyhow::Result<bool> {
    let Some(Block::Provider { var, kind, machine }) = r.blocks.last() else {
        return Ok(false);
    };
    let (kind, machine) = (kind.clone(), *machine);
    let Some(rest) = s.text.strip_prefix(&format!("{var}.")) else {
        return Ok(false);
    };
    if s.opens.is_some() {
        return Ok(false);
    }
    let (key, value) = match rest.split_once('=') {
        Some((k, v)) if !v.starts_with('>') && ident(k.trim()) => (k.trim(), Some(v.trim())),
        _ => (rest.split_whitespace().next().unwrap_or(""), None),
    };
    let st = r.settings(machine);
    match (key, value) {
        ("memory", Some(v)) => {
            let n = number(v).filter(|n| *n > 0).ok_or_else(|| {
                s.bad(
                    &format!("memory `{v}` is not a number of MiB"),
                    "write e.g. libvirt.memory = 1024",
                )
            })?;
            st.memory = Some(n);
        }
        ("cpus", Some(v)) => {
            let n = number(v).filter(|n| (1..=64).contains(n)).ok_or_else(|| {
                s.bad(
                    &format!("cpus `{v}` is not a number from 1 to 64"),
                    "write e.g. libvirt.cpus = 1",
                )
            })?;
            st.cpus = Some(n as u32);
        }
        ("storage", None) if kind == "libvirt" => {
            st.disks.push(storage(s, rest["storage".len()..].trim())?);
        }
        ("name", Some(_)) | ("linked_clone", Some(_)) | ("gui", Some(_)) => {}
        _ => {
            let (what, fix) = what_is(s.text);
            let what = if what.starts_with("a setting") {
                format!("provider setting `{kind}.{key}` is not read (labctl reads memory, cpus and, for libvirt, storage)")
            } else {
                format!("`{}`: {what}", short(s.text))
            };
            return Err(s.bad(&what, fix));
        }
    }
    Ok(true)
}

/// `libvirt.storage :file, :size => '512M'`: an extra disk's size.
fn storage(s: &Stmt, args: &str) -> anyhow::Result<String> {
    let mut parts = split_commas(args);
    if parts.first().map(|p| p.trim()) != Some(":file") {
        return Err(s.bad(
            "only `storage :file, :size => '…'` (an extra disk) is read",
            "write libvirt.storage :file, :size => '512M'",
        ));
    }
    parts.remove(0);
    let opts = options(&parts.join(",")).ok_or_else(|| s.other())?;
    let mut size = None;
    for (k, v) in opts {
        match k.as_str() {
            "size" => {
                size = Some(
                    literal(&v)
                        .or_else(|| number(&v).map(|n| format!("{n}G")))
                        .filter(|t| size_text(t))
                        .ok_or_else(|| {
                            s.bad(
                                &format!("size {v} is not a size"),
                                "write e.g. :size => '512M'",
                            )
                        })?,
                )
            }
            "type" | "bus" | "device" | "cache" | "allow_existing" => {}
            _ => {
                return Err(s.bad(
                    &format!("storage option `{k}` is not read"),
                    "keep :file and :size",
                ))
            }
        }
    }
    size.ok_or_else(|| s.bad("storage :file without :size", "add :size => '512M'"))
}

/// A setting of the configure or a machine block: the machine it sets
/// (`x.vm.…`; `None`: `config.vm.…`, Vagrant's global configuration even
/// inside a machine block) and the text after `x.`.
fn setting<'a>(r: &Reader, s: &Stmt<'a>) -> Option<(Option<usize>, &'a str)> {
    if s.opens.is_some() {
        return None;
    }
    let var = r.config_or_machine_var()?;
    let config_var = r.config_var().unwrap_or_default();
    if let Some(rest) = s.text.strip_prefix(&format!("{var}.")) {
        Some((r.machine().map(|m| m.0), rest))
    } else {
        s.text
            .strip_prefix(&format!("{config_var}."))
            .map(|rest| (None, rest))
    }
}

/// `config.ssh.insert_key = true|false`, at the config level.
pub(super) fn insert_key(r: &mut Reader, s: &Stmt) -> anyhow::Result<bool> {
    let Some((target, v)) =
        setting(r, s).and_then(|(t, rest)| rest.strip_prefix("ssh.insert_key").map(|v| (t, v)))
    else {
        return Ok(false);
    };
    if target.is_some() {
        return Err(s.bad(
            "ssh.insert_key is read at the config level only",
            "write config.ssh.insert_key = … outside the machine blocks",
        ));
    }
    r.insert_key = match v.trim().strip_prefix('=').map(str::trim) {
        Some("true") => true,
        Some("false") => false,
        _ => {
            return Err(s.bad(
                "ssh.insert_key takes true or false",
                "write config.ssh.insert_key = false",
            ))
        }
    };
    Ok(true)
}

/// `x.vm.KEY = VALUE`: the machine it sets and the value's text.
fn assignment<'a>(r: &Reader, s: &Stmt<'a>, key: &str) -> Option<(Option<usize>, &'a str)> {
    let (target, rest) = setting(r, s)?;
    let v = rest
        .strip_prefix(key)
        .filter(|v| v.trim_start().starts_with('='))?;
    Some((target, v.trim_start()[1..].trim()))
}

/// `x.vm.box = "debian/bookworm64"`.
pub(super) fn vm_box(r: &mut Reader, s: &Stmt) -> anyhow::Result<bool> {
    let Some((target, v)) = assignment(r, s, "vm.box") else {
        return Ok(false);
    };
    r.settings(target).vm_box = Some(literal(v).ok_or_else(|| s.other())?);
    Ok(true)
}

/// `x.vm.hostname = "nodo1"`.
pub(super) fn hostname(r: &mut Reader, s: &Stmt) -> anyhow::Result<bool> {
    let Some((target, v)) = assignment(r, s, "vm.hostname") else {
        return Ok(false);
    };
    let h = literal(v).ok_or_else(|| s.other())?;
    if !host_label(&h) {
        return Err(s.bad(
            &format!("hostname {h:?} is not a host name labctl can give a node (letters, digits and `-`)"),
            "write e.g. vm.hostname = \"nodo1\"",
        ));
    }
    r.settings(target).hostname = Some(h);
    Ok(true)
}

/// `x.vm.network :private_network, ip: "…", netmask: "…"`.
pub(super) fn network(r: &mut Reader, s: &Stmt) -> anyhow::Result<bool> {
    let Some((target, args)) =
        setting(r, s).and_then(|(t, rest)| rest.strip_prefix("vm.network").map(|a| (t, a)))
    else {
        return Ok(false);
    };
    let args = args.trim().trim_start_matches('(').trim_end_matches(')');
    let mut parts = split_commas(args);
    let kind = literal(&parts.remove(0)).ok_or_else(|| s.other())?;
    if kind == "public_network" || kind == "forwarded_port" {
        return Err(s.other());
    }
    if kind != "private_network" {
        return Err(s.bad(
            &format!("network type `{kind}` is not read"),
            "use :private_network, ip: \"…\"",
        ));
    }
    let opts = options(&parts.join(",")).ok_or_else(|| s.other())?;
    let mut ip = None;
    let mut prefix = 24u8;
    for (k, v) in &opts {
        match k.as_str() {
            "ip" => {
                let t = literal(v).ok_or_else(|| s.other())?;
                ip = Some(t.parse::<Ipv4Addr>().map_err(|_| {
                    s.bad(
                        &format!("ip {t:?} is not an IPv4 address"),
                        "write e.g. ip: \"10.1.1.101\"",
                    )
                })?);
            }
            "netmask" => {
                let t = literal(v).ok_or_else(|| s.other())?;
                prefix = netmask_prefix(&t).ok_or_else(|| {
                    s.bad(
                        &format!("netmask {t:?} is not a netmask"),
                        "write e.g. netmask: \"255.255.255.0\" (or leave it out: /24)",
                    )
                })?;
            }
            "type" if literal(v).as_deref() == Some("dhcp") => {
                return Err(s.bad(
                    "a private network by DHCP: labctl gives every node a fixed address",
                    "write ip: \"…\" instead of type: \"dhcp\"",
                ));
            }
            _ => {
                return Err(s.bad(
                    &format!(
                        "private network option `{k}` is not read (labctl reads ip: and netmask:)"
                    ),
                    "remove the option",
                ))
            }
        }
    }
    let ip = ip.ok_or_else(|| {
        s.bad(
            "a private network without ip:",
            "write :private_network, ip: \"10.1.1.101\"",
        )
    })?;
    r.settings(target).networks.push(PrivateNet {
        ip,
        prefix,
        line: s.line,
    });
    Ok(true)
}

/// `x.vm.synced_folder …, disabled: true` (any other synced folder is refused).
pub(super) fn synced_folder(r: &mut Reader, s: &Stmt) -> anyhow::Result<bool> {
    let Some(args) = setting(r, s).and_then(|(_, rest)| rest.strip_prefix("vm.synced_folder"))
    else {
        return Ok(false);
    };
    let disabled = split_commas(args).iter().any(|p| {
        let p = p.replace(' ', "");
        p == "disabled:true" || p == ":disabled=>true"
    });
    if !disabled {
        return Err(s.bad(
            "a synced folder: labctl does not share folders with the nodes",
            "add `disabled: true` (copy files with a playbook instead)",
        ));
    }
    Ok(true)
}
