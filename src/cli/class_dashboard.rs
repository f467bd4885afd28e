//! `labctl class dashboard`: the teacher's page and every student's own lab
//! dashboard, until Ctrl-C (see `crate::dashboard::class`).

use crate::class::{desk, Class};
use crate::dashboard::class::{self as board, Board};
use crate::dashboard::Options;
use crate::scenario::Scenario;
use clap::Args;
use std::net::SocketAddr;

/// The teacher's page of every lab, and each student's own lab dashboard.
#[derive(Debug, Args)]
#[command(after_help = "\
One process serves, until Ctrl-C:
- the teacher's page (default http://127.0.0.1:7100/, another free port when busy): every
  student's lab at once — its nodes up or down, the scenario configured, the VIP holder, the
  failovers seen, the last `labctl class verify` per check and when (each `class verify` records
  it; the page shows it within a second) — with a drill-down into each lab's own page (watch
  only). The page itself acts on nothing;
- each student's own lab dashboard on 127.0.0.1:PORT (the port `class up` gave them, from 7101),
  with the lab's fault buttons for that student's lab only. The student reaches it from their
  computer through the class login (their authorized_keys line permits forwarding to that port
  and no other): `ssh -F ana.ssh -N net1-jump`, then the URL in their config's comment
  (`labctl class ssh-config ana`), which carries their action token.

Each lab's dashboard shows the scenario that lab was configured with when this started.

Examples:
  labctl class dashboard
  labctl class dashboard --listen 0.0.0.0:8080   # the teacher's page for a projector (read token in the URL)")]
pub struct DashboardArgs {
    /// Where the teacher's page listens (ADDR:PORT).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
}

pub fn run(class: &Class, a: DashboardArgs) -> anyhow::Result<i32> {
    let listen = super::dashboard::parse_listen(a.listen.as_deref(), 7100)?;
    let members = class.members(&[])?;
    if members.is_empty() {
        crate::user_bail!(
            "class `{}` has no labs yet\n  fix: `labctl class up` builds them",
            class.roster.class
        );
    }
    desk::assign(&members)?;
    let mut scenarios: Vec<Option<Scenario>> = Vec::new();
    for m in &members {
        let inv = &m.inv;
        let s = match crate::project::last_scenario(&inv.state_dir(), &inv.dir)? {
            Some(p) => Some(Scenario::load(&p, &inv.dir)?),
            None => None,
        };
        scenarios.push(s);
    }
    let boards: Vec<Board> = members
        .iter()
        .zip(&scenarios)
        .map(|(m, s)| Board {
            student: m.student.clone(),
            subnet: m.seat.subnet.clone(),
            inv: &m.inv,
            scenario: s.as_ref(),
            opts: desk::desk(m).map(|d| Options {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], d.port))),
                insecure: false,
                actions: false,
                action_token: Some(d.action_token),
            }),
            last_verify: Box::new(move || desk::last_verify(m).unwrap_or_default()),
        })
        .collect();
    crate::interrupt::install_for_server()?;
    board::run(
        &class.roster.class,
        &boards,
        listen,
        &crate::interrupt::interrupted,
        &|url| {
            println!("class {}: {} labs", class.roster.class, boards.len());
            println!("  teacher:  {url}");
            println!("  (each student's own dashboard below, as it starts; Ctrl-C stops it)");
        },
        &|student, r| match r {
            Ok(s) => println!("  {student}: {}", s.watch.join(" ")),
            Err(e) => eprintln!(
                "  {student}: no dashboard: {}",
                crate::text::one_line(e.lines().next().unwrap_or(""))
            ),
        },
    )?;
    eprintln!("class dashboard stopped");
    Ok(0)
}
