//! The Ruby a Vagrantfile is written in, as far as labctl reads it: comments,
//! statements, literals, `do |x|` blocks, call options; and the refusal of
//! anything else, named from the statement's text.

use crate::error::user;
use std::net::Ipv4Addr;

/// `what` at `file:line`, and the fix.
pub(super) fn refuse(file: &str, line: usize, what: &str, fix: &str) -> anyhow::Error {
    user(format!("{file}:{line}: {what}\n  fix: {fix}"))
}

/// Remove a `#` comment (outside quotes) and surrounding blanks.
pub(super) fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev = '\0';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q && prev != '\\' => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return line[..i].trim(),
            None => {}
        }
        prev = c;
    }
    line.trim()
}

/// Logical statements: (first line number, text), comments removed, a line
/// ending in `,` joined with the next.
pub(super) fn statements(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        if line.is_empty() {
            continue;
        }
        let (start, mut s) = open.take().unwrap_or((i + 1, String::new()));
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(line);
        if s.ends_with(',') {
            open = Some((start, s));
        } else {
            out.push((start, s));
        }
    }
    if let Some(o) = open {
        out.push(o);
    }
    out
}

/// A Ruby string literal (`"x"` or `'x'`), a symbol (`:x`) or a bare word:
/// its text, when it is one of those and holds no interpolation.
pub(super) fn literal(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(sym) = s.strip_prefix(':') {
        return ident(sym).then(|| sym.to_string());
    }
    let q = s.chars().next()?;
    if (q == '"' || q == '\'') && s.len() >= 2 && s.ends_with(q) {
        let inner = &s[1..s.len() - 1];
        if inner.contains(q) || inner.contains('\\') || inner.contains("#{") {
            return None;
        }
        return Some(inner.to_string());
    }
    None
}

pub(super) fn ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `do |var|` at the end of `s`: the text before it and the variable.
pub(super) fn do_block(s: &str) -> Option<(&str, String)> {
    let s = s.trim_end();
    let rest = s.strip_suffix('|')?;
    let bar = rest.rfind('|')?;
    let var = rest[bar + 1..].trim();
    let head = rest[..bar].trim_end().strip_suffix("do")?.trim_end();
    ident(var).then(|| (head, var.to_string()))
}

/// The options of a call (`ip: "10.1.1.101", netmask: "255.255.255.0"` or
/// `:size => '512M'`): key and raw value, split at top-level commas.
pub(super) fn options(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in split_commas(s) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = if let Some((k, v)) = part.split_once("=>") {
            (k.trim().strip_prefix(':')?.to_string(), v.trim())
        } else {
            let (k, v) = part.split_once(':')?;
            if k.trim().starts_with(['"', '\'']) {
                return None;
            }
            (k.trim().to_string(), v.trim())
        };
        if !ident(&k) {
            return None;
        }
        out.push((k, v.to_string()));
    }
    Some(out)
}

pub(super) fn split_commas(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == ',' => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            None => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
}

/// A number (`1024`, `"1024"`).
pub(super) fn number(v: &str) -> Option<u64> {
    let v = v.trim();
    literal(v).unwrap_or_else(|| v.to_string()).parse().ok()
}

/// Name a construct labctl does not read, from the statement's text.
pub(super) fn what_is(s: &str) -> (&'static str, &'static str) {
    let words: Vec<&str> = s
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    if s.contains("#{") {
        (
            "string interpolation (`#{…}`) is Ruby code",
            "write the value itself, e.g. ip: \"10.1.1.101\"",
        )
    } else if has("each")
        || has("times")
        || has("upto")
        || has("for")
        || has("while")
        || has("until")
        || has("loop")
        || has("step")
    {
        (
            "a loop is Ruby code",
            "write one config.vm.define block per machine",
        )
    } else if has("if")
        || has("unless")
        || has("else")
        || has("elsif")
        || has("case")
        || has("when")
        || s.contains(" ? ")
    {
        (
            "a condition (if/unless/case) is Ruby code",
            "keep the branch you need and remove the condition",
        )
    } else if has("customize") {
        ("`customize` runs provider commands labctl cannot read", "remove the line; an extra disk is `libvirt.storage :file, :size => '512M'` in a libvirt provider block")
    } else if has("provision") {
        ("a provisioner (vm.provision) runs on `vagrant up`; labctl does not provision", "remove the block and run the playbook yourself after `labctl up` (ansible-playbook, or `labctl configure`)")
    } else if has("public_network") {
        ("a public network would put the lab on this machine's LAN; labctl keeps lab traffic on the machine", "use :private_network, ip: \"…\"")
    } else if has("forwarded_port") {
        (
            "a port forward; labctl nodes are reached at their own addresses, no forwarding needed",
            "remove the line and connect to the node's address",
        )
    } else if has("require") || has("load") || s.contains("ENV[") || s.contains("File.") {
        (
            "Ruby code (a require, ENV or File call)",
            "write the values themselves",
        )
    } else if s.contains(" = ")
        && words.first().is_some_and(|w| {
            w.chars().next().is_some_and(|c| c.is_ascii_uppercase()) || !s.contains('.')
        })
    {
        (
            "a Ruby variable or constant",
            "write its value where it is used",
        )
    } else if has("def") || has("class") || has("module") || has("lambda") || has("proc") {
        (
            "Ruby code (a method, class or block)",
            "write the machines out one by one",
        )
    } else {
        (
            "a setting labctl does not read",
            "remove the line (or ask for it in an issue)",
        )
    }
}

/// A host name label: letters, digits and `-`, not at either end.
pub(super) fn host_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

/// A size as Vagrant's libvirt provider writes it: digits and an optional unit
/// (`512M`, `10G`).
pub(super) fn size_text(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) && s.len() - digits.len() <= 3
}

/// `255.255.255.0` → 24.
pub(super) fn netmask_prefix(s: &str) -> Option<u8> {
    let m = u32::from(s.parse::<Ipv4Addr>().ok()?);
    let p = m.leading_ones();
    (m.checked_shl(p).unwrap_or(0) == 0).then_some(p as u8)
}

/// A statement cut for a message.
pub(super) fn short(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_string()
    }
}
