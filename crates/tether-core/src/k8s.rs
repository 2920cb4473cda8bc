//! The engine's Kubernetes operations: tunnel a VM's API server and name it `tether-NAME` in the
//! user's kubeconfig, answer kubectl's credential requests from the VM, and undo both.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::api::KubeView;
use crate::config::{ConfigError, KubeLink, PortMap};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::kube::{self, Entry, Remote};

/// Where a VM's kubeconfig usually is, tried in order when none is named: kubeadm's and kind's
/// copy in the login's home, then k3s's.
const CANDIDATES: &[&str] = &["~/.kube/config", "/etc/rancher/k3s/k3s.yaml"];
/// Reading a kubeconfig on the VM is one short command.
const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// What `kube_enable` is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(optional_fields)]
pub struct KubeSetup {
    /// The VM's kubeconfig; none tries the usual places.
    #[serde(default)]
    pub config: Option<String>,
    /// The laptop's port; none takes the API server's own if free and not on
    /// `settings.auto_forward_deny`, else any free one.
    #[serde(default)]
    pub local: Option<u16>,
    /// The user's kubeconfig to write (the client's KUBECONFIG, or ~/.kube/config).
    pub kubeconfig: PathBuf,
    /// What kubectl runs for credentials: the client's own `tether` and its arguments.
    pub exec: Vec<String>,
}

/// `cat` of `path` on the VM, `~/` being the login's home.
fn cat(path: &str) -> String {
    match path.strip_prefix("~/") {
        Some(rest) => format!("cat -- \"$HOME\"/{}", crate::remote::quote(rest)),
        None => format!("cat -- {}", crate::remote::quote(path)),
    }
}

/// Whether this laptop's `port` on 127.0.0.1 can be bound now.
fn free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

impl Engine {
    /// Reads the VM's kubeconfig over the live link: the given one, or the first of the usual
    /// places that exists. Answers its path and what it says.
    async fn remote_kubeconfig(&self, vm: &str, path: Option<&str>) -> Result<(String, Remote), EngineError> {
        let (name, session) = self.session(Some(vm)).await?;
        let link = session
            .link()
            .ok_or_else(|| EngineError::NotConnected { vm: name.clone() })?;
        let tried: Vec<&str> = match path {
            Some(p) => vec![p],
            None => CANDIDATES.to_vec(),
        };
        let mut failures = Vec::new();
        for p in &tried {
            let out = crate::remote::run(&link, &cat(p), None, READ_TIMEOUT)
                .await
                .map_err(|message| EngineError::Remote {
                    vm: name.clone(),
                    message,
                })?;
            if out.success() {
                return Ok((p.to_string(), kube::parse_remote(p, &out.stdout)?));
            }
            failures.push(format!("{p}: {}", out.stderr.lines().last().unwrap_or("not readable")));
        }
        let k3s = failures.iter().any(|f| f.contains("k3s") && f.contains("ermission"));
        Err(ConfigError::Invalid(format!(
            "no kubeconfig Tether can read on '{name}' ({}); {}",
            failures.join("; "),
            if k3s {
                "k3s writes its kubeconfig for root only: start k3s with --write-kubeconfig-mode 644, or copy it \
                 with `sudo k3s kubectl config view --raw > ~/.kube/config`"
            } else {
                "name the file with --config PATH"
            }
        ))
        .into())
    }

    /// Tunnels the VM's Kubernetes API server to this laptop and writes the `tether-NAME`
    /// context into the user's kubeconfig. The tunnel is one of the VM's saved tunnels, so it is
    /// restored on every reconnect.
    pub async fn kube_enable(&self, vm: Option<&str>, setup: KubeSetup) -> Result<KubeView, EngineError> {
        let (name, _) = self.session(vm).await?;
        let (config, remote) = self.remote_kubeconfig(&name, setup.config.as_deref()).await?;
        let cfg = self.config().await;
        let old = cfg.vm(&name)?.kube.clone();
        // The API server's own port only if it is not one local clients of a well-known service
        // use (an API server on the VM's 5432 would otherwise answer this laptop's psql).
        let deny = &cfg.settings.auto_forward_deny;
        let local = match (setup.local, &old) {
            (Some(p), _) => p,
            (None, Some(o)) if o.remote == remote.port => o.local,
            (None, _) if free(remote.port) && !deny.contains(&remote.port) => remote.port,
            (None, _) => std::net::TcpListener::bind(("127.0.0.1", 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| EngineError::Internal {
                    what: "port finder",
                    message: e.to_string(),
                })?,
        };
        let link = KubeLink {
            config: config.clone(),
            local,
            remote: remote.port,
            server_name: remote.host.clone(),
            kubeconfig: setup.kubeconfig.clone(),
        };
        let saved = link.clone();
        self.change_tunnels(Some(&name), move |p| {
            if let Some(o) = &p.kube {
                p.forwards.retain(|f| f.local != o.local);
            }
            p.add_forward(PortMap {
                local,
                remote: remote.port,
            })?;
            p.kube = Some(saved);
            Ok(())
        })
        .await?;
        let path = setup.kubeconfig.clone();
        let entry = Entry {
            vm: &name,
            local_port: local,
            remote: &remote,
            exec: &setup.exec,
        };
        let written = kube::read(&path)
            .and_then(|existing| kube::install(&path, existing.as_deref(), &entry))
            .and_then(|text| kube::write(&path, &text));
        if let Err(e) = written {
            // Nothing half done: the tunnel goes with the kubeconfig that would have named it.
            let _ = self
                .change_tunnels(Some(&name), |p| {
                    p.forwards.retain(|f| f.local != local);
                    p.kube = old;
                    Ok(())
                })
                .await;
            return Err(e.into());
        }
        tracing::info!(vm = %name, local, remote = remote.port, kubeconfig = %path.display(), "Kubernetes API tunnelled");
        Ok(KubeView::of(&name, &link))
    }

    /// Removes the VM's Kubernetes tunnel and its `tether-NAME` entries from the kubeconfig.
    pub async fn kube_disable(&self, vm: Option<&str>) -> Result<(), EngineError> {
        let (name, _) = self.session(vm).await?;
        let Some(link) = self.config().await.vm(&name)?.kube.clone() else {
            return Err(ConfigError::Coded {
                code: crate::advice::ErrorCode::NoKubeTunnel,
                message: format!("'{name}' has no Kubernetes tunnel; `tether kube {name}` sets one up"),
                details: None,
            }
            .into());
        };
        self.change_tunnels(Some(&name), |p| {
            p.forwards.retain(|f| f.local != link.local);
            p.kube = None;
            Ok(())
        })
        .await?;
        forget_kubeconfig(&link, &name)
    }

    /// What kubectl's exec plugin prints for `tether-NAME`: the VM's credentials, read from the
    /// VM now, so none is ever stored on this laptop.
    pub async fn kube_credential(&self, vm: &str) -> Result<serde_json::Value, EngineError> {
        let Some(link) = self.config().await.vm(vm)?.kube.clone() else {
            return Err(ConfigError::Coded {
                code: crate::advice::ErrorCode::NoKubeTunnel,
                message: format!("'{vm}' has no Kubernetes tunnel; `tether kube {vm}` sets one up"),
                details: None,
            }
            .into());
        };
        let (_, remote) = self.remote_kubeconfig(vm, Some(&link.config)).await?;
        Ok(kube::exec_credential(&remote.auth))
    }
}

/// Takes the VM's `tether-NAME` entries out of the kubeconfig they were written to.
pub(crate) fn forget_kubeconfig(link: &KubeLink, vm: &str) -> Result<(), EngineError> {
    let Some(text) = kube::read(&link.kubeconfig)? else {
        return Ok(());
    };
    if let Some(text) = kube::uninstall(&link.kubeconfig, &text, vm)? {
        kube::write(&link.kubeconfig, &text)?;
    }
    Ok(())
}
