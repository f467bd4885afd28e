//! `inventory.yaml` as written: the file's schema, before validation.

use super::{Accel, ProviderName, Size};
use indexmap::IndexMap;
use minijinja::Value;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InventoryFile {
    pub(super) lab: Spanned<String>,
    /// Empty: not written (the default provider).
    #[serde(default)]
    pub(super) provider: ProviderName,
    pub(super) network: Option<Spanned<NetworkFile>>,
    #[serde(default)]
    pub(super) ssh: SshFile,
    pub(super) libvirt: Option<Spanned<LibvirtFile>>,
    pub(super) nodes: IndexMap<String, Spanned<NodeFile>>,
    #[serde(default)]
    pub(super) group_vars: BTreeMap<String, BTreeMap<String, Value>>,
    #[serde(default)]
    pub(super) vars: BTreeMap<String, Value>,
    #[serde(default)]
    pub(super) secrets: Vec<String>,
    pub(super) preinstall: Option<Spanned<Vec<String>>>,
    pub(super) egress: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NetworkFile {
    pub(super) subnet: String,
    pub(super) gateway: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct SshFile {
    pub(super) user: Option<String>,
    pub(super) key: Option<String>,
    pub(super) known_hosts: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) connect_timeout: Option<u64>,
    /// Provider ssh: nodes may be on a network of this machine that is not
    /// a labctl bridge (the LAN): an explicit opt-in.
    pub(super) lan: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NodeFile {
    pub(super) address: String,
    #[serde(default)]
    pub(super) port: Option<u16>,
    #[serde(default)]
    pub(super) groups: Vec<String>,
    #[serde(default)]
    pub(super) vars: BTreeMap<String, Value>,
    #[serde(default)]
    pub(super) memory: Option<Size>,
    #[serde(default)]
    pub(super) cpus: Option<u32>,
    #[serde(default)]
    pub(super) disks: Option<Vec<DiskFile>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LibvirtFile {
    pub uri: Option<String>,
    pub accel: Option<Accel>,
    /// A fence daemon on the host for this lab's nodes (scenario 08).
    #[serde(default)]
    pub fence: bool,
    pub memory: Option<Size>,
    pub cpus: Option<u32>,
    #[serde(default)]
    pub disks: Vec<DiskFile>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DiskFile {
    pub size: Size,
}
