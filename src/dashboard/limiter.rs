//! One budget for every request the dashboard sends to the lab (DNS queries,
//! HTTP requests, SSH commands): at most [`PER_SECOND`] in any second, in all,
//! so a page left open on a projector never floods the lab.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most requests the dashboard sends to the lab in one second.
pub const PER_SECOND: usize = 10;

/// A sliding-window limiter: a request may go when fewer than `per_second`
/// went in the last second.
#[derive(Debug)]
pub struct Limiter {
    per_second: usize,
    sent: Mutex<VecDeque<Instant>>,
}

impl Default for Limiter {
    fn default() -> Limiter {
        Limiter::new(PER_SECOND)
    }
}

impl Limiter {
    pub fn new(per_second: usize) -> Limiter {
        Limiter {
            per_second: per_second.max(1),
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Take one request from the budget, waiting for room; `false` (and no
    /// request taken) when `stop` says so first.
    pub fn take(&self, stop: &dyn Fn() -> bool) -> bool {
        loop {
            if stop() {
                return false;
            }
            let wait = {
                let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
                {
                    sent.pop_front();
                }
                if sent.len() < self.per_second {
                    sent.push_back(now);
                    return true;
                }
                sent.front()
                    .map(|t| Duration::from_secs(1).saturating_sub(now.duration_since(*t)))
                    .unwrap_or_default()
            };
            std::thread::sleep(wait.clamp(Duration::from_millis(1), Duration::from_millis(50)));
        }
    }

    /// How many requests went in the last second.
    pub fn in_last_second(&self) -> usize {
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        sent.iter()
            .filter(|t| now.duration_since(**t) < Duration::from_secs(1))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_the_budget_in_a_second() {
        let l = Limiter::new(5);
        let t = Instant::now();
        let mut times = Vec::new();
        for _ in 0..12 {
            assert!(l.take(&|| false));
            times.push(t.elapsed());
            assert!(l.in_last_second() <= 5);
        }
        // any 6 consecutive requests span at least a second
        for w in times.windows(6) {
            assert!(w[5] - w[0] >= Duration::from_millis(999), "{times:?}");
        }
        assert!(!l.take(&|| true));
    }
}
