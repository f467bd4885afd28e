//! A student's lab: the project's inventory under the seat's lab name and
//! subnet. Nothing is written: templates and scenarios stay the project's;
//! every address of the project's subnet (nodes, gateway, and variables such
//! as `vip`) moves to the same host number in the seat's subnet, and the
//! lab's state (key, pinned host keys, last scenario, lock) lives in
//! `.labctl/class/<student>/`.

use super::seats::{class_dir, Seat};
use crate::inventory::{Inventory, Network, Subnet};
use crate::user_bail;
use minijinja::Value;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The inventory of `student`'s lab at `seat`, from the project's `project`.
pub fn inventory(project: &Inventory, student: &str, seat: &Seat) -> anyhow::Result<Inventory> {
    let Some(net) = project.network.clone() else {
        user_bail!(
            "{}: the lab has no `network:`, so a class cannot give each student a subnet of their own\n  fix: add `network: {{subnet: 10.1.1.0/24, gateway: 10.1.1.1}}`",
            project.path.display()
        );
    };
    if !project.extra_networks().is_empty() {
        user_bail!(
            "{}: a class of a project with more than one network is not supported yet\n  fix: keep one private network in the project",
            project.path.display()
        );
    }
    let Some(to) = Subnet::parse(&seat.subnet).filter(|s| s.prefix == net.subnet.prefix) else {
        user_bail!(
            "student `{student}`'s seat has subnet {}, the project's is {}\n  fix: `labctl class destroy {student}`, then `labctl class up` gives a new one",
            seat.subnet,
            net.subnet
        );
    };
    let from = net.subnet;
    let mv = |a: Ipv4Addr| move_addr(a, from, to);
    let project_state = project.state_dir();
    let state = class_dir(&project_state).join(student);
    let mut inv = project.clone();
    inv.lab = seat.lab.clone();
    inv.network = Some(Network {
        subnet: to,
        gateway: mv(net.gateway),
    });
    for n in &mut inv.nodes {
        n.address = mv(n.address);
        remap_vars(&mut n.vars, from, to);
    }
    remap_vars(&mut inv.vars, from, to);
    for vars in inv.group_vars.values_mut() {
        remap_vars(vars, from, to);
    }
    // the lab key and pinned host keys labctl keeps: the student lab's own
    let rebase = |p: &std::path::Path| match p.strip_prefix(&project_state) {
        Ok(rest) => state.join(rest),
        Err(_) => p.to_path_buf(),
    };
    inv.ssh.key = rebase(&inv.ssh.key);
    inv.ssh.known_hosts = rebase(&inv.ssh.known_hosts);
    inv.state = Some(state);
    Ok(inv)
}

/// `a` at the same host number in `to` when it is in `from`; else `a`.
pub fn move_addr(a: Ipv4Addr, from: Subnet, to: Subnet) -> Ipv4Addr {
    if !from.contains(a) {
        return a;
    }
    let host = u32::from(a) - u32::from(from.network);
    Ipv4Addr::from(u32::from(to.network) + host)
}

/// Move every variable that is an address (or `ADDRESS/PREFIX`) of `from`.
fn remap_vars(vars: &mut BTreeMap<String, Value>, from: Subnet, to: Subnet) {
    for v in vars.values_mut() {
        let Some(s) = v.as_str() else { continue };
        let (addr, suffix) = match s.split_once('/') {
            Some((a, p)) => (a, format!("/{p}")),
            None => (s, String::new()),
        };
        if let Ok(a) = addr.parse::<Ipv4Addr>() {
            if from.contains(a) {
                *v = Value::from(format!("{}{suffix}", move_addr(a, from, to)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_student_lab_moves_every_address_and_keeps_its_own_state() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("inventory.yaml");
        std::fs::write(
            &p,
            "lab: ha\nnetwork: {subnet: 10.1.1.0/24, gateway: 10.1.1.1}\nnodes:\n  nodo1: {address: 10.1.1.101}\n  dns: {address: 10.1.1.103}\nvars:\n  vip: 10.1.1.100\n  domain: example.com\n  net: 10.1.1.0/24\n",
        )
        .unwrap();
        let project = crate::providers::load_inventory(&p).unwrap();
        let seat = Seat {
            lab: "c-ana".into(),
            subnet: "10.1.112.0/24".into(),
        };
        let inv = inventory(&project, "ana", &seat).unwrap();
        assert_eq!(inv.lab, "c-ana");
        assert_eq!(inv.nodes[0].address.to_string(), "10.1.112.101");
        assert_eq!(
            inv.network.as_ref().unwrap().gateway.to_string(),
            "10.1.112.1"
        );
        assert_eq!(inv.vars["vip"].as_str(), Some("10.1.112.100"));
        assert_eq!(inv.vars["net"].as_str(), Some("10.1.112.0/24"));
        assert_eq!(inv.vars["domain"].as_str(), Some("example.com"));
        let state = project.state_dir().join("class/ana");
        assert_eq!(inv.state_dir(), state);
        assert_eq!(inv.ssh.key, state.join("id_ed25519"));
        assert_eq!(inv.ssh.known_hosts, state.join("known_hosts"));
        assert_eq!(
            inv.dir, project.dir,
            "templates and scenarios are the project's"
        );
    }
}
