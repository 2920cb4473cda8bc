//! `tether`: the command-line client of the Tether engine. Every subcommand is a thin adapter
//! that turns arguments into one control-API request and prints the answer. This file holds the
//! command tree and its dispatch; each group of subcommands lives in a module of its own.

mod client;
mod containers;
mod doctor;
mod exit;
mod keys;
mod kube;
mod link;
mod output;
mod share;
mod status;
mod tunnel;
mod vm;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use serde::de::DeserializeOwned;
use tether_core::control::Request;
use tether_core::paths::Paths;

use crate::client::Engine;

#[derive(Parser)]
#[command(
    name = "tether",
    version,
    about = "Docker on your remote VMs, as if it were local",
    propagate_version = true,
    after_help = exit::HELP
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Add, list or remove VM profiles.
    #[command(subcommand)]
    Vm(vm::VmCmd),
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
    /// Laptop folders containers on a VM may bind-mount (`docker run -v $PWD:/app`): list,
    /// add, remove, and how their sync goes.
    #[command(subcommand)]
    Share(share::ShareCmd),
    /// Add, remove or list port tunnels (LOCAL[:REMOTE]); they are saved and restored on connect.
    Tunnel(tunnel::TunnelArgs),
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
    /// Now `tether engine logs` (`tether logs` reads like docker's container logs); kept for one
    /// release.
    #[command(hide = true)]
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
        project_action: containers::ProjectActionArgs,
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
    /// Print the completion script for a shell, e.g. `tether completion bash >
    /// ~/.local/share/bash-completion/completions/tether` (the packages install them).
    Completion {
        /// bash, zsh, fish, powershell or elvish
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), as the packages install it: `tether man | man -l -`.
    #[command(hide = true)]
    Man,
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
    /// The engine's recent log lines (INFO and above), all or about one VM.
    Logs {
        /// Only the lines about this VM
        name: Option<String>,
        /// How many lines (the engine keeps the last 2000)
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
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
            ExitCode::from(exit::code_of(&e))
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
    // Made from the command tree alone: no engine, no Tether home needed.
    match cli.cmd {
        Cmd::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "tether", &mut std::io::stdout());
            return Ok(());
        }
        Cmd::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            return Ok(());
        }
        _ => {}
    }
    let paths = Paths::from_env()?;
    match cli.cmd {
        Cmd::Completion { .. } | Cmd::Man => Ok(()),
        Cmd::Daemon => client::daemon(paths).await,
        Cmd::Engine(EngineCmd::Status { json }) => client::engine_status(&paths, json).await,
        Cmd::Engine(EngineCmd::Stop) => client::engine_stop(&paths).await,
        Cmd::Vm(cmd) => vm::run(&paths, cmd).await,
        Cmd::Key(k) => keys::run(&paths, k).await,
        Cmd::Connect { name, accept_new } => link::connect(&paths, name, accept_new).await,
        Cmd::Disconnect { name, all } => link::disconnect(&paths, name, all).await,
        Cmd::Use { name } => link::use_vm(&paths, name).await,
        Cmd::Env { name } => link::env(&paths, name),
        Cmd::Tunnel(t) => tunnel::tunnel(&paths, t).await,
        Cmd::Share(s) => share::run(&paths, s).await,
        Cmd::Status { json, watch: true } => status::watch(&paths, json).await,
        Cmd::Status { json, watch: false } => status::status(&paths, json).await,
        Cmd::Health { name, json } => show(&paths, &Request::Health { name }, json, output::health).await,
        Cmd::Logs { name, lines } => {
            eprintln!("note: `tether logs` is now `tether engine logs`; this spelling goes in a later release");
            status::logs(&paths, name, lines, false).await
        }
        Cmd::Engine(EngineCmd::Logs { name, lines, json }) => status::logs(&paths, name, lines, json).await,
        Cmd::Doctor { name, json, report } => doctor::doctor(&paths, name, json, report).await,
        Cmd::Kube { name, off: true, .. } => kube::disable(&paths, name).await,
        Cmd::Kube {
            name, config, local, ..
        } => kube::enable(&paths, name, config, local).await,
        Cmd::KubeCredential { name } => kube::credential(&paths, name).await,
        Cmd::Containers {
            name,
            json,
            project: Some(project),
            project_action,
        } => containers::project(&paths, name, project, project_action, json).await,
        Cmd::Containers { name, json, .. } => containers::list(&paths, name, json).await,
    }
}

/// One request whose answer is printed as JSON or through `render`.
async fn show<T: DeserializeOwned>(paths: &Paths, req: &Request, json: bool, render: fn(&T)) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&e.call(req).await?)?);
    } else {
        render(&e.ask(req).await?);
    }
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
