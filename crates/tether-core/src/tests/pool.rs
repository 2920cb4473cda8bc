//! Unit tests of `pool` against the in-process SSH server ([`crate::sshd`]): channels are opened
//! ahead of demand, handed out ready and working, and never handed out from a connection or a
//! path that is no longer current.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::sshd::TestSshd;

/// A logged-in connection to `sshd`, as the session's link holds it.
async fn link_to(sshd: &TestSshd, dir: &std::path::Path) -> Arc<Handle<ClientHandler>> {
    let conn = sshd
        .login(sshd.known_hosts(dir))
        .await
        .unwrap_or_else(|e| panic!("login: {e}"));
    Arc::new(conn.handle)
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "{what} within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn demand_fills_the_pool_and_a_new_link_or_path_empties_it() {
    let sshd = TestSshd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = link_to(&sshd, dir.path()).await;
    let pool = Pool::new(
        "/echo".into(),
        Arc::new(AtomicUsize::new(4)),
        Arc::new(AtomicBool::new(false)),
        crate::tasks::Tasks::default(),
    );
    let (link_tx, link_rx) = watch::channel(Some(conn.clone()));
    let cancel = CancellationToken::new();
    let running = tokio::spawn(pool.clone().run(link_rx, cancel.clone()));

    // Nothing is opened before anyone asks; the first ask is a miss and starts the filling.
    assert_eq!(pool.view().ready, 0);
    assert!(pool.take(&conn).is_none());
    until("a channel ready", || pool.view().ready == 1).await;

    // The next ask gets that channel, open at the VM and working.
    let ch = pool.take(&conn).expect("a pooled channel");
    let v = pool.view();
    assert_eq!((v.hits, v.misses), (1, 1), "{v:?}");
    let mut stream = ch.into_stream();
    stream.write_all(b"pooled").await.unwrap();
    let mut back = [0u8; 6];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"pooled");
    until("the pool refilled", || pool.view().ready >= 1).await;

    // A reconnect: the old connection ends, and what the pool hands out runs on the new one.
    let again = link_to(&sshd, dir.path()).await;
    link_tx.send(Some(again.clone())).unwrap();
    conn.disconnect(russh::Disconnect::ByApplication, "replaced", "en")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let ch = loop {
        if let Some(ch) = pool.take(&again) {
            break ch;
        }
        assert!(Instant::now() < deadline, "no channel on the new link within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut stream = ch.into_stream();
    stream.write_all(b"again!").await.unwrap();
    stream
        .read_exact(&mut back)
        .await
        .expect("a channel of the ended connection was handed out");
    assert_eq!(&back, b"again!");

    // Another socket path on the VM: what was opened for the old one is let go at once, and
    // nothing is handed out until a channel to the new path opens (here it never does).
    until("the pool refilled", || pool.view().ready >= 1).await;
    pool.set_path("/no/such.sock");
    assert_eq!(pool.view().ready, 0);
    assert!(pool.take(&again).is_none(), "a channel to the old path was handed out");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pool.view().ready, 0, "a channel to a path the VM refuses was kept");

    cancel.cancel();
    running.await.unwrap();
}
