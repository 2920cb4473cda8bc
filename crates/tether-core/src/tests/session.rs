//! Unit tests of the session actor against the in-process SSH server ([`crate::sshd`]): a whole
//! connect, a request through the forwarded Docker socket, a VM that goes away and comes back,
//! and a disconnect, in about a second and without the lab.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::sshd::{TestSshd, VERSION};

/// A session for the in-process server, with its key file and its host key known to Tether.
fn session_for(sshd: &TestSshd, dir: &std::path::Path) -> (SessionHandle, Paths, watch::Sender<u64>) {
    let paths = Paths::under(dir.join("home"));
    std::fs::create_dir_all(&paths.config_dir).unwrap();
    crate::paths::ensure_private_dir(&paths.runtime_dir).unwrap();
    crate::paths::ensure_private_dir(&paths.runtime_dir.join("vms")).unwrap();
    // Tether's own known_hosts lists the server, as after the user confirmed it.
    let known = sshd.known_hosts(dir);
    std::fs::copy(&known, paths.known_hosts()).unwrap();
    let mut profile = Profile::new("127.0.0.1");
    profile.port = Some(sshd.addr.port());
    profile.user = Some("tester".into());
    profile.identity = Some(sshd.key_file(dir));
    profile.remote_socket = "/docker.sock".into();
    // ~/.ssh/config is not this test's: a Host * there must not change the target.
    profile.jump = Some("none".into());
    let (events, _) = broadcast::channel(64);
    let (net_tx, net) = watch::channel(0u64);
    let handle = spawn(
        "fast".into(),
        profile,
        paths.clone(),
        events,
        net,
        Keys::new(crate::keystore::KeyStore::os()),
        forward::Shared::default(),
        None,
    );
    (handle, paths, net_tx)
}

/// `GET /version` through the forwarded Docker socket, as the docker CLI asks it.
async fn version_through(socket: &std::path::Path) -> String {
    let mut s = crate::endpoint::connect(socket).await.expect("the forwarded socket");
    s.write_all(b"GET /version HTTP/1.1\r\nHost: docker\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).ends_with(VERSION) {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(n > 0, "the socket closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

async fn wait_state(handle: &SessionHandle, want: fn(&State) -> bool, what: &str) -> VmStatus {
    let mut rx = handle.watch();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        rx.wait_for(|s| want(&s.state)).await.map(|s| s.clone())
    })
    .await;
    match got {
        Ok(Ok(s)) => s,
        _ => panic!("the session never became {what}: {:?}", handle.watch().borrow().state),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_serves_the_socket_survives_the_vm_going_away_and_disconnects() {
    let sshd = TestSshd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (handle, paths, _net) = session_for(&sshd, dir.path());

    let report = handle.connect(ConnectOpts::default()).await.expect("connect");
    assert_eq!(report.status.state, State::Connected, "{:?}", report.status.last_error);
    // The engine check asked the VM's socket for its version.
    let engine = report.status.engine.as_ref().expect("an engine check");
    assert!(engine.ok, "{engine:?}");
    let socket = paths.docker_socket("fast");
    let answer = version_through(&socket).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");

    // The VM goes away: the session notices at once and keeps its socket while it retries.
    sshd.stop();
    wait_state(&handle, |s| matches!(s, State::Reconnecting { .. }), "reconnecting").await;
    // (A named pipe is no file: on Windows the requests below show the endpoint is there.)
    assert!(!cfg!(unix) || socket.exists(), "the socket went with the link");

    // It comes back on the same port: the session reconnects by itself and the socket works.
    let back = sshd.restart().await;
    wait_state(&handle, |s| *s == State::Connected, "connected again").await;
    version_through(&socket).await;

    handle.disconnect().await.unwrap();
    let s = wait_state(&handle, |s| *s == State::Disconnected, "disconnected").await;
    assert!(s.last_error.is_none(), "{:?}", s.last_error);
    // A Windows pipe's last instance goes with its accept task, which the disconnect does not
    // wait for (when the pipe lives is the security review's M3); a Unix socket is gone by now.
    #[cfg(unix)]
    {
        assert!(!socket.exists(), "the socket outlived the disconnect");
        assert!(
            crate::endpoint::connect(&socket).await.is_err(),
            "the endpoint still answers after the disconnect"
        );
    }
    handle.shutdown().await;
    drop(back);
}

/// A host whose key nobody confirmed: the first connect fails, naming the key, and the session
/// does not retry on its own (only the user can settle a host key).
#[tokio::test]
async fn an_unknown_host_key_fails_the_connect_and_is_not_retried() {
    let sshd = TestSshd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (handle, paths, _net) = session_for(&sshd, dir.path());
    std::fs::write(paths.known_hosts(), "").unwrap();
    let Err(err) = handle.connect(ConnectOpts::default()).await else {
        panic!("refused")
    };
    assert_eq!(err.code().as_str(), "host_key_unknown", "{err}");
    let s = handle.watch().borrow().clone();
    assert!(matches!(s.state, State::Failed | State::Disconnected), "{:?}", s.state);
    handle.shutdown().await;
}
