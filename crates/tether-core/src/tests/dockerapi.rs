use super::*;
use proptest::prelude::*;

const CREATE_BODY: &str = r#"{"Image":"busybox","HostConfig":{"Binds":["/home/u/app:/app:ro","data:/data","/var/run/docker.sock:/s"],"Mounts":[{"Type":"bind","Source":"/home/u/src","Target":"/src"},{"Type":"volume","Source":"v","Target":"/v"}]}}"#;

fn stream() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(b"GET /v1.47/containers/json HTTP/1.1\r\nHost: api.moby.localhost\r\n\r\n");
    s.extend_from_slice(
        format!(
            "POST /v1.47/containers/create?name=web HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{CREATE_BODY}",
            CREATE_BODY.len()
        )
        .as_bytes(),
    );
    // An upload with chunked framing (docker load), extensions and a trailer.
    s.extend_from_slice(b"POST /v1.47/images/load HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n");
    // A create sent chunked.
    let half = CREATE_BODY.len() / 2;
    s.extend_from_slice(
        format!(
            "POST /containers/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            half,
            &CREATE_BODY[..half],
            CREATE_BODY.len() - half,
            &CREATE_BODY[half..]
        )
        .as_bytes(),
    );
    // An attach: after it, raw stream bytes that would not parse as HTTP.
    s.extend_from_slice(b"POST /v1.47/containers/abc/attach?stream=1 HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n\x00\x01garbage POST /containers/create HTTP/1.1\r\n\r\n");
    s
}

fn run(input: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<Create>, Vec<String>) {
    let mut f = Framer::default();
    let (mut passed, mut creates, mut bad) = (Vec::new(), Vec::new(), Vec::new());
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| (*c).min(input.len())).collect();
    cuts.sort();
    cuts.push(input.len());
    for c in cuts {
        if c < at {
            continue;
        }
        for p in f.feed(&input[at..c]) {
            match p {
                Piece::Pass(b) => passed.extend_from_slice(&b),
                Piece::Create(c) => {
                    passed.extend_from_slice(&c.raw);
                    creates.push(c);
                }
                Piece::Bad(why) => bad.push(why),
            }
        }
        at = c;
    }
    (passed, creates, bad)
}

proptest! {
    /// However the client's bytes are cut, everything passes in order and byte for byte, both
    /// creates are found whole, and the attach's raw stream is not read as requests.
    #[test]
    fn any_split_passes_everything_and_finds_the_creates(cuts in proptest::collection::vec(0usize..1200, 0..12)) {
        let input = stream();
        let (passed, creates, bad) = run(&input, &cuts);
        prop_assert!(bad.is_empty(), "{bad:?}");
        prop_assert_eq!(passed, input);
        prop_assert_eq!(creates.len(), 2);
        for c in &creates {
            prop_assert_eq!(c.body.as_slice(), CREATE_BODY.as_bytes());
        }
    }

    /// Arbitrary bytes never panic, and what the framer passes is a prefix of its input.
    #[test]
    fn garbage_passes_a_prefix_or_is_refused(input in proptest::collection::vec(any::<u8>(), 0..300), cuts in proptest::collection::vec(0usize..300, 0..4)) {
        let (passed, _, _) = run(&input, &cuts);
        prop_assert!(input.starts_with(&passed));
    }

    /// Valid-looking heads with random framing values never panic either.
    #[test]
    fn random_headers_do_not_panic(len in ".{0,12}", te in ".{0,12}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut input = format!("POST /containers/create HTTP/1.1\r\nContent-Length: {len}\r\nTransfer-Encoding: {te}\r\n\r\n").into_bytes();
        input.extend(body);
        let _ = run(&input, &[]);
    }
}

#[test]
fn malformed_requests_are_refused_with_a_reason() {
    for bad in [
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        b"POST /x HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let (_, _, why) = run(bad, &[]);
        assert_eq!(why.len(), 1, "{:?}", String::from_utf8_lossy(bad));
    }
    let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
    let (_, _, why) = run(&huge, &[]);
    assert_eq!(why, vec!["the request head is over 64 KiB".to_string()]);
}

#[test]
fn creates_are_known_by_method_and_path() {
    assert!(is_create("POST", "/containers/create"));
    assert!(is_create("POST", "/v1.47/containers/create?name=a"));
    assert!(!is_create("GET", "/containers/create"));
    assert!(!is_create("POST", "/containers/created"));
    assert!(!is_create("POST", "/vx/containers/create"));
    assert!(!is_create("POST", "/v1.47/containers/abc/start"));
}

#[test]
fn bind_sources_are_paths_not_volume_names() {
    let body: serde_json::Value = serde_json::from_str(CREATE_BODY).unwrap_or_default();
    assert_eq!(
        bind_sources(&body),
        vec!["/home/u/app", "/var/run/docker.sock", "/home/u/src"]
    );
    assert_eq!(bind_source(r"C:\Users\me\app:/app"), Some(r"C:\Users\me\app"));
    assert_eq!(bind_source("C:/Users/me/app:/app:ro"), Some("C:/Users/me/app"));
    assert_eq!(bind_source("myvol:/data"), None);
}

#[test]
fn a_rewrite_changes_only_the_mapped_sources_and_keeps_options() {
    let mut body: serde_json::Value = serde_json::from_str(CREATE_BODY).unwrap_or_default();
    let map = [
        ("/home/u/app".to_string(), "/m/home/u/app".to_string()),
        ("/home/u/src".to_string(), "/m/home/u/src".to_string()),
    ]
    .into_iter()
    .collect();
    rewrite_binds(&mut body, &map);
    assert_eq!(
        body["HostConfig"]["Binds"],
        serde_json::json!(["/m/home/u/app:/app:ro", "data:/data", "/var/run/docker.sock:/s"])
    );
    assert_eq!(body["HostConfig"]["Mounts"][0]["Source"], "/m/home/u/src");
    assert_eq!(body["HostConfig"]["Mounts"][1]["Source"], "v");
    assert_eq!(body["Image"], "busybox");
}

#[test]
fn a_new_body_gets_a_new_length_and_loses_chunking() {
    let (_, creates, _) = run(&stream(), &[]);
    let out = creates[1].with_body(b"{}");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("POST /containers/create HTTP/1.1\r\n"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("transfer-encoding"), "{text}");
    assert!(text.ends_with("Content-Length: 2\r\n\r\n{}"), "{text}");
}
