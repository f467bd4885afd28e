//! What the inventory asks of its provider. The inventory names no provider:
//! each provider answers these questions in its own folder, and
//! `providers::load_inventory` hands the registry's answers (in registry
//! order, the first being the default) to [`super::Inventory::load_with`].

use super::{LibvirtFile, LibvirtSettings};
use serde::Deserialize;
use std::cell::RefCell;

/// A provider as the inventory sees it: its name and what differs, for the
/// inventory's checks, between providers.
#[derive(Debug, Clone, Copy)]
pub struct ProviderSpec {
    /// The name `provider:` gives.
    pub name: &'static str,
    /// labctl creates the nodes (and their network): the inventory needs a
    /// `network:` and keeps the known-hosts file in `.labctl/`.
    pub creates_nodes: bool,
    /// The nodes have hardware of their own (`memory`, `cpus`, `disks`).
    pub vm_hardware: bool,
    /// The nodes' lab NIC (`None`: the inventory's `vars: {nic: …}`, default `eth0`).
    pub nic: Option<&'static str>,
    /// The rest of what the inventory checks for it.
    pub rules: InventoryRules,
}

/// What a provider adds to the inventory's checks (the default: nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct InventoryRules {
    /// Each node is a machine named `<lab>.<node>` of at most this many characters.
    pub machine_name_max: Option<usize>,
    /// How it installs `preinstall:` before the nodes boot (`a package
    /// layer`); `None`: it does not.
    pub preinstall: Option<&'static str>,
    /// Its own section of `inventory.yaml`, and that section's validation.
    pub section: Option<Section>,
}

/// A provider's own section of `inventory.yaml` (`libvirt: {…}`).
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// The section's key.
    pub key: &'static str,
    /// Its settings from what the section says (`None`: not written), or a
    /// user error naming `at` (the section's place, else the file).
    pub settings: fn(Option<&LibvirtFile>, at: &str) -> anyhow::Result<LibvirtSettings>,
}

impl ProviderSpec {
    /// The provider's name.
    pub fn as_str(&self) -> &'static str {
        self.name
    }

    /// Whether the inventory's section `key` is this provider's own.
    pub fn owns_section(&self, key: &str) -> bool {
        self.rules.section.is_some_and(|s| s.key == key)
    }
}

thread_local! {
    /// The registered providers' names, while a file that names one is parsed.
    static NAMES: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

/// Parse with `names` as the providers a [`ProviderName`] may name.
pub fn with_provider_names<T>(names: &[&'static str], parse: impl FnOnce() -> T) -> T {
    let before = NAMES.with(|n| std::mem::replace(&mut *n.borrow_mut(), names.to_vec()));
    let out = parse();
    NAMES.with(|n| *n.borrow_mut() = before);
    out
}

/// A provider's name as a file writes it (`provider: libvirt`): one of the
/// registered names, or serde's "unknown variant" error listing them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderName(pub String);

impl<'de> Deserialize<'de> for ProviderName {
    /// Read as an enum of the registered names (as a derived enum is, so the
    /// parser places and words an unknown name as it does any unknown value).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ProviderName, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = ProviderName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a provider's name")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ProviderName, E> {
                NAMES.with(|n| {
                    let names = n.borrow();
                    if names.is_empty() || names.contains(&s) {
                        return Ok(ProviderName(s.to_string()));
                    }
                    // the parser words the error (a few bytes kept, once, on the way out)
                    let names: &'static [&'static str] =
                        Box::leak(names.clone().into_boxed_slice());
                    Err(E::unknown_variant(s, names))
                })
            }
        }
        impl<'de> serde::de::DeserializeSeed<'de> for Name {
            type Value = ProviderName;
            fn deserialize<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<ProviderName, D::Error> {
                d.deserialize_identifier(self)
            }
        }
        struct Kind;
        impl<'de> serde::de::Visitor<'de> for Kind {
            type Value = ProviderName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a provider's name")
            }
            fn visit_enum<A: serde::de::EnumAccess<'de>>(
                self,
                data: A,
            ) -> Result<ProviderName, A::Error> {
                use serde::de::VariantAccess;
                let (name, variant) = data.variant_seed(Name)?;
                variant.unit_variant()?;
                Ok(name)
            }
        }
        d.deserialize_enum("ProviderName", &[], Kind)
    }
}
