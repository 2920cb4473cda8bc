//! Kubernetes on a VM, reached from the laptop: the VM's kubeconfig read (its current context's
//! API server, CA and credentials), and the user's kubeconfig given a `tether-NAME` cluster,
//! user and context that point at the tunnel.
//!
//! Invariants: only entries named `tether-NAME` are ever added, changed or removed, and the file
//! is written atomically; no credential is written: the user entry runs `tether kube-credential
//! NAME`, which reads it from the VM when kubectl asks. The cluster entry keeps the VM's CA and
//! sets `tls-server-name` to the host the API server's certificate names, so TLS still verifies
//! though kubectl dials 127.0.0.1.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_norway::{Mapping, Value};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("the VM's kubeconfig {path} cannot be read as a kubeconfig: {message}")]
    Remote { path: String, message: String },
    #[error(
        "{path} is not a kubeconfig Tether can change ({message}); fix or move it, or set KUBECONFIG to another file"
    )]
    Local { path: PathBuf, message: String },
    #[error("cannot read {path} ({source}); fix its permissions or set KUBECONFIG to another file")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How kubectl proves who it is to the API server.
pub enum Auth {
    /// A client certificate and its key, PEM.
    Cert {
        cert: String,
        key: Zeroizing<String>,
    },
    Token(Zeroizing<String>),
}

/// The API server of the VM kubeconfig's current context.
pub struct Remote {
    /// The host the server URL names: what its certificate is checked against.
    pub host: String,
    /// Its port, reached on the VM's loopback (API servers listen on every address).
    pub port: u16,
    /// The cluster's CA, base64 of PEM as kubeconfig keeps it; none means the system's roots.
    pub ca_data: Option<String>,
    pub auth: Auth,
}

/// The `tether-NAME` entries' name.
pub fn entry_name(vm: &str) -> String {
    format!("tether-{vm}")
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping().and_then(|m| m.get(key))
}

fn get_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    get(v, key).and_then(Value::as_str)
}

/// The entry named `name` in the list `list` (`clusters`, `users`, `contexts`), its inner map.
fn named<'a>(doc: &'a Value, list: &str, inner: &str, name: &str) -> Option<&'a Value> {
    get(doc, list)?
        .as_sequence()?
        .iter()
        .find(|e| get_str(e, "name") == Some(name))
        .and_then(|e| get(e, inner))
}

/// Reads the VM's kubeconfig `text` (from `path`, for messages).
pub fn parse_remote(path: &str, text: &str) -> Result<Remote, KubeError> {
    let err = |message: String| KubeError::Remote {
        path: path.to_string(),
        message,
    };
    let doc: Value = serde_norway::from_str(text).map_err(|e| err(e.to_string()))?;
    let current = get_str(&doc, "current-context").ok_or_else(|| err("it has no current-context".into()))?;
    let ctx = named(&doc, "contexts", "context", current)
        .ok_or_else(|| err(format!("its current context '{current}' is not defined")))?;
    let cluster_name = get_str(ctx, "cluster").ok_or_else(|| err(format!("context '{current}' names no cluster")))?;
    let user_name = get_str(ctx, "user").unwrap_or_default();
    let cluster = named(&doc, "clusters", "cluster", cluster_name)
        .ok_or_else(|| err(format!("cluster '{cluster_name}' is not defined")))?;
    let server = get_str(cluster, "server").ok_or_else(|| err(format!("cluster '{cluster_name}' has no server")))?;
    let rest = server
        .strip_prefix("https://")
        .ok_or_else(|| err(format!("its server {server} is not an https:// URL")))?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (h, p.parse::<u16>().map_err(|_| err(format!("bad port in {server}")))?),
        _ => (hostport, 443),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    if host.is_empty() {
        return Err(err(format!("no host in {server}")));
    }
    if get(cluster, "certificate-authority").is_some() && get(cluster, "certificate-authority-data").is_none() {
        return Err(err(
            "its cluster names a CA file; Tether reads only inline data: on the VM, write one with \
             `kubectl config view --raw --flatten > ~/.kube/config`"
                .into(),
        ));
    }
    let ca_data = get_str(cluster, "certificate-authority-data").map(str::to_string);
    let user = named(&doc, "users", "user", user_name)
        .ok_or_else(|| err(format!("user '{user_name}' of context '{current}' is not defined")))?;
    let pem = |key: &str| -> Result<Option<String>, KubeError> {
        get_str(user, key)
            .map(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| err(format!("its {key} is not base64 of PEM")))
            })
            .transpose()
    };
    let auth = match (
        pem("client-certificate-data")?,
        pem("client-key-data")?,
        get_str(user, "token"),
    ) {
        (Some(cert), Some(key), _) => Auth::Cert {
            cert,
            key: Zeroizing::new(key),
        },
        (_, _, Some(token)) => Auth::Token(Zeroizing::new(token.to_string())),
        _ => {
            return Err(err(format!(
                "user '{user_name}' has neither inline client-certificate-data and client-key-data nor a \
                 token; on the VM, write one with `kubectl config view --raw --flatten > ~/.kube/config`"
            )));
        }
    };
    Ok(Remote {
        host,
        port,
        ca_data,
        auth,
    })
}

/// What kubectl's exec plugin prints: an ExecCredential with the VM's credentials.
pub fn exec_credential(auth: &Auth) -> serde_json::Value {
    let status = match auth {
        Auth::Cert { cert, key } => serde_json::json!({
            "clientCertificateData": cert,
            "clientKeyData": key.as_str(),
        }),
        Auth::Token(t) => serde_json::json!({ "token": t.as_str() }),
    };
    serde_json::json!({
        "apiVersion": EXEC_API,
        "kind": "ExecCredential",
        "status": status,
    })
}

/// The exec credential API every kubectl since 1.11 speaks.
const EXEC_API: &str = "client.authentication.k8s.io/v1beta1";

/// The user's kubeconfig: the first file of KUBECONFIG, else ~/.kube/config.
pub fn local_path(kubeconfig_env: Option<&str>, home: &Path) -> PathBuf {
    let sep = if cfg!(windows) { ';' } else { ':' };
    kubeconfig_env
        .and_then(|v| v.split(sep).find(|p| !p.is_empty()))
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".kube").join("config"))
}

/// What goes into the user's kubeconfig for one VM.
pub struct Entry<'a> {
    pub vm: &'a str,
    /// The laptop's end of the tunnel.
    pub local_port: u16,
    pub remote: &'a Remote,
    /// The program kubectl runs for credentials, and its arguments.
    pub exec: &'a [String],
}

fn mapping(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(Value::from(k), v);
    }
    Value::Mapping(m)
}

/// Replaces the named entry of list `list` (or appends it), leaving every other entry as it is.
fn upsert(doc: &mut Mapping, list: &str, entry: Value) {
    let name = get_str(&entry, "name").map(str::to_string);
    let seq = doc
        .entry(Value::from(list))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if !seq.is_sequence() {
        *seq = Value::Sequence(Vec::new());
    }
    if let Some(items) = seq.as_sequence_mut() {
        match items
            .iter_mut()
            .find(|e| get_str(e, "name").map(str::to_string) == name)
        {
            Some(slot) => *slot = entry,
            None => items.push(entry),
        }
    }
}

fn parse_local(path: &Path, existing: Option<&str>) -> Result<Mapping, KubeError> {
    let err = |message: String| KubeError::Local {
        path: path.to_path_buf(),
        message,
    };
    match existing.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(Mapping::new()),
        Some(text) => match serde_norway::from_str::<Value>(text).map_err(|e| err(e.to_string()))? {
            Value::Mapping(m) => Ok(m),
            Value::Null => Ok(Mapping::new()),
            _ => Err(err("it is not a mapping".into())),
        },
    }
}

/// `existing` (the file at `path`, if any) with the `tether-VM` cluster, user and context set.
/// The current context is set only when there is none.
pub fn install(path: &Path, existing: Option<&str>, e: &Entry<'_>) -> Result<String, KubeError> {
    let mut doc = parse_local(path, existing)?;
    let name = entry_name(e.vm);
    doc.entry(Value::from("apiVersion"))
        .or_insert_with(|| Value::from("v1"));
    doc.entry(Value::from("kind")).or_insert_with(|| Value::from("Config"));
    let mut cluster = vec![
        ("server", Value::from(format!("https://127.0.0.1:{}", e.local_port))),
        ("tls-server-name", Value::from(e.remote.host.clone())),
    ];
    if let Some(ca) = &e.remote.ca_data {
        cluster.push(("certificate-authority-data", Value::from(ca.clone())));
    }
    upsert(
        &mut doc,
        "clusters",
        mapping(vec![("name", Value::from(name.clone())), ("cluster", mapping(cluster))]),
    );
    let exec = mapping(vec![
        ("apiVersion", Value::from(EXEC_API)),
        ("command", Value::from(e.exec.first().cloned().unwrap_or_default())),
        (
            "args",
            Value::Sequence(e.exec.iter().skip(1).cloned().map(Value::from).collect()),
        ),
        ("interactiveMode", Value::from("Never")),
        ("provideClusterInfo", Value::from(false)),
    ]);
    upsert(
        &mut doc,
        "users",
        mapping(vec![
            ("name", Value::from(name.clone())),
            ("user", mapping(vec![("exec", exec)])),
        ]),
    );
    upsert(
        &mut doc,
        "contexts",
        mapping(vec![
            ("name", Value::from(name.clone())),
            (
                "context",
                mapping(vec![
                    ("cluster", Value::from(name.clone())),
                    ("user", Value::from(name.clone())),
                ]),
            ),
        ]),
    );
    let current = doc.get("current-context").and_then(Value::as_str).unwrap_or_default();
    if current.is_empty() {
        doc.insert(Value::from("current-context"), Value::from(name));
    }
    serde_norway::to_string(&Value::Mapping(doc)).map_err(|e| KubeError::Local {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// `existing` without the `tether-VM` entries (and without it as the current context); `None`
/// when there was nothing of Tether's to remove.
pub fn uninstall(path: &Path, existing: &str, vm: &str) -> Result<Option<String>, KubeError> {
    let mut doc = parse_local(path, Some(existing))?;
    let name = entry_name(vm);
    let mut removed = false;
    for list in ["clusters", "users", "contexts"] {
        if let Some(items) = doc.get_mut(list).and_then(Value::as_sequence_mut) {
            let before = items.len();
            items.retain(|e| get_str(e, "name") != Some(name.as_str()));
            removed |= items.len() != before;
        }
    }
    if doc.get("current-context").and_then(Value::as_str) == Some(name.as_str()) {
        doc.insert(Value::from("current-context"), Value::from(""));
        removed = true;
    }
    if !removed {
        return Ok(None);
    }
    serde_norway::to_string(&Value::Mapping(doc))
        .map(Some)
        .map_err(|e| KubeError::Local {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// The user's kubeconfig at `path`, `None` when there is none yet. A file that is there but
/// cannot be read (its mode, or bytes that are not UTF-8) is an error, never taken for absent:
/// writing over it would lose it.
pub fn read(path: &Path) -> Result<Option<String>, KubeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KubeError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `text` to the user's kubeconfig at `path` atomically: a new file is 0600 (kubectl
/// warns about a kubeconfig others can read), an existing one keeps its mode.
pub fn write(path: &Path, text: &str) -> Result<(), KubeError> {
    let werr = |source| KubeError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(werr)?;
    }
    crate::paths::write_atomic(path, text.as_bytes()).map_err(werr)
}

#[cfg(test)]
#[path = "tests/kube.rs"]
mod tests;
