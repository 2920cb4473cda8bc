//! Short POSIX `sh` scripts run on the VM over an SSH session: exit status and output, with
//! optional input on stdin and a deadline. Nothing is installed on the VM.

use std::time::Duration;

use russh::ChannelMsg;
use russh::client::Handle;

use crate::ssh::ClientHandler;

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
        let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), None);
        while let Some(msg) = ch.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, .. } => err.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&out).trim().to_string(),
            stderr: String::from_utf8_lossy(&err).trim().to_string(),
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
