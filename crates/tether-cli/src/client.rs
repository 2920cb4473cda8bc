//! Finding, starting and calling the engine from the CLI.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;
use tether_core::control::{self, Client, ClientError, Request};
use tether_core::engine;
use tether_core::error::EngineError;
use tether_core::instance::{self, InstanceError, Kind, Owner};
use tether_core::paths::{self, Paths};
use tokio_util::sync::CancellationToken;

/// A connected control client.
pub struct Engine {
    client: Client,
}

impl Engine {
    /// The running engine, if any.
    pub async fn running(paths: &Paths) -> Result<Option<Self>> {
        match Client::connect(&paths.control_socket()).await {
            Ok(client) => Ok(Some(Engine { client })),
            Err(ClientError::NotRunning(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The running engine, starting one in the background if none runs.
    pub async fn ensure(paths: &Paths) -> Result<Self> {
        if let Some(e) = Self::running(paths).await? {
            return Ok(e);
        }
        paths::ensure_private_dir(&paths.log_dir)?;
        let log_path = paths.daemon_log();
        let log =
            paths::open_log(&log_path).with_context(|| format!("cannot open the engine log {}", log_path.display()))?;
        let exe = std::env::current_exe().context("cannot find the tether executable")?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("daemon")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // The engine gets passphrases per request; it must not inherit one in its environment.
        cmd.env_remove("TETHER_KEY_PASSPHRASE").env_remove("TETHER_VM_PASSWORD");
        detach(&mut cmd);
        let logged_before = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let mut child = cmd.spawn().context("cannot start the Tether engine")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // An engine that cannot start says why on its last line: show it now, not in 10 s.
            if let Ok(Some(status)) = child.try_wait()
                && !status.success()
            {
                let text = std::fs::read(&log_path).unwrap_or_default();
                let new = String::from_utf8_lossy(text.get(logged_before as usize..).unwrap_or_default()).into_owned();
                let why = new
                    .lines()
                    .rev()
                    .find_map(|l| l.strip_prefix("error: "))
                    .unwrap_or("it exited at once")
                    .to_string();
                anyhow::bail!("the Tether engine could not start: {why} (log: {})", log_path.display());
            }
            if let Some(e) = Self::running(paths).await? {
                eprintln!(
                    "started the Tether engine in the background (pid {}; log: {})",
                    child.id(),
                    log_path.display()
                );
                return Ok(e);
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the Tether engine did not start within 10 s; see its log at {}",
                    log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn call(&mut self, req: &Request) -> Result<Value, ClientError> {
        self.client.call(req).await
    }

    /// A request whose reply has a type: a reply of another shape is a version mismatch.
    pub async fn ask<T: serde::de::DeserializeOwned>(&mut self, req: &Request) -> Result<T> {
        let v = self.call(req).await?;
        serde_json::from_value(v).map_err(|e| {
            anyhow::anyhow!(
                "the Tether engine answered in an unexpected form ({e}); is it another version? \
                 `tether engine stop` then retry starts this one"
            )
        })
    }

    pub async fn next_event(&mut self) -> Result<Option<Value>, ClientError> {
        self.client.next_event().await
    }
}

/// `tether daemon`: the engine in the foreground until SIGINT/SIGTERM or a shutdown request.
/// Another engine of the same home is no error: it is the one to use, so say which and exit 0.
pub async fn daemon(paths: Paths) -> Result<()> {
    init_logging();
    let engine = match engine::Engine::start(paths, Kind::Daemon).await {
        Ok(e) => e,
        Err(EngineError::Instance(InstanceError::Running(owner))) => {
            eprintln!("{}; not starting another", describe_owner(&owner));
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let eng = engine.clone();
    tokio::spawn(async move {
        stop_requested().await;
        tracing::info!("signal received; disconnecting every VM");
        eng.shutdown().await;
        stop.cancel();
    });
    control::serve(engine, cancel).await?;
    tracing::info!("engine stopped");
    Ok(())
}

/// Starts the engine apart from this terminal, so a Ctrl-C here does not stop it: its own
/// process group on Unix, no console of its own on Windows.
fn detach(cmd: &mut std::process::Command) {
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    #[cfg(windows)]
    {
        // CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW
        std::os::windows::process::CommandExt::creation_flags(cmd, 0x0000_0200 | 0x0800_0000);
    }
}

/// Waits for Ctrl-C, or on Unix for SIGTERM (what `kill` and service managers send).
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// "the Tether engine runs in the Tether app (pid 4121) since 09:14:03 (2 h 5 min)".
fn describe_owner(owner: &Owner) -> String {
    let now = tether_core::clock::unix_ms();
    let up = Duration::from_millis(now.saturating_sub(owner.since_ms)).as_secs();
    let uptime = match up {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    };
    format!(
        "the Tether engine runs in {} (pid {}), up {uptime}",
        owner.kind.describe(),
        owner.pid
    )
}

/// `tether engine status`.
pub async fn engine_status(paths: &Paths, json: bool) -> Result<()> {
    let owner = instance::running(paths)?;
    let answers = match Engine::running(paths).await {
        Ok(Some(mut e)) => e.call(&Request::Ping).await.is_ok(),
        _ => false,
    };
    if json {
        let v = serde_json::json!({
            "running": owner.is_some(),
            "owner": owner,
            "control_socket": paths.control_socket(),
            "answers": answers,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match owner {
        None => println!("no Tether engine runs for this Tether home; `tether connect` or the app starts one"),
        Some(o) => {
            println!("{}", describe_owner(&o));
            if answers {
                println!("control socket: {}", paths.control_socket().display());
            } else {
                println!(
                    "its control socket {} does not answer yet",
                    paths.control_socket().display()
                );
            }
        }
    }
    Ok(())
}

/// `tether engine stop`: asks the engine to disconnect everything and end, and waits until its
/// lock is free, so a `tether daemon` right after never meets the old one.
pub async fn engine_stop(paths: &Paths) -> Result<()> {
    let Some(owner) = instance::running(paths)? else {
        println!("no Tether engine runs for this Tether home");
        return Ok(());
    };
    let Some(mut e) = Engine::running(paths).await? else {
        anyhow::bail!(
            "{}, but its control socket {} does not answer; stop it with `kill {}`",
            describe_owner(&owner),
            paths.control_socket().display(),
            owner.pid
        );
    };
    e.call(&Request::Shutdown).await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    // The lock goes when the engine is dropped, a moment before its process ends; wait for both.
    // An app that mirrored this engine may take the lock over at once: that is another engine.
    loop {
        let holder = instance::running(paths)?;
        if holder.as_ref().is_none_or(|o| o.pid != owner.pid) && !process_alive(owner.pid) {
            println!(
                "stopped the Tether engine ({}, pid {}); every VM is disconnected",
                owner.kind.describe(),
                owner.pid
            );
            if let Some(next) = holder {
                println!("{} took over", describe_owner(&next));
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the engine (pid {}) accepted the stop but is still running after 15 s; see its log",
                owner.pid
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Whether `pid` still runs (a zombie does not). Only Linux tells us cheaply; elsewhere the
/// engine lock alone says it is gone.
fn process_alive(pid: u32) -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with(['Z', 'X']))
        .unwrap_or(false)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,russh=warn"));
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // The engine's recent lines are kept too, for `tether logs`, the window and reports.
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_target(false).with_filter(filter))
        .with(tether_core::logring::layer().with_filter(tether_core::logring::filter()))
        .try_init();
}
