//! Progress of long work (bringing nodes up, building an image, powering
//! off): the library reports it to a [`Progress`]; the CLI draws it (a
//! spinner per node on a terminal, plain lines elsewhere).

/// Where a provider reports what it is doing.
pub trait Progress: Sync {
    /// The work now concerns these items (nodes), one line each.
    fn start(&self, labels: &[&str]);
    /// A new state for one item.
    fn set(&self, label: &str, msg: &str);
    /// The final state for one item.
    fn finish(&self, label: &str, msg: &str);
    /// A line of its own (an image build step, a warning, a summary).
    fn line(&self, msg: &str);
}

/// Reports nothing (a check's power actions, tests).
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _labels: &[&str]) {}
    fn set(&self, _label: &str, _msg: &str) {}
    fn finish(&self, _label: &str, _msg: &str) {}
    fn line(&self, _msg: &str) {}
}
