//! Jump hosts on the lab: a VM that only a bastion can reach (this machine has no route to it) is
//! connected through the bastion with no `ssh` binary involved; Docker and a tunnel work through
//! it, and when the bastion's link is cut the VM is reported down and both come back together.
//! ProxyJump from ~/.ssh/config, over two hops (listed, or the first hop's own ProxyJump),
//! has each hop's host key checked: unknown keys are
//! named with their fingerprints, and a changed one is refused.

use std::time::Duration;

use tether_e2e::*;

/// Tether's own known_hosts in this home.
fn known_hosts(t: &Tether) -> String {
    std::fs::read_to_string(t.home().join("config/known_hosts")).unwrap_or_default()
}

/// Whether this machine itself can open a TCP connection to `ip:22`.
fn reachable_from_here(ip: &str) -> bool {
    let addr: std::net::SocketAddr = format!("{ip}:22").parse().unwrap();
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

#[test]
fn a_vm_behind_a_bastion_runs_docker_and_a_tunnel_and_recovers_with_it() {
    let bastion = TestVm::new("bast", 44, false);
    let deep = TestVm::hidden("deep", 45, &bastion, true);
    assert!(
        !reachable_from_here(&deep.ip),
        "{} must be reachable only through the bastion",
        deep.ip
    );

    let t = Tether::new();
    let user = var("LAB_USER");
    let jump = format!("{user}@{}:22", bastion.ip);
    let out = t
        .add_vm_with("deep", &deep.ip, 22, &deep.docker_sock(), &["--jump", &jump])
        .ok();
    // Both keys were shown and recorded, the bastion's first.
    let bastion_fp = host_key_fingerprint(&bastion.name);
    let deep_fp = host_key_fingerprint(&deep.name);
    assert!(
        out.stdout.contains(&format!("jump host {}", bastion.ip)) && out.stdout.contains(&bastion_fp),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&deep_fp), "{}", out.stdout);
    let kh = known_hosts(&t);
    assert!(kh.contains(&bastion.ip) && kh.contains(&deep.ip), "{kh}");
    let config = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
    assert!(config.contains(&format!("jump = \"{jump}\"")), "{config}");

    let connected = t.run(&["connect", "deep"]).ok();
    assert!(
        connected.stdout.contains(&format!(" via {jump}")),
        "{}",
        connected.stdout
    );
    assert_eq!(t.status("deep")["via"], serde_json::json!([jump]));
    let os = t.docker("deep", &["version", "--format", "{{.Server.Os}}"]).ok();
    assert_eq!(os.stdout.trim(), "linux");
    // The VM's sshd saw the connection come from the bastion's side of their private link.
    let sshd_log = std::fs::read_to_string(format!("{}/vms/deep/sshd_22.log", var("TETHER_LAB_DIR"))).unwrap();
    assert!(sshd_log.contains("from 10.78.45.1"), "{sshd_log}");

    // The doctor checks DNS and TCP of the first jump host (the only one this laptop reaches),
    // and the rest over the link through it.
    let doc = t.run(&["doctor", "deep", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&doc.stdout).unwrap();
    let checks = doc["vms"][0]["checks"].as_array().cloned().unwrap_or_default();
    for id in ["dns", "tcp", "ssh", "socket", "access", "forwarding"] {
        let c = checks
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id} check in {doc}"));
        assert_eq!(c["ok"], true, "{c}");
    }
    let tcp = checks.iter().find(|c| c["id"] == "tcp").unwrap();
    assert!(
        tcp["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("{}:22 (the first jump host)", bastion.ip)),
        "{tcp}"
    );

    let web = free_port();
    lab_cmd(&["web", "deep", &web.to_string()]);
    let local = free_port();
    t.run(&["tunnel", "deep", "-p", &format!("{local}:{web}")]).ok();
    let (status, body) = http_tcp(local, "/").unwrap();
    assert!(status.contains("200"), "{status}");
    assert!(String::from_utf8_lossy(&body).contains("hello from the tether lab"));

    // The bastion drops: the VM behind it is down too.
    let cut = std::time::Instant::now();
    lab_cmd(&["link", "bast", "down"]);
    let down = t.wait_state("deep", "reconnecting", Duration::from_secs(45));
    assert!(down["last_error"].is_string(), "{down}");
    eprintln!(
        "reported down {:.1} s after the bastion's link was cut",
        cut.elapsed().as_secs_f64()
    );

    // Healed, both come back together, with no command from the user.
    let healed = std::time::Instant::now();
    lab_cmd(&["link", "bast", "up"]);
    t.wait_state("deep", "connected", Duration::from_secs(60));
    eprintln!(
        "connected again {:.1} s after the link came back",
        healed.elapsed().as_secs_f64()
    );
    let ps = t.docker("deep", &["ps", "--format", "{{.ID}}"]).ok();
    assert_eq!(ps.code, 0);
    let (status, body) = http_tcp(local, "/").unwrap();
    assert!(status.contains("200"), "{status}");
    assert!(String::from_utf8_lossy(&body).contains("hello from the tether lab"));
    t.run(&["disconnect", "deep"]).ok();
}

#[test]
fn proxy_jump_from_ssh_config_checks_every_hop_and_refuses_a_changed_key() {
    let bastion = TestVm::new("bast2", 46, false);
    let deep = TestVm::hidden("deep2", 47, &bastion, true);
    let t = Tether::new();
    let user = var("LAB_USER");
    // Two hops: the bastion, then the bastion again from itself, then the VM.
    let key = var("LAB_KEY");
    std::fs::write(
        t.dir.path().join(".ssh/config"),
        format!(
            "Host gate\n  HostName {}\n  User {user}\n  IdentityFile {key}\n\n\
             Host deepvm\n  HostName {}\n  User {user}\n  IdentityFile {key}\n  ProxyJump gate,gate\n",
            bastion.ip, deep.ip,
        ),
    )
    .unwrap();
    // A jump host that does not parse is refused before anything is saved.
    t.run(&["vm", "add", "bad", "--host", "deepvm", "--jump", "gate,ops@:22"])
        .fails_with(&["'ops@:22' is not a jump host", "[user@]host[:port]"]);
    assert!(!t.run(&["status", "--json"]).ok().stdout.contains("\"bad\""));
    // No terminal and no --accept-new: the unknown key is shown, not accepted.
    let out = t
        .run(&[
            "vm",
            "add",
            "deepvm",
            "--host",
            "deepvm",
            "--remote-socket",
            &deep.docker_sock(),
        ])
        .ok();
    let bastion_fp = host_key_fingerprint(&bastion.name);
    assert!(out.stdout.contains("not accepted"), "{}", out.stdout);
    assert!(!known_hosts(&t).contains(&bastion.ip), "{}", known_hosts(&t));

    // Connecting names the first hop and its fingerprint, and records nothing.
    let refused = t
        .run(&["connect", "deepvm"])
        .fails_with(&[&bastion.ip, &bastion_fp, "not known"]);
    assert!(!refused.stderr.contains(&deep.ip), "{}", refused.stderr);
    assert!(known_hosts(&t).is_empty(), "{}", known_hosts(&t));

    t.run(&["connect", "deepvm", "--accept-new"]).ok();
    let hop = format!("{user}@{}:22", bastion.ip);
    assert_eq!(t.status("deepvm")["via"], serde_json::json!([hop, hop]));
    let kh = known_hosts(&t);
    assert!(kh.contains(&bastion.ip) && kh.contains(&deep.ip), "{kh}");
    let os = t.docker("deepvm", &["version", "--format", "{{.Server.Arch}}"]).ok();
    assert!(!os.stdout.trim().is_empty());
    // Two hops: the VM sees the bastion's private address, the bastion sees itself once.
    let bastion_log = std::fs::read_to_string(format!("{}/vms/bast2/sshd_22.log", var("TETHER_LAB_DIR"))).unwrap();
    assert!(
        bastion_log.contains(&format!("from {} ", bastion.ip)),
        "the second hop did not come from the bastion itself: {bastion_log}"
    );
    t.run(&["disconnect", "deepvm"]).ok();

    // The same path written as OpenSSH users often do: the VM names one hop, and that hop's own
    // entry says how to reach it. The first hop's ProxyJump is followed, as `ssh -J` follows it.
    std::fs::write(
        t.dir.path().join(".ssh/config"),
        format!(
            "Host gate\n  HostName {0}\n  User {user}\n  IdentityFile {key}\n\n\
             Host inner-gate\n  HostName {0}\n  User {user}\n  IdentityFile {key}\n  ProxyJump gate\n\n\
             Host deepvm\n  HostName {1}\n  User {user}\n  IdentityFile {key}\n  ProxyJump inner-gate\n",
            bastion.ip, deep.ip,
        ),
    )
    .unwrap();
    t.run(&["connect", "deepvm"]).ok();
    assert_eq!(t.status("deepvm")["via"], serde_json::json!([hop, hop]));
    let os = t.docker("deepvm", &["version", "--format", "{{.Server.Arch}}"]).ok();
    assert!(!os.stdout.trim().is_empty());
    t.run(&["disconnect", "deepvm"]).ok();

    // The bastion's recorded key replaced by another: a changed key on a hop is refused.
    let stranger = std::fs::read_to_string(format!("{}.pub", var("LAB_KEY_STRANGER"))).unwrap();
    let stranger_key: Vec<&str> = stranger.split_whitespace().take(2).collect();
    let tampered: String = kh
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{} ", bastion.ip)) {
                format!("{} {}\n", bastion.ip, stranger_key.join(" "))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(t.home().join("config/known_hosts"), tampered).unwrap();
    t.run(&["connect", "deepvm", "--accept-new"])
        .fails_with(&["REFUSED", &bastion.ip, "CHANGED", &bastion_fp]);
    assert_ne!(t.status("deepvm")["state"], "connected");
}

#[test]
fn a_vm_going_silent_behind_a_live_bastion_is_caught_by_the_probe_and_healed() {
    let bastion = TestVm::new("bast3", 52, false);
    let deep = TestVm::hidden("deep3", 53, &bastion, true);
    let t = Tether::new();
    let user = var("LAB_USER");
    let jump = format!("{user}@{}", bastion.ip);
    t.add_vm_with("deep3", &deep.ip, 22, &deep.docker_sock(), &["--jump", &jump])
        .ok();
    t.run(&["connect", "deep3"]).ok();
    t.docker("deep3", &["ps"]).ok();

    // The bastion stays up and keeps its session; only the VM behind it goes silent. Nothing
    // closes: only the liveness probe, through the bastion, can tell.
    let cut = std::time::Instant::now();
    lab_cmd(&["blackhole", "deep3", "on"]);
    t.wait_state("deep3", "reconnecting", Duration::from_secs(20));
    eprintln!(
        "reported down {:.1} s after the VM went silent",
        cut.elapsed().as_secs_f64()
    );
    // Attempts go on through the bastion and say where they stop.
    let why = wait_for(
        "an attempt through the bastion to fail",
        Duration::from_secs(40),
        || {
            let s = t.status("deep3");
            let e = s["last_error"].as_str().unwrap_or_default().to_string();
            e.contains("through the jump host").then_some(e)
        },
    );
    assert!(why.contains(&deep.ip), "{why}");

    let healed = std::time::Instant::now();
    lab_cmd(&["blackhole", "deep3", "off"]);
    t.wait_state("deep3", "connected", Duration::from_secs(60));
    eprintln!(
        "connected again {:.1} s after the VM answered again",
        healed.elapsed().as_secs_f64()
    );
    t.docker("deep3", &["ps"]).ok();
}

#[test]
fn a_bastion_answering_for_the_vm_with_its_own_key_is_asked_about_not_taken_for_the_vm() {
    // The VM is the bastion's own loopback, where a second sshd of the bastion answers with the
    // bastion's key: what a bastion that answers the VM's `direct-tcpip` with its own sshd looks
    // like.
    let bastion = TestVm::new("bast4", 64, false);
    lab_cmd(&["sshd", &bastion.name, "2222", "ListenAddress=127.0.0.1"]);
    let t = Tether::new();
    let (user, key) = (var("LAB_USER"), var("LAB_KEY"));
    let jump = format!("{user}@{}", bastion.ip);
    let added = t.run(&[
        "vm",
        "add",
        "loopvm",
        "--host",
        "127.0.0.1",
        "--port",
        "2222",
        "--user",
        &user,
        "--identity",
        &key,
        "--remote-socket",
        &var("LAB_A_SOCK"),
        "--jump",
        &jump,
    ]);
    assert!(added.stdout.contains("not accepted"), "{}", added.stdout);
    let bastion_fp = host_key_fingerprint(&bastion.name);

    // Connecting names the bastion first; the user confirms the bastion's key (as the CLI and the
    // window do, by passing the fingerprint the error named).
    let first = t.control(&serde_json::json!({"op": "connect", "name": "loopvm"}));
    assert_eq!(first["error"]["code"], "host_key_unknown", "{first}");
    assert!(
        first["error"]["message"].as_str().unwrap().contains(&bastion.ip),
        "{first}"
    );
    let confirmed = t.control(&serde_json::json!({"op": "connect", "name": "loopvm", "fingerprint": bastion_fp}));
    // The bastion is now trusted; the VM, presenting the same key, is a question of its own.
    assert_eq!(
        confirmed["ok"], false,
        "the bastion's key was taken for the VM's: {confirmed}"
    );
    assert_eq!(confirmed["error"]["code"], "host_key_unknown", "{confirmed}");
    let vm_entry = "[127.0.0.1]:2222";
    let message = confirmed["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(vm_entry) && message.contains(&bastion_fp),
        "{confirmed}"
    );
    let kh = known_hosts(&t);
    assert!(kh.lines().any(|l| l.starts_with(&format!("{} ", bastion.ip))), "{kh}");
    assert!(
        !kh.contains(vm_entry),
        "the bastion's key was recorded for the VM: {kh}"
    );
    assert_ne!(t.status("loopvm")["state"], "connected");
}
