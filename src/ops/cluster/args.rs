//! A `cluster` task's arguments as the scenario writes them: resources (and
//! their clones), constraints, properties, defaults, the members' wait.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    pub id: String,
    /// `class:provider:type` (`ocf:heartbeat:IPaddr2`) or `class:type` (`systemd:apache2`).
    pub agent: String,
    #[serde(default)]
    pub params: IndexMap<String, String>,
    #[serde(default)]
    pub meta: IndexMap<String, String>,
    /// Operations by name (`monitor`, `start`, `stop`) with their attributes;
    /// a list for several of one name (a monitor per role).
    #[serde(default)]
    pub ops: IndexMap<String, Ops>,
    /// Run it on every member: a clone of this id.
    #[serde(default)]
    pub clone: Option<CloneOf>,
    /// Run it on every member with one (or `promoted-max`) promoted: a
    /// promotable clone of this id.
    #[serde(default)]
    pub promotable: Option<CloneOf>,
}

/// One operation's attributes, or several operations of one name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ops {
    One(IndexMap<String, String>),
    Many(Vec<IndexMap<String, String>>),
}

impl Ops {
    pub(super) fn each(&self) -> Vec<&IndexMap<String, String>> {
        match self {
            Ops::One(m) => vec![m],
            Ops::Many(v) => v.iter().collect(),
        }
    }
}

/// The clone around a resource: its id and meta attributes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloneOf {
    pub id: String,
    #[serde(default)]
    pub meta: IndexMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Colocation {
    pub id: String,
    pub resource: String,
    pub with: String,
    #[serde(default = "infinity")]
    pub score: String,
    /// The role of `resource` this applies to (a promotable clone's `Promoted`).
    #[serde(default)]
    pub role: Option<String>,
    /// The role of `with` to follow (`Promoted`: where the clone is promoted).
    #[serde(default)]
    pub with_role: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub id: String,
    pub first: String,
    pub then: String,
    /// What of `first` comes first (`promote`; default start).
    #[serde(default)]
    pub first_action: Option<String>,
    /// What of `then` follows (default start).
    #[serde(default)]
    pub then_action: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub id: String,
    pub resource: String,
    pub node: String,
    #[serde(default = "infinity")]
    pub score: String,
}

fn infinity() -> String {
    "INFINITY".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    pub colocation: Option<Colocation>,
    pub order: Option<Order>,
    pub location: Option<Location>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The cluster's members: a group name or a list of nodes. The first applies the configuration.
    pub members: crate::yaml::OneOrMany,
    #[serde(default)]
    pub properties: IndexMap<String, String>,
    #[serde(default)]
    pub resource_defaults: IndexMap<String, String>,
    #[serde(default)]
    pub op_defaults: IndexMap<String, String>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// How long to wait for every member to be online (default 180 s; a
    /// number is seconds, `3m` works too; at most 24 h, checked when read).
    pub wait: Option<crate::duration::Dur>,
}
