//! Where a lab's nodes run, and how labctl reaches them from here.
//!
//! - On a cluster, every node of a lab goes to one member (the lab's bridge
//!   is a bridge per member, so its nodes must share one): `incus.target`
//!   when the inventory names it, else the member of the lab's nodes already
//!   made, else the member Incus's scheduler picks for the first node made;
//!   the others are pinned to it (`--target`).
//! - The lab's network is on that member (or on the remote server). When
//!   that is not this machine (labctl talks to a remote, or the member is
//!   not the local daemon), every connection to a node goes through an SSH
//!   hop to that host ([`crate::jump`]): its address is the member's `url`
//!   in Incus's answer (or the remote's), its login `incus.hop_user` and
//!   `incus.hop_key` (else the user's SSH setup), and the lab's bridge there
//!   must hold the gateway before anything is sent.
//!
//! `up` records the placement in the lab's state
//! (`/var/lib/labctl/labs/<lab>/incus-placement`: `member NAME`, `host
//! ADDRESS`), so `configure`, `verify`, `ssh` and `destroy` find the hop
//! without asking Incus.

use super::client::Incus;
use crate::inventory::Inventory;
use crate::jump::Jump;
use crate::providers::host::paths;
use std::path::PathBuf;

/// The member running the lab's nodes (`None`: a single server) and the
/// host to hop through (`None`: the lab's network is on this machine).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub member: Option<String>,
    pub host: Option<String>,
}

fn file(inv: &Inventory) -> PathBuf {
    paths::lab_dir(&inv.lab).join("incus-placement")
}

/// The placement `up` recorded, if any.
pub fn load(inv: &Inventory) -> Option<Placement> {
    let text = std::fs::read_to_string(file(inv)).ok()?;
    Some(parse(&text))
}

fn parse(text: &str) -> Placement {
    let mut p = Placement::default();
    for l in text.lines() {
        match l.split_once(' ') {
            Some(("member", v)) => p.member = Some(v.trim().to_string()),
            Some(("host", v)) => p.host = Some(v.trim().to_string()),
            _ => {}
        }
    }
    p
}

/// Record the placement in the lab's state.
pub fn save(inv: &Inventory, p: &Placement) -> anyhow::Result<()> {
    let dir = paths::lab_dir(&inv.lab);
    paths::private_dir(&dir)?;
    let mut text = String::new();
    if let Some(m) = &p.member {
        text.push_str(&format!("member {m}\n"));
    }
    if let Some(h) = &p.host {
        text.push_str(&format!("host {h}\n"));
    }
    std::fs::write(file(inv), text)?;
    Ok(())
}

/// The SSH hop of a placement (`None`: this machine).
pub fn jump(inv: &Inventory, p: &Placement) -> Option<Jump> {
    let s = inv.incus.clone().unwrap_or_default();
    p.host.as_ref().map(|h| Jump {
        user: s.hop_user,
        host: h.clone(),
        port: None,
        keyfile: s.hop_key,
        // one login per lab and host (%C: a hash of both ends), reused by every connection
        control: Some(paths::lab_dir(&inv.lab).join("hop-%C")),
    })
}

/// The host of `https://HOST:PORT` (an IPv6 address without its brackets).
fn host_of_url(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let plain = !host.is_empty()
        && !host.starts_with('-')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".:-".contains(c));
    plain.then(|| host.to_string())
}

/// The member new nodes go to before any is made: `incus.target`, else the
/// member of the lab's nodes already there (`None`: Incus schedules).
pub fn member_for(inv: &Inventory, list: &[(String, String, String)]) -> Option<String> {
    inv.incus
        .as_ref()
        .and_then(|s| s.target.clone())
        .or_else(|| {
            list.iter()
                .map(|i| i.2.clone())
                .find(|m| !m.is_empty() && m != "none")
        })
}

/// Where the lab is for labctl on this machine, its nodes on `member`.
pub fn locate(incus: &Incus, member: Option<&str>) -> anyhow::Result<Placement> {
    let remote = incus.remote_addr()?;
    let Some(m) = member else {
        return Ok(Placement {
            member: None,
            host: remote.as_deref().and_then(host_of_url),
        });
    };
    if remote.is_none() {
        let me = incus.query("/1.0")?.unwrap_or_default();
        if me["environment"]["server_name"] == m {
            return Ok(Placement {
                member: Some(m.to_string()),
                host: None,
            });
        }
    }
    let info = incus
        .query(&format!("/1.0/cluster/members/{m}"))?
        .unwrap_or_default();
    let url = super::client::str_of(&info, "url");
    let Some(host) = host_of_url(url) else {
        anyhow::bail!("Incus gives no usable address for cluster member {m} (url `{url}`)");
    };
    Ok(Placement {
        member: Some(m.to_string()),
        host: Some(host),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hosts_of_member_urls() {
        for (url, host) in [
            ("https://10.1.104.2:8443", Some("10.1.104.2")),
            ("https://srv2", Some("srv2")),
            ("https://[fd00::2]:8443", Some("fd00::2")),
            ("unix://", None),
            ("https://-oX:1", None),
        ] {
            assert_eq!(host_of_url(url).as_deref(), host, "{url}");
        }
    }

    #[test]
    fn the_placement_file_reads_back() {
        let p = parse("member m2\nhost 10.1.104.3\n");
        assert_eq!(p.member.as_deref(), Some("m2"));
        assert_eq!(p.host.as_deref(), Some("10.1.104.3"));
        assert_eq!(parse(""), Placement::default());
    }
}
