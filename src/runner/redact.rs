//! Secrets never appear in output, diffs, JSON or logs: every text labctl shows
//! about a host passes through a [`Redactor`].

/// Replaces secret values with `********`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

pub const MASK: &str = "********";

impl Redactor {
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Remember a secret value (short values are ignored: masking `1` would mask every digit).
    pub fn add(&mut self, value: &str) {
        let v = value.trim();
        if v.len() >= 4 && !self.secrets.iter().any(|s| s == v) {
            self.secrets.push(v.to_string());
            // longest first, so a secret containing another is masked whole
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub fn extend(&mut self, other: &Redactor) {
        for s in &other.secrets {
            self.add(s);
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_longest_first() {
        let mut r = Redactor::new();
        r.add("hunter2");
        r.add("hunter2-long");
        assert_eq!(
            r.redact("a hunter2-long b hunter2"),
            "a ******** b ********"
        );
        r.add("ab");
        assert_eq!(r.redact("ab"), "ab");
    }
}
