//! Tether's folder sync, the parts both ends share: the engine on the laptop and `tether-agent`
//! on the VM.
//!
//! A share's mounted folder lives twice, on the laptop and in a mirror on the VM. Each side is a
//! *replica*: it scans its tree ([`scan`]), watches it for changes ([`watch`]), reports entries
//! ([`entry`]) and applies changes sent to it ([`apply`]), always on the condition that the file
//! is still what the other side last heard (so a change made in between is never overwritten).
//! The engine decides what goes where by a three-way merge against the last state both sides
//! agreed on ([`merge`]). The two talk in length-prefixed postcard frames ([`proto`]).
//!
//! No async runtime: the agent is a small static binary, and the engine calls these functions
//! on its blocking pool.

pub mod apply;
pub mod entry;
pub mod merge;
pub mod path;
pub mod proto;
pub mod rules;
pub mod scan;
pub mod watch;
