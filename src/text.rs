//! Small text helpers for what nodes print.

/// `key=value` lines (systemctl show, our probes) into a map.
pub fn kv_lines(s: &str) -> std::collections::BTreeMap<String, String> {
    s.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The last `n` non-empty lines of `s`, joined with ` / `.
pub fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join(" / ")
}

/// `s` safe to show on a terminal: every control character but newline and
/// tab (an escape sequence, a carriage return, a backspace) written as a
/// visible `\x1b`-style escape, so text echoed from files and nodes cannot move
/// the cursor, retitle the window or rewrite what was printed before it.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    escape_if(s, |c| c.is_control() && c != '\n' && c != '\t')
}

/// `s` as one printable line (a name or a path in a message): every control
/// character, newlines too, written as a visible escape.
pub fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    escape_if(s, char::is_control)
}

fn escape_if(s: &str, bad: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(&bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            let n = c as u32;
            if n <= 0xff {
                out.push_str(&format!("\\x{n:02x}"));
            } else {
                out.push_str(&format!("\\u{{{n:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_has_no_escape_sequences() {
        assert_eq!(printable("a\tb\nc"), "a\tb\nc");
        assert_eq!(printable("\x1b]0;owned\x07x\r"), "\\x1b]0;owned\\x07x\\x0d");
        assert_eq!(printable("\u{9b}31m"), "\\x9b31m");
        assert!(!printable("\x1b[2J").contains('\x1b'));
        assert_eq!(one_line("a\nb"), "a\\x0ab");
    }
}
