//! Churn without growth: the soak (see `tether_e2e::soak`) at a one-minute size in the suite, and
//! at full size through `tests/soak.sh`.

use tether_e2e::soak::{self, Size};

#[test]
fn a_minute_of_churn_leaks_nothing() {
    let r = soak::run(Size::MINUTE, "soakm", 60);
    eprintln!("{r:?}");
}

/// 100,000 API connections, 1,000 tunnel adds and removes, 30 link cuts, 200 containers.
#[test]
#[ignore = "minutes long: run by tests/soak.sh"]
fn full_churn_leaks_nothing() {
    let r = soak::run(Size::FULL, "soakf", 61);
    eprintln!("{r:?}");
}
