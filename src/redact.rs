//! Secrets never appear in output, diffs, JSON or logs: every text labctl shows
//! about a host passes through a [`Redactor`].
//!
//! Every secret value labctl learns (a variable named in `secrets:`, rendered
//! for a host or a check) is also remembered process-wide ([`remember`]), and
//! the CLI masks with [`mask`] whatever it prints: results, lists, JSON and
//! error messages alike.

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

static KNOWN: std::sync::Mutex<Redactor> = std::sync::Mutex::new(Redactor {
    secrets: Vec::new(),
});

/// Remember the secrets of `r` for [`mask`].
pub fn remember(r: &Redactor) {
    if let Ok(mut k) = KNOWN.lock() {
        k.extend(r);
    }
}

/// `text` with every secret remembered so far masked, and made printable
/// ([`crate::text::printable`]: no escape sequence from a file or a node
/// reaches the terminal).
pub fn mask(text: &str) -> String {
    let masked = match KNOWN.lock() {
        Ok(k) => k.redact(text),
        Err(_) => text.to_string(),
    };
    crate::text::printable(&masked).into_owned()
}

/// Add to `r` the values of the variables named `names` in `vars`.
pub fn add_named(r: &mut Redactor, vars: &minijinja::Value, names: &[&String]) {
    for name in names {
        if let Ok(v) = vars.get_attr(name) {
            if let Some(s) = v.as_str() {
                r.add(s);
            } else if !v.is_undefined() {
                r.add(&v.to_string());
            }
        }
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
