//! A running `labctl dashboard` for the browser tests: started in a project
//! folder, its URL read from its first line, its output forwarded to the
//! test log; Ctrl-C (SIGINT, by its PID) stops it, and drop kills it if a
//! failed test left it running.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

pub struct Dashboard {
    child: Child,
    /// The URL it printed.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub host: String,
}

impl Dashboard {
    /// `labctl ARGS` in `dir` (ARGS holds `dashboard …`).
    pub fn start(dir: &Path, args: &[&str]) -> Dashboard {
        let mut child = super::spawn_labctl(dir, args);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        eprintln!("{line}");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        // keep reading its output so it never blocks on a full pipe
        for r in [Box::new(out) as Box<dyn BufRead + Send>, Box::new(err)] {
            std::thread::spawn(move || {
                for l in r.lines().map_while(Result::ok) {
                    eprintln!("dashboard: {l}");
                }
            });
        }
        let host = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        Dashboard { child, url, host }
    }

    /// Ctrl-C: how it ended.
    pub fn interrupt(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on the child this test started, by its PID
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < until,
                "the dashboard did not stop on Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: kill(2) on the child this test started, by its PID
            unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}
