//! The handle the engine holds on a session actor, and the commands it sends it.

use tokio::sync::{mpsc, oneshot, watch};
use zeroize::Zeroizing;

use crate::api::{ConnectReport, UnforwardedPort, VmStatus};
use crate::config::Profile;
use crate::error::EngineError;
use crate::ports::{AutoPolicy, AutoWant};

use super::Link;

/// Options for one connect request.
#[derive(Default)]
pub struct ConnectOpts {
    pub accept_new: bool,
    pub confirmed_fingerprint: Option<String>,
    pub passphrase: Option<Zeroizing<String>>,
}

pub(super) enum Cmd {
    Connect(ConnectOpts, oneshot::Sender<Result<ConnectReport, EngineError>>),
    Disconnect(oneshot::Sender<()>),
    /// Boxed: a profile is several times larger than any other command.
    Profile(Box<Profile>, oneshot::Sender<Result<(), EngineError>>),
    Auto(Vec<AutoWant>, Vec<UnforwardedPort>, AutoPolicy, oneshot::Sender<()>),
    Arch(Option<String>, oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// Cheap, cloneable handle to a session actor.
#[derive(Clone)]
pub struct SessionHandle {
    pub(super) cmd: mpsc::Sender<Cmd>,
    pub(super) status: watch::Receiver<VmStatus>,
    pub(super) link: watch::Receiver<Option<Link>>,
    pub(super) pool: std::sync::Arc<crate::pool::Pool>,
    pub(super) shares: Option<crate::share::ShareHandle>,
}

impl SessionHandle {
    /// The VM's shared folders and their state.
    pub fn shares(&self) -> Vec<crate::api::ShareView> {
        self.shares.as_ref().map(|s| s.views()).unwrap_or_default()
    }

    /// The live SSH connection, if the VM is connected now.
    pub fn link(&self) -> Option<Link> {
        self.link.borrow().clone()
    }

    /// The last published status, with the Docker socket's pool counters as they are now.
    pub fn status(&self) -> VmStatus {
        let mut status = self.status.borrow().clone();
        status.docker_pool = Some(self.pool.view());
        status.shares = self.shares();
        status
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
        self.ask(|tx| Cmd::Profile(Box::new(profile), tx)).await?
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
