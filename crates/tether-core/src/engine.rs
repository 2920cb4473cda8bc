//! The supervisor: owns the config, one session actor per VM, the active VM, and the single
//! broadcast of typed events. The control server, the CLI and the app all call into this.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Mutex, broadcast};
use zeroize::Zeroizing;

use crate::api::{ConnectReport, Event, HealthReport, VmStatus};
use crate::config::{Config, ConfigError, Profile, Store};
use crate::contexts::{ContextStore, Wanted};
use crate::error::EngineError;
use crate::forward;
use crate::instance;
use crate::keystore::{KeyStore, Keys};
use crate::monitor::{self, Monitor};
use crate::netwatch::{self, NetChanges};
use crate::paths::{self, Paths};
use crate::ports::AutoPolicy;
use crate::session::{self, ConnectOpts, SessionHandle};

pub use crate::api::TimedEvent;

/// How long shutdown waits for the engine's tasks once the sessions are stopped: their streams
/// end with the SSH connections, so only a task stuck on the OS takes this long.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How many recent events are kept per VM for the app's "recent events" list.
pub const RECENT_EVENTS: usize = 50;

type Recent = std::sync::Mutex<BTreeMap<String, std::collections::VecDeque<TimedEvent>>>;

pub(crate) struct Inner {
    pub(crate) keys: Keys,
    pub(crate) contexts: Option<ContextStore>,
    pub(crate) health: Arc<monitor::Shared>,
    pub(crate) monitors: std::sync::Mutex<BTreeMap<String, Monitor>>,
    pub(crate) recent: Arc<Recent>,
    pub(crate) paths: Paths,
    pub(crate) store: Store,
    /// Config and sessions change together under this lock, so they never disagree. It is never
    /// held across an await on a session actor.
    pub(crate) state: Mutex<EngineState>,
    /// Serialises config changes, including those that wait on an actor (binding a tunnel)
    /// between reading the config and writing it.
    pub(crate) edits: Mutex<()>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) net: NetChanges,
    /// Receive-window bytes shared by every forwarded stream of every VM.
    /// The window budget and stream limit every forward shares.
    pub(crate) shared: forward::Shared,
    /// What each VM's shared folders need: the install id and the VM agents.
    pub(crate) share_env: crate::share::Env,
    /// This engine is the only one of its Tether home while this is held.
    lock: instance::Lock,
}

/// The config and the sessions it implies: one actor per VM in it.
pub(crate) struct EngineState {
    pub(crate) config: Config,
    pub(crate) sessions: BTreeMap<String, SessionHandle>,
}

/// Cloneable handle to the running engine.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

/// Options for `connect`, as the user gave them. No `Debug`: it may hold a passphrase.
#[derive(Default, Clone)]
pub struct Connect {
    pub accept_new: bool,
    pub confirmed_fingerprint: Option<String>,
    pub passphrase: Option<Zeroizing<String>>,
}

impl Engine {
    /// Loads the config and starts one (idle) session per VM; auto-connect VMs are connected.
    /// Refuses with [`instance::InstanceError::Running`] when another engine runs for the same home.
    pub async fn start(paths: Paths, kind: instance::Kind) -> Result<Self, EngineError> {
        Self::start_with_keys(paths, kind, Keys::new(KeyStore::os())).await
    }

    /// Like [`Engine::start`], with keys from another store (tests).
    pub async fn start_with_keys(paths: Paths, kind: instance::Kind, keys: Keys) -> Result<Self, EngineError> {
        paths::ensure_private_dir(&paths.runtime_dir)?;
        // The VMs' socket directories live here; each is checked again as it is bound.
        paths::ensure_private_dir(&paths.runtime_dir.join("vms"))?;
        let lock_paths = paths.clone();
        let lock = tokio::task::spawn_blocking(move || instance::acquire(&lock_paths, kind))
            .await
            .map_err(|e| EngineError::Internal {
                what: "lock task",
                message: e.to_string(),
            })??;
        tracing::info!(pid = lock.owner.pid, kind = ?kind, "engine lock taken");
        // Before any VM's endpoint is named: on Windows a new id makes this engine's pipe names
        // unknowable to anyone who saw the last one's (see `endpoint::vm_endpoint`).
        paths.renew_endpoint_id().map_err(|e| EngineError::Internal {
            what: "endpoint id",
            message: e.to_string(),
        })?;
        let store = Store::new(paths.config_file());
        let config = store.load()?;
        // Keychain entries and docker contexts carry this install's id, so another Tether home
        // on the same keychain and docker config never overwrites or removes them.
        let install = paths::install_id(&paths).map_err(|e| EngineError::InstallId {
            path: paths.install_id_file(),
            message: e.to_string(),
        })?;
        let keys = keys.scoped(&install);
        let contexts = ContextStore::from_env(&install, &paths.config_dir.display().to_string());
        let (events, _) = broadcast::channel(1024);
        let shared = forward::Shared::default();
        let net = netwatch::spawn(&shared.tasks);
        shared.apply(&config.settings);
        let share_env = crate::share::Env {
            install: install.clone(),
            bins: Arc::new(crate::share::agent::AgentBins::find()),
        };
        let mut sessions = BTreeMap::new();
        for (name, profile) in &config.vms {
            sessions.insert(
                name.clone(),
                session::spawn(
                    name.clone(),
                    profile.clone(),
                    paths.clone(),
                    events.clone(),
                    net.clone(),
                    keys.clone(),
                    shared.clone(),
                    Some(share_env.clone()),
                ),
            );
        }
        let auto: Vec<SessionHandle> = config
            .vms
            .iter()
            .filter(|(_, p)| p.auto_connect)
            .filter_map(|(n, _)| sessions.get(n).cloned())
            .collect();
        let recent: Arc<Recent> = Arc::default();
        shared.tasks.spawn(record_recent(
            events.subscribe(),
            recent.clone(),
            shared.tasks.stop_token(),
        ));
        let engine = Engine {
            inner: Arc::new(Inner {
                keys,
                contexts,
                health: Arc::default(),
                monitors: Default::default(),
                recent,
                paths,
                store,
                state: Mutex::new(EngineState { config, sessions }),
                events,
                net,
                shared,
                share_env,
                lock,
                edits: Mutex::new(()),
            }),
        };
        // The contexts follow this run's socket paths, and any hand edit of the config.
        engine.sync_contexts(&engine.config().await);
        engine.sync_monitors().await;
        for s in auto {
            engine.inner.shared.tasks.spawn(async move {
                if let Err(e) = s.connect(ConnectOpts::default()).await {
                    tracing::warn!(error = %e, "auto-connect failed");
                }
            });
        }
        Ok(engine)
    }

    pub fn paths(&self) -> &Paths {
        &self.inner.paths
    }

    /// Which process runs this engine, and since when.
    pub fn owner(&self) -> &instance::Owner {
        &self.inner.lock.owner
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Lets a unit test put events on the broadcast, as the sessions do.
    #[cfg(test)]
    pub(crate) fn emit(&self, ev: Event) {
        let _ = self.inner.events.send(ev);
    }

    /// A session actor for a VM, wired to this engine's events, network changes, keys and budget.
    pub(crate) fn new_session(&self, name: &str, profile: Profile) -> SessionHandle {
        let i = &self.inner;
        session::spawn(
            name.to_string(),
            profile,
            i.paths.clone(),
            i.events.clone(),
            i.net.clone(),
            i.keys.clone(),
            i.shared.clone(),
            Some(i.share_env.clone()),
        )
    }

    /// One monitor per VM: started for new VMs, stopped for removed ones, settings pushed.
    async fn sync_monitors(&self) {
        let guard = self.inner.state.lock().await;
        self.configure_monitors(&guard.config, &guard.sessions);
    }

    pub(crate) fn configure_monitors(&self, config: &Config, sessions: &BTreeMap<String, SessionHandle>) {
        let Ok(mut monitors) = self.inner.monitors.lock() else {
            return;
        };
        monitors.retain(|name, _| sessions.contains_key(name));
        for (name, session) in sessions {
            let Some(profile) = config.vms.get(name) else { continue };
            let settings = monitor::Settings {
                auto_forward: profile.auto_forward.unwrap_or(config.settings.auto_forward),
                policy: AutoPolicy {
                    allow_privileged: config.settings.privileged_ports,
                },
                arch: profile.arch,
                deny: config.settings.auto_forward_deny.clone().into(),
            };
            match monitors.get(name) {
                Some(m) => {
                    m.settings.send_if_modified(|s| {
                        let changed = *s != settings;
                        *s = settings.clone();
                        changed
                    });
                }
                None => {
                    let m = monitor::spawn(
                        name.clone(),
                        session.clone(),
                        self.inner.paths.docker_socket(name),
                        self.inner.events.clone(),
                        self.inner.health.clone(),
                        settings,
                        &self.inner.shared.tasks,
                    );
                    monitors.insert(name.clone(), m);
                }
            }
        }
    }

    /// Counts a live watcher (the window, `status --watch`) while the guard lives, so health is
    /// sampled quickly only while someone looks.
    pub fn watching(&self) -> WatchGuard {
        self.inner
            .health
            .watchers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.health.wake_all();
        WatchGuard(self.inner.health.clone())
    }

    /// A VM's latest health and its history.
    pub async fn health(&self, name: &str) -> Result<HealthReport, EngineError> {
        self.config().await.vm(name)?;
        Ok(self.inner.health.report(name))
    }

    /// Makes Tether's context the docker CLI's current one: `tether` (whichever VM is active),
    /// or `tether-NAME` when a VM is named. Only on the user's request; returns the context.
    pub async fn use_docker_context(&self, vm: Option<&str>) -> Result<String, EngineError> {
        let name = match vm {
            Some(v) => {
                self.config().await.vm(v)?;
                format!("tether-{v}")
            }
            None => "tether".to_string(),
        };
        let store = self.inner.contexts.as_ref().ok_or(EngineError::NoDockerConfig)?;
        self.sync_contexts(&self.config().await);
        store.set_current(&name)?;
        Ok(name)
    }

    /// [`Engine::sync_contexts`] on the blocking pool: it reads and writes files.
    pub(crate) async fn sync_contexts_off_runtime(&self, config: &Config) {
        let (engine, config) = (self.clone(), config.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || engine.sync_contexts(&config)).await {
            tracing::warn!(error = %e, "docker context writer");
        }
    }

    /// Brings the docker CLI's `tether-NAME` and `tether` contexts in line with `config`.
    /// Problems are logged: a read-only ~/.docker must not stop a VM from being added.
    pub(crate) fn sync_contexts(&self, config: &Config) {
        let Some(store) = &self.inner.contexts else { return };
        let socket = |name: &str| crate::endpoint::docker_host(&self.inner.paths.docker_socket(name));
        let mut wanted: Vec<Wanted> = config
            .vms
            .iter()
            .map(|(name, p)| Wanted {
                name: format!("tether-{name}"),
                description: format!("Tether: VM {name} ({})", p.host),
                host: socket(name),
            })
            .collect();
        if let Some(active) = &config.active {
            wanted.push(Wanted {
                name: "tether".into(),
                description: format!("Tether: the active VM (now {active})"),
                host: socket(active),
            });
        }
        for problem in store.sync(&wanted) {
            tracing::warn!(error = %problem, "docker context");
        }
    }

    pub(crate) async fn session(&self, name: Option<&str>) -> Result<(String, SessionHandle), EngineError> {
        let mut guard = self.inner.state.lock().await;
        // A VM added or edited by hand is usable at once; a broken file is reported on the next
        // change instead, and until then the engine goes on with what it has.
        if let Err(e) = self.adopt_outside_changes(&mut guard).await {
            tracing::warn!(error = %e, "the config file changed outside the engine and cannot be read");
        }
        let name = guard.config.resolve(name)?;
        let s = guard
            .sessions
            .get(&name)
            .cloned()
            .ok_or_else(|| ConfigError::NoSuchVm(name.clone()))?;
        Ok((name, s))
    }

    /// Connects a VM (default: the active one) and returns once Docker answered or failed.
    pub async fn connect(&self, name: Option<&str>, opts: Connect) -> Result<ConnectReport, EngineError> {
        let (name, s) = self.session(name).await?;
        let mut report = s
            .connect(ConnectOpts {
                accept_new: opts.accept_new,
                confirmed_fingerprint: opts.confirmed_fingerprint,
                passphrase: opts.passphrase,
            })
            .await?;
        report.status.active = self.inner.state.lock().await.config.active.as_deref() == Some(name.as_str());
        Ok(report)
    }

    pub async fn disconnect(&self, name: Option<&str>) -> Result<String, EngineError> {
        let (name, s) = self.session(name).await?;
        s.disconnect().await?;
        Ok(name)
    }

    pub async fn disconnect_all(&self) -> Result<Vec<String>, EngineError> {
        let sessions: Vec<(String, SessionHandle)> = self
            .inner
            .state
            .lock()
            .await
            .sessions
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        let mut out = Vec::new();
        for (n, s) in sessions {
            if s.status().state.wanted() || matches!(s.status().state, crate::state::State::Failed) {
                s.disconnect().await?;
                out.push(n);
            }
        }
        Ok(out)
    }

    pub async fn status(&self) -> Vec<VmStatus> {
        let guard = self.inner.state.lock().await;
        let active = guard.config.active.clone();
        guard
            .sessions
            .values()
            .map(|s| {
                let mut st = s.status();
                st.active = active.as_deref() == Some(st.name.as_str());
                st.auto_forward = guard
                    .config
                    .vms
                    .get(&st.name)
                    .and_then(|p| p.auto_forward)
                    .unwrap_or(guard.config.settings.auto_forward);
                st
            })
            .collect()
    }

    /// The latest events of one VM, oldest first.
    pub fn recent_events(&self, name: &str) -> Vec<TimedEvent> {
        self.inner
            .recent
            .lock()
            .map(|r| r.get(name).map(|q| q.iter().cloned().collect()).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Disconnects everything, stops every session and monitor, and waits for every task the
    /// engine spawned to end (at most [`SHUTDOWN_GRACE`]; any left are named in the log).
    pub async fn shutdown(&self) {
        let sessions: Vec<SessionHandle> = self.inner.state.lock().await.sessions.values().cloned().collect();
        for s in sessions {
            s.shutdown().await;
        }
        if let Ok(mut monitors) = self.inner.monitors.lock() {
            monitors.clear();
        }
        match self.inner.shared.tasks.shutdown(SHUTDOWN_GRACE).await {
            0 => tracing::info!("every engine task ended"),
            left => tracing::warn!(
                left,
                "engine tasks still running after {SHUTDOWN_GRACE:?}; they end with the process"
            ),
        }
    }
}

/// Counts one watcher while alive; see [`Engine::watching`].
pub struct WatchGuard(Arc<monitor::Shared>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Keeps the last [`RECENT_EVENTS`] events of each VM, until the engine stops.
async fn record_recent(
    mut rx: broadcast::Receiver<Event>,
    recent: Arc<Recent>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let received = tokio::select! {
            r = rx.recv() => r,
            () = stop.cancelled() => return,
        };
        let event = match received {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let vm = match &event {
            Event::State { vm, .. } | Event::Forward { vm, .. } | Event::Engine { vm, .. } => vm.clone(),
            Event::Conflict { vm, .. } | Event::ShareSuggested { vm, .. } => vm.clone(),
            Event::VmAdded { vm } | Event::VmRemoved { vm } => vm.clone(),
            Event::Active { vm: Some(vm) } => vm.clone(),
            // Frequent and already shown live elsewhere: not "recent events" material.
            Event::Active { vm: None }
            | Event::Rtt { .. }
            | Event::Containers { .. }
            | Event::Health { .. }
            | Event::Shares { .. }
            | Event::Reverse { .. } => {
                continue;
            }
        };
        let at_ms = crate::clock::unix_ms();
        if let Ok(mut r) = recent.lock() {
            if matches!(event, Event::VmRemoved { .. }) {
                r.remove(&vm);
                continue;
            }
            let q = r.entry(vm).or_default();
            q.push_back(TimedEvent { at_ms, event });
            while q.len() > RECENT_EVENTS {
                q.pop_front();
            }
        }
    }
}
