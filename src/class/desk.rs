//! A student's desk on the teacher's server: what `class dashboard` and the
//! student's way in need to know of their lab beyond its seat, kept in the
//! lab's own state folder (`.labctl/class/<student>/`, gone with the lab):
//!
//! - `desk.json`: the loopback port of the student's own dashboard (given
//!   once, the first free one from [`FIRST_PORT`] that no other student of
//!   the class holds) and its action token (mode 0600), which only that
//!   student's URL carries;
//! - `last-verify.json`: the student's lab's last `class verify` report and
//!   when it ran, which the teacher's page shows.

use super::Member;
use crate::verify::VerifyReport;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The first port a student's dashboard may get (on 127.0.0.1).
pub const FIRST_PORT: u16 = 7101;
/// One past the last.
const END_PORT: u16 = 7999;

/// A student's dashboard: where it listens and the token that may act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desk {
    pub port: u16,
    pub action_token: String,
}

impl Desk {
    /// The student's URL of their dashboard, through their `LocalForward`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/#act={}", self.port, self.action_token)
    }
}

fn project_state(m: &Member) -> PathBuf {
    m.inv
        .state_dir()
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| m.inv.state_dir())
}

fn read<T: serde::de::DeserializeOwned>(m: &Member, name: &str) -> Option<T> {
    let b = crate::project::read_state(&project_state(m), &m.inv.state_dir().join(name)).ok()?;
    serde_json::from_slice(&b).ok()
}

fn write<T: Serialize>(m: &Member, name: &str, v: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    crate::project::write_state(
        &project_state(m),
        &m.inv.state_dir().join(name),
        text.as_bytes(),
        0o600,
    )
}

/// The student's desk, if they have one yet.
pub fn desk(m: &Member) -> Option<Desk> {
    read(m, "desk.json")
}

/// Give every member without a desk one (the others keep theirs).
pub fn assign(members: &[Member]) -> anyhow::Result<()> {
    let mut taken: Vec<u16> = members.iter().filter_map(desk).map(|d| d.port).collect();
    for m in members {
        if desk(m).is_some() {
            continue;
        }
        let free = (FIRST_PORT..END_PORT)
            .find(|p| !taken.contains(p) && std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok());
        let Some(port) = free else {
            crate::user_bail!(
                "no free port left on 127.0.0.1 from {FIRST_PORT} to {END_PORT} for student `{}`'s dashboard\n  fix: free some of those ports, or split the class",
                m.student
            );
        };
        let token = hex::encode(rand::random::<[u8; 16]>());
        write(
            m,
            "desk.json",
            &Desk {
                port,
                action_token: token,
            },
        )?;
        taken.push(port);
    }
    Ok(())
}

/// Record `report` as the lab's last verify, now: its JSON (as `verify
/// --json` prints it) with `t`, milliseconds since the Unix epoch, and the
/// scenario.
pub fn record_verify(m: &Member, report: &VerifyReport) -> anyhow::Result<()> {
    let mut v = report.json();
    v["t"] = crate::dashboard::state::now_ms().into();
    v["scenario"] = report.scenario.clone().into();
    write(m, "last-verify.json", &v)
}

/// The lab's last verify, if it had one.
pub fn last_verify(m: &Member) -> Option<serde_json::Value> {
    read(m, "last-verify.json")
}
