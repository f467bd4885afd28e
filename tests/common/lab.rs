//! A lab for end-to-end tests: a temporary project (the repository's
//! templates/, scenarios/ and scenario.yaml, and its inventory.yaml moved to a
//! lab name and subnet of the test's own), driven through the real `labctl`
//! binary, destroyed on drop (also on panic), with a check for leftovers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// One lab at a time in a test binary: labs share the host's network stack.
pub static LABS: Mutex<()> = Mutex::new(());

/// One lab test at a time on this machine: [`LABS`], plus an `flock` so two
/// test runs (say, a debug and a release build) never run labs at once.
pub struct OneAtATime {
    _guard: std::sync::MutexGuard<'static, ()>,
    _file: std::fs::File,
}

pub fn one_at_a_time() -> OneAtATime {
    let guard = LABS.lock().unwrap_or_else(|e| e.into_inner());
    assert!(is_root(), "the lab tests need root (CI runs as root)");
    std::fs::create_dir_all("/var/lib/labctl/locks").unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/var/lib/labctl/locks/lab-tests.lock")
        .unwrap();
    file.lock().unwrap();
    OneAtATime {
        _guard: guard,
        _file: file,
    }
}

/// Run `f` and print how long it took as a FIGURE line (`FIGURE what: 4.2 s`).
pub fn figure<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = std::time::Instant::now();
    let r = f();
    println!("FIGURE {what}: {:.1} s", t.elapsed().as_secs_f64());
    r
}

/// The first check of a `verify --json` report whose name is `named` (null if none).
pub fn check_named(report: &serde_json::Value, named: impl Fn(&str) -> bool) -> serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| named(c["name"].as_str().unwrap_or("")))
        .cloned()
        .unwrap_or_default()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Run labctl on inventory `inv`, in the inventory's folder (the project, so
/// relative scenario paths are the project's); its output goes to the test log.
pub fn labctl_at(inv: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_labctl"))
        .arg("-i")
        .arg(inv)
        .args(args)
        .current_dir(inv.parent().unwrap_or(Path::new(".")))
        .output()
        .expect("run labctl");
    eprintln!(
        "$ labctl {} -> {}\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// [`labctl_at`], asserting success; returns stdout.
pub fn ok_at(inv: &Path, args: &[&str]) -> String {
    let out = labctl_at(inv, args);
    assert!(
        out.status.success(),
        "labctl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct Lab {
    pub lab: String,
    pub dir: tempfile::TempDir,
    /// The project folder (the temporary folder itself, or a folder in it
    /// named as a course folder is).
    pub project: PathBuf,
    /// The file `-i` names: `inventory.yaml` or `Vagrantfile`.
    pub inv_file: PathBuf,
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

impl Lab {
    /// A project like the repository's, as lab `lab` on `<prefix>.0/24`
    /// (e.g. prefix `10.1.4`): only the inventory changes, as a user would do.
    pub fn new(lab: &str, prefix: &str) -> Lab {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        for d in ["templates", "scenarios"] {
            copy_dir(&root.join(d), &dir.path().join(d));
        }
        std::fs::copy(root.join("scenario.yaml"), dir.path().join("scenario.yaml")).unwrap();
        let inv = std::fs::read_to_string(root.join("inventory.yaml"))
            .unwrap()
            .replace("lab: ha", &format!("lab: {lab}"))
            .replace("10.1.1.", &format!("{prefix}."));
        std::fs::write(dir.path().join("inventory.yaml"), inv).unwrap();
        let project = dir.path().to_path_buf();
        let l = Lab {
            lab: lab.to_string(),
            inv_file: project.join("inventory.yaml"),
            project,
            dir,
        };
        // a previous run that died hard may have left this lab behind
        l.labctl(&["destroy"]);
        l
    }

    /// A Vagrant project: `tests/vagrant_projects/<src>` copied to a folder
    /// named `folder` (the lab is named after it, as labctl names it).
    pub fn vagrant(src: &str, folder: &str) -> Lab {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join(folder);
        copy_dir(&root.join("tests/vagrant_projects").join(src), &project);
        let l = Lab {
            lab: labctl::inventory::lab_name_of_folder(folder),
            inv_file: project.join("Vagrantfile"),
            project,
            dir,
        };
        l.labctl(&["destroy"]);
        l
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.project.join(rel)
    }

    pub fn inv(&self) -> PathBuf {
        self.inv_file.clone()
    }

    /// The lab's state folder on the host.
    pub fn lab_dir(&self) -> PathBuf {
        PathBuf::from("/var/lib/labctl/labs").join(&self.lab)
    }

    /// Run labctl on this lab, in the project folder.
    pub fn labctl(&self, args: &[&str]) -> Output {
        labctl_at(&self.inv(), args)
    }

    /// Run labctl, assert success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.labctl(args);
        assert!(
            out.status.success(),
            "labctl {} failed ({})",
            args.join(" "),
            out.status
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// [`Lab::ok`], its time a FIGURE line (`what`).
    pub fn ok_timed(&self, what: &str, args: &[&str]) -> String {
        figure(what, || self.ok(args))
    }

    /// `--json` output of a successful command.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// `labctl ssh NODE -- CMD`, which must succeed: its stdout.
    pub fn on(&self, node: &str, cmd: &str) -> String {
        self.ok(&["ssh", node, "--", cmd])
    }

    /// `configure SCENARIO` once more: its `changed` count, and its time as
    /// a FIGURE line (`label`: what was re-converged).
    /// On nodes just made from the package layer: nothing preinstalled is
    /// enabled or running before `configure` says so; then the first
    /// `configure` of `scenario` (01) starts bind9 and installs nothing.
    pub fn first_converge_from_the_layer(&self, scenario: &str) {
        let out = self.ok(&[
            "exec",
            "all",
            "--",
            "systemctl is-enabled named apache2 corosync pacemaker haproxy dnsmasq | sort -u; systemctl is-active named apache2 corosync pacemaker | sort -u",
        ]);
        assert!(
            !out.contains("\nenabled") && !out.contains("\nactive"),
            "something preinstalled runs before configure: {out}"
        );
        let o = self.labctl(&["configure", scenario]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            text.contains("changed: [dns] service named (start, enable)"),
            "{text}"
        );
        assert!(!text.contains("package bind9 (install"), "{text}");
    }

    pub fn reconverge(&self, scenario: &str, label: &str) -> serde_json::Value {
        let j = figure(&format!("no-op configure {label}"), || {
            self.json(&["--json", "configure", scenario])
        });
        j["changed"].clone()
    }

    /// `verify SCENARIO`, which must pass: its report, its time a FIGURE
    /// line (`verify LABEL`).
    pub fn verified(&self, scenario: &str, label: &str) -> serde_json::Value {
        let report = figure(&format!("verify {label}"), || {
            self.json(&["--json", "verify", scenario])
        });
        assert_eq!(report["passed"], true, "verify {label}: {report}");
        report
    }

    /// `verify SCENARIO --skip KIND…`, which must fail (exit 1): the detail
    /// of its first check that ran, and the whole report.
    pub fn failed_verify(&self, scenario: &str, skip: &[&str]) -> (String, serde_json::Value) {
        let mut args = vec!["--json", "verify", scenario];
        for kind in skip {
            args.extend(["--skip", kind]);
        }
        let out = self.labctl(&args);
        assert_eq!(out.status.code(), Some(1), "verify {scenario} fails");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let detail = report["checks"][0]["detail"]
            .as_str()
            .unwrap_or("")
            .to_string();
        (detail, report)
    }

    /// Assert that nothing of the lab is left on the host, nor its project's `.labctl/`.
    pub fn assert_gone(&self) {
        assert_lab_gone(&self.lab);
        assert!(!self.path(".labctl").exists(), "project .labctl/ left");
    }

    /// The cgroup (`0::` line of /proc/PID/cgroup) of each running node's
    /// container init, by node name.
    pub fn init_cgroups(&self) -> Vec<(String, String)> {
        let needle = format!("/var/lib/labctl/labs/{}/nodes/", self.lab);
        let mut v = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if !cmd.starts_with("systemd-nspawn --boot") || !cmd.contains(&needle) {
                continue;
            }
            let node = cmd
                .split(&needle)
                .nth(1)
                .unwrap_or("")
                .split('/')
                .next()
                .unwrap_or("");
            let pid = e.file_name().to_string_lossy().into_owned();
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            for child in children.split_whitespace() {
                let cg =
                    std::fs::read_to_string(format!("/proc/{child}/cgroup")).unwrap_or_default();
                if let Some(line) = cg.lines().find_map(|l| l.strip_prefix("0::")) {
                    v.push((node.to_string(), line.to_string()));
                }
            }
        }
        v.sort();
        v
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.labctl(&["destroy"]).status.success() {
            // a test that failed may leave a labctl of its own running (holding the
            // lab's lock): end it, by its PID and only if this test started it
            self.kill_own_lock_holder();
            self.labctl(&["destroy"]);
        }
    }
}

impl Lab {
    fn kill_own_lock_holder(&self) {
        let holder = std::fs::read_to_string(self.path(".labctl/lock")).unwrap_or_default();
        let Some(pid) = holder
            .lines()
            .find_map(|l| l.strip_prefix("pid="))
            .and_then(|p| p.trim().parse::<i32>().ok())
        else {
            return;
        };
        let parent = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(String::from))
            });
        if parent.as_deref() == Some(&std::process::id().to_string()) {
            // SAFETY: kill(2) on a child process of this test
            unsafe { libc::kill(pid, libc::SIGKILL) };
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}

/// Assert that nothing of the lab `lab` is left on the host: no nspawn
/// process, mount, bridge, nft table, lab folder or cgroup.
pub fn assert_lab_gone(lab: &str) {
    let needle = format!("/var/lib/labctl/labs/{lab}/");
    let procs = super::command_lines_with(&["systemd-nspawn", &needle]);
    assert!(procs.is_empty(), "nspawn processes left: {procs:?}");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&needle)).collect();
    assert!(left.is_empty(), "mounts left: {left:?}");
    for br in std::iter::once(format!("lab-{lab}")).chain((2..=9).map(|k| format!("lb{k}-{lab}"))) {
        assert!(
            !Path::new("/sys/class/net").join(&br).exists(),
            "bridge {br} left"
        );
    }
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    let tables = String::from_utf8_lossy(&tables.stdout);
    assert!(
        !tables.contains(&format!("labctl_{}", lab.replace('-', "_"))),
        "nft table left: {tables}"
    );
    let dir = PathBuf::from("/var/lib/labctl/labs").join(lab);
    assert!(!dir.exists(), "{} left", dir.display());
    for h in ["systemd", "unified"] {
        let dir = Path::new("/sys/fs/cgroup").join(h).join("labctl");
        let left: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!("{lab}.")))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "cgroups left in {}: {left:?}",
            dir.display()
        );
    }
}
