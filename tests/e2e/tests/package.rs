//! The Linux packages as a user gets them. The .deb installs with dpkg and puts `tether` and
//! `tether-app` on PATH, the desktop entry and the icons where the desktop looks, the man page and
//! the shells' completions where man and the shells look; the installed
//! app starts hidden, reads the user's config, answers the installed `tether status` and carries
//! Docker; `dpkg -r` then takes back every file it brought while the user's config stays. The
//! .rpm holds the same files. `installers/build.sh` makes both (tests/run.sh runs it first).
//!
//! Needs root (dpkg), like the lab.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tether_e2e::desktop::Desktop;
use tether_e2e::procs;
use tether_e2e::*;

/// Where the bundler leaves a package of this kind (`deb`, `rpm`), built from this tree: the
/// release packages, or those `TETHER_BUNDLE_DIR` names (tests/run.sh packages its debug build).
fn package(kind: &str) -> PathBuf {
    let bundles = std::env::var_os("TETHER_BUNDLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/release/bundle"));
    let dir = bundles.join(kind);
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    let version = env!("CARGO_PKG_VERSION");
    found
        .into_iter()
        .find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
            name.ends_with(&format!(".{kind}")) && name.contains(version)
        })
        .unwrap_or_else(|| {
            panic!(
                "no .{kind} of version {version} in {}: build the packages with installers/build.sh",
                dir.display()
            )
        })
}

fn run(cmd: &mut Command) -> Run {
    Run::from(cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}")))
}

/// The first match of `program` on PATH, as a shell would find it.
fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Width and height of a PNG, from its header.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    let be = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (be(16), be(20))
}

/// The files (not directories) the installed package `tether` owns, from dpkg's own list.
fn owned_files() -> Vec<PathBuf> {
    let out = run(Command::new("dpkg").args(["-L", "tether"])).ok();
    out.stdout
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.is_file() || p.is_symlink())
        .collect()
}

/// Takes the package off again however the test ends, so one failure leaves no install behind.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["-r", "tether"]).output();
    }
}

#[test]
fn the_rpm_holds_both_binaries_the_desktop_entry_and_the_icons() {
    let rpm = package("rpm");
    let listing = Command::new("sh")
        .arg("-c")
        .arg(format!("rpm2cpio '{}' | cpio -t --quiet", rpm.display()))
        .output()
        .expect("rpm2cpio (Debian: rpm2cpio, cpio)");
    assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
    let files = String::from_utf8_lossy(&listing.stdout).into_owned();
    for want in [
        "./usr/bin/tether",
        "./usr/bin/tether-app",
        "./usr/share/applications/Tether.desktop",
        "./usr/share/icons/hicolor/32x32/apps/tether-app.png",
        "./usr/share/icons/hicolor/128x128/apps/tether-app.png",
        "./usr/share/icons/hicolor/512x512/apps/tether-app.png",
        "./usr/share/man/man1/tether.1.gz",
        "./usr/share/bash-completion/completions/tether",
        "./usr/share/zsh/vendor-completions/_tether",
        "./usr/share/fish/vendor_completions.d/tether.fish",
    ] {
        assert!(
            files.lines().any(|l| l == want),
            "{want} missing from {}:\n{files}",
            rpm.display()
        );
    }
}

#[test]
fn the_deb_installs_runs_hidden_and_removes_cleanly() {
    let deb = package("deb");
    let before = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "tether"]));
    assert!(
        !before.stdout.contains("install ok installed"),
        "a tether package is already installed here; this test installs and removes its own"
    );

    run(Command::new("dpkg").arg("-i").arg(&deb)).ok();
    let _installed = Installed;
    let files = owned_files();
    assert!(files.len() >= 6, "dpkg -L tether: {files:?}");

    // Both binaries on PATH, from the package.
    assert_eq!(on_path("tether"), Some(PathBuf::from("/usr/bin/tether")));
    assert_eq!(on_path("tether-app"), Some(PathBuf::from("/usr/bin/tether-app")));
    let version = run(Command::new("tether").arg("--version")).ok();
    assert!(
        version.stdout.contains(env!("CARGO_PKG_VERSION")),
        "tether --version: {}",
        version.stdout
    );

    // The man page renders, with the exit codes; each shell's completion script parses (zsh and
    // fish where installed), and completes subcommands.
    let man = run(Command::new("man")
        .args(["-l", "/usr/share/man/man1/tether.1.gz"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100"))
    .ok();
    for want in ["tether", "Exit codes", "the VM's host key was refused", "completion"] {
        assert!(
            man.stdout.contains(want),
            "{want:?} not in the man page:\n{}",
            man.stdout
        );
    }
    let bash = "/usr/share/bash-completion/completions/tether";
    run(Command::new("bash").args(["-n", bash])).ok();
    let completes = run(Command::new("bash").arg("-c").arg(format!(
        "source {bash}; COMP_WORDS=(tether con); COMP_CWORD=1; _tether tether con tether; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )))
    .ok();
    assert!(
        completes.stdout.lines().any(|l| l == "connect"),
        "bash completes `tether con` to: {}",
        completes.stdout
    );
    for (shell, file) in [
        ("zsh", "/usr/share/zsh/vendor-completions/_tether"),
        ("fish", "/usr/share/fish/vendor_completions.d/tether.fish"),
    ] {
        assert!(Path::new(file).is_file(), "{file} missing");
        if on_path(shell).is_some() {
            run(Command::new(shell).args(["-n", file])).ok();
        }
    }

    // The desktop entry is valid, starts the app from PATH, and its icon is installed in every
    // size the theme looks up, each really that size.
    let entry = Path::new("/usr/share/applications/Tether.desktop");
    run(Command::new("desktop-file-validate").arg(entry)).ok();
    let text = std::fs::read_to_string(entry).expect("desktop entry");
    let key = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}= in {}:\n{text}", entry.display()))
            .to_string()
    };
    assert_eq!(key("Type"), "Application");
    assert_eq!(key("Name"), "Tether");
    let exec = key("Exec");
    let program = exec.split_whitespace().next().unwrap_or_default();
    assert!(on_path(program).is_some(), "Exec={exec} is not on PATH");
    let icon = key("Icon");
    for size in [32, 128, 512] {
        let png = PathBuf::from(format!("/usr/share/icons/hicolor/{size}x{size}/apps/{icon}.png"));
        assert_eq!(png_size(&png), (size, size), "{}", png.display());
    }

    // A user's config with one VM, written by the CLI as usual.
    let mut t = Tether::new();
    t.add_vm("pkg", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.stop_daemon();
    let config = t.home().join("config/config.toml");
    let user_config = std::fs::read(&config).expect("the user's config");

    // The installed app, started as the login entry starts it: hidden, no window, one process.
    let desk = Desktop::plain(t.dir.path());
    let env = t.app_env();
    let mut app = desk.launch("tether-app", &["--hidden"], &env, &t.log_path());
    let pid = app.id();
    let installed = |args: &[&str]| {
        let mut cmd = Command::new("tether");
        cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        run(&mut cmd)
    };
    wait_for("the app's control socket", Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(t.home().join("run/control.sock"))
            .ok()
            .map(|_| ())
    });
    assert_eq!(t.ping()["pid"], pid, "the engine answering is not the installed app's");
    let status = installed(&["status"]).ok();
    assert!(status.stdout.contains("pkg"), "tether status: {}", status.stdout);
    assert!(desk.windows("Tether").is_empty(), "a hidden start opened a window");
    assert_eq!(procs::tree(pid).len(), 1, "{:?}", procs::tree(pid));

    // And it carries Docker: the installed CLI connects the VM through the installed app.
    installed(&["connect", "pkg"]).ok();
    t.wait_state("pkg", "connected", Duration::from_secs(20));
    let (head, _) = http_unix(&t.socket("pkg"), "/_ping").expect("docker through the installed app");
    assert!(head.contains("200"), "{head}");

    // Start at login, asked of the running app as its tray menu does: the entry runs the
    // installed binary, hidden.
    let mut toggle = desk.launch("tether-app", &["--menu", "autostart"], &env, &t.log_path());
    wait_for("the menu launch to exit", Duration::from_secs(15), || {
        toggle.try_wait().ok().flatten()
    });
    let autostart = t.dir.path().join(".config/autostart/Tether.desktop");
    let login = wait_for("the autostart entry", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&autostart).ok()?;
        text.contains("\nExec=").then_some(text)
    });
    assert!(
        login.lines().any(|l| l == "Exec=/usr/bin/tether-app --hidden"),
        "{login}"
    );

    let _ = app.kill();
    let _ = app.wait();
    drop(desk);

    // Removal takes every file of the package and nothing of the user's.
    run(Command::new("dpkg").args(["-r", "tether"])).ok();
    let left: Vec<&PathBuf> = files.iter().filter(|p| p.exists() || p.is_symlink()).collect();
    assert!(left.is_empty(), "dpkg -r left these behind: {left:?}");
    assert_eq!(on_path("tether-app"), None);
    assert_eq!(std::fs::read(&config).expect("config after removal"), user_config);
}
