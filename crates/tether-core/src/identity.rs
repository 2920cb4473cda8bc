//! Where the private keys for a login come from, behind one trait so the OS keychain can join.
//!
//! A [`Credentials`] source yields [`Credential`]s to try in order, like OpenSSH's
//! IdentityFile-then-agent order. Key material stays in memory (zeroised on drop by ssh-key) and
//! is never written anywhere by this module.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::Rng as _;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};
use zeroize::Zeroizing;

use crate::config::Profile;
use crate::keystore::Keys;
use crate::target::Target;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read key file {path}: {source}; check the path given with --identity")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("key file {path} is protected by a passphrase; enter it when asked, or set TETHER_KEY_PASSPHRASE")]
    PassphraseRequired { path: PathBuf },
    #[error("wrong passphrase for key file {path}; try again, or check TETHER_KEY_PASSPHRASE")]
    WrongPassphrase { path: PathBuf },
    #[error("{path} is not an OpenSSH private key ({message}); convert it with `ssh-keygen -p -f {path}`")]
    Format { path: PathBuf, message: String },
    #[error(transparent)]
    Keychain(#[from] crate::keystore::KeyStoreError),
}

/// One way to prove who we are.
#[derive(Clone)]
pub enum Credential {
    /// A decoded private key, labelled for messages (file path or keychain name).
    Key { label: String, key: Arc<PrivateKey> },
    /// Every key the running ssh-agent at this socket offers.
    Agent { socket: PathBuf },
    /// A password, for the one login that installs a key; never stored.
    Password(Arc<Zeroizing<String>>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Key { label, key } => {
                write!(f, "Key({label}, {})", key.public_key().fingerprint(HashAlg::Sha256))
            }
            Credential::Agent { socket } => write!(f, "Agent({})", socket.display()),
            Credential::Password(_) => f.write_str("Password(***)"),
        }
    }
}

/// A source of credentials for one login.
pub trait Credentials: Send + Sync {
    /// Credentials to try, in order. Errors are for sources the user named explicitly.
    fn credentials(&self, passphrase: Option<&str>) -> Result<Vec<Credential>, IdentityError>;
}

/// Key files (the profile's `identity`, then ~/.ssh/config's IdentityFile), the agent, then the
/// default key files, as OpenSSH tries them.
pub struct FileAndAgent {
    /// Files the user named; problems with these are errors.
    pub explicit: Vec<PathBuf>,
    /// Whether to fall back to ssh-agent and ~/.ssh/id_* when nothing explicit is given.
    pub defaults: bool,
}

impl Credentials for FileAndAgent {
    fn credentials(&self, passphrase: Option<&str>) -> Result<Vec<Credential>, IdentityError> {
        let mut out = Vec::new();
        for path in &self.explicit {
            out.push(Credential::Key {
                label: path.display().to_string(),
                key: Arc::new(load_key(path, passphrase)?),
            });
        }
        if !self.defaults || !out.is_empty() {
            return Ok(out);
        }
        if let Some(sock) = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
            out.push(Credential::Agent {
                socket: PathBuf::from(sock),
            });
        }
        if let Some(home) = std::env::var_os("HOME") {
            for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                let path = Path::new(&home).join(".ssh").join(name);
                // Default keys are best effort: an encrypted one without a passphrase is skipped.
                if let Ok(key) = load_key(&path, passphrase) {
                    out.push(Credential::Key {
                        label: path.display().to_string(),
                        key: Arc::new(key),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Credentials decided beforehand (a key from the keychain, a key being verified).
pub struct Fixed(pub Vec<Credential>);

impl Credentials for Fixed {
    fn credentials(&self, _passphrase: Option<&str>) -> Result<Vec<Credential>, IdentityError> {
        Ok(self.0.clone())
    }
}

/// Reads and decrypts an OpenSSH private key file.
pub fn load_key(path: &Path, passphrase: Option<&str>) -> Result<PrivateKey, IdentityError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| IdentityError::Read {
        path: path.to_path_buf(),
        source,
    })?);
    decode_key(&text, path, passphrase)
}

/// Decodes key text; `path` only labels errors.
pub fn decode_key(text: &str, path: &Path, passphrase: Option<&str>) -> Result<PrivateKey, IdentityError> {
    let key = PrivateKey::from_openssh(text.trim()).map_err(|e| IdentityError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if !key.is_encrypted() {
        return Ok(key);
    }
    let Some(pass) = passphrase else {
        return Err(IdentityError::PassphraseRequired {
            path: path.to_path_buf(),
        });
    };
    key.decrypt(pass).map_err(|_| IdentityError::WrongPassphrase {
        path: path.to_path_buf(),
    })
}

/// A new ed25519 key (the only type Tether generates: small enough for every OS keychain).
pub fn generate_ed25519(comment: &str) -> PrivateKey {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(seed.as_mut());
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment(comment);
    key
}

/// What a VM logs in with: its keychain key, or else its key files, ssh-agent and the default
/// keys, as OpenSSH would try them.
pub async fn credentials_for(
    profile: &Profile,
    target: &Target,
    keys: &Keys,
) -> Result<Box<dyn Credentials>, IdentityError> {
    Ok(match &profile.key {
        Some(name) => {
            let key = keys.load(name).await?;
            Box::new(Fixed(vec![Credential::Key {
                label: format!("keychain key '{name}'"),
                key,
            }]))
        }
        None => Box::new(FileAndAgent {
            explicit: target.identity_files.clone(),
            defaults: true,
        }),
    })
}

/// Who is offered what on one connection: the VM's credentials, and those its jump hosts are
/// offered after their own IdentityFile entries. They differ when the VM's login is a special
/// one (a password typed to install a key, a new key being proven): a hop is still offered what
/// it usually takes, and never the VM's password.
#[derive(Clone)]
pub struct Logins {
    pub vm: Arc<dyn Credentials>,
    pub hops: Arc<dyn Credentials>,
}

impl Logins {
    /// One source for the VM and its hops.
    pub fn same(source: Arc<dyn Credentials>) -> Logins {
        Logins {
            vm: source.clone(),
            hops: source,
        }
    }
}

/// The usual logins of a VM: its keychain key, or else its key files, ssh-agent and the default
/// keys. Its hops are offered the same and, behind a keychain key, the key files, agent and
/// default keys too (best effort): a bastion often takes the user's own key rather than one a
/// VM was given.
pub async fn logins_for(profile: &Profile, target: &Target, keys: &Keys) -> Result<Logins, IdentityError> {
    let vm: Arc<dyn Credentials> = credentials_for(profile, target, keys).await?.into();
    let hops: Arc<dyn Credentials> = if profile.key.is_some() && !target.jumps.is_empty() {
        Arc::new(Chain(vec![
            vm.clone(),
            Arc::new(BestEffort(FileAndAgent {
                explicit: target.identity_files.clone(),
                defaults: true,
            })),
        ]))
    } else {
        vm.clone()
    };
    Ok(Logins { vm, hops })
}

/// What a jump host is logged in with: its own IdentityFile entries first, then `hops` (a bastion
/// usually takes the same key as the VMs behind it), never a password.
pub fn for_hop(hop: &Target, hops: Arc<dyn Credentials>) -> Arc<dyn Credentials> {
    let mut sources: Vec<Arc<dyn Credentials>> = Vec::new();
    if !hop.identity_files.is_empty() {
        sources.push(Arc::new(FileAndAgent {
            explicit: hop.identity_files.clone(),
            defaults: false,
        }));
    }
    sources.push(hops);
    Arc::new(NoPassword(Chain(sources)))
}

/// Several sources, in order.
struct Chain(Vec<Arc<dyn Credentials>>);

impl Credentials for Chain {
    fn credentials(&self, passphrase: Option<&str>) -> Result<Vec<Credential>, IdentityError> {
        let mut out = Vec::new();
        for source in &self.0 {
            out.extend(source.credentials(passphrase)?);
        }
        Ok(out)
    }
}

/// A source whose problems are nobody's business: what it yields, or nothing.
struct BestEffort<C>(C);

impl<C: Credentials> Credentials for BestEffort<C> {
    fn credentials(&self, passphrase: Option<&str>) -> Result<Vec<Credential>, IdentityError> {
        Ok(self.0.credentials(passphrase).unwrap_or_default())
    }
}

/// A source with its passwords left out: a password is typed for one host.
struct NoPassword<C>(C);

impl<C: Credentials> Credentials for NoPassword<C> {
    fn credentials(&self, passphrase: Option<&str>) -> Result<Vec<Credential>, IdentityError> {
        let mut out = self.0.credentials(passphrase)?;
        out.retain(|c| !matches!(c, Credential::Password(_)));
        Ok(out)
    }
}

#[cfg(test)]
#[path = "tests/identity.rs"]
mod tests;
