//! Unit tests of `error` (kept apart so the module file holds only shipping code).

use super::*;

#[test]
fn codes_see_through_boxes_and_sharing() {
    let e = EngineError::from(SshError::Identity(IdentityError::WrongPassphrase { path: "/k".into() }));
    assert_eq!(e.code().as_str(), "wrong_passphrase");
    let shared = EngineError::Shared(Arc::new(e));
    assert_eq!(shared.code().as_str(), "wrong_passphrase");
    assert!(
        std::mem::size_of::<EngineError>() <= 64,
        "{}",
        std::mem::size_of::<EngineError>()
    );
}

#[test]
fn errors_carry_typed_facts_so_no_client_reads_the_message() {
    let e = EngineError::from(SshError::HostKeyUnknown {
        host: "[10.0.0.2]:2222".into(),
        jump: true,
        key_type: "ssh-ed25519".into(),
        short: "ed25519".into(),
        fingerprint: "SHA256:abc".into(),
        certificate: String::new(),
    });
    let body = serde_json::to_value(e.body()).unwrap();
    assert_eq!(body["code"], "host_key_unknown");
    assert_eq!(body["details"]["kind"], "host_key");
    assert_eq!(body["details"]["fingerprint"], "SHA256:abc");
    assert_eq!(body["details"]["jump"], true);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the jump host [10.0.0.2]:2222"),
        "{body}"
    );
    // Shared failures (one attempt, several waiters) keep their facts.
    let shared = EngineError::Shared(Arc::new(e));
    assert!(matches!(shared.details(), Some(ErrorDetails::HostKey { .. })));

    let port = EngineError::from(ForwardError::PortInUse {
        port: 3000,
        remote: 3000,
        alt: 3001,
        holder: " by pid 4121 (node)".into(),
    });
    assert_eq!(port.code().as_str(), "port_in_use");
    assert_eq!(
        port.details(),
        Some(ErrorDetails::Port {
            port: 3000,
            remote: 3000,
            suggestion: 3001,
            holder: Some("pid 4121 (node)".into())
        })
    );
    let shared_key = EngineError::from(Refusal::KeyShared {
        key: "work".into(),
        vm: "arm".into(),
        others: vec!["x86".into()],
    });
    assert_eq!(shared_key.code().as_str(), "key_shared");
    assert!(shared_key.to_string().contains("also used by x86"), "{shared_key}");
    // Without facts, the field is left out rather than null.
    let plain = serde_json::to_value(EngineError::ShuttingDown.body()).unwrap();
    assert!(plain.get("details").is_none(), "{plain}");
}
