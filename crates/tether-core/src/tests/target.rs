//! Unit tests of `target` (kept apart so the module file holds only shipping code).

use super::*;

#[test]
fn parse_honours_hostname_user_port_identity() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config");
    std::fs::write(
        &p,
        "Host armvm\n  HostName 10.9.9.9\n  User deb\n  Port 2202\n  IdentityFile /k/id_ed25519\n  ServerAliveInterval 5\n",
    )
    .unwrap();
    let q = parse(&p).unwrap().query("armvm");
    assert_eq!(q.host_name.as_deref(), Some("10.9.9.9"));
    assert_eq!(q.user.as_deref(), Some("deb"));
    assert_eq!(q.port, Some(2202));
    assert_eq!(q.identity_file.unwrap(), vec![PathBuf::from("/k/id_ed25519")]);
}
