//! Docker CLI contexts for Tether's VMs: `tether-NAME` for each VM and `tether` for the active
//! one, written into the docker CLI's own context store (`$DOCKER_CONFIG/contexts`, default
//! `~/.docker/contexts`) so that `docker context ls` and `docker --context tether-arm …` work.
//!
//! Only contexts this Tether install made (marked `"ManagedBy": "tether"` and its install id in
//! their metadata) are ever changed or removed. The user's other contexts, another install's
//! (another `TETHER_HOME`) and the current context are never touched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MARK: &str = "tether";

/// One context Tether wants to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub name: String,
    pub description: String,
    /// `unix:///…/docker.sock`
    pub host: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(
        "cannot write docker context '{name}' in {dir}: {source}; `docker --context` will not know it (DOCKER_HOST still works)"
    )]
    Write {
        name: String,
        /// Shown only; a `String` keeps the error within 64 bytes where a path takes 32.
        dir: String,
        source: std::io::Error,
    },
    #[error(
        "a docker context named '{0}' already exists and was not made by Tether; it was left alone. Rename it to let Tether create its own"
    )]
    Foreign(String),
    #[error(
        "docker context '{name}' belongs to another Tether install ({home}); it was left alone. Rename the VM in one \
         of them, or use this one through DOCKER_HOST"
    )]
    OtherInstall { name: String, home: String },
    #[error("{path} is not valid JSON ({message}); fix it by hand, then try again. It was left untouched")]
    CorruptConfig { path: PathBuf, message: String },
}

/// The docker CLI's context store.
#[derive(Debug, Clone)]
pub struct ContextStore {
    config: PathBuf,
    meta: PathBuf,
    /// This install's id and home, written into each context it makes.
    install: String,
    home: String,
}

impl ContextStore {
    /// `$DOCKER_CONFIG/contexts/meta`, else `~/.docker/contexts/meta`.
    pub fn from_env(install: &str, home: &str) -> Option<Self> {
        // Else where the docker CLI looks: its home directory, which on Windows is the profile
        // (HOME there is whatever a Unix-like shell left behind, if anything).
        let home_dir = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
        let config = std::env::var_os("DOCKER_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os(home_dir).map(|h| Path::new(&h).join(".docker")))?;
        Some(Self::at(&config, install, home))
    }

    /// The store of the docker config directory `config`, for the install `install` (whose
    /// config lives in `home`, named in messages to the other installs).
    pub fn at(config: &Path, install: &str, home: &str) -> Self {
        Self {
            config: config.to_path_buf(),
            meta: config.join("contexts").join("meta"),
            install: install.to_string(),
            home: home.to_string(),
        }
    }

    /// The docker CLI files a context's metadata under the SHA-256 of its name.
    fn dir_of(&self, name: &str) -> PathBuf {
        self.meta.join(format!("{:x}", Sha256::digest(name.as_bytes())))
    }

    fn read(&self, dir: &Path) -> Option<Value> {
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()
    }

    fn tethers(v: &Value) -> bool {
        v["Metadata"]["ManagedBy"] == MARK
    }

    /// Made by this install. A Tether context without an install id predates scoping: it may
    /// be replaced by a wanted one, but is never removed.
    fn mine(&self, v: &Value) -> bool {
        Self::tethers(v) && v["Metadata"]["TetherInstall"] == self.install.as_str()
    }

    /// Contexts this install made, by name.
    pub fn managed(&self) -> BTreeMap<String, PathBuf> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(&self.meta).into_iter().flatten().flatten() {
            if let Some(v) = self.read(&e.path())
                && self.mine(&v)
                && let Some(name) = v["Name"].as_str()
            {
                out.insert(name.to_string(), e.path());
            }
        }
        out
    }

    /// Makes Tether's contexts exactly `wanted`: writes those that differ, removes Tether's
    /// others. Returns the problems met; each context is handled on its own.
    pub fn sync(&self, wanted: &[Wanted]) -> Vec<ContextError> {
        let mut problems = Vec::new();
        for w in wanted {
            if let Err(e) = self.write(w) {
                problems.push(e);
            }
        }
        for (name, dir) in self.managed() {
            if !wanted.iter().any(|w| w.name == name) {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        problems
    }

    /// The docker CLI's current context (`currentContext` in config.json), if one is set.
    pub fn current(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&std::fs::read(self.config.join("config.json")).ok()?).ok()?;
        v["currentContext"].as_str().map(str::to_string)
    }

    /// Makes `name` the docker CLI's current context, as `docker context use` does, keeping
    /// every other setting in config.json. Only ever called when the user asked for it.
    pub fn set_current(&self, name: &str) -> Result<(), ContextError> {
        let path = self.config.join("config.json");
        let mut doc: Value = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ContextError::CorruptConfig {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
            Err(source) => {
                return Err(ContextError::Write {
                    name: name.into(),
                    dir: self.config.display().to_string(),
                    source,
                });
            }
        };
        let Some(obj) = doc.as_object_mut() else {
            return Err(ContextError::CorruptConfig {
                path,
                message: "not a JSON object".into(),
            });
        };
        obj.insert("currentContext".into(), Value::String(name.into()));
        self.write_atomically(&self.config, "config.json", &doc, name)
    }

    fn write_atomically(&self, dir: &Path, file: &str, doc: &Value, name: &str) -> Result<(), ContextError> {
        let err = |source| ContextError::Write {
            name: name.to_string(),
            dir: dir.display().to_string(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(doc).map_err(|e| err(std::io::Error::other(e)))?;
        crate::paths::write_atomic(&dir.join(file), &bytes).map_err(err)
    }

    fn write(&self, w: &Wanted) -> Result<(), ContextError> {
        let dir = self.dir_of(&w.name);
        let doc = json!({
            "Name": w.name,
            "Metadata": {
                "Description": w.description,
                "ManagedBy": MARK,
                "TetherInstall": self.install,
                "TetherHome": self.home,
            },
            "Endpoints": { "docker": { "Host": w.host, "SkipTLSVerify": false } },
        });
        match self.read(&dir) {
            Some(existing) if !Self::tethers(&existing) => return Err(ContextError::Foreign(w.name.clone())),
            Some(existing) if existing == doc => return Ok(()),
            Some(existing) if !self.mine(&existing) && existing["Metadata"]["TetherInstall"].is_string() => {
                return Err(ContextError::OtherInstall {
                    name: w.name.clone(),
                    home: existing["Metadata"]["TetherHome"]
                        .as_str()
                        .unwrap_or("another TETHER_HOME")
                        .to_string(),
                });
            }
            _ => {}
        }
        self.write_atomically(&dir, "meta.json", &doc, &w.name)
    }
}

#[cfg(test)]
#[path = "tests/contexts.rs"]
mod tests;
