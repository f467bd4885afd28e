//! `labctl class …`: one lab per student of a roster (see `crate::class`).

use super::Global;
use crate::class::run::{self, LabResult, Outcome};
use crate::class::{access, login, Class, Member};
use crate::progress::Progress;
use clap::{Args, Subcommand};
use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// A class: one lab per student of a roster, each reachable only by its student.
#[derive(Debug, Args)]
#[command(after_help = "\
roster.yaml (beside inventory.yaml, or --roster FILE):
  class: net1                      # optional: labs are <class>-<student>, the login labctl-<class>
  pool: 10.2.0.0/16                # optional: the subnets labctl gives the labs
  server: {host: lab.school.example, port: 22}   # what students connect to (optional host_key:)
  students:
    ana: {key: \"ssh-ed25519 AAAA… ana@laptop\"}
    bob: {key: \"ssh-ed25519 AAAA…\", lab: net1-bob}   # lab: optional, at most 11 characters

Each student's lab is the project's inventory with its own lab name and subnet (recorded in
.labctl/class/seats.json: stable across runs; adding or removing a student touches only
that lab). Students reach their nodes through the login labctl-<class> on this machine,
which can only forward to their own nodes (authorized_keys `restrict,permitopen=…`, no shell).

Examples:
  labctl class up                       # build every student's lab (4 at once)
  labctl class configure scenario.yaml
  labctl class verify --csv > grades.csv
  labctl class ssh-config ana > ana.ssh # what ana gets: ssh -F ana.ssh nodo1
  labctl class destroy                  # every lab and the login")]
pub struct ClassArgs {
    /// The class's roster.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        default_value = "roster.yaml"
    )]
    pub roster: PathBuf,
    /// How many labs to work on at once.
    #[arg(long, global = true, value_name = "N", default_value_t = 4)]
    pub parallel: usize,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Build (or boot) the students' labs, put each student's key on their nodes, and open their login.
    Up {
        /// Only these students (default: the whole roster).
        students: Vec<String>,
        /// Build even when labctl's capacity estimate says this host cannot hold the labs.
        #[arg(long)]
        force: bool,
    },
    /// Converge every lab to a scenario.
    Configure {
        scenario: PathBuf,
        students: Vec<String>,
    },
    /// Run the scenario's checks on every lab: a table student × check.
    Verify {
        /// The scenario (default: each lab's last configured).
        #[arg(long, value_name = "SCENARIO")]
        scenario: Option<PathBuf>,
        /// Leave out the checks of a kind; repeatable.
        #[arg(long, value_name = "KIND", value_parser = clap::builder::PossibleValuesParser::new(crate::checks::CheckKind::NAMES))]
        skip: Vec<String>,
        /// CSV (for a grade book) instead of the table.
        #[arg(long)]
        csv: bool,
        students: Vec<String>,
    },
    /// Each lab's nodes.
    Status {},
    /// Save or restore every lab's nodes under a name.
    Snapshot {
        #[command(subcommand)]
        action: SnapAction,
    },
    /// A shell or one command on a student's node (as `labctl ssh`).
    Ssh {
        student: String,
        node: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// The OpenSSH config a student gets (`ssh -F FILE nodo1`).
    SshConfig {
        student: String,
        /// Print the known-hosts lines the config's file must hold instead.
        #[arg(long)]
        known_hosts: bool,
        /// The student's private key, as their config names it.
        #[arg(long, value_name = "PATH")]
        identity: Option<String>,
        /// The known-hosts file, as their config names it.
        #[arg(long, value_name = "PATH")]
        known_hosts_file: Option<String>,
    },
    /// Remove students' labs (default: all, and the class's login).
    Destroy { students: Vec<String> },
}

#[derive(Debug, Subcommand)]
pub enum SnapAction {
    Save { name: String },
    Restore { name: String },
}

/// One line per lab on a terminal (a spinner each); elsewhere only each lab's last line.
struct Lines(Option<super::progress::Draw>);

impl Lines {
    fn new() -> Lines {
        Lines(
            std::io::stderr()
                .is_terminal()
                .then(super::progress::Draw::new),
        )
    }
}

impl Progress for Lines {
    fn start(&self, labels: &[&str]) {
        if let Some(d) = &self.0 {
            d.start(labels)
        }
    }
    fn set(&self, label: &str, msg: &str) {
        if let Some(d) = &self.0 {
            d.set(label, msg)
        }
    }
    fn finish(&self, label: &str, msg: &str) {
        match &self.0 {
            Some(d) => d.finish(label, msg),
            None => eprintln!("{label}: {}", crate::text::printable(msg)),
        }
    }
    fn line(&self, msg: &str) {
        if let Some(d) = &self.0 {
            d.line(msg)
        }
    }
}

fn roster_path(a: &ClassArgs, g: &Global) -> PathBuf {
    if a.roster.is_relative() && a.roster == std::path::Path::new("roster.yaml") {
        super::project_dir(g).join("roster.yaml")
    } else {
        a.roster.clone()
    }
}

pub fn run(a: ClassArgs, g: &Global) -> anyhow::Result<i32> {
    let project = super::load_inventory(g)?;
    let mut class = Class::load(project, &roster_path(&a, g))?;
    if !class.project.provider.creates_nodes {
        crate::user_bail!(
            "{}: provider {} does not make nodes, and a class makes one lab per student\n  fix: use `provider: nspawn` (the default) for a class",
            class.project.path.display(),
            class.project.provider.as_str()
        );
    }
    if let Action::Up { students, force } = &a.action {
        for l in crate::class::capacity::check(&class, students, *force)? {
            eprintln!("note: {l}");
        }
    }
    super::need_root(&class.project)?;
    crate::interrupt::install()?;
    let n = a.parallel.max(1);
    let lines = Lines::new();
    match a.action {
        Action::Up { students, .. } => {
            class.seat_all()?;
            let members = class.members(&students)?;
            note_left(&class, &members);
            let members: Vec<Member> = members.into_iter().filter(|m| m.entry.is_some()).collect();
            let results = run::each(&members, n, &lines, &run::up);
            login::write(&class.roster.class, &class.login_lines()?)?;
            Ok(recap(&results, g.json, "up"))
        }
        Action::Configure { scenario, students } => {
            let members = class.members(&students)?;
            let results = run::each(&members, n, &lines, &|m, p| run::configure(m, &scenario, p));
            Ok(recap(&results, g.json, "configure"))
        }
        Action::Verify {
            scenario,
            skip,
            csv,
            students,
        } => {
            let members = class.members(&students)?;
            let opts = crate::verify::VerifyOptions {
                insecure: false,
                skip,
            };
            let results = run::each(&members, n, &lines, &|m, p| {
                run::verify(m, scenario.as_deref(), &opts, p)
            });
            if g.json {
                println!("{}", super::class_table::verify_json(&results));
            } else if csv {
                print!("{}", super::class_table::verify_csv(&results));
            } else {
                print!("{}", super::class_table::verify_table(&results));
            }
            Ok(exit(&results))
        }
        Action::Status {} => {
            let members = class.members(&[])?;
            let results = run::each(&members, n, &crate::progress::Silent, &|m, _| {
                run::status(m)
            });
            if g.json {
                println!("{}", super::class_table::status_json(&results));
            } else {
                print!("{}", super::class_table::status_table(&results));
            }
            Ok(exit(&results))
        }
        Action::Snapshot { action } => {
            let (restore, name) = match action {
                SnapAction::Save { name } => (false, name),
                SnapAction::Restore { name } => (true, name),
            };
            crate::providers::snapshots::check_name(&name)?;
            let members = class.members(&[])?;
            let results = run::each(&members, n, &lines, &|m, p| {
                run::snapshot(m, restore, &name, p)
            });
            Ok(recap(
                &results,
                g.json,
                if restore { "restore" } else { "save" },
            ))
        }
        Action::Ssh {
            student,
            node,
            command,
        } => ssh(&class, &student, &node, &command),
        Action::SshConfig {
            student,
            known_hosts,
            identity,
            known_hosts_file,
        } => {
            let m = class.members(std::slice::from_ref(&student))?.remove(0);
            let Some(entry) = &m.entry else {
                crate::user_bail!(
                    "student `{student}` is no longer in {}: they get nothing\n  fix: add them back, or `labctl class destroy {student}`",
                    class.roster.path.display()
                );
            };
            if known_hosts {
                print!("{}", access::known_hosts(&class.roster, &m.inv));
                return Ok(0);
            }
            let mut paths = access::ClientPaths::default_for(&m.inv.lab);
            if let Some(i) = identity {
                paths.identity = i;
            }
            if let Some(k) = known_hosts_file {
                paths.known_hosts = k;
            }
            print!("{}", access::config(&class.roster, entry, &m.inv, &paths)?);
            Ok(0)
        }
        Action::Destroy { students } => destroy(&mut class, &students, n, &lines, g.json),
    }
}

/// `class ssh STUDENT NODE [CMD…]`: `labctl ssh` on the student's lab.
fn ssh(class: &Class, student: &str, node: &str, command: &[String]) -> anyhow::Result<i32> {
    let m = class
        .members(std::slice::from_ref(&student.to_string()))?
        .remove(0);
    let inv = &m.inv;
    let node = crate::providers::select(inv, std::slice::from_ref(&node.to_string()))?[0];
    crate::lab::ensure_safe_target(inv, node.address)?;
    crate::providers::for_inventory(inv).check_running(inv, node)?;
    crate::transport::ssh::check_key(inv)?;
    crate::providers::sshcmd::check_known_hosts(inv)?;
    let mut cmd = crate::providers::sshcmd::base_command(inv, node);
    cmd.args(["-o", "LogLevel=ERROR"])
        .arg(node.address.to_string());
    if !command.is_empty() {
        cmd.arg("--").args(command);
    }
    let err = cmd.exec();
    Err(anyhow::anyhow!(
        "cannot run `ssh` (package openssh-client): {err}"
    ))
}

/// `class destroy [STUDENT…]`: their labs, their login lines (all: the login).
fn destroy(
    class: &mut Class,
    students: &[String],
    n: usize,
    lines: &Lines,
    json: bool,
) -> anyhow::Result<i32> {
    let all = students.is_empty();
    let members = class.members(students)?;
    let results = run::each(&members, n, lines, &run::destroy);
    let gone: Vec<String> = results
        .iter()
        .filter(|r| r.ok())
        .map(|r| r.student.clone())
        .collect();
    class.unseat(&gone)?;
    if all && class.seats.seats.is_empty() {
        login::remove(&class.roster.class)?;
    } else {
        login::write(&class.roster.class, &class.login_lines()?)?;
    }
    Ok(recap(&results, json, "destroy"))
}

/// Students who left the roster keep their labs: say so.
fn note_left(class: &Class, members: &[Member]) {
    let left: Vec<&Member> = members.iter().filter(|m| m.entry.is_none()).collect();
    for m in &left {
        eprintln!(
            "note: student `{}` is no longer in {}: lab {} stays until `labctl class destroy {}`",
            m.student,
            class.roster.path.display(),
            m.inv.lab,
            m.student
        );
    }
}

fn exit(results: &[LabResult]) -> i32 {
    if results.iter().all(LabResult::ok) {
        0
    } else {
        1
    }
}

/// The summary of a bulk operation: one line (or JSON keyed by student).
fn recap(results: &[LabResult], json: bool, what: &str) -> i32 {
    if json {
        println!("{}", super::class_table::results_json(results));
    } else {
        let failed: Vec<&str> = results
            .iter()
            .filter(|r| !r.ok())
            .map(|r| r.student.as_str())
            .collect();
        let secs = results.iter().map(|r| r.secs).fold(0.0, f64::max);
        if results.is_empty() {
            say!("class {what}: no labs (`labctl class up` builds them)");
        } else if failed.is_empty() {
            say!(
                "class {what}: all {} labs ok (slowest {secs:.1} s)",
                results.len()
            );
        } else {
            say!(
                "class {what}: {} of {} labs FAILED: {}",
                failed.len(),
                results.len(),
                failed.join(", ")
            );
            for r in results.iter().filter(|r| !r.ok()) {
                if let Err(e) = &r.result {
                    say!("  {}: {}", r.student, crate::redact::mask(e));
                }
            }
        }
    }
    exit(results)
}

/// What an `Outcome` is, for the JSON of a bulk run.
pub fn outcome_json(o: &Outcome) -> serde_json::Value {
    match o {
        Outcome::Done(s) => serde_json::json!({"ok": true, "summary": s}),
        Outcome::Configured(r) => {
            serde_json::json!({"ok": r.success(), "changed": r.changed, "failed": r.failed})
        }
        Outcome::Verified(r) => {
            let mut v = r.json();
            v["ok"] = r.passed().into();
            v
        }
        Outcome::Status(nodes) => serde_json::json!({"ok": true, "nodes": nodes}),
    }
}
