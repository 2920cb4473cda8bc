//! The everyday flow through the built `tether` binary against the lab's VMs "a" and "b".

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use tether_e2e::*;

#[test]
fn connect_docker_tunnel_use_disconnect() {
    let t = Tether::new();
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.add_vm("b", &var("LAB_B_IP"), 22, &var("LAB_B_SOCK")).ok();

    // A subscriber sees the engine's typed events as they happen.
    let (mut watcher, events) = t.spawn_lines(&["status", "--watch", "--json"]);
    let first = events
        .recv_timeout(Duration::from_secs(10))
        .expect("a snapshot from status --watch");
    let snapshot: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(snapshot["event"], "snapshot");
    assert_eq!(snapshot["vms"][0]["state"], "disconnected");

    // connect (the first VM added is active) prints the socket and DOCKER_HOST line.
    let r = t.run(&["connect"]).ok();
    let mut seen = Vec::new();
    let connected = wait_for("a 'connected' event for a", Duration::from_secs(10), || {
        let line = events.recv_timeout(Duration::from_millis(100)).ok()?;
        let ev: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.push(ev["state"].as_str().unwrap_or("").to_string());
        (ev["event"] == "state" && ev["vm"] == "a" && ev["state"] == "connected").then_some(ev)
    });
    assert!(connected.get("error").is_none(), "{connected}");
    assert!(seen.contains(&"connecting".to_string()), "{seen:?}");
    let _ = watcher.kill();
    let sock = t.socket("a");
    assert!(
        r.stdout.contains(&format!("socket: {}", sock.display())),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("export DOCKER_HOST=unix://{}", sock.display())),
        "{}",
        r.stdout
    );

    // The socket is private: 0600 in a 0700 directory, not under /tmp.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sock), 0o600);
    assert_eq!(mode(sock.parent().unwrap()), 0o700);
    assert!(!sock.starts_with("/tmp"));

    // docker version, run -p, ps through DOCKER_HOST.
    let v = t.docker("a", &["version", "--format", "{{.Server.Version}}"]).ok();
    assert!(!v.stdout.trim().is_empty());
    let cname = "tether-e2e-web";
    let _ = t.docker("a", &["rm", "-f", cname]);
    t.docker(
        "a",
        &[
            "run",
            "-d",
            "--name",
            cname,
            "-p",
            "18081:80",
            &var("LAB_IMAGE"),
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ],
    )
    .ok();
    let ps = t.docker("a", &["ps", "--format", "{{.Names}} {{.Ports}}"]).ok();
    assert!(
        ps.stdout.contains(cname) && ps.stdout.contains("18081->80"),
        "{}",
        ps.stdout
    );

    // A tunnel to the container's published port serves its page.
    let local = free_port();
    let map = format!("{local}:18081");
    t.run(&["tunnel", "-p", &map]).ok();
    let body = wait_for("the tunnel to serve", Duration::from_secs(10), || {
        http_tcp(local, "/index.html")
            .ok()
            .filter(|(s, _)| s.contains("200"))
            .map(|(_, b)| b)
    });
    assert_eq!(String::from_utf8_lossy(&body).trim(), "hello from the tether lab");
    // Tunnels bind loopback only.
    let other_if = std::net::SocketAddr::from(([10, 77, 1, 1], local));
    assert!(
        std::net::TcpStream::connect_timeout(&other_if, Duration::from_secs(2)).is_err(),
        "tunnel reachable on a non-loopback address"
    );
    let st = t.status("a");
    let fwd = &st["forwards"][0];
    assert_eq!(fwd["local"], local);
    assert_eq!(fwd["state"], "listening");
    // Persisted in the profile.
    let cfg = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
    assert!(cfg.contains(&format!("local = {local}")), "{cfg}");
    let list = t.run(&["tunnel", "--list"]).ok();
    assert!(list.stdout.contains(&format!("127.0.0.1:{local}")), "{}", list.stdout);

    // Disconnect and reconnect: the tunnel is restored from the profile.
    t.run(&["disconnect"]).ok();
    assert!(!sock.exists(), "socket left behind after disconnect");
    assert!(http_tcp(local, "/").is_err(), "tunnel still listening after disconnect");
    t.run(&["connect"]).ok();
    let body = wait_for("the restored tunnel", Duration::from_secs(10), || {
        http_tcp(local, "/index.html").ok().map(|(_, b)| b)
    });
    assert_eq!(String::from_utf8_lossy(&body).trim(), "hello from the tether lab");
    t.run(&["tunnel", "--rm", &local.to_string()]).ok();
    assert!(http_tcp(local, "/").is_err(), "removed tunnel still listening");
    t.docker("a", &["rm", "-f", cname]).ok();

    // use switches the active VM; env and connect follow it.
    t.run(&["use", "b"]).ok();
    let env = t.run(&["env"]).ok();
    assert!(
        env.stdout.contains(&t.socket("b").display().to_string()),
        "{}",
        env.stdout
    );
    t.run(&["connect"]).ok();
    assert_eq!(t.status("b")["active"], true);
    assert_eq!(t.status("a")["active"], false);
    let info = t.docker("b", &["info", "--format", "{{.Name}}"]).ok();
    assert!(!info.stdout.trim().is_empty());

    // disconnect --all removes every socket.
    t.run(&["disconnect", "--all"]).ok();
    assert!(!t.socket("a").exists() && !t.socket("b").exists());
    let st = t.run(&["status"]).ok();
    assert!(st.stdout.contains("disconnected"), "{}", st.stdout);
}

#[test]
fn docker_save_of_a_big_image_matches_the_direct_socket() {
    let t = Tether::new();
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", "a"]).ok();
    let image = var("LAB_BIG_IMAGE");
    let digest = |host: &str| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -o pipefail; docker -H {host} save {image} | tee >(wc -c >&2) | sha256sum"
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker save via {host} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let size: u64 = String::from_utf8_lossy(&out.stderr)
            .trim()
            .lines()
            .last()
            .unwrap_or("0")
            .trim()
            .parse()
            .unwrap_or(0);
        (String::from_utf8_lossy(&out.stdout).trim().to_string(), size)
    };
    let (via_tether, size) = digest(&format!("unix://{}", t.socket("a").display()));
    let (direct, _) = digest(&format!("unix://{}", var("LAB_A_SOCK")));
    assert!(size >= 256 * 1024 * 1024, "image only {size} bytes");
    assert_eq!(via_tether, direct, "docker save differs through tether");
}

#[test]
fn many_concurrent_api_connections() {
    let t = Tether::new();
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", "a"]).ok();
    let sock = t.socket("a");
    let handles: Vec<_> = (0..256)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || http_unix(&sock, "/_ping"))
        })
        .collect();
    let mut errors = Vec::new();
    for h in handles {
        match h.join().unwrap() {
            Ok((status, body)) if status.contains("200") && body == b"OK" => {}
            other => errors.push(format!("{other:?}")),
        }
    }
    assert!(
        errors.is_empty(),
        "{} of 256 failed, e.g. {:?}",
        errors.len(),
        errors.first()
    );
    assert_eq!(t.status("a")["state"], "connected");
}

/// A client that stops reading mid-transfer must stall neither other streams nor the probe, must
/// cost the engine no more than its window, and must get the rest when it reads again.
#[test]
fn stalled_reader_does_not_block_the_connection() {
    let t = Tether::new();
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", "a"]).ok();
    let sock = t.socket("a");
    t.docker("a", &["ps"]).ok();
    let rss0 = t.engine_rss_kib();

    // Start a 272 MiB `docker save`, read a little of it, then stop reading (keep it open).
    // HTTP/1.0, so the engine closes the stream at its end.
    let mut stalled = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    write!(
        stalled,
        "GET /images/{}/get HTTP/1.0\r\nHost: docker\r\n\r\n",
        var("LAB_BIG_IMAGE")
    )
    .unwrap();
    let mut first = vec![0u8; 64 * 1024];
    stalled.read_exact(&mut first).unwrap();
    assert!(
        first.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&first[..40])
    );

    // For 8 s (four probe rounds) other streams must keep working promptly and the liveness
    // probe must keep the VM connected. A design that lets one channel's queue stall the session
    // loop fails here at once.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut worst = Duration::ZERO;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let ps = docker_at_with_timeout(
            &format!("unix://{}", sock.display()),
            &["ps", "-a", "--format", "{{.ID}}"],
            10,
        );
        let took = t0.elapsed();
        worst = worst.max(took);
        assert_eq!(
            ps.code, 0,
            "docker ps failed while another stream is stalled (after {took:?}): {}",
            ps.stderr
        );
        assert!(
            took < Duration::from_secs(3),
            "docker ps took {took:?} behind a stalled stream"
        );
        let s = t.status("a");
        assert_eq!(s["state"], "connected", "probe failed behind a stalled stream: {s}");
    }
    eprintln!("slowest docker ps behind the stalled stream: {worst:?}");

    // The VM was held back by the stream's window, not buffered for: the engine grew by far less
    // than the 272 MiB still to come.
    let grown = t.engine_rss_kib().saturating_sub(rss0);
    assert!(
        grown < 32 * 1024,
        "engine grew by {grown} KiB behind one stalled reader"
    );

    // Reading again gets the whole image.
    let mut rest = Vec::new();
    stalled.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stalled.read_to_end(&mut rest).unwrap();
    let total = first.len() + rest.len();
    assert!(
        total > 272 * 1024 * 1024,
        "the resumed stream ended after {total} bytes"
    );
}

#[test]
fn half_close_travels_both_ways() {
    let t = Tether::new();
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", "a"]).ok();
    lab_cmd(&["counter", "a", "9000"]);
    let local = free_port();
    t.run(&["tunnel", "-p", &format!("{local}:9000")]).ok();
    // The VM side answers only after it saw our EOF, so the answer proves EOF went up, and
    // reading it after our own shutdown proves the other direction stayed open.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", local)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let payload = vec![b'x'; 300_000];
    s.write_all(&payload).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert_eq!(answer.trim(), "got 300000 bytes");
}

/// A Host alias from ~/.ssh/config (HostName, User, Port, IdentityFile), a host key already in
/// ~/.ssh/known_hosts, and an engine started on demand by the CLI.
#[test]
fn ssh_config_alias_known_hosts_and_engine_autostart() {
    let t = Tether::without_daemon(&[]);
    let home = t.dir.path();
    std::fs::write(
        home.join(".ssh/config"),
        format!(
            "Host labvm\n  HostName {}\n  User {}\n  Port 22\n  IdentityFile {}\n",
            var("LAB_A_IP"),
            var("LAB_USER"),
            var("LAB_KEY")
        ),
    )
    .unwrap();
    let host_key =
        std::fs::read_to_string(format!("{}/vms/a/ssh_host_ed25519_key.pub", var("TETHER_LAB_DIR"))).unwrap();
    std::fs::write(
        home.join(".ssh/known_hosts"),
        format!("{} {}", var("LAB_A_IP"), host_key),
    )
    .unwrap();

    let r = t
        .run(&[
            "vm",
            "add",
            "lab",
            "--host",
            "labvm",
            "--remote-socket",
            &var("LAB_A_SOCK"),
        ])
        .ok();
    assert!(
        r.stderr.contains("started the Tether engine in the background"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("host key verified"), "{}", r.stdout);
    t.run(&["connect", "lab"]).ok();
    t.docker("lab", &["version"]).ok();
    assert!(
        !t.home().join("config/known_hosts").exists(),
        "a key known to ~/.ssh/known_hosts was recorded again"
    );
    assert_eq!(t.status("lab")["host"], "labvm");

    // vm rm disconnects and forgets.
    t.run(&["vm", "rm", "lab"]).ok();
    assert!(!t.socket("lab").exists());
    let list = t.run(&["vm", "list"]).ok();
    assert!(list.stdout.contains("no VMs yet"), "{}", list.stdout);
}

#[test]
fn ssh_agent_login() {
    let dir = tempfile::Builder::new().prefix("ag").tempdir_in("/var/tmp").unwrap();
    let sock = dir.path().join("agent.sock");
    let out = std::process::Command::new("ssh-agent")
        .arg("-a")
        .arg(&sock)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let pid = text
        .split("SSH_AGENT_PID=")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap()
        .to_string();
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill").arg(&self.0).status();
        }
    }
    let _agent = Kill(pid);
    let add = std::process::Command::new("ssh-add")
        .arg(var("LAB_KEY"))
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));

    let t = Tether::without_daemon(&[("SSH_AUTH_SOCK", sock.to_str().unwrap())]);
    t.run(&[
        "vm",
        "add",
        "a",
        "--host",
        &var("LAB_A_IP"),
        "--user",
        &var("LAB_USER"),
        "--remote-socket",
        &var("LAB_A_SOCK"),
        "--accept-new",
    ])
    .ok();
    t.run(&["connect", "a"]).ok();
    t.docker("a", &["version"]).ok();
}

/// A home whose path has a space (as macOS's "Application Support" does): `eval "$(tether env)"`
/// still sets the right DOCKER_HOST, and docker works through it.
#[test]
fn env_output_survives_a_path_with_a_space() {
    let spaced = tempfile::Builder::new().prefix("sp").tempdir_in("/var/tmp").unwrap();
    let home = spaced.path().join("Application Support").join("tether");
    let t = Tether::without_daemon(&[("TETHER_HOME", home.to_str().unwrap())]);
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    let env = t.run(&["env", "a"]).ok().stdout;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{env}\nprintf %s \"$DOCKER_HOST\""))
        .output()
        .unwrap();
    let sock = home.join("run/vms/a/docker.sock");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("unix://{}", sock.display()),
        "from: {env}"
    );
    let connect = t.run(&["connect", "a"]).ok().stdout;
    let line = connect
        .lines()
        .find(|l| l.starts_with("export DOCKER_HOST="))
        .expect("an export line");
    assert_eq!(line, env.trim(), "connect and env disagree");
    docker_at(&format!("unix://{}", sock.display()), &["version"]).ok();
    t.run(&["engine", "stop"]).ok();
}
