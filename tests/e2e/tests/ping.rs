//! The docker CLI's `/_ping`, answered on the laptop (`settings.docker_ping_cache`), against the
//! lab's real dockerd: the answer is the engine's own, byte for byte but the `Date`; a kept
//! connection's later requests still reach the VM; a stopped dockerd is never answered for, nor a
//! reloaded one with its old answer; and with the setting off every ping goes to the VM.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use tether_e2e::*;

/// One answer read off a kept HTTP/1.1 connection: the head, then the body its length says.
fn read_answer(s: &mut UnixStream, head_only: bool) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read the answer");
        assert!(n == 1, "the connection closed after {} bytes", raw.len());
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_string();
    let len: usize = if head_only {
        0
    } else {
        head.lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().expect("length"))
            })
            .unwrap_or_else(|| panic!("no Content-Length in {head}"))
    };
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("body");
    raw.extend_from_slice(&body);
    raw
}

/// HEAD and GET `/_ping` on one kept connection to `sock`, then `GET /version` on it.
fn pings(sock: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut s = UnixStream::connect(sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n").unwrap();
    let head = read_answer(&mut s, true);
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n").unwrap();
    let get = read_answer(&mut s, false);
    s.write_all(b"GET /version HTTP/1.1\r\nHost: docker\r\n\r\n").unwrap();
    let version = read_answer(&mut s, false);
    (head, get, version)
}

/// The answer with its `Date` value blanked.
fn undated(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .lines()
        .map(|l| {
            if l.to_ascii_lowercase().starts_with("date:") {
                "Date: *"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn counters(t: &Tether, vm: &str) -> (u64, bool, u64) {
    let p = t.status(vm)["docker_pool"].clone();
    (
        p["pings_answered"]
            .as_u64()
            .unwrap_or_else(|| panic!("pings_answered missing: {p}")),
        p["ping_learned"]
            .as_bool()
            .unwrap_or_else(|| panic!("ping_learned missing: {p}")),
        p["ping_forgotten"]
            .as_u64()
            .unwrap_or_else(|| panic!("ping_forgotten missing: {p}")),
    )
}

fn wait_learned(t: &Tether, vm: &str, learned: bool) {
    wait_for(&format!("ping_learned = {learned}"), Duration::from_secs(15), || {
        (counters(t, vm).1 == learned).then_some(())
    });
}

#[test]
fn pings_are_answered_on_the_laptop_with_the_engines_own_answer_while_it_is_current() {
    let vm = TestVm::new("pc", 38, true);
    let t = Tether::new();
    t.add_vm("pc", &vm.ip, 22, &vm.docker_sock()).ok();
    t.run(&["connect", "pc"]).ok();
    let sock = t.socket("pc");
    let direct = Path::new(&vm.docker_sock()).to_path_buf();

    // Nothing is learned before docker is used: the engine's own health pings do not count.
    assert_eq!(counters(&t, "pc"), (0, false, 0));
    // The first pings go to the VM and set learning off; then they are answered here.
    let (h0, g0, _) = pings(&sock);
    assert_eq!(counters(&t, "pc").0, 0, "answered before anything was learned");
    wait_learned(&t, "pc", true);
    let (head, get, version) = pings(&sock);
    assert_eq!(
        counters(&t, "pc").0,
        2,
        "both pings of the kept connection answered here"
    );
    let (dh, dg, dv) = pings(&direct);
    assert_eq!(undated(&head), undated(&dh), "HEAD /_ping differs from the engine's");
    assert_eq!(undated(&get), undated(&dg), "GET /_ping differs from the engine's");
    assert_eq!(undated(&h0), undated(&dh));
    assert_eq!(undated(&g0), undated(&dg));
    assert!(
        undated(&get).ends_with("\n\nOK") || undated(&get).ends_with("\nOK"),
        "{}",
        undated(&get)
    );
    // The request after the pings on the same connection reached the engine.
    let v = String::from_utf8_lossy(&version);
    assert!(v.starts_with("HTTP/1.1 200"), "{v}");
    let dv = String::from_utf8_lossy(&dv);
    let body = |s: &str| s.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    assert_eq!(
        body(&v),
        body(&dv),
        "GET /version through Tether differs from the engine's"
    );

    // The docker CLI's own ping (a HEAD) is answered here and its command works.
    let before = counters(&t, "pc").0;
    let out = t.docker("pc", &["version", "--format", "{{.Server.APIVersion}}"]).ok();
    assert!(!out.stdout.trim().is_empty());
    assert!(counters(&t, "pc").0 > before, "the docker CLI's ping went to the VM");

    // dockerd stops: the answer is forgotten, and a ping gets the VM's real state, not "OK".
    let (_, _, forgotten0) = counters(&t, "pc");
    lab_cmd(&["dockerd-stop", "pc"]);
    wait_learned(&t, "pc", false);
    assert!(counters(&t, "pc").2 > forgotten0);
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n").unwrap();
    let mut down = Vec::new();
    let _ = s.read_to_end(&mut down);
    let down = String::from_utf8_lossy(&down);
    assert!(
        !down.starts_with("HTTP/1.1 200"),
        "a stopped engine was answered for: {down}"
    );
    assert!(down.contains("tether:"), "{down}");

    // Started again, it is learned again and answered for with its new answer.
    lab_cmd(&["dockerd-start", "pc"]);
    let (_, g1, _) = pings(&sock);
    assert!(String::from_utf8_lossy(&g1).starts_with("HTTP/1.1 200"));
    wait_learned(&t, "pc", true);
    let answered = counters(&t, "pc").0;
    let (_, g2, _) = pings(&sock);
    assert_eq!(counters(&t, "pc").0, answered + 2);
    assert_eq!(undated(&g2), undated(&pings(&direct).1));

    // A configuration reload (SIGHUP) is a daemon event: the answer is forgotten at once.
    let (_, _, forgotten1) = counters(&t, "pc");
    let pid = std::fs::read_to_string(direct.with_file_name("docker.pid")).expect("docker.pid");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .expect("kill");
    assert!(hup.success());
    wait_for("the reload to forget the answer", Duration::from_secs(15), || {
        (counters(&t, "pc").2 > forgotten1).then_some(())
    });
}

#[test]
fn with_the_setting_off_every_ping_goes_to_the_vm() {
    let off = Tether::without_daemon(&[]);
    let config = off.home().join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(
        config.join("config.toml"),
        "version = 1\n\n[settings]\ndocker_ping_cache = false\n",
    )
    .expect("config");
    off.add_vm("off", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    off.run(&["connect", "off"]).ok();
    // A second engine with the default, on the same VM, is the control: once it has learned
    // and answered, the first has had as long to do the same.
    let on = Tether::new();
    on.add_vm("on", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    on.run(&["connect", "on"]).ok();
    pings(&off.socket("off"));
    pings(&on.socket("on"));
    wait_learned(&on, "on", true);
    pings(&off.socket("off"));
    pings(&on.socket("on"));
    assert_eq!(counters(&on, "on").0, 2);
    let out = off
        .docker("off", &["version", "--format", "{{.Server.APIVersion}}"])
        .ok();
    assert!(!out.stdout.trim().is_empty());
    assert_eq!(counters(&off, "off"), (0, false, 0));
}
