//! Unit tests of `error` (kept apart so the module file holds only shipping code).

use super::*;

#[test]
fn codes_see_through_boxes_and_sharing() {
    let e = EngineError::from(SshError::Identity(IdentityError::WrongPassphrase { path: "/k".into() }));
    assert_eq!(e.code(), "wrong_passphrase");
    let shared = EngineError::Shared(Arc::new(e));
    assert_eq!(shared.code(), "wrong_passphrase");
    assert!(
        std::mem::size_of::<EngineError>() <= 64,
        "{}",
        std::mem::size_of::<EngineError>()
    );
}
