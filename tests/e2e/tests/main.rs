//! The end-to-end tests, one binary: each file beside this one is a module of it, one subject
//! each (see ARCHITECTURE.md). One binary is compiled and linked once, where a binary per file
//! linked 26 times; nextest still runs every test in a process of its own, so the tests share
//! nothing but the lab (each makes its own VMs and engines; `free_port` claims ports across
//! processes).

// Test code fails loudly by design: an unwrap or a panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod app;
mod app_share;
mod autoforward;
mod bad_input;
mod checks;
mod compose;
mod contexts;
mod doctor;
mod engine;
mod faults;
mod files;
mod flow;
mod flowcontrol;
mod health;
mod hostcert;
mod jump;
mod keys;
mod kube;
mod package;
mod ping;
mod pool;
mod relay;
mod responsive;
mod reverse;
mod security;
mod share;
mod share_compose;
mod soak;
mod wake;
mod windows;
