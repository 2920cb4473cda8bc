//! Channels to the VM's Docker socket opened ahead of demand, so that a new local connection
//! starts on an open channel: its first answer is one round trip away instead of two (a channel
//! open, then the request).
//!
//! Sizing follows demand: nothing is pooled until a connection arrives; after one, the pool keeps
//! as many channels ready as connections arrived in the busiest recent second (a `compose up`
//! opens dozens at once), at most `settings.docker_pool`; after [`IDLE`] without a connection it
//! holds none again, so an idle engine costs the VM nothing. Each pooled channel is one idle
//! connection on dockerd's socket.
//!
//! Validity: a pooled channel belongs to one SSH connection (a reconnect voids them all), lives at
//! most [`MAX_AGE`] (well inside dockerd's own timeouts for a connection that sends nothing), and
//! is handed out only if the VM has not closed it: a dockerd restart closes every connection to
//! its socket, sshd passes that on as EOF and CLOSE, and such a channel is dropped, not used.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use russh::client::{Handle, Msg};
use russh::{Channel, ChannelMsg};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api::PoolView;
use crate::ssh::ClientHandler;

/// The session's current SSH connection (`forward::Link`), named here so the two modules do not
/// depend on each other.
type Link = tokio::sync::watch::Receiver<Option<Arc<Handle<ClientHandler>>>>;

/// Without a connection for this long, the pool empties and stays empty.
pub const IDLE: Duration = Duration::from_secs(30);
/// A pooled channel older than this is closed rather than handed out.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// How long a channel open may take before the pool gives up on it.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Demand is counted per window of this length.
const WINDOW: Duration = Duration::from_secs(1);

/// What the pool did, for status and tests.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Connections that started on a pooled channel.
    pub hits: AtomicU64,
    /// Connections that had to open their own.
    pub misses: AtomicU64,
    /// Pooled channels the VM had closed (dockerd restarted), found and dropped.
    pub stale: AtomicU64,
}

/// A channel ready for a connection, closed at the VM if it is dropped unused.
struct Ready {
    channel: Option<Channel<Msg>>,
    opened: Instant,
}

impl Drop for Ready {
    fn drop(&mut self) {
        // A dropped russh channel is not closed by itself; without a CLOSE, sshd would keep
        // dockerd's connection open until the SSH connection ends.
        if let (Some(ch), Ok(rt)) = (self.channel.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(async move {
                let _ = ch.close().await;
            });
        }
    }
}

struct State {
    /// The SSH connection the ready channels belong to.
    conn: Option<Arc<Handle<ClientHandler>>>,
    ready: VecDeque<Ready>,
    opening: usize,
    /// Channels to keep ready.
    target: usize,
    last_take: Option<Instant>,
    /// Connections in the current demand window, and the busiest recent window.
    window_start: Instant,
    in_window: usize,
    busiest: usize,
}

/// One forward's pool of pre-opened channels.
pub struct Pool {
    /// The Docker socket's path on the VM (the profile's `remote_socket`).
    path: Mutex<String>,
    /// The most channels kept ready (`settings.docker_pool`); 0 turns pooling off.
    max: Arc<AtomicUsize>,
    state: Mutex<State>,
    refill: Notify,
    pub stats: PoolStats,
    /// The engine's ping answer, served on the laptop (same socket, same connection).
    pub ping: Arc<crate::ping::PingCache>,
    /// The engine's tasks: the pool's own (filling it, watching the ping) join them.
    tasks: crate::tasks::Tasks,
}

impl Pool {
    /// A pool of channels to the Unix socket `path` on the VM.
    pub fn new(
        path: String,
        max: Arc<AtomicUsize>,
        ping_on: Arc<std::sync::atomic::AtomicBool>,
        tasks: crate::tasks::Tasks,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            path: Mutex::new(path),
            max,
            state: Mutex::new(State {
                conn: None,
                ready: VecDeque::new(),
                opening: 0,
                target: 0,
                last_take: None,
                window_start: Instant::now(),
                in_window: 0,
                busiest: 0,
            }),
            refill: Notify::new(),
            stats: PoolStats::default(),
            ping: Arc::new(crate::ping::PingCache::new(ping_on)),
            tasks,
        })
    }

    /// Points the pool at another socket path; channels to the old one are let go.
    pub fn set_path(&self, path: &str) {
        let Ok(mut p) = self.path.lock() else { return };
        if *p != path {
            *p = path.to_string();
            drop(p);
            if let Ok(mut st) = self.state.lock() {
                st.ready.clear();
            }
        }
    }

    fn path(&self) -> String {
        self.path.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The counters, as the status shows them.
    pub fn view(&self) -> PoolView {
        PoolView {
            ready: self.state.lock().map(|st| st.ready.len() as u64).unwrap_or(0),
            hits: self.stats.hits.load(Ordering::Relaxed),
            misses: self.stats.misses.load(Ordering::Relaxed),
            stale: self.stats.stale.load(Ordering::Relaxed),
            pings_answered: self.ping.answered.load(Ordering::Relaxed),
            ping_learned: self.ping.ready(),
            ping_forgotten: self.ping.forgotten.load(Ordering::Relaxed),
        }
    }

    /// A ready channel on `conn` that the VM has not closed, if there is one. Either way the
    /// demand is counted and the pool refilled in the background.
    pub fn take(&self, conn: &Arc<Handle<ClientHandler>>) -> Option<Channel<Msg>> {
        let max = self.max.load(Ordering::Relaxed);
        let Ok(mut st) = self.state.lock() else { return None };
        let now = Instant::now();
        if now.duration_since(st.window_start) >= WINDOW {
            st.window_start = now;
            st.in_window = 0;
        }
        st.in_window += 1;
        st.busiest = st.busiest.max(st.in_window);
        st.last_take = Some(now);
        st.target = st.busiest.min(max);
        if !st.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            st.ready.clear();
            st.conn = Some(conn.clone());
        }
        let mut found = None;
        while let Some(mut r) = st.ready.pop_front() {
            if now.duration_since(r.opened) > MAX_AGE {
                continue;
            }
            let Some(mut ch) = r.channel.take() else { continue };
            if closed_at_vm(&mut ch) {
                self.stats.stale.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("a pooled channel was closed at the VM (dockerd restarted?); dropped");
                r.channel = Some(ch);
                continue;
            }
            found = Some(ch);
            break;
        }
        drop(st);
        let counter = if found.is_some() {
            &self.stats.hits
        } else {
            &self.stats.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.refill.notify_one();
        found
    }

    /// Keeps the pool filled for the connection `link` holds, until `cancel`.
    pub async fn run(self: Arc<Self>, mut link: Link, cancel: CancellationToken) {
        self.tasks
            .spawn(self.ping.clone().run(self.path(), link.clone(), cancel.clone()));
        loop {
            // Ticks only while there is something to age or to let go of: an idle pool sleeps.
            let tick = if self.busy() { WINDOW } else { Duration::from_secs(3600) };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.refill.notified() => {}
                changed = link.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep(tick) => {}
            }
            let current = link.borrow().clone().filter(|h| !h.is_closed());
            let opens = self.plan(current.as_ref());
            if let Some(conn) = current {
                for _ in 0..opens {
                    self.tasks.spawn(self.clone().open(conn.clone()));
                }
            }
        }
        if let Ok(mut st) = self.state.lock() {
            st.ready.clear();
            st.target = 0;
        }
    }

    fn busy(&self) -> bool {
        self.state
            .lock()
            .map(|st| st.target > 0 || !st.ready.is_empty() || st.opening > 0)
            .unwrap_or(false)
    }

    /// Ages the pool, follows the connection, and says how many channels to open now.
    fn plan(&self, conn: Option<&Arc<Handle<ClientHandler>>>) -> usize {
        let Ok(mut st) = self.state.lock() else { return 0 };
        let now = Instant::now();
        let same = match (&st.conn, conn) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        if !same {
            // A reconnect: the old connection's channels lead nowhere.
            st.ready.clear();
            st.conn = conn.cloned();
        }
        if st.last_take.is_none_or(|t| now.duration_since(t) >= IDLE) {
            st.target = 0;
            st.busiest = 0;
        }
        st.target = st.target.min(self.max.load(Ordering::Relaxed));
        st.ready.retain(|r| now.duration_since(r.opened) <= MAX_AGE);
        let target = st.target;
        while st.ready.len() > target {
            st.ready.pop_back();
        }
        if conn.is_none() {
            return 0;
        }
        let want = target.saturating_sub(st.ready.len() + st.opening);
        st.opening += want;
        want
    }

    async fn open(self: Arc<Self>, conn: Arc<Handle<ClientHandler>>) {
        let path = self.path();
        let opened = tokio::time::timeout(OPEN_TIMEOUT, conn.channel_open_direct_streamlocal(path.clone())).await;
        let Ok(mut st) = self.state.lock() else { return };
        st.opening = st.opening.saturating_sub(1);
        match opened {
            Ok(Ok(channel)) => {
                let ready = Ready {
                    channel: Some(channel),
                    opened: Instant::now(),
                };
                // Kept only for the connection and path still current, and only while wanted.
                if st.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn))
                    && st.ready.len() < st.target
                    && path == self.path()
                {
                    st.ready.push_back(ready);
                }
            }
            Ok(Err(e)) => tracing::debug!(%path, error = %e, "pooled channel open failed"),
            Err(_) => tracing::debug!(%path, "pooled channel open timed out"),
        }
    }
}

/// Whether this unused channel is unfit to hand out: the VM ended it (EOF or CLOSE queued, or the
/// channel gone), or sent something before any request, which a Docker engine never does. A
/// window adjustment is bookkeeping and skipped.
fn closed_at_vm(ch: &mut Channel<Msg>) -> bool {
    loop {
        match ch.wait().now_or_never() {
            None => return false,
            Some(Some(ChannelMsg::WindowAdjusted { .. })) => {}
            Some(_) => return true,
        }
    }
}

#[cfg(test)]
#[path = "tests/pool.rs"]
mod tests;
