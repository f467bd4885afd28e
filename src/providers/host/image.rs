//! The base image: Debian bookworm made by mmdebstrap (minbase + systemd, dbus,
//! openssh-server, iproute2, sudo, python3, ca-certificates), built once into
//! `/var/lib/labctl/images/<recipe-hash>/` and never modified afterwards: nodes
//! are overlays on it.
//!
//! The recipe (suite, packages, mirror, the host's apt settings that matter,
//! and the post-install steps' version) is hashed; a new hash builds a new
//! image, an existing one is reused. The build goes into a temporary folder
//! that is renamed into place only when complete, under a lock, so a crash or
//! a concurrent `up` never leaves a half image in use.
//!
//! The mirror is the one the host's apt uses; `LABCTL_MIRROR` overrides it.
//! The build fetches through the host's package cache ([`super::cache`]) when
//! a lab gateway has one, so the packages are downloaded once per host. Nodes
//! keep no downloaded package (`/var/cache/apt/archives` stays empty).

use super::paths;
use crate::progress::Progress;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Bump when the post-install steps (or the builder) change, so images are
/// rebuilt. 2: mmdebstrap instead of debootstrap (it resolves and fetches
/// with apt, in parallel: a cold image in about a third of the time). 3: no
/// shared package pool (nodes keep no download; the host's cache has them).
const STEPS_VERSION: u32 = 3;

/// Packages on top of minbase.
pub const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "openssh-server",
    "iproute2",
    "sudo",
    "python3",
    "ca-certificates",
];

/// What an image is built from.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub suite: String,
    pub mirror: String,
    pub security: Option<String>,
    pub updates: bool,
    /// apt settings copied from the host (proxy, validity checks).
    pub apt_conf: Vec<String>,
}

impl Recipe {
    /// The recipe for this host: bookworm from the host's Debian mirror.
    pub fn from_host() -> Recipe {
        let sources = host_sources();
        let suite = "bookworm".to_string();
        let find = |s: &str| {
            sources
                .iter()
                .find(|(_, suites)| suites.iter().any(|x| x == s))
                .map(|(u, _)| u.clone())
        };
        let mirror = std::env::var("LABCTL_MIRROR")
            .ok()
            .filter(|m| !m.is_empty())
            .or_else(|| find(&suite))
            .unwrap_or_else(|| "http://deb.debian.org/debian".to_string());
        let security = find(&format!("{suite}-security"));
        let updates = find(&format!("{suite}-updates")).is_some();
        Recipe {
            suite,
            mirror,
            security,
            updates,
            apt_conf: host_apt_conf(),
        }
    }

    /// The text that is hashed (and kept beside the image).
    pub fn text(&self) -> String {
        format!(
            "steps: {STEPS_VERSION}\nsuite: {}\nvariant: minbase\npackages: {}\nmirror: {}\nsecurity: {}\nupdates: {}\napt_conf:\n{}\n",
            self.suite,
            PACKAGES.join(","),
            self.mirror,
            self.security.as_deref().unwrap_or("-"),
            self.updates,
            self.apt_conf.join("\n")
        )
    }

    /// First 16 hex digits of the recipe's SHA-256.
    pub fn hash(&self) -> String {
        use sha2::Digest;
        let d = sha2::Sha256::digest(self.text().as_bytes());
        format!("{}-{}", self.suite, &hex::encode(d)[..16])
    }

    /// The image's `/etc/apt/sources.list`.
    fn sources_list(&self) -> String {
        let mut s = format!("deb {} {} main\n", self.mirror, self.suite);
        if self.updates {
            s.push_str(&format!(
                "deb {} {}-updates main\n",
                self.mirror, self.suite
            ));
        }
        if let Some(sec) = &self.security {
            s.push_str(&format!("deb {sec} {}-security main\n", self.suite));
        }
        s
    }
}

/// `(URI, suites)` of the host's apt sources (one-line and deb822 formats).
fn host_sources() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        v.sort();
        files.extend(v);
    }
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        if f.extension().is_some_and(|e| e == "sources") {
            out.extend(parse_deb822(&text));
        } else {
            out.extend(parse_one_line(&text));
        }
    }
    out
}

/// `(URI, suites)` of the `deb` stanzas of a deb822 `.sources` file.
fn parse_deb822(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut uris = Vec::new();
        let mut suites = Vec::new();
        let mut deb = false;
        for line in stanza.lines().filter(|l| !l.trim_start().starts_with('#')) {
            if let Some((k, v)) = line.split_once(':') {
                let vals: Vec<String> = v.split_whitespace().map(String::from).collect();
                match k.trim() {
                    "Types" => deb = vals.iter().any(|t| t == "deb"),
                    "URIs" => uris = vals,
                    "Suites" => suites = vals,
                    _ => {}
                }
            }
        }
        if deb {
            for u in uris {
                out.push((u.trim_end_matches('/').to_string(), suites.clone()));
            }
        }
    }
    out
}

/// `(URI, [suite])` of the `deb` lines of a one-line `sources.list`.
fn parse_one_line(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut w = line.split_whitespace().peekable();
        if w.next() != Some("deb") {
            continue;
        }
        if w.peek().is_some_and(|x| x.starts_with('[')) {
            for x in w.by_ref() {
                if x.ends_with(']') {
                    break;
                }
            }
        }
        if let (Some(u), Some(s)) = (w.next(), w.next()) {
            out.push((u.trim_end_matches('/').to_string(), vec![s.to_string()]));
        }
    }
    out
}

/// The host's apt settings that a node needs to reach the same mirror.
fn host_apt_conf() -> Vec<String> {
    let Ok(o) = Command::new("apt-config")
        .arg("dump")
        .env("LC_ALL", "C")
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| {
            [
                "Acquire::http::Proxy ",
                "Acquire::https::Proxy ",
                "Acquire::Check-Valid-Until ",
                "Acquire::Check-Date ",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        // a proxy with a user name or password stays the host's: nodes (and
        // their students) never get the credentials
        .filter(|l| !proxy_has_credentials(l))
        .map(String::from)
        .collect()
}

/// Whether an apt `Proxy` line's URL carries `user[:password]@`.
fn proxy_has_credentials(line: &str) -> bool {
    line.contains("Proxy ")
        && line
            .split('"')
            .nth(1)
            .and_then(|url| url.split_once("://"))
            .is_some_and(|(_, rest)| rest.split('/').next().unwrap_or_default().contains('@'))
}

/// The host's own apt HTTP proxy (the package cache fetches through it).
pub fn host_http_proxy(recipe: &Recipe) -> Option<String> {
    http_proxy(&recipe.apt_conf)
}

fn http_proxy(conf: &[String]) -> Option<String> {
    conf.iter()
        .find(|l| l.starts_with("Acquire::http::Proxy "))
        .and_then(|l| l.split('"').nth(1))
        .filter(|v| !v.is_empty() && *v != "DIRECT")
        .map(String::from)
}

/// Where the image for `recipe` is (or will be) built.
pub fn image_dir(recipe: &Recipe) -> PathBuf {
    paths::root().join("images").join(recipe.hash())
}

/// The image for `recipe`: reused when present, else built (with progress).
/// `proxy`: the host's package cache the build fetches through.
pub fn ensure(recipe: &Recipe, proxy: Option<&str>, p: &dyn Progress) -> anyhow::Result<PathBuf> {
    let images = paths::root().join("images");
    std::fs::create_dir_all(&images)?;
    let hash = recipe.hash();
    let dir = image_dir(recipe);
    let marker = images.join(format!("{hash}.recipe"));
    if dir.join("etc/os-release").exists() && marker.exists() {
        p.line(&format!("image: using cached {}", dir.display()));
        return Ok(dir);
    }
    let _lock = paths::lock_file(&images.join(".lock"), "the image cache", p)?;
    if dir.join("etc/os-release").exists() && marker.exists() {
        p.line(&format!(
            "image: using {} (built by another labctl meanwhile)",
            dir.display()
        ));
        return Ok(dir);
    }
    let start = Instant::now();
    p.line(&format!(
        "image: building Debian {} ({}) into {} — about 30 s, once",
        recipe.suite,
        recipe.mirror,
        dir.display()
    ));
    let tmp = images.join(format!(".build-{hash}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    let log_path = images.join(format!("{hash}.log"));
    bootstrap(recipe, proxy, &tmp, &log_path, start, p)?;
    p.line(&format!(
        "image: [{:5.1}s] configuring",
        start.elapsed().as_secs_f64()
    ));
    post_install(recipe, &tmp)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::rename(&tmp, &dir)?;
    std::fs::write(&marker, recipe.text())?;
    prune_unused(&images, &hash, p);
    p.line(&format!(
        "image: built {} in {}",
        dir.display(),
        super::super::secs(start.elapsed())
    ));
    Ok(dir)
}

/// Every lower layer of every overlay in `mounts` (/proc/mounts' text).
fn lower_dirs(mounts: &str) -> impl Iterator<Item = &str> {
    mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .flat_map(|opts| opts.split(','))
        .filter_map(|o| o.strip_prefix("lowerdir="))
        .flat_map(|l| l.split(':'))
}

/// Remove images of older recipes that no running node uses (an overlay
/// whose lower layer is the image keeps it).
fn prune_unused(images: &Path, keep: &str, p: &dyn Progress) {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let Ok(rd) = std::fs::read_dir(images) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_image = e.file_type().map(|t| t.is_dir()).unwrap_or(false)
            && !name.starts_with('.')
            && name != keep;
        let used = lower_dirs(&mounts).any(|l| Path::new(l) == e.path());
        if is_image && !used {
            p.line(&format!(
                "image: removing the unused older image {}",
                e.path().display()
            ));
            if std::fs::remove_dir_all(e.path()).is_ok() {
                for ext in ["recipe", "log"] {
                    let _ = std::fs::remove_file(images.join(format!("{name}.{ext}")));
                }
            }
        }
    }
}

fn bootstrap(
    recipe: &Recipe,
    proxy: Option<&str>,
    target: &Path,
    log_path: &Path,
    start: Instant,
    p: &dyn Progress,
) -> anyhow::Result<()> {
    let mut cmd = Command::new("mmdebstrap");
    cmd.arg("--mode=root")
        .arg("--variant=minbase")
        .arg(format!("--include={}", PACKAGES.join(",")))
        // the package lists stay, as debootstrap leaves them: the first
        // `apt-get install` on a node needs no `apt-get update`
        .arg("--skip=cleanup/apt/lists");
    for l in &recipe.apt_conf {
        // through the cache when there is one (it uses the host's proxy itself)
        if proxy.is_some() && l.starts_with("Acquire::http::Proxy ") {
            continue;
        }
        cmd.arg(format!("--aptopt={l}"));
    }
    cmd.arg(&recipe.suite)
        .arg(target)
        .arg(&recipe.mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = proxy
        .map(String::from)
        .or_else(|| http_proxy(&recipe.apt_conf))
    {
        cmd.env("http_proxy", p);
    }
    let mut child = cmd.spawn().map_err(|e| {
        anyhow::anyhow!("cannot run mmdebstrap: {e}\n  fix: apt-get install mmdebstrap")
    })?;
    let stdout = child.stdout.take();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut o) = stdout {
            let _ = std::io::Read::read_to_string(&mut o, &mut s);
        }
        s
    });
    // mmdebstrap reports on stderr: `I: …` steps, `W:`/`E:` problems
    let mut log = String::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            log.push_str(&line);
            log.push('\n');
            if let Some(text) = ["I: ", "W: ", "E: "]
                .iter()
                .find_map(|pre| line.strip_prefix(pre).map(|t| (pre, t)))
                .map(|(pre, t)| {
                    if *pre == "I: " {
                        t.to_string()
                    } else {
                        line.clone()
                    }
                })
            {
                p.line(&format!(
                    "image: [{:5.1}s] {text}",
                    start.elapsed().as_secs_f64()
                ));
            }
        }
    }
    let status = child.wait()?;
    log.push_str(&out_thread.join().unwrap_or_default());
    let _ = std::fs::write(log_path, &log);
    if !status.success() {
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let _ = std::fs::remove_dir_all(target);
        anyhow::bail!(
            "mmdebstrap of {} from {} failed ({status}); last lines (full log: {}):\n{}\n  fix: check that this machine reaches the mirror (`apt-get update` on the host), or set LABCTL_MIRROR",
            recipe.suite,
            recipe.mirror,
            log_path.display(),
            tail.join("\n")
        );
    }
    Ok(())
}

/// What every node needs and Debian's defaults lack.
fn post_install(recipe: &Recipe, root: &Path) -> anyhow::Result<()> {
    let w = |rel: &str, text: &str| -> anyhow::Result<()> {
        let p = root.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(&p, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))
    };
    w("etc/apt/sources.list", &recipe.sources_list())?;
    let mut apt = String::from(
        "// labctl: packages come from the host's cache; a node keeps none\nAPT::Keep-Downloaded-Packages \"false\";\nBinary::apt::APT::Keep-Downloaded-Packages \"false\";\nAPT::Install-Recommends \"false\";\n",
    );
    for l in &recipe.apt_conf {
        apt.push_str(l);
        apt.push('\n');
    }
    w("etc/apt/apt.conf.d/90labctl", &apt)?;
    w(
        "etc/ssh/sshd_config.d/05-labctl.conf",
        "# labctl: each node has its own ed25519 host key, pinned by `labctl up`.\nHostKey /etc/ssh/ssh_host_ed25519_key\n",
    )?;
    // Host keys are made per node; the image must not carry any.
    for e in std::fs::read_dir(root.join("etc/ssh"))?.flatten() {
        if e.file_name().to_string_lossy().starts_with("ssh_host_") {
            std::fs::remove_file(e.path())?;
        }
    }
    let out = Command::new("chroot")
        .arg(root)
        .args([
            "/bin/sh",
            "-ec",
            "systemctl enable systemd-networkd.service systemd-networkd.socket 2>&1\n\
             apt-get clean\n\
             rm -f /var/lib/apt/lists/*_Packages /var/lib/apt/lists/*_Translation-* || true\n\
             : > /etc/machine-id",
        ])
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "configuring the image failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_hash_changes_with_mirror() {
        let a = Recipe {
            suite: "bookworm".into(),
            mirror: "http://deb.debian.org/debian".into(),
            security: None,
            updates: false,
            apt_conf: vec![],
        };
        let mut b = a.clone();
        b.mirror = "http://other/debian".into();
        assert_ne!(a.hash(), b.hash());
        assert!(a.hash().starts_with("bookworm-"));
        assert_eq!(a.hash(), a.clone().hash());
        assert!(a
            .sources_list()
            .starts_with("deb http://deb.debian.org/debian bookworm main"));
    }

    #[test]
    fn reads_both_apt_source_formats() {
        let d = parse_deb822("Types: deb\n# comment\nURIs: http://deb.debian.org/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb-src\nURIs: http://src/\nSuites: bookworm\n");
        assert_eq!(
            d,
            vec![(
                "http://deb.debian.org/debian".to_string(),
                vec!["bookworm".to_string(), "bookworm-updates".to_string()]
            )]
        );
        let o = parse_one_line("# x\ndeb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main\ndeb-src http://m/debian bookworm main\n");
        assert_eq!(
            o,
            vec![("http://m/debian".to_string(), vec!["bookworm".to_string()])]
        );
    }

    #[test]
    fn proxy_credentials_are_never_copied() {
        assert!(proxy_has_credentials(
            "Acquire::http::Proxy \"http://bob:s3cret@p:3142/\";"
        ));
        assert!(!proxy_has_credentials(
            "Acquire::http::Proxy \"http://p:3142/a@b\";"
        ));
        assert!(!proxy_has_credentials(
            "Acquire::Check-Valid-Until \"false\";"
        ));
    }

    #[test]
    fn proxy_from_apt_conf() {
        let c = vec!["Acquire::http::Proxy \"http://p:3142/\";".to_string()];
        assert_eq!(http_proxy(&c).as_deref(), Some("http://p:3142/"));
        assert_eq!(http_proxy(&[]), None);
    }
}
