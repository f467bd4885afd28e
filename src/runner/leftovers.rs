//! What a previous scenario set up on the lab that the one being applied does
//! not manage: switching scenarios on one lab leaves it there (packages,
//! services, files, users, cluster resources), and `configure` lists it so a
//! student is never surprised. Read from the scenario files alone, with
//! nothing sent to any node.

use crate::inventory::Inventory;
use crate::ops::cluster::CLUSTER_RESOURCES;
use crate::scenario::Scenario;
use indexmap::IndexMap;

/// What one scenario manages, per host: `kind` → names.
type Managed = IndexMap<String, IndexMap<&'static str, Vec<String>>>;

fn managed(inv: &Inventory, s: &Scenario) -> Managed {
    let mut out: Managed = IndexMap::new();
    for play in &s.plays {
        let hosts: Vec<String> = play
            .hosts
            .iter()
            .filter_map(|p| inv.select(p).ok())
            .flatten()
            .map(|n| n.name.clone())
            .collect();
        for t in play.tasks.iter().chain(play.handlers.values()) {
            let Some((kind, names)) = t.op.manages() else {
                continue;
            };
            for h in &hosts {
                let list = out.entry(h.clone()).or_default().entry(kind).or_default();
                for n in &names {
                    if !list.contains(n) {
                        list.push(n.clone());
                    }
                }
            }
        }
    }
    out
}

/// Per host, what `previous` manages and `current` does not, as
/// `kind: a, b` parts (hosts with nothing left are left out).
pub fn leftovers(
    inv: &Inventory,
    previous: &Scenario,
    current: &Scenario,
) -> Vec<(String, Vec<String>)> {
    let (prev, cur) = (managed(inv, previous), managed(inv, current));
    // a cluster operation in the current scenario removes what it does not declare
    let cur_owns_cluster = cur
        .values()
        .any(|kinds| kinds.contains_key(CLUSTER_RESOURCES));
    let mut out = Vec::new();
    for (host, kinds) in &prev {
        let mut parts = Vec::new();
        for (kind, names) in kinds {
            if *kind == CLUSTER_RESOURCES && cur_owns_cluster {
                continue;
            }
            let now = cur.get(host).and_then(|k| k.get(kind));
            let left: Vec<&str> = names
                .iter()
                .filter(|n| !now.is_some_and(|l| l.contains(n)))
                .map(String::as_str)
                .collect();
            if !left.is_empty() {
                parts.push(format!("{kind}: {}", left.join(", ")));
            }
        }
        if !parts.is_empty() {
            out.push((host.clone(), parts));
        }
    }
    out
}

/// The note `configure` prints when the lab last ran another scenario
/// (`last`: the path recorded in `.labctl/last-scenario`); `None` when it is
/// the same scenario, none was recorded, or nothing is left over.
pub fn note(inv: &Inventory, last: &std::path::Path, current: &Scenario) -> Option<String> {
    let same = std::path::absolute(&current.path).ok().as_deref() == Some(last)
        || std::fs::canonicalize(last).ok() == std::fs::canonicalize(&current.path).ok();
    if same {
        return None;
    }
    let previous = Scenario::load(last, &inv.dir).ok()?;
    if previous.name == current.name {
        return None;
    }
    let left = leftovers(inv, &previous, current);
    if left.is_empty() {
        return None;
    }
    let mut s = format!(
        "note: this lab last ran scenario `{}` ({}); what it set up and `{}` does not manage stays on the nodes:\n",
        previous.name,
        last.display(),
        current.name
    );
    for (host, parts) in left {
        s += &format!("  {host}: {}\n", parts.join("; "));
    }
    let path = current.path.display().to_string();
    let word = if path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    {
        path
    } else {
        crate::shell::quote(&path)
    };
    s += &format!(
        "  (to leave nothing behind, start from fresh nodes: `labctl configure {word} --fresh` rebuilds them from the image first)"
    );
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn repo(rel: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    #[test]
    fn switching_from_05_to_01_lists_the_cluster_stack_and_05_to_04_not_its_resources() {
        let inv = crate::providers::load_inventory(&repo("inventory.yaml")).unwrap();
        let s05 = Scenario::load(&repo("scenarios/05-ip-failover-apache.yaml"), &repo("")).unwrap();
        let s01 = Scenario::load(&repo("scenarios/01-dns-round-robin.yaml"), &repo("")).unwrap();
        let s04 = Scenario::load(&repo("scenarios/04-ip-failover.yaml"), &repo("")).unwrap();
        let left = leftovers(&inv, &s05, &s01);
        let nodo1 = &left.iter().find(|(h, _)| h == "nodo1").unwrap().1;
        let text = nodo1.join("; ");
        assert!(text.contains("packages: corosync, pacemaker"), "{text}");
        assert!(text.contains("/etc/corosync/corosync.conf"), "{text}");
        assert!(text.contains("services: corosync, pacemaker"), "{text}");
        assert!(
            text.contains("cluster resources: VirtualIP, WebServer"),
            "{text}"
        );
        assert!(
            left.iter().all(|(h, _)| h != "dns"),
            "dns runs the same: {left:?}"
        );
        // 04 owns the cluster: its operation removes WebServer itself
        let left = leftovers(&inv, &s05, &s04);
        assert!(
            left.iter()
                .all(|(_, p)| p.iter().all(|x| !x.contains("cluster"))),
            "{left:?}"
        );
        let note = note(&inv, &repo("scenarios/05-ip-failover-apache.yaml"), &s01).unwrap();
        assert!(note.starts_with("note: this lab last ran scenario `ip-failover-apache`"));
        assert!(note.contains("01-dns-round-robin.yaml --fresh`"), "{note}");
        assert_eq!(
            super::note(&inv, &repo("scenarios/01-dns-round-robin.yaml"), &s01),
            None
        );
    }
}
