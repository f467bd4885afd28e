//! The class's seats: for each student, the lab name and subnet labctl gave
//! them, kept in `.labctl/class/seats.json` so every later run gives the
//! same answer, and adding or removing a student moves nobody else.
//!
//! A new seat's subnet is the first block of the roster's pool (blocks the
//! size of the project's subnet) that no other seat holds and that overlaps
//! no route of this machine (every running lab's bridge has one).

use crate::inventory::Subnet;
use crate::lab::Route;
use crate::user_bail;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// One student's place in the class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seat {
    pub lab: String,
    pub subnet: String,
}

/// The seats of a class, by student.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seats {
    pub class: String,
    pub seats: BTreeMap<String, Seat>,
}

/// The class state folder of a project state folder (`.labctl/class`).
pub fn class_dir(state: &Path) -> PathBuf {
    state.join("class")
}

fn file(state: &Path) -> PathBuf {
    class_dir(state).join("seats.json")
}

impl Seats {
    /// The seats recorded in the project state folder `state` (none yet: empty).
    pub fn load(state: &Path) -> anyhow::Result<Seats> {
        let f = file(state);
        match crate::project::read_state(state, &f) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                crate::error::user(format!(
                    "{}: not labctl's seats file ({e})\n  fix: remove it only if the class's labs are gone (`labctl class status`); labctl allocates again",
                    f.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Seats::default()),
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", f.display())),
        }
    }

    /// Record the seats (an empty class removes the file).
    pub fn save(&self, state: &Path) -> anyhow::Result<()> {
        let f = file(state);
        if self.seats.is_empty() {
            let _ = crate::project::owned(state, &f).then(|| std::fs::remove_file(&f));
            return Ok(());
        }
        let text = serde_json::to_string_pretty(self)?;
        crate::project::write_state(state, &f, text.as_bytes(), 0o600)
    }

    /// Give every student of `want` (name, lab name) a seat: a recorded one
    /// is kept; a new one gets the first free block of `pool` of `prefix`.
    /// `routes` are this machine's; the routes of a seat's own bridge do not
    /// count against it. Returns the names of the new seats.
    pub fn allocate(
        &mut self,
        class: &str,
        want: &[(String, String)],
        pool: Subnet,
        prefix: u8,
        routes: &[Route],
    ) -> anyhow::Result<Vec<String>> {
        self.class = class.to_string();
        if prefix < pool.prefix {
            user_bail!(
                "the pool {pool} is smaller than one lab's subnet (/{prefix})\n  fix: give the roster a wider `pool:` (e.g. /16)"
            );
        }
        let mut new = Vec::new();
        for (student, lab) in want {
            if let Some(s) = self.seats.get(student) {
                if &s.lab != lab {
                    user_bail!(
                        "student `{student}` has lab `{}`, the roster now names `{lab}`\n  fix: `labctl class destroy {student}` first, then `labctl class up` builds the new one",
                        s.lab
                    );
                }
                continue;
            }
            if let Some((other, _)) = self.seats.iter().find(|(_, s)| &s.lab == lab) {
                user_bail!(
                    "students `{other}` and `{student}` would both have lab `{lab}`\n  fix: give one of them another `lab:` in the roster"
                );
            }
            let block = 1u32 << (32 - prefix);
            let count = 1u64 << (prefix - pool.prefix);
            let taken: Vec<Subnet> = self
                .seats
                .values()
                .filter_map(|s| Subnet::parse(&s.subnet))
                .collect();
            let own = format!("lab-{lab}");
            let free = (0..count).map(|i| Subnet {
                network: Ipv4Addr::from(u32::from(pool.network) + i as u32 * block),
                prefix,
            });
            let Some(pick) = free.into_iter().find(|c| {
                !taken.iter().any(|t| overlaps(t, c))
                    && crate::lab::overlapping_route(c, routes, &[own.as_str()]).is_none()
            }) else {
                user_bail!(
                    "the pool {pool} has no free /{prefix} left for student `{student}` ({} seats, and the routes of this machine)\n  fix: give the roster a wider `pool:`",
                    self.seats.len()
                );
            };
            self.seats.insert(
                student.clone(),
                Seat {
                    lab: lab.clone(),
                    subnet: pick.to_string(),
                },
            );
            new.push(student.clone());
        }
        Ok(new)
    }
}

fn overlaps(a: &Subnet, b: &Subnet) -> bool {
    a.contains(b.network) || b.contains(a.network)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (n.to_string(), format!("c-{n}")))
            .collect()
    }

    #[test]
    fn seats_are_stable_and_avoid_routes() {
        let pool = Subnet::parse("10.1.112.0/22").unwrap();
        let routes = vec![Route {
            iface: "lab-other".into(),
            subnet: Subnet::parse("10.1.113.0/24").unwrap(),
        }];
        let mut s = Seats::default();
        let new = s
            .allocate("c", &want(&["ana", "bob"]), pool, 24, &routes)
            .unwrap();
        assert_eq!(new, vec!["ana", "bob"]);
        assert_eq!(s.seats["ana"].subnet, "10.1.112.0/24");
        assert_eq!(s.seats["bob"].subnet, "10.1.114.0/24", "113 is routed");
        // ana's own bridge is up now: her seat stays, and a new student fits after
        let routes = vec![Route {
            iface: "lab-c-ana".into(),
            subnet: Subnet::parse("10.1.112.0/24").unwrap(),
        }];
        s.seats.remove("bob");
        let new = s
            .allocate("c", &want(&["ana", "eve"]), pool, 24, &routes)
            .unwrap();
        assert_eq!(new, vec!["eve"]);
        assert_eq!(s.seats["ana"].subnet, "10.1.112.0/24");
        assert_eq!(s.seats["eve"].subnet, "10.1.113.0/24");
        // a full pool is a user error
        let small = Subnet::parse("10.1.112.0/23").unwrap();
        let err = s
            .allocate("c", &want(&["ana", "eve", "zed"]), small, 24, &[])
            .unwrap_err();
        assert!(format!("{err}").contains("no free /24"), "{err}");
    }
}
