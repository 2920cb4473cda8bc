//! One authenticated russh client connection: TCP setup, host-key checking, login, and the
//! tuning that the rest of the engine relies on (nodelay, window and packet sizes).
//!
//! Every step has a timeout and every failure becomes an [`SshError`] that says what to do.
//!
//! Longer than 400 lines on purpose: connect, host-key check, login and tuning are one handshake,
//! read in the order it happens; `SshError` beside it names each step's failure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::ChannelOpenFailure;
use russh::client::{self, AuthResult, DisconnectReason, Handle};
use russh::keys::PublicKeyOrCertificate;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::identity::{Credential, Credentials};
use crate::known_hosts::{self, HostKeyStatus};
use crate::target::Target;

/// The window every channel opens with. Forwarded streams then take their window from
/// [`crate::flow`], as their reader consumes; other channels (probes, scripts) are refilled by
/// russh as data arrives and carry little.
pub const WINDOW_SIZE: u32 = crate::flow::FLOOR;
/// Messages a channel's queue may hold. russh's session loop waits when a channel's queue is full,
/// which would stall every channel of the connection behind one slow reader; so the queue is never
/// full, and what a forwarded stream can hold is bounded in bytes by its window instead. tokio
/// allocates the queue's slots lazily, in blocks of 32, so the capacity costs nothing.
const CHANNEL_QUEUE: usize = 1 << 30;
/// Largest packet we accept. 32 KiB is what OpenSSH sends for forwarded streams anyway, and a
/// larger value only raises per-packet latency for interleaved channels.
pub const MAX_PACKET: u32 = 32 * 1024;
/// A jump host's window: the bytes in flight to the VM behind it (4 MiB fills 200 Mbit/s at
/// 160 ms). It is refilled as data arrives, which is right here: the inner session drains it.
const HOP_WINDOW: u32 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot resolve host '{host}': {message}; check the name, or its Host entry in ~/.ssh/config")]
    Resolve { host: String, message: String },
    #[error(
        "connection refused by {addr}: no sshd is listening there; check that the VM is up and the port is right (--port)"
    )]
    Refused { addr: String },
    #[error(
        "no answer from {addr} within {secs} s: the VM is down or unreachable from this laptop; check the address, VPN or firewall"
    )]
    Timeout { addr: String, secs: u64 },
    #[error("cannot reach {addr}: {message}; check the network, VPN or the VM's address")]
    Unreachable { addr: String, message: String },
    #[error(
        "the host key of {}{host} is not known yet.\n  {key_type} key fingerprint is {fingerprint}{certificate}\n\
         Compare it with `ssh-keygen -lf /etc/ssh/ssh_host_{short}_key.pub` on {}, then accept it \
         (answer yes, or pass --accept-new)",
        if *jump { "the jump host " } else { "" },
        if *jump { "the jump host" } else { "the VM" }
    )]
    HostKeyUnknown {
        host: String,
        /// Whether `host` is a jump host on the way to the VM rather than the VM.
        jump: bool,
        key_type: String,
        short: String,
        fingerprint: String,
        /// Why the host's certificate, if it showed one, vouched for nothing (a line of its own),
        /// or empty.
        certificate: String,
    },
    #[error(
        "REFUSED: the host key of {host} has CHANGED. Someone may be intercepting the connection \
         (man-in-the-middle), or the VM was reinstalled.\n  recorded {key_type} key: {recorded}\n  \
         presented {key_type} key: {fingerprint}\n  recorded in {file}:{line}\n\
         If the VM was reinstalled and its administrator confirms the presented key, replace the \
         recorded one: `tether vm host-key <vm> --replace {fingerprint}` (or remove line {line} of {file})"
    )]
    HostKeyChanged {
        host: String,
        key_type: String,
        fingerprint: String,
        recorded: String,
        file: PathBuf,
        line: usize,
    },
    #[error(
        "REFUSED: {host} presented a {key_type} host key ({fingerprint}), but Tether knows it by other keys:\n  \
         {}\nThis is not a first connection. Someone may be intercepting the connection \
         (man-in-the-middle) with a key of another type, or the VM was reinstalled without its old keys.\n\
         If the VM's administrator confirms {fingerprint}, replace the recorded keys: \
         `tether vm host-key <vm> --replace {fingerprint}`",
        recorded.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ")
    )]
    HostKeyOtherType {
        host: String,
        key_type: String,
        fingerprint: String,
        /// The keys recorded for the host, none of the presented type.
        recorded: Vec<known_hosts::Recorded>,
    },
    #[error("REFUSED: the host key {fingerprint} of {host} is marked @revoked in {file}:{line}")]
    HostKeyRevoked {
        host: String,
        fingerprint: String,
        file: PathBuf,
        line: usize,
    },
    #[error(
        "{target} refused every key tried ({tried}); add your public key to ~{user}/.ssh/authorized_keys on the VM, or pick the right one with --identity"
    )]
    AuthFailed {
        target: String,
        user: String,
        tried: String,
    },
    #[error("no key to log in to {target} with: pass --identity PATH, start ssh-agent, or create ~/.ssh/id_ed25519")]
    NoCredentials { target: String },
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error("SSH handshake with {addr} failed: {message}")]
    Handshake { addr: String, message: String },
    #[error("the SSH connection to the VM is closed")]
    Closed,
}

impl SshError {
    /// Errors that retrying cannot fix: the user has to act.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            SshError::HostKeyUnknown { .. }
                | SshError::HostKeyChanged { .. }
                | SshError::HostKeyOtherType { .. }
                | SshError::HostKeyRevoked { .. }
                | SshError::AuthFailed { .. }
                | SshError::NoCredentials { .. }
                | SshError::Identity(_)
                | SshError::Resolve { .. }
        )
    }
}

/// How host keys are checked for one connection attempt.
#[derive(Debug, Clone)]
pub struct HostKeyPolicy {
    /// Files read for known keys; the last one is Tether's own and receives accepted keys.
    pub files: Vec<PathBuf>,
    /// Accept and record an unknown key (OpenSSH's StrictHostKeyChecking=accept-new).
    pub accept_new: bool,
    /// A fingerprint the user confirmed: accepted and recorded if the first host of the chain
    /// whose key is unknown presents it.
    pub confirmed: Confirmation,
    /// Only fetch the key: record it and end the handshake.
    pub scan: bool,
}

/// A fingerprint the user confirmed for one host, shared by every hop of one connection attempt.
///
/// The user confirms the key of the host an error named, and that is always the first host of
/// the chain whose key is not known (each hop is checked in order and the first refusal ends the
/// attempt). So the first unknown key presented uses the confirmation up, whether it matches or
/// not: a bastion answering the VM's `direct-tcpip` with its own sshd, and its own key, is then
/// refused for the VM instead of being recorded under the VM's name without a second question.
#[derive(Debug, Clone, Default)]
pub struct Confirmation(Arc<Mutex<Option<String>>>);

impl Confirmation {
    pub fn of(fingerprint: Option<String>) -> Confirmation {
        Confirmation(Arc::new(Mutex::new(fingerprint)))
    }

    /// Whether `fingerprint`, presented as an unknown key, is the one confirmed; either way the
    /// confirmation is spent.
    fn redeem(&self, fingerprint: &str) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|mut c| c.take())
            .is_some_and(|c| c == fingerprint)
    }
}

/// What the handler saw, kept for error reporting after russh aborts the handshake.
#[derive(Debug, Default)]
struct Seen {
    refusal: Option<SshError>,
    /// The host key presented, and what known_hosts and its certificate said of it.
    scanned: Option<Scanned>,
}

/// russh handler: checks the host key and reports when the connection ends.
pub struct ClientHandler {
    host: String,
    port: u16,
    policy: HostKeyPolicy,
    seen: Arc<Mutex<Seen>>,
    closed: Arc<Notify>,
    /// The reverse tunnels asked of this VM; without it every `forwarded-tcpip` is refused.
    reverse: Option<Arc<dyn Forwarded>>,
    /// ~/.ssh/config's RevokedHostKeys for this host, read before anything else.
    revoked: Option<PathBuf>,
    /// Whether this host is a jump host on the way to the VM (for what a refusal says).
    hop: bool,
}

/// Takes the connections the VM opens on ports it listens on for us (`forwarded-tcpip`).
pub trait Forwarded: Send + Sync {
    /// A connection on the VM's `port`: accept or refuse it with `reply`, without waiting (the
    /// SSH session's loop is the caller).
    /// `originator`: the peer's address as sshd saw it when it accepted the connection.
    fn open(&self, port: u32, originator: &str, channel: russh::Channel<client::Msg>, reply: client::ChannelOpenHandle);
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: russh::Channel<client::Msg>,
        _connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        // Dropping `reply` refuses the channel.
        if let Some(table) = &self.reverse {
            table.open(connected_port, originator_address, channel, reply);
        }
        Ok(())
    }

    // Every other channel the VM or a hop may open toward us is refused: russh's defaults accept
    // them (and keep them in the session's table, buffering what the peer sends), and nothing of
    // Tether's asks the VM for a session, an X11 display, the agent or a socket.
    async fn server_channel_open_session(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        refuse_opened(&self.host, "session", reply);
        Ok(())
    }

    async fn server_channel_open_direct_tcpip(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        refuse_opened(&self.host, "direct-tcpip", reply);
        Ok(())
    }

    async fn server_channel_open_direct_streamlocal(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        _socket_path: &str,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        refuse_opened(&self.host, "direct-streamlocal", reply);
        Ok(())
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        _socket_path: &str,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        refuse_opened(&self.host, "forwarded-streamlocal", reply);
        Ok(())
    }

    async fn server_channel_open_x11(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        refuse_opened(&self.host, "x11", reply);
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        refuse_opened(&self.host, "agent", reply);
        Ok(())
    }

    async fn check_server_key(&mut self, presented: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let key = &presented.public_key();
        let fp = known_hosts::fingerprint(key);
        let name = known_hosts::host_entry_name(&self.host, self.port);
        let key_type = key.algorithm().to_string();
        // known_hosts files are read from disk: off the runtime's workers.
        let (host, port, files) = (self.host.clone(), self.port, self.policy.files.clone());
        let revoked = self.revoked.clone();
        let cert = match presented {
            PublicKeyOrCertificate::Certificate(c) => Some(c.clone()),
            PublicKeyOrCertificate::PublicKey { .. } => None,
        };
        let (cert_status, status) = {
            let key = key.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<_> {
                let now = crate::clock::unix_ms() / 1000;
                // As OpenSSH: a key (or the authority that signed its certificate) listed there
                // is refused whatever else vouches for it, and a file that cannot be read refuses
                // too.
                if let Some(file) = revoked {
                    let keys = std::iter::once(key.key_data()).chain(cert.as_ref().map(|c| c.signature_key()));
                    for k in keys {
                        if let Some(line) = known_hosts::revoked_in(&file, k)? {
                            return Ok((None, HostKeyStatus::Revoked { file, line }));
                        }
                    }
                }
                let cert_status = cert
                    .map(|c| known_hosts::check_certificate(&host, port, &c, &files, now))
                    .transpose()?;
                Ok((cert_status, known_hosts::check(&host, port, &key, &files)?))
            })
            .await
            .map_err(|_| russh::Error::Inconsistent)??
        };
        let mut guard = self.seen.lock().map_err(|_| russh::Error::Inconsistent)?;
        let seen = &mut *guard;
        let scanned = seen.scanned.insert(Scanned {
            key: key.clone(),
            status: status.clone(),
            authority: None,
            untrusted_certificate: None,
        });
        let mut certificate = String::new();
        match cert_status {
            Some(known_hosts::CertStatus::Trusted { authority, file, line }) => {
                tracing::info!(host = %name, fingerprint = %fp, %authority, "host certificate trusted");
                scanned.authority = Some(format!("{authority} ({}:{line})", file.display()));
                return Ok(!self.policy.scan);
            }
            Some(known_hosts::CertStatus::Revoked { file, line }) => {
                seen.refusal = Some(SshError::HostKeyRevoked {
                    host: name,
                    fingerprint: fp,
                    file,
                    line,
                });
                return Ok(false);
            }
            // As OpenSSH: a certificate nobody vouches for is no worse than the bare key in it.
            Some(known_hosts::CertStatus::Untrusted(why)) => {
                tracing::warn!(host = %name, reason = %why, "host certificate not accepted; checking its key instead");
                certificate = format!("\n  (its host certificate was not accepted: {why})");
                scanned.untrusted_certificate = Some(why);
            }
            None => {}
        }
        if self.policy.scan {
            return Ok(false);
        }
        let refusal = match status {
            HostKeyStatus::Known => return Ok(true),
            HostKeyStatus::Unknown if self.policy.accept_new || self.policy.confirmed.redeem(&fp) => {
                if let Some(own) = self.policy.files.last() {
                    known_hosts::learn(own, &self.host, self.port, key)?;
                    tracing::info!(host = %name, fingerprint = %fp, file = %own.display(), "recorded new host key");
                }
                return Ok(true);
            }
            HostKeyStatus::Unknown => SshError::HostKeyUnknown {
                host: name,
                jump: self.hop,
                short: key_type
                    .trim_start_matches("ssh-")
                    .split('-')
                    .next()
                    .unwrap_or("ed25519")
                    .to_string(),
                key_type,
                fingerprint: fp,
                certificate,
            },
            HostKeyStatus::Changed {
                file,
                line,
                recorded_fingerprint,
            } => SshError::HostKeyChanged {
                host: name,
                key_type,
                fingerprint: fp,
                recorded: recorded_fingerprint,
                file,
                line,
            },
            HostKeyStatus::OtherType { recorded } => SshError::HostKeyOtherType {
                host: name,
                key_type,
                fingerprint: fp,
                recorded,
            },
            HostKeyStatus::Revoked { file, line } => SshError::HostKeyRevoked {
                host: name,
                fingerprint: fp,
                file,
                line,
            },
        };
        seen.refusal = Some(refusal);
        Ok(false)
    }

    async fn disconnected(&mut self, reason: DisconnectReason<Self::Error>) -> Result<(), Self::Error> {
        tracing::debug!(?reason, "ssh session ended");
        self.closed.notify_waiters();
        // notify_one stores a permit, so a watcher that starts waiting late still wakes.
        self.closed.notify_one();
        match reason {
            DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            DisconnectReason::Error(e) => Err(e),
        }
    }
}

/// Refuses a channel the peer opened that Tether never asked for. Dropping the reply sends the
/// refusal; the channel never enters the session's table.
fn refuse_opened(host: &str, kind: &str, reply: client::ChannelOpenHandle) {
    tracing::debug!(host, kind, "refused a channel the server opened");
    drop(reply);
}

/// A live, authenticated connection.
pub struct Connection {
    pub handle: Handle<ClientHandler>,
    /// Woken once when the connection ends for any reason.
    pub closed: Arc<Notify>,
    pub server_key: Option<PublicKey>,
    /// The jump hosts' sessions this one runs through, outermost first: kept open as long as it.
    pub hops: Vec<Handle<ClientHandler>>,
    /// Those jump hosts, `user@host:port`.
    pub via: Vec<String>,
}

/// Timeouts for one connection attempt.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub handshake: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(8),
            handshake: Duration::from_secs(10),
        }
    }
}

async fn client_config(target: &Target, policy: &HostKeyPolicy) -> client::Config {
    let mut cfg = client::Config {
        window_size: WINDOW_SIZE,
        maximum_packet_size: MAX_PACKET,
        channel_buffer_size: CHANNEL_QUEUE,
        nodelay: true,
        // Liveness is judged by our own probe; these keep NAT state alive and catch a dead peer
        // even if the probe task were gone.
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        inactivity_timeout: None,
        ..Default::default()
    };
    cfg.preferred.cipher = cipher_order().into();
    // known_hosts files are read from disk: off the runtime's workers.
    let (host, port, files) = (target.host.clone(), target.port, policy.files.clone());
    let (known, authority) = tokio::task::spawn_blocking(move || {
        (
            known_hosts::recorded_algorithms(&host, port, &files),
            known_hosts::has_authority(&host, port, &files),
        )
    })
    .await
    .unwrap_or_default();
    // A host some authority vouches for is asked for its certificate first.
    if authority {
        cfg.preferred.host_key_certificates = cfg.preferred.key.clone();
    }
    // Prefer host-key algorithms we already have recorded, as OpenSSH does, so a known host is not
    // reported as unknown just because it offers a newer key type too.
    if !known.is_empty() {
        let mut order: Vec<_> = known.clone();
        order.extend(cfg.preferred.key.iter().filter(|a| !known.contains(a)).cloned());
        cfg.preferred.key = order.into();
    }
    cfg
}

/// AES-GCM first where the CPU accelerates it (x86 AES-NI, ARMv8 crypto): it costs both ends
/// far less CPU than ChaCha20-Poly1305 there, and bulk transfers through the Docker socket are
/// CPU-bound. Elsewhere ChaCha20 stays first, as in OpenSSH.
fn cipher_order() -> Vec<russh::cipher::Name> {
    use russh::cipher::{AES_128_CTR, AES_128_GCM, AES_192_CTR, AES_256_CTR, AES_256_GCM, CHACHA20_POLY1305};
    #[cfg(target_arch = "x86_64")]
    let aes = std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(target_arch = "aarch64")]
    let aes = std::arch::is_aarch64_feature_detected!("aes");
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let aes = false;
    if aes {
        vec![
            AES_128_GCM,
            AES_256_GCM,
            CHACHA20_POLY1305,
            AES_256_CTR,
            AES_192_CTR,
            AES_128_CTR,
        ]
    } else {
        vec![
            CHACHA20_POLY1305,
            AES_256_GCM,
            AES_128_GCM,
            AES_256_CTR,
            AES_192_CTR,
            AES_128_CTR,
        ]
    }
}

/// The SSH socket, acknowledging every read at once on Linux.
///
/// Linux delays ACKs by up to 40 ms. sshd leaves Nagle on for connections without a terminal,
/// so after sending a response it holds back the small packets that follow (channel EOF and
/// CLOSE) until that ACK arrives: every short Docker API call would pay 40 ms. Asking for an
/// immediate ACK after each read removes the stall; it costs one setsockopt per read.
pub struct SshStream(TcpStream);

impl tokio::io::AsyncRead for SshStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let res = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        #[cfg(target_os = "linux")]
        if let std::task::Poll::Ready(Ok(())) = res {
            let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
        }
        res
    }
}

impl tokio::io::AsyncWrite for SshStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

async fn tcp_connect(target: &Target, t: Timeouts) -> Result<TcpStream, SshError> {
    let addr_label = format!("{}:{}", target.host, target.port);
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(t.connect, tokio::net::lookup_host((target.host.as_str(), target.port)))
            .await
            .map_err(|_| SshError::Resolve {
                host: target.host.clone(),
                message: "lookup timed out".into(),
            })?
            .map_err(|e| SshError::Resolve {
                host: target.host.clone(),
                message: e.to_string(),
            })?
            .collect();
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(t.connect, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                s.set_nodelay(true).ok();
                return Ok(s);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Some(SshError::Refused { addr: addr.to_string() })
            }
            Ok(Err(e)) => {
                last = Some(SshError::Unreachable {
                    addr: addr.to_string(),
                    message: e.to_string(),
                })
            }
            Err(_) => {
                last = Some(SshError::Timeout {
                    addr: addr.to_string(),
                    secs: t.connect.as_secs(),
                })
            }
        }
    }
    Err(last.unwrap_or(SshError::Resolve {
        host: addr_label,
        message: "no addresses".into(),
    }))
}

/// Connects, verifies the host key and logs in with the first credential the server accepts.
/// Keys are loaded only after the host key checked out, as OpenSSH does: nobody is asked for a
/// passphrase on behalf of a host that is not trusted yet.
/// Each jump host is logged in to first, in order, with its host key checked by the same policy;
/// the VM is then reached through a `direct-tcpip` channel of the last one.
pub async fn connect(
    target: &Target,
    policy: HostKeyPolicy,
    logins: crate::identity::Logins,
    passphrase: Option<&str>,
    t: Timeouts,
    reverse: Option<Arc<dyn Forwarded>>,
) -> Result<Connection, SshError> {
    let mut hops: Vec<Handle<ClientHandler>> = Vec::new();
    for hop in &target.jumps {
        let creds = crate::identity::for_hop(hop, logins.hops.clone());
        let stream = open(hop, hops.last(), t).await?;
        let conn = login(stream, hop, policy.clone(), creds, passphrase, t, Role::Hop).await?;
        hops.push(conn.handle);
    }
    let stream = open(target, hops.last(), t).await?;
    let mut conn = login(stream, target, policy, logins.vm, passphrase, t, Role::Vm(reverse)).await?;
    conn.hops = hops;
    conn.via = target.jumps.iter().map(Target::display).collect();
    Ok(conn)
}

/// What a session is for.
enum Role {
    /// The VM itself, taking the reverse tunnels' connections if given.
    Vm(Option<Arc<dyn Forwarded>>),
    /// A jump host: its one channel carries the next session, which reads it eagerly, so its
    /// window only bounds the bytes in flight and is sized for a long fat link.
    Hop,
}

/// A byte stream an SSH session runs over: a TCP socket, or a channel of a jump host's session.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A transport to `target` and the address to name in errors.
struct Transport {
    stream: Box<dyn Io>,
    addr: String,
}

/// TCP to `target`, or with `via` a `direct-tcpip` channel from that jump host to it.
async fn open(target: &Target, via: Option<&Handle<ClientHandler>>, t: Timeouts) -> Result<Transport, SshError> {
    let Some(via) = via else {
        let stream = tcp_connect(target, t).await?;
        let addr = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| target.host.clone());
        return Ok(Transport {
            stream: Box::new(SshStream(stream)),
            addr,
        });
    };
    let addr = format!("{}:{} (through the jump host)", target.host, target.port);
    let opened = tokio::time::timeout(
        t.connect,
        via.channel_open_direct_tcpip(target.host.clone(), u32::from(target.port), "127.0.0.1", 0),
    )
    .await;
    match opened {
        Ok(Ok(channel)) => Ok(Transport {
            stream: Box::new(channel.into_stream()),
            addr,
        }),
        Ok(Err(russh::Error::ChannelOpenFailure(ChannelOpenFailure::AdministrativelyProhibited))) => {
            Err(SshError::Handshake {
                addr,
                message: "the jump host's sshd forbids TCP forwarding: set `AllowTcpForwarding yes` in its \
                          /etc/ssh/sshd_config and reload sshd"
                    .into(),
            })
        }
        Ok(Err(e)) => Err(SshError::Unreachable {
            addr,
            message: format!(
                "the jump host could not connect to it ({}); check the VM is up and reachable from the jump host",
                match e {
                    russh::Error::ChannelOpenFailure(f) => format!("{f:?}"),
                    other => other.to_string(),
                }
            ),
        }),
        // Said apart from a direct timeout: it is the jump host that got no answer.
        Err(_) => Err(SshError::Unreachable {
            addr,
            message: format!(
                "the jump host got no answer from it within {} s; check that the VM is up and that the jump host \
                 can reach it",
                t.connect.as_secs()
            ),
        }),
    }
}

/// Runs the SSH handshake over `transport`, checks the host key, and logs in.
async fn login(
    transport: Transport,
    target: &Target,
    policy: HostKeyPolicy,
    source: Arc<dyn Credentials>,
    passphrase: Option<&str>,
    t: Timeouts,
    role: Role,
) -> Result<Connection, SshError> {
    let Transport { stream, addr } = transport;
    let reverse = match role {
        Role::Vm(ref r) => r.clone(),
        Role::Hop => None,
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let closed = Arc::new(Notify::new());
    // This host's files, as ~/.ssh/config names them: each hop may have its own.
    let policy = HostKeyPolicy {
        files: target.host_keys.apply(&policy.files),
        ..policy
    };
    let handler = ClientHandler {
        host: target.host.clone(),
        port: target.port,
        policy: policy.clone(),
        seen: seen.clone(),
        closed: closed.clone(),
        reverse,
        revoked: target.host_keys.revoked.clone(),
        hop: matches!(role, Role::Hop),
    };
    let mut config = client_config(target, &policy).await;
    if matches!(role, Role::Hop) {
        config.window_size = HOP_WINDOW;
    }
    let config = Arc::new(config);
    let refusal = |seen: &Arc<Mutex<Seen>>| seen.lock().ok().and_then(|mut s| s.refusal.take());
    let mut handle = match tokio::time::timeout(t.handshake, client::connect_stream(config, stream, handler)).await {
        Err(_) => {
            return Err(SshError::Handshake {
                addr,
                message: format!("no SSH handshake within {} s", t.handshake.as_secs()),
            });
        }
        Ok(Err(e)) => {
            return Err(refusal(&seen).unwrap_or(SshError::Handshake {
                addr,
                message: e.to_string(),
            }));
        }
        Ok(Ok(h)) => h,
    };
    // Reading key files and decrypting them (bcrypt, on purpose slow) is blocking work.
    let pass = passphrase.map(|p| zeroize::Zeroizing::new(p.to_owned()));
    let creds = tokio::task::spawn_blocking(move || source.credentials(pass.as_ref().map(|p| p.as_str())))
        .await
        .map_err(|e| SshError::Handshake {
            addr: addr.clone(),
            message: format!("the key loader failed: {e}"),
        })??;
    if creds.is_empty() {
        return Err(SshError::NoCredentials {
            target: target.display(),
        });
    }
    let mut tried = Vec::new();
    let refused = |e: russh::Error| SshError::Handshake {
        addr: addr.clone(),
        message: e.to_string(),
    };
    let auth = async {
        for cred in &creds {
            match cred {
                Credential::Key { label, key } => {
                    tried.push(label.clone());
                    let hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
                    let res = handle
                        .authenticate_publickey(&target.user, PrivateKeyWithHashAlg::new(key.clone(), hash))
                        .await
                        .map_err(refused)?;
                    if matches!(res, AuthResult::Success) {
                        return Ok(true);
                    }
                }
                Credential::Password(password) => {
                    tried.push("password".into());
                    let res = handle
                        .authenticate_password(&target.user, password.as_str())
                        .await
                        .map_err(refused)?;
                    if matches!(res, AuthResult::Success) {
                        return Ok(true);
                    }
                }
                Credential::Agent { socket } => {
                    let Ok(mut agent) = crate::endpoint::ssh_agent(socket).await else {
                        continue;
                    };
                    let Ok(ids) = agent.request_identities().await else {
                        continue;
                    };
                    for id in ids {
                        let key = id.public_key().into_owned();
                        tried.push(format!("agent key {}", known_hosts::fingerprint(&key)));
                        let hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
                        if let Ok(AuthResult::Success) = handle
                            .authenticate_publickey_with(&target.user, key, hash, &mut agent)
                            .await
                        {
                            return Ok(true);
                        }
                    }
                }
            }
        }
        Ok::<bool, SshError>(false)
    };
    let ok = tokio::time::timeout(t.handshake, auth)
        .await
        .map_err(|_| SshError::Handshake {
            addr: addr.clone(),
            message: "login timed out".into(),
        })??;
    if !ok {
        return Err(SshError::AuthFailed {
            target: target.display(),
            user: target.user.clone(),
            tried: tried.join(", "),
        });
    }
    let server_key = seen.lock().ok().and_then(|s| s.scanned.as_ref().map(|s| s.key.clone()));
    Ok(Connection {
        handle,
        closed,
        server_key,
        hops: Vec::new(),
        via: Vec::new(),
    })
}

/// Fetches the host key a VM presents, without logging in to it or trusting anything. Behind jump
/// hosts, each hop must be logged in to first; the first hop whose key is not known yet is the
/// one returned (with its target), so each is shown and confirmed in turn, as for a VM. `hops`:
/// what the hops are offered (see [`crate::identity::Logins`]).
pub async fn fetch_host_key(
    target: &Target,
    files: Vec<PathBuf>,
    hops_source: Arc<dyn Credentials>,
    t: Timeouts,
) -> Result<(Target, Scanned), SshError> {
    let policy = HostKeyPolicy {
        files: files.clone(),
        accept_new: false,
        confirmed: Confirmation::default(),
        scan: false,
    };
    let mut hops: Vec<Handle<ClientHandler>> = Vec::new();
    for hop in &target.jumps {
        let scanned = scan(hop, hops.last(), &files, t).await?;
        if scanned.status != HostKeyStatus::Known && scanned.authority.is_none() {
            return Ok((hop.clone(), scanned));
        }
        let stream = open(hop, hops.last(), t).await?;
        let conn = login(
            stream,
            hop,
            policy.clone(),
            crate::identity::for_hop(hop, hops_source.clone()),
            None,
            t,
            Role::Hop,
        )
        .await?;
        hops.push(conn.handle);
    }
    Ok((target.clone(), scan(target, hops.last(), &files, t).await?))
}

/// A host key as a scan saw it.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub key: PublicKey,
    /// What the known_hosts files say of `key`.
    pub status: HostKeyStatus,
    /// The certificate authority that vouched for it, as "SHA256:… (file:line)", if one did.
    pub authority: Option<String>,
    /// Why the host's certificate vouched for nothing, when it showed one.
    pub untrusted_certificate: Option<String>,
}

/// The host key `target` presents, reached directly or through `via`; the handshake ends there.
async fn scan(
    target: &Target,
    via: Option<&Handle<ClientHandler>>,
    files: &[PathBuf],
    t: Timeouts,
) -> Result<Scanned, SshError> {
    let Transport { stream, addr } = open(target, via, t).await?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let policy = HostKeyPolicy {
        files: target.host_keys.apply(files),
        accept_new: false,
        confirmed: Confirmation::default(),
        scan: true,
    };
    let handler = ClientHandler {
        host: target.host.clone(),
        port: target.port,
        policy: policy.clone(),
        seen: seen.clone(),
        closed: Arc::new(Notify::new()),
        reverse: None,
        revoked: target.host_keys.revoked.clone(),
        hop: false,
    };
    let config = Arc::new(client_config(target, &policy).await);
    let _ = tokio::time::timeout(t.handshake, client::connect_stream(config, stream, handler)).await;
    seen.lock()
        .ok()
        .and_then(|mut s| s.scanned.take())
        .ok_or(SshError::Handshake {
            addr,
            message: "the server presented no host key".into(),
        })
}

/// What an SSH channel-open failure means for a forward, in the user's words.
pub fn describe_open_failure(e: &russh::Error, what: &str) -> String {
    match e {
        russh::Error::ChannelOpenFailure(ChannelOpenFailure::AdministrativelyProhibited) => format!(
            "the VM's sshd forbids forwarding to {what}: set `AllowStreamLocalForwarding yes` (for the Docker socket) \
             or `AllowTcpForwarding yes` (for ports) in /etc/ssh/sshd_config on the VM and reload sshd"
        ),
        russh::Error::ChannelOpenFailure(ChannelOpenFailure::ConnectFailed) => {
            format!("the VM could not connect to {what}: nothing is listening there")
        }
        russh::Error::ChannelOpenFailure(f) => format!("the VM refused to open {what}: {f:?}"),
        other => format!("cannot open {what} over SSH: {other}"),
    }
}

#[cfg(test)]
#[path = "tests/ssh.rs"]
mod tests;
