//! Consumption-based flow control (PATCHES.md): a channel whose reader does not consume stops
//! its peer at exactly one window, and the connection's other channels keep working.

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;
    use rand::rng;
    use ssh_key::PrivateKey;
    use tokio::net::TcpListener;
    use tokio::sync::{oneshot, watch};

    use crate::cert::PublicKeyOrCertificate;
    use crate::channels::{Channel, ChannelMsg, ChannelWriteHalf};
    use crate::client::{self, Handler};
    use crate::keys::PrivateKeyWithHashAlg;
    use crate::server::{self, Auth, Handler as ServerHandler, Session};
    use crate::{ChannelId, Error};

    const WINDOW: u32 = 64 * 1024;
    const CHUNK: usize = 1024;
    const TOTAL: usize = 16 * WINDOW as usize;
    const DEADLINE: Duration = Duration::from_secs(10);

    type Writer = Arc<ChannelWriteHalf<server::Msg>>;

    /// Serves `exec stream` (TOTAL bytes, counted as the server hands them to russh) and
    /// `exec echo` (one short reply).
    #[derive(Clone)]
    struct Streamer {
        channels: Arc<Mutex<HashMap<ChannelId, Channel<server::Msg>>>>,
        sent: watch::Sender<usize>,
        writer: Arc<Mutex<Option<oneshot::Sender<Writer>>>>,
    }

    impl ServerHandler for Streamer {
        type Error = Error;

        async fn channel_open_session(
            &mut self,
            channel: Channel<server::Msg>,
            reply: server::ChannelOpenHandle,
            _: &mut Session,
        ) -> Result<(), Self::Error> {
            self.channels.lock().unwrap().insert(channel.id(), channel);
            reply.accept().await;
            Ok(())
        }

        async fn auth_publickey(
            &mut self,
            _: &str,
            _: server::VerifiedPublicKey<'_>,
        ) -> Result<Auth, Self::Error> {
            Ok(Auth::Accept)
        }

        async fn exec_request(
            &mut self,
            id: ChannelId,
            command: &[u8],
            session: &mut Session,
        ) -> Result<(), Self::Error> {
            let channel = self.channels.lock().unwrap().remove(&id).unwrap();
            if command == b"echo" {
                session.data(id, Bytes::from_static(b"pong"))?;
                session.eof(id)?;
                session.close(id)?;
                return Ok(());
            }
            let (_read, write) = channel.split();
            let write = Arc::new(write);
            if let Some(tx) = self.writer.lock().unwrap().take() {
                let _ = tx.send(write.clone());
            }
            let sent = self.sent.clone();
            tokio::spawn(async move {
                for i in 0..TOTAL / CHUNK {
                    let chunk = vec![(i % 251) as u8; CHUNK];
                    write.data_bytes(chunk).await.unwrap();
                    sent.send_modify(|n| *n += CHUNK);
                }
                write.eof().await.unwrap();
            });
            Ok(())
        }
    }

    struct Trusting;

    impl Handler for Trusting {
        type Error = Error;

        async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Error> {
            Ok(true)
        }
    }

    async fn wait_sent(sent: &mut watch::Receiver<usize>, at_least: usize) -> usize {
        let waited = tokio::time::timeout(DEADLINE, sent.wait_for(|n| *n >= at_least)).await;
        let seen = waited.map(|r| r.map(|n| *n));
        match seen {
            Ok(Ok(n)) => n,
            _ => panic!("the server never sent {at_least} bytes ({} so far)", *sent.borrow()),
        }
    }

    /// Reads data messages until `want` bytes arrived, checking the pattern.
    async fn read_exactly(channel: &mut Channel<client::Msg>, offset: usize, want: usize) {
        let mut got = 0;
        while got < want {
            let msg = tokio::time::timeout(DEADLINE, channel.wait()).await.unwrap();
            match msg {
                Some(ChannelMsg::Data { data }) => {
                    for (k, b) in data.iter().enumerate() {
                        let at = offset + got + k;
                        assert_eq!(*b, ((at / CHUNK) % 251) as u8, "byte {at}");
                    }
                    got += data.len();
                }
                Some(ChannelMsg::WindowAdjusted { .. }) => {}
                other => panic!("unexpected {other:?} after {got} of {want} bytes"),
            }
        }
        assert_eq!(got, want, "more data than the window allows");
    }

    #[tokio::test]
    async fn a_reader_that_does_not_consume_stops_its_peer_at_one_window() {
        let mut config = server::Config::default();
        config.inactivity_timeout = None;
        config.keys.push(PrivateKey::random(&mut rng(), ssh_key::Algorithm::Ed25519).unwrap());
        let config = Arc::new(config);
        let (sent_tx, mut sent) = watch::channel(0usize);
        let (writer_tx, writer_rx) = oneshot::channel();
        let handler = Streamer {
            channels: Arc::default(),
            sent: sent_tx,
            writer: Arc::new(Mutex::new(Some(writer_tx))),
        };
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let (socket, _) = socket.accept().await.unwrap();
            server::run_stream(config, socket, handler).await.unwrap().await.ok();
        });

        // As tether configures it: a per-channel queue that never makes the session loop wait,
        // because the window, not the queue, bounds what a channel can hold.
        let client_config = client::Config {
            window_size: WINDOW,
            maximum_packet_size: 8 * 1024,
            channel_buffer_size: 1 << 30,
            ..Default::default()
        };
        let mut session = client::connect(Arc::new(client_config), addr, Trusting).await.unwrap();
        let key = PrivateKey::random(&mut rng(), ssh_key::Algorithm::Ed25519).unwrap();
        let auth = session
            .authenticate_publickey("u", PrivateKeyWithHashAlg::new(Arc::new(key), None))
            .await
            .unwrap();
        assert!(auth.success());

        let mut bulk = session.channel_open_session().await.unwrap();
        bulk.grant_window(0).await.unwrap();
        bulk.exec(false, "stream").await.unwrap();
        let writer = writer_rx.await.unwrap();

        // The server fills exactly one window and stops: nothing was consumed, so nothing was
        // granted. Two pings make sure any window adjust the client would have sent on arrival
        // has reached the server.
        assert_eq!(wait_sent(&mut sent, WINDOW as usize).await, WINDOW as usize);
        session.send_ping().await.unwrap();
        session.send_ping().await.unwrap();
        assert_eq!(writer.writable_packet_size().await, 0, "the peer got window it was not granted");
        assert_eq!(*sent.borrow(), WINDOW as usize);

        // Another channel of the same connection answers while the first one is stalled.
        let mut other = session.channel_open_session().await.unwrap();
        other.exec(false, "echo").await.unwrap();
        match tokio::time::timeout(DEADLINE, other.wait()).await.unwrap() {
            Some(ChannelMsg::Data { data }) => assert_eq!(&data[..], b"pong"),
            other => panic!("expected the echo, got {other:?}"),
        }

        // Consuming half a window and granting it lets exactly that much more through.
        read_exactly(&mut bulk, 0, WINDOW as usize / 2).await;
        bulk.grant_window(WINDOW / 2).await.unwrap();
        assert_eq!(wait_sent(&mut sent, WINDOW as usize * 3 / 2).await, WINDOW as usize * 3 / 2);
        session.send_ping().await.unwrap();
        assert_eq!(writer.writable_packet_size().await, 0);

        // A reader that grants what it consumes receives everything, byte-exact.
        let mut offset = WINDOW as usize / 2;
        while offset < TOTAL {
            let step = (WINDOW as usize / 2).min(TOTAL - offset);
            read_exactly(&mut bulk, offset, step).await;
            offset += step;
            bulk.grant_window(step as u32).await.unwrap();
        }
        match tokio::time::timeout(DEADLINE, bulk.wait()).await.unwrap() {
            Some(ChannelMsg::Eof) => {}
            other => panic!("expected the end of the stream, got {other:?}"),
        }
    }
}
