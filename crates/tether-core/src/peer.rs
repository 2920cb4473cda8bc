//! Who is on the other end of a local endpoint, and who this process runs as: a control client
//! and a private file must both be this user's. A user is a uid on Unix and a SID on Windows.

use std::io;

use crate::endpoint::Stream;

pub use imp::{Id, me, of};

#[cfg(unix)]
mod imp {
    use super::*;

    /// A user: the uid.
    pub type Id = u32;

    /// This process's user: the effective uid.
    pub fn me() -> Id {
        #[allow(unsafe_code)]
        // SAFETY: geteuid() takes no arguments, cannot fail and touches no memory.
        unsafe {
            libc::geteuid()
        }
    }

    /// The user on the other end of `stream` (SO_PEERCRED on Linux, getpeereid on macOS and the
    /// BSDs).
    pub fn of(stream: &Stream) -> io::Result<Id> {
        stream.peer_cred().map(|c| c.uid())
    }
}

#[cfg(windows)]
mod imp {
    use super::*;
    use crate::endpoint::win;

    /// A user: the SID, as text (`S-1-5-21-…`).
    pub type Id = String;

    /// This process's user: the SID of its token. A process without one cannot exist, so a
    /// failure here is reported as a user no peer can match.
    pub fn me() -> Id {
        win::process_user(None).unwrap_or_else(|e| format!("(unknown: {e})"))
    }

    /// The user of the process on the other end of the pipe.
    pub fn of(stream: &Stream) -> io::Result<Id> {
        win::process_user(Some(stream.peer_pid()?))
    }
}
