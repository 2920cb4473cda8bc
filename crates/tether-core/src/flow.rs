//! Receive-window credit for forwarded streams: the VM may send a stream only as much as its
//! local reader has consumed plus the stream's window, and all streams' windows share one budget.
//!
//! Why: a slow local reader (`docker save | gzip`) must slow only its own stream, and what Tether
//! holds for it must stay bounded. The patched russh (`vendor/russh/PATCHES.md`) no longer refills
//! a channel's window as data arrives; [`Credit`] decides how much to grant as data is consumed.
//!
//! Invariant: for every stream, bytes received but not yet consumed plus the window the VM still
//! holds never exceed that stream's `size` (or the size it had before a shrink, until consumption
//! catches up). Every byte of `size` above [`FLOOR`] is reserved from the engine's [`Budget`], so
//! the total held for all streams is at most `budget + streams × FLOOR`.
//!
//! Sizing: a stream starts at [`START`] (OpenSSH's own window for forwarded streams) and grows, up
//! to [`MAX`], to twice what its reader took in the last round trip, as Linux's receive-buffer
//! autotuning does: a sender held back by the window delivers one window per RTT, so the window
//! doubles each RTT until the link or the reader, not the window, sets the pace; a stream that took
//! nearly its whole window in a round trip probes, as slow start does, with a step of four (its
//! larger window shows in the rate only a round trip later). (On a link with no
//! measurable RTT it also doubles when the sender had almost no window left while the reader kept
//! up.) It halves back towards [`START`] when its reader is the bottleneck, since a window the
//! reader cannot empty only holds memory. A stream that carries
//! nothing for [`IDLE`] goes back to [`START`], as TCP restarts its window after idle: a window
//! sized for an earlier transfer would reserve budget other streams could use. What the VM was
//! already granted stays its to send; the reservation above it comes back as it is consumed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The window each channel opens with (the SSH config's `window_size`). It is not reserved from
/// the budget, so it is small: it only has to carry a stream until its first grant, which the
/// pump sends before the request that makes the VM answer.
pub const FLOOR: u32 = 128 * 1024;
/// A stream's window once the pump takes over.
pub const START: u32 = 2 * 1024 * 1024;
/// The largest window of one stream: 32 MiB fills 2.7 Gbit/s at 100 ms of RTT. Half the budget,
/// so two long fat streams at full speed still leave every other stream its start.
pub const MAX: u32 = 32 * 1024 * 1024;
/// A stream quiet for this long shrinks back to [`START`].
pub const IDLE: std::time::Duration = std::time::Duration::from_secs(5);
/// The engine's budget for windows above [`FLOOR`], all streams together.
pub const BUDGET: usize = 64 * 1024 * 1024;

/// Window bytes shared by every stream of the engine.
#[derive(Debug)]
pub struct Budget {
    total: usize,
    used: AtomicUsize,
}

impl Budget {
    pub fn new(total: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            used: AtomicUsize::new(0),
        })
    }

    /// Takes up to `want` bytes; returns how many it got (possibly 0).
    fn take(&self, want: usize) -> usize {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let got = want.min(self.total.saturating_sub(used));
            if got == 0 {
                return 0;
            }
            match self
                .used
                .compare_exchange_weak(used, used + got, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return got,
                Err(now) => used = now,
            }
        }
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes currently reserved by live streams.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            total: BUDGET,
            used: AtomicUsize::new(0),
        }
    }
}

/// One stream's window accounting. Pure: the caller sends the grants it returns.
#[derive(Debug)]
pub struct Credit {
    budget: Arc<Budget>,
    size: u64,
    reserved: u64,
    granted: u64,
    received: u64,
    consumed: u64,
    /// Since when, and how much, the reader has taken in the current round trip.
    epoch: Option<(std::time::Instant, u64)>,
}

impl Credit {
    /// A stream whose channel opened with a [`FLOOR`] window.
    pub fn new(budget: Arc<Budget>) -> Self {
        let floor = u64::from(FLOOR);
        Self {
            budget,
            size: floor,
            reserved: 0,
            granted: floor,
            received: 0,
            consumed: 0,
            epoch: None,
        }
    }

    /// Grows the stream to [`START`] as far as the budget allows; returns the grant to send.
    pub fn start(&mut self) -> u32 {
        self.grow_to(u64::from(START));
        self.due()
    }

    /// `n` bytes arrived from the VM.
    pub fn received(&mut self, n: usize) {
        self.received += n as u64;
    }

    /// As [`Credit::consumed`], at `now`, on a link whose round trip is `rtt` (zero: unknown).
    /// Once per round trip, the window grows to twice what the reader took in it, if the reader
    /// keeps up: the bandwidth × RTT the link needs, measured.
    pub fn consumed_at(&mut self, n: usize, now: std::time::Instant, rtt: std::time::Duration) -> u32 {
        if !rtt.is_zero() {
            let (start, taken) = self.epoch.get_or_insert((now, 0));
            *taken += n as u64;
            let elapsed = now.saturating_duration_since(*start);
            if elapsed >= rtt {
                let per_rtt =
                    u64::try_from(u128::from(*taken) * rtt.as_nanos() / elapsed.as_nanos().max(1)).unwrap_or(u64::MAX);
                self.epoch = Some((now, 0));
                let backlog = self.received.saturating_sub(self.consumed + n as u64);
                // A stream that took nearly its whole window in a round trip is held back by it,
                // and its need is unknown: it probes as slow start does. A grown window shows in
                // the reader's rate only a round trip after its grant, so one step of four is a
                // doubling per round trip.
                let probe = if per_rtt >= self.size * 7 / 10 {
                    self.size * 4
                } else {
                    0
                };
                let want = per_rtt.saturating_mul(2).max(probe).min(u64::from(MAX));
                if want > self.size && backlog <= self.size / 8 {
                    self.grow_to(want);
                }
            }
        }
        self.consumed(n)
    }

    /// The local reader took `n` more bytes; returns the grant to send now (0: none yet).
    /// Grants are batched to a quarter of the window, and the window is retuned only when one
    /// is due, so it changes at most once per quarter window consumed.
    pub fn consumed(&mut self, n: usize) -> u32 {
        self.consumed += n as u64;
        if self.size.saturating_sub(self.outstanding()) < (self.size / 4).max(1) {
            return 0;
        }
        let peer_left = self.granted.saturating_sub(self.received);
        let backlog = self.received.saturating_sub(self.consumed);
        if peer_left <= self.size / 8 && backlog <= self.size / 8 && self.size < u64::from(MAX) {
            // The sender was about to wait on us while the reader kept up: the window limits.
            self.grow_to((self.size * 2).min(u64::from(MAX)));
        } else if backlog >= self.size / 2 && self.size > u64::from(START) {
            // The reader is the bottleneck; a bigger window only holds memory.
            self.size = (self.size / 2).max(u64::from(START));
        }
        self.release_surplus();
        self.due()
    }

    /// Nothing arrived for [`IDLE`]: back to [`START`]. Returns whether it shrank (a stream
    /// already at [`START`] or below needs no more idle checks).
    pub fn idle(&mut self) -> bool {
        if self.size <= u64::from(START) {
            return false;
        }
        self.size = u64::from(START);
        self.epoch = None;
        self.release_surplus();
        true
    }

    /// The stream's current window.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes the VM may still send plus bytes received and not yet consumed.
    pub fn outstanding(&self) -> u64 {
        self.granted - self.consumed
    }

    fn grow_to(&mut self, want: u64) {
        let extra = want.saturating_sub(self.size);
        let got = self.budget.take(usize::try_from(extra).unwrap_or(usize::MAX)) as u64;
        self.reserved += got;
        self.size += got;
    }

    /// Gives back what neither the current size nor what is still outstanding needs.
    fn release_surplus(&mut self) {
        let need = self.size.max(self.outstanding()).saturating_sub(u64::from(FLOOR));
        if self.reserved > need {
            self.budget.give_back((self.reserved - need) as usize);
            self.reserved = need;
        }
    }

    /// The grant that brings the outstanding window back to `size`.
    fn due(&mut self) -> u32 {
        let deficit = self.size.saturating_sub(self.outstanding());
        let grant = u32::try_from(deficit).unwrap_or(u32::MAX);
        self.granted += u64::from(grant);
        grant
    }
}

impl Drop for Credit {
    fn drop(&mut self) {
        self.budget.give_back(self.reserved as usize);
    }
}

#[cfg(test)]
#[path = "tests/flow.rs"]
mod tests;
