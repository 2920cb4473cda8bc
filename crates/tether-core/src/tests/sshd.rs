//! An SSH server inside the test process (russh's server half), so the SSH layer, the pump, the
//! pool and the session actor are tested in seconds, without the lab. It accepts one client key,
//! and serves `direct-streamlocal` channels (the Docker socket's way) and `direct-tcpip` ones (a
//! tunnel's) by what their path or port names:
//!
//! - `/echo`, or TCP port [`ECHO_PORT`]: everything comes back, and the end of data too;
//! - `/flood`: [`FLOOD`] bytes as fast as the client's window lets them out, counted in
//!   [`TestSshd::flooded`], so a test sees where flow control stopped the sender;
//! - `/docker.sock`: the engine's version for each HTTP request, enough for the engine check and
//!   a client's `GET /version` (an HTTP/1.0 request's answer ends the channel, as dockerd's does);
//! - TCP to its own port, whatever the host named: itself again, as a bastion answering a VM's
//!   address with its own sshd would;
//! - anything else is refused, as sshd refuses a socket that is not there.
//!
//! It can be stopped and started again on the same port, which is how a VM goes away and comes
//! back. [`TestSshd::session`] hands a test the server's side of a logged-in session, to open
//! channels toward the client as a VM (or a hostile one) would. The end-to-end tests against OpenSSH's sshd remain the proof; this is the fast first
//! line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use russh::keys::{PrivateKey, ssh_key};
use russh::server::{self, Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelOpenFailure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The TCP port a `direct-tcpip` channel echoes on.
pub const ECHO_PORT: u32 = 7;
/// What `/flood` sends: far more than any window Tether grants.
pub const FLOOD: u64 = 64 << 20;
/// The engine's answer to `GET /version` on `/docker.sock`.
pub const VERSION: &str = r#"{"Version":"27.0.0","ApiVersion":"1.46","Os":"linux","Arch":"amd64"}"#;

/// A running in-process SSH server and the keys to reach it.
pub struct TestSshd {
    pub addr: SocketAddr,
    pub host_key: PrivateKey,
    pub client_key: PrivateKey,
    /// Bytes `/flood` channels handed to the session so far.
    pub flooded: Arc<AtomicU64>,
    /// The server's handle of each session that logged in, in order.
    sessions: Arc<std::sync::Mutex<Vec<server::Handle>>>,
    stop: CancellationToken,
}

fn ed25519() -> PrivateKey {
    #[allow(clippy::unwrap_used)]
    PrivateKey::random(&mut rand::rng(), ssh_key::Algorithm::Ed25519).unwrap()
}

impl TestSshd {
    /// A server on a free port of 127.0.0.1 with new host and client keys.
    ///
    /// The port is below the ephemeral range (Linux gives outgoing connections 32768 and up,
    /// Windows 49152 and up), because [`TestSshd::restart`] binds it again after a stop: a port
    /// of `bind(0)` could meanwhile become the local port of a connection another test makes,
    /// and the restart then failed with "address in use" (seen in a unit-test run).
    pub async fn start() -> TestSshd {
        let mut listener = None;
        for _ in 0..200 {
            let port = rand::random_range(20_000..32_000u16);
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)).await {
                listener = Some(l);
                break;
            }
        }
        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0"),
        };
        Self::serve(listener, ed25519(), ed25519(), Arc::default())
    }

    /// The same server (port and keys) after [`TestSshd::stop`], as a VM that came back.
    pub async fn restart(&self) -> TestSshd {
        // The port was ours a moment ago; a listener in TIME_WAIT is not in the way of a bind.
        let listener = TcpListener::bind(self.addr).await.expect("bind the same port again");
        Self::serve(
            listener,
            self.host_key.clone(),
            self.client_key.clone(),
            self.flooded.clone(),
        )
    }

    fn serve(listener: TcpListener, host_key: PrivateKey, client_key: PrivateKey, flooded: Arc<AtomicU64>) -> TestSshd {
        let addr = listener.local_addr().expect("local addr");
        let config = Arc::new(server::Config {
            inactivity_timeout: None,
            auth_rejection_time: std::time::Duration::from_millis(10),
            auth_rejection_time_initial: Some(std::time::Duration::ZERO),
            keys: vec![host_key.clone()],
            ..Default::default()
        });
        let stop = CancellationToken::new();
        let allowed = client_key.public_key().clone();
        let (stop2, flooded2) = (stop.clone(), flooded.clone());
        let sessions_seen: Arc<std::sync::Mutex<Vec<server::Handle>>> = Arc::default();
        let seen2 = sessions_seen.clone();
        tokio::spawn(async move {
            let mut sessions = Vec::new();
            loop {
                let (socket, _) = tokio::select! {
                    () = stop2.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => break,
                    },
                };
                let handler = Server {
                    port: addr.port(),
                    allowed: allowed.clone(),
                    flooded: flooded2.clone(),
                    sessions: seen2.clone(),
                };
                let config = config.clone();
                let stop = stop2.clone();
                sessions.push(tokio::spawn(async move {
                    // The session runs on one end of a pipe and the TCP socket is copied to the
                    // other, so stopping drops the socket under the client at once, as a VM that
                    // went away would (russh keeps a session it runs alive on its own).
                    let (mut near, far) = tokio::io::duplex(256 * 1024);
                    let mut socket = socket;
                    let session = tokio::spawn(async move {
                        if let Ok(running) = server::run_stream(config, far, handler).await {
                            let _ = running.await;
                        }
                    });
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut socket, &mut near) => {}
                        () = stop.cancelled() => {}
                    }
                    session.abort();
                }));
            }
            for s in sessions {
                s.abort();
            }
        });
        TestSshd {
            addr,
            host_key,
            client_key,
            flooded,
            sessions: sessions_seen,
            stop,
        }
    }

    /// The server's handle of the latest session that logged in.
    pub fn session(&self) -> server::Handle {
        #[allow(clippy::unwrap_used)]
        self.sessions
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("no session has logged in")
    }

    /// Ends the server and every session it serves, as a VM that went away.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// A known_hosts file in `dir` that lists this server's host key for its address.
    pub fn known_hosts(&self, dir: &Path) -> PathBuf {
        let line = format!(
            "[127.0.0.1]:{} {}\n",
            self.addr.port(),
            self.host_key.public_key().to_openssh().expect("openssh public key")
        );
        let path = dir.join("known_hosts");
        std::fs::write(&path, line).expect("write known_hosts");
        path
    }

    /// The client's private key as an OpenSSH key file in `dir` (0600), for a profile's
    /// `identity`.
    pub fn key_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("id_ed25519");
        self.client_key
            .write_openssh_file(&path, ssh_key::LineEnding::LF)
            .expect("write the client key");
        crate::private::restrict_file(&path).expect("0600");
        path
    }
}

impl TestSshd {
    /// Where the engine's SSH layer reaches this server, as `target::resolve` would say.
    pub fn target(&self) -> crate::target::Target {
        crate::target::Target {
            alias: "127.0.0.1".into(),
            host: "127.0.0.1".into(),
            port: self.addr.port(),
            user: "tester".into(),
            identity_files: Vec::new(),
            jumps: Vec::new(),
            host_keys: Default::default(),
        }
    }

    /// The one key this server accepts, as the identity layer hands keys over.
    pub fn credentials(&self) -> Arc<dyn crate::identity::Credentials> {
        Arc::new(TestKey(Arc::new(self.client_key.clone())))
    }

    /// A login by the SSH layer with host keys from `known_hosts` only.
    pub async fn login(&self, known_hosts: PathBuf) -> Result<crate::ssh::Connection, crate::ssh::SshError> {
        self.login_with(known_hosts, None).await
    }

    /// [`TestSshd::login`], the VM's `forwarded-tcpip` channels going to `reverse`.
    pub async fn login_with(
        &self,
        known_hosts: PathBuf,
        reverse: Option<Arc<dyn crate::ssh::Forwarded>>,
    ) -> Result<crate::ssh::Connection, crate::ssh::SshError> {
        let policy = crate::ssh::HostKeyPolicy {
            files: vec![known_hosts],
            accept_new: false,
            confirmed: crate::ssh::Confirmation::default(),
            scan: false,
        };
        crate::ssh::connect(
            &self.target(),
            policy,
            crate::identity::Logins::same(self.credentials()),
            None,
            Default::default(),
            reverse,
        )
        .await
    }
}

struct TestKey(Arc<PrivateKey>);

impl crate::identity::Credentials for TestKey {
    fn credentials(
        &self,
        _passphrase: Option<&str>,
    ) -> Result<Vec<crate::identity::Credential>, crate::identity::IdentityError> {
        Ok(vec![crate::identity::Credential::Key {
            label: "test key".into(),
            key: self.0.clone(),
        }])
    }
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Server {
    /// The port this server listens on.
    port: u16,
    allowed: ssh_key::PublicKey,
    flooded: Arc<AtomicU64>,
    sessions: Arc<std::sync::Mutex<Vec<server::Handle>>>,
}

impl server::Handler for Server {
    type Error = russh::Error;

    async fn auth_publickey(&mut self, _user: &str, key: server::VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        Ok(if key.public_key.key_data() == self.allowed.key_data() {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        if let Ok(mut all) = self.sessions.lock() {
            all.push(session.handle());
        }
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        channel: Channel<Msg>,
        socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        match socket_path {
            "/echo" => {
                reply.accept().await;
                tokio::spawn(echo(channel));
            }
            "/flood" => {
                reply.accept().await;
                tokio::spawn(flood(channel, self.flooded.clone()));
            }
            "/docker.sock" => {
                reply.accept().await;
                tokio::spawn(docker(channel));
            }
            _ => reply.reject(ChannelOpenFailure::ConnectFailed).await,
        }
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        _host: &str,
        port: u32,
        _originator: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if port == ECHO_PORT {
            reply.accept().await;
            tokio::spawn(echo(channel));
        } else if port == u32::from(self.port) {
            let Ok(mut me) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
                return Ok(());
            };
            reply.accept().await;
            tokio::spawn(async move {
                let _ = tokio::io::copy_bidirectional(&mut me, &mut channel.into_stream()).await;
            });
        } else {
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
        }
        Ok(())
    }
}

/// Sends back what arrives, then the end of data once the client's comes.
async fn echo(channel: Channel<Msg>) {
    let mut stream = channel.into_stream();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = stream.shutdown().await;
}

/// Writes [`FLOOD`] bytes as the window allows, counting each chunk once it is handed over.
async fn flood(channel: Channel<Msg>, flooded: Arc<AtomicU64>) {
    let mut stream = channel.into_stream();
    let chunk = vec![0x5au8; 32 * 1024];
    let mut sent = 0;
    while sent < FLOOD {
        if stream.write_all(&chunk).await.is_err() {
            return;
        }
        sent += chunk.len() as u64;
        flooded.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    let _ = stream.shutdown().await;
}

/// Answers each HTTP request head with the engine's version, as dockerd answers `/version`.
async fn docker(channel: Channel<Msg>) {
    let mut stream = channel.into_stream();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            // HTTP/1.0 (the connect-time engine check) ends the connection after its answer.
            let one_shot = seen[..end].windows(8).any(|w| w == b"HTTP/1.0");
            seen.drain(..end + 4);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.46\r\nContent-Length: {}\r\n\r\n{VERSION}",
                VERSION.len()
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            if one_shot {
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}
