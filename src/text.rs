//! Small text helpers for what nodes print.

/// `key=value` lines (systemctl show, our probes) into a map.
pub fn kv_lines(s: &str) -> std::collections::BTreeMap<String, String> {
    s.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The last `n` non-empty lines of `s`, joined with ` / `.
pub fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join(" / ")
}
