//! `roster.yaml`: the class a teacher writes — the students and their SSH
//! keys, and optionally the class's name, its pool of subnets and the server
//! students connect through. Every mistake names the file, the line and a fix.

use crate::error::user;
use crate::inventory::Subnet;
use crate::user_bail;
use crate::yaml;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::path::{Path, PathBuf};

/// The pool the students' subnets come from when the roster names none.
pub const DEFAULT_POOL: &str = "10.2.0.0/16";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterFile {
    class: Option<Spanned<String>>,
    pool: Option<Spanned<String>>,
    server: Option<Spanned<ServerFile>>,
    students: Spanned<IndexMap<String, Spanned<StudentFile>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    host_key: Option<String>,
}

fn default_port() -> u16 {
    22
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StudentFile {
    key: Spanned<String>,
    lab: Option<Spanned<String>>,
}

/// A loaded and checked roster.
#[derive(Debug, Clone)]
pub struct Roster {
    pub path: PathBuf,
    /// The class's name: its labs are `<class>-<student>`, its login `labctl-<class>`.
    pub class: String,
    pub pool: Subnet,
    /// Where students' SSH connects: the teacher's server.
    pub server: Server,
    pub students: IndexMap<String, Student>,
}

/// The teacher's server, as students reach it.
#[derive(Debug, Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    /// Its host key (`ssh-ed25519 AAAA…`), pinned in the students' configs when given.
    pub host_key: Option<String>,
}

/// One student of the roster.
#[derive(Debug, Clone)]
pub struct Student {
    pub name: String,
    /// The public key, as `TYPE BASE64` (its comment left out).
    pub key: String,
    /// The lab name the roster gives (`lab:`), if any.
    pub lab: Option<String>,
    /// `roster.yaml:LINE:COL` of the student's entry.
    pub at: String,
}

/// The key types OpenSSH accepts in `authorized_keys`.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A student name: it names a folder, a lab and a line of an SSH config.
pub fn valid_student_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// The public key `text` as `TYPE BASE64`, or why it is not one. Options
/// before the type (`command=…`) are refused: the key goes into an
/// `authorized_keys` line labctl writes, whose options are labctl's.
pub fn parse_public_key(text: &str) -> Result<String, String> {
    let mut w = text.split_whitespace();
    let (Some(kind), Some(body)) = (w.next(), w.next()) else {
        return Err("is not a public key (`TYPE BASE64 [comment]`)".into());
    };
    if !KEY_TYPES.contains(&kind) {
        return Err(format!(
            "starts with `{}`, not a key type (one of {}); options are labctl's to write",
            crate::text::one_line(kind),
            KEY_TYPES.join(", ")
        ));
    }
    let b64 = body
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=');
    if !b64 || body.len() < 16 {
        return Err("has a key body that is not base64".into());
    }
    if crate::project::has_control(text) {
        return Err("holds a control character".into());
    }
    Ok(format!("{kind} {body}"))
}

impl Roster {
    /// Load and check `path`.
    pub fn load(path: &Path, default_class: &str) -> anyhow::Result<Roster> {
        if !path.exists() {
            user_bail!(
                "{}: no roster: a class needs the list of its students\n  fix: write it, e.g.\n    students:\n      ana: {{key: \"ssh-ed25519 AAAA… ana@laptop\"}}\n  or name another file with --roster FILE",
                path.display()
            );
        }
        let file: RosterFile = yaml::load(path, "roster")?;
        let at = |l: &serde_saphyr::Location| yaml::at(path, l);
        let class = match &file.class {
            Some(c) => {
                if !valid_class_name(&c.value) {
                    user_bail!(
                        "{}: class name `{}` is not usable: it starts every lab name (`CLASS-STUDENT`, at most 11 characters) and names the students' login\n  fix: use 1 to 7 characters a-z, 0-9, starting with a letter (e.g. `class: net1`)",
                        at(&c.referenced),
                        crate::text::one_line(&c.value)
                    );
                }
                c.value.clone()
            }
            None => {
                let c: String = default_class
                    .chars()
                    .filter(|c| *c != '-')
                    .take(7)
                    .collect();
                if !valid_class_name(&c) {
                    user_bail!(
                        "{}: the class has no name, and the lab's `{default_class}` does not make one\n  fix: add `class: NAME` (1 to 7 characters a-z, 0-9)",
                        path.display()
                    );
                }
                c
            }
        };
        let pool = match &file.pool {
            Some(p) => parse_pool(&p.value).map_err(|why| {
                user(format!(
                    "{}: pool `{}` {why}\n  fix: name a private range the class's subnets come from, e.g. `pool: 10.2.0.0/16`",
                    at(&p.referenced),
                    crate::text::one_line(&p.value)
                ))
            })?,
            None => parse_pool(DEFAULT_POOL).map_err(user)?,
        };
        let server = server_of(file.server.as_ref(), path)?;
        if file.students.value.is_empty() {
            user_bail!(
                "{}: `students:` is empty\n  fix: add one entry per student, e.g. `ana: {{key: \"ssh-ed25519 AAAA…\"}}`",
                at(&file.students.referenced)
            );
        }
        let mut students = IndexMap::new();
        let mut keys: Vec<(String, String)> = Vec::new();
        for (name, s) in &file.students.value {
            let here = at(&s.referenced);
            if !valid_student_name(name) {
                user_bail!(
                    "{here}: student name `{}` is not usable: it names the student's lab, folder and SSH config\n  fix: use 1 to 32 characters a-z, 0-9, `-` and `_`, starting with a letter (e.g. `ana`)",
                    crate::text::one_line(name)
                );
            }
            let key = parse_public_key(&s.value.key.value).map_err(|why| {
                user(format!(
                    "{}: the key of student `{name}` {why}\n  fix: paste the student's public key, the one line of their ~/.ssh/id_ed25519.pub",
                    at(&s.value.key.referenced)
                ))
            })?;
            if let Some((other, _)) = keys.iter().find(|(_, k)| *k == key) {
                user_bail!(
                    "{}: student `{name}` has the same key as `{other}`: either could reach the other's lab\n  fix: each student gives their own key (`ssh-keygen -t ed25519` on their computer)",
                    at(&s.value.key.referenced)
                );
            }
            keys.push((name.clone(), key.clone()));
            let lab = match &s.value.lab {
                Some(l) => {
                    if !crate::inventory::valid_lab_name(&l.value) {
                        user_bail!(
                            "{}: lab name `{}` is not usable\n  fix: use 1 to 11 characters a-z, 0-9 and `-`, starting with a letter",
                            at(&l.referenced),
                            crate::text::one_line(&l.value)
                        );
                    }
                    Some(l.value.clone())
                }
                None => None,
            };
            students.insert(
                name.clone(),
                Student {
                    name: name.clone(),
                    key,
                    lab,
                    at: here,
                },
            );
        }
        let roster = Roster {
            path: path.to_path_buf(),
            class,
            pool,
            server,
            students,
        };
        for s in roster.students.values() {
            roster.lab_name(s)?;
        }
        Ok(roster)
    }

    /// The lab name of `student`: the roster's `lab:`, else `<class>-<student>`.
    pub fn lab_name(&self, s: &Student) -> anyhow::Result<String> {
        if let Some(l) = &s.lab {
            return Ok(l.clone());
        }
        let name = format!("{}-{}", self.class, s.name);
        if !crate::inventory::valid_lab_name(&name) || name.contains('_') {
            user_bail!(
                "{}: student `{}` gives the lab name `{name}`, too long (at most 11 characters: it names the bridge lab-NAME)\n  fix: give the student a short lab name, e.g. `{}: {{key: …, lab: {}}}`, or a shorter `class:` name",
                s.at,
                s.name,
                s.name,
                suggest_lab(&self.class, &s.name)
            );
        }
        Ok(name)
    }
}

fn suggest_lab(class: &str, student: &str) -> String {
    let room = 11usize.saturating_sub(class.len() + 1).max(1);
    let short: String = student
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(room)
        .collect();
    format!("{class}-{short}")
}

/// The roster's `server:`, or this machine on port 22.
fn server_of(server: Option<&Spanned<ServerFile>>, path: &Path) -> anyhow::Result<Server> {
    let at = |l: &serde_saphyr::Location| yaml::at(path, l);
    Ok(match server {
        Some(s) => {
            let v = &s.value;
            let host_ok = !v.host.is_empty()
                && v.host
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b".-:_".contains(&c));
            if !host_ok || v.port == 0 {
                user_bail!(
                        "{}: server `{}` port {} is not a host students can connect to\n  fix: write the server's DNS name or address and its SSH port, e.g. `server: {{host: lab.school.example, port: 22}}`",
                        at(&s.referenced),
                        crate::text::one_line(&v.host),
                        v.port
                    );
            }
            let host_key = match &v.host_key {
                    Some(k) => Some(parse_public_key(k).map_err(|why| {
                        user(format!(
                            "{}: server.host_key {why}\n  fix: paste the server's /etc/ssh/ssh_host_ed25519_key.pub",
                            at(&s.referenced)
                        ))
                    })?),
                    None => None,
                };
            Server {
                host: v.host.clone(),
                port: v.port,
                host_key,
            }
        }
        None => Server {
            host: this_host(),
            port: 22,
            host_key: None,
        },
    })
}

/// A class name: 1 to 7 characters a-z, 0-9, starting with a letter.
pub fn valid_class_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 7
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// A pool: a private IPv4 range written as a subnet, /8 to /28.
pub fn parse_pool(s: &str) -> Result<Subnet, String> {
    let Some(sub) = Subnet::parse(s) else {
        return Err("is not a subnet (`ADDRESS/PREFIX`)".into());
    };
    let private = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
        .iter()
        .filter_map(|p| Subnet::parse(p))
        .any(|p| p.contains(sub.network) && sub.prefix >= p.prefix);
    if !private {
        return Err("is not a private range (10/8, 172.16/12, 192.168/16): lab traffic stays on this machine".into());
    }
    if sub.prefix > 28 {
        return Err("is too small for a lab".into());
    }
    Ok(sub)
}

/// This machine's host name, for the students' configs when the roster names no server.
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<Roster> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("roster.yaml");
        std::fs::write(&p, text).unwrap();
        Roster::load(&p, "ha")
    }

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx1ZWJ0ZXN0a2V5MDEyMzQ1Njc4OWFiY2RlZg";

    #[test]
    fn a_roster_loads_with_defaults() {
        let r = load(&format!(
            "students:\n  ana: {{key: \"{KEY} ana@laptop\"}}\n"
        ))
        .unwrap();
        assert_eq!(r.class, "ha");
        assert_eq!(r.pool.to_string(), DEFAULT_POOL);
        assert_eq!(r.students["ana"].key, KEY, "the comment is left out");
        assert_eq!(r.lab_name(&r.students["ana"]).unwrap(), "ha-ana");
    }

    #[test]
    fn mistakes_name_the_line_and_a_fix() {
        let cases = [
            (
                "students:\n  ana: {key: \"command=\\\"sh\\\" ssh-ed25519 AAAA\"}\n",
                "2:",
            ),
            ("students:\n  Ana: {key: \"KEY\"}\n", "student name `Ana`"),
            (
                "pool: 8.8.0.0/16\nstudents:\n  ana: {key: \"KEY\"}\n",
                "1:7: pool",
            ),
            (
                "students:\n  ana: {key: \"KEY\"}\n  bob: {key: \"KEY\"}\n",
                "same key",
            ),
            ("students:\n  alejandro: {key: \"KEY\"}\n", ""),
            ("students:\n  ana: {kee: \"KEY\"}\n", "kee"),
        ];
        for (text, want) in cases {
            let r = load(&text.replace("KEY", KEY));
            let msg = match r {
                Ok(r) => match r.lab_name(&r.students[0]) {
                    Err(e) => crate::error::format_error(&e),
                    Ok(l) => panic!("{text}: accepted as {l}"),
                },
                Err(e) => crate::error::format_error(&e),
            };
            assert!(msg.contains(want), "{text}: {msg}");
            assert!(msg.contains("fix:"), "{text}: {msg}");
            assert!(msg.contains("roster.yaml"), "{text}: {msg}");
        }
    }
}
