//! What the hosts of one run learn about each other while it goes on: which
//! hosts are unreachable (their connection failed or was lost). An operation
//! that waits for other hosts (the cluster waits for its members) reads it, so
//! a member the run already knows to be down ends the wait at once.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The hosts found unreachable so far in this run (shared by every host worker).
#[derive(Debug, Clone, Default)]
pub struct Unreachable(Arc<Mutex<BTreeSet<String>>>);

impl Unreachable {
    pub fn new() -> Unreachable {
        Unreachable::default()
    }

    /// `host` could not be reached, or its connection broke.
    pub fn mark(&self, host: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.insert(host.to_string());
        }
    }

    /// The first of `hosts` known to be unreachable.
    pub fn first_of(&self, hosts: &[String]) -> Option<String> {
        let s = self.0.lock().ok()?;
        hosts.iter().find(|h| s.contains(*h)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_what_they_learn() {
        let a = Unreachable::new();
        let b = a.clone();
        let members = vec!["nodo1".to_string(), "nodo2".to_string()];
        assert_eq!(b.first_of(&members), None);
        a.mark("nodo2");
        assert_eq!(b.first_of(&members).as_deref(), Some("nodo2"));
    }
}
