//! A real Secret Service for keychain tests: a private D-Bus session with gnome-keyring-daemon
//! serving `org.freedesktop.secrets`, unlocked (as after a desktop login) or locked (nobody
//! there to type the password). Stopped on drop.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{repo, wait_for};

pub struct SecretService {
    children: Vec<Child>,
    /// DBUS_SESSION_BUS_ADDRESS of the session.
    pub bus: String,
}

/// A private session bus; returns the daemon and its address.
pub fn session_bus() -> (Child, String) {
    start_bus(&["--session"])
}

/// A session bus on which nothing can be started on demand (no service files), as on a
/// desktop without any keyring installed. `dir` holds its config.
pub fn bare_session_bus(dir: &Path) -> (Child, String) {
    let config = dir.join("bare-session.conf");
    std::fs::write(
        &config,
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
    )
    .expect("bus config");
    start_bus(&[&format!("--config-file={}", config.display())])
}

fn start_bus(args: &[&str]) -> (Child, String) {
    let mut bus = Command::new("dbus-daemon")
        .args(args)
        .args(["--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon (Debian: dbus)");
    let mut line = String::new();
    BufReader::new(bus.stdout.take().expect("dbus stdout"))
        .read_line(&mut line)
        .expect("dbus address");
    (bus, line.trim().to_string())
}

impl SecretService {
    /// gnome-keyring on a bus of its own, with its keyrings under `home`; `unlocked` unlocks
    /// the login keyring.
    pub fn start(home: &Path, unlocked: bool) -> Self {
        let (bus_child, bus) = session_bus();
        let mut me = Self::on_bus(&bus, home, unlocked);
        me.children.insert(0, bus_child);
        me
    }

    /// gnome-keyring on an existing session bus (a test desktop's).
    pub fn on_bus(bus: &str, home: &Path, unlocked: bool) -> Self {
        let mut cmd = Command::new("gnome-keyring-daemon");
        cmd.args(["--foreground", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", bus)
            .env("HOME", home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env_remove("DISPLAY")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if unlocked {
            cmd.arg("--unlock");
        }
        let mut daemon = cmd.spawn().expect("gnome-keyring-daemon (Debian: gnome-keyring)");
        if let Some(mut stdin) = daemon.stdin.take()
            && unlocked
        {
            // --unlock reads the login password from stdin.
            stdin.write_all(b"lab-keyring-password").expect("keyring password");
        }
        let me = SecretService {
            children: vec![daemon],
            bus: bus.to_string(),
        };
        // Asking the service itself before the daemon owns its name would have the bus start
        // another keyring daemon, which would then hold the name.
        let pid = me.children[0].id().to_string();
        wait_for("gnome-keyring on the bus", Duration::from_secs(15), || {
            let out = me.secrets(&["owner", &pid]);
            assert_ne!(
                out.status.code(),
                Some(3),
                "another process took org.freedesktop.secrets"
            );
            out.status.success().then_some(())
        });
        if unlocked {
            // The service answers before `--unlock` has made the login keyring the default.
            wait_for("the unlocked login keyring", Duration::from_secs(15), || {
                me.secrets(&["ready"]).status.success().then_some(())
            });
        }
        me
    }

    fn secrets(&self, args: &[&str]) -> std::process::Output {
        Command::new("/usr/bin/python3")
            .arg(repo().join("tests/lab/secrets.py"))
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .output()
            .expect("python3")
    }

    /// How many items the Secret Service holds for (service, account).
    pub fn count(&self, service: &str, account: &str) -> Option<usize> {
        let out = self.secrets(&["count", service, account]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .flatten()
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
