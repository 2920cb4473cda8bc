//! The supervisor: owns the config, one session actor per VM, the active VM, and the single
//! broadcast of typed events. The control server, the CLI and the app all call into this.

use std::collections::BTreeMap;
use std::sync::Arc;

use russh::keys::PublicKey;
use tokio::sync::{Mutex, broadcast};
use zeroize::Zeroizing;

use crate::api::{ConnectReport, Event, HealthReport, HostKeyScan, HostKeyVerdict, VmStatus};
use crate::config::{Config, ConfigError, PortMap, Profile, Store, validate_name};
use crate::contexts::{ContextStore, Wanted};
use crate::error::{EngineError, Refusal};
use crate::forward;
use crate::instance;
use crate::keystore::{KeyStore, Keys};
use crate::known_hosts::{self, HostKeyStatus};
use crate::monitor::{self, Monitor};
use crate::netwatch::{self, NetChanges};
use crate::paths::{self, Paths};
use crate::ports::AutoPolicy;
use crate::session::{self, ConnectOpts, SessionHandle};

pub use crate::api::TimedEvent;

/// How many recent events are kept per VM for the app's "recent events" list.
pub const RECENT_EVENTS: usize = 50;

type Recent = std::sync::Mutex<BTreeMap<String, std::collections::VecDeque<TimedEvent>>>;

pub(crate) struct Inner {
    pub(crate) keys: Keys,
    contexts: Option<ContextStore>,
    pub(crate) health: Arc<monitor::Shared>,
    monitors: std::sync::Mutex<BTreeMap<String, Monitor>>,
    recent: Arc<Recent>,
    paths: Paths,
    store: Store,
    /// Config and sessions change together under this lock, so they never disagree. It is never
    /// held across an await on a session actor.
    state: Mutex<(Config, BTreeMap<String, SessionHandle>)>,
    /// Serialises config changes, including those that wait on an actor (binding a tunnel)
    /// between reading the config and writing it.
    edits: Mutex<()>,
    events: broadcast::Sender<Event>,
    net: NetChanges,
    /// Receive-window bytes shared by every forwarded stream of every VM.
    /// The window budget and stream limit every forward shares.
    pub(crate) shared: forward::Shared,
    /// This engine is the only one of its Tether home while this is held.
    lock: instance::Lock,
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
        let net = netwatch::spawn();
        let shared = forward::Shared::default();
        shared.max_streams.store(
            config.settings.max_streams.max(1) as usize,
            std::sync::atomic::Ordering::Relaxed,
        );
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
        tokio::spawn(record_recent(events.subscribe(), recent.clone()));
        let engine = Engine {
            inner: Arc::new(Inner {
                keys,
                contexts,
                health: Arc::default(),
                monitors: Default::default(),
                recent,
                paths,
                store,
                state: Mutex::new((config, sessions)),
                events,
                net,
                shared,
                lock,
                edits: Mutex::new(()),
            }),
        };
        // The contexts follow this run's socket paths, and any hand edit of the config.
        engine.sync_contexts(&engine.config().await);
        engine.sync_monitors().await;
        for s in auto {
            tokio::spawn(async move {
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

    pub async fn config(&self) -> Config {
        self.inner.state.lock().await.0.clone()
    }

    /// Applies `change` to a copy of the config and saves it; memory changes only if the write
    /// succeeded, so the file and the engine never disagree. A file changed outside the engine
    /// since it last read or wrote it is adopted first, so the change lands on top of it; one
    /// that no longer parses refuses the change and stays as it is.
    pub(crate) async fn edit<T>(
        &self,
        change: impl FnOnce(&mut Config) -> Result<T, EngineError>,
    ) -> Result<
        (
            T,
            tokio::sync::MutexGuard<'_, (Config, BTreeMap<String, SessionHandle>)>,
        ),
        EngineError,
    > {
        let _edit = self.inner.edits.lock().await;
        let mut guard = self.inner.state.lock().await;
        self.adopt_outside_changes(&mut guard).await?;
        let mut next = guard.0.clone();
        let out = change(&mut next)?;
        self.save(&next).await?;
        guard.0 = next;
        self.inner.shared.max_streams.store(
            guard.0.settings.max_streams.max(1) as usize,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.sync_contexts(&guard.0);
        self.configure_monitors(&guard.0, &guard.1);
        Ok((out, guard))
    }

    /// A session actor for a VM, wired to this engine's events, network changes, keys and budget.
    fn new_session(&self, name: &str, profile: Profile) -> SessionHandle {
        let i = &self.inner;
        session::spawn(
            name.to_string(),
            profile,
            i.paths.clone(),
            i.events.clone(),
            i.net.clone(),
            i.keys.clone(),
            i.shared.clone(),
        )
    }

    /// Writes the config file off the runtime's workers (it fsyncs).
    async fn save(&self, config: &Config) -> Result<(), EngineError> {
        let store = self.inner.store.clone();
        let config = config.clone();
        tokio::task::spawn_blocking(move || store.save(&config))
            .await
            .map_err(|e| EngineError::Internal {
                what: "config writer",
                message: e.to_string(),
            })??;
        Ok(())
    }

    /// Reads the config file again if someone else changed it, and makes the sessions follow:
    /// new VMs get a session, removed ones are disconnected, changed profiles are applied.
    async fn adopt_outside_changes(
        &self,
        state: &mut (Config, BTreeMap<String, SessionHandle>),
    ) -> Result<(), EngineError> {
        let store = self.inner.store.clone();
        let changed = tokio::task::spawn_blocking(move || store.changed_on_disk())
            .await
            .map_err(|e| EngineError::Internal {
                what: "config reader",
                message: e.to_string(),
            })??;
        let Some(disk) = changed else { return Ok(()) };
        if disk == state.0 {
            return Ok(());
        }
        tracing::info!(path = %self.inner.store.path().display(), "the config file was changed outside the engine; reloading it");
        let old = std::mem::replace(&mut state.0, disk);
        let (config, sessions) = state;
        for (name, profile) in &config.vms {
            match sessions.get(name) {
                None => {
                    sessions.insert(name.clone(), self.new_session(name, profile.clone()));
                    let _ = self.inner.events.send(Event::VmAdded { vm: name.clone() });
                }
                // The actor applies it (and reconnects a live VM) on its own time: the engine lock
                // is never held across an actor's work.
                Some(s) if old.vms.get(name) != Some(profile) => {
                    let (s, profile) = (s.clone(), profile.clone());
                    tokio::spawn(async move {
                        if let Err(e) = s.set_profile(profile).await {
                            tracing::warn!(error = %e, "cannot apply the edited profile");
                        }
                    });
                }
                Some(_) => {}
            }
        }
        let gone: Vec<String> = sessions
            .keys()
            .filter(|n| !config.vms.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(s) = sessions.remove(&name) {
                self.inner.health.forget(&name);
                tokio::spawn(async move { s.shutdown().await });
                let _ = self.inner.events.send(Event::VmRemoved { vm: name });
            }
        }
        self.sync_contexts(config);
        self.configure_monitors(config, sessions);
        Ok(())
    }

    /// One monitor per VM: started for new VMs, stopped for removed ones, settings pushed.
    async fn sync_monitors(&self) {
        let guard = self.inner.state.lock().await;
        self.configure_monitors(&guard.0, &guard.1);
    }

    fn configure_monitors(&self, config: &Config, sessions: &BTreeMap<String, SessionHandle>) {
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
        self.inner.health.wake.notify_waiters();
        WatchGuard(self.inner.health.clone())
    }

    /// A VM's latest health and its history.
    pub async fn health(&self, name: &str) -> Result<HealthReport, EngineError> {
        self.config().await.vm(name)?;
        Ok(self.inner.health.report(name))
    }

    /// Lets automatic forwards take ports below 1024 on the laptop (else they move up by 10000).
    pub async fn set_privileged_ports(&self, on: bool) -> Result<(), EngineError> {
        drop(
            self.edit(|cfg| {
                cfg.settings.privileged_ports = on;
                Ok(())
            })
            .await?,
        );
        Ok(())
    }

    /// Turns automatic port forwarding on or off for one VM, or sets the default for all.
    pub async fn set_auto_forward(&self, name: Option<&str>, on: bool) -> Result<(), EngineError> {
        drop(
            self.edit(|cfg| {
                match name {
                    Some(n) => cfg.vm_mut(n)?.auto_forward = Some(on),
                    None => cfg.settings.auto_forward = on,
                }
                Ok(())
            })
            .await?,
        );
        Ok(())
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

    /// Brings the docker CLI's `tether-NAME` and `tether` contexts in line with `config`.
    /// Problems are logged: a read-only ~/.docker must not stop a VM from being added.
    fn sync_contexts(&self, config: &Config) {
        let Some(store) = &self.inner.contexts else { return };
        let socket = |name: &str| format!("unix://{}", self.inner.paths.docker_socket(name).display());
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

    pub async fn add_vm(&self, name: &str, profile: Profile) -> Result<(), EngineError> {
        validate_name(name)?;
        let (_, mut guard) = self
            .edit(|cfg| {
                if cfg.vms.contains_key(name) {
                    return Err(ConfigError::VmExists(name.to_string()).into());
                }
                cfg.vms.insert(name.to_string(), profile.clone());
                // The first VM becomes the active one: the obvious default.
                if cfg.active.is_none() {
                    cfg.active = Some(name.to_string());
                }
                Ok(())
            })
            .await?;
        guard.1.insert(name.to_string(), self.new_session(name, profile));
        self.configure_monitors(&guard.0, &guard.1);
        drop(guard);
        let _ = self.inner.events.send(Event::VmAdded { vm: name.to_string() });
        Ok(())
    }

    pub async fn remove_vm(&self, name: &str) -> Result<(), EngineError> {
        let (_, mut guard) = self
            .edit(|cfg| {
                cfg.vm(name)?;
                cfg.vms.remove(name);
                if cfg.active.as_deref() == Some(name) {
                    cfg.active = None;
                }
                Ok(())
            })
            .await?;
        let s = guard.1.remove(name);
        self.configure_monitors(&guard.0, &guard.1);
        drop(guard);
        self.inner.health.forget(name);
        if let Some(s) = s {
            s.shutdown().await;
        }
        let _ = self.inner.events.send(Event::VmRemoved { vm: name.to_string() });
        Ok(())
    }

    pub(crate) async fn session(&self, name: Option<&str>) -> Result<(String, SessionHandle), EngineError> {
        let mut guard = self.inner.state.lock().await;
        // A VM added or edited by hand is usable at once; a broken file is reported on the next
        // change instead, and until then the engine goes on with what it has.
        if let Err(e) = self.adopt_outside_changes(&mut guard).await {
            tracing::warn!(error = %e, "the config file changed outside the engine and cannot be read");
        }
        let name = guard.0.resolve(name)?;
        let s = guard
            .1
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
        report.status.active = self.inner.state.lock().await.0.active.as_deref() == Some(name.as_str());
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
            .1
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

    pub async fn set_active(&self, name: &str) -> Result<(), EngineError> {
        drop(
            self.edit(|cfg| {
                cfg.vm(name)?;
                cfg.active = Some(name.to_string());
                Ok(())
            })
            .await?,
        );
        let _ = self.inner.events.send(Event::Active {
            vm: Some(name.to_string()),
        });
        Ok(())
    }

    /// Adds tunnels to a VM; they are bound at once if the VM is connected, and saved only if
    /// every one of them could be bound.
    pub async fn add_forwards(&self, name: Option<&str>, maps: &[PortMap]) -> Result<Vec<PortMap>, EngineError> {
        self.change_forwards(name, |p| {
            for m in maps {
                p.add_forward(*m)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn remove_forwards(&self, name: Option<&str>, locals: &[u16]) -> Result<Vec<PortMap>, EngineError> {
        self.change_forwards(name, |p| {
            for l in locals {
                if !p.forwards.iter().any(|f| f.local == *l) {
                    return Err(ConfigError::Invalid(format!(
                        "no tunnel on local port {l}; `tether tunnel --list` shows them"
                    ))
                    .into());
                }
                p.forwards.retain(|f| f.local != *l);
            }
            Ok(())
        })
        .await
    }

    async fn change_forwards(
        &self,
        name: Option<&str>,
        change: impl FnOnce(&mut Profile) -> Result<(), EngineError>,
    ) -> Result<Vec<PortMap>, EngineError> {
        // Config changes are serialised by `edits`; the state lock is held only between awaits on
        // the session actor, never across one, so status requests never wait behind a bind.
        let _edit = self.inner.edits.lock().await;
        let (name, next, old, session) = {
            let mut guard = self.inner.state.lock().await;
            self.adopt_outside_changes(&mut guard).await?;
            let name = guard.0.resolve(name)?;
            let mut next = guard.0.clone();
            change(next.vm_mut(&name)?)?;
            next.validate()?;
            let old = guard.0.vm(&name)?.clone();
            let session = guard
                .1
                .get(&name)
                .cloned()
                .ok_or_else(|| ConfigError::NoSuchVm(name.clone()))?;
            (name, next, old, session)
        };
        let profile = next.vm(&name)?.clone();
        // Bind first (the session refuses if a port is taken), then persist.
        session.set_profile(profile.clone()).await?;
        if let Err(e) = self.save(&next).await {
            let _ = session.set_profile(old).await;
            return Err(e);
        }
        self.inner.state.lock().await.0 = next;
        Ok(profile.forwards)
    }

    /// Replaces a VM's profile (connection settings); a connected VM reconnects with them.
    pub async fn update_vm(&self, name: &str, profile: Profile) -> Result<(), EngineError> {
        let (_, guard) = self
            .edit(|cfg| {
                *cfg.vm_mut(name)? = profile.clone();
                Ok(())
            })
            .await?;
        if let Some(s) = guard.1.get(name).cloned() {
            drop(guard);
            s.set_profile(profile).await?;
        }
        Ok(())
    }

    /// Changes one VM's profile in place under the config lock, so nothing changed between
    /// reading and writing it is lost (a tunnel added meanwhile stays), and applies it.
    pub async fn modify_vm(&self, name: &str, change: impl FnOnce(&mut Profile)) -> Result<(), EngineError> {
        let (profile, guard) = self
            .edit(|cfg| {
                let p = cfg.vm_mut(name)?;
                change(p);
                Ok(p.clone())
            })
            .await?;
        if let Some(s) = guard.1.get(name).cloned() {
            drop(guard);
            s.set_profile(profile).await?;
        }
        Ok(())
    }

    /// Makes keychain key `key` the one `name` logs in with (its key file is forgotten).
    pub async fn set_vm_key(&self, name: &str, key: &str) -> Result<(), EngineError> {
        if !self.config().await.keys.contains_key(key) {
            return Err(
                crate::identity::IdentityError::Keychain(crate::keystore::KeyStoreError::NoKey(key.into())).into(),
            );
        }
        self.modify_vm(name, |p| {
            p.key = Some(key.to_string());
            p.identity = None;
        })
        .await
    }

    /// Changes how `name` is reached (the app's edit form); its key, tunnels and options stay.
    pub async fn set_vm_connection(&self, name: &str, c: crate::api::ConnectionSettings) -> Result<(), EngineError> {
        self.modify_vm(name, |p| c.apply_to(p)).await
    }

    pub async fn status(&self) -> Vec<VmStatus> {
        let guard = self.inner.state.lock().await;
        let active = guard.0.active.clone();
        guard
            .1
            .values()
            .map(|s| {
                let mut st = s.status();
                st.active = active.as_deref() == Some(st.name.as_str());
                st.auto_forward = guard
                    .0
                    .vms
                    .get(&st.name)
                    .and_then(|p| p.auto_forward)
                    .unwrap_or(guard.0.settings.auto_forward);
                st
            })
            .collect()
    }

    /// The VM's address and the host key it presents now, fetched without logging in.
    async fn presented_host_key(&self, name: &str) -> Result<(crate::target::Target, PublicKey), EngineError> {
        let profile = self.inner.state.lock().await.0.vm(name)?.clone();
        let target = crate::target::resolve(&profile)?;
        let key =
            crate::ssh::fetch_host_key(&target, self.known_hosts_files(), crate::ssh::Timeouts::default()).await?;
        Ok((target, key))
    }

    /// As [`Self::presented_host_key`], but only if it is the key the user confirmed by
    /// `fingerprint`: a VM that changed its key since it was shown changes nothing.
    async fn confirmed_host_key(
        &self,
        name: &str,
        fingerprint: &str,
    ) -> Result<(crate::target::Target, PublicKey), EngineError> {
        let (target, key) = self.presented_host_key(name).await?;
        let fp = known_hosts::fingerprint(&key);
        if fp != fingerprint {
            return Err(Refusal::HostKeyNotConfirmed {
                vm: name.into(),
                presented: fp,
                confirmed: fingerprint.into(),
            }
            .into());
        }
        Ok((target, key))
    }

    /// Fetches a VM's host key without logging in and says whether it is known.
    pub async fn scan_host_key(&self, name: &str) -> Result<HostKeyScan, EngineError> {
        let (target, key) = self.presented_host_key(name).await?;
        let status =
            known_hosts::check(&target.host, target.port, &key, &self.known_hosts_files()).map_err(read_err)?;
        let fingerprint = known_hosts::fingerprint(&key);
        let key_type = key.algorithm().to_string();
        let at = |file: &std::path::Path, line: usize, key_type: &str, fingerprint: &str| known_hosts::Recorded {
            file: file.to_path_buf(),
            line,
            key_type: key_type.to_string(),
            fingerprint: fingerprint.to_string(),
        };
        let (status, recorded) = match status {
            HostKeyStatus::Known => (HostKeyVerdict::Known, Vec::new()),
            HostKeyStatus::Unknown => (HostKeyVerdict::Unknown, Vec::new()),
            HostKeyStatus::Changed {
                file,
                line,
                recorded_fingerprint,
            } => (
                HostKeyVerdict::Changed,
                vec![at(&file, line, &key_type, &recorded_fingerprint)],
            ),
            HostKeyStatus::Revoked { file, line } => {
                (HostKeyVerdict::Revoked, vec![at(&file, line, &key_type, &fingerprint)])
            }
            HostKeyStatus::OtherType { recorded } => (HostKeyVerdict::OtherType, recorded),
        };
        let detail = match status {
            HostKeyVerdict::Known | HostKeyVerdict::Unknown => None,
            HostKeyVerdict::OtherType => Some(format!(
                "it is known by other keys: {}",
                recorded.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )),
            HostKeyVerdict::Changed => Some(
                recorded
                    .iter()
                    .map(|r| format!("{}:{} records {}", r.file.display(), r.line, r.fingerprint))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            HostKeyVerdict::Revoked => Some(
                recorded
                    .iter()
                    .map(|r| format!("{}:{}", r.file.display(), r.line))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        };
        Ok(HostKeyScan {
            status,
            key_type,
            fingerprint,
            detail,
            recorded,
        })
    }

    /// Records a host key the user confirmed by fingerprint.
    /// Only a key the files know nothing about can be trusted this way: a changed key, or one
    /// of a type not recorded for a VM known by other keys, takes [`Self::replace_host_key`].
    pub async fn trust_host_key(&self, name: &str, fingerprint: &str) -> Result<(), EngineError> {
        let (target, key) = self.confirmed_host_key(name, fingerprint).await?;
        match known_hosts::check(&target.host, target.port, &key, &self.known_hosts_files()).map_err(read_err)? {
            HostKeyStatus::Known => return Ok(()),
            HostKeyStatus::Unknown => {}
            _ => {
                return Err(Refusal::HostKeyNotNew {
                    vm: name.into(),
                    fingerprint: fingerprint.into(),
                }
                .into());
            }
        }
        let own = self.inner.paths.known_hosts();
        known_hosts::learn(&own, &target.host, target.port, &key).map_err(|e| write_err(&own, e))
    }

    /// Replaces the recorded host key of a reinstalled VM with the one it presents now, which the
    /// user confirmed by `fingerprint` (as `ssh-keygen -R` then a confirmed first connect would).
    /// Only Tether's own known_hosts is edited: a conflicting line in ~/.ssh/known_hosts is
    /// named with the command that removes it, and nothing changes. A revoked key stays refused.
    pub async fn replace_host_key(&self, name: &str, fingerprint: &str) -> Result<usize, EngineError> {
        let (target, key) = self.confirmed_host_key(name, fingerprint).await?;
        let (files, own) = (self.known_hosts_files(), self.inner.paths.known_hosts());
        let entry = known_hosts::host_entry_name(&target.host, target.port);
        // `check` reports a revocation in any file, and otherwise the first conflicting line; the
        // files list OpenSSH's before Tether's, so a conflict it finds in ours is the only one.
        let mut any_type = false;
        match known_hosts::check(&target.host, target.port, &key, &files).map_err(read_err)? {
            HostKeyStatus::Revoked { file, line } => {
                return Err(Refusal::HostKeyRevoked {
                    vm: name.into(),
                    fingerprint: fingerprint.into(),
                    file,
                    line,
                }
                .into());
            }
            HostKeyStatus::Changed { file, line, .. } if file != own => {
                return Err(Refusal::HostKeyInOpenSsh {
                    vm: name.into(),
                    file,
                    line,
                    entry,
                }
                .into());
            }
            HostKeyStatus::Changed { .. } | HostKeyStatus::Known | HostKeyStatus::Unknown => {}
            HostKeyStatus::OtherType { .. } => any_type = true,
        }
        // A VM now known by a key of another type leaves its old keys behind in our file.
        let removed = known_hosts::forget_conflicting(&own, &target.host, target.port, &key, any_type)
            .map_err(|e| write_err(&own, e))?;
        if known_hosts::check(&target.host, target.port, &key, &files).map_err(read_err)? != HostKeyStatus::Known {
            known_hosts::learn(&own, &target.host, target.port, &key).map_err(|e| write_err(&own, e))?;
        }
        tracing::warn!(vm = name, host = %entry, new = %fingerprint, removed, "host key replaced at the user's request");
        Ok(removed)
    }

    /// The latest events of one VM, oldest first.
    pub fn recent_events(&self, name: &str) -> Vec<TimedEvent> {
        self.inner
            .recent
            .lock()
            .map(|r| r.get(name).map(|q| q.iter().cloned().collect()).unwrap_or_default())
            .unwrap_or_default()
    }

    pub async fn set_notifications(&self, on: bool) -> Result<(), EngineError> {
        drop(
            self.edit(|cfg| {
                cfg.settings.notifications = on;
                Ok(())
            })
            .await?,
        );
        Ok(())
    }

    /// Marks a VM to connect whenever the engine starts.
    pub async fn set_auto_connect(&self, name: &str, on: bool) -> Result<(), EngineError> {
        self.modify_vm(name, |p| p.auto_connect = on).await
    }

    fn known_hosts_files(&self) -> Vec<std::path::PathBuf> {
        self.inner.paths.known_hosts_files()
    }

    /// Disconnects everything and stops every session.
    pub async fn shutdown(&self) {
        let sessions: Vec<SessionHandle> = self.inner.state.lock().await.1.values().cloned().collect();
        for s in sessions {
            s.shutdown().await;
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

fn read_err(e: std::io::Error) -> EngineError {
    EngineError::KnownHostsRead(e.to_string())
}

fn write_err(file: &std::path::Path, e: std::io::Error) -> EngineError {
    EngineError::KnownHostsWrite {
        path: file.to_path_buf(),
        message: e.to_string(),
    }
}

/// Keeps the last [`RECENT_EVENTS`] events of each VM.
async fn record_recent(mut rx: broadcast::Receiver<Event>, recent: Arc<Recent>) {
    loop {
        let event = match rx.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let vm = match &event {
            Event::State { vm, .. } | Event::Forward { vm, .. } | Event::Engine { vm, .. } => vm.clone(),
            Event::VmAdded { vm } | Event::VmRemoved { vm } => vm.clone(),
            Event::Active { vm: Some(vm) } => vm.clone(),
            // Frequent and already shown live elsewhere: not "recent events" material.
            Event::Active { vm: None } | Event::Rtt { .. } | Event::Containers { .. } | Event::Health { .. } => {
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
