//! Unit tests of `identity` (kept apart so the module file holds only shipping code).

use super::*;

#[test]
fn encrypted_key_needs_the_right_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let key = generate_ed25519("t");
    let enc = key.encrypt(&mut rand::rng(), "s3cret").unwrap();
    std::fs::write(&path, enc.to_openssh(Default::default()).unwrap().as_bytes()).unwrap();
    assert!(matches!(
        load_key(&path, None),
        Err(IdentityError::PassphraseRequired { .. })
    ));
    assert!(matches!(
        load_key(&path, Some("nope")),
        Err(IdentityError::WrongPassphrase { .. })
    ));
    let back = load_key(&path, Some("s3cret")).unwrap();
    assert_eq!(back.public_key(), key.public_key());
}

#[test]
fn garbage_is_a_format_error_naming_the_file() {
    let e = decode_key("not a key", Path::new("/k/x"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("/k/x") && e.contains("ssh-keygen"), "{e}");
}
