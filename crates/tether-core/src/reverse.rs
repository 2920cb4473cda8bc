//! Reverse tunnels: ports the VM listens on (sshd's `tcpip-forward`, on the VM's loopback only)
//! whose connections come back over the VM's one SSH connection to ports on this laptop.
//!
//! The [`Table`] says which of the VM's ports Tether asked for and where each one goes. sshd opens
//! a `forwarded-tcpip` channel per connection; a channel for a port not in the table is refused,
//! so the VM can reach only the laptop ports the user named, whatever it asks for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{ChannelOpenHandle, Handle, Msg};
use russh::{Channel, ChannelOpenFailure};

use crate::flow::Budget;
use crate::forward::Counters;
use crate::ssh::{ClientHandler, Forwarded};

/// How long the VM has to answer a `tcpip-forward` request, and the laptop's port to accept.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
const LOCAL_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The VM's loopback: the only address Tether asks sshd to listen on.
pub const VM_LOOPBACK: &str = "127.0.0.1";

#[derive(Debug, Clone, thiserror::Error)]
pub enum ReverseError {
    #[error(
        "the VM refused to listen on its port {port}: its sshd must allow it (`AllowTcpForwarding yes` or `remote`, \
         and `PermitListen` must include {port}), and nothing else on the VM may hold that port; \
         check `sudo sshd -T | grep -Ei 'allowtcpforwarding|permitlisten'` and `ss -ltn` on the VM, or pick another port"
    )]
    Refused { port: u16 },
    #[error("the VM did not answer the request to listen on its port {port} within {} s", ANSWER_TIMEOUT.as_secs())]
    Timeout { port: u16 },
    #[error("the SSH connection closed before the VM answered the request to listen on its port {port}")]
    Closed { port: u16 },
}

struct Entry {
    local: u16,
    counters: Arc<Counters>,
}

/// The reverse tunnels a session asked the VM for, shared with its SSH handler.
pub struct Table {
    ports: Mutex<HashMap<u16, Entry>>,
    budget: Arc<Budget>,
    rtt: Arc<AtomicU64>,
}

impl Table {
    pub fn new(budget: Arc<Budget>, rtt: Arc<AtomicU64>) -> Arc<Table> {
        Arc::new(Table {
            ports: Mutex::new(HashMap::new()),
            budget,
            rtt,
        })
    }

    /// Sends the VM's port `remote` to laptop port `local` from now on; its counters start anew
    /// when the destination changes.
    pub fn set(&self, remote: u16, local: u16) {
        if let Ok(mut ports) = self.ports.lock() {
            if ports.get(&remote).is_some_and(|e| e.local == local) {
                return;
            }
            ports.insert(
                remote,
                Entry {
                    local,
                    counters: Arc::default(),
                },
            );
        }
    }

    pub fn remove(&self, remote: u16) {
        if let Ok(mut ports) = self.ports.lock() {
            ports.remove(&remote);
        }
    }

    /// (connections open now, connections so far) on the VM's port `remote`.
    pub fn counts(&self, remote: u16) -> (u64, u64) {
        self.ports
            .lock()
            .ok()
            .and_then(|p| {
                p.get(&remote).map(|e| {
                    (
                        e.counters.active.load(Ordering::Relaxed),
                        e.counters.accepted.load(Ordering::Relaxed),
                    )
                })
            })
            .unwrap_or((0, 0))
    }
}

impl Forwarded for Table {
    /// A connection sshd accepted on the VM's `port`: connects to the laptop's port first and
    /// confirms the channel only then, so a client on the VM sees a refused laptop service as a
    /// closed connection at once. Runs in its own task: the SSH session never waits on it.
    fn open(&self, port: u32, channel: Channel<Msg>, reply: ChannelOpenHandle) {
        let found = u16::try_from(port).ok().and_then(|p| {
            self.ports
                .lock()
                .ok()
                .and_then(|ports| ports.get(&p).map(|e| (e.local, e.counters.clone())))
        });
        let Some((local, counters)) = found else {
            tracing::warn!(
                port,
                "the VM opened a reverse connection on a port Tether did not ask for; refused"
            );
            tokio::spawn(reply.reject(ChannelOpenFailure::AdministrativelyProhibited));
            return;
        };
        let budget = self.budget.clone();
        let rtt = self.rtt.clone();
        tokio::spawn(async move {
            counters.accepted.fetch_add(1, Ordering::Relaxed);
            let stream = match tokio::time::timeout(LOCAL_CONNECT_TIMEOUT, connect_local(local)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(remote = port, local, error = %e, "nothing answers on this laptop's port for a reverse tunnel");
                    reply.reject(ChannelOpenFailure::ConnectFailed).await;
                    return;
                }
                Err(_) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    reply.reject(ChannelOpenFailure::ConnectFailed).await;
                    return;
                }
            };
            stream.set_nodelay(true).ok();
            reply.accept().await;
            counters.active.fetch_add(1, Ordering::Relaxed);
            let stats = crate::pump::bridge(stream, channel, budget, true, rtt, Vec::new()).await;
            counters.active.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!(?stats, remote = port, local, "reverse stream finished");
        });
    }
}

/// The laptop's service on `port`: IPv4 loopback, else IPv6 (a server bound to `localhost` may
/// have taken either).
async fn connect_local(port: u16) -> std::io::Result<tokio::net::TcpStream> {
    match tokio::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port)).await {
        Ok(s) => Ok(s),
        Err(e) => tokio::net::TcpStream::connect((std::net::Ipv6Addr::LOCALHOST, port))
            .await
            .map_err(|_| e),
    }
}

/// Asks the VM to listen on its loopback's `port`.
pub async fn request(link: &Handle<ClientHandler>, port: u16) -> Result<(), ReverseError> {
    match tokio::time::timeout(ANSWER_TIMEOUT, link.tcpip_forward(VM_LOOPBACK, u32::from(port))).await {
        Err(_) => Err(ReverseError::Timeout { port }),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(russh::Error::RequestDenied)) => Err(ReverseError::Refused { port }),
        Ok(Err(_)) => Err(ReverseError::Closed { port }),
    }
}

/// Tells the VM to stop listening on `port`. Best effort: a link that is gone took the listener
/// with it.
pub async fn cancel(link: &Handle<ClientHandler>, port: u16) {
    let _ = tokio::time::timeout(ANSWER_TIMEOUT, link.cancel_tcpip_forward(VM_LOOPBACK, u32::from(port))).await;
}
