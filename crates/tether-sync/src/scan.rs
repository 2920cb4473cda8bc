//! Reading a replica's tree: a full scan (at the start of a sync) and one path at a time (after
//! an event). Links are read as links and never followed; ignored paths are never entered.
//! Files are read only when their stat differs from the one their known digest was read at (a
//! side's own tree is its digest cache: each file's entry holds the stat it was read at), so a
//! rescan of an unchanged tree costs a `stat` per path.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use crate::entry::{self, Digest, Entry, Kind, Stat, Tag};
use crate::path;
use crate::rules::Rules;

/// A tree as one replica sees it: path to entry, parents before children (the map's order).
pub type Tree = BTreeMap<String, Entry>;

/// A path that could not be read, and why (shown to the user; the rest of the tree goes on).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Scans everything under `root` that `rules` do not ignore; `known` (the tree as last seen)
/// spares reading files whose stat is unchanged.
pub fn tree(root: &Path, rules: &Rules, known: &Tree) -> (Tree, Vec<Problem>) {
    let mut out = Tree::new();
    let mut problems = Vec::new();
    subtree(root, "", rules, known, &mut out, &mut problems);
    (out, problems)
}

/// Scans the directory `dir` (relative; "" for the root) and everything under it.
pub fn subtree(root: &Path, dir: &str, rules: &Rules, known: &Tree, out: &mut Tree, problems: &mut Vec<Problem>) {
    let mut stack = vec![dir.to_string()];
    while let Some(dir) = stack.pop() {
        let full = if dir.is_empty() {
            root.to_path_buf()
        } else {
            match path::join(root, &dir) {
                Ok(p) => p,
                Err(_) => continue,
            }
        };
        let rd = match std::fs::read_dir(&full) {
            Ok(rd) => rd,
            Err(e) => {
                problems.push(Problem {
                    path: dir.clone(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        for item in rd {
            let Ok(item) = item else { continue };
            let Some(name) = item.file_name().to_str().map(str::to_string) else {
                problems.push(Problem {
                    path: path::child(&dir, &item.file_name().to_string_lossy()),
                    message: "the name is not valid UTF-8; it is not synced".into(),
                });
                continue;
            };
            let rel = path::child(&dir, &name);
            if path::check(&rel).is_err() {
                problems.push(Problem {
                    path: rel,
                    message: "the name holds a character the other side cannot store (\\ or :); it is not synced"
                        .into(),
                });
                continue;
            }
            let Ok(meta) = item.path().symlink_metadata() else {
                continue;
            };
            let stat = Stat::of(&meta);
            if stat.tag == Tag::Other || rules.ignored_here(&rel, stat.tag == Tag::Dir) {
                continue;
            }
            match read_entry(&item.path(), &rel, stat, known, None) {
                Ok(Some((e, _))) => {
                    if e.kind == Kind::Dir {
                        stack.push(rel.clone());
                    }
                    out.insert(rel, e);
                }
                Ok(None) => {}
                Err(e) => problems.push(Problem {
                    path: rel,
                    message: e.to_string(),
                }),
            }
        }
    }
}

/// One path now: `None` if it is gone, ignored (with `rules`) or not a file, directory or link. With
/// `inline`, a file up to that many bytes comes with its content (read once for both).
pub fn one(
    root: &Path,
    rel: &str,
    rules: Option<&Rules>,
    known: &Tree,
    inline: Option<u64>,
) -> std::io::Result<Option<(Entry, Option<Vec<u8>>)>> {
    let full = path::join(root, rel).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    if !parents_are_dirs(root, rel) {
        return Ok(None);
    }
    let meta = match full.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let stat = Stat::of(&meta);
    if stat.tag == Tag::Other || rules.is_some_and(|r| r.ignored(rel, stat.tag == Tag::Dir)) {
        return Ok(None);
    }
    read_entry(&full, rel, stat, known, inline)
}

/// Whether every directory between `root` and `rel` is a real directory (not a link): a path
/// under a link is not in the tree, whatever the link points at.
pub fn parents_are_dirs(root: &Path, rel: &str) -> bool {
    let mut p = root.to_path_buf();
    let mut parts = rel.split('/').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return true;
        }
        p.push(part);
        match p.symlink_metadata() {
            Ok(m) if m.file_type().is_dir() => {}
            _ => return false,
        }
    }
    true
}

/// The digest `known` holds for `rel`, if it was read at this very stat.
fn known_digest(known: &Tree, rel: &str, stat: &Stat) -> Option<Digest> {
    match known.get(rel) {
        Some(e) if e.stat() == *stat => match e.kind {
            Kind::File { digest, .. } => Some(digest),
            _ => None,
        },
        _ => None,
    }
}

fn read_entry(
    full: &Path,
    rel: &str,
    stat: Stat,
    known: &Tree,
    inline: Option<u64>,
) -> std::io::Result<Option<(Entry, Option<Vec<u8>>)>> {
    let kind = match stat.tag {
        Tag::Dir => Kind::Dir,
        Tag::Link => match entry::link_target(full)? {
            Some(target) => Kind::Link { target },
            None => return Ok(None),
        },
        Tag::File => {
            let want_data = inline.is_some_and(|limit| stat.size <= limit);
            if !want_data && let Some(digest) = known_digest(known, rel, &stat) {
                Kind::File {
                    digest,
                    exec: stat.exec,
                }
            } else {
                let f = File::open(full)?;
                let mut data = want_data.then(|| Vec::with_capacity(stat.size as usize));
                let (digest, len) = entry::digest_reader(f, stat.size, |chunk| {
                    if let Some(d) = data.as_mut() {
                        d.extend_from_slice(chunk);
                    }
                })?;
                // The file changed while it was read: its stat is the one after, so the next
                // event (there will be one) compares against what was really read.
                let after = full.symlink_metadata().map(|m| Stat::of(&m))?;
                let stat = Stat { size: len, ..after };
                return Ok(Some((
                    Entry {
                        kind: Kind::File {
                            digest,
                            exec: stat.exec,
                        },
                        size: len,
                        mtime: stat.mtime,
                    },
                    data,
                )));
            }
        }
        Tag::Other => return Ok(None),
    };
    Ok(Some((
        Entry {
            kind,
            size: stat.size,
            mtime: stat.mtime,
        },
        None,
    )))
}
