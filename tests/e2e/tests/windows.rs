//! The Windows build for real, under Wine: `tether.exe daemon` logs in to a lab VM over SSH and
//! serves its Docker endpoint as a named pipe, and a small Windows client (tests/wine/pipe-client)
//! makes the docker CLI's requests through that pipe: `/_ping`, `/version`, and the first 64 MiB
//! of a `docker save`, each checked against the same request made to the VM's engine directly.
//!
//! And the tray app built for Windows: its service (tray icon, engine, control pipe; it never
//! loads a web view) starts hidden under Wine as the login entry starts it, and the Windows CLI
//! drives the app's engine through the control pipe to a connected VM.
//!
//! `tests/run.sh` builds the executables (its "windows" step) before this runs. The tests share
//! one Wine prefix, whose processes each one ends with `wineserver -k`: they take turns.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tether_e2e::desktop::Desktop;
use tether_e2e::*;

/// One test at a time in the shared prefix.
static PREFIX: std::sync::Mutex<()> = std::sync::Mutex::new(());

const BYTES: u64 = 64 << 20;

fn windows_exe(name: &str) -> PathBuf {
    let exe = repo().join("target/x86_64-pc-windows-gnu/debug").join(name);
    assert!(
        exe.exists(),
        "{} is missing: `tests/run.sh` builds it in its windows step (cargo build --target x86_64-pc-windows-gnu)",
        exe.display()
    );
    exe
}

/// The path as a Windows program under Wine sees it (drive Z: is the Linux root).
fn wine_path(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

/// Windows programs under Wine, with a prefix of their own and one Tether home.
struct Wine {
    prefix: PathBuf,
    home: tempfile::TempDir,
}

impl Wine {
    fn new() -> Self {
        Wine {
            prefix: repo().join("target/x86_64-pc-windows-gnu/wine"),
            home: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// `wine EXE`, given two minutes at most: a hung Windows program fails the test, not the run.
    fn command(&self, exe: &Path) -> Command {
        let mut c = Command::new("timeout");
        c.args(["120", "wine"])
            .arg(exe)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("TETHER_HOME", wine_path(self.home.path()))
            .env("DOCKER_CONFIG", wine_path(&self.home.path().join(".docker")));
        c
    }

    /// Runs `exe` to its end. Its output goes through files, not pipes: Wine's own helper
    /// processes (wineserver, services) inherit the handles of whoever started them and hold a
    /// pipe open long after the program exits.
    fn run(&self, exe: &Path, args: &[&str]) -> Run {
        let out = tempfile::NamedTempFile::new().expect("temp file");
        let err = tempfile::NamedTempFile::new().expect("temp file");
        let status = self
            .command(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.reopen().expect("reopen"))
            .stderr(err.reopen().expect("reopen"))
            .status()
            .expect("run wine");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(out.path()).unwrap_or_default(),
            stderr: std::fs::read_to_string(err.path()).unwrap_or_default(),
        }
    }

    /// [`Wine::run`] with another `TETHER_HOME`.
    fn run_in(&self, home: &Path, exe: &Path, args: &[&str]) -> Run {
        let out = tempfile::NamedTempFile::new().expect("temp file");
        let err = tempfile::NamedTempFile::new().expect("temp file");
        let status = self
            .command(exe)
            .env("TETHER_HOME", wine_path(home))
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.reopen().expect("reopen"))
            .stderr(err.reopen().expect("reopen"))
            .status()
            .expect("run wine");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(out.path()).unwrap_or_default(),
            stderr: std::fs::read_to_string(err.path()).unwrap_or_default(),
        }
    }

    fn tether(&self, args: &[&str]) -> Run {
        self.run(&windows_exe("tether.exe"), args)
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = self.tether(&["engine", "stop"]);
        // Windows processes outlive their `wine` launcher: end every one of this prefix.
        let _ = Command::new("wineserver")
            .arg("-k")
            .env("WINEPREFIX", &self.prefix)
            .status();
    }
}

/// What the VM's engine answers directly (not through Tether): its API version and the
/// SHA-256 of the first `BYTES` of `docker save IMAGE`.
fn direct(sock: &str, image: &str) -> (String, String) {
    let host = format!("unix://{sock}");
    let api = docker_at(&host, &["version", "--format", "{{.Server.APIVersion}}"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let mut save: Child = Command::new("docker")
        .args(["-H", &host, "save", image])
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker save");
    let mut out = save.stdout.take().expect("stdout").take(BYTES);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = out.read(&mut buf).expect("read docker save");
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    let _ = save.kill();
    let _ = save.wait();
    (api, hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[test]
fn the_windows_build_serves_docker_through_a_named_pipe_byte_exact() {
    let _turn = PREFIX.lock().unwrap_or_else(|p| p.into_inner());
    let wine = Wine::new();
    let mut daemon = start_daemon(&wine);

    let sock = var("LAB_A_SOCK");
    let (connected, pipe) = connect_lab_vm(&wine, "w");
    // The endpoint is the VM's pipe, named as Docker Desktop names its own, and this engine's id.
    assert!(pipe.starts_with(r"\\.\pipe\tether.") && pipe.contains(".w."), "{pipe}");
    assert!(
        connected
            .stdout
            .contains(&format!("npipe://{}", pipe.replace('\\', "/"))),
        "{}",
        connected.stdout
    );

    // `tether env` speaks both Windows shells.
    let env = wine.tether(&["env", "w"]).ok().stdout;
    let host = format!("npipe://{}", pipe.replace('\\', "/"));
    assert!(env.contains(&format!("$env:DOCKER_HOST = \"{host}\"")), "{env}");
    assert!(env.contains(&format!("set DOCKER_HOST={host}")), "{env}");

    let client = wine.run(
        &windows_exe("tether-pipe-client.exe"),
        &[&pipe, &var("LAB_BIG_IMAGE"), &BYTES.to_string()],
    );
    let said = client.stdout.clone();
    assert_eq!(client.code, 0, "pipe client failed: {said}{}", client.stderr);
    let (api, sha) = direct(&sock, &var("LAB_BIG_IMAGE"));
    assert!(said.contains("ping HTTP/1.0 200 OK OK"), "{said}");
    assert!(said.contains(&format!("api {api}\n")), "{said} (direct: {api})");
    assert!(said.contains(&format!("sha256 {sha}\n")), "{said} (direct: {sha})");

    drop(wine);
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// `tether.exe daemon`, answering.
fn start_daemon(wine: &Wine) -> Child {
    let daemon = wine
        .command(&windows_exe("tether.exe"))
        .arg("daemon")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tether.exe daemon");
    wait_for("tether.exe daemon to answer", Duration::from_secs(60), || {
        wine.tether(&["engine", "status"])
            .stdout
            .contains("engine runs in")
            .then_some(())
    });
    daemon
}

/// The pipe named on the `socket:` line of what `connect` or `status` printed.
fn socket_line(out: &str) -> String {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("socket: "))
        .unwrap_or_else(|| panic!("no socket line in {out}"))
        .to_string()
}

/// Another local user saw the VM's pipe name (pipe names are one namespace, listed for anyone)
/// and serves it while Tether's engine is stopped. The next engine names its pipes anew, holds
/// them for its whole life, and docker's traffic never reaches the squatter; a VM that is down
/// is still answered by Tether, with why.
#[test]
fn a_pipe_squatted_under_a_vms_endpoint_name_never_receives_a_byte() {
    let _turn = PREFIX.lock().unwrap_or_else(|p| p.into_inner());
    let wine = Wine::new();
    let name = format!("sq{}", std::process::id() % 100_000);
    let mut daemon = start_daemon(&wine);
    let (_, first) = connect_lab_vm(&wine, &name);
    wine.tether(&["engine", "stop"]).ok();
    let _ = daemon.wait();

    let log = wine.home.path().join("squatter.log");
    let mut squatter = wine
        .command(&windows_exe("tether-pipe-client.exe"))
        .args(["squat", &first, &wine_path(&log)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the squatter");
    wait_for("the squatter to serve the old name", Duration::from_secs(60), || {
        std::fs::read_to_string(&log)
            .is_ok_and(|l| l.contains("ready"))
            .then_some(())
    });

    let mut daemon = start_daemon(&wine);
    let pipe = socket_line(&wine.tether(&["connect", &name]).ok().stdout);
    assert_ne!(pipe, first, "the new engine serves the squatted name");
    // The docker context Tether keeps for the VM names the new pipe.
    let host = format!("npipe://{}", pipe.replace('\\', "/"));
    let contexts = wine.home.path().join(".docker");
    let meta = files_under(&contexts)
        .into_iter()
        .filter(|p| p.ends_with("meta.json"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .find(|m| m.contains(&format!("\"tether-{name}\"")))
        .unwrap_or_else(|| panic!("no docker context tether-{name} under {}", contexts.display()));
    assert!(meta.contains(&host), "{meta}");
    let client = wine.run(
        &windows_exe("tether-pipe-client.exe"),
        &[&pipe, &var("LAB_BIG_IMAGE"), "65536"],
    );
    assert_eq!(client.code, 0, "{}{}", client.stdout, client.stderr);
    assert!(client.stdout.contains("ping HTTP/1.0 200 OK OK"), "{}", client.stdout);

    // The VM disconnected: the pipe is still Tether's, and says why there is no engine.
    wine.tether(&["disconnect", &name]).ok();
    let down = wine.run(
        &windows_exe("tether-pipe-client.exe"),
        &[&pipe, &var("LAB_BIG_IMAGE"), "1"],
    );
    assert!(
        down.stdout.contains(" 503 Service Unavailable") && down.stdout.contains("is not connected"),
        "{}{}",
        down.stdout,
        down.stderr
    );
    let seen = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !seen.contains("connection"),
        "the squatter received docker's traffic: {seen}"
    );

    let _ = squatter.kill();
    drop(wine);
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = squatter.wait();
}

/// `tether.exe vm add NAME` for lab VM a, with the lab's key, its host key accepted.
fn add_lab_vm(wine: &Wine, name: &str) {
    wine.tether(&[
        "vm",
        "add",
        name,
        "--host",
        &var("LAB_A_IP"),
        "--user",
        &var("LAB_USER"),
        "--identity",
        &wine_path(Path::new(&var("LAB_KEY"))),
        "--remote-socket",
        &var("LAB_A_SOCK"),
        "--accept-new",
    ])
    .ok();
}

/// Adds lab VM a as `name` and connects it: what `connect` printed, and the pipe it names.
fn connect_lab_vm(wine: &Wine, name: &str) -> (Run, String) {
    add_lab_vm(wine, name);
    let connected = wine.tether(&["connect", name]).ok();
    let pipe = connected
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("socket: "))
        .expect("connect names the endpoint")
        .to_string();
    (connected, pipe)
}

#[test]
fn the_windows_app_starts_hidden_and_the_cli_drives_its_engine() {
    let _turn = PREFIX.lock().unwrap_or_else(|p| p.into_inner());
    let wine = Wine::new();
    // A display of its own for the tray icon (Wine draws it in its system tray window).
    let desk = Desktop::plain(wine.home.path());
    let mut app = wine
        .command(&windows_exe("tether-app.exe"))
        .arg("--hidden")
        .env("DISPLAY", &desk.display)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tether-app.exe");
    // `engine status` answers either way; it names the engine's owner once one runs.
    let owner = wait_for("the app's engine to answer", Duration::from_secs(60), || {
        let out = wine.tether(&["engine", "status"]).stdout;
        out.contains("engine runs in").then_some(out)
    });
    assert!(owner.contains("runs in the Tether app"), "{owner}");
    assert!(owner.contains(r"\\.\pipe\tether."), "{owner}");

    let (_, pipe) = connect_lab_vm(&wine, "app");
    let status = wine.tether(&["status"]).ok().stdout;
    assert!(status.contains("app") && status.contains("connected"), "{status}");

    // Docker through the app's pipe, as through the daemon's: a ping and the first MiB of a save.
    let client = wine.run(
        &windows_exe("tether-pipe-client.exe"),
        &[&pipe, &var("LAB_BIG_IMAGE"), &(1u64 << 20).to_string()],
    );
    assert_eq!(client.code, 0, "pipe client failed: {}{}", client.stdout, client.stderr);
    assert!(client.stdout.contains("ping HTTP/1.0 200 OK OK"), "{}", client.stdout);

    drop(wine);
    let _ = app.kill();
    let _ = app.wait();
}

/// A home whose folders other users may change (a `TETHER_HOME` like `C:\tether` inherits that
/// from the drive's root) is taken back to this user before the engine uses it. Under Wine the
/// DACL stands for the Unix mode ("others" are Everyone), so the mode shows what Windows did.
#[test]
fn a_home_other_users_may_change_is_taken_back_before_use() {
    use std::os::unix::fs::PermissionsExt;
    let _turn = PREFIX.lock().unwrap_or_else(|p| p.into_inner());
    let wine = Wine::new();
    let home = wine.home.path().join("shared-home");
    let run = home.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut daemon = wine
        .command(&windows_exe("tether.exe"))
        .env("TETHER_HOME", wine_path(&home))
        .arg("daemon")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tether.exe daemon");
    wait_for("tether.exe daemon to answer", Duration::from_secs(60), || {
        wine.run_in(&home, &windows_exe("tether.exe"), &["engine", "status"])
            .stdout
            .contains("engine runs in")
            .then_some(())
    });
    let mode = std::fs::metadata(&run).unwrap().permissions().mode() & 0o777;
    // Everyone's right to change it is gone (Wine maps Everyone to the mode's "other" bits and
    // leaves the group's, which no Windows entry stands for, as they were).
    assert_eq!(
        mode & 0o002,
        0,
        "other users may still change {}: mode {mode:o}",
        run.display()
    );
    let _ = wine.run_in(&home, &windows_exe("tether.exe"), &["engine", "stop"]);
    let _ = daemon.wait();
}
