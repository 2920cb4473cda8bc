//! A TCP relay that holds every byte for a fixed time in each direction, so the lab has a path
//! with a real round-trip time (`tc netem` is not available on this kernel). Bandwidth is not
//! limited; each direction keeps at most [`IN_FLIGHT`] bytes on the way, like a link's queue,
//! and only then stops reading, so the sender's own flow control (SSH windows) is what a long
//! fat link tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

/// Bytes on the way per direction: 64 MiB carries 640 MB/s at 100 ms one way.
pub const IN_FLIGHT: usize = 64 << 20;

/// A running relay; it stops when dropped.
pub struct Relay {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Relay {
    /// Listens on 127.0.0.1 (a free port) and relays each connection to `target`, delaying each
    /// direction by `one_way` (so a round trip gains twice that).
    pub fn start(target: SocketAddr, one_way: Duration) -> Relay {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("relay runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("relay listener");
        let addr = listener.local_addr().expect("relay address");
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(delayed(cr, sw, one_way), delayed(sr, cw, one_way));
                });
            }
        });
        Relay {
            addr,
            runtime: Some(runtime),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A chunk read at one moment, due at another; `None` is the end of the stream.
type Due = (Instant, Option<(Vec<u8>, OwnedSemaphorePermit)>);

/// Copies `from` to `to`, each chunk written `delay` after it was read; an EOF is passed on as a
/// half-close just as late.
async fn delayed(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let room = Arc::new(Semaphore::new(IN_FLIGHT));
    let (tx, mut rx) = mpsc::unbounded_channel::<Due>();
    let reader = async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = from.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                let _ = tx.send((Instant::now() + delay, None));
                return;
            }
            // A chunk that waited for room enters the link only now, and is due a delay later.
            let Ok(permit) = room.clone().acquire_many_owned(n as u32).await else {
                return;
            };
            if tx
                .send((Instant::now() + delay, Some((buf[..n].to_vec(), permit))))
                .is_err()
            {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            match chunk {
                Some((bytes, _permit)) => {
                    if to.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = to.shutdown().await;
                    return;
                }
            }
        }
    };
    tokio::join!(reader, writer);
}
