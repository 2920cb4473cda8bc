//! The Tether tray app. One binary, two processes:
//!
//! - the **service** ([`service`]): the tray icon, the embedded engine (the same one `tether
//!   daemon` runs), the control socket the `tether` CLI talks to, and desktop notifications. It
//!   never loads a web view.
//! - the **window** ([`window`]), started by the service on "Open Tether…": the web UI, an adapter
//!   over the engine's control socket. Closing it ends its process, so every WebKit process and
//!   all the memory WebKit used go with it (in one process, WebKitGTK keeps its network process
//!   for the app's lifetime; see ARCHITECTURE.md).
//!
//! Neither holds logic of its own beyond adapting the engine.

mod ipc;
mod notify;
mod service;
mod tray;
mod window;

use std::process::ExitCode;

/// Started by the autostart entry: stay in the tray without opening the window.
const HIDDEN_FLAG: &str = "--hidden";
/// Run as the window process.
const WINDOW_FLAG: &str = "--window";
/// The window process was started by the service and talks to it over stdin/stdout.
const ATTACHED_FLAG: &str = "--attached";
/// `--menu ID`: performs a tray menu action (`use:NAME`, `connect:NAME`, `disconnect:NAME`, …)
/// in the running app, for desktop shortcuts and scripts, through the same path as a click.
const MENU_FLAG: &str = "--menu";

/// The menu action asked for on this command line, if any.
fn menu_action(args: &[String]) -> Option<String> {
    args.iter()
        .position(|a| a == MENU_FLAG)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Runs the service, or the window when started with `--window`.
pub fn run() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,russh=warn"));
    // Logs go to stderr: the window's stdout is a line protocol to the service.
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // The engine's recent lines are kept too, for the window's log view and reports.
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(tether_core::logring::layer().with_filter(tether_core::logring::filter()))
        .try_init();
    let paths = match tether_core::paths::Paths::from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has(WINDOW_FLAG) {
        window::run(has(ATTACHED_FLAG), paths)
    } else {
        service::run(
            has(HIDDEN_FLAG) || menu_action(&args).is_some(),
            menu_action(&args),
            paths,
        )
    }
}
