//! Default ACLs on the mirror's folders (Linux).
//!
//! Containers often run as root, and a bind mount lets them create files and folders in the
//! mirror that would be root's alone: the agent (the SSH user) could then neither read them back
//! nor replace or delete them. A default ACL on each folder is inherited by everything created in
//! it, by anyone: it gives the user full access to what a container makes. (While a default ACL
//! is present, the kernel takes a new file's permissions from the mode asked for rather than from
//! the umask, so the usual 0666 and 0777 give the user read and write, and folders search.)

use std::path::Path;

const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const UNDEFINED: u32 = u32::MAX;

/// The xattr value of an ACL: version 2, then (tag, permissions, id) entries in tag order.
fn encode(uid: u32) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (USER_OBJ, 7u16, UNDEFINED),
        (USER, 7, uid),
        (GROUP_OBJ, 5, UNDEFINED),
        (MASK, 7, UNDEFINED),
        (OTHER, 5, UNDEFINED),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// Gives `dir` a default ACL granting `uid` full access to whatever is created in it. A file
/// system without ACLs is left as it is (the agent then reports what it cannot read).
pub fn inherit(dir: &Path, uid: u32) -> std::io::Result<()> {
    let acl = encode(uid);
    xattr::set(dir, "system.posix_acl_default", &acl)?;
    xattr::set(dir, "system.posix_acl_access", &acl)
}

#[cfg(test)]
mod tests {
    #[test]
    fn entries_are_in_tag_order_after_the_version() {
        let v = super::encode(1000);
        assert_eq!(v.len(), 4 + 5 * 8);
        assert_eq!(&v[..4], &2u32.to_le_bytes());
        let tags: Vec<u16> = v[4..].chunks(8).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(tags, vec![1, 2, 4, 0x10, 0x20]);
        assert_eq!(u32::from_le_bytes([v[16], v[17], v[18], v[19]]), 1000);
    }
}
