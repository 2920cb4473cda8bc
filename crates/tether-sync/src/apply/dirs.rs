//! Writing whole files relative to open folders (Unix): each folder opened a name at a time
//! without following links, kept open through a burst of files ([`Open`]), files made in the
//! staging folder when there is one and renamed into place, a new one with "no replace".

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, Timestamps, UTIME_OMIT};
use rustix::io::Errno;

use super::{ApplyError, Expect, Replica};
use crate::entry::{self, Entry, Kind, Stat, Tag};
use crate::path;
use crate::rules::TEMP_PREFIX;

/// How a folder is opened: for use as a directory only, never through a link.
#[cfg(any(target_os = "linux", target_os = "android"))]
const DIR: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How many folders stay open: files arrive in path order, so a burst writes into one
/// folder after another and comes back to few.
const KEEP: usize = 16;

/// Folders opened for writing, by relative path ("" is the root), most recent last.
///
/// A folder held open stays the folder it was when opened: if someone renames it or puts a
/// link in its place meanwhile, files go into the folder itself, wherever it now is, never
/// through the link (the watch then reports the move, and the sync carries it like any other).
#[derive(Default)]
pub struct Open {
    held: Vec<(String, OwnedFd)>,
    /// The staging folder, opened; `Err(())` once it proved unusable (files are then made
    /// beside their target).
    staging: Option<Result<OwnedFd, ()>>,
}

impl Open {
    /// Closes everything (the staging folder too: a burst that found it unusable tries it
    /// again next time).
    pub fn clear(&mut self) {
        self.held.clear();
        self.staging = None;
    }

    /// Opens the staging folder of `r`, if it has one and it is not open.
    fn open_staging(&mut self, r: &Replica) {
        if self.staging.is_none()
            && let Some(dir) = &r.staging
        {
            let flags = DIR.difference(OFlags::NOFOLLOW);
            let fd = match rustix::fs::open(dir, flags, Mode::empty()) {
                Err(Errno::NOENT) => {
                    use std::os::unix::fs::DirBuilderExt;
                    // Files pass through it: the user's alone.
                    let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir);
                    rustix::fs::open(dir, flags, Mode::empty())
                }
                other => other,
            };
            self.staging = Some(fd.map_err(|_| ()));
        }
    }

    /// The staging folder, if open and working.
    fn staging(&self) -> Option<BorrowedFd<'_>> {
        match &self.staging {
            Some(Ok(fd)) => Some(fd.as_fd()),
            _ => None,
        }
    }

    /// Opens the folder `dir` of `r` (making it, with its missing parents) unless it is
    /// open; it is [`Open::last`] after.
    fn get(&mut self, r: &Replica, dir: &str, rel: &str) -> Result<(), ApplyError> {
        if let Some(i) = self.held.iter().position(|(k, _)| k == dir) {
            let kept = self.held.remove(i);
            self.held.push(kept);
        } else {
            let fd = self.open(r, dir, rel)?;
            if self.held.len() == KEEP {
                self.held.remove(0);
            }
            self.held.push((dir.to_string(), fd));
        }
        Ok(())
    }

    /// The folder [`Open::get`] opened last.
    fn last(&self, rel: &str) -> Result<BorrowedFd<'_>, ApplyError> {
        match self.held.last() {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Err(ApplyError::Parent { path: rel.to_string() }),
        }
    }

    /// Opens `dir` a name at a time from the nearest folder already open.
    fn open(&self, r: &Replica, dir: &str, rel: &str) -> Result<OwnedFd, ApplyError> {
        let io = |e: Errno| ApplyError::io(rel)(e.into());
        let start = self
            .held
            .iter()
            .filter(|(k, _)| k.is_empty() || dir == k || dir.starts_with(&format!("{k}/")))
            .max_by_key(|(k, _)| k.len());
        let (mut done, mut fd) = match start {
            Some((k, fd)) => (k.clone(), fd.try_clone().map_err(ApplyError::io(rel))?),
            None => (
                String::new(),
                rustix::fs::open(&r.root, DIR.difference(OFlags::NOFOLLOW), Mode::empty()).map_err(io)?,
            ),
        };
        let rest = if done.is_empty() { dir } else { &dir[done.len()..] };
        for part in rest.split('/').filter(|p| !p.is_empty()) {
            done = path::child(&done, part);
            fd = match rustix::fs::openat(&fd, part, DIR, Mode::empty()) {
                Ok(next) => next,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&fd, part, Mode::from_raw_mode(0o777)) {
                        Ok(()) => {
                            if let Some(f) = &r.on_new_dir {
                                f(&r.root.join(&done));
                            }
                        }
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(io(e)),
                    }
                    rustix::fs::openat(&fd, part, DIR, Mode::empty()).map_err(|e| parent_or(e, rel))?
                }
                Err(e) => return Err(parent_or(e, rel)),
            };
        }
        Ok(fd)
    }
}

/// A link or a file where a folder should be is [`ApplyError::Parent`]; anything else is I/O.
fn parent_or(e: Errno, rel: &str) -> ApplyError {
    match e {
        Errno::NOTDIR | Errno::LOOP => ApplyError::Parent { path: rel.to_string() },
        e => ApplyError::io(rel)(e.into()),
    }
}

/// The stat of `name` in `dir` now (`None`: nothing there).
fn stat_at(dir: BorrowedFd<'_>, name: &str, rel: &str) -> Result<Option<Stat>, ApplyError> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(stat_of(&st))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(ApplyError::io(rel)(e.into())),
    }
}

// The stat fields' integer types differ between platforms (i64 here, i32 or u64 elsewhere).
#[allow(clippy::unnecessary_cast)]
fn stat_of(st: &rustix::fs::Stat) -> Stat {
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode as rustix::fs::RawMode);
    let tag = match kind {
        rustix::fs::FileType::RegularFile => Tag::File,
        rustix::fs::FileType::Directory => Tag::Dir,
        rustix::fs::FileType::Symlink => Tag::Link,
        _ => Tag::Other,
    };
    Stat {
        tag,
        size: if tag == Tag::File { st.st_size as u64 } else { 0 },
        mtime: (st.st_mtime as i64)
            .saturating_mul(1_000_000_000)
            .saturating_add(st.st_mtime_nsec as i64),
        exec: tag == Tag::File && st.st_mode & 0o111 != 0,
    }
}

fn matches(now: Option<Stat>, expect: &Expect) -> bool {
    match (expect, now) {
        (Expect::Absent, None) => true,
        (Expect::Is(e), Some(s)) => s.matches(e),
        _ => false,
    }
}

/// [`Replica::put_file`] for a path that is not a folder now.
pub fn put_file(
    r: &Replica,
    rel: &str,
    expect: Expect,
    data: &[u8],
    exec: bool,
    mtime: i64,
) -> Result<Entry, ApplyError> {
    path::check(rel)?;
    let name = path::name(rel);
    let dir = path::parent(rel).unwrap_or("");
    let Ok(mut open) = r.dirs.lock() else {
        return Err(ApplyError::Parent { path: rel.to_string() });
    };
    // The folder is opened (and made) first: a path under a link fails before anything is
    // written anywhere.
    open.get(r, dir, rel)?;
    open.open_staging(r);
    let dfd = open.last(rel)?;
    // A change of an existing file is checked before anything is written; a new one is
    // checked by the rename itself.
    if let Expect::Is(_) = expect
        && !matches(stat_at(dfd, name, rel)?, &expect)
    {
        return Err(ApplyError::Changed { path: rel.to_string() });
    }
    let tmp = format!("{TEMP_PREFIX}{:016x}.tmp", rand::random::<u64>());
    let mut staging_works = true;
    let staged = match open.staging() {
        Some(sfd) => match write_tmp(sfd, &tmp, data, exec, mtime) {
            Ok(st) => match place(sfd, &tmp, dfd, name, rel, &expect) {
                Ok(()) => Some(st),
                // Staging on another file system after all: made beside the target instead.
                Err(ApplyError::Io { source, .. }) if source.raw_os_error() == Some(Errno::XDEV.raw_os_error()) => {
                    let _ = rustix::fs::unlinkat(sfd, &tmp, AtFlags::empty());
                    staging_works = false;
                    None
                }
                Err(e) => {
                    let _ = rustix::fs::unlinkat(sfd, &tmp, AtFlags::empty());
                    return Err(e);
                }
            },
            Err(_) => {
                let _ = rustix::fs::unlinkat(sfd, &tmp, AtFlags::empty());
                staging_works = false;
                None
            }
        },
        None => None,
    };
    let st = match staged {
        Some(st) => st,
        None => {
            let result = write_tmp(dfd, &tmp, data, exec, mtime)
                .map_err(ApplyError::io(rel))
                .and_then(|st| place(dfd, &tmp, dfd, name, rel, &expect).map(|()| st));
            match result {
                Ok(st) => st,
                Err(e) => {
                    let _ = rustix::fs::unlinkat(dfd, &tmp, AtFlags::empty());
                    return Err(e);
                }
            }
        }
    };
    if !staging_works {
        open.staging = Some(Err(()));
    }
    if !r.keep_dirs {
        open.clear();
    }
    let stat = stat_of(&st);
    Ok(Entry {
        kind: Kind::File {
            digest: entry::digest_of(data),
            exec: stat.exec,
        },
        size: data.len() as u64,
        mtime: stat.mtime,
    })
}

/// Renames `tmp` in `from` to `name` in `to`: a new file never over one made meanwhile.
fn place(
    from: BorrowedFd<'_>,
    tmp: &str,
    to: BorrowedFd<'_>,
    name: &str,
    rel: &str,
    expect: &Expect,
) -> Result<(), ApplyError> {
    let renamed = match expect {
        Expect::Absent => match rustix::fs::renameat_with(from, tmp, to, name, RenameFlags::NOREPLACE) {
            Err(Errno::EXIST) => return Err(ApplyError::Changed { path: rel.to_string() }),
            // A file system without "no replace": look, then rename.
            Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {
                if !matches(stat_at(to, name, rel)?, expect) {
                    return Err(ApplyError::Changed { path: rel.to_string() });
                }
                rustix::fs::renameat(from, tmp, to, name)
            }
            other => other,
        },
        Expect::Is(_) => rustix::fs::renameat(from, tmp, to, name),
    };
    renamed.map_err(|e| ApplyError::io(rel)(e.into()))
}

/// Writes `tmp` in `dir` whole, with its mode and mtime; its stat after.
fn write_tmp(dir: BorrowedFd<'_>, tmp: &str, data: &[u8], exec: bool, mtime: i64) -> std::io::Result<rustix::fs::Stat> {
    let mode = Mode::from_raw_mode(if exec { 0o755 } else { 0o644 });
    let fd = rustix::fs::openat(
        dir,
        tmp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        mode,
    )?;
    let mut file = std::fs::File::from(fd);
    file.write_all(data)?;
    // The mode exactly, whatever the umask or a folder's default ACL made of it.
    rustix::fs::fchmod(&file, mode)?;
    let ft = entry::filetime_of(mtime);
    rustix::fs::futimens(
        &file,
        &Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_OMIT,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: ft.unix_seconds(),
                tv_nsec: ft.nanoseconds() as _,
            },
        },
    )?;
    Ok(rustix::fs::fstat(&file)?)
}
