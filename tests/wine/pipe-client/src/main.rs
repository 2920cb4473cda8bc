//! Talks to a Docker endpoint the way the docker CLI does on Windows, through a named pipe, and
//! prints what it got: `ping OK`, `api VERSION`, and `sha256 HEX` of the first BYTES of an
//! image's `docker save` stream. The Windows end-to-end test runs it under Wine and checks each
//! line against the same requests made to the VM's engine directly.
//!
//! Usage: `tether-pipe-client PIPE IMAGE BYTES`. Overlapped I/O through tokio, as the docker
//! CLI (go-winio) does.
//!
//! `tether-pipe-client squat PIPE LOG` plays another local user who created a pipe under a
//! name first: it serves PIPE until killed and appends to LOG `ready`, then a line per
//! connection with the bytes it received, so a test sees whether any client reached it.

#[cfg(windows)]
mod pipe {
    use sha2::{Digest, Sha256};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeClient};

    type Result<T> = std::result::Result<T, String>;

    /// Sends one HTTP/1.0 request (so the body needs no chunk decoding and ends with the
    /// connection) and returns the status line and a reader positioned at the body.
    async fn request(pipe: &str, path: &str) -> Result<(String, BufReader<NamedPipeClient>)> {
        // As go-winio's DialPipe: every instance busy (ERROR_PIPE_BUSY, the server between one
        // client and the next) means wait a moment and try again, for a while.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut conn = loop {
            match ClientOptions::new().open(pipe) {
                Ok(c) => break c,
                Err(e) if e.raw_os_error() == Some(231) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(e) => return Err(format!("cannot open {pipe}: {e}")),
            }
        };
        conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut rd = BufReader::new(conn);
        let mut status = String::new();
        rd.read_line(&mut status).await.map_err(|e| format!("read: {e}"))?;
        loop {
            let mut line = String::new();
            rd.read_line(&mut line).await.map_err(|e| format!("read: {e}"))?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        Ok((status.trim_end().to_string(), rd))
    }

    async fn body(mut rd: BufReader<NamedPipeClient>) -> Result<String> {
        let mut s = String::new();
        rd.read_to_string(&mut s).await.map_err(|e| format!("read: {e}"))?;
        Ok(s)
    }

    /// Serves `pipe` until killed, logging every connection and what it sent to `log`.
    pub async fn squat(pipe: &str, log: &str) -> Result<()> {
        use std::io::Write as _;
        use tokio::net::windows::named_pipe::ServerOptions;
        let note = |line: &str| -> Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| format!("cannot open {log}: {e}"))?;
            writeln!(f, "{line}").map_err(|e| format!("write {log}: {e}"))
        };
        let mut server = ServerOptions::new()
            .first_pipe_instance(true)
            .create(pipe)
            .map_err(|e| format!("cannot create {pipe}: {e}"))?;
        note("ready")?;
        loop {
            server.connect().await.map_err(|e| format!("connect: {e}"))?;
            let mut conn = std::mem::replace(
                &mut server,
                ServerOptions::new()
                    .create(pipe)
                    .map_err(|e| format!("cannot create {pipe}: {e}"))?,
            );
            let mut buf = vec![0u8; 1 << 16];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            note(&format!("connection, {n} bytes"))?;
        }
    }

    pub async fn run(pipe: &str, image: &str, bytes: u64) -> Result<()> {
        let (status, rd) = request(pipe, "/_ping").await?;
        println!("ping {} {}", status, body(rd).await?);

        let (_, rd) = request(pipe, "/version").await?;
        let version = body(rd).await?;
        let api = version
            .split("\"ApiVersion\":\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .ok_or_else(|| format!("no ApiVersion in {version}"))?;
        println!("api {api}");

        let (status, rd) = request(pipe, &format!("/images/{image}/get")).await?;
        if !status.contains(" 200 ") {
            return Err(format!("docker save answered {status}"));
        }
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut left = bytes;
        let mut rd = rd.take(bytes);
        while left > 0 {
            let n = rd.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err(format!("the stream ended {left} bytes early"));
            }
            hash.update(&buf[..n]);
            left -= n as u64;
        }
        let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        println!("sha256 {hex}");
        Ok(())
    }
}

#[cfg(windows)]
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let (Some("squat"), Some(pipe), Some(log)) = (args.get(1).map(String::as_str), args.get(2), args.get(3)) {
        if let Err(e) = pipe::squat(pipe, log).await {
            eprintln!("tether-pipe-client: {e}");
            std::process::exit(1);
        }
        return;
    }
    let (Some(pipe), Some(image), Some(bytes)) = (args.get(1), args.get(2), args.get(3).and_then(|b| b.parse().ok()))
    else {
        eprintln!("usage: tether-pipe-client PIPE IMAGE BYTES | tether-pipe-client squat PIPE LOG");
        std::process::exit(2);
    };
    if let Err(e) = pipe::run(pipe, image, bytes).await {
        eprintln!("tether-pipe-client: {e}");
        std::process::exit(1);
    }
}

/// Elsewhere there are no named pipes to talk to; the workspace still builds.
#[cfg(not(windows))]
fn main() {
    eprintln!("tether-pipe-client talks to Windows named pipes and runs on Windows only");
    std::process::exit(2);
}
