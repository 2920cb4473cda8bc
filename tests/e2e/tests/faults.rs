//! Faults on a live connection, each recovering with no user action. Every test makes its own
//! VM (namespace + sshd) so cutting it disturbs nothing else.

use std::process::Command;
use std::time::{Duration, Instant};

use tether_e2e::*;

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd} failed");
}

fn ns_pids(vm: &TestVm) -> Vec<String> {
    vm.pids()
}

fn signal_all(vm: &TestVm, sig: &str) {
    signal(&vm.pids(), sig);
}

/// SIGKILLs every process in a VM's namespace, and waits until none is left.
fn kill_sshd(vm: &TestVm) {
    assert!(!ns_pids(vm).is_empty(), "no sshd in {}", vm.name);
    wait_for("every process in the VM to be gone", Duration::from_secs(5), || {
        signal_all(vm, "KILL");
        ns_pids(vm).is_empty().then_some(())
    });
}

fn connect_fault_vm(t: &Tether, vm: &TestVm) {
    t.add_vm(&vm.name, &vm.ip, 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", &vm.name]).ok();
    t.docker(&vm.name, &["version"]).ok();
}

/// After recovery docker works again through the same socket path.
fn assert_recovered(t: &Tether, vm: &TestVm) {
    t.wait_state(&vm.name, "connected", Duration::from_secs(30));
    wait_for("docker through the restored link", Duration::from_secs(10), || {
        (t.docker(&vm.name, &["ps"]).code == 0).then_some(())
    });
}

#[test]
fn link_cut_and_restored() {
    let vm = TestVm::new("fl", 11, false);
    let t = Tether::new();
    connect_fault_vm(&t, &vm);
    // A tunnel to a web server on the VM's loopback, to prove listeners survive the outage.
    lab_cmd(&["web", &vm.name, "8000"]);
    let local = free_port();
    t.run(&["tunnel", &vm.name, "-p", &format!("{local}:8000")]).ok();
    let (_, body) = http_tcp(local, "/index.html").unwrap();
    assert_eq!(String::from_utf8_lossy(&body).trim(), "hello from the tether lab");

    let cut = Instant::now();
    lab_cmd(&["link", &vm.name, "down"]);
    let st = t.wait_state(&vm.name, "reconnecting", Duration::from_secs(12));
    let detected = cut.elapsed();
    assert!(
        detected <= Duration::from_secs(10),
        "dead link detected only after {detected:?}"
    );
    eprintln!("dead link detected after {detected:?}");
    assert!(st["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{st}");

    // While down: the socket still exists and a client gets a clear answer within seconds.
    assert!(t.socket(&vm.name).exists(), "socket removed during an outage");
    let t0 = Instant::now();
    let ps = docker_at_with_timeout(&format!("unix://{}", t.socket(&vm.name).display()), &["ps"], 30);
    assert_ne!(ps.code, 0);
    assert!(ps.stderr.contains("reconnecting"), "{}", ps.stderr);
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "client waited {:?}",
        t0.elapsed()
    );
    // The tunnel's local port is still bound (connect succeeds, then closes).
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", local)).is_ok(),
        "tunnel unbound during outage"
    );

    let healed = Instant::now();
    lab_cmd(&["link", &vm.name, "up"]);
    assert_recovered(&t, &vm);
    eprintln!("reconnected {:?} after the link came back", healed.elapsed());
    // The tunnel works again through the new connection.
    let body = wait_for("the tunnel after recovery", Duration::from_secs(10), || {
        http_tcp(local, "/index.html")
            .ok()
            .filter(|(s, _)| s.contains("200"))
            .map(|(_, b)| b)
    });
    assert_eq!(String::from_utf8_lossy(&body).trim(), "hello from the tether lab");
}

#[test]
fn sshd_killed_and_restarted() {
    let vm = TestVm::new("fk", 12, false);
    let t = Tether::new();
    connect_fault_vm(&t, &vm);
    kill_sshd(&vm);
    t.wait_state(&vm.name, "reconnecting", Duration::from_secs(12));
    // Keeps retrying while sshd is gone.
    wait_for("a second reconnect attempt", Duration::from_secs(10), || {
        (t.status(&vm.name)["attempt"].as_u64().unwrap_or(0) >= 2).then_some(())
    });
    lab_cmd(&["sshd", &vm.name, "22"]);
    assert_recovered(&t, &vm);
}

#[test]
fn sshd_frozen_then_resumed() {
    let vm = TestVm::new("fz", 13, false);
    let t = Tether::new();
    connect_fault_vm(&t, &vm);
    assert!(!ns_pids(&vm).is_empty());
    let frozen = Instant::now();
    // Again until every process there is stopped: one may have forked meanwhile.
    wait_for("every process in the VM to be stopped", Duration::from_secs(5), || {
        signal_all(&vm, "STOP");
        ns_pids(&vm)
            .iter()
            .all(|p| proc_state(p).is_none_or(|c| c == 'T'))
            .then_some(())
    });
    t.wait_state(&vm.name, "reconnecting", Duration::from_secs(12));
    let detected = frozen.elapsed();
    assert!(
        detected <= Duration::from_secs(10),
        "frozen peer detected only after {detected:?}"
    );
    signal_all(&vm, "CONT");
    assert_recovered(&t, &vm);
}

#[test]
fn dockerd_stopped_and_started() {
    let vm = TestVm::new("fd", 14, true);
    let t = Tether::new();
    t.add_vm(&vm.name, &vm.ip, 22, &vm.docker_sock()).ok();
    t.run(&["connect", &vm.name]).ok();
    lab_cmd(&["dockerd-stop", &vm.name]);

    let ps = t.docker(&vm.name, &["ps"]);
    assert_ne!(ps.code, 0);
    assert!(
        ps.stderr.contains("Docker engine is not running on the VM"),
        "{}",
        ps.stderr
    );
    // `connect` says so too, and the SSH session stays up.
    t.run(&["connect", &vm.name])
        .fails_with(&["Docker engine is not running on the VM", "stays up"]);
    assert_eq!(t.status(&vm.name)["state"], "connected");

    lab_cmd(&["dockerd-start", &vm.name]);
    wait_for("docker after the engine restarted", Duration::from_secs(20), || {
        (t.docker(&vm.name, &["ps"]).code == 0).then_some(())
    });
    assert_eq!(t.status(&vm.name)["state"], "connected");
}

#[test]
fn changed_host_key_is_refused() {
    let vm = TestVm::new("fh", 15, false);
    let t = Tether::new();
    connect_fault_vm(&t, &vm);
    let old_fp = host_key_fingerprint(&vm.name);
    // The VM is "reinstalled": new host key, sshd restarted, live sessions gone.
    let reinstall = || {
        kill_sshd(&vm);
        sh(&format!(
            "rm -f {}/vms/{}/ssh_host_ed25519_key*",
            var("TETHER_LAB_DIR"),
            vm.name
        ));
        lab_cmd(&["sshd", &vm.name, "22"]);
        host_key_fingerprint(&vm.name)
    };
    let new_fp = reinstall();

    // The reconnect loop stops on it instead of accepting it.
    let st = t.wait_state(&vm.name, "failed", Duration::from_secs(30));
    let err = st["last_error"].as_str().unwrap_or_default().to_string();
    assert!(err.contains("CHANGED") && err.contains(&old_fp), "{err}");
    assert!(!t.socket(&vm.name).exists(), "socket kept after a refused host key");

    // So does an explicit connect, even with --accept-new, naming the file and line.
    let r = t
        .run(&["connect", &vm.name, "--accept-new"])
        .fails_with_code(5, &["CHANGED", "man-in-the-middle", &old_fp]);
    let kh = t.home().join("config/known_hosts");
    assert!(r.stderr.contains(&format!("{}:1", kh.display())), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("--replace {new_fp}")), "{}", r.stderr);

    // The administrator confirms the new key: only that exact fingerprint replaces the old one.
    t.run(&["vm", "host-key", &vm.name])
        .fails_with(&["man-in-the-middle", &new_fp, &old_fp]);
    t.run(&["vm", "host-key", &vm.name, "--replace", &old_fp])
        .fails_with(&[&format!("presents {new_fp}"), "nothing was changed"]);
    assert!(fingerprints_in(&kh).contains(&old_fp));
    t.run(&["vm", "host-key", &vm.name, "--replace", &new_fp]).ok();
    let listed = fingerprints_in(&kh);
    assert!(listed.contains(&new_fp) && !listed.contains(&old_fp), "{listed}");
    let lines: Vec<String> = std::fs::read_to_string(&kh)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with(&format!("{} ssh-ed25519 ", vm.ip)), "{lines:?}");
    assert!(t.run(&["vm", "host-key", &vm.name]).ok().stdout.contains("trusted"));
    t.run(&["connect", &vm.name]).ok();
    t.docker(&vm.name, &["version"]).ok();

    // A key recorded in ~/.ssh/known_hosts is OpenSSH's: Tether names the command and edits nothing.
    let user_kh = t.dir.path().join(".ssh/known_hosts");
    std::fs::create_dir_all(user_kh.parent().unwrap()).unwrap();
    std::fs::write(&user_kh, format!("{}\n", lines[0])).unwrap();
    let third_fp = reinstall();
    t.wait_state(&vm.name, "failed", Duration::from_secs(30));
    let ours = std::fs::read(&kh).unwrap();
    t.run(&["vm", "host-key", &vm.name, "--replace", &third_fp])
        .fails_with(&[
            &format!("{}:1", user_kh.display()),
            &format!("ssh-keygen -R '{}'", vm.ip),
        ]);
    assert_eq!(
        std::fs::read(&kh).unwrap(),
        ours,
        "Tether's known_hosts changed on a refusal"
    );
    let out = Command::new("ssh-keygen")
        .args(["-R", &vm.ip, "-f"])
        .arg(&user_kh)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    t.run(&["vm", "host-key", &vm.name, "--replace", &third_fp]).ok();
    t.run(&["connect", &vm.name]).ok();
    t.docker(&vm.name, &["version"]).ok();
}

/// `ssh-keygen -lf FILE`: the fingerprints a known_hosts file records, as OpenSSH reads it.
fn fingerprints_in(kh: &std::path::Path) -> String {
    let out = Command::new("ssh-keygen").arg("-lf").arg(kh).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
