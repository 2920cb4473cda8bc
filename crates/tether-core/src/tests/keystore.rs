//! KeyStore over a fake backend: round trip, missing keys, timeouts on a hung keychain, and
//! errors that name the fallback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zeroize::Zeroizing;

use super::*;
use crate::identity::generate_ed25519;

#[derive(Default)]
struct Memory(Mutex<HashMap<String, Vec<u8>>>);

impl SecretBackend for Memory {
    fn set(&self, name: &str, secret: &[u8]) -> Result<(), KeyStoreError> {
        self.0.lock().unwrap().insert(name.into(), secret.to_vec());
        Ok(())
    }
    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyStoreError> {
        Ok(self.0.lock().unwrap().get(name).cloned().map(Zeroizing::new))
    }
    fn delete(&self, name: &str) -> Result<bool, KeyStoreError> {
        Ok(self.0.lock().unwrap().remove(name).is_some())
    }
}

/// A keychain waiting on an unlock prompt (for longer than the store's timeout; not forever, so
/// the test runtime's shutdown, which waits for blocking threads, stays short).
struct Hung;

impl SecretBackend for Hung {
    fn set(&self, _: &str, _: &[u8]) -> Result<(), KeyStoreError> {
        std::thread::sleep(Duration::from_secs(2));
        Ok(())
    }
    fn get(&self, _: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyStoreError> {
        std::thread::sleep(Duration::from_secs(2));
        Ok(None)
    }
    fn delete(&self, _: &str) -> Result<bool, KeyStoreError> {
        Ok(false)
    }
}

#[tokio::test]
async fn round_trip_and_delete() {
    let mem = Arc::new(Memory::default());
    let ks = KeyStore::with_backend(mem.clone(), TIMEOUT);
    let key = generate_ed25519("tether:t");
    ks.store("t", &key).await.unwrap();
    let raw = mem.0.lock().unwrap().get("t").cloned().unwrap();
    assert!(raw.len() < MAX_SECRET, "{} bytes", raw.len());
    assert!(
        String::from_utf8(raw)
            .unwrap()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
    );
    let back = ks.load("t").await.unwrap();
    assert_eq!(back.public_key(), key.public_key());
    assert!(ks.contains("t").await.unwrap());
    assert!(ks.delete("t").await.unwrap());
    assert!(!ks.delete("t").await.unwrap());
    let err = ks.load("t").await.unwrap_err();
    assert!(matches!(err, KeyStoreError::NoKey(_)), "{err}");
    assert!(err.to_string().contains("tether key gen t"), "{err}");
}

#[tokio::test]
async fn a_hung_keychain_times_out_with_the_way_out() {
    let ks = KeyStore::with_backend(Arc::new(Hung), Duration::from_millis(200));
    let started = std::time::Instant::now();
    let err = ks.load("k").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, KeyStoreError::Timeout), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("ssh-agent") && msg.contains("--identity"), "{msg}");
}

#[tokio::test]
async fn garbage_in_the_keychain_is_reported_not_used() {
    let mem = Arc::new(Memory::default());
    mem.set("bad", b"not a key").unwrap();
    let ks = KeyStore::with_backend(mem, TIMEOUT);
    let err = ks.load("bad").await.unwrap_err();
    assert!(matches!(err, KeyStoreError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn two_installs_on_one_keychain_keep_their_own_keys_and_nothing_is_overwritten() {
    let mem = Arc::new(Memory::default());
    let a = KeyStore::with_backend(mem.clone(), TIMEOUT).scoped("aaaa000000000001");
    let b = KeyStore::with_backend(mem.clone(), TIMEOUT).scoped("bbbb000000000002");
    let (ka, kb) = (generate_ed25519("a"), generate_ed25519("b"));
    a.store("work", &ka).await.unwrap();
    b.store("work", &kb).await.unwrap();
    assert_eq!(a.load("work").await.unwrap().public_key(), ka.public_key());
    assert_eq!(b.load("work").await.unwrap().public_key(), kb.public_key());
    // Storing again under a taken name is refused and changes nothing.
    let err = a.store("work", &kb).await.unwrap_err();
    assert!(matches!(err, KeyStoreError::Exists(_)), "{err}");
    assert_eq!(a.load("work").await.unwrap().public_key(), ka.public_key());
    // Only an explicit replace overwrites.
    a.replace("work", &kb).await.unwrap();
    assert_eq!(a.load("work").await.unwrap().public_key(), kb.public_key());
    // Removing one install's key leaves the other's.
    assert!(b.delete("work").await.unwrap());
    assert!(a.contains("work").await.unwrap());
}

#[tokio::test]
async fn a_key_filed_before_scoping_is_still_found() {
    let mem = Arc::new(Memory::default());
    let old = KeyStore::with_backend(mem.clone(), TIMEOUT);
    let k = generate_ed25519("old");
    old.store("legacy", &k).await.unwrap();
    let scoped = KeyStore::with_backend(mem.clone(), TIMEOUT).scoped("aaaa000000000001");
    assert_eq!(scoped.load("legacy").await.unwrap().public_key(), k.public_key());
    assert!(scoped.delete("legacy").await.unwrap());
    assert!(!old.contains("legacy").await.unwrap());
}
