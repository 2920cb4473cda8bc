//! The tray app's real window (WebKitGTK under Xvfb) driven over WebDriver, against the lab:
//! the UI follows the engine live, connects a VM, adds a working port mapping, shows an outage
//! and the notification it raised, and recovers. Screenshots land in target/screenshots.

use std::path::PathBuf;
use std::time::Duration;

use tether_e2e::desktop::Desktop;
use tether_e2e::webdriver::Session;
use tether_e2e::*;

fn app_bin() -> String {
    let p = repo().join("target").join(if cfg!(debug_assertions) { "debug" } else { "release" }).join("tether-app");
    assert!(p.exists(), "{} not built: run `cargo build -p tether-app`", p.display());
    p.display().to_string()
}

fn shots() -> PathBuf {
    repo().join("target/screenshots")
}

#[test]
fn window_connects_forwards_and_survives_an_outage() {
    let vm = TestVm::new("ui", 20, false);
    lab_cmd(&["web", &vm.name, "8000"]);
    let t = Tether::without_daemon(&[]);
    let home = t.home().display().to_string();
    let desk = Desktop::start(t.dir.path(), &[
        ("TETHER_HOME", home),
        ("HOME", t.dir.path().display().to_string()),
        ("TETHER_LOG", "info,tether_core=debug".into()),
    ]);
    let ui = Session::start(desk.driver_port, &app_bin());

    // First run: the empty state guides to adding a VM.
    ui.wait_text("[data-testid=empty]", "Docker on your VMs", Duration::from_secs(20));
    ui.wait("[data-testid=add-name]", Duration::from_secs(5));
    ui.screenshot(&shots().join("empty.png"));

    // The CLI adds a VM through the app's engine; the window shows it without a reload.
    t.run(&["vm", "add", "ui", "--host", &vm.ip, "--user", &var("LAB_USER"), "--arch", "x86_64",
        "--identity", &var("LAB_KEY"), "--remote-socket", &var("LAB_A_SOCK"), "--accept-new"]).ok();
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
    ui.wait_text(&format!("[data-testid=port-{local}]"), "listening", Duration::from_secs(10));
    let (_, body) = http_tcp(local, "/index.html").expect("fetch through the mapping");
    assert_eq!(String::from_utf8_lossy(&body).trim(), "hello from the tether lab");
    // Invalid input is refused inline, before the engine is asked.
    ui.type_into("[data-testid=port-input]", "70000");
    ui.wait_text("#port-msg", "1 to 65535", Duration::from_secs(5));
    ui.screenshot(&shots().join("machine.png"));

    // Cut the link: the window shows the outage and one notification was raised.
    lab_cmd(&["link", &vm.name, "down"]);
    ui.wait_text("[data-testid=vm-ui-state]", "reconnecting", Duration::from_secs(15));
    ui.screenshot(&shots().join("reconnecting.png"));
    let note = wait_for("the disconnect notification", Duration::from_secs(10), || {
        desk.notifications().into_iter().find(|(s, _)| s == "ui disconnected")
    });
    assert!(note.1.contains("Reconnecting"), "{note:?}");

    // Heal it: connected again, with a "back" notification and exactly one "disconnected".
    lab_cmd(&["link", &vm.name, "up"]);
    ui.wait_text("[data-testid=vm-ui-state]", "connected", Duration::from_secs(30));
    wait_for("the reconnect notification", Duration::from_secs(10), || {
        desk.notifications().into_iter().find(|(s, _)| s == "ui is back")
    });
    let drops = desk.notifications().iter().filter(|(s, _)| s == "ui disconnected").count();
    assert_eq!(drops, 1, "{:?}", desk.notifications());

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
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    assert!(entries().is_empty(), "{:?}", entries());
    ui.click("[data-testid=set-login]");
    let entry = wait_for("the autostart entry", Duration::from_secs(10), || entries().into_iter().find(|e| e.ends_with(".desktop")));
    let text = std::fs::read_to_string(autostart.join(&entry)).unwrap();
    assert!(text.contains("tether-app") && text.contains("--hidden"), "{text}");
    ui.click("[data-testid=set-login]");
    wait_for("the autostart entry to go", Duration::from_secs(10), || entries().is_empty().then_some(()));
}
