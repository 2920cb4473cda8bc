//! The Docker API requests on their way to the VM, read just enough to find the one Tether
//! changes: a container create whose bind mounts name laptop folders (see [`crate::share`]).
//!
//! [`Framer`] follows HTTP/1.1 request framing on the client's side of a connection: each
//! request's head is parsed, and its body passed on by `Content-Length` or chunk by chunk, as the
//! bytes it was sent as. Only a `POST /containers/create` (any `/vX.Y` prefix) is held whole and
//! handed over as [`Piece::Create`]. After a request that upgrades the connection (attach, exec,
//! BuildKit's `/session` and `/grpc`), the rest is raw stream and passes untouched. Bytes are
//! never reordered, and every request but a create leaves exactly as it came.
//!
//! What a bind looks like: `HostConfig.Binds` entries `SRC:DST[:OPTS]` (SRC a path, or a volume
//! name that is left alone; on Windows SRC may start with a drive, `C:\…`), and
//! `HostConfig.Mounts` entries with `"Type": "bind"` and a `Source` (`--mount`, Compose).
//!
//! Longer than 500 lines on purpose: the request framing, chunked bodies and bind rewriting are one
//! reader of one stream, tested together.

use bytes::Bytes;

/// The longest request head accepted (Docker's are a few hundred bytes).
pub const MAX_HEAD: usize = 64 * 1024;
/// The largest create body held (a create is a few KiB of JSON; this leaves room for huge
/// label and environment sets).
pub const MAX_CREATE: usize = 16 << 20;

/// What the framer hands on.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// Bytes to pass on as they are.
    Pass(Bytes),
    /// A whole container create: its head and its body (de-chunked).
    Create(Create),
    /// The stream is not HTTP Tether can follow: answer 400 with this and close.
    Bad(String),
}

/// A container create request, held whole.
#[derive(Debug, PartialEq, Eq)]
pub struct Create {
    /// The request line and headers as sent, without the blank line.
    head: Vec<u8>,
    pub body: Vec<u8>,
    /// The bytes it arrived as, to pass on unchanged when nothing is rewritten.
    pub raw: Vec<u8>,
}

impl Create {
    /// The request with `body` in place of its own: the same request line and headers but the
    /// length ones, then `Content-Length`.
    pub fn with_body(&self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + body.len() + 64);
        for (i, line) in self.head.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            if i > 0 {
                let name = line.split(|&b| b == b':').next().unwrap_or_default();
                if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"transfer-encoding") {
                    continue;
                }
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        out
    }
}

#[derive(Debug)]
enum State {
    /// Reading a request head.
    Head,
    /// Passing `n` more body bytes.
    Body(u64),
    /// Passing a chunked body.
    Chunked(Chunk),
    /// Holding a create's body.
    Collect {
        head: Vec<u8>,
        raw: Vec<u8>,
        body: Vec<u8>,
        framing: Framing,
    },
    /// After an upgrade: everything passes.
    Raw,
    /// After a bad request: nothing more is read.
    Failed,
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    Length(u64),
    Chunked(Chunk),
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In a chunk-size line (with extensions), `seen` bytes so far.
    Size {
        value: u64,
        seen: usize,
        digits: usize,
        ext: bool,
    },
    /// Expecting the LF of the size line.
    SizeLf { value: u64 },
    /// `n` data bytes to go.
    Data(u64),
    /// The CR LF after a chunk's data (`cr`: the CR was seen).
    DataEnd { cr: bool },
    /// Trailer lines after the last chunk; `len` bytes in the current line.
    Trailer { len: usize },
}

const CHUNK_START: Chunk = Chunk::Size {
    value: 0,
    seen: 0,
    digits: 0,
    ext: false,
};

/// Follows one connection's requests. Feed it what the client sends, in any pieces.
#[derive(Debug)]
pub struct Framer {
    state: State,
    /// A head not yet complete.
    pending: Vec<u8>,
    /// Upgrade after the current request's body.
    upgrade_after: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Framer {
            state: State::Head,
            pending: Vec::new(),
            upgrade_after: false,
        }
    }
}

/// Whether `path` (without its query) is a container create.
pub fn is_create(method: &str, path: &str) -> bool {
    if method != "POST" {
        return false;
    }
    let path = path.split('?').next().unwrap_or_default();
    let rest = match path.strip_prefix("/v") {
        Some(r) => match r.find('/') {
            Some(i) if r[..i].chars().all(|c| c.is_ascii_digit() || c == '.') && i > 0 => &r[i..],
            _ => return false,
        },
        None => path,
    };
    rest == "/containers/create"
}

/// Requests after which the daemon takes the connection over even without `Upgrade` headers.
fn hijacks(method: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    method == "POST"
        && (path.ends_with("/attach") && path.contains("/containers/")
            || path.ends_with("/start") && path.contains("/exec/")
            || path.ends_with("/session")
            || path.ends_with("/grpc"))
}

impl Framer {
    /// Takes the next bytes the client sent; returns what to do with them, in order.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut data = data;
        while !data.is_empty() {
            match &mut self.state {
                State::Failed => break,
                State::Raw => {
                    out.push(Piece::Pass(Bytes::copy_from_slice(data)));
                    break;
                }
                State::Head => {
                    let before = self.pending.len();
                    let take = data.len().min(MAX_HEAD + 1 - before.min(MAX_HEAD));
                    self.pending.extend_from_slice(&data[..take]);
                    match self.head() {
                        Ok(Some((len, piece))) => {
                            // The pending bytes held no whole head before, so the head ends
                            // inside what was just taken from `data`.
                            data = &data[len - before..];
                            self.pending.clear();
                            out.extend(piece);
                            if let State::Collect {
                                framing: Framing::Length(0),
                                ..
                            } = self.state
                            {
                                out.push(self.finish_create());
                            }
                        }
                        Ok(None) if self.pending.len() > MAX_HEAD => {
                            out.push(self.fail("the request head is over 64 KiB"));
                            break;
                        }
                        Ok(None) => data = &data[take..],
                        Err(why) => {
                            out.push(self.fail(&why));
                            break;
                        }
                    }
                }
                State::Body(n) => {
                    let k = (*n).min(data.len() as u64) as usize;
                    out.push(Piece::Pass(Bytes::copy_from_slice(&data[..k])));
                    *n -= k as u64;
                    data = &data[k..];
                    if *n == 0 {
                        self.end_of_request();
                    }
                }
                State::Chunked(c) => match step_chunked(c, data, None) {
                    Ok((used, done)) => {
                        out.push(Piece::Pass(Bytes::copy_from_slice(&data[..used])));
                        data = &data[used..];
                        if done {
                            self.end_of_request();
                        }
                    }
                    Err(why) => {
                        out.push(self.fail(why));
                        break;
                    }
                },
                State::Collect { raw, body, framing, .. } => {
                    let step = match framing {
                        Framing::Length(n) => {
                            let k = (*n).min(data.len() as u64) as usize;
                            body.extend_from_slice(&data[..k]);
                            *n -= k as u64;
                            Ok((k, *n == 0))
                        }
                        Framing::Chunked(c) => step_chunked(c, data, Some(body)),
                    };
                    let (used, done) = match step {
                        Ok(x) => x,
                        Err(why) => {
                            out.push(self.fail(why));
                            break;
                        }
                    };
                    raw.extend_from_slice(&data[..used]);
                    if body.len() > MAX_CREATE {
                        out.push(self.fail("the container create request is over 16 MiB"));
                        break;
                    }
                    data = &data[used..];
                    if done {
                        out.push(self.finish_create());
                    }
                }
            }
        }
        out
    }

    /// Parses the pending head: its length and what to pass on, or `None` for more bytes.
    fn head(&mut self) -> Result<Option<(usize, Option<Piece>)>, String> {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        let len = match req.parse(&self.pending) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(format!("the request is not HTTP/1.1 Tether can read ({e})")),
        };
        let method = req.method.unwrap_or_default();
        let path = req.path.unwrap_or_default();
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut upgrade = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let v = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or("a Content-Length that is not a number")?;
                if length.is_some_and(|l| l != v) {
                    return Err("two different Content-Length headers".into());
                }
                length = Some(v);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                if v.split(',').map(str::trim).any(|t| t == "chunked") {
                    chunked = true;
                } else {
                    return Err(format!("a Transfer-Encoding Tether does not follow ({v})"));
                }
            } else if h.name.eq_ignore_ascii_case("upgrade")
                || h.name.eq_ignore_ascii_case("connection")
                    && String::from_utf8_lossy(h.value)
                        .to_ascii_lowercase()
                        .contains("upgrade")
            {
                upgrade = true;
            }
        }
        if chunked && length.is_some() {
            return Err("both Content-Length and chunked encoding".into());
        }
        let framing = if chunked {
            Framing::Chunked(CHUNK_START)
        } else {
            Framing::Length(length.unwrap_or(0))
        };
        self.upgrade_after = upgrade || hijacks(method, path);
        let head = self.pending[..len].to_vec();
        if is_create(method, path) && !self.upgrade_after {
            let mut bare = head.clone();
            bare.truncate(bare.len().saturating_sub(2));
            self.state = State::Collect {
                head: bare,
                raw: head,
                body: Vec::new(),
                framing,
            };
            return Ok(Some((len, None)));
        }
        self.state = match framing {
            Framing::Length(0) => {
                self.end_of_request();
                std::mem::replace(&mut self.state, State::Head)
            }
            Framing::Length(n) => State::Body(n),
            Framing::Chunked(c) => State::Chunked(c),
        };
        Ok(Some((len, Some(Piece::Pass(Bytes::from(head))))))
    }

    fn finish_create(&mut self) -> Piece {
        let piece = match std::mem::replace(&mut self.state, State::Head) {
            State::Collect { head, raw, body, .. } => Piece::Create(Create { head, body, raw }),
            other => {
                self.state = other;
                return Piece::Pass(Bytes::new());
            }
        };
        self.end_of_request();
        piece
    }

    fn fail(&mut self, why: &str) -> Piece {
        self.state = State::Failed;
        Piece::Bad(why.to_string())
    }

    fn end_of_request(&mut self) {
        self.state = if self.upgrade_after { State::Raw } else { State::Head };
        self.upgrade_after = false;
    }
}

/// Follows a chunked body through `data`, copying chunk data into `body` if given. Returns how
/// many bytes were used and whether the body ended.
fn step_chunked(c: &mut Chunk, data: &[u8], mut body: Option<&mut Vec<u8>>) -> Result<(usize, bool), &'static str> {
    let mut i = 0;
    while i < data.len() {
        if let Chunk::Data(n) = c {
            let k = (*n).min((data.len() - i) as u64) as usize;
            if let Some(b) = body.as_deref_mut() {
                b.extend_from_slice(&data[i..i + k]);
            }
            *n -= k as u64;
            i += k;
            if *n == 0 {
                *c = Chunk::DataEnd { cr: false };
            }
            continue;
        }
        let b = data[i];
        i += 1;
        match c {
            Chunk::Size {
                value,
                seen,
                digits,
                ext,
            } => {
                *seen += 1;
                if *seen > 1024 {
                    return Err("a chunk-size line over 1 KiB");
                }
                match b {
                    b'\r' => *c = Chunk::SizeLf { value: *value },
                    b'\n' if *digits > 0 => {
                        *c = if *value == 0 {
                            Chunk::Trailer { len: 0 }
                        } else {
                            Chunk::Data(*value)
                        };
                    }
                    b';' | b' ' | b'\t' if *digits > 0 => *ext = true,
                    _ if *ext => {}
                    _ => {
                        let d = (b as char).to_digit(16).ok_or("a chunk size that is not hex")?;
                        *value = value
                            .checked_mul(16)
                            .and_then(|v| v.checked_add(u64::from(d)))
                            .filter(|v| *v < 1 << 48)
                            .ok_or("a chunk size too large")?;
                        *digits += 1;
                    }
                }
            }
            Chunk::SizeLf { value } => {
                if b != b'\n' {
                    return Err("a chunk-size line not ended by CRLF");
                }
                *c = if *value == 0 {
                    Chunk::Trailer { len: 0 }
                } else {
                    Chunk::Data(*value)
                };
            }
            Chunk::DataEnd { cr } => match (b, *cr) {
                (b'\r', false) => *cr = true,
                (b'\n', _) => *c = CHUNK_START,
                _ => return Err("chunk data not followed by CRLF"),
            },
            Chunk::Trailer { len } => match b {
                b'\r' => {}
                b'\n' if *len == 0 => {
                    *c = CHUNK_START;
                    return Ok((i, true));
                }
                b'\n' => *len = 0,
                _ => {
                    *len += 1;
                    if *len > MAX_HEAD {
                        return Err("a chunked trailer over 64 KiB");
                    }
                }
            },
            Chunk::Data(_) => {}
        }
    }
    Ok((i, false))
}

/// The bind sources a create body names: `Binds` paths and bind `Mounts`' `Source`s.
pub fn bind_sources(body: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(hc) = body.get("HostConfig") else { return out };
    if let Some(binds) = hc.get("Binds").and_then(|b| b.as_array()) {
        for b in binds.iter().filter_map(|b| b.as_str()) {
            if let Some(src) = bind_source(b) {
                out.push(src.to_string());
            }
        }
    }
    if let Some(mounts) = hc.get("Mounts").and_then(|m| m.as_array()) {
        for m in mounts {
            if m.get("Type").and_then(|t| t.as_str()) == Some("bind")
                && let Some(src) = m.get("Source").and_then(|s| s.as_str())
            {
                out.push(src.to_string());
            }
        }
    }
    out
}

/// The source of a `Binds` entry if it is a path (a volume name is not).
pub fn bind_source(bind: &str) -> Option<&str> {
    let b = bind.as_bytes();
    // A Windows path with a drive: its first colon is the drive's.
    let end = if b.len() > 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/') {
        2 + bind[2..].find(':')?
    } else {
        bind.find(':')?
    };
    let src = &bind[..end];
    (src.starts_with('/') || end > 2 && b[1] == b':').then_some(src)
}

/// Replaces bind sources in a create body by `map` (source as sent → path on the VM).
pub fn rewrite_binds(body: &mut serde_json::Value, map: &std::collections::HashMap<String, String>) {
    let Some(hc) = body.get_mut("HostConfig") else { return };
    if let Some(binds) = hc.get_mut("Binds").and_then(|b| b.as_array_mut()) {
        for b in binds.iter_mut() {
            let Some(s) = b.as_str() else { continue };
            let Some(src) = bind_source(s) else { continue };
            if let Some(to) = map.get(src) {
                let rest = &s[src.len()..];
                *b = serde_json::Value::String(format!("{to}{rest}"));
            }
        }
    }
    if let Some(mounts) = hc.get_mut("Mounts").and_then(|m| m.as_array_mut()) {
        for m in mounts.iter_mut() {
            if m.get("Type").and_then(|t| t.as_str()) != Some("bind") {
                continue;
            }
            let to = m
                .get("Source")
                .and_then(|s| s.as_str())
                .and_then(|s| map.get(s))
                .cloned();
            if let (Some(to), Some(obj)) = (to, m.as_object_mut()) {
                obj.insert("Source".into(), serde_json::Value::String(to));
            }
        }
    }
}

/// Why a create is answered on the laptop instead of going to the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// Docker's wording first, then Tether's note and the fix.
    pub message: String,
}

/// Where each bind source is on the VM: `None` leaves it as it is (a VM path).
pub type Resolved = Result<Vec<Option<String>>, Refusal>;

/// Maps a create's bind sources to the VM, bringing the folders up to date first.
pub trait Binds: Send + Sync {
    fn resolve(&self, sources: Vec<String>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Resolved> + Send>>;
}

/// What a create becomes: the bytes to send on, or an answer for the client.
pub async fn create(binds: &dyn Binds, c: Create) -> Result<Vec<u8>, Refusal> {
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&c.body) else {
        // Not JSON: the daemon says what is wrong with it.
        return Ok(c.raw);
    };
    let sources = bind_sources(&body);
    if sources.is_empty() {
        return Ok(c.raw);
    }
    let resolved = binds.resolve(sources.clone()).await?;
    let map: std::collections::HashMap<String, String> = sources
        .into_iter()
        .zip(resolved)
        .filter_map(|(s, r)| r.map(|r| (s, r)))
        .collect();
    if map.is_empty() {
        return Ok(c.raw);
    }
    rewrite_binds(&mut body, &map);
    let body = serde_json::to_vec(&body).unwrap_or(c.body.clone());
    Ok(c.with_body(&body))
}

/// An HTTP answer in Docker's error format (`{"message": …}`), closing the connection.
pub fn answer(status: u16, message: &str) -> Vec<u8> {
    let body = serde_json::json!({ "message": message }).to_string();
    let reason = match status {
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
#[path = "tests/dockerapi.rs"]
mod tests;
