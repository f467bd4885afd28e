//! The libvirt objects of a lab, as XML: its storage pool, its network (the
//! lab bridge holding the gateway, NAT to the outside, no DHCP, no DNS) and
//! one domain per node (direct kernel boot of the cached image's kernel, the
//! node's copy-on-write root disk, its extra disks, its seed disk, the serial
//! console into a file). Every object is named after the lab.

use crate::inventory::{Inventory, Node};

/// Escape text for an XML attribute or element: markup characters as
/// entities (so `]]>`, quotes and `<` stay text), tab, newline and carriage
/// return as character references (an attribute keeps them rather than
/// folding them into spaces), and the other control characters, which XML 1.0
/// cannot hold at all, as U+FFFD.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push_str(&format!("&#{};", c as u32)),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Text for an XML comment: escaped, and never `--` (which ends none but
/// makes the document invalid).
fn comment(s: &str) -> String {
    let mut t = esc(s);
    while t.contains("--") {
        t = t.replace("--", "- -");
    }
    t
}

/// The lab's objects' names.
pub struct Names {
    pub lab: String,
}

impl Names {
    pub fn new(inv: &Inventory) -> Names {
        Names {
            lab: inv.lab.clone(),
        }
    }
    /// Prefix of every domain of the lab: `labctl-<lab>.` — neither a lab
    /// nor a node name holds a `.`, so lab `a` node `b-c` (`labctl-a.b-c`) and
    /// lab `a-b` node `c` (`labctl-a-b.c`) never share a domain.
    pub fn domain_prefix(&self) -> String {
        format!("labctl-{}.", self.lab)
    }
    pub fn domain(&self, node: &str) -> String {
        format!("{}{node}", self.domain_prefix())
    }
    pub fn network(&self) -> String {
        format!("labctl-{}", self.lab)
    }
    pub fn pool(&self) -> String {
        format!("labctl-{}", self.lab)
    }
    pub fn root_vol(node: &str) -> String {
        format!("{node}-root.qcow2")
    }
    pub fn seed_vol(node: &str) -> String {
        format!("{node}-seed.img")
    }
    pub fn disk_vol(node: &str, i: usize) -> String {
        format!("{node}-{}.qcow2", disk_dev(i + 1))
    }
    pub fn console_vol(node: &str) -> String {
        format!("{node}-console.log")
    }
    /// Whether `vol` is one of `node`'s volumes.
    pub fn vol_is_nodes(vol: &str, node: &str) -> bool {
        vol.strip_prefix(node)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|r| !r.contains('-'))
    }
}

/// The pool shared by every lab: the cached images (kernel, initrd, disk).
/// Its name is reserved: no lab may be called `images`
/// ([`crate::inventory::RESERVED_LAB_NAMES`]).
pub const IMAGE_POOL: &str = "labctl-images";

/// The XML namespace of labctl's metadata on a domain.
pub const META_NS: &str = "https://labctl.invalid/ns/lab/1";

/// Who made a lab's objects on a hypervisor: this machine (its machine id)
/// and the project's inventory, hashed. Recorded in each domain's metadata;
/// labctl acts only on domains that carry its own, so two machines (or two
/// projects) sharing one hypervisor never stop or remove each other's VMs.
pub fn owner_id(inv: &Inventory) -> String {
    use sha2::Digest;
    let machine = std::fs::read_to_string("/etc/machine-id")
        .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname"))
        .unwrap_or_default();
    let inventory = std::fs::canonicalize(&inv.path).unwrap_or_else(|_| inv.path.clone());
    let h = hex::encode(sha2::Sha256::digest(
        format!("{}\n{}", machine.trim(), inventory.display()).as_bytes(),
    ));
    h[..24].to_string()
}

/// The owner recorded in a domain's metadata (as `virsh metadata DOM NS`
/// prints it), if any.
pub fn owner_of(metadata: &str) -> Option<String> {
    let i = metadata.find("owner=")? + "owner=".len();
    let rest = &metadata[i..];
    let q = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = &rest[1..];
    Some(rest[..rest.find(q)?].to_string())
}

/// `vda`, `vdb`, … (`i` from 0).
pub fn disk_dev(i: usize) -> String {
    let mut s = String::from("vd");
    let mut n = i;
    let mut letters = Vec::new();
    loop {
        letters.push((b'a' + (n % 26) as u8) as char);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    s.extend(letters.iter().rev());
    s
}

/// A node's MAC address: fixed per lab and node (QEMU's 52:54:00 prefix).
pub fn mac(lab: &str, node: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("{lab}/{node}").as_bytes());
    format!("52:54:00:{:02x}:{:02x}:{:02x}", d[0], d[1], d[2])
}

/// A node's domain UUID: fixed per lab and node, so `virsh define` of a
/// changed definition updates the domain instead of refusing a second one.
pub fn uuid(lab: &str, node: &str) -> String {
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(
        format!("labctl domain {lab}/{node}").as_bytes(),
    ));
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A directory storage pool.
pub fn pool(name: &str, path: &str) -> String {
    format!(
        "<pool type='dir'>\n  <name>{}</name>\n  <target>\n    <path>{}</path>\n    <permissions><mode>0711</mode></permissions>\n  </target>\n</pool>\n",
        esc(name),
        esc(path)
    )
}

/// The lab network: bridge `lab-<lab>` with the gateway address, NAT'd by
/// libvirt (`nat: true`) or by labctl's own nft table (`nat: false`: the
/// network is `open`, libvirt adds no firewall rule).
pub fn network(inv: &Inventory, nat: bool) -> anyhow::Result<String> {
    let Some(net) = &inv.network else {
        anyhow::bail!("internal error: libvirt lab without network");
    };
    Ok(format!(
        "<network>\n  <name>{}</name>\n  <!-- labctl lab {}: nodes reach the package mirror through the host -->\n  <metadata>\n    <labctl:lab xmlns:labctl='{}' lab='{}' owner='{}'/>\n  </metadata>\n  <forward mode='{}'/>\n  <bridge name='{}' stp='off' delay='0'/>\n  <dns enable='no'/>\n  <ip address='{}' prefix='{}'/>\n</network>\n",
        esc(&Names::new(inv).network()),
        comment(&inv.lab),
        META_NS,
        esc(&inv.lab),
        owner_id(inv),
        if nat { "nat" } else { "open" },
        esc(&inv.bridge_name()),
        net.gateway,
        net.subnet.prefix
    ))
}

/// Where a node's boot files are on the hypervisor.
pub struct Boot {
    pub kernel: String,
    pub initrd: String,
    /// `kvm` or `qemu` (TCG).
    pub domain_type: &'static str,
}

/// One node's domain.
pub fn domain(inv: &Inventory, node: &Node, boot: &Boot) -> String {
    let names = Names::new(inv);
    let pool = names.pool();
    let mut disks = String::new();
    let disk = |vol: &str, format: &str, dev: &str, bus: &str| {
        format!(
            "    <disk type='volume' device='disk'>\n      <driver name='qemu' type='{format}' cache='unsafe' discard='unmap'/>\n      <source pool='{}' volume='{}'/>\n      <target dev='{dev}' bus='{bus}'/>\n    </disk>\n",
            esc(&pool),
            esc(vol)
        )
    };
    disks.push_str(&disk(
        &Names::root_vol(&node.name),
        "qcow2",
        "vda",
        "virtio",
    ));
    for i in 0..node.vm.disks.len() {
        disks.push_str(&disk(
            &Names::disk_vol(&node.name, i),
            "qcow2",
            &disk_dev(i + 1),
            "virtio",
        ));
    }
    // the seed on another bus, so the node's own disks are vda, vdb, … as asked
    disks.push_str(&disk(&Names::seed_vol(&node.name), "raw", "sda", "sata"));
    let cpu = if boot.domain_type == "kvm" {
        "  <cpu mode='host-passthrough'/>\n"
    } else {
        ""
    };
    format!(
        "<domain type='{dt}'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <description>labctl lab {lab}, node {node}</description>
  <metadata>
    <labctl:lab xmlns:labctl='{ns}' lab='{lab}' node='{node}' owner='{owner}'/>
  </metadata>
  <memory unit='MiB'>{mem}</memory>
  <vcpu>{cpus}</vcpu>
{cpu}  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
{disks}    <interface type='network'>
      <source network='{net}'/>
      <mac address='{mac}'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>
    <serial type='file'>
      <source path='{console}' append='on'/>
      <target port='0'/>
    </serial>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='none'/>
  </devices>
</domain>
",
        dt = boot.domain_type,
        name = esc(&names.domain(&node.name)),
        uuid = uuid(&inv.lab, &node.name),
        lab = esc(&inv.lab),
        node = esc(&node.name),
        ns = META_NS,
        owner = owner_id(inv),
        mem = node.vm.memory.mib(),
        cpus = node.vm.cpus,
        kernel = esc(&boot.kernel),
        initrd = esc(&boot.initrd),
        net = esc(&names.network()),
        mac = mac(&inv.lab, &node.name),
        console = esc(&console_path(inv, &node.name)),
    )
}

/// Where the node's serial console is written on the hypervisor.
pub fn console_path(inv: &Inventory, node: &str) -> String {
    format!(
        "{}/{}",
        super::lab_pool_path(&inv.lab),
        Names::console_vol(node)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_names() {
        assert_eq!(disk_dev(0), "vda");
        assert_eq!(disk_dev(1), "vdb");
        assert_eq!(disk_dev(25), "vdz");
        assert_eq!(disk_dev(26), "vdaa");
    }

    #[test]
    fn macs_are_stable_and_local() {
        assert_eq!(mac("ha", "nodo1"), mac("ha", "nodo1"));
        assert_ne!(mac("ha", "nodo1"), mac("ha", "nodo2"));
        assert!(mac("ha", "dns").starts_with("52:54:00:"));
    }

    #[test]
    fn volumes_belong_to_their_node_only() {
        assert!(Names::vol_is_nodes("nodo1-root.qcow2", "nodo1"));
        assert!(Names::vol_is_nodes("nodo1-vdb.qcow2", "nodo1"));
        assert!(!Names::vol_is_nodes("nodo1-x-root.qcow2", "nodo1"));
        assert!(!Names::vol_is_nodes("nodo10-root.qcow2", "nodo1"));
    }

    #[test]
    fn lab_and_node_names_never_share_a_domain() {
        let a = Names { lab: "a".into() };
        let ab = Names { lab: "a-b".into() };
        assert_ne!(a.domain("b-c"), ab.domain("c"));
        assert_eq!(a.domain("b-c"), "labctl-a.b-c");
        // nor a lab's network or pool the image pool
        for lab in ["a", "ha", "a-b"] {
            let n = Names { lab: lab.into() };
            assert_ne!(n.pool(), IMAGE_POOL);
            assert!(
                !n.domain("x")
                    .starts_with(&Names { lab: "a".into() }.domain_prefix())
                    || lab == "a"
            );
        }
        assert_eq!(
            Names {
                lab: "images".into()
            }
            .pool(),
            IMAGE_POOL,
            "why `images` is reserved"
        );
    }

    #[test]
    fn the_owner_is_read_back_from_the_metadata() {
        assert_eq!(
            owner_of("<lab xmlns=\"https://labctl.invalid/ns/lab/1\" lab=\"ha\" node=\"n\" owner=\"abc123\"/>").as_deref(),
            Some("abc123")
        );
        assert_eq!(owner_of("<lab owner='x1'/>").as_deref(), Some("x1"));
        assert_eq!(owner_of("error: no metadata"), None);
    }

    #[test]
    fn escapes() {
        assert_eq!(esc("a<b>'\"&"), "a&lt;b&gt;&apos;&quot;&amp;");
        // hostile names stay text: no element, attribute or CDATA end gets out
        let hostile = "x']]><evil a='1\"\n</name>&\u{1}";
        let e = esc(hostile);
        for bad in ['<', '>', '\'', '"', '\n', '\u{1}'] {
            assert!(!e.contains(bad), "{bad:?} in {e}");
        }
        assert_eq!(e.matches('&').count(), e.matches(';').count());
        assert!(e.contains("&#10;"));
        assert!(!comment("a--b---c").contains("--"));
        assert!(!comment("-->").contains("-->"));
    }
}
