//! The engine's wire types: what the control API, events and status carry to the CLI and the
//! app. Plain data with serde, no I/O; every other module may use them, and they use only the
//! pure model (`state`, `config`).
//!
//! Longer than 400 lines on purpose: every wire type in one file, the one the UI's generated
//! types (`ui/src/lib/engine.gen.ts`) mirror.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

pub use crate::advice::{Advice, ErrorBody, ErrorCode, ErrorDetails, Fix, FixAction, RecordedKey};
use crate::config::{Arch, KeyOrigin, Profile};
use crate::state::State;

/// Counters of the channels a VM's Docker socket opens ahead of demand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct PoolView {
    /// Open and waiting for a connection now.
    pub ready: u64,
    /// Connections that started on a pooled channel.
    pub hits: u64,
    /// Connections that opened their own channel.
    pub misses: u64,
    /// Pooled channels the VM had closed (a dockerd restart), dropped unused.
    pub stale: u64,
    /// Pings answered on the laptop with the engine's own answer (`settings.docker_ping_cache`).
    #[serde(default)]
    pub pings_answered: u64,
    /// Whether the engine's ping answer is known and current now.
    #[serde(default)]
    pub ping_learned: bool,
    /// Times a known answer was dropped: the engine restarted, reloaded or went away.
    #[serde(default)]
    pub ping_forgotten: u64,
}

/// What the engine said about itself, or why it could not be asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
pub struct EngineInfo {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether a tunnel's local port is taking connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum ForwardState {
    Listening,
    /// Wanted but not bound: the port is taken, or binding failed (see `error`).
    Failed,
    /// The VM is not wanted, so nothing listens.
    Idle,
    /// Asked of the VM, which has not answered yet (reverse tunnels).
    Pending,
}

/// One tunnel's state for status output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ForwardStatus {
    pub local: u16,
    pub remote: u16,
    pub state: ForwardState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub active: u64,
    pub total: u64,
    /// Connections turned away for being over `settings.max_streams`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused: u64,
    /// Made for a container's published port, not by the user.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto: bool,
    /// The container an automatic forward serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// One reverse tunnel's state: the VM's port `remote` (on its loopback) carried to this laptop's
/// port `local`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ReverseStatus {
    pub remote: u16,
    pub local: u16,
    /// `listening` once the VM's sshd listens; `idle` while the VM is not connected.
    pub state: ForwardState,
    /// The address the user asked for instead of the VM's loopback: `docker` or an IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Where the VM listens now (its loopback, or the bind resolved), while listening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub active: u64,
    pub total: u64,
}

/// A published port's protocol. Tether forwards TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        })
    }
}

/// A container's published port that Tether cannot forward (UDP), shown as such.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct UnforwardedPort {
    pub container: String,
    pub port: u16,
    pub proto: Proto,
    /// Why, in words for the user.
    #[serde(default)]
    pub reason: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Everything `tether status` shows about one VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct VmStatus {
    pub name: String,
    pub host: String,
    /// The jump hosts of the last connection (`user@host:port`, outermost first); empty when
    /// the VM is reached directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<String>,
    /// Its Kubernetes API, when tunnelled for kubectl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<KubeView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    #[serde(flatten)]
    pub state: State,
    /// Unix time in milliseconds of the last state change.
    pub since_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    pub socket: String,
    pub docker_host: String,
    pub forwards: Vec<ForwardStatus>,
    /// Reverse tunnels: the VM's ports carried to this laptop.
    #[serde(default)]
    pub reverse: Vec<ReverseStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The code, facts and advice of `last_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<ErrorDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_advice: Option<Advice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineInfo>,
    pub active: bool,
    /// Connect whenever the engine starts.
    #[serde(default)]
    pub auto_connect: bool,
    /// Published container ports that are not forwarded (UDP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unforwarded: Vec<UnforwardedPort>,
    /// Set when the engine's architecture is not the one the VM is labelled with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch_warning: Option<String>,
    /// Whether published container ports are forwarded automatically (the VM's own choice, or
    /// the default).
    #[serde(default)]
    pub auto_forward: bool,
    /// The Docker socket's pre-opened channels (`settings.docker_pool`), as of this answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub docker_pool: Option<PoolView>,
    /// The VM's shared folders, as of this answer (the `shares` event follows them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(optional, as = "Option<Vec<ShareView>>")]
    pub shares: Vec<ShareView>,
}

/// Typed events on the engine's broadcast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    State {
        vm: String,
        #[serde(flatten)]
        state: State,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The code, facts and advice of `error`, so a client never reads them out of its words.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<ErrorCode>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<ErrorDetails>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        advice: Option<Advice>,
    },
    Forward {
        vm: String,
        forward: ForwardStatus,
    },
    /// A VM's reverse tunnels, all of them, after any of them changed.
    Reverse {
        vm: String,
        reverse: Vec<ReverseStatus>,
    },
    Engine {
        vm: String,
        engine: EngineInfo,
    },
    /// The probe's round trip moved noticeably (not sent for every probe).
    Rtt {
        vm: String,
        rtt_ms: f64,
    },
    Active {
        vm: Option<String>,
    },
    VmAdded {
        vm: String,
    },
    VmRemoved {
        vm: String,
    },
    /// Containers changed on the VM (from the engine's event stream): fetch the list again.
    Containers {
        vm: String,
    },
    /// A fresh health sample.
    Health {
        vm: String,
        health: Box<Health>,
    },
    /// A VM's shared folders, all of them, after any changed state.
    Shares {
        vm: String,
        shares: Vec<ShareView>,
    },
    /// Both sides changed a file: the laptop's version kept the path, the VM's is at `copy`.
    Conflict {
        vm: String,
        conflict: ConflictView,
    },
    /// A container bind-mounts a laptop path that is in no shared folder: it means the VM's path,
    /// as it always did. Sharing the folder would make it the laptop's.
    ShareSuggested {
        vm: String,
        path: String,
    },
}

/// Where a synced folder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// The VM is not connected: changes wait, and are carried when it is back.
    Paused,
    /// Reading both sides.
    Scanning,
    /// Changes are on their way.
    Syncing,
    InSync,
    /// Both sides changed a file; both versions are kept (see `conflicts`).
    Conflict,
    /// Something needs the user (see `error`).
    Error,
}

/// A conflict: the laptop's version of `path` kept its name, the VM's is at `copy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ConflictView {
    /// The laptop path.
    pub path: String,
    /// Where the VM's version is now, beside it.
    pub copy: String,
    #[ts(type = "number")]
    pub at_ms: u64,
}

/// One folder a container mounted, kept in sync with its mirror on the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SyncedFolder {
    pub laptop: String,
    pub vm: String,
    pub state: SyncState,
    /// Files, folders and links in sync.
    #[ts(type = "number")]
    pub entries: u64,
    /// Changes on their way.
    #[ts(type = "number")]
    pub pending: u64,
    pub conflicts: Vec<ConflictView>,
    /// Paths that cannot be synced, each with why.
    pub problems: Vec<String>,
    /// What stops the whole folder, with the fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One VM's shared folders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct VmShares {
    pub vm: String,
    pub shares: Vec<ShareView>,
}

/// A shared root and the folders under it that containers use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ShareView {
    pub name: String,
    pub path: String,
    pub ignore: Vec<String>,
    /// The worst state among its folders (in sync with none).
    pub state: SyncState,
    pub folders: Vec<SyncedFolder>,
    /// What stops every folder of this VM (no agent for its architecture, say), with the fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a successful connect reports.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct ConnectReport {
    pub status: VmStatus,
}

/// The Docker Engine as the VM's own API describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, TS)]
pub struct EngineHealth {
    pub ping_ms: f64,
    pub version: String,
    pub api_version: String,
    pub os: String,
    pub kernel: String,
    pub arch: String,
    pub containers_running: i64,
    pub containers_total: i64,
    pub images: i64,
    pub docker_root: String,
}

/// Used and total bytes of one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, TS)]
pub struct Disk {
    pub used: u64,
    pub total: u64,
}

/// The VM itself, from /proc and df.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, TS)]
pub struct VmHealth {
    pub load: [f64; 3],
    pub cpus: u32,
    pub mem_used: u64,
    pub mem_total: u64,
    pub disk_root: Disk,
    pub disk_docker: Disk,
}

/// One health reading of a VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, TS)]
pub struct Health {
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineHealth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<VmHealth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch_warning: Option<String>,
    /// What could not be read this time, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A point of the history, for charts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, TS)]
pub struct Sample {
    pub at_ms: u64,
    pub rtt_ms: Option<f64>,
    pub engine_ms: Option<f64>,
    pub load1: Option<f64>,
    pub mem_used: Option<u64>,
}

/// A VM's latest health and its history.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct HealthReport {
    pub latest: Option<Health>,
    pub history: Vec<Sample>,
}

/// A VM's Kubernetes API as kubectl reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct KubeView {
    pub vm: String,
    /// The kubeconfig context: `tether-NAME`.
    pub context: String,
    /// The laptop's end of the tunnel.
    pub local: u16,
    /// The API server's port on the VM.
    pub remote: u16,
    /// The name the API server's certificate is checked against.
    pub server_name: String,
    /// The user's kubeconfig that names it.
    pub kubeconfig: String,
    /// The VM's kubeconfig it came from.
    pub config: String,
}

impl KubeView {
    pub fn of(vm: &str, link: &crate::config::KubeLink) -> Self {
        KubeView {
            vm: vm.to_string(),
            context: format!("tether-{vm}"),
            local: link.local,
            remote: link.remote,
            server_name: link.server_name.clone(),
            kubeconfig: link.kubeconfig.display().to_string(),
            config: link.config.clone(),
        }
    }
}

/// How a VM is reached, as the app's edit form gives it: everything else of its profile (key,
/// tunnels, options) is left as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ConnectionSettings {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub arch: Option<Arch>,
    /// A key file; `None` keeps the one set.
    #[serde(default)]
    pub identity: Option<std::path::PathBuf>,
    /// `None` is Docker's default path.
    #[serde(default)]
    pub remote_socket: Option<String>,
    /// Jump hosts, `[user@]host[:port]` separated by commas; `None` follows ~/.ssh/config.
    #[serde(default)]
    pub jump: Option<String>,
}

impl ConnectionSettings {
    /// Sets these on `profile`, leaving its key, tunnels and options as they are. No identity
    /// keeps the one set; no remote socket is Docker's default path.
    pub fn apply_to(self, profile: &mut Profile) {
        profile.host = self.host;
        profile.port = self.port;
        profile.user = self.user;
        profile.arch = self.arch;
        if self.identity.is_some() {
            profile.identity = self.identity;
        }
        profile.remote_socket = self
            .remote_socket
            .unwrap_or_else(|| crate::config::DEFAULT_REMOTE_SOCKET.to_string());
        profile.jump = self.jump.filter(|j| !j.trim().is_empty());
    }

    /// A new VM's profile reached this way.
    pub fn into_profile(self) -> Profile {
        let mut profile = Profile::new(self.host.clone());
        self.apply_to(&mut profile);
        profile
    }
}

/// One published port of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct PortView {
    pub private: u16,
    pub public: Option<u16>,
    pub proto: Proto,
    /// The laptop port forwarded to it, if any.
    pub local: Option<u16>,
    /// Whether that forward was made automatically.
    pub auto: bool,
    /// Why it is not forwarded automatically (UDP, a well-known service port, a label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_forwarded: Option<String>,
}

/// One container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ContainerView {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: String,
    pub status: String,
    /// The health check's verdict, when the image has one.
    pub health: Option<String>,
    pub ports: Vec<PortView>,
    pub cpu_percent: Option<f64>,
    pub mem_bytes: Option<u64>,
    pub mem_limit: Option<u64>,
    /// The Compose project it belongs to (`com.docker.compose.project`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub project: Option<String>,
    /// Its Compose service (`com.docker.compose.service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub service: Option<String>,
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Check {
    /// Stable id: `ssh`, `socket`, `access`, `forwarding`, `arch`.
    pub id: String,
    pub title: String,
    pub ok: bool,
    pub detail: String,
    /// What to do when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A check's verdict; the fix is kept only for a failure.
    pub fn new(id: &str, title: &str, ok: bool, detail: String, fix: Option<String>) -> Check {
        Check {
            id: id.into(),
            title: title.into(),
            ok,
            detail,
            fix: if ok { None } else { fix },
        }
    }
}

/// A key as the front ends show it.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct KeyView {
    pub name: String,
    pub public: String,
    pub fingerprint: String,
    pub origin: KeyOrigin,
    pub created_ms: u64,
    /// VMs that log in with it.
    pub used_by: Vec<String>,
    /// A command to paste into a shell on a VM that installs this key, for people who would
    /// rather not give Tether a password.
    pub install_command: String,
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct RotateReport {
    pub vm: String,
    pub key: String,
    pub old_fingerprint: String,
    pub new_fingerprint: String,
    /// Set when the old key could not be removed from the VM (the new one works regardless).
    pub warning: Option<String>,
}

/// A `Host` entry of ~/.ssh/config, for the "pick a host" list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SshHost {
    pub alias: String,
    pub host: String,
    pub user: Option<String>,
    pub port: Option<u16>,
}

/// An event with the time it happened (unix milliseconds).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct TimedEvent {
    pub at_ms: u64,
    pub event: Event,
}

/// What a VM's presented host key is to the known_hosts files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum HostKeyVerdict {
    Known,
    Unknown,
    /// Another key of this type is recorded: refused, possibly a man in the middle.
    Changed,
    Revoked,
    /// Known by keys of other types, and presenting none of them: refused like a changed key.
    OtherType,
}

/// A VM's host key, fetched without logging in, and what the known_hosts files say of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct HostKeyScan {
    /// Whose key: the VM's host as known_hosts names it, or a jump host's on the way to it.
    pub host: String,
    /// The key is a jump host's, not the VM's: trust it, then scan again for the next.
    #[serde(default)]
    pub jump: bool,
    pub status: HostKeyVerdict,
    pub key_type: String,
    pub fingerprint: String,
    /// The recorded keys behind a refusal, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The recorded keys behind a refusal (changed, revoked, other types).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recorded: Vec<RecordedKey>,
}
