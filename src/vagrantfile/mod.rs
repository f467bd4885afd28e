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

mod ruby;
mod statements;
#[cfg(test)]
mod tests;

use crate::error::user;
use ruby::{refuse, short, what_is};
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

/// What has been read so far.
#[derive(Debug, Default)]
struct Reader {
    /// The blocks open now, outermost first.
    blocks: Vec<Block>,
    /// The `config` level's settings.
    global: Settings,
    /// Each machine: name, line of its `vm.define`, its own settings.
    machines: Vec<(String, usize, Settings)>,
    insert_key: bool,
    /// Whether the `Vagrant.configure` block was read.
    configured: bool,
}

/// One statement, where it is and what it opens.
struct Stmt<'a> {
    file: &'a str,
    line: usize,
    text: &'a str,
    /// `do |var|` at its end: the text before it and the variable.
    opens: Option<(&'a str, String)>,
}

impl Stmt<'_> {
    /// Refuse the statement: `what`, and the fix.
    fn bad(&self, what: &str, fix: &str) -> anyhow::Error {
        refuse(self.file, self.line, what, fix)
    }

    /// Refuse the statement as something labctl does not read.
    fn other(&self) -> anyhow::Error {
        let (what, fix) = what_is(self.text);
        refuse(
            self.file,
            self.line,
            &format!("`{}`: {what}; {SUPPORTED}", short(self.text)),
            fix,
        )
    }
}

/// A statement kind's reader: `Ok(true)` when the statement is of its kind
/// and read, `Ok(false)` when it is not its kind.
type Handler = fn(&mut Reader, &Stmt) -> anyhow::Result<bool>;

/// Every statement kind labctl reads, tried in order; a statement no handler
/// takes is refused as something labctl does not read.
const HANDLERS: &[(&str, Handler)] = &[
    ("end", statements::end),
    ("Vagrant.configure", statements::configure),
    ("vm.define", statements::define),
    ("vm.provider", statements::provider_block),
    ("a provider block's setting", statements::provider_setting),
    ("ssh.insert_key", statements::insert_key),
    ("vm.box", statements::vm_box),
    ("vm.hostname", statements::hostname),
    ("vm.network", statements::network),
    ("vm.synced_folder", statements::synced_folder),
];

/// Read a Vagrantfile's text (`file` names it in messages).
pub fn parse(text: &str, file: &str) -> anyhow::Result<Vagrantfile> {
    let mut r = Reader {
        insert_key: true,
        ..Reader::default()
    };
    'statements: for (line, s) in ruby::statements(text) {
        let stmt = Stmt {
            file,
            line,
            text: &s,
            opens: ruby::do_block(&s),
        };
        if s.contains("#{") {
            return Err(stmt.other());
        }
        for (_, handler) in HANDLERS {
            if handler(&mut r, &stmt)? {
                continue 'statements;
            }
        }
        return Err(stmt.other());
    }
    r.finish(file)
}

impl Reader {
    /// The machines, each with the `config` level's settings where it sets none.
    fn finish(mut self, file: &str) -> anyhow::Result<Vagrantfile> {
        if !self.configured {
            return Err(user(format!(
                "{file}: no Vagrant.configure(\"2\") block\n  fix: write the machines inside Vagrant.configure(\"2\") do |config| … end"
            )));
        }
        if let Some(b) = self.blocks.last() {
            let what = match b {
                Block::Configure { .. } => "Vagrant.configure",
                Block::Machine { .. } => "a vm.define",
                Block::Provider { .. } => "a provider",
            };
            return Err(user(format!(
                "{file}: {what} block is not closed (a missing `end`)\n  fix: close every `do |x|` with `end`"
            )));
        }
        if self.machines.is_empty() {
            self.machines
                .push(("default".to_string(), 1, Settings::default()));
        }
        let global = self.global;
        let machines = self
            .machines
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
            insert_key: self.insert_key,
        })
    }

    /// The variable of the innermost block, when it is the configure or a
    /// machine block.
    fn config_or_machine_var(&self) -> Option<&str> {
        match self.blocks.last() {
            Some(Block::Configure { var }) | Some(Block::Machine { var, .. }) => Some(var),
            _ => None,
        }
    }

    /// The machine whose block is innermost: its index and variable.
    fn machine(&self) -> Option<(usize, String)> {
        match self.blocks.last() {
            Some(Block::Machine { index, var }) => Some((*index, var.clone())),
            _ => None,
        }
    }

    /// The `Vagrant.configure` block's variable.
    fn config_var(&self) -> Option<String> {
        self.blocks.iter().find_map(|b| match b {
            Block::Configure { var } => Some(var.clone()),
            _ => None,
        })
    }

    /// The settings of machine `target`, or of the `config` level.
    fn settings(&mut self, target: Option<usize>) -> &mut Settings {
        match target {
            Some(i) => &mut self.machines[i].2,
            None => &mut self.global,
        }
    }
}
