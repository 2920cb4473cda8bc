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
