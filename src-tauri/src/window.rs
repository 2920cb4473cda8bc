//! The window process: the web UI in one WebKit window, and nothing else. Commands and live
//! events go through the engine's control socket ([`crate::ipc`]); when the window closes the
//! process ends, taking every WebKit process with it.

use std::io::BufRead as _;
use std::process::ExitCode;
use std::time::Duration;

use tauri::{AppHandle, Emitter, Manager, WebviewUrl, WebviewWindowBuilder};
use tauri_plugin_autostart::MacosLauncher;
use tether_core::control::{Client, Request};
use tether_core::paths::Paths;

use crate::service::FOCUS;
use crate::{HIDDEN_FLAG, ipc};

const LABEL: &str = "main";

fn build_window(app: &AppHandle) -> tauri::Result<()> {
    WebviewWindowBuilder::new(app, LABEL, WebviewUrl::App("index.html".into()))
        .title("Tether")
        .inner_size(1000.0, 680.0)
        .min_inner_size(760.0, 520.0)
        .build()?;
    Ok(())
}

fn focus(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(LABEL) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// Relays the engine's events to the page. If the engine goes away and comes back, the page is
/// told to reload its state, since events in between were missed.
fn relay_events(app: AppHandle, socket: std::path::PathBuf) {
    tauri::async_runtime::spawn(async move {
        let mut first = true;
        loop {
            if let Ok(mut client) = Client::connect(&socket).await
                && client.call(&Request::Subscribe).await.is_ok()
            {
                if !first {
                    let _ = app.emit("engine-resync", ());
                }
                first = false;
                while let Ok(Some(event)) = client.next_event().await {
                    let _ = app.emit("engine-event", event);
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// Runs the window until it is closed (or, when `attached`, until the service goes away).
pub fn run(attached: bool, paths: Paths) -> ExitCode {
    let socket = paths.control_socket();
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_autostart::init(
            MacosLauncher::LaunchAgent,
            Some(vec![HIDDEN_FLAG]),
        ))
        .plugin(tauri_plugin_opener::init())
        .manage(ipc::Ipc {
            socket: socket.clone(),
            attached,
            follows: Default::default(),
        })
        .invoke_handler(tauri::generate_handler![
            ipc::engine,
            ipc::kube_enable,
            ipc::settings,
            ipc::set_start_at_login,
            ipc::doctor,
            ipc::follow_logs,
            ipc::unfollow_logs,
            ipc::open_port,
        ])
        .on_window_event(|_, event| tracing::debug!(?event, "window event"))
        .setup(move |app| {
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);
            build_window(app.handle())?;
            relay_events(app.handle().clone(), socket);
            if attached {
                // The service's orders arrive on stdin; its end (the service quit) ends us too.
                let handle = app.handle().clone();
                std::thread::spawn(move || {
                    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                        if line.trim() == FOCUS {
                            let h = handle.clone();
                            let _ = handle.run_on_main_thread(move || focus(&h));
                        }
                    }
                    handle.exit(0);
                });
            }
            Ok(())
        })
        .build(tauri::generate_context!());
    match app {
        // With its only window closed, the process exits.
        Ok(app) => {
            app.run(|_, _| {});
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot open the Tether window: {e}");
            ExitCode::FAILURE
        }
    }
}
