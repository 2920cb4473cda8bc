use super::*;

/// Every kind of facts a failure may carry, and none.
fn samples() -> Vec<Option<ErrorDetails>> {
    vec![
        None,
        Some(ErrorDetails::HostKey {
            host: "[10.0.0.5]:2222".into(),
            key_type: "ssh-ed25519".into(),
            fingerprint: "SHA256:abc".into(),
            recorded: vec![RecordedKey {
                key_type: "ssh-rsa".into(),
                fingerprint: "SHA256:old".into(),
                file: "/home/u/.local/share/tether/known_hosts".into(),
                line: 3,
            }],
            jump: false,
        }),
        Some(ErrorDetails::HostKey {
            host: "bastion".into(),
            key_type: "ssh-ed25519".into(),
            fingerprint: "SHA256:abc".into(),
            recorded: vec![],
            jump: true,
        }),
        Some(ErrorDetails::Port {
            port: 3000,
            remote: 3000,
            suggestion: 3001,
            holder: Some("pid 4121 (node)".into()),
        }),
        Some(ErrorDetails::Port {
            port: 80,
            remote: 80,
            suggestion: 10080,
            holder: None,
        }),
        Some(ErrorDetails::Vm { vm: "arm".into() }),
        Some(ErrorDetails::Key {
            key: "work".into(),
            used_by: vec!["arm".into(), "x86".into()],
        }),
        Some(ErrorDetails::Docker {
            message: "No such container: web".into(),
        }),
    ]
}

/// What a person who never opens a terminal should not have to read.
const CLI_WORDS: &[&str] = &[
    "`",
    "--",
    "<",
    ">",
    "tether ",
    "ssh-keygen",
    "GatewayPorts",
    "known_hosts",
    "authorized_keys",
    "sshd_config",
    "~/",
    "$",
    "NAME",
];

#[test]
fn every_code_has_advice_in_plain_words_whatever_its_facts() {
    for code in ErrorCode::ALL {
        for details in samples() {
            let Some(a) = advise(*code, details.as_ref()) else {
                panic!("{code} has no advice");
            };
            assert!(
                !a.title.is_empty() && !a.title.ends_with('.'),
                "{code}: title {:?}",
                a.title
            );
            assert!(
                a.sentence.ends_with('.') && a.sentence.chars().next().is_some_and(char::is_uppercase),
                "{code}: not a sentence: {:?}",
                a.sentence
            );
            for text in std::iter::once(&a.title)
                .chain(std::iter::once(&a.sentence))
                .chain(a.fixes.iter().map(|f| &f.label))
            {
                for w in CLI_WORDS {
                    assert!(!text.contains(w), "{code} with {details:?}: {w:?} in {text:?}");
                }
            }
            for f in &a.fixes {
                assert!(!f.label.is_empty(), "{code}: an action without a label");
            }
        }
    }
}

#[test]
fn the_facts_reach_the_words() {
    let port = advise(
        ErrorCode::PortInUse,
        Some(&ErrorDetails::Port {
            port: 3000,
            remote: 3000,
            suggestion: 3001,
            holder: Some("pid 4121 (node)".into()),
        }),
    )
    .unwrap_or_default();
    assert!(
        port.sentence.contains("3000") && port.sentence.contains("node"),
        "{port:?}"
    );
    assert_eq!(port.fixes[0].action, FixAction::UsePort);
    assert_eq!(port.fixes[0].label, "Use port 3001");
    let jump = advise(ErrorCode::HostKeyUnknown, samples()[2].as_ref()).unwrap_or_default();
    assert!(jump.sentence.contains("jump host bastion"), "{jump:?}");
    assert_eq!(jump.fixes[0].action, FixAction::TrustKey);
    let shared = advise(ErrorCode::KeyShared, samples()[6].as_ref()).unwrap_or_default();
    assert!(
        shared.sentence.contains("(x86)") && !shared.sentence.contains("arm"),
        "{shared:?}"
    );
    let docker = advise(ErrorCode::DockerApi, samples()[7].as_ref()).unwrap_or_default();
    assert!(docker.sentence.contains("No such container: web"), "{docker:?}");
}

#[test]
fn codes_cross_the_wire_by_their_names_and_a_newer_one_keeps_its_message() {
    let mut seen = std::collections::HashSet::new();
    for code in ErrorCode::ALL {
        let wire = serde_json::to_string(code).unwrap_or_default();
        assert_eq!(wire, format!("\"{}\"", code.as_str()));
        assert!(seen.insert(code.as_str()), "{code} named twice");
        let back: ErrorCode = serde_json::from_str(&wire).unwrap_or(ErrorCode::Unknown);
        assert_eq!(back, *code);
    }
    let body: ErrorBody =
        serde_json::from_str(r#"{"code":"a_code_from_next_year","message":"the newer engine's words"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body.code, ErrorCode::Unknown);
    assert_eq!(body.message, "the newer engine's words");
    assert_eq!(body.advice, None);
    assert_eq!(advise(ErrorCode::Unknown, None), None);
    // A body made here carries its advice.
    let made = ErrorBody::new(ErrorCode::NotConnected, "x".into(), None);
    assert_eq!(made.advice.map(|a| a.fixes[0].action), Some(FixAction::Connect));
}
