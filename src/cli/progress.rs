//! How the CLI draws a provider's [`Progress`]: a spinner per node on a
//! terminal, plain `node: message` lines otherwise (so CI logs show progress too).

use crate::progress::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

/// The CLI's [`Progress`]: spinners for the items of the current step.
pub struct Draw(Mutex<Option<Spinners>>);

impl Draw {
    pub fn new() -> Draw {
        Draw(Mutex::new(None))
    }

    fn with(&self, f: impl FnOnce(Option<&Spinners>)) {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(g.as_ref())
    }
}

impl Default for Draw {
    fn default() -> Draw {
        Draw::new()
    }
}

impl Progress for Draw {
    fn start(&self, labels: &[&str]) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *g = Some(Spinners::make(labels));
    }
    fn set(&self, label: &str, msg: &str) {
        let msg = &crate::text::printable(msg);
        self.with(|s| match s {
            Some(s) => s.set(label, msg),
            None => eprintln!("{label}: {msg}"),
        })
    }
    fn finish(&self, label: &str, msg: &str) {
        let msg = &crate::text::printable(msg);
        self.with(|s| match s {
            Some(s) => s.finish(label, msg),
            None => eprintln!("{label}: {msg}"),
        })
    }
    fn line(&self, msg: &str) {
        let msg = &crate::text::printable(msg);
        self.with(|s| match s {
            Some(s) => s.println(msg),
            None => eprintln!("{msg}"),
        })
    }
}

/// Spinners on a terminal, plain `node: message` lines otherwise.
pub struct Spinners {
    multi: Option<MultiProgress>,
    bars: Vec<(String, Option<ProgressBar>)>,
    width: usize,
    lock: Mutex<()>,
}

impl Spinners {
    fn make(labels: &[&str]) -> Spinners {
        let tty = std::io::stderr().is_terminal();
        let multi = tty.then(MultiProgress::new);
        let width = labels.iter().map(|l| l.len()).max().unwrap_or(0);
        let style =
            ProgressStyle::with_template(&format!("{{spinner}} {{prefix:{width}}}  {{msg}}"))
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bars = labels
            .iter()
            .map(|l| {
                let bar = multi.as_ref().map(|m| {
                    let b = m.add(ProgressBar::new_spinner());
                    b.set_style(style.clone());
                    b.set_prefix(l.to_string());
                    b.enable_steady_tick(Duration::from_millis(120));
                    b
                });
                (l.to_string(), bar)
            })
            .collect();
        Spinners {
            multi,
            bars,
            width,
            lock: Mutex::new(()),
        }
    }

    fn bar(&self, label: &str) -> Option<&ProgressBar> {
        self.bars
            .iter()
            .find(|(l, _)| l == label)
            .and_then(|(_, b)| b.as_ref())
    }

    /// A new state for `label`.
    pub fn set(&self, label: &str, msg: &str) {
        match self.bar(label) {
            Some(b) => b.set_message(msg.to_string()),
            None => {
                let _g = self.lock.lock();
                eprintln!("{label}: {msg}");
            }
        }
    }

    /// The final state for `label`.
    pub fn finish(&self, label: &str, msg: &str) {
        match self.bar(label) {
            Some(b) => {
                b.set_style(
                    ProgressStyle::with_template(&format!("  {{prefix:{}}}  {{msg}}", self.width))
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.finish_with_message(msg.to_string());
            }
            None => {
                let _g = self.lock.lock();
                eprintln!("{label}: {msg}");
            }
        }
    }

    /// Print a line above the spinners (or plainly).
    pub fn println(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        for (_, b) in &self.bars {
            if let Some(b) = b {
                if !b.is_finished() {
                    b.abandon();
                }
            }
        }
    }
}
