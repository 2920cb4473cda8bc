//! `tether share`: the laptop folders a VM's containers may bind-mount, and how their sync goes.

use anyhow::Result;
use clap::Subcommand;
use tether_core::api::{SyncState, VmShares};
use tether_core::control::Request;
use tether_core::paths::Paths;

use crate::client::Engine;

#[derive(Subcommand)]
pub enum ShareCmd {
    /// List the shared folders and the state of each folder containers use.
    Ls {
        /// Only this VM (default: every VM)
        #[arg(long)]
        vm: Option<String>,
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Share a laptop folder: containers on the VM that bind-mount a folder under PATH get the
    /// laptop's files, kept in sync both ways.
    Add {
        /// A name for the share (letters, digits, - or _)
        name: String,
        /// The laptop folder
        path: std::path::PathBuf,
        /// The VM (default: the active one)
        #[arg(long)]
        vm: Option<String>,
        /// An ignore rule in .gitignore syntax (repeatable), after Tether's defaults
        #[arg(long, value_name = "PATTERN")]
        ignore: Vec<String>,
    },
    /// Stop sharing a folder (bind mounts under it then mean the VM's own paths again).
    Rm {
        name: String,
        /// The VM (default: the active one)
        #[arg(long)]
        vm: Option<String>,
    },
}

pub async fn run(paths: &Paths, cmd: ShareCmd) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    match cmd {
        ShareCmd::Ls { vm, json } => {
            let req = Request::Shares { name: vm };
            if json {
                println!("{}", serde_json::to_string_pretty(&e.call(&req).await?)?);
            } else {
                let all: Vec<VmShares> = e.ask(&req).await?;
                print!("{}", crate::output::clean(&render(&all)));
            }
        }
        ShareCmd::Add { name, path, vm, ignore } => {
            let path = std::path::absolute(&path)?;
            if !path.is_dir() {
                anyhow::bail!("{} is not a folder on this laptop", path.display());
            }
            e.call(&Request::ShareAdd {
                name: vm,
                share: tether_core::config::Share {
                    name: name.clone(),
                    path: path.clone(),
                    ignore,
                },
            })
            .await?;
            println!(
                "{}",
                crate::output::clean(&format!(
                    "shared {} as '{name}': containers that bind-mount a folder under it get this laptop's files",
                    path.display()
                ))
            );
        }
        ShareCmd::Rm { name, vm } => {
            e.call(&Request::ShareRemove {
                name: vm,
                share: name.clone(),
            })
            .await?;
            println!("{}", crate::output::clean(&format!("'{name}' is no longer shared")));
        }
    }
    Ok(())
}

pub fn state_word(s: SyncState) -> &'static str {
    match s {
        SyncState::InSync => "in sync",
        SyncState::Syncing => "syncing",
        SyncState::Scanning => "scanning",
        SyncState::Paused => "paused (VM not connected)",
        SyncState::Conflict => "conflict",
        SyncState::Error => "error",
    }
}

/// The shares as text: each VM, each share with its folders.
pub fn render(all: &[VmShares]) -> String {
    let mut out = String::new();
    for vm in all {
        out.push_str(&format!("{}\n", vm.vm));
        if vm.shares.is_empty() {
            out.push_str("  no shared folders (tether share add NAME PATH)\n");
        }
        for s in &vm.shares {
            let state = if s.folders.is_empty() {
                "not in use".to_string()
            } else {
                state_word(s.state).to_string()
            };
            out.push_str(&format!("  {:<10} {}  {}\n", s.name, s.path, state));
            if let Some(e) = &s.error {
                out.push_str(&format!("    {e}\n"));
            }
            for f in &s.folders {
                let pending = if f.pending > 0 {
                    format!(", {} on the way", f.pending)
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    "    {} -> {}  {} ({} entries{pending})\n",
                    f.laptop,
                    f.vm,
                    state_word(f.state),
                    f.entries
                ));
                for c in &f.conflicts {
                    out.push_str(&format!(
                        "      conflict: {} (the VM's version is {})\n",
                        c.path, c.copy
                    ));
                }
                for p in &f.problems {
                    out.push_str(&format!("      cannot sync {p}\n"));
                }
                if let Some(e) = &f.error {
                    out.push_str(&format!("      {e}\n"));
                }
            }
        }
    }
    out
}

/// `tether status`'s lines for a VM's shared folders in use.
pub fn status_lines(shares: &[tether_core::api::ShareView]) {
    use crate::output::clean;
    for sh in shares.iter().filter(|s| !s.folders.is_empty()) {
        let pending: u64 = sh.folders.iter().map(|f| f.pending).sum();
        let conflicts: usize = sh.folders.iter().map(|f| f.conflicts.len()).sum();
        let mut line = format!(
            "    shared folder {} ({}): {}, {} folder{} in use",
            clean(&sh.name),
            clean(&sh.path),
            crate::share::state_word(sh.state),
            sh.folders.len(),
            if sh.folders.len() == 1 { "" } else { "s" }
        );
        if pending > 0 {
            line.push_str(&format!(
                ", {pending} change{} on the way",
                if pending == 1 { "" } else { "s" }
            ));
        }
        if conflicts > 0 {
            line.push_str(&format!(
                ", {conflicts} conflict{} (tether share ls)",
                if conflicts == 1 { "" } else { "s" }
            ));
        }
        println!("{line}");
        if let Some(e) = &sh.error {
            println!("      {}", clean(e));
        }
    }
}
