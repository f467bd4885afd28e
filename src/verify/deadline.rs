//! One check on a worker thread of its own, within its deadline: a check that
//! hangs fails instead of hanging verify, and it is stopped (told through its
//! [`Ctx`](crate::checks::Ctx), then joined) before the next check starts.

use crate::checks::{Check, Env, Figure, Outcome};
use crate::duration::human_ms;
use std::sync::mpsc;
use std::time::Instant;

/// Run `check` within its deadline: what it found, and its figure in ms.
pub fn run(env: &Env, check: &dyn Check) -> (Outcome, Option<u64>) {
    let limit = check.deadline();
    let start = Instant::now();
    let ctx = env.ctx(start + limit);
    let (tx, rx) = mpsc::channel();
    let outcome = std::thread::scope(|s| {
        let spawned = std::thread::Builder::new()
            .name("verify-check".into())
            .spawn_scoped(s, || {
                let _ = tx.send(check.run(&ctx));
            });
        let handle = match spawned {
            Ok(h) => h,
            Err(e) => return Outcome::fail(format!("cannot start the check: {e}")),
        };
        let out = match rx.recv_timeout(limit) {
            Ok(o) => o,
            Err(mpsc::RecvTimeoutError::Timeout) => Outcome::fail(format!(
                "gave up after {} (the check's time limit)",
                human_ms(limit.as_millis() as u64)
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Outcome::fail("the check stopped unexpectedly")
            }
        };
        // past the deadline the check ends its waits at once; it is over
        // (joined) before the next one starts
        ctx.stop();
        let _ = handle.join();
        out
    });
    let ms = match outcome.figure {
        Figure::Elapsed => Some(start.elapsed().as_millis() as u64),
        Figure::Ms(ms) => Some(ms),
        Figure::Unknown => None,
    };
    (outcome, ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Ctx, ProviderPower};
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::time::Duration;

    /// A check that, when `stuck`, waits until it is stopped and records
    /// that it ended; otherwise it passes at once (saying 7 ms), not stopped.
    #[derive(Debug)]
    struct Fake {
        stuck: bool,
        deadline: Duration,
        ended: AtomicBool,
        rounds: AtomicU32,
    }

    impl Fake {
        fn new(stuck: bool, deadline: Duration) -> Fake {
            Fake {
                stuck,
                deadline,
                ended: AtomicBool::new(false),
                rounds: AtomicU32::new(0),
            }
        }
    }

    impl Check for Fake {
        fn summary(&self) -> String {
            if self.stuck { "stuck" } else { "quick" }.into()
        }
        fn deadline(&self) -> Duration {
            self.deadline
        }
        fn run(&self, ctx: &Ctx) -> Outcome {
            if !self.stuck {
                assert!(!ctx.stopped());
                return Outcome::pass("done").with_ms(Some(7));
            }
            while ctx.sleep(Duration::from_millis(20)) {
                self.rounds.fetch_add(1, Ordering::SeqCst);
            }
            self.ended.store(true, Ordering::SeqCst);
            Outcome::pass("it should not count")
        }
    }

    #[test]
    fn a_check_past_its_deadline_fails_and_is_over_before_the_next_starts() {
        let inv = crate::checks::test_inventory();
        let env = Env::new(&inv, false, &ProviderPower, &|_| {});
        let stuck = Fake::new(true, Duration::from_millis(200));
        let (o, ms) = run(&env, &stuck);
        assert!(!o.passed);
        assert!(o.detail.contains("gave up after 200 ms"), "{}", o.detail);
        assert!(ms.is_some());
        // its thread has ended: no round runs after `run` returned
        assert!(stuck.ended.load(Ordering::SeqCst));
        let rounds = stuck.rounds.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(stuck.rounds.load(Ordering::SeqCst), rounds);
        // the next check gets a context of its own, not stopped
        let (o, ms) = run(&env, &Fake::new(false, Duration::from_secs(60)));
        assert!(o.passed, "{}", o.detail);
        assert_eq!(ms, Some(7));
    }
}
