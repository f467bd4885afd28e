//! An Incus cluster of three members on this machine, for lab tests: each
//! member its own `incusd` with its own `INCUS_DIR`, in a network namespace
//! of the test's own (`iclm1`..`iclm3`, address 10.1.104.11..13), all on a
//! bridge of the test's own (`iclbr`, the host holding 10.1.104.1), joined
//! into one cluster (`incus admin init --preseed`: the first bootstraps it,
//! the others join with `incus cluster add` tokens). Each member also runs
//! an sshd (the hop labctl reaches a lab's nodes through) allowing the
//! package cache's reverse forwarding on the lab gateways
//! (`GatewayPorts clientspecified`).
//!
//! Each `incusd` runs in a mount namespace of its own too (`unshare -m`,
//! private): there `/sys` is the member network's (a new sysfs, the host's
//! cgroup mounts moved into it), and whatever it mounts stays there.
//!
//! labctl, outside the namespaces, talks to the cluster as a remote of
//! Incus's client (`incus remote add icl https://10.1.104.11:8443` with a
//! trust token), in a client configuration of the test's own (`INCUS_CONF`,
//! set in this process's environment while the cluster runs).
//!
//! Torn down on drop (also on panic): every daemon stopped (see
//! [`super::incus::stop_daemon`]) and the sshds killed by their PIDs, the
//! namespaces, veths and the bridge deleted; the host's nft tables, links and
//! `ip_forward` checked to be as they were.

use super::hop::{Hop, Pinned};
use super::incus::{incus_at, links, nft_tables, preseed, stop_daemon, test_folder, INCUSD};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The members' network.
const BRIDGE: &str = "iclbr";
const HOST_ADDR: &str = "10.1.104.1";
/// The remote's name in the test's client configuration.
pub const REMOTE: &str = "icl";

pub struct Member {
    pub name: String,
    pub addr: String,
    /// Its `INCUS_DIR`.
    pub state: PathBuf,
    incusd: Option<Child>,
    pub hop: Option<Hop>,
}

pub struct Cluster {
    pub members: Vec<Member>,
    dir: Option<tempfile::TempDir>,
    _pinned: Option<Pinned>,
    tables_before: Vec<String>,
    forward_before: String,
}

fn sh(cmd: &str) {
    super::run(Command::new("sh").args(["-c", cmd]));
}

/// What `incusd` runs under in a member's namespaces: a private mount
/// namespace where `/sys` is the member network's, the host's cgroup mounts
/// moved into it.
const WRAPPER: &str = "set -e
mkdir -p \"$1/oldsys\"
mount --move /sys \"$1/oldsys\"
mount -t sysfs sysfs /sys
mount --move \"$1/oldsys/fs/cgroup\" /sys/fs/cgroup
umount -l \"$1/oldsys\"
export INCUS_DIR=\"$1/incus\"
exec \"$2\" --group incus-admin
";

impl Cluster {
    /// Make the network, start and join the three members, add the remote.
    pub fn start() -> Cluster {
        let dir = test_folder("labctl-icl-");
        let mut c = Cluster {
            members: Vec::new(),
            dir: None,
            _pinned: None,
            tables_before: nft_tables(),
            forward_before: super::incus::ip_forward(),
        };
        // a run that died hard may have left the test's own network behind
        c.remove_network();
        sh(&format!(
            "ip link add {BRIDGE} type bridge && ip addr add {HOST_ADDR}/24 dev {BRIDGE} && ip link set {BRIDGE} up"
        ));
        for i in 1..=3 {
            let m = c.member(dir.path(), i);
            // one hop key for every member (the `incus:` section names one)
            if let Some(first) = c.members.first() {
                m.hop
                    .as_ref()
                    .unwrap()
                    .authorize(&first.hop.as_ref().unwrap().key());
            }
            c.members.push(m);
        }
        c.dir = Some(dir);
        c.bootstrap();
        for i in 1..3 {
            c.join(i);
        }
        let pins: String = c
            .members
            .iter()
            .map(|m| m.hop.as_ref().unwrap().known_hosts_line())
            .collect();
        c._pinned = Some(Pinned::add(&pins));
        c.add_remote();
        c
    }

    /// Member `i` (1-based): its namespace on the bridge, its sshd and its incusd.
    fn member(&self, dir: &Path, i: usize) -> Member {
        let (ns, addr) = (format!("iclm{i}"), format!("10.1.104.1{i}"));
        sh(&format!(
            "ip netns add {ns} && ip link add iclv{i} type veth peer name iclp{i} && ip link set iclp{i} netns {ns} && ip link set iclv{i} master {BRIDGE} up && ip -n {ns} link set lo up && ip -n {ns} link set iclp{i} name eth0 && ip -n {ns} addr add {addr}/24 dev eth0 && ip -n {ns} link set eth0 up"
        ));
        let hop = Hop::start(&addr, 22, Some(&ns), "GatewayPorts clientspecified\n");
        let mdir = dir.join(format!("m{i}"));
        let state = mdir.join("incus");
        std::fs::create_dir_all(&state).unwrap();
        let log = std::fs::File::create(mdir.join("incusd.log")).unwrap();
        let incusd = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .args([
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                WRAPPER,
                "sh",
            ])
            .arg(&mdir)
            .arg(INCUSD)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start incusd in its namespaces");
        let (ok, out) = incus_at(Some(&state), &["admin", "waitready", "--timeout", "60"]);
        assert!(ok, "incusd of m{i} did not come up: {out}");
        Member {
            name: format!("m{i}"),
            addr,
            state,
            incusd: Some(incusd),
            hop: Some(hop),
        }
    }

    fn bootstrap(&self) {
        let m = &self.members[0];
        preseed(
            Some(&m.state),
            // a `dir` pool: each member's a plain folder in its INCUS_DIR
            &format!(
                "config: {{core.https_address: '{}:8443', images.auto_update_interval: '0'}}\nstorage_pools: [{{name: default, driver: dir}}]\nprofiles: [{{name: default, devices: {{root: {{path: /, pool: default, type: disk}}}}}}]\ncluster: {{server_name: {}, enabled: true}}\n",
                m.addr, m.name
            ),
        );
    }

    /// Member `i` (0-based) joins through the first.
    fn join(&self, i: usize) {
        let first = &self.members[0];
        let m = &self.members[i];
        let (ok, token) = incus_at(Some(&first.state), &["cluster", "add", &m.name, "--quiet"]);
        assert!(ok, "incus cluster add {}: {token}", m.name);
        let cert = std::fs::read_to_string(first.state.join("cluster.crt")).unwrap();
        preseed(
            Some(&m.state),
            &format!(
                "cluster:
  enabled: true
  server_name: {}
  server_address: {}:8443
  cluster_address: {}:8443
  cluster_certificate: {}
  cluster_token: {}
  member_config:
  - entity: storage-pool
    name: default
    key: source
    value: \"\"
",
                m.name,
                m.addr,
                first.addr,
                serde_json::to_string(&cert).unwrap(),
                token.trim()
            ),
        );
    }

    /// The client configuration of the test's own, with the cluster as remote
    /// [`REMOTE`]: a client certificate of its own, trusted by the cluster
    /// (`incus config trust add-certificate` on a member), then `incus remote
    /// add`; `INCUS_CONF` points at it.
    fn add_remote(&self) {
        let first = &self.members[0];
        let conf = self.conf();
        std::fs::create_dir_all(&conf).unwrap();
        std::env::set_var("INCUS_CONF", &conf);
        client_certificate(&conf, "labctl-test");
        let crt = conf.join("client.crt");
        let (ok, out) = incus_at(
            Some(&first.state),
            &["config", "trust", "add-certificate", &crt.to_string_lossy()],
        );
        assert!(ok, "incus config trust add-certificate: {out}");
        let url = format!("https://{}:8443", first.addr);
        let (ok, out) = incus_at(
            None,
            &["remote", "add", REMOTE, &url, "--accept-certificate"],
        );
        assert!(ok, "incus remote add: {out}");
    }

    /// The client configuration folder (`INCUS_CONF`).
    pub fn conf(&self) -> PathBuf {
        self.dir.as_ref().unwrap().path().join("client")
    }

    /// The `incus:` section of a lab on this cluster (`target` pins it).
    pub fn section(&self, target: Option<&str>) -> String {
        let key = self.members[0].hop.as_ref().unwrap().key();
        let pin = target.map(|t| format!(", target: {t}")).unwrap_or_default();
        format!(
            "incus: {{remote: {REMOTE}, hop_user: root, hop_key: {}{pin}}}\n",
            key.display()
        )
    }

    /// `incus ARGS` on the cluster (through the first member's socket).
    pub fn incus(&self, args: &[&str]) -> (bool, String) {
        incus_at(Some(&self.members[0].state), args)
    }

    /// The test's own bridge, veths and namespaces (absent ones are fine).
    fn remove_network(&self) {
        for i in 1..=3 {
            let _ = Command::new("ip")
                .args(["netns", "del", &format!("iclm{i}")])
                .stderr(Stdio::null())
                .status();
            if links().contains(&format!("iclv{i}")) {
                // (the namespace's end going takes the pair with it, maybe meanwhile)
                let _ = Command::new("ip")
                    .args(["link", "del", &format!("iclv{i}")])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if links().contains(&BRIDGE.to_string()) {
            let _ = Command::new("ip").args(["link", "del", BRIDGE]).status();
        }
    }
}

/// A new client certificate and key in `conf` (`client.crt`, `client.key`), as Incus's client makes.
pub fn client_certificate(conf: &Path, name: &str) {
    super::run(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:secp384r1", "-nodes", "-days", "1"])
            .args(["-subj", &format!("/CN={name}"), "-keyout"])
            .arg(conf.join("client.key"))
            .arg("-out")
            .arg(conf.join("client.crt")),
    );
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // the members stop one at a time, the first (the remote) last
        for m in self.members.iter_mut().rev() {
            if let Some(child) = m.incusd.take() {
                stop_daemon(child, &m.state);
            }
            m.hop = None;
        }
        self.remove_network();
        std::env::remove_var("INCUS_CONF");
        self.dir = None;
        if std::thread::panicking() {
            return;
        }
        let ours: Vec<String> = links().into_iter().filter(|l| l.contains("icl")).collect();
        assert!(ours.is_empty(), "links left: {ours:?}");
        let new: Vec<String> = nft_tables()
            .into_iter()
            .filter(|t| !self.tables_before.contains(t))
            .collect();
        assert!(new.is_empty(), "nft tables left: {new:?}");
        assert_eq!(
            super::incus::ip_forward(),
            self.forward_before,
            "ip_forward changed"
        );
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        assert!(!mounts.contains("labctl-icl-"), "mounts left: {mounts}");
    }
}
