//! Short POSIX `sh` scripts run on the VM over an SSH session: exit status and output, with
//! optional input on stdin and a deadline. Nothing is installed on the VM.

use std::time::Duration;

use russh::ChannelMsg;
use russh::client::Handle;

use crate::ssh::ClientHandler;

/// The most a script may print on each of stdout and stderr. Tether's scripts print a few KiB;
/// a VM that sends more is answered with an error instead of growing the engine without bound.
pub const MAX_OUTPUT: usize = 1 << 20;

/// Gathers one stream of a script's output, up to [`MAX_OUTPUT`].
#[derive(Default)]
pub(crate) struct Capped {
    bytes: Vec<u8>,
    over: bool,
}

impl Capped {
    /// Keeps `data` if it fits; answers false once the stream went over the cap.
    pub(crate) fn push(&mut self, data: &[u8]) -> bool {
        if self.over || self.bytes.len() + data.len() > MAX_OUTPUT {
            self.over = true;
            self.bytes = Vec::new();
            return false;
        }
        self.bytes.extend_from_slice(data);
        true
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).trim().to_string()
    }
}

/// What a script printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit status; `None` if the VM reported none (killed by a signal).
    pub status: Option<u32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// Runs `script` with `sh -c` semantics (sshd hands the command to the login shell), feeding
/// `stdin` if given. `Err` carries a sentence for the user.
pub async fn run(
    handle: &Handle<ClientHandler>,
    script: &str,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, String> {
    let work = async {
        let mut ch = handle
            .channel_open_session()
            .await
            .map_err(|e| format!("cannot open an SSH session channel: {e}"))?;
        ch.exec(true, script)
            .await
            .map_err(|e| format!("cannot run a command on the VM: {e}"))?;
        if let Some(input) = stdin {
            ch.data(input)
                .await
                .map_err(|e| format!("cannot send input to the VM: {e}"))?;
        }
        ch.eof()
            .await
            .map_err(|e| format!("cannot send input to the VM: {e}"))?;
        let (mut out, mut err, mut status) = (Capped::default(), Capped::default(), None);
        while let Some(msg) = ch.wait().await {
            let fits = match msg {
                ChannelMsg::Data { data } => out.push(&data),
                ChannelMsg::ExtendedData { data, .. } => err.push(&data),
                ChannelMsg::ExitStatus { exit_status } => {
                    status = Some(exit_status);
                    true
                }
                ChannelMsg::Close => break,
                _ => true,
            };
            if !fits {
                let _ = ch.close().await;
                return Err(format!(
                    "the VM printed more than {} KiB in answer to a short command; something on the VM (a login \
                     script, a wrapper around sh) is adding output",
                    MAX_OUTPUT / 1024
                ));
            }
        }
        Ok(Output {
            status,
            stdout: out.text(),
            stderr: err.text(),
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("the VM did not finish the command within {} s", timeout.as_secs()))?
}

/// Quotes `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
#[path = "tests/remote.rs"]
mod tests;
