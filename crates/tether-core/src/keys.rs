//! Keys in the OS keychain, the engine's side of `tether key …`: generate, import, show and
//! remove keys; install one on a VM with a single password login; rotate a VM's key over its
//! live session. Private keys go only to the keychain and memory; the config holds the public
//! half, so listing and showing keys never needs the keychain unlocked.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{HashAlg, PrivateKey};
use zeroize::Zeroizing;

use crate::clock::unix_ms as now_ms;
use crate::config::{ConfigError, KeyInfo, KeyOrigin, validate_key_name};
use crate::engine::Engine;
use crate::error::{EngineError, Refusal};
use crate::identity::{self, Credential, Fixed, IdentityError};
use crate::remote;
use crate::ssh::{self, HostKeyPolicy};

pub use crate::api::{KeyView, RotateReport};

/// How long one step on the VM (a script, a verifying login) may take.
const STEP: Duration = Duration::from_secs(20);

/// Appends the key line on stdin to ~/.ssh/authorized_keys unless its blob is already there,
/// creating ~/.ssh (0700) and the file (0600) as OpenSSH's StrictModes wants them.
const INSTALL: &str = r#"umask 077; set -e; d="$HOME/.ssh"; f="$d/authorized_keys"; IFS= read -r line; blob=$(printf '%s\n' "$line" | awk '{print $2}'); [ -n "$blob" ]; mkdir -p "$d"; chmod 700 "$d"; touch "$f"; chmod 600 "$f"; if ! grep -qF "$blob" "$f"; then printf '%s\n' "$line" >> "$f"; fi; grep -qF "$blob" "$f""#;

/// Removes every line carrying the blob on the first stdin line from ~/.ssh/authorized_keys,
/// keeping the blob on the second (if any). The new file is written beside the old, checked
/// (grep succeeded, exactly the matching lines went, the kept key is there), synced and renamed
/// over the old, so a full disk or any other failure leaves the old file as it was. A symlinked
/// file is edited where it points, and the link stays.
const REMOVE: &str = r#"umask 077; set -e; f="$HOME/.ssh/authorized_keys"; IFS= read -r blob; IFS= read -r keep || true; [ -n "$blob" ]; [ -e "$f" ] || exit 0
if [ -L "$f" ]; then f=$(readlink -f "$f"); fi
t="$f.tether-$$"; trap 'rm -f "$t"' EXIT
rc=0; grep -vF "$blob" "$f" > "$t" || rc=$?
if [ "$rc" -gt 1 ]; then echo "could not write $t (is the VM's disk full?); authorized_keys was left as it was" >&2; exit 1; fi
before=$(grep -c '' "$f" || true); gone=$(grep -cF "$blob" "$f" || true); after=$(grep -c '' "$t" || true)
if [ "$after" -ne $((before - gone)) ]; then echo "the rewritten authorized_keys has $after lines, not $((before - gone)); it was left as it was" >&2; exit 1; fi
if [ -n "$keep" ] && ! grep -qF "$keep" "$t"; then echo "the new key would not remain in authorized_keys; it was left as it was" >&2; exit 1; fi
sync "$t" 2>/dev/null || sync; mv -f "$t" "$f"; sync "$(dirname "$f")" 2>/dev/null || sync
! grep -qF "$blob" "$f""#;

fn public_line(key: &PrivateKey) -> Result<String, EngineError> {
    key.public_key()
        .to_openssh()
        .map_err(|e| EngineError::KeyEncode(e.to_string()))
}

fn blob(line: &str) -> &str {
    line.split_whitespace().nth(1).unwrap_or("")
}

/// The shell command that installs `public` for the user who runs it.
pub fn install_command(public: &str) -> String {
    format!(
        "mkdir -p ~/.ssh && chmod 700 ~/.ssh && echo {} >> ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys",
        remote::quote(public)
    )
}

fn fingerprint_of(public: &str) -> String {
    russh::keys::PublicKey::from_openssh(public)
        .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
        .unwrap_or_else(|_| "unreadable".into())
}

/// The staging name a rotation files the next key under. Key names cannot contain '.', so it
/// never collides with a user's key.
fn staging(name: &str) -> String {
    format!("{name}.rotating")
}

impl Engine {
    fn view(&self, cfg: &crate::config::Config, name: &str) -> Result<KeyView, EngineError> {
        let info = cfg.keys.get(name).ok_or_else(|| no_key(name))?;
        Ok(KeyView {
            name: name.to_string(),
            public: info.public.clone(),
            fingerprint: fingerprint_of(&info.public),
            origin: info.origin,
            created_ms: info.created_ms,
            used_by: cfg.vms_using_key(name),
            install_command: install_command(&info.public),
        })
    }

    pub async fn key_list(&self) -> Result<Vec<KeyView>, EngineError> {
        let cfg = self.config().await;
        cfg.keys.keys().map(|n| self.view(&cfg, n)).collect()
    }

    pub async fn key_show(&self, name: &str) -> Result<KeyView, EngineError> {
        self.view(&self.config().await, name)
    }

    /// Files `key` in the keychain under `name`, then records its public half.
    async fn add_key(&self, name: &str, key: PrivateKey, origin: KeyOrigin) -> Result<KeyView, EngineError> {
        validate_key_name(name)?;
        if self.config().await.keys.contains_key(name) {
            return Err(ConfigError::Coded {
                code: crate::advice::ErrorCode::KeyExists,
                message: format!(
                    "a key named '{name}' already exists; pick another name, or remove it with `tether key rm {name}`"
                ),
                details: None,
            }
            .into());
        }
        let public = public_line(&key)?;
        let keys = self.inner.keys.clone();
        keys.store().store(name, &key).await.map_err(IdentityError::from)?;
        let info = KeyInfo {
            public,
            origin,
            created_ms: now_ms(),
        };
        let saved = self
            .edit(|cfg| {
                cfg.keys.insert(name.to_string(), info.clone());
                Ok(())
            })
            .await;
        match saved {
            Ok((_, guard)) => {
                keys.forget(name);
                self.view(&guard.config, name)
            }
            Err(e) => {
                // Nothing half-made: without the config entry the keychain copy is unreachable.
                let _ = keys.store().delete(name).await;
                Err(e)
            }
        }
    }

    /// Generates an ed25519 key in the keychain.
    pub async fn key_gen(&self, name: &str) -> Result<KeyView, EngineError> {
        validate_key_name(name)?;
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "laptop".into());
        self.add_key(
            name,
            identity::generate_ed25519(&format!("tether-{name}@{host}")),
            KeyOrigin::Generated,
        )
        .await
    }

    /// Imports an OpenSSH private key file into the keychain, decrypted with `passphrase` once.
    /// The file is left as it was; the keychain copy is protected by the keychain.
    pub async fn key_import(&self, name: &str, path: &Path, passphrase: Option<&str>) -> Result<KeyView, EngineError> {
        validate_key_name(name)?;
        let key = identity::load_key(path, passphrase)?;
        self.add_key(name, key, KeyOrigin::Imported).await
    }

    /// Removes a key that no VM uses.
    pub async fn key_remove(&self, name: &str) -> Result<(), EngineError> {
        let cfg = self.config().await;
        if !cfg.keys.contains_key(name) {
            return Err(no_key(name));
        }
        let users = cfg.vms_using_key(name);
        if !users.is_empty() {
            return Err(ConfigError::Coded {
                code: crate::advice::ErrorCode::KeyInUse,
                message: format!(
                "key '{name}' is used by {}; give them another key first (`tether vm rm`, or `tether vm add … --key OTHER`)",
                users.join(", ")
            ),
                details: Some(Box::new(crate::advice::ErrorDetails::Key {
                    key: name.to_string(),
                    used_by: users.clone(),
                })),
            }
            .into());
        }
        self.inner
            .keys
            .store()
            .delete(name)
            .await
            .map_err(IdentityError::from)?;
        self.inner.keys.forget(name);
        drop(
            self.edit(|cfg| {
                cfg.keys.remove(name);
                Ok(())
            })
            .await?,
        );
        Ok(())
    }

    pub(crate) fn host_key_policy(&self) -> HostKeyPolicy {
        let files = self.paths().known_hosts_files();
        // Nothing here accepts a host key: the VM's key must already be trusted.
        HostKeyPolicy {
            files,
            accept_new: false,
            confirmed: crate::ssh::Confirmation::default(),
            scan: false,
        }
    }

    /// A fresh login to `vm` with exactly `cred`; its jump hosts are offered what they usually
    /// are (never `cred` if it is a password).
    async fn try_login(&self, vm: &str, cred: Credential) -> Result<ssh::Connection, EngineError> {
        let profile = self.config().await.vm(vm)?.clone();
        let target = crate::target::resolve(&profile)?;
        let hops: std::sync::Arc<dyn identity::Credentials> = if target.jumps.is_empty() {
            std::sync::Arc::new(Fixed(Vec::new()))
        } else {
            identity::logins_for(&profile, &target, &self.inner.keys).await?.hops
        };
        let logins = identity::Logins {
            vm: std::sync::Arc::new(Fixed(vec![cred])),
            hops,
        };
        Ok(ssh::connect(
            &target,
            self.host_key_policy(),
            logins,
            None,
            ssh::Timeouts::default(),
            None,
        )
        .await?)
    }

    /// Logs in to `vm` once with `password` (never stored), installs keychain key `key` in the
    /// user's ~/.ssh/authorized_keys, checks that the key logs in, and makes it the VM's key.
    pub async fn install_key(&self, vm: &str, key: &str, password: Zeroizing<String>) -> Result<KeyView, EngineError> {
        let view = self.key_show(key).await?;
        let private = self.inner.keys.load(key).await.map_err(IdentityError::from)?;
        let conn = self.try_login(vm, Credential::Password(Arc::new(password))).await?;
        let out = remote::run(
            &conn.handle,
            INSTALL,
            Some(format!("{}\n", view.public).as_bytes()),
            STEP,
        )
        .await;
        let _ = conn.handle.disconnect(russh::Disconnect::ByApplication, "", "en").await;
        let out = out.map_err(|message| EngineError::Remote { vm: vm.into(), message })?;
        if !out.success() {
            return Err(EngineError::KeyInstall {
                reason: if out.stderr.is_empty() {
                    "no reason given".to_string()
                } else {
                    out.stderr
                },
                command: view.install_command,
            });
        }
        let verify = self
            .try_login(
                vm,
                Credential::Key {
                    label: format!("keychain key '{key}'"),
                    key: private,
                },
            )
            .await;
        match verify {
            Ok(c) => {
                let _ = c.handle.disconnect(russh::Disconnect::ByApplication, "", "en").await;
            }
            Err(e) => {
                return Err(EngineError::KeyLoginAfterInstall { reason: e.to_string() });
            }
        }
        self.set_vm_key(vm, key).await?;
        self.key_show(key).await
    }

    /// Replaces `vm`'s keychain key with a new one, over the live session: the new key is
    /// authorized, proven by a fresh login, committed, and only then is the old one removed
    /// from the VM and the keychain. A failure at any step leaves a key that works.
    pub async fn key_rotate(&self, vm: &str) -> Result<RotateReport, EngineError> {
        let cfg = self.config().await;
        let profile = cfg.vm(vm)?.clone();
        let name = profile
            .key
            .clone()
            .ok_or_else(|| EngineError::NoKeychainKey { vm: vm.into() })?;
        let users = cfg.vms_using_key(&name);
        if users.len() > 1 {
            return Err(Refusal::KeyShared {
                key: name.clone(),
                vm: vm.into(),
                others: users.into_iter().filter(|u| u != vm).collect(),
            }
            .into());
        }
        let info = cfg.keys.get(&name).cloned().ok_or_else(|| no_key(&name))?;
        let (_, session) = self.session(Some(vm)).await?;
        let link = session
            .link()
            .ok_or_else(|| EngineError::NotConnected { vm: vm.into() })?;
        let keys = self.inner.keys.clone();
        let old = keys.load(&name).await.map_err(IdentityError::from)?;
        let next = identity::generate_ed25519(old.comment().as_ref());
        let next_public = public_line(&next)?;
        let next_arc = Arc::new(next.clone());
        let stage = staging(&name);
        let report = |warning| RotateReport {
            vm: vm.to_string(),
            key: name.clone(),
            old_fingerprint: fingerprint_of(&info.public),
            new_fingerprint: fingerprint_of(&next_public),
            warning,
        };
        let unauthorize = |blob_of: String| {
            let link = link.clone();
            async move {
                let _ = remote::run(&link, REMOVE, Some(format!("{blob_of}\n\n").as_bytes()), STEP).await;
            }
        };

        // 1. Keep the next key safe before the VM knows it.
        // The staging slot is Tether's own: a leftover of a rotation that was cut off is replaced.
        keys.store().replace(&stage, &next).await.map_err(IdentityError::from)?;
        // 2. Authorize it.
        let added = remote::run(&link, INSTALL, Some(format!("{next_public}\n").as_bytes()), STEP).await;
        match added {
            Ok(o) if o.success() => {}
            other => {
                let _ = keys.store().delete(&stage).await;
                let why = match other {
                    Ok(o) => o.stderr,
                    Err(e) => e,
                };
                return Err(EngineError::KeyAuthorize {
                    vm: vm.into(),
                    reason: why,
                });
            }
        }
        // 3. Prove it logs in.
        let cred = Credential::Key {
            label: "the new key".into(),
            key: next_arc,
        };
        match self.try_login(vm, cred).await {
            Ok(c) => {
                let _ = c.handle.disconnect(russh::Disconnect::ByApplication, "", "en").await;
            }
            Err(e) => {
                unauthorize(blob(&next_public).to_string()).await;
                let _ = keys.store().delete(&stage).await;
                return Err(EngineError::KeyRotateLogin {
                    vm: vm.into(),
                    reason: e.to_string(),
                });
            }
        }
        // 4. Commit: the keychain entry, then the config.
        if let Err(e) = keys.store().replace(&name, &next).await {
            unauthorize(blob(&next_public).to_string()).await;
            let _ = keys.store().delete(&stage).await;
            return Err(IdentityError::from(e).into());
        }
        let saved = self
            .edit(|cfg| {
                if let Some(k) = cfg.keys.get_mut(&name) {
                    k.public = next_public.clone();
                    k.created_ms = now_ms();
                    k.origin = KeyOrigin::Generated;
                }
                Ok(())
            })
            .await;
        if let Err(e) = saved {
            let _ = keys.store().replace(&name, &old).await;
            unauthorize(blob(&next_public).to_string()).await;
            let _ = keys.store().delete(&stage).await;
            return Err(e);
        }
        keys.forget(&name);
        let _ = keys.store().delete(&stage).await;
        // 5. Withdraw the old key from the VM; the new one is in place whatever happens here.
        let removed = remote::run(
            &link,
            REMOVE,
            Some(format!("{}\n{}\n", blob(&info.public), blob(&next_public)).as_bytes()),
            STEP,
        )
        .await;
        let warning = match removed {
            Ok(o) if o.success() => None,
            Ok(o) => Some(format!(
                "the old key is still in ~/.ssh/authorized_keys on '{vm}' ({}); remove the line with {} by hand",
                o.stderr,
                fingerprint_of(&info.public)
            )),
            Err(e) => Some(format!(
                "the old key may still be authorized on '{vm}' ({e}); check ~/.ssh/authorized_keys there"
            )),
        };
        Ok(report(warning))
    }
}

fn no_key(name: &str) -> EngineError {
    EngineError::Identity(IdentityError::Keychain(crate::keystore::KeyStoreError::NoKey(
        name.to_string(),
    )))
}

#[cfg(test)]
#[path = "tests/keys.rs"]
mod tests;
