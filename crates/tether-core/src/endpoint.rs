//! Local endpoints, the one module that knows what they are on each OS: the forwarded Docker
//! endpoints and the control API listen on Unix sockets (on Windows, named pipes), and the
//! Docker client and the SSH agent are reached through them.

use std::io;
use std::path::{Path, PathBuf};

use russh::keys::agent::client::{AgentClient, AgentStream};

pub use imp::{
    Listener, Stream, accept, bind, connect, control_endpoint, docker, docker_host, from_this_process, ssh_agent,
    vm_endpoint,
};

/// The file in the runtime directory that holds the running engine's id for its endpoint names,
/// where they need one (Windows: see `vm_endpoint`); `paths` writes it at each engine start.
pub const ENDPOINT_ID: &str = "endpoint-id";

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

/// Whether a stream on an endpoint can be closed for writing alone, so a client reads to the end
/// of an answer while it still sends. Sockets can; named pipes cannot, so there the end of an
/// answer closes the stream.
pub const HALF_CLOSE: bool = cfg!(unix);

/// Whether endpoints live in the filesystem, in directories Tether must keep private (Unix
/// sockets), or in a namespace of their own with their own access control (named pipes).
pub const IN_FILESYSTEM: bool = cfg!(unix);

#[cfg(unix)]
mod imp {
    use super::*;
    pub use tokio::net::{UnixListener as Listener, UnixStream as Stream};

    /// Binds `path` for this user alone, replacing only a stale socket of an earlier run. The
    /// caller has made its directory private, so the moment between bind and chmod exposes
    /// nothing.
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

    /// Whether the client is this very process (the engine's own Docker client).
    pub fn from_this_process(stream: &Stream) -> bool {
        stream.peer_cred().ok().and_then(|c| c.pid()) == i32::try_from(std::process::id()).ok()
    }

    /// Connects to the endpoint at `path`.
    pub async fn connect(path: &Path) -> io::Result<Stream> {
        Stream::connect(path).await
    }

    /// A Docker client on the endpoint at `path` (not yet talking to it).
    pub fn docker(path: &Path) -> Result<bollard::Docker, bollard::errors::Error> {
        bollard::Docker::connect_with_unix(&path.to_string_lossy(), 30, bollard::API_DEFAULT_VERSION)
    }

    /// `DOCKER_HOST` for the endpoint at `path`.
    pub fn docker_host(path: &Path) -> String {
        format!("unix://{}", path.display())
    }

    /// The SSH agent listening at `path` (`SSH_AUTH_SOCK`).
    pub async fn ssh_agent(path: &Path) -> io::Result<AgentClient<Box<dyn AgentStream + Send + Unpin>>> {
        AgentClient::connect_uds(path)
            .await
            .map(AgentClient::dynamic)
            .map_err(io::Error::other)
    }

    /// A VM's Docker endpoint: `<runtime>/vms/<name>/docker.sock`, in a directory of its own.
    pub fn vm_endpoint(runtime_dir: &Path, _scope: Option<&str>, vm: &str) -> PathBuf {
        runtime_dir.join("vms").join(vm).join("docker.sock")
    }

    /// The control API's endpoint: `<runtime>/control.sock`.
    pub fn control_endpoint(runtime_dir: &Path, _scope: Option<&str>) -> PathBuf {
        runtime_dir.join("control.sock")
    }
}

#[cfg(windows)]
mod imp {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeClient, NamedPipeServer};

    /// A named pipe being served: the instance waiting for the next client.
    pub struct Listener {
        name: std::ffi::OsString,
        pub(super) next: tokio::sync::Mutex<NamedPipeServer>,
    }

    /// One connection on a named pipe, from either end.
    pub enum Stream {
        Server(NamedPipeServer),
        Client(NamedPipeClient),
    }

    impl Stream {
        /// The process on the other end.
        pub fn peer_pid(&self) -> io::Result<u32> {
            use std::os::windows::io::AsRawHandle;
            match self {
                Stream::Server(s) => win::client_pid(s.as_raw_handle()),
                Stream::Client(c) => win::server_pid(c.as_raw_handle()),
            }
        }
    }

    impl AsyncRead for Stream {
        fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            match self.get_mut() {
                Stream::Server(s) => Pin::new(s).poll_read(cx, buf),
                Stream::Client(c) => Pin::new(c).poll_read(cx, buf),
            }
        }
    }

    impl AsyncWrite for Stream {
        fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            match self.get_mut() {
                Stream::Server(s) => Pin::new(s).poll_write(cx, buf),
                Stream::Client(c) => Pin::new(c).poll_write(cx, buf),
            }
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            match self.get_mut() {
                Stream::Server(s) => Pin::new(s).poll_flush(cx),
                Stream::Client(c) => Pin::new(c).poll_flush(cx),
            }
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            match self.get_mut() {
                Stream::Server(s) => Pin::new(s).poll_shutdown(cx),
                Stream::Client(c) => Pin::new(c).poll_shutdown(cx),
            }
        }
    }

    /// Creates the pipe `path` (`\\.\pipe\…`) for this user alone. Another process already
    /// serving that name, whoever it belongs to, makes this fail: a pipe is never shared.
    pub fn bind(path: &Path) -> Result<Listener, BindError> {
        let name = path.as_os_str().to_owned();
        // A pipe that answers, or whose every instance is busy, is served already. (The
        // first-instance flag below refuses that too, but Wine ignores it.)
        match ClientOptions::new().open(&name) {
            Ok(_) => return Err(BindError::InUse),
            Err(e) if e.raw_os_error() == Some(231) => return Err(BindError::InUse),
            Err(_) => {}
        }
        let first = win::create_pipe(&name, true).map_err(|e| match e.raw_os_error() {
            // ERROR_ACCESS_DENIED, ERROR_PIPE_BUSY: the name is served already.
            Some(5 | 231) => BindError::InUse,
            _ => BindError::Io(e),
        })?;
        Ok(Listener {
            name,
            next: tokio::sync::Mutex::new(first),
        })
    }

    /// Whether the client is this very process (the engine's own Docker client).
    pub fn from_this_process(stream: &Stream) -> bool {
        stream.peer_pid().ok() == Some(std::process::id())
    }

    /// The next connection: the waiting instance, once a client has connected to it, with a
    /// new instance put in its place for the client after.
    pub async fn accept(listener: &Listener) -> io::Result<Stream> {
        let mut next = listener.next.lock().await;
        next.connect().await?;
        let fresh = win::create_pipe(&listener.name, false)?;
        Ok(Stream::Server(std::mem::replace(&mut *next, fresh)))
    }

    /// Connects to the pipe `path`, waiting a moment while every instance is busy.
    pub async fn connect(path: &Path) -> io::Result<Stream> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match ClientOptions::new().open(path.as_os_str()) {
                Ok(c) => return Ok(Stream::Client(c)),
                // ERROR_PIPE_BUSY: the server is between two instances.
                Err(e) if e.raw_os_error() == Some(231) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn docker(path: &Path) -> Result<bollard::Docker, bollard::errors::Error> {
        bollard::Docker::connect_with_named_pipe(&path.to_string_lossy(), 30, bollard::API_DEFAULT_VERSION)
    }

    /// `DOCKER_HOST` for the pipe `\\.\pipe\NAME`: `npipe:////./pipe/NAME`, as Docker writes it.
    pub fn docker_host(path: &Path) -> String {
        format!("npipe://{}", path.to_string_lossy().replace('\\', "/"))
    }

    pub async fn ssh_agent(path: &Path) -> io::Result<AgentClient<Box<dyn AgentStream + Send + Unpin>>> {
        AgentClient::connect_named_pipe(path.as_os_str())
            .await
            .map(AgentClient::dynamic)
            .map_err(io::Error::other)
    }

    /// A VM's Docker endpoint: `\\.\pipe\tether-NAME.ID` (after Docker Desktop's convention). A
    /// home of its own (`TETHER_HOME`) puts its scope in: `tether.SCOPE.NAME.ID`. VM names have no
    /// dots, so no two homes, and no VM and the control pipe, ever share a name.
    ///
    /// Pipe names are one namespace for every user of the machine, and any of them may create a
    /// name first: a pipe named after the VM alone could be taken by another user while the VM
    /// is disconnected and receive docker's traffic (build contexts, registry credentials). So
    /// the engine holds each VM's pipe for as long as it runs, and ID, new at each engine start
    /// (`Paths::renew_endpoint_id`), makes the name unknowable before the engine creates it.
    pub fn vm_endpoint(runtime_dir: &Path, scope: Option<&str>, vm: &str) -> PathBuf {
        let id = std::fs::read_to_string(runtime_dir.join(super::ENDPOINT_ID))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|s| format!(".{s}"))
            .unwrap_or_default();
        match scope {
            Some(s) => PathBuf::from(format!(r"\\.\pipe\tether.{s}.{vm}{id}")),
            None => PathBuf::from(format!(r"\\.\pipe\tether-{vm}{id}")),
        }
    }

    /// The control API's pipe: `\\.\pipe\tether.control`, or `tether.SCOPE.control`.
    pub fn control_endpoint(_runtime_dir: &Path, scope: Option<&str>) -> PathBuf {
        match scope {
            Some(s) => PathBuf::from(format!(r"\\.\pipe\tether.{s}.control")),
            None => PathBuf::from(r"\\.\pipe\tether.control"),
        }
    }
}

/// The Windows calls behind named pipes: a security descriptor that admits only this user, and
/// the user of the process at the other end of a pipe.
#[cfg(windows)]
#[allow(unsafe_code)]
pub(crate) mod win {
    use std::ffi::{OsStr, c_void};
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::os::windows::io::RawHandle;

    use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, LocalFree};
    use windows_sys::Win32::Security::Authorization::{
        ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW,
    };
    use windows_sys::Win32::Security::{GetTokenInformation, SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER, TokenUser};
    use windows_sys::Win32::System::Pipes::{GetNamedPipeClientProcessId, GetNamedPipeServerProcessId};
    use windows_sys::Win32::System::Threading::{
        GetCurrentProcess, OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
    };

    fn wide(s: &OsStr) -> Vec<u16> {
        s.encode_wide().chain(std::iter::once(0)).collect()
    }

    fn check(ok: i32) -> io::Result<()> {
        if ok == 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// The SDDL of a pipe only `sid` may open: a protected DACL with one entry, full access for
    /// that user. Not even administrators or SYSTEM are admitted, and nothing is inherited.
    pub fn owner_only(sid: &str) -> String {
        format!("D:P(A;;GA;;;{sid})")
    }

    /// Creates one instance of the pipe `name`, admitting this user alone and no remote client.
    pub fn create_pipe(name: &OsStr, first: bool) -> io::Result<NamedPipeServer> {
        let sddl = wide(OsStr::new(&owner_only(&process_user(None)?)));
        let mut sd: *mut c_void = std::ptr::null_mut();
        // SAFETY: `sddl` is a NUL-terminated UTF-16 string that outlives the call; `sd` receives
        // a descriptor allocated by the system, freed with LocalFree below.
        check(unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl.as_ptr(), 1, &mut sd, std::ptr::null_mut())
        })?;
        let mut attrs = SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: sd,
            bInheritHandle: 0,
        };
        // SAFETY: `attrs` points at a valid SECURITY_ATTRIBUTES whose descriptor lives until
        // LocalFree, after the pipe was created (the system copies it into the pipe).
        let pipe = unsafe {
            ServerOptions::new()
                .first_pipe_instance(first)
                .reject_remote_clients(true)
                .create_with_security_attributes_raw(name, (&mut attrs as *mut SECURITY_ATTRIBUTES).cast())
        };
        // SAFETY: `sd` came from ConvertStringSecurityDescriptorToSecurityDescriptorW.
        unsafe { LocalFree(sd) };
        pipe
    }

    /// The SID (as text) of the user running process `pid`, or this process for `None`.
    pub fn process_user(pid: Option<u32>) -> io::Result<String> {
        // SAFETY: every handle opened here is checked, used only while open and closed once;
        // the token buffer is sized by the first GetTokenInformation call and holds a TOKEN_USER
        // whose SID points into the same buffer; the SID string is freed with LocalFree.
        unsafe {
            let process: HANDLE = match pid {
                Some(pid) => {
                    let h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
                    if h.is_null() {
                        return Err(io::Error::last_os_error());
                    }
                    h
                }
                None => GetCurrentProcess(),
            };
            let mut token: HANDLE = std::ptr::null_mut();
            let opened = check(OpenProcessToken(process, TOKEN_QUERY, &mut token));
            if pid.is_some() {
                CloseHandle(process);
            }
            opened?;
            let mut len = 0u32;
            GetTokenInformation(token, TokenUser, std::ptr::null_mut(), 0, &mut len);
            // u64 words keep the TOKEN_USER aligned.
            let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
            let got = check(GetTokenInformation(
                token,
                TokenUser,
                buf.as_mut_ptr().cast(),
                len,
                &mut len,
            ));
            CloseHandle(token);
            got?;
            let user = &*(buf.as_ptr() as *const TOKEN_USER);
            let mut text: *mut u16 = std::ptr::null_mut();
            check(ConvertSidToStringSidW(user.User.Sid, &mut text))?;
            let n = (0..).take_while(|&i| *text.add(i) != 0).count();
            let sid = String::from_utf16_lossy(std::slice::from_raw_parts(text, n));
            LocalFree(text.cast());
            Ok(sid)
        }
    }

    /// The entries of the DACL on `handle`: each allowed SID (as text) with its access mask,
    /// and whether the DACL is protected from inheritance. What the tests read back.
    #[cfg(test)]
    pub fn dacl(handle: RawHandle) -> io::Result<(Vec<(String, u32)>, bool)> {
        use windows_sys::Win32::Security::Authorization::{GetSecurityInfo, SE_KERNEL_OBJECT};
        use windows_sys::Win32::Security::{
            ACCESS_ALLOWED_ACE, ACL, DACL_SECURITY_INFORMATION, GetAce, GetSecurityDescriptorControl, SE_DACL_PROTECTED,
        };
        let mut acl: *mut ACL = std::ptr::null_mut();
        let mut sd: *mut c_void = std::ptr::null_mut();
        // SAFETY: `handle` is open; the system allocates `sd` (freed below) and points `acl`
        // into it; every ACE read is within the ACL's count, and each SID lies inside its ACE.
        unsafe {
            let err = GetSecurityInfo(
                handle as HANDLE,
                SE_KERNEL_OBJECT,
                DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut acl,
                std::ptr::null_mut(),
                &mut sd,
            );
            if err != 0 {
                return Err(io::Error::from_raw_os_error(err as i32));
            }
            let mut control = 0u16;
            let mut revision = 0u32;
            let protected =
                GetSecurityDescriptorControl(sd, &mut control, &mut revision) != 0 && control & SE_DACL_PROTECTED != 0;
            let mut entries = Vec::new();
            let count = if acl.is_null() { 0 } else { (*acl).AceCount as u32 };
            for i in 0..count {
                let mut ace: *mut c_void = std::ptr::null_mut();
                if GetAce(acl, i, &mut ace) == 0 {
                    continue;
                }
                let ace = &*(ace as *const ACCESS_ALLOWED_ACE);
                // Only allow entries (type 0) carry a SID at SidStart in this layout.
                if ace.Header.AceType != 0 {
                    entries.push((format!("(entry of type {})", ace.Header.AceType), ace.Mask));
                    continue;
                }
                let sid = (&ace.SidStart as *const u32).cast_mut().cast::<c_void>();
                let mut text: *mut u16 = std::ptr::null_mut();
                if ConvertSidToStringSidW(sid, &mut text) != 0 {
                    let n = (0..).take_while(|&i| *text.add(i) != 0).count();
                    entries.push((String::from_utf16_lossy(std::slice::from_raw_parts(text, n)), ace.Mask));
                    LocalFree(text.cast());
                }
            }
            LocalFree(sd);
            Ok((entries, protected))
        }
    }

    /// The process that opened the server end `pipe`.
    pub fn client_pid(pipe: RawHandle) -> io::Result<u32> {
        let mut pid = 0u32;
        // SAFETY: `pipe` is the open handle of a named pipe server instance.
        check(unsafe { GetNamedPipeClientProcessId(pipe as HANDLE, &mut pid) })?;
        Ok(pid)
    }

    /// The process serving the client end `pipe`.
    pub fn server_pid(pipe: RawHandle) -> io::Result<u32> {
        let mut pid = 0u32;
        // SAFETY: `pipe` is the open handle of a named pipe client.
        check(unsafe { GetNamedPipeServerProcessId(pipe as HANDLE, &mut pid) })?;
        Ok(pid)
    }
}

#[cfg(test)]
#[path = "tests/endpoint.rs"]
mod tests;
