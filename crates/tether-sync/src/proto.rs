//! The agent's protocol: frames of a little-endian `u32` length and a postcard body, over the
//! stdin and stdout of one SSH `exec` channel.
//!
//! The engine speaks first after the agent's [`FromAgent::Hello`]. Every change it sends is
//! answered by one [`FromAgent::Applied`], in order, so the engine knows what the VM holds
//! without asking. The agent reports its own side's changes as they happen
//! ([`FromAgent::Changed`], small files' content inline so they cost no extra round trip).

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::apply::Expect;
use crate::entry::Entry;
use crate::scan::Problem;

/// Bumped when a message changes; the engine refuses an agent of another version (it uploads
/// its own, by digest, so they only differ during an upgrade).
pub const VERSION: u32 = 1;

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 8 << 20;

/// File content travels in pieces of at most this size.
pub const CHUNK: usize = 1 << 20;

/// Files up to this size travel inside the message that reports them.
pub const INLINE: u64 = 256 * 1024;

/// A sync unit's number on one agent connection.
pub type Unit = u32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToAgent {
    /// Sync `root` (made if missing) with these ignore lines: scan it, report it, watch it.
    Open {
        unit: Unit,
        root: String,
        ignore: Vec<String>,
    },
    /// Stop watching a unit.
    Close {
        unit: Unit,
    },
    /// A file: its first (or only) piece. `more` says pieces follow as [`ToAgent::Piece`].
    File {
        unit: Unit,
        path: String,
        expect: Expect,
        exec: bool,
        mtime: i64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        more: bool,
    },
    /// The next piece of the file being sent.
    Piece {
        unit: Unit,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        more: bool,
    },
    Dir {
        unit: Unit,
        path: String,
        expect: Expect,
        mtime: i64,
    },
    Link {
        unit: Unit,
        path: String,
        expect: Expect,
        target: String,
        mtime: i64,
    },
    Remove {
        unit: Unit,
        path: String,
        expect: Expect,
    },
    /// Send this file's content (answered by [`FromAgent::Content`] pieces).
    Read {
        unit: Unit,
        path: String,
        id: u64,
    },
}

/// The outcome of one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done: the path is now this (`None`: removed).
    Done(Option<Entry>),
    /// The path changed meanwhile; a [`FromAgent::Changed`] for it follows.
    Refused,
    /// It could not be done (permissions, a full disk): the reason.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromAgent {
    Hello {
        version: u32,
        /// `uname -m` as the agent was built for it.
        arch: String,
        /// The VM user's home directory.
        home: String,
    },
    /// Part of a unit's scan; the last part has `done`.
    Scan {
        unit: Unit,
        entries: Vec<(String, Entry)>,
        problems: Vec<Problem>,
        done: bool,
    },
    /// A path changed on the VM (`None`: it is gone), with a small file's content.
    Changed {
        unit: Unit,
        path: String,
        entry: Option<Entry>,
        #[serde(with = "serde_bytes")]
        data: Option<Vec<u8>>,
    },
    /// The answer to one change, in the order the changes were sent.
    Applied { unit: Unit, path: String, outcome: Outcome },
    /// A piece of a file asked for by [`ToAgent::Read`]; `entry` on the last piece says what was
    /// read (`None` with no data: the file is gone or unreadable, `error` says why).
    Content {
        id: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        done: bool,
        entry: Option<Entry>,
        error: Option<String>,
    },
    /// Something the user should hear about (a unit that cannot be watched, say).
    Problem { unit: Unit, problem: Problem },
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("bad frame: {0}")]
    Decode(#[from] postcard::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Encodes one message as a frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = postcard::to_extend(msg, vec![0u8; 4])?;
    let len = body.len() - 4;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = body;
    body[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(body)
}

/// Splits frames out of a byte stream that arrives in arbitrary pieces.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole message, if one has arrived.
    pub fn frame<T: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<T>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = postcard::from_bytes(&self.buf[4..4 + len])?;
        self.buf.drain(..4 + len);
        Ok(Some(msg))
    }
}

/// Reads one frame from a blocking reader (`None` at a clean end of stream).
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> Result<Option<T>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some(postcard::from_bytes(&body)?))
}

/// Writes one frame to a blocking writer (not flushed).
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<ToAgent> {
        vec![
            ToAgent::Open {
                unit: 1,
                root: "/home/u/m".into(),
                ignore: vec!["*.log".into()],
            },
            ToAgent::File {
                unit: 1,
                path: "a/b.txt".into(),
                expect: Expect::Absent,
                exec: true,
                mtime: 1_700_000_000_123_456_789,
                data: b"hello".to_vec(),
                more: false,
            },
            ToAgent::Remove {
                unit: 1,
                path: "x".into(),
                expect: Expect::Absent,
            },
        ]
    }

    proptest! {
        /// However the stream is cut, the same messages come out, in order.
        #[test]
        fn frames_survive_any_split(cuts in proptest::collection::vec(0usize..200, 0..8)) {
            let msgs = sample();
            let mut bytes = Vec::new();
            for m in &msgs {
                bytes.extend(encode(m).map_err(|e| TestCaseError::fail(e.to_string()))?);
            }
            let mut d = Decoder::default();
            let mut out = Vec::new();
            let mut at = 0;
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort();
            cuts.push(bytes.len());
            for c in cuts {
                d.push(&bytes[at..c.max(at)]);
                at = c.max(at);
                while let Some(m) = d.frame::<ToAgent>().map_err(|e| TestCaseError::fail(e.to_string()))? {
                    out.push(m);
                }
            }
            prop_assert_eq!(out, msgs);
        }

        /// Garbage gives an error or waits for more; it never panics.
        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = Decoder::default();
            d.push(&bytes);
            let _ = d.frame::<ToAgent>();
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_reading() {
        let mut d = Decoder::default();
        d.push(&u32::MAX.to_le_bytes());
        assert!(matches!(d.frame::<ToAgent>(), Err(FrameError::TooLarge(_))));
    }
}
