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
