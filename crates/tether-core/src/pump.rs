//! Copies one forwarded stream between a local socket and an SSH channel, with SSH's own flow
//! control: the VM may send only what the local reader has consumed plus the stream's window.
//!
//! Why it is shaped like this: russh's session loop hands each channel's data to that channel's
//! queue. Tether configures those queues so that handing over never waits (see `ssh`), and the
//! patched russh refills a channel's window only when [`flow::Credit`] says so, after the local
//! reader took the bytes. So a reader that stops holds at most its window in memory, its VM-side
//! sender stops, and every other channel, keepalive and rekey of the connection goes on.

use std::sync::Arc;

use bytes::Bytes;
use russh::client::Msg;
use russh::{Channel, ChannelMsg};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::flow::{Budget, Credit};

/// What one stream carried, for logs and stats.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub to_local: u64,
    pub to_remote: u64,
    /// The largest window the stream reached.
    pub peak_window: u64,
}

/// Forwarded streams (SSH channels with a local end) open in this process, for `ping`: what a
/// leak test watches. Process-wide like the task count it sits beside.
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Streams open now in this process.
pub fn live_streams() -> usize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

struct Live;

impl Live {
    fn enter() -> Self {
        LIVE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Runs the stream until both directions are finished or either side fails.
///
/// `half_close` says whether the local end can be closed for writing alone (a socket). A named
/// pipe cannot: there, the VM's end of data closes the whole stream, or a client that reads to
/// the end (an HTTP/1.0 answer) would wait forever.
///
/// `rtt` is the link's round trip in microseconds as last measured (0: unknown), which sizes the
/// download's window (see [`crate::flow`]). `already` is what was read from the local end
/// before the channel opened (a request after pings answered on the laptop); it goes first.
///
/// With `binds` (the Docker socket), the upload follows the client's HTTP requests
/// ([`crate::dockerapi::Framer`]) and container creates go through `binds` first; a create it
/// refuses, or a request that is not HTTP, is answered here and ends the stream.
pub async fn bridge<S>(
    local: S,
    channel: Channel<Msg>,
    budget: Arc<Budget>,
    half_close: bool,
    rtt: Arc<std::sync::atomic::AtomicU64>,
    already: Vec<u8>,
    binds: Option<Arc<dyn crate::dockerapi::Binds>>,
) -> Stats
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let _live = Live::enter();
    let mut answer_open = binds.is_some();
    let (mut local_rd, mut local_wr) = tokio::io::split(local);
    let (mut ch_rd, ch_wr) = channel.split();
    let ch_wr = Arc::new(ch_wr);
    let mut stats = Stats::default();

    // Download: VM to local reader, granting window as the reader consumes. The first grant also
    // switches the channel to consumption-based windows, and goes out before any upload, so it
    // reaches the VM before the request its answer will need the window for.
    let mut credit = Credit::new(budget);
    let first = credit.start();
    let opened = ch_wr.grant_window(first).await.is_ok();
    let down_wr = ch_wr.clone();
    // An answer made here (a refused create) ends the download in its place.
    let (answer_tx, mut answer_rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
    let down = async move {
        let mut sent = 0u64;
        let mut peak = credit.size();
        if !opened {
            let _ = local_wr.shutdown().await;
            return (sent, peak);
        }
        // Idle checks only while the window is above its start: a quiet stream at START (an
        // events stream, `logs -f`) then costs no timer.
        let mut watch_idle = credit.size() > u64::from(crate::flow::START);
        loop {
            let next = async {
                if watch_idle {
                    tokio::time::timeout(crate::flow::IDLE, ch_rd.wait()).await.ok()
                } else {
                    Some(ch_rd.wait().await)
                }
            };
            let got = tokio::select! {
                got = next => got,
                answer = &mut answer_rx, if answer_open => match answer {
                    Ok(bytes) => {
                        let _ = local_wr.write_all(&bytes).await;
                        break;
                    }
                    // The upload ended without an answer of its own (a client's half-close):
                    // the VM's answers go on.
                    Err(_) => {
                        answer_open = false;
                        continue;
                    }
                }
            };
            let msg = match got {
                Some(msg) => msg,
                None => {
                    watch_idle = credit.idle();
                    continue;
                }
            };
            let Some(msg) = msg else { break };
            match msg {
                ChannelMsg::Data { data } => {
                    let n = data.len();
                    credit.received(n);
                    if local_wr.write_all(&data).await.is_err() {
                        break; // the local client is gone
                    }
                    sent += n as u64;
                    let rtt = std::time::Duration::from_micros(rtt.load(std::sync::atomic::Ordering::Relaxed));
                    let grant = credit.consumed_at(n, std::time::Instant::now(), rtt);
                    peak = peak.max(credit.size());
                    watch_idle = credit.size() > u64::from(crate::flow::START);
                    if grant > 0 && down_wr.grant_window(grant).await.is_err() {
                        break;
                    }
                }
                ChannelMsg::Eof if half_close => {
                    // Half-close: the VM finished sending; the local side may still be writing.
                    let _ = local_wr.shutdown().await;
                }
                ChannelMsg::Eof => break,
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        let _ = local_wr.shutdown().await;
        (sent, peak)
    };

    // Upload: local reads to the channel, waiting on the VM's window for this channel only.
    let up_wr = ch_wr.clone();
    let upload = async move {
        let mut framer = binds.map(|b| (crate::dockerapi::Framer::default(), b));
        let mut answer_tx = Some(answer_tx);
        let mut sent = 0u64;
        if !already.is_empty() {
            match send_up(&up_wr, &mut framer, &mut answer_tx, &already).await {
                Some(n) => sent += n,
                None => return sent,
            }
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match local_rd.read(&mut buf).await {
                Ok(0) => {
                    let _ = up_wr.eof().await;
                    break;
                }
                Ok(n) => match send_up(&up_wr, &mut framer, &mut answer_tx, &buf[..n]).await {
                    Some(k) => sent += k,
                    None => break,
                },
                Err(_) => {
                    let _ = up_wr.close().await;
                    break;
                }
            }
        }
        sent
    };

    // The download decides the end; the upload may finish first (local half-close) and must not
    // cut the other direction short.
    tokio::pin!(down, upload);
    let mut up_done = false;
    loop {
        tokio::select! {
            (to_local, peak) = &mut down => {
                stats.to_local = to_local;
                stats.peak_window = peak;
                break;
            }
            to_remote = &mut upload, if !up_done => {
                stats.to_remote = to_remote;
                up_done = true;
            }
        }
    }
    let _ = ch_wr.close().await;
    stats
}

/// Sends what the client wrote up the channel: as it is, or through the Docker API framer.
/// `None` ends the upload (the channel is gone, or the stream was answered here).
async fn send_up(
    up: &russh::ChannelWriteHalf<Msg>,
    framer: &mut Option<(crate::dockerapi::Framer, Arc<dyn crate::dockerapi::Binds>)>,
    answer: &mut Option<tokio::sync::oneshot::Sender<Vec<u8>>>,
    data: &[u8],
) -> Option<u64> {
    use crate::dockerapi::Piece;
    let Some((f, binds)) = framer.as_mut() else {
        up.data_bytes(Bytes::copy_from_slice(data)).await.ok()?;
        return Some(data.len() as u64);
    };
    let mut sent = 0u64;
    for piece in f.feed(data) {
        let bytes = match piece {
            Piece::Pass(b) => b,
            Piece::Create(c) => match crate::dockerapi::create(binds.as_ref(), c).await {
                Ok(b) => Bytes::from(b),
                Err(refusal) => {
                    if let Some(tx) = answer.take() {
                        let _ = tx.send(crate::dockerapi::answer(refusal.status, &refusal.message));
                    }
                    return None;
                }
            },
            Piece::Bad(why) => {
                tracing::warn!(
                    why,
                    "a Docker API client sent a request Tether cannot read; answered 400"
                );
                if let Some(tx) = answer.take() {
                    let _ = tx.send(crate::dockerapi::answer(400, &format!("tether: bad request: {why}")));
                }
                return None;
            }
        };
        if bytes.is_empty() {
            continue;
        }
        sent += bytes.len() as u64;
        up.data_bytes(bytes).await.ok()?;
    }
    Some(sent)
}
