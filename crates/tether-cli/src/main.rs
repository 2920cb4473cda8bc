//! `tether`: the command-line client of the Tether engine. Every subcommand is a thin adapter
//! that turns arguments into one control-API request and prints the answer.

mod client;
mod keys;
mod output;

use serde::de::DeserializeOwned;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use tether_core::api::{
    Check, ConnectReport, ConnectionSettings, ErrorDetails, Event, ForwardState, ForwardStatus, HostKeyScan,
    HostKeyVerdict, ReverseStatus, VmStatus,
};
use tether_core::state::State;
use zeroize::Zeroizing;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use tether_core::config::{Arch, PortMap, ReverseMap, Store};
use tether_core::control::{ClientError, Request};
use tether_core::endpoint;
use tether_core::paths::Paths;

use crate::client::Engine;

#[derive(Parser)]
#[command(
    name = "tether",
    version,
    about = "Docker on your remote VMs, as if it were local",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Add, list or remove VM profiles.
    #[command(subcommand)]
    Vm(VmCmd),
    /// SSH keys in the OS keychain: generate, import, show, install on a VM, rotate.
    #[command(subcommand)]
    Key(keys::KeyCmd),
    /// Connect a VM (default: the active one) and create its local Docker socket.
    Connect {
        /// The VM (default: the active one)
        name: Option<String>,
        /// Accept and record an unknown host key without asking (for scripts).
        #[arg(long)]
        accept_new: bool,
    },
    /// Add, remove or list port tunnels (LOCAL[:REMOTE]); they are saved and restored on connect.
    Tunnel(TunnelArgs),
    /// Make NAME the active VM: the default for `connect` and `env`.
    Use { name: String },
    /// Disconnect a VM (default: the active one) and remove its socket.
    Disconnect {
        #[arg(conflicts_with = "all")]
        /// The VM (default: the active one)
        name: Option<String>,
        /// Disconnect every VM.
        #[arg(long)]
        all: bool,
    },
    /// Show every VM: state, round-trip time, tunnels, last error.
    Status {
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
        /// Keep running and print every engine event as it happens.
        #[arg(long)]
        watch: bool,
    },
    /// A VM's health: SSH round trip, Docker Engine, load, memory and disks.
    Health {
        /// The VM (default: the active one)
        name: Option<String>,
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Reach the VM's Kubernetes API server (k3s, kind, kubeadm) from this laptop: tunnel it
    /// and add the context tether-NAME to your kubeconfig ($KUBECONFIG, else ~/.kube/config).
    /// Only Tether's own entries are touched; no credential is written (kubectl asks Tether,
    /// which reads it from the VM). Then: kubectl --context tether-NAME get nodes
    Kube {
        /// The VM (default: the active one)
        name: Option<String>,
        /// The VM's kubeconfig (default: ~/.kube/config, then /etc/rancher/k3s/k3s.yaml)
        #[arg(long, value_name = "PATH")]
        config: Option<String>,
        /// The laptop's port (default: the API server's own if free)
        #[arg(long)]
        local: Option<u16>,
        /// Remove the tunnel and the tether-NAME entries
        #[arg(long, conflicts_with_all = ["config", "local"])]
        off: bool,
    },
    /// kubectl's credential plugin for a tether-NAME context (run by kubectl, not by hand).
    #[command(hide = true)]
    KubeCredential { name: String },
    /// The engine's recent log lines (INFO and above), all or about one VM.
    Logs {
        /// Only the lines about this VM
        name: Option<String>,
        /// How many lines (the engine keeps the last 2000)
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
    },
    /// Check everything Tether depends on, here and on each VM, with the fix for each failure.
    Doctor {
        /// Only this VM (default: every VM)
        name: Option<String>,
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
        /// Also write a report bundle (tar.gz: versions, checks, status and health, config, the
        /// engine log's last lines; no keys or passwords) for a bug report.
        #[arg(long, value_name = "FILE")]
        report: Option<std::path::PathBuf>,
    },
    /// A VM's containers, with the laptop port that reaches each published port.
    Containers {
        /// The VM (default: the active one)
        name: Option<String>,
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
        /// A Compose project to start, stop or restart whole (with --start, --stop or --restart)
        #[arg(long, value_name = "PROJECT", requires = "project_action")]
        project: Option<String>,
        #[command(flatten)]
        project_action: ProjectActionArgs,
    },
    /// Print `export DOCKER_HOST=…` for a VM, for `eval "$(tether env)"`.
    Env {
        /// The VM (default: the active one)
        name: Option<String>,
    },
    /// Run the engine in the foreground (headless machines, services, tests). If an engine
    /// already runs for this Tether home (the app, or another daemon), say which and exit 0.
    Daemon,
    /// The engine: which process runs it, or stop it.
    #[command(subcommand)]
    Engine(EngineCmd),
}

#[derive(Subcommand)]
enum EngineCmd {
    /// Which engine runs for this Tether home: pid, app or daemon, since when.
    Status {
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Stop the engine cleanly: every VM disconnected, every socket removed. Stops the app too
    /// when the app runs it.
    Stop,
}

#[derive(Subcommand)]
enum VmCmd {
    /// Add a VM profile.
    Add(VmAdd),
    /// List VM profiles.
    List {
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
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
struct VmAdd {
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

/// What to do with a whole Compose project: exactly one.
#[derive(Args)]
#[group(id = "project_action", multiple = false, requires = "project")]
struct ProjectActionArgs {
    /// Start the project's containers, each after the services it depends on
    #[arg(long)]
    start: bool,
    /// Stop them, each before the services it depends on
    #[arg(long)]
    stop: bool,
    /// Restart them, in start order
    #[arg(long)]
    restart: bool,
}

#[derive(Args)]
struct TunnelArgs {
    /// The VM (default: the active one)
    name: Option<String>,
    /// LOCAL[:REMOTE], e.g. 3000 or 5433:5432. Repeatable.
    #[arg(short = 'p', long = "port", value_name = "LOCAL[:REMOTE]")]
    ports: Vec<String>,
    /// Remove the tunnel on this local port. Repeatable.
    #[arg(long = "rm", value_name = "PORT")]
    rm: Vec<u16>,
    /// The VM's port REMOTE (on its 127.0.0.1) comes to this laptop's port LOCAL (default: the
    /// same), e.g. 5432 or 15432:5432. A container on the VM reaches it with `--network host` at
    /// 127.0.0.1:REMOTE. With BIND `docker` (docker:5432) the VM listens on its Docker bridge's
    /// gateway instead, which containers on the default bridge network reach (172.17.0.1 as a
    /// rule); that needs `GatewayPorts clientspecified` in the VM's sshd_config. BIND may also be
    /// one address of the VM, never all of them. Repeatable.
    #[arg(long = "reverse", short = 'R', value_name = "[BIND:]REMOTE[:LOCAL]")]
    reverse: Vec<String>,
    /// Remove the reverse tunnel on the VM's port PORT. Repeatable.
    #[arg(long = "rm-reverse", value_name = "PORT")]
    rm_reverse: Vec<u16>,
    /// List the tunnels.
    #[arg(long)]
    list: bool,
    /// Forward this VM's published container ports automatically (on|off).
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    auto: Option<bool>,
    /// The default of --auto for VMs that do not set it (on|off).
    #[arg(long, value_name = "on|off", value_parser = on_off, conflicts_with = "auto")]
    auto_default: Option<bool>,
    /// Let automatic forwards use laptop ports below 1024 (on), or move them up by 10000 (off).
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    privileged_ports: Option<bool>,
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(format!("'{s}': say on or off")),
    }
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors may quote a VM or an engine, so they are cleaned like every other answer.
            eprintln!("error: {}", output::clean(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// `tether status | head -1`: once the reader is gone, end quietly with the status a shell gives
/// a program stopped by SIGPIPE (141), as other command-line tools do, instead of a panic about a
/// broken pipe. (Rust ignores SIGPIPE, so `println!` fails; restoring the signal would need
/// unsafe code and would also reach the engine's own sockets.)
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

async fn run(cli: Cli) -> Result<()> {
    let paths = Paths::from_env()?;
    match cli.cmd {
        Cmd::Daemon => client::daemon(paths).await,
        Cmd::Engine(EngineCmd::Status { json }) => client::engine_status(&paths, json).await,
        Cmd::Engine(EngineCmd::Stop) => client::engine_stop(&paths).await,
        Cmd::Vm(VmCmd::Add(a)) => vm_add(&paths, a).await,
        Cmd::Key(k) => keys::run(&paths, k).await,
        Cmd::Vm(VmCmd::Check { name, json }) => {
            let mut e = Engine::ensure(&paths).await?;
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
        Cmd::Vm(VmCmd::HostKey {
            name,
            replace: Some(fp),
            json,
        }) => {
            let mut e = Engine::ensure(&paths).await?;
            let v = e
                .call(&Request::ReplaceHostKey {
                    name: name.clone(),
                    fingerprint: fp.clone(),
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "'{name}' is now trusted with {fp}; the old key was forgotten. Connect with `tether connect {name}`"
                );
            }
            Ok(())
        }
        Cmd::Vm(VmCmd::HostKey {
            name,
            replace: None,
            json,
        }) => {
            let mut e = Engine::ensure(&paths).await?;
            let scan: HostKeyScan = e.ask(&Request::ScanHostKey { name: name.clone() }).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&scan)?);
                return Ok(());
            }
            let (key_type, fp) = (&scan.key_type, &scan.fingerprint);
            let detail = scan.detail.as_deref().unwrap_or("known_hosts");
            let note = scan.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
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
        Cmd::Vm(VmCmd::List { json }) => {
            let cfg = Store::new(paths.config_file()).load()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&cfg)?);
            } else {
                output::vm_list(&cfg);
            }
            Ok(())
        }
        Cmd::Vm(VmCmd::Rm { name }) => {
            let mut e = Engine::ensure(&paths).await?;
            e.call(&Request::VmRemove { name: name.clone() }).await?;
            println!("removed VM '{name}'");
            Ok(())
        }
        Cmd::Connect { name, accept_new } => connect(&paths, name, accept_new).await,
        Cmd::Tunnel(t) => tunnel(&paths, t).await,
        Cmd::Use { name } => {
            let mut e = Engine::ensure(&paths).await?;
            e.call(&Request::Use { name: name.clone() }).await?;
            println!("'{name}' is now the active VM");
            println!(
                "{}",
                output::export_docker_host(&endpoint::docker_host(&paths.docker_socket(&name)))
            );
            Ok(())
        }
        Cmd::Disconnect { name, all } => {
            let Some(mut e) = Engine::running(&paths).await? else {
                println!("no Tether engine is running, so nothing is connected");
                return Ok(());
            };
            let v = e.call(&Request::Disconnect { name, all }).await?;
            let names: Vec<String> = serde_json::from_value(v)?;
            if names.is_empty() {
                println!("nothing was connected");
            }
            for n in names {
                println!("disconnected '{n}'; removed {}", paths.docker_socket(&n).display());
            }
            Ok(())
        }
        Cmd::Health { name, json } => show(&paths, &Request::Health { name }, json, output::health).await,
        Cmd::Doctor { name, json, report } => doctor(&paths, name, json, report).await,
        Cmd::Kube { name, off: true, .. } => {
            let mut e = Engine::ensure(&paths).await?;
            e.call(&Request::KubeDisable { name: name.clone() }).await?;
            println!("Kubernetes tunnel and kubeconfig entries removed");
            Ok(())
        }
        Cmd::Kube {
            name, config, local, ..
        } => kube(&paths, name, config, local).await,
        Cmd::KubeCredential { name } => {
            // kubectl reads stdout as JSON and shows stderr: no engine is started for it.
            let Some(mut e) = Engine::running(&paths).await? else {
                anyhow::bail!("Tether is not running, so '{name}' is not connected: run `tether connect {name}`");
            };
            let cred = e.call(&Request::KubeCredential { name }).await?;
            println!("{cred}");
            Ok(())
        }
        Cmd::Logs { name, lines } => {
            let mut e = Engine::ensure(&paths).await?;
            let list: Vec<tether_core::logring::LogLine> = e.ask(&Request::Logs { name, lines }).await?;
            for l in &list {
                println!("{}", output::clean(&tether_core::doctor::line_text(l)));
            }
            Ok(())
        }
        Cmd::Containers {
            name,
            json,
            project: Some(project),
            project_action: a,
        } => {
            use tether_core::containers::Action;
            let action = if a.start {
                Action::Start
            } else if a.stop {
                Action::Stop
            } else {
                Action::Restart
            };
            let mut e = Engine::ensure(&paths).await?;
            let done: Vec<String> = e
                .ask(&Request::ProjectAction {
                    name,
                    project: project.clone(),
                    action,
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                let verb = match action {
                    Action::Start => "started",
                    Action::Stop => "stopped",
                    Action::Restart => "restarted",
                };
                println!(
                    "{verb} project {}: {}",
                    output::clean(&project),
                    output::clean(&done.join(", "))
                );
            }
            Ok(())
        }
        Cmd::Containers { name, json, .. } => {
            show(&paths, &Request::Containers { name }, json, output::containers).await
        }
        Cmd::Status { json, watch: true } => watch(&paths, json).await,
        Cmd::Status { json, watch: false } => status(&paths, json).await,
        Cmd::Env { name } => {
            let cfg = Store::new(paths.config_file()).load()?;
            let name = cfg.resolve(name.as_deref())?;
            println!(
                "{}",
                output::export_docker_host(&endpoint::docker_host(&paths.docker_socket(&name)))
            );
            Ok(())
        }
    }
}

/// One request whose answer is printed as JSON or through `render`.
async fn doctor(paths: &Paths, name: Option<String>, json: bool, report: Option<std::path::PathBuf>) -> Result<()> {
    let facts = tether_core::doctor::ClientFacts {
        path: std::env::var("PATH").ok(),
        docker_host: std::env::var("DOCKER_HOST").ok(),
    };
    let mut e = Engine::ensure(paths).await?;
    let found: tether_core::doctor::Doctor = e
        .ask(&Request::Doctor {
            name,
            facts: facts.clone(),
        })
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        println!("This laptop");
        output::checks(&found.local);
        for vm in &found.vms {
            println!("\nVM '{}'", output::clean(&vm.name));
            output::checks(&vm.checks);
        }
    }
    if let Some(file) = report {
        let file = std::path::absolute(&file)?;
        let names: Vec<String> = e
            .ask(&Request::DoctorReport {
                file: file.clone(),
                facts,
            })
            .await?;
        eprintln!("report written to {} ({} files)", file.display(), names.len());
    }
    if !found.ok() {
        anyhow::bail!("some checks failed; each says how to fix it");
    }
    Ok(())
}

async fn show<T: DeserializeOwned>(paths: &Paths, req: &Request, json: bool, render: fn(&T)) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&e.call(req).await?)?);
    } else {
        render(&e.ask(req).await?);
    }
    Ok(())
}

async fn vm_add(paths: &Paths, a: VmAdd) -> Result<()> {
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
    // What a certificate said (who signed it, or why it vouched for nothing), if there was one.
    let note = scan.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
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

async fn kube(paths: &Paths, name: Option<String>, config: Option<String>, local: Option<u16>) -> Result<()> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let kubeconfig = std::path::absolute(tether_core::kube::local_path(
        std::env::var("KUBECONFIG").ok().as_deref(),
        &home,
    ))?;
    let me = std::env::current_exe().context("finding this program for kubectl to run")?;
    let mut e = Engine::ensure(paths).await?;
    let view: tether_core::api::KubeView = e
        .ask(&Request::KubeEnable {
            name: name.clone(),
            setup: tether_core::k8s::KubeSetup {
                config,
                local,
                kubeconfig,
                exec: vec![
                    me.display().to_string(),
                    "kube-credential".into(),
                    name.unwrap_or_default(),
                ],
            },
        })
        .await?;
    println!(
        "Kubernetes API of '{}' on 127.0.0.1:{} (the VM's port {}, certificate checked for {}), from {} on the VM
         context {} added to {}
  kubectl --context {} get nodes",
        view.vm, view.local, view.remote, view.server_name, view.config, view.context, view.kubeconfig, view.context
    );
    Ok(())
}

/// Asks yes/no on the terminal; without a terminal the answer is no.
fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("{question} (yes/no) ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

async fn connect(paths: &Paths, name: Option<String>, accept_new: bool) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    let mut fingerprint = None;
    let mut passphrase = std::env::var("TETHER_KEY_PASSPHRASE").ok().map(Zeroizing::new);
    let report = loop {
        let req = Request::Connect {
            name: name.clone(),
            accept_new,
            fingerprint: fingerprint.clone(),
            passphrase: passphrase.clone(),
        };
        match e.call(&req).await {
            Ok(v) => break v,
            // Behind jump hosts each hop's unknown key is asked about in turn; the same key asked
            // twice means the confirmation did not take, and is not asked again.
            Err(ClientError::Remote(err)) if err.code == "host_key_unknown" => {
                let fp = match err.details.as_deref() {
                    Some(ErrorDetails::HostKey { fingerprint: fp, .. }) if fingerprint.as_ref() != Some(fp) => {
                        Some(fp.clone())
                    }
                    _ => None,
                };
                match fp {
                    Some(fp)
                        if confirm(&format!(
                            "{}\nAccept this key and connect?",
                            first_lines(&err.message, 2)
                        ))? =>
                    {
                        fingerprint = Some(fp);
                    }
                    _ => return Err(ClientError::Remote(err).into()),
                }
            }
            Err(ClientError::Remote(err))
                if err.code == "passphrase_required" && passphrase.is_none() && std::io::stdin().is_terminal() =>
            {
                passphrase = Some(Zeroizing::new(
                    rpassword::prompt_password("Key passphrase: ").context("reading the passphrase")?,
                ));
            }
            Err(other) => return Err(other.into()),
        }
    };
    let report: ConnectReport = serde_json::from_value(report)?;
    output::connected(&report.status);
    if let Some(engine) = report.status.engine.as_ref().filter(|e| !e.ok) {
        anyhow::bail!(
            "{}\nThe SSH session stays up; the socket will work as soon as the engine answers",
            output::clean(engine.error.as_deref().unwrap_or("the Docker engine did not answer"))
        );
    }
    Ok(())
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join("\n")
}

async fn tunnel(paths: &Paths, t: TunnelArgs) -> Result<()> {
    let maps: Vec<PortMap> = t.ports.iter().map(|p| p.parse()).collect::<Result<_, _>>()?;
    let reverse: Vec<ReverseMap> = t.reverse.iter().map(|p| p.parse()).collect::<Result<_, _>>()?;
    if maps.is_empty()
        && reverse.is_empty()
        && t.rm_reverse.is_empty()
        && t.rm.is_empty()
        && !t.list
        && t.auto.is_none()
        && t.auto_default.is_none()
        && t.privileged_ports.is_none()
    {
        anyhow::bail!(
            "nothing to do: give -p LOCAL[:REMOTE] to add a tunnel, --reverse REMOTE[:LOCAL] to let the VM reach this laptop, --rm PORT or --rm-reverse PORT to remove one, --list, or --auto on|off"
        );
    }
    let mut e = Engine::ensure(paths).await?;
    if let Some(on) = t.auto {
        let name = Store::new(paths.config_file()).load()?.resolve(t.name.as_deref())?;
        e.call(&Request::SetAutoForward {
            name: Some(name.clone()),
            on,
        })
        .await?;
        println!(
            "automatic forwarding of published container ports is {} for '{name}'",
            if on { "on" } else { "off" }
        );
    }
    if let Some(on) = t.privileged_ports {
        e.call(&Request::SetPrivilegedPorts { on }).await?;
        println!(
            "automatic forwards {} ports below 1024",
            if on { "may use" } else { "move up by 10000 from" }
        );
    }
    if let Some(on) = t.auto_default {
        e.call(&Request::SetAutoForward { name: None, on }).await?;
        println!("automatic forwarding is {} by default", if on { "on" } else { "off" });
    }
    if !maps.is_empty() {
        e.call(&Request::TunnelAdd {
            name: t.name.clone(),
            maps: maps.clone(),
        })
        .await?;
        for m in &maps {
            println!("tunnel 127.0.0.1:{} → VM port {} added", m.local, m.remote);
        }
    }
    if !t.rm.is_empty() {
        e.call(&Request::TunnelRemove {
            name: t.name.clone(),
            ports: t.rm.clone(),
        })
        .await?;
        for p in &t.rm {
            println!("tunnel on local port {p} removed");
        }
    }
    if !reverse.is_empty() {
        e.call(&Request::ReverseAdd {
            name: t.name.clone(),
            maps: reverse.clone(),
        })
        .await?;
        let listening: Vec<VmStatus> = e.ask(&Request::Status).await?;
        for m in &reverse {
            let address = listening
                .iter()
                .filter(|v| t.name.as_deref().map_or(v.active, |n| v.name == n))
                .flat_map(|v| v.reverse.iter())
                .find(|r| r.remote == m.remote)
                .and_then(|r| r.address.clone());
            match (m.bind, address) {
                (Some(_), Some(addr)) => println!(
                    "reverse tunnel VM {addr}:{} → this laptop's port {} added; a container on the VM's bridge network \
                     reaches it at {addr}:{}",
                    m.remote, m.local, m.remote
                ),
                _ => println!(
                    "reverse tunnel VM 127.0.0.1:{} → this laptop's port {} added; a container reaches it with --network host",
                    m.remote, m.local
                ),
            }
        }
    }
    if !t.rm_reverse.is_empty() {
        e.call(&Request::ReverseRemove {
            name: t.name.clone(),
            ports: t.rm_reverse.clone(),
        })
        .await?;
        for p in &t.rm_reverse {
            println!("reverse tunnel on the VM's port {p} removed");
        }
    }
    if t.list {
        let all: Vec<VmStatus> = e.ask(&Request::Status).await?;
        let cfg = Store::new(paths.config_file()).load()?;
        let name = cfg.resolve(t.name.as_deref())?;
        output::tunnels(all.iter().find(|v| v.name == name));
    }
    Ok(())
}

async fn status(paths: &Paths, json: bool) -> Result<()> {
    let list: Vec<VmStatus> = match Engine::running(paths).await? {
        Some(mut e) => e.ask(&Request::Status).await?,
        None => {
            // No engine: every VM is disconnected; say so rather than fail.
            let cfg = Store::new(paths.config_file()).load()?;
            cfg.vms
                .iter()
                .map(|(n, p)| {
                    let endpoint = paths.docker_socket(n);
                    let socket = endpoint.display().to_string();
                    VmStatus {
                        name: n.clone(),
                        host: p.host.clone(),
                        via: Vec::new(),
                        kube: p.kube.as_ref().map(|k| tether_core::api::KubeView::of(n, k)),
                        arch: p.arch,
                        state: State::Disconnected,
                        since_ms: 0,
                        rtt_ms: None,
                        docker_host: endpoint::docker_host(&endpoint),
                        socket,
                        forwards: p
                            .forwards
                            .iter()
                            .map(|f| ForwardStatus {
                                local: f.local,
                                remote: f.remote,
                                state: ForwardState::Idle,
                                error: None,
                                active: 0,
                                total: 0,
                                refused: 0,
                                auto: false,
                                container: None,
                            })
                            .collect(),
                        reverse: p
                            .reverse
                            .iter()
                            .map(|r| ReverseStatus {
                                remote: r.remote,
                                local: r.local,
                                state: ForwardState::Idle,
                                bind: r.bind.map(|b| b.to_string()),
                                address: None,
                                error: None,
                                active: 0,
                                total: 0,
                            })
                            .collect(),
                        last_error: Some("no Tether engine is running".into()),
                        error_code: Some("not_running".into()),
                        error_details: None,
                        engine: None,
                        active: cfg.active.as_deref() == Some(n.as_str()),
                        auto_connect: p.auto_connect,
                        unforwarded: Vec::new(),
                        arch_warning: None,
                        auto_forward: p.auto_forward.unwrap_or(cfg.settings.auto_forward),
                        docker_pool: None,
                    }
                })
                .collect()
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        output::status(&list);
    }
    Ok(())
}

/// Prints engine events as they arrive (the same broadcast the app subscribes to).
/// Subscribes first, then prints a snapshot, so nothing between the two is missed. The engine
/// ends a stream that fell behind; then a new snapshot replaces the events that were missed.
async fn watch(paths: &Paths, json: bool) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    loop {
        e.call(&Request::Subscribe).await?;
        let snapshot: Vec<VmStatus> = Engine::ensure(paths).await?.ask(&Request::Status).await?;
        if json {
            println!("{}", serde_json::json!({ "event": "snapshot", "vms": snapshot }));
        } else {
            output::status(&snapshot);
        }
        while let Some(ev) = e.next_event().await? {
            if json {
                println!("{ev}");
            } else {
                match serde_json::from_value::<Event>(ev.clone()) {
                    Ok(ev) => output::event(&ev),
                    // An event this CLI does not know (a newer engine): shown as it came.
                    Err(_) => println!("{}", output::clean(&ev.to_string())),
                }
            }
        }
        // Still there: this watcher fell behind. Gone: the engine stopped, and so does this.
        e = Engine::running(paths).await?.ok_or_else(|| {
            anyhow::anyhow!("the Tether engine stopped; start it again with `tether daemon` or the app")
        })?;
    }
}
