//! Turns a profile into the address, user and keys to connect with, honouring ~/.ssh/config.
//!
//! A profile's host may be a `Host` alias; its HostName, User, Port and IdentityFile apply unless
//! the profile sets them itself (the profile is the more specific statement of intent).
//!
//! Jump hosts come from the profile's `jump` (ProxyJump syntax) or else the alias's `ProxyJump`;
//! each hop is itself resolved against ~/.ssh/config for its HostName, User, Port and IdentityFile.
//! As with OpenSSH, the first hop is reached as `ssh` would reach it alone, through its own
//! `ProxyJump` if it has one; the later hops are reached through the ones before them.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use ssh2_config::{ParseRule, SshConfig};

use crate::config::Profile;

pub use crate::api::SshHost;

#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {message}; fix the file or remove the Host entry")]
pub struct SshConfigError {
    pub path: PathBuf,
    pub message: String,
}

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What the user wrote (alias or host); known_hosts entries use the resolved host name.
    pub alias: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Key files to try, most specific first.
    pub identity_files: Vec<PathBuf>,
    /// Jump hosts to pass through, in order: the first is reached over TCP, each next one (and
    /// then this target) through a `direct-tcpip` channel of the one before.
    pub jumps: Vec<Target>,
    /// Where ~/.ssh/config says this host's keys are known and revoked.
    pub host_keys: HostKeyFiles,
}

/// ~/.ssh/config's word on where a host's keys are looked up: `UserKnownHostsFile`,
/// `GlobalKnownHostsFile` (each a list; `none` is no file) and `RevokedHostKeys`. Unset, OpenSSH's
/// defaults apply ([`crate::paths::Paths::known_hosts_files`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostKeyFiles {
    pub user: Option<Vec<PathBuf>>,
    pub global: Option<Vec<PathBuf>>,
    pub revoked: Option<PathBuf>,
}

impl HostKeyFiles {
    fn from_params(params: Option<&ssh2_config::HostParams>) -> HostKeyFiles {
        let field = |name: &str| -> Option<Vec<String>> {
            let p = params?;
            p.unsupported_fields
                .get(name)
                .or_else(|| p.ignored_fields.get(name))
                .cloned()
        };
        let files = |name: &str| {
            field(name).map(|args| {
                args.iter()
                    .flat_map(|a| a.split_whitespace())
                    .filter(|a| !a.eq_ignore_ascii_case("none"))
                    .map(|a| expand_tilde(Path::new(a)))
                    .collect()
            })
        };
        HostKeyFiles {
            user: files("userknownhostsfile"),
            global: files("globalknownhostsfile"),
            revoked: field("revokedhostkeys")
                .and_then(|a| a.first().cloned())
                .filter(|a| !a.eq_ignore_ascii_case("none"))
                .map(|a| expand_tilde(Path::new(&a))),
        }
    }

    /// The known_hosts files to read for this host: `defaults` (OpenSSH's user files, its global
    /// files, then Tether's own, last) with the parts the config names replaced.
    pub fn apply(&self, defaults: &[PathBuf]) -> Vec<PathBuf> {
        if self.user.is_none() && self.global.is_none() {
            return defaults.to_vec();
        }
        let user = self.user.clone().unwrap_or_else(crate::paths::openssh_user_known_hosts);
        let global = self
            .global
            .clone()
            .unwrap_or_else(crate::paths::openssh_global_known_hosts);
        user.into_iter().chain(global).chain(defaults.last().cloned()).collect()
    }
}

impl Target {
    /// "user@host:port" for messages.
    pub fn display(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".to_string())
}

/// Resolves `profile` against `~/.ssh/config` (if present).
pub fn resolve(profile: &Profile) -> Result<Target, SshConfigError> {
    let cfg_path = home().map(|h| h.join(".ssh").join("config"));
    let (cfg, cfg_file) = match cfg_path.as_deref().filter(|p| p.exists()) {
        Some(p) => (Some(parse(p)?), p.to_path_buf()),
        None => (None, PathBuf::new()),
    };
    let params = cfg.as_ref().map(|c| c.query(&profile.host));
    // The profile's own jump wins; "none" turns off a ProxyJump the config would add.
    let spec: Vec<String> = match &profile.jump {
        Some(j) => split_jumps(j),
        None => params.as_ref().map(proxy_jump).unwrap_or_default(),
    };
    let spec = reach_first(spec, cfg.as_deref()).map_err(|message| SshConfigError {
        path: cfg_file.clone(),
        message,
    })?;
    let jumps = spec
        .iter()
        .map(|h| {
            hop(h, cfg.as_deref()).map_err(|message| SshConfigError {
                path: if profile.jump.is_some() {
                    PathBuf::from("the VM's jump host setting")
                } else {
                    cfg_file.clone()
                },
                message,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let host = params
        .as_ref()
        .and_then(|p| p.host_name.clone())
        .unwrap_or_else(|| profile.host.clone());
    let port = profile.port.or(params.as_ref().and_then(|p| p.port)).unwrap_or(22);
    let user = profile
        .user
        .clone()
        .or_else(|| params.as_ref().and_then(|p| p.user.clone()))
        .unwrap_or_else(local_user);
    let mut identity_files = Vec::new();
    if let Some(id) = &profile.identity {
        identity_files.push(expand_tilde(id));
    }
    if let Some(files) = params.as_ref().and_then(|p| p.identity_file.clone()) {
        identity_files.extend(files.iter().map(|f| expand_tilde(f)));
    }
    Ok(Target {
        alias: profile.host.clone(),
        host,
        port,
        user,
        identity_files,
        jumps,
        host_keys: HostKeyFiles::from_params(params.as_ref()),
    })
}

pub use crate::config::split_jumps;

/// A Host entry's ProxyJump hops; `none` means none.
fn proxy_jump(params: &ssh2_config::HostParams) -> Vec<String> {
    params
        .proxy_jump
        .iter()
        .flatten()
        .filter(|h| !h.eq_ignore_ascii_case("none"))
        .cloned()
        .collect()
}

/// Most jump hosts on the way to one VM; a longer path is taken for a ProxyJump loop.
pub const MAX_HOPS: usize = 8;

/// `path` with the first hop's own ProxyJump from the config put before it, and so on for the
/// hop that adds, as `ssh -J` does (it reaches the first hop with a plain `ssh`, which reads that
/// host's ProxyJump; each later hop goes through the one before it, whatever its entry says).
fn reach_first(mut path: Vec<String>, cfg: Option<&SshConfig>) -> Result<Vec<String>, String> {
    let Some(cfg) = cfg else { return Ok(path) };
    while let Some(first) = path.first() {
        let (_, host, _) = crate::config::parse_hop(first)?;
        let before = proxy_jump(&cfg.query(&host));
        if before.is_empty() {
            break;
        }
        path.splice(0..0, before);
        if path.len() > MAX_HOPS {
            return Err(format!(
                "the ProxyJump of {host} leads through more than {MAX_HOPS} jump hosts ({}…); \
                 a Host entry's ProxyJump probably names itself or a host that jumps back",
                path.iter().take(MAX_HOPS).cloned().collect::<Vec<_>>().join(" → ")
            ));
        }
    }
    Ok(path)
}

/// One hop (see [`crate::config::parse_hop`]). A host that is a `Host` alias takes its HostName,
/// User, Port and IdentityFile from the config, under what the hop itself says; its ProxyJump is
/// [`reach_first`]'s business.
pub fn hop(spec: &str, cfg: Option<&SshConfig>) -> Result<Target, String> {
    let (user, host, port) = crate::config::parse_hop(spec)?;
    let params = cfg.map(|c| c.query(&host));
    Ok(Target {
        alias: host.clone(),
        host: params
            .as_ref()
            .and_then(|p| p.host_name.clone())
            .unwrap_or_else(|| host.clone()),
        port: port.or(params.as_ref().and_then(|p| p.port)).unwrap_or(22),
        user: user
            .or_else(|| params.as_ref().and_then(|p| p.user.clone()))
            .unwrap_or_else(local_user),
        identity_files: params
            .as_ref()
            .and_then(|p| p.identity_file.clone())
            .unwrap_or_default()
            .iter()
            .map(|f| expand_tilde(f))
            .collect(),
        jumps: Vec::new(),
        host_keys: HostKeyFiles::from_params(params.as_ref()),
    })
}

/// The last parse of an ssh config file, by what its metadata said then.
struct Parsed {
    path: PathBuf,
    modified: Option<std::time::SystemTime>,
    len: u64,
    at: std::time::Instant,
    config: std::sync::Arc<SshConfig>,
}

static PARSED: std::sync::Mutex<Option<Parsed>> = std::sync::Mutex::new(None);

/// How long a parse stands for the files it `Include`s, whose changes the main file's metadata
/// does not show.
const PARSED_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// `path` parsed, once per change: every connect, check and status resolves its VM through it,
/// and a parse of a long config is far dearer than the `stat` that says it did not change.
fn parse(path: &Path) -> Result<std::sync::Arc<SshConfig>, SshConfigError> {
    let meta = std::fs::metadata(path).ok();
    let (modified, len) = (
        meta.as_ref().and_then(|m| m.modified().ok()),
        meta.map_or(0, |m| m.len()),
    );
    if let Ok(last) = PARSED.lock()
        && let Some(p) = last.as_ref()
        && p.path == path
        && p.modified == modified
        && p.len == len
        && p.at.elapsed() < PARSED_FOR
    {
        return Ok(p.config.clone());
    }
    let config = std::sync::Arc::new(parse_now(path)?);
    if let Ok(mut last) = PARSED.lock() {
        *last = Some(Parsed {
            path: path.to_path_buf(),
            modified,
            len,
            at: std::time::Instant::now(),
            config: config.clone(),
        });
    }
    Ok(config)
}

fn parse_now(path: &Path) -> Result<SshConfig, SshConfigError> {
    let err = |message: String| SshConfigError {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut cfg = SshConfig::default();
    if let Some(h) = home() {
        cfg = cfg.home_dir(h);
    }
    cfg.parse(
        &mut BufReader::new(file),
        ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
    )
    .map_err(|e| err(e.to_string()))
}

fn expand_tilde(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), home()) {
        (Ok(rest), Some(h)) => h.join(rest),
        _ => p.to_path_buf(),
    }
}

/// The concrete hosts of ~/.ssh/config (patterns with wildcards or negation are skipped).
pub fn config_hosts() -> Result<Vec<SshHost>, SshConfigError> {
    let Some(path) = home().map(|h| h.join(".ssh").join("config")).filter(|p| p.exists()) else {
        return Ok(Vec::new());
    };
    let cfg = parse(&path)?;
    let aliases: Vec<String> = cfg
        .get_hosts()
        .iter()
        .flat_map(|h| h.pattern.iter())
        .filter(|c| !c.negated && !c.pattern.contains(['*', '?']))
        .map(|c| c.pattern.clone())
        .collect();
    Ok(aliases
        .into_iter()
        .map(|alias| {
            let p = cfg.query(&alias);
            SshHost {
                host: p.host_name.clone().unwrap_or_else(|| alias.clone()),
                user: p.user.clone(),
                port: p.port,
                alias,
            }
        })
        .collect())
}

#[cfg(test)]
#[path = "tests/target.rs"]
mod tests;
