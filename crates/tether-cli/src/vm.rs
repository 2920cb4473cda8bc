//! `tether vm …`: VM profiles (add, change, list, remove), their checks, and their host keys: shown,
//! confirmed on first sight, replaced after a reinstall.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use tether_core::api::{Check, ConnectionSettings, HostKeyScan, HostKeyVerdict};
use tether_core::config::{Arch, Store};
use tether_core::control::{ClientError, Request};
use tether_core::paths::Paths;

use crate::client::Engine;
use crate::{confirm, output};

#[derive(Subcommand)]
pub enum VmCmd {
    /// Add a VM profile.
    Add(VmAdd),
    /// List VM profiles.
    List {
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Change how a VM is reached (only what is given changes); a connected VM reconnects.
    Set(VmSet),
    /// Remove a VM profile (disconnecting it first).
    Rm { name: String },
    /// Check a VM: SSH login, the Docker socket, docker group, socket forwarding, architecture.
    Check {
        name: String,
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Show the host key a VM presents and whether it is trusted; after a reinstall, replace the
    /// recorded key with the new one once its fingerprint is confirmed.
    HostKey {
        name: String,
        /// The new key's SHA256 fingerprint, as the VM's administrator read it with
        /// `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`: replaces the recorded key
        #[arg(long, value_name = "FINGERPRINT")]
        replace: Option<String>,
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct VmAdd {
    name: String,
    /// Host name, address, or a Host alias from ~/.ssh/config.
    #[arg(long)]
    host: String,
    #[arg(long)]
    port: Option<u16>,
    #[arg(long)]
    user: Option<String>,
    /// arm64 or x86_64.
    #[arg(long)]
    arch: Option<String>,
    /// Private key file (OpenSSH format); without it (and without --key) ssh-agent and
    /// ~/.ssh/id_* are tried.
    #[arg(long, conflicts_with = "key")]
    identity: Option<PathBuf>,
    /// A key in the OS keychain (see `tether key`).
    #[arg(long)]
    key: Option<String>,
    /// Docker socket path on the VM.
    #[arg(long, default_value = tether_core::config::DEFAULT_REMOTE_SOCKET)]
    remote_socket: String,
    /// Reach the VM through jump hosts: [user@]host[:port], several separated by commas, as
    /// OpenSSH's ProxyJump (which ~/.ssh/config may also give; "none" ignores that). Each hop's
    /// host key is checked as the VM's is.
    #[arg(long, short = 'J', value_name = "HOPS")]
    jump: Option<String>,
    /// Accept and record the VM's host key without asking (for scripts).
    #[arg(long)]
    accept_new: bool,
    /// Connect this VM whenever the engine starts.
    #[arg(long)]
    auto_connect: bool,
}

#[derive(Args)]
pub struct VmSet {
    name: String,
    /// Host name, address, or a Host alias from ~/.ssh/config.
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    port: Option<u16>,
    #[arg(long)]
    user: Option<String>,
    /// arm64 or x86_64.
    #[arg(long)]
    arch: Option<String>,
    /// Private key file (OpenSSH format).
    #[arg(long, conflicts_with = "key")]
    identity: Option<PathBuf>,
    /// A key in the OS keychain (see `tether key`).
    #[arg(long)]
    key: Option<String>,
    /// Docker socket path on the VM.
    #[arg(long)]
    remote_socket: Option<String>,
    /// Jump hosts, [user@]host[:port] separated by commas; "" for none.
    #[arg(long, short = 'J', value_name = "HOPS")]
    jump: Option<String>,
}

pub async fn run(paths: &Paths, cmd: VmCmd) -> Result<()> {
    match cmd {
        VmCmd::Add(a) => add(paths, a).await,
        VmCmd::Set(s) => set(paths, s).await,
        VmCmd::List { json } => list(paths, json),
        VmCmd::Rm { name } => remove(paths, name).await,
        VmCmd::Check { name, json } => check(paths, name, json).await,
        VmCmd::HostKey {
            name,
            replace: Some(fp),
            json,
        } => replace_host_key(paths, name, fp, json).await,
        VmCmd::HostKey {
            name,
            replace: None,
            json,
        } => host_key(paths, name, json).await,
    }
}

async fn check(paths: &Paths, name: String, json: bool) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    let checks: Vec<Check> = e.ask(&Request::CheckVm { name: name.clone() }).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if !json {
        output::checks(&checks);
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} checks failed on '{name}'", checks.len());
    }
    Ok(())
}

async fn replace_host_key(paths: &Paths, name: String, fp: String, json: bool) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    let v = e
        .call(&Request::ReplaceHostKey {
            name: name.clone(),
            fingerprint: fp.clone(),
        })
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("'{name}' is now trusted with {fp}; the old key was forgotten. Connect with `tether connect {name}`");
    }
    Ok(())
}

async fn host_key(paths: &Paths, name: String, json: bool) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    let scan: HostKeyScan = e.ask(&Request::ScanHostKey { name: name.clone() }).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&scan)?);
        return Ok(());
    }
    let (key_type, fp) = (&scan.key_type, &scan.fingerprint);
    // The detail may quote the VM's certificate (its principals, its key id): its control
    // characters never reach the terminal.
    let detail = output::clean(scan.detail.as_deref().unwrap_or("known_hosts")).into_owned();
    let note = scan
        .detail
        .as_deref()
        .map(|d| format!(" ({})", output::clean(d)))
        .unwrap_or_default();
    match scan.status {
        HostKeyVerdict::Known => println!("'{name}' presents {key_type} {fp}: trusted{note}"),
        HostKeyVerdict::Unknown => println!(
            "'{name}' presents {key_type} {fp}: not trusted yet{note}; `tether connect {name}` asks to confirm it"
        ),
        HostKeyVerdict::Changed => anyhow::bail!(
            "'{name}' presents {key_type} {fp}, but {detail}. Someone may be intercepting the connection \
             (man-in-the-middle), or the VM was reinstalled. If its administrator confirms {fp}, run \
             `tether vm host-key {name} --replace {fp}`"
        ),
        HostKeyVerdict::OtherType => anyhow::bail!(
            "REFUSED: '{name}' presents {key_type} {fp}, but {detail}. This is not a first connection: \
             someone may be intercepting the connection (man-in-the-middle) with a key of another type, or \
             the VM was reinstalled. If its administrator confirms {fp}, run \
             `tether vm host-key {name} --replace {fp}`"
        ),
        HostKeyVerdict::Revoked => {
            anyhow::bail!("'{name}' presents {key_type} {fp}, which is marked @revoked in {detail}")
        }
    }
    Ok(())
}

fn list(paths: &Paths, json: bool) -> Result<()> {
    let cfg = Store::new(paths.config_file()).load()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&cfg)?);
    } else {
        output::vm_list(&cfg);
    }
    Ok(())
}

/// Changes what is given, keeping the rest of the profile as it is.
async fn set(paths: &Paths, s: VmSet) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    let cfg: tether_core::config::Config = e.ask(&Request::VmList).await?;
    let Some(p) = cfg.vms.get(&s.name) else {
        anyhow::bail!("no VM named '{}'; `tether vm list` shows the VMs", s.name);
    };
    let connection_given = s.host.is_some()
        || s.port.is_some()
        || s.user.is_some()
        || s.arch.is_some()
        || s.identity.is_some()
        || s.remote_socket.is_some()
        || s.jump.is_some();
    if !connection_given && s.key.is_none() {
        anyhow::bail!(
            "nothing to change: give --host, --user, --port, --key, --identity, --jump, --arch or --remote-socket"
        );
    }
    if connection_given {
        let connection = ConnectionSettings {
            host: s.host.unwrap_or_else(|| p.host.clone()),
            port: s.port.or(p.port),
            user: s.user.or_else(|| p.user.clone()),
            arch: match s.arch.as_deref() {
                Some(a) => Some(a.parse::<Arch>()?),
                None => p.arch,
            },
            identity: s.identity.map(|f| std::path::absolute(&f).unwrap_or(f)),
            remote_socket: Some(s.remote_socket.unwrap_or_else(|| p.remote_socket.clone())),
            jump: s.jump.or_else(|| p.jump.clone()),
        };
        e.call(&Request::VmSetConnection {
            name: s.name.clone(),
            connection,
        })
        .await?;
    }
    if let Some(key) = s.key {
        e.call(&Request::VmSetKey {
            name: s.name.clone(),
            key,
        })
        .await?;
    }
    println!("changed VM '{}'", s.name);
    Ok(())
}

async fn remove(paths: &Paths, name: String) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    e.call(&Request::VmRemove { name: name.clone() }).await?;
    println!("removed VM '{name}'");
    Ok(())
}

async fn add(paths: &Paths, a: VmAdd) -> Result<()> {
    let mut profile = ConnectionSettings {
        host: a.host,
        port: a.port,
        user: a.user,
        arch: a.arch.as_deref().map(str::parse::<Arch>).transpose()?,
        identity: a.identity.map(|p| std::path::absolute(&p).unwrap_or(p)),
        remote_socket: Some(a.remote_socket),
        jump: a.jump,
    }
    .into_profile();
    profile.key = a.key;
    profile.auto_connect = a.auto_connect;
    let mut e = Engine::ensure(paths).await?;
    e.call(&Request::VmAdd {
        name: a.name.clone(),
        profile,
    })
    .await?;
    println!("added VM '{}'", a.name);
    // Verify the host key now, while the user is here to confirm it.
    // Behind jump hosts each hop's key comes first, one scan each, until the VM's own.
    for _ in 0..=tether_core::target::MAX_HOPS {
        let scan: HostKeyScan = match e.call(&Request::ScanHostKey { name: a.name.clone() }).await {
            Ok(v) => serde_json::from_value(v)?,
            Err(ClientError::Remote(err)) => {
                eprintln!(
                    "note: could not check the host key now ({}); you will be asked on first connect",
                    err.message
                );
                return Ok(());
            }
            Err(other) => return Err(other.into()),
        };
        if !host_key_after_scan(&mut e, &a.name, &scan, a.accept_new).await? || !scan.jump {
            return Ok(());
        }
    }
    Ok(())
}

/// Says what the scan found and records an unknown key the user accepts; true when the key is
/// trusted now.
async fn host_key_after_scan(e: &mut Engine, name: &str, scan: &HostKeyScan, accept_new: bool) -> Result<bool> {
    let (key_type, fp) = (&scan.key_type, &scan.fingerprint);
    let detail = scan.detail.as_deref().unwrap_or("");
    // Whose key: the VM's, or a jump host's on the way to it.
    let whose = if scan.jump {
        format!("the jump host {} (on the way to '{name}')", scan.host)
    } else {
        format!("'{name}'")
    };
    // The VM's own lines read as they always have (scripts match them).
    let of = if scan.jump {
        format!(" of the jump host {}", scan.host)
    } else {
        String::new()
    };
    // What a certificate said (who signed it, or why it vouched for nothing), if there was one;
    // it quotes the VM's certificate, so its control characters are dropped.
    let note = scan
        .detail
        .as_deref()
        .map(|d| format!(" ({})", output::clean(d)))
        .unwrap_or_default();
    match scan.status {
        HostKeyVerdict::Known => {
            println!("host key{of} verified: {key_type} {fp}{note}");
            Ok(true)
        }
        HostKeyVerdict::Unknown => {
            if accept_new
                || confirm(&format!(
                    "The host key of {whose} is not known yet.\n  {key_type} key fingerprint is {fp}{note}\nAccept it?"
                ))?
            {
                e.call(&Request::TrustHostKey {
                    name: name.into(),
                    fingerprint: fp.clone(),
                })
                .await?;
                println!("host key{of} recorded: {key_type} {fp}");
                Ok(true)
            } else {
                println!("host key not accepted{note}; you will be asked again on connect");
                Ok(false)
            }
        }
        HostKeyVerdict::OtherType => anyhow::bail!(
            "REFUSED: {whose} presents {key_type} {fp}, but {detail}; a key of another type is not a first \
             connection. The VM profile was saved but will not connect until this is resolved \
             (`tether vm host-key {name}`)"
        ),
        HostKeyVerdict::Changed | HostKeyVerdict::Revoked => anyhow::bail!(
            "REFUSED: the host key of {whose} ({key_type} {fp}) does not match the recorded one ({detail}). \
             The VM profile was saved but will not connect until this is resolved"
        ),
    }
}
