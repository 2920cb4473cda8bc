//! Talks to the VM's Docker Engine over the SSH link: a version probe through the forwarded
//! socket path, and a shell diagnosis on the VM when the socket cannot be opened.

use std::time::Duration;

use russh::client::Handle;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::EngineInfo;
use crate::ssh::{self, ClientHandler};

const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

impl EngineInfo {
    fn failed(error: String) -> Self {
        Self {
            ok: false,
            error: Some(error),
            ..Default::default()
        }
    }
}

/// A bollard client on a forwarded Docker socket, its API version agreed with the engine: what
/// the monitor and the containers view both talk through, the same path the user's `docker` takes.
pub async fn client(socket: &std::path::Path) -> Result<bollard::Docker, bollard::errors::Error> {
    crate::endpoint::docker(socket)?.negotiate_version().await
}

/// `GET /version` through a fresh streamlocal channel; diagnoses failures on the VM.
pub async fn probe(handle: &Handle<ClientHandler>, socket: &str, user: &str) -> EngineInfo {
    match tokio::time::timeout(PROBE_TIMEOUT, version(handle, socket)).await {
        Ok(Ok(info)) => info,
        Ok(Err(ProbeError::Open(e))) => {
            let msg = match e {
                russh::Error::ChannelOpenFailure(russh::ChannelOpenFailure::ConnectFailed) => {
                    diagnose(handle, socket, user).await
                }
                other => ssh::describe_open_failure(&other, &format!("the Docker socket {socket}")),
            };
            EngineInfo::failed(msg)
        }
        Ok(Err(ProbeError::Http(msg))) => EngineInfo::failed(msg),
        Err(_) => EngineInfo::failed(format!(
            "the Docker engine on the VM did not answer within {} s; it may be overloaded or hung",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

enum ProbeError {
    Open(russh::Error),
    Http(String),
}

/// `GET path` of the engine's API through a fresh streamlocal channel: the body of a 200 answer.
async fn get(handle: &Handle<ClientHandler>, socket: &str, path: &str) -> Result<String, ProbeError> {
    let ch = handle
        .channel_open_direct_streamlocal(socket)
        .await
        .map_err(ProbeError::Open)?;
    let mut stream = ch.into_stream();
    let io = |e: std::io::Error| ProbeError::Http(format!("reading the engine's answer failed: {e}"));
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())
        .await
        .map_err(io)?;
    let mut raw = Vec::new();
    stream.take(1024 * 1024).read_to_end(&mut raw).await.map_err(io)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200") {
        return Err(ProbeError::Http(format!(
            "the Docker engine answered `{status}` to GET {path}"
        )));
    }
    Ok(body.trim().to_string())
}

/// The gateway address of the engine's default `bridge` network: where a container on it reaches
/// the VM itself. `Err` is a sentence for the user.
pub async fn bridge_gateway(handle: &Handle<ClientHandler>, socket: &str) -> Result<std::net::IpAddr, String> {
    let body = match tokio::time::timeout(PROBE_TIMEOUT, get(handle, socket, "/networks/bridge")).await {
        Ok(Ok(b)) => b,
        Ok(Err(ProbeError::Open(e))) => {
            return Err(ssh::describe_open_failure(&e, &format!("the Docker socket {socket}")));
        }
        Ok(Err(ProbeError::Http(m))) => return Err(m),
        Err(_) => return Err("the Docker engine on the VM did not answer in time".into()),
    };
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("the Docker engine sent an unreadable network: {e}"))?;
    v["IPAM"]["Config"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| match c["Gateway"].as_str() {
            Some(g) => g.parse::<std::net::IpAddr>().ok(),
            // Unset, the engine gives the bridge the subnet's first address (and older engines
            // leave it out of the answer).
            None => {
                let (net, _) = c["Subnet"].as_str()?.split_once('/')?;
                let net: std::net::Ipv4Addr = net.parse().ok()?;
                Some(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                    u32::from(net).checked_add(1)?,
                )))
            }
        })
        .min_by_key(|ip| ip.is_ipv6())
        .ok_or_else(|| "the VM's Docker engine has no default bridge network with a gateway".to_string())
}

async fn version(handle: &Handle<ClientHandler>, socket: &str) -> Result<EngineInfo, ProbeError> {
    let body = get(handle, socket, "/version").await?;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct V {
        version: Option<String>,
        api_version: Option<String>,
        os: Option<String>,
        arch: Option<String>,
    }
    let v: V = serde_json::from_str(body.trim())
        .map_err(|e| ProbeError::Http(format!("the Docker engine sent an unreadable version: {e}")))?;
    Ok(EngineInfo {
        ok: true,
        version: v.version,
        api_version: v.api_version,
        os: v.os,
        arch: v.arch,
        error: None,
    })
}

/// Runs a POSIX sh snippet on the VM and returns its stdout (trimmed).
pub async fn exec(handle: &Handle<ClientHandler>, command: &str, timeout: Duration) -> Option<String> {
    crate::remote::run(handle, command, None, timeout)
        .await
        .ok()
        .map(|o| o.stdout)
}

/// Why the VM would not open the Docker socket for us, as found on the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketProblem {
    Missing,
    NotSocket,
    Denied,
    /// The socket is there, accessible and listening, yet sshd would not open it: policy.
    Forbidden,
    Refused,
    Unknown,
}

/// Looks on the VM (one `sh` run) for why `socket` could not be opened.
pub async fn socket_problem(handle: &Handle<ClientHandler>, socket: &str) -> SocketProblem {
    let script = format!(
        "p={}; if [ ! -e \"$p\" ]; then echo missing; elif [ ! -S \"$p\" ]; then echo notsocket; \
         elif [ ! -r \"$p\" ] || [ ! -w \"$p\" ]; then echo denied; \
         elif awk -v p=\"$p\" '$NF==p && $4==\"00010000\" {{f=1}} END {{exit !f}}' /proc/net/unix 2>/dev/null; \
         then echo forbidden; else echo refused; fi",
        crate::remote::quote(socket)
    );
    match exec(handle, &script, Duration::from_secs(5)).await.as_deref() {
        Some("missing") => SocketProblem::Missing,
        Some("notsocket") => SocketProblem::NotSocket,
        Some("denied") => SocketProblem::Denied,
        Some("forbidden") => SocketProblem::Forbidden,
        Some("refused") => SocketProblem::Refused,
        _ => SocketProblem::Unknown,
    }
}

/// Why the Docker socket cannot be opened, in words that say what to do.
pub async fn diagnose(handle: &Handle<ClientHandler>, socket: &str, user: &str) -> String {
    match socket_problem(handle, socket).await {
        SocketProblem::Missing => format!(
            "the Docker engine is not running on the VM: {socket} does not exist there. Start it \
             (`sudo systemctl start docker`), or if Docker listens elsewhere set the path with --remote-socket"
        ),
        SocketProblem::NotSocket => format!("{socket} on the VM is not a socket; fix the path with --remote-socket"),
        SocketProblem::Denied => format!(
            "permission denied on the VM's Docker socket {socket}: user '{user}' may not use it. Add the user \
             to the docker group (`sudo usermod -aG docker {user}`) and reconnect"
        ),
        SocketProblem::Forbidden => format!(
            "the VM's sshd forbids forwarding to the Docker socket {socket}: set `AllowStreamLocalForwarding yes` \
             in /etc/ssh/sshd_config on the VM and reload sshd (`sudo systemctl reload ssh`)"
        ),
        SocketProblem::Refused => format!(
            "the Docker engine is not running on the VM: {socket} exists but nothing answers. Start it \
             with `sudo systemctl start docker`"
        ),
        SocketProblem::Unknown => {
            format!("the VM could not connect to the Docker socket {socket}; check that the Docker engine runs there")
        }
    }
}

/// A published port's protocol as Docker reports it; none given is TCP, Docker's default.
pub fn proto(reported: Option<bollard::models::PortSummaryTypeEnum>) -> crate::api::Proto {
    use bollard::models::PortSummaryTypeEnum as T;
    match reported {
        Some(T::UDP) => crate::api::Proto::Udp,
        Some(T::SCTP) => crate::api::Proto::Sctp,
        Some(T::TCP | T::EMPTY) | None => crate::api::Proto::Tcp,
    }
}
