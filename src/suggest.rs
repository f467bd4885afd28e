//! "Did you mean …?": the known name closest to a typo.
//!
//! One mechanism for every place a user names something from a fixed set:
//! unknown keys and values in `inventory.yaml` and scenario files (the names
//! serde lists as allowed), node, group and handler names, and files that do
//! not exist (a scenario given without `.yaml`, a misspelt template).

use std::path::{Path, PathBuf};

/// The edit distance between `a` and `b` (insertions, deletions,
/// substitutions and swaps of two neighbours each count 1), case-insensitive.
pub fn distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(&a.to_lowercase(), &b.to_lowercase())
}

/// The candidate `word` most probably meant: the closest one within a few
/// edits (about a third of the word), or the only one that starts with it
/// (`start` → `started`). `None` when nothing is close, or `word` is itself
/// a candidate.
pub fn closest<'a, I, S>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a S>,
    S: AsRef<str> + ?Sized + 'a,
{
    let word = word.trim();
    if word.is_empty() {
        return None;
    }
    let cands: Vec<&str> = candidates.into_iter().map(|c| c.as_ref()).collect();
    if cands.contains(&word) {
        return None;
    }
    let limit = (word.chars().count() / 3).max(2);
    let best = cands
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, c)| *d <= limit && *d < c.chars().count().max(word.chars().count()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string());
    if best.is_some() {
        return best;
    }
    let lower = word.to_lowercase();
    let prefixed: Vec<&&str> = cands
        .iter()
        .filter(|c| c.to_lowercase().starts_with(&lower))
        .collect();
    match prefixed.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

/// ` (did you mean `x`?)` for a message, or nothing.
pub fn hint<'a, I, S>(word: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a S>,
    S: AsRef<str> + ?Sized + 'a,
{
    closest(word, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// The existing file a path that does not exist probably meant: the same
/// path with `.yaml` or `.yml`, or the closest name in its folder (as typed:
/// `scenarios/01-dns-round-robin` → `scenarios/01-dns-round-robin.yaml`).
pub fn file(path: &Path) -> Option<PathBuf> {
    if path.exists() {
        return None;
    }
    for ext in ["yaml", "yml"] {
        let mut s = path.as_os_str().to_owned();
        s.push(".");
        s.push(ext);
        let p = PathBuf::from(s);
        if p.is_file() {
            return Some(p);
        }
    }
    let name = path.file_name()?.to_string_lossy().into_owned();
    let parent = path.parent().unwrap_or(Path::new(""));
    let dir = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // compare without the extension too: `01-dns-round-robn` is close to `01-dns-round-robin.yaml`
    let stem = |n: &str| -> String {
        Path::new(n)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let stems: Vec<String> = names.iter().map(|n| stem(n)).collect();
    let found = closest(&name, &names).or_else(|| {
        closest(&stem(&name), &stems).and_then(|s| names.iter().find(|n| stem(n) == s).cloned())
    })?;
    Some(parent.join(found))
}

/// ` (did you mean `PATH`?)` for a missing file, or nothing.
pub fn file_hint(path: &Path) -> String {
    file(path)
        .map(|p| format!(" (did you mean `{}`?)", p.display()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("pakage", "package"), 1);
        assert_eq!(distance("taks", "tasks"), 1);
        assert_eq!(distance("pakcage", "package"), 1); // a swap
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("Package", "package"), 0);
    }

    #[test]
    fn suggestions() {
        let ops = ["package", "template", "copy", "file", "service", "user"];
        assert_eq!(closest("pakage", &ops).as_deref(), Some("package"));
        assert_eq!(closest("servce", &ops).as_deref(), Some("service"));
        assert_eq!(closest("xyz", &ops), None);
        assert_eq!(closest("package", &ops), None);
        let states = ["started", "stopped", "restarted", "reloaded"];
        assert_eq!(closest("start", &states).as_deref(), Some("started"));
        assert_eq!(closest("stoped", &states).as_deref(), Some("stopped"));
        assert_eq!(closest("runing", &states), None);
        // a short word is not "close" to everything short
        assert_eq!(closest("ab", &["xy", "cd"]), None);
        assert_eq!(hint("nodo3", &["nodo1", "dns"]), " (did you mean `nodo1`?)");
    }

    #[test]
    fn files() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("scenarios");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(s.join("01-dns-round-robin.yaml"), "").unwrap();
        std::fs::write(s.join("04-ip-failover.yaml"), "").unwrap();
        let got = |p: &str| file(&d.path().join(p)).map(|f| f.display().to_string());
        let want = |p: &str| Some(d.path().join(p).display().to_string());
        assert_eq!(
            got("scenarios/01-dns-round-robin"),
            want("scenarios/01-dns-round-robin.yaml")
        );
        assert_eq!(
            got("scenarios/01-dns-round-robn.yaml"),
            want("scenarios/01-dns-round-robin.yaml")
        );
        assert_eq!(
            got("scenarios/04-ip-failover.yml"),
            want("scenarios/04-ip-failover.yaml")
        );
        assert_eq!(got("scenarios/zzz-nothing-like-it.yaml"), None);
        assert_eq!(got("scenarios/04-ip-failover.yaml"), None);
    }
}
