//! Nothing blocks the engine: a VM that accepts TCP and never speaks, or an engine check that
//! hangs, delays neither the control API nor any other VM.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tether_e2e::*;

/// One `status` request straight on the control socket: the engine's own answer time.
fn timed_status(t: &Tether) -> Duration {
    let t0 = Instant::now();
    let mut s = UnixStream::connect(t.home().join("run/control.sock")).expect("control socket");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"{\"op\":\"status\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).expect("status answer");
    assert!(line.contains("\"ok\":true"), "{line}");
    t0.elapsed()
}

fn timed_docker_ps(t: &Tether, vm: &str) -> Duration {
    let t0 = Instant::now();
    let ps = docker_at_with_timeout(&format!("unix://{}", t.socket(vm).display()), &["ps"], 10);
    assert_eq!(ps.code, 0, "{}", ps.stderr);
    t0.elapsed()
}

#[test]
fn a_vm_that_never_speaks_delays_nothing_else() {
    let tp = TestVm::new("tp", 30, false);
    lab_cmd(&["tarpit", "tp", "2200"]);
    let t = Tether::new();
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", "a"]).ok();
    // Written by hand: adding it through the CLI would ask it for its host key first.
    let path = t.home().join("config/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let table = format!(
        "\n[vms.tp]\nhost = \"{}\"\nport = 2200\nuser = \"{}\"\nidentity = \"{}\"\nremote_socket = \"{}\"\n",
        tp.ip,
        var("LAB_USER"),
        var("LAB_KEY"),
        var("LAB_A_SOCK")
    );
    std::fs::write(&path, text + &table).unwrap();

    let mut hung = t
        .command(&["connect", "tp", "--accept-new"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    t.wait_state("tp", "connecting", Duration::from_secs(10));

    let mut worst_status = Duration::ZERO;
    let mut worst_ps = Duration::ZERO;
    for i in 0..20 {
        worst_status = worst_status.max(timed_status(&t));
        if i % 4 == 0 {
            worst_ps = worst_ps.max(timed_docker_ps(&t, "a"));
        }
    }
    assert!(
        matches!(hung.try_wait(), Ok(None)),
        "the connect to the tarpit ended before the measurement did"
    );
    eprintln!(
        "beside a hanging handshake: slowest status {worst_status:?}, slowest docker ps on another VM {worst_ps:?}"
    );
    assert!(
        worst_status < Duration::from_millis(100),
        "status took {worst_status:?} beside a hanging handshake"
    );
    assert!(
        worst_ps < Duration::from_secs(1),
        "docker ps on another VM took {worst_ps:?}"
    );

    let status = wait_for("the hanging connect to give up", Duration::from_secs(30), || {
        hung.try_wait().ok().flatten()
    });
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(hung.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("no SSH handshake within"), "{err}");
    assert_eq!(t.status("a")["state"], "connected");
}

#[test]
fn connect_on_a_live_vm_does_not_wait_for_its_engine_check() {
    let vm = TestVm::new("ec", 31, true);
    let t = Tether::new();
    t.add_vm("ec", &vm.ip, 22, &vm.docker_sock()).ok();
    t.run(&["connect", "ec"]).ok();
    t.docker("ec", &["version"]).ok();

    // A dockerd that stopped answering: every engine check now hangs until its deadline.
    let dockerd = vm.pids_named("dockerd");
    assert_eq!(dockerd.len(), 1, "{dockerd:?}");
    signal(&dockerd, "STOP");

    // One connect starts an engine check and waits for its verdict; it hangs with the engine.
    let mut first = t
        .command(&["connect", "ec"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the engine check of the first connect", Duration::from_secs(10), || {
        t.log().contains("checking the engine for a connect").then_some(())
    });
    // Others arriving meanwhile answer at once with what is known, and status stays prompt.
    for i in 0..3 {
        let t0 = Instant::now();
        let r = t.run(&["connect", "ec"]).ok();
        let took = t0.elapsed();
        eprintln!("connect {i} during a hung engine check: {took:?}");
        assert!(
            took < Duration::from_secs(1),
            "connect {i} waited {took:?} for the engine check: {}",
            r.stdout
        );
        assert!(timed_status(&t) < Duration::from_millis(100));
    }
    assert!(
        matches!(first.try_wait(), Ok(None)),
        "the first connect did not wait for the hung check"
    );
    signal(&dockerd, "CONT");
    let status = wait_for("the first connect to answer", Duration::from_secs(30), || {
        first.try_wait().ok().flatten()
    });
    eprintln!("the first connect ended with {status} once the engine answered or its check timed out");
    t.docker("ec", &["version"]).ok();
}
