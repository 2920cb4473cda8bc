//! What a replica says about one path: its kind and content identity ([`Kind`]) and the stat it
//! was read at ([`Entry::mtime`], [`Entry::size`]), which is what a change is conditioned on.

use std::fs::Metadata;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The hash the digests use, for a side that streams a file itself.
pub mod sha {
    pub use sha2::{Digest, Sha256};
}

/// A file's content digest (SHA-256).
pub type Digest = [u8; 32];

/// What a path is, by content: two replicas agree on a path when their kinds are equal.
/// Modification times are carried, not compared: a `touch` alone is not a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    File { digest: Digest, exec: bool },
    Dir,
    Link { target: String },
}

/// One path as a replica last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    /// Size in bytes (files; 0 otherwise).
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime: i64,
}

impl Entry {
    /// The stat this entry was read at, to tell whether the path changed since.
    pub fn stat(&self) -> Stat {
        Stat {
            tag: match self.kind {
                Kind::File { .. } => Tag::File,
                Kind::Dir => Tag::Dir,
                Kind::Link { .. } => Tag::Link,
            },
            size: self.size,
            mtime: self.mtime,
            exec: matches!(self.kind, Kind::File { exec: true, .. }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tag {
    File,
    Dir,
    Link,
    /// A socket, a device, a FIFO: never synced.
    Other,
}

/// The cheap part of a path's state: enough to tell that it changed without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub tag: Tag,
    pub size: u64,
    pub mtime: i64,
    pub exec: bool,
}

impl Stat {
    pub fn of(meta: &Metadata) -> Stat {
        let ft = meta.file_type();
        let tag = if ft.is_symlink() {
            Tag::Link
        } else if ft.is_dir() {
            Tag::Dir
        } else if ft.is_file() {
            Tag::File
        } else {
            Tag::Other
        };
        Stat {
            tag,
            size: if tag == Tag::File { meta.len() } else { 0 },
            mtime: mtime_ns(meta),
            exec: tag == Tag::File && is_exec(meta),
        }
    }

    /// Whether a path last seen as `self` may be replaced by a change conditioned on `entry`:
    /// a directory's mtime moves with its children, so directories match by kind alone.
    pub fn matches(&self, entry: &Entry) -> bool {
        let want = entry.stat();
        if self.tag == Tag::Dir || want.tag == Tag::Dir {
            return self.tag == want.tag;
        }
        *self == want
    }
}

/// Nanoseconds since the Unix epoch (negative before it).
pub fn mtime_ns(meta: &Metadata) -> i64 {
    let ft = filetime::FileTime::from_last_modification_time(meta);
    ft.unix_seconds()
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(ft.nanoseconds()))
}

/// The `FileTime` for `ns` nanoseconds since the epoch.
pub fn filetime_of(ns: i64) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32)
}

#[cfg(unix)]
fn is_exec(meta: &Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

/// Windows has no executable bit: a file there is reported as not executable, and the merge
/// keeps the other side's bit (see [`crate::merge`]).
#[cfg(not(unix))]
fn is_exec(_meta: &Metadata) -> bool {
    false
}

/// Whether this OS records executable bits.
pub const HAS_EXEC: bool = cfg!(unix);

/// Streams a reader through `sink`, returning its digest and length. `size` (the expected
/// length) sizes the buffer, so a tree of small files is not read through large zeroed buffers.
pub fn digest_reader(mut r: impl Read, size: u64, mut sink: impl FnMut(&[u8])) -> std::io::Result<(Digest, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; (size + 1).clamp(4096, 256 * 1024) as usize];
    let mut n_total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        sink(&buf[..n]);
        n_total += n as u64;
    }
    Ok((h.finalize().into(), n_total))
}

/// Bytes as lowercase hex (digests in file names and scripts).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest of bytes held in memory.
pub fn digest_of(data: &[u8]) -> Digest {
    Sha256::digest(data).into()
}

/// A symlink's target as text (a target that is not UTF-8 cannot cross to another OS: `None`).
pub fn link_target(path: &Path) -> std::io::Result<Option<String>> {
    Ok(std::fs::read_link(path)?.to_str().map(str::to_string))
}
