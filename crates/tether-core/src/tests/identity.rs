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

#[test]
fn a_jump_host_is_offered_its_own_keys_then_the_usual_ones_and_never_the_vms_password() {
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("bastion_key");
    let own_key = generate_ed25519("bastion");
    std::fs::write(&own, own_key.to_openssh(Default::default()).unwrap().as_bytes()).unwrap();
    let usual = generate_ed25519("usual");
    let hop = |files: Vec<PathBuf>| Target {
        alias: "gate".into(),
        host: "10.0.0.1".into(),
        port: 22,
        user: "ops".into(),
        identity_files: files,
        jumps: Vec::new(),
        host_keys: Default::default(),
    };
    let password = Credential::Password(Arc::new(Zeroizing::new("the VM's password".into())));
    let usual_cred = Credential::Key {
        label: "usual".into(),
        key: Arc::new(usual.clone()),
    };
    let offered = |creds: Arc<dyn Credentials>| -> Vec<String> {
        creds
            .credentials(None)
            .unwrap()
            .iter()
            .map(|c| match c {
                Credential::Key { key, .. } => key.comment().to_string(),
                Credential::Agent { .. } => "agent".into(),
                Credential::Password(_) => "password".into(),
            })
            .collect()
    };
    // The VM's login is a password (installing a key): its hops get none of it.
    let only_password: Arc<dyn Credentials> = Arc::new(Fixed(vec![password.clone()]));
    assert!(offered(for_hop(&hop(Vec::new()), only_password.clone())).is_empty());
    assert_eq!(offered(for_hop(&hop(vec![own.clone()]), only_password)), ["bastion"]);
    // What hops usually take, after the hop's own key.
    let mixed: Arc<dyn Credentials> = Arc::new(Fixed(vec![password, usual_cred]));
    assert_eq!(offered(for_hop(&hop(vec![own]), mixed)), ["bastion", "usual"]);
}
