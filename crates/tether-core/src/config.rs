//! VM profiles and their TOML file: validation, versioning and atomic writes.
//!
//! The file is the user's: a corrupt or newer file is reported with its line and column and never
//! overwritten. Every write goes to a temp file in the same directory, is fsynced, then renamed
//! over the old one, so a crash leaves either the old or the new file, never half of one.
//!
//! Longer than 400 lines on purpose: the schema, its validation and the `Store` that reads and
//! writes it change together (a new field is all three).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use sha2::Digest as _;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The config format this build writes and understands.
pub const CONFIG_VERSION: u32 = 1;
pub const DEFAULT_REMOTE_SOCKET: &str = "/var/run/docker.sock";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "{path}:{line}:{column}: {message}\nThe file was left untouched; fix it by hand or move it aside to start afresh."
    )]
    Parse {
        path: PathBuf,
        // u32: the error stays within 64 bytes where a path takes 32 (Windows).
        line: u32,
        column: u32,
        message: String,
    },
    #[error(
        "{path} has config version {found}, but this Tether understands only version {CONFIG_VERSION}; upgrade Tether. The file was left untouched."
    )]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write {path}: {source}; the previous file is unchanged")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    /// A refusal with a code of its own, so the window can say it in its own words (the
    /// message is the CLI's).
    #[error("{message}")]
    Coded {
        code: crate::advice::ErrorCode,
        message: String,
        details: Option<Box<crate::advice::ErrorDetails>>,
    },
    #[error("no VM named '{0}'; `tether vm list` shows the VMs, `tether vm add` adds one")]
    NoSuchVm(String),
    #[error("a VM named '{0}' already exists; pick another name or remove it with `tether vm rm {0}`")]
    VmExists(String),
    #[error("no VM given and no active VM; name one, or pick one with `tether use NAME`")]
    NoActiveVm,
}

/// CPU architecture label of a VM, so users can pick the arm64 or x86_64 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Arm64,
    #[serde(rename = "x86_64")]
    X86_64,
}

impl Arch {
    /// The architecture names Docker reports (Go's), in Tether's terms.
    pub fn from_engine(reported: &str) -> Option<Arch> {
        match reported {
            "amd64" | "x86_64" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::Arm64 => "arm64",
            Arch::X86_64 => "x86_64",
        })
    }
}

impl FromStr for Arch {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            "x86_64" | "amd64" | "x86-64" => Ok(Arch::X86_64),
            _ => Err(ConfigError::Invalid(format!("unknown arch '{s}': use arm64 or x86_64"))),
        }
    }
}

/// One local TCP port forwarded to a port on the VM's loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, TS)]
pub struct PortMap {
    pub local: u16,
    pub remote: u16,
}

impl fmt::Display for PortMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.local == self.remote {
            write!(f, "{}", self.local)
        } else {
            write!(f, "{}:{}", self.local, self.remote)
        }
    }
}

impl FromStr for PortMap {
    type Err = ConfigError;
    /// `LOCAL` or `LOCAL:REMOTE`, as `ssh -L` users write it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (local, remote) = port_pair(s).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "'{s}' is not a port mapping: use LOCAL or LOCAL:REMOTE with ports 1-65535, e.g. 3000 or 5433:5432"
            ))
        })?;
        Ok(PortMap { local, remote })
    }
}

/// `A` or `A:B` with ports 1-65535, as `ssh -L` and `ssh -R` write them; `A` alone is `A:A`.
fn port_pair(s: &str) -> Option<(u16, u16)> {
    let port = |p: &str| p.trim().parse::<u16>().ok().filter(|n| *n != 0);
    match s.split_once(':') {
        None => port(s).map(|p| (p, p)),
        Some((a, b)) => Some((port(a)?, port(b)?)),
    }
}

/// A ProxyJump list: hops separated by commas; "none" (or nothing) means no hop.
pub fn split_jumps(spec: &str) -> Vec<String> {
    spec.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty() && !h.eq_ignore_ascii_case("none"))
        .map(str::to_string)
        .collect()
}

/// One hop of a ProxyJump list: `[user@]host[:port]` (an IPv6 address in brackets), or an
/// `ssh://` URL; answers its user, host and port as written.
pub fn parse_hop(spec: &str) -> Result<(Option<String>, String, Option<u16>), String> {
    let bad = || format!("'{spec}' is not a jump host: write it as [user@]host[:port], several separated by commas");
    let rest = spec.strip_prefix("ssh://").unwrap_or(spec);
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
        Some(_) => return Err(bad()),
        None => (None, rest),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, tail) = v6.split_once(']').ok_or_else(bad)?;
        let port = match tail.strip_prefix(':') {
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
            None if tail.is_empty() => None,
            None => return Err(bad()),
        };
        (h.to_string(), port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse::<u16>().map_err(|_| bad())?)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() || host.contains(['/', ' ', ',']) || port == Some(0) {
        return Err(bad());
    }
    Ok((user, host, port))
}

/// A VM's Kubernetes API server reached from the laptop: its tunnel is one of the profile's
/// `forwards` (local → remote), and the kubeconfig written names it `tether-NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct KubeLink {
    /// The VM's kubeconfig, as given to `cat` on the VM (`~/` is the login's home).
    pub config: String,
    /// The laptop's end of the API server's tunnel.
    pub local: u16,
    /// The API server's port on the VM.
    pub remote: u16,
    /// The host its certificate names (the VM kubeconfig's server host).
    pub server_name: String,
    /// The user's kubeconfig the entries were written to.
    pub kubeconfig: PathBuf,
}

/// A port on the VM whose connections come to a port on this laptop (`ssh -R`): how a container
/// on the VM reaches a database, a debugger or an API running here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, TS)]
pub struct ReverseMap {
    /// Where the VM listens: its port, on its 127.0.0.1 unless `bind` says otherwise.
    pub remote: u16,
    /// Where on this laptop (127.0.0.1) each connection goes.
    pub local: u16,
    /// One other address of the VM to listen on instead of its loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(as = "Option<String>")]
    pub bind: Option<ReverseBind>,
}

/// The one address a reverse tunnel listens on when not the VM's loopback. Never a wildcard:
/// a tunnel open on every address of the VM would expose this laptop's service to every network
/// the VM is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ReverseBind {
    /// The gateway of the VM's default Docker bridge (172.17.0.1 as a rule), looked up on each
    /// link: what a container on the bridge network reaches.
    Docker,
    Addr(std::net::IpAddr),
}

impl fmt::Display for ReverseBind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReverseBind::Docker => f.write_str("docker"),
            ReverseBind::Addr(std::net::IpAddr::V6(a)) => write!(f, "[{a}]"),
            ReverseBind::Addr(a) => write!(f, "{a}"),
        }
    }
}

impl From<ReverseBind> for String {
    fn from(b: ReverseBind) -> String {
        b.to_string()
    }
}

impl TryFrom<String> for ReverseBind {
    type Error = ConfigError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FromStr for ReverseBind {
    type Err = ConfigError;
    /// `docker`, or one address of the VM (IPv6 in brackets); the loopback is the default and
    /// not a bind, and a wildcard is refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("docker") {
            return Ok(ReverseBind::Docker);
        }
        let ip: std::net::IpAddr = s.trim_start_matches('[').trim_end_matches(']').parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "'{s}' is not an address to listen on: use docker (the VM's Docker bridge gateway, for containers \
                     on the bridge network) or one IP address of the VM"
            ))
        })?;
        if ip.is_unspecified() {
            return Err(ConfigError::Invalid(format!(
                "Tether does not open a reverse tunnel on every address of the VM ({s}): that would expose this \
                 laptop's service to every network the VM is on; use docker (the Docker bridge gateway) or one address"
            )));
        }
        Ok(ReverseBind::Addr(ip))
    }
}

impl fmt::Display for ReverseMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(b) = &self.bind {
            write!(f, "{b}:")?;
        }
        if self.local == self.remote {
            write!(f, "{}", self.remote)
        } else {
            write!(f, "{}:{}", self.remote, self.local)
        }
    }
}

impl FromStr for ReverseMap {
    type Err = ConfigError;
    /// `[BIND:]REMOTE[:LOCAL]`: the VM's side first, as `ssh -R` users write it. BIND is
    /// `docker` or one address of the VM; without it the VM's loopback.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ConfigError::Invalid(format!(
                "'{s}' is not a reverse tunnel: use [BIND:]REMOTE[:LOCAL] with ports 1-65535, e.g. 5432, 15432:5432 \
                 (the VM's port first) or docker:5432 (on the VM's Docker bridge gateway)"
            ))
        };
        // A bind is whatever comes before the ports: an address (IPv6 in brackets) or a name.
        let (bind, ports) = match s.strip_prefix('[') {
            Some(v6) => {
                let (addr, rest) = v6.split_once("]:").ok_or_else(bad)?;
                (Some(format!("[{addr}]")), rest)
            }
            None => match s.split_once(':') {
                Some((first, rest)) if !first.is_empty() && first.trim().parse::<u16>().is_err() => {
                    (Some(first.to_string()), rest)
                }
                _ => (None, s),
            },
        };
        let (remote, local) = port_pair(ports).ok_or_else(bad)?;
        let bind = bind.map(|b| b.parse::<ReverseBind>()).transpose()?;
        // The loopback is where a reverse tunnel listens anyway.
        let bind = bind.filter(|b| !matches!(b, ReverseBind::Addr(ip) if ip.is_loopback()));
        Ok(ReverseMap { remote, local, bind })
    }
}

/// A VM as the user described it.
///
/// The fields the file may leave out are optional in the UI's type too, so the window can send a
/// new VM's profile with only what the user gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Host name, address, or a `Host` alias from ~/.ssh/config.
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    /// Private key file; without it (and without `key`) ssh-agent and the default keys are tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PathBuf>,
    /// A key in the OS keychain, by its name under `[keys]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Jump hosts, in ProxyJump syntax (`[user@]host[:port]`, several separated by commas);
    /// "none" ignores a ProxyJump in ~/.ssh/config. Unset follows ~/.ssh/config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump: Option<String>,
    #[serde(default = "default_remote_socket")]
    #[ts(as = "Option<String>", optional)]
    pub remote_socket: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<PortMap>,
    /// Reverse tunnels: ports on the VM's loopback carried to ports on this laptop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reverse: Vec<ReverseMap>,
    /// The VM's Kubernetes API server, tunnelled and named in the user's kubeconfig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<KubeLink>,
    #[serde(default)]
    #[ts(as = "Option<bool>", optional)]
    pub auto_connect: bool,
    /// Forward containers' published ports automatically; unset follows the global default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_forward: Option<bool>,
    /// Laptop folders whose subfolders containers on this VM may bind-mount (synced to a mirror
    /// on the VM); unset: the home folder, as `home`. An empty list shares nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<Vec<Share>>,
}

/// A shared root: bind mounts of folders under `path` are synced to the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct Share {
    pub name: String,
    /// An absolute laptop path.
    #[ts(as = "String")]
    pub path: PathBuf,
    /// Extra ignore rules, .gitignore syntax, after Tether's defaults (`!node_modules/` brings
    /// one back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>", optional)]
    pub ignore: Vec<String>,
}

/// The share a VM has when its profile names none: the user's home folder.
pub fn default_shares() -> Vec<Share> {
    directories::BaseDirs::new()
        .map(|d| Share {
            name: "home".into(),
            path: d.home_dir().to_path_buf(),
            ignore: Vec::new(),
        })
        .into_iter()
        .collect()
}

impl Profile {
    /// The VM's shared roots: its own, else [`default_shares`].
    pub fn shares(&self) -> Vec<Share> {
        self.shares.clone().unwrap_or_else(default_shares)
    }
}

fn default_remote_socket() -> String {
    DEFAULT_REMOTE_SOCKET.to_string()
}

impl Profile {
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: None,
            user: None,
            arch: None,
            identity: None,
            key: None,
            jump: None,
            remote_socket: default_remote_socket(),
            forwards: Vec::new(),
            reverse: Vec::new(),
            kube: None,
            auto_connect: false,
            auto_forward: None,
            shares: None,
        }
    }

    /// Adds or replaces the mapping for `map.local`; returns false when it was already there.
    pub fn add_forward(&mut self, map: PortMap) -> Result<bool, ConfigError> {
        if let Some(existing) = self.forwards.iter_mut().find(|f| f.local == map.local) {
            if *existing == map {
                return Ok(false);
            }
            return Err(ConfigError::Coded {
                code: crate::advice::ErrorCode::TunnelExists,
                message: format!(
                    "local port {} already forwards to remote port {}; remove it first with `--rm {}`",
                    map.local, existing.remote, map.local
                ),
                details: None,
            });
        }
        self.forwards.push(map);
        self.forwards.sort();
        Ok(true)
    }

    /// Adds the reverse tunnel for `map.remote`; returns false when it was already there.
    pub fn add_reverse(&mut self, map: ReverseMap) -> Result<bool, ConfigError> {
        if let Some(existing) = self.reverse.iter().find(|r| r.remote == map.remote) {
            if *existing == map {
                return Ok(false);
            }
            return Err(ConfigError::Coded {
                code: crate::advice::ErrorCode::ReverseExists,
                message: format!(
                    "the VM's port {} already comes to local port {}; remove it first with `--rm-reverse {}`",
                    map.remote, existing.local, map.remote
                ),
                details: None,
            });
        }
        self.reverse.push(map);
        self.reverse.sort();
        Ok(true)
    }
}

/// Preferences of the front ends (the app's Settings view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Desktop notifications on unexpected disconnects, reconnects and host-key problems.
    #[serde(default = "yes")]
    pub notifications: bool,
    /// Forward containers' published ports automatically, for VMs that do not say.
    #[serde(default)]
    pub auto_forward: bool,
    /// Let automatic forwards take ports below 1024 on the laptop (else they move up by 10000).
    #[serde(default)]
    pub privileged_ports: bool,
    /// Most connections one forward (the Docker socket, or one tunnel) carries at once; more are
    /// refused, so one local process cannot open channels without bound.
    #[serde(default = "default_max_streams")]
    pub max_streams: u32,
    /// Most channels to the Docker socket kept open ahead of demand (0: none), so a new docker
    /// connection starts one round trip sooner. Each is one idle connection on dockerd's socket,
    /// and there are none after half a minute without a docker connection.
    #[serde(default = "default_docker_pool")]
    pub docker_pool: u32,
    /// Answer the docker CLI's `/_ping` on the laptop with the engine's own answer, learned and
    /// kept current by watching the engine (see `ping`): one round trip less per docker command.
    #[serde(default = "yes")]
    pub docker_ping_cache: bool,
    /// Container ports never forwarded automatically: well-known services on the laptop
    /// (databases, caches, SSH, mail, DNS…) whose local clients would otherwise reach a
    /// container. A manual tunnel, or the label `dev.tether.forward.PORT=true`, still does.
    #[serde(default = "default_auto_forward_deny")]
    pub auto_forward_deny: Vec<u16>,
}

/// Ports of services a laptop commonly runs or talks to on localhost.
pub const DEFAULT_AUTO_FORWARD_DENY: &[u16] = &[
    22,    // ssh
    25,    // smtp
    53,    // dns
    111,   // rpcbind
    139,   // netbios
    445,   // smb
    631,   // cups
    1433,  // sql server
    1521,  // oracle
    2375,  // docker
    2376,  // docker (tls)
    2379,  // etcd
    3306,  // mysql, mariadb
    3389,  // rdp
    5353,  // mdns
    5432,  // postgres
    5672,  // amqp
    5900,  // vnc
    6379,  // redis
    9042,  // cassandra
    9200,  // elasticsearch
    11211, // memcached
    27017, // mongodb
];

fn default_auto_forward_deny() -> Vec<u16> {
    DEFAULT_AUTO_FORWARD_DENY.to_vec()
}

/// Generous: `docker compose up` of a large project opens a few hundred API connections.
pub const DEFAULT_MAX_STREAMS: u32 = 1024;

fn default_max_streams() -> u32 {
    DEFAULT_MAX_STREAMS
}

/// Enough for the docker CLI's connections and a small compose project's burst.
pub const DEFAULT_DOCKER_POOL: u32 = 8;

fn default_docker_pool() -> u32 {
    DEFAULT_DOCKER_POOL
}

fn yes() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            notifications: true,
            auto_forward: false,
            privileged_ports: false,
            max_streams: DEFAULT_MAX_STREAMS,
            docker_pool: DEFAULT_DOCKER_POOL,
            docker_ping_cache: true,
            auto_forward_deny: default_auto_forward_deny(),
        }
    }
}

/// How a keychain key came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum KeyOrigin {
    Generated,
    Imported,
}

/// The public half of a key kept in the OS keychain. The private half is only in the keychain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInfo {
    /// The OpenSSH public key line (`ssh-ed25519 AAAA… comment`).
    pub public: String,
    pub origin: KeyOrigin,
    /// Unix milliseconds.
    pub created_ms: u64,
}

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub vms: BTreeMap<String, Profile>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, KeyInfo>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version: CONFIG_VERSION,
            active: None,
            settings: Settings::default(),
            vms: BTreeMap::new(),
            keys: BTreeMap::new(),
        }
    }
}

/// Checks a key name: it becomes a keychain account name.
pub fn validate_key_name(name: &str) -> Result<(), ConfigError> {
    validate_name(name).map_err(|_| {
        ConfigError::Invalid(format!(
            "'{name}' is not a valid key name: use 1-32 letters, digits, '-' or '_', starting with a letter or digit"
        ))
    })
}

/// Checks a VM name: it becomes a directory name and a docker context name.
pub fn validate_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "'{name}' is not a valid VM name: use 1-32 letters, digits, '-' or '_', starting with a letter or digit"
        )))
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(active) = &self.active
            && !self.vms.contains_key(active)
        {
            return Err(ConfigError::Invalid(format!(
                "active VM '{active}' is not defined under [vms]"
            )));
        }
        let mut owners: BTreeMap<u16, &str> = BTreeMap::new();
        for (name, vm) in &self.vms {
            validate_name(name)?;
            if vm.host.trim().is_empty() {
                return Err(ConfigError::Invalid(format!("VM '{name}' has an empty host")));
            }
            for hop in vm.jump.as_deref().map(split_jumps).unwrap_or_default() {
                parse_hop(&hop).map_err(|e| ConfigError::Invalid(format!("VM '{name}': {e}")))?;
            }
            let mut share_names = std::collections::BTreeSet::new();
            for share in vm.shares.iter().flatten() {
                validate_name(&share.name).map_err(|_| {
                    ConfigError::Invalid(format!(
                        "VM '{name}': '{}' is not a valid share name: use 1-32 letters, digits, '-' or '_', starting with a letter or digit",
                        share.name
                    ))
                })?;
                if !share_names.insert(share.name.as_str()) {
                    return Err(ConfigError::Invalid(format!(
                        "VM '{name}' has two shares named '{}'",
                        share.name
                    )));
                }
                if !share.path.is_absolute() {
                    return Err(ConfigError::Invalid(format!(
                        "VM '{name}': share '{}' has the path '{}', which is not absolute",
                        share.name,
                        share.path.display()
                    )));
                }
                tether_sync::rules::Rules::new(&share.ignore)
                    .map_err(|e| ConfigError::Invalid(format!("VM '{name}': share '{}': {e}", share.name)))?;
            }
            if !vm.remote_socket.starts_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "VM '{name}': remote socket '{}' must be an absolute path such as /var/run/docker.sock",
                    vm.remote_socket
                )));
            }
            if let Some(key) = &vm.key {
                if !self.keys.contains_key(key) {
                    return Err(ConfigError::Invalid(format!(
                        "VM '{name}' uses key '{key}', which is not under [keys]; `tether key list` shows the keys"
                    )));
                }
                if vm.identity.is_some() {
                    return Err(ConfigError::Invalid(format!(
                        "VM '{name}' names both a key file (identity) and a keychain key; keep one"
                    )));
                }
            }
            for f in &vm.forwards {
                if let Some(other) = owners.insert(f.local, name) {
                    return Err(ConfigError::Invalid(format!(
                        "local port {} is forwarded by both '{other}' and '{name}'; a port can serve one VM",
                        f.local
                    )));
                }
            }
            let mut remotes = std::collections::BTreeSet::new();
            for r in &vm.reverse {
                if !remotes.insert(r.remote) {
                    return Err(ConfigError::Invalid(format!(
                        "VM '{name}' has two reverse tunnels on its port {}; keep one",
                        r.remote
                    )));
                }
            }
        }
        Ok(())
    }

    /// VMs that log in with keychain key `key`.
    pub fn vms_using_key(&self, key: &str) -> Vec<String> {
        self.vms
            .iter()
            .filter(|(_, p)| p.key.as_deref() == Some(key))
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub fn vm(&self, name: &str) -> Result<&Profile, ConfigError> {
        self.vms
            .get(name)
            .ok_or_else(|| ConfigError::NoSuchVm(name.to_string()))
    }

    pub fn vm_mut(&mut self, name: &str) -> Result<&mut Profile, ConfigError> {
        self.vms
            .get_mut(name)
            .ok_or_else(|| ConfigError::NoSuchVm(name.to_string()))
    }

    /// The VM a command means: the one named, else the active one.
    pub fn resolve(&self, name: Option<&str>) -> Result<String, ConfigError> {
        let name = match name {
            Some(n) => n.to_string(),
            None => self.active.clone().ok_or(ConfigError::NoActiveVm)?,
        };
        self.vm(&name)?;
        Ok(name)
    }

    /// Parses a config file's text; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        // Read the version first so a newer file is reported as such, not as unknown fields.
        #[derive(Deserialize)]
        struct VersionOnly {
            version: Option<u32>,
        }
        let parse_err = |e: toml::de::Error| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        };
        let v: VersionOnly = toml::from_str(text).map_err(parse_err)?;
        match v.version {
            Some(CONFIG_VERSION) => {}
            Some(found) => {
                return Err(ConfigError::Version {
                    path: path.to_path_buf(),
                    found,
                });
            }
            None => {
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    line: 1,
                    column: 1,
                    message: format!("missing `version = {CONFIG_VERSION}`"),
                });
            }
        }
        let cfg: Config = toml::from_str(text).map_err(parse_err)?;
        cfg.validate()
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
        Ok(cfg)
    }
}

fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    let fit = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    (fit(line), fit(column))
}

/// The config file on disk, and a digest of the text this process last read or wrote there, so a
/// change made by anyone else (a hand edit, another program) is noticed before it is overwritten.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    seen: Arc<Mutex<Option<Digest>>>,
}

/// sha256 of the file's text; `None` inside [`Store::seen`] until the first read or write.
type Digest = [u8; 32];

fn digest(text: &str) -> Digest {
    sha2::Sha256::digest(text.as_bytes()).into()
}

impl Store {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            seen: Arc::default(),
        }
    }

    fn remember(&self, text: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(digest(text));
        }
    }

    fn read_text(&self) -> Result<String, ConfigError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(text),
            // A missing file is an empty config.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(ConfigError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// The file's config if it changed since this process last read or wrote it, else `None`.
    /// A changed file that does not parse is an error, and is left as it is.
    pub fn changed_on_disk(&self) -> Result<Option<Config>, ConfigError> {
        let text = self.read_text()?;
        let now = digest(&text);
        if self.seen.lock().map(|s| *s == Some(now)).unwrap_or(false) {
            return Ok(None);
        }
        let cfg = if text.is_empty() {
            Config::default()
        } else {
            Config::parse(&text, &self.path)?
        };
        self.remember(&text);
        Ok(Some(cfg))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the file; a missing file is an empty config.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let text = self.read_text()?;
        let cfg = if text.is_empty() {
            Config::default()
        } else {
            Config::parse(&text, &self.path)?
        };
        self.remember(&text);
        Ok(cfg)
    }

    /// Validates and writes atomically: temp file in the same directory, fsync, rename, fsync dir.
    pub fn save(&self, cfg: &Config) -> Result<(), ConfigError> {
        cfg.validate()?;
        let body =
            toml::to_string_pretty(cfg).map_err(|e| ConfigError::Invalid(format!("cannot serialise config: {e}")))?;
        let text = format!("# Tether configuration. Edit with care: `tether vm` and the app rewrite it.\n{body}");
        crate::paths::write_atomic(&self.path, text.as_bytes()).map_err(|source| ConfigError::Write {
            path: self.path.clone(),
            source,
        })?;
        self.remember(&text);
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests/config.rs"]
mod tests;
