//! Unit tests of `paths` (kept apart so the module file holds only shipping code).

use super::*;

#[test]
fn tether_home_puts_everything_under_it() {
    let p = Paths::under(PathBuf::from("/x/home"));
    for dir in [&p.config_dir, &p.state_dir, &p.runtime_dir, &p.log_dir] {
        assert!(dir.starts_with("/x/home"), "{dir:?}");
    }
    assert_eq!(p.docker_socket("arm"), PathBuf::from("/x/home/run/vms/arm/docker.sock"));
}

#[test]
fn private_dir_is_0700_and_wide_dir_is_tightened() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("a/b");
    ensure_private_dir(&d).unwrap();
    let mode = |d: &Path| fs::metadata(d).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&d), 0o700);
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    ensure_private_dir(&d).unwrap();
    assert_eq!(mode(&d), 0o700);
}

#[test]
fn long_socket_path_is_rejected_with_length() {
    let long = PathBuf::from(format!("/{}", "a".repeat(120)));
    let err = check_socket_path(&long).unwrap_err().to_string();
    assert!(err.contains("121 bytes"), "{err}");
}

#[test]
fn a_grown_log_is_moved_aside_when_opened() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("engine.log");
    // Small: appended to, and private.
    open_log(&log).unwrap().write_all(b"first\n").unwrap();
    open_log(&log).unwrap().write_all(b"second\n").unwrap();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "first\nsecond\n");
    assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);
    // Past the limit: the old log becomes engine.log.1 (replacing an older one), a new one starts.
    std::fs::write(dir.path().join("engine.log.1"), "oldest").unwrap();
    let big = vec![b'x'; LOG_ROTATE_BYTES as usize + 1];
    std::fs::write(&log, &big).unwrap();
    open_log(&log).unwrap().write_all(b"fresh\n").unwrap();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "fresh\n");
    assert_eq!(
        std::fs::metadata(dir.path().join("engine.log.1")).unwrap().len(),
        big.len() as u64
    );
}
