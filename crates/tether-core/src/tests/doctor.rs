//! Unit tests of `doctor` (kept apart so the module file holds only shipping code).

use super::*;

#[test]
fn private_key_blocks_are_cut_and_everything_else_kept() {
    let text = "before\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQUJDRA==\n-----END OPENSSH PRIVATE KEY-----\nafter -----BEGIN CERTIFICATE----- stays\n";
    let out = redact(text);
    assert!(
        !out.contains("b3BlbnNzaC1rZXktdjEAAAAA") && !out.contains("QUJDRA=="),
        "{out}"
    );
    assert!(out.starts_with("before\n[private key removed]"), "{out}");
    assert!(out.contains("after -----BEGIN CERTIFICATE----- stays"), "{out}");
    // A block cut short (no END) is removed to the end, never kept.
    let cut = redact("x -----BEGIN RSA PRIVATE KEY-----\nMIIEow");
    assert!(!cut.contains("MIIEow"), "{cut}");
}

#[test]
fn programs_are_found_on_a_path_only_when_executable() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let path = std::env::join_paths([dir.path().join("none"), bin.clone()]).unwrap();
    let path = path.to_str().unwrap();
    assert_eq!(find_in_path(path, "docker"), None);
    std::fs::write(bin.join("docker"), "#!/bin/sh\n").unwrap();
    #[cfg(unix)]
    {
        assert_eq!(find_in_path(path, "docker"), None, "not executable yet");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(bin.join("docker"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert_eq!(find_in_path(path, "docker"), Some(bin.join("docker")));
}

#[test]
fn a_log_line_reads_like_the_log_file() {
    let l = crate::logring::LogLine {
        at_ms: 3_723_004,
        level: "warn".into(),
        vm: Some("arm".into()),
        text: "liveness probe unanswered misses=1".into(),
    };
    assert_eq!(
        line_text(&l),
        "01:02:03.004  WARN vm=arm liveness probe unanswered misses=1"
    );
}
