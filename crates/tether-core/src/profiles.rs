//! The engine's config and its edits: VMs added, removed and changed, tunnels, the active VM and
//! the settings. Each is one call that reads, changes and writes the config under the engine's
//! edit lock, so two front ends never lose each other's changes, and a file changed by hand is
//! adopted first, never written over.

use crate::api::Event;
use crate::config::{Config, ConfigError, PortMap, Profile, ReverseMap, Settings, validate_name};
use crate::engine::{Engine, EngineState};
use crate::error::EngineError;

impl Engine {
    pub async fn config(&self) -> Config {
        self.inner.state.lock().await.config.clone()
    }

    /// Applies `change` to a copy of the config and saves it; memory changes only if the write
    /// succeeded, so the file and the engine never disagree. A file changed outside the engine
    /// since it last read or wrote it is adopted first, so the change lands on top of it; one
    /// that no longer parses refuses the change and stays as it is.
    pub(crate) async fn edit<T>(
        &self,
        change: impl FnOnce(&mut Config) -> Result<T, EngineError>,
    ) -> Result<(T, tokio::sync::MutexGuard<'_, EngineState>), EngineError> {
        let _edit = self.inner.edits.lock().await;
        let (out, next) = {
            let mut guard = self.inner.state.lock().await;
            self.adopt_outside_changes(&mut guard).await?;
            let mut next = guard.config.clone();
            let out = change(&mut next)?;
            (out, next)
        };
        // The file's fsync and docker's context files, with the state free meanwhile: `status`
        // and the sessions' reports never wait on a disk. Edits still come one at a time
        // (`edits`), so nothing changes the config between here and below.
        self.save(&next).await?;
        self.sync_contexts_off_runtime(&next).await;
        let mut guard = self.inner.state.lock().await;
        guard.config = next;
        self.inner.shared.apply(&guard.config.settings);
        self.configure_monitors(&guard.config, &guard.sessions);
        Ok((out, guard))
    }

    /// Writes the config file off the runtime's workers (it fsyncs).
    pub(crate) async fn save(&self, config: &Config) -> Result<(), EngineError> {
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
    pub(crate) async fn adopt_outside_changes(&self, state: &mut EngineState) -> Result<(), EngineError> {
        let store = self.inner.store.clone();
        let changed = tokio::task::spawn_blocking(move || store.changed_on_disk())
            .await
            .map_err(|e| EngineError::Internal {
                what: "config reader",
                message: e.to_string(),
            })??;
        let Some(disk) = changed else { return Ok(()) };
        if disk == state.config {
            return Ok(());
        }
        tracing::info!(path = %self.inner.store.path().display(), "the config file was changed outside the engine; reloading it");
        let old = std::mem::replace(&mut state.config, disk);
        let EngineState { config, sessions } = state;
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
                    self.inner.shared.tasks.spawn(async move {
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
                self.inner.shared.tasks.spawn(async move { s.shutdown().await });
                let _ = self.inner.events.send(Event::VmRemoved { vm: name });
            }
        }
        self.sync_contexts(config);
        self.configure_monitors(config, sessions);
        Ok(())
    }

    /// Changes the settings (they belong to no VM).
    async fn change_settings(&self, change: impl FnOnce(&mut Settings)) -> Result<(), EngineError> {
        drop(
            self.edit(|cfg| {
                change(&mut cfg.settings);
                Ok(())
            })
            .await?,
        );
        Ok(())
    }

    /// Lets automatic forwards take ports below 1024 on the laptop (else they move up by 10000).
    pub async fn set_privileged_ports(&self, on: bool) -> Result<(), EngineError> {
        self.change_settings(|s| s.privileged_ports = on).await
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
        guard.sessions.insert(name.to_string(), self.new_session(name, profile));
        self.configure_monitors(&guard.config, &guard.sessions);
        drop(guard);
        let _ = self.inner.events.send(Event::VmAdded { vm: name.to_string() });
        Ok(())
    }

    pub async fn remove_vm(&self, name: &str) -> Result<(), EngineError> {
        let kube = self.config().await.vm(name).ok().and_then(|p| p.kube.clone());
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
        let s = guard.sessions.remove(name);
        self.configure_monitors(&guard.config, &guard.sessions);
        drop(guard);
        self.inner.health.forget(name);
        if let Some(s) = s {
            s.shutdown().await;
        }
        // Its kubeconfig entries name a tunnel that is gone now.
        if let Some(link) = kube
            && let Err(e) = crate::k8s::forget_kubeconfig(&link, name)
        {
            tracing::warn!(vm = %name, error = %e, "could not remove the VM's kubeconfig entries");
        }
        let _ = self.inner.events.send(Event::VmRemoved { vm: name.to_string() });
        Ok(())
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
        self.change_tunnels(name, |p| {
            for m in maps {
                p.add_forward(*m)?;
            }
            Ok(())
        })
        .await
        .map(|p| p.forwards)
    }

    /// Adds reverse tunnels to a VM; a connected VM is asked to listen at once, and they are
    /// saved only if it agreed to every one.
    pub async fn add_reverse(&self, name: Option<&str>, maps: &[ReverseMap]) -> Result<Vec<ReverseMap>, EngineError> {
        self.change_tunnels(name, |p| {
            for m in maps {
                p.add_reverse(*m)?;
            }
            Ok(())
        })
        .await
        .map(|p| p.reverse)
    }

    pub async fn remove_reverse(&self, name: Option<&str>, remotes: &[u16]) -> Result<Vec<ReverseMap>, EngineError> {
        self.change_tunnels(name, |p| {
            for r in remotes {
                if !p.reverse.iter().any(|m| m.remote == *r) {
                    return Err(ConfigError::Coded {
                        code: crate::advice::ErrorCode::NoSuchReverse,
                        message: format!("no reverse tunnel on the VM's port {r}; `tether tunnel --list` shows them"),
                        details: None,
                    }
                    .into());
                }
                p.reverse.retain(|m| m.remote != *r);
            }
            Ok(())
        })
        .await
        .map(|p| p.reverse)
    }

    pub async fn remove_forwards(&self, name: Option<&str>, locals: &[u16]) -> Result<Vec<PortMap>, EngineError> {
        self.change_tunnels(name, |p| {
            for l in locals {
                if !p.forwards.iter().any(|f| f.local == *l) {
                    return Err(ConfigError::Coded {
                        code: crate::advice::ErrorCode::NoSuchTunnel,
                        message: format!("no tunnel on local port {l}; `tether tunnel --list` shows them"),
                        details: None,
                    }
                    .into());
                }
                p.forwards.retain(|f| f.local != *l);
            }
            Ok(())
        })
        .await
        .map(|p| p.forwards)
    }

    /// Changes a VM's tunnels (local, reverse, the Kubernetes one): bound, or asked of the VM,
    /// before the config is written, and the old profile restored if either fails.
    pub(crate) async fn change_tunnels(
        &self,
        name: Option<&str>,
        change: impl FnOnce(&mut Profile) -> Result<(), EngineError>,
    ) -> Result<Profile, EngineError> {
        // Config changes are serialised by `edits`; the state lock is held only between awaits on
        // the session actor, never across one, so status requests never wait behind a bind.
        let _edit = self.inner.edits.lock().await;
        let (name, next, old, session) = {
            let mut guard = self.inner.state.lock().await;
            self.adopt_outside_changes(&mut guard).await?;
            let name = guard.config.resolve(name)?;
            let mut next = guard.config.clone();
            change(next.vm_mut(&name)?)?;
            next.validate()?;
            let old = guard.config.vm(&name)?.clone();
            let session = guard
                .sessions
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
        self.inner.state.lock().await.config = next;
        Ok(profile)
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
        if let Some(s) = guard.sessions.get(name).cloned() {
            drop(guard);
            s.set_profile(profile).await?;
        }
        Ok(())
    }

    /// Shares a laptop folder with VM `name`'s containers (replacing the default home share the
    /// first time a VM names its own).
    pub async fn share_add(
        &self,
        name: &str,
        share: crate::config::Share,
    ) -> Result<Vec<crate::config::Share>, EngineError> {
        let (profile, guard) = self
            .edit(|cfg| {
                let p = cfg.vm_mut(name)?;
                let mut shares = p.shares();
                if shares.iter().any(|s| s.name == share.name) {
                    return Err(ConfigError::Invalid(format!(
                        "VM '{name}' already has a share named '{}'; remove it first (tether share rm {})",
                        share.name, share.name
                    ))
                    .into());
                }
                if let Some(s) = shares
                    .iter()
                    .find(|s| share.path.starts_with(&s.path) || s.path.starts_with(&share.path))
                {
                    return Err(ConfigError::Invalid(format!(
                        "{} overlaps the share '{}' ({}); a folder belongs to one share",
                        share.path.display(),
                        s.name,
                        s.path.display()
                    ))
                    .into());
                }
                shares.push(share);
                p.shares = Some(shares);
                Ok(p.clone())
            })
            .await?;
        let shares = profile.shares();
        if let Some(s) = guard.sessions.get(name).cloned() {
            drop(guard);
            s.set_profile(profile).await?;
        }
        Ok(shares)
    }

    /// Stops sharing a folder with VM `name`'s containers (mirrors already made stay on the VM).
    pub async fn share_remove(&self, name: &str, share: &str) -> Result<Vec<crate::config::Share>, EngineError> {
        let (profile, guard) = self
            .edit(|cfg| {
                let p = cfg.vm_mut(name)?;
                let mut shares = p.shares();
                let before = shares.len();
                shares.retain(|s| s.name != share);
                if shares.len() == before {
                    return Err(ConfigError::Coded {
                        code: crate::advice::ErrorCode::NoSuchShare,
                        message: format!("VM '{name}' has no share named '{share}'; `tether share ls` lists them"),
                        details: None,
                    }
                    .into());
                }
                p.shares = Some(shares);
                Ok(p.clone())
            })
            .await?;
        let shares = profile.shares();
        if let Some(s) = guard.sessions.get(name).cloned() {
            drop(guard);
            s.set_profile(profile).await?;
        }
        Ok(shares)
    }

    /// Each VM's shared folders and their state (`name`: one VM).
    pub async fn shares(&self, name: Option<&str>) -> Result<Vec<crate::api::VmShares>, EngineError> {
        let guard = self.inner.state.lock().await;
        let mut out = Vec::new();
        for (vm, s) in &guard.sessions {
            if name.is_some_and(|n| n != vm) {
                continue;
            }
            out.push(crate::api::VmShares {
                vm: vm.clone(),
                shares: s.shares(),
            });
        }
        if let Some(n) = name
            && out.is_empty()
        {
            return Err(ConfigError::NoSuchVm(n.to_string()).into());
        }
        Ok(out)
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

    pub async fn set_notifications(&self, on: bool) -> Result<(), EngineError> {
        self.change_settings(|s| s.notifications = on).await
    }

    /// Marks a VM to connect whenever the engine starts.
    pub async fn set_auto_connect(&self, name: &str, on: bool) -> Result<(), EngineError> {
        self.modify_vm(name, |p| p.auto_connect = on).await
    }
}
