//! Local listeners for the forwarded Docker socket and TCP port tunnels.
//!
//! Listeners belong to the session, not to one SSH connection: they stay bound across reconnects.
//! Each accepted connection waits briefly for a live link, opens one SSH channel and hands both
//! to [`crate::pump::bridge`]. While the VM is away a client is answered within
//! [`LINK_WAIT`] — for the Docker socket with an HTTP error the docker CLI prints — never left
//! hanging.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use russh::client::Handle;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::endpoint::{self, BindError};
use crate::flow;
use crate::paths::{self, PathError};
use crate::pump;
use crate::ssh::{self, ClientHandler};

/// How long a new local connection waits for the VM while it reconnects.
pub const LINK_WAIT: Duration = Duration::from_secs(5);
/// Timeout for opening one SSH channel.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(
        "port {port} is in use on this laptop{holder}; pick another local port (e.g. -p {alt}:{remote}) or stop that program"
    )]
    PortInUse {
        port: u16,
        remote: u16,
        alt: u16,
        holder: String,
    },
    #[error(
        "port {port} is privileged: binding it needs root or CAP_NET_BIND_SERVICE on this laptop; use a port of 1024 or above, e.g. -p {alt}:{remote}"
    )]
    Privileged { port: u16, remote: u16, alt: u16 },
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("{path} is a live socket of another process; stop it (another Tether?) or remove the file by hand")]
    SocketInUse { path: PathBuf },
    #[error("{path} exists and is not a socket; Tether will not remove it: move it away")]
    NotASocket { path: PathBuf },
    #[error("cannot create socket {path}: {source}")]
    Socket { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Path(#[from] PathError),
}

/// The current SSH link of a session: `None` while disconnected or reconnecting.
pub type Link = watch::Receiver<Option<Arc<Handle<ClientHandler>>>>;

/// Why the VM is not reachable right now (shown to clients), and since when.
#[derive(Debug, Clone)]
pub struct Down {
    pub reason: String,
    pub since: std::time::Instant,
}

pub type DownReason = watch::Receiver<Down>;

/// A client arriving during an outage is held only while the outage is young (a blip may heal
/// in a moment); later arrivals get their answer almost at once, so a docker command that makes
/// several requests does not wait [`LINK_WAIT`] for each.
const LATE_WAIT: Duration = Duration::from_millis(500);

/// Binds the local Docker socket: private to this user, inside a 0700 directory, replacing
/// only a stale socket.
pub fn bind_local(path: &Path) -> Result<endpoint::Listener, ForwardError> {
    paths::check_socket_path(path)?;
    if let Some(dir) = path.parent().filter(|_| endpoint::IN_FILESYSTEM) {
        paths::ensure_private_dir(dir)?;
    }
    let path_buf = path.to_path_buf();
    endpoint::bind(path).map_err(|e| match e {
        BindError::InUse => ForwardError::SocketInUse { path: path_buf },
        BindError::NotASocket => ForwardError::NotASocket { path: path_buf },
        BindError::Io(source) => ForwardError::Socket { path: path_buf, source },
    })
}

/// Binds a tunnel's local port on 127.0.0.1, non-blocking.
///
/// BSD sockets (macOS) let a bind to a specific address succeed over another process's
/// wildcard listener on the same port when SO_REUSEADDR is set, as std's `TcpListener::bind`
/// does: a tunnel on 127.0.0.1:5432 would then take the local clients of a Postgres listening
/// on every address. So SO_REUSEADDR is set only on Linux, which refuses that bind either way
/// and where it lets a restarted engine rebind a port still in TIME_WAIT.
pub fn bind_loopback(port: u16) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(target_os = "linux")]
    sock.set_reuse_address(true)?;
    sock.bind(&std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)).into())?;
    sock.listen(1024)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// Turns a failed bind of a tunnel's local port into an error that names the holder or the fix.
pub fn classify_bind_error(port: u16, remote: u16, e: std::io::Error) -> ForwardError {
    let alt = if port < 1024 {
        port as u32 + crate::ports::PRIVILEGED_OFFSET as u32
    } else {
        port as u32 + 1
    }
    .min(65535) as u16;
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            let holder = match listeners::get_process_by_port(port, listeners::Protocol::TCP) {
                Ok(p) => format!(" by pid {} ({})", p.pid, p.name),
                Err(_) => String::new(),
            };
            ForwardError::PortInUse {
                port,
                remote,
                alt,
                holder,
            }
        }
        std::io::ErrorKind::PermissionDenied if port < 1024 => ForwardError::Privileged { port, remote, alt },
        _ => ForwardError::Bind { port, source: e },
    }
}

/// Where a forward's channels lead on the VM.
#[derive(Debug, Clone)]
pub enum Remote {
    /// `direct-streamlocal@openssh.com` to a Unix socket path.
    Socket(String),
    /// `direct-tcpip` to the VM's loopback.
    Tcp(u16),
}

impl Remote {
    fn describe(&self) -> String {
        match self {
            Remote::Socket(p) => format!("the Docker socket {p}"),
            Remote::Tcp(p) => format!("port {p} on the VM"),
        }
    }
}

/// Live counters of one forward, shared with status reporting.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub active: AtomicU64,
    pub failed: AtomicU64,
    /// Connections admitted and not yet finished (waiting for the link, opening, or open).
    pub held: AtomicU64,
    /// Connections refused for being over the limit.
    pub refused: AtomicU64,
}

/// What every forward of an engine shares: the window budget, the stream limit, and the engine's
/// tasks, which every task a forward spawns joins.
#[derive(Clone)]
pub struct Shared {
    /// Window bytes shared by every stream of the engine.
    pub budget: Arc<flow::Budget>,
    /// Most connections one forward carries at once (`settings.max_streams`).
    pub max_streams: Arc<std::sync::atomic::AtomicUsize>,
    /// Most pre-opened channels per Docker socket (`settings.docker_pool`).
    pub docker_pool: Arc<std::sync::atomic::AtomicUsize>,
    /// Whether pings are answered on the laptop (`settings.docker_ping_cache`).
    pub ping_cache: Arc<std::sync::atomic::AtomicBool>,
    /// Every task of the engine, awaited when it stops.
    pub tasks: crate::tasks::Tasks,
}

impl Shared {
    /// Takes the limits from the settings; running forwards follow at once.
    pub fn apply(&self, settings: &crate::config::Settings) {
        self.max_streams
            .store(settings.max_streams.max(1) as usize, Ordering::Relaxed);
        self.docker_pool.store(settings.docker_pool as usize, Ordering::Relaxed);
        self.ping_cache.store(settings.docker_ping_cache, Ordering::Relaxed);
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            budget: Arc::default(),
            max_streams: Arc::new(std::sync::atomic::AtomicUsize::new(
                crate::config::DEFAULT_MAX_STREAMS as usize,
            )),
            docker_pool: Arc::new(std::sync::atomic::AtomicUsize::new(
                crate::config::DEFAULT_DOCKER_POOL as usize,
            )),
            ping_cache: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            tasks: crate::tasks::Tasks::default(),
        }
    }
}

/// A slot among a forward's connections, given back when the connection ends.
pub(crate) struct Held(Arc<Counters>);

/// A connection turned away for being over the limit: the count of refusals so far, and whether
/// this one is worth a log line (the first, then every 1000th: a flood must not fill the log too).
pub(crate) struct Refused {
    pub(crate) count: u64,
    pub(crate) log: bool,
}

/// Holds one more connection on `counters` if fewer than `limit` are held, until the `Held`
/// is dropped; otherwise counts a refusal. Forwards and reverse tunnels share the rule.
pub(crate) fn hold(counters: &Arc<Counters>, limit: u64) -> Result<Held, Refused> {
    if counters.held.fetch_add(1, Ordering::Relaxed) >= limit {
        counters.held.fetch_sub(1, Ordering::Relaxed);
        let count = counters.refused.fetch_add(1, Ordering::Relaxed) + 1;
        return Err(Refused {
            count,
            log: count == 1 || count.is_multiple_of(1000),
        });
    }
    Ok(Held(counters.clone()))
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Everything a serve loop needs.
#[derive(Clone)]
pub struct ForwardCtx {
    pub remote: Remote,
    pub link: Link,
    pub down_reason: DownReason,
    pub counters: Arc<Counters>,
    /// Window budget and stream limit, shared by every forward of the engine.
    pub shared: Shared,
    /// Where this forward listens, for log lines ("127.0.0.1:3000", the socket's path).
    pub local: String,
    pub cancel: CancellationToken,
    /// Diagnoses a failed Docker socket open (runs on the VM), e.g. "engine not running".
    pub diagnose: Option<Diagnose>,
    /// Channels opened ahead of demand (the Docker socket only).
    pub pool: Option<Arc<crate::pool::Pool>>,
    /// The link's round trip as last measured, in microseconds (0: unknown); sizes windows.
    pub rtt: Arc<AtomicU64>,
    /// Container creates' bind mounts of laptop folders (the Docker socket only).
    pub binds: Option<Arc<dyn crate::dockerapi::Binds>>,
}

/// Explains, by asking the VM, why its Docker socket could not be opened.
pub type Diagnose =
    Arc<dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>> + Send + Sync>;

/// Accept loop for the local Docker socket.
pub async fn serve_local(listener: endpoint::Listener, ctx: ForwardCtx) {
    serve(ctx, "docker socket", endpoint::HALF_CLOSE, || async {
        let stream = endpoint::accept(&listener).await?;
        let own = endpoint::from_this_process(&stream);
        Ok((stream, own))
    })
    .await
}

/// Accept loop for a TCP listener.
pub async fn serve_tcp(listener: TcpListener, ctx: ForwardCtx) {
    serve(ctx, "tunnel", true, || async {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true).ok();
        Ok((stream, false))
    })
    .await
}

/// Hands each accepted connection to its own task until the forward is cancelled. A failed
/// accept (out of file descriptors, say) is logged and retried after a pause, never a spin.
async fn serve<S, F>(ctx: ForwardCtx, what: &str, half_close: bool, mut accept: impl FnMut() -> F)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    F: std::future::Future<Output = std::io::Result<(S, bool)>>,
{
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            res = accept() => match res {
                Ok((stream, own)) => { ctx.shared.tasks.spawn(handle(stream, ctx.clone(), half_close, own)); }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed on {what}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn wait_link(mut link: Link, down: &DownReason) -> Option<Arc<Handle<ClientHandler>>> {
    let now = std::time::Instant::now();
    let deadline = (down.borrow().since + LINK_WAIT).max(now + LATE_WAIT);
    let got = tokio::time::timeout(
        deadline - now,
        link.wait_for(|l| l.as_ref().is_some_and(|h| !h.is_closed())),
    )
    .await;
    match got {
        Ok(Ok(l)) => l.clone(),
        _ => None,
    }
}

/// Serves one accepted connection; `own` marks the engine's own Docker client (health, events),
/// which neither counts as demand for pre-opened channels nor takes one.
async fn handle<S>(mut stream: S, ctx: ForwardCtx, half_close: bool, own: bool)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    ctx.counters.accepted.fetch_add(1, Ordering::Relaxed);
    let limit = ctx.shared.max_streams.load(Ordering::Relaxed) as u64;
    let held = match hold(&ctx.counters, limit) {
        Ok(h) => h,
        Err(refused) => {
            if refused.log {
                tracing::warn!(
                    local = %ctx.local,
                    limit,
                    refused = refused.count,
                    "refused a connection to {}: {limit} connections are already open on {} \
                     (settings.max_streams in the config raises the limit)",
                    ctx.remote.describe(),
                    ctx.local
                );
            }
            let msg = format!(
                "{limit} connections are already open on this forward; close some, or raise settings.max_streams in Tether's config"
            );
            refuse(&mut stream, &ctx.remote, 503, &msg, &[]).await;
            return;
        }
    };
    let _held = held;
    let Some(mut handle) = wait_link(ctx.link.clone(), &ctx.down_reason).await else {
        let reason = ctx.down_reason.borrow().reason.clone();
        ctx.counters.failed.fetch_add(1, Ordering::Relaxed);
        refuse(&mut stream, &ctx.remote, 503, &reason, &[]).await;
        return;
    };
    // The docker CLI's pings are answered here while the engine's answer is known; the first
    // other request, as the client sent it, goes to the VM ahead of the rest of the stream.
    let mut first = Vec::new();
    let pool = ctx.pool.as_ref().filter(|_| !own);
    if let Some(pool) = pool {
        match pool.ping.serve(&mut stream, &handle, &ctx.cancel).await {
            crate::ping::Served::Done => return,
            crate::ping::Served::Rest(rest) => first = rest,
        }
        // A kept connection may have outlived the SSH connection it was accepted on.
        if handle.is_closed() {
            match wait_link(ctx.link.clone(), &ctx.down_reason).await {
                Some(h) => handle = h,
                None => {
                    let reason = ctx.down_reason.borrow().reason.clone();
                    ctx.counters.failed.fetch_add(1, Ordering::Relaxed);
                    refuse(&mut stream, &ctx.remote, 503, &reason, &first).await;
                    return;
                }
            }
        }
    }
    let pooled = pool.and_then(|p| p.take(&handle));
    let open = async {
        if let Some(channel) = pooled {
            return Ok(channel);
        }
        match &ctx.remote {
            Remote::Socket(path) => handle.channel_open_direct_streamlocal(path.clone()).await,
            Remote::Tcp(port) => {
                handle
                    .channel_open_direct_tcpip("127.0.0.1", *port as u32, "127.0.0.1", 0)
                    .await
            }
        }
    };
    let channel = match tokio::time::timeout(OPEN_TIMEOUT, open).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            ctx.counters.failed.fetch_add(1, Ordering::Relaxed);
            let mut msg = ssh::describe_open_failure(&e, &ctx.remote.describe());
            if let (Some(diag), Remote::Socket(path)) = (&ctx.diagnose, &ctx.remote)
                && matches!(
                    e,
                    russh::Error::ChannelOpenFailure(russh::ChannelOpenFailure::ConnectFailed)
                )
            {
                msg = diag(path.clone()).await;
            }
            tracing::warn!(remote = %ctx.remote.describe(), error = %msg, "channel open failed");
            refuse(&mut stream, &ctx.remote, 502, &msg, &first).await;
            return;
        }
        Err(_) => {
            ctx.counters.failed.fetch_add(1, Ordering::Relaxed);
            let msg = format!(
                "the VM did not open {} within {} s",
                ctx.remote.describe(),
                OPEN_TIMEOUT.as_secs()
            );
            refuse(&mut stream, &ctx.remote, 504, &msg, &first).await;
            return;
        }
    };
    ctx.counters.active.fetch_add(1, Ordering::Relaxed);
    let stats = pump::bridge(
        stream,
        channel,
        ctx.shared.budget.clone(),
        half_close,
        ctx.rtt.clone(),
        first,
        ctx.binds.clone(),
    )
    .await;
    ctx.counters.active.fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(?stats, remote = %ctx.remote.describe(), "stream finished");
}

/// Tells a local client why it cannot be served. Docker clients speak HTTP, so they get an HTTP
/// error with a JSON message the docker CLI prints as "Error response from daemon: …"; a plain
/// TCP client just sees the connection close. `read` is what was already read of the request.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    remote: &Remote,
    status: u16,
    message: &str,
    read: &[u8],
) {
    if let Remote::Socket(_) = remote {
        // Read the request head first: answering before the client finished writing would make
        // it see a reset instead of our message.
        let mut head = read.to_vec();
        let mut buf = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tokio::io::AsyncReadExt::read(stream, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        let body = serde_json::json!({ "message": format!("tether: {message}") }).to_string();
        let reason = match status {
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "Bad Gateway",
        };
        let resp = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(resp.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}

#[cfg(test)]
#[path = "tests/forward.rs"]
mod tests;
