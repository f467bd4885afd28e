//! The lab network's maths: subnets, the private ranges a lab may use, and
//! whether a subnet has room for a lab.

use std::net::Ipv4Addr;

/// An IPv4 subnet such as `10.1.1.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Option<Subnet> {
        let (a, p) = s.split_once('/')?;
        let addr: Ipv4Addr = a.trim().parse().ok()?;
        let prefix: u8 = p.trim().parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let mask = Self::mask_of(prefix);
        Some(Subnet {
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }
    pub(super) fn mask_of(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & Self::mask_of(self.prefix) == u32::from(self.network)
    }
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(Self::mask_of(self.prefix))
    }
    /// The broadcast address (all host bits set).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !Self::mask_of(self.prefix))
    }
    /// Whether `a` is a usable host address of the subnet: inside it, and
    /// neither its network nor its broadcast address.
    pub fn is_host(&self, a: Ipv4Addr) -> bool {
        self.contains(a) && a != self.network && a != self.broadcast()
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The lab network: nodes live in `subnet`; the host holds `gateway` on the lab bridge.
#[derive(Debug, Clone)]
pub struct Network {
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
}

/// The private IPv4 ranges a lab may use (RFC 1918): a lab subnet lies inside
/// one of them, so no route labctl adds can capture public, link-local
/// (cloud metadata) or loopback traffic.
pub const PRIVATE_RANGES: [(Ipv4Addr, u8); 3] = [
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
];

/// Why `subnet` cannot be a lab network for `nodes` nodes, if it cannot.
pub fn subnet_problem(subnet: &Subnet, nodes: usize) -> Option<String> {
    let private = PRIVATE_RANGES.iter().any(|(net, p)| {
        subnet.prefix >= *p
            && Subnet {
                network: *net,
                prefix: *p,
            }
            .contains(subnet.network)
    });
    if !private {
        return Some(format!(
            "{subnet} is not a private range: a lab subnet lies inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 (labctl routes it to the lab bridge for the whole machine)"
        ));
    }
    if subnet.prefix < 16 {
        return Some(format!(
            "{subnet} is wider than /16: labctl routes the whole subnet to the lab bridge, and one that wide would cover networks this machine reaches elsewhere (a VPN, a LAN); a lab needs no more than a /16"
        ));
    }
    if subnet.prefix > 30 {
        return Some(format!(
            "{subnet} has no room for a gateway and nodes (prefix /{} leaves no usable host addresses)",
            subnet.prefix
        ));
    }
    let usable = (1u64 << (32 - subnet.prefix)) - 2;
    if usable < nodes as u64 + 1 {
        return Some(format!(
            "{subnet} has {usable} usable addresses, too few for the gateway and {nodes} node(s)"
        ));
    }
    None
}
