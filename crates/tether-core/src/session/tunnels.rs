//! The session's local listeners: the Docker socket and the tunnel table, bound while the VM is
//! wanted, planned from the profile (manual) and the containers (automatic).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{Event, ForwardState, ForwardStatus};
use crate::config::{PortMap, Profile};
use crate::docker;
use crate::error::EngineError;
use crate::forward::{self, Counters, ForwardCtx, ForwardError, Remote};
use crate::ports::{self, AutoPolicy, AutoWant};
use crate::state::Input;

use super::Actor;

/// Accept loops told to stop whose port or socket is not free yet.
pub(super) type Closing = Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>;

/// A bound listener and its accept loop. Dropping it stops the loop and files the loop's task
/// in `closing`, where the actor awaits it before answering: removing a tunnel is removing it
/// from the table.
pub(super) struct Listener {
    cancel: CancellationToken,
    pub(super) counters: Arc<Counters>,
    /// The accept loop; the port or socket is free only once it has ended.
    task: Option<JoinHandle<()>>,
    closing: Closing,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let (Some(task), Ok(mut closing)) = (self.task.take(), self.closing.lock()) {
            closing.push(task);
        }
    }
}

pub(super) struct Tunnel {
    pub(super) map: PortMap,
    pub(super) listener: Option<Listener>,
    pub(super) error: Option<String>,
    /// For automatic forwards: the container served.
    pub(super) container: Option<String>,
}

impl Tunnel {
    /// A tunnel not bound yet: manual when `container` is `None`.
    pub(super) fn new(map: PortMap, container: Option<String>) -> Tunnel {
        Tunnel {
            map,
            listener: None,
            error: None,
            container,
        }
    }
}

impl Actor {
    pub(super) fn forward_ctx(
        &self,
        remote: Remote,
        local: String,
        counters: Arc<Counters>,
        cancel: CancellationToken,
    ) -> ForwardCtx {
        let user = self.user();
        let diagnose: Option<forward::Diagnose> = if matches!(remote, Remote::Socket(_)) {
            let link = self.ssh.link.subscribe();
            Some(Arc::new(move |path: String| {
                let link = link.borrow().clone();
                let user = user.clone();
                Box::pin(async move {
                    match link {
                        Some(h) => docker::diagnose(&h, &path, &user).await,
                        None => "the VM is not connected".to_string(),
                    }
                })
            }))
        } else {
            None
        };
        let pool = matches!(remote, Remote::Socket(_)).then(|| self.local.pool.clone());
        let binds = match (&remote, &self.shares) {
            (Remote::Socket(_), Some(s)) => Some(Arc::new(s.clone()) as Arc<dyn crate::dockerapi::Binds>),
            _ => None,
        };
        ForwardCtx {
            binds,
            pool,
            rtt: self.ssh.rtt_us.clone(),
            remote,
            link: self.ssh.link.subscribe(),
            down_reason: self.ssh.down_reason.subscribe(),
            counters,
            shared: self.shared.clone(),
            local,
            cancel,
            diagnose,
        }
    }

    /// Binds the Docker socket unless it is held already (an error stops the connect) and every
    /// tunnel (an error is recorded on that tunnel; the others still run).
    pub(super) fn bind_listeners(&mut self) -> Result<(), EngineError> {
        if self.local.docker.is_none() {
            self.bind_docker()?;
        }
        self.local.wanted = true;
        let ports: Vec<u16> = self.local.tunnels.keys().copied().collect();
        for port in ports {
            self.bind_tunnel(port);
        }
        Ok(())
    }

    /// Serves the VM's Docker endpoint; its clients wait for the link, or are told why there is
    /// none.
    pub(super) fn bind_docker(&mut self) -> Result<(), EngineError> {
        let path = self.paths.docker_socket(&self.name);
        let listener = forward::bind_local(&path)?;
        let counters = Arc::new(Counters::default());
        let cancel = CancellationToken::new();
        let ctx = self.forward_ctx(
            Remote::Socket(self.profile.remote_socket.clone()),
            path.display().to_string(),
            counters.clone(),
            cancel.clone(),
        );
        self.local.pool.set_path(&self.profile.remote_socket);
        // The pool is filled while the socket listens, and emptied when it stops.
        self.shared
            .tasks
            .spawn(self.local.pool.clone().run(self.ssh.link.subscribe(), cancel.clone()));
        let task = self.shared.tasks.spawn(forward::serve_local(listener, ctx));
        self.local.docker = Some(Listener {
            cancel,
            counters,
            task: Some(task),
            closing: self.local.closing.clone(),
        });
        Ok(())
    }

    pub(super) fn bind_tunnel(&mut self, port: u16) -> Option<ForwardError> {
        let map = self.local.tunnels.get(&port).map(|t| t.map)?;
        // Binding is synchronous in effect: std bind then hand to tokio.
        let res = std_bind(map.local, map.remote);
        let tunnel_state;
        let err = match res {
            Ok(l) => {
                let counters = Arc::new(Counters::default());
                let cancel = CancellationToken::new();
                let ctx = self.forward_ctx(
                    Remote::Tcp(map.remote),
                    format!("127.0.0.1:{}", map.local),
                    counters.clone(),
                    cancel.clone(),
                );
                match tokio::net::TcpListener::from_std(l) {
                    Ok(l) => {
                        let task = self.shared.tasks.spawn(forward::serve_tcp(l, ctx));
                        let closing = self.local.closing.clone();
                        tunnel_state = (
                            Some(Listener {
                                cancel,
                                counters,
                                task: Some(task),
                                closing,
                            }),
                            None,
                        );
                        None
                    }
                    Err(source) => {
                        let e = ForwardError::Bind {
                            port: map.local,
                            source,
                        };
                        tunnel_state = (None, Some(e.to_string()));
                        Some(e)
                    }
                }
            }
            Err(e) => {
                tracing::warn!(vm = %self.name, port, error = %e, "tunnel not bound");
                tunnel_state = (None, Some(e.to_string()));
                Some(e)
            }
        };
        if let Some(t) = self.local.tunnels.get_mut(&port) {
            (t.listener, t.error) = tunnel_state;
            let fs = t.status(true);
            let _ = self.events.send(Event::Forward {
                vm: self.name.clone(),
                forward: fs,
            });
        }
        err
    }

    pub(super) fn tear_down(&mut self) {
        if let Ok(mut c) = self.local.closing.lock() {
            c.retain(|t| !t.is_finished());
        }
        self.drop_link();
        if let Some(a) = self.ssh.attempt.take() {
            a.abort();
        }
        self.ssh.retry_at = None;
        self.local.wanted = false;
        // A named pipe stays held (see `bind_docker`'s caller); a socket goes with its file.
        if crate::endpoint::IN_FILESYSTEM && self.local.docker.take().is_some() {
            let path = self.paths.docker_socket(&self.name);
            let _ = std::fs::remove_file(&path);
            if let Some(dir) = path.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
        for t in self.local.tunnels.values_mut() {
            t.listener = None;
            t.error = None;
        }
        let reason = format!(
            "VM '{}' is not connected; run `tether connect {}`",
            self.name, self.name
        );
        let _ = self.ssh.down_reason.send(forward::Down {
            reason,
            since: Instant::now(),
        });
    }

    /// Applies a changed profile; returns the VM ports of reverse tunnels it asked the VM for.
    pub(super) fn apply_profile(&mut self, profile: Profile) -> Result<Vec<u16>, EngineError> {
        if let Some(s) = &self.shares {
            s.set_shares(profile.shares());
        }
        let wanted = self.local.wanted;
        let old: Vec<PortMap> = self
            .local
            .tunnels
            .values()
            .filter(|t| t.container.is_none())
            .map(|t| t.map)
            .collect();
        // A manual mapping wins over an automatic one on the same local port.
        for m in &profile.forwards {
            if self.local.tunnels.get(&m.local).is_some_and(|t| t.container.is_some()) {
                self.local.tunnels.remove(&m.local);
            }
        }
        let removed: Vec<PortMap> = old.iter().filter(|m| !profile.forwards.contains(m)).copied().collect();
        let added: Vec<PortMap> = profile.forwards.iter().filter(|m| !old.contains(m)).copied().collect();
        if wanted {
            // Bind new ports first; on any failure undo them and keep the old profile.
            let mut bound = Vec::new();
            for m in &added {
                self.local.tunnels.insert(m.local, Tunnel::new(*m, None));
                if let Some(e) = self.bind_tunnel(m.local) {
                    for p in bound.iter().chain(std::iter::once(&m.local)) {
                        self.local.tunnels.remove(p);
                    }
                    self.publish();
                    return Err(e.into());
                }
                bound.push(m.local);
            }
        } else {
            for m in &added {
                self.local.tunnels.insert(m.local, Tunnel::new(*m, None));
            }
        }
        for m in removed {
            self.local.tunnels.remove(&m.local);
        }
        let asked = self.apply_reverse(&profile.reverse);
        let reconnect = profile.host != self.profile.host
            || profile.port != self.profile.port
            || profile.user != self.profile.user
            || profile.identity != self.profile.identity
            || profile.remote_socket != self.profile.remote_socket;
        self.profile = profile;
        if reconnect && self.ssh.conn.is_some() {
            // Connection settings changed: re-establish with the new ones.
            self.input(Input::LinkLost, None);
        }
        self.publish();
        Ok(asked)
    }

    /// Makes the automatic forwards match `wants`, as [`ports::plan_auto`] plans: each new one
    /// takes the first of its candidate ports that nothing else holds.
    pub(super) fn apply_auto(&mut self, wants: Vec<AutoWant>, policy: AutoPolicy) {
        let existing: Vec<ports::Existing> = self
            .local
            .tunnels
            .values()
            .map(|t| ports::Existing {
                local: t.map.local,
                remote: t.map.remote,
                container: t.container.clone(),
            })
            .collect();
        let plan = ports::plan_auto(&existing, &wants, policy);
        for local in &plan.remove {
            self.local.tunnels.remove(local);
        }
        for (local, container) in plan.relabel {
            if let Some(t) = self.local.tunnels.get_mut(&local) {
                t.container = Some(container);
            }
        }
        let wanted = self.local.wanted;
        for new in plan.add {
            for local in new.candidates {
                // Taken by a forward added just before this one.
                if self.local.tunnels.contains_key(&local) {
                    continue;
                }
                let map = PortMap {
                    local,
                    remote: new.remote,
                };
                self.local
                    .tunnels
                    .insert(local, Tunnel::new(map, Some(new.container.clone())));
                // A port in use by anyone else is skipped for the next candidate.
                if !wanted || self.bind_tunnel(local).is_none() {
                    tracing::info!(vm = %self.name, local, remote = new.remote, container = %new.container, "automatic forward");
                    break;
                }
                self.local.tunnels.remove(&local);
            }
        }
    }
}

/// Binds synchronously so the actor learns at once whether a tunnel is up.
pub(super) fn std_bind(port: u16, remote: u16) -> Result<std::net::TcpListener, ForwardError> {
    forward::bind_loopback(port).map_err(|e| forward::classify_bind_error(port, remote, e))
}

impl Tunnel {
    /// What the status says of this tunnel; `wanted`: the VM's listeners should be up.
    pub(super) fn status(&self, wanted: bool) -> ForwardStatus {
        let (state, active, total, refused) = match (&self.listener, &self.error) {
            (Some(l), _) => (
                ForwardState::Listening,
                l.counters.active.load(Ordering::Relaxed),
                l.counters.accepted.load(Ordering::Relaxed),
                l.counters.refused.load(Ordering::Relaxed),
            ),
            (None, Some(_)) => (ForwardState::Failed, 0, 0, 0),
            (None, None) => (
                if wanted {
                    ForwardState::Failed
                } else {
                    ForwardState::Idle
                },
                0,
                0,
                0,
            ),
        };
        ForwardStatus {
            local: self.map.local,
            remote: self.map.remote,
            state,
            error: self.error.clone(),
            active,
            total,
            refused,
            auto: self.container.is_some(),
            container: self.container.clone(),
        }
    }
}
