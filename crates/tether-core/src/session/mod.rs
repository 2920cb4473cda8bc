//! One actor per VM: owns its SSH connection, its local listeners and its state, and is driven
//! by commands from the engine, by link and probe results, by backoff timers and by network
//! changes. Decisions come from the pure [`state::step`]; this module only does the I/O.
//!
//! The actor is one struct whose state comes in owned parts (`SshPart`, `LocalPart`,
//! `ReversePart`, `HealthPart`), each changed by its own file: this file has its handle, its loop
//! and its commands; `link` the SSH connection, the probes and the engine checks; `tunnels` the
//! local listeners and their table; `reverse` the VM's ports carried here; `status` what it
//! publishes. The files use one another without a cycle (the architecture test checks).

mod handle;
mod link;
mod reverse;
mod status;
mod tunnels;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use russh::client::Handle;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::api::{ConnectReport, EngineInfo, ErrorBody, Event, UnforwardedPort, VmStatus};
use crate::config::Profile;
use crate::error::EngineError;
use crate::forward;
use crate::keystore::Keys;
use crate::netwatch::NetChanges;
use crate::paths::Paths;
use crate::pool::Pool;
use crate::ssh::{ClientHandler, Connection, SshError};
use crate::state::{self, Action, Input, State};
use crate::{backoff, target};

use status::problem;
use tunnels::{Closing, Listener, Tunnel};

use handle::Cmd;
pub use handle::{ConnectOpts, SessionHandle};

/// How often the liveness probe runs, and how long one may take. Two misses in a row mean the
/// link is dead: worst case about `PROBE_EVERY + 2 * PROBE_TIMEOUT` (8 s) after it died.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// The probe's deadline right after a network change or wake (at least; 4 RTTs on slow links).
pub const RECHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the Docker engine is asked for its version while connected.
pub const ENGINE_EVERY: Duration = Duration::from_secs(15);

pub type Link = Arc<Handle<ClientHandler>>;
type Attempt = JoinHandle<Result<(Connection, EngineInfo), SshError>>;

/// One VM's actor: who it is and what it publishes, then its state in four owned parts, each
/// changed by the file named after it (`link`, `tunnels`, `reverse`; `health` by `link` and
/// `status`).
struct Actor {
    name: String,
    profile: Profile,
    paths: Paths,
    state: State,
    since: SystemTime,
    status: watch::Sender<VmStatus>,
    events: broadcast::Sender<Event>,
    keys: Keys,
    shared: forward::Shared,
    /// The laptop folders this VM's containers mount (none in tests that do not sync).
    shares: Option<crate::share::ShareHandle>,
    /// The SSH connection, the attempts and probes that keep it, and who waits for it.
    ssh: SshPart,
    /// The local listeners: the Docker socket, the tunnels, and the pool behind the socket.
    local: LocalPart,
    /// The VM's ports carried to this laptop.
    reverse: ReversePart,
    /// What is known of the VM's engine, and why the VM is not connected.
    health: HealthPart,
}

/// The SSH connection and what keeps it (`link.rs`).
struct SshPart {
    /// The live connection, as the forwards and the pool see it.
    link: watch::Sender<Option<Link>>,
    /// Why a forward's client is turned away while there is no link.
    down_reason: watch::Sender<forward::Down>,
    conn: Option<(Link, Arc<Notify>)>,
    /// The jump hosts' sessions `conn` runs through, outermost first; closed after it.
    hops: Vec<russh::client::Handle<crate::ssh::ClientHandler>>,
    /// Those jump hosts as `user@host:port`, for the status.
    via: Vec<String>,
    attempt: Option<Attempt>,
    retry_at: Option<Instant>,
    /// `connect` calls waiting for the attempt under way.
    waiting: Vec<oneshot::Sender<Result<ConnectReport, EngineError>>>,
    passphrase: Option<Zeroizing<String>>,
    /// Host-key policy for the attempt the user asked for: (accept_new, confirmed fingerprint).
    policy: (bool, Option<String>),
    /// The last probe's round trip in microseconds (0: unknown), shared with the forwards, whose
    /// windows follow it; [`Actor::rtt`] reads it.
    rtt_us: Arc<std::sync::atomic::AtomicU64>,
    probe: Option<JoinHandle<Option<Duration>>>,
    /// The running probe is the quick one after a network change or wake.
    recheck: bool,
    misses: u32,
}

/// The local listeners (`tunnels.rs`).
struct LocalPart {
    /// The VM's Docker endpoint. On Windows it is held for the session's whole life, connected
    /// or not (see `endpoint::vm_endpoint`); elsewhere only while the VM is wanted.
    docker: Option<Listener>,
    /// Whether the user wants the VM: its tunnels are bound, and its Docker endpoint is served.
    wanted: bool,
    tunnels: BTreeMap<u16, Tunnel>,
    /// Listeners told to stop whose ports are not free yet; awaited before a command is answered,
    /// so `tunnel --rm 3000` then `tunnel -p 3000` never finds the port taken by Tether itself.
    closing: Closing,
    /// Channels to the Docker socket opened ahead of demand; filled while the VM is wanted.
    pool: Arc<Pool>,
    /// Published ports the automatic forwarding kept back, with why.
    unforwarded: Vec<UnforwardedPort>,
}

/// Reverse tunnels (`reverse.rs`).
struct ReversePart {
    /// By the VM's port, with the VM's last answer for each.
    tunnels: BTreeMap<u16, reverse::Reverse>,
    /// Where the VM's connections on those ports go; shared with the SSH handler.
    table: Arc<crate::reverse::Table>,
    done: mpsc::UnboundedSender<reverse::ReverseDone>,
    waiters: Vec<reverse::ReverseWaiter>,
}

/// The VM's engine and the VM's last problem.
struct HealthPart {
    engine: Option<EngineInfo>,
    engine_check: Option<JoinHandle<EngineInfo>>,
    /// `connect` calls on a live VM waiting for the engine check they started.
    engine_waiters: Vec<oneshot::Sender<Result<ConnectReport, EngineError>>>,
    /// Why the VM is not (or was not last) connected, with its code and facts.
    last_error: Option<ErrorBody>,
    arch_warning: Option<String>,
}

/// Starts the actor for one VM.
/// `sync`, when given, syncs the laptop folders the VM's containers bind-mount
/// ([`crate::share`]).
#[allow(clippy::too_many_arguments)] // each is one engine-wide part a session is wired to
pub fn spawn(
    name: String,
    profile: Profile,
    paths: Paths,
    events: broadcast::Sender<Event>,
    net: NetChanges,
    keys: Keys,
    shared: forward::Shared,
    sync: Option<crate::share::Env>,
) -> SessionHandle {
    let (cmd_tx, cmd_rx) = mpsc::channel(32);
    let initial = status::initial(&name, &profile, &paths);
    let (status_tx, status_rx) = watch::channel(initial);
    let tunnels = profile
        .forwards
        .iter()
        .map(|m| (m.local, Tunnel::new(*m, None)))
        .collect();
    let (link_tx, link_rx) = watch::channel(None);
    let reverse = profile
        .reverse
        .iter()
        .map(|m| (m.remote, reverse::Reverse::new(*m)))
        .collect();
    let shares = sync.map(|env| {
        crate::share::spawn(crate::share::ShareCtx {
            vm: name.clone(),
            shares: profile.shares(),
            link: link_rx.clone(),
            paths: paths.clone(),
            install: env.install,
            events: events.clone(),
            tasks: shared.tasks.clone(),
            bins: env.bins,
        })
    });
    let rtt_us: Arc<std::sync::atomic::AtomicU64> = Arc::default();
    let reverse_table = crate::reverse::Table::new(&shared, rtt_us.clone());
    let (reverse_done, reverse_rx) = mpsc::unbounded_channel();
    let pool = Pool::new(
        profile.remote_socket.clone(),
        shared.docker_pool.clone(),
        shared.ping_cache.clone(),
        shared.tasks.clone(),
    );
    let mut actor = Actor {
        shares: shares.clone(),
        name,
        profile,
        paths,
        state: State::Disconnected,
        since: SystemTime::now(),
        status: status_tx,
        events,
        keys,
        shared,
        ssh: SshPart {
            link: link_tx,
            down_reason: watch::channel(forward::Down {
                reason: "the VM is not connected; run `tether connect`".to_string(),
                since: Instant::now(),
            })
            .0,
            conn: None,
            hops: Vec::new(),
            via: Vec::new(),
            attempt: None,
            retry_at: None,
            waiting: Vec::new(),
            passphrase: None,
            policy: (false, None),
            rtt_us,
            probe: None,
            recheck: false,
            misses: 0,
        },
        local: LocalPart {
            docker: None,
            wanted: false,
            tunnels,
            closing: Closing::default(),
            pool: pool.clone(),
            unforwarded: Vec::new(),
        },
        reverse: ReversePart {
            tunnels: reverse,
            table: reverse_table,
            done: reverse_done,
            waiters: Vec::new(),
        },
        health: HealthPart {
            engine: None,
            engine_check: None,
            engine_waiters: Vec::new(),
            last_error: None,
            arch_warning: None,
        },
    };
    // A pipe's name is the machine's, not the user's: held from the start, nobody else can take
    // it while the VM is disconnected (a client then gets the engine's "not connected").
    if !crate::endpoint::IN_FILESYSTEM
        && let Err(e) = actor.bind_docker()
    {
        tracing::warn!(vm = %actor.name, error = %e, "cannot hold the VM's Docker endpoint yet; trying again on connect");
    }
    actor.publish();
    let tasks = actor.shared.tasks.clone();
    tasks.spawn(actor.run(cmd_rx, net, reverse_rx));
    SessionHandle {
        cmd: cmd_tx,
        status: status_rx,
        link: link_rx,
        pool,
        shares,
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
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Cmd>,
        mut net: NetChanges,
        mut reverse_rx: mpsc::UnboundedReceiver<reverse::ReverseDone>,
    ) {
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
                res = maybe(&mut self.ssh.attempt) => self.attempt_done(res),
                Some(done) = reverse_rx.recv() => self.reverse_answered(done),
                _ = closed(&self.ssh.conn) => {
                    tracing::warn!(vm = %self.name, "SSH connection lost");
                    self.health.last_error = Some(problem(crate::api::ErrorCode::LinkLost, "the SSH connection dropped"));
                    self.input(Input::LinkLost, None);
                }
                _ = until(self.ssh.retry_at) => {
                    self.ssh.retry_at = None;
                    self.start_attempt();
                }
                Ok(()) = net.changed() => {
                    if self.ssh.retry_at.is_some() {
                        tracing::info!(vm = %self.name, "network changed or the laptop woke; retrying now");
                        self.ssh.retry_at = None;
                        self.start_attempt();
                    } else if self.ssh.conn.is_some() {
                        self.recheck();
                    }
                }
                _ = probe_tick.tick(), if self.ssh.conn.is_some() && self.ssh.probe.is_none() => self.start_probe(),
                res = maybe(&mut self.ssh.probe) => self.probe_done(res.flatten()),
                _ = engine_tick.tick(), if self.ssh.conn.is_some() && self.health.engine_check.is_none() => self.start_engine_check(),
                res = maybe(&mut self.health.engine_check) => {
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
                    self.ssh.passphrase = Some(p);
                }
                if matches!(self.state, State::Connected | State::Degraded) {
                    // Already up. With no engine check running, start one and answer when it
                    // does, so `connect` reports the engine as it is now. With one running (it
                    // may hang on a stuck engine), answer at once with what is known. Either
                    // way the actor itself never waits on the network.
                    if self.health.engine_check.is_none() {
                        tracing::debug!(vm = %self.name, "checking the engine for a connect");
                        self.start_engine_check();
                        self.health.engine_waiters.push(reply);
                    } else {
                        let _ = reply.send(self.report());
                    }
                    return;
                }
                self.ssh.waiting.push(reply);
                let policy = (opts.accept_new, opts.confirmed_fingerprint);
                self.input(Input::Connect, Some(policy));
            }
            Cmd::Disconnect(reply) => {
                self.health.last_error = None;
                // A passphrase is kept only to reconnect a session the user wants up.
                self.ssh.passphrase = None;
                self.input(Input::Disconnect, None);
                self.finish_closing().await;
                let _ = reply.send(());
            }
            Cmd::Profile(profile, reply) => {
                let res = self.apply_profile(*profile);
                self.finish_closing().await;
                match res {
                    // Reverse tunnels asked of the VM: answered once it has answered.
                    Ok(asked) if !asked.is_empty() => self.reverse.waiters.push((asked, reply)),
                    res => {
                        let _ = reply.send(res.map(|_| ()));
                    }
                }
            }
            Cmd::Arch(warning, reply) => {
                if self.health.arch_warning != warning {
                    self.health.arch_warning = warning;
                    self.publish();
                }
                let _ = reply.send(());
            }
            Cmd::Auto(wants, unforwarded, policy, reply) => {
                self.apply_auto(wants, policy);
                self.local.unforwarded = unforwarded;
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
            .local
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
                if !self.local.wanted
                    && let Err(e) = self.bind_listeners()
                {
                    self.fail_waiting(e);
                    let (s, _) = state::step(self.state, Input::AttemptFailed { permanent: true });
                    self.set_state(s);
                    return;
                }
                self.ssh.retry_at = None;
                if let Some(p) = policy {
                    self.ssh.policy = p;
                }
                self.start_attempt();
            }
            Action::ScheduleRetry { attempt } => {
                self.drop_link();
                let d = backoff::delay(attempt);
                tracing::info!(vm = %self.name, attempt, delay_ms = d.as_millis() as u64, "reconnect scheduled");
                self.ssh.retry_at = Some(Instant::now() + d);
                let why = self
                    .health
                    .last_error
                    .as_ref()
                    .map_or_else(|| "the link dropped".to_string(), |e| e.message.clone());
                let since = if attempt == 1 {
                    Instant::now()
                } else {
                    self.ssh.down_reason.borrow().since
                };
                let reason = format!(
                    "VM '{}' is reconnecting (attempt {attempt}, next try in {:.1} s): {why}",
                    self.name,
                    d.as_secs_f64()
                );
                let _ = self.ssh.down_reason.send(forward::Down { reason, since });
            }
            Action::TearDown => self.tear_down(),
            Action::Publish => {}
        }
        self.publish();
    }
}

#[cfg(test)]
#[path = "../tests/session.rs"]
mod tests;
