//! Wall-clock time as Unix milliseconds: the one form every timestamp on the wire and in the
//! owner file takes.

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` in milliseconds since the Unix epoch; 0 for a time before it (a clock set to 1970).
pub fn unix_ms_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Now, in milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    unix_ms_of(SystemTime::now())
}

/// A duration in milliseconds with two decimals, as round trips and pings are shown.
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}
