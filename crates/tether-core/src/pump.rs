//! Copies one forwarded stream between a local socket and an SSH channel without ever letting a
//! slow local reader stall the shared SSH connection.
//!
//! Why this exists: russh delivers a channel's data by awaiting a send into that channel's
//! bounded queue from the connection's single session loop, and it refills the peer's window as
//! soon as data arrives rather than when it is consumed. A local client that stops reading would
//! fill its queue, park the session loop, and with it every other channel, the liveness probe,
//! keepalives and rekeys.
//!
//! So each stream gets a *drain* that takes every message off the channel the moment russh
//! offers it and appends it to the stream's own unbounded buffer, which a separate *deliver*
//! future writes to the local socket at whatever pace the local reader allows. The session loop
//! therefore never waits on a local reader. The price is memory for a reader that stops: the
//! buffer is capped per stream ([`Limits::max_buffered`]); past the cap the stream alone is closed
//! with a logged reason, which is what a stalled reader cannot tell apart from anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use russh::client::Msg;
use russh::{Channel, ChannelMsg};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Per-stream limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes received from the VM but not yet taken by the local reader, before the stream is
    /// given up. Generous: `docker save | slow-consumer` must survive.
    pub max_buffered: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_buffered: 512 * 1024 * 1024 }
    }
}

/// What one stream carried, for logs and stats.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub to_local: u64,
    pub to_remote: u64,
    /// The stream was closed because its local reader fell too far behind.
    pub overflowed: bool,
}

enum Piece {
    Data(Bytes),
    Eof,
}

/// Runs the stream until both directions are finished or either side fails.
pub async fn bridge<S>(local: S, channel: Channel<Msg>, limits: Limits) -> Stats
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut local_rd, mut local_wr) = tokio::io::split(local);
    let (mut ch_rd, ch_wr) = channel.split();
    let ch_wr = Arc::new(ch_wr);
    let (tx, mut rx) = mpsc::unbounded_channel::<Piece>();
    let buffered = Arc::new(AtomicUsize::new(0));
    let mut stats = Stats::default();

    // Drain: never awaits anything but the channel itself.
    let drain_buffered = buffered.clone();
    let drain_wr = ch_wr.clone();
    let drain = async move {
        let mut overflowed = false;
        while let Some(msg) = ch_rd.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    let n = data.len();
                    if drain_buffered.fetch_add(n, Ordering::Relaxed) + n > limits.max_buffered {
                        tracing::warn!(
                            channel = ?drain_wr.id(),
                            buffered = drain_buffered.load(Ordering::Relaxed),
                            "local reader stopped reading; closing this stream so the connection stays healthy"
                        );
                        overflowed = true;
                        let _ = drain_wr.close().await;
                        break;
                    }
                    if tx.send(Piece::Data(data)).is_err() {
                        break; // local side is gone
                    }
                }
                ChannelMsg::Eof => {
                    let _ = tx.send(Piece::Eof);
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        overflowed
    };

    // Deliver: local writes at the local reader's pace.
    let deliver_buffered = buffered.clone();
    let deliver = async move {
        let mut sent = 0u64;
        while let Some(piece) = rx.recv().await {
            match piece {
                Piece::Data(data) => {
                    let n = data.len();
                    let res = local_wr.write_all(&data).await;
                    deliver_buffered.fetch_sub(n, Ordering::Relaxed);
                    if res.is_err() {
                        break;
                    }
                    sent += n as u64;
                }
                Piece::Eof => {
                    // Half-close: the VM finished sending; the local side may still be writing.
                    let _ = local_wr.shutdown().await;
                }
            }
        }
        let _ = local_wr.shutdown().await;
        sent
    };

    // Upload: local reads to the channel, waiting on the peer's window (per channel, in this task).
    let up_wr = ch_wr.clone();
    let upload = async move {
        let mut sent = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match local_rd.read(&mut buf).await {
                Ok(0) => {
                    let _ = up_wr.eof().await;
                    break;
                }
                Ok(n) => {
                    if up_wr.data_bytes(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                    sent += n as u64;
                }
                Err(_) => {
                    let _ = up_wr.close().await;
                    break;
                }
            }
        }
        sent
    };

    // Drain and deliver end together (the drain's sender drop ends delivery); upload may finish
    // first (local half-close) and must not cut the other direction short.
    let down = async { tokio::join!(drain, deliver) };
    tokio::pin!(down, upload);
    let mut up_done = false;
    loop {
        tokio::select! {
            (overflowed, to_local) = &mut down => {
                stats.overflowed = overflowed;
                stats.to_local = to_local;
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
