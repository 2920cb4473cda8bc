//! Private files and directories: made for this user alone (0700 directories, 0600 files) and
//! checked to be this user's. The one module that knows how the OS says who owns a file and who
//! may read it; everything else asks here.

use std::fs;
use std::io;
use std::path::Path;

pub use imp::{access, create_dir, file_options, restrict_dir, restrict_file};

/// Who may use a file or directory, as far as privacy goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Owned by this user.
    pub mine: bool,
    /// Open to other users too (group or world bits; on Windows, an entry for anyone else).
    pub shared: bool,
    /// Other users may change what is in it (write bits; on Windows, a write right).
    pub others_write: bool,
    /// The permission bits, for messages.
    pub mode: u32,
}

#[cfg(unix)]
mod imp {
    use super::*;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};

    /// Creates one directory that only this user may enter.
    pub fn create_dir(path: &Path) -> io::Result<()> {
        fs::DirBuilder::new().mode(0o700).create(path)
    }

    /// Makes `opts` create its file readable and writable by this user alone.
    pub fn file_options(opts: &mut fs::OpenOptions) -> &mut fs::OpenOptions {
        opts.mode(0o600)
    }

    /// What `meta` (of `path`) says about who may use the file.
    pub fn access(_path: &Path, meta: &fs::Metadata) -> Access {
        let mode = meta.permissions().mode() & 0o777;
        Access {
            mine: meta.uid() == crate::peer::me(),
            shared: mode & 0o077 != 0,
            others_write: mode & 0o022 != 0,
            mode,
        }
    }

    /// Takes a directory back to this user alone.
    pub fn restrict_dir(path: &Path) -> io::Result<()> {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
    }

    /// Takes a file (or a socket) back to this user alone.
    pub fn restrict_file(path: &Path) -> io::Result<()> {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
    }
}

/// Windows keeps Tether's files under the user's profile (`%LOCALAPPDATA%`, `%APPDATA%`), whose
/// inherited ACL admits only that user, SYSTEM and administrators; new files and directories
/// inherit it. A home elsewhere (`TETHER_HOME=C:\tether`) inherits what its parent gives, and
/// under a drive's root that is write access for every signed-in user: so the owner and the DACL
/// are read, and a directory others may use is given a DACL of its own. The Docker endpoints,
/// the part that gives root on a VM, are named pipes with a security descriptor of their own
/// (see `endpoint`).
#[cfg(windows)]
mod imp {
    use super::*;

    /// Who besides this user may hold rights on Tether's files without making them shared:
    /// SYSTEM, the administrators, and the placeholders that stand for the owner.
    const TRUSTED: &[&str] = &["S-1-5-18", "S-1-5-32-544", "S-1-3-0", "S-1-3-4"];

    /// Rights that change a directory or a file: write data, add files or folders, extended
    /// attributes, delete children, attributes, delete, change permissions or owner, and the
    /// generic write and all.
    const WRITE: u32 = 0x2 | 0x4 | 0x10 | 0x40 | 0x100 | 0x1_0000 | 0x4_0000 | 0x8_0000 | 0x1000_0000 | 0x4000_0000;

    pub fn create_dir(path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    pub fn file_options(opts: &mut fs::OpenOptions) -> &mut fs::OpenOptions {
        opts
    }

    /// What the owner and the DACL of `path` say. When they cannot be read (a file system
    /// without ACLs), the profile's rule is assumed, as before anything was read.
    pub fn access(path: &Path, _meta: &fs::Metadata) -> Access {
        let me = crate::peer::me();
        match crate::endpoint::win::file_security(path) {
            Ok((owner, entries)) => {
                let others: Vec<u32> = entries
                    .iter()
                    .filter(|(sid, _)| *sid != me && !TRUSTED.contains(&sid.as_str()))
                    .map(|(_, mask)| *mask)
                    .collect();
                let others_write = others.iter().any(|m| m & WRITE != 0);
                Access {
                    // Made by an elevated process of this user: the administrators own it.
                    mine: owner == me || owner == "S-1-5-32-544",
                    shared: !others.is_empty(),
                    others_write,
                    // For messages: what a Unix mode would say of it.
                    mode: 0o700 | if others.is_empty() { 0 } else { 0o055 } | if others_write { 0o022 } else { 0 },
                }
            }
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "cannot read the file's security; taking the profile's");
                Access {
                    mine: true,
                    shared: false,
                    others_write: false,
                    mode: 0o700,
                }
            }
        }
    }

    pub fn restrict_dir(path: &Path) -> io::Result<()> {
        crate::endpoint::win::restrict(path, true)
    }

    pub fn restrict_file(path: &Path) -> io::Result<()> {
        crate::endpoint::win::restrict(path, false)
    }
}
