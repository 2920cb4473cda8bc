//! The Tether tray app: embeds the engine (the same one `tether daemon` runs), serves the control
//! socket so the `tether` CLI talks to it, and adapts the engine to a tray menu, a web UI and
//! desktop notifications. It holds no logic of its own beyond that adaptation.

mod ipc;
mod notify;
mod tray;

use std::process::ExitCode;
use std::sync::Mutex;

use tauri::{AppHandle, Emitter, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder};
use tauri_plugin_autostart::{MacosLauncher, ManagerExt as _};
use tauri_plugin_clipboard_manager::ClipboardExt as _;
use tauri_plugin_notification::NotificationExt as _;
use tether_core::control;
use tether_core::engine::Engine;
use tether_core::paths::Paths;
use tokio_util::sync::CancellationToken;

/// Started by the autostart entry: stay in the tray without opening the window.
const HIDDEN_FLAG: &str = "--hidden";

/// What commands and handlers share (managed by Tauri; no globals).
pub struct AppState {
    pub engine: Engine,
    cancel: CancellationToken,
    notifier: Mutex<notify::Notifier>,
}

/// Opens the main window, or brings it forward if it exists.
fn open_window(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.set_focus();
        return;
    }
    let built = WebviewWindowBuilder::new(app, "main", WebviewUrl::App("index.html".into()))
        .title("Tether")
        .inner_size(1000.0, 680.0)
        .min_inner_size(760.0, 520.0)
        .build();
    if let Err(e) = built {
        tracing::error!(error = %e, "cannot open the window");
    }
}

pub(crate) fn autostart_enabled(app: &AppHandle) -> bool {
    app.autolaunch().is_enabled().unwrap_or(false)
}

pub(crate) fn set_autostart(app: &AppHandle, on: bool) -> Result<(), String> {
    let al = app.autolaunch();
    let res = if on { al.enable() } else { al.disable() };
    res.map_err(|e| format!("cannot change start at login: {e}"))?;
    refresh_tray(app);
    Ok(())
}

fn refresh_tray(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let Some(state) = app.try_state::<AppState>() else { return };
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
        let Some(state) = app.try_state::<AppState>() else { return };
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
                let _ = set_autostart(&app, !autostart_enabled(&app));
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

/// Forwards engine events to the window, the tray and the notifier.
fn pump_events(app: AppHandle, engine: Engine) {
    let mut rx = engine.subscribe();
    tauri::async_runtime::spawn(async move {
        loop {
            let event = match rx.recv().await {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            let _ = app.emit("engine-event", &event);
            let note = app
                .try_state::<AppState>()
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

/// Runs the app until Quit.
pub fn run() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,russh=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
    let paths = match Paths::from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let hidden = std::env::args().any(|a| a == HIDDEN_FLAG);
    let app = tauri::Builder::default()
        // Must be first: a second launch only brings the running app's window forward.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| open_window(app)))
        .plugin(tauri_plugin_autostart::init(MacosLauncher::LaunchAgent, Some(vec![HIDDEN_FLAG])))
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_clipboard_manager::init())
        .invoke_handler(tauri::generate_handler![
            ipc::status,
            ipc::connect,
            ipc::disconnect,
            ipc::use_vm,
            ipc::add_vm,
            ipc::remove_vm,
            ipc::add_forward,
            ipc::remove_forward,
            ipc::set_auto_connect,
            ipc::recent_events,
            ipc::settings,
            ipc::set_notifications,
            ipc::set_start_at_login,
        ])
        .setup(move |app| {
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);
            let engine = tauri::async_runtime::block_on(Engine::start(paths))?;
            let cancel = CancellationToken::new();
            let serve = control::serve(engine.clone(), cancel.clone());
            tauri::async_runtime::spawn(async move {
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "control socket unavailable; the tether CLI cannot reach this app");
                }
            });
            app.manage(AppState { engine: engine.clone(), cancel, notifier: Mutex::default() });
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
        // Closing the window destroys its webview (WebKit's processes exit); the app stays in
        // the tray until Quit, which exits with an explicit code.
        RunEvent::ExitRequested { api, code: None, .. } => api.prevent_exit(),
        RunEvent::Exit => {
            if let Some(state) = app.try_state::<AppState>() {
                let engine = state.engine.clone();
                tauri::async_runtime::block_on(engine.shutdown());
                state.cancel.cancel();
            }
        }
        _ => {}
    });
    ExitCode::SUCCESS
}
