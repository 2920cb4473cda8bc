//! File-system events for one replica root, as relative paths to look at again.
//!
//! An event only says "look here": the path is stat'ed and compared with what the replica last
//! reported, so the replica's own writes (echoes) and events for unchanged files cost a `stat`.
//! A lost event (inotify's queue overflowed) asks for a rescan, which reads only what changed.

use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher as _};

use crate::rules::Rules;

/// What the watcher hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Something at this path (or under it, for a directory) may have changed.
    Path(String),
    /// Events were lost: scan the whole root again.
    Rescan,
}

/// A running watch; events stop when it is dropped.
pub struct Watch {
    _inner: notify::RecommendedWatcher,
}

/// Watches `root` recursively, passing each change to `sink` (on the watcher's thread).
pub fn start(root: &Path, rules: Rules, sink: impl Fn(Change) + Send + 'static) -> notify::Result<Watch> {
    let root_buf: PathBuf = root.to_path_buf();
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            if ev.need_rescan() {
                sink(Change::Rescan);
                return;
            }
            // Opens and reads change nothing; a close after writing does (the best sign a file is
            // whole), and inotify reports it as an access.
            if matches!(ev.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write)) {
                return;
            }
            for p in &ev.paths {
                match crate::path::relative(&root_buf, p) {
                    Some(rel) if !rules.ignored(&rel, false) => sink(Change::Path(rel)),
                    Some(_) => {}
                    None if p == &root_buf => sink(Change::Rescan),
                    None => {}
                }
            }
        }
        Err(_) => sink(Change::Rescan),
    })?;
    w.watch(root, RecursiveMode::Recursive)?;
    Ok(Watch { _inner: w })
}
