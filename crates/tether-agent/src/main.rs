//! `tether-agent`: the VM's side of Tether's folder sync.
//!
//! The engine uploads it over the VM's SSH connection (checked by digest; nothing to install by
//! hand) and runs it on an `exec` channel, one per connection. It speaks [`tether_sync::proto`]
//! on stdin and stdout: it scans and watches the mirrors the engine opens, applies the engine's
//! changes on condition, and reports what changes on the VM (a container's writes) as it
//! happens. It holds no state of its own between runs; the engine does.
//!
//! One thread runs everything that touches the mirrors, so changes and reports are ordered;
//! stdin and the file-system watches only feed it.

#[cfg(target_os = "linux")]
mod acl;
mod agent;
#[cfg(target_os = "linux")]
mod pipe;

fn main() {
    std::process::exit(agent::run());
}
