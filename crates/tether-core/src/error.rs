//! The engine's error type: every failure a caller of the engine can see, each with a stable
//! code for the control API and a message that names the cause and the fix.

use std::sync::Arc;

use std::path::PathBuf;

use crate::api::{ErrorBody, ErrorCode, ErrorDetails, RecordedKey};
use crate::config::ConfigError;
use crate::contexts::ContextError;
use crate::forward::ForwardError;
use crate::identity::IdentityError;
use crate::instance::InstanceError;
use crate::keystore::KeyStoreError;
use crate::paths::PathError;
use crate::ssh::SshError;
use crate::target::SshConfigError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Boxed: a parse error's path, position and message would make every `Result` larger.
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// Boxed: host-key errors carry several strings and would bloat every `Result`.
    #[error(transparent)]
    Ssh(Box<SshError>),
    #[error(transparent)]
    Forward(#[from] ForwardError),
    #[error(transparent)]
    Reverse(#[from] crate::reverse::ReverseError),
    #[error(transparent)]
    Kube(#[from] crate::kube::KubeError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// One failure reported to several waiting callers.
    #[error(transparent)]
    Shared(Arc<EngineError>),
    #[error(transparent)]
    SshConfig(#[from] SshConfigError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("no docker config directory (neither DOCKER_CONFIG nor HOME is set)")]
    NoDockerConfig,
    /// A task of the engine's own panicked or was cancelled: a bug, not the user's doing.
    #[error("the engine's {what} failed: {message}")]
    Internal { what: &'static str, message: String },
    #[error("cannot read or create {path}: {message}")]
    InstallId { path: PathBuf, message: String },
    #[error("cannot read known_hosts: {0}")]
    KnownHostsRead(String),
    #[error("cannot write {path}: {message}")]
    KnownHostsWrite { path: PathBuf, message: String },
    #[error("'{vm}' is not connected; connect it first (`tether connect {vm}`)")]
    NotConnected { vm: String },
    #[error("the Docker engine of '{vm}' refused: {message}")]
    DockerApi { vm: String, message: String },
    /// A command Tether ran on the VM did not finish (a timeout, a lost channel, a flood).
    #[error("{message}")]
    Remote { vm: String, message: String },
    #[error("cannot encode a public key: {0}")]
    KeyEncode(String),
    #[error(
        "could not add the key to ~/.ssh/authorized_keys on the VM ({reason}); paste this there instead: {command}"
    )]
    KeyInstall { reason: String, command: String },
    #[error(
        "the key was added to ~/.ssh/authorized_keys, but logging in with it failed ({reason}); \
         the VM's sshd may read keys from elsewhere (AuthorizedKeysFile)"
    )]
    KeyLoginAfterInstall { reason: String },
    #[error(
        "VM '{vm}' does not log in with a keychain key, so there is nothing to rotate; \
         `tether key gen NAME` and `tether key install {vm} --key NAME` give it one"
    )]
    NoKeychainKey { vm: String },
    #[error("could not authorize the new key on '{vm}' ({reason}); the old key still works")]
    KeyAuthorize { vm: String, reason: String },
    #[error(
        "the new key was authorized on '{vm}' but could not log in ({reason}); it was withdrawn and the old key still works"
    )]
    KeyRotateLogin { vm: String, reason: String },
    /// A host key or key operation refused for the user's safety (boxed: several strings).
    #[error(transparent)]
    Refused(Box<Refusal>),
    #[error("the Tether engine is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Instance(#[from] InstanceError),
}

/// Refusals that carry several names and paths; boxed in [`EngineError::Refused`].
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "'{vm}' presents {presented}, not the {confirmed} you confirmed; nothing was changed. Check the VM's key with its administrator"
    )]
    HostKeyNotConfirmed {
        vm: String,
        presented: String,
        confirmed: String,
    },
    #[error(
        "'{vm}' is already known by another host key, so {fingerprint} is not a first connection; \
         if the VM's administrator confirms it, run `tether vm host-key {vm} --replace {fingerprint}`"
    )]
    HostKeyNotNew { vm: String, fingerprint: String },
    #[error("'{vm}' presents {fingerprint}, which is marked @revoked in {}:{line}; Tether will not trust a revoked key", file.display())]
    HostKeyRevoked {
        vm: String,
        fingerprint: String,
        file: PathBuf,
        line: usize,
    },
    #[error(
        "the old key of '{vm}' is recorded in {}:{line}, which belongs to OpenSSH and which Tether does not edit; \
         remove it with `ssh-keygen -R '{entry}'`, then try again",
        file.display()
    )]
    HostKeyInOpenSsh {
        vm: String,
        file: PathBuf,
        line: usize,
        entry: String,
    },
    #[error(
        "key '{key}' is also used by {}; rotating it on '{vm}' alone would lock them out. Give each VM its own key",
        others.join(", ")
    )]
    KeyShared {
        key: String,
        vm: String,
        others: Vec<String>,
    },
}

impl EngineError {
    /// A stable, machine-readable code for the control API and the app.
    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::Shared(inner) => inner.code(),
            EngineError::Config(c) => match c.as_ref() {
                ConfigError::NoSuchVm(_) => ErrorCode::NoSuchVm,
                ConfigError::VmExists(_) => ErrorCode::VmExists,
                ConfigError::NoActiveVm => ErrorCode::NoActiveVm,
                ConfigError::Parse { .. } | ConfigError::Version { .. } => ErrorCode::ConfigCorrupt,
                ConfigError::Coded { code, .. } => *code,
                _ => ErrorCode::ConfigInvalid,
            },
            EngineError::Ssh(e) => e.code(),
            EngineError::Identity(i) => identity_code(i),
            EngineError::Forward(ForwardError::PortInUse { .. }) => ErrorCode::PortInUse,
            EngineError::Forward(ForwardError::Privileged { .. }) => ErrorCode::PortPrivileged,
            EngineError::Forward(_) | EngineError::Path(_) => ErrorCode::LocalSocket,
            EngineError::Reverse(
                crate::reverse::ReverseError::Refused { .. }
                | crate::reverse::ReverseError::LoopbackOnly { .. }
                | crate::reverse::ReverseError::TooWide { .. },
            ) => ErrorCode::ReverseRefused,
            EngineError::Reverse(_) => ErrorCode::ReverseFailed,
            EngineError::Kube(_) => ErrorCode::KubeFailed,
            EngineError::SshConfig(_) => ErrorCode::SshConfig,
            EngineError::Context(_) | EngineError::NoDockerConfig => ErrorCode::DockerContext,
            EngineError::Internal { .. } => ErrorCode::Internal,
            EngineError::InstallId { .. } => ErrorCode::LocalFiles,
            EngineError::KnownHostsRead(_) | EngineError::KnownHostsWrite { .. } => ErrorCode::KnownHosts,
            EngineError::Refused(r) => match r.as_ref() {
                Refusal::HostKeyNotConfirmed { .. } => ErrorCode::HostKeyNotConfirmed,
                Refusal::HostKeyNotNew { .. } => ErrorCode::HostKeyNotNew,
                Refusal::HostKeyRevoked { .. } => ErrorCode::HostKeyRevoked,
                Refusal::HostKeyInOpenSsh { .. } => ErrorCode::HostKeyInOpenssh,
                Refusal::KeyShared { .. } => ErrorCode::KeyShared,
            },
            EngineError::NotConnected { .. } => ErrorCode::NotConnected,
            EngineError::DockerApi { .. } => ErrorCode::DockerApi,
            EngineError::Remote { .. } => ErrorCode::RemoteCommand,
            EngineError::KeyEncode(_) => ErrorCode::Identity,
            EngineError::KeyInstall { .. } => ErrorCode::KeyInstallFailed,
            EngineError::KeyLoginAfterInstall { .. } | EngineError::KeyRotateLogin { .. } => ErrorCode::KeyLoginFailed,
            EngineError::NoKeychainKey { .. } => ErrorCode::NoKeychainKey,
            EngineError::KeyAuthorize { .. } => ErrorCode::KeyInstallFailed,
            EngineError::ShuttingDown => ErrorCode::ShuttingDown,
            EngineError::Instance(InstanceError::Running(_)) => ErrorCode::EngineRunning,
            EngineError::Instance(_) => ErrorCode::LocalSocket,
        }
    }
}

impl EngineError {
    /// The error as the control API, events and status carry it.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), self.to_string(), self.details())
    }

    /// The facts behind the message, for clients to act on without reading it.
    pub fn details(&self) -> Option<ErrorDetails> {
        let vm = |vm: &str| Some(ErrorDetails::Vm { vm: vm.to_string() });
        match self {
            EngineError::Shared(inner) => inner.details(),
            EngineError::Ssh(e) => e.details(),
            EngineError::Config(c) => match c.as_ref() {
                ConfigError::NoSuchVm(v) => vm(v),
                ConfigError::Coded { details, .. } => details.as_deref().cloned(),
                _ => None,
            },
            EngineError::DockerApi { message, .. } => Some(ErrorDetails::Docker {
                message: message.clone(),
            }),
            EngineError::Forward(ForwardError::PortInUse {
                port,
                remote,
                alt,
                holder,
            }) => Some(ErrorDetails::Port {
                port: *port,
                remote: *remote,
                suggestion: *alt,
                holder: Some(holder.trim().trim_start_matches("by ").to_string()).filter(|h| !h.is_empty()),
            }),
            EngineError::Forward(ForwardError::Privileged { port, remote, alt }) => Some(ErrorDetails::Port {
                port: *port,
                remote: *remote,
                suggestion: *alt,
                holder: None,
            }),
            EngineError::NotConnected { vm: v }
            | EngineError::NoKeychainKey { vm: v }
            | EngineError::Remote { vm: v, .. } => vm(v),
            EngineError::Refused(r) => match r.as_ref() {
                Refusal::HostKeyNotConfirmed { vm: v, .. }
                | Refusal::HostKeyNotNew { vm: v, .. }
                | Refusal::HostKeyRevoked { vm: v, .. }
                | Refusal::HostKeyInOpenSsh { vm: v, .. } => vm(v),
                Refusal::KeyShared { key, vm: v, others } => Some(ErrorDetails::Key {
                    key: key.clone(),
                    used_by: std::iter::once(v.clone()).chain(others.iter().cloned()).collect(),
                }),
            },
            _ => None,
        }
    }
}

impl SshError {
    /// The stable code of an SSH failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            SshError::HostKeyUnknown { .. } => ErrorCode::HostKeyUnknown,
            SshError::HostKeyChanged { .. } => ErrorCode::HostKeyChanged,
            SshError::HostKeyOtherType { .. } => ErrorCode::HostKeyOtherType,
            SshError::HostKeyRevoked { .. } => ErrorCode::HostKeyRevoked,
            SshError::AuthFailed { .. } | SshError::NoCredentials { .. } => ErrorCode::AuthFailed,
            SshError::Identity(i) => identity_code(i),
            SshError::Resolve { .. } => ErrorCode::UnknownHost,
            SshError::Refused { .. } => ErrorCode::ConnectionRefused,
            SshError::Timeout { .. } | SshError::Unreachable { .. } => ErrorCode::Unreachable,
            SshError::Handshake { .. } | SshError::Closed => ErrorCode::Ssh,
        }
    }

    /// The failure as status and events carry it.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), self.to_string(), self.details())
    }

    /// The host key facts of a refused key; nothing for other failures.
    pub fn details(&self) -> Option<ErrorDetails> {
        let recorded_of = |file: &std::path::Path, line: usize, key_type: &str, fingerprint: &str| RecordedKey {
            key_type: key_type.to_string(),
            fingerprint: fingerprint.to_string(),
            file: file.to_path_buf(),
            line,
        };
        match self {
            SshError::HostKeyUnknown {
                host,
                jump,
                key_type,
                fingerprint,
                ..
            } => Some(ErrorDetails::HostKey {
                host: host.clone(),
                key_type: key_type.clone(),
                fingerprint: fingerprint.clone(),
                recorded: Vec::new(),
                jump: *jump,
            }),
            SshError::HostKeyChanged {
                host,
                key_type,
                fingerprint,
                recorded,
                file,
                line,
            } => Some(ErrorDetails::HostKey {
                host: host.clone(),
                key_type: key_type.clone(),
                fingerprint: fingerprint.clone(),
                recorded: vec![recorded_of(file, *line, key_type, recorded)],
                jump: false,
            }),
            SshError::HostKeyOtherType {
                host,
                key_type,
                fingerprint,
                recorded,
            } => Some(ErrorDetails::HostKey {
                host: host.clone(),
                key_type: key_type.clone(),
                fingerprint: fingerprint.clone(),
                recorded: recorded.clone(),
                jump: false,
            }),
            SshError::HostKeyRevoked {
                host,
                fingerprint,
                file,
                line,
            } => Some(ErrorDetails::HostKey {
                host: host.clone(),
                key_type: String::new(),
                fingerprint: fingerprint.clone(),
                recorded: vec![recorded_of(file, *line, "", fingerprint)],
                jump: false,
            }),
            _ => None,
        }
    }
}

impl From<ConfigError> for EngineError {
    fn from(e: ConfigError) -> Self {
        EngineError::Config(Box::new(e))
    }
}

impl From<SshError> for EngineError {
    fn from(e: SshError) -> Self {
        EngineError::Ssh(Box::new(e))
    }
}

fn identity_code(e: &IdentityError) -> ErrorCode {
    match e {
        IdentityError::PassphraseRequired { .. } => ErrorCode::PassphraseRequired,
        IdentityError::WrongPassphrase { .. } => ErrorCode::WrongPassphrase,
        IdentityError::Keychain(k) => match k {
            KeyStoreError::Locked(_) | KeyStoreError::Timeout => ErrorCode::KeychainLocked,
            KeyStoreError::Unavailable(_) | KeyStoreError::NoDefault => ErrorCode::KeychainUnavailable,
            KeyStoreError::NoKey(_) => ErrorCode::NoSuchKey,
            _ => ErrorCode::Keychain,
        },
        _ => ErrorCode::Identity,
    }
}

#[cfg(test)]
#[path = "tests/error.rs"]
mod tests;

impl From<Refusal> for EngineError {
    fn from(r: Refusal) -> Self {
        EngineError::Refused(Box::new(r))
    }
}
