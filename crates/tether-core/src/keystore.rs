//! SSH private keys in the OS keychain (macOS Keychain, Windows Credential Manager, the Secret
//! Service on Linux), through keyring-core and one store crate per OS.
//!
//! Keychain calls are blocking and can hang (a locked Secret Service may wait on an unlock prompt
//! nobody sees), so every call runs on tokio's blocking pool under a timeout. A call that times
//! out leaves its thread behind; the engine stays responsive and says what to do.
//!
//! Only ed25519 keys are stored: their OpenSSH encoding (~400 bytes) fits Windows' 2,560-byte
//! credential limit with room to spare. The private key never touches the disk here; its
//! public half lives in the config, which needs no unlock to read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use zeroize::Zeroizing;

/// The keychain "service" every Tether key is filed under. The account is `INSTALL/NAME`: the
/// install id ([`crate::paths::install_id`]) keeps two Tether homes on one keychain apart.
pub const SERVICE: &str = "dev.tether.ssh-key";

/// How long one keychain call may take before Tether gives up on it.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Windows' limit on a credential blob; other keychains allow more.
pub const MAX_SECRET: usize = 2560;

const FALLBACK: &str = "or use ssh-agent or a key file instead (`tether vm add NAME … --identity PATH`)";

#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyStoreError {
    #[error(
        "the keychain is locked or refused access ({0}); unlock it (log in to your desktop's keyring) and retry, {FALLBACK}"
    )]
    Locked(String),
    #[error(
        "the keychain has no default keyring to keep keys in; create one (GNOME: Passwords and Keys, \
         + then \"Password keyring\", set as default; KeePassXC: expose a database to Secret Service) and retry, {FALLBACK}"
    )]
    NoDefault,
    #[error(
        "no OS keychain is available ({0}); start one (on Linux: gnome-keyring or KeePassXC's Secret Service), {FALLBACK}"
    )]
    Unavailable(String),
    #[error("the keychain did not answer within {} s; it may be waiting on an unlock prompt. Unlock it and retry, {FALLBACK}", TIMEOUT.as_secs())]
    Timeout,
    #[error(
        "no key named '{0}' in the keychain; `tether key gen {0}` makes one and `tether key import {0} PATH` imports one"
    )]
    NoKey(String),
    #[error(
        "the keychain already holds a key named '{0}' for this Tether install (left from an earlier run?); it was \
         not overwritten. Remove it with `tether key rm {0}` or pick another name"
    )]
    Exists(String),
    #[error("key '{name}' is {len} bytes encoded, over the keychain's {MAX_SECRET}-byte limit; use an ed25519 key")]
    TooLarge { name: String, len: usize },
    #[error(
        "the keychain entry for key '{name}' is not an OpenSSH private key ({message}); remove it with `tether key rm {name}` and import the key again"
    )]
    Corrupt { name: String, message: String },
    #[error("keychain failure: {0}")]
    Other(String),
}

/// The raw secret store, so tests can put a fake behind [`KeyStore`].
pub trait SecretBackend: Send + Sync + 'static {
    fn set(&self, name: &str, secret: &[u8]) -> Result<(), KeyStoreError>;
    /// `Ok(None)` when there is no such entry.
    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyStoreError>;
    /// `Ok(false)` when there was no such entry.
    fn delete(&self, name: &str) -> Result<bool, KeyStoreError>;
}

/// Keys by name in a secret store, with every call off the async runtime and bounded in time.
#[derive(Clone)]
pub struct KeyStore {
    backend: Arc<dyn SecretBackend>,
    timeout: Duration,
    /// The install id every account is prefixed with; `None` files keys under their bare name
    /// (what installs before scoping did, still read as a fallback).
    scope: Option<String>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// The OS keychain.
    pub fn os() -> Self {
        Self::with_backend(Arc::new(OsKeychain::default()), TIMEOUT)
    }

    pub fn with_backend(backend: Arc<dyn SecretBackend>, timeout: Duration) -> Self {
        Self {
            backend,
            timeout,
            scope: None,
        }
    }

    /// This store with every key filed under `install/NAME`.
    pub fn scoped(mut self, install: &str) -> Self {
        self.scope = Some(install.to_string());
        self
    }

    /// The keychain account of key `name`.
    pub fn account(&self, name: &str) -> String {
        match &self.scope {
            Some(s) => format!("{s}/{name}"),
            None => name.to_string(),
        }
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn SecretBackend) -> Result<T, KeyStoreError> + Send + 'static,
    ) -> Result<T, KeyStoreError> {
        let backend = self.backend.clone();
        let task = tokio::task::spawn_blocking(move || f(backend.as_ref()));
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(KeyStoreError::Other(format!("keychain call failed: {e}"))),
            Err(_) => Err(KeyStoreError::Timeout),
        }
    }

    /// Stores `key` (unencrypted: the keychain is the protection) under `name`. An entry already
    /// there is never overwritten ([`KeyStoreError::Exists`]); [`Self::replace`] does that.
    pub async fn store(&self, name: &str, key: &PrivateKey) -> Result<(), KeyStoreError> {
        self.put(name, key, false).await
    }

    /// Stores `key` under `name`, replacing what is there: only for a change the user asked for
    /// (a rotation's commit).
    pub async fn replace(&self, name: &str, key: &PrivateKey) -> Result<(), KeyStoreError> {
        self.put(name, key, true).await
    }

    async fn put(&self, name: &str, key: &PrivateKey, replace: bool) -> Result<(), KeyStoreError> {
        let pem = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| KeyStoreError::Other(format!("cannot encode the key: {e}")))?;
        if pem.len() > MAX_SECRET {
            return Err(KeyStoreError::TooLarge {
                name: name.into(),
                len: pem.len(),
            });
        }
        let (account, shown) = (self.account(name), name.to_string());
        self.call(move |b| {
            if !replace && b.get(&account)?.is_some() {
                return Err(KeyStoreError::Exists(shown));
            }
            b.set(&account, pem.as_bytes())
        })
        .await
    }

    /// The key stored under `name`.
    pub async fn load(&self, name: &str) -> Result<PrivateKey, KeyStoreError> {
        let (account, legacy) = (self.account(name), self.scope.is_some().then(|| name.to_string()));
        let secret = self
            .call(move |b| match b.get(&account)? {
                Some(s) => Ok(Some(s)),
                // A key filed before installs were scoped is still found.
                None => legacy.map_or(Ok(None), |l| b.get(&l)),
            })
            .await?
            .ok_or_else(|| KeyStoreError::NoKey(name.into()))?;
        let text = std::str::from_utf8(&secret).map_err(|e| KeyStoreError::Corrupt {
            name: name.into(),
            message: e.to_string(),
        })?;
        PrivateKey::from_openssh(text.trim()).map_err(|e| KeyStoreError::Corrupt {
            name: name.into(),
            message: e.to_string(),
        })
    }

    /// Whether a key is stored under `name`.
    pub async fn contains(&self, name: &str) -> Result<bool, KeyStoreError> {
        let account = self.account(name);
        self.call(move |b| b.get(&account).map(|s| s.is_some())).await
    }

    /// Removes this install's key under `name`; `false` if there was none. A key filed before
    /// installs were scoped is removed only when this install has no scoped one: it may be
    /// another install's.
    pub async fn delete(&self, name: &str) -> Result<bool, KeyStoreError> {
        let (account, legacy) = (self.account(name), self.scope.is_some().then(|| name.to_string()));
        self.call(move |b| match b.delete(&account)? {
            true => Ok(true),
            false => legacy.map_or(Ok(false), |l| b.delete(&l)),
        })
        .await
    }
}

/// Keys loaded from the keychain during this run, kept in memory as ssh-agent keeps them, so a
/// reconnect at 3 a.m. does not depend on the keychain being unlocked then.
#[derive(Clone, Debug)]
pub struct Keys {
    store: KeyStore,
    cache: Arc<Mutex<HashMap<String, Arc<PrivateKey>>>>,
}

impl Keys {
    pub fn new(store: KeyStore) -> Self {
        Self {
            store,
            cache: Arc::default(),
        }
    }

    pub fn store(&self) -> &KeyStore {
        &self.store
    }

    /// These keys, filed under this install's id (see [`KeyStore::scoped`]).
    pub fn scoped(self, install: &str) -> Self {
        Self {
            store: self.store.scoped(install),
            cache: self.cache,
        }
    }

    /// The key named `name`, from memory or else from the keychain.
    pub async fn load(&self, name: &str) -> Result<Arc<PrivateKey>, KeyStoreError> {
        if let Some(k) = self.cache.lock().ok().and_then(|c| c.get(name).cloned()) {
            return Ok(k);
        }
        let key = Arc::new(self.store.load(name).await?);
        if let Ok(mut c) = self.cache.lock() {
            c.insert(name.to_string(), key.clone());
        }
        Ok(key)
    }

    /// Drops the in-memory copy (after the key changed or was removed).
    pub fn forget(&self, name: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(name);
        }
    }
}

/// The platform's keychain. The store is opened on first use and reopened after a failure, so a
/// keychain that starts after Tether (a login race) is picked up without a restart.
#[derive(Default)]
pub struct OsKeychain {
    store: Mutex<Option<Arc<keyring_core::CredentialStore>>>,
}

impl OsKeychain {
    fn store(&self) -> Result<Arc<keyring_core::CredentialStore>, KeyStoreError> {
        let mut slot = self
            .store
            .lock()
            .map_err(|_| KeyStoreError::Other("keychain state poisoned".into()))?;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let s = open_platform_store()?;
        *slot = Some(s.clone());
        Ok(s)
    }

    fn entry(&self, name: &str) -> Result<keyring_core::Entry, KeyStoreError> {
        self.store()?.build(SERVICE, name, None).map_err(|e| self.failed(e))
    }

    /// Maps an error, forgetting the store when the connection itself may be broken.
    fn failed(&self, e: keyring_core::Error) -> KeyStoreError {
        let mut mapped = map_error(e);
        if let KeyStoreError::Locked(why) = &mapped {
            // The store crate reports all three as "no access"; the bus tells them apart.
            if secret_service_present() == Some(false) {
                mapped = KeyStoreError::Unavailable(format!(
                    "nothing provides org.freedesktop.secrets on the session bus ({why})"
                ));
            } else if default_keyring_missing() == Some(true) {
                mapped = KeyStoreError::NoDefault;
            }
        }
        if matches!(mapped, KeyStoreError::Unavailable(_) | KeyStoreError::Other(_))
            && let Ok(mut slot) = self.store.lock()
        {
            *slot = None;
        }
        mapped
    }

    /// Runs `op` on the entry for `name`. A failure on a store opened earlier is tried once more
    /// on a new one: the keychain daemon may have restarted since, and the old connection's
    /// session is gone with it (gnome-keyring then answers "NoSession").
    fn with_entry<T>(
        &self,
        name: &str,
        op: impl Fn(&keyring_core::Entry) -> Result<T, KeyStoreError>,
    ) -> Result<T, KeyStoreError> {
        let cached = self.store.lock().map(|s| s.is_some()).unwrap_or(false);
        match self.entry(name).and_then(|e| op(&e)) {
            Err(KeyStoreError::Unavailable(_) | KeyStoreError::Other(_)) if cached => {
                self.entry(name).and_then(|e| op(&e))
            }
            r => r,
        }
    }
}

impl SecretBackend for OsKeychain {
    fn set(&self, name: &str, secret: &[u8]) -> Result<(), KeyStoreError> {
        self.with_entry(name, |e| e.set_secret(secret).map_err(|e| self.failed(e)))
    }

    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyStoreError> {
        self.with_entry(name, |e| match e.get_secret() {
            Ok(s) => Ok(Some(Zeroizing::new(s))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(self.failed(e)),
        })
    }

    fn delete(&self, name: &str) -> Result<bool, KeyStoreError> {
        self.with_entry(name, |e| match e.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(e) => Err(self.failed(e)),
        })
    }
}

fn map_error(e: keyring_core::Error) -> KeyStoreError {
    use keyring_core::Error as E;
    match e {
        E::NoStorageAccess(inner) => KeyStoreError::Locked(inner.to_string()),
        E::NoDefaultStore => KeyStoreError::Unavailable("no credential store for this platform".into()),
        E::PlatformFailure(inner) => KeyStoreError::Unavailable(inner.to_string()),
        other => KeyStoreError::Other(other.to_string()),
    }
}

/// Whether anything owns, or can be started as, the Secret Service on the session bus; `None`
/// when that cannot be told.
#[cfg(all(unix, not(target_os = "macos")))]
fn secret_service_present() -> Option<bool> {
    const NAME: &str = "org.freedesktop.secrets";
    let conn = zbus::blocking::Connection::session().ok()?;
    let bus = zbus::blocking::fdo::DBusProxy::new(&conn).ok()?;
    let name = zbus::names::BusName::try_from(NAME).ok()?;
    let owned = bus.name_has_owner(name).ok()?;
    let activatable = bus.list_activatable_names().ok()?.iter().any(|n| n.as_str() == NAME);
    Some(owned || activatable)
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn secret_service_present() -> Option<bool> {
    None
}

/// Whether the Secret Service has no collection aliased "default" (a keyring never created, as
/// after a login that unlocked none) to store into; `None` when that cannot be told.
#[cfg(all(unix, not(target_os = "macos")))]
fn default_keyring_missing() -> Option<bool> {
    let conn = zbus::blocking::Connection::session().ok()?;
    let reply = conn
        .call_method(
            Some("org.freedesktop.secrets"),
            "/org/freedesktop/secrets",
            Some("org.freedesktop.Secret.Service"),
            "ReadAlias",
            &("default",),
        )
        .ok()?;
    let path: zbus::zvariant::OwnedObjectPath = reply.body().deserialize().ok()?;
    Some(path.as_str() == "/")
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn default_keyring_missing() -> Option<bool> {
    None
}

#[cfg(all(unix, not(target_os = "macos")))]
fn open_platform_store() -> Result<Arc<keyring_core::CredentialStore>, KeyStoreError> {
    let s = zbus_secret_service_keyring_store::Store::new().map_err(map_error)?;
    Ok(s)
}

#[cfg(target_os = "macos")]
fn open_platform_store() -> Result<Arc<keyring_core::CredentialStore>, KeyStoreError> {
    let s = apple_native_keyring_store::keychain::Store::new().map_err(map_error)?;
    Ok(s)
}

#[cfg(windows)]
fn open_platform_store() -> Result<Arc<keyring_core::CredentialStore>, KeyStoreError> {
    let s = windows_native_keyring_store::Store::new().map_err(map_error)?;
    Ok(s)
}

#[cfg(test)]
#[path = "tests/keystore.rs"]
mod tests;
