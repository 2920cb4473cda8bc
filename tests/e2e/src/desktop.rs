//! A desktop for app tests: Xvfb, a private D-Bus session with the stand-in notification
//! service (tests/lab/notifyd.py) and system tray (tests/lab/traywatch.py, through which a test
//! reads and clicks the tray menu), and optionally tauri-driver in front of WebKitWebDriver. It
//! also launches apps on that desktop and finds or closes their windows over X11 the way a window
//! manager would. Everything is stopped on drop.

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
    /// Tray items that registered with the stand-in tray, one JSON line each.
    pub tray: PathBuf,
}

/// One entry of a tray menu as the desktop's tray reads it over `com.canonical.dbusmenu`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TrayEntry {
    pub id: i32,
    pub label: String,
    pub enabled: bool,
    pub visible: bool,
    pub separator: bool,
    /// 1 checked, 0 unchecked, for check items.
    pub toggle: Option<i64>,
    pub children: Vec<TrayEntry>,
}

impl TrayEntry {
    /// The first entry, at any depth, whose label contains `needle`.
    pub fn find<'a>(entries: &'a [TrayEntry], needle: &str) -> Option<&'a TrayEntry> {
        entries.iter().find_map(|e| {
            if e.label.contains(needle) {
                Some(e)
            } else {
                TrayEntry::find(&e.children, needle)
            }
        })
    }
}

impl Desktop {
    /// Starts the desktop with tauri-driver; the app started through the driver inherits `env`.
    pub fn start(dir: &Path, env: &[(&str, String)]) -> Self {
        let mut desk = Self::plain(dir);
        desk.start_driver(dir, env);
        desk
    }

    /// Starts the desktop without a WebDriver: apps are started with [`Desktop::launch`].
    pub fn plain(dir: &Path) -> Self {
        let mut children = Vec::new();
        // Xvfb picks a free display itself and prints its number when it is ready (choosing one
        // here would race with tests starting in parallel).
        let mut xvfb = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (Debian: xvfb)");
        let mut number = String::new();
        BufReader::new(xvfb.stdout.take().expect("Xvfb stdout"))
            .read_line(&mut number)
            .expect("Xvfb display");
        let display = format!(":{}", number.trim());
        assert!(
            number.trim().parse::<u32>().is_ok(),
            "Xvfb did not start (printed {number:?})"
        );
        children.push(xvfb);

        let (bus, dbus) = crate::keyring::session_bus();
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
        BufReader::new(notifyd.stdout.take().expect("notifyd stdout"))
            .read_line(&mut ready)
            .expect("notifyd ready");
        assert_eq!(ready.trim(), "notifyd ready");
        children.push(notifyd);

        let tray = dir.join("tray.jsonl");
        let mut watcher = Command::new("/usr/bin/python3")
            .arg(repo().join("tests/lab/traywatch.py"))
            .arg("serve")
            .arg(&tray)
            .env("DBUS_SESSION_BUS_ADDRESS", &dbus)
            .stdout(Stdio::piped())
            .spawn()
            .expect("traywatch");
        let mut ready = String::new();
        BufReader::new(watcher.stdout.take().expect("traywatch stdout"))
            .read_line(&mut ready)
            .expect("traywatch ready");
        assert_eq!(ready.trim(), "traywatch ready");
        children.push(watcher);
        Desktop {
            children,
            display,
            dbus,
            driver_port: 0,
            notes,
            tray,
        }
    }

    fn start_driver(&mut self, dir: &Path, env: &[(&str, String)]) {
        let driver_port = free_port();
        let native = free_port();
        let driver = std::env::var("TAURI_DRIVER").unwrap_or_else(|_| {
            let home = std::env::var("CARGO_HOME")
                .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
            format!("{home}/bin/tauri-driver")
        });
        let mut cmd = Command::new(&driver);
        cmd.args(["--port", &driver_port.to_string(), "--native-port", &native.to_string()])
            .env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.dbus)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("driver.log")).expect("driver log"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.children.push(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("{driver}: {e} (cargo install tauri-driver --locked)")),
        );
        wait_for("tauri-driver", Duration::from_secs(20), || {
            ureq::get(format!("http://127.0.0.1:{driver_port}/status"))
                .call()
                .ok()
                .map(|_| ())
        });
        self.driver_port = driver_port;
    }

    /// Starts `program ARGS` on this desktop's display and session bus; output goes to `log`.
    pub fn launch(&self, program: &str, args: &[&str], env: &[(&str, String)], log: &Path) -> Child {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("app log");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.dbus)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    /// Viewable top-level windows whose title is `title`.
    pub fn windows(&self, title: &str) -> Vec<u32> {
        x11::windows(&self.display, title).unwrap_or_else(|e| panic!("X11 on {}: {e}", self.display))
    }

    /// Every top-level window as (id, viewable, title, pid), for failure messages.
    pub fn all_windows(&self) -> Vec<(u32, bool, String, u32)> {
        x11::all(&self.display).unwrap_or_default()
    }

    /// Asks `window` to close, as a window manager does when its close button is clicked
    /// (a WM_DELETE_WINDOW client message).
    pub fn close_window(&self, window: u32) {
        x11::close(&self.display, window).unwrap_or_else(|e| panic!("X11 on {}: {e}", self.display));
    }

    /// `traywatch.py CMD FILE ARGS…` on this desktop's bus: its output, or why it failed.
    fn traywatch(&self, cmd: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new("/usr/bin/python3")
            .arg(repo().join("tests/lab/traywatch.py"))
            .arg(cmd)
            .arg(&self.tray)
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.dbus)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The tray menu as the desktop's tray reads it, once an item has registered.
    pub fn tray_menu(&self) -> Result<Vec<TrayEntry>, String> {
        let text = self.traywatch("menu", &[])?;
        serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
    }

    /// Clicks tray menu entry `id`, as the tray does when the user picks it. An error when the
    /// menu was replaced since it was read (its ids are new).
    pub fn tray_click(&self, id: i32) -> Result<(), String> {
        self.traywatch("click", &[&id.to_string()]).map(drop)
    }

    /// Opens the tray menu afresh and clicks the entry `pick` finds in it, as a user would; a
    /// menu replaced between the reading and the click is read again.
    pub fn tray_pick(&self, what: &str, pick: impl Fn(&[TrayEntry]) -> Option<i32>) {
        wait_for(
            &format!("a click on {what} in the tray menu"),
            Duration::from_secs(20),
            || {
                let menu = self.tray_menu().ok()?;
                self.tray_click(pick(&menu)?).ok()
            },
        );
    }

    /// The tray icon: (icon name, theme path), as the tray would draw it.
    pub fn tray_icon(&self) -> Result<(String, String), String> {
        let text = self.traywatch("icon", &[])?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        Ok((
            v["name"].as_str().unwrap_or("").to_string(),
            v["theme_path"].as_str().unwrap_or("").to_string(),
        ))
    }

    /// What a paste on this desktop would get (the CLIPBOARD selection), if anything.
    pub fn clipboard(&self) -> Option<String> {
        x11::clipboard(&self.display).unwrap_or_else(|e| panic!("X11 on {}: {e}", self.display))
    }

    /// Notifications shown so far, as (summary, body).
    pub fn notifications(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.notes)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                (
                    v["summary"].as_str().unwrap_or("").to_string(),
                    v["body"].as_str().unwrap_or("").to_string(),
                )
            })
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

/// The little X11 a window manager's close button needs.
mod x11 {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{AtomEnum, ClientMessageEvent, ConnectionExt, EventMask, MapState};

    type Res<T> = Result<T, Box<dyn std::error::Error>>;

    fn atom(conn: &impl Connection, name: &str) -> Res<u32> {
        Ok(conn.intern_atom(false, name.as_bytes())?.reply()?.atom)
    }

    pub fn windows(display: &str, title: &str) -> Res<Vec<u32>> {
        Ok(all(display)?
            .into_iter()
            .filter(|w| w.1 && w.2 == title)
            .map(|w| w.0)
            .collect())
    }

    pub fn all(display: &str) -> Res<Vec<(u32, bool, String, u32)>> {
        let (conn, screen) = x11rb::connect(Some(display))?;
        let root = conn.setup().roots[screen].root;
        let net_name = atom(&conn, "_NET_WM_NAME")?;
        let utf8 = atom(&conn, "UTF8_STRING")?;
        let pid_atom = atom(&conn, "_NET_WM_PID")?;
        let mut out = Vec::new();
        for w in conn.query_tree(root)?.reply()?.children {
            // A window may vanish between the listing and these questions: skip it.
            let Ok(attrs) = conn.get_window_attributes(w)?.reply() else {
                continue;
            };
            let Ok(name) = conn.get_property(false, w, net_name, utf8, 0, 256)?.reply() else {
                continue;
            };
            let name = if name.value.is_empty() {
                let Ok(n) = conn
                    .get_property(false, w, AtomEnum::WM_NAME, AtomEnum::STRING, 0, 256)?
                    .reply()
                else {
                    continue;
                };
                n.value
            } else {
                name.value
            };
            let pid = conn
                .get_property(false, w, pid_atom, AtomEnum::CARDINAL, 0, 1)?
                .reply()
                .ok()
                .and_then(|p| p.value32().and_then(|mut v| v.next()))
                .unwrap_or(0);
            out.push((
                w,
                attrs.map_state == MapState::VIEWABLE,
                String::from_utf8_lossy(&name).into_owned(),
                pid,
            ));
        }
        Ok(out)
    }

    pub fn close(display: &str, window: u32) -> Res<()> {
        let (conn, _) = x11rb::connect(Some(display))?;
        let protocols = atom(&conn, "WM_PROTOCOLS")?;
        let delete = atom(&conn, "WM_DELETE_WINDOW")?;
        let event = ClientMessageEvent::new(32, window, protocols, [delete, x11rb::CURRENT_TIME, 0, 0, 0]);
        conn.send_event(false, window, EventMask::NO_EVENT, event)?.check()?;
        // A round trip: the server has handled the event before this connection closes.
        conn.get_input_focus()?.reply()?;
        Ok(())
    }

    /// The CLIPBOARD selection as text, as a paste would get it; `None` when nobody owns it.
    pub fn clipboard(display: &str) -> Res<Option<String>> {
        use x11rb::protocol::Event;
        use x11rb::protocol::xproto::{CreateWindowAux, WindowClass};
        let (conn, screen) = x11rb::connect(Some(display))?;
        let root = conn.setup().roots[screen].root;
        let win = conn.generate_id()?;
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            win,
            root,
            0,
            0,
            1,
            1,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new(),
        )?;
        let clipboard = atom(&conn, "CLIPBOARD")?;
        let utf8 = atom(&conn, "UTF8_STRING")?;
        let prop = atom(&conn, "TETHER_TEST_PASTE")?;
        conn.convert_selection(win, clipboard, utf8, prop, x11rb::CURRENT_TIME)?;
        conn.flush()?;
        // The server answers at once when nobody owns the selection; an owner answers through it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match conn.poll_for_event()? {
                Some(Event::SelectionNotify(e)) if e.property == x11rb::NONE => return Ok(None),
                Some(Event::SelectionNotify(_)) => {
                    let reply = conn
                        .get_property(false, win, prop, AtomEnum::ANY, 0, 1 << 16)?
                        .reply()?;
                    return Ok(Some(String::from_utf8_lossy(&reply.value).into_owned()));
                }
                Some(_) => {}
                None if std::time::Instant::now() > deadline => {
                    return Err("the clipboard's owner did not answer within 5 s".into());
                }
                None => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
    }
}
