//! Tether's engine: VM profiles, one multiplexed SSH connection per VM, the forwarded Docker
//! socket and port tunnels, reconnection, and the control API the CLI and the app speak.
//!
//! No GUI or CLI code lives here; `tether-cli` and the tray app are thin adapters over [`engine`].

pub mod advice;
pub mod api;
pub mod backoff;
pub mod checks;
pub mod clock;
pub mod config;
pub mod containers;
pub mod contexts;
pub mod control;
pub mod docker;
pub mod dockerapi;
pub mod doctor;
pub mod endpoint;
pub mod engine;
pub mod error;
pub mod flow;
pub mod forward;
pub mod hostkeys;
pub mod identity;
pub mod instance;
pub mod k8s;
pub mod keys;
pub mod keystore;
pub mod known_hosts;
pub mod kube;
pub mod logring;
pub mod monitor;
pub mod netwatch;
pub mod paths;
pub mod peer;
pub mod ping;
pub mod pool;
pub mod ports;
pub mod private;
pub mod profiles;
pub mod pump;
pub mod remote;
pub mod reverse;
pub mod session;
pub mod share;
pub mod ssh;
pub mod state;
pub mod target;
pub mod tasks;

/// An SSH server in the test process, for the fast tests of the SSH layer and the actors.
#[cfg(test)]
#[path = "tests/sshd.rs"]
pub(crate) mod sshd;
pub mod wake;
