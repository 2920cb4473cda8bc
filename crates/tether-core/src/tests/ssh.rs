//! Unit tests of `ssh` and, over its connections, `pump`: against the in-process server
//! ([`crate::sshd`]), so a broken handshake, host-key check or bridge is found in seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::sshd::{FLOOD, TestSshd};

#[tokio::test]
async fn a_known_host_logs_in_and_an_unknown_or_changed_one_is_refused() {
    let sshd = TestSshd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let known = sshd.known_hosts(dir.path());
    let conn = sshd.login(known.clone()).await.expect("login to a known host");
    assert!(!conn.handle.is_closed());

    // Nobody has confirmed this host: refused, naming the fingerprint to check.
    let empty = dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let Err(err) = sshd.login(empty).await else {
        panic!("an unknown host is refused")
    };
    assert!(matches!(err, SshError::HostKeyUnknown { .. }), "{err:?}");

    // Another server at the same address, with another key: a changed key, refused.
    let other = TestSshd::start().await;
    let moved = dir.path().join("moved");
    std::fs::create_dir(&moved).unwrap();
    let recorded = other.known_hosts(&moved);
    let line = std::fs::read_to_string(&recorded).unwrap();
    let theirs = line.replace(
        &format!("]:{} ", other.addr.port()),
        &format!("]:{} ", sshd.addr.port()),
    );
    assert_ne!(theirs, line, "the other server's line names its port");
    std::fs::write(&recorded, theirs).unwrap();
    let Err(err) = sshd.login(recorded).await else {
        panic!("a changed key is refused")
    };
    assert!(matches!(err, SshError::HostKeyChanged { .. }), "{err:?}");
}

#[tokio::test]
async fn the_pump_carries_bytes_both_ways_and_the_end_of_data() {
    let sshd = TestSshd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = sshd.login(sshd.known_hosts(dir.path())).await.unwrap();
    let channel = conn.handle.channel_open_direct_streamlocal("/echo").await.unwrap();
    let (local, mut user) = tokio::io::duplex(64 * 1024);
    let bridge = tokio::spawn(crate::pump::bridge(
        local,
        channel,
        crate::flow::Budget::new(64 << 20),
        true,
        Arc::new(AtomicU64::new(0)),
        b"first ".to_vec(),
        None,
    ));
    let payload: Vec<u8> = (0..(4 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let (mut rd, mut wr) = tokio::io::split(&mut user);
    let send = async {
        wr.write_all(&payload).await.unwrap();
        // The end of this side's data reaches the VM, which ends its own.
        wr.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let recv = rd.read_to_end(&mut back);
    let ((), got) = tokio::join!(send, recv);
    got.unwrap();
    assert_eq!(
        &back[..6],
        b"first ",
        "what was read before the channel opened goes first"
    );
    assert!(
        back[6..] == payload[..],
        "{} bytes came back of {}",
        back.len() - 6,
        payload.len()
    );
    let stats = tokio::time::timeout(Duration::from_secs(10), bridge)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.to_local, back.len() as u64);
}

/// A reader that stops holds the VM back after one window, not after everything it sends; once
/// it reads again, every byte arrives.
#[tokio::test]
async fn a_stalled_reader_stops_the_sender_at_its_window() {
    let sshd = TestSshd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = sshd.login(sshd.known_hosts(dir.path())).await.unwrap();
    let channel = conn.handle.channel_open_direct_streamlocal("/flood").await.unwrap();
    let (local, mut user) = tokio::io::duplex(64 * 1024);
    let bridge = tokio::spawn(crate::pump::bridge(
        local,
        channel,
        crate::flow::Budget::new(64 << 20),
        true,
        Arc::new(AtomicU64::new(0)),
        Vec::new(),
        None,
    ));
    // Nothing reads `user`: the sender must come to rest.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = u64::MAX;
    let rested = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = sshd.flooded.load(Ordering::Relaxed);
        if now == last {
            break now;
        }
        assert!(Instant::now() < deadline, "the sender never stopped ({now} bytes)");
        last = now;
    };
    assert!(
        rested <= 8 << 20,
        "{rested} bytes left the VM for a reader that read nothing: more than its window"
    );
    assert!(rested < FLOOD);
    let mut got = Vec::new();
    user.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len() as u64, FLOOD);
    assert!(got.iter().all(|b| *b == 0x5a));
    bridge.await.unwrap();
}

#[tokio::test]
async fn channels_the_server_opens_unasked_are_refused_and_the_connection_stays_good() {
    let sshd = TestSshd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let conn = sshd.login(sshd.known_hosts(dir.path())).await.unwrap();
    let vm = sshd.session();
    for _ in 0..100 {
        assert!(vm.channel_open_session().await.is_err(), "session");
        assert!(vm.channel_open_x11("127.0.0.1", 6010).await.is_err(), "x11");
        assert!(vm.channel_open_agent().await.is_err(), "agent");
        assert!(
            vm.channel_open_direct_tcpip("127.0.0.1", 22, "127.0.0.1", 1)
                .await
                .is_err(),
            "direct-tcpip"
        );
        assert!(
            vm.channel_open_direct_streamlocal("/run/x").await.is_err(),
            "direct-streamlocal"
        );
        assert!(
            vm.channel_open_forwarded_streamlocal("/run/y").await.is_err(),
            "forwarded-streamlocal"
        );
        // No reverse tunnel was asked for on this connection.
        assert!(
            vm.channel_open_forwarded_tcpip("127.0.0.1", 80, "127.0.0.1", 1)
                .await
                .is_err(),
            "forwarded-tcpip"
        );
    }
    let mut echo = conn
        .handle
        .channel_open_direct_streamlocal("/echo")
        .await
        .unwrap()
        .into_stream();
    echo.write_all(b"still here").await.unwrap();
    let mut back = [0u8; 10];
    echo.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"still here");
}

#[tokio::test]
async fn a_confirmed_fingerprint_is_spent_on_the_first_unknown_host_of_a_chain() {
    // The VM, `localhost` behind the bastion 127.0.0.1, is answered by the bastion's own sshd
    // with the bastion's key. The user confirmed that key for the bastion, which the error
    // named: the VM presenting it is a second host, refused until its own question is answered.
    let sshd = TestSshd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("known_hosts");
    std::fs::write(&own, "").unwrap();
    let fp = crate::known_hosts::fingerprint(sshd.host_key.public_key());
    let mut vm = sshd.target();
    vm.alias = "localhost".into();
    vm.host = "localhost".into();
    vm.jumps = vec![sshd.target()];
    let policy = |confirmed: Option<String>| HostKeyPolicy {
        files: vec![own.clone()],
        accept_new: false,
        confirmed: Confirmation::of(confirmed),
        scan: false,
    };
    let logins = || crate::identity::Logins::same(sshd.credentials());
    let Err(err) = connect(&vm, policy(Some(fp.clone())), logins(), None, Timeouts::default(), None).await else {
        panic!("the bastion's key was taken for the VM's")
    };
    let vm_entry = format!("[localhost]:{}", sshd.addr.port());
    match &err {
        SshError::HostKeyUnknown { host, fingerprint, .. } => {
            assert_eq!(host, &vm_entry);
            assert_eq!(fingerprint, &fp);
        }
        other => panic!("{other:?}"),
    }
    let recorded = std::fs::read_to_string(&own).unwrap();
    assert!(
        recorded.contains(&format!("[127.0.0.1]:{}", sshd.addr.port())),
        "{recorded}"
    );
    assert!(!recorded.contains("localhost"), "{recorded}");
    // Asked about and confirmed for the VM itself: it connects.
    let conn = connect(&vm, policy(Some(fp)), logins(), None, Timeouts::default(), None)
        .await
        .expect("the VM, confirmed in its turn");
    assert_eq!(conn.hops.len(), 1);
    assert!(std::fs::read_to_string(&own).unwrap().contains(&vm_entry));
}
