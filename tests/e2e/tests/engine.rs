//! One engine per Tether home: a second daemon never becomes a second engine, `tether engine
//! status|stop`, and config edits made outside the engine are adopted, never overwritten.

use std::process::Stdio;
use std::time::Duration;

use tether_e2e::*;

fn engine_status(t: &Tether) -> serde_json::Value {
    let r = t.run(&["engine", "status", "--json"]).ok();
    serde_json::from_str(&r.stdout).expect("engine status json")
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(false)
}

#[test]
fn a_second_daemon_exits_zero_naming_the_running_engine() {
    let t = Tether::new();
    let pid = t.engine_pid();
    let r = t.run(&["daemon"]).ok();
    assert!(
        r.stderr.contains(&format!("pid {pid}")) && r.stderr.contains("tether daemon"),
        "{}",
        r.stderr
    );
    let s = engine_status(&t);
    assert_eq!(s["running"], true, "{s}");
    assert_eq!(s["owner"]["pid"], pid, "{s}");
    assert_eq!(s["owner"]["kind"], "daemon", "{s}");
    assert_eq!(s["answers"], true, "{s}");
    let human = t.run(&["engine", "status"]).ok();
    assert!(
        human.stdout.contains(&format!("tether daemon (pid {pid})")),
        "{}",
        human.stdout
    );
}

#[test]
fn engines_started_at_the_same_instant_end_as_one() {
    let t = Tether::without_daemon(&[]);
    let mut children: Vec<_> = (0..6)
        .map(|_| {
            t.command(&["daemon"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("tether daemon")
        })
        .collect();
    // All but one find the lock taken and exit 0; one stays and serves.
    let exited = wait_for("five of six daemons to exit", Duration::from_secs(20), || {
        let done: Vec<_> = children
            .iter_mut()
            .filter_map(|c| c.try_wait().ok().flatten())
            .collect();
        (done.len() >= 5).then_some(done)
    });
    assert_eq!(exited.len(), 5);
    assert!(exited.iter().all(|s| s.success()), "{exited:?}");
    let at = children
        .iter_mut()
        .position(|c| matches!(c.try_wait(), Ok(None)))
        .expect("one daemon runs");
    let survivor = &mut children[at];
    let pid = survivor.id();
    wait_for("the engine to answer", Duration::from_secs(10), || {
        (engine_status(&t)["answers"] == true).then_some(())
    });
    assert_eq!(engine_status(&t)["owner"]["pid"], pid);
    assert_eq!(t.engine_pid(), pid);
    t.run(&["engine", "stop"]).ok();
    let status = wait_for("the survivor to end", Duration::from_secs(15), || {
        survivor.try_wait().ok().flatten()
    });
    assert!(status.success(), "{status}");
    for mut c in children {
        let _ = c.wait();
    }
}

#[test]
fn engine_stop_disconnects_everything_and_frees_the_home() {
    let t = Tether::without_daemon(&[]);
    // The CLI starts the engine in the background: `engine stop` is the way to end it.
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", "a"]).ok();
    let port = free_port();
    t.run(&["tunnel", "a", "-p", &format!("{port}:22")]).ok();
    let pid = t.engine_pid();
    let sock = t.socket("a");
    assert!(sock.exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    let r = t.run(&["engine", "stop"]).ok();
    assert!(r.stdout.contains(&format!("pid {pid}")), "{}", r.stdout);
    // `engine stop` returns only once the engine is gone.
    assert!(!alive(pid), "the engine (pid {pid}) still runs after engine stop");
    assert!(!sock.exists(), "the Docker socket outlived the engine");
    assert!(
        !t.home().join("run/control.sock").exists(),
        "the control socket outlived the engine"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the tunnel outlived the engine"
    );
    assert_eq!(engine_status(&t)["running"], false);
    let r = t.run(&["engine", "stop"]).ok();
    assert!(r.stdout.contains("no Tether engine runs"), "{}", r.stdout);

    // The tunnel was saved, and a new engine brings it back.
    t.run(&["connect", "a"]).ok();
    wait_for("the tunnel again", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert_ne!(t.engine_pid(), pid);
}

#[test]
fn hand_edits_to_the_config_are_adopted_not_overwritten() {
    let t = Tether::new();
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    let path = t.home().join("config/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();

    // A second VM, written into the file by hand while the engine runs: a copy of a's table.
    let table = text.split("[vms.a]").nth(1).expect("a's table");
    let table = table.split("\n[").next().unwrap_or(table);
    std::fs::write(&path, format!("{text}\n[vms.hand]{table}\n")).unwrap();

    // A change through the engine lands on top of the hand edit.
    let port = free_port();
    t.run(&["tunnel", "a", "-p", &format!("{port}:22")]).ok();
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(
        after.contains("[vms.hand]"),
        "the hand-added VM was overwritten:\n{after}"
    );
    assert!(after.contains(&format!("local = {port}")), "{after}");
    let names: Vec<String> = {
        let r = t.run(&["status", "--json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(names, ["a", "hand"]);
    // And the hand-added VM works.
    t.run(&["connect", "hand"]).ok();
    t.docker("hand", &["version"]).ok();

    // A hand edit that breaks the file: the next change is refused, and the file stays as the
    // user left it.
    let broken = format!("{after}\n[vms.oops\n");
    std::fs::write(&path, &broken).unwrap();
    t.run(&["tunnel", "a", "-p", &format!("{}:22", free_port())])
        .fails_with(&["config.toml:", "left untouched"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
    assert_eq!(
        t.status("hand")["state"],
        "connected",
        "a broken file must not drop a running VM"
    );
}
