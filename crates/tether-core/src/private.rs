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
        match win::file_security(path) {
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
        win::restrict(path, true)
    }

    pub fn restrict_file(path: &Path) -> io::Result<()> {
        win::restrict(path, false)
    }
}

/// The Windows calls behind file and directory security: who owns one, what its DACL allows
/// whom, and a DACL of its own.
#[cfg(windows)]
#[allow(unsafe_code)]
pub(crate) mod win {
    use std::ffi::{OsStr, c_void};
    use std::io;
    use std::os::windows::ffi::OsStrExt;

    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::{
        ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW,
    };

    fn wide(s: &OsStr) -> Vec<u16> {
        s.encode_wide().chain(std::iter::once(0)).collect()
    }

    fn check(ok: i32) -> io::Result<()> {
        if ok == 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// The entries an ACL allows: each SID (as text) with its access mask; entries of other
    /// types (deny, audit) are named by their type.
    ///
    /// # Safety
    /// `acl` is null or points at a valid ACL that outlives the call.
    unsafe fn allowed(acl: *mut windows_sys::Win32::Security::ACL) -> Vec<(String, u32)> {
        use windows_sys::Win32::Security::{ACCESS_ALLOWED_ACE, GetAce};
        let mut entries = Vec::new();
        // SAFETY: (the caller's) every ACE read is within the ACL's count, and each SID lies
        // inside its ACE; the SID strings are freed with LocalFree.
        unsafe {
            let count = if acl.is_null() { 0 } else { (*acl).AceCount as u32 };
            for i in 0..count {
                let mut ace: *mut c_void = std::ptr::null_mut();
                if GetAce(acl, i, &mut ace) == 0 {
                    continue;
                }
                let ace = &*(ace as *const ACCESS_ALLOWED_ACE);
                // Only allow entries (type 0) carry a SID at SidStart in this layout.
                if ace.Header.AceType != 0 {
                    entries.push((format!("(entry of type {})", ace.Header.AceType), ace.Mask));
                    continue;
                }
                let sid = (&ace.SidStart as *const u32).cast_mut().cast::<c_void>();
                let mut text: *mut u16 = std::ptr::null_mut();
                if ConvertSidToStringSidW(sid, &mut text) != 0 {
                    let n = (0..).take_while(|&i| *text.add(i) != 0).count();
                    entries.push((String::from_utf16_lossy(std::slice::from_raw_parts(text, n)), ace.Mask));
                    LocalFree(text.cast());
                }
            }
        }
        entries
    }

    /// The owner of the file or directory at `path` (its SID as text) and what its DACL allows
    /// whom ([`allowed`]). A missing DACL (everyone may do everything) reads as Everyone's.
    pub fn file_security(path: &std::path::Path) -> io::Result<(String, Vec<(String, u32)>)> {
        use windows_sys::Win32::Security::Authorization::{GetNamedSecurityInfoW, SE_FILE_OBJECT};
        use windows_sys::Win32::Security::{ACL, DACL_SECURITY_INFORMATION, OWNER_SECURITY_INFORMATION};
        let name = wide(path.as_os_str());
        let mut owner: *mut c_void = std::ptr::null_mut();
        let mut acl: *mut ACL = std::ptr::null_mut();
        let mut sd: *mut c_void = std::ptr::null_mut();
        // SAFETY: `name` is NUL-terminated UTF-16; the system allocates `sd` (freed below) and
        // points `owner` and `acl` into it, read only before it is freed.
        unsafe {
            let err = GetNamedSecurityInfoW(
                name.as_ptr(),
                SE_FILE_OBJECT,
                OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
                &mut owner,
                std::ptr::null_mut(),
                &mut acl,
                std::ptr::null_mut(),
                &mut sd,
            );
            if err != 0 {
                return Err(io::Error::from_raw_os_error(err as i32));
            }
            let mut text: *mut u16 = std::ptr::null_mut();
            let owner_sid = if !owner.is_null() && ConvertSidToStringSidW(owner, &mut text) != 0 {
                let n = (0..).take_while(|&i| *text.add(i) != 0).count();
                let s = String::from_utf16_lossy(std::slice::from_raw_parts(text, n));
                LocalFree(text.cast());
                s
            } else {
                String::new()
            };
            let entries = if acl.is_null() {
                vec![("S-1-1-0".to_string(), 0x1000_0000)]
            } else {
                allowed(acl)
            };
            LocalFree(sd);
            Ok((owner_sid, entries))
        }
    }

    /// Gives the file or directory at `path` a DACL of its own (nothing inherited): full access
    /// for this user, SYSTEM and the administrators, as a profile's folders have; a directory's
    /// entries pass on to what is created in it.
    pub fn restrict(path: &std::path::Path, dir: bool) -> io::Result<()> {
        let me = crate::endpoint::win::process_user(None)?;
        let inherit = if dir { "OICI" } else { "" };
        set_dacl(
            path,
            &format!("D:P(A;{inherit};FA;;;{me})(A;{inherit};FA;;;SY)(A;{inherit};FA;;;BA)"),
        )
    }

    /// Sets the DACL of the file or directory at `path` to the one the SDDL text `sddl` gives
    /// (protected from inheritance if it says `P`).
    pub fn set_dacl(path: &std::path::Path, sddl: &str) -> io::Result<()> {
        use windows_sys::Win32::Security::Authorization::{SE_FILE_OBJECT, SetNamedSecurityInfoW};
        use windows_sys::Win32::Security::{
            ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl, PROTECTED_DACL_SECURITY_INFORMATION,
            UNPROTECTED_DACL_SECURITY_INFORMATION,
        };
        let protect = if sddl.starts_with("D:P") {
            PROTECTED_DACL_SECURITY_INFORMATION
        } else {
            UNPROTECTED_DACL_SECURITY_INFORMATION
        };
        let sddl = wide(OsStr::new(sddl));
        let name = wide(path.as_os_str());
        let mut sd: *mut c_void = std::ptr::null_mut();
        // SAFETY: both strings are NUL-terminated UTF-16 that outlive the calls; `sd` is
        // allocated by the system and freed with LocalFree after the DACL inside it was applied
        // (SetNamedSecurityInfoW copies it).
        unsafe {
            check(ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                1,
                &mut sd,
                std::ptr::null_mut(),
            ))?;
            let (mut present, mut defaulted) = (0, 0);
            let mut acl: *mut ACL = std::ptr::null_mut();
            let got = check(GetSecurityDescriptorDacl(sd, &mut present, &mut acl, &mut defaulted));
            let err = if got.is_ok() {
                SetNamedSecurityInfoW(
                    name.as_ptr(),
                    SE_FILE_OBJECT,
                    DACL_SECURITY_INFORMATION | protect,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    acl,
                    std::ptr::null(),
                )
            } else {
                0
            };
            LocalFree(sd);
            got?;
            if err != 0 {
                return Err(io::Error::from_raw_os_error(err as i32));
            }
        }
        Ok(())
    }
}
