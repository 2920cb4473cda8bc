//! The lab's delay relay (`tether_e2e::relay`): every byte arrives intact, in order, and no
//! sooner than the delay in each direction, and an end of stream is passed on.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use tether_e2e::relay::Relay;

/// An echo server on loopback: each connection's bytes back to it, then a half-close.
fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut back = conn.try_clone().expect("clone");
                let _ = std::io::copy(&mut conn, &mut back);
                let _ = back.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

#[test]
fn a_round_trip_through_the_relay_takes_twice_its_delay_and_loses_nothing() {
    let one_way = Duration::from_millis(40);
    let relay = Relay::start(echo_server(), one_way);
    let mut s = TcpStream::connect(relay.addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");

    let t0 = Instant::now();
    s.write_all(b"ping").expect("write");
    let mut got = [0u8; 4];
    s.read_exact(&mut got).expect("read");
    let rtt = t0.elapsed();
    assert_eq!(&got, b"ping");
    assert!(
        rtt >= one_way * 2,
        "a round trip took {rtt:?}, less than twice {one_way:?}"
    );

    // 8 MiB of a pattern, echoed back whole and in order, then the end of the stream.
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut reader = s.try_clone().expect("clone");
    let back = std::thread::spawn(move || {
        let mut all = Vec::new();
        reader.read_to_end(&mut all).expect("read to end");
        all
    });
    s.write_all(&data).expect("write");
    s.shutdown(Shutdown::Write).expect("half-close");
    let all = back.join().expect("reader");
    assert_eq!(all.len(), data.len());
    assert!(all == data, "the echoed bytes differ");
}
