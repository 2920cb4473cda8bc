//! `tether key …`: keys in the OS keychain. Each subcommand is one control request; prompts for
//! a key passphrase or a VM password happen here and travel only over the private control socket.

use std::io::IsTerminal;
use std::path::PathBuf;
use zeroize::Zeroizing;

use anyhow::{Context, Result};
use clap::Subcommand;
use tether_core::api::{KeyView, RotateReport};
use tether_core::config::KeyOrigin;
use tether_core::control::{ClientError, Request};
use tether_core::paths::Paths;

use crate::client::Engine;

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Generate an ed25519 key in the OS keychain.
    Gen { name: String },
    /// Import an OpenSSH private key file into the keychain (its passphrase is asked once).
    Import { name: String, path: PathBuf },
    /// Print a key's public half (for ~/.ssh/authorized_keys).
    Show {
        name: String,
        /// Print the shell command that installs it on a VM instead.
        #[arg(long)]
        install_command: bool,
    },
    /// List the keys in the keychain and the VMs that use them.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a key no VM uses from the keychain.
    Rm { name: String },
    /// Install a key on a VM by logging in once with its password (never stored), and make it
    /// the VM's key.
    Install {
        vm: String,
        #[arg(long)]
        key: String,
    },
    /// Replace a VM's key with a new one, over its live session; the old key is then withdrawn.
    Rotate { vm: String },
}

fn print_key(k: &KeyView) {
    println!("{}", k.public);
}

pub async fn run(paths: &Paths, cmd: KeyCmd) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    match cmd {
        KeyCmd::Gen { name } => {
            let k: KeyView = e.ask(&Request::KeyGen { name: name.clone() }).await?;
            eprintln!("generated key '{name}' in the OS keychain ({})", k.fingerprint);
            print_key(&k);
        }
        KeyCmd::Import { name, path } => {
            let path = std::path::absolute(&path).unwrap_or(path);
            let mut passphrase = std::env::var("TETHER_KEY_PASSPHRASE").ok().map(Zeroizing::new);
            let k: KeyView = loop {
                let req = Request::KeyImport {
                    name: name.clone(),
                    path: path.clone(),
                    passphrase: passphrase.clone(),
                };
                match e.call(&req).await {
                    Ok(v) => break serde_json::from_value(v)?,
                    Err(ClientError::Remote(err))
                        if err.code == tether_core::api::ErrorCode::PassphraseRequired
                            && passphrase.is_none()
                            && std::io::stdin().is_terminal() =>
                    {
                        passphrase = Some(Zeroizing::new(
                            rpassword::prompt_password("Key passphrase: ").context("reading the passphrase")?,
                        ));
                    }
                    Err(other) => return Err(other.into()),
                }
            };
            eprintln!(
                "imported {} into the OS keychain as '{name}' ({}); the file was left as it is",
                path.display(),
                k.fingerprint
            );
            print_key(&k);
        }
        KeyCmd::Show { name, install_command } => {
            let k: KeyView = e.ask(&Request::KeyShow { name }).await?;
            if install_command {
                println!("{}", k.install_command);
            } else {
                print_key(&k);
            }
        }
        KeyCmd::List { json } => {
            let keys: Vec<KeyView> = e.ask(&Request::KeyList).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                if keys.is_empty() {
                    println!("no keys yet; `tether key gen NAME` makes one");
                }
                for k in keys {
                    let origin = match k.origin {
                        KeyOrigin::Generated => "generated",
                        KeyOrigin::Imported => "imported",
                    };
                    let users = if k.used_by.is_empty() {
                        "-".to_string()
                    } else {
                        k.used_by.join(", ")
                    };
                    println!("{:<16} {}  {origin}  used by: {users}", k.name, k.fingerprint);
                }
            }
        }
        KeyCmd::Rm { name } => {
            e.call(&Request::KeyRemove { name: name.clone() }).await?;
            println!("removed key '{name}' from the OS keychain");
        }
        KeyCmd::Install { vm, key } => {
            let password = Zeroizing::new(match std::env::var("TETHER_VM_PASSWORD") {
                Ok(p) => p,
                Err(_) if std::io::stdin().is_terminal() => {
                    rpassword::prompt_password(format!("Password for '{vm}' (used once, never stored): "))
                        .context("reading the password")?
                }
                Err(_) => anyhow::bail!("no terminal to ask the VM's password on; set TETHER_VM_PASSWORD"),
            });
            let k: KeyView = e
                .ask(&Request::KeyInstall {
                    vm: vm.clone(),
                    key: key.clone(),
                    password,
                })
                .await?;
            println!(
                "installed key '{key}' ({}) on '{vm}' and checked that it logs in; '{vm}' now uses it",
                k.fingerprint
            );
        }
        KeyCmd::Rotate { vm } => {
            let r: RotateReport = e.ask(&Request::KeyRotate { vm: vm.clone() }).await?;
            println!(
                "rotated key '{}' on '{vm}': {} → {}",
                r.key, r.old_fingerprint, r.new_fingerprint
            );
            // The new key works, but the old one is still authorized: not a clean success.
            if let Some(w) = r.warning.as_deref() {
                anyhow::bail!("{}", crate::output::clean(w));
            }
        }
    }
    Ok(())
}
