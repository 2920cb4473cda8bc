//! Unit tests of `known_hosts` (kept apart so the module file holds only shipping code).

use super::*;

fn key() -> PublicKey {
    crate::identity::generate_ed25519("test").public_key().clone()
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn unknown_then_learned_then_known() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("kh");
    let k = key();
    assert_eq!(check("h", 2222, &k, std::slice::from_ref(&f)).unwrap(), HostKeyStatus::Unknown);
    learn(&f, "h", 2222, &k).unwrap();
    assert_eq!(check("h", 2222, &k, std::slice::from_ref(&f)).unwrap(), HostKeyStatus::Known);
    // Port matters: the same host on port 22 is a different entry.
    assert_eq!(check("h", 22, &k, &[f]).unwrap(), HostKeyStatus::Unknown);
}

#[test]
fn changed_key_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (key(), key());
    let body = format!("# comment\n\nother {}\nh {}\n", old.to_openssh().unwrap(), old.to_openssh().unwrap());
    let f = write(dir.path(), "kh", &body);
    match check("h", 22, &new, std::slice::from_ref(&f)).unwrap() {
        HostKeyStatus::Changed { file, line, recorded_fingerprint } => {
            assert_eq!(file, f);
            assert_eq!(line, 4);
            assert_eq!(recorded_fingerprint, fingerprint(&old));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hashed_wildcard_and_negated_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let o = k.to_openssh().unwrap();
    let hashed = hashed_name(b"0123456789abcdefghij", "[vm.lan]:2200").unwrap();
    let f = write(dir.path(), "kh", &format!("{hashed} {o}\n*.dev,!bad.dev {o}\n"));
    let files = [f];
    assert_eq!(check("vm.lan", 2200, &k, &files).unwrap(), HostKeyStatus::Known);
    assert_eq!(check("a.dev", 22, &k, &files).unwrap(), HostKeyStatus::Known);
    assert_eq!(check("bad.dev", 22, &k, &files).unwrap(), HostKeyStatus::Unknown);
}

#[test]
fn revoked_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let f = write(dir.path(), "kh", &format!("@revoked * {}\n", k.to_openssh().unwrap()));
    assert!(matches!(check("h", 22, &k, &[f]).unwrap(), HostKeyStatus::Revoked { line: 1, .. }));
}

#[test]
fn fingerprint_looks_like_openssh() {
    let fp = fingerprint(&key());
    assert!(fp.starts_with("SHA256:") && fp.len() == 7 + 43, "{fp}");
}
