//! A desktop for app tests: Xvfb, a private D-Bus session with the stand-in notification
//! service (tests/lab/notifyd.py), and tauri-driver in front of WebKitWebDriver. Everything is
//! stopped on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, repo, wait_for};

pub struct Desktop {
    children: Vec<Child>,
    pub display: String,
    pub dbus: String,
    pub driver_port: u16,
    pub notes: PathBuf,
}

impl Desktop {
    /// Starts the desktop; the app started through the driver inherits `env`.
    pub fn start(dir: &Path, env: &[(&str, String)]) -> Self {
        let mut children = Vec::new();
        // A display number nobody uses; X11 sockets live in /tmp/.X11-unix.
        let n = (90..200)
            .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() && !Path::new(&format!("/tmp/.X{n}-lock")).exists())
            .expect("a free X display");
        let display = format!(":{n}");
        children.push(
            Command::new("Xvfb")
                .args([display.as_str(), "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb (Debian: xvfb)"),
        );
        wait_for("Xvfb", Duration::from_secs(10), || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists().then_some(()));

        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        let mut line = String::new();
        BufReader::new(bus.stdout.take().expect("dbus stdout")).read_line(&mut line).expect("dbus address");
        let dbus = line.trim().to_string();
        children.push(bus);

        let notes = dir.join("notifications.jsonl");
        let mut notifyd = Command::new("/usr/bin/python3")
            .arg(repo().join("tests/lab/notifyd.py"))
            .arg(&notes)
            .env("DBUS_SESSION_BUS_ADDRESS", &dbus)
            .stdout(Stdio::piped())
            .spawn()
            .expect("notifyd");
        let mut ready = String::new();
        BufReader::new(notifyd.stdout.take().expect("notifyd stdout")).read_line(&mut ready).expect("notifyd ready");
        assert_eq!(ready.trim(), "notifyd ready");
        children.push(notifyd);

        let driver_port = free_port();
        let native = free_port();
        let driver = std::env::var("TAURI_DRIVER").unwrap_or_else(|_| {
            let home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
            format!("{home}/bin/tauri-driver")
        });
        let mut cmd = Command::new(&driver);
        cmd.args(["--port", &driver_port.to_string(), "--native-port", &native.to_string()])
            .env("DISPLAY", &display)
            .env("DBUS_SESSION_BUS_ADDRESS", &dbus)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("driver.log")).expect("driver log"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        children.push(cmd.spawn().unwrap_or_else(|e| panic!("{driver}: {e} (cargo install tauri-driver --locked)")));
        wait_for("tauri-driver", Duration::from_secs(20), || {
            ureq::get(format!("http://127.0.0.1:{driver_port}/status")).call().ok().map(|_| ())
        });
        Desktop { children, display, dbus, driver_port, notes }
    }

    /// Notifications shown so far, as (summary, body).
    pub fn notifications(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.notes)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| (v["summary"].as_str().unwrap_or("").to_string(), v["body"].as_str().unwrap_or("").to_string()))
            .collect()
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
