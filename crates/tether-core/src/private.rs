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
    /// Open to other users too (group or world bits).
    pub shared: bool,
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

    /// What `meta` says about who may use the file.
    pub fn access(meta: &fs::Metadata) -> Access {
        let mode = meta.permissions().mode() & 0o777;
        Access {
            mine: meta.uid() == crate::peer::me(),
            shared: mode & 0o077 != 0,
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
/// inherit it. The Docker endpoints, the part that gives root on a VM, are named pipes with a
/// security descriptor of their own (see `endpoint`).
#[cfg(windows)]
mod imp {
    use super::*;

    pub fn create_dir(path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    pub fn file_options(opts: &mut fs::OpenOptions) -> &mut fs::OpenOptions {
        opts
    }

    pub fn access(_meta: &fs::Metadata) -> Access {
        Access {
            mine: true,
            shared: false,
            mode: 0o700,
        }
    }

    pub fn restrict_dir(_path: &Path) -> io::Result<()> {
        Ok(())
    }

    pub fn restrict_file(_path: &Path) -> io::Result<()> {
        Ok(())
    }
}
