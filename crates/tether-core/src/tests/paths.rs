//! Unit tests of `paths` (kept apart so the module file holds only shipping code).
//!
//! Modes, owners and symlinks: Unix only (Windows' owners and DACLs are tested with its pipes',
//! in `endpoint`'s tests).
#![cfg(unix)]

use super::*;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

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
fn every_created_directory_is_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("a/b/c");
    ensure_private_dir(&d).unwrap();
    let mode = |d: &Path| fs::metadata(d).unwrap().permissions().mode() & 0o777;
    for p in ["a", "a/b", "a/b/c"] {
        assert_eq!(mode(&tmp.path().join(p)), 0o700, "{p}");
    }
}

#[test]
fn a_symlinked_private_dir_is_refused_even_when_it_points_somewhere_private() {
    let tmp = tempfile::tempdir().unwrap();
    // The target looks perfect: ours, 0700. The link is what is wrong: whoever planted it
    // chooses where the sockets land.
    let target = tmp.path().join("elsewhere");
    fs::DirBuilder::new().mode(0o700).create(&target).unwrap();
    let run = tmp.path().join("run");
    std::os::unix::fs::symlink(&target, &run).unwrap();
    let err = ensure_private_dir(&run).unwrap_err();
    assert!(matches!(err, PathError::Symlink { .. }), "{err}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    // A planted link where Tether would create a directory is the same case.
    let vms = tmp.path().join("vms");
    std::os::unix::fs::symlink(&target, &vms).unwrap();
    assert!(matches!(ensure_private_dir(&vms), Err(PathError::Symlink { .. })));
}

#[test]
fn a_directory_of_another_user_is_refused() {
    if crate::peer::me() != 0 {
        eprintln!("skipped: giving a directory to another user needs root (the test suite runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("run");
    fs::DirBuilder::new().mode(0o700).create(&d).unwrap();
    std::os::unix::fs::chown(&d, Some(65534), Some(65534)).unwrap();
    let err = ensure_private_dir(&d).unwrap_err();
    assert!(matches!(err, PathError::NotPrivate { .. }), "{err}");
}

#[test]
fn atomic_writes_go_through_symlinks_and_keep_them() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("dotfiles/config.json");
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::write(&real, "old").unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
    let link = tmp.path().join("config.json");
    // A relative link, as dotfile managers make them.
    std::os::unix::fs::symlink("dotfiles/config.json", &link).unwrap();
    write_atomic(&link, b"new").unwrap();
    assert!(
        fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
        "the link was replaced"
    );
    assert_eq!(fs::read_to_string(&real).unwrap(), "new");
    assert_eq!(fs::metadata(&real).unwrap().permissions().mode() & 0o777, 0o640);
    // A loop is an error, not a hang, and nothing is written.
    let (x, y) = (tmp.path().join("x"), tmp.path().join("y"));
    std::os::unix::fs::symlink(&y, &x).unwrap();
    std::os::unix::fs::symlink(&x, &y).unwrap();
    assert!(write_atomic(&x, b"z").unwrap_err().to_string().contains("loop"));
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
