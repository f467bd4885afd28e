//! `fencing`: a node that loses the cluster is fenced before anyone takes
//! its place (STONITH, scenario 08).
//!
//! ```yaml
//! - fencing: {vip: "{{ vip }}", dir: /var/www/html, resource: r0,
//!             members: [nodo1, nodo2], within: 60s, rejoin_within: 3m}
//! ```
//!
//! The steps of `data_failover`, with the network cable of the node holding
//! the VIP cut instead of its power (`labctl unplug`): the node keeps running
//! and believes the other one died. Passes when, within `within:` of the
//! cut, the provider sees that node powered off (the cluster fenced it
//! through its fence device), the other node serves the token written
//! before the cut through the VIP, and at no sample was the token served
//! while the cut node still had power (two nodes answering for the VIP).
//! Then the fenced node is powered on again (`labctl up`), rejoins and
//! resyncs, and `drbdadm verify` finds both copies identical. A node that is
//! not fenced gets its cable back at the end.

use super::data_failover::{self, Cut};
use super::{Check, Prepare, PrepareCtx};
use serde::{Deserialize, Serialize};

/// The `fencing:` check as written: the fields of `data_failover`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Spec(pub data_failover::Spec);

impl Prepare for Spec {
    fn prepare(&self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Check>> {
        let mut plan = self.0.plan(ctx, "fencing")?;
        plan.cut = Cut::Link;
        Ok(Box::new(plan))
    }
}
