//! The Incus objects of a lab, all named after it, made by `up` and removed
//! by `destroy` (nothing else is touched):
//!
//! - the project `labctl-<lab>` (its own instances and profiles; images from
//!   the default project, where labctl's image is imported once), marked as
//!   the lab's by its description; a project the inventory names instead
//!   (`incus: {project: …}`) must exist, and `destroy` removes only the lab's
//!   nodes from it;
//! - its `default` profile: the root disk on the server's storage pool, the
//!   NIC `eth0` on the lab network, `/sys` read-only (the container
//!   interface: systemd-networkd then configures the NIC with no udev);
//! - the managed bridge `lab-<lab>` (in the default project: Incus allows a
//!   project's own networks only for OVN), holding the lab gateway, with NAT,
//!   routing, DHCP, DNS and IPv6 off: the lab's traffic stays on the bridge.
//!   Its description marks it as labctl's, and `destroy` removes only a
//!   network so marked.

use super::client::{Incus, LONG, SHORT};
use crate::inventory::Inventory;
use serde_json::{json, Value};

/// The description that marks a network as this lab's.
pub fn network_description(lab: &str) -> String {
    format!("labctl lab {lab}")
}

/// The network's settings for the lab.
pub fn network_config(inv: &Inventory) -> anyhow::Result<Vec<(String, String)>> {
    let Some(net) = &inv.network else {
        anyhow::bail!("internal error: incus lab without network");
    };
    Ok(vec![
        (
            "ipv4.address".into(),
            format!("{}/{}", net.gateway, net.subnet.prefix),
        ),
        ("ipv4.nat".into(), "false".into()),
        ("ipv4.routing".into(), "false".into()),
        ("ipv4.dhcp".into(), "false".into()),
        ("ipv4.firewall".into(), "false".into()),
        ("ipv6.address".into(), "none".into()),
        ("ipv6.firewall".into(), "false".into()),
        ("dns.mode".into(), "none".into()),
    ])
}

/// The project's settings: profiles of its own, images shared with the default project.
const PROJECT_FEATURES: &[(&str, &str)] = &[
    ("features.images", "false"),
    ("features.profiles", "true"),
    ("features.networks", "false"),
    ("features.storage.volumes", "false"),
];

/// Whether the project exists.
pub fn project_exists(incus: &Incus) -> anyhow::Result<bool> {
    Ok(incus
        .query(&format!("/1.0/projects/{}", incus.project))?
        .is_some())
}

/// The storage pool of the server's default profile (where labctl's nodes go).
fn default_pool(incus: &Incus) -> anyhow::Result<String> {
    let prof = incus
        .query("/1.0/profiles/default?project=default")?
        .unwrap_or(Value::Null);
    match prof["devices"]["root"]["pool"].as_str() {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => crate::user_bail!(
            "Incus has no storage pool in its default profile, so labctl has nowhere to put the nodes\n  fix: initialise Incus once: `incus admin init` (or `incus storage create default dir` and `incus profile device add default root disk path=/ pool=default`)"
        ),
    }
}

/// Make (or complete) the project, the network and the profile.
pub fn ensure(incus: &Incus, inv: &Inventory) -> anyhow::Result<()> {
    if !project_exists(incus)? {
        let mut args = vec![
            "project".to_string(),
            "create".into(),
            incus.project.clone(),
            "--description".into(),
            network_description(&inv.lab),
        ];
        for (k, v) in PROJECT_FEATURES {
            args.push("-c".into());
            args.push(format!("{k}={v}"));
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = incus.call(&a, SHORT)?;
        if !r.ok {
            anyhow::bail!(
                "creating Incus project {} failed: {}",
                incus.project,
                r.why()
            );
        }
    }
    ensure_network(incus, inv)?;
    let pool = default_pool(incus)?;
    let profile = json!({
        "description": format!("labctl lab {}", inv.lab),
        "config": {"raw.lxc": "lxc.mount.auto = sys:ro"},
        "devices": {
            "root": {"type": "disk", "path": "/", "pool": pool},
            super::seed::NIC: {"type": "nic", "network": inv.bridge_name(), "name": super::seed::NIC},
        }
    });
    incus.send(
        "PUT",
        &format!("/1.0/profiles/default?project={}", incus.project),
        &profile,
        &format!("setting the profile of Incus project {}", incus.project),
    )
}

/// Make the lab's bridge network, or check that the one there is the lab's.
fn ensure_network(incus: &Incus, inv: &Inventory) -> anyhow::Result<()> {
    let name = inv.bridge_name();
    let config = network_config(inv)?;
    if let Some(n) = incus.query(&format!("/1.0/networks/{name}?project=default"))? {
        if n["description"] != network_description(&inv.lab).as_str() {
            crate::user_bail!(
                "Incus already has a network named {name} that labctl did not make for lab `{}`\n  fix: rename the lab (`lab:` in {}), or remove that network if it is yours to remove (`incus network delete {name}`)",
                inv.lab,
                inv.path.display()
            );
        }
        let want = &config[0];
        if n["config"][&want.0] != want.1.as_str() {
            crate::user_bail!(
                "Incus network {name} holds {} but the inventory says {}\n  fix: `labctl destroy` (with the old inventory) and `labctl up` again",
                n["config"][&want.0],
                want.1
            );
        }
        return Ok(());
    }
    crate::providers::host::preflight::subnet_free(inv)?;
    // on a cluster a network is first made pending on every member, then created
    for m in members(incus)? {
        let r = incus.call(
            &[
                "network",
                "create",
                &name,
                "--project",
                "default",
                "--target",
                &m,
            ],
            SHORT,
        )?;
        if !r.ok {
            anyhow::bail!(
                "creating Incus network {name} on member {m} failed: {}",
                r.why()
            );
        }
    }
    let mut args: Vec<String> = vec![
        "network".into(),
        "create".into(),
        name.clone(),
        "--project".into(),
        "default".into(),
        "--description".into(),
        network_description(&inv.lab),
    ];
    args.extend(config.iter().map(|(k, v)| format!("{k}={v}")));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = incus.call(&a, SHORT)?;
    if !r.ok {
        anyhow::bail!("creating Incus network {name} failed: {}", r.why());
    }
    // a cluster drops the description of a network made pending member by member
    incus.send(
        "PATCH",
        &format!("/1.0/networks/{name}?project=default"),
        &json!({"description": network_description(&inv.lab)}),
        &format!("marking Incus network {name} as lab `{}`'s", inv.lab),
    )
}

/// The lab's instances: (name, status, member), from one listing.
pub fn instances(incus: &Incus) -> anyhow::Result<Vec<(String, String, String)>> {
    if !project_exists(incus)? {
        return Ok(Vec::new());
    }
    let v = incus.json(&["list"])?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    (
                        super::client::str_of(i, "name").to_string(),
                        super::client::str_of(i, "status").to_string(),
                        super::client::str_of(i, "location").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Remove the instances, the project (with its profile) and the network;
/// absent ones are fine.
pub fn remove(incus: &Incus, inv: &Inventory) -> anyhow::Result<Vec<String>> {
    let mut gone = Vec::new();
    let project = incus.query(&format!("/1.0/projects/{}", incus.project))?;
    if let Some(project) = project {
        // a project the inventory names (not labctl's own) keeps everything but the lab's nodes
        let own = project["description"] == network_description(&inv.lab).as_str();
        let names: Vec<String> = instances(incus)?
            .into_iter()
            .map(|i| i.0)
            .filter(|n| own || inv.node(n).is_some())
            .collect();
        delete_instances(incus, &names)?;
        gone.extend(names.iter().map(|n| format!("instance {n}")));
        if !own {
            return Ok(gone);
        }
        let r = incus.call(&["project", "delete", &incus.project], SHORT)?;
        if !r.ok && !super::client::not_found(&r) {
            anyhow::bail!(
                "deleting Incus project {} failed: {}",
                incus.project,
                r.why()
            );
        }
        gone.push(format!("project {} (and its profile)", incus.project));
    }
    let name = inv.bridge_name();
    if let Some(n) = incus.query(&format!("/1.0/networks/{name}?project=default"))? {
        if n["description"] == network_description(&inv.lab).as_str() {
            let r = incus.call(&["network", "delete", &name, "--project", "default"], SHORT)?;
            if !r.ok && !super::client::not_found(&r) {
                anyhow::bail!("deleting Incus network {name} failed: {}", r.why());
            }
            gone.push(format!("network {name}"));
        }
    }
    Ok(gone)
}

/// Delete instances (running ones stopped at once), all at the same time:
/// on a `dir` pool each is a full copy of the image to remove.
pub fn delete_instances(incus: &Incus, names: &[String]) -> anyhow::Result<()> {
    let errors: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = names
            .iter()
            .map(|n| {
                (
                    n,
                    s.spawn(move || incus.run(&["delete", "--force", n], LONG)),
                )
            })
            .collect();
        hs.into_iter()
            .filter_map(|(n, h)| match h.join() {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!("{n}: {e:#}")),
                Err(_) => Some(format!("{n}: internal error: thread panicked")),
            })
            .collect()
    });
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join("\n"));
    }
    Ok(())
}

/// The cluster's members (none: a single server).
pub fn members(incus: &Incus) -> anyhow::Result<Vec<String>> {
    let clustered = incus.query("/1.0/cluster")?.unwrap_or_default()["enabled"] == true;
    if !clustered {
        return Ok(Vec::new());
    }
    let v = incus.query("/1.0/cluster/members")?.unwrap_or_default();
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str())
                .filter_map(|u| u.rsplit('/').next())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default())
}
