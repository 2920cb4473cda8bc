//! Bad input and broken VMs: each gets a message that names the cause and the fix, and exits 1.

use std::process::Command;

use tether_e2e::*;

fn add(t: &Tether, name: &str, extra: &[&str]) {
    let user = var("LAB_USER");
    let mut args = vec!["vm", "add", name, "--user", &user];
    args.extend_from_slice(extra);
    t.run(&args).ok();
}

#[test]
fn local_port_in_use_names_the_holder() {
    let t = Tether::new();
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", "a"]).ok();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let me = std::process::id();
    let r = t
        .run(&["tunnel", "-p", &port.to_string()])
        .fails_with(&[&format!("port {port} is in use on this laptop by pid {me}")]);
    assert!(r.stderr.contains("pick another local port"), "{}", r.stderr);
    // Nothing was saved.
    let cfg = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
    assert!(!cfg.contains(&format!("local = {port}")), "{cfg}");
}

#[test]
fn privileged_port_without_rights() {
    let start: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .map(|s| s.trim().parse().unwrap_or(1024))
        .unwrap_or(1024);
    assert!(
        start > 80,
        "this machine lets anyone bind port 80 (ip_unprivileged_port_start={start})"
    );
    // The engine runs without CAP_NET_BIND_SERVICE, like a normal user's.
    let t = Tether::with_daemon_prefix(&[
        "setpriv",
        "--bounding-set",
        "-net_bind_service",
        "--inh-caps",
        "-net_bind_service",
    ]);
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", "a"]).ok();
    t.run(&["tunnel", "-p", "80"])
        .fails_with(&["port 80 is privileged", "1024"]);
}

#[test]
fn unknown_host() {
    // The engine runs in a namespace with loopback only, so the name lookup fails on this
    // machine instead of asking a resolver elsewhere.
    lab_cmd(&["isolated", "iso"]);
    struct Del;
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", "tl-iso"]).status();
        }
    }
    let _del = Del;
    let t = Tether::with_daemon_prefix(&["ip", "netns", "exec", "tl-iso"]);
    add(&t, "ghost", &["--host", "no-such-host.invalid"]);
    t.run(&["connect", "ghost"])
        .fails_with_code(4, &["cannot resolve host 'no-such-host.invalid'"]);
    assert!(!t.socket("ghost").exists());
}

#[test]
fn refused_connection() {
    let t = Tether::new();
    add(&t, "closed", &["--host", &var("LAB_A_IP"), "--port", "2999"]);
    t.run(&["connect", "closed"]).fails_with_code(
        4,
        &[&format!("connection refused by {}:2999", var("LAB_A_IP")), "--port"],
    );
    // Nothing left behind by a failed connect.
    assert!(!t.socket("closed").exists());
    assert_eq!(t.status("closed")["state"], "failed");
    // The fix, without removing the VM: its port changed in place, the rest kept.
    t.run(&[
        "vm",
        "set",
        "closed",
        "--port",
        "22",
        "--identity",
        &var("LAB_KEY"),
        "--remote-socket",
        &var("LAB_A_SOCK"),
    ])
    .ok();
    t.run(&["vm", "set", "closed"])
        .fails_with_code(1, &["nothing to change"]);
    t.run(&["vm", "set", "nope", "--port", "22"])
        .fails_with(&["no VM named 'nope'"]);
    t.run(&["connect", "closed", "--accept-new"]).ok();
    assert_eq!(t.status("closed")["state"], "connected");
    let cfg = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
    assert!(cfg.contains("port = 22") && cfg.contains(&var("LAB_USER")), "{cfg}");
}

#[test]
fn unknown_host_key_needs_confirmation() {
    let t = Tether::new();
    // Without --accept-new and without a terminal, nothing is accepted.
    let r = t.run(&[
        "vm",
        "add",
        "a",
        "--host",
        &var("LAB_A_IP"),
        "--user",
        &var("LAB_USER"),
        "--identity",
        &var("LAB_KEY"),
        "--remote-socket",
        &var("LAB_A_SOCK"),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = t
        .run(&["connect", "a"])
        .fails_with_code(5, &["not known yet", "SHA256:", "--accept-new"]);
    // The fingerprint shown is the VM's real one, as ssh-keygen prints it.
    let out = Command::new("ssh-keygen")
        .args([
            "-lf",
            &format!("{}/vms/a/ssh_host_ed25519_key.pub", var("TETHER_LAB_DIR")),
        ])
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(r.stderr.contains(&fp), "{} lacks {fp}", r.stderr);
    assert!(!t.home().join("config/known_hosts").exists());
    t.run(&["connect", "a", "--accept-new"]).ok();
    let kh = std::fs::read_to_string(t.home().join("config/known_hosts")).unwrap();
    assert!(kh.starts_with(&var("LAB_A_IP")), "{kh}");
}

#[test]
fn wrong_key_and_wrong_passphrase() {
    let t = Tether::new();
    add(
        &t,
        "stranger",
        &[
            "--host",
            &var("LAB_A_IP"),
            "--identity",
            &var("LAB_KEY_STRANGER"),
            "--remote-socket",
            &var("LAB_A_SOCK"),
            "--accept-new",
        ],
    );
    t.run(&["connect", "stranger"])
        .fails_with_code(6, &["refused every key tried", "authorized_keys"]);

    add(
        &t,
        "enc",
        &[
            "--host",
            &var("LAB_A_IP"),
            "--identity",
            &var("LAB_KEY_ENCRYPTED"),
            "--remote-socket",
            &var("LAB_A_SOCK"),
        ],
    );
    t.run(&["connect", "enc"])
        .fails_with_code(6, &["protected by a passphrase", "TETHER_KEY_PASSPHRASE"]);
    let mut t = t;
    t.set_env("TETHER_KEY_PASSPHRASE", "not-it");
    t.run(&["connect", "enc"])
        .fails_with(&["wrong passphrase for key file"]);
    t.set_env("TETHER_KEY_PASSPHRASE", &var("LAB_KEY_PASSPHRASE"));
    t.run(&["connect", "enc"]).ok();
    t.docker("enc", &["version"]).ok();
    // The passphrase never reaches the engine's log or the config.
    assert!(!t.log().contains(&var("LAB_KEY_PASSPHRASE")));
    let cfg = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
    assert!(!cfg.contains(&var("LAB_KEY_PASSPHRASE")));
}

#[test]
fn missing_and_forbidden_remote_socket() {
    let t = Tether::new();
    add(
        &t,
        "nosock",
        &[
            "--host",
            &var("LAB_A_IP"),
            "--identity",
            &var("LAB_KEY"),
            "--remote-socket",
            "/run/no-docker-here.sock",
            "--accept-new",
        ],
    );
    t.run(&["connect", "nosock"])
        .fails_with(&["/run/no-docker-here.sock does not exist", "--remote-socket"]);
    let ps = t.docker("nosock", &["ps"]);
    assert!(ps.stderr.contains("does not exist"), "{}", ps.stderr);

    t.run(&[
        "vm",
        "add",
        "denied",
        "--host",
        &var("LAB_A_IP"),
        "--user",
        &var("LAB_USER_NODOCKER"),
        "--identity",
        &var("LAB_KEY"),
        "--remote-socket",
        &var("LAB_A_SOCK"),
        "--accept-new",
    ])
    .ok();
    t.run(&["connect", "denied"])
        .fails_with(&["permission denied", "docker group", &var("LAB_USER_NODOCKER")]);
}

#[test]
fn sshd_without_stream_local_forwarding() {
    let t = Tether::new();
    lab_cmd(&["sshd", "a", "2201", "AllowStreamLocalForwarding=no"]);
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new(lab_script()).args(["sshd-stop", "a", "2201"]).status();
        }
    }
    let _stop = Stop;
    add(
        &t,
        "nofwd",
        &[
            "--host",
            &var("LAB_A_IP"),
            "--port",
            "2201",
            "--identity",
            &var("LAB_KEY"),
            "--remote-socket",
            &var("LAB_A_SOCK"),
            "--accept-new",
        ],
    );
    t.run(&["connect", "nofwd"])
        .fails_with(&["forbids forwarding", "AllowStreamLocalForwarding yes"]);
}

#[test]
fn corrupt_config_is_reported_and_kept() {
    let dir = tempfile::Builder::new().prefix("tt").tempdir_in("/var/tmp").unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("config")).unwrap();
    let cfg = home.join("config/config.toml");
    let text = "version = 1\n\n[vms.a]\nhost = \"h\"\nport = 22x\n";
    std::fs::write(&cfg, text).unwrap();
    for args in [&["vm", "list"][..], &["daemon"][..], &["status"][..]] {
        let out = Command::new(tether_bin())
            .args(args)
            .env("TETHER_HOME", &home)
            .env("HOME", dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("{}:5:8", cfg.display())), "{args:?}: {stderr}");
        assert!(stderr.contains("left untouched"), "{stderr}");
    }
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), text);
    // Usage errors exit 2.
    let out = Command::new(tether_bin())
        .args(["tunnel", "--bogus"])
        .env("TETHER_HOME", &home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// On a terminal, the host key is confirmed by typing yes and the passphrase is asked for.
#[test]
fn prompts_on_a_terminal() {
    let t = Tether::new();
    add(
        &t,
        "enc",
        &[
            "--host",
            &var("LAB_A_IP"),
            "--identity",
            &var("LAB_KEY_ENCRYPTED"),
            "--remote-socket",
            &var("LAB_A_SOCK"),
        ],
    );
    // Refusing the key stops there and records nothing.
    let r = t.run_tty(&["connect", "enc"], &[("(yes/no)", "no")]);
    // 5: the host key was refused (see `tether --help`).
    assert_eq!(r.code, 5, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("SHA256:") && r.stdout.contains("Accept this key"),
        "{}",
        r.stdout
    );
    assert!(!t.home().join("config/known_hosts").exists());
    // Accepting it, then typing the passphrase, connects.
    let pass = var("LAB_KEY_PASSPHRASE");
    let r = t.run_tty(&["connect", "enc"], &[("(yes/no)", "yes"), ("Key passphrase:", &pass)]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Key passphrase"), "{}", r.stdout);
    assert!(
        !r.stdout.contains(&var("LAB_KEY_PASSPHRASE")),
        "passphrase echoed: {}",
        r.stdout
    );
    assert!(t.home().join("config/known_hosts").exists());
    t.docker("enc", &["version"]).ok();
}

#[test]
fn a_reader_that_goes_away_ends_the_cli_quietly() {
    let t = Tether::new();
    for i in 0..3 {
        // Never connected: an address nothing answers at (the lab's guard route).
        add(&t, &format!("vm{i}"), &["--host", "10.77.251.2"]);
    }
    // As `tether vm list | head -0`: the pipe's reading end is closed before anything is written.
    let mut child = t
        .command(&["vm", "list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
