//! The session's reverse tunnels: asked of the VM whenever a link comes up, cancelled when the
//! user removes them, and reported with what the VM last answered.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::api::{Event, ForwardState, ReverseStatus};
use crate::config::ReverseMap;
use crate::error::EngineError;
use crate::reverse::{self, ReverseError};

use super::{Actor, Link};

/// One reverse tunnel of the profile and the VM's last answer for it.
pub(super) struct Reverse {
    pub(super) map: ReverseMap,
    pub(super) state: ForwardState,
    pub(super) error: Option<ReverseError>,
    /// Where the VM was last asked to listen (its loopback, or the address `map.bind` named);
    /// a cancel goes to the same address.
    address: Option<IpAddr>,
    /// Stops the request (and its retries) under way for this tunnel.
    asking: CancellationToken,
}

impl Reverse {
    pub(super) fn new(map: ReverseMap) -> Reverse {
        Reverse {
            map,
            state: ForwardState::Idle,
            error: None,
            address: None,
            asking: CancellationToken::new(),
        }
    }
}

impl Drop for Reverse {
    fn drop(&mut self) {
        self.asking.cancel();
    }
}

/// Retries of a tunnel restored on a new link, which the VM refused: the sshd session of the
/// link that died may still hold the port until it notices (the laptop's FIN arrives only once
/// the network is back), so the port is asked for again, 1 s, 2 s, … up to 32 s apart.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(32);

/// The VM's answer to one `tcpip-forward`, on the link it was asked on.
pub(super) struct ReverseDone {
    link: Link,
    remote: u16,
    /// Where it was asked, once known.
    address: Option<IpAddr>,
    result: Result<(), ReverseError>,
}

/// A profile change waiting for the VM's answers for the ports it added.
pub(super) type ReverseWaiter = (Vec<u16>, oneshot::Sender<Result<(), EngineError>>);

impl Actor {
    /// Asks the VM to listen on `remote`'s port, if a link is up. `retry`: a refusal is
    /// reported and asked again (a tunnel restored on a new link), until it is granted.
    fn request_reverse(&mut self, remote: u16, retry: bool) -> bool {
        let Some((link, _)) = &self.ssh.conn else { return false };
        let Some(r) = self.reverse.tunnels.get_mut(&remote) else {
            return false;
        };
        // In the table before the VM listens, admitting nobody until the address is known: a
        // connection right after the answer is served if the tunnel admits it.
        self.reverse.table.set(remote, r.map.local);
        self.reverse.table.admit(remote, reverse::Admit::Nobody);
        let table = self.reverse.table.clone();
        r.state = ForwardState::Pending;
        r.error = None;
        r.asking.cancel();
        r.asking = CancellationToken::new();
        let stop = r.asking.clone();
        let link = link.clone();
        let done = self.reverse.done.clone();
        let (bind, socket) = (r.map.bind, self.profile.remote_socket.clone());
        self.shared.tasks.spawn(async move {
            let mut pause = RETRY_FIRST;
            loop {
                let ask = async {
                    // The bridge's gateway is looked up on every link: the engine may have moved it.
                    match reverse::address(&link, bind, &socket, remote).await {
                        Ok(addr) => {
                            table.admit(remote, reverse::Admit::checking(addr));
                            (Some(addr), reverse::request(&link, addr, remote).await)
                        }
                        Err(e) => (None, Err(e)),
                    }
                };
                let (address, result) = tokio::select! {
                    r = ask => r,
                    () = stop.cancelled() => return,
                };
                let again = retry
                    && matches!(
                        result,
                        Err(ReverseError::Refused { .. } | ReverseError::NoBridge { .. })
                    );
                if done
                    .send(ReverseDone {
                        link: link.clone(),
                        remote,
                        address,
                        result,
                    })
                    .is_err()
                    || !again
                {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stop.cancelled() => return,
                }
                pause = (pause * 2).min(RETRY_MAX);
            }
        });
        true
    }

    /// A new link: every reverse tunnel is asked for again.
    pub(super) fn request_all_reverse(&mut self) {
        let ports: Vec<u16> = self.reverse.tunnels.keys().copied().collect();
        for p in &ports {
            self.request_reverse(*p, true);
        }
        if !ports.is_empty() {
            self.announce_reverse();
        }
    }

    /// Tells the front ends, which follow events rather than poll.
    pub(super) fn announce_reverse(&self) {
        let _ = self.events.send(Event::Reverse {
            vm: self.name.clone(),
            reverse: self.reverse_status(),
        });
    }

    /// The link is gone, and the VM's listeners with it.
    pub(super) fn reverse_link_down(&mut self) {
        let any = !self.reverse.tunnels.is_empty();
        for r in self.reverse.tunnels.values_mut() {
            r.asking.cancel();
            r.state = ForwardState::Idle;
            r.error = None;
        }
        // Saved all the same: each is asked for again on the next link.
        for (_, reply) in self.reverse.waiters.drain(..) {
            let _ = reply.send(Ok(()));
        }
        if any {
            self.announce_reverse();
        }
    }

    pub(super) fn reverse_answered(&mut self, done: ReverseDone) {
        let current = self.ssh.conn.as_ref().is_some_and(|(l, _)| Arc::ptr_eq(l, &done.link));
        let Some(r) = self.reverse.tunnels.get_mut(&done.remote) else {
            return;
        };
        // A retry's answer may follow a refusal; one for a removed or re-asked tunnel never
        // arrives (its task was stopped).
        if !current || r.state == ForwardState::Listening || r.asking.is_cancelled() {
            return;
        }
        r.address = done.address;
        match done.result {
            Ok(()) => {
                tracing::info!(vm = %self.name, remote = done.remote, local = r.map.local, "reverse tunnel listening on the VM");
                r.state = ForwardState::Listening;
                r.error = None;
                self.reverse.table.set(done.remote, r.map.local);
                if let Some(addr) = done.address {
                    self.reverse.table.admit(done.remote, reverse::Admit::checked(addr));
                }
            }
            Err(e) => {
                tracing::warn!(vm = %self.name, remote = done.remote, error = %e, "reverse tunnel refused");
                self.reverse.table.remove(done.remote);
                r.state = ForwardState::Failed;
                r.error = Some(e);
            }
        }
        self.settle_reverse_waiters();
        self.announce_reverse();
        self.publish();
    }

    /// Answers the profile changes whose ports all have the VM's answer. A change the VM refused
    /// is taken back here (the caller then keeps the old profile on disk too).
    fn settle_reverse_waiters(&mut self) {
        let mut still = Vec::new();
        for (ports, reply) in std::mem::take(&mut self.reverse.waiters) {
            let pending = ports.iter().any(|p| {
                self.reverse
                    .tunnels
                    .get(p)
                    .is_some_and(|r| r.state == ForwardState::Pending)
            });
            if pending {
                still.push((ports, reply));
                continue;
            }
            let failed: Option<ReverseError> = ports.iter().find_map(|p| {
                let r = self.reverse.tunnels.get(p)?;
                (r.state == ForwardState::Failed).then(|| r.error.clone()).flatten()
            });
            let Some(error) = failed else {
                let _ = reply.send(Ok(()));
                continue;
            };
            for p in &ports {
                let gone = self.reverse.tunnels.remove(p);
                self.reverse.table.remove(*p);
                self.profile.reverse.retain(|m| m.remote != *p);
                self.cancel_reverse(*p, gone.and_then(|r| r.address));
            }
            let _ = reply.send(Err(error.into()));
        }
        self.reverse.waiters = still;
    }

    /// Makes the reverse tunnels match `wanted`; returns the VM's ports asked for anew, whose
    /// answers the profile change waits for.
    pub(super) fn apply_reverse(&mut self, wanted: &[ReverseMap]) -> Vec<u16> {
        let before = self.reverse_status();
        let gone: Vec<u16> = self
            .reverse
            .tunnels
            .keys()
            .copied()
            .filter(|p| !wanted.iter().any(|m| m.remote == *p))
            .collect();
        for p in gone {
            let r = self.reverse.tunnels.remove(&p);
            self.reverse.table.remove(p);
            self.cancel_reverse(p, r.and_then(|r| r.address));
        }
        let mut asked = Vec::new();
        for m in wanted {
            // Another address on the VM: the old listener goes, the new one is asked for.
            if let Some(r) = self.reverse.tunnels.get(&m.remote).filter(|r| r.map.bind != m.bind) {
                let address = r.address;
                self.reverse.tunnels.remove(&m.remote);
                self.reverse.table.remove(m.remote);
                self.cancel_reverse(m.remote, address);
            }
            match self.reverse.tunnels.get_mut(&m.remote) {
                Some(r) if r.map == *m => {}
                Some(r) => {
                    // Same port on the VM, another one here: only the table changes.
                    r.map = *m;
                    if r.state != ForwardState::Idle {
                        self.reverse.table.set(m.remote, m.local);
                    }
                }
                None => {
                    self.reverse.tunnels.insert(m.remote, Reverse::new(*m));
                    if self.request_reverse(m.remote, false) {
                        asked.push(m.remote);
                    }
                }
            }
        }
        if self.reverse_status() != before {
            self.announce_reverse();
        }
        asked
    }

    /// Stops the VM listening on `port` at `address` (if it was ever asked), on the live link.
    fn cancel_reverse(&self, port: u16, address: Option<IpAddr>) {
        if let (Some((link, _)), Some(addr)) = (&self.ssh.conn, address) {
            let link = link.clone();
            self.shared
                .tasks
                .spawn(async move { reverse::cancel(&link, addr, port).await });
        }
    }

    pub(super) fn reverse_status(&self) -> Vec<ReverseStatus> {
        self.reverse
            .tunnels
            .values()
            .map(|r| {
                let (active, total) = self.reverse.table.counts(r.map.remote);
                ReverseStatus {
                    remote: r.map.remote,
                    local: r.map.local,
                    state: r.state,
                    bind: r.map.bind.map(|b| b.to_string()),
                    address: (r.state == ForwardState::Listening)
                        .then_some(r.address)
                        .flatten()
                        .map(|a| a.to_string()),
                    error: r.error.as_ref().map(ToString::to_string),
                    active,
                    total,
                }
            })
            .collect()
    }
}
