//! `tether status` (once, or `--watch` for every engine event as it happens), `health` and
//! `logs`. Without an engine, status reads the config and says every VM is disconnected.

use anyhow::Result;
use tether_core::api::{Event, ForwardState, ForwardStatus, ReverseStatus, VmStatus};
use tether_core::config::Store;
use tether_core::control::Request;
use tether_core::endpoint;
use tether_core::paths::Paths;
use tether_core::state::State;

use crate::client::Engine;
use crate::output;

pub async fn status(paths: &Paths, json: bool) -> Result<()> {
    let list: Vec<VmStatus> = match Engine::running(paths).await? {
        Some(mut e) => e.ask(&Request::Status).await?,
        None => {
            // No engine: every VM is disconnected; say so rather than fail.
            let cfg = Store::new(paths.config_file()).load()?;
            cfg.vms
                .iter()
                .map(|(n, p)| {
                    let endpoint = paths.docker_socket(n);
                    let socket = endpoint.display().to_string();
                    VmStatus {
                        name: n.clone(),
                        host: p.host.clone(),
                        via: Vec::new(),
                        kube: p.kube.as_ref().map(|k| tether_core::api::KubeView::of(n, k)),
                        arch: p.arch,
                        state: State::Disconnected,
                        since_ms: 0,
                        rtt_ms: None,
                        docker_host: endpoint::docker_host(&endpoint),
                        socket,
                        forwards: p
                            .forwards
                            .iter()
                            .map(|f| ForwardStatus {
                                local: f.local,
                                remote: f.remote,
                                state: ForwardState::Idle,
                                error: None,
                                active: 0,
                                total: 0,
                                refused: 0,
                                auto: false,
                                container: None,
                            })
                            .collect(),
                        reverse: p
                            .reverse
                            .iter()
                            .map(|r| ReverseStatus {
                                remote: r.remote,
                                local: r.local,
                                state: ForwardState::Idle,
                                bind: r.bind.map(|b| b.to_string()),
                                address: None,
                                error: None,
                                active: 0,
                                total: 0,
                            })
                            .collect(),
                        last_error: Some("no Tether engine is running".into()),
                        error_code: Some(tether_core::api::ErrorCode::EngineUnreachable),
                        error_details: None,
                        error_advice: None,
                        engine: None,
                        active: cfg.active.as_deref() == Some(n.as_str()),
                        auto_connect: p.auto_connect,
                        unforwarded: Vec::new(),
                        arch_warning: None,
                        auto_forward: p.auto_forward.unwrap_or(cfg.settings.auto_forward),
                        docker_pool: None,
                        shares: Vec::new(),
                    }
                })
                .collect()
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        output::status(&list);
    }
    Ok(())
}

/// Prints engine events as they arrive (the same broadcast the app subscribes to).
/// Subscribes first, then prints a snapshot, so nothing between the two is missed. The engine
/// ends a stream that fell behind; then a new snapshot replaces the events that were missed.
pub async fn watch(paths: &Paths, json: bool) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    loop {
        e.call(&Request::Subscribe).await?;
        let snapshot: Vec<VmStatus> = Engine::ensure(paths).await?.ask(&Request::Status).await?;
        if json {
            println!("{}", serde_json::json!({ "event": "snapshot", "vms": snapshot }));
        } else {
            output::status(&snapshot);
        }
        while let Some(ev) = e.next_event().await? {
            if json {
                println!("{ev}");
            } else {
                match serde_json::from_value::<Event>(ev.clone()) {
                    Ok(ev) => output::event(&ev),
                    // An event this CLI does not know (a newer engine): shown as it came.
                    Err(_) => println!("{}", output::clean(&ev.to_string())),
                }
            }
        }
        // Still there: this watcher fell behind. Gone: the engine stopped, and so does this.
        e = Engine::running(paths).await?.ok_or_else(|| {
            anyhow::anyhow!("the Tether engine stopped; start it again with `tether daemon` or the app")
        })?;
    }
}

/// The engine's recent log lines, all or about one VM.
pub async fn logs(paths: &Paths, name: Option<String>, lines: usize, json: bool) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    let list: Vec<tether_core::logring::LogLine> = e.ask(&Request::Logs { name, lines }).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for l in &list {
        println!("{}", output::clean(&tether_core::doctor::line_text(l)));
    }
    Ok(())
}
