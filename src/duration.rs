//! Durations as people write them in a scenario (`2s`, `500ms`, `1.5s`, `2m`)
//! and as labctl prints them (`1.4 s`, `230 ms`); calendar days (UTC) for
//! zone serials and snapshot names.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A duration as written in a scenario: `2s`, `500ms`, `1.5s`, `2m`, or a bare
/// number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    /// Parse `2s`, `500ms`, `1.5s`, `2m`, `1h` or a bare number of seconds.
    pub fn parse(s: &str) -> Result<Dur, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || format!("`{s}` is not a duration; write it like 2s, 500ms, 1.5s or 2m");
        let n: f64 = num.parse().map_err(|_| bad())?;
        let secs = match unit.trim() {
            "" | "s" | "sec" | "secs" => n,
            "ms" => n / 1000.0,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(bad()),
        };
        if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
            return Err(format!("duration `{s}` is out of range (0 to 24h)"));
        }
        Ok(Dur(Duration::from_secs_f64(secs)))
    }

    pub fn ms(self) -> u64 {
        self.0.as_millis() as u64
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0.as_millis()))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration such as 2s, 500ms or 1m")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                Dur::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                Dur::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                Dur::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dur, E> {
                Dur::parse(&v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration in a check that may also be a template (`"{{ failover_within |
/// default('2s') }}"`): kept as text when the scenario loads, a [`Dur`] once
/// the check is rendered with the lab's variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurArg {
    Dur(Dur),
    Template(String),
}

impl DurArg {
    /// The duration (a template not rendered yet, or rendered to something
    /// that is not a duration, is an error saying so).
    pub fn get(&self) -> Result<Dur, String> {
        match self {
            DurArg::Dur(d) => Ok(*d),
            DurArg::Template(t) => Dur::parse(t),
        }
    }
}

impl Serialize for DurArg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DurArg::Dur(d) => d.serialize(s),
            DurArg::Template(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for DurArg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DurArg, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(f64),
        }
        match Raw::deserialize(d)? {
            Raw::S(s) if s.contains("{{") => Ok(DurArg::Template(s)),
            Raw::S(s) => Dur::parse(&s)
                .map(DurArg::Dur)
                .map_err(serde::de::Error::custom),
            Raw::N(n) => Dur::parse(&n.to_string())
                .map(DurArg::Dur)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// `1432` → `1.4 s`; `230` → `230 ms`.
pub fn human_ms(ms: u64) -> String {
    if ms >= 10_000 || (ms >= 1000 && ms.is_multiple_of(1000)) {
        format!("{} s", ms / 1000)
    } else if ms >= 1000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

/// Today (UTC) as `YYYYMMDD`.
pub fn today() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    (y as u32) * 10_000 + m * 100 + d
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_may_be_a_template_until_rendered() {
        let t: DurArg = serde_json::from_str("\"{{ x | default('2s') }}\"").unwrap();
        assert!(matches!(t, DurArg::Template(_)));
        assert!(t.get().unwrap_err().contains("is not a duration"));
        let d: DurArg = serde_json::from_str("\"8s\"").unwrap();
        assert_eq!(d.get().unwrap().ms(), 8000);
        assert!(serde_json::from_str::<DurArg>("\"soon\"").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(Dur::parse("2s").unwrap().ms(), 2000);
        assert_eq!(Dur::parse("500ms").unwrap().ms(), 500);
        assert_eq!(Dur::parse("1.5s").unwrap().ms(), 1500);
        assert_eq!(Dur::parse("2m").unwrap().ms(), 120_000);
        assert_eq!(Dur::parse("3").unwrap().ms(), 3000);
        assert!(Dur::parse("fast").is_err());
        assert!(Dur::parse("2 parsecs").is_err());
        assert!(Dur::parse("").is_err());
        assert!(Dur::parse("99999999h").is_err());
    }

    #[test]
    #[allow(clippy::inconsistent_digit_grouping)]
    fn days_since_1970_are_calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_423), (2025, 12, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert!(today() > 2026_00_00);
    }
}
