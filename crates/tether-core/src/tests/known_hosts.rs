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
    assert_eq!(
        check("h", 2222, &k, std::slice::from_ref(&f)).unwrap(),
        HostKeyStatus::Unknown
    );
    learn(&f, "h", 2222, &k).unwrap();
    assert_eq!(
        check("h", 2222, &k, std::slice::from_ref(&f)).unwrap(),
        HostKeyStatus::Known
    );
    // Port matters: the same host on port 22 is a different entry.
    assert_eq!(check("h", 22, &k, &[f]).unwrap(), HostKeyStatus::Unknown);
}

#[test]
fn changed_key_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (key(), key());
    let body = format!(
        "# comment\n\nother {}\nh {}\n",
        old.to_openssh().unwrap(),
        old.to_openssh().unwrap()
    );
    let f = write(dir.path(), "kh", &body);
    match check("h", 22, &new, std::slice::from_ref(&f)).unwrap() {
        HostKeyStatus::Changed {
            file,
            line,
            recorded_fingerprint,
        } => {
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
    assert!(matches!(
        check("h", 22, &k, &[f]).unwrap(),
        HostKeyStatus::Revoked { line: 1, .. }
    ));
}

#[test]
fn fingerprint_looks_like_openssh() {
    let fp = fingerprint(&key());
    assert!(fp.starts_with("SHA256:") && fp.len() == 7 + 43, "{fp}");
}

#[test]
fn forgetting_removes_only_the_conflicting_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new, other) = (key(), key(), key());
    let ecdsa = "[h]:2222 ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPoua1cEeDY9d2pB6oAp4ogEuih1cvhP9wz361ZNuEC9BpUv3lzVNLS1RHhIqAdf3eAc4NnBcxrZZkPmqphDir8=";
    assert!(
        Entry::from_str(ecdsa).is_ok(),
        "the ecdsa line must parse, or keeping it proves nothing"
    );
    let hashed = hashed_name(b"0123456789abcdefghij", "[h]:2222").unwrap();
    let body = format!(
        "# kept comment\n[h]:2222 {o}\nelse {o}\nh {o}\n{hashed} {o}\n@revoked [h]:2222 {x}\n[h]:2222 {n}\n{ecdsa}\n",
        o = old.to_openssh().unwrap(),
        n = new.to_openssh().unwrap(),
        x = other.to_openssh().unwrap(),
    );
    let f = write(dir.path(), "kh", &body);
    #[cfg(unix)]
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // The plain and the hashed line of the old key go; the other host, the revocation, the new
    // key's own line, and port 22 of the same host and its key of another type stay.
    assert_eq!(forget_conflicting(&f, "h", 2222, &new, false).unwrap(), 2);
    let after = std::fs::read_to_string(&f).unwrap();
    let expected = format!(
        "# kept comment\nelse {o}\nh {o}\n@revoked [h]:2222 {x}\n[h]:2222 {n}\n{ecdsa}\n",
        o = old.to_openssh().unwrap(),
        n = new.to_openssh().unwrap(),
        x = other.to_openssh().unwrap(),
    );
    assert_eq!(after, expected);
    assert_eq!(
        check("h", 2222, &new, std::slice::from_ref(&f)).unwrap(),
        HostKeyStatus::Known
    );
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&f).unwrap().permissions()) & 0o777,
        0o600
    );
    // Nothing left to forget, and a missing file is nothing to forget.
    assert_eq!(forget_conflicting(&f, "h", 2222, &new, false).unwrap(), 0);
    assert_eq!(
        forget_conflicting(&dir.path().join("none"), "h", 2222, &new, false).unwrap(),
        0
    );
}

/// A public ECDSA key (any will do: only its type and fingerprint matter here).
const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJUuNLTwthFiQt+IJB3vXzFdxW/ox3Wxyb5ROMradLcmXlzgGdeIlEXjYguA6kVNyNkzX5p3wPFtrgdcLWpVhJY=";

#[test]
fn a_key_of_another_type_for_a_known_host_is_not_a_first_connection() {
    let dir = tempfile::tempdir().unwrap();
    let recorded = key();
    let f = write(
        dir.path(),
        "kh",
        &format!("[h]:2222 {}\nelse {ECDSA}\n", recorded.to_openssh().unwrap()),
    );
    let presented = PublicKey::from_openssh(ECDSA).unwrap();
    match check("h", 2222, &presented, std::slice::from_ref(&f)).unwrap() {
        HostKeyStatus::OtherType { recorded: list } => {
            assert_eq!(list.len(), 1);
            assert_eq!(list[0].fingerprint, fingerprint(&recorded));
            assert_eq!(list[0].key_type, "ssh-ed25519");
            assert_eq!((list[0].file.clone(), list[0].line), (f.clone(), 1));
        }
        other => panic!("{other:?}"),
    }
    // Recorded as well, the presented key is known: a VM that has both keys.
    let both = write(
        dir.path(),
        "kh2",
        &format!("[h]:2222 {}\n[h]:2222 {ECDSA}\n", recorded.to_openssh().unwrap()),
    );
    assert_eq!(check("h", 2222, &presented, &[both]).unwrap(), HostKeyStatus::Known);
    // A host with nothing recorded is still simply unknown.
    assert_eq!(check("other", 22, &presented, &[f]).unwrap(), HostKeyStatus::Unknown);
}

#[test]
fn replacing_across_types_forgets_the_hosts_other_keys_only() {
    let dir = tempfile::tempdir().unwrap();
    let (old, unrelated) = (key(), key());
    let f = write(
        dir.path(),
        "kh",
        &format!(
            "[h]:2222 {}\nneighbour {}\n",
            old.to_openssh().unwrap(),
            unrelated.to_openssh().unwrap()
        ),
    );
    let new = PublicKey::from_openssh(ECDSA).unwrap();
    assert_eq!(forget_conflicting(&f, "h", 2222, &new, false).unwrap(), 0);
    assert_eq!(forget_conflicting(&f, "h", 2222, &new, true).unwrap(), 1);
    let left = std::fs::read_to_string(&f).unwrap();
    assert!(left.starts_with("neighbour "), "{left}");
}
