//! Reconnect delays: capped exponential backoff with full jitter, from the `backon` crate.
//!
//! Jitter keeps many laptops from hammering one sshd in step after a shared outage; the cap keeps
//! a VM that comes back from waiting long. A network change skips the wait (see `netwatch`).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

pub const FIRST: Duration = Duration::from_millis(500);
pub const CAP: Duration = Duration::from_secs(30);

/// Delay before reconnect attempt `attempt` (1-based).
pub fn delay(attempt: u32) -> Duration {
    let mut it = ExponentialBuilder::default()
        .with_min_delay(FIRST)
        .with_max_delay(CAP)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    it.nth(attempt.saturating_sub(1).min(32) as usize).unwrap_or(CAP)
}

#[cfg(test)]
#[path = "tests/backoff.rs"]
mod tests;
