//! Who is on the other end of a local endpoint, and who this process runs as: a control client
//! and a private file must both be this user's.

use std::io;

use crate::endpoint::Stream;

/// This process's user: the effective uid.
pub fn me() -> u32 {
    #[allow(unsafe_code)]
    // SAFETY: geteuid() takes no arguments, cannot fail and touches no memory.
    unsafe {
        libc::geteuid()
    }
}

/// The user on the other end of `stream` (SO_PEERCRED on Linux, getpeereid on macOS and the
/// BSDs).
pub fn of(stream: &Stream) -> io::Result<u32> {
    stream.peer_cred().map(|c| c.uid())
}
