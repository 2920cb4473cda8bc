//! The engine's error type: every failure a caller of the engine can see, each with a stable
//! code for the control API and a message that names the cause and the fix.

use std::sync::Arc;

use crate::config::ConfigError;
use crate::forward::ForwardError;
use crate::identity::IdentityError;
use crate::instance::InstanceError;
use crate::keystore::KeyStoreError;
use crate::paths::PathError;
use crate::ssh::SshError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Boxed: host-key errors carry several strings and would bloat every `Result`.
    #[error(transparent)]
    Ssh(Box<SshError>),
    #[error(transparent)]
    Forward(#[from] ForwardError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// One failure reported to several waiting callers.
    #[error(transparent)]
    Shared(Arc<EngineError>),
    #[error("{0}")]
    Engine(String),
    #[error("the Tether engine is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Instance(#[from] InstanceError),
}

impl EngineError {
    /// A stable, machine-readable code for the control API and the app.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Shared(inner) => inner.code(),
            EngineError::Config(ConfigError::NoSuchVm(_)) => "no_such_vm",
            EngineError::Config(ConfigError::VmExists(_)) => "vm_exists",
            EngineError::Config(ConfigError::NoActiveVm) => "no_active_vm",
            EngineError::Config(ConfigError::Parse { .. } | ConfigError::Version { .. }) => "config_corrupt",
            EngineError::Config(_) => "config_invalid",
            EngineError::Ssh(e) => match e.as_ref() {
                SshError::HostKeyUnknown { .. } => "host_key_unknown",
                SshError::HostKeyChanged { .. } => "host_key_changed",
                SshError::HostKeyOtherType { .. } => "host_key_other_type",
                SshError::HostKeyRevoked { .. } => "host_key_revoked",
                SshError::AuthFailed { .. } | SshError::NoCredentials { .. } => "auth_failed",
                SshError::Identity(i) => identity_code(i),
                SshError::Resolve { .. } => "unknown_host",
                SshError::Refused { .. } => "connection_refused",
                SshError::Timeout { .. } | SshError::Unreachable { .. } => "unreachable",
                SshError::Handshake { .. } | SshError::Closed => "ssh",
            },
            EngineError::Identity(i) => identity_code(i),
            EngineError::Forward(ForwardError::PortInUse { .. }) => "port_in_use",
            EngineError::Forward(ForwardError::Privileged { .. }) => "port_privileged",
            EngineError::Forward(_) | EngineError::Path(_) => "local_socket",
            EngineError::Engine(_) => "engine",
            EngineError::ShuttingDown => "shutting_down",
            EngineError::Instance(InstanceError::Running(_)) => "engine_running",
            EngineError::Instance(_) => "local_socket",
        }
    }
}

impl From<SshError> for EngineError {
    fn from(e: SshError) -> Self {
        EngineError::Ssh(Box::new(e))
    }
}

fn identity_code(e: &IdentityError) -> &'static str {
    match e {
        IdentityError::PassphraseRequired { .. } => "passphrase_required",
        IdentityError::WrongPassphrase { .. } => "wrong_passphrase",
        IdentityError::Keychain(k) => match k {
            KeyStoreError::Locked(_) | KeyStoreError::Timeout => "keychain_locked",
            KeyStoreError::Unavailable(_) => "keychain_unavailable",
            KeyStoreError::NoKey(_) => "no_such_key",
            _ => "keychain",
        },
        _ => "identity",
    }
}

#[cfg(test)]
#[path = "tests/error.rs"]
mod tests;
