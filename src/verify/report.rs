//! The report of a run: one [`CheckResult`] per check, as text lines (printed
//! as each check ends) and a summary, or one JSON object.

use serde::Serialize;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub name: String,
    /// The check's kind (`dns`, `http`, ...); not part of the JSON report.
    #[serde(skip)]
    pub kind: &'static str,
    pub passed: bool,
    /// What was seen: the figures when it passed, the reason when it failed.
    pub detail: String,
    /// The check's figure: the failover or recovery time, else how long the check took.
    pub ms: Option<u64>,
}

/// The results of a whole run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerifyReport {
    pub scenario: String,
    pub checks: Vec<CheckResult>,
    /// The measured failover time of the first `failover` check, if it got that far.
    pub failover_ms: Option<u64>,
}

impl VerifyReport {
    /// Whether every check passed (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// The check with this name, if any.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// `{"passed", "checks": [{"name", "passed", "detail", "ms"}], "failover_ms"}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "passed": self.passed(),
            "checks": self.checks,
            "failover_ms": self.failover_ms,
        })
    }

    /// The closing summary line of the text report.
    pub fn summary(&self) -> String {
        let n = self.checks.len();
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect();
        let mut s = if failed.is_empty() {
            format!("verify {}: all {n} checks passed", self.scenario)
        } else {
            format!(
                "verify {}: {} of {n} checks FAILED: {}",
                self.scenario,
                failed.len(),
                failed.join("; ")
            )
        };
        if let Some(ms) = self.failover_ms {
            s.push_str(&format!(" (failover {ms} ms)"));
        }
        s
    }

    /// The whole text report: one line per check and the summary.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.checks {
            s.push_str(&c.line());
            s.push('\n');
        }
        s.push_str(&self.summary());
        s.push('\n');
        s
    }
}

impl CheckResult {
    /// One line of the text report: `PASS  name: detail (12 ms)`.
    pub fn line(&self) -> String {
        let mark = if self.passed { "PASS" } else { "FAIL" };
        let fig = match self.ms {
            Some(ms) => format!(" ({ms} ms)"),
            None => String::new(),
        };
        let detail = self.detail.replace('\n', "\n      ");
        format!("{mark}  {}: {detail}{fig}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_json_has_the_exact_shape() {
        let r = VerifyReport {
            scenario: "s".into(),
            checks: vec![CheckResult {
                name: "a".into(),
                kind: "dns",
                passed: true,
                detail: "ok".into(),
                ms: Some(3),
            }],
            failover_ms: None,
        };
        let j = r.json();
        assert_eq!(
            j,
            serde_json::json!({"passed": true, "checks": [{"name": "a", "passed": true, "detail": "ok", "ms": 3}], "failover_ms": null})
        );
        assert!(r.text().contains("PASS  a: ok (3 ms)"));
        assert!(r.summary().contains("all 1 checks passed"));
    }
}
