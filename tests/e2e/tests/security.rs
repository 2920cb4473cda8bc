//! The security review's findings, each against the real thing: a VM that presents a host key
//! of another type (a man in the middle), the control socket reached by another user (and a
//! socket served by another user), log follows closed by their client, the VM password in the
//! engine's environment, escape sequences from a VM, a VM that prints without end, and one
//! local process opening connections without bound.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use tether_e2e::*;

/// The uid every "other user" here runs as.
const NOBODY: &str = "65534";

/// Python as the other user, running `script`.
fn python_as_nobody(script: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        NOBODY,
        "--regid",
        NOBODY,
        "--clear-groups",
        "/usr/bin/python3",
        "-c",
        script,
    ]);
    c
}

fn open_up(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_host_key_of_another_type_is_refused_and_never_called_a_first_connection() {
    let vm = TestVm::new("mitm", 34, false);
    lab_cmd(&["sshd", "mitm", "2222"]);
    let t = Tether::new();
    // The VM is added and its ed25519 key recorded, as on any first day.
    t.add_vm("m", &vm.ip, 2222, &var("LAB_A_SOCK")).ok();
    let known = std::fs::read_to_string(t.home().join("config/known_hosts")).unwrap();
    assert!(known.contains("ssh-ed25519"), "{known}");

    // Now whoever answers on the VM's address has only an ECDSA key.
    lab_cmd(&["sshd-stop", "mitm", "2222"]);
    lab_cmd(&["sshd", "mitm", "2222", "HostKeyType=ecdsa"]);
    let recorded = host_key_fingerprint("mitm");
    let r = t.run(&["connect", "m", "--accept-new"]);
    r.clone().fails_with(&["REFUSED", "other keys", &recorded, "ecdsa"]);
    assert!(!r.stderr.contains("not known yet"), "{}", r.stderr);
    // Nothing was learned, even with --accept-new.
    assert_eq!(
        std::fs::read_to_string(t.home().join("config/known_hosts")).unwrap(),
        known
    );
    assert_ne!(t.status("m")["state"], "connected");

    // The scan says the same, and so does adding the VM again under another name.
    t.run(&["vm", "host-key", "m"])
        .fails_with(&["REFUSED", "not a first connection", &recorded]);
    t.add_vm("m2", &vm.ip, 2222, &var("LAB_A_SOCK"))
        .fails_with(&["REFUSED", "not a first connection"]);
    // The engine's trust call (the wizard's "It matches") refuses too.
    let scan = t.control(&serde_json::json!({"op": "scan_host_key", "name": "m"}));
    assert_eq!(scan["result"]["status"], "other_type", "{scan}");
    // The recorded keys come as facts, not only in the sentence.
    let recorded = scan["result"]["recorded"].as_array().cloned().unwrap_or_default();
    assert!(
        !recorded.is_empty() && recorded.iter().all(|r| r["line"].as_u64().is_some_and(|l| l > 0)),
        "{scan}"
    );
    let fp = scan["result"]["fingerprint"].as_str().unwrap().to_string();
    let trust = t.control(&serde_json::json!({"op": "trust_host_key", "name": "m", "fingerprint": fp}));
    assert_eq!(trust["ok"], false, "{trust}");
    assert!(
        trust["error"]["message"].as_str().unwrap().contains("--replace"),
        "{trust}"
    );

    // A reinstalled VM: the administrator confirms the new key, which replaces the old ones.
    t.run(&["vm", "host-key", "m", "--replace", &fp]).ok();
    let now = std::fs::read_to_string(t.home().join("config/known_hosts")).unwrap();
    assert!(now.contains("ecdsa-sha2") && !now.contains("ssh-ed25519"), "{now}");
    t.run(&["vm", "host-key", "m"]).ok();
    lab_cmd(&["sshd-stop", "mitm", "2222"]);
}

#[test]
fn the_control_socket_talks_only_to_its_own_user_both_ways() {
    let t = Tether::new();
    // Open every door a mistake could open: the home, the run directory and the socket.
    for dir in [t.dir.path().to_path_buf(), t.home(), t.home().join("run")] {
        open_up(&dir, 0o711);
    }
    let sock = t.home().join("run/control.sock");
    open_up(&sock, 0o666);

    // Another user connects and asks: refused by its uid, and no engine fact crosses.
    let out = python_as_nobody(
        "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)\n\
             try: s.sendall(b'{\"op\":\"ping\"}\\n')\n\
             except OSError: pass\n\
             print(s.makefile().readline())",
    )
    .arg(&sock)
    .output()
    .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(answer.contains("\"forbidden\""), "{answer}");
    assert!(!answer.contains("\"pid\""), "{answer}");
    assert!(t.log().contains("refused a control connection from another user"));
    // Its own user is served as before.
    assert!(t.ping()["pid"].as_u64().is_some());

    // The other way round: a socket served by another user gets nothing from the CLI, not even
    // the request (which may carry a passphrase).
    let fake = tempfile::Builder::new().prefix("tf").tempdir_in("/var/tmp").unwrap();
    let home = fake.path().join("home");
    let run = home.join("run");
    std::fs::create_dir_all(&run).unwrap();
    for dir in [fake.path(), &home, &run] {
        open_up(dir, 0o777);
    }
    let got = fake.path().join("got");
    let mut server = python_as_nobody(
        "import socket,sys,os; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); \
             s.listen(8)\n\
             while True:\n  c,_=s.accept(); c.settimeout(2)\n  try: d=c.recv(65536)\n  except Exception: d=b''\n  \
             open(sys.argv[2],'ab').write(d)\n  \
             try: c.sendall(b'{\"ok\":true,\"result\":[]}\\n')\n  except OSError: pass\n  c.close()",
    )
    .arg(run.join("control.sock"))
    .arg(&got)
    .spawn()
    .unwrap();
    wait_for("the other user's socket", Duration::from_secs(10), || {
        run.join("control.sock").exists().then_some(())
    });
    let r = Command::new(tether_bin())
        .args(["status"])
        .env("TETHER_HOME", &home)
        .env("HOME", fake.path())
        .env("TETHER_KEY_PASSPHRASE", "not-for-them")
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "{stderr}");
    assert!(stderr.contains("served by uid 65534"), "{stderr}");
    assert_eq!(
        std::fs::read(&got).unwrap_or_default(),
        b"",
        "the client sent something"
    );
}

#[test]
fn closed_log_follows_leave_no_task_channel_or_connection_behind() {
    let lab_sock = format!("unix://{}", var("LAB_A_SOCK"));
    let name = format!("quiet-{}", std::process::id());
    docker_at(&lab_sock, &["rm", "-f", &name]);
    docker_at(
        &lab_sock,
        &["run", "-d", "--name", &name, &var("LAB_IMAGE"), "sleep", "3600"],
    )
    .ok();
    let t = Tether::new();
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", "a"]).ok();
    // Settle: the monitor's event stream and first health reading are up.
    let settled = || {
        let p = t.ping();
        (p["tasks"].as_u64().unwrap(), p["streams"].as_u64().unwrap())
    };
    let before = wait_for("a steady engine", Duration::from_secs(20), || {
        let a = settled();
        std::thread::sleep(Duration::from_millis(300));
        (settled() == a).then_some(a)
    });

    for _ in 0..50 {
        let mut s = UnixStream::connect(t.home().join("run/control.sock")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        writeln!(
            s,
            "{}",
            serde_json::json!({"op": "follow_logs", "name": "a", "id": name, "tail": 1})
        )
        .unwrap();
        let mut first = String::new();
        BufReader::new(s.try_clone().unwrap()).read_line(&mut first).unwrap();
        assert!(first.contains("\"ok\":true"), "{first}");
        // The view closes; the container keeps quiet.
        drop(s);
    }
    // A leak keeps all 50: 50 streams and at least 50 tasks more. The engine's VM is the lab's
    // shared one, where other tests' containers come and go, and each change makes the monitor
    // ask the engine for a moment: a few streams and tasks of slack, never fifty.
    const SLACK: u64 = 4;
    let after = wait_for("the follows to be let go", Duration::from_secs(20), || {
        let now = settled();
        (now.0 <= before.0 + SLACK && now.1 <= before.1 + SLACK).then_some(now)
    });
    eprintln!("tasks and streams: {before:?} before 50 follows, {after:?} after they closed");
    docker_at(&lab_sock, &["rm", "-f", &name]);
}

#[test]
fn the_vm_password_never_reaches_the_engines_environment() {
    // The first command needing the engine starts it, with TETHER_VM_PASSWORD in the caller's env.
    let t = Tether::without_daemon(&[("TETHER_VM_PASSWORD", "hunter2-secret")]);
    t.run(&["key", "list"]).ok();
    let pid = t.engine_pid();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let text = String::from_utf8_lossy(&environ);
    assert!(text.contains("TETHER_HOME="), "not the engine's environment");
    assert!(
        !text.contains("TETHER_VM_PASSWORD"),
        "the password is in the engine's environment"
    );
    assert!(!text.contains("hunter2-secret"));
    let _ = Command::new("kill").arg(pid.to_string()).status();
}

/// A login shell on the VM that says something before every command: on stderr with terminal
/// escape sequences, or 2 MiB on stdout.
fn noisy_shell(kind: &str) -> std::path::PathBuf {
    let path = std::path::PathBuf::from(format!("/var/lib/tether-lab/noisy-{kind}.sh"));
    let say = match kind {
        "escapes" => r"printf '\033]0;owned\007\033[2J\033[31mred\033[0m\r' >&2",
        _ => "head -c 2097152 /dev/zero | tr '\\0' x",
    };
    std::fs::write(&path, format!("#!/bin/sh\n{say}\nexec /bin/sh \"$@\"\n")).unwrap();
    open_up(&path, 0o755);
    path
}

fn with_shell(user: &LabUser, shell: &std::path::Path) {
    let ok = Command::new("usermod")
        .args(["-s"])
        .arg(shell)
        .arg(&user.0)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// A VM on 2222 that takes passwords, a keychain key, and a Tether that knows both.
fn password_vm(vm: &TestVm, user: &LabUser) -> (Tether, tether_e2e::keyring::SecretService, tempfile::TempDir) {
    lab_cmd(&["sshd", &vm.name, "2222", "PasswordAuthentication=yes"]);
    let probe = tempfile::tempdir().unwrap();
    let ss = tether_e2e::keyring::SecretService::start(probe.path(), true);
    let mut t = Tether::with_env(&[("DBUS_SESSION_BUS_ADDRESS", &ss.bus)]);
    t.run(&["key", "gen", "k"]).ok();
    t.add_vm_as(&vm.name, &vm.ip, 2222, &user.0).ok();
    t.set_env("TETHER_VM_PASSWORD", &var("LAB_PASSWORD"));
    (t, ss, probe)
}

#[test]
fn escape_sequences_from_a_vm_never_reach_the_terminal() {
    let vm = TestVm::new("noisy", 35, false);
    let user = LabUser::new("tlnoisy");
    with_shell(&user, &noisy_shell("escapes"));
    // ~/.ssh is a file, so installing the key fails and the VM's stderr is in the error.
    std::fs::write(user.home().join(".ssh"), "not a directory").unwrap();
    let (t, _ss, _probe) = password_vm(&vm, &user);
    let r = t.run(&["key", "install", &vm.name, "--key", "k"]);
    r.clone().fails_with(&["could not add the key", "owned", "red"]);
    assert!(
        !r.stderr.contains('\u{1b}') && !r.stderr.contains('\u{7}') && !r.stderr.contains('\r'),
        "control characters reached the terminal: {:?}",
        r.stderr
    );
}

#[test]
fn a_vm_that_prints_without_end_gets_an_error_not_the_engines_memory() {
    let vm = TestVm::new("chatty", 36, false);
    let user = LabUser::new("tlchatty");
    with_shell(&user, &noisy_shell("flood"));
    let (t, _ss, _probe) = password_vm(&vm, &user);
    t.run(&["key", "install", &vm.name, "--key", "k"])
        .fails_with(&["printed more than 1024 KiB"]);
    // The engine is fine and still answers.
    assert!(t.ping()["pid"].as_u64().is_some());
}

#[test]
fn a_forward_refuses_connections_past_its_limit_and_says_so() {
    let mut t = Tether::new();
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    // A small limit, so the test opens a handful of connections rather than a thousand.
    let config = t.home().join("config/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("max_streams = 1024"), "{text}");
    let text = text.replace("max_streams = 1024", "max_streams = 4");
    std::fs::write(&config, text).unwrap();
    t.start_daemon();
    let remote = free_port();
    lab_cmd(&["web", "a", &remote.to_string()]);
    let local = free_port();
    t.run(&["connect", "a"]).ok();
    t.run(&["tunnel", "-p", &format!("{local}:{remote}")]).ok();
    let forward = |t: &Tether| {
        t.status("a")["forwards"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["local"] == local).cloned())
            .unwrap_or_default()
    };

    // Four connections held open by a local process that says nothing.
    let mut held: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", local)).unwrap())
        .collect();
    wait_for("four open streams", Duration::from_secs(10), || {
        (forward(&t)["active"] == 4).then_some(())
    });
    // The fifth is accepted and closed at once, and the log says why.
    let mut fifth = std::net::TcpStream::connect(("127.0.0.1", local)).unwrap();
    fifth.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = fifth.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
    let mut got = Vec::new();
    let _ = fifth.read_to_end(&mut got);
    assert!(
        got.is_empty(),
        "served past the limit: {}",
        String::from_utf8_lossy(&got)
    );
    wait_for("the refusal in the log", Duration::from_secs(5), || {
        t.log()
            .contains(&format!("refused a connection to port {remote} on the VM"))
            .then_some(())
    });
    assert!(t.log().contains("settings.max_streams"), "{}", t.log());
    // One closes: the next is served.
    drop(held.pop());
    let body = wait_for("a slot to free up", Duration::from_secs(10), || {
        http_tcp(local, "/index.html")
            .ok()
            .filter(|(s, _)| s.contains("200"))
            .map(|(_, b)| b)
    });
    assert!(String::from_utf8_lossy(&body).contains("hello from the tether lab"));
    // The held ones were never cut.
    let first = held.remove(0);
    let mut first = first;
    first.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
    first.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = String::new();
    let _ = first.read_to_string(&mut rest);
    assert!(rest.contains("200"), "{rest}");
}

#[test]
fn a_planted_symlink_for_the_socket_directory_is_refused_at_once() {
    let t = Tether::without_daemon(&[]);
    // Someone made the runtime directory a link to a place of their choosing.
    let elsewhere = tempfile::Builder::new().prefix("te").tempdir_in("/var/tmp").unwrap();
    std::fs::create_dir_all(t.home()).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), t.home().join("run")).unwrap();
    let started = std::time::Instant::now();
    t.run(&["connect"])
        .fails_with(&["could not start", "is a symbolic link", "remove the link"]);
    // Said at once, not after the start timeout.
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "something was made through the link"
    );
}

#[test]
fn a_key_pinned_in_a_global_known_hosts_file_refuses_another_instead_of_asking() {
    // The administrator pinned VM a's key (here: another key, as a man in the middle would see
    // it) in a global file that ~/.ssh/config names, as /etc/ssh/ssh_known_hosts would be.
    let t = Tether::new();
    let ip = var("LAB_A_IP");
    let stranger = std::fs::read_to_string(format!("{}.pub", var("LAB_KEY_STRANGER"))).unwrap();
    let stranger_key: Vec<&str> = stranger.split_whitespace().take(2).collect();
    let global = t.dir.path().join("ssh_known_hosts");
    std::fs::write(&global, format!("{ip} {}\n", stranger_key.join(" "))).unwrap();
    let revoked = t.dir.path().join("revoked_keys");
    std::fs::write(&revoked, "").unwrap();
    std::fs::write(
        t.dir.path().join(".ssh/config"),
        format!(
            "Host {ip}\n  GlobalKnownHostsFile {}\n  RevokedHostKeys {}\n",
            global.display(),
            revoked.display()
        ),
    )
    .unwrap();
    // Not a first connection: a refusal naming the pinned line, whatever --accept-new says.
    t.add_vm("pinned", &ip, 22, &var("LAB_A_SOCK")).fails_with(&[
        "REFUSED",
        "does not match",
        &global.display().to_string(),
    ]);
    t.run(&["connect", "pinned", "--accept-new"])
        .fails_with(&["REFUSED", "CHANGED"]);
    let own = std::fs::read_to_string(t.home().join("config/known_hosts")).unwrap_or_default();
    assert!(!own.contains(&ip), "the key was learned over the pin: {own}");

    // Pinned right, but revoked in the RevokedHostKeys file: refused all the same.
    let real = std::fs::read_to_string(format!("{}/vms/a/ssh_host_ed25519_key.pub", var("TETHER_LAB_DIR"))).unwrap();
    std::fs::write(&global, format!("{ip} {real}")).unwrap();
    t.run(&["connect", "pinned"]).ok();
    t.run(&["disconnect", "pinned"]).ok();
    std::fs::write(&revoked, &real).unwrap();
    t.run(&["connect", "pinned"])
        .fails_with(&["REFUSED", "revoked", &revoked.display().to_string()]);
}
