//! The control API: newline-delimited JSON over a private local endpoint, one request and one
//! response per line. The CLI (and anything else local) drives the engine through it; a
//! `subscribe` request turns the connection into a stream of engine events.
//!
//! Longer than 400 lines on purpose: the requests, their dispatch onto the engine and the client
//! are one protocol, read together whenever a request is added.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt as _, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;
use ts_rs::TS;
use zeroize::Zeroizing;

use crate::config::{PortMap, Profile, ReverseMap};
use crate::engine::{Connect, Engine};
use crate::error::EngineError;
use crate::forward;
use crate::{endpoint, peer};

/// A request. The passphrase field travels only over the private control socket and is never
/// logged (this type has no Debug on purpose). The UI's TypeScript type is generated from this
/// one (`tests/typescript.rs`): the window sends these as they are.
#[derive(Serialize, Deserialize, TS)]
#[serde(tag = "op", rename_all = "snake_case")]
#[ts(optional_fields)]
pub enum Request {
    Ping,
    VmAdd {
        name: String,
        profile: Profile,
    },
    VmRemove {
        name: String,
    },
    /// One VM's connection settings, edited in place (see [`crate::api::ConnectionSettings`]).
    VmSetConnection {
        name: String,
        connection: crate::api::ConnectionSettings,
    },
    /// The keychain key one VM logs in with.
    VmSetKey {
        name: String,
        key: String,
    },
    VmList,
    Connect {
        name: Option<String>,
        #[serde(default)]
        #[ts(as = "Option<bool>")]
        accept_new: bool,
        #[serde(default)]
        fingerprint: Option<String>,
        #[serde(default)]
        #[ts(as = "Option<String>")]
        passphrase: Option<Zeroizing<String>>,
    },
    Disconnect {
        name: Option<String>,
        #[serde(default)]
        #[ts(as = "Option<bool>")]
        all: bool,
    },
    Use {
        name: String,
    },
    TunnelAdd {
        name: Option<String>,
        maps: Vec<PortMap>,
    },
    TunnelRemove {
        name: Option<String>,
        ports: Vec<u16>,
    },
    /// Reverse tunnels: the VM's ports (`remote`) carried to this laptop's.
    ReverseAdd {
        name: Option<String>,
        maps: Vec<ReverseMap>,
    },
    ReverseRemove {
        name: Option<String>,
        /// The VM's ports.
        ports: Vec<u16>,
    },
    /// The VM's Kubernetes API tunnelled and named `tether-NAME` in the user's kubeconfig.
    KubeEnable {
        name: Option<String>,
        setup: crate::k8s::KubeSetup,
    },
    KubeDisable {
        name: Option<String>,
    },
    /// kubectl's exec plugin: the VM's credentials, read from the VM now.
    KubeCredential {
        name: String,
    },
    Status,
    RecentEvents {
        name: String,
    },
    SetAutoConnect {
        name: String,
        on: bool,
    },
    SetNotifications {
        on: bool,
    },
    KeyList,
    KeyGen {
        name: String,
    },
    KeyImport {
        name: String,
        path: std::path::PathBuf,
        #[serde(default)]
        #[ts(as = "Option<String>")]
        passphrase: Option<Zeroizing<String>>,
    },
    KeyShow {
        name: String,
    },
    KeyRemove {
        name: String,
    },
    KeyRotate {
        vm: String,
    },
    KeyInstall {
        vm: String,
        key: String,
        #[ts(as = "String")]
        password: Zeroizing<String>,
    },
    CheckVm {
        name: String,
    },
    Health {
        name: Option<String>,
    },
    Containers {
        name: Option<String>,
    },
    ContainerAction {
        name: Option<String>,
        id: String,
        action: crate::containers::Action,
    },
    /// Every check Tether depends on (`tether doctor`), for every VM or one.
    Doctor {
        name: Option<String>,
        #[serde(default)]
        #[ts(as = "Option<crate::doctor::ClientFacts>")]
        facts: crate::doctor::ClientFacts,
    },
    /// The engine's last log lines, all or about one VM.
    Logs {
        name: Option<String>,
        lines: usize,
    },
    /// The doctor's report bundle (tar.gz) written to `file`, an absolute path.
    DoctorReport {
        file: std::path::PathBuf,
        #[serde(default)]
        #[ts(as = "Option<crate::doctor::ClientFacts>")]
        facts: crate::doctor::ClientFacts,
    },
    /// Every container of one Compose project, in dependency order.
    ProjectAction {
        name: Option<String>,
        project: String,
        action: crate::containers::Action,
    },
    ContainerLogs {
        name: Option<String>,
        id: String,
        tail: usize,
    },
    /// Turns the connection into a stream of log lines (JSON strings) until either side closes.
    FollowLogs {
        name: Option<String>,
        id: String,
        tail: usize,
    },
    /// Per VM when a name is given, else the default for all VMs.
    SetAutoForward {
        name: Option<String>,
        on: bool,
    },
    SetPrivilegedPorts {
        on: bool,
    },
    /// Shares a laptop folder with a VM's containers.
    ShareAdd {
        #[serde(default)]
        name: Option<String>,
        share: crate::config::Share,
    },
    ShareRemove {
        #[serde(default)]
        name: Option<String>,
        share: String,
    },
    /// Shared folders and their state: one VM's, or every VM's.
    Shares {
        #[serde(default)]
        name: Option<String>,
    },
    SshHosts,
    UseDockerContext {
        #[serde(default)]
        vm: Option<String>,
    },
    ScanHostKey {
        name: String,
    },
    TrustHostKey {
        name: String,
        fingerprint: String,
    },
    /// A reinstalled VM: its new key, confirmed by fingerprint, replaces the recorded one.
    ReplaceHostKey {
        name: String,
        fingerprint: String,
    },
    Subscribe,
    Shutdown,
}

/// A request the engine answers from its memory or its own files, at once.
const QUICK: Duration = Duration::from_secs(30);
/// One that goes to a VM, the keychain or Docker; every step of it has a timeout of its own.
const NETWORK: Duration = Duration::from_secs(300);
/// A whole Compose project, container after container, or every VM's checks.
const LONG: Duration = Duration::from_secs(1200);

impl Request {
    /// How long a client waits for the answer before it takes the engine for stuck. Well past
    /// what the engine itself allows each step, so a slow VM is reported by the engine, with its
    /// reason, and only a hung engine reaches this.
    pub fn deadline(&self) -> Duration {
        match self {
            Request::Ping
            | Request::Status
            | Request::VmList
            | Request::RecentEvents { .. }
            | Request::Use { .. }
            | Request::SetAutoConnect { .. }
            | Request::SetNotifications { .. }
            | Request::SetAutoForward { .. }
            | Request::SetPrivilegedPorts { .. }
            | Request::ShareAdd { .. }
            | Request::ShareRemove { .. }
            | Request::Shares { .. }
            | Request::KeyList
            | Request::Logs { .. }
            | Request::SshHosts
            | Request::Subscribe => QUICK,
            Request::ProjectAction { .. } | Request::Doctor { .. } | Request::DoctorReport { .. } => LONG,
            _ => NETWORK,
        }
    }
}

pub use crate::api::ErrorBody;
use crate::api::ErrorCode;

impl From<&EngineError> for ErrorBody {
    fn from(e: &EngineError) -> Self {
        e.body()
    }
}

/// One response line.
#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Response {
    fn from_result(r: Result<Value, EngineError>) -> Self {
        match r {
            Ok(v) => Response {
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => Response {
                ok: false,
                result: None,
                error: Some(ErrorBody::from(&e)),
            },
        }
    }
}

/// Serves the control socket until `cancel` fires or a `shutdown` request arrives.
pub async fn serve(engine: Engine, cancel: CancellationToken) -> Result<(), EngineError> {
    let path = engine.paths().control_socket();
    let listener = forward::bind_local(&path)?;
    let pid_file = engine.paths().pid_file();
    let _ = std::fs::write(&pid_file, std::process::id().to_string());
    tracing::info!(socket = %path.display(), "control socket listening");
    let clients = tokio_util::task::TaskTracker::new();
    accept_loop(listener, engine, cancel.clone(), &clients).await;
    // Each client's loop ends with the cancel; a request still being answered gets a moment.
    clients.close();
    if tokio::time::timeout(crate::engine::SHUTDOWN_GRACE, clients.wait())
        .await
        .is_err()
    {
        tracing::warn!(left = clients.len(), "control connections still open at shutdown");
    }
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&pid_file);
    Ok(())
}

async fn accept_loop(
    listener: endpoint::Listener,
    engine: Engine,
    cancel: CancellationToken,
    clients: &tokio_util::task::TaskTracker,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            res = endpoint::accept(&listener) => match res {
                Ok(stream) => match peer::of(&stream) {
                    Ok(uid) if uid == peer::me() => {
                        // A connection ends with the engine, whatever it waits for (a subscriber
                        // waits for events for ever).
                        let (engine, cancel) = (engine.clone(), cancel.clone());
                        clients.spawn(async move {
                            tokio::select! {
                                () = client_loop(stream, engine, cancel.clone()) => {}
                                () = cancel.cancelled() => {}
                            }
                        });
                    }
                    other => {
                        // The socket is 0600 in a 0700 directory, so this takes a mistake or
                        // root's help; even then nothing crosses to another user.
                        let who = other.map(|u| format!("uid {u}")).unwrap_or_else(|e| format!("an unknown user ({e})"));
                        tracing::warn!(peer = %who, "refused a control connection from another user");
                        clients.spawn(refuse(stream, who));
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "control accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Answers a connection from another user with one error line, then closes it.
async fn refuse(stream: endpoint::Stream, who: String) {
    let (_, mut wr) = tokio::io::split(stream);
    let body = ErrorBody::new(
        ErrorCode::Forbidden,
        format!(
            "this Tether engine belongs to uid {}, and {who} may not use it; run tether as that user",
            peer::me()
        ),
        None,
    );
    let resp = Response {
        ok: false,
        result: None,
        error: Some(body),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write_line(&mut wr, &resp)).await;
}

/// The name of a request, for the debug log.
#[derive(Deserialize)]
struct OpOnly {
    op: String,
}

/// The longest request line the engine reads; a longer one is skipped and answered with an
/// error, so a client cannot make the engine buffer without bound.
pub const MAX_REQUEST: usize = 1 << 20;

/// One request line off the wire: at most [`MAX_REQUEST`] bytes kept, the rest of a longer line
/// skipped. `None` at the end of the stream.
async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Result<(), ErrorBody>>> {
    buf.clear();
    let n = (&mut *rd).take(MAX_REQUEST as u64 + 1).read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > MAX_REQUEST {
        loop {
            buf.clear();
            let m = (&mut *rd).take(64 * 1024).read_until(b'\n', buf).await?;
            if m == 0 || buf.last() == Some(&b'\n') {
                break;
            }
        }
        buf.clear();
        let message = format!(
            "request line longer than {} KiB; send one JSON request per line",
            MAX_REQUEST / 1024
        );
        return Ok(Some(Err(ErrorBody::new(ErrorCode::BadRequest, message, None))));
    }
    Ok(Some(Ok(())))
}

/// A request line to a [`Request`], or the coded error the client gets instead. Never panics.
pub fn parse_request(line: &[u8]) -> Result<Request, ErrorBody> {
    let text = std::str::from_utf8(line).map_err(|e| {
        ErrorBody::new(
            ErrorCode::BadRequest,
            format!("the request is not UTF-8 ({e}); send JSON"),
            None,
        )
    })?;
    serde_json::from_str(text)
        .map_err(|e| ErrorBody::new(ErrorCode::BadRequest, format!("unreadable request: {e}"), None))
}

async fn client_loop(stream: endpoint::Stream, engine: Engine, cancel: CancellationToken) {
    let (rd, mut wr) = tokio::io::split(stream);
    let mut rd = BufReader::new(rd);
    // Request lines may carry a passphrase or a password: the buffer is wiped when it goes.
    let mut buf = Zeroizing::new(Vec::new());
    while let Ok(Some(read)) = read_request(&mut rd, &mut buf).await {
        let parsed = read.and_then(|()| parse_request(&buf));
        let req: Request = match parsed {
            Ok(r) => r,
            Err(body) => {
                let resp = Response {
                    ok: false,
                    result: None,
                    error: Some(body),
                };
                if write_line(&mut wr, &resp).await.is_err() {
                    return;
                }
                continue;
            }
        };
        match req {
            Request::Subscribe => {
                let mut rx = engine.subscribe();
                // Someone is watching: health is sampled quickly until this connection ends.
                let _watching = engine.watching();
                if write_line(&mut wr, &Response::from_result(Ok(Value::Null)))
                    .await
                    .is_err()
                {
                    return;
                }
                loop {
                    match rx.recv().await {
                        Ok(ev) => {
                            if write_line(&mut wr, &ev).await.is_err() {
                                return;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            // Going on would leave the subscriber's picture silently wrong;
                            // ending the stream makes it subscribe again and reload.
                            tracing::warn!(missed = n, "event subscriber lagged; ending its stream so it reloads");
                            return;
                        }
                        Err(_) => return,
                    }
                }
            }
            Request::FollowLogs { name, id, tail } => {
                let started = async {
                    let name = engine.config().await.resolve(name.as_deref())?;
                    engine.follow_logs(&name, &id, tail).await
                };
                let lines = match started.await {
                    Ok(l) => l,
                    Err(e) => {
                        if write_line(&mut wr, &Response::from_result(Err(e))).await.is_err() {
                            return;
                        }
                        continue;
                    }
                };
                if write_line(&mut wr, &Response::from_result(Ok(Value::Null)))
                    .await
                    .is_err()
                {
                    return;
                }
                let mut lines = std::pin::pin!(lines);
                use futures_util::StreamExt as _;
                // A quiet container prints nothing for hours: the client closing its end (a log
                // view closed) must end the follow, its Docker connection and its SSH channel
                // at once, not at the next line.
                let mut scratch = [0u8; 512];
                loop {
                    tokio::select! {
                        line = lines.next() => match line {
                            Some(line) => {
                                if write_line(&mut wr, &line).await.is_err() {
                                    return;
                                }
                            }
                            None => return,
                        },
                        read = rd.read(&mut scratch) => {
                            if matches!(read, Ok(0) | Err(_)) {
                                return;
                            }
                        }
                    }
                }
            }
            Request::Shutdown => {
                let _ = write_line(&mut wr, &Response::from_result(Ok(Value::Null))).await;
                engine.shutdown().await;
                cancel.cancel();
                return;
            }
            other => {
                let started = std::time::Instant::now();
                let resp = Response::from_result(handle(&engine, other).await);
                // The op only, read again from the line: requests may carry passphrases.
                let op = serde_json::from_slice::<OpOnly>(&buf).map(|o| o.op).unwrap_or_default();
                tracing::debug!(op, ok = resp.ok, ms = started.elapsed().as_millis() as u64, "request");
                if write_line(&mut wr, &resp).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn write_line<T: Serialize>(wr: &mut (impl AsyncWrite + Unpin), v: &T) -> std::io::Result<()> {
    let mut buf = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    buf.push(b'\n');
    wr.write_all(&buf).await
}

fn json<T: Serialize>(v: T) -> Result<Value, EngineError> {
    serde_json::to_value(v).map_err(|e| EngineError::Internal {
        what: "reply encoder",
        message: e.to_string(),
    })
}

/// Dispatches one request to the engine. Thin by design: no logic lives here.
async fn handle(engine: &Engine, req: Request) -> Result<Value, EngineError> {
    match req {
        // Live tasks: what a soak test watches for leaks.
        Request::Ping => json(serde_json::json!({
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "tasks": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
            "streams": crate::pump::live_streams(),
        })),
        Request::VmAdd { name, profile } => json(engine.add_vm(&name, profile).await?),
        Request::VmRemove { name } => json(engine.remove_vm(&name).await?),
        Request::VmSetConnection { name, connection } => json(engine.set_vm_connection(&name, connection).await?),
        Request::VmSetKey { name, key } => json(engine.set_vm_key(&name, &key).await?),
        Request::VmList => json(engine.config().await),
        Request::Connect {
            name,
            accept_new,
            fingerprint,
            passphrase,
        } => json(
            engine
                .connect(
                    name.as_deref(),
                    Connect {
                        accept_new,
                        confirmed_fingerprint: fingerprint,
                        passphrase,
                    },
                )
                .await?,
        ),
        Request::Disconnect { name, all } => {
            if all {
                json(engine.disconnect_all().await?)
            } else {
                json(vec![engine.disconnect(name.as_deref()).await?])
            }
        }
        Request::Use { name } => json(engine.set_active(&name).await?),
        Request::TunnelAdd { name, maps } => json(engine.add_forwards(name.as_deref(), &maps).await?),
        Request::TunnelRemove { name, ports } => json(engine.remove_forwards(name.as_deref(), &ports).await?),
        Request::ReverseAdd { name, maps } => json(engine.add_reverse(name.as_deref(), &maps).await?),
        Request::ReverseRemove { name, ports } => json(engine.remove_reverse(name.as_deref(), &ports).await?),
        Request::KubeEnable { name, setup } => json(engine.kube_enable(name.as_deref(), setup).await?),
        Request::KubeDisable { name } => json(engine.kube_disable(name.as_deref()).await?),
        Request::KubeCredential { name } => json(engine.kube_credential(&name).await?),
        Request::Status => json(engine.status().await),
        Request::RecentEvents { name } => json(engine.recent_events(&name)),
        Request::SetAutoConnect { name, on } => json(engine.set_auto_connect(&name, on).await?),
        Request::SetNotifications { on } => json(engine.set_notifications(on).await?),
        Request::KeyList => json(engine.key_list().await?),
        Request::KeyGen { name } => json(engine.key_gen(&name).await?),
        Request::KeyImport { name, path, passphrase } => json(
            engine
                .key_import(&name, &path, passphrase.as_ref().map(|p| p.as_str()))
                .await?,
        ),
        Request::KeyShow { name } => json(engine.key_show(&name).await?),
        Request::KeyRemove { name } => json(engine.key_remove(&name).await?),
        Request::KeyRotate { vm } => json(engine.key_rotate(&vm).await?),
        Request::KeyInstall { vm, key, password } => json(engine.install_key(&vm, &key, password).await?),
        Request::CheckVm { name } => json(engine.check_vm(&name).await?),
        Request::Health { name } => {
            let name = engine.config().await.resolve(name.as_deref())?;
            json(engine.health(&name).await?)
        }
        Request::Containers { name } => {
            let name = engine.config().await.resolve(name.as_deref())?;
            json(engine.containers(&name).await?)
        }
        Request::ContainerAction { name, id, action } => {
            let name = engine.config().await.resolve(name.as_deref())?;
            json(engine.container_action(&name, &id, action).await?)
        }
        Request::Logs { name, lines } => json(engine.logs(name.as_deref(), lines).await?),
        Request::Doctor { name, facts } => json(engine.doctor(&facts, name.as_deref()).await?),
        Request::DoctorReport { file, facts } => {
            if !file.is_absolute() {
                return Err(crate::config::ConfigError::Invalid(format!(
                    "the report's path must be absolute, not {}",
                    file.display()
                ))
                .into());
            }
            json(engine.doctor_report(&facts, &file).await?)
        }
        Request::ProjectAction { name, project, action } => {
            let name = engine.config().await.resolve(name.as_deref())?;
            json(engine.project_action(&name, &project, action).await?)
        }
        Request::ContainerLogs { name, id, tail } => {
            let name = engine.config().await.resolve(name.as_deref())?;
            json(engine.container_logs(&name, &id, tail).await?)
        }
        Request::SetAutoForward { name, on } => json(engine.set_auto_forward(name.as_deref(), on).await?),
        Request::SetPrivilegedPorts { on } => json(engine.set_privileged_ports(on).await?),
        Request::ShareAdd { name, share } => {
            let name = engine.config().await.resolve(name.as_deref())?;
            json(engine.share_add(&name, share).await?)
        }
        Request::ShareRemove { name, share } => {
            let name = engine.config().await.resolve(name.as_deref())?;
            json(engine.share_remove(&name, &share).await?)
        }
        Request::Shares { name } => json(engine.shares(name.as_deref()).await?),
        Request::SshHosts => json(crate::target::config_hosts()?),
        Request::UseDockerContext { vm } => json(engine.use_docker_context(vm.as_deref()).await?),
        Request::ScanHostKey { name } => json(engine.scan_host_key(&name).await?),
        Request::TrustHostKey { name, fingerprint } => json(engine.trust_host_key(&name, &fingerprint).await?),
        Request::ReplaceHostKey { name, fingerprint } => {
            json(serde_json::json!({ "removed": engine.replace_host_key(&name, &fingerprint).await? }))
        }
        Request::Subscribe | Request::Shutdown | Request::FollowLogs { .. } => Err(EngineError::Internal {
            what: "request dispatch",
            message: "this request is handled by the connection loop".into(),
        }),
    }
}

/// A connection to a running engine.
pub struct Client {
    lines: tokio::io::Lines<BufReader<ReadHalf<endpoint::Stream>>>,
    wr: WriteHalf<endpoint::Stream>,
}

/// Why a call did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no Tether engine is running (control socket {0}); start one with `tether daemon`, or run `tether connect`"
    )]
    NotRunning(String),
    #[error(
        "the control socket {socket} is served by uid {uid}, not by you (uid {me}); Tether will not send it \
         anything. Check who created it, remove it, and start your own engine with `tether daemon`"
    )]
    Foreign {
        socket: String,
        uid: peer::Id,
        me: peer::Id,
    },
    #[error("lost the connection to the Tether engine: {0}")]
    Io(#[from] std::io::Error),
    #[error("the Tether engine sent an unreadable reply: {0}")]
    Decode(String),
    #[error("{0}")]
    Remote(ErrorBody),
    #[error(
        "the Tether engine did not answer `{op}` within {secs} s, so it seems stuck. `tether logs` may say \
         why; `tether engine stop` (or quitting the app) ends it, and the next command starts a new one"
    )]
    Timeout { op: String, secs: u64 },
}

impl Client {
    pub async fn connect(socket: &Path) -> Result<Self, ClientError> {
        let stream = endpoint::connect(socket)
            .await
            .map_err(|_| ClientError::NotRunning(socket.display().to_string()))?;
        // Requests carry passphrases: check whose engine this is before sending any.
        let uid = peer::of(&stream)?;
        let me = peer::me();
        if uid != me {
            return Err(ClientError::Foreign {
                socket: socket.display().to_string(),
                uid,
                me,
            });
        }
        let (rd, wr) = tokio::io::split(stream);
        Ok(Client {
            lines: BufReader::new(rd).lines(),
            wr,
        })
    }

    /// Sends one request and waits for its response, at most `req.deadline()`.
    pub async fn call(&mut self, req: &Request) -> Result<Value, ClientError> {
        // The line may carry a passphrase or a password: wiped once sent.
        let mut buf = Zeroizing::new(serde_json::to_vec(req).map_err(|e| ClientError::Decode(e.to_string()))?);
        buf.push(b'\n');
        let exchange = async {
            self.wr.write_all(&buf).await?;
            self.lines.next_line().await
        };
        let line = tokio::time::timeout(req.deadline(), exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                // The op only, read back from the line: no secret is copied out of it.
                op: serde_json::from_slice::<OpOnly>(&buf).map_or_else(|_| "?".into(), |o| o.op),
                secs: req.deadline().as_secs(),
            })??
            .ok_or_else(|| ClientError::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)))?;
        let resp: Response = serde_json::from_str(&line).map_err(|e| ClientError::Decode(e.to_string()))?;
        match (resp.ok, resp.error) {
            (true, _) => Ok(resp.result.unwrap_or(Value::Null)),
            (false, Some(e)) => Err(ClientError::Remote(e)),
            (false, None) => Err(ClientError::Decode("error without a body".into())),
        }
    }

    /// After a `subscribe` call: the next event line.
    pub async fn next_event(&mut self) -> Result<Option<Value>, ClientError> {
        let line: Option<String> = self.lines.next_line().await?;
        match line {
            Some(l) => serde_json::from_str(&l)
                .map(Some)
                .map_err(|e| ClientError::Decode(e.to_string())),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
#[path = "tests/control.rs"]
mod tests;
