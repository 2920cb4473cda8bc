//! Unit tests of `control` (kept apart so the module file holds only shipping code).

use super::*;

#[test]
fn error_crosses_as_code_and_message() {
    let e = EngineError::from(crate::config::ConfigError::NoSuchVm("arm".into()));
    let resp = Response::from_result(Err(e));
    let v = serde_json::to_value(&resp).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "no_such_vm");
    assert!(v["error"]["message"].as_str().unwrap().contains("tether vm add"));
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
}

#[test]
fn requests_are_tagged_by_op() {
    let r: Request = serde_json::from_str(r#"{"op":"connect","name":"arm"}"#).unwrap();
    assert!(matches!(r, Request::Connect { name: Some(n), accept_new: false, .. } if n == "arm"));
}

async fn engine_recent(sock: &Path, vm: &str) -> Vec<Value> {
    let mut c = Client::connect(sock).await.unwrap();
    // The recorder runs beside the caller; give it its turn before asking.
    for _ in 0..100 {
        let v = c.call(&Request::RecentEvents { name: vm.into() }).await.unwrap();
        if v.as_array().is_some_and(|a| !a.is_empty()) {
            return v.as_array().cloned().unwrap_or_default();
        }
        tokio::task::yield_now().await;
    }
    Vec::new()
}

/// An engine in `dir` serving its control socket, and a client once the socket answers.
async fn serving(
    dir: &Path,
) -> (
    Engine,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), EngineError>>,
    std::path::PathBuf,
    Client,
) {
    let paths = crate::paths::Paths::under(dir.to_path_buf());
    let engine = Engine::start(paths.clone(), crate::instance::Kind::Test).await.unwrap();
    let cancel = CancellationToken::new();
    let server = tokio::spawn(serve(engine.clone(), cancel.clone()));
    let sock = paths.control_socket();
    let client = loop {
        match Client::connect(&sock).await {
            Ok(c) => break c,
            Err(_) => tokio::task::yield_now().await,
        }
    };
    (engine, cancel, server, sock, client)
}

#[tokio::test]
async fn engine_round_trip_over_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, _cancel, server, sock, mut client) = serving(dir.path()).await;
    #[cfg(unix)]
    {
        let mode = std::fs::metadata(&sock)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap();
        assert_eq!(mode, 0o600);
    }
    let mut events = Client::connect(&sock).await.unwrap();
    events.call(&Request::Subscribe).await.unwrap();
    client
        .call(&Request::VmAdd {
            name: "arm".into(),
            profile: Profile::new("10.1.1.1"),
        })
        .await
        .unwrap();
    let ev = events.next_event().await.unwrap().unwrap();
    assert_eq!(ev, serde_json::json!({"event": "vm_added", "vm": "arm"}));
    let err = client.call(&Request::Use { name: "nope".into() }).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Remote(ref b) if b.code == crate::api::ErrorCode::NoSuchVm),
        "{err}"
    );
    let recent = engine_recent(&sock, "arm").await;
    assert!(recent.iter().any(|e| e["event"]["event"] == "vm_added"), "{recent:?}");
    let status = client.call(&Request::Status).await.unwrap();
    assert_eq!(status[0]["name"], "arm");
    assert_eq!(status[0]["state"], "disconnected");
    assert_eq!(status[0]["active"], true);
    // The config on disk has it too.
    let paths = crate::paths::Paths::under(dir.path().to_path_buf());
    let cfg = crate::config::Store::new(paths.config_file()).load().unwrap();
    assert!(cfg.vms.contains_key("arm"));
    client.call(&Request::Shutdown).await.unwrap();
    server.await.unwrap().unwrap();
    assert!(!sock.exists(), "control socket left behind");
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_told_by_the_end_of_its_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, cancel, server, _sock, mut events) = serving(dir.path()).await;
    events.call(&Request::Subscribe).await.unwrap();
    // Far more than the broadcast holds and the socket buffers take, while nobody reads.
    let ev = || crate::api::Event::Rtt {
        vm: "arm".into(),
        rtt_ms: 1.0,
    };
    let mut sent = 0;
    while sent < 200_000 {
        engine.emit(ev());
        sent += 1;
        if sent % 512 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Reading now: what was buffered arrives, then the stream ends instead of skipping ahead.
    let mut read = 0u64;
    let ended = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(v) = events.next_event().await.unwrap() {
            assert_eq!(v["event"], "rtt");
            read += 1;
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream went on after {read} events");
    assert!(read < sent, "read {read} of {sent}");
    cancel.cancel();
    server.await.unwrap().unwrap();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

    /// Any bytes at all: a request, or the coded error the client gets. Never a panic.
    #[test]
    fn any_bytes_are_a_request_or_a_coded_error(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        if let Err(e) = parse_request(&line) {
            proptest::prop_assert_eq!(e.code, crate::api::ErrorCode::BadRequest);
            proptest::prop_assert!(!e.message.is_empty());
        }
    }

    /// Near-misses: JSON objects with a random op and fields of random JSON types.
    #[test]
    fn near_miss_requests_get_a_coded_error(
        op in "[a-z_]{0,16}",
        fields in proptest::collection::vec(("[a-z_]{1,12}", json_value()), 0..6),
    ) {
        let mut obj = serde_json::Map::new();
        obj.insert("op".into(), Value::String(op));
        for (k, v) in fields {
            obj.insert(k, v);
        }
        let line = serde_json::to_vec(&Value::Object(obj)).unwrap();
        if let Err(e) = parse_request(&line) {
            proptest::prop_assert_eq!(e.code, crate::api::ErrorCode::BadRequest);
        }
    }
}

fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("[a-z]{1,8}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Over the real socket: a 2 MiB line, bad UTF-8 and plain garbage each get a coded answer, and
/// the same connection then still serves a request.
#[tokio::test]
async fn hostile_lines_get_coded_errors_and_the_connection_goes_on() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let (_engine, cancel, server, sock, _client) = serving(dir.path()).await;
    let stream = crate::endpoint::connect(&sock).await.unwrap();
    let (rd, mut wr) = tokio::io::split(stream);
    let mut lines = tokio::io::BufReader::new(rd).lines();
    let huge = vec![b'x'; 2 * MAX_REQUEST];
    let mut hostile: Vec<Vec<u8>> = vec![huge, vec![0xff, 0xfe, b'{', 0x80], b"{\"op\":".to_vec(), b"[]".to_vec()];
    hostile.push(b"{\"op\":\"ping\"}".to_vec());
    for (i, line) in hostile.iter().enumerate() {
        wr.write_all(line).await.unwrap();
        wr.write_all(b"\n").await.unwrap();
        let answer = lines.next_line().await.unwrap().expect("an answer line");
        let v: Value = serde_json::from_str(&answer).unwrap();
        if i + 1 < hostile.len() {
            assert_eq!(v["ok"], false, "{answer}");
            assert_eq!(v["error"]["code"], "bad_request", "{answer}");
        } else {
            assert_eq!(v["ok"], true, "the connection did not go on: {answer}");
        }
    }
    assert!(hostile[0].len() > MAX_REQUEST);
    cancel.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn editing_a_vm_in_place_keeps_what_changed_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, _cancel, _server, _sock, mut client) = serving(dir.path()).await;
    let mut profile = Profile::new("10.1.1.1");
    profile.forwards.push("3000".parse().unwrap());
    client
        .call(&Request::VmAdd {
            name: "arm".into(),
            profile,
        })
        .await
        .unwrap();
    // The app's form was filled before this tunnel was added elsewhere.
    client
        .call(&Request::TunnelAdd {
            name: Some("arm".into()),
            maps: vec!["3001".parse().unwrap()],
        })
        .await
        .unwrap();
    client
        .call(&Request::VmSetConnection {
            name: "arm".into(),
            connection: crate::api::ConnectionSettings {
                host: "10.1.1.2".into(),
                port: Some(2222),
                user: Some("deb".into()),
                arch: None,
                identity: None,
                remote_socket: None,
                jump: None,
            },
        })
        .await
        .unwrap();
    let err = client
        .call(&Request::VmSetKey {
            name: "arm".into(),
            key: "nokey".into(),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no key named 'nokey'"), "{err}");
    let cfg: crate::config::Config = serde_json::from_value(client.call(&Request::VmList).await.unwrap()).unwrap();
    let arm = cfg.vm("arm").unwrap();
    assert_eq!(
        (arm.host.as_str(), arm.port, arm.user.as_deref()),
        ("10.1.1.2", Some(2222), Some("deb"))
    );
    let locals: Vec<u16> = arm.forwards.iter().map(|f| f.local).collect();
    assert_eq!(locals, [3000, 3001], "a tunnel was lost");
    assert_eq!(arm.remote_socket, Profile::new("x").remote_socket);
}

/// An engine that takes the request and never answers: the client gives up after the request's
/// deadline, naming the request and the way out, instead of waiting for ever.
#[tokio::test(start_paused = true)]
async fn a_call_to_a_hung_engine_ends_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let sock = crate::endpoint::control_endpoint(dir.path(), Some("hung"));
    let listener = crate::endpoint::bind(&sock).unwrap();
    let hung = tokio::spawn(async move {
        let stream = crate::endpoint::accept(&listener).await.unwrap();
        // Holds the connection open, reading nothing back.
        std::future::pending::<()>().await;
        drop(stream);
    });
    let mut client = Client::connect(&sock).await.unwrap();
    let started = tokio::time::Instant::now();
    let err = client.call(&Request::Status).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Timeout { op, secs: 30 } if op == "status"),
        "{err}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Request::Status.deadline() && waited < Request::Status.deadline() + Duration::from_secs(1),
        "{waited:?}"
    );
    assert!(err.to_string().contains("tether engine stop"), "{err}");
    // What goes to a VM waits longer than what the engine knows by heart.
    assert!(Request::CheckVm { name: "arm".into() }.deadline() > Request::Status.deadline());
    hung.abort();
}
