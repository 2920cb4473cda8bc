//! The Windows build for real, under Wine: `tether.exe daemon` logs in to a lab VM over SSH and
//! serves its Docker endpoint as a named pipe, and a small Windows client (tests/wine/pipe-client)
//! makes the docker CLI's requests through that pipe: `/_ping`, `/version`, and the first 64 MiB
//! of a `docker save`, each checked against the same request made to the VM's engine directly.
//!
//! `tests/run.sh` builds both executables (its "windows" step) before this runs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tether_e2e::*;

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
    /// `wine EXE`, given two minutes at most: a hung Windows program fails the test, not the run.
    fn command(&self, exe: &Path) -> Command {
        let mut c = Command::new("timeout");
        c.args(["120", "wine"])
            .arg(exe)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("TETHER_HOME", wine_path(self.home.path()));
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
    let wine = Wine {
        prefix: repo().join("target/x86_64-pc-windows-gnu/wine"),
        home: tempfile::tempdir().expect("tempdir"),
    };
    let mut daemon = wine
        .command(&windows_exe("tether.exe"))
        .arg("daemon")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tether.exe daemon");
    wait_for("tether.exe daemon to answer", Duration::from_secs(60), || {
        (wine.tether(&["engine", "status"]).code == 0).then_some(())
    });

    let key = wine_path(Path::new(&var("LAB_KEY")));
    let sock = var("LAB_A_SOCK");
    wine.tether(&[
        "vm",
        "add",
        "w",
        "--host",
        &var("LAB_A_IP"),
        "--user",
        &var("LAB_USER"),
        "--identity",
        &key,
        "--remote-socket",
        &sock,
        "--accept-new",
    ])
    .ok();
    let connected = wine.tether(&["connect", "w"]).ok();
    // The endpoint is the VM's pipe, named as Docker Desktop names its own.
    let pipe = connected
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("socket: "))
        .expect("connect names the endpoint")
        .to_string();
    assert!(pipe.starts_with(r"\\.\pipe\tether.") && pipe.ends_with(".w"), "{pipe}");
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
