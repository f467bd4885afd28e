//! Error kinds that decide labctl's exit code.
//!
//! A [`UserError`] is a mistake in the user's input (a file, a flag, a key's
//! permissions): exit code 2, one clear message, nothing touched. Every other
//! error is a runtime failure: exit code 1.

use std::fmt;

/// A mistake in the user's input. The message names the file (and line) and the fix.
#[derive(Debug)]
pub struct UserError(pub String);

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

/// Build an `anyhow::Error` for a user mistake (exit code 2).
pub fn user(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UserError(msg.into()))
}

/// `bail!` for user mistakes.
#[macro_export]
macro_rules! user_bail {
    ($($arg:tt)*) => { return Err($crate::error::user(format!($($arg)*))) };
}

/// The exit code for an error: 2 for input mistakes, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err.chain().any(|e| e.downcast_ref::<UserError>().is_some()) {
        2
    } else {
        1
    }
}

/// One message: the error and its causes, without a backtrace.
pub fn format_error(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
    }
    s
}
