//! One actor per VM: owns its SSH connection, its local listeners and its state, and is driven
//! by commands from the engine, by link and probe results, by backoff timers and by network
//! changes. Decisions come from the pure [`state::step`]; this module only does the I/O.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use russh::client::Handle;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::clock::unix_ms_of as unix_ms;
use crate::config::{PortMap, Profile};
use crate::docker;
use crate::error::EngineError;
use crate::forward::{self, Counters, ForwardCtx, ForwardError, Remote};

use crate::api::{ConnectReport, EngineInfo, ErrorBody, Event, ForwardStatus, UnforwardedPort, VmStatus};
use crate::keystore::Keys;
use crate::netwatch::NetChanges;
use crate::paths::Paths;
use crate::ports::{self, AutoPolicy, AutoWant};
use crate::ssh::{self, ClientHandler, Connection, HostKeyPolicy, SshError};
use crate::state::{self, Action, Input, State};
use crate::{backoff, target};

/// How often the liveness probe runs, and how long one may take. Two misses in a row mean the
/// link is dead: worst case about `PROBE_EVERY + 2 * PROBE_TIMEOUT` (8 s) after it died.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// The probe's deadline right after a network change or wake (at least; 4 RTTs on slow links).
pub const RECHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the Docker engine is asked for its version while connected.
pub const ENGINE_EVERY: Duration = Duration::from_secs(15);

/// Options for one connect request.
#[derive(Default)]
pub struct ConnectOpts {
    pub accept_new: bool,
    pub confirmed_fingerprint: Option<String>,
    pub passphrase: Option<Zeroizing<String>>,
}

enum Cmd {
    Connect(ConnectOpts, oneshot::Sender<Result<ConnectReport, EngineError>>),
    Disconnect(oneshot::Sender<()>),
    Profile(Profile, oneshot::Sender<Result<(), EngineError>>),
    Auto(Vec<AutoWant>, Vec<UnforwardedPort>, AutoPolicy, oneshot::Sender<()>),
    Arch(Option<String>, oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// Cheap, cloneable handle to a session actor.
#[derive(Clone)]
pub struct SessionHandle {
    cmd: mpsc::Sender<Cmd>,
    status: watch::Receiver<VmStatus>,
    link: watch::Receiver<Option<Link>>,
}

impl SessionHandle {
    /// The live SSH connection, if the VM is connected now.
    pub fn link(&self) -> Option<Link> {
        self.link.borrow().clone()
    }

    pub fn status(&self) -> VmStatus {
        self.status.borrow().clone()
    }

    pub fn watch(&self) -> watch::Receiver<VmStatus> {
        self.status.clone()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(make(tx)).await.map_err(|_| EngineError::ShuttingDown)?;
        rx.await.map_err(|_| EngineError::ShuttingDown)
    }

    pub async fn connect(&self, opts: ConnectOpts) -> Result<ConnectReport, EngineError> {
        self.ask(|tx| Cmd::Connect(opts, tx)).await?
    }

    pub async fn disconnect(&self) -> Result<(), EngineError> {
        self.ask(Cmd::Disconnect).await
    }

    /// Applies a changed profile; new tunnels are bound at once if the VM is wanted, and a
    /// tunnel that cannot be bound is an error (the caller then keeps the old profile).
    pub async fn set_profile(&self, profile: Profile) -> Result<(), EngineError> {
        self.ask(|tx| Cmd::Profile(profile, tx)).await?
    }

    /// Replaces the automatic forwards with those `wants` (manual tunnels always win).
    pub async fn set_auto(&self, wants: Vec<AutoWant>, unforwarded: Vec<UnforwardedPort>, policy: AutoPolicy) {
        let _ = self.ask(|tx| Cmd::Auto(wants, unforwarded, policy, tx)).await;
    }

    /// Records the architecture warning shown in status and the tray.
    pub async fn set_arch_warning(&self, warning: Option<String>) {
        let _ = self.ask(|tx| Cmd::Arch(warning, tx)).await;
    }

    pub async fn shutdown(&self) {
        let _ = self.ask(Cmd::Shutdown).await;
    }
}

pub type Link = Arc<Handle<ClientHandler>>;
type Attempt = JoinHandle<Result<(Connection, EngineInfo), SshError>>;

/// Accept loops told to stop whose port or socket is not free yet.
type Closing = Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>;

/// A bound listener and its accept loop. Dropping it stops the loop and files the loop's task
/// in `closing`, where the actor awaits it before answering: removing a tunnel is removing it
/// from the table.
struct Listener {
    cancel: CancellationToken,
    counters: Arc<Counters>,
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

struct Tunnel {
    map: PortMap,
    listener: Option<Listener>,
    error: Option<String>,
    /// For automatic forwards: the container served.
    container: Option<String>,
}

struct Actor {
    name: String,
    profile: Profile,
    paths: Paths,
    state: State,
    since: SystemTime,
    status: watch::Sender<VmStatus>,
    events: broadcast::Sender<Event>,
    link: watch::Sender<Option<Link>>,
    down_reason: watch::Sender<forward::Down>,
    docker: Option<Listener>,
    tunnels: BTreeMap<u16, Tunnel>,
    conn: Option<(Link, Arc<Notify>)>,
    attempt: Option<Attempt>,
    retry_at: Option<Instant>,
    waiting: Vec<oneshot::Sender<Result<ConnectReport, EngineError>>>,
    /// `connect` calls on a live VM waiting for the engine check they started.
    engine_waiters: Vec<oneshot::Sender<Result<ConnectReport, EngineError>>>,
    passphrase: Option<Zeroizing<String>>,
    rtt: Option<Duration>,
    probe: Option<JoinHandle<Option<Duration>>>,
    /// Listeners told to stop whose ports are not free yet; awaited before a command is answered,
    /// so `tunnel --rm 3000` then `tunnel -p 3000` never finds the port taken by Tether itself.
    closing: Closing,
    /// The running probe is the quick one after a network change or wake.
    recheck: bool,
    misses: u32,
    engine: Option<EngineInfo>,
    engine_check: Option<JoinHandle<EngineInfo>>,
    /// Why the VM is not (or was not last) connected, with its code and facts.
    last_error: Option<ErrorBody>,
    /// Host-key policy for the attempt the user asked for: (accept_new, confirmed fingerprint).
    policy: (bool, Option<String>),
    keys: Keys,
    shared: forward::Shared,
    unforwarded: Vec<UnforwardedPort>,
    arch_warning: Option<String>,
}

/// Starts the actor for one VM.
pub fn spawn(
    name: String,
    profile: Profile,
    paths: Paths,
    events: broadcast::Sender<Event>,
    net: NetChanges,
    keys: Keys,
    shared: forward::Shared,
) -> SessionHandle {
    let (cmd_tx, cmd_rx) = mpsc::channel(32);
    let socket = paths.docker_socket(&name);
    let initial = VmStatus {
        name: name.clone(),
        host: profile.host.clone(),
        arch: profile.arch,
        state: State::Disconnected,
        since_ms: unix_ms(SystemTime::now()),
        rtt_ms: None,
        socket: socket.display().to_string(),
        docker_host: format!("unix://{}", socket.display()),
        forwards: Vec::new(),
        last_error: None,
        error_code: None,
        error_details: None,
        engine: None,
        active: false,
        auto_connect: profile.auto_connect,
        unforwarded: Vec::new(),
        arch_warning: None,
        auto_forward: false,
    };
    let (status_tx, status_rx) = watch::channel(initial);
    let tunnels = profile
        .forwards
        .iter()
        .map(|m| {
            (
                m.local,
                Tunnel {
                    map: *m,
                    listener: None,
                    error: None,
                    container: None,
                },
            )
        })
        .collect();
    let (link_tx, link_rx) = watch::channel(None);
    let actor = Actor {
        name,
        profile,
        paths,
        state: State::Disconnected,
        since: SystemTime::now(),
        status: status_tx,
        events,
        link: link_tx,
        down_reason: watch::channel(forward::Down {
            reason: "the VM is not connected; run `tether connect`".to_string(),
            since: Instant::now(),
        })
        .0,
        docker: None,
        tunnels,
        conn: None,
        attempt: None,
        retry_at: None,
        waiting: Vec::new(),
        engine_waiters: Vec::new(),
        passphrase: None,
        rtt: None,
        probe: None,
        closing: Closing::default(),
        recheck: false,
        misses: 0,
        engine: None,
        engine_check: None,
        last_error: None,
        policy: (false, None),
        keys,
        shared,
        unforwarded: Vec::new(),
        arch_warning: None,
    };
    actor.publish();
    tokio::spawn(actor.run(cmd_rx, net));
    SessionHandle {
        cmd: cmd_tx,
        status: status_rx,
        link: link_rx,
    }
}

/// Awaits an optional task; pending forever when there is none (for `select!`).
async fn maybe<T>(task: &mut Option<JoinHandle<T>>) -> Option<T> {
    match task {
        Some(t) => {
            let r = t.await.ok();
            *task = None;
            r
        }
        None => std::future::pending().await,
    }
}

async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn closed(conn: &Option<(Link, Arc<Notify>)>) {
    match conn {
        Some((_, n)) => n.notified().await,
        None => std::future::pending().await,
    }
}

impl Actor {
    async fn run(mut self, mut cmds: mpsc::Receiver<Cmd>, mut net: NetChanges) {
        let mut probe_tick = tokio::time::interval(PROBE_EVERY);
        probe_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut engine_tick = tokio::time::interval(ENGINE_EVERY);
        engine_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Shutdown(reply)) => {
                        self.input(Input::Disconnect, None);
                        self.finish_closing().await;
                        let _ = reply.send(());
                        break;
                    }
                    None => {
                        self.input(Input::Disconnect, None);
                        break;
                    }
                    Some(c) => self.command(c).await,
                },
                res = maybe(&mut self.attempt) => self.attempt_done(res),
                _ = closed(&self.conn) => {
                    tracing::warn!(vm = %self.name, "SSH connection lost");
                    self.last_error = Some(problem("link_lost", "the SSH connection dropped"));
                    self.input(Input::LinkLost, None);
                }
                _ = until(self.retry_at) => {
                    self.retry_at = None;
                    self.start_attempt();
                }
                Ok(()) = net.changed() => {
                    if self.retry_at.is_some() {
                        tracing::info!(vm = %self.name, "network changed or the laptop woke; retrying now");
                        self.retry_at = None;
                        self.start_attempt();
                    } else if self.conn.is_some() {
                        self.recheck();
                    }
                }
                _ = probe_tick.tick(), if self.conn.is_some() && self.probe.is_none() => self.start_probe(),
                res = maybe(&mut self.probe) => self.probe_done(res.flatten()),
                _ = engine_tick.tick(), if self.conn.is_some() && self.engine_check.is_none() => self.start_engine_check(),
                res = maybe(&mut self.engine_check) => {
                    if let Some(info) = res {
                        self.set_engine(info);
                    }
                    self.answer_engine_waiters();
                }
            }
        }
    }

    async fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Connect(opts, reply) => {
                if let Some(p) = opts.passphrase {
                    self.passphrase = Some(p);
                }
                if matches!(self.state, State::Connected | State::Degraded) {
                    // Already up. With no engine check running, start one and answer when it
                    // does, so `connect` reports the engine as it is now. With one running (it
                    // may hang on a stuck engine), answer at once with what is known. Either
                    // way the actor itself never waits on the network.
                    if self.engine_check.is_none() {
                        tracing::debug!(vm = %self.name, "checking the engine for a connect");
                        self.start_engine_check();
                        self.engine_waiters.push(reply);
                    } else {
                        let _ = reply.send(self.report());
                    }
                    return;
                }
                self.waiting.push(reply);
                let policy = (opts.accept_new, opts.confirmed_fingerprint);
                self.input(Input::Connect, Some(policy));
            }
            Cmd::Disconnect(reply) => {
                self.last_error = None;
                // A passphrase is kept only to reconnect a session the user wants up.
                self.passphrase = None;
                self.input(Input::Disconnect, None);
                self.finish_closing().await;
                let _ = reply.send(());
            }
            Cmd::Profile(profile, reply) => {
                let res = self.apply_profile(profile);
                self.finish_closing().await;
                let _ = reply.send(res);
            }
            Cmd::Arch(warning, reply) => {
                if self.arch_warning != warning {
                    self.arch_warning = warning;
                    self.publish();
                }
                let _ = reply.send(());
            }
            Cmd::Auto(wants, unforwarded, policy, reply) => {
                self.apply_auto(wants, policy);
                self.unforwarded = unforwarded;
                self.publish();
                self.finish_closing().await;
                let _ = reply.send(());
            }
            Cmd::Shutdown(reply) => {
                // Handled in `run`, which also stops the loop.
                let _ = reply.send(());
            }
        }
    }

    /// Waits until every listener told to stop has let go of its port or socket. Each is a
    /// local task that ends at its next poll, so this takes microseconds, never a network wait.
    async fn finish_closing(&mut self) {
        let tasks: Vec<JoinHandle<()>> = self
            .closing
            .lock()
            .map(|mut c| c.drain(..).collect())
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
    }

    fn user(&self) -> String {
        target::resolve(&self.profile).map(|t| t.user).unwrap_or_default()
    }

    /// Feeds the state machine and performs the action it returns.
    fn input(&mut self, input: Input, policy: Option<(bool, Option<String>)>) {
        let (next, action) = state::step(self.state, input);
        tracing::debug!(vm = %self.name, from = ?self.state, ?input, to = ?next, ?action, "transition");
        self.set_state(next);
        match action {
            Action::Nothing => {}
            Action::StartAttempt => {
                if self.docker.is_none()
                    && let Err(e) = self.bind_listeners()
                {
                    self.fail_waiting(e);
                    let (s, _) = state::step(self.state, Input::AttemptFailed { permanent: true });
                    self.set_state(s);
                    return;
                }
                self.retry_at = None;
                if let Some(p) = policy {
                    self.policy = p;
                }
                self.start_attempt();
            }
            Action::ScheduleRetry { attempt } => {
                self.drop_link();
                let d = backoff::delay(attempt);
                tracing::info!(vm = %self.name, attempt, delay_ms = d.as_millis() as u64, "reconnect scheduled");
                self.retry_at = Some(Instant::now() + d);
                let why = self
                    .last_error
                    .as_ref()
                    .map_or_else(|| "the link dropped".to_string(), |e| e.message.clone());
                let since = if attempt == 1 {
                    Instant::now()
                } else {
                    self.down_reason.borrow().since
                };
                let reason = format!(
                    "VM '{}' is reconnecting (attempt {attempt}, next try in {:.1} s): {why}",
                    self.name,
                    d.as_secs_f64()
                );
                let _ = self.down_reason.send(forward::Down { reason, since });
            }
            Action::TearDown => self.tear_down(),
            Action::Publish => {}
        }
        self.publish();
    }
}

impl Actor {
    fn set_state(&mut self, next: State) {
        if next != self.state {
            // "Since" is when the VM entered this kind of state: a further reconnect attempt
            // does not restart the clock of the outage.
            if next.label() != self.state.label() {
                self.since = SystemTime::now();
            }
            self.state = next;
            let error = if matches!(next, State::Connected) {
                None
            } else {
                self.last_error.clone()
            };
            let (error, code, details) = match error {
                Some(e) => (Some(e.message), Some(e.code), e.details.map(|d| *d)),
                None => (None, None, None),
            };
            let _ = self.events.send(Event::State {
                vm: self.name.clone(),
                state: next,
                error,
                code,
                details,
            });
        }
    }

    fn report(&self) -> Result<ConnectReport, EngineError> {
        Ok(ConnectReport {
            status: self.status.borrow().clone(),
        })
    }

    fn fail_waiting(&mut self, e: EngineError) {
        self.last_error = Some(e.body());
        let shared = Arc::new(e);
        for w in self.waiting.drain(..) {
            let _ = w.send(Err(EngineError::Shared(shared.clone())));
        }
    }

    fn forward_ctx(
        &self,
        remote: Remote,
        local: String,
        counters: Arc<Counters>,
        cancel: CancellationToken,
    ) -> ForwardCtx {
        let user = self.user();
        let diagnose: Option<forward::Diagnose> = if matches!(remote, Remote::Socket(_)) {
            let link = self.link.subscribe();
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
        ForwardCtx {
            remote,
            link: self.link.subscribe(),
            down_reason: self.down_reason.subscribe(),
            counters,
            shared: self.shared.clone(),
            local,
            cancel,
            diagnose,
        }
    }

    /// Binds the Docker socket (an error stops the connect) and every tunnel (an error is
    /// recorded on that tunnel; the others still run).
    fn bind_listeners(&mut self) -> Result<(), EngineError> {
        let path = self.paths.docker_socket(&self.name);
        let listener = forward::bind_unix(&path)?;
        let counters = Arc::new(Counters::default());
        let cancel = CancellationToken::new();
        let ctx = self.forward_ctx(
            Remote::Socket(self.profile.remote_socket.clone()),
            path.display().to_string(),
            counters.clone(),
            cancel.clone(),
        );
        let task = tokio::spawn(forward::serve_unix(listener, ctx));
        self.docker = Some(Listener {
            cancel,
            counters,
            task: Some(task),
            closing: self.closing.clone(),
        });
        let ports: Vec<u16> = self.tunnels.keys().copied().collect();
        for port in ports {
            self.bind_tunnel(port);
        }
        Ok(())
    }

    fn bind_tunnel(&mut self, port: u16) -> Option<ForwardError> {
        let map = self.tunnels.get(&port).map(|t| t.map)?;
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
                        let task = tokio::spawn(forward::serve_tcp(l, ctx));
                        let closing = self.closing.clone();
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
        if let Some(t) = self.tunnels.get_mut(&port) {
            (t.listener, t.error) = tunnel_state;
            let fs = forward_status(t, true);
            let _ = self.events.send(Event::Forward {
                vm: self.name.clone(),
                forward: fs,
            });
        }
        err
    }

    fn tear_down(&mut self) {
        if let Ok(mut c) = self.closing.lock() {
            c.retain(|t| !t.is_finished());
        }
        self.drop_link();
        if let Some(a) = self.attempt.take() {
            a.abort();
        }
        self.retry_at = None;
        if self.docker.take().is_some() {
            let path = self.paths.docker_socket(&self.name);
            let _ = std::fs::remove_file(&path);
            if let Some(dir) = path.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
        for t in self.tunnels.values_mut() {
            t.listener = None;
            t.error = None;
        }
        let reason = format!(
            "VM '{}' is not connected; run `tether connect {}`",
            self.name, self.name
        );
        let _ = self.down_reason.send(forward::Down {
            reason,
            since: Instant::now(),
        });
    }

    fn drop_link(&mut self) {
        if let Some(p) = self.probe.take() {
            p.abort();
        }
        self.recheck = false;
        if let Some(e) = self.engine_check.take() {
            e.abort();
        }
        self.answer_engine_waiters();
        self.misses = 0;
        // Without a link there is no round trip and no engine answer to report.
        self.rtt = None;
        self.engine = None;
        let _ = self.link.send(None);
        if let Some((link, _)) = self.conn.take() {
            tokio::spawn(async move {
                let _ = link
                    .disconnect(russh::Disconnect::ByApplication, "tether disconnect", "en")
                    .await;
            });
        }
    }

    fn start_attempt(&mut self) {
        if let Some(a) = self.attempt.take() {
            a.abort();
        }
        let profile = self.profile.clone();
        let files = self.paths.known_hosts_files();
        let (accept_new, confirmed) = self.policy.clone();
        let passphrase = self.passphrase.clone();
        let keys = self.keys.clone();
        self.attempt = Some(tokio::spawn(async move {
            // ~/.ssh/config is file I/O: off the runtime's workers.
            let resolve = profile.clone();
            let target = tokio::task::spawn_blocking(move || target::resolve(&resolve))
                .await
                .map_err(|e| SshError::Handshake {
                    addr: profile.host.clone(),
                    message: e.to_string(),
                })?
                .map_err(|e| SshError::Handshake {
                    addr: profile.host.clone(),
                    message: e.to_string(),
                })?;
            let creds = crate::identity::credentials_for(&profile, &target, &keys).await?;
            let policy = HostKeyPolicy {
                files,
                accept_new,
                confirmed,
                scan: false,
            };
            let pass = passphrase.as_ref().map(|p| p.as_str());
            let conn = ssh::connect(&target, policy, Arc::from(creds), pass, ssh::Timeouts::default()).await?;
            let info = docker::probe(&conn.handle, &profile.remote_socket, &target.user).await;
            Ok((conn, info))
        }));
    }

    fn attempt_done(&mut self, res: Option<Result<(Connection, EngineInfo), SshError>>) {
        let res = res.unwrap_or(Err(SshError::Closed));
        // The confirmation applied to one attempt only.
        self.policy = (false, None);
        match res {
            Ok((conn, info)) => {
                let link: Link = Arc::new(conn.handle);
                self.conn = Some((link.clone(), conn.closed));
                let _ = self.link.send(Some(link));
                self.last_error = None;
                self.input(Input::Established, None);
                self.set_engine(info);
                for w in std::mem::take(&mut self.waiting) {
                    let _ = w.send(self.report());
                }
                tracing::info!(vm = %self.name, "connected");
            }
            Err(e) => {
                let permanent = e.is_permanent();
                tracing::warn!(vm = %self.name, error = %e, permanent, "connection attempt failed");
                self.last_error = Some(e.body());
                // The waiters hear of the failure only after the state machine has acted on it,
                // so a failed connect has already removed its socket when the caller returns.
                let waiters = std::mem::take(&mut self.waiting);
                // A user-requested attempt while reconnecting reports its error but keeps retrying.
                let permanent = permanent || (!waiters.is_empty() && matches!(self.state, State::Connecting));
                self.input(Input::AttemptFailed { permanent }, None);
                self.waiting = waiters;
                self.fail_waiting(EngineError::from(e));
            }
        }
        self.publish();
    }

    fn start_probe(&mut self) {
        self.probe_with(PROBE_TIMEOUT);
    }

    /// After a network change or a wake the connection may lead nowhere (a new network, or a VM
    /// that forgot it while the laptop slept), and no FIN or RST will say so. Probe at once with
    /// a short deadline, and on no answer reconnect at once rather than after two slow misses.
    fn recheck(&mut self) {
        // A quick probe already out keeps its earlier deadline: changes come in bursts, and
        // restarting the clock on each would only delay the verdict.
        if self.recheck && self.probe.is_some() {
            return;
        }
        if let Some(p) = self.probe.take() {
            p.abort();
        }
        let deadline = self
            .rtt
            .map_or(RECHECK_TIMEOUT, |rtt| (rtt * 4).clamp(RECHECK_TIMEOUT, PROBE_TIMEOUT));
        tracing::info!(vm = %self.name, deadline_ms = deadline.as_millis() as u64, "network changed or the laptop woke; checking the link now");
        self.recheck = true;
        self.probe_with(deadline);
    }

    fn probe_with(&mut self, deadline: Duration) {
        let Some((link, _)) = &self.conn else { return };
        let link = link.clone();
        self.probe = Some(tokio::spawn(async move {
            let t0 = Instant::now();
            let ok = matches!(tokio::time::timeout(deadline, link.send_ping()).await, Ok(Ok(())));
            // send_ping also returns Ok when the session is already gone; check that too.
            (ok && !link.is_closed()).then(|| t0.elapsed())
        }));
    }

    fn probe_done(&mut self, rtt: Option<Duration>) {
        let recheck = std::mem::take(&mut self.recheck);
        if recheck && rtt.is_none() {
            tracing::warn!(vm = %self.name, "no answer after a network change or wake; reconnecting now");
            self.last_error = Some(problem(
                "unreachable",
                "the VM stopped answering after the network changed or the laptop woke",
            ));
            self.input(Input::LinkLost, None);
            // The link is known dead, not flaky: the first retry goes at once.
            if self.retry_at.take().is_some() {
                self.start_attempt();
            }
            self.publish();
            return;
        }
        match rtt {
            Some(rtt) => {
                self.misses = 0;
                let ms = rtt_ms(rtt);
                // Tell subscribers when it moved by a tenth or 0.2 ms, not every 2 s.
                let moved = self.rtt.is_none_or(|old| {
                    let old = old.as_secs_f64() * 1e3;
                    (ms - old).abs() >= (old * 0.1).max(0.2)
                });
                if moved {
                    let _ = self.events.send(Event::Rtt {
                        vm: self.name.clone(),
                        rtt_ms: ms,
                    });
                }
                self.rtt = Some(rtt);
                self.input(Input::ProbeOk, None);
            }
            None => {
                self.misses += 1;
                tracing::warn!(vm = %self.name, misses = self.misses, "liveness probe unanswered");
                self.last_error = Some(problem(
                    "unreachable",
                    &format!(
                        "the VM did not answer a liveness probe within {} s",
                        PROBE_TIMEOUT.as_secs()
                    ),
                ));
                self.input(Input::ProbeMissed, None);
            }
        }
        self.publish();
    }

    fn answer_engine_waiters(&mut self) {
        for w in std::mem::take(&mut self.engine_waiters) {
            let _ = w.send(self.report());
        }
    }

    fn start_engine_check(&mut self) {
        let Some((link, _)) = &self.conn else { return };
        let link = link.clone();
        let socket = self.profile.remote_socket.clone();
        let profile = self.profile.clone();
        self.engine_check = Some(tokio::spawn(async move {
            // Reading ~/.ssh/config is file I/O: off the runtime's workers.
            let user =
                tokio::task::spawn_blocking(move || target::resolve(&profile).map(|t| t.user).unwrap_or_default())
                    .await
                    .unwrap_or_default();
            docker::probe(&link, &socket, &user).await
        }));
    }

    fn set_engine(&mut self, info: EngineInfo) {
        if self.engine.as_ref() != Some(&info) {
            let _ = self.events.send(Event::Engine {
                vm: self.name.clone(),
                engine: info.clone(),
            });
        }
        self.engine = Some(info);
        self.publish();
    }

    fn apply_profile(&mut self, profile: Profile) -> Result<(), EngineError> {
        let wanted = self.docker.is_some();
        let old: Vec<PortMap> = self
            .tunnels
            .values()
            .filter(|t| t.container.is_none())
            .map(|t| t.map)
            .collect();
        // A manual mapping wins over an automatic one on the same local port.
        for m in &profile.forwards {
            if self.tunnels.get(&m.local).is_some_and(|t| t.container.is_some()) {
                self.tunnels.remove(&m.local);
            }
        }
        let removed: Vec<PortMap> = old.iter().filter(|m| !profile.forwards.contains(m)).copied().collect();
        let added: Vec<PortMap> = profile.forwards.iter().filter(|m| !old.contains(m)).copied().collect();
        if wanted {
            // Bind new ports first; on any failure undo them and keep the old profile.
            let mut bound = Vec::new();
            for m in &added {
                self.tunnels.insert(
                    m.local,
                    Tunnel {
                        map: *m,
                        listener: None,
                        error: None,
                        container: None,
                    },
                );
                if let Some(e) = self.bind_tunnel(m.local) {
                    for p in bound.iter().chain(std::iter::once(&m.local)) {
                        self.tunnels.remove(p);
                    }
                    self.publish();
                    return Err(e.into());
                }
                bound.push(m.local);
            }
        } else {
            for m in &added {
                self.tunnels.insert(
                    m.local,
                    Tunnel {
                        map: *m,
                        listener: None,
                        error: None,
                        container: None,
                    },
                );
            }
        }
        for m in removed {
            self.tunnels.remove(&m.local);
        }
        let reconnect = profile.host != self.profile.host
            || profile.port != self.profile.port
            || profile.user != self.profile.user
            || profile.identity != self.profile.identity
            || profile.remote_socket != self.profile.remote_socket;
        self.profile = profile;
        if reconnect && self.conn.is_some() {
            // Connection settings changed: re-establish with the new ones.
            self.input(Input::LinkLost, None);
        }
        self.publish();
        Ok(())
    }

    /// Makes the automatic forwards match `wants`, as [`ports::plan_auto`] plans: each new one
    /// takes the first of its candidate ports that nothing else holds.
    fn apply_auto(&mut self, wants: Vec<AutoWant>, policy: AutoPolicy) {
        let existing: Vec<ports::Existing> = self
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
            self.tunnels.remove(local);
        }
        for (local, container) in plan.relabel {
            if let Some(t) = self.tunnels.get_mut(&local) {
                t.container = Some(container);
            }
        }
        let wanted = self.docker.is_some();
        for new in plan.add {
            for local in new.candidates {
                // Taken by a forward added just before this one.
                if self.tunnels.contains_key(&local) {
                    continue;
                }
                let map = PortMap {
                    local,
                    remote: new.remote,
                };
                self.tunnels.insert(
                    local,
                    Tunnel {
                        map,
                        listener: None,
                        error: None,
                        container: Some(new.container.clone()),
                    },
                );
                // A port in use by anyone else is skipped for the next candidate.
                if !wanted || self.bind_tunnel(local).is_none() {
                    tracing::info!(vm = %self.name, local, remote = new.remote, container = %new.container, "automatic forward");
                    break;
                }
                self.tunnels.remove(&local);
            }
        }
    }

    fn publish(&self) {
        let wanted = self.docker.is_some();
        let forwards = self.tunnels.values().map(|t| forward_status(t, wanted)).collect();
        self.status.send_modify(|s| {
            s.host = self.profile.host.clone();
            s.arch = self.profile.arch;
            s.state = self.state;
            s.since_ms = unix_ms(self.since);
            s.rtt_ms = self.rtt.map(rtt_ms);
            s.forwards = forwards;
            s.last_error = self.last_error.as_ref().map(|e| e.message.clone());
            s.error_code = self.last_error.as_ref().map(|e| e.code.clone());
            s.error_details = self.last_error.as_ref().and_then(|e| e.details.as_deref().cloned());
            s.engine = self.engine.clone();
            s.auto_connect = self.profile.auto_connect;
            s.unforwarded = self.unforwarded.clone();
            s.arch_warning = self.arch_warning.clone();
        });
    }
}

fn forward_status(t: &Tunnel, wanted: bool) -> ForwardStatus {
    let (state, active, total, refused) = match (&t.listener, &t.error) {
        (Some(l), _) => (
            "listening",
            l.counters.active.load(Ordering::Relaxed),
            l.counters.accepted.load(Ordering::Relaxed),
            l.counters.refused.load(Ordering::Relaxed),
        ),
        (None, Some(_)) => ("failed", 0, 0, 0),
        (None, None) => (if wanted { "failed" } else { "idle" }, 0, 0, 0),
    };
    ForwardStatus {
        local: t.map.local,
        remote: t.map.remote,
        state: state.into(),
        error: t.error.clone(),
        active,
        total,
        refused,
        auto: t.container.is_some(),
        container: t.container.clone(),
    }
}

/// A failure the session notices itself (no `EngineError` behind it).
fn problem(code: &str, message: &str) -> ErrorBody {
    ErrorBody {
        code: code.into(),
        message: message.into(),
        details: None,
    }
}

/// A round trip in milliseconds with two decimals, as status and events carry it.
fn rtt_ms(rtt: Duration) -> f64 {
    (rtt.as_secs_f64() * 1e5).round() / 100.0
}

/// Binds synchronously so the actor learns at once whether a tunnel is up.
fn std_bind(port: u16, remote: u16) -> Result<std::net::TcpListener, ForwardError> {
    forward::bind_loopback(port).map_err(|e| forward::classify_bind_error(port, remote, e))
}
