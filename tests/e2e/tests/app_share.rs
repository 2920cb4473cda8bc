//! Shared folders in the app: the window's "Shared folders" card follows a folder a container
//! mounts, the tray has a line for it, a conflict raises a notification, and a container's mount
//! of a laptop folder in no share raises one offering to share it, which the tray's menu does.

use std::time::Duration;

use tether_e2e::desktop::{Desktop, TrayEntry};
use tether_e2e::webdriver::Session;
use tether_e2e::*;

use crate::app::{App, app_bin, shots, tray_until, vm_entry};

#[test]
fn shared_folders_in_the_window_the_tray_and_notifications() {
    let vm = TestVm::with_private_files("shui", 74);
    let laptop = std::path::PathBuf::from(var("LAB_LAPTOP"));
    std::fs::create_dir_all(&laptop).unwrap();
    let dir = tempfile::tempdir_in(&laptop).unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("notes.txt"), "first").unwrap();

    let t = Tether::without_daemon(&[]);
    let env = t.app_env();
    let desk = Desktop::start(t.dir.path(), &env);
    let _service = App(desk.launch(&app_bin(), &["--hidden"], &env, &t.log_path()));
    wait_for("the app's engine", Duration::from_secs(20), || {
        t.home().join("run/control.sock").exists().then_some(())
    });
    t.add_vm_with("shui", &vm.ip, 22, &vm.docker_sock(), &["--arch", "x86_64"])
        .ok();
    t.run(&["share", "add", "lab", &laptop.display().to_string(), "--vm", "shui"])
        .ok();
    t.run(&["connect", "shui"]).ok();
    let ui = Session::start(desk.driver_port, &app_bin(), &["--window"]);
    ui.wait("[data-testid=vm-shui]", Duration::from_secs(20));
    ui.click("[data-testid=vm-shui]");
    ui.scroll_to("[data-testid=shares-card]");
    ui.wait_text("[data-testid=shares-card]", "Not used yet", Duration::from_secs(10));

    // A container mounts a folder: the card and the tray follow it.
    let src = app.display().to_string();
    let id = t
        .docker(
            "shui",
            &[
                "run",
                "-d",
                "-v",
                &format!("{src}:/app"),
                &var("LAB_IMAGE"),
                "sleep",
                "600",
            ],
        )
        .ok()
        .stdout
        .trim()
        .to_string();
    ui.wait_text("[data-testid=share-folder]", "In sync", Duration::from_secs(20));
    ui.wait_text("[data-testid=share-folder]", &src, Duration::from_secs(5));
    tray_until(&desk, "the tray's shared-folders line", |m| {
        vm_entry(m, "shui", "Shared folders: in sync").is_some()
    });

    // A conflict, made while the link is away: a notification, and the card says where the
    // VM's version went.
    t.run(&["disconnect", "shui"]).ok();
    std::fs::write(app.join("notes.txt"), "the laptop's").unwrap();
    docker_at(
        &format!("unix://{}", vm.docker_sock()),
        &["exec", &id, "sh", "-c", "echo -n container > /app/notes.txt"],
    )
    .ok();
    t.run(&["connect", "shui"]).ok();
    let note = wait_for("the conflict notification", Duration::from_secs(20), || {
        desk.notifications()
            .into_iter()
            .find(|(s, _)| s.starts_with("Both sides changed a file"))
    });
    assert!(note.1.contains("notes.conflict-vm-"), "{note:?}");
    ui.wait_text(
        "[data-testid=share-conflict]",
        "notes.conflict-vm-",
        Duration::from_secs(20),
    );
    ui.screenshot(&shots().join("shared-folders.png"));

    // A mount of a laptop folder in no share: the VM's own folder is used, a notification says
    // so, and the tray offers to share it.
    let elsewhere = tempfile::Builder::new()
        .prefix("unshared")
        .tempdir_in("/var/tmp")
        .unwrap();
    let path = elsewhere.path().display().to_string();
    t.docker(
        "shui",
        &[
            "run",
            "--rm",
            "-v",
            &format!("{path}:/x"),
            &var("LAB_IMAGE"),
            "busybox",
            "true",
        ],
    )
    .ok();
    wait_for("the offer to share", Duration::from_secs(20), || {
        desk.notifications()
            .into_iter()
            .find(|(s, _)| *s == format!("{path} is not shared with shui"))
    });
    let offer = format!("Share {path} with shui");
    desk.tray_pick(&offer, |m| TrayEntry::find(m, &offer).map(|e| e.id));
    wait_for("the folder shared", Duration::from_secs(20), || {
        t.run(&["share", "ls", "--vm", "shui"])
            .ok()
            .stdout
            .contains(&path)
            .then_some(())
    });
    docker_at(&format!("unix://{}", vm.docker_sock()), &["rm", "-f", &id]).ok();
}
