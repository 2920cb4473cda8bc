//! Sleep and wake: a laptop that slept while its VM forgot the connection, and logind's
//! `PrepareForSleep` signal, each followed by working `docker` and tunnels within 2 s.

use std::io::{BufRead as _, Write as _};
use std::process::Command;
use std::time::{Duration, Instant};

use tether_e2e::*;

/// Stops the process and waits until it is stopped.
fn freeze(pid: u32) {
    let pid = pid.to_string();
    wait_for("the engine to be stopped", Duration::from_secs(5), || {
        signal(std::slice::from_ref(&pid), "STOP");
        (proc_state(&pid) == Some('T')).then_some(())
    });
}

fn connect_with_tunnel(t: &Tether, vm: &TestVm) -> u16 {
    t.add_vm(&vm.name, &vm.ip, 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", &vm.name]).ok();
    t.docker(&vm.name, &["version"]).ok();
    lab_cmd(&["web", &vm.name, "8000"]);
    let local = free_port();
    t.run(&["tunnel", &vm.name, "-p", &format!("{local}:8000")]).ok();
    let (status, _) = http_tcp(local, "/index.html").unwrap();
    assert!(status.contains("200"), "{status}");
    local
}

/// Waits until docker and the tunnel both work; returns when each first did, from `since`.
fn both_work(t: &Tether, vm: &TestVm, local: u16, since: Instant) -> (Duration, Duration) {
    let host = format!("unix://{}", t.socket(&vm.name).display());
    let docker = wait_for("docker ps after the wake", Duration::from_secs(15), || {
        (docker_at_with_timeout(&host, &["ps"], 5).code == 0).then(|| since.elapsed())
    });
    let tunnel = wait_for("the tunnel after the wake", Duration::from_secs(15), || {
        http_tcp(local, "/index.html")
            .ok()
            .filter(|(s, _)| s.contains("200"))
            .map(|_| since.elapsed())
    });
    (docker, tunnel)
}

/// The laptop sleeps (the engine frozen) while its network is gone and the VM's sshd restarts,
/// so the VM forgets the connection and no FIN can reach the laptop. On wake (thaw), docker and
/// the tunnel work again within 2 s, with one drop and one return at most.
#[test]
fn a_simulated_sleep_recovers_within_two_seconds_of_the_thaw() {
    let vm = TestVm::new("sl", 16, false);
    let t = Tether::new();
    let local = connect_with_tunnel(&t, &vm);
    let (mut watcher, events) = t.spawn_lines(&["status", "--watch", "--json"]);
    events
        .recv_timeout(Duration::from_secs(10))
        .expect("a snapshot from status --watch");

    let engine = t.engine_pid();
    freeze(engine);
    lab_cmd(&["link", &vm.name, "down"]);
    let sshd = vm.pids_named("sshd");
    assert!(!sshd.is_empty(), "no sshd in {}", vm.name);
    wait_for("the VM's sshd to be gone", Duration::from_secs(5), || {
        signal(&sshd, "KILL");
        sshd.iter().all(|p| proc_state(p).is_none()).then_some(())
    });
    lab_cmd(&["sshd", &vm.name, "22"]);
    // The lid stays shut a while: longer than any tick of the engine's, so its timers all
    // expire at once on wake.
    std::thread::sleep(Duration::from_secs(5));
    lab_cmd(&["link", &vm.name, "up"]);
    let thaw = Instant::now();
    signal(&[engine.to_string()], "CONT");

    let (docker, tunnel) = both_work(&t, &vm, local, thaw);
    eprintln!("after the thaw: docker ps worked at {docker:?}, the tunnel at {tunnel:?}");
    assert!(
        docker < Duration::from_secs(2),
        "docker ps worked only {docker:?} after the thaw"
    );
    assert!(
        tunnel < Duration::from_secs(2),
        "the tunnel worked only {tunnel:?} after the thaw"
    );
    t.wait_state(&vm.name, "connected", Duration::from_secs(5));

    // What a notifier sees: at most one drop and one return.
    let _ = watcher.kill();
    let _ = watcher.wait();
    let states: Vec<String> = events
        .try_iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter(|e| e["event"] == "state" && e["vm"] == vm.name.as_str())
        .filter_map(|e| e["state"].as_str().map(str::to_string))
        .collect();
    let drops = states
        .windows(2)
        .filter(|w| w[0] == "connected" && w[1] == "reconnecting")
        .count()
        + usize::from(states.first().is_some_and(|s| s == "reconnecting"));
    let backs = states.iter().filter(|s| *s == "connected").count();
    assert!(drops <= 1 && backs <= 1, "more than one drop or return: {states:?}");
}

/// logind says the laptop is resuming: every session checks its link at once. Here the VM
/// stopped answering without closing anything; on its own the engine needs two missed probes
/// (5 s or more) to give up on the link, after the signal it takes one short probe. The same
/// signal from another bus name (any local user can send one) is ignored.
#[test]
fn prepare_for_sleep_on_the_system_bus_rechecks_at_once() {
    // A private bus stands in for the system bus.
    let (mut bus, address) = tether_e2e::keyring::session_bus();
    let vm = TestVm::new("ps", 17, false);
    let t = Tether::with_env(&[("DBUS_SYSTEM_BUS_ADDRESS", &address)]);
    connect_with_tunnel(&t, &vm);
    wait_for("the engine to listen for logind", Duration::from_secs(10), || {
        t.log().contains("listening for logind's PrepareForSleep").then_some(())
    });

    wait_for("every process in the VM to be stopped", Duration::from_secs(5), || {
        signal(&vm.pids(), "STOP");
        vm.pids()
            .iter()
            .all(|p| proc_state(p).is_none_or(|c| c == 'T'))
            .then_some(())
    });
    let send = |resuming: bool| {
        let st = Command::new("dbus-send")
            .arg(format!("--bus={address}"))
            .args([
                "--type=signal",
                "/org/freedesktop/login1",
                "org.freedesktop.login1.Manager.PrepareForSleep",
            ])
            .arg(format!("boolean:{}", !resuming))
            .status()
            .unwrap();
        assert!(st.success(), "dbus-send failed");
    };
    // Anyone on the bus may send a signal of that name: one not from logind changes nothing.
    send(false);
    send(true);
    wait_for("the forged signals to be ignored", Duration::from_secs(10), || {
        (t.log()
            .matches("ignored a PrepareForSleep signal that logind did not send")
            .count()
            >= 2)
            .then_some(())
    });
    assert!(!t.log().contains("the laptop woke (logind)"), "{}", t.log());
    assert_eq!(
        t.status(&vm.name)["state"],
        "connected",
        "a forged wake signal cut the link"
    );

    // logind itself (the name's owner) says the laptop is resuming.
    let mut logind = Command::new(repo().join("tests/lab/logind.py"))
        .arg(&address)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = std::io::BufReader::new(logind.stdout.take().unwrap()).lines();
    assert_eq!(said.next().unwrap().unwrap(), "logind ready");
    let mut to_logind = logind.stdin.take().unwrap();
    writeln!(to_logind, "sleep\nwake").unwrap();
    assert_eq!(said.next().unwrap().unwrap(), "sent sleep");
    assert_eq!(said.next().unwrap().unwrap(), "sent wake");
    let woke = Instant::now();
    t.wait_state(&vm.name, "reconnecting", Duration::from_secs(10));
    let took = woke.elapsed();
    eprintln!("link given up {took:?} after PrepareForSleep(false)");
    assert!(
        took < Duration::from_secs(2),
        "the dead link was noticed only {took:?} after the wake signal"
    );
    assert!(t.log().contains("the laptop woke (logind)"), "{}", t.log());

    signal(&vm.pids(), "CONT");
    t.wait_state(&vm.name, "connected", Duration::from_secs(30));
    drop(to_logind);
    let _ = logind.wait();
    let _ = bus.kill();
    let _ = bus.wait();
}

/// The laptop joins another network, and the VM's name now resolves to another address while
/// the old one is gone (no FIN or RST will come from it). Tether reconnects to the new address
/// within 2 s. The engine resolves names through a hosts file of the test's, bind-mounted over
/// /etc/hosts in a mount namespace of its own.
#[test]
fn a_network_change_moves_to_the_new_address_within_two_seconds() {
    let vm = TestVm::new("nc", 18, false);
    let dir = tempfile::Builder::new().prefix("hosts").tempdir_in("/var/tmp").unwrap();
    let hosts = dir.path().join("hosts");
    let name = "labvm.test";
    std::fs::write(&hosts, format!("127.0.0.1 localhost\n{} {name}\n", vm.ip)).unwrap();
    let t = Tether::with_daemon_prefix(&[
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount --bind \"$0\" /etc/hosts && exec \"$@\"",
        hosts.to_str().unwrap(),
    ]);
    t.add_vm("nc", name, 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", "nc"]).ok();
    t.docker("nc", &["version"]).ok();
    let before = t.status("nc")["since_ms"].as_u64().unwrap();

    // The name answers with the new address (written in place: the bind mount follows the inode).
    let new_ip = vm.ip.rsplit_once('.').map(|(net, _)| format!("{net}.3")).unwrap();
    std::fs::write(&hosts, format!("127.0.0.1 localhost\n{new_ip} {name}\n")).unwrap();
    lab_cmd(&["move", "nc"]);
    let moved = Instant::now();
    let again = wait_for("a new connection", Duration::from_secs(15), || {
        let s = t.status("nc");
        (s["state"] == "connected" && s["since_ms"].as_u64().unwrap_or(0) > before).then(|| moved.elapsed())
    });
    eprintln!("reconnected to the new address {again:?} after the network change");
    assert!(
        again < Duration::from_secs(2),
        "reconnected only {again:?} after the network change"
    );
    t.docker("nc", &["ps"]).ok();
    let ss = Command::new("ip")
        .args([
            "netns",
            "exec",
            "tl-nc",
            "ss",
            "-Htn",
            "state",
            "established",
            "( sport = :22 )",
        ])
        .output()
        .unwrap();
    let ss = String::from_utf8_lossy(&ss.stdout);
    assert!(
        ss.contains(&format!("{new_ip}:22")),
        "no connection to the new address: {ss}"
    );
}
