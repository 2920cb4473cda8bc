//! Reverse tunnels on the lab: a container on the VM fetches a page served on this laptop, through
//! the VM's loopback, before and after the link is cut; a VM whose sshd forbids remote forwarding
//! refuses with a message that names the setting, and nothing is saved.

use std::time::Duration;

use tether_e2e::*;

/// `wget` in a container on the VM's own network, from `host`'s port `port`. (busybox's `wget
/// -T` crashes, so there is no timeout: each port asked here either answers or refuses.)
fn fetch_in_container_from(t: &Tether, vm: &str, host: &str, port: u16) -> Run {
    let url = format!("http://{host}:{port}/");
    let image = var("LAB_IMAGE");
    let args = [
        "run",
        "--rm",
        "--network",
        "host",
        &image,
        "busybox",
        "wget",
        "-qO-",
        &url,
    ];
    t.docker(vm, &args)
}

/// `wget` in a container on the VM's own network, from the VM's loopback port `port`.
fn fetch_in_container(t: &Tether, vm: &str, port: u16) -> Run {
    fetch_in_container_from(t, vm, "127.0.0.1", port)
}

/// The reverse tunnel on the VM's port `remote`, from `tether status`.
fn reverse_of(t: &Tether, vm: &str, remote: u16) -> serde_json::Value {
    let st = t.status(vm);
    st["reverse"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["remote"] == remote).cloned())
        .unwrap_or_else(|| panic!("no reverse tunnel on port {remote} in {st}"))
}

fn wait_listening(t: &Tether, vm: &str, remote: u16, within: Duration) {
    wait_for(&format!("the VM to listen on its port {remote}"), within, || {
        (reverse_of(t, vm, remote)["state"] == "listening").then_some(())
    });
}

#[test]
fn container_reaches_laptop_before_and_after_a_link_cut() {
    let vm = TestVm::new("rev", 39, true);
    let t = Tether::new();
    t.add_vm(&vm.name, &vm.ip, 22, &vm.docker_sock()).ok();
    t.run(&["connect", &vm.name]).ok();
    let token = format!("laptop-service-{}", std::process::id());
    let local = laptop_web(&token);
    let remote = free_port();

    let out = t
        .run(&["tunnel", &vm.name, "--reverse", &format!("{remote}:{local}")])
        .ok();
    assert!(out.stdout.contains("--network host"), "{}", out.stdout);
    // Saved in the profile: a restarted engine asks for it again.
    let config = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
    assert!(config.contains(&format!("remote = {remote}")), "{config}");
    let r = reverse_of(&t, &vm.name, remote);
    assert_eq!(r["state"], "listening", "{r}");
    assert_eq!(r["local"], local, "{r}");

    let got = fetch_in_container(&t, &vm.name, remote).ok();
    assert_eq!(got.stdout.trim(), token);
    assert!(reverse_of(&t, &vm.name, remote)["total"].as_u64() >= Some(1));
    // The VM listens on its loopback only: its own address is not served.
    let wide = fetch_in_container_from(&t, &vm.name, &vm.ip, remote);
    assert!(
        wide.code != 0 && wide.stderr.contains("Connection refused"),
        "the VM's own address was not refused: {} {}",
        wide.stdout,
        wide.stderr
    );

    lab_cmd(&["link", &vm.name, "down"]);
    t.wait_state(&vm.name, "reconnecting", Duration::from_secs(15));
    assert_eq!(reverse_of(&t, &vm.name, remote)["state"], "idle");
    lab_cmd(&["link", &vm.name, "up"]);
    let healed = std::time::Instant::now();
    t.wait_state(&vm.name, "connected", Duration::from_secs(40));
    // The dead link's sshd may hold the port until it hears of the end; Tether asks again.
    wait_listening(&t, &vm.name, remote, Duration::from_secs(90));
    eprintln!("listening again {:?} after the link came back", healed.elapsed());
    let again = fetch_in_container(&t, &vm.name, remote).ok();
    assert_eq!(again.stdout.trim(), token);

    // Removed: the VM no longer listens, and the profile no longer has it.
    t.run(&["tunnel", &vm.name, "--rm-reverse", &remote.to_string()]).ok();
    let config = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
    assert!(!config.contains(&format!("remote = {remote}")), "{config}");
    wait_for("the VM to stop listening", Duration::from_secs(10), || {
        let r = fetch_in_container(&t, &vm.name, remote);
        (r.code != 0 && r.stderr.contains("Connection refused")).then_some(())
    });
}

#[test]
fn a_vm_that_forbids_remote_forwarding_is_named_and_nothing_is_saved() {
    let vm = TestVm::new("revno", 40, false);
    lab_cmd(&["sshd", &vm.name, "2222", "AllowTcpForwarding=local"]);
    let t = Tether::new();
    t.add_vm(&vm.name, &vm.ip, 2222, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", &vm.name]).ok();
    let before = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
    let out = t.run(&["tunnel", &vm.name, "--reverse", "15432:5432"]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains("AllowTcpForwarding"), "{}", out.stderr);
    assert!(out.stderr.contains("PermitListen"), "{}", out.stderr);
    assert!(out.stderr.contains("15432"), "{}", out.stderr);
    let after = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
    assert_eq!(before, after, "a refused reverse tunnel changed the config");
    assert!(
        t.status(&vm.name)["reverse"].as_array().is_none_or(|a| a.is_empty()),
        "{}",
        t.status(&vm.name)
    );
    // Bad input names the form.
    let bad = t.run(&["tunnel", &vm.name, "--reverse", "0"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("[BIND:]REMOTE[:LOCAL]"), "{}", bad.stderr);
}

/// `wget` in a container on the VM's default bridge network (not the host's), from `host:port`.
fn fetch_on_bridge(t: &Tether, vm: &str, host: &str, port: u16) -> Run {
    let url = format!("http://{host}:{port}/");
    let image = var("LAB_IMAGE");
    t.docker(vm, &["run", "--rm", &image, "busybox", "wget", "-qO-", &url])
}

#[test]
fn a_container_on_the_bridge_reaches_the_laptop_through_the_docker_gateway_only() {
    let vm = TestVm::new("rgw", 49, true);
    lab_cmd(&["sshd", &vm.name, "2222", "GatewayPorts=clientspecified"]);
    lab_cmd(&["sshd", &vm.name, "2223", "GatewayPorts=yes"]);
    let t = Tether::new();
    let sock = vm.docker_sock();
    t.add_vm("gw", &vm.ip, 2222, &sock).ok();
    t.add_vm("plain", &vm.ip, 22, &sock).ok();
    t.add_vm("wide", &vm.ip, 2223, &sock).ok();
    for name in ["gw", "plain", "wide"] {
        t.run(&["connect", name]).ok();
    }
    let token = format!("bridge-service-{}", std::process::id());
    let local = laptop_web(&token);
    let remote = free_port();

    let out = t
        .run(&["tunnel", "gw", "--reverse", &format!("docker:{remote}:{local}")])
        .ok();
    // The gateway as the VM's engine reports it, looked up through the link.
    let r = reverse_of(&t, "gw", remote);
    let gateway = r["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address in {r}"))
        .to_string();
    assert_eq!(gateway, "172.17.0.1", "{r}");
    assert_eq!(
        (r["bind"].as_str(), r["state"].as_str()),
        (Some("docker"), Some("listening")),
        "{r}"
    );
    assert!(out.stdout.contains(&format!("{gateway}:{remote}")), "{}", out.stdout);
    let config = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
    assert!(config.contains("bind = \"docker\""), "{config}");

    let got = fetch_on_bridge(&t, "gw", &gateway, remote).ok();
    assert_eq!(got.stdout.trim(), token);
    // Only the gateway: neither the VM's loopback nor its own address serves it.
    for host in ["127.0.0.1", vm.ip.as_str()] {
        let other = fetch_in_container_from(&t, "gw", host, remote);
        assert!(
            other.code != 0 && other.stderr.contains("Connection refused"),
            "{host} was not refused: {} {}",
            other.stdout,
            other.stderr
        );
    }

    // sshd with GatewayPorts no binds the loopback whatever is asked: found, taken back, named.
    let before = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
    let remote2 = free_port();
    t.run(&["tunnel", "plain", "--reverse", &format!("docker:{remote2}:{local}")])
        .fails_with(&["GatewayPorts clientspecified", "loopback", &remote2.to_string()]);
    // With GatewayPorts yes it would be open on every address: taken back too.
    let remote3 = free_port();
    t.run(&["tunnel", "wide", "--reverse", &format!("docker:{remote3}:{local}")])
        .fails_with(&["every address", "GatewayPorts clientspecified"]);
    assert_eq!(
        std::fs::read_to_string(t.home().join("config/config.toml")).unwrap(),
        before
    );
    for (port, host) in [(remote2, "127.0.0.1"), (remote3, vm.ip.as_str())] {
        let r = fetch_in_container_from(&t, "gw", host, port);
        assert!(
            r.code != 0 && r.stderr.contains("Connection refused"),
            "{host}:{port} still listens: {}",
            r.stdout
        );
    }
    // Every address is refused before the VM is asked.
    t.run(&["tunnel", "gw", "--reverse", "0.0.0.0:5999"])
        .fails_with(&["every address"]);

    // After a link cut it is asked for on the gateway again.
    lab_cmd(&["link", &vm.name, "down"]);
    t.wait_state("gw", "reconnecting", Duration::from_secs(15));
    lab_cmd(&["link", &vm.name, "up"]);
    t.wait_state("gw", "connected", Duration::from_secs(40));
    wait_listening(&t, "gw", remote, Duration::from_secs(90));
    let again = fetch_on_bridge(&t, "gw", &gateway, remote).ok();
    assert_eq!(again.stdout.trim(), token);
}

/// Knocks on `ip:port` from this machine until `stop`, as someone on the VM's network would:
/// returns (TCP connections sshd accepted, answers that carried `token`).
fn knock_until(
    ip: String,
    port: u16,
    token: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(u32, u32)> {
    use std::io::{Read as _, Write as _};
    std::thread::spawn(move || {
        let (mut accepted, mut served) = (0, 0);
        let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().unwrap();
        // One more round after the stop: the tunnel's answer must not have left a listener.
        let mut last = false;
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                accepted += 1;
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
                let mut got = String::new();
                let _ = s.read_to_string(&mut got);
                if got.contains(&token) {
                    served += 1;
                }
            }
            if last {
                return (accepted, served);
            }
            last = stop.load(std::sync::atomic::Ordering::SeqCst);
        }
    })
}

#[test]
fn a_vm_whose_sshd_binds_every_address_serves_nothing_beyond_its_loopback_not_even_while_checked() {
    let vm = TestVm::new("rgp", 63, false);
    lab_cmd(&["sshd", &vm.name, "2223", "GatewayPorts=yes"]);
    let t = Tether::new();
    t.add_vm(&vm.name, &vm.ip, 2223, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", &vm.name]).ok();
    let token = format!("laptop-secret-{}", std::process::id());
    let local = laptop_web(&token);
    let before = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();

    // The default (the VM's loopback) and one address of the VM's own: sshd binds every address
    // for both. Each is refused naming the setting, and nobody on the VM's network is served,
    // during the check either.
    for (spec, remote) in [(None, free_port()), (Some(vm.ip.clone()), free_port())] {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let knocker = knock_until(vm.ip.clone(), remote, token.clone(), stop.clone());
        let map = match &spec {
            None => format!("{remote}:{local}"),
            Some(ip) => format!("{ip}:{remote}:{local}"),
        };
        let out = t.run(&["tunnel", &vm.name, "--reverse", &map]).fails_with(&[
            "every address",
            "GatewayPorts",
            &remote.to_string(),
        ]);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (accepted, served) = knocker.join().unwrap();
        eprintln!("{map}: sshd accepted {accepted} knocks while it listened; {served} served");
        assert_eq!(
            served, 0,
            "the laptop's service answered on the VM's own address: {}",
            out.stderr
        );
        let after = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
        assert_eq!(before, after, "a refused reverse tunnel changed the config");
        // Taken back: nothing listens there any more.
        let addr: std::net::SocketAddr = format!("{}:{remote}", vm.ip).parse().unwrap();
        wait_for("the VM to stop listening", Duration::from_secs(10), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                .is_err()
                .then_some(())
        });
    }
    assert!(
        t.status(&vm.name)["reverse"].as_array().is_none_or(|a| a.is_empty()),
        "{}",
        t.status(&vm.name)
    );
}
