//! The service process: engine, control socket, tray and notifications. The window is a child
//! process ([`crate::window`]) it starts on demand, told to come forward over its stdin, and
//! which asks for a tray refresh over its stdout.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Mutex;

use std::path::{Path, PathBuf};
use tauri::{AppHandle, Manager, RunEvent};
use tauri_plugin_autostart::{MacosLauncher, ManagerExt as _};
use tauri_plugin_clipboard_manager::ClipboardExt as _;
use tauri_plugin_notification::NotificationExt as _;

use tether_core::api::{Event, VmStatus};
use tether_core::config::Config;
use tether_core::control::{self, Client, Request};
use tether_core::engine::Engine;
use tether_core::error::EngineError;
use tether_core::instance::{InstanceError, Kind};
use tether_core::paths::Paths;
use tokio_util::sync::CancellationToken;

use crate::{ATTACHED_FLAG, HIDDEN_FLAG, WINDOW_FLAG, menu_action, notify, tray};

/// How long a quit forwarded from another launch waits, so that launch gets its answer first.
const FORWARDED_QUIT_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

/// What the window process writes on stdout when the tray should be redrawn.
pub const TRAY_REFRESH: &str = "tray-refresh";
/// What the service writes on the window's stdin to bring it forward.
pub const FOCUS: &str = "focus";

/// The running window process.
struct WindowChild {
    child: Child,
    stdin: ChildStdin,
}

/// The engine the tray drives: its own, or the one that already ran for this Tether home (a
/// `tether daemon`), which it then mirrors over the control socket. Never a second engine; when
/// the mirrored one goes away, the app starts its own.
#[derive(Clone)]
enum Backend {
    Own(Engine),
    Attached { socket: PathBuf, paths: Paths },
}

impl Backend {
    async fn call(socket: &Path, req: &Request) -> Result<serde_json::Value, String> {
        let mut client = Client::connect(socket).await.map_err(|e| e.to_string())?;
        client.call(req).await.map_err(|e| e.to_string())
    }

    async fn status(&self) -> Vec<VmStatus> {
        match self {
            Backend::Own(engine) => engine.status().await,
            Backend::Attached { socket, .. } => Self::call(socket, &Request::Status)
                .await
                .ok()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
        }
    }

    async fn notifications(&self) -> bool {
        match self {
            Backend::Own(engine) => engine.config().await.settings.notifications,
            Backend::Attached { socket, .. } => Self::call(socket, &Request::VmList)
                .await
                .ok()
                .and_then(|v| serde_json::from_value::<Config>(v).ok())
                .is_none_or(|c| c.settings.notifications),
        }
    }

    /// A tray action on a VM: connect, disconnect or use.
    async fn act(&self, verb: &str, vm: &str) -> Result<(), String> {
        match self {
            Backend::Own(engine) => match verb {
                "connect" => engine.connect(Some(vm), Default::default()).await.map(drop),
                "disconnect" => engine.disconnect(Some(vm)).await.map(drop),
                _ => engine.set_active(vm).await,
            }
            .map_err(|e| e.to_string()),
            Backend::Attached { socket, .. } => {
                let name = Some(vm.to_string());
                let req = match verb {
                    "connect" => Request::Connect {
                        name,
                        accept_new: false,
                        fingerprint: None,
                        passphrase: None,
                    },
                    "disconnect" => Request::Disconnect { name, all: false },
                    _ => Request::Use { name: vm.to_string() },
                };
                Self::call(socket, &req).await.map(drop)
            }
        }
    }

    /// Shares laptop folder `path` with `vm`'s containers, named after the folder.
    async fn share(&self, vm: &str, path: &str) -> Result<(), String> {
        let p = std::path::PathBuf::from(path);
        let last: String = p
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .take(24)
                    .collect()
            })
            .unwrap_or_default();
        // A suffix from the path keeps two folders of one name apart.
        let tag: u32 = path
            .bytes()
            .fold(2166136261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16777619));
        let name = format!(
            "{}-{:04x}",
            if last.is_empty() { "folder".to_string() } else { last },
            tag & 0xffff
        );
        let share = tether_core::config::Share {
            name,
            path: p,
            ignore: Vec::new(),
        };
        match self {
            Backend::Own(engine) => engine.share_add(vm, share).await.map(drop).map_err(|e| e.to_string()),
            Backend::Attached { socket, .. } => Self::call(
                socket,
                &Request::ShareAdd {
                    name: Some(vm.to_string()),
                    share,
                },
            )
            .await
            .map(drop),
        }
    }

    /// Quitting the app stops its own engine; an engine it only mirrors keeps running.
    async fn shutdown(&self) {
        if let Backend::Own(engine) = self {
            engine.shutdown().await;
        }
    }
}

/// What menu handlers share (managed by Tauri; no globals).
struct Service {
    /// Replaced once, when the app takes over from an engine it mirrored.
    backend: Mutex<Backend>,
    cancel: CancellationToken,
    notifier: Mutex<notify::Notifier>,
    window: Mutex<Option<WindowChild>>,
}

/// Brings the window forward, or starts the window process.
fn open_window(app: &AppHandle) {
    let Some(state) = app.try_state::<Service>() else {
        return;
    };
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
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return;
    };
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
        let Some(state) = app.try_state::<Service>() else {
            return;
        };
        let Some(backend) = state.backend() else { return };
        let vms = backend.status().await;
        let suggestions = state.notifier.lock().map(|n| n.suggestions()).unwrap_or_default();
        if let Err(e) = tray::refresh(&app, &vms, autostart_enabled(&app), &suggestions) {
            tracing::warn!(error = %e, "cannot update the tray");
        }
    });
}

fn on_menu(app: &AppHandle, id: &str) {
    let app = app.clone();
    let id = id.to_string();
    tauri::async_runtime::spawn(async move {
        let Some(state) = app.try_state::<Service>() else {
            return;
        };
        let Some(backend) = state.backend() else { return };
        let (verb, arg) = id.split_once(':').unwrap_or((id.as_str(), ""));
        let result = match verb {
            "connect" | "disconnect" | "use" => backend.act(verb, arg).await,
            // "share:VM:PATH": VM names hold no colon; the path may.
            "share" => match arg.split_once(':') {
                Some((vm, path)) => {
                    let done = backend.share(vm, path).await;
                    if done.is_ok()
                        && let Ok(mut n) = state.notifier.lock()
                    {
                        n.forget_suggestion(vm, path);
                    }
                    done
                }
                None => Ok(()),
            },
            "open" => {
                open_window(&app);
                Ok(())
            }
            "copy-docker-host" => {
                let active = backend.status().await.into_iter().find(|v| v.active);
                if let Some(vm) = active {
                    let _ = app.clipboard().write_text(vm.docker_host);
                }
                Ok(())
            }
            "autostart" => {
                let al = app.autolaunch();
                let res = if autostart_enabled(&app) {
                    al.disable()
                } else {
                    al.enable()
                };
                if let Err(e) = res {
                    tracing::warn!(error = %e, "cannot change start at login");
                }
                Ok(())
            }
            "quit" => {
                backend.shutdown().await;
                state.cancel.cancel();
                app.exit(0);
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            // Menu actions have no window to answer in: say it with a notification.
            let _ = app.notification().builder().title("Tether").body(e).show();
        }
        refresh_tray(&app);
    });
}

impl Service {
    fn backend(&self) -> Option<Backend> {
        self.backend.lock().ok().map(|b| b.clone())
    }
}

/// Serves the app's own engine on the control socket until Quit or `tether engine stop`; either
/// way the app then exits.
fn serve_own(app: &AppHandle, engine: Engine, cancel: CancellationToken) {
    let serve = control::serve(engine, cancel);
    let handle = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "control socket unavailable; the tether CLI and the window cannot reach this app");
            return;
        }
        handle.exit(0);
    });
}

/// Feeds engine events to the tray and the notifier: from the engine's broadcast, or from the
/// control socket's event stream of the engine the app mirrors (subscribed again if it ends).
fn pump_events(app: AppHandle, backend: Backend) {
    tauri::async_runtime::spawn(async move {
        match &backend {
            Backend::Own(engine) => {
                let mut rx = engine.subscribe();
                loop {
                    match rx.recv().await {
                        Ok(event) => on_event(&app, &backend, &event).await,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => refresh_tray(&app),
                        Err(_) => return,
                    }
                }
            }
            Backend::Attached { socket, paths } => loop {
                if let Ok(mut client) = Client::connect(socket).await
                    && client.call(&Request::Subscribe).await.is_ok()
                {
                    refresh_tray(&app);
                    while let Ok(Some(value)) = client.next_event().await {
                        if let Ok(event) = serde_json::from_value::<Event>(value) {
                            on_event(&app, &backend, &event).await;
                        }
                    }
                }
                // The mirrored engine went away (`tether engine stop`, or it ended): the tray
                // must not be left without one, so take over; if another engine won the race,
                // mirror that one.
                match Engine::start(paths.clone(), Kind::App).await {
                    Ok(engine) => {
                        tracing::info!("the engine the tray mirrored is gone; this app runs the engine now");
                        let Some(state) = app.try_state::<Service>() else {
                            return;
                        };
                        serve_own(&app, engine.clone(), state.cancel.clone());
                        let own = Backend::Own(engine);
                        if let Ok(mut b) = state.backend.lock() {
                            *b = own.clone();
                        }
                        refresh_tray(&app);
                        pump_events(app, own);
                        return;
                    }
                    Err(EngineError::Instance(InstanceError::Running(_))) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot start an engine after the mirrored one went away"),
                }
                refresh_tray(&app);
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            },
        }
    });
}

async fn on_event(app: &AppHandle, backend: &Backend, event: &Event) {
    let note = app
        .try_state::<Service>()
        .and_then(|s| s.notifier.lock().ok().and_then(|mut n| n.on_event(event)));
    if let Some(note) = note
        && backend.notifications().await
    {
        tracing::info!(title = %note.title, "notifying");
        if let Err(e) = app.notification().builder().title(&note.title).body(&note.body).show() {
            tracing::warn!(error = %e, "notification failed");
        }
    }
    refresh_tray(app);
}

/// Runs the service until Quit.
pub fn run(hidden: bool, menu: Option<String>, paths: Paths) -> ExitCode {
    let app = tauri::Builder::default()
        // Must be first: a second launch only brings the running app's window forward.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| match menu_action(&argv) {
            // The launch that forwarded "quit" waits for this instance's D-Bus reply, which goes
            // out after this callback returns; exiting at once would leave it with "no reply"
            // and an error for a quit that worked. So the quit starts a moment later.
            Some(id) if id == "quit" => {
                let app = app.clone();
                tauri::async_runtime::spawn(async move {
                    tokio::time::sleep(FORWARDED_QUIT_GRACE).await;
                    on_menu(&app, "quit");
                });
            }
            Some(id) => on_menu(app, &id),
            None => open_window(app),
        }))
        .plugin(tauri_plugin_autostart::init(MacosLauncher::LaunchAgent, Some(vec![HIDDEN_FLAG])))
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_clipboard_manager::init())
        .setup(move |app| {
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);
            let cancel = CancellationToken::new();
            let backend = match tauri::async_runtime::block_on(Engine::start(paths.clone(), Kind::App)) {
                Ok(engine) => {
                    serve_own(app.handle(), engine.clone(), cancel.clone());
                    Backend::Own(engine)
                }
                Err(EngineError::Instance(InstanceError::Running(owner))) => {
                    tracing::info!(pid = owner.pid, kind = ?owner.kind, "an engine already runs for this Tether home; the tray mirrors it");
                    Backend::Attached { socket: paths.control_socket(), paths: paths.clone() }
                }
                Err(e) => return Err(e.into()),
            };
            app.manage(Service { backend: Mutex::new(backend.clone()), cancel, notifier: Mutex::default(), window: Mutex::default() });
            tray::create(app.handle(), on_menu)?;
            pump_events(app.handle().clone(), backend);
            refresh_tray(app.handle());
            if !hidden {
                open_window(app.handle());
            }
            if let Some(id) = &menu {
                on_menu(app.handle(), id);
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
                if let Some(backend) = state.backend() {
                    tauri::async_runtime::block_on(backend.shutdown());
                }
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
