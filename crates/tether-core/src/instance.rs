//! One engine per Tether home: an exclusive lock on `run/engine.lock`, held for the engine's
//! whole life, and the owner (pid, app or daemon, start time) written inside it.
//!
//! Why a lock and not the control socket: two engines started at the same instant both find no
//! socket, and an engine whose socket failed to bind would go on unseen, so the tray would talk
//! to one engine and the CLI to another, and their config writes would overwrite each other. The
//! OS releases the lock when the process ends, however it ends, so a crash leaves nothing stale.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::paths::{self, PathError, Paths};

/// Which program embeds the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The tray app.
    App,
    /// `tether daemon`, or the engine the CLI starts in the background.
    Daemon,
    /// An engine inside a test.
    Test,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::App => "the Tether app",
            Kind::Daemon => "tether daemon",
            Kind::Test => "a test engine",
        }
    }
}

/// The engine that holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub kind: Kind,
    /// Unix milliseconds.
    pub since_ms: u64,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error(
        "another Tether engine already runs for this Tether home ({}, pid {}); use it (the CLI and the app both talk to it), \
         or stop it first with `tether engine stop`",
        .0.kind.describe(), .0.pid
    )]
    Running(Owner),
    #[error("cannot use the engine lock {path}: {source}; check that the directory belongs to you")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Path(#[from] PathError),
}

/// Held for as long as the engine runs; dropping it (or the process ending) releases the lock.
#[derive(Debug)]
pub struct Lock {
    _file: File,
    pub owner: Owner,
}

fn open(paths: &Paths) -> Result<File, InstanceError> {
    paths::ensure_private_dir(&paths.runtime_dir)?;
    let path = paths.engine_lock();
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    crate::private::file_options(&mut opts)
        .open(&path)
        .map_err(|source| InstanceError::Io {
            path: path.display().to_string(),
            source,
        })
}

fn read_owner(file: &mut File) -> Option<Owner> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// Takes the lock for this process, or says which engine holds it.
pub fn acquire(paths: &Paths, kind: Kind) -> Result<Lock, InstanceError> {
    let mut file = open(paths)?;
    let io = |source| InstanceError::Io {
        path: paths.engine_lock().display().to_string(),
        source,
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(InstanceError::Running(wait_owner(&mut file))),
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    let since_ms = crate::clock::unix_ms();
    let owner = Owner {
        pid: std::process::id(),
        kind,
        since_ms,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let body = serde_json::to_string(&owner).map_err(|e| io(std::io::Error::other(e)))?;
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(body.as_bytes())
        .and_then(|()| file.sync_data())
        .map_err(io)?;
    Ok(Lock { _file: file, owner })
}

/// The winner of a race writes its owner line just after it took the lock; give it a moment.
fn wait_owner(file: &mut File) -> Owner {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(o) = read_owner(file) {
            return o;
        }
        if Instant::now() > deadline {
            return Owner {
                pid: 0,
                kind: Kind::Daemon,
                since_ms: 0,
                version: String::new(),
            };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The engine running for this Tether home, if any.
pub fn running(paths: &Paths) -> Result<Option<Owner>, InstanceError> {
    if !paths.engine_lock().exists() {
        return Ok(None);
    }
    let mut file = open(paths)?;
    match file.try_lock() {
        // Nobody holds it: no engine runs. Our own lock goes with `file`.
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => Ok(Some(wait_owner(&mut file))),
        Err(TryLockError::Error(e)) => Err(InstanceError::Io {
            path: paths.engine_lock().display().to_string(),
            source: e,
        }),
    }
}

#[cfg(test)]
#[path = "tests/instance.rs"]
mod tests;
