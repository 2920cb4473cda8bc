//! `tether connect`, `disconnect`, `use` and `env`: a VM's link and which VM `docker` talks to.
//! Connecting asks, on the terminal, to confirm an unknown host key (each jump host's in turn) and
//! for a key's passphrase; the engine only reports what needs confirming.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use tether_core::api::{ConnectReport, ErrorDetails};
use tether_core::config::Store;
use tether_core::control::{ClientError, Request};
use tether_core::endpoint;
use tether_core::paths::Paths;
use zeroize::Zeroizing;

use crate::client::Engine;
use crate::{confirm, output};

pub async fn connect(paths: &Paths, name: Option<String>, accept_new: bool) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    let mut fingerprint = None;
    // The host and key last confirmed: asked again means the confirmation did not take.
    let mut asked: Option<(String, String)> = None;
    let mut passphrase = std::env::var("TETHER_KEY_PASSPHRASE").ok().map(Zeroizing::new);
    let report = loop {
        let req = Request::Connect {
            name: name.clone(),
            accept_new,
            fingerprint: fingerprint.clone(),
            passphrase: passphrase.clone(),
        };
        match e.call(&req).await {
            Ok(v) => break v,
            // Behind jump hosts each hop's unknown key is asked about in turn (a confirmation
            // holds for the first unknown host only, even if the next presents the same key); the
            // same host and key asked twice means the confirmation did not take, and is not asked
            // again.
            Err(ClientError::Remote(err)) if err.code == tether_core::api::ErrorCode::HostKeyUnknown => {
                let fp = match err.details.as_deref() {
                    Some(ErrorDetails::HostKey {
                        host, fingerprint: fp, ..
                    }) if asked.as_ref() != Some(&(host.clone(), fp.clone())) => {
                        asked = Some((host.clone(), fp.clone()));
                        Some(fp.clone())
                    }
                    _ => None,
                };
                match fp {
                    Some(fp)
                        if confirm(&format!(
                            "{}\nAccept this key and connect?",
                            first_lines(&err.message, 2)
                        ))? =>
                    {
                        fingerprint = Some(fp);
                    }
                    _ => return Err(ClientError::Remote(err).into()),
                }
            }
            Err(ClientError::Remote(err))
                if err.code == tether_core::api::ErrorCode::PassphraseRequired
                    && passphrase.is_none()
                    && std::io::stdin().is_terminal() =>
            {
                passphrase = Some(Zeroizing::new(
                    rpassword::prompt_password("Key passphrase: ").context("reading the passphrase")?,
                ));
            }
            Err(other) => return Err(other.into()),
        }
    };
    let report: ConnectReport = serde_json::from_value(report)?;
    output::connected(&report.status);
    if let Some(engine) = report.status.engine.as_ref().filter(|e| !e.ok) {
        anyhow::bail!(
            "{}\nThe SSH session stays up; the socket will work as soon as the engine answers",
            output::clean(engine.error.as_deref().unwrap_or("the Docker engine did not answer"))
        );
    }
    Ok(())
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join("\n")
}

pub async fn disconnect(paths: &Paths, name: Option<String>, all: bool) -> Result<()> {
    let Some(mut e) = Engine::running(paths).await? else {
        println!("no Tether engine is running, so nothing is connected");
        return Ok(());
    };
    let v = e.call(&Request::Disconnect { name, all }).await?;
    let names: Vec<String> = serde_json::from_value(v)?;
    if names.is_empty() {
        println!("nothing was connected");
    }
    for n in names {
        println!("disconnected '{n}'; removed {}", paths.docker_socket(&n).display());
    }
    Ok(())
}

/// `tether use NAME`: the active VM, the default for `connect` and `env`.
pub async fn use_vm(paths: &Paths, name: String) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    e.call(&Request::Use { name: name.clone() }).await?;
    println!("'{name}' is now the active VM");
    println!(
        "{}",
        output::export_docker_host(&endpoint::docker_host(&paths.docker_socket(&name)))
    );
    Ok(())
}

/// `tether env`: read from the config file, so it works without an engine.
pub fn env(paths: &Paths, name: Option<String>) -> Result<()> {
    let cfg = Store::new(paths.config_file()).load()?;
    let name = cfg.resolve(name.as_deref())?;
    println!(
        "{}",
        output::export_docker_host(&endpoint::docker_host(&paths.docker_socket(&name)))
    );
    Ok(())
}
