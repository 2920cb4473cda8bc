//! Local endpoints, the one module that knows what they are on each OS: the forwarded Docker
//! sockets and the control API listen on Unix sockets, and the Docker client and the SSH agent
//! are reached through them. A Windows port puts named pipes here and nowhere else.

use std::io;
use std::path::Path;

use russh::keys::agent::client::{AgentClient, AgentStream};
pub use tokio::net::{UnixListener as Listener, UnixStream as Stream};

/// Why a local endpoint could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("a live endpoint of another process")]
    InUse,
    #[error("something else than a socket")]
    NotASocket,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Binds `path` for this user alone, replacing only a stale socket of an earlier run. The
/// caller has made its directory private, so the moment between bind and chmod exposes nothing.
pub fn bind(path: &Path) -> Result<Listener, BindError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(BindError::InUse);
            }
            tracing::info!(path = %path.display(), "removing stale socket from an earlier run");
            std::fs::remove_file(path)?;
        }
        Ok(_) => return Err(BindError::NotASocket),
        Err(_) => {}
    }
    let listener = Listener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The next connection on `listener`.
pub async fn accept(listener: &Listener) -> io::Result<Stream> {
    listener.accept().await.map(|(stream, _)| stream)
}

/// Connects to the endpoint at `path`.
pub async fn connect(path: &Path) -> io::Result<Stream> {
    Stream::connect(path).await
}

/// A Docker client on the endpoint at `path` (not yet talking to it).
pub fn docker(path: &Path) -> Result<bollard::Docker, bollard::errors::Error> {
    bollard::Docker::connect_with_unix(&path.to_string_lossy(), 30, bollard::API_DEFAULT_VERSION)
}

/// The SSH agent listening at `path` (`SSH_AUTH_SOCK`).
pub async fn ssh_agent(path: &Path) -> io::Result<AgentClient<Box<dyn AgentStream + Send + Unpin>>> {
    AgentClient::connect_uds(path)
        .await
        .map(AgentClient::dynamic)
        .map_err(io::Error::other)
}
