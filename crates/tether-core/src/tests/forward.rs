//! Unit tests of `forward` (kept apart so the module file holds only shipping code).

use super::*;

#[cfg(unix)]
#[tokio::test]
async fn stale_socket_is_replaced_but_a_live_one_is_kept() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm/docker.sock");
    let live = bind_local(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // Someone is serving it: never unlinked.
    assert!(matches!(bind_local(&path), Err(ForwardError::SocketInUse { .. })));
    assert!(path.exists());
    // The server went away without cleaning up (a crash): the stale file is replaced.
    drop(live);
    assert!(path.exists());
    let _again = bind_local(&path).unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn a_regular_file_is_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    std::fs::write(&path, "mine").unwrap();
    assert!(matches!(bind_local(&path), Err(ForwardError::NotASocket { .. })));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
}

#[test]
fn busy_port_names_the_holder_and_a_way_out() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let err = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap_err();
    let msg = classify_bind_error(port, 5432, err).to_string();
    // Windows' holder comes from its TCP table, which Wine (where the Windows build's tests
    // run) leaves without owners; the way out is named everywhere.
    if cfg!(unix) {
        assert!(msg.contains(&format!("by pid {}", std::process::id())), "{msg}");
    }
    assert!(msg.contains(&format!("-p {}:5432", port + 1)), "{msg}");
}

#[test]
fn a_tunnel_never_shadows_another_processs_wildcard_listener() {
    // Another process (a local Postgres, say) listens on every address.
    let theirs = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = theirs.local_addr().unwrap().port();
    let err = bind_loopback(port).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    drop(theirs);
    // Free again: the tunnel binds loopback only.
    let ours = bind_loopback(port).unwrap();
    assert_eq!(
        ours.local_addr().unwrap(),
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port))
    );
}
