//! Finding, starting and calling the engine from the CLI.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;
use tether_core::control::{self, Client, ClientError, Request};
use tether_core::engine;
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
        let log = paths::open_log(&log_path)
            .with_context(|| format!("cannot open the engine log {}", log_path.display()))?;
        let exe = std::env::current_exe().context("cannot find the tether executable")?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("daemon").stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        // The engine gets passphrases per request; it must not inherit one in its environment.
        cmd.env_remove("TETHER_KEY_PASSPHRASE");
        // Its own process group, so a Ctrl-C in this terminal does not stop the engine.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().context("cannot start the Tether engine")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = Self::running(paths).await? {
                eprintln!("started the Tether engine in the background (pid {}; log: {})", child.id(), log_path.display());
                return Ok(e);
            }
            if Instant::now() > deadline {
                anyhow::bail!("the Tether engine did not start within 10 s; see its log at {}", log_path.display());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn call(&mut self, req: &Request) -> Result<Value, ClientError> {
        self.client.call(req).await
    }

    pub async fn next_event(&mut self) -> Result<Option<Value>, ClientError> {
        self.client.next_event().await
    }
}

/// `tether daemon`: the engine in the foreground until SIGINT/SIGTERM or a shutdown request.
pub async fn daemon(paths: Paths) -> Result<()> {
    init_logging();
    let engine = engine::Engine::start(paths).await?;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let eng = engine.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal received; disconnecting every VM");
        eng.shutdown().await;
        stop.cancel();
    });
    control::serve(engine, cancel).await?;
    tracing::info!("engine stopped");
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,russh=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}

