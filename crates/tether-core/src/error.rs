//! The engine's error type: every failure a caller of the engine can see, each with a stable
//! code for the control API and a message that names the cause and the fix.

use std::sync::Arc;

use crate::config::ConfigError;
use crate::forward::ForwardError;
use crate::identity::IdentityError;
use crate::paths::PathError;
use crate::ssh::SshError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Ssh(#[from] SshError),
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
            EngineError::Ssh(SshError::HostKeyUnknown { .. }) => "host_key_unknown",
            EngineError::Ssh(SshError::HostKeyChanged { .. }) => "host_key_changed",
            EngineError::Ssh(SshError::HostKeyRevoked { .. }) => "host_key_revoked",
            EngineError::Ssh(SshError::AuthFailed { .. } | SshError::NoCredentials { .. }) => "auth_failed",
            EngineError::Ssh(SshError::Identity(IdentityError::PassphraseRequired { .. }))
            | EngineError::Identity(IdentityError::PassphraseRequired { .. }) => "passphrase_required",
            EngineError::Ssh(SshError::Identity(IdentityError::WrongPassphrase { .. }))
            | EngineError::Identity(IdentityError::WrongPassphrase { .. }) => "wrong_passphrase",
            EngineError::Ssh(SshError::Identity(_)) | EngineError::Identity(_) => "identity",
            EngineError::Ssh(SshError::Resolve { .. }) => "unknown_host",
            EngineError::Ssh(SshError::Refused { .. }) => "connection_refused",
            EngineError::Ssh(SshError::Timeout { .. } | SshError::Unreachable { .. }) => "unreachable",
            EngineError::Ssh(_) => "ssh",
            EngineError::Forward(ForwardError::PortInUse { .. }) => "port_in_use",
            EngineError::Forward(ForwardError::Privileged { .. }) => "port_privileged",
            EngineError::Forward(_) | EngineError::Path(_) => "local_socket",
            EngineError::Engine(_) => "engine",
            EngineError::ShuttingDown => "shutting_down",
        }
    }

    /// The fingerprint of an unknown host key, for a confirmation prompt.
    pub fn unknown_fingerprint(&self) -> Option<&str> {
        match self {
            EngineError::Shared(inner) => inner.unknown_fingerprint(),
            EngineError::Ssh(SshError::HostKeyUnknown { fingerprint, .. }) => Some(fingerprint),
            _ => None,
        }
    }
}
