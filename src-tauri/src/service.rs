//! The service process: engine, control socket, tray and notifications. The window is a child
//! process ([`crate::window`]) it starts on demand, told to come forward over its stdin, and
//! which asks for a tray refresh over its stdout.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Mutex;

use tauri::{AppHandle, Manager, RunEvent};
use tauri_plugin_autostart::{MacosLauncher, ManagerExt as _};
use tauri_plugin_clipboard_manager::ClipboardExt as _;
use tauri_plugin_notification::NotificationExt as _;
use tether_core::control;
use tether_core::engine::Engine;
use tether_core::paths::Paths;
use tokio_util::sync::CancellationToken;

use crate::{ATTACHED_FLAG, HIDDEN_FLAG, WINDOW_FLAG, notify, tray};

/// What the window process writes on stdout when the tray should be redrawn.
pub const TRAY_REFRESH: &str = "tray-refresh";
/// What the service writes on the window's stdin to bring it forward.
pub const FOCUS: &str = "focus";

/// The running window process.
struct WindowChild {
    child: Child,
    stdin: ChildStdin,
}

/// What menu handlers share (managed by Tauri; no globals).
struct Service {
    engine: Engine,
    cancel: CancellationToken,
    notifier: Mutex<notify::Notifier>,
    window: Mutex<Option<WindowChild>>,
}

/// Brings the window forward, or starts the window process.
fn open_window(app: &AppHandle) {
    let Some(state) = app.try_state::<Service>() else { return };
    let Ok(mut slot) = state.window.lock() else { return };
    if let Some(w) = slot.as_mut()
        && matches!(w.child.try_wait(), Ok(None))
        && writeln!(w.stdin, "{FOCUS}").and_then(|_| w.stdin.flush()).is_ok()
    {
        return;
    }
    if let Some(mut old) = slot.take() {
        let _ = old.child.wait();
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return tracing::error!(error = %e, "cannot find my own executable to open the window"),
    };
    let spawned = Command::new(exe)
        .args([WINDOW_FLAG, ATTACHED_FLAG])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "cannot start the window"),
    };
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else { return };
    let pid = child.id();
    *slot = Some(WindowChild { child, stdin });
    let app = app.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.trim() == TRAY_REFRESH {
                refresh_tray(&app);
            }
        }
        // The window closed: reap it now rather than on the next open.
        if let Some(state) = app.try_state::<Service>()
            && let Ok(mut slot) = state.window.lock()
            && slot.as_ref().is_some_and(|w| w.child.id() == pid)
            && let Some(mut w) = slot.take()
        {
            let _ = w.child.wait();
        }
        refresh_tray(&app);
    });
}

fn autostart_enabled(app: &AppHandle) -> bool {
    app.autolaunch().is_enabled().unwrap_or(false)
}

fn refresh_tray(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let Some(state) = app.try_state::<Service>() else { return };
        let vms = state.engine.status().await;
        if let Err(e) = tray::refresh(&app, &vms, autostart_enabled(&app)) {
            tracing::warn!(error = %e, "cannot update the tray");
        }
    });
}

fn on_menu(app: &AppHandle, id: &str) {
    let app = app.clone();
    let id = id.to_string();
    tauri::async_runtime::spawn(async move {
        let Some(state) = app.try_state::<Service>() else { return };
        let engine = state.engine.clone();
        let (verb, arg) = id.split_once(':').unwrap_or((id.as_str(), ""));
        let result = match verb {
            "connect" => engine.connect(Some(arg), Default::default()).await.map(|_| ()),
            "disconnect" => engine.disconnect(Some(arg)).await.map(|_| ()),
            "use" => engine.set_active(arg).await,
            "open" => {
                open_window(&app);
                Ok(())
            }
            "copy-docker-host" => {
                let active = engine.status().await.into_iter().find(|v| v.active);
                if let Some(vm) = active {
                    let _ = app.clipboard().write_text(vm.docker_host);
                }
                Ok(())
            }
            "autostart" => {
                let al = app.autolaunch();
                let res = if autostart_enabled(&app) { al.disable() } else { al.enable() };
                if let Err(e) = res {
                    tracing::warn!(error = %e, "cannot change start at login");
                }
                Ok(())
            }
            "quit" => {
                engine.shutdown().await;
                state.cancel.cancel();
                app.exit(0);
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            // Menu actions have no window to answer in: say it with a notification.
            let _ = app.notification().builder().title("Tether").body(e.to_string()).show();
        }
        refresh_tray(&app);
    });
}

/// Feeds engine events to the tray and the notifier.
fn pump_events(app: AppHandle, engine: Engine) {
    let mut rx = engine.subscribe();
    tauri::async_runtime::spawn(async move {
        loop {
            let event = match rx.recv().await {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            let note = app
                .try_state::<Service>()
                .and_then(|s| s.notifier.lock().ok().and_then(|mut n| n.on_event(&event)));
            if let Some(note) = note
                && engine.config().await.settings.notifications
            {
                tracing::info!(title = %note.title, "notifying");
                if let Err(e) = app.notification().builder().title(&note.title).body(&note.body).show() {
                    tracing::warn!(error = %e, "notification failed");
                }
            }
            refresh_tray(&app);
        }
    });
}

/// Runs the service until Quit.
pub fn run(hidden: bool, paths: Paths) -> ExitCode {
    let app = tauri::Builder::default()
        // Must be first: a second launch only brings the running app's window forward.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| open_window(app)))
        .plugin(tauri_plugin_autostart::init(MacosLauncher::LaunchAgent, Some(vec![HIDDEN_FLAG])))
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_clipboard_manager::init())
        .setup(move |app| {
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);
            let engine = tauri::async_runtime::block_on(Engine::start(paths))?;
            let cancel = CancellationToken::new();
            let serve = control::serve(engine.clone(), cancel.clone());
            tauri::async_runtime::spawn(async move {
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "control socket unavailable; the tether CLI and the window cannot reach this app");
                }
            });
            app.manage(Service { engine: engine.clone(), cancel, notifier: Mutex::default(), window: Mutex::default() });
            tray::create(app.handle(), on_menu)?;
            pump_events(app.handle().clone(), engine);
            refresh_tray(app.handle());
            if !hidden {
                open_window(app.handle());
            }
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot start Tether: {e}");
            return ExitCode::FAILURE;
        }
    };
    app.run(|app, event| match event {
        // No window is no reason to exit: the service lives in the tray until Quit, which exits
        // with an explicit code.
        RunEvent::ExitRequested { api, code: None, .. } => api.prevent_exit(),
        RunEvent::Exit => {
            if let Some(state) = app.try_state::<Service>() {
                let engine = state.engine.clone();
                tauri::async_runtime::block_on(engine.shutdown());
                state.cancel.cancel();
                // Closing its stdin tells the window to go too.
                if let Ok(mut slot) = state.window.lock() {
                    slot.take();
                }
            }
        }
        _ => {}
    });
    ExitCode::SUCCESS
}
