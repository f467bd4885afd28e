//! The inventory's `libvirt:` section: the hypervisor's URI, the
//! acceleration, the fence daemon (the VMs' hardware defaults are read by the
//! inventory, as any VM provider's).

use crate::inventory::{LibvirtFile, LibvirtSettings};
use crate::user_bail;

/// The lab's libvirt settings from its section (`None`: not written), or a
/// user error naming `at`.
pub fn settings(file: Option<&LibvirtFile>, at: &str) -> anyhow::Result<LibvirtSettings> {
    let uri = file
        .and_then(|l| l.uri.clone())
        .unwrap_or_else(|| "qemu:///system".to_string());
    let jump = match parse_uri(&uri) {
        Ok(j) => j,
        Err(why) => user_bail!(
            "{at}: libvirt.uri `{uri}`: {why}\n  fix: use qemu:///system (this machine) or qemu+ssh://USER@HOST[:PORT]/system[?keyfile=/PATH/TO/KEY]"
        ),
    };
    let fence = file.is_some_and(|l| l.fence);
    if fence && jump.is_some() {
        user_bail!(
            "{at}: libvirt.fence: the fence daemon runs on this machine, but the hypervisor is {uri}\n  fix: use `uri: qemu:///system`, or remove `fence: true`"
        );
    }
    Ok(LibvirtSettings {
        uri,
        jump,
        accel: file.and_then(|l| l.accel).unwrap_or_default(),
        fence,
    })
}

/// A libvirt URI's hop (`None`: this machine), or what is wrong with it
/// (labctl passes it to `virsh -c`, so it must be one word of the kinds
/// labctl knows).
pub fn parse_uri(uri: &str) -> Result<Option<crate::jump::Jump>, String> {
    if uri.is_empty()
        || uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "'\"`$\\;|<>".contains(c))
    {
        return Err("it is empty or holds spaces, quotes or shell characters".into());
    }
    crate::jump::Jump::from_uri(uri)
}
