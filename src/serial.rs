//! DNS zone serials that only ever increase, and stay the same while a zone's
//! records do not change.
//!
//! A secondary server (or a resolver's cache) takes a zone whose serial went
//! down for an old copy, so a serial may never decrease, also when a lab
//! switches scenarios (01 → 04 → 01). A hash of the records keeps the serial
//! stable (a second `configure` changes nothing) but goes down half the time;
//! so labctl remembers, per host and zone, the hash of the records it last
//! rendered and the serial it gave them, in the project's
//! `.labctl/zone-serials`. When the records change the serial becomes
//! `max(old + 1, YYYYMMDD00)` (today's date, the usual convention: the first
//! change of a day starts at its `00`), which is also above every serial
//! labctl gave before it kept this state (nine digits, under 10⁹).
//!
//! `configure --check` reads the state but never writes it, so a preview does
//! not move the serial a real run then gives.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// The serials of one project: read from the state file, written back (unless
/// read-only) as soon as one changes.
#[derive(Debug, Default)]
pub struct ZoneSerials {
    /// The project's state folder (`.labctl/`).
    state_dir: PathBuf,
    /// The state file; `None`: in memory only (rendering in tests, `verify`).
    path: Option<PathBuf>,
    writable: bool,
    /// zone key → (hash of its records, serial)
    zones: Mutex<BTreeMap<String, (String, u32)>>,
}

/// The file in a project's state folder.
pub const FILE: &str = "zone-serials";

fn hash(records: &str) -> String {
    hex::encode(&Sha256::digest(records.as_bytes())[..12])
}

/// The serial for records whose hash changed: one more than the old one, or
/// today's `YYYYMMDD00` when that is higher.
pub fn next(old: Option<u32>, today: u32) -> u32 {
    let date = today.saturating_mul(100);
    match old {
        Some(o) => o.saturating_add(1).max(date),
        None => date,
    }
}

impl ZoneSerials {
    /// Serials kept in memory only.
    pub fn in_memory() -> ZoneSerials {
        ZoneSerials::default()
    }

    /// The project's serials in `state_dir/zone-serials`; `writable: false`
    /// (`--check`) reads them and never writes.
    pub fn open(state_dir: &std::path::Path, writable: bool) -> ZoneSerials {
        let path = state_dir.join(FILE);
        let zones = crate::project::read_state(state_dir, &path)
            .map(|t| parse(&String::from_utf8_lossy(&t)))
            .unwrap_or_default();
        ZoneSerials {
            state_dir: state_dir.to_path_buf(),
            path: Some(path),
            writable,
            zones: Mutex::new(zones),
        }
    }

    /// The serial of zone `key` (e.g. `dns/example.com`) with these records.
    pub fn serial(&self, key: &str, records: &str) -> anyhow::Result<u32> {
        self.serial_on(key, records, crate::duration::today())
    }

    fn serial_on(&self, key: &str, records: &str, today: u32) -> anyhow::Result<u32> {
        let h = hash(records);
        let mut zones = self
            .zones
            .lock()
            .map_err(|_| anyhow::anyhow!("zone serials: a thread panicked"))?;
        let old = zones.get(key).cloned();
        if let Some((oh, os)) = &old {
            if *oh == h {
                return Ok(*os);
            }
        }
        let s = next(old.map(|(_, s)| s), today);
        zones.insert(key.to_string(), (h, s));
        if let (Some(path), true) = (&self.path, self.writable) {
            write(&self.state_dir, path, &zones)?;
        }
        Ok(s)
    }
}

fn parse(text: &str) -> BTreeMap<String, (String, u32)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (k, h, s) = (w.next()?, w.next()?, w.next()?.parse().ok()?);
            Some((k.to_string(), (h.to_string(), s)))
        })
        .collect()
}

fn write(
    state_dir: &std::path::Path,
    path: &std::path::Path,
    zones: &BTreeMap<String, (String, u32)>,
) -> anyhow::Result<()> {
    let mut text = String::from(
        "# labctl: per host/zone, the hash of the records last rendered and their serial (serials only increase)\n",
    );
    for (k, (h, s)) in zones {
        text.push_str(&format!("{k} {h} {s}\n"));
    }
    crate::project::write_state(state_dir, path, text.as_bytes(), 0o600)
        .map_err(|e| anyhow::anyhow!("cannot record the zone serials: {e:#}"))
}

#[cfg(test)]
// dates written as YYYY_MM_DD(_NN) read better than groups of three
#[allow(clippy::inconsistent_digit_grouping)]
mod tests {
    use super::*;

    #[test]
    fn next_serial() {
        assert_eq!(next(None, 2026_12_01), 2026_12_01_00);
        assert_eq!(next(Some(2026_12_01_00), 2026_12_01), 2026_12_01_01);
        // a hash-based serial of before (nine digits) is passed by the date
        assert_eq!(next(Some(737_934_792), 2026_12_01), 2026_12_01_00);
        // a busy day runs into the next day's numbers, still increasing
        assert_eq!(next(Some(2026_12_01_99), 2026_12_01), 2026_12_02_00);
        assert_eq!(next(Some(2026_12_02_00), 2026_12_02), 2026_12_02_01);
        assert_eq!(next(Some(u32::MAX), 2026_12_01), u32::MAX);
    }

    #[test]
    fn same_records_same_serial_and_a_switch_only_increases() {
        let d = tempfile::tempdir().unwrap();
        let z = ZoneSerials::open(d.path(), true);
        let a = z
            .serial_on("dns/example.com", "www A 1\n", 2026_12_01)
            .unwrap();
        assert_eq!(
            z.serial_on("dns/example.com", "www A 1\n", 2026_12_01)
                .unwrap(),
            a
        );
        let b = z
            .serial_on("dns/example.com", "www A 2\n", 2026_12_01)
            .unwrap();
        let c = z
            .serial_on("dns/example.com", "www A 1\n", 2026_12_01)
            .unwrap();
        assert!(a < b && b < c, "{a} {b} {c}");
        // another zone is numbered on its own
        assert_eq!(
            z.serial_on("dns/other", "x\n", 2026_12_01).unwrap(),
            2026_12_01_00
        );
        // kept across runs: a new run with the same records keeps the serial
        let again = ZoneSerials::open(d.path(), true);
        assert_eq!(
            again
                .serial_on("dns/example.com", "www A 1\n", 2026_12_05)
                .unwrap(),
            c
        );
        // read-only (--check): the preview's serial is not recorded
        let check = ZoneSerials::open(d.path(), false);
        let p = check
            .serial_on("dns/example.com", "www A 3\n", 2026_12_01)
            .unwrap();
        assert!(p > c);
        let after = ZoneSerials::open(d.path(), true);
        assert_eq!(
            after
                .serial_on("dns/example.com", "www A 1\n", 2026_12_01)
                .unwrap(),
            c
        );
    }
}
