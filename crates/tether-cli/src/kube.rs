//! `tether kube`: the VM's Kubernetes API tunnelled and named in the user's kubeconfig, `--off`
//! to undo it, and `kube-credential`, which kubectl runs for the credentials (read from the VM).

use std::path::PathBuf;

use anyhow::{Context, Result};
use tether_core::control::Request;
use tether_core::paths::Paths;

use crate::client::Engine;

pub async fn enable(paths: &Paths, name: Option<String>, config: Option<String>, local: Option<u16>) -> Result<()> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let kubeconfig = std::path::absolute(tether_core::kube::local_path(
        std::env::var("KUBECONFIG").ok().as_deref(),
        &home,
    ))?;
    let me = std::env::current_exe().context("finding this program for kubectl to run")?;
    let mut e = Engine::ensure(paths).await?;
    let view: tether_core::api::KubeView = e
        .ask(&Request::KubeEnable {
            name: name.clone(),
            setup: tether_core::k8s::KubeSetup {
                config,
                local,
                kubeconfig,
                exec: vec![
                    me.display().to_string(),
                    "kube-credential".into(),
                    name.unwrap_or_default(),
                ],
            },
        })
        .await?;
    // The server's name and the kubeconfig's path come from the VM: printed without their
    // control characters.
    let text = format!(
        "Kubernetes API of '{}' on 127.0.0.1:{} (the VM's port {}, certificate checked for {}), from {} on the VM
         context {} added to {}
  kubectl --context {} get nodes",
        view.vm, view.local, view.remote, view.server_name, view.config, view.context, view.kubeconfig, view.context
    );
    println!("{}", crate::output::clean(&text));
    Ok(())
}

pub async fn disable(paths: &Paths, name: Option<String>) -> Result<()> {
    let mut e = Engine::ensure(paths).await?;
    e.call(&Request::KubeDisable { name: name.clone() }).await?;
    println!("Kubernetes tunnel and kubeconfig entries removed");
    Ok(())
}

/// kubectl reads stdout as JSON and shows stderr: no engine is started for it.
pub async fn credential(paths: &Paths, name: String) -> Result<()> {
    let Some(mut e) = Engine::running(paths).await? else {
        anyhow::bail!("Tether is not running, so '{name}' is not connected: run `tether connect {name}`");
    };
    let cred = e.call(&Request::KubeCredential { name }).await?;
    println!("{cred}");
    Ok(())
}
