//! `cluster`: a pacemaker/corosync cluster (properties, resources, constraints)
//! compared with the live CIB. Implemented by the HA scenarios issue.

use super::{Op, PrepareCtx};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Args {
    pub name: String,
}

impl Args {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    pub fn prepare(self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Op>> {
        Err(crate::error::user(format!(
            "{}: the `cluster` operation is not implemented yet in this version of labctl",
            ctx.at
        )))
    }
}
