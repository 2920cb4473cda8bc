//! Unit tests of `ping`: which requests are answered on the laptop, and the answer's bytes.

use super::*;

/// dockerd 20.10's answer to `GET /_ping`, as the lab's engine sends it.
const GET_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nCache-Control: no-cache, no-store, must-revalidate\r\nDocker-Experimental: false\r\nOstype: linux\r\nPragma: no-cache\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nDate: Tue, 01 Dec 2026 12:08:31 GMT\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOK";

#[test]
fn the_plain_pings_of_the_docker_cli_are_recognised() {
    let head = b"HEAD /_ping HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: Docker-Client/28.2.2 (linux)\r\n\r\n";
    assert_eq!(
        classify(head),
        Request::Ping {
            head: true,
            len: head.len()
        }
    );
    let get = b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n";
    assert_eq!(
        classify(get),
        Request::Ping {
            head: false,
            len: get.len()
        }
    );
    // A pipelined request after it is not part of the ping.
    let mut two = get.to_vec();
    two.extend_from_slice(b"GET /v1.41/version HTTP/1.1\r\nHost: docker\r\n\r\n");
    assert_eq!(
        classify(&two),
        Request::Ping {
            head: false,
            len: get.len()
        }
    );
}

#[test]
fn anything_but_a_plain_ping_goes_to_the_vm() {
    for req in [
        &b"GET /v1.41/_ping HTTP/1.1\r\nHost: d\r\n\r\n"[..],
        b"GET /_ping?x=1 HTTP/1.1\r\nHost: d\r\n\r\n",
        b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n",
        b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
        b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
        b"GET /_ping HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\n\r\nabc",
        b"GET /_ping HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /_ping HTTP/1.1\r\nHost: d\r\n\r\n",
        b"GET /_pingx HTTP/1.1\r\nHost: d\r\n\r\n",
        b"GET /containers/json HTTP/1.1\r\nHost: d\r\n\r\n",
        b"\x16\x03\x01\x00",
    ] {
        assert_eq!(classify(req), Request::Other, "{}", String::from_utf8_lossy(req));
    }
}

#[test]
fn a_ping_cut_short_waits_for_more_and_other_requests_are_known_at_once() {
    assert_eq!(classify(b""), Request::Partial);
    assert_eq!(classify(b"HE"), Request::Partial);
    assert_eq!(classify(b"GET /_ping HTTP/1.1\r\nHost: d\r\n"), Request::Partial);
    // The first bytes of any other request settle it: nothing waits for the rest.
    assert_eq!(classify(b"GET /c"), Request::Other);
    assert_eq!(classify(b"P"), Request::Other);
    // A head that never ends is nobody's ping.
    let mut long = b"GET /_ping HTTP/1.1\r\nX: ".to_vec();
    long.resize(MAX_HEAD + 10, b'a');
    assert_eq!(classify(&long), Request::Other);
}

#[test]
fn an_answer_is_the_engines_bytes_with_only_the_date_renewed() {
    let a = Answer::new(GET_ANSWER);
    assert_eq!(
        a.date,
        Some(httpdate::parse_http_date("Tue, 01 Dec 2026 12:08:31 GMT").expect("date"))
    );
    let then = httpdate::parse_http_date("Tue, 01 Dec 2026 12:08:31 GMT").expect("date");
    assert_eq!(a.render(then), GET_ANSWER);
    let later = then + Duration::from_secs(3600);
    let now = a.render(later);
    let text = String::from_utf8(now).expect("utf-8");
    assert!(text.contains("\r\nDate: Tue, 01 Dec 2026 13:08:31 GMT\r\n"), "{text}");
    assert_eq!(text.replace("13:08:31", "12:08:31").as_bytes(), GET_ANSWER);
    assert!(!a.has_header(b"swarm"));
    assert!(a.has_header(b"api-version"));
}

#[test]
fn an_answer_with_a_swarm_header_is_marked_for_relearning() {
    let with = String::from_utf8_lossy(GET_ANSWER).replace("Server:", "Swarm: inactive\r\nServer:");
    assert!(Answer::new(with.as_bytes()).has_header(b"swarm"));
}

#[test]
fn an_answer_without_a_date_is_served_as_it_came() {
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";
    let a = Answer::new(raw);
    assert_eq!(a.date, None);
    assert_eq!(a.render(SystemTime::now()), raw);
}
