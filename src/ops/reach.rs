//! What the hosts of one run learn about each other while it goes on: which
//! hosts are out of it (their connection failed or was lost, or a task failed
//! and they take no part in later plays). An operation that waits for other
//! hosts (the cluster waits for its members) reads it, so a member the run
//! already knows to be out ends the wait at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The hosts out of this run so far, with why (shared by every host worker).
#[derive(Debug, Clone, Default)]
pub struct Unreachable(Arc<Mutex<BTreeMap<String, &'static str>>>);

impl Unreachable {
    pub fn new() -> Unreachable {
        Unreachable::default()
    }

    /// `host` could not be reached, or its connection broke.
    pub fn mark(&self, host: &str) {
        self.out(host, "is unreachable in this run");
    }

    /// A task failed on `host`: it takes no part in the run's later plays.
    pub fn mark_stopped(&self, host: &str) {
        self.out(host, "stopped in this run after a failed task");
    }

    fn out(&self, host: &str, why: &'static str) {
        if let Ok(mut s) = self.0.lock() {
            s.entry(host.to_string()).or_insert(why);
        }
    }

    /// The first of `hosts` known to be out of the run.
    pub fn first_of(&self, hosts: &[String]) -> Option<String> {
        self.first_with_why(hosts).map(|(h, _)| h)
    }

    /// The first of `hosts` known to be out of the run, and why (`is unreachable in this run`).
    pub fn first_with_why(&self, hosts: &[String]) -> Option<(String, &'static str)> {
        let s = self.0.lock().ok()?;
        hosts
            .iter()
            .find_map(|h| s.get(h).map(|why| (h.clone(), *why)))
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
        // a failed task takes a host out too, and the first reason stays
        a.mark_stopped("nodo1");
        a.mark_stopped("nodo2");
        assert_eq!(
            b.first_with_why(&members),
            Some(("nodo1".into(), "stopped in this run after a failed task"))
        );
        assert_eq!(
            b.first_with_why(&members[1..]),
            Some(("nodo2".into(), "is unreachable in this run"))
        );
    }
}
