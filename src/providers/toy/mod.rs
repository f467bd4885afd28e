//! A toy provider, compiled in tests only: it proves that adding a provider
//! is this folder plus one line in [`super::REGISTRY`], and that the rest of
//! labctl reaches it through the registry and its capabilities alone.

use super::{Capabilities, NodeState, NodeStatus, Provider, Safety, StatusPoll};
use crate::inventory::{Inventory, Node};
use crate::progress::Progress;

/// Nodes that are always there and can do nothing.
pub struct Toy;

impl Provider for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            creates_nodes: false,
            needs_root: false,
            power_cut: false,
            link_cut: false,
            snapshots: false,
            fencing: false,
            vm_hardware: false,
            derives_layer: false,
            nic: Some("toy0"),
            status: StatusPoll::Host(std::time::Duration::from_secs(1)),
            safety: Safety::OwnSubnet,
        }
    }
    fn up(&self, _inv: &Inventory, _nodes: &[&Node], _p: &dyn Progress) -> anyhow::Result<()> {
        Ok(())
    }
    fn status(&self, inv: &Inventory) -> anyhow::Result<Vec<NodeStatus>> {
        Ok(inv
            .nodes
            .iter()
            .map(|n| NodeStatus {
                name: n.name.clone(),
                address: n.address.to_string(),
                port: n.port,
                state: NodeState::Running,
                provider: self.name(),
                pid: None,
                link: None,
            })
            .collect())
    }
    fn halt(
        &self,
        _inv: &Inventory,
        _nodes: &[&Node],
        _force: bool,
        _p: &dyn Progress,
    ) -> anyhow::Result<()> {
        Ok(())
    }
    fn destroy(&self, _inv: &Inventory, _p: &dyn Progress) -> anyhow::Result<()> {
        Ok(())
    }
    fn destroy_nodes(
        &self,
        _inv: &Inventory,
        _nodes: &[&Node],
        _p: &dyn Progress,
    ) -> anyhow::Result<()> {
        Ok(())
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
        let path = d.path().join("inventory.yaml");
        std::fs::write(
            &path,
            "lab: toy\nnetwork: {subnet: 10.1.1.0/24, gateway: 10.1.1.1}\nnodes:\n  n1: {address: 10.1.1.101}\n",
        )
        .unwrap();
        let inv = crate::providers::load_inventory(&path).unwrap();
        assert!(toy.snapshot_list(&inv).is_err());
        assert!(toy.set_link(&inv, &inv.nodes[0], false).is_err());
        assert_eq!(toy.status(&inv).unwrap().len(), inv.nodes.len());
        // every registered name is unique and answers with its own name
        for (name, make) in REGISTRY {
            assert_eq!(make().name(), *name);
            assert_eq!(REGISTRY.iter().filter(|(n, _)| n == name).count(), 1);
        }
    }
}
