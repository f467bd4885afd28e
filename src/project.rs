//! The project folder and what labctl may do with files.
//!
//! labctl runs as root from files a student may have copied from anywhere, so
//! three rules hold for every path it uses:
//!
//! - **Reads** of files a scenario names (`import:`, `copy: {src:}`, templates)
//!   resolve inside the project folder, after following links
//!   ([`resolve_inside`]); anything else is refused with the place it was named.
//! - **Writes and deletes** happen only in labctl's own state folders: the
//!   project's `.labctl/` ([`owned`]) and `/var/lib/labctl`. A state folder that
//!   is a symlink is refused ([`check_state_dir`]): removing lab state never
//!   follows a link.
//! - Paths are normalised ([`normalize`]: `.` and `..` folded) before any check.

use crate::error::user;
use std::path::{Component, Path, PathBuf};

/// `path` made absolute (against the current folder) with `.` and `..` folded
/// lexically, without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Whether `s` holds a control character (a newline, a tab, an escape): such a
/// value would break out of a config line or a command line.
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Resolve `rel` (relative to `base`, a folder inside the project) to a file
/// inside `project`, after following every link. `what` names the reference for
/// the message (`src.yaml:3:5: import`). An absolute path, a `..` that leaves the
/// project, or a link that points out of it is refused (exit 2), before the file
/// is read.
pub fn resolve_inside(
    project: &Path,
    base: &Path,
    rel: &str,
    what: &str,
) -> anyhow::Result<PathBuf> {
    let refuse = |why: &str| {
        user(format!(
            "{what}: `{rel}` {why}; labctl reads only files inside the project {}\n  fix: copy the file into the project and name it relative to {}",
            project.display(),
            base.display()
        ))
    };
    if has_control(rel) {
        return Err(refuse("holds a control character"));
    }
    if Path::new(rel).is_absolute() {
        return Err(refuse("is an absolute path"));
    }
    let joined = base.join(rel);
    let root = real_path(project);
    if !normalize(&joined).starts_with(normalize(project)) {
        return Err(refuse("leaves the project folder"));
    }
    // where the kernel would really go: `link/..` is the parent of the link's
    // target, not the folder holding the link
    let real = real_path(&joined);
    if real.starts_with(&root) {
        Ok(real)
    } else {
        Err(refuse(&format!(
            "is a link to {}, outside the project",
            real.display()
        )))
    }
}

/// `path` resolved the way the kernel resolves it — links followed one part at
/// a time, `..` taken after the link before it — also when its last parts do
/// not exist (those are kept as written). At most 40 links, as Linux allows.
pub fn real_path(path: &Path) -> PathBuf {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut todo: VecDeque<OsString> = abs
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    let mut out = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&part);
        match std::fs::read_link(&next) {
            Ok(target) if links < 40 => {
                links += 1;
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => todo.push_front(n.to_os_string()),
                        Component::ParentDir => todo.push_front(OsString::from("..")),
                        _ => {}
                    }
                }
            }
            _ => out = next,
        }
    }
    out
}

/// Refuse a state folder that is a symlink or not a folder: labctl writes keys
/// there and deletes it on `destroy`, so it must be the project's own.
pub fn check_state_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(user(format!(
            "{} is a symlink (to {}); labctl keeps keys there and deletes it on destroy, so it must be a real folder of the project\n  fix: remove the link (`rm {}`); labctl makes the folder itself",
            dir.display(),
            std::fs::read_link(dir)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into()),
            dir.display()
        ))),
        Ok(m) if !m.is_dir() => Err(user(format!(
            "{} is not a folder\n  fix: remove it; labctl makes its state folder itself",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// Whether labctl owns `path`: it lies inside the state folder `state` (after
/// normalising) and no part of it below `state` is a symlink. Only such files
/// are ever overwritten or deleted.
pub fn owned(state: &Path, path: &Path) -> bool {
    let state = normalize(state);
    let path = normalize(path);
    let Ok(rest) = path.strip_prefix(&state) else {
        return false;
    };
    if rest.as_os_str().is_empty() || check_state_dir(&state).is_err() {
        return false;
    }
    let mut p = state.clone();
    for c in rest.components() {
        p.push(c);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            return false;
        }
    }
    true
}

/// Create the state folder `dir` (mode 0700) if needed, refusing a symlink.
pub fn ensure_state_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    check_state_dir(dir)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// Remove the state folder `dir` and everything in it, never following a
/// link (a link inside is removed, not its target). Refuses a folder that is
/// itself a link.
pub fn remove_state_dir(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> anyhow::Result<()> {
    check_state_dir(dir)?;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let p = e.path();
        if keep(&p) {
            continue;
        }
        // file_type() does not follow links: a link to a folder is a link
        match e.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p)?,
            _ => std::fs::remove_file(&p)?,
        }
    }
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

/// Read a file of the state folder `state`, refusing one that labctl does not
/// own (outside the folder, or reached through a link).
pub fn read_state(state: &Path, path: &Path) -> std::io::Result<Vec<u8>> {
    if !owned(state, path) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is not labctl's own file (outside {} or a link)",
                path.display(),
                state.display()
            ),
        ));
    }
    let mut f = open_nofollow(path, std::fs::OpenOptions::new().read(true))?;
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut v)?;
    Ok(v)
}

/// Make the folder `dir` inside the state folder `state` one part at a time
/// (mode 0700), checking each part that exists before going into it: a link
/// or a file on the way is refused before anything is made, so no folder is
/// ever made through a link.
pub fn make_state_dirs(state: &Path, dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let (state, dir) = (normalize(state), normalize(dir));
    let Ok(rest) = dir.strip_prefix(&state) else {
        anyhow::bail!(
            "refusing to make {}: outside labctl's state folder {}",
            dir.display(),
            state.display()
        );
    };
    check_state_dir(&state)?;
    let mut p = state.clone();
    for c in rest.components() {
        p.push(c);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => check_state_dir(&p)?,
            Err(_) => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&p)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", p.display()))?,
        }
    }
    Ok(())
}

/// Write a file of the state folder `state` atomically (a new temporary file,
/// then a rename over the old one, which replaces a link instead of following
/// it), with `mode`. Refuses a path labctl does not own.
pub fn write_state(state: &Path, path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    ensure_state_dir(state)?;
    if let Some(d) = path.parent() {
        make_state_dirs(state, d)?;
    }
    if !owned(state, path) {
        anyhow::bail!(
            "refusing to write {}: not labctl's own file (outside {} or a link)",
            path.display(),
            state.display()
        );
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", tmp.display()))?;
    f.write_all(bytes)?;
    drop(f);
    std::fs::rename(&tmp, path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// The project's record of the scenario `configure` applied last
/// (`.labctl/last-scenario`), which `verify` and `dashboard` use when no
/// scenario is named. [`last_scenario`] and [`remember_scenario`] are the only
/// readers and writers.
pub const LAST_SCENARIO: &str = "last-scenario";

/// Whether `path` (absolute) lies inside `project`, lexically and after
/// following every link.
fn inside(project: &Path, path: &Path) -> bool {
    normalize(path).starts_with(normalize(project))
        && real_path(path).starts_with(real_path(project))
}

/// The scenario recorded as applied last in the project `project` (state folder
/// `state`): `None` when none is recorded. A record that is not labctl's own
/// file (a link), that holds control characters, or that names a file outside
/// the project is refused (exit 2) without reading or showing that file.
pub fn last_scenario(state: &Path, project: &Path) -> anyhow::Result<Option<PathBuf>> {
    let f = state.join(LAST_SCENARIO);
    if std::fs::symlink_metadata(&f).is_err() {
        return Ok(None);
    }
    let refuse = |why: &str| {
        user(format!(
            "{} {why}; labctl loads only the project's own files by itself\n  fix: name the scenario (e.g. `labctl verify scenario.yaml`), or remove {} and run `labctl configure SCENARIO` again",
            f.display(),
            f.display()
        ))
    };
    let bytes = read_state(state, &f).map_err(|_| refuse("is not labctl's own file (a link?)"))?;
    let Ok(text) = String::from_utf8(bytes) else {
        return Err(refuse("is not text"));
    };
    let rec = text.trim_end_matches('\n');
    if rec.trim().is_empty() {
        return Ok(None);
    }
    if has_control(rec) {
        return Err(refuse("holds a control character"));
    }
    let path = project.join(rec);
    if !inside(project, &path) {
        return Err(refuse(&format!(
            "names a file outside the project {}",
            project.display()
        )));
    }
    Ok(Some(normalize(&path)))
}

/// Record `scenario` as the one applied last (relative to the project, so the
/// project may move). A scenario outside the project, or `None`, removes the
/// record: `verify` then asks for the scenario by name.
pub fn remember_scenario(
    state: &Path,
    project: &Path,
    scenario: Option<&Path>,
) -> anyhow::Result<()> {
    let f = state.join(LAST_SCENARIO);
    let rel = scenario
        .map(normalize)
        .filter(|p| inside(project, p))
        .and_then(|p| {
            p.strip_prefix(normalize(project))
                .ok()
                .map(Path::to_path_buf)
        })
        .and_then(|r| r.to_str().map(str::to_string))
        .filter(|r| !has_control(r) && !r.is_empty());
    match rel {
        Some(r) => write_state(state, &f, format!("{r}\n").as_bytes(), 0o600),
        None => {
            if owned(state, &f) && std::fs::symlink_metadata(&f).is_ok() {
                std::fs::remove_file(&f)?;
            }
            Ok(())
        }
    }
}

/// Open `path` without following a link in its last part (`O_NOFOLLOW`).
pub fn open_nofollow(
    path: &Path,
    opts: &mut std::fs::OpenOptions,
) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    opts.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_dots() {
        assert_eq!(
            normalize(Path::new("/p/.labctl/../../../etc/k")),
            PathBuf::from("/etc/k")
        );
        assert_eq!(normalize(Path::new("/p/./a/b/..")), PathBuf::from("/p/a"));
    }

    #[test]
    fn reads_stay_inside_the_project() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("scenarios")).unwrap();
        std::fs::write(p.join("scenarios/a.yaml"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", p.join("scenarios/l.yaml")).unwrap();
        let base = p.join("scenarios");
        assert!(resolve_inside(p, &base, "a.yaml", "s:1:1: import").is_ok());
        let up = resolve_inside(p, &base, "../../../../etc/shadow", "s:1:1: import").unwrap_err();
        assert!(up.to_string().contains("leaves the project"), "{up}");
        assert_eq!(crate::error::exit_code(&up), 2);
        let abs = resolve_inside(p, &base, "/etc/shadow", "s:1:1").unwrap_err();
        assert!(abs.to_string().contains("absolute"), "{abs}");
        let link = resolve_inside(p, &base, "l.yaml", "s:1:1").unwrap_err();
        assert!(link.to_string().contains("outside the project"), "{link}");
        // found by the fuzz test: lexically inside, but through a link to /etc
        std::os::unix::fs::symlink("/etc", base.join("etc")).unwrap();
        let e = resolve_inside(p, &base, "etc/.x/../.x/.x/../..", "s").unwrap_err();
        assert!(e.to_string().contains("outside the project"), "{e}");
        assert!(resolve_inside(p, &base, "etc/passwd", "s").is_err());
    }

    #[test]
    fn owned_paths_are_inside_a_real_state_folder() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join(".labctl");
        std::fs::create_dir_all(&s).unwrap();
        assert!(owned(&s, &s.join("known_hosts")));
        assert!(!owned(&s, &s.join("../../../etc/passwd")));
        assert!(!owned(&s, Path::new("/etc/passwd")));
        assert!(!owned(&s, &s));
        std::os::unix::fs::symlink("/etc", s.join("etc")).unwrap();
        assert!(!owned(&s, &s.join("etc/passwd")));
        let linked = d.path().join("linked");
        std::os::unix::fs::symlink(d.path().join("elsewhere"), &linked).unwrap();
        assert!(!owned(&linked, &linked.join("known_hosts")));
    }

    #[test]
    fn state_files_never_follow_links() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join(".labctl");
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::create_dir_all(&s).unwrap();
        std::os::unix::fs::symlink(&victim, s.join("known_hosts")).unwrap();
        assert!(read_state(&s, &s.join("known_hosts")).is_err());
        assert!(write_state(&s, &s.join("known_hosts"), b"x", 0o600).is_err());
        assert!(write_state(&s, &d.path().join("out"), b"x", 0o600).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        write_state(&s, &s.join("kh"), b"pin", 0o600).unwrap();
        assert_eq!(read_state(&s, &s.join("kh")).unwrap(), b"pin");
    }

    #[test]
    fn state_folders_are_never_made_through_a_link() {
        // `.vagrant/machines` as a link: nothing is made where it points
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join(".vagrant");
        let elsewhere = d.path().join("elsewhere");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, s.join("machines")).unwrap();
        let key = s.join("machines/n1/libvirt/private_key");
        let e = write_state(&s, &key, b"k", 0o600).unwrap_err();
        assert!(e.to_string().contains("is a symlink"), "{e}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        // a real folder is made, part by part
        std::fs::remove_file(s.join("machines")).unwrap();
        write_state(&s, &key, b"k", 0o600).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"k");
    }

    #[test]
    fn the_last_scenario_is_the_projects_own() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("proj");
        let s = p.join(".labctl");
        std::fs::create_dir_all(p.join("scenarios")).unwrap();
        assert_eq!(last_scenario(&s, &p).unwrap(), None);
        let sc = p.join("scenarios/a.yaml");
        remember_scenario(&s, &p, Some(&sc)).unwrap();
        assert_eq!(
            std::fs::read_to_string(s.join(LAST_SCENARIO)).unwrap(),
            "scenarios/a.yaml\n"
        );
        assert_eq!(last_scenario(&s, &p).unwrap(), Some(sc.clone()));
        // a record naming a file outside: refused, the file neither read nor named
        for rec in [
            "/etc/shadow",
            "../../../etc/shadow",
            "scenarios/\u{1b}[2J.yaml",
        ] {
            std::fs::write(s.join(LAST_SCENARIO), rec).unwrap();
            let e = last_scenario(&s, &p).unwrap_err();
            assert_eq!(crate::error::exit_code(&e), 2);
            assert!(!e.to_string().contains("root:"), "{e}");
            assert!(e.to_string().contains("fix:"), "{e}");
        }
        // inside, but through a link out of the project
        std::os::unix::fs::symlink("/etc", p.join("scenarios/etc")).unwrap();
        std::fs::write(s.join(LAST_SCENARIO), "scenarios/etc/passwd").unwrap();
        assert!(last_scenario(&s, &p).is_err());
        // the record itself a link
        std::fs::remove_file(s.join(LAST_SCENARIO)).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", s.join(LAST_SCENARIO)).unwrap();
        assert!(last_scenario(&s, &p).is_err());
        std::fs::remove_file(s.join(LAST_SCENARIO)).unwrap();
        // a scenario outside the project is not recorded; the old record goes
        remember_scenario(&s, &p, Some(&sc)).unwrap();
        remember_scenario(&s, &p, Some(&d.path().join("other.yaml"))).unwrap();
        assert_eq!(last_scenario(&s, &p).unwrap(), None);
    }

    #[test]
    fn removing_state_never_follows_links() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::create_dir_all(&victim).unwrap();
        std::fs::write(victim.join("precious"), "x").unwrap();
        let s = d.path().join(".labctl");
        std::fs::create_dir_all(&s).unwrap();
        std::os::unix::fs::symlink(&victim, s.join("inner")).unwrap();
        std::fs::write(s.join("known_hosts"), "x").unwrap();
        remove_state_dir(&s, &|_| false).unwrap();
        assert!(!s.exists());
        assert!(victim.join("precious").exists());
        // a state folder that is itself a link is refused
        let linked = d.path().join("linked");
        std::os::unix::fs::symlink(&victim, &linked).unwrap();
        let e = remove_state_dir(&linked, &|_| false).unwrap_err();
        assert!(e.to_string().contains("is a symlink"), "{e}");
        assert!(victim.join("precious").exists());
    }
}
