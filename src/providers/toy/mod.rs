//! A toy provider, compiled in tests only: it proves that adding a provider
//! is this folder plus one line in [`super::REGISTRY`], and that the rest of
//! labctl reaches it through the registry and its capabilities alone. Its
//! nodes already exist, so it gets `halt` and `destroy`'s refusals for free.

use super::{Capabilities, NodeState, NodeStatus, Provider, StatusPoll};
use crate::inventory::{Inventory, Node};
use crate::progress::Progress;
use std::time::Duration;

/// Nodes that are always there and can do nothing.
pub struct Toy;

impl Provider for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::existing(Some("toy0"), StatusPoll::Host(Duration::from_secs(1)))
    }
    fn up(&self, _inv: &Inventory, _nodes: &[&Node], _p: &dyn Progress) -> anyhow::Result<()> {
        Ok(())
    }
    fn status(&self, inv: &Inventory) -> anyhow::Result<Vec<NodeStatus>> {
        Ok(inv
            .nodes
            .iter()
            .map(|n| NodeStatus::new(n, self.name(), NodeState::Running))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::providers::{by_name, REGISTRY};

    #[test]
    fn one_folder_and_one_registry_line_make_a_provider() {
        let toy = by_name("toy").expect("the toy is registered");
        assert_eq!(toy.name(), "toy");
        let caps = toy.capabilities();
        assert_eq!(caps.nic, Some("toy0"));
        assert!(!caps.needs_root && !caps.power_cut);
        // the refusals a provider gets for free
        let d = tempfile::tempdir().unwrap();
        let inv = crate::providers::inventory_in(
            d.path(),
            "lab: toy\nnetwork: {subnet: 10.1.1.0/24, gateway: 10.1.1.1}\nnodes:\n  n1: {address: 10.1.1.101}\n",
        );
        assert!(toy.snapshot_list(&inv).is_err());
        assert!(toy.set_link(&inv, &inv.nodes[0], false).is_err());
        let p = crate::progress::Silent;
        let refused = toy.halt(&inv, &[], true, &p).unwrap_err().to_string();
        assert!(
            refused.contains("uses provider toy: labctl does not fail"),
            "{refused}"
        );
        assert!(toy.destroy_nodes(&inv, &[], &p).is_err());
        assert_eq!(toy.status(&inv).unwrap().len(), inv.nodes.len());
        // every registered name is unique and answers with its own name
        for (name, make) in REGISTRY {
            assert_eq!(make().name(), *name);
            assert_eq!(REGISTRY.iter().filter(|(n, _)| n == name).count(), 1);
        }
    }
}
