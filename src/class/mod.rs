//! A class: one lab per student of a roster, on one host.
//!
//! load ([`roster`], the recorded [`seats`]) → plan (each seated student's
//! lab: [`student::inventory`]) → run ([`run::each`]: the labs in parallel,
//! at most N at once, one failing lab never stopping the others) → recap
//! (one [`run::LabResult`] per lab; the CLI prints them). Students get in
//! through [`login`] with what [`access`] writes for them.

pub mod access;
pub mod capacity;
pub mod login;
pub mod roster;
pub mod run;
pub mod seats;
pub mod student;

use crate::inventory::Inventory;
use crate::user_bail;
use roster::Roster;
use seats::{Seat, Seats};
use std::path::Path;

/// A project's class: its inventory, the roster and the seats given so far.
#[derive(Debug, Clone)]
pub struct Class {
    pub project: Inventory,
    pub roster: Roster,
    pub seats: Seats,
}

/// One seated student's lab.
#[derive(Debug, Clone)]
pub struct Member {
    pub student: String,
    pub seat: Seat,
    pub inv: Inventory,
    /// The roster's entry (`None`: the student left the roster; the lab is
    /// still there until `class destroy STUDENT`).
    pub entry: Option<roster::Student>,
}

impl Class {
    /// Load the roster at `roster` for the project `project`, and the seats.
    pub fn load(project: Inventory, roster: &Path) -> anyhow::Result<Class> {
        let roster = Roster::load(roster, &project.lab)?;
        let seats = Seats::load(&project.state_dir())?;
        if !seats.class.is_empty() && seats.class != roster.class && !seats.seats.is_empty() {
            user_bail!(
                "{}: class `{}`, but this project's labs are class `{}`\n  fix: `labctl class destroy` the old class first, or set `class: {}` back",
                roster.path.display(),
                roster.class,
                seats.class,
                seats.class
            );
        }
        Ok(Class {
            project,
            roster,
            seats,
        })
    }

    /// Give every student of the roster a seat (kept when recorded) and
    /// record them; returns the students seated now.
    pub fn seat_all(&mut self) -> anyhow::Result<Vec<String>> {
        let Some(net) = &self.project.network else {
            user_bail!(
                "{}: the lab has no `network:`, so a class cannot give each student a subnet\n  fix: add `network: {{subnet: 10.1.1.0/24, gateway: 10.1.1.1}}`",
                self.project.path.display()
            );
        };
        let mut want = Vec::new();
        for s in self.roster.students.values() {
            want.push((s.name.clone(), self.roster.lab_name(s)?));
        }
        let routes = crate::lab::routes();
        let prefix = net.subnet.prefix;
        let new =
            self.seats
                .allocate(&self.roster.class, &want, self.roster.pool, prefix, &routes)?;
        self.seats.save(&self.project.state_dir())?;
        Ok(new)
    }

    /// The seated students' labs: those named (all when none is), in roster
    /// order, then the seated students who left the roster.
    pub fn members(&self, names: &[String]) -> anyhow::Result<Vec<Member>> {
        for n in names {
            if !self.seats.seats.contains_key(n) {
                let known = self.seats.seats.keys().map(String::as_str);
                let hint = crate::suggest::hint(n, known);
                user_bail!(
                    "student `{n}` has no lab in this class{hint}\n  fix: name a student of {} that `labctl class up` built (`labctl class status` lists them)",
                    self.roster.path.display()
                );
            }
        }
        let mut order: Vec<&String> = self
            .roster
            .students
            .keys()
            .filter(|s| self.seats.seats.contains_key(*s))
            .collect();
        order.extend(
            self.seats
                .seats
                .keys()
                .filter(|s| !self.roster.students.contains_key(*s)),
        );
        order
            .into_iter()
            .filter(|s| names.is_empty() || names.contains(s))
            .map(|s| {
                let seat = self.seats.seats[s].clone();
                Ok(Member {
                    student: s.clone(),
                    inv: student::inventory(&self.project, s, &seat)?,
                    seat,
                    entry: self.roster.students.get(s).cloned(),
                })
            })
            .collect()
    }

    /// The class login's `authorized_keys` lines: one per seated student of the roster.
    pub fn login_lines(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .members(&[])?
            .iter()
            .filter_map(|m| {
                let e = m.entry.as_ref()?;
                let addrs: Vec<_> = m.inv.nodes.iter().map(|n| n.address).collect();
                Some(login::key_line(&m.student, &e.key, &addrs))
            })
            .collect())
    }

    /// Forget the seats of `students` (their labs are gone).
    pub fn unseat(&mut self, students: &[String]) -> anyhow::Result<()> {
        for s in students {
            self.seats.seats.remove(s);
        }
        self.seats.save(&self.project.state_dir())
    }
}
