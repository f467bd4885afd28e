//! The names an inventory gives: labs, nodes, users, packages.

/// A Debian package name (`bind9`, `libc6`, `g++`).
pub fn valid_package_name(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(c))
}

/// A lab name: it names the bridge (`lab-NAME`, at most 15 characters), the
/// nft table and, with `.` and the node's name, each container (a host name:
/// no `-` at the end of a label).
pub fn valid_lab_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 11
        && b[0].is_ascii_lowercase()
        && !s.ends_with('-')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Names no lab may have: they are labctl's own objects (`images`: the
/// libvirt pool `labctl-images` and its folder, shared by every lab).
pub const RESERVED_LAB_NAMES: &[&str] = &["images"];

/// The lab name of a Vagrant project in `folder`: the folder's name when it
/// is a usable lab name; else its letters and digits (lower case, `-` between
/// words, a `v` first when it starts with a digit), shortened with four hex
/// digits of the folder name's hash when too long, so two course folders
/// (`03-HA-IPFailover`, `04-HA-IPFailover-Apache2`) get different names.
pub fn lab_name_of_folder(folder: &str) -> String {
    if valid_lab_name(folder) && !RESERVED_LAB_NAMES.contains(&folder) {
        return folder.to_string();
    }
    let mut s = String::new();
    for c in folder.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-').to_string();
    let s = if s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s
    } else {
        format!("v{s}")
    };
    if valid_lab_name(&s) && !RESERVED_LAB_NAMES.contains(&s.as_str()) {
        return s;
    }
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(folder.as_bytes()));
    let head: String = s.chars().take(6).collect();
    format!("{}-{}", head.trim_end_matches('-'), &h[..4])
}

/// A node name: a host name label (letters, digits, `-`; no `-` at either end).
pub fn valid_node_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && !s.ends_with('-')
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

/// A Linux user name safe in a shell line, a sudoers file and an SSH config:
/// lower-case letters, digits, `_` and `-`, not starting with `-`.
pub fn valid_user(u: &str) -> bool {
    let b = u.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}
