//! Unit tests of `wake`: what counts as a gap.

use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn a_punctual_tick_is_no_gap() {
    assert_eq!(
        late_by(S(1), Duration::from_millis(1004), Some(Duration::from_millis(1005))),
        Duration::from_millis(4)
    );
    // A wall clock stepped back (NTP) is no sleep.
    assert_eq!(late_by(S(1), S(1), None), Duration::ZERO);
}

#[test]
fn a_frozen_process_shows_on_the_monotonic_clock() {
    assert!(late_by(S(1), S(61), Some(S(61))) > GAP);
}

#[test]
fn a_sleeping_machine_shows_on_the_wall_clock() {
    // Linux's monotonic clock stood still for the 10 minutes the lid was shut.
    assert!(late_by(S(1), S(1), Some(S(601))) > GAP);
}
