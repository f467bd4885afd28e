//! The host's package cache: one apt-cacher-ng for every lab on this machine,
//! reached by the nodes on their lab gateway (TCP [`PORT`]). A node's apt uses it as
//! its HTTP proxy (`/etc/apt/apt.conf.d/95labctl-proxy`, written when the node
//! is made), and so do the image and package-layer builds: a package is
//! downloaded from the mirror once per host, then served from the cache to
//! every lab, which then converges with no Internet at all.
//!
//! ```text
//! /var/lib/labctl/apt-cache/etc/acng.conf    its configuration (labctl's)
//! /var/lib/labctl/apt-cache/cache/           the cache (kept, like the images)
//! /var/lib/labctl/apt-cache/log/             apt-cacher.log (one line per transfer), apt-cacher.err
//! /var/lib/labctl/apt-cache/run/             its pid file and socket
//! /var/lib/labctl/apt-cache/labctl.pid       the PID labctl started
//! ```
//!
//! - It runs as the package's user `apt-cacher-ng`, in the foreground of a
//!   session of its own (no host systemd needed), started by the first lab
//!   network that needs it and stopped, by its PID checked against its command
//!   line, when the last lab network is removed (its cache stays).
//! - `ForceManaged: 1`: it fetches only from the host's Debian mirror and
//!   security mirror (its `Remap-` lines), so a node cannot use it to reach
//!   any other address; no `CONNECT` tunnel (`PassThroughPattern` matches
//!   nothing); no report page (nothing a node can trigger).
//! - It listens on one fixed address only, [`listen`] (loopback), and never
//!   moves: each lab's nft table sends what its nodes open to port [`PORT`] of
//!   their gateway there (`dnat`, see [`super::network`]; the lab's bridges
//!   carry `route_localnet` for it), and the image and package-layer builds,
//!   which run in the host's network, use [`listen`] itself. So a lab coming
//!   or going never restarts it: another lab's download in flight goes on.
//!   It is started with the first lab network and stopped after the last
//!   (read from the labs' folders: `gateway`, kept by
//!   [`super::network::ensure`], and the addresses this host holds).

use super::paths;
use crate::progress::Progress;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The cache's port on each lab gateway (what the nodes' apt uses).
pub const PORT: u16 = 3142;
/// Where apt-cacher-ng itself listens: loopback, on a port of labctl's own
/// (not 3142, which a host's own apt-cacher-ng service may hold): 3942 for
/// `/var/lib/labctl`, and for another `LABCTL_ROOT` a port derived from its
/// path (31000-32699: apt-cacher-ng refuses ports above 32767), so two state roots on one host keep two caches apart.
pub fn listen() -> (Ipv4Addr, u16) {
    (Ipv4Addr::LOCALHOST, port_for(&paths::root()))
}

fn listening() -> bool {
    let (a, p) = listen();
    super::network::listening(a, p)
}

fn port_for(root: &Path) -> u16 {
    use sha2::Digest;
    if root == Path::new("/var/lib/labctl") {
        return 3942;
    }
    let h = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
    31000 + (u16::from_be_bytes([h[0], h[1]]) % 1700)
}
/// The daemon's binary (Debian package apt-cacher-ng).
const BIN: &str = "/usr/sbin/apt-cacher-ng";
/// The system user it runs as (made by the package).
const USER: &str = "apt-cacher-ng";
/// How long it may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The cache's folder.
pub fn dir() -> PathBuf {
    paths::root().join("apt-cache")
}
fn conf_dir() -> PathBuf {
    dir().join("etc")
}
/// The transfer log (`time|O|size|client|path` sent to a node, `…|I|…` fetched from the mirror).
pub fn log_file() -> PathBuf {
    dir().join("log/apt-cacher.log")
}
fn pid_file() -> PathBuf {
    dir().join("labctl.pid")
}

/// The URL a node of a lab with gateway `gw` uses as its apt proxy.
pub fn proxy_url(gw: Ipv4Addr) -> String {
    format!("http://{gw}:{PORT}/")
}

/// The URL the image and package-layer builds (in the host's network) use.
pub fn host_proxy_url() -> String {
    let (a, p) = listen();
    format!("http://{a}:{p}/")
}

/// The apt configuration of a node of a lab with gateway `gw`: packages
/// through the host's cache, retried across a restart of it.
pub fn node_apt_conf(gw: Ipv4Addr) -> String {
    format!(
        "// labctl: packages come from the host's cache on the lab gateway (apt-cacher-ng)\nAcquire::http::Proxy \"{}\";\nAcquire::https::Proxy \"DIRECT\";\nAcquire::Retries \"3\";\n",
        proxy_url(gw)
    )
}

/// `host/path` of a mirror URL (`http://deb.debian.org/debian` ->
/// `deb.debian.org/debian`), as a `Remap-` line matches requests.
fn prefix_of(url: &str) -> String {
    url.split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(url)
        .trim_end_matches('/')
        .to_string()
}

/// A value apt-cacher-ng's `Key: value` lines can hold as one word: no
/// white space, control character, `;` or `#` (a URL or path from the
/// host's apt configuration can never add a setting); refused otherwise.
fn conf_word(s: &str) -> anyhow::Result<&str> {
    if s.is_empty()
        || s.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == ';' || c == '#')
    {
        anyhow::bail!(
            "{s:?} cannot be written into apt-cacher-ng's configuration (empty, or holds white space, `;`, `#` or a control character)\n  fix: correct the mirror or proxy URL in the host's apt configuration"
        );
    }
    Ok(s)
}

/// Its configuration: listening on [`listen`], fetching from the host's mirrors.
pub fn conf_text(recipe: &super::image::Recipe) -> anyhow::Result<String> {
    let d = dir();
    let mprefix = prefix_of(&recipe.mirror);
    conf_word(&mprefix)?;
    conf_word(recipe.mirror.trim_end_matches('/'))?;
    for p in [d.join("cache"), d.join("log"), d.join("run")] {
        conf_word(&p.to_string_lossy())?;
    }
    let mut s = format!(
        "# Managed by labctl: the package cache of the labs on this machine\n\
CacheDir: {cache}\nLogDir: {log}\nSupportDir: /usr/lib/apt-cacher-ng\n\
Port: {port}\nBindAddress: {bind}\nPidFile: {run}/pid\nSocketPath: {run}/socket\n\
ForeGround: 1\nForceManaged: 1\nPassThroughPattern: ^$\nExThreshold: 4\n\
VerboseLog: 1\nUnbufferLogs: 1\nDirPerms: 00750\nFilePerms: 00640\n\
Remap-debrep: {mprefix} ; {mirror}\n",
        cache = d.join("cache").display(),
        log = d.join("log").display(),
        run = d.join("run").display(),
        port = listen().1,
        bind = listen().0,
        mirror = recipe.mirror.trim_end_matches('/'),
    );
    if let Some(sec) = &recipe.security {
        s.push_str(&format!(
            "Remap-secdeb: {} ; {}\n",
            conf_word(&prefix_of(sec))?,
            conf_word(sec.trim_end_matches('/'))?
        ));
    }
    if let Some(up) = super::image::host_http_proxy(recipe) {
        s.push_str(&format!("Proxy: {}\n", conf_word(&up)?));
    }
    Ok(s)
}

/// The gateways of every lab network on this host: each lab's recorded
/// `gateway`, when a bridge of this host holds it or the lab is reached
/// through a hop (its `hop` file: an Incus lab on another host).
fn lab_gateways() -> Vec<Ipv4Addr> {
    let held: Vec<Ipv4Addr> = crate::lab::local_addrs()
        .map(|v| v.into_iter().map(|a| a.addr).collect())
        .unwrap_or_default();
    let mut out: Vec<Ipv4Addr> = std::fs::read_dir(paths::root().join("labs"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let g: Ipv4Addr = std::fs::read_to_string(e.path().join("gateway"))
                        .ok()?
                        .trim()
                        .parse()
                        .ok()?;
                    // a lab reached through a hop gets the cache through it
                    (held.contains(&g) || e.path().join("hop").exists()).then_some(g)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

/// The PID of the cache daemon labctl started, if it still runs (checked
/// against its command line: a reused PID is not it).
pub fn running() -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
    let conf = conf_dir().display().to_string();
    (cmd.contains("apt-cacher-ng") && cmd.contains(&conf)).then_some(pid)
}

/// Start the daemon when a lab network on this host needs it, stop it after
/// the last one (its cache kept). It is restarted only when its
/// configuration changed (the host's mirrors), never for a lab coming or
/// going. Says what it did.
pub fn refresh(p: &dyn Progress) -> anyhow::Result<()> {
    let _lock = paths::lock_file(
        &paths::root().join("locks/apt-cache.lock"),
        "the package cache",
        p,
    )?;
    let found = running();
    if lab_gateways().is_empty() {
        if let Some(pid) = found {
            stop_pid(pid);
            p.line(&format!(
                "package cache: apt-cacher-ng stopped (no lab left; its cache in {} is kept)",
                dir().join("cache").display()
            ));
        }
        let _ = std::fs::remove_file(pid_file());
        return Ok(());
    }
    let recipe = super::image::Recipe::from_host();
    let conf = conf_text(&recipe)?;
    let conf_path = conf_dir().join("acng.conf");
    let same = std::fs::read_to_string(&conf_path).is_ok_and(|c| c == conf);
    if same && found.is_some() && listening() {
        return Ok(());
    }
    if let Some(pid) = found {
        stop_pid(pid);
    }
    prepare_dirs()?;
    std::fs::write(&conf_path, conf)?;
    start()?;
    p.line(&format!(
        "package cache: apt-cacher-ng on port {PORT} of the lab gateways, cache in {}",
        dir().join("cache").display()
    ));
    Ok(())
}

/// The uid and gid of the daemon's user.
fn user_ids() -> anyhow::Result<(u32, u32)> {
    let name = std::ffi::CString::new(USER)?;
    // SAFETY: getpwnam with a valid C string; the record is copied out at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(crate::error::user(format!(
            "the package cache needs apt-cacher-ng, and its user `{USER}` does not exist on this machine\n  fix: `apt-get install apt-cacher-ng` (scripts/install-host-deps does)"
        )));
    }
    // SAFETY: pw is non-null and points to a passwd record.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// Its folders: configuration root's, cache, log and run the daemon's own;
/// none readable by other users.
fn prepare_dirs() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !Path::new(BIN).exists() {
        return Err(crate::error::user(format!(
            "the package cache needs {BIN}, which is not installed\n  fix: `apt-get install apt-cacher-ng` (scripts/install-host-deps does)"
        )));
    }
    let (uid, gid) = user_ids()?;
    let d = dir();
    for sub in ["etc", "cache", "log", "run"] {
        let p = d.join(sub);
        std::fs::create_dir_all(&p)?;
        if p.symlink_metadata()?.file_type().is_symlink() {
            anyhow::bail!("refusing {}: it is a link", p.display());
        }
        if sub == "etc" {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        } else {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o750))?;
        }
    }
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn start() -> anyhow::Result<()> {
    let (uid, gid) = user_ids()?;
    let out = dir().join("log/daemon.out");
    let log = std::fs::File::create(&out)?;
    let mut cmd = Command::new(BIN);
    cmd.arg("-c")
        .arg(conf_dir())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    {
        use std::os::unix::process::CommandExt;
        // (std drops the supplementary groups when it sets the uid)
        cmd.uid(uid).gid(gid);
        // SAFETY: setsid(2) and close_range in the child before exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                super::process::no_inherited_fds();
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start apt-cacher-ng: {e}"))?;
    std::fs::write(pid_file(), child.id().to_string())?;
    // reap it when it ends while labctl still runs (a later labctl stops it by PID)
    let t = Instant::now();
    while !listening() {
        if let Ok(Some(st)) = child.try_wait() {
            let _ = std::fs::remove_file(pid_file());
            let text = std::fs::read_to_string(&out).unwrap_or_default()
                + &std::fs::read_to_string(dir().join("log/apt-cacher.err")).unwrap_or_default();
            anyhow::bail!(
                "apt-cacher-ng ended ({st}) before it listened on {}:{}; last lines:\n{}\n  fix: check that nothing else listens on that port",
                listen().0,
                listen().1,
                crate::text::last_lines(&text, 10)
            );
        }
        if t.elapsed() > START_TIMEOUT {
            stop_pid(child.id() as i32);
            let _ = std::fs::remove_file(pid_file());
            anyhow::bail!(
                "apt-cacher-ng did not listen on {}:{} within {} s (see {})",
                listen().0,
                listen().1,
                START_TIMEOUT.as_secs(),
                out.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(())
}

fn stop_pid(pid: i32) {
    // SAFETY: kill(2) on the PID of the apt-cacher-ng labctl started (checked
    // against its command line by the caller).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let t = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
        if t.elapsed() > Duration::from_secs(5) {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Transfers in the log since byte `from`: (fetched from the mirror, sent to nodes), in bytes.
pub fn transfers_since(from: u64) -> (u64, u64) {
    transfers_for(from, "")
}

/// [`transfers_since`] for the clients whose address starts with `clients`
/// (a lab's `10.1.75.`; other labs on the host may fetch meanwhile).
pub fn transfers_for(from: u64, clients: &str) -> (u64, u64) {
    let text = std::fs::read(log_file()).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).into_owned();
    let (mut fetched, mut served) = (0, 0);
    for l in text.lines() {
        let f: Vec<&str> = l.split('|').collect();
        if f.len() < 3 {
            continue;
        }
        if !clients.is_empty() && !f.get(3).is_some_and(|c| c.starts_with(clients)) {
            continue;
        }
        let n: u64 = f[2].parse().unwrap_or(0);
        match f[1] {
            "I" => fetched += n,
            "O" => served += n,
            _ => {}
        }
    }
    (fetched, served)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaps_the_mirror_and_listens_on_loopback_only() {
        let r = super::super::image::Recipe {
            suite: "bookworm".into(),
            mirror: "http://deb.debian.org/debian".into(),
            security: Some("http://deb.debian.org/debian-security".into()),
            updates: true,
            apt_conf: vec![],
        };
        let t = conf_text(&r).unwrap();
        assert!(
            t.contains("BindAddress: 127.0.0.1\nPort: 3942\n")
                || t.contains("Port: 3942\nBindAddress: 127.0.0.1\n"),
            "{t}"
        );
        assert!(t.contains("Remap-debrep: deb.debian.org/debian ; http://deb.debian.org/debian\n"));
        assert!(t.contains("Remap-secdeb: deb.debian.org/debian-security ; http://deb.debian.org/debian-security\n"));
        assert!(t.contains("ForceManaged: 1\n"));
        assert!(!t.contains("ReportPage"));
    }

    #[test]
    fn hostile_mirrors_and_proxies_add_no_setting() {
        let base = super::super::image::Recipe {
            suite: "bookworm".into(),
            mirror: "http://deb.debian.org/debian".into(),
            security: None,
            updates: true,
            apt_conf: vec![],
        };
        for bad in [
            "http://x/debian\nPassThroughPattern: .*",
            "http://x/d ebian",
            "http://x/#",
            "http://x/a;b",
        ] {
            let mut r = base.clone();
            r.mirror = bad.into();
            assert!(conf_text(&r).is_err(), "{bad:?}");
            let mut r = base.clone();
            r.security = Some(bad.into());
            assert!(conf_text(&r).is_err(), "{bad:?}");
        }
        let mut r = base.clone();
        r.apt_conf = vec!["Acquire::http::Proxy \"http://p:3128/ Remap-x: y\";".into()];
        assert!(conf_text(&r).is_err());
        // the nodes' apt file holds an address and a port only
        let a = node_apt_conf(Ipv4Addr::new(10, 1, 74, 1));
        assert_eq!(a.lines().count(), 4, "{a}");
        assert!(a.contains("Acquire::http::Proxy \"http://10.1.74.1:"));
    }

    #[test]
    fn each_state_root_has_its_own_port() {
        assert_eq!(port_for(Path::new("/var/lib/labctl")), 3942);
        let a = port_for(Path::new("/tmp/root-a"));
        assert!((31000..32700).contains(&a));
        assert_eq!(a, port_for(Path::new("/tmp/root-a")));
    }
}
