//! Reverse tunnels: ports the VM listens on (sshd's `tcpip-forward`, on the VM's loopback unless
//! the user named one other address) whose connections come back over the VM's one SSH
//! connection to ports on this laptop.
//!
//! sshd decides the address itself (`GatewayPorts`): `no` binds the loopback whatever was
//! asked, `yes` every address (OpenSSH's `channel_fwd_bind_addr`), even for a tunnel asked on
//! the loopback. So every tunnel is checked against the VM's own list of listening sockets, and
//! taken back if sshd opened it anywhere else.
//!
//! The [`Table`] says which of the VM's ports Tether asked for, where each one goes and whom it
//! admits. sshd opens a `forwarded-tcpip` channel per connection; a channel for a port not in the
//! table is refused, so the VM can reach only the laptop ports the user named, whatever it asks
//! for. While a tunnel is being checked nothing is admitted but what can only have come through
//! the loopback, so no connection from another network is served in the check's window and
//! outlives the take-back; a loopback tunnel admits only loopback peers for its whole life,
//! which holds on VMs whose sockets cannot be listed too.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{ChannelOpenHandle, Handle, Msg};
use russh::{Channel, ChannelOpenFailure};

use crate::config::ReverseBind;
use crate::flow::Budget;
use crate::forward::Counters;
use crate::ssh::{ClientHandler, Forwarded};

/// How long the VM has to answer a `tcpip-forward` request, and the laptop's port to accept.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
const LOCAL_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ReverseError {
    #[error(
        "the VM refused to listen on its port {port}: its sshd must allow it (`AllowTcpForwarding yes` or `remote`, \
         and `PermitListen` must include {port}), and nothing else on the VM may hold that port; \
         check `sudo sshd -T | grep -Ei 'allowtcpforwarding|permitlisten'` and `ss -ltn` on the VM, or pick another port"
    )]
    Refused { port: u16 },
    #[error(
        "the VM's sshd listened on its loopback instead of {addr}:{port}, so containers cannot reach it: its \
         GatewayPorts is `no`; set `GatewayPorts clientspecified` in /etc/ssh/sshd_config on the VM and reload sshd \
         (Tether took the tunnel back)"
    )]
    LoopbackOnly { addr: std::net::IpAddr, port: u16 },
    #[error(
        "the VM's sshd listened on every address instead of {addr}:{port} (its GatewayPorts is `yes`), which would \
         open this laptop's service to every network the VM is on; Tether took the tunnel back. Set \
         `GatewayPorts clientspecified` (or `no`, if tunnels need only the VM's loopback) in /etc/ssh/sshd_config on \
         the VM and reload sshd"
    )]
    TooWide { addr: std::net::IpAddr, port: u16 },
    #[error("cannot find the VM's Docker bridge gateway for the tunnel on its port {port}: {message}")]
    NoBridge { port: u16, message: String },
    #[error("the VM did not answer the request to listen on its port {port} within {} s", ANSWER_TIMEOUT.as_secs())]
    Timeout { port: u16 },
    #[error("the SSH connection closed before the VM answered the request to listen on its port {port}")]
    Closed { port: u16 },
}

/// Whose connections a reverse tunnel serves, by the peer address sshd reports for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Being checked on an address other than the loopback: nobody yet.
    Nobody,
    /// Peers on the VM's loopback only: a tunnel asked there, checked or not.
    Loopback,
    /// Anyone who reached the address the tunnel was checked on.
    Anyone,
}

impl Admit {
    /// What a tunnel on `addr` admits once the VM's listeners were found as asked.
    pub fn checked(addr: IpAddr) -> Admit {
        if addr.is_loopback() {
            Admit::Loopback
        } else {
            Admit::Anyone
        }
    }

    /// What it admits while being checked.
    pub fn checking(addr: IpAddr) -> Admit {
        if addr.is_loopback() {
            Admit::Loopback
        } else {
            Admit::Nobody
        }
    }

    fn allows(self, originator: &str) -> bool {
        match self {
            Admit::Nobody => false,
            // An IPv4 peer seen through an IPv6 socket (::ffff:127.0.0.1) counts as itself.
            Admit::Loopback => originator
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.to_canonical().is_loopback()),
            Admit::Anyone => true,
        }
    }
}

struct Entry {
    local: u16,
    admit: Admit,
    counters: Arc<Counters>,
}

/// The reverse tunnels a session asked the VM for, shared with its SSH handler.
pub struct Table {
    ports: Mutex<HashMap<u16, Entry>>,
    budget: Arc<Budget>,
    rtt: Arc<AtomicU64>,
    /// Most connections one tunnel carries at once (`settings.max_streams`, as forwards).
    max_streams: Arc<AtomicUsize>,
    /// The engine's tasks: each reverse connection's joins them.
    tasks: crate::tasks::Tasks,
}

impl Table {
    pub fn new(shared: &crate::forward::Shared, rtt: Arc<AtomicU64>) -> Arc<Table> {
        Arc::new(Table {
            ports: Mutex::new(HashMap::new()),
            budget: shared.budget.clone(),
            rtt,
            max_streams: shared.max_streams.clone(),
            tasks: shared.tasks.clone(),
        })
    }

    /// Sends the VM's port `remote` to laptop port `local` from now on; its counters start anew
    /// when the destination changes. A new entry admits nobody until [`Table::admit`] says.
    pub fn set(&self, remote: u16, local: u16) {
        if let Ok(mut ports) = self.ports.lock() {
            let admit = match ports.get(&remote) {
                Some(e) if e.local == local => return,
                Some(e) => e.admit,
                None => Admit::Nobody,
            };
            ports.insert(
                remote,
                Entry {
                    local,
                    admit,
                    counters: Arc::default(),
                },
            );
        }
    }

    /// Whom the tunnel on the VM's port `remote` serves from now on.
    pub fn admit(&self, remote: u16, admit: Admit) {
        if let Ok(mut ports) = self.ports.lock()
            && let Some(e) = ports.get_mut(&remote)
        {
            e.admit = admit;
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
    fn open(&self, port: u32, originator: &str, channel: Channel<Msg>, reply: ChannelOpenHandle) {
        let found = u16::try_from(port).ok().and_then(|p| {
            self.ports
                .lock()
                .ok()
                .and_then(|ports| ports.get(&p).map(|e| (e.local, e.admit, e.counters.clone())))
        });
        let Some((local, admit, counters)) = found else {
            tracing::warn!(
                port,
                "the VM opened a reverse connection on a port Tether did not ask for; refused"
            );
            self.tasks
                .spawn(reply.reject(ChannelOpenFailure::AdministrativelyProhibited));
            return;
        };
        if !admit.allows(originator) {
            tracing::warn!(
                port,
                originator,
                ?admit,
                "refused a reverse connection from an address the tunnel does not serve"
            );
            counters.refused.fetch_add(1, Ordering::Relaxed);
            self.tasks
                .spawn(reply.reject(ChannelOpenFailure::AdministrativelyProhibited));
            return;
        }
        let limit = self.max_streams.load(Ordering::Relaxed) as u64;
        let held = match crate::forward::hold(&counters, limit) {
            Ok(h) => h,
            Err(refused) => {
                if refused.log {
                    tracing::warn!(
                        port,
                        limit,
                        refused = refused.count,
                        "refused a reverse connection: {limit} are already open on this tunnel \
                         (settings.max_streams in the config raises the limit)"
                    );
                }
                self.tasks.spawn(reply.reject(ChannelOpenFailure::ResourceShortage));
                return;
            }
        };
        let budget = self.budget.clone();
        let rtt = self.rtt.clone();
        self.tasks.spawn(async move {
            let _held = held;
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
            let stats = crate::pump::bridge(stream, channel, budget, true, rtt, Vec::new(), None).await;
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

/// Where the VM is asked to listen for a tunnel on `port`: its loopback, the one address the
/// user named, or its Docker bridge's gateway, looked up now through `socket`.
pub async fn address(
    link: &Handle<ClientHandler>,
    bind: Option<ReverseBind>,
    socket: &str,
    port: u16,
) -> Result<IpAddr, ReverseError> {
    match bind {
        None => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Some(ReverseBind::Addr(ip)) => Ok(ip),
        Some(ReverseBind::Docker) => crate::docker::bridge_gateway(link, socket)
            .await
            .map_err(|message| ReverseError::NoBridge { port, message }),
    }
}

/// Asks the VM to listen on `addr`'s `port`, then checks the VM's listening sockets: sshd may
/// have bound another address (see the module's note). The caller's table admits no more than
/// [`Admit::checking`] meanwhile.
pub async fn request(link: &Handle<ClientHandler>, addr: IpAddr, port: u16) -> Result<(), ReverseError> {
    match tokio::time::timeout(ANSWER_TIMEOUT, link.tcpip_forward(addr.to_string(), u32::from(port))).await {
        Err(_) => return Err(ReverseError::Timeout { port }),
        Ok(Ok(_)) => {}
        Ok(Err(russh::Error::RequestDenied)) => return Err(ReverseError::Refused { port }),
        Ok(Err(_)) => return Err(ReverseError::Closed { port }),
    }
    let out = crate::remote::run(
        link,
        "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null",
        None,
        ANSWER_TIMEOUT,
    )
    .await;
    let found = match out {
        Ok(o) if !o.stdout.is_empty() => listeners(&o.stdout, port),
        // Not Linux, or no /proc: sshd's word is all there is (a loopback tunnel still admits
        // only loopback peers).
        _ => {
            tracing::warn!(%addr, port, "cannot list the VM's listening sockets; trusting sshd's bind");
            return Ok(());
        }
    };
    let problem = if found.iter().any(|ip| ip.is_unspecified()) {
        Some(ReverseError::TooWide { addr, port })
    } else if !addr.is_loopback() && !found.contains(&addr) && found.iter().any(IpAddr::is_loopback) {
        Some(ReverseError::LoopbackOnly { addr, port })
    } else {
        None
    };
    match problem {
        Some(e) => {
            cancel(link, addr, port).await;
            Err(e)
        }
        None => Ok(()),
    }
}

/// The addresses with a TCP socket listening on `port` in the text of /proc/net/tcp and tcp6.
pub fn listeners(proc_net_tcp: &str, port: u16) -> Vec<IpAddr> {
    const LISTEN: &str = "0A";
    let mut out = Vec::new();
    for line in proc_net_tcp.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
            continue;
        };
        let Some((hex_addr, hex_port)) = local.split_once(':') else {
            continue;
        };
        if *state != LISTEN || u16::from_str_radix(hex_port, 16).ok() != Some(port) {
            continue;
        }
        // The kernel prints each 32-bit word of the address in host order (little-endian here).
        let words: Option<Vec<u32>> = (0..hex_addr.len() / 8)
            .map(|i| {
                hex_addr
                    .get(i * 8..i * 8 + 8)
                    .and_then(|w| u32::from_str_radix(w, 16).ok())
            })
            .collect();
        let bytes: Vec<u8> = words.unwrap_or_default().iter().flat_map(|w| w.to_le_bytes()).collect();
        let ip = match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(bytes.as_slice()).ok().map(|b| {
                let v6 = std::net::Ipv6Addr::from(b);
                // An IPv4 socket seen through tcp6 (::ffff:a.b.c.d) is that IPv4 address.
                v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
            }),
            _ => None,
        };
        out.extend(ip);
    }
    out
}

/// Tells the VM to stop listening on `addr`'s `port`. Best effort: a link that is gone took the
/// listener with it.
pub async fn cancel(link: &Handle<ClientHandler>, addr: IpAddr, port: u16) {
    let _ = tokio::time::timeout(
        ANSWER_TIMEOUT,
        link.cancel_tcpip_forward(addr.to_string(), u32::from(port)),
    )
    .await;
}

#[cfg(test)]
#[path = "tests/reverse.rs"]
mod tests;
