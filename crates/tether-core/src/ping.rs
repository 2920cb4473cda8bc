//! Docker's `GET /_ping` and `HEAD /_ping`, answered on the laptop with the engine's own answer.
//!
//! Why: the docker CLI pings before its first request of every command, to agree the API version,
//! and then waits for the answer. At 20 ms from the VM that is a fifth of a `docker ps`, and an IDE
//! polling the engine pings every few seconds. The answer describes the engine, not the moment:
//! API version, OS type, experimental, builder version, and (newer engines) the swarm state.
//!
//! Exactness: an answer is served only while it is known to be current. The watcher learns it
//! on the VM, then subscribes to the engine's `daemon` events since the second the answer was
//! made (the engine replays its recent events to a late subscriber), so nothing between learning
//! and watching is missed. A daemon
//! event (a configuration reload), the end of that stream (dockerd stopped or restarted), a new
//! SSH connection, or turning the setting off forgets the answer at once; the next ping goes to
//! the VM. Served bytes are the engine's own, byte for byte, but for the `Date` header, which
//! carries the laptop's clock. The `Swarm` header (newer engines) changes with `docker swarm
//! init/join/leave` without any daemon event, so an answer that has one is learned again every
//! [`REFRESH`] while pings arrive: there, and only there, a swarm change can trail by that much.
//!
//! Only the plainest request is answered: HTTP/1.1, no query, no body, no `Connection` or
//! `Upgrade` header, the unversioned path (a versioned one is checked against the engine's
//! supported range, so it goes to the VM). Anything else, and the engine's own health checks,
//! which must measure the real thing, go to the VM as before.
//!
//! Cost to the VM: one idle events connection on dockerd's socket while pings arrive, dropped
//! after [`WATCH_IDLE`] without one, so an idle engine holds none.
//!
//! Longer than 500 lines on purpose: learning the answer, watching for what makes it stale and
//! serving it are one cache whose exactness rests on their order, so they are read together.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use russh::ChannelMsg;
use russh::client::Handle;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ssh::ClientHandler;

type Link = tokio::sync::watch::Receiver<Option<Arc<Handle<ClientHandler>>>>;

/// Without a ping for this long, the watcher lets its events connection go.
pub const WATCH_IDLE: Duration = Duration::from_secs(600);
/// An answer with a `Swarm` header is learned again this often while pings arrive.
pub const REFRESH: Duration = Duration::from_secs(2);
/// How long learning may take before it is abandoned.
const LEARN_TIMEOUT: Duration = Duration::from_secs(10);
/// A request head longer than this is nobody's ping.
const MAX_HEAD: usize = 8 * 1024;

/// One learned answer: the engine's bytes, split where the `Date` value goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    before_date: Vec<u8>,
    /// Everything after the `Date` value; `None` if the engine sent no `Date`.
    after_date: Option<Vec<u8>>,
    /// The engine's `Date`: when it made this answer, by the VM's clock.
    date: Option<SystemTime>,
}

impl Answer {
    /// Splits a complete answer (head and body) around its `Date` value.
    pub fn new(raw: &[u8]) -> Answer {
        let Some(head_end) = find(raw, b"\r\n\r\n") else {
            return Answer {
                before_date: raw.to_vec(),
                after_date: None,
                date: None,
            };
        };
        let mut at = 0;
        for line in raw[..head_end].split(|&b| b == b'\n') {
            let start = at;
            at += line.len() + 1;
            if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"date:") {
                let value_start = start + 5 + line[5..].iter().take_while(|b| **b == b' ').count();
                let value_end = start + line.len() - usize::from(line.ends_with(b"\r"));
                let date = std::str::from_utf8(&raw[value_start..value_end])
                    .ok()
                    .and_then(|v| httpdate::parse_http_date(v).ok());
                return Answer {
                    before_date: raw[..value_start].to_vec(),
                    after_date: Some(raw[value_end..].to_vec()),
                    date,
                };
            }
        }
        Answer {
            before_date: raw.to_vec(),
            after_date: None,
            date: None,
        }
    }

    /// The answer as sent now.
    pub fn render(&self, now: SystemTime) -> Vec<u8> {
        let mut out = self.before_date.clone();
        if let Some(after) = &self.after_date {
            out.extend_from_slice(httpdate::fmt_http_date(now).as_bytes());
            out.extend_from_slice(after);
        }
        out
    }

    /// Whether the answer's head has header `name` (lower case).
    fn has_header(&self, name: &[u8]) -> bool {
        let all = self.render(SystemTime::UNIX_EPOCH);
        let head = find(&all, b"\r\n\r\n").map_or(&all[..], |end| &all[..end]);
        head.split(|&b| b == b'\n')
            .any(|l| l.len() > name.len() && l[..name.len()].eq_ignore_ascii_case(name) && l[name.len()] == b':')
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What the start of a connection's bytes is.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// A ping this cache may answer; the request is `len` bytes long.
    Ping { head: bool, len: usize },
    /// Not yet known: more bytes are needed.
    Partial,
    /// Anything else: goes to the VM.
    Other,
}

/// Classifies the bytes a client sent first, without waiting for more than a ping's head.
pub fn classify(buf: &[u8]) -> Request {
    const GET: &[u8] = b"GET /_ping ";
    const HEAD: &[u8] = b"HEAD /_ping ";
    let could_be = |p: &[u8]| {
        let n = buf.len().min(p.len());
        buf[..n] == p[..n]
    };
    if !could_be(GET) && !could_be(HEAD) {
        return Request::Other;
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Request::Partial,
        _ => return Request::Other,
    };
    if req.path != Some("/_ping") || req.version != Some(1) {
        return Request::Other;
    }
    let plain = req.headers.iter().all(|h| {
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "content-length" => h.value == b"0",
            "transfer-encoding" | "connection" | "upgrade" | "expect" | "te" => false,
            _ => true,
        }
    });
    if !plain {
        return Request::Other;
    }
    Request::Ping {
        head: req.method == Some("HEAD"),
        len,
    }
}

/// The engine's answers to both pings.
#[derive(Debug)]
struct Answers {
    get: Answer,
    head: Answer,
    /// The answer changes without a daemon event (the `Swarm` header), so it is relearned.
    refresh: bool,
}

struct State {
    /// The SSH connection the answers were learned on and are watched through.
    conn: Option<Arc<Handle<ClientHandler>>>,
    answers: Option<Arc<Answers>>,
    last_ping: Option<Instant>,
}

/// Learned ping answers of one forwarded Docker socket.
pub struct PingCache {
    /// `settings.docker_ping_cache`.
    on: Arc<AtomicBool>,
    state: Mutex<State>,
    /// A ping arrived while nothing was learned.
    demand: Notify,
    /// Pings answered here.
    pub answered: AtomicU64,
    /// Times a learned answer was forgotten because the engine changed or went away.
    pub forgotten: AtomicU64,
}

/// How a connection's pings went.
pub enum Served {
    /// The client left (or the forward stopped) after pings alone.
    Done,
    /// The first request that is not answered here, and whatever followed it, for the VM.
    Rest(Vec<u8>),
}

impl PingCache {
    pub fn new(on: Arc<AtomicBool>) -> PingCache {
        PingCache {
            on,
            state: Mutex::new(State {
                conn: None,
                answers: None,
                last_ping: None,
            }),
            demand: Notify::new(),
            answered: AtomicU64::new(0),
            forgotten: AtomicU64::new(0),
        }
    }

    /// Whether an answer is held for `conn` now.
    pub fn ready(&self) -> bool {
        self.state.lock().map(|s| s.answers.is_some()).unwrap_or(false)
    }

    fn answers_for(&self, conn: &Arc<Handle<ClientHandler>>) -> Option<Arc<Answers>> {
        if !self.on.load(Ordering::Relaxed) || conn.is_closed() {
            return None;
        }
        let st = self.state.lock().ok()?;
        st.conn.as_ref().filter(|c| Arc::ptr_eq(c, conn))?;
        st.answers.clone()
    }

    fn forget(&self) {
        if let Ok(mut st) = self.state.lock()
            && st.answers.take().is_some()
        {
            self.forgotten.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Answers the pings a new connection starts with, for as long as it sends only pings and
    /// the answer stays current. Nothing is read beyond the first request that is not answered.
    pub async fn serve<S>(
        &self,
        stream: &mut S,
        conn: &Arc<Handle<ClientHandler>>,
        cancel: &CancellationToken,
    ) -> Served
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 4096];
        loop {
            match classify(&buf) {
                Request::Ping { head, len } => {
                    if let Ok(mut st) = self.state.lock() {
                        st.last_ping = Some(Instant::now());
                    }
                    let Some(answers) = self.answers_for(conn) else {
                        self.demand.notify_one();
                        return Served::Rest(buf);
                    };
                    let answer = if head { &answers.head } else { &answers.get };
                    if stream.write_all(&answer.render(SystemTime::now())).await.is_err() {
                        return Served::Done;
                    }
                    self.answered.fetch_add(1, Ordering::Relaxed);
                    buf.drain(..len);
                    continue;
                }
                Request::Other => return Served::Rest(buf),
                Request::Partial => {}
            }
            // Between requests the client may keep the connection for its next one. Nothing is
            // open on the VM for it yet, so it outlives a reconnect; its next ping is checked
            // against the new connection.
            let read = tokio::select! {
                r = stream.read(&mut chunk) => r,
                _ = cancel.cancelled() => return Served::Done,
            };
            match read {
                Ok(0) | Err(_) if buf.is_empty() => return Served::Done,
                // A request cut short: let the VM see exactly what the client sent.
                Ok(0) | Err(_) => return Served::Rest(buf),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Learns and watches the answers of the Docker socket at `path`, while pings arrive.
    pub async fn run(self: Arc<Self>, path: String, mut link: Link, cancel: CancellationToken) {
        tracing::debug!(%path, "ping watcher up");
        let mut failures = 0u32;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.demand.notified() => {}
            }
            self.watch(&path, &mut link, &cancel, &mut failures).await;
            self.forget();
            if cancel.is_cancelled() {
                break;
            }
            // An engine that cannot be learned (a proxy without events, say) is not asked again
            // by every ping: half a second, doubling with each failure, up to a minute.
            let pause = Duration::from_millis(500)
                .saturating_mul(1 << failures.min(7))
                .min(Duration::from_secs(60));
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        self.forget();
    }

    /// One watch: learns, then holds the answers until something may have changed them.
    async fn watch(&self, path: &str, link: &mut Link, cancel: &CancellationToken, failures: &mut u32) {
        loop {
            if !self.on.load(Ordering::Relaxed) {
                return;
            }
            // Marks the link seen: only a change after this one ends the watch.
            let Some(conn) = link.borrow_and_update().clone().filter(|h| !h.is_closed()) else {
                return;
            };
            tracing::debug!(%path, "learning the engine's ping answer");
            let learned = tokio::time::timeout(LEARN_TIMEOUT, learn(&conn, path)).await;
            let (mut events, answers) = match learned {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => {
                    *failures += 1;
                    tracing::debug!(error = %e, "cannot learn the engine's ping answer");
                    return;
                }
                Err(_) => {
                    *failures += 1;
                    tracing::debug!("learning the engine's ping answer timed out");
                    return;
                }
            };
            *failures = 0;
            let refresh = answers.refresh;
            if let Ok(mut st) = self.state.lock() {
                st.conn = Some(conn.clone());
                st.answers = Some(Arc::new(answers));
            }
            loop {
                let tick = if refresh { REFRESH } else { WATCH_IDLE };
                let changed = tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = link.changed() => {
                        let same = link.borrow_and_update().as_ref().is_some_and(|h| Arc::ptr_eq(h, &conn) && !h.is_closed());
                        if !same {
                            return;
                        }
                        false
                    }
                    msg = events.wait() => !matches!(msg, Some(ChannelMsg::WindowAdjusted { .. })),
                    _ = tokio::time::sleep(tick) => {
                        let last = self.state.lock().ok().and_then(|s| s.last_ping);
                        if last.is_none_or(|t| t.elapsed() >= WATCH_IDLE) || !self.on.load(Ordering::Relaxed) {
                            let _ = events.close().await;
                            return;
                        }
                        if refresh {
                            match tokio::time::timeout(LEARN_TIMEOUT, fetch_pings(&conn, path)).await {
                                Ok(Ok((get, head))) => {
                                    if let Ok(mut st) = self.state.lock() {
                                        st.answers = Some(Arc::new(Answers { get, head, refresh }));
                                    }
                                    false
                                }
                                _ => true,
                            }
                        } else {
                            false
                        }
                    }
                };
                if changed {
                    tracing::debug!("the Docker engine changed or went away; its ping answer is forgotten");
                    self.forget();
                    let _ = events.close().await;
                    // The engine may still be settling (a reload); learn again after a moment.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum LearnError {
    #[error("channel: {0}")]
    Ssh(#[from] russh::Error),
    #[error("reading: {0}")]
    Io(#[from] std::io::Error),
    #[error("the engine answered `{0}`")]
    Status(String),
    #[error("the engine's answer ended early")]
    Short,
}

/// Asks for both pings, then subscribes to daemon events since the second they were made, so a
/// change after they were made shows up on the returned channel.
async fn learn(
    conn: &Arc<Handle<ClientHandler>>,
    path: &str,
) -> Result<(russh::Channel<russh::client::Msg>, Answers), LearnError> {
    let (get, head) = fetch_pings(conn, path).await?;
    // Events from the second the answer was made on (the engine keeps its recent events for
    // late subscribers); without a `Date`, from the moment of subscribing.
    let since = get
        .date
        .and_then(|d| d.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| format!("since={}&", d.as_secs()))
        .unwrap_or_default();
    let mut events = conn.channel_open_direct_streamlocal(path).await?;
    let filters = "%7B%22type%22%3A%7B%22daemon%22%3Atrue%7D%7D";
    let req = format!("GET /events?{since}filters={filters} HTTP/1.1\r\nHost: docker\r\n\r\n");
    events.data(req.as_bytes()).await?;
    // The head arrives at once (the engine flushes it before any event). Anything after it in
    // the same read is an event: answers learned under it are already stale.
    let mut got = Vec::new();
    loop {
        match events.wait().await {
            Some(ChannelMsg::Data { data }) => got.extend_from_slice(&data),
            Some(ChannelMsg::WindowAdjusted { .. }) => continue,
            _ => return Err(LearnError::Short),
        }
        if let Some(end) = find(&got, b"\r\n\r\n") {
            let status = status_line(&got);
            if !status.contains(" 200 ") {
                return Err(LearnError::Status(status));
            }
            if got.len() > end + 4 {
                return Err(LearnError::Status("an event at once".into()));
            }
            break;
        }
        if got.len() > MAX_HEAD {
            return Err(LearnError::Short);
        }
    }
    let refresh = get.has_header(b"swarm");
    Ok((events, Answers { get, head, refresh }))
}

/// `HEAD /_ping` then `GET /_ping` on one fresh channel, as the engine answers them.
async fn fetch_pings(conn: &Arc<Handle<ClientHandler>>, path: &str) -> Result<(Answer, Answer), LearnError> {
    let channel = conn.channel_open_direct_streamlocal(path).await?;
    let mut stream = channel.into_stream();
    let mut buf = Vec::new();
    stream
        .write_all(b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
        .await?;
    let head = read_answer(&mut stream, &mut buf, true).await?;
    stream.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n").await?;
    let get = read_answer(&mut stream, &mut buf, false).await?;
    let _ = stream.shutdown().await;
    Ok((Answer::new(&get), Answer::new(&head)))
}

/// Reads one whole answer (head, and the body its `Content-Length` says) off `stream`.
async fn read_answer<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    head_only: bool,
) -> Result<Vec<u8>, LearnError> {
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            resp.parse(&buf[..end + 4]).map_err(|_| LearnError::Short)?;
            if resp.code != Some(200) {
                return Err(LearnError::Status(status_line(buf)));
            }
            let body = if head_only {
                0
            } else {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
                    .ok_or(LearnError::Status("an answer without Content-Length".into()))?
            };
            let total = end + 4 + body;
            if buf.len() >= total {
                return Ok(buf.drain(..total).collect());
            }
        }
        if buf.len() > MAX_HEAD {
            return Err(LearnError::Short);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(LearnError::Short);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn status_line(buf: &[u8]) -> String {
    let line = buf.split(|&b| b == b'\r').next().unwrap_or_default();
    String::from_utf8_lossy(line).into_owned()
}

#[cfg(test)]
#[path = "tests/ping.rs"]
mod tests;
