//! The command line: one file per subcommand, each a thin layer over the library.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// `println!` for a line that may hold what a file or a node wrote: made
/// printable first ([`crate::text::printable`]), so it carries no escape sequence.
macro_rules! say {
    ($($t:tt)*) => {
        println!("{}", crate::text::printable(&format!($($t)*)))
    };
}

pub mod class;
pub mod class_dashboard;
pub mod class_table;
pub mod configure;
pub mod dashboard;
pub mod destroy;
pub mod exec;
pub mod halt;
pub mod link;
pub mod progress;
pub mod report;
pub mod scenarios;
pub mod show;
pub mod snapshot;
pub mod ssh;
pub mod status;
pub mod up;
pub mod verify;

const ABOUT: &str = "Build high-availability teaching labs and prove they work";

const LONG_ABOUT: &str = "\
labctl builds a lab of Linux nodes, converges them to a scenario and proves the scenario works.

It replaces `vagrant up` + `ansible-playbook` + manual `dig`/`curl` checks with one binary and
three files: inventory.yaml (the machines), scenario.yaml (what to put on them and how to prove
it works) and templates/ (Jinja config files).";

const AFTER_HELP: &str = "\
Examples:
  labctl up                              # create nodo1, nodo2 and dns on 10.1.1.0/24
  labctl configure scenario.yaml         # bind9, apache2, corosync/pacemaker, idempotently
  labctl configure scenario.yaml --check --diff   # what would change, without changing it
  labctl verify                          # DNS answers, HTTP answers, the VIP fails over
  labctl scenarios                       # the scenarios of this project, with what each does
  labctl show scenarios/03-haproxy.yaml  # its plays, tasks and checks, without running it
  labctl ssh nodo1 ip -br addr           # run one command on a node
  labctl exec all -- hostname            # one command on every node, output per node
  labctl up --fresh nodo2                # rebuild one node from the image
  labctl unplug nodo1                    # cut its network cable (it keeps running); `plug` undoes
  labctl dashboard                       # a live page of the lab, faults one click away
  labctl snapshot save configured        # save the nodes; `snapshot restore configured` puts them back
  labctl destroy                         # remove everything the lab created
  labctl class up                        # one lab per student of roster.yaml

Exit codes: 0 success, 1 a host or check failed, 2 bad input (files, flags, keys).";

#[derive(Debug, Parser)]
#[command(name = "labctl", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// The lab's inventory file.
    #[arg(
        short = 'i',
        long = "inventory",
        global = true,
        default_value = "inventory.yaml",
        value_name = "FILE"
    )]
    pub inventory: PathBuf,
    /// More detail: -v shows unchanged tasks too, -vv the remote commands' output.
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print one JSON object with the results instead of text (where a command reports results).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Up(up::UpArgs),
    Status(status::StatusArgs),
    Halt(halt::HaltArgs),
    Fail(halt::FailArgs),
    Unplug(link::UnplugArgs),
    Plug(link::PlugArgs),
    Destroy(destroy::DestroyArgs),
    Ssh(ssh::SshArgs),
    SshConfig(ssh::SshConfigArgs),
    Configure(configure::ConfigureArgs),
    Verify(verify::VerifyArgs),
    Exec(exec::ExecArgs),
    Scenarios(scenarios::ScenariosArgs),
    Show(show::ShowArgs),
    Dashboard(dashboard::DashboardArgs),
    Snapshot(snapshot::SnapshotArgs),
    Class(class::ClassArgs),
}

/// Parse the command line, run, print the error if any; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Up(a) => up::run(a, &cli.global),
        Command::Status(a) => status::run(a, &cli.global),
        Command::Halt(a) => halt::run(a, &cli.global),
        Command::Fail(a) => halt::run_fail(a, &cli.global),
        Command::Unplug(a) => link::run_unplug(a, &cli.global),
        Command::Plug(a) => link::run_plug(a, &cli.global),
        Command::Destroy(a) => destroy::run(a, &cli.global),
        Command::Ssh(a) => ssh::run(a, &cli.global),
        Command::SshConfig(a) => ssh::run_config(a, &cli.global),
        Command::Configure(a) => configure::run(a, &cli.global),
        Command::Verify(a) => verify::run(a, &cli.global),
        Command::Exec(a) => exec::run(a, &cli.global),
        Command::Scenarios(a) => scenarios::run(a, &cli.global),
        Command::Show(a) => show::run(a, &cli.global),
        Command::Dashboard(a) => dashboard::run(a, &cli.global),
        Command::Snapshot(a) => snapshot::run(a, &cli.global),
        Command::Class(a) => class::run(a, &cli.global),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "error: {}",
                crate::redact::mask(&crate::error::format_error(&e))
            );
            crate::error::exit_code(&e)
        }
    }
}

/// Let a closed stdout or stderr end labctl quietly, like any Unix tool
/// (`labctl configure scenario.yaml --check --diff | head -3`): the default
/// SIGPIPE action ends the process at the first write to a pipe nobody reads
/// (the shell reports 141), where Rust's ignored SIGPIPE would turn that
/// write into a `println!` panic (exit 101). This covers every print of every
/// thread. The sockets labctl writes to are unaffected: std's TCP and libssh2
/// send with MSG_NOSIGNAL, so a node that goes away is still an error.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to its default, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The command as the user typed it after `labctl`, for a fix that repeats it
/// (`sudo labctl configure scenario.yaml`).
pub fn typed_command() -> String {
    std::env::args()
        .skip(1)
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c))
            {
                a
            } else {
                crate::shell::quote(&a)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Refuse at once, before anything else, a command that needs root on this
/// lab (see [`crate::providers::require_root`]).
pub fn need_root(inv: &crate::inventory::Inventory) -> anyhow::Result<()> {
    crate::providers::require_root(inv, &typed_command())
}

/// The project folder: the inventory's (`templates/`, `scenarios/`, `.labctl/` live there).
pub fn project_dir(g: &Global) -> PathBuf {
    match g.inventory.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Load the inventory named by `-i`.
pub fn load_inventory(g: &Global) -> anyhow::Result<crate::inventory::Inventory> {
    crate::providers::load_inventory(&g.inventory)
}

/// The inventory for making nodes: an nspawn lab whose inventory names no
/// `preinstall:` gets every package the project's scenarios install in its
/// package layer (built once, cached), so a first `configure` only configures.
pub fn with_scenario_packages(mut inv: crate::inventory::Inventory) -> crate::inventory::Inventory {
    if !inv.preinstall_given && crate::providers::capabilities(&inv).derives_layer {
        inv.preinstall = crate::catalog::packages(&inv);
    }
    inv
}

/// The error for a subcommand whose issue has not landed yet.
pub fn not_implemented(what: &str) -> anyhow::Result<i32> {
    Err(crate::error::user(format!(
        "`labctl {what}` is not implemented yet in this version of labctl"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh_command(args: &[&str]) -> (Vec<String>, u8) {
        let cli = Cli::try_parse_from(args).unwrap();
        match cli.command {
            Command::Ssh(a) => (a.command, cli.global.verbose),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn ssh_takes_a_command_with_or_without_double_dash() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(ssh_command(&["labctl", "ssh", "nodo1"]).0, v(&[]));
        assert_eq!(
            ssh_command(&["labctl", "ssh", "nodo1", "hostname"]).0,
            v(&["hostname"])
        );
        assert_eq!(
            ssh_command(&["labctl", "ssh", "nodo1", "ls", "-la"]).0,
            v(&["ls", "-la"])
        );
        assert_eq!(
            ssh_command(&["labctl", "ssh", "nodo1", "--", "ls", "-v"]).0,
            v(&["ls", "-v"])
        );
        // an option after the command belongs to the command
        assert_eq!(
            ssh_command(&["labctl", "ssh", "nodo1", "ls", "-v"]),
            (v(&["ls", "-v"]), 0)
        );
        // labctl's own options go before the node
        assert_eq!(
            ssh_command(&["labctl", "-v", "ssh", "nodo1", "ls"]),
            (v(&["ls"]), 1)
        );
        assert_eq!(
            ssh_command(&["labctl", "ssh", "-v", "nodo1", "ls"]),
            (v(&["ls"]), 1)
        );
    }

    #[test]
    fn exec_needs_a_command_after_double_dash() {
        assert!(Cli::try_parse_from(["labctl", "exec", "all"]).is_err());
        let cli = Cli::try_parse_from(["labctl", "exec", "all", "--", "ls", "-la"]).unwrap();
        match cli.command {
            Command::Exec(a) => assert_eq!(
                (a.target.as_str(), a.command.join(" ")),
                ("all", "ls -la".into())
            ),
            other => panic!("parsed as {other:?}"),
        }
    }
}
