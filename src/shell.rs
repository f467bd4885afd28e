//! The one way to build a shell script: literal shell text written in the
//! program, and values that are always quoted.
//!
//! [`sh!`](crate::sh) takes a string literal and positional arguments. The literal is
//! shell; every `{}` is one argument, quoted as a single word by [`ShellArg`]
//! (`'it'\''s'`), except another [`Script`], which is inserted as shell.
//! Captured names (`{name}`), formatting specs (`{:?}`) and numbered places
//! are refused at compile time, so a value can never enter a script unquoted:
//!
//! ```
//! use labctl::sh;
//! let file = "/tmp/a b; rm -rf /";
//! let s = sh!("test -e {} && cat -- {}", file, file);
//! assert_eq!(s.as_str(), "test -e '/tmp/a b; rm -rf /' && cat -- '/tmp/a b; rm -rf /'");
//! ```
//!
//! Scripts are joined with [`Script::line`] (a new line) and [`Script::push`]
//! (on the same line); [`Script::args`] appends quoted words.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// A shell script, built only from program literals and quoted values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script(String);

impl Script {
    /// An empty script.
    pub fn new() -> Script {
        Script(String::new())
    }

    /// Shell text written in the program (a literal: it cannot hold a value).
    pub fn lit(s: &'static str) -> Script {
        Script(s.to_string())
    }

    /// Shell a person wrote as shell: a `command:` task's `cmd:` and `unless:`
    /// (refused at load when `sh -n` cannot parse them, see `ops::check_shell`)
    /// and `labctl exec`'s command. The only way a text from outside the
    /// program becomes shell.
    pub fn user_shell(text: &str) -> Script {
        Script(text.to_string())
    }

    /// `data` as the here-document of a `base64 -d` (`sh!("base64 -d > f {}",
    /// Script::base64_heredoc(data))`): the body holds only the base64 alphabet,
    /// so it can never end the here-document early.
    pub fn base64_heredoc(data: &[u8]) -> Script {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        let mut s = String::with_capacity(b64.len() + b64.len() / 76 + 32);
        s.push_str("<<'LABCTL_EOF'\n");
        for chunk in b64.as_bytes().chunks(76) {
            s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            s.push('\n');
        }
        s.push_str("LABCTL_EOF");
        Script(s)
    }

    /// `text` as a here-document (`sh!("cat > f {}", Script::heredoc(text))`),
    /// its end line a random tag that no line of `text` is.
    pub fn heredoc(text: &str) -> Script {
        let tag = loop {
            let t = format!("LABCTL_{:016x}", rand::random::<u64>());
            if !text.lines().any(|l| l == t) {
                break t;
            }
        };
        let nl = if text.ends_with('\n') || text.is_empty() {
            ""
        } else {
            "\n"
        };
        Script(format!("<<'{tag}'\n{text}{nl}{tag}"))
    }

    /// Built by [`sh!`](crate::sh); not for direct use.
    #[doc(hidden)]
    pub fn from_checked_format(s: String) -> Script {
        Script(s)
    }

    /// Append `other` on the same line.
    pub fn push(&mut self, other: impl Into<Script>) -> &mut Script {
        self.0.push_str(&other.into().0);
        self
    }

    /// Append `other` as a new line.
    pub fn line(&mut self, other: impl Into<Script>) -> &mut Script {
        if !self.0.is_empty() && !self.0.ends_with('\n') {
            self.0.push('\n');
        }
        self.0.push_str(&other.into().0);
        self
    }

    /// Append each value as one more quoted word.
    pub fn args<I>(&mut self, values: I) -> &mut Script
    where
        I: IntoIterator,
        I::Item: ShellArg,
    {
        for v in values {
            self.0.push(' ');
            self.0.push_str(&v.shell_arg());
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<&'static str> for Script {
    fn from(s: &'static str) -> Script {
        Script::lit(s)
    }
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Script {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// `s` as one shell word, inside single quotes.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A value that can stand in a script: quoted as one word, except a [`Script`].
pub trait ShellArg {
    fn shell_arg(&self) -> Cow<'_, str>;
}

impl ShellArg for Script {
    fn shell_arg(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.0)
    }
}

impl ShellArg for str {
    fn shell_arg(&self) -> Cow<'_, str> {
        Cow::Owned(quote(self))
    }
}

impl ShellArg for String {
    fn shell_arg(&self) -> Cow<'_, str> {
        Cow::Owned(quote(self))
    }
}

impl ShellArg for Path {
    fn shell_arg(&self) -> Cow<'_, str> {
        Cow::Owned(quote(&self.to_string_lossy()))
    }
}

impl ShellArg for PathBuf {
    fn shell_arg(&self) -> Cow<'_, str> {
        self.as_path().shell_arg()
    }
}

impl<T: ShellArg + ?Sized> ShellArg for &T {
    fn shell_arg(&self) -> Cow<'_, str> {
        (**self).shell_arg()
    }
}

macro_rules! display_arg {
    ($($t:ty),*) => {$(
        impl ShellArg for $t {
            fn shell_arg(&self) -> Cow<'_, str> {
                Cow::Owned(quote(&self.to_string()))
            }
        }
    )*};
}
display_arg!(u8, u16, u32, u64, usize, i32, i64, Ipv4Addr, IpAddr);

/// Whether a `sh!` literal only uses plain `{}` places (and `{{`, `}}`).
#[doc(hidden)]
pub const fn plain_places(fmt: &str) -> bool {
    let b = fmt.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' {
            if i + 1 < b.len() && (b[i + 1] == b'{' || b[i + 1] == b'}') {
                i += 2;
                continue;
            }
            return false;
        }
        if b[i] == b'}' {
            if i + 1 < b.len() && b[i + 1] == b'}' {
                i += 2;
                continue;
            }
            return false;
        }
        i += 1;
    }
    true
}

/// Build a [`Script`](crate::shell::Script): a literal with `{}` places, each
/// filled by one argument, quoted (a `Script` argument goes in as shell).
#[macro_export]
macro_rules! sh {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{
        const _: () = assert!(
            $crate::shell::plain_places($fmt),
            "sh!: only plain {{}} places (every value is quoted); no {{name}} or {{:?}}"
        );
        $crate::shell::Script::from_checked_format(format!(
            $fmt $(, $crate::shell::ShellArg::shell_arg(&$arg))*
        ))
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// What `sh -c` prints for `printf '%s\n' ARG`: the value must come back unchanged.
    fn round_trip(v: &str) -> String {
        let s = crate::sh!("printf '%s' {}", v);
        let out = Command::new("sh")
            .arg("-c")
            .arg(s.as_str())
            .output()
            .unwrap();
        assert!(out.status.success(), "{s}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn hostile_values_stay_one_word() {
        for v in [
            "it's",
            "'",
            "''",
            "a\"b",
            "$(touch /tmp/labctl-shell-test)",
            "`touch /tmp/labctl-shell-test`",
            "${HOME}",
            "line one\nline two",
            "-rf",
            "--help",
            "a; rm -rf /tmp/x",
            "a && b || c | d & e",
            "* ? [a]",
            "\\",
            "",
            "tab\there",
            "~root",
            "#comment",
            "é ✓",
        ] {
            assert_eq!(round_trip(v), v);
        }
        assert!(!Path::new("/tmp/labctl-shell-test").exists());
    }

    #[test]
    fn leading_dashes_are_not_options_after_double_dash() {
        let s = crate::sh!("set -- {}; printf '%s|' \"$@\"", "-n");
        let out = Command::new("sh")
            .arg("-c")
            .arg(s.as_str())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "-n|");
    }

    #[test]
    fn scripts_nest_as_shell_and_args_append_words() {
        let inner = crate::sh!("echo {}", "x y");
        let outer = crate::sh!("if true; then {}; fi", inner);
        assert_eq!(outer.as_str(), "if true; then echo 'x y'; fi");
        let mut s = Script::lit("apt-get install -y --");
        s.args(["a", "b c"]);
        assert_eq!(s.as_str(), "apt-get install -y -- 'a' 'b c'");
        let mut t = Script::new();
        t.line("a").line(crate::sh!("b {}", 1u32)).push(" c");
        assert_eq!(t.as_str(), "a\nb '1' c");
    }

    #[test]
    fn base64_heredoc_carries_any_bytes() {
        let data: Vec<u8> = (0..=255u8).chain(*b"\nLABCTL_EOF\n'$(x)`").collect();
        let s = crate::sh!("base64 -d {}", Script::base64_heredoc(&data));
        let out = Command::new("sh")
            .arg("-c")
            .arg(s.as_str())
            .output()
            .unwrap();
        assert_eq!(out.stdout, data);
    }

    #[test]
    fn heredoc_carries_text_as_is() {
        let text = "a 'b' \"c\" $(d) `e`\nLABCTL_x\n\\ \t";
        let s = crate::sh!("cat {}", Script::heredoc(text));
        let out = Command::new("sh")
            .arg("-c")
            .arg(s.as_str())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{text}\n"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn only_plain_places() {
        assert!(plain_places("a {} b {{ }} {}"));
        assert!(!plain_places("a {name}"));
        assert!(!plain_places("a {:?}"));
        assert!(!plain_places("a {0}"));
        assert!(!plain_places("a } b"));
    }
}
