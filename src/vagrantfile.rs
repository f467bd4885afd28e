//! Reading a `Vagrantfile` without running Ruby: the subset that describes
//! machines, read line by line.
//!
//! Read: `Vagrant.configure("2") do |config|`; `config.vm.define "name"` (or
//! `:name`) `do |x| … end` blocks; `vm.box`, `vm.hostname`; `vm.network
//! :private_network, ip: "…"` (one or more; `netmask:` too); `vm.synced_folder …,
//! disabled: true`; provider blocks (`config.vm.provider :libvirt do |p| … end`)
//! with `memory`, `cpus` and, for libvirt, `storage :file, :size => '512M'`;
//! `config.ssh.insert_key`; comments. A statement continues on the next line
//! after a trailing `,`.
//!
//! Anything else (Ruby variables, loops, `#{}` interpolation, `if`,
//! `customize`, provisioners, public networks, port forwards, …) is refused
//! with `Vagrantfile:LINE`, what it is and what labctl reads: never guessed.

use crate::error::user;
use std::net::Ipv4Addr;
use std::path::Path;

/// What labctl reads, for the refusals.
pub const SUPPORTED: &str = "labctl reads Vagrant.configure(\"2\"), config.vm.define blocks, vm.box, vm.hostname, vm.network :private_network (ip:, netmask:), vm.synced_folder … disabled: true, provider blocks with memory, cpus and storage, config.ssh.insert_key and comments";

/// One private network of a machine (`vm.network :private_network, ip: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateNet {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub line: usize,
}

/// One machine (`config.vm.define`), with the settings of the `config` level
/// filled in where the machine sets none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub name: String,
    /// The line of its `vm.define` (1 for the implicit `default` machine).
    pub line: usize,
    pub vm_box: Option<String>,
    pub hostname: Option<String>,
    pub networks: Vec<PrivateNet>,
    /// `memory` in MiB.
    pub memory: Option<u64>,
    pub cpus: Option<u32>,
    /// Extra disks (`libvirt.storage :file, :size => '512M'`), their sizes as
    /// written (`512M`), in order.
    pub disks: Vec<String>,
    /// The providers its blocks name (`libvirt`, `virtualbox`), in order.
    pub providers: Vec<String>,
}

/// A read Vagrantfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vagrantfile {
    pub machines: Vec<Machine>,
    /// `config.ssh.insert_key` (Vagrant's default: true).
    pub insert_key: bool,
}

/// Settings that a `config` level or a machine sets.
#[derive(Debug, Clone, Default)]
struct Settings {
    vm_box: Option<String>,
    hostname: Option<String>,
    networks: Vec<PrivateNet>,
    memory: Option<u64>,
    cpus: Option<u32>,
    disks: Vec<String>,
    providers: Vec<String>,
}

/// An open `do |var| … end` block.
#[derive(Debug)]
enum Block {
    Configure {
        var: String,
    },
    Machine {
        var: String,
        index: usize,
    },
    Provider {
        var: String,
        kind: String,
        machine: Option<usize>,
    },
}

/// Read `path`. Every refusal is a user error `PATH:LINE: what … \n  fix: …`.
pub fn load(path: &Path) -> anyhow::Result<Vagrantfile> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        user(format!(
            "{}: cannot read this Vagrantfile: {e}\n  fix: run labctl in the lab's folder (where the Vagrantfile is) or name it with -i",
            path.display()
        ))
    })?;
    parse(&text, &path.display().to_string())
}

/// `what` at `file:line`, and the fix.
fn refuse(file: &str, line: usize, what: &str, fix: &str) -> anyhow::Error {
    user(format!("{file}:{line}: {what}\n  fix: {fix}"))
}

/// Remove a `#` comment (outside quotes) and surrounding blanks.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev = '\0';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q && prev != '\\' => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return line[..i].trim(),
            None => {}
        }
        prev = c;
    }
    line.trim()
}

/// Logical statements: (first line number, text), comments removed, a line
/// ending in `,` joined with the next.
fn statements(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        if line.is_empty() {
            continue;
        }
        let (start, mut s) = open.take().unwrap_or((i + 1, String::new()));
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(line);
        if s.ends_with(',') {
            open = Some((start, s));
        } else {
            out.push((start, s));
        }
    }
    if let Some(o) = open {
        out.push(o);
    }
    out
}

/// A Ruby string literal (`"x"` or `'x'`), a symbol (`:x`) or a bare word:
/// its text, when it is one of those and holds no interpolation.
fn literal(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(sym) = s.strip_prefix(':') {
        return ident(sym).then(|| sym.to_string());
    }
    let q = s.chars().next()?;
    if (q == '"' || q == '\'') && s.len() >= 2 && s.ends_with(q) {
        let inner = &s[1..s.len() - 1];
        if inner.contains(q) || inner.contains('\\') || inner.contains("#{") {
            return None;
        }
        return Some(inner.to_string());
    }
    None
}

fn ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `do |var|` at the end of `s`: the text before it and the variable.
fn do_block(s: &str) -> Option<(&str, String)> {
    let s = s.trim_end();
    let rest = s.strip_suffix('|')?;
    let bar = rest.rfind('|')?;
    let var = rest[bar + 1..].trim();
    let head = rest[..bar].trim_end().strip_suffix("do")?.trim_end();
    ident(var).then(|| (head, var.to_string()))
}

/// The options of a call (`ip: "10.1.1.101", netmask: "255.255.255.0"` or
/// `:size => '512M'`): key and raw value, split at top-level commas.
fn options(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in split_commas(s) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = if let Some((k, v)) = part.split_once("=>") {
            (k.trim().strip_prefix(':')?.to_string(), v.trim())
        } else {
            let (k, v) = part.split_once(':')?;
            if k.trim().starts_with(['"', '\'']) {
                return None;
            }
            (k.trim().to_string(), v.trim())
        };
        if !ident(&k) {
            return None;
        }
        out.push((k, v.to_string()));
    }
    Some(out)
}

fn split_commas(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == ',' => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            None => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
}

/// A number (`1024`, `"1024"`).
fn number(v: &str) -> Option<u64> {
    let v = v.trim();
    literal(v).unwrap_or_else(|| v.to_string()).parse().ok()
}

/// Name a construct labctl does not read, from the statement's text.
fn what_is(s: &str) -> (&'static str, &'static str) {
    let words: Vec<&str> = s
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    if s.contains("#{") {
        (
            "string interpolation (`#{…}`) is Ruby code",
            "write the value itself, e.g. ip: \"10.1.1.101\"",
        )
    } else if has("each")
        || has("times")
        || has("upto")
        || has("for")
        || has("while")
        || has("until")
        || has("loop")
        || has("step")
    {
        (
            "a loop is Ruby code",
            "write one config.vm.define block per machine",
        )
    } else if has("if")
        || has("unless")
        || has("else")
        || has("elsif")
        || has("case")
        || has("when")
        || s.contains(" ? ")
    {
        (
            "a condition (if/unless/case) is Ruby code",
            "keep the branch you need and remove the condition",
        )
    } else if has("customize") {
        ("`customize` runs provider commands labctl cannot read", "remove the line; an extra disk is `libvirt.storage :file, :size => '512M'` in a libvirt provider block")
    } else if has("provision") {
        ("a provisioner (vm.provision) runs on `vagrant up`; labctl does not provision", "remove the block and run the playbook yourself after `labctl up` (ansible-playbook, or `labctl configure`)")
    } else if has("public_network") {
        ("a public network would put the lab on this machine's LAN; labctl keeps lab traffic on the machine", "use :private_network, ip: \"…\"")
    } else if has("forwarded_port") {
        (
            "a port forward; labctl nodes are reached at their own addresses, no forwarding needed",
            "remove the line and connect to the node's address",
        )
    } else if has("require") || has("load") || s.contains("ENV[") || s.contains("File.") {
        (
            "Ruby code (a require, ENV or File call)",
            "write the values themselves",
        )
    } else if s.contains(" = ")
        && words.first().is_some_and(|w| {
            w.chars().next().is_some_and(|c| c.is_ascii_uppercase()) || !s.contains('.')
        })
    {
        (
            "a Ruby variable or constant",
            "write its value where it is used",
        )
    } else if has("def") || has("class") || has("module") || has("lambda") || has("proc") {
        (
            "Ruby code (a method, class or block)",
            "write the machines out one by one",
        )
    } else {
        (
            "a setting labctl does not read",
            "remove the line (or ask for it in an issue)",
        )
    }
}

/// Read a Vagrantfile's text (`file` names it in messages).
pub fn parse(text: &str, file: &str) -> anyhow::Result<Vagrantfile> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut global = Settings::default();
    let mut machines: Vec<(String, usize, Settings)> = Vec::new();
    let mut insert_key = true;
    let mut configured = false;
    for (line, s) in statements(text) {
        let bad = |what: &str, fix: &str| refuse(file, line, what, fix);
        let other = || {
            let (what, fix) = what_is(&s);
            refuse(
                file,
                line,
                &format!("`{}`: {what}; {SUPPORTED}", short(&s)),
                fix,
            )
        };
        if s.contains("#{") {
            return Err(other());
        }
        if s == "end" {
            if blocks.pop().is_none() {
                return Err(bad("`end` without an open block", "remove it"));
            }
            continue;
        }
        if let Some((head, var)) = do_block(&s) {
            match blocks.last() {
                None => {
                    let h = head.replace(' ', "");
                    if h == "Vagrant.configure(\"2\")"
                        || h == "Vagrant.configure('2')"
                        || h == "Vagrant.configure(2)"
                    {
                        if configured {
                            return Err(bad(
                                "a second Vagrant.configure block",
                                "put every machine in one Vagrant.configure(\"2\") block",
                            ));
                        }
                        configured = true;
                        blocks.push(Block::Configure { var });
                        continue;
                    }
                    if head.starts_with("Vagrant.configure") {
                        return Err(bad(
                            "only configuration version \"2\" is read",
                            "write Vagrant.configure(\"2\") do |config|",
                        ));
                    }
                    return Err(other());
                }
                Some(Block::Configure { var: cv }) | Some(Block::Machine { var: cv, .. }) => {
                    let cv = cv.clone();
                    let machine = match blocks.last() {
                        Some(Block::Machine { index, var: mv }) => Some((*index, mv.clone())),
                        _ => None,
                    };
                    let config_var = blocks.iter().find_map(|b| match b {
                        Block::Configure { var } => Some(var.clone()),
                        _ => None,
                    });
                    if let Some(rest) = head.strip_prefix(&format!("{cv}.vm.define")) {
                        if machine.is_some() {
                            return Err(bad("a vm.define inside another machine's block", "close the first machine's block with `end` before the next vm.define"));
                        }
                        let mut args =
                            split_commas(rest.trim().trim_start_matches('(').trim_end_matches(')'));
                        let name = literal(&args.remove(0)).ok_or_else(other)?;
                        if let Some(extra) = args.iter().find(|a| !a.trim().is_empty()) {
                            return Err(bad(
                                &format!("vm.define option `{}` is not read", extra.trim()),
                                "remove the option (every machine is made by `labctl up`)",
                            ));
                        }
                        if !host_label(&name) || name == "all" {
                            return Err(bad(&format!("machine name {name:?} cannot be a node name (a host name: letters, digits and `-`)"), "rename the machine, e.g. config.vm.define \"nodo1\""));
                        }
                        if let Some(first) = machines.iter().find(|m| m.0 == name) {
                            return Err(bad(
                                &format!(
                                    "machine `{name}` is defined twice (first at line {})",
                                    first.1
                                ),
                                "give every machine its own name",
                            ));
                        }
                        machines.push((name, line, Settings::default()));
                        blocks.push(Block::Machine {
                            var,
                            index: machines.len() - 1,
                        });
                        continue;
                    }
                    // a provider block: on this machine (`x.vm.provider`) or, as
                    // Vagrant does, for every machine (`config.vm.provider`)
                    let on_machine = machine.as_ref().and_then(|(i, mv)| {
                        head.strip_prefix(&format!("{mv}.vm.provider"))
                            .map(|r| (Some(*i), r))
                    });
                    let on_all = config_var.as_ref().and_then(|c| {
                        head.strip_prefix(&format!("{c}.vm.provider"))
                            .map(|r| (None, r))
                    });
                    if let Some((target, rest)) = on_machine.or(on_all) {
                        let kind =
                            literal(rest.trim().trim_start_matches('(').trim_end_matches(')'))
                                .ok_or_else(other)?;
                        if kind != "libvirt" && kind != "virtualbox" {
                            return Err(bad(&format!("provider `{kind}`: labctl reads libvirt and virtualbox provider blocks"), "use `config.vm.provider :libvirt do |libvirt|` (or :virtualbox)"));
                        }
                        let st = match target {
                            Some(i) => &mut machines[i].2,
                            None => &mut global,
                        };
                        if !st.providers.contains(&kind) {
                            st.providers.push(kind.clone());
                        }
                        blocks.push(Block::Provider {
                            var,
                            kind,
                            machine: target,
                        });
                        continue;
                    }
                    return Err(other());
                }
                Some(Block::Provider { .. }) => return Err(other()),
            }
        }
        match blocks.last() {
            None => return Err(other()),
            Some(Block::Provider { var, kind, machine }) => {
                let st = match machine {
                    Some(i) => &mut machines[*i].2,
                    None => &mut global,
                };
                let Some(rest) = s.strip_prefix(&format!("{var}.")) else {
                    return Err(other());
                };
                let (key, value) = match rest.split_once('=') {
                    Some((k, v)) if !v.starts_with('>') && ident(k.trim()) => {
                        (k.trim(), Some(v.trim()))
                    }
                    _ => (rest.split_whitespace().next().unwrap_or(""), None),
                };
                match (key, value) {
                    ("memory", Some(v)) => {
                        let n = number(v).filter(|n| *n > 0).ok_or_else(|| {
                            bad(
                                &format!("memory `{v}` is not a number of MiB"),
                                "write e.g. libvirt.memory = 1024",
                            )
                        })?;
                        st.memory = Some(n);
                    }
                    ("cpus", Some(v)) => {
                        let n = number(v).filter(|n| (1..=64).contains(n)).ok_or_else(|| {
                            bad(
                                &format!("cpus `{v}` is not a number from 1 to 64"),
                                "write e.g. libvirt.cpus = 1",
                            )
                        })?;
                        st.cpus = Some(n as u32);
                    }
                    ("storage", None) if kind == "libvirt" => {
                        let args = rest["storage".len()..].trim();
                        let mut parts = split_commas(args);
                        if parts.first().map(|p| p.trim()) != Some(":file") {
                            return Err(bad(
                                "only `storage :file, :size => '…'` (an extra disk) is read",
                                "write libvirt.storage :file, :size => '512M'",
                            ));
                        }
                        parts.remove(0);
                        let opts = options(&parts.join(",")).ok_or_else(other)?;
                        let mut size = None;
                        for (k, v) in opts {
                            match k.as_str() {
                                "size" => {
                                    size = Some(
                                        literal(&v)
                                            .or_else(|| number(&v).map(|n| format!("{n}G")))
                                            .filter(|t| size_text(t))
                                            .ok_or_else(|| {
                                                bad(
                                                    &format!("size {v} is not a size"),
                                                    "write e.g. :size => '512M'",
                                                )
                                            })?,
                                    )
                                }
                                "type" | "bus" | "device" | "cache" | "allow_existing" => {}
                                _ => {
                                    return Err(bad(
                                        &format!("storage option `{k}` is not read"),
                                        "keep :file and :size",
                                    ))
                                }
                            }
                        }
                        let size = size.ok_or_else(|| {
                            bad("storage :file without :size", "add :size => '512M'")
                        })?;
                        st.disks.push(size);
                    }
                    ("name", Some(_)) | ("linked_clone", Some(_)) | ("gui", Some(_)) => {}
                    _ => {
                        let (what, fix) = what_is(&s);
                        let what = if what.starts_with("a setting") {
                            format!("provider setting `{kind}.{key}` is not read (labctl reads memory, cpus and, for libvirt, storage)")
                        } else {
                            format!("`{}`: {what}", short(&s))
                        };
                        return Err(bad(&what, fix));
                    }
                }
            }
            Some(Block::Configure { var }) | Some(Block::Machine { var, .. }) => {
                let machine = match blocks.last() {
                    Some(Block::Machine { index, var: mv }) => Some((*index, mv.clone())),
                    _ => None,
                };
                let var = var.clone();
                let config_var = blocks
                    .iter()
                    .find_map(|b| match b {
                        Block::Configure { var } => Some(var.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                // `x.vm.…` on the machine; `config.vm.…` inside a machine block is
                // Vagrant's global configuration
                let (target, rest) = if let Some(r) = s.strip_prefix(&format!("{var}.")) {
                    (machine.as_ref().map(|m| m.0), r)
                } else if let Some(r) = s.strip_prefix(&format!("{config_var}.")) {
                    (None, r)
                } else {
                    return Err(other());
                };
                let st = match target {
                    Some(i) => &mut machines[i].2,
                    None => &mut global,
                };
                if let Some(v) = rest.strip_prefix("ssh.insert_key") {
                    if target.is_some() {
                        return Err(bad(
                            "ssh.insert_key is read at the config level only",
                            "write config.ssh.insert_key = … outside the machine blocks",
                        ));
                    }
                    insert_key = match v.trim().strip_prefix('=').map(str::trim) {
                        Some("true") => true,
                        Some("false") => false,
                        _ => {
                            return Err(bad(
                                "ssh.insert_key takes true or false",
                                "write config.ssh.insert_key = false",
                            ))
                        }
                    };
                    continue;
                }
                if let Some(v) = rest
                    .strip_prefix("vm.box")
                    .filter(|v| v.trim_start().starts_with('='))
                {
                    let v = v.trim_start()[1..].trim();
                    st.vm_box = Some(literal(v).ok_or_else(other)?);
                    continue;
                }
                if let Some(v) = rest
                    .strip_prefix("vm.hostname")
                    .filter(|v| v.trim_start().starts_with('='))
                {
                    let v = v.trim_start()[1..].trim();
                    let h = literal(v).ok_or_else(other)?;
                    if !host_label(&h) {
                        return Err(bad(&format!("hostname {h:?} is not a host name labctl can give a node (letters, digits and `-`)"), "write e.g. vm.hostname = \"nodo1\""));
                    }
                    st.hostname = Some(h);
                    continue;
                }
                if let Some(args) = rest.strip_prefix("vm.network") {
                    let args = args.trim().trim_start_matches('(').trim_end_matches(')');
                    let mut parts = split_commas(args);
                    let kind = literal(&parts.remove(0)).ok_or_else(other)?;
                    if kind == "public_network" || kind == "forwarded_port" {
                        return Err(other());
                    }
                    if kind != "private_network" {
                        return Err(bad(
                            &format!("network type `{kind}` is not read"),
                            "use :private_network, ip: \"…\"",
                        ));
                    }
                    let opts = options(&parts.join(",")).ok_or_else(other)?;
                    let mut ip = None;
                    let mut prefix = 24u8;
                    for (k, v) in &opts {
                        match k.as_str() {
                            "ip" => {
                                let t = literal(v).ok_or_else(other)?;
                                ip = Some(t.parse::<Ipv4Addr>().map_err(|_| bad(&format!("ip {t:?} is not an IPv4 address"), "write e.g. ip: \"10.1.1.101\""))?);
                            }
                            "netmask" => {
                                let t = literal(v).ok_or_else(other)?;
                                prefix = netmask_prefix(&t).ok_or_else(|| bad(&format!("netmask {t:?} is not a netmask"), "write e.g. netmask: \"255.255.255.0\" (or leave it out: /24)"))?;
                            }
                            "type" if literal(v).as_deref() == Some("dhcp") => {
                                return Err(bad("a private network by DHCP: labctl gives every node a fixed address", "write ip: \"…\" instead of type: \"dhcp\""));
                            }
                            _ => return Err(bad(&format!("private network option `{k}` is not read (labctl reads ip: and netmask:)"), "remove the option")),
                        }
                    }
                    let ip = ip.ok_or_else(|| {
                        bad(
                            "a private network without ip:",
                            "write :private_network, ip: \"10.1.1.101\"",
                        )
                    })?;
                    st.networks.push(PrivateNet { ip, prefix, line });
                    continue;
                }
                if let Some(args) = rest.strip_prefix("vm.synced_folder") {
                    let disabled = split_commas(args).iter().any(|p| {
                        let p = p.replace(' ', "");
                        p == "disabled:true" || p == ":disabled=>true"
                    });
                    if !disabled {
                        return Err(bad(
                            "a synced folder: labctl does not share folders with the nodes",
                            "add `disabled: true` (copy files with a playbook instead)",
                        ));
                    }
                    continue;
                }
                return Err(other());
            }
        }
    }
    if !configured {
        return Err(user(format!(
            "{file}: no Vagrant.configure(\"2\") block\n  fix: write the machines inside Vagrant.configure(\"2\") do |config| … end"
        )));
    }
    if let Some(b) = blocks.last() {
        let what = match b {
            Block::Configure { .. } => "Vagrant.configure",
            Block::Machine { .. } => "a vm.define",
            Block::Provider { .. } => "a provider",
        };
        return Err(user(format!(
            "{file}: {what} block is not closed (a missing `end`)\n  fix: close every `do |x|` with `end`"
        )));
    }
    if machines.is_empty() {
        machines.push(("default".to_string(), 1, Settings::default()));
    }
    let machines = machines
        .into_iter()
        .map(|(name, line, st)| {
            let mut providers = global.providers.clone();
            for p in st.providers {
                if !providers.contains(&p) {
                    providers.push(p);
                }
            }
            Machine {
                name,
                line,
                vm_box: st.vm_box.or_else(|| global.vm_box.clone()),
                hostname: st.hostname,
                networks: if st.networks.is_empty() {
                    global.networks.clone()
                } else {
                    st.networks
                },
                memory: st.memory.or(global.memory),
                cpus: st.cpus.or(global.cpus),
                disks: if st.disks.is_empty() {
                    global.disks.clone()
                } else {
                    st.disks
                },
                providers,
            }
        })
        .collect();
    Ok(Vagrantfile {
        machines,
        insert_key,
    })
}

/// A host name label: letters, digits and `-`, not at either end.
fn host_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

/// A size as Vagrant's libvirt provider writes it: digits and an optional unit
/// (`512M`, `10G`).
fn size_text(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) && s.len() - digits.len() <= 3
}

/// `255.255.255.0` → 24.
fn netmask_prefix(s: &str) -> Option<u8> {
    let m = u32::from(s.parse::<Ipv4Addr>().ok()?);
    let p = m.leading_ones();
    (m.checked_shl(p).unwrap_or(0) == 0).then_some(p as u8)
}

/// A statement cut for a message.
fn short(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COURSE: &str = r#"# -*- mode: ruby -*-
Vagrant.configure("2") do |config|
  config.ssh.insert_key = false
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.provider :libvirt do |libvirt|
    libvirt.memory = 1024
  end
  config.vm.define :nodo1 do |nodo1|
    nodo1.vm.box = "debian/bookworm64"
    nodo1.vm.hostname = "nodo1"
    nodo1.vm.network :private_network, ip: "10.1.1.101"
    nodo1.vm.provider :libvirt do |lv|
      lv.storage :file, :size => '512M'
    end
  end
  config.vm.define "dns" do |dns|
    dns.vm.box = 'debian/bookworm64'  # a comment
    dns.vm.network "private_network",
      ip: "10.1.1.103", netmask: "255.255.255.0"
  end
end
"#;

    #[test]
    fn reads_the_course_shape() {
        let v = parse(COURSE, "Vagrantfile").unwrap();
        assert!(!v.insert_key);
        assert_eq!(v.machines.len(), 2);
        let n1 = &v.machines[0];
        assert_eq!(n1.name, "nodo1");
        assert_eq!(n1.line, 8);
        assert_eq!(n1.vm_box.as_deref(), Some("debian/bookworm64"));
        assert_eq!(n1.networks[0].ip.to_string(), "10.1.1.101");
        assert_eq!(n1.memory, Some(1024));
        assert_eq!(n1.disks, vec!["512M".to_string()]);
        assert_eq!(n1.providers, vec!["libvirt".to_string()]);
        let dns = &v.machines[1];
        assert_eq!(dns.networks[0].line, 18);
        assert_eq!(dns.networks[0].prefix, 24);
        assert!(dns.disks.is_empty());
    }

    #[test]
    fn refuses_with_the_line() {
        let cases = [
            ("N = 3\n", 1, "Ruby variable"),
            ("Vagrant.configure(\"2\") do |config|\n  (1..3).each do |i|\n", 2, "loop"),
            ("Vagrant.configure(\"2\") do |config|\n  config.vm.hostname = \"n#{i}\"\nend\n", 2, "interpolation"),
            ("Vagrant.configure(\"2\") do |config|\n  config.vm.provision \"shell\", inline: \"x\"\nend\n", 2, "provisioner"),
            ("Vagrant.configure(\"2\") do |config|\n  config.vm.network :forwarded_port, guest: 80, host: 8080\nend\n", 2, "port forward"),
            ("Vagrant.configure(\"2\") do |config|\n  config.vm.network :public_network\nend\n", 2, "public network"),
            ("Vagrant.configure(\"2\") do |config|\n  if true\n", 2, "condition"),
            ("Vagrant.configure(\"2\") do |config|\n  config.vm.provider :virtualbox do |v|\n    v.customize [\"modifyvm\", :id]\n  end\nend\n", 3, "customize"),
            ("Vagrant.configure(\"2\") do |config|\n  config.vm.synced_folder \".\", \"/vagrant\"\nend\n", 2, "synced folder"),
            ("Vagrant.configure(\"2\") do |config|\n", 0, "not closed"),
        ];
        for (text, line, what) in cases {
            let e = parse(text, "Vagrantfile").unwrap_err();
            let m = e.to_string();
            if line > 0 {
                assert!(m.starts_with(&format!("Vagrantfile:{line}: ")), "{m}");
            }
            assert!(m.contains(what), "{what}: {m}");
            assert!(m.contains("fix: "), "{m}");
            assert_eq!(crate::error::exit_code(&e), 2);
        }
    }

    #[test]
    fn no_define_is_one_default_machine() {
        let v = parse("Vagrant.configure(\"2\") do |config|\n  config.vm.box = \"debian/bookworm64\"\n  config.vm.network \"private_network\", ip: \"10.1.96.10\"\nend\n", "V").unwrap();
        assert_eq!(v.machines.len(), 1);
        assert_eq!(v.machines[0].name, "default");
        assert_eq!(v.machines[0].networks.len(), 1);
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask_prefix("255.255.255.0"), Some(24));
        assert_eq!(netmask_prefix("255.255.0.0"), Some(16));
        assert_eq!(netmask_prefix("255.0.255.0"), None);
    }
}
