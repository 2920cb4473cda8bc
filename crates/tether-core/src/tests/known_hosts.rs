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
    assert_eq!(
        check("h", 22, &k, std::slice::from_ref(&f)).unwrap(),
        HostKeyStatus::Unknown
    );
}

#[test]
fn a_bare_host_line_vouches_for_other_ports_as_in_openssh_but_never_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (k, other) = (key(), key());
    let f = write(dir.path(), "kh", &format!("h {}\n", k.to_openssh().unwrap()));
    let files = std::slice::from_ref(&f);
    assert_eq!(check("h", 2222, &k, files).unwrap(), HostKeyStatus::Known);
    // Another key under the bare name is no reason to refuse one on another port.
    assert_eq!(check("h", 2222, &other, files).unwrap(), HostKeyStatus::Unknown);
    // A line for the port itself wins: a changed key there is refused.
    learn(&f, "h", 2222, &other).unwrap();
    assert!(matches!(
        check("h", 2222, &k, files).unwrap(),
        HostKeyStatus::Changed { line: 2, .. }
    ));
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

/// A certificate for `host_key`, signed by `ca`, valid from `after` to `before` (Unix seconds).
fn certificate(
    ca: &russh::keys::PrivateKey,
    host_key: &PublicKey,
    kind: CertType,
    principals: &[&str],
    (after, before): (u64, u64),
) -> Certificate {
    let mut b =
        russh::keys::ssh_key::certificate::Builder::new([7u8; 32], host_key.key_data().clone(), after, before).unwrap();
    b.cert_type(kind).unwrap().key_id("test host").unwrap();
    for p in principals {
        b.valid_principal(*p).unwrap();
    }
    if principals.is_empty() {
        b.all_principals_valid().unwrap();
    }
    b.sign(ca).unwrap()
}

#[test]
fn a_host_certificate_is_trusted_only_as_openssh_trusts_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::identity::generate_ed25519("ca");
    let stranger = crate::identity::generate_ed25519("other ca");
    let host_key = key();
    let ca_line = format!(
        "@cert-authority *.lab,[10.0.0.*]:2222 {}\n",
        ca.public_key().to_openssh().unwrap()
    );
    let f = write(dir.path(), "kh", &ca_line);
    let files = std::slice::from_ref(&f);
    let now = 1_800_000_000;
    let window = (now - 60, now + 3600);
    let good = certificate(&ca, &host_key, CertType::Host, &["vm.lab", "10.0.0.5"], window);

    let trusted = check_certificate("vm.lab", 22, &good, files, now).unwrap();
    let authority = fingerprint(ca.public_key());
    assert_eq!(
        trusted,
        CertStatus::Trusted {
            authority: authority.clone(),
            file: f.clone(),
            line: 1
        }
    );
    assert!(matches!(
        check_certificate("10.0.0.5", 2222, &good, files, now).unwrap(),
        CertStatus::Trusted { .. }
    ));
    assert!(has_authority("vm.lab", 22, files) && !has_authority("vm.elsewhere", 22, files));

    let untrusted =
        |cert: &Certificate, host: &str, port: u16, at: u64| match check_certificate(host, port, cert, files, at)
            .unwrap()
        {
            CertStatus::Untrusted(why) => why,
            other => panic!("{other:?}"),
        };
    // No authority for this host, or another signer.
    assert!(untrusted(&good, "vm.elsewhere", 22, now).contains("no @cert-authority line"));
    assert!(untrusted(&good, "10.0.0.5", 22, now).contains("no @cert-authority line"));
    let foreign = certificate(&stranger, &host_key, CertType::Host, &["vm.lab"], window);
    assert!(untrusted(&foreign, "vm.lab", 22, now).contains(&fingerprint(stranger.public_key())));
    // Not for this host, for no host, a user certificate, outside its window.
    assert!(untrusted(&good, "other.lab", 22, now).contains("it is for vm.lab, 10.0.0.5, not other.lab"));
    let anyone = certificate(&ca, &host_key, CertType::Host, &[], window);
    assert!(untrusted(&anyone, "vm.lab", 22, now).contains("no principals"));
    let user = certificate(&ca, &host_key, CertType::User, &["vm.lab"], window);
    assert!(untrusted(&user, "vm.lab", 22, now).contains("user certificate"));
    assert!(untrusted(&good, "vm.lab", 22, now + 3600).contains("expired at"));
    assert!(untrusted(&good, "vm.lab", 22, now - 61).contains("valid only from"));
    // A certificate altered after signing: its principal renamed in the encoded bytes.
    let mut bytes = good.to_bytes().unwrap();
    let at = bytes.windows(6).position(|w| w == b"vm.lab").unwrap();
    bytes[at..at + 6].copy_from_slice(b"vm.laz");
    let forged = Certificate::from_bytes(&bytes).unwrap();
    let ca_line_z = write(
        dir.path(),
        "khz",
        &format!("@cert-authority vm.laz {}\n", ca.public_key().to_openssh().unwrap()),
    );
    match check_certificate("vm.laz", 22, &forged, &[ca_line_z], now).unwrap() {
        CertStatus::Untrusted(why) => assert!(why.contains("signature does not verify"), "{why}"),
        other => panic!("{other:?}"),
    }

    // A revoked authority, or a revoked host key, refuses the certificate outright.
    let revoked_ca = write(
        dir.path(),
        "kh2",
        &format!("{ca_line}@revoked * {}\n", ca.public_key().to_openssh().unwrap()),
    );
    assert_eq!(
        check_certificate("vm.lab", 22, &good, std::slice::from_ref(&revoked_ca), now).unwrap(),
        CertStatus::Revoked {
            file: revoked_ca.clone(),
            line: 2
        }
    );
    let revoked_key = write(
        dir.path(),
        "kh3",
        &format!("@revoked vm.lab {}\n{ca_line}", host_key.to_openssh().unwrap()),
    );
    assert!(matches!(
        check_certificate("vm.lab", 22, &good, &[revoked_key], now).unwrap(),
        CertStatus::Revoked { line: 1, .. }
    ));
}

#[test]
fn a_revocation_in_a_global_file_or_under_the_bare_name_holds_for_every_port() {
    let dir = tempfile::tempdir().unwrap();
    let (k, pinned) = (key(), key());
    let user = write(dir.path(), "known_hosts", "");
    // An administrator's global file: one key revoked for every host, another pinned for h.
    let global = write(
        dir.path(),
        "ssh_known_hosts",
        &format!(
            "@revoked * {}\nh {}\n",
            k.to_openssh().unwrap(),
            pinned.to_openssh().unwrap()
        ),
    );
    let own = write(
        dir.path(),
        "tether",
        &format!("elsewhere {}\n", k.to_openssh().unwrap()),
    );
    let files = [user.clone(), global, own];
    assert!(matches!(
        check("h", 22, &k, &files).unwrap(),
        HostKeyStatus::Revoked { line: 1, .. }
    ));
    assert!(matches!(
        check("h", 2222, &k, &files).unwrap(),
        HostKeyStatus::Revoked { .. }
    ));
    // The pinned key there is known; another key of its type is a changed one, not a new one.
    assert_eq!(check("h", 22, &pinned, &files).unwrap(), HostKeyStatus::Known);
    assert!(matches!(
        check("h", 22, &key(), &files).unwrap(),
        HostKeyStatus::Changed { .. }
    ));

    // `@revoked` under the bare name, the host reached on another port.
    let bare = write(dir.path(), "bare", &format!("@revoked h {}\n", k.to_openssh().unwrap()));
    assert!(matches!(
        check("h", 2222, &k, std::slice::from_ref(&bare)).unwrap(),
        HostKeyStatus::Revoked { .. }
    ));
}

#[test]
fn a_revoked_keys_file_lists_keys_and_one_that_cannot_be_read_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (k, other) = (key(), key());
    let list = write(
        dir.path(),
        "revoked",
        &format!(
            "# retired hosts\n{} old-host\n\n{}\n",
            other.to_openssh().unwrap(),
            k.to_openssh().unwrap()
        ),
    );
    assert_eq!(revoked_in(&list, k.key_data()).unwrap(), Some(4));
    assert_eq!(revoked_in(&list, key().key_data()).unwrap(), None);
    let missing = dir.path().join("missing");
    let e = revoked_in(&missing, k.key_data()).unwrap_err().to_string();
    assert!(e.contains("RevokedHostKeys") && e.contains("missing"), "{e}");
    let krl = dir.path().join("krl");
    std::fs::write(&krl, b"SSHKRL\n\0\0\0\x01").unwrap();
    let e = revoked_in(&krl, k.key_data()).unwrap_err().to_string();
    assert!(e.contains("KRL"), "{e}");
}
