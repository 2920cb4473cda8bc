//! Wider pipes to and from sshd.
//!
//! OpenSSH's sshd reads up to 256 KiB from the network per turn of its loop but writes to the
//! agent's stdin at most what the pipe takes, 64 KiB by default. While the engine sends faster
//! than that (a first sync does), the rest waits in sshd's channel buffer, and that buffer grows
//! by allocating a larger copy of itself and zeroing the old one, once per packet: with megabytes
//! waiting, sshd spent a whole core copying memory and became the first sync's bottleneck
//! (measured: 300 reallocations of 2.4 MB on average for a 4.4 MB tree). A pipe wider than
//! sshd's read keeps that buffer empty, as long as the agent keeps reading (it reads ahead of
//! applying).

use rustix::pipe::fcntl_setpipe_size;

/// The size asked for: the kernel's default ceiling for unprivileged users
/// (`/proc/sys/fs/pipe-max-size`).
const WIDE: usize = 1 << 20;

/// Widens stdin and stdout if they are pipes; anything else (a VM that caps pipes lower, a
/// socket) keeps what it has, which only costs speed.
pub fn widen() {
    widen_one(std::io::stdin());
    widen_one(std::io::stdout());
}

fn widen_one(fd: impl rustix::fd::AsFd) {
    for size in [WIDE, WIDE / 4] {
        if fcntl_setpipe_size(&fd, size).is_ok() {
            return;
        }
    }
}
