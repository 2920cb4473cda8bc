//! Unit tests of `backoff` (kept apart so the module file holds only shipping code).

use super::*;

#[test]
fn grows_and_is_capped() {
    // backon's jitter adds up to one extra base delay: [base, 2*base).
    for _ in 0..50 {
        let d1 = delay(1);
        assert!(d1 >= FIRST && d1 < FIRST * 2, "{d1:?}");
        let d4 = delay(4);
        assert!(d4 >= FIRST * 8 && d4 < FIRST * 16, "{d4:?}");
        assert!(delay(40) <= CAP * 2, "cap");
    }
}
