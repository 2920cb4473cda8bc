//! Notices when the laptop's network changes (link up, address or route added) or the laptop
//! wakes ([`crate::wake`]), so every session looks at its link at once: one waiting out a
//! reconnect backoff tries again, and a connected one probes the VM with a short deadline instead
//! of trusting a connection that may lead nowhere now.
//!
//! Linux uses a netlink route socket (links, addresses and routes). macOS (the System
//! Configuration framework's dynamic store) and Windows (IP Helper's interface notifications) see
//! addresses come and go through `if-watch`; that covers joining or leaving a network, which is
//! what strands a connection. Anywhere else only wakes arrive and backoff covers the rest.

use std::sync::Arc;

use tokio::sync::watch;

use crate::tasks::Tasks;

/// A counter that increases on every (debounced) network change and every wake.
pub type NetChanges = watch::Receiver<u64>;

/// Starts watching, until the engine stops (`tasks`); the returned receiver never errors while
/// the sender tasks live.
pub fn spawn(tasks: &Tasks) -> NetChanges {
    let (tx, rx) = watch::channel(0u64);
    let tx = Arc::new(tx);
    crate::wake::spawn(tx.clone(), tasks);
    #[cfg(target_os = "linux")]
    let stop = tasks.stop_token();
    #[cfg(target_os = "linux")]
    tasks.spawn(async move {
        tokio::select! {
            res = linux::run(&tx) => if let Err(e) = res {
                tracing::info!(error = %e, "network change notifications unavailable; relying on backoff");
            },
            () = stop.cancelled() => {}
        }
    });
    #[cfg(any(target_os = "macos", windows))]
    let stop = tasks.stop_token();
    #[cfg(any(target_os = "macos", windows))]
    tasks.spawn(async move {
        tokio::select! {
            res = addresses::run(&tx) => if let Err(e) = res {
                tracing::info!(error = %e, "network change notifications unavailable; relying on backoff");
            },
            () = stop.cancelled() => {}
        }
    });
    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    drop(tx);
    rx
}

/// Changes often come in bursts (link, then address, then route); one wake-up is enough.
#[cfg(any(target_os = "linux", target_os = "macos", windows))]
const DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(150);

#[cfg(target_os = "linux")]
mod linux {
    use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols::NETLINK_ROUTE};

    use super::DEBOUNCE;

    const RTMGRP_LINK: u32 = 0x1;
    const RTMGRP_IPV4_IFADDR: u32 = 0x10;
    const RTMGRP_IPV4_ROUTE: u32 = 0x40;
    const RTMGRP_IPV6_IFADDR: u32 = 0x100;
    const RTMGRP_IPV6_ROUTE: u32 = 0x400;

    pub async fn run(tx: &tokio::sync::watch::Sender<u64>) -> std::io::Result<()> {
        let mut sock = TokioSocket::new(NETLINK_ROUTE)?;
        let groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE;
        sock.socket_mut().bind(&SocketAddr::new(0, groups))?;
        loop {
            sock.recv_from_full().await?;
            // Swallow the rest of the burst, then announce once.
            while tokio::time::timeout(DEBOUNCE, sock.recv_from_full()).await.is_ok() {}
            tx.send_modify(|n| *n += 1);
            if tx.is_closed() {
                return Ok(());
            }
        }
    }
}

#[cfg(any(target_os = "macos", windows))]
mod addresses {
    use futures_util::{FutureExt as _, StreamExt as _};

    use super::DEBOUNCE;

    pub async fn run(tx: &tokio::sync::watch::Sender<u64>) -> std::io::Result<()> {
        let mut watcher = if_watch::tokio::IfWatcher::new()?;
        // It first reports every address there is already: no change, so no nudge.
        while let Some(Some(_)) = watcher.next().now_or_never() {}
        loop {
            match watcher.next().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
            // Swallow the rest of the burst (one address down, another up), then announce once.
            while let Ok(Some(Ok(_))) = tokio::time::timeout(DEBOUNCE, watcher.next()).await {}
            tx.send_modify(|n| *n += 1);
            if tx.is_closed() {
                return Ok(());
            }
        }
    }
}
