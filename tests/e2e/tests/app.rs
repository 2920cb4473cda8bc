//! The tray app against the lab. Its real window (WebKitGTK under Xvfb) is driven over
//! WebDriver: the UI follows the engine live, connects a VM, adds a working port mapping, shows
//! an outage and the notification the service raised, and recovers; screenshots land in
//! target/screenshots. And the app's processes: a hidden start auto-connects, the window comes
//! and goes as its own process, and WebKit goes with it.
//!
//! Longer than 500 lines on purpose: every test here drives the one app through the same window,
//! tray and notification helpers.

use std::path::PathBuf;
use std::time::Duration;

use std::process::Command;

use tether_e2e::desktop::{Desktop, TrayEntry};
use tether_e2e::keyring::SecretService;
use tether_e2e::procs;
use tether_e2e::webdriver::Session;
use tether_e2e::*;

pub(crate) fn app_bin() -> String {
    let p = repo()
        .join("target")
        .join(if cfg!(debug_assertions) { "debug" } else { "release" })
        .join("tether-app");
    assert!(p.exists(), "{} not built: run `cargo build -p tether-app`", p.display());
    p.display().to_string()
}

pub(crate) fn shots() -> PathBuf {
    repo().join("target/screenshots")
}

/// A page from the VM's own loopback `port`, fetched inside the VM's network namespace.
fn fetch_on_vm(vm: &TestVm, port: u16) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &format!("tl-{}", vm.name), "busybox", "wget", "-qO-"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("ip netns exec");
    assert!(
        out.status.success(),
        "wget on the VM: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Kills the app on every way out of a test.
pub(crate) struct App(pub(crate) std::process::Child);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn window_connects_forwards_and_survives_an_outage() {
    let vm = TestVm::new("ui", 20, false);
    lab_cmd(&["web", &vm.name, "8000"]);
    let t = Tether::without_daemon(&[]);
    let mut env = t.app_env();
    env.push(("TETHER_LOG", "info,tether_core=debug".into()));
    let desk = Desktop::start(t.dir.path(), &env);
    // The service (tray, engine, notifications) as the autostart entry starts it, then the
    // window process, which WebDriver drives.
    let _service = App(desk.launch(&app_bin(), &["--hidden"], &env, &t.log_path()));
    wait_for("the app's engine", Duration::from_secs(20), || {
        t.home().join("run/control.sock").exists().then_some(())
    });
    let ui = Session::start(desk.driver_port, &app_bin(), &["--window"]);

    // First run: the empty state guides to adding a VM.
    ui.wait_text("[data-testid=empty]", "Docker on your VMs", Duration::from_secs(20));
    ui.wait("[data-testid=wiz-start]", Duration::from_secs(5));
    ui.screenshot(&shots().join("empty.png"));

    // The CLI adds a VM through the app's engine; the window shows it without a reload.
    t.add_vm_with("ui", &vm.ip, 22, &var("LAB_A_SOCK"), &["--arch", "x86_64"])
        .ok();
    ui.wait("[data-testid=vm-ui]", Duration::from_secs(10));
    ui.click("[data-testid=vm-ui]");

    // Connect from the window.
    ui.click("[data-testid=toggle-ui]");
    ui.wait_text("[data-testid=vm-ui-state]", "connected", Duration::from_secs(20));
    ui.wait_text("[data-testid=engine-version]", ".", Duration::from_secs(20));
    assert_eq!(t.status("ui")["state"], "connected");

    // A port mapping added in the editor works.
    let local = free_port();
    ui.type_into("[data-testid=port-input]", &format!("{local}:8000"));
    ui.click("[data-testid=port-add]");
    ui.wait_text(
        &format!("[data-testid=port-{local}]"),
        "listening",
        Duration::from_secs(10),
    );
    let (_, body) = http_tcp(local, "/index.html").expect("fetch through the mapping");
    assert_eq!(String::from_utf8_lossy(&body).trim(), "hello from the tether lab");
    // Invalid input is refused inline, before the engine is asked.
    ui.type_into("[data-testid=port-input]", "70000");
    ui.wait_text("#port-msg", "1 to 65535", Duration::from_secs(5));
    ui.screenshot(&shots().join("machine.png"));

    // A reverse tunnel added in the window: the VM's loopback reaches a service on this laptop.
    let token = format!("laptop-service-{}", std::process::id());
    let laptop = laptop_web(&token);
    let remote = free_port();
    ui.scroll_to("[data-testid=reverse-input]");
    ui.type_into("[data-testid=reverse-input]", &format!("{remote}:{laptop}"));
    ui.click("[data-testid=reverse-add]");
    ui.wait_text(
        &format!("[data-testid=reverse-{remote}]"),
        "listening",
        Duration::from_secs(15),
    );
    assert_eq!(fetch_on_vm(&vm, remote), token);
    ui.type_into("[data-testid=reverse-input]", "1:2:3");
    ui.wait_text("#reverse-msg", "REMOTE:LOCAL", Duration::from_secs(5));
    ui.scroll_to("#ports-h");
    ui.screenshot(&shots().join("reverse.png"));

    // Kubernetes: the window sets up kubectl for the VM's API server (the lab's stand-in), and
    // the real kubectl reaches it through the tunnel with the app's `tether` as its credential
    // plugin.
    let api_port = free_port();
    lab_cmd(&["kube", &vm.name, &api_port.to_string()]);
    ui.scroll_to("#kube-h");
    ui.type_into(
        "[data-testid=kube-config]",
        &format!("{}/vms/{}/kube/kubeconfig", var("TETHER_LAB_DIR"), vm.name),
    );
    ui.click("[data-testid=kube-on]");
    ui.wait_text("[data-testid=kube-context]", "tether-ui", Duration::from_secs(20));
    ui.wait_text("[data-testid=kube-info]", "api.lab.internal", Duration::from_secs(5));
    ui.wait_text(
        "[data-testid=kube-command]",
        "kubectl --context tether-ui",
        Duration::from_secs(5),
    );
    let kubectl = std::process::Command::new("kubectl")
        .envs(t.app_env())
        .args([
            "--context",
            "tether-ui",
            "version",
            "-o",
            "json",
            "--request-timeout",
            "20s",
        ])
        .output()
        .expect("kubectl");
    let out = String::from_utf8_lossy(&kubectl.stdout);
    assert!(
        out.contains("v1.31.0-tether-lab"),
        "{out}{}",
        String::from_utf8_lossy(&kubectl.stderr)
    );
    ui.screenshot(&shots().join("kube.png"));

    // Cut the link: the window shows the outage and one notification was raised.
    lab_cmd(&["link", &vm.name, "down"]);
    ui.wait_text("[data-testid=vm-ui-state]", "reconnecting", Duration::from_secs(15));
    ui.screenshot(&shots().join("reconnecting.png"));
    let note = wait_for("the disconnect notification", Duration::from_secs(10), || {
        desk.notifications().into_iter().find(|(s, _)| s == "ui disconnected")
    });
    // Why, in the advice's words (never the engine's message), and that Tether is at it.
    assert!(note.1.ends_with("Tether is reconnecting…"), "{note:?}");
    assert!(!note.1.contains("--") && !note.1.contains('`'), "{note:?}");

    // Heal it: connected again, with a "back" notification and exactly one "disconnected".
    lab_cmd(&["link", &vm.name, "up"]);
    ui.wait_text("[data-testid=vm-ui-state]", "connected", Duration::from_secs(30));
    // The reverse tunnel is asked for again on the new link, and the window follows.
    ui.wait_text(
        &format!("[data-testid=reverse-{remote}]"),
        "listening",
        Duration::from_secs(60),
    );
    assert_eq!(fetch_on_vm(&vm, remote), token);
    wait_for("the reconnect notification", Duration::from_secs(10), || {
        desk.notifications().into_iter().find(|(s, _)| s == "ui is back")
    });
    let drops = desk
        .notifications()
        .iter()
        .filter(|(s, _)| s == "ui disconnected")
        .count();
    assert_eq!(drops, 1, "{:?}", desk.notifications());

    // Diagnostics: the doctor runs from the window, over the live connection, and the engine's
    // log shows this VM's lines.
    ui.click("[data-testid=nav-diagnostics]");
    ui.click("[data-testid=doctor-run]");
    ui.wait_text("[data-testid=check-ui-ssh]", "live connection", Duration::from_secs(30));
    ui.wait_text("[data-testid=check-ui-clock]", "this laptop", Duration::from_secs(10));
    ui.wait_text("[data-testid=check-local-engine]", "✓", Duration::from_secs(10));
    ui.click("[data-testid=log-filter] option[value=ui]");
    // The list is loaded again for the filter: until that answer lands, the unfiltered lines
    // (which hold the VM's too) are still shown. Once filtered, every line is the VM's.
    let mut last = String::new();
    let filtered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("only the VM's log lines", Duration::from_secs(10), || {
            let t = ui.find("[data-testid=log-lines]").and_then(|el| ui.text(&el))?;
            last = t.clone();
            (t.contains("[ui] connected") && t.lines().all(|l| l.contains("[ui]"))).then_some(())
        })
    }));
    assert!(filtered.is_ok(), "the filter let other lines through: {last}");
    ui.screenshot(&shots().join("doctor.png"));
    ui.click(&format!("[data-testid=vm-{}]", "ui"));

    // A disconnect the user asks for is silent.
    let before = desk.notifications().len();
    ui.click("[data-testid=toggle-ui]");
    ui.wait_text("[data-testid=vm-ui-state]", "disconnected", Duration::from_secs(10));
    assert_eq!(desk.notifications().len(), before, "{:?}", desk.notifications());

    ui.click("[data-testid=nav-settings]");
    ui.wait("[data-testid=set-notify]", Duration::from_secs(5));
    ui.screenshot(&shots().join("settings.png"));

    // Start at login writes the desktop autostart entry; turning it off removes it.
    let autostart = t.dir.path().join(".config/autostart");
    let entries = || -> Vec<String> {
        std::fs::read_dir(&autostart)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(entries().is_empty(), "{:?}", entries());
    ui.click("[data-testid=set-login]");
    // The entry is written in place, so it is read until complete.
    let text = wait_for("the autostart entry", Duration::from_secs(10), || {
        let entry = entries().into_iter().find(|e| e.ends_with(".desktop"))?;
        let text = std::fs::read_to_string(autostart.join(&entry)).ok()?;
        text.contains("\nExec=").then_some(text)
    });
    let exec = text.lines().find(|l| l.starts_with("Exec=")).unwrap_or_default();
    assert!(exec.contains("tether-app") && exec.contains("--hidden"), "{text}");
    ui.click("[data-testid=set-login]");
    wait_for("the autostart entry to go", Duration::from_secs(10), || {
        entries().is_empty().then_some(())
    });

    // The other settings reach the engine and are saved.
    assert_eq!(t.status("ui")["auto_connect"], false);
    ui.click("[data-testid=auto-ui]");
    wait_for("auto-connect on", Duration::from_secs(10), || {
        (t.status("ui")["auto_connect"] == true).then_some(())
    });
    let config = || std::fs::read_to_string(t.home().join("config/config.toml")).unwrap_or_default();
    ui.click("[data-testid=set-notify]");
    wait_for("notifications off in the config", Duration::from_secs(10), || {
        config().contains("notifications = false").then_some(())
    });
}

#[test]
fn hidden_start_auto_connects_and_the_window_comes_and_goes() {
    let vm = TestVm::new("life", 22, false);
    // Set up with the CLI's own engine, then hand the home over to the app.
    let mut t = Tether::new();
    t.add_vm_with("life", &vm.ip, 22, &var("LAB_A_SOCK"), &["--auto-connect"])
        .ok();
    assert_eq!(t.status("life")["state"], "disconnected");
    t.stop_daemon();

    let desk = Desktop::plain(t.dir.path());
    let mut env = t.app_env();
    env.push(("TETHER_LOG", "info,tether_app=debug".into()));
    // As the autostart entry starts it: no window.
    let app = App(desk.launch(&app_bin(), &["--hidden"], &env, &t.log_path()));
    let pid = app.0.id();

    // The auto-connect VM connects at launch, with nobody asking.
    t.wait_state("life", "connected", Duration::from_secs(20));
    let (status, _) = http_unix(&t.socket("life"), "/_ping").expect("docker through the app's engine");
    assert!(status.contains("200"), "{status}");
    assert!(desk.windows("Tether").is_empty(), "a hidden start opened a window");
    assert_eq!(
        procs::tree(pid).len(),
        1,
        "a hidden start runs more than the service: {:?}",
        procs::tree(pid)
    );

    // Launching it again opens the window in the running app; the second process just exits.
    let mut second = desk.launch(&app_bin(), &[], &env, &t.log_path());
    let code = wait_for("the second launch to exit", Duration::from_secs(15), || {
        second.try_wait().ok().flatten()
    });
    assert!(code.success(), "second launch: {code}");
    let win = wait_for("the window", Duration::from_secs(20), || {
        desk.windows("Tether").first().copied()
    });
    let open = wait_for("WebKit's processes", Duration::from_secs(20), || {
        let w = procs::webkit(pid);
        w.iter().any(|p| p.name.starts_with("WebKitWebProc")).then_some(w)
    });
    assert!(open.iter().any(|p| p.name.starts_with("WebKitNetwork")), "{open:?}");
    // A third launch while it is open brings the same window forward instead of a second one.
    let mut third = desk.launch(&app_bin(), &[], &env, &t.log_path());
    wait_for("the third launch to exit", Duration::from_secs(15), || {
        third.try_wait().ok().flatten()
    });
    assert_eq!(desk.windows("Tether"), vec![win]);

    // Closing it as a window manager does ends the window process and every WebKit process;
    // the service and its VM stay up.
    desk.close_window(win);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !desk.windows("Tether").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        desk.windows("Tether").is_empty(),
        "window {win} still open: {:?}; processes {:?}",
        desk.all_windows(),
        procs::tree(pid)
    );
    wait_for("WebKit's processes to exit", Duration::from_secs(15), || {
        procs::webkit(pid).is_empty().then_some(())
    });
    wait_for("only the service to remain", Duration::from_secs(15), || {
        (procs::tree(pid).len() == 1).then_some(())
    });
    assert!(
        matches!(procs::tree(pid).first(), Some(p) if p.pid == pid),
        "the service exited with its window"
    );
    assert_eq!(t.status("life")["state"], "connected");

    // And it comes back.
    let mut fourth = desk.launch(&app_bin(), &[], &env, &t.log_path());
    wait_for("the fourth launch to exit", Duration::from_secs(15), || {
        fourth.try_wait().ok().flatten()
    });
    wait_for("the window again", Duration::from_secs(20), || {
        desk.windows("Tether").first().copied()
    });
    wait_for("WebKit's processes again", Duration::from_secs(20), || {
        procs::webkit(pid)
            .iter()
            .any(|p| p.name.starts_with("WebKitWebProc"))
            .then_some(())
    });
}

/// An app started while `tether daemon` runs for the same home starts no engine of its own: its
/// tray drives the daemon's engine, whose config takes every change.
#[test]
fn an_app_started_beside_a_daemon_mirrors_its_engine() {
    let t = Tether::new();
    let daemon = t.engine_pid();
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.add_vm("b", &var("LAB_B_IP"), 22, &var("LAB_B_SOCK")).ok();
    t.run(&["connect", "a"]).ok();

    let desk = Desktop::plain(t.dir.path());
    let env = t.app_env();
    let mut app = App(desk.launch(&app_bin(), &["--hidden"], &env, &t.log_path()));
    wait_for("the app to attach to the daemon", Duration::from_secs(20), || {
        t.log().contains("the tray mirrors it").then_some(())
    });
    let owner = |t: &Tether| -> serde_json::Value {
        serde_json::from_str(&t.run(&["engine", "status", "--json"]).ok().stdout).expect("engine status")
    };
    assert_eq!(owner(&t)["owner"]["pid"], daemon, "the app took the engine over");
    assert!(
        matches!(app.0.try_wait(), Ok(None)),
        "the app exited instead of mirroring the engine"
    );
    assert_eq!(
        procs::tree(app.0.id()).len(),
        1,
        "the app started more than its service"
    );

    // The tray's actions, sent to the running app as they are from a desktop shortcut, reach
    // the daemon's engine and its config.
    let menu = |id: &str| {
        let mut c = desk.launch(&app_bin(), &["--menu", id], &env, &t.log_path());
        let code = wait_for(
            &format!("--menu {id} to hand over and exit"),
            Duration::from_secs(15),
            || c.try_wait().ok().flatten(),
        );
        assert!(code.success(), "--menu {id}: {code}");
    };
    menu("use:b");
    wait_for("b to be active", Duration::from_secs(10), || {
        (t.status("b")["active"] == true).then_some(())
    });
    menu("connect:b");
    t.wait_state("b", "connected", Duration::from_secs(20));
    t.add_vm("c", &var("LAB_B_IP"), 22, &var("LAB_B_SOCK")).ok();
    let cfg = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
    assert!(cfg.contains("active = \"b\"") && cfg.contains("[vms.c]"), "{cfg}");

    // Quitting the app leaves the daemon and its VMs alone.
    menu("quit");
    wait_for("the app to quit", Duration::from_secs(15), || {
        app.0.try_wait().ok().flatten()
    });
    assert_eq!(owner(&t)["owner"]["pid"], daemon);
    assert_eq!(t.status("a")["state"], "connected");
    assert_eq!(t.status("b")["state"], "connected");

    // Mirroring again; then the daemon's engine is stopped, and the app, left without an engine
    // to show, runs its own.
    let mut app = App(desk.launch(&app_bin(), &["--hidden"], &env, &t.log_path()));
    let app_pid = app.0.id();
    wait_for("the app to attach again", Duration::from_secs(20), || {
        (t.log().matches("the tray mirrors it").count() >= 2).then_some(())
    });
    t.run(&["engine", "stop"]).ok();
    wait_for("the app to run the engine", Duration::from_secs(20), || {
        let o = owner(&t);
        (o["owner"]["pid"] == app_pid && o["owner"]["kind"] == "app" && o["answers"] == true).then_some(())
    });
    t.run(&["connect", "a"]).ok();
    t.docker("a", &["ps"]).ok();
    // Its Quit ends the app, its engine and every VM with it.
    menu("quit");
    wait_for("the app to quit", Duration::from_secs(15), || {
        app.0.try_wait().ok().flatten()
    });
    assert_eq!(owner(&t)["running"], false);
    assert!(!t.socket("a").exists(), "the Docker socket outlived the app's engine");
}

/// "Reinstalls" the wizard's VM: a new host key and sshd restarted. Returns the new fingerprint.
fn reinstall_wiz() -> String {
    lab_cmd(&["sshd-stop", "wiz", "2222"]);
    for f in ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"] {
        std::fs::remove_file(format!("{}/vms/wiz/{f}", var("TETHER_LAB_DIR"))).unwrap();
    }
    cloud_sshd("wiz", "2222");
    host_key_fingerprint("wiz")
}

#[test]
fn the_wizard_takes_an_empty_app_to_docker_ps() {
    let vm = TestVm::new("wiz", 25, false);
    let user = LabUser::new("tlwiz");
    // A VM as a cloud image ships: password logins on, keys read from ~/.ssh with strict modes.
    cloud_sshd("wiz", "2222");
    let t = Tether::without_daemon(&[]);
    std::fs::write(
        t.dir.path().join(".ssh/config"),
        format!("Host wizvm\n  HostName {}\n  User {}\n  Port 2222\n", vm.ip, user.0),
    )
    .unwrap();
    let env = t.app_env();
    let desk = Desktop::start(t.dir.path(), &env);
    let keyring_home = tempfile::tempdir().unwrap();
    let secrets = SecretService::on_bus(&desk.dbus, keyring_home.path(), true);
    let _service = App(desk.launch(&app_bin(), &["--hidden"], &env, &t.log_path()));
    wait_for("the app's engine", Duration::from_secs(20), || {
        t.home().join("run/control.sock").exists().then_some(())
    });
    let ui = Session::start(desk.driver_port, &app_bin(), &["--window"]);
    let started = std::time::Instant::now();

    // 1-2. Welcome, then the VM, picked from ~/.ssh/config.
    ui.click("[data-testid=wiz-start]");
    ui.click("[data-testid=wiz-pick-wizvm]");
    ui.click("[data-testid=wiz-arch] option[value=x86_64]");
    ui.click("[data-testid=wizard] details summary");
    // This VM has no engine of its own; it reaches lab VM a's through the shared filesystem.
    ui.type_into("[data-testid=wiz-socket]", &var("LAB_A_SOCK"));
    ui.screenshot(&shots().join("wizard-vm.png"));
    ui.click("[data-testid=wiz-next]");

    // 3. A new key, in the keychain.
    ui.wait("[data-testid=wiz-key-generate]", Duration::from_secs(10));
    ui.screenshot(&shots().join("wizard-key.png"));
    ui.click("[data-testid=wiz-next]");

    // 4. The host key, shown as OpenSSH prints it, confirmed by the user.
    let fp = host_key_fingerprint("wiz");
    ui.wait_text("[data-testid=wiz-hk-fp]", &fp, Duration::from_secs(20));
    ui.screenshot(&shots().join("wizard-hostkey.png"));
    ui.click("[data-testid=wiz-hk-trust]");
    ui.wait("[data-testid=wiz-hk-known]", Duration::from_secs(10));
    ui.click("[data-testid=wiz-next]");

    // 5. The one password login installs the key.
    ui.wait_text("[data-testid=wiz-command]", "authorized_keys", Duration::from_secs(10));
    ui.type_into("[data-testid=wiz-password]", &var("LAB_PASSWORD"));
    ui.click("[data-testid=wiz-install]");

    // 6. Every check passes.
    ui.wait("[data-testid=wiz-check-arch]", Duration::from_secs(40));
    for id in ["ssh", "socket", "access", "forwarding", "arch"] {
        let text = ui.wait_text(&format!("[data-testid=wiz-check-{id}]"), "", Duration::from_secs(40));
        assert!(text.starts_with('✓'), "check {id}: {text}");
    }
    ui.screenshot(&shots().join("wizard-checks.png"));
    ui.click("[data-testid=wiz-next]");

    // 7. Connect, with the docker context and start at login (both ticked by default).
    ui.wait("[data-testid=wiz-connect]", Duration::from_secs(10));
    ui.click("[data-testid=wiz-connect]");
    // The wizard hands over to the machine view once it connected and set the context.
    ui.wait_text("[data-testid=detail-name]", "wizvm", Duration::from_secs(30));
    ui.wait_text("[data-testid=vm-wizvm-state]", "connected", Duration::from_secs(30));
    let docker_config = t.dir.path().join(".docker");
    let ps = Command::new("docker")
        .args(["ps"])
        .env("DOCKER_CONFIG", &docker_config)
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        ps.status.success(),
        "docker ps: {}",
        String::from_utf8_lossy(&ps.stderr)
    );
    eprintln!(
        "the wizard took an empty app to a working `docker ps` in {:.1} s",
        elapsed.as_secs_f64()
    );
    assert!(elapsed < Duration::from_secs(120), "{elapsed:?}");
    let current = Command::new("docker")
        .args(["context", "show"])
        .env("DOCKER_CONFIG", &docker_config)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&current.stdout).trim(), "tether");
    assert!(
        t.dir
            .path()
            .join(".config/autostart")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    );
    assert_eq!(secrets.count("dev.tether.ssh-key", &t.account("wizvm")), Some(1));
    let authorized = std::fs::read_to_string(user.home().join(".ssh/authorized_keys")).unwrap();
    assert!(authorized.starts_with("ssh-ed25519 "), "{authorized}");
    ui.screenshot(&shots().join("wizard-done.png"));

    // A changed host key is a blocking alert with both fingerprints, and nothing connects.
    ui.click("[data-testid=toggle-wizvm]");
    ui.wait_text("[data-testid=vm-wizvm-state]", "disconnected", Duration::from_secs(10));
    let new_fp = reinstall_wiz();
    ui.click("[data-testid=toggle-wizvm]");
    let alert = ui.wait_text(
        "[data-testid=hostkey-changed]",
        "man-in-the-middle",
        Duration::from_secs(20),
    );
    assert!(alert.contains(&fp) && alert.contains(&new_fp), "{alert}");
    ui.screenshot(&shots().join("hostkey-changed.png"));
    assert_ne!(t.status("wizvm")["state"], "connected");
    // Behind it, the VM's failure reads as a sentence with its action, made from the error's code
    // and facts: not the engine's message, which is the command line's.
    let said = ui.wait_text(
        "[data-testid=detail-status-error]",
        "presents a different key",
        Duration::from_secs(10),
    );
    assert!(said.contains("Review the new key"), "{said}");
    for cli in ["--", "`", "REFUSED", "tether ", "<", "known_hosts"] {
        assert!(!said.contains(cli), "{cli:?} in {said:?}");
    }

    // The VM was reinstalled: the new key, read again from the VM, replaces the old one.
    ui.click("[data-testid=hostkey-reinstalled] summary");
    ui.wait_text("[data-testid=hostkey-new-fp]", &new_fp, Duration::from_secs(10));
    ui.screenshot(&shots().join("hostkey-replace.png"));
    ui.click("[data-testid=hostkey-replace]");
    ui.wait_text("[data-testid=vm-wizvm-state]", "connected", Duration::from_secs(30));
    let known = std::fs::read_to_string(t.home().join("config/known_hosts")).unwrap();
    assert_eq!(known.lines().count(), 1, "{known}");

    // Setting the same VM up again after another reinstall: the wizard offers the same way out.
    ui.click("[data-testid=toggle-wizvm]");
    ui.wait_text("[data-testid=vm-wizvm-state]", "disconnected", Duration::from_secs(10));
    let third_fp = reinstall_wiz();
    ui.click("[data-testid=nav-add]");
    ui.type_into("[data-testid=wiz-name]", "again");
    ui.click("[data-testid=wiz-pick-wizvm]");
    ui.click("[data-testid=wiz-arch] option[value=x86_64]");
    ui.click("[data-testid=wizard] details summary");
    ui.type_into("[data-testid=wiz-socket]", &var("LAB_A_SOCK"));
    ui.click("[data-testid=wiz-next]");
    ui.wait("[data-testid=wiz-key-generate]", Duration::from_secs(10));
    ui.click("[data-testid=wiz-next]");
    ui.wait_text("[data-testid=wiz-hk-changed]", &third_fp, Duration::from_secs(20));
    ui.click("[data-testid=wiz-hk-changed] details summary");
    ui.click("[data-testid=wiz-hk-replace]");
    ui.wait_text("[data-testid=wiz-hk-fp]", &third_fp, Duration::from_secs(20));
    ui.wait("[data-testid=wiz-hk-known]", Duration::from_secs(10));
}

#[test]
fn containers_and_health_live_in_the_window() {
    let vm = TestVm::new("uic", 29, true);
    let sock = format!("unix://{}", vm.docker_sock());
    docker_at(&sock, &["rm", "-f", "web", "once", "ticker", "shop-db-1", "shop-web-1"]);
    let p = free_port();
    docker_at(
        &sock,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            &format!("{p}:80"),
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
            &var("LAB_IMAGE"),
            "sh",
            "-c",
            "echo hello from web; exec httpd -f -p 80 -h /www",
        ],
    )
    .ok();
    docker_at(
        &sock,
        &[
            "run",
            "-d",
            "--name",
            "ticker",
            &var("LAB_IMAGE"),
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done",
        ],
    )
    .ok();
    docker_at(
        &sock,
        &["run", "--name", "once", &var("LAB_IMAGE"), "sh", "-c", "exit 0"],
    )
    .ok();
    // A Compose project of two services, labelled as `docker compose up` labels them.
    for (service, depends) in [("db", ""), ("web", "db:service_started:false")] {
        docker_at(
            &sock,
            &[
                "run",
                "-d",
                "--name",
                &format!("shop-{service}-1"),
                "--label",
                "com.docker.compose.project=shop",
                "--label",
                &format!("com.docker.compose.service={service}"),
                "--label",
                &format!("com.docker.compose.depends_on={depends}"),
                &var("LAB_IMAGE"),
                "sh",
                "-c",
                "trap 'exit 0' TERM; sleep 100000 & wait",
            ],
        )
        .ok();
    }

    let t = Tether::without_daemon(&[]);
    // The browser, as the window's "Open" starts it: a stand-in that records the address.
    let bin = t.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let opened = t.dir.path().join("opened.txt");
    let script = format!("#!/bin/sh\necho \"$1\" >> {}\n", opened.display());
    std::fs::write(bin.join("xdg-open"), script).unwrap();
    std::fs::set_permissions(
        bin.join("xdg-open"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut env = t.app_env();
    env.push((
        "PATH",
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()),
    ));
    let desk = Desktop::start(t.dir.path(), &env);
    let _service = App(desk.launch(&app_bin(), &["--hidden"], &env, &t.log_path()));
    wait_for("the app's engine", Duration::from_secs(20), || {
        t.home().join("run/control.sock").exists().then_some(())
    });
    // Labelled arm64 on purpose: the lab's engines run this machine's x86_64.
    let label = if cfg!(target_arch = "aarch64") {
        "x86_64"
    } else {
        "arm64"
    };
    t.add_vm_with("uic", &vm.ip, 22, &vm.docker_sock(), &["--arch", label])
        .ok();
    t.run(&["tunnel", "uic", "--auto", "on"]).ok();
    t.run(&["connect", "uic"]).ok();
    let ui = Session::start(desk.driver_port, &app_bin(), &["--window"]);
    ui.click("[data-testid=vm-uic]");

    // The containers view: both containers, the published port reaching the laptop.
    ui.wait_text("[data-testid=container-web]", "running", Duration::from_secs(20));
    ui.wait_text("[data-testid=container-once]", "exited", Duration::from_secs(10));
    ui.wait_text(
        &format!("[data-testid=open-{p}]"),
        &format!("127.0.0.1:{p}"),
        Duration::from_secs(10),
    );
    ui.wait_text(
        &format!("[data-testid=port-{p}]"),
        "auto · web",
        Duration::from_secs(10),
    );
    ui.click(&format!("[data-testid=open-{p}]"));
    wait_for("the browser to be asked", Duration::from_secs(10), || {
        std::fs::read_to_string(&opened)
            .ok()
            .filter(|s| s.contains(&format!("http://127.0.0.1:{p}/")))
    });
    ui.click("[data-testid=logs-web]");
    ui.wait_text("[data-testid=logs]", "hello from web", Duration::from_secs(10));
    // The health check's verdict shows, and the ticker's tail is live.
    ui.wait_text("[data-testid=container-web]", "healthy", Duration::from_secs(20));
    ui.click("[data-testid=logs-ticker]");
    let first = ui.wait_text("[data-testid=logs]", "tick", Duration::from_secs(10));
    let last = |text: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix("tick ")?.trim().parse::<u32>().ok())
            .max()
            .unwrap_or(0)
    };
    let seen = last(&first);
    wait_for("new log lines", Duration::from_secs(10), || {
        let el = ui.find("[data-testid=logs]")?;
        (last(&ui.text(&el)?) >= seen + 5).then_some(())
    });
    ui.click("[data-testid=logs-ticker]");
    ui.click("[data-testid=logs-web]");

    // Health: the charts have readings (quick while the window watches) and the counts are right.
    ui.wait_text(
        "[data-testid=health-counts]",
        "4 running / 5 containers",
        Duration::from_secs(20),
    );
    wait_for("a few readings", Duration::from_secs(15), || {
        let r = t.run(&["health", "uic", "--json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&r.stdout).ok()?;
        (v["history"].as_array()?.len() >= 3).then_some(())
    });
    ui.wait_text("[data-testid=chart-rtt]", "ms", Duration::from_secs(10));
    ui.wait_text(
        "[data-testid=arch-warning]",
        &format!("labelled {label}"),
        Duration::from_secs(20),
    );
    ui.scroll_to("[data-testid=health]");
    ui.screenshot(&shots().join("health.png"));
    ui.scroll_to("[data-testid=containers]");
    ui.wait_text("[data-testid=container-web]", "running", Duration::from_secs(10));
    // The Compose project is one group, its containers under it with their services.
    ui.wait_text(
        "[data-testid=project-shop]",
        "2 containers, 2 running",
        Duration::from_secs(10),
    );
    ui.wait_text(
        "[data-testid=container-shop-web-1]",
        "service web",
        Duration::from_secs(10),
    );
    ui.screenshot(&shots().join("containers.png"));

    // Stop from the window: the list follows Docker's events, and the forward goes with it.
    ui.click("[data-testid=stop-web]");
    ui.wait_text("[data-testid=container-web]", "exited", Duration::from_secs(20));
    wait_for("the forward to go", Duration::from_secs(10), || {
        t.status("uic")["forwards"]
            .as_array()
            .is_some_and(|a| a.is_empty())
            .then_some(())
    });
    ui.click("[data-testid=start-web]");
    ui.wait_text("[data-testid=container-web]", "running", Duration::from_secs(20));
    wait_for("the forward back", Duration::from_secs(10), || {
        http_tcp(p, "/index.html").ok().filter(|(s, _)| s.contains("200"))
    });

    // The whole project stopped and started from its group; the rest keep running.
    ui.click("[data-testid=project-stop-shop]");
    ui.wait_text(
        "[data-testid=project-shop]",
        "2 containers, 0 running",
        Duration::from_secs(30),
    );
    ui.wait_text("[data-testid=container-shop-db-1]", "exited", Duration::from_secs(10));
    ui.wait_text("[data-testid=container-ticker]", "running", Duration::from_secs(10));
    ui.click("[data-testid=project-start-shop]");
    ui.wait_text(
        "[data-testid=project-shop]",
        "2 containers, 2 running",
        Duration::from_secs(30),
    );
    let running = docker_at(
        &sock,
        &["ps", "--filter", "label=com.docker.compose.project=shop", "-q"],
    )
    .ok()
    .stdout;
    assert_eq!(running.lines().count(), 2, "{running}");
}

/// The tray menu as a desktop's tray shows it, once `ready` holds for it.
pub(crate) fn tray_until(desk: &Desktop, what: &str, ready: impl Fn(&[TrayEntry]) -> bool) -> Vec<TrayEntry> {
    wait_for(what, Duration::from_secs(20), || {
        desk.tray_menu().ok().filter(|m| ready(m))
    })
}

/// The entry of `vm`'s submenu that contains `needle`.
pub(crate) fn vm_entry(menu: &[TrayEntry], vm: &str, needle: &str) -> Option<TrayEntry> {
    let sub = menu.iter().find(|e| e.label.split_whitespace().nth(1) == Some(vm))?;
    TrayEntry::find(&sub.children, needle).cloned()
}

#[test]
fn the_tray_menu_is_read_and_clicked_over_dbus() {
    let vm = TestVm::new("tray", 42, false);
    let t = Tether::without_daemon(&[]);
    let env = t.app_env();
    let desk = Desktop::plain(t.dir.path());
    let _service = App(desk.launch(&app_bin(), &["--hidden"], &env, &t.log_path()));
    wait_for("the app's engine", Duration::from_secs(20), || {
        t.home().join("run/control.sock").exists().then_some(())
    });
    for name in ["tray", "tray2"] {
        t.add_vm_with(name, &vm.ip, 22, &var("LAB_A_SOCK"), &["--arch", "x86_64"])
            .ok();
    }

    // The menu the tray shows: each VM's submenu with its state, and the app's own entries.
    let menu = tray_until(&desk, "the tray menu to list both VMs", |m| {
        vm_entry(m, "tray", "Connect").is_some() && vm_entry(m, "tray2", "Connect").is_some()
    });
    assert!(menu.iter().any(|e| e.label == "○ tray  x86_64"), "{menu:#?}");
    let state = vm_entry(&menu, "tray", "disconnected").expect("the state line");
    assert!(!state.enabled, "the state line is not an action: {state:?}");
    for label in ["Open Tether…", "Copy DOCKER_HOST", "Start at login", "Quit Tether"] {
        assert!(TrayEntry::find(&menu, label).is_some(), "no {label}: {menu:#?}");
    }
    let disconnected_icon = desk.tray_icon().expect("the tray icon");

    // Connect, clicked in the menu.
    desk.tray_pick("Connect", |m| vm_entry(m, "tray", "Connect").map(|e| e.id));
    t.wait_state("tray", "connected", Duration::from_secs(20));
    tray_until(&desk, "the menu to show the VM connected", |m| {
        m.iter().any(|e| e.label == "● tray  x86_64") && vm_entry(m, "tray", "Disconnect").is_some()
    });
    let connected_icon = wait_for("the connected icon", Duration::from_secs(10), || {
        desk.tray_icon().ok().filter(|i| *i != disconnected_icon)
    });

    // Copy DOCKER_HOST: the active VM's, on the clipboard.
    desk.tray_pick("Copy DOCKER_HOST", |m| {
        TrayEntry::find(m, "Copy DOCKER_HOST").map(|e| e.id)
    });
    let socket = t.status("tray")["docker_host"].as_str().unwrap().to_string();
    wait_for("DOCKER_HOST on the clipboard", Duration::from_secs(10), || {
        (desk.clipboard().as_deref() == Some(socket.as_str())).then_some(())
    });

    // Use: the other VM becomes the active one, and the menu's check follows.
    let use_of = |m: &[TrayEntry], vm: &str| {
        TrayEntry::find(m, "Use").and_then(|u| u.children.iter().find(|e| e.label == vm).cloned())
    };
    let use_tray2 = use_of(&desk.tray_menu().unwrap(), "tray2").expect("Use > tray2");
    assert_eq!(use_tray2.toggle, Some(0), "{use_tray2:?}");
    desk.tray_pick("Use > tray2", |m| use_of(m, "tray2").map(|e| e.id));
    wait_for("tray2 to be active", Duration::from_secs(10), || {
        (t.status("tray2")["active"] == true).then_some(())
    });
    tray_until(&desk, "the Use check to move", |m| {
        let used = TrayEntry::find(m, "Use")
            .map(|u| u.children.clone())
            .unwrap_or_default();
        used.iter().any(|e| e.label == "tray2" && e.toggle == Some(1))
            && used.iter().any(|e| e.label == "tray" && e.toggle == Some(0))
    });

    // A link cut shows in the icon and the menu; healed, both come back.
    lab_cmd(&["link", &vm.name, "down"]);
    t.wait_state("tray", "reconnecting", Duration::from_secs(15));
    tray_until(&desk, "the menu to show the outage", |m| {
        m.iter().any(|e| e.label == "◐ tray  x86_64")
    });
    let outage_icon = wait_for("the outage icon", Duration::from_secs(10), || {
        desk.tray_icon().ok().filter(|i| *i != connected_icon)
    });
    assert_ne!(outage_icon, disconnected_icon);
    lab_cmd(&["link", &vm.name, "up"]);
    t.wait_state("tray", "connected", Duration::from_secs(40));
    tray_until(&desk, "the menu to show the VM back", |m| {
        m.iter().any(|e| e.label == "● tray  x86_64")
    });

    // Disconnect, clicked in the menu.
    desk.tray_pick("Disconnect", |m| vm_entry(m, "tray", "Disconnect").map(|e| e.id));
    t.wait_state("tray", "disconnected", Duration::from_secs(10));
}

#[test]
fn the_wizard_reaches_a_vm_behind_a_jump_host_confirming_each_key() {
    let bastion = TestVm::new("wjb", 50, false);
    let deep = TestVm::hidden("wjd", 51, &bastion, true);
    let t = Tether::without_daemon(&[]);
    // The user's own key in ~/.ssh: the wizard's "ssh-agent or my ~/.ssh keys".
    let own = t.dir.path().join(".ssh/id_ed25519");
    std::fs::copy(var("LAB_KEY"), &own).unwrap();
    std::fs::set_permissions(&own, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let env = t.app_env();
    let desk = Desktop::start(t.dir.path(), &env);
    let _service = App(desk.launch(&app_bin(), &["--hidden"], &env, &t.log_path()));
    wait_for("the app's engine", Duration::from_secs(20), || {
        t.home().join("run/control.sock").exists().then_some(())
    });
    let ui = Session::start(desk.driver_port, &app_bin(), &["--window"]);

    ui.click("[data-testid=wiz-start]");
    ui.type_into("[data-testid=wiz-name]", "deep");
    ui.type_into("[data-testid=wiz-host]", &deep.ip);
    ui.type_into("[data-testid=wiz-user]", &var("LAB_USER"));
    ui.click("[data-testid=wiz-arch] option[value=x86_64]");
    ui.click("[data-testid=wizard] details summary");
    ui.type_into("[data-testid=wiz-socket]", &deep.docker_sock());
    // A jump host that does not read as one is named before anything is saved.
    ui.type_into("[data-testid=wiz-jump]", "ops@");
    ui.click("[data-testid=wiz-next]");
    ui.wait_text(
        "[data-testid=wiz-problems]",
        "[user@]host[:port]",
        Duration::from_secs(5),
    );
    let jump = format!("{}@{}", var("LAB_USER"), bastion.ip);
    ui.clear("[data-testid=wiz-jump]");
    ui.type_into("[data-testid=wiz-jump]", &jump);
    ui.click("[data-testid=wiz-next]");
    ui.click("[data-testid=wiz-key-agent]");
    ui.click("[data-testid=wiz-next]");

    // Each host key in turn, the jump host's first, each as OpenSSH prints it.
    let bastion_fp = host_key_fingerprint(&bastion.name);
    let deep_fp = host_key_fingerprint(&deep.name);
    ui.wait_text(
        "#wiz-h",
        &format!("the jump host {}", bastion.ip),
        Duration::from_secs(20),
    );
    ui.wait_text("[data-testid=wiz-hk-fp]", &bastion_fp, Duration::from_secs(5));
    ui.screenshot(&shots().join("wizard-jump-hostkey.png"));
    ui.click("[data-testid=wiz-hk-trust]");
    ui.wait_text("#wiz-h", "Is this really deep?", Duration::from_secs(20));
    ui.wait_text("[data-testid=wiz-hk-fp]", &deep_fp, Duration::from_secs(5));
    ui.click("[data-testid=wiz-hk-trust]");
    ui.wait("[data-testid=wiz-hk-known]", Duration::from_secs(10));
    let known = std::fs::read_to_string(t.home().join("config/known_hosts")).unwrap();
    assert!(known.contains(&bastion.ip) && known.contains(&deep.ip), "{known}");
    ui.click("[data-testid=wiz-next]");

    // The checks run through the jump host.
    for id in ["ssh", "socket", "access", "forwarding", "arch"] {
        let text = ui.wait_text(&format!("[data-testid=wiz-check-{id}]"), "", Duration::from_secs(40));
        assert!(text.starts_with('✓'), "check {id}: {text}");
    }
    ui.click("[data-testid=wiz-next]");
    ui.wait("[data-testid=wiz-connect]", Duration::from_secs(10));
    ui.click("[data-testid=wiz-connect]");
    ui.wait_text("[data-testid=vm-deep-state]", "connected", Duration::from_secs(30));
    ui.wait_text(
        "[data-testid=detail-via]",
        &format!("via {jump}:22"),
        Duration::from_secs(10),
    );
    let ps = Command::new("docker")
        .args(["ps"])
        .env("DOCKER_CONFIG", t.dir.path().join(".docker"))
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    assert!(
        ps.status.success(),
        "docker ps: {}",
        String::from_utf8_lossy(&ps.stderr)
    );
    let config = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
    assert!(config.contains(&format!("jump = \"{jump}\"")), "{config}");

    // Both keys forgotten: Connect asks about the jump host first, naming it, then the VM in its
    // own turn (a confirmation holds for the host it was asked about only).
    ui.click("[data-testid=disconnect]");
    ui.wait_text("[data-testid=vm-deep-state]", "disconnected", Duration::from_secs(15));
    std::fs::write(t.home().join("config/known_hosts"), "").unwrap();
    ui.click("[data-testid=connect]");
    ui.wait_text(
        "#hk-h",
        &format!("the jump host {}", bastion.ip),
        Duration::from_secs(20),
    );
    ui.wait_text("[data-testid=hostkey-fp]", &bastion_fp, Duration::from_secs(5));
    ui.click("[data-testid=hostkey-accept]");
    ui.wait_text("#hk-h", "Verify deep's host key", Duration::from_secs(20));
    ui.wait_text("[data-testid=hostkey-fp]", &deep_fp, Duration::from_secs(5));
    ui.click("[data-testid=hostkey-accept]");
    // ("disconnected" says "connected" too: the state the engine reports decides.)
    t.wait_state("deep", "connected", Duration::from_secs(30));
    let known = std::fs::read_to_string(t.home().join("config/known_hosts")).unwrap();
    assert!(known.contains(&bastion.ip) && known.contains(&deep.ip), "{known}");
}
