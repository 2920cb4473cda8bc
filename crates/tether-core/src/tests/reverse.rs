//! Unit tests of `reverse` (kept apart so the module file holds only shipping code).

use super::*;

const HEAD: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

fn line(addr: &str, port: u16, state: &str) -> String {
    format!(
        "   0: {addr}:{port:04X} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n"
    )
}

#[test]
fn listening_addresses_are_read_from_proc_net_tcp() {
    let text = [
        HEAD.to_string(),
        line("0100007F", 5432, "0A"),
        line("010011AC", 5432, "0A"),
        // Another port, and a connection (not listening) on this one.
        line("00000000", 22, "0A"),
        line("0100007F", 5432, "01"),
        HEAD.to_string(),
        line("00000000000000000000000001000000", 5432, "0A"),
        line("0000000000000000FFFF0000010011AC", 6000, "0A"),
    ]
    .concat();
    let found = listeners(&text, 5432);
    assert_eq!(
        found,
        vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([172, 17, 0, 1]),
            IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        ]
    );
    assert_eq!(listeners(&text, 6000), vec![IpAddr::from([172, 17, 0, 1])]);
    assert_eq!(listeners(&text, 22), vec![IpAddr::from([0, 0, 0, 0])]);
    assert!(listeners(&text, 7).is_empty());
    assert!(listeners("garbage\n:\n", 7).is_empty());
}

/// A laptop service on 127.0.0.1 that greets each connection and holds it until the peer ends it.
async fn greeter() -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"hello").await;
                let mut sink = [0u8; 64];
                while s.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            });
        }
    });
    port
}

/// What the VM's side reads first from a channel it opened: the laptop service's greeting.
async fn greeting(channel: russh::Channel<russh::server::Msg>) -> (Vec<u8>, russh::ChannelStream<russh::server::Msg>) {
    use tokio::io::AsyncReadExt as _;
    let mut stream = channel.into_stream();
    let mut got = vec![0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut got))
        .await
        .expect("the greeting in time")
        .expect("the greeting");
    (got, stream)
}

#[tokio::test]
async fn a_tunnel_serves_only_the_peers_it_admits_and_no_more_streams_than_the_limit() {
    let sshd = crate::sshd::TestSshd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let shared = crate::forward::Shared::default();
    shared.max_streams.store(2, Ordering::Relaxed);
    let table = Table::new(&shared, Arc::new(AtomicU64::new(0)));
    let _conn = sshd
        .login_with(sshd.known_hosts(dir.path()), Some(table.clone()))
        .await
        .expect("login");
    let vm = sshd.session();
    let local = greeter().await;
    // sshd names the address the tunnel was asked on and the peer it accepted.
    let open = |peer: &'static str| {
        let vm = vm.clone();
        async move { vm.channel_open_forwarded_tcpip("127.0.0.1", 5000, peer, 40000).await }
    };

    // Not asked for: refused whoever asks.
    assert!(open("127.0.0.1").await.is_err());
    table.set(5000, local);
    // Asked on another address and being checked: nobody, not even the loopback.
    assert!(open("127.0.0.1").await.is_err(), "served while being checked");
    assert!(open("10.77.63.1").await.is_err(), "served while being checked");

    // On the loopback: loopback peers only, whatever address sshd really bound.
    table.admit(5000, Admit::Loopback);
    for stranger in [
        "10.77.63.1",
        "::ffff:10.77.63.1",
        "fe80::1",
        "172.17.0.2",
        "not an address",
    ] {
        assert!(
            open(stranger).await.is_err(),
            "{stranger} was served by a loopback tunnel"
        );
    }
    let (hello, first) = greeting(open("127.0.0.1").await.expect("a loopback peer")).await;
    assert_eq!(hello, b"hello");
    let (hello, _second) = greeting(open("::1").await.expect("an IPv6 loopback peer")).await;
    assert_eq!(hello, b"hello");

    // Checked on its address: anyone, up to the limit of streams at once.
    table.admit(5000, Admit::Anyone);
    assert!(open("10.77.63.1").await.is_err(), "a third stream over a limit of two");
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while table.counts(5000).0 > 1 {
        assert!(std::time::Instant::now() < deadline, "the ended stream still counts");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (hello, _third) = greeting(open("10.77.63.1").await.expect("room again")).await;
    assert_eq!(hello, b"hello");
    assert_eq!(table.counts(5000).1, 3, "three streams were served");
}
