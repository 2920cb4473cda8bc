//! The engine's host-key operations: scan a VM's key without logging in, trust a new one the
//! user confirmed by fingerprint, and replace the recorded key of a reinstalled VM.

use russh::keys::PublicKey;

use crate::api::{HostKeyScan, HostKeyVerdict};
use crate::engine::Engine;
use crate::error::{EngineError, Refusal};
use crate::known_hosts::{self, HostKeyStatus};
use crate::ssh::Scanned;

/// A host key as presented now, and by whom.
struct Presented {
    /// The machine that presented it: the VM, or one of its jump hosts.
    target: crate::target::Target,
    /// The key, what known_hosts says of it, and what its certificate said.
    seen: crate::ssh::Scanned,
    /// Whether `target` is a jump host rather than the VM.
    hop: bool,
}

impl Engine {
    /// The VM's address and the host key it presents now, fetched without logging in. Behind
    /// jump hosts it is the first hop whose key is not known yet, if any: each is confirmed in
    /// turn, and the address returned says whose key it is.
    async fn presented_host_key(&self, name: &str) -> Result<Presented, EngineError> {
        let profile = self.inner.state.lock().await.config.vm(name)?.clone();
        let target = crate::target::resolve(&profile)?;
        let creds: std::sync::Arc<dyn crate::identity::Credentials> = if target.jumps.is_empty() {
            // Nothing is logged in to: no key is needed (nor asked for from the keychain).
            std::sync::Arc::new(crate::identity::Fixed(Vec::new()))
        } else {
            crate::identity::logins_for(&profile, &target, &self.inner.keys)
                .await?
                .hops
        };
        let files = self.known_hosts_files();
        let (scanned, seen) =
            crate::ssh::fetch_host_key(&target, files, creds, crate::ssh::Timeouts::default()).await?;
        // A hop's target has no hops of its own; the VM's has them all.
        let hop = !target.jumps.is_empty() && scanned.jumps.is_empty();
        Ok(Presented {
            target: scanned,
            seen,
            hop,
        })
    }

    /// As [`Self::presented_host_key`], but only if it is the key the user confirmed by
    /// `fingerprint`: a VM that changed its key since it was shown changes nothing.
    async fn confirmed_host_key(
        &self,
        name: &str,
        fingerprint: &str,
    ) -> Result<(crate::target::Target, PublicKey), EngineError> {
        let Presented {
            target,
            seen: Scanned { key, .. },
            ..
        } = self.presented_host_key(name).await?;
        let fp = known_hosts::fingerprint(&key);
        if fp != fingerprint {
            return Err(Refusal::HostKeyNotConfirmed {
                vm: name.into(),
                presented: fp,
                confirmed: fingerprint.into(),
            }
            .into());
        }
        Ok((target, key))
    }

    /// Fetches a VM's host key without logging in and says whether it is known.
    pub async fn scan_host_key(&self, name: &str) -> Result<HostKeyScan, EngineError> {
        let Presented {
            target,
            seen:
                Scanned {
                    key,
                    status,
                    authority,
                    untrusted_certificate,
                },
            hop,
        } = self.presented_host_key(name).await?;
        let fingerprint = known_hosts::fingerprint(&key);
        let key_type = key.algorithm().to_string();
        let at = |file: &std::path::Path, line: usize, key_type: &str, fingerprint: &str| known_hosts::Recorded {
            file: file.to_path_buf(),
            line,
            key_type: key_type.to_string(),
            fingerprint: fingerprint.to_string(),
        };
        let (status, recorded) = match status {
            // A certificate from a trusted authority stands for the key, as in the handshake.
            _ if authority.is_some() => (HostKeyVerdict::Known, Vec::new()),
            HostKeyStatus::Known => (HostKeyVerdict::Known, Vec::new()),
            HostKeyStatus::Unknown => (HostKeyVerdict::Unknown, Vec::new()),
            HostKeyStatus::Changed {
                file,
                line,
                recorded_fingerprint,
            } => (
                HostKeyVerdict::Changed,
                vec![at(&file, line, &key_type, &recorded_fingerprint)],
            ),
            HostKeyStatus::Revoked { file, line } => {
                (HostKeyVerdict::Revoked, vec![at(&file, line, &key_type, &fingerprint)])
            }
            HostKeyStatus::OtherType { recorded } => (HostKeyVerdict::OtherType, recorded),
        };
        let detail = match status {
            HostKeyVerdict::Known => authority.map(|a| format!("its certificate is signed by the authority {a}")),
            HostKeyVerdict::Unknown => {
                untrusted_certificate.map(|why| format!("its host certificate was not accepted: {why}"))
            }
            HostKeyVerdict::OtherType => Some(format!(
                "it is known by other keys: {}",
                recorded.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )),
            HostKeyVerdict::Changed => Some(
                recorded
                    .iter()
                    .map(|r| format!("{}:{} records {}", r.file.display(), r.line, r.fingerprint))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            HostKeyVerdict::Revoked => Some(
                recorded
                    .iter()
                    .map(|r| format!("{}:{}", r.file.display(), r.line))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        };
        Ok(HostKeyScan {
            host: known_hosts::host_entry_name(&target.host, target.port),
            jump: hop,
            status,
            key_type,
            fingerprint,
            detail,
            recorded,
        })
    }

    /// Records a host key the user confirmed by fingerprint.
    /// Only a key the files know nothing about can be trusted this way: a changed key, or one
    /// of a type not recorded for a VM known by other keys, takes [`Self::replace_host_key`].
    pub async fn trust_host_key(&self, name: &str, fingerprint: &str) -> Result<(), EngineError> {
        let (target, key) = self.confirmed_host_key(name, fingerprint).await?;
        let files = target.host_keys.apply(&self.known_hosts_files());
        match known_hosts::check(&target.host, target.port, &key, &files).map_err(read_err)? {
            HostKeyStatus::Known => return Ok(()),
            HostKeyStatus::Unknown => {}
            _ => {
                return Err(Refusal::HostKeyNotNew {
                    vm: name.into(),
                    fingerprint: fingerprint.into(),
                }
                .into());
            }
        }
        let own = self.inner.paths.known_hosts();
        known_hosts::learn(&own, &target.host, target.port, &key).map_err(|e| write_err(&own, e))
    }

    /// Replaces the recorded host key of a reinstalled VM with the one it presents now, which the
    /// user confirmed by `fingerprint` (as `ssh-keygen -R` then a confirmed first connect would).
    /// Only Tether's own known_hosts is edited: a conflicting line in ~/.ssh/known_hosts is
    /// named with the command that removes it, and nothing changes. A revoked key stays refused.
    pub async fn replace_host_key(&self, name: &str, fingerprint: &str) -> Result<usize, EngineError> {
        let (target, key) = self.confirmed_host_key(name, fingerprint).await?;
        let (files, own) = (
            target.host_keys.apply(&self.known_hosts_files()),
            self.inner.paths.known_hosts(),
        );
        let entry = known_hosts::host_entry_name(&target.host, target.port);
        // `check` reports a revocation in any file, and otherwise the first conflicting line; the
        // files list OpenSSH's before Tether's, so a conflict it finds in ours is the only one.
        let mut any_type = false;
        match known_hosts::check(&target.host, target.port, &key, &files).map_err(read_err)? {
            HostKeyStatus::Revoked { file, line } => {
                return Err(Refusal::HostKeyRevoked {
                    vm: name.into(),
                    fingerprint: fingerprint.into(),
                    file,
                    line,
                }
                .into());
            }
            HostKeyStatus::Changed { file, line, .. } if file != own => {
                return Err(Refusal::HostKeyInOpenSsh {
                    vm: name.into(),
                    file,
                    line,
                    entry,
                }
                .into());
            }
            HostKeyStatus::Changed { .. } | HostKeyStatus::Known | HostKeyStatus::Unknown => {}
            HostKeyStatus::OtherType { .. } => any_type = true,
        }
        // A VM now known by a key of another type leaves its old keys behind in our file.
        let removed = known_hosts::forget_conflicting(&own, &target.host, target.port, &key, any_type)
            .map_err(|e| write_err(&own, e))?;
        if known_hosts::check(&target.host, target.port, &key, &files).map_err(read_err)? != HostKeyStatus::Known {
            known_hosts::learn(&own, &target.host, target.port, &key).map_err(|e| write_err(&own, e))?;
        }
        tracing::warn!(vm = name, host = %entry, new = %fingerprint, removed, "host key replaced at the user's request");
        Ok(removed)
    }

    fn known_hosts_files(&self) -> Vec<std::path::PathBuf> {
        self.inner.paths.known_hosts_files()
    }
}

fn read_err(e: std::io::Error) -> EngineError {
    EngineError::KnownHostsRead(e.to_string())
}

fn write_err(file: &std::path::Path, e: std::io::Error) -> EngineError {
    EngineError::KnownHostsWrite {
        path: file.to_path_buf(),
        message: e.to_string(),
    }
}
