//! Unit tests of `remote` (kept apart so the module file holds only shipping code).

use super::*;

#[test]
fn output_past_the_cap_is_refused_and_dropped() {
    let mut c = Capped::default();
    assert!(c.push(b"hello "));
    assert!(c.push(b"world\n"));
    assert_eq!(c.text(), "hello world");
    // A VM that keeps printing: refused at the cap, and what was kept is let go.
    let mega = vec![b'x'; 256 * 1024];
    let mut pushed = "hello world\n".len();
    while c.push(&mega) {
        pushed += mega.len();
        assert!(pushed <= MAX_OUTPUT);
    }
    assert!(pushed + mega.len() > MAX_OUTPUT);
    assert!(c.bytes.capacity() == 0, "the over-long output is still held");
    assert!(!c.push(b"more"), "once over, always over");
}

#[test]
fn quoting_survives_quotes() {
    assert_eq!(quote("it's"), "'it'\\''s'");
}
