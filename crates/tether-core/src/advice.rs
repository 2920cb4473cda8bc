//! A failure as it crosses the wire and as a person reads it.
//!
//! Every failure a client sees is an [`ErrorBody`]: a stable [`ErrorCode`], the engine's own
//! sentence (`message`, the CLI's wording, which may name commands and flags), and typed facts
//! ([`ErrorDetails`]). [`advise`] turns the code and the facts, never the message, into
//! [`Advice`]: what happened and what to do, in words for someone who never opens a terminal, and
//! the [`Fix`]es the window offers as buttons. The window and the desktop notifications show the
//! advice; the CLI keeps its message. One table, exhaustive over the codes, so a new code cannot
//! reach a window without its sentence.
//!
//! Longer than 500 lines on purpose: the codes and the words for each are one table, read
//! together.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Declares [`ErrorCode`] and the list of every code ([`ErrorCode::ALL`]) from one list, so the
/// two cannot drift.
macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $wire:literal,)*) => {
        /// What failed, as a stable name on the wire. A code this build does not know (from a
        /// newer engine) reads as [`ErrorCode::Unknown`], and is shown by its message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, TS)]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $wire)] $name,)*
            /// A code from a newer engine.
            #[serde(rename = "unknown")]
            Unknown,
        }

        /// Any name reads: one this build does not know is [`ErrorCode::Unknown`].
        impl<'de> Deserialize<'de> for ErrorCode {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = std::borrow::Cow::<str>::deserialize(d)?;
                Ok(match &*name {
                    $($wire => ErrorCode::$name,)*
                    _ => ErrorCode::Unknown,
                })
            }
        }

        impl ErrorCode {
            /// Every code but [`ErrorCode::Unknown`].
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The code as it is written on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => $wire,)*
                    ErrorCode::Unknown => "unknown",
                }
            }
        }
    };
}

codes! {
    /// No VM of that name.
    NoSuchVm = "no_such_vm",
    /// A VM of that name exists already.
    VmExists = "vm_exists",
    /// No VM was named and none is active.
    NoActiveVm = "no_active_vm",
    /// The config file cannot be read (syntax, or a newer version).
    ConfigCorrupt = "config_corrupt",
    /// A setting's value is not valid.
    ConfigInvalid = "config_invalid",
    /// A laptop port forwards somewhere already.
    TunnelExists = "tunnel_exists",
    /// A VM port comes to the laptop already.
    ReverseExists = "reverse_exists",
    /// No tunnel on that laptop port.
    NoSuchTunnel = "no_such_tunnel",
    /// No reverse tunnel on that VM port.
    NoSuchReverse = "no_such_reverse",
    /// No shared folder of that name.
    NoSuchShare = "no_such_share",
    /// No Kubernetes tunnel for that VM.
    NoKubeTunnel = "no_kube_tunnel",
    /// A keychain key of that name exists already.
    KeyExists = "key_exists",
    /// A key still used by VMs.
    KeyInUse = "key_in_use",
    /// The VM's host key is not known yet.
    HostKeyUnknown = "host_key_unknown",
    /// The VM's host key is not the recorded one.
    HostKeyChanged = "host_key_changed",
    /// The VM presents a key of another type than the recorded one.
    HostKeyOtherType = "host_key_other_type",
    /// The VM's host key is marked revoked.
    HostKeyRevoked = "host_key_revoked",
    /// The VM presents another key than the one the user confirmed.
    HostKeyNotConfirmed = "host_key_not_confirmed",
    /// Asked to trust a first key for a VM whose key is known.
    HostKeyNotNew = "host_key_not_new",
    /// The old key lives in OpenSSH's known_hosts, which Tether does not edit.
    HostKeyInOpenssh = "host_key_in_openssh",
    /// The VM refused the login.
    AuthFailed = "auth_failed",
    /// The key needs its passphrase.
    PassphraseRequired = "passphrase_required",
    /// The passphrase does not open the key.
    WrongPassphrase = "wrong_passphrase",
    /// The keychain is locked or did not answer in time.
    KeychainLocked = "keychain_locked",
    /// No keychain on this laptop.
    KeychainUnavailable = "keychain_unavailable",
    /// The keychain has no key of that name.
    NoSuchKey = "no_such_key",
    /// The keychain refused otherwise.
    Keychain = "keychain",
    /// A key file cannot be read or used.
    Identity = "identity",
    /// The VM's name does not resolve.
    UnknownHost = "unknown_host",
    /// The VM refused the TCP connection.
    ConnectionRefused = "connection_refused",
    /// The VM does not answer.
    Unreachable = "unreachable",
    /// The SSH handshake failed.
    Ssh = "ssh",
    /// The link dropped.
    LinkLost = "link_lost",
    /// A laptop port is taken.
    PortInUse = "port_in_use",
    /// A laptop port below 1024 needs privileges.
    PortPrivileged = "port_privileged",
    /// The laptop's socket or listener could not be made.
    LocalSocket = "local_socket",
    /// The VM's sshd refused a reverse tunnel.
    ReverseRefused = "reverse_refused",
    /// A reverse tunnel failed otherwise.
    ReverseFailed = "reverse_failed",
    /// The Kubernetes tunnel failed.
    KubeFailed = "kube_failed",
    /// ~/.ssh/config cannot be used for this host.
    SshConfig = "ssh_config",
    /// The docker CLI's contexts cannot be changed.
    DockerContext = "docker_context",
    /// A bug: something inside the engine failed.
    Internal = "internal",
    /// The engine's own files cannot be read or written.
    LocalFiles = "local_files",
    /// known_hosts cannot be read or written.
    KnownHosts = "known_hosts",
    /// A key other VMs use too.
    KeyShared = "key_shared",
    /// The VM is not connected.
    NotConnected = "not_connected",
    /// The VM's Docker engine refused.
    DockerApi = "docker_api",
    /// A command on the VM failed.
    RemoteCommand = "remote_command",
    /// A key could not be added to the VM's authorized_keys.
    KeyInstallFailed = "key_install_failed",
    /// A key was authorized but does not log in.
    KeyLoginFailed = "key_login_failed",
    /// The VM logs in with no keychain key.
    NoKeychainKey = "no_keychain_key",
    /// The engine is stopping.
    ShuttingDown = "shutting_down",
    /// Another engine runs for this user.
    EngineRunning = "engine_running",
    /// The control API could not read a request.
    BadRequest = "bad_request",
    /// The control API refused a client of another user.
    Forbidden = "forbidden",
    /// The app cannot reach the engine.
    EngineUnreachable = "engine_unreachable",
    /// The app's link to the engine failed otherwise.
    Engine = "engine",
    /// Start at login could not be changed.
    Autostart = "autostart",
    /// A browser could not be opened.
    Open = "open",
}

impl ErrorCode {
    /// Whether the VM's host key is what stopped the connection.
    pub fn is_host_key(self) -> bool {
        matches!(
            self,
            ErrorCode::HostKeyUnknown
                | ErrorCode::HostKeyChanged
                | ErrorCode::HostKeyOtherType
                | ErrorCode::HostKeyRevoked
                | ErrorCode::HostKeyNotConfirmed
                | ErrorCode::HostKeyNotNew
                | ErrorCode::HostKeyInOpenssh
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Facts about a failure, typed by what failed, so that no client reads them out of the
/// message: the fingerprint to confirm, the recorded keys, the port and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ErrorDetails {
    /// A host key was not accepted (unknown, changed, of another type, revoked, not confirmed).
    HostKey {
        /// `host` or `[host]:port`, as known_hosts names it.
        host: String,
        /// The key the VM presents.
        key_type: String,
        fingerprint: String,
        /// The keys recorded for the host that the presented one conflicts with.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        recorded: Vec<RecordedKey>,
        /// Whether `host` is a jump host on the way to the VM (said for an unknown key).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        #[ts(optional, as = "Option<bool>")]
        jump: bool,
    },
    /// A laptop port could not be bound.
    Port {
        port: u16,
        remote: u16,
        /// A port to try instead.
        suggestion: u16,
        /// Who holds it, as "pid 4121 (node)", when that can be found out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder: Option<String>,
    },
    /// The failure is about one VM (not connected, unknown, no keychain key).
    Vm { vm: String },
    /// A key that other VMs use too.
    Key { key: String, used_by: Vec<String> },
    /// What the VM's Docker engine said.
    Docker { message: String },
}

/// A key recorded in a known_hosts file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RecordedKey {
    pub key_type: String,
    pub fingerprint: String,
    pub file: std::path::PathBuf,
    pub line: usize,
}

/// What the window can do about a failure, as a button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum FixAction {
    /// Show the first key's fingerprint and trust it on confirmation.
    TrustKey,
    /// Show a changed key beside the recorded one; replace it on confirmation.
    ReviewKey,
    /// Try the same thing again.
    Retry,
    /// Connect the VM.
    Connect,
    /// Open the VM's connection settings (host, user, port, key, jump host).
    EditVm,
    /// Ask for the key's passphrase and connect with it.
    EnterPassphrase,
    /// Choose or make the key the VM logs in with.
    ChooseKey,
    /// Take the port the failure suggests (`ErrorDetails::Port::suggestion`).
    UsePort,
    /// Open Tether's settings.
    OpenSettings,
    /// Open Diagnostics (the log and the checks).
    OpenDiagnostics,
    /// Start adding a VM.
    AddVm,
}

/// One action offered for a failure, with its label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Fix {
    pub action: FixAction,
    pub label: String,
}

/// A failure in a person's words: a short title, what happened and what to do, and the actions
/// that resolve it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Advice {
    pub title: String,
    pub sentence: String,
    #[serde(default)]
    pub fixes: Vec<Fix>,
}

/// The error half of a response, and of a status or event with a failure: a stable code, the
/// engine's sentence (the CLI's words), the facts (see [`ErrorDetails`]), and the advice the window
/// and notifications show ([`advise`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error, TS)]
#[error("{message}")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// Boxed: most errors have none, and every `Result` carrying this stays small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Box<ErrorDetails>>,
    /// Absent from an engine older than this field: a client then shows `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<Box<Advice>>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: String, details: Option<ErrorDetails>) -> ErrorBody {
        let advice = advise(code, details.as_ref());
        ErrorBody {
            code,
            message,
            details: details.map(Box::new),
            advice: advice.map(Box::new),
        }
    }
}

fn fix(action: FixAction, label: &str) -> Fix {
    Fix {
        action,
        label: label.to_string(),
    }
}

/// The advice for a failure, from its code and facts alone (`None` for [`ErrorCode::Unknown`]:
/// its message is all there is).
pub fn advise(code: ErrorCode, details: Option<&ErrorDetails>) -> Option<Advice> {
    use ErrorCode as C;
    use FixAction as F;
    let retry = || fix(F::Retry, "Retry");
    let edit = || fix(F::EditVm, "Edit this VM");
    let diagnostics = || fix(F::OpenDiagnostics, "Open Diagnostics");
    let choose_key = || fix(F::ChooseKey, "Choose a key…");
    let review = || fix(F::ReviewKey, "Review the new key…");
    let (host, key_type, jump) = match details {
        Some(ErrorDetails::HostKey {
            host, key_type, jump, ..
        }) => (host.as_str(), key_type.as_str(), *jump),
        _ => ("the VM", "", false),
    };
    // "The VM at HOST", or just "The VM": a sentence never starts with a host's own spelling.
    let the_vm = match details {
        Some(ErrorDetails::HostKey { host, .. }) => format!("The VM at {host}"),
        _ => "The VM".to_string(),
    };
    let port = match details {
        Some(ErrorDetails::Port {
            port,
            suggestion,
            holder,
            ..
        }) => Some((*port, *suggestion, holder.clone())),
        _ => None,
    };
    let (title, sentence, fixes): (&str, String, Vec<Fix>) = match code {
        C::Unknown => return None,
        C::NoSuchVm => (
            "This VM is gone",
            "This VM is no longer in Tether: it was removed, perhaps in another window.".into(),
            vec![fix(F::AddVm, "Add a VM…")],
        ),
        C::VmExists => (
            "That name is taken",
            "A VM with this name exists already. Choose another name.".into(),
            vec![],
        ),
        C::NoActiveVm => (
            "No VM chosen",
            "Docker uses no VM yet. Add a VM, or choose one and make it the default.".into(),
            vec![fix(F::AddVm, "Add a VM…")],
        ),
        C::ConfigCorrupt => (
            "Settings cannot be read",
            "Tether's settings file cannot be read, so nothing was changed. Diagnostics shows where it is and what is wrong in it."
                .into(),
            vec![diagnostics()],
        ),
        C::ConfigInvalid => (
            "Not a valid setting",
            "Tether cannot use that setting, so nothing was changed. Check the values entered and try again.".into(),
            vec![],
        ),
        C::TunnelExists => (
            "Port already forwarded",
            "This laptop port already brings another VM port here. Remove that forward first, or choose another laptop port."
                .into(),
            vec![],
        ),
        C::ReverseExists => (
            "Already offered to the VM",
            "This VM port already leads to this laptop. Remove that one first, or choose another VM port.".into(),
            vec![],
        ),
        C::NoSuchTunnel => (
            "No such forward",
            "No forward uses that laptop port any more; the list is up to date now.".into(),
            vec![],
        ),
        C::NoSuchReverse => (
            "No such port",
            "Nothing on the VM leads to this laptop on that port any more; the list is up to date now.".into(),
            vec![],
        ),
        C::NoSuchShare => (
            "No such shared folder",
            "That shared folder is no longer there; the list is up to date now.".into(),
            vec![],
        ),
        C::NoKubeTunnel => (
            "Kubernetes is not set up",
            "This VM has no Kubernetes connection yet. Set it up first.".into(),
            vec![],
        ),
        C::KeyExists => (
            "That key name is taken",
            "A key with this name is in the keychain already. Choose another name.".into(),
            vec![],
        ),
        C::KeyInUse => (
            "The key is in use",
            match details {
                Some(ErrorDetails::Key { used_by, .. }) if !used_by.is_empty() => format!(
                    "These VMs still log in with this key: {}. Give them another key first.",
                    used_by.join(", ")
                ),
                _ => "VMs still log in with this key. Give them another key first.".into(),
            },
            vec![],
        ),
        C::HostKeyUnknown => (
            if jump {
                "First connection to the jump host"
            } else {
                "First connection to this VM"
            },
            if jump {
                format!(
                    "This is the first connection to the jump host {host}. Check that the fingerprint shown is the one the jump host has, then trust it."
                )
            } else {
                format!(
                    "This is the first connection to {host}. Check that the fingerprint shown is the one the VM has, then trust it."
                )
            },
            vec![fix(F::TrustKey, "Check and trust the key…")],
        ),
        C::HostKeyChanged => (
            "The VM's identity changed",
            format!(
                "{the_vm} presents a different key from the one recorded, so Tether did not connect. If the VM was reinstalled, check its new fingerprint and replace the old key; if not, someone may be in the middle of the connection."
            ),
            vec![review()],
        ),
        C::HostKeyOtherType => (
            "The VM's identity changed",
            format!(
                "{the_vm} presents a {key_type} key, but a key of another type is recorded for it, so Tether did not connect. If the VM was reinstalled or its SSH server changed, check the new fingerprint and replace the old key."
            ),
            vec![review()],
        ),
        C::HostKeyRevoked => (
            "The VM's key is revoked",
            format!(
                "The key {} presents is marked as revoked on this laptop, so Tether will not trust it. Ask the VM's administrator for its current key.",
                the_vm.replacen("The VM", "the VM", 1)
            ),
            vec![],
        ),
        C::HostKeyNotConfirmed => (
            "The key changed again",
            "The VM now presents another key than the one you checked, so nothing was changed. Check the VM's key with its administrator, then try again."
                .into(),
            vec![review()],
        ),
        C::HostKeyNotNew => (
            "A key is already recorded",
            "Another key is recorded for this VM, so this is not a first connection. If the VM was reinstalled, review its new key and replace the old one."
                .into(),
            vec![review()],
        ),
        C::HostKeyInOpenssh => (
            "The old key is in OpenSSH's list",
            "The VM's old key is recorded in OpenSSH's own list of known hosts, which Tether does not change. Remove that line (Diagnostics shows the file and the line), then try again."
                .into(),
            vec![diagnostics(), retry()],
        ),
        C::AuthFailed => (
            "The VM refused the login",
            "The VM does not accept this key for this user. Check the user name, or choose a key the VM accepts.".into(),
            vec![edit(), choose_key()],
        ),
        C::PassphraseRequired => (
            "The key is locked",
            "This VM's key is protected by a passphrase. Enter it to connect.".into(),
            vec![fix(F::EnterPassphrase, "Enter the passphrase…")],
        ),
        C::WrongPassphrase => (
            "Wrong passphrase",
            "That passphrase does not open the key. Try again.".into(),
            vec![fix(F::EnterPassphrase, "Enter the passphrase…")],
        ),
        C::KeychainLocked => (
            "The keychain is locked",
            "The system keychain is locked or did not answer. Unlock it (your login password usually does), then retry."
                .into(),
            vec![retry()],
        ),
        C::KeychainUnavailable => (
            "No keychain",
            "No system keychain is running to keep Tether's keys. Start your desktop's keyring, or let this VM use a key file."
                .into(),
            vec![retry(), edit()],
        ),
        C::NoSuchKey => (
            "The key is gone",
            "The key this VM uses is no longer in the keychain. Choose another key for it.".into(),
            vec![choose_key()],
        ),
        C::Keychain => (
            "The keychain refused",
            "The system keychain refused Tether's request. Retry; if it keeps failing, Diagnostics has the details."
                .into(),
            vec![retry(), diagnostics()],
        ),
        C::Identity => (
            "The key cannot be used",
            "The VM's key cannot be read or is not a private key. Choose another key for this VM.".into(),
            vec![choose_key(), edit()],
        ),
        C::UnknownHost => (
            "The VM cannot be found",
            "The VM's address does not resolve. Check the address in this VM's settings, and that this network knows it (a VPN may be needed)."
                .into(),
            vec![edit(), retry()],
        ),
        C::ConnectionRefused => (
            "The VM refused the connection",
            "Nothing accepts SSH connections at the VM's address and port. Check that its SSH server runs and that the port in this VM's settings is right."
                .into(),
            vec![edit(), retry()],
        ),
        C::Unreachable => (
            "The VM does not answer",
            "The VM does not answer from this network. Check that it is running and reachable from here (a VPN may be needed), then retry."
                .into(),
            vec![retry(), edit()],
        ),
        C::Ssh => (
            "The connection failed",
            "The secure connection to the VM failed while it was being set up. Retry; if it keeps failing, Diagnostics has the details."
                .into(),
            vec![retry(), diagnostics()],
        ),
        C::LinkLost => (
            "The connection dropped",
            "The connection to the VM dropped. Tether reconnects by itself as soon as the VM answers.".into(),
            vec![],
        ),
        C::PortInUse => match &port {
            Some((p, s, holder)) => (
                "Port taken",
                match holder {
                    Some(h) => format!(
                        "Port {p} on this laptop is taken by {h}. Use port {s} instead, or stop what holds it."
                    ),
                    None => format!("Port {p} on this laptop is taken. Use port {s} instead, or free it."),
                },
                vec![fix(F::UsePort, &format!("Use port {s}"))],
            ),
            None => (
                "Port taken",
                "That port on this laptop is taken. Choose another one, or free it.".into(),
                vec![],
            ),
        },
        C::PortPrivileged => match &port {
            Some((p, s, _)) => (
                "Port needs administrator rights",
                format!(
                    "Port {p} is below 1024, which needs administrator rights on this laptop. Use port {s} instead, or allow low ports in Settings."
                ),
                vec![
                    fix(F::UsePort, &format!("Use port {s}")),
                    fix(F::OpenSettings, "Open Settings"),
                ],
            ),
            None => (
                "Port needs administrator rights",
                "Ports below 1024 need administrator rights on this laptop. Choose a higher port, or allow low ports in Settings."
                    .into(),
                vec![fix(F::OpenSettings, "Open Settings")],
            ),
        },
        C::LocalSocket => (
            "A local socket failed",
            "Tether could not open its Docker socket or a port on this laptop. Diagnostics has the details.".into(),
            vec![diagnostics()],
        ),
        C::ReverseRefused => (
            "The VM did not allow it",
            "The VM's SSH server does not let this laptop offer a port on the VM. Its administrator can allow remote forwarding in the SSH server's settings."
                .into(),
            vec![diagnostics()],
        ),
        C::ReverseFailed => (
            "The port could not be offered",
            "The VM could not open this port for the laptop. Diagnostics has the details.".into(),
            vec![diagnostics()],
        ),
        C::KubeFailed => (
            "Kubernetes cannot be reached",
            "Kubernetes could not be reached through this VM. Check that its API server runs, then retry.".into(),
            vec![retry()],
        ),
        C::SshConfig => (
            "SSH settings cannot be used",
            "This laptop's SSH settings for this host cannot be used. Fix that entry, or enter the VM's details here instead."
                .into(),
            vec![edit()],
        ),
        C::DockerContext => (
            "Docker's settings were not changed",
            "Tether could not change which engine docker uses on this laptop, so docker may still use another one. Diagnostics has the details."
                .into(),
            vec![diagnostics()],
        ),
        C::Internal => (
            "Something went wrong inside Tether",
            "Something inside Tether failed. Diagnostics has the details to report.".into(),
            vec![diagnostics()],
        ),
        C::LocalFiles => (
            "Tether's files cannot be written",
            "Tether could not read or write its own files on this laptop. Check that the disk has space, then retry."
                .into(),
            vec![retry(), diagnostics()],
        ),
        C::KnownHosts => (
            "Known keys cannot be read",
            "Tether could not read or write its list of known VM keys. Diagnostics shows where it is.".into(),
            vec![diagnostics()],
        ),
        C::KeyShared => (
            "The key is shared",
            match details {
                // The VM acted on comes first; the others follow.
                Some(ErrorDetails::Key { used_by, .. }) if used_by.len() > 1 => format!(
                    "Other VMs also log in with this key ({}); changing it here alone would lock them out. Give each VM its own key.",
                    used_by[1..].join(", ")
                ),
                _ => "Other VMs also log in with this key; changing it here alone would lock them out. Give each VM its own key."
                    .into(),
            },
            vec![choose_key()],
        ),
        C::NotConnected => (
            "Not connected",
            "This VM is not connected. Connect it first.".into(),
            vec![fix(F::Connect, "Connect")],
        ),
        C::DockerApi => (
            "Docker refused",
            match details {
                Some(ErrorDetails::Docker { message }) if !message.is_empty() => {
                    format!("The VM's Docker engine refused: {}.", message.trim().trim_end_matches('.'))
                }
                _ => "The VM's Docker engine refused the request.".into(),
            },
            vec![],
        ),
        C::RemoteCommand => (
            "A command on the VM failed",
            "A command Tether ran on the VM failed. Diagnostics has its output.".into(),
            vec![diagnostics()],
        ),
        C::KeyInstallFailed => (
            "The key was not added",
            "Tether could not add the key to the VM's list of allowed keys. Check the password, or add the key on the VM by hand."
                .into(),
            vec![retry()],
        ),
        C::KeyLoginFailed => (
            "The new key does not log in",
            "The key was added on the VM, but logging in with it failed; the VM's SSH server may look for keys elsewhere. The old way of logging in still works."
                .into(),
            vec![diagnostics()],
        ),
        C::NoKeychainKey => (
            "No keychain key",
            "This VM does not log in with a key kept by Tether, so there is nothing to change. Give it one in its settings."
                .into(),
            vec![choose_key()],
        ),
        C::ShuttingDown => (
            "Tether is stopping",
            "Tether is shutting down. Start it again from the applications menu.".into(),
            vec![],
        ),
        C::EngineRunning => (
            "Tether is running already",
            "Another Tether engine is running for this user; this one leaves it alone.".into(),
            vec![],
        ),
        C::BadRequest => (
            "Tether did not understand",
            "Tether's engine did not understand this window's request; they may be different versions. Quit Tether and start it again."
                .into(),
            vec![],
        ),
        C::Forbidden => (
            "Refused",
            "Tether's engine refused the request: it belongs to another user.".into(),
            vec![],
        ),
        C::EngineUnreachable => (
            "Tether's engine is not running",
            "Tether's engine is not running. Start Tether again from the applications menu.".into(),
            vec![],
        ),
        C::Engine => (
            "The link to Tether's engine failed",
            "This window lost its link to Tether's engine. Quit Tether and start it again.".into(),
            vec![],
        ),
        C::Autostart => (
            "Start at login was not changed",
            "Tether could not change whether it starts at login. Diagnostics has the details.".into(),
            vec![diagnostics()],
        ),
        C::Open => (
            "The browser did not open",
            "The page could not be opened in a browser. Open it by hand.".into(),
            vec![],
        ),
    };
    Some(Advice {
        title: title.to_string(),
        sentence,
        fixes,
    })
}

#[cfg(test)]
#[path = "tests/advice.rs"]
mod tests;
