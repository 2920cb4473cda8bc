//! Starting `tether-agent` on the VM over its SSH connection, and talking to it.
//!
//! The agent binaries ship with Tether (one per VM architecture: x86_64 and aarch64, static, so
//! any Linux VM runs them). The engine finds them by [`AgentBins::find`], knows each one's
//! SHA-256, and runs the one for the VM's `uname -m` from `~/.cache/tether/agent/`, named by its
//! digest and checked against it before every start; a missing or different file is uploaded
//! over the same connection first. Nothing else is installed, and nothing runs as root.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use russh::ChannelMsg;
use russh::client::Handle;
use tether_sync::proto::{self, Decoder, FromAgent, ToAgent};
use tokio::sync::mpsc;

use crate::remote;
use crate::ssh::ClientHandler;

/// The architectures an agent is built for, as `uname -m` says them.
pub const ARCHES: &[&str] = &["x86_64", "aarch64"];

/// The agent binaries this engine carries, with their digests.
#[derive(Debug, Default)]
pub struct AgentBins {
    /// Where each architecture's file is.
    files: Vec<(String, PathBuf)>,
    /// (arch, file, hex SHA-256), read and hashed when an agent is first started: an engine
    /// whose containers never mount a laptop folder never reads them.
    bins: std::sync::OnceLock<Vec<(String, PathBuf, String)>>,
}

impl AgentBins {
    /// Looks for `tether-agent-ARCH` in `TETHER_AGENT_DIR`, then beside this executable and in
    /// `../lib/tether` from it (the Linux packages' layout), then in `../Resources` (macOS).
    pub fn find() -> AgentBins {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(d) = std::env::var_os("TETHER_AGENT_DIR").filter(|d| !d.is_empty()) {
            dirs.push(PathBuf::from(d));
        }
        if let Some(exe_dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            dirs.push(exe_dir.join("../lib/tether"));
            dirs.push(exe_dir.clone());
            dirs.push(exe_dir.join("../Resources"));
        }
        let files = ARCHES
            .iter()
            .filter_map(|arch| {
                dirs.iter()
                    .map(|d| d.join(format!("tether-agent-{arch}")))
                    .find(|p| p.is_file())
                    .map(|p| (arch.to_string(), p))
            })
            .collect();
        AgentBins {
            files,
            bins: std::sync::OnceLock::new(),
        }
    }

    /// The binaries with their digests (read and hashed the first time).
    fn bins(&self) -> &[(String, PathBuf, String)] {
        self.bins.get_or_init(|| {
            self.files
                .iter()
                .filter_map(|(arch, p)| {
                    let bytes = std::fs::read(p).ok()?;
                    let hex = tether_sync::entry::hex(&tether_sync::entry::digest_of(&bytes));
                    Some((arch.clone(), p.clone(), hex))
                })
                .collect()
        })
    }

    fn get(&self, arch: &str) -> Option<&(String, PathBuf, String)> {
        self.bins().iter().find(|(a, _, _)| a == arch)
    }

    /// The launch script: prints `TETHER-AGENT` and becomes the agent, or `NEED ARCH` when the
    /// VM lacks the right file (then the engine uploads it), or `ARCH ?` for an architecture
    /// Tether has no agent for.
    fn script(&self) -> String {
        let mut cases = String::new();
        for (arch, _, digest) in self.bins() {
            let names = if arch == "x86_64" {
                "x86_64|amd64"
            } else {
                "aarch64|arm64"
            };
            cases.push_str(&format!("{names}) a={arch} d={digest};; "));
        }
        format!(
            "m=$(uname -m); case \"$m\" in {cases}*) echo \"ARCH $m\"; exit 98;; esac; \
             f=\"$HOME/.cache/tether/agent/tether-agent-$d\"; \
             if [ -x \"$f\" ] && [ \"$(sha256sum \"$f\" | cut -c1-64)\" = \"$d\" ]; then echo TETHER-AGENT; exec \"$f\"; fi; \
             echo \"NEED $a\"; exit 97"
        )
    }
}

/// A running agent.
pub struct AgentConn {
    pub tx: mpsc::Sender<ToAgent>,
    pub rx: mpsc::UnboundedReceiver<FromAgent>,
    /// The VM user's home, where the mirrors live.
    pub home: String,
    pub arch: String,
}

/// How many bytes of queued frames the writer joins into one write to the agent's stdin.
const BATCH_BYTES: usize = 256 * 1024;

/// Starts the agent on `handle` (uploading it first if needed).
pub async fn start(
    handle: &Arc<Handle<ClientHandler>>,
    bins: &AgentBins,
    tasks: &crate::tasks::Tasks,
) -> Result<AgentConn, String> {
    if super::blocking(|| bins.bins().is_empty()) {
        return Err(
            "this Tether has no VM agent beside it (tether-agent-x86_64, tether-agent-aarch64): reinstall Tether"
                .into(),
        );
    }
    for attempt in 0..2 {
        match launch(handle, bins, tasks).await? {
            Launched::Running(conn) => return Ok(conn),
            Launched::Need(arch) if attempt == 0 => upload(handle, bins, &arch).await?,
            Launched::Need(arch) => return Err(format!("the agent for {arch} did not start after its upload")),
        }
    }
    Err("the agent did not start".into())
}

enum Launched {
    Running(AgentConn),
    Need(String),
}

async fn launch(
    handle: &Arc<Handle<ClientHandler>>,
    bins: &AgentBins,
    tasks: &crate::tasks::Tasks,
) -> Result<Launched, String> {
    let ch = handle
        .channel_open_session()
        .await
        .map_err(|e| format!("cannot open an SSH session channel for the agent: {e}"))?;
    ch.exec(true, bins.script())
        .await
        .map_err(|e| format!("cannot start the agent on the VM: {e}"))?;
    let (mut rd, wr) = ch.split();
    // The first line says what happened.
    let mut line = Vec::new();
    let mut rest = Vec::new();
    let mut stderr = Vec::new();
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(20), rd.wait()).await {
            Err(_) => return Err("the VM did not start the agent within 20 s".into()),
            Ok(None) | Ok(Some(ChannelMsg::Close)) | Ok(Some(ChannelMsg::Eof)) => {
                if line.is_empty() {
                    return Err(format!(
                        "the agent's launcher ended without a word{}",
                        tail(&stderr).map(|t| format!(": {t}")).unwrap_or_default()
                    ));
                }
                break;
            }
            Ok(Some(ChannelMsg::Data { data })) => {
                line.extend_from_slice(&data);
                if let Some(i) = line.iter().position(|&b| b == b'\n') {
                    rest = line.split_off(i + 1);
                    break;
                }
                if line.len() > 4096 {
                    return Err("the VM's login shell printed text before the agent started; Tether needs a quiet shell for commands".into());
                }
            }
            Ok(Some(ChannelMsg::ExtendedData { data, .. })) => stderr.extend_from_slice(&data),
            Ok(Some(_)) => {}
        }
    }
    let first = String::from_utf8_lossy(&line).trim().to_string();
    if let Some(arch) = first.strip_prefix("NEED ") {
        return Ok(Launched::Need(arch.to_string()));
    }
    if let Some(m) = first.strip_prefix("ARCH ") {
        return Err(format!(
            "the VM is a {m} machine; Tether's agent runs on x86_64 and aarch64 VMs, so shared folders are off for this VM"
        ));
    }
    if first != "TETHER-AGENT" {
        return Err(format!("the agent's launcher said {first:?}"));
    }
    let (to_tx, mut to_rx) = mpsc::channel::<ToAgent>(16);
    let (from_tx, mut from_rx) = mpsc::unbounded_channel::<FromAgent>();
    // Reader: frames from stdout; the agent's stderr goes to the log.
    tasks.spawn(async move {
        let mut dec = Decoder::default();
        dec.push(&rest);
        let deliver = |dec: &mut Decoder| -> bool {
            loop {
                match dec.frame::<FromAgent>() {
                    Ok(Some(m)) => {
                        if from_tx.send(m).is_err() {
                            return false;
                        }
                    }
                    Ok(None) => return true,
                    Err(e) => {
                        tracing::warn!(error = %e, "the agent sent a bad frame; stopping it");
                        return false;
                    }
                }
            }
        };
        if !deliver(&mut dec) {
            return;
        }
        while let Some(msg) = rd.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    dec.push(&data);
                    if !deliver(&mut dec) {
                        return;
                    }
                }
                ChannelMsg::ExtendedData { data, .. } => {
                    tracing::warn!(stderr = %String::from_utf8_lossy(&data).trim(), "the VM's agent");
                }
                ChannelMsg::ExitStatus { exit_status } if exit_status != 0 => {
                    tracing::warn!(exit_status, "the VM's agent ended");
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
    });
    // Writer: frames to stdin, each write waiting for the channel's window. Frames already
    // queued go out together (up to [`BATCH_BYTES`]): a first sync of small files is then a few
    // large SSH packets instead of one small packet per file, for every hop to handle.
    tasks.spawn(async move {
        while let Some(m) = to_rx.recv().await {
            let mut bytes = Vec::new();
            let mut next = Some(m);
            while let Some(m) = next.take() {
                match proto::encode(&m) {
                    Ok(b) if bytes.is_empty() => bytes = b,
                    Ok(b) => bytes.extend_from_slice(&b),
                    Err(e) => tracing::warn!(error = %e, "a message for the agent could not be encoded"),
                }
                if bytes.len() < BATCH_BYTES {
                    next = to_rx.try_recv().ok();
                }
            }
            if bytes.is_empty() {
                continue;
            }
            if wr.data_bytes(Bytes::from(bytes)).await.is_err() {
                break;
            }
        }
        let _ = wr.eof().await;
        let _ = wr.close().await;
    });
    match tokio::time::timeout(std::time::Duration::from_secs(20), from_rx.recv()).await {
        Ok(Some(FromAgent::Hello { version, arch, home })) if version == proto::VERSION => {
            Ok(Launched::Running(AgentConn {
                tx: to_tx,
                rx: from_rx,
                home,
                arch,
            }))
        }
        Ok(Some(FromAgent::Hello { version, .. })) => Err(format!(
            "the VM's agent speaks version {version}, this engine {}",
            proto::VERSION
        )),
        Ok(Some(other)) => Err(format!("the agent began with {other:?} instead of a greeting")),
        Ok(None) => Err("the agent ended before its greeting".into()),
        Err(_) => Err("the agent did not greet within 20 s".into()),
    }
}

fn tail(b: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(b).trim().to_string();
    (!s.is_empty()).then(|| {
        s.chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    })
}

/// Copies the agent for `arch` to the VM, checked by digest before it takes its name.
async fn upload(handle: &Handle<ClientHandler>, bins: &AgentBins, arch: &str) -> Result<(), String> {
    let Some((_, file, digest)) = bins.get(arch) else {
        return Err(format!("this Tether carries no agent for {arch}"));
    };
    let bytes = tokio::fs::read(file)
        .await
        .map_err(|e| format!("cannot read the agent {}: {e}", file.display()))?;
    // The digest is checked again here: the file could have changed since it was hashed.
    let now = tether_sync::entry::hex(&tether_sync::entry::digest_of(&bytes));
    if &now != digest {
        return Err(format!(
            "the agent {} changed since Tether started; restart Tether",
            file.display()
        ));
    }
    let d = remote::quote(digest);
    let script = format!(
        "umask 077; dir=\"$HOME/.cache/tether/agent\"; mkdir -p \"$dir\" && t=$(mktemp \"$dir/.upload.XXXXXX\") && cat > \"$t\" && \
         [ \"$(sha256sum \"$t\" | cut -c1-64)\" = {d} ] && chmod 700 \"$t\" && mv -f \"$t\" \"$dir/tether-agent-\"{d} || {{ rm -f \"$t\"; exit 1; }}; \
         for old in \"$dir\"/tether-agent-*; do [ \"$old\" = \"$dir/tether-agent-\"{d} ] || rm -f \"$old\"; done"
    );
    let out = remote::run(handle, &script, Some(&bytes), std::time::Duration::from_secs(120)).await?;
    if !out.success() {
        return Err(format!(
            "the agent could not be copied to the VM's ~/.cache/tether/agent ({}); is the VM's disk full?",
            if out.stderr.is_empty() {
                "no reason given".to_string()
            } else {
                out.stderr
            }
        ));
    }
    tracing::info!(arch, "copied the agent to the VM");
    Ok(())
}
