//! VM nodes on a hypervisor reached by `qemu+ssh://root@127.0.0.1/system`:
//! libvirt's own ssh transport for every `virsh`, and labctl's SSH hop
//! (`ssh -W`) for every connection to a node. The hypervisor is this machine,
//! behind a real sshd the test starts on 127.0.0.1 (port 22 when it is free),
//! so the story is the one of a remote host, shorter:
//!
//! - `up` of 2 VMs (the accelerator decided through libvirt) → `status` →
//!   `ssh nodo1 -- uname -r` is the guest's kernel → `/dev/vdb` of the size
//!   asked → `ssh-config` names the hop;
//! - `configure` of a small scenario (files and a service, no packages: the
//!   remote network has no NAT on this kernel) converges, a second one
//!   changes nothing, `verify` (HTTP through the hop) passes;
//! - `fail nodo1` → `up nodo1` keeps its files;
//! - the sshd saw labctl's forwardings to the node addresses (the lab was
//!   reached through the hop, not directly);
//! - `destroy` → nothing of the lab left; then `ssh nodo1` is refused because
//!   the lab's bridge on the hypervisor no longer holds the gateway.
//!
//! Lab `vmr` on 10.1.62.0/24 (machine-wide lab-test lock). The hypervisor's
//! host key is pinned in root's `~/.ssh/known_hosts` for the test's duration
//! (what a user of qemu+ssh has), and the file is put back as it was.

use crate::common;
use common::hop::{Hop, Pinned};
use common::lab::{one_at_a_time, Lab};
use common::libvirt::{assert_vm_gone, Daemons, PREINSTALL};
use std::net::TcpListener;
use std::process::Command;
use std::time::Instant;

/// The hop's `qemu+ssh://` URI, with its key.
fn uri(hop: &Hop) -> String {
    let port = if hop.port == 22 {
        String::new()
    } else {
        format!(":{}", hop.port)
    };
    format!(
        "qemu+ssh://root@127.0.0.1{port}/system?keyfile={}",
        hop.key().display()
    )
}

fn inventory(uri: &str) -> String {
    format!(
        "lab: vmr
provider: libvirt
libvirt: {{uri: \"{uri}\", memory: 512M}}
# the VM image the other VM lab tests use (one image build per machine)
preinstall: {PREINSTALL}
network: {{subnet: 10.1.62.0/24, gateway: 10.1.62.1}}
ssh: {{user: vagrant}}
nodes:
  nodo1: {{address: 10.1.62.101, groups: [web], disks: [{{size: 64M}}]}}
  nodo2: {{address: 10.1.62.102, groups: [web]}}
"
    )
}

/// Files and a service only (perl is in every Debian): a page that names
/// its node, served on port 8080.
const SCENARIO: &str = r#"name: remote-smoke
description: a page naming its node on each VM of a remote hypervisor
plays:
  - name: tiny web server
    hosts: web
    tasks:
      - name: the page
        copy: {content: "{{ inventory_hostname }}\n", dest: /srv/www/info.txt, mode: "0644"}
      - name: the server
        copy:
          dest: /usr/local/bin/tinyweb
          mode: "0755"
          content: |
            #!/usr/bin/perl
            use IO::Socket::INET;
            my $s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die "listen: $!";
            while (my $c = $s->accept) {
              while (my $l = <$c>) { last if $l =~ /^\r?$/ }
              open(my $f, '<', '/srv/www/info.txt'); local $/; my $b = <$f> // '';
              print $c "HTTP/1.1 200 OK\r\nContent-Length: " . length($b) . "\r\nConnection: close\r\n\r\n$b";
              close $c;
            }
      - name: its unit
        copy:
          dest: /etc/systemd/system/tinyweb.service
          content: |
            [Unit]
            Description=a page naming this node
            [Service]
            ExecStart=/usr/local/bin/tinyweb
            [Install]
            WantedBy=multi-user.target
      - service: {name: tinyweb, state: started, enabled: true}
verify:
  - http: {url: "http://{{ nodes.nodo1.address }}:8080/info.txt", nodes: [nodo1], requests: 3}
  - http: {url: "http://{{ nodes.nodo2.address }}:8080/info.txt", nodes: [nodo2], requests: 3}
"#;

#[test]
fn vm_lab_through_qemu_ssh() {
    let _one = one_at_a_time();
    let _daemons = Daemons::ensure();
    // port 22 when it is free
    let port = if TcpListener::bind("127.0.0.1:22").is_ok() {
        22
    } else {
        common::free_port()
    };
    let hop = Hop::start("127.0.0.1", port, None, "");
    let _pinned = Pinned::add(&hop.known_hosts_line());
    let lab = Lab::new("vmr", "10.1.62");
    std::fs::write(lab.inv(), inventory(&uri(&hop))).unwrap();
    std::fs::write(lab.path("remote.yaml"), SCENARIO).unwrap();
    // a previous run that died hard may have left this lab behind
    lab.labctl(&["destroy"]);

    let t = Instant::now();
    let out = lab.labctl(&["up"]);
    assert!(out.status.success(), "labctl up failed");
    let up = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "FIGURE up of 2 VMs through qemu+ssh: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(up.contains("qemu+ssh://root@127.0.0.1"), "{up}");
    assert!(up.contains("TCG") || up.contains("KVM"), "{up}");
    let st = lab.json(&["--json", "status"]);
    let nodes = st["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{st}");
    assert!(nodes.iter().all(|n| n["state"] == "running"), "{st}");

    let host_kernel =
        String::from_utf8(Command::new("uname").arg("-r").output().unwrap().stdout).unwrap();
    let guest_kernel = lab.on("nodo1", "uname -r");
    assert_ne!(guest_kernel.trim(), host_kernel.trim());
    assert_eq!(
        lab.on("nodo1", "sudo blockdev --getsize64 /dev/vdb").trim(),
        "67108864"
    );
    let cfg = lab.ok(&["ssh-config"]);
    assert_eq!(cfg.matches("ProxyCommand ssh ").count(), 2, "{cfg}");
    assert!(cfg.contains("-W '[%h]:%p' 127.0.0.1"), "{cfg}");

    let first = lab.json(&["--json", "configure", "remote.yaml"]);
    assert!(first["changed"].as_u64().unwrap() > 0, "{first}");
    let again = lab.json(&["--json", "configure", "remote.yaml"]);
    assert_eq!(
        again["changed"], 0,
        "a second configure changes nothing: {again}"
    );
    lab.ok(&["verify", "remote.yaml"]);

    // synced: a power cut loses what is only in the page cache
    lab.on(
        "nodo1",
        "echo kept | sudo tee /root/mark >/dev/null && sync",
    );
    lab.ok(&["fail", "nodo1"]);
    let st = lab.json(&["--json", "status"]);
    assert_eq!(st["nodes"][0]["state"], "stopped", "{st}");
    lab.ok(&["up", "nodo1"]);
    assert_eq!(lab.on("nodo1", "sudo cat /root/mark").trim(), "kept");

    // every connection went through the hop: the sshd was asked to forward to the nodes
    for addr in ["10.1.62.101", "10.1.62.102"] {
        let n = hop.forwardings_to(addr);
        println!("FIGURE forwardings through the hop to {addr}: {n}");
        assert!(n > 0, "no forwarding to {addr} through the hop");
    }

    lab.ok(&["destroy"]);
    assert_vm_gone(&lab);
    // the lab's bridge on the hypervisor is gone: labctl refuses to send anything there
    let out = lab.labctl(&["ssh", "nodo1", "--", "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not up on root@127.0.0.1") && err.contains("does not hold the gateway"),
        "{err}"
    );
    lab.ok(&["destroy"]);
}
