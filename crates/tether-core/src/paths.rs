//! Where Tether keeps its files: config, state, runtime sockets and logs.
//!
//! `TETHER_HOME` overrides every location (tests and portable installs); otherwise the platform
//! directories are used. The runtime directory holds the forwarded Docker sockets, which are root
//! on the VM, so it is always created 0700 and is never under /tmp.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Longest path a Unix socket address can hold (sun_path, minus the NUL).
pub const MAX_SOCKET_PATH: usize = 103;

#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("cannot find a home directory; set TETHER_HOME to a directory Tether may write to")]
    NoHome,
    #[error("cannot create {path}: {source}; check its permissions or set TETHER_HOME")]
    Create { path: PathBuf, source: io::Error },
    #[error(
        "{path} is owned by another user or is not private (mode {mode:o}); it holds sockets that \
         give root on your VMs, so Tether refuses to use it: run `chmod 700 {path}` or remove it"
    )]
    NotPrivate { path: PathBuf, mode: u32 },
    #[error(
        "other users may change what is in {path} (its permissions, inherited from the folder it was made in), \
         and Tether could not take that back; set TETHER_HOME to a folder under your user profile, or remove \
         the other users' entries on the folder's Security tab"
    )]
    OpenToOthers { path: PathBuf },
    #[error(
        "{path} is a symbolic link; it would hold sockets that give root on your VMs, so Tether \
         refuses to follow it: remove the link (Tether creates a private directory there) or set TETHER_HOME"
    )]
    Symlink { path: PathBuf },
    #[error(
        "socket path {path} is {len} bytes, longer than the {MAX_SOCKET_PATH} a Unix socket allows; \
         use a shorter TETHER_HOME or VM name"
    )]
    TooLong { path: PathBuf, len: usize },
}

/// Resolved locations of every file Tether writes.
#[derive(Debug, Clone)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub state_dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub log_dir: PathBuf,
    /// Set for a home of its own (`TETHER_HOME`): endpoints outside the filesystem (Windows'
    /// named pipes) carry it in their names, so two homes never meet.
    pub scope: Option<String>,
}

impl Paths {
    /// Paths from the environment: `TETHER_HOME` if set, else the platform's directories.
    pub fn from_env() -> Result<Self, PathError> {
        if let Some(home) = std::env::var_os("TETHER_HOME").filter(|h| !h.is_empty()) {
            return Ok(Self::under(PathBuf::from(home)));
        }
        let dirs = directories::ProjectDirs::from("dev", "tether", "tether").ok_or(PathError::NoHome)?;
        let state_dir = dirs
            .state_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dirs.data_local_dir().to_path_buf());
        // XDG_RUNTIME_DIR is per-user tmpfs with mode 0700; without it (root in CI, macOS) a
        // directory under the state dir is the private fallback. /tmp is never used.
        let runtime_dir = dirs
            .runtime_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| state_dir.join("run"));
        Ok(Self {
            config_dir: dirs.config_dir().to_path_buf(),
            log_dir: state_dir.join("logs"),
            state_dir,
            runtime_dir,
            scope: None,
        })
    }

    /// Every path under one root directory.
    pub fn under(root: PathBuf) -> Self {
        Self {
            config_dir: root.join("config"),
            state_dir: root.join("state"),
            runtime_dir: root.join("run"),
            log_dir: root.join("logs"),
            scope: Some(scope_of(&root)),
        }
    }

    /// This install's id: scopes its keychain entries and docker contexts, so two Tether homes
    /// on one machine never touch each other's.
    pub fn install_id_file(&self) -> PathBuf {
        self.config_dir.join("install-id")
    }

    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    /// Tether's own known_hosts: keys the user accepted through Tether. ~/.ssh/known_hosts is
    /// read but never written.
    pub fn known_hosts(&self) -> PathBuf {
        self.config_dir.join("known_hosts")
    }

    /// The known_hosts files read for host keys, in order: OpenSSH's user and global files (read
    /// only, as `ssh` reads them when ~/.ssh/config does not name others) and Tether's own, which
    /// receives the keys the user accepts and is last.
    pub fn known_hosts_files(&self) -> Vec<PathBuf> {
        openssh_user_known_hosts()
            .into_iter()
            .chain(openssh_global_known_hosts())
            .chain([self.known_hosts()])
            .collect()
    }

    /// A new id for this engine's endpoint names, where they carry one (Windows' pipes, see
    /// [`crate::endpoint::vm_endpoint`]); written before any VM's endpoint is named.
    pub fn renew_endpoint_id(&self) -> io::Result<()> {
        if crate::endpoint::IN_FILESYSTEM {
            return Ok(());
        }
        let id = format!("{:016x}", rand::random::<u64>());
        write_atomic(&self.runtime_dir.join(crate::endpoint::ENDPOINT_ID), id.as_bytes())
    }

    /// The control API's endpoint ([`crate::endpoint::control_endpoint`]).
    pub fn control_socket(&self) -> PathBuf {
        crate::endpoint::control_endpoint(&self.runtime_dir, self.scope.as_deref())
    }

    pub fn pid_file(&self) -> PathBuf {
        self.runtime_dir.join("engine.pid")
    }

    /// Held by the one engine of this Tether home ([`crate::instance`]).
    pub fn engine_lock(&self) -> PathBuf {
        self.runtime_dir.join("engine.lock")
    }

    pub fn daemon_log(&self) -> PathBuf {
        self.log_dir.join("engine.log")
    }

    /// The local Docker endpoint of one VM ([`crate::endpoint::vm_endpoint`]).
    pub fn docker_socket(&self, vm: &str) -> PathBuf {
        crate::endpoint::vm_endpoint(&self.runtime_dir, self.scope.as_deref(), vm)
    }
}

/// A home's scope: 16 hex digits of a hash of its path.
fn scope_of(root: &Path) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(root.to_string_lossy().as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates `dir` (and any missing parents, each 0700) and checks that it is private to this user.
///
/// Every directory this creates, and `dir` itself, is checked with `lstat`: a symlink is refused
/// (someone who can plant one would choose where the sockets land), as is a directory owned by
/// another user. One of ours that is wider than 0700 is tightened. Directories that already
/// existed above the first one created (the home, `XDG_RUNTIME_DIR`) are the user's, and may be
/// links (macOS's /var is one).
pub fn ensure_private_dir(dir: &Path) -> Result<(), PathError> {
    let create_err = |path: &Path, source| PathError::Create {
        path: path.to_path_buf(),
        source,
    };
    // The missing tail of `dir`, outermost first.
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(p) = at.filter(|p| !p.as_os_str().is_empty()) {
        match fs::symlink_metadata(p) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(p.to_path_buf()),
            Err(e) => return Err(create_err(p, e)),
        }
        at = p.parent();
    }
    missing.reverse();
    for p in &missing {
        match crate::private::create_dir(p) {
            Ok(()) => {}
            // Another process made it first: it is checked below like any other.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(create_err(p, e)),
        }
    }
    // `missing` ends with `dir` itself when anything was created; otherwise only `dir` is ours.
    if missing.is_empty() {
        return check_private(dir);
    }
    missing.iter().try_for_each(|p| check_private(p))
}

/// `dir` is a real directory (not a link), owned by this user, and 0700 (tightened if wider).
fn check_private(dir: &Path) -> Result<(), PathError> {
    let meta = fs::symlink_metadata(dir).map_err(|source| PathError::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(PathError::Symlink {
            path: dir.to_path_buf(),
        });
    }
    let access = crate::private::access(dir, &meta);
    if !meta.is_dir() || !access.mine {
        return Err(PathError::NotPrivate {
            path: dir.to_path_buf(),
            mode: access.mode,
        });
    }
    if access.shared {
        crate::private::restrict_dir(dir).map_err(|source| PathError::Create {
            path: dir.to_path_buf(),
            source,
        })?;
        // A file system that keeps no permissions of its own (Wine's view of a Unix one, some
        // network shares) may take the change without effect: what others may still change is
        // refused, what they may only read is borne.
        let after = fs::symlink_metadata(dir).map_err(|source| PathError::Create {
            path: dir.to_path_buf(),
            source,
        })?;
        if crate::private::access(dir, &after).others_write {
            return Err(PathError::OpenToOthers {
                path: dir.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// This install's id (16 hex digits), made on first use. Written with `create_new`, so two
/// processes starting at once agree on one.
pub fn install_id(paths: &Paths) -> io::Result<String> {
    use std::io::Write as _;
    let file = paths.install_id_file();
    let valid = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
    for _ in 0..2 {
        match fs::read_to_string(&file) {
            Ok(s) if valid(s.trim()) => return Ok(s.trim().to_string()),
            Ok(s) if !s.is_empty() => {
                return Err(io::Error::other(format!(
                    "{} does not hold an install id; remove it and Tether makes a new one",
                    file.display()
                )));
            }
            // Empty: another process is between create and write; read again below.
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&paths.config_dir)?;
                let id = format!("{:016x}", rand::random::<u64>());
                match crate::private::file_options(fs::OpenOptions::new().write(true).create_new(true)).open(&file) {
                    Ok(mut f) => {
                        f.write_all(id.as_bytes())?;
                        f.sync_all()?;
                        return Ok(id);
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    match fs::read_to_string(&file) {
        Ok(s) if valid(s.trim()) => Ok(s.trim().to_string()),
        _ => Err(io::Error::other(format!(
            "{} is empty (a start was cut off?); remove it and Tether makes a new one",
            file.display()
        ))),
    }
}

/// A log kept over this size is moved to `NAME.1` (replacing the one before) when it is opened,
/// so a long-lived install keeps at most about twice this much log.
pub const LOG_ROTATE_BYTES: u64 = 8 << 20;

/// Opens a log for appending (0600, created if missing), after moving it aside if it has grown
/// past [`LOG_ROTATE_BYTES`].
pub fn open_log(path: &Path) -> io::Result<fs::File> {
    if fs::metadata(path).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        fs::rename(path, old)?;
    }
    crate::private::file_options(fs::OpenOptions::new().create(true).append(true)).open(path)
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the new one, never half
/// of either: a temp file in the same directory, fsync, rename over, fsync the directory. A
/// symlink (a dotfile manager's `~/.docker/config.json`) is written where it points and stays a
/// link. The new file keeps the old one's permissions; a new file is 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let path = &follow_links(path)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new().prefix(&format!(".{name}.")).tempfile_in(dir)?;
    if let Ok(old) = fs::metadata(path) {
        tmp.as_file().set_permissions(old.permissions())?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Where `path` leads through any symlinks (relative targets are taken from the link's
/// directory); `path` itself when it is not a link or does not exist yet. A loop is an error.
pub fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut at = path.to_path_buf();
    // Linux gives up after 40 links (ELOOP); so does this.
    for _ in 0..40 {
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&at)?;
                at = match at.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(at),
        }
    }
    Err(io::Error::other(format!(
        "{} is a loop of symbolic links; point it at a real file",
        path.display()
    )))
}

/// Checks that a socket path fits in `sun_path`.
pub fn check_socket_path(path: &Path) -> Result<(), PathError> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(PathError::TooLong {
            path: path.to_path_buf(),
            len,
        });
    }
    Ok(())
}

/// OpenSSH's default UserKnownHostsFile: ~/.ssh/known_hosts and ~/.ssh/known_hosts2.
pub fn openssh_user_known_hosts() -> Vec<PathBuf> {
    std::env::var_os("HOME")
        .map(|h| {
            let ssh = Path::new(&h).join(".ssh");
            vec![ssh.join("known_hosts"), ssh.join("known_hosts2")]
        })
        .unwrap_or_default()
}

/// OpenSSH's default GlobalKnownHostsFile, where administrators pin hosts for every user. Only
/// on Unix: Windows' OpenSSH keeps it under %ProgramData%\ssh.
pub fn openssh_global_known_hosts() -> Vec<PathBuf> {
    if cfg!(windows) {
        std::env::var_os("ProgramData")
            .map(|d| {
                let ssh = Path::new(&d).join("ssh");
                vec![ssh.join("ssh_known_hosts"), ssh.join("ssh_known_hosts2")]
            })
            .unwrap_or_default()
    } else {
        vec![
            PathBuf::from("/etc/ssh/ssh_known_hosts"),
            PathBuf::from("/etc/ssh/ssh_known_hosts2"),
        ]
    }
}

#[cfg(test)]
#[path = "tests/paths.rs"]
mod tests;
