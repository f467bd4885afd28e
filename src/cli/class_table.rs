//! The class's results as a table (student × check), CSV for a grade book,
//! or JSON keyed by student.

use super::class::outcome_json;
use crate::class::run::{LabResult, Outcome};
use crate::redact::mask;

fn report(r: &LabResult) -> Option<&crate::verify::VerifyReport> {
    match &r.result {
        Ok(Outcome::Verified(v)) => Some(v),
        _ => None,
    }
}

/// The check names of the lab with the most checks (as the first lab that
/// got that far names them).
fn check_names(results: &[LabResult]) -> Vec<String> {
    results
        .iter()
        .filter_map(report)
        .map(|v| v.checks.iter().map(|c| c.name.clone()).collect::<Vec<_>>())
        .fold(
            Vec::new(),
            |best, v| if v.len() > best.len() { v } else { best },
        )
}

/// The `i`th check's mark: every lab runs the same scenario's checks in the
/// same order (their names hold the lab's own addresses, so differ).
fn mark(v: &crate::verify::VerifyReport, i: usize) -> &'static str {
    match v.checks.get(i) {
        Some(c) if c.passed => "PASS",
        Some(_) => "FAIL",
        None => "-",
    }
}

/// The widths of the STUDENT and LAB columns.
fn widths(results: &[LabResult]) -> (usize, usize) {
    let w = |f: fn(&LabResult) -> usize, min: usize| {
        results.iter().map(f).max().unwrap_or(min).max(min)
    };
    (w(|r| r.student.len(), 7), w(|r| r.lab.len(), 3))
}

/// `STUDENT LAB 1 2 … FAILOVER RESULT`, then the checks' names by number.
pub fn verify_table(results: &[LabResult]) -> String {
    let names = check_names(results);
    let (sw, lw) = widths(results);
    let mut s = format!("{:sw$}  {:lw$}", "STUDENT", "LAB");
    for i in 0..names.len() {
        s.push_str(&format!("  {:>4}", i + 1));
    }
    s.push_str("  FAILOVER  RESULT\n");
    for r in results {
        s.push_str(&format!("{:sw$}  {:lw$}", r.student, r.lab));
        match (report(r), &r.result) {
            (Some(v), _) => {
                for i in 0..names.len() {
                    s.push_str(&format!("  {:>4}", mark(v, i)));
                }
                let fo = v
                    .failover_ms
                    .map(|ms| format!("{ms} ms"))
                    .unwrap_or_else(|| "-".into());
                let res = if v.passed() { "passed" } else { "FAILED" };
                s.push_str(&format!("  {fo:>8}  {res}\n"));
            }
            (None, Err(e)) => {
                s.push_str(&format!(
                    "  FAILED: {}\n",
                    crate::text::one_line(e.lines().next().unwrap_or(""))
                ));
            }
            (None, Ok(_)) => s.push('\n'),
        }
    }
    if let Some(first) = results
        .iter()
        .find(|r| report(r).is_some_and(|v| v.checks.len() == names.len()))
    {
        s.push_str(&format!("checks (as lab {} names them):\n", first.lab));
    }
    for (i, n) in names.iter().enumerate() {
        s.push_str(&format!("{:>3}. {n}\n", i + 1));
    }
    let passed = results.iter().filter(|r| r.ok()).count();
    s.push_str(&format!(
        "class verify: {passed} of {} labs passed\n",
        results.len()
    ));
    crate::text::printable(&mask(&s)).to_string()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `student,lab,<check…>,failover_ms,passed`: one row per lab.
pub fn verify_csv(results: &[LabResult]) -> String {
    let names = check_names(results);
    let mut head = vec!["student".to_string(), "lab".into()];
    head.extend(names.iter().map(|n| csv_field(n)));
    head.extend(["failover_ms".into(), "passed".into()]);
    let mut s = head.join(",") + "\n";
    for r in results {
        let mut row = vec![csv_field(&r.student), csv_field(&r.lab)];
        match report(r) {
            Some(v) => {
                row.extend((0..names.len()).map(|i| mark(v, i).to_string()));
                row.push(v.failover_ms.map(|m| m.to_string()).unwrap_or_default());
            }
            None => {
                row.extend(names.iter().map(|_| "-".to_string()));
                row.push(String::new());
            }
        }
        row.push(r.ok().to_string());
        s.push_str(&(row.join(",") + "\n"));
    }
    mask(&s)
}

/// `{"students": {"ana": {"lab", "ok", …}}, "ok": N, "failed": N}`.
pub fn results_json(results: &[LabResult]) -> String {
    let mut students = serde_json::Map::new();
    for r in results {
        let mut v = match &r.result {
            Ok(o) => outcome_json(o),
            Err(e) => serde_json::json!({"ok": false, "error": e}),
        };
        v["lab"] = r.lab.clone().into();
        v["secs"] = ((r.secs * 10.0).round() / 10.0).into();
        students.insert(r.student.clone(), v);
    }
    let ok = results.iter().filter(|r| r.ok()).count();
    mask(
        &serde_json::json!({"students": students, "ok": ok, "failed": results.len() - ok})
            .to_string(),
    )
}

/// `class verify --json`: as [`results_json`], each student's verify report.
pub fn verify_json(results: &[LabResult]) -> String {
    results_json(results)
}

/// `class status --json`.
pub fn status_json(results: &[LabResult]) -> String {
    results_json(results)
}

/// `STUDENT LAB SUBNET? NODES…`: each lab's nodes and their states.
pub fn status_table(results: &[LabResult]) -> String {
    let (sw, lw) = widths(results);
    let mut s = format!("{:sw$}  {:lw$}  NODES\n", "STUDENT", "LAB");
    for r in results {
        let nodes = match &r.result {
            Ok(Outcome::Status(nodes)) => nodes
                .iter()
                .map(|n| format!("{} {} {}", n.name, n.address, n.state.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
            Ok(o) => o.summary(),
            Err(e) => format!("FAILED: {}", crate::text::one_line(e)),
        };
        s.push_str(&format!("{:sw$}  {:lw$}  {nodes}\n", r.student, r.lab));
    }
    crate::text::printable(&s).to_string()
}
