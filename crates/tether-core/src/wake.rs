//! Notices that the laptop woke from sleep, or that the engine was frozen and thawed, so every
//! session checks its link at once instead of trusting a connection the VM may have forgotten.
//!
//! Two sources, both bumping the same counter as network changes (see `netwatch`):
//! - **Clock gaps**, on every OS: a 1 s tick that arrives more than [`GAP`] late on the monotonic
//!   clock (the process was stopped) or that sees the wall clock run [`GAP`] ahead of the
//!   monotonic one. A sleep shows as one or the other on every OS: `Instant` stands still through
//!   it on Linux (`CLOCK_MONOTONIC`) and macOS (`CLOCK_UPTIME_RAW`), so the wall clock runs
//!   ahead, and where it keeps counting (Windows) the tick arrives late. On a Mac this is the
//!   wake notification; `netwatch` adds the addresses that come back with the network.
//! - **logind** on Linux: `PrepareForSleep(false)` on the system bus, the moment resume begins.
//!   Any local user may emit a signal of that name on the system bus, and one answered would cut
//!   live streams whose link misses one quick probe; so only a signal whose sender owns
//!   `org.freedesktop.login1` counts.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::tasks::Tasks;

const TICK: Duration = Duration::from_secs(1);
/// More than any scheduling hiccup of a loaded laptop, far less than a real sleep.
pub const GAP: Duration = Duration::from_secs(3);

/// Starts both watchers, until the engine stops (`tasks`); each bump of `nudge` means "look at
/// your links now".
pub fn spawn(nudge: Arc<watch::Sender<u64>>, tasks: &Tasks) {
    let stop = tasks.stop_token();
    let gaps = nudge.clone();
    tasks.spawn(async move {
        tokio::select! {
            () = clock_gaps(gaps) => {}
            () = stop.cancelled() => {}
        }
    });
    #[cfg(target_os = "linux")]
    let stop = tasks.stop_token();
    #[cfg(target_os = "linux")]
    tasks.spawn(async move {
        tokio::select! {
            res = logind::run(nudge) => if let Err(e) = res {
                tracing::info!(error = %e, "sleep notifications from logind unavailable; relying on clock gaps");
            },
            () = stop.cancelled() => {}
        }
    });
}

/// How long the last tick slept beyond what it asked for, by either clock.
pub fn late_by(asked: Duration, mono: Duration, wall: Option<Duration>) -> Duration {
    let frozen = mono.saturating_sub(asked);
    let slept = wall.map(|w| w.saturating_sub(mono)).unwrap_or_default();
    frozen.max(slept)
}

async fn clock_gaps(nudge: Arc<watch::Sender<u64>>) {
    loop {
        let (m0, w0) = (Instant::now(), SystemTime::now());
        tokio::time::sleep(TICK).await;
        let late = late_by(TICK, m0.elapsed(), w0.elapsed().ok());
        if late > GAP {
            tracing::info!(
                late_s = late.as_secs_f64(),
                "woke from sleep (or was frozen); checking every VM now"
            );
            nudge.send_modify(|n| *n += 1);
        }
        if nudge.is_closed() {
            return;
        }
    }
}

#[cfg(target_os = "linux")]
mod logind {
    use std::sync::Arc;

    use futures_util::StreamExt as _;
    use tokio::sync::watch;

    const LOGIND: &str = "org.freedesktop.login1";

    pub async fn run(nudge: Arc<watch::Sender<u64>>) -> zbus::Result<()> {
        let conn = zbus::Connection::system().await?;
        let bus = zbus::fdo::DBusProxy::new(&conn).await?;
        let logind = zbus::names::BusName::try_from(LOGIND)?;
        let owner_now = || async { bus.get_name_owner(logind.clone()).await.ok().map(|o| o.to_string()) };
        let mut owner = owner_now().await;
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("org.freedesktop.login1.Manager")?
            .member("PrepareForSleep")?
            .path("/org/freedesktop/login1")?
            .build();
        let mut signals = zbus::MessageStream::for_match_rule(rule, &conn, None).await?;
        tracing::debug!("listening for logind's PrepareForSleep");
        while let Some(msg) = signals.next().await {
            let Ok(msg) = msg else { continue };
            let sender = msg.header().sender().map(ToString::to_string);
            if sender.is_some() && sender != owner {
                // logind may have restarted under another unique name.
                owner = owner_now().await;
            }
            if sender.is_none() || sender != owner {
                tracing::info!(
                    sender = sender.as_deref().unwrap_or("unknown"),
                    "ignored a PrepareForSleep signal that logind did not send"
                );
                continue;
            }
            match msg.body().deserialize::<bool>() {
                Ok(true) => tracing::info!("the laptop is going to sleep"),
                Ok(false) => {
                    tracing::info!("the laptop woke (logind); checking every VM now");
                    nudge.send_modify(|n| *n += 1);
                }
                Err(_) => {}
            }
            if nudge.is_closed() {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests/wake.rs"]
mod tests;
