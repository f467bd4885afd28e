//! Who owns a lab's objects on a hypervisor. Two machines (or two projects)
//! may share one libvirt host and name a lab alike; labctl then acts only on
//! objects that record it ([`xml::owner_id`]) on the hypervisor itself:
//!
//! - a domain and the lab network: labctl's metadata element, with `owner=`;
//! - the lab's storage pool (pools carry no metadata): an empty volume named
//!   `owner.<id>` in it (no node's volume holds a `.`).
//!
//! An object of the lab's name without the record is another's: `up`,
//! `destroy` and every node action refuse it with one message and leave it.

use super::virsh::{self, Virsh};
use super::xml::{self, Names};
use crate::inventory::Inventory;

/// The marker volume of the lab's pool.
pub fn pool_marker(inv: &Inventory) -> String {
    format!("owner.{}", xml::owner_id(inv))
}

fn refuse(v: &Virsh, inv: &Inventory, what: &str, recorded: bool) -> anyhow::Error {
    crate::error::user(format!(
        "the {what} on {} is not lab `{}`'s of this project ({}): another machine or project made it; labctl leaves it alone\n  fix: give this lab another name (`lab:` in {})",
        v.uri,
        inv.lab,
        if recorded {
            "another owner is recorded in it"
        } else {
            "it carries no labctl owner"
        },
        inv.path.display()
    ))
}

/// The owner in `virsh metadata`/`net-metadata` output (`None`: none).
fn owner_in(v: &Virsh, args: &[&str]) -> anyhow::Result<Option<String>> {
    let meta = v.call(args, virsh::SHORT)?;
    Ok(if meta.ok {
        xml::owner_of(&meta.stdout)
    } else {
        None
    })
}

/// Refuse domain `dom` unless it records this lab as its owner.
pub fn check_domain(v: &Virsh, inv: &Inventory, dom: &str) -> anyhow::Result<()> {
    let owner = owner_in(v, &["metadata", dom, xml::META_NS])?;
    if owner.as_deref() != Some(xml::owner_id(inv).as_str()) {
        return Err(refuse(v, inv, &format!("domain {dom}"), owner.is_some()));
    }
    Ok(())
}

/// Refuse the lab network, when there is one, unless it records this lab.
pub fn check_network(v: &Virsh, inv: &Inventory) -> anyhow::Result<()> {
    let net = Names::new(inv).network();
    if v.object_state("net", &net)?.is_none() {
        return Ok(());
    }
    let owner = owner_in(v, &["net-metadata", &net, xml::META_NS])?;
    if owner.as_deref() != Some(xml::owner_id(inv).as_str()) {
        return Err(refuse(v, inv, &format!("network {net}"), owner.is_some()));
    }
    Ok(())
}

/// Refuse the lab pool, when there is one, unless it holds this lab's
/// marker; a pool with no volume at all (an `up` cut right after making it)
/// holds nothing to lose and is claimed.
pub fn check_pool(v: &Virsh, inv: &Inventory, vols: &[String]) -> anyhow::Result<()> {
    let pool = Names::new(inv).pool();
    if v.object_state("pool", &pool)?.is_none() {
        return Ok(());
    }
    let mine = pool_marker(inv);
    if vols.contains(&mine) {
        return Ok(());
    }
    if vols.is_empty() {
        return claim_pool(v, inv);
    }
    let recorded = vols.iter().any(|x| x.starts_with("owner."));
    Err(refuse(v, inv, &format!("storage pool {pool}"), recorded))
}

/// Record this lab as the owner of its (new, empty) pool.
pub fn claim_pool(v: &Virsh, inv: &Inventory) -> anyhow::Result<()> {
    let pool = Names::new(inv).pool();
    v.run(&[
        "vol-create-as",
        &pool,
        &pool_marker(inv),
        "0",
        "--format",
        "raw",
    ])?;
    Ok(())
}
