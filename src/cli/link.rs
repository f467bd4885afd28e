//! `labctl unplug` and `labctl plug`: a node's network cable cut and put back.

use super::Global;
use clap::Args;

/// Cut a node's network cable: it keeps running, but nobody reaches it and it reaches nobody.
#[derive(Debug, Args)]
#[command(after_help = "\
The link fault, next to the power cut (`labctl fail`): the node stays powered and all its
processes run, but its network interface loses its carrier, as when its cable is pulled out
of the switch. Provider nspawn sets the host side of the node's veth down; provider libvirt
sets the VM's NIC link down (`virsh domif-setlink`). `labctl status` shows the cable
(LINK: plugged/unplugged); `labctl plug NODE` puts it back; a power cut or reboot of the node
gives it a new cable, plugged. Provider ssh refuses.

What to look at: a two-node cluster without fencing (scenarios 04, 05) sees the other node
die while it is alive: both sides think they are the survivor (split brain) and both hold
the VIP; when the cable comes back pacemaker finds the VIP active twice, stops it everywhere
and starts it on one node.
With STONITH (scenario 08) the side that keeps quorum powers the cut node off first.

It takes no lab lock: like `labctl fail`, it may happen at any moment, also mid-`configure`.

Examples:
  labctl unplug nodo1 && labctl status     # nodo1: running, unplugged
  labctl ssh nodo2 -- crm_mon -1           # what the other node believes
  labctl plug nodo1")]
pub struct UnplugArgs {
    /// Nodes whose cable to cut.
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

/// Plug a node's network cable back in (undoes `labctl unplug`).
#[derive(Debug, Args)]
#[command(after_help = "\
The node's link comes up again at once; its addresses were kept, so it answers again within a
second or two (the cluster then sees it rejoin). A node whose cable is already plugged is left
alone.

Examples:
  labctl unplug nodo1; sleep 20; labctl plug nodo1
  labctl plug nodo1 nodo2")]
pub struct PlugArgs {
    /// Nodes whose cable to plug back.
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

/// No lab lock, as for a power cut ([`super::halt::run_fail`]): a fault may
/// happen at any moment; it changes no file labctl manages.
pub fn run_unplug(a: UnplugArgs, g: &Global) -> anyhow::Result<i32> {
    set(&a.nodes, false, g)
}

pub fn run_plug(a: PlugArgs, g: &Global) -> anyhow::Result<i32> {
    set(&a.nodes, true, g)
}

fn set(nodes: &[String], plugged: bool, g: &Global) -> anyhow::Result<i32> {
    let inv = super::load_inventory(g)?;
    super::need_root(&inv)?;
    crate::providers::link::set(&inv, nodes, plugged, &super::progress::Draw::new())?;
    Ok(0)
}
