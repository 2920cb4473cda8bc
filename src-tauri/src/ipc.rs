//! Tauri commands of the window: thin adapters from the page's IPC calls to control-socket
//! requests to the engine. No logic lives here; errors cross as `{code, message}`, the shape
//! the control API already uses.
//!
//! Longer than 500 lines on purpose: one adapter per command the window calls, each a few lines.

use std::io::Write as _;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tauri::State;
use tauri_plugin_autostart::ManagerExt as _;
use tether_core::api::{
    Check, ConnectReport, ConnectionSettings, ContainerView, HealthReport, HostKeyScan, KeyView, KubeView, SshHost,
    TimedEvent, VmStatus,
};
use tether_core::config::{Arch, Config, ConfigError, PortMap, ReverseMap};
use tether_core::containers::Action;
use tether_core::control::{Client, ClientError, ErrorBody, Request};
use tether_core::error::EngineError;

use crate::service::TRAY_REFRESH;
use tokio_util::sync::CancellationToken;

/// Where the engine is, and whether a service started this window.
pub struct Ipc {
    pub socket: PathBuf,
    pub attached: bool,
    /// Log tails being followed, by container id.
    pub follows: std::sync::Mutex<std::collections::HashMap<String, CancellationToken>>,
}

/// The error every command returns: `{code, message}`.
#[derive(Debug, Serialize)]
pub struct IpcError(ErrorBody);

impl IpcError {
    fn new(code: &str, message: impl Into<String>) -> Self {
        IpcError(ErrorBody {
            code: code.into(),
            message: message.into(),
            details: None,
        })
    }
}

impl From<ClientError> for IpcError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Remote(body) => IpcError(body),
            ClientError::NotRunning(_) => IpcError::new(
                "engine_unreachable",
                "the Tether engine is not running; start Tether again (it lives in the tray)",
            ),
            other => IpcError::new("engine", other.to_string()),
        }
    }
}

impl From<ConfigError> for IpcError {
    fn from(e: ConfigError) -> Self {
        IpcError(ErrorBody::from(&EngineError::from(e)))
    }
}

type Res<T> = Result<T, IpcError>;

/// One request to the engine, its reply decoded as `T`.
async fn call<T: DeserializeOwned>(ipc: &Ipc, req: Request) -> Res<T> {
    let mut client = Client::connect(&ipc.socket).await?;
    let value = client.call(&req).await?;
    serde_json::from_value(value).map_err(|e| IpcError::new("engine", format!("unexpected reply from the engine: {e}")))
}

/// A VM as the add form sends it.
#[derive(Debug, Deserialize)]
pub struct NewVm {
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub arch: Option<String>,
    pub identity: Option<String>,
    pub remote_socket: Option<String>,
    /// Jump hosts, `[user@]host[:port]` separated by commas.
    #[serde(default)]
    pub jump: Option<String>,
}

impl NewVm {
    /// The form's fields with blanks as "not given".
    fn into_connection(self) -> Result<ConnectionSettings, IpcError> {
        Ok(ConnectionSettings {
            host: self.host.trim().to_string(),
            port: self.port,
            user: self.user.filter(|u| !u.trim().is_empty()),
            arch: self
                .arch
                .filter(|a| !a.is_empty())
                .map(|a| a.parse::<Arch>())
                .transpose()?,
            identity: self.identity.filter(|i| !i.trim().is_empty()).map(Into::into),
            remote_socket: self.remote_socket.filter(|s| !s.trim().is_empty()),
            jump: self.jump.map(|j| j.trim().to_string()).filter(|j| !j.is_empty()),
        })
    }
}

/// What the Settings view shows.
#[derive(Debug, Serialize)]
pub struct SettingsDto {
    pub notifications: bool,
    pub start_at_login: bool,
    pub auto_forward: bool,
    pub privileged_ports: bool,
}

#[tauri::command]
pub async fn status(ipc: State<'_, Ipc>) -> Res<Vec<VmStatus>> {
    call(&ipc, Request::Status).await
}

#[tauri::command]
pub async fn connect(ipc: State<'_, Ipc>, name: String, fingerprint: Option<String>) -> Res<VmStatus> {
    let req = Request::Connect {
        name: Some(name),
        accept_new: false,
        fingerprint,
        passphrase: None,
    };
    Ok(call::<ConnectReport>(&ipc, req).await?.status)
}

#[tauri::command]
pub async fn disconnect(ipc: State<'_, Ipc>, name: String) -> Res<()> {
    call::<serde_json::Value>(
        &ipc,
        Request::Disconnect {
            name: Some(name),
            all: false,
        },
    )
    .await
    .map(drop)
}

#[tauri::command]
pub async fn use_vm(ipc: State<'_, Ipc>, name: String) -> Res<()> {
    call::<serde_json::Value>(&ipc, Request::Use { name }).await.map(drop)
}

#[tauri::command]
pub async fn add_vm(ipc: State<'_, Ipc>, name: String, vm: NewVm) -> Res<()> {
    call::<serde_json::Value>(
        &ipc,
        Request::VmAdd {
            name,
            profile: vm.into_connection()?.into_profile(),
        },
    )
    .await
    .map(drop)
}

/// Changes a VM's connection settings from the form; its key, tunnels and options stay.
#[tauri::command]
pub async fn update_vm(ipc: State<'_, Ipc>, name: String, vm: NewVm) -> Res<()> {
    let connection = vm.into_connection()?;
    call::<serde_json::Value>(&ipc, Request::VmSetConnection { name, connection })
        .await
        .map(drop)
}

#[tauri::command]
pub async fn remove_vm(ipc: State<'_, Ipc>, name: String) -> Res<()> {
    call::<serde_json::Value>(&ipc, Request::VmRemove { name })
        .await
        .map(drop)
}

#[tauri::command]
pub async fn add_forward(ipc: State<'_, Ipc>, name: String, spec: String) -> Res<Vec<PortMap>> {
    let map: PortMap = spec.parse()?;
    call(
        &ipc,
        Request::TunnelAdd {
            name: Some(name),
            maps: vec![map],
        },
    )
    .await
}

#[tauri::command]
pub async fn remove_forward(ipc: State<'_, Ipc>, name: String, local: u16) -> Res<Vec<PortMap>> {
    call(
        &ipc,
        Request::TunnelRemove {
            name: Some(name),
            ports: vec![local],
        },
    )
    .await
}

/// Tunnels the VM's Kubernetes API and adds `tether-NAME` to the user's kubeconfig. kubectl
/// asks the `tether` CLI installed beside the app for credentials (from the VM, on demand).
#[tauri::command]
pub async fn kube_enable(ipc: State<'_, Ipc>, name: String, config: Option<String>) -> Res<KubeView> {
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(std::path::PathBuf::from)
        .unwrap_or_default();
    let kubeconfig = tether_core::kube::local_path(std::env::var("KUBECONFIG").ok().as_deref(), &home);
    // The packages put `tether` beside the app; elsewhere it is found on PATH.
    let cli = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(if cfg!(windows) { "tether.exe" } else { "tether" })))
        .filter(|p| p.is_file())
        .map_or_else(|| "tether".to_string(), |p| p.display().to_string());
    call(
        &ipc,
        Request::KubeEnable {
            name: Some(name.clone()),
            setup: tether_core::k8s::KubeSetup {
                config: config.map(|c| c.trim().to_string()).filter(|c| !c.is_empty()),
                local: None,
                kubeconfig,
                exec: vec![cli, "kube-credential".into(), name],
            },
        },
    )
    .await
}

#[tauri::command]
pub async fn kube_disable(ipc: State<'_, Ipc>, name: String) -> Res<()> {
    call::<serde_json::Value>(&ipc, Request::KubeDisable { name: Some(name) })
        .await
        .map(drop)
}

/// `spec` is `[BIND:]REMOTE[:LOCAL]`: the VM's side first, as `ssh -R` users write it.
#[tauri::command]
pub async fn add_reverse(ipc: State<'_, Ipc>, name: String, spec: String) -> Res<Vec<ReverseMap>> {
    let map: ReverseMap = spec.parse()?;
    call(
        &ipc,
        Request::ReverseAdd {
            name: Some(name),
            maps: vec![map],
        },
    )
    .await
}

#[tauri::command]
pub async fn remove_reverse(ipc: State<'_, Ipc>, name: String, remote: u16) -> Res<Vec<ReverseMap>> {
    call(
        &ipc,
        Request::ReverseRemove {
            name: Some(name),
            ports: vec![remote],
        },
    )
    .await
}

#[tauri::command]
pub async fn set_auto_connect(ipc: State<'_, Ipc>, name: String, on: bool) -> Res<()> {
    call::<serde_json::Value>(&ipc, Request::SetAutoConnect { name, on })
        .await
        .map(drop)
}

#[tauri::command]
pub async fn recent_events(ipc: State<'_, Ipc>, name: String) -> Res<Vec<TimedEvent>> {
    call(&ipc, Request::RecentEvents { name }).await
}

#[tauri::command]
pub async fn settings(app: tauri::AppHandle, ipc: State<'_, Ipc>) -> Res<SettingsDto> {
    let config: Config = call(&ipc, Request::VmList).await?;
    Ok(SettingsDto {
        notifications: config.settings.notifications,
        auto_forward: config.settings.auto_forward,
        privileged_ports: config.settings.privileged_ports,
        start_at_login: app.autolaunch().is_enabled().unwrap_or(false),
    })
}

#[tauri::command]
pub async fn set_notifications(ipc: State<'_, Ipc>, on: bool) -> Res<()> {
    call::<serde_json::Value>(&ipc, Request::SetNotifications { on })
        .await
        .map(drop)
}

#[tauri::command]
pub async fn ssh_hosts(ipc: State<'_, Ipc>) -> Res<Vec<SshHost>> {
    call(&ipc, Request::SshHosts).await
}

#[tauri::command]
pub async fn scan_host_key(ipc: State<'_, Ipc>, name: String) -> Res<HostKeyScan> {
    call(&ipc, Request::ScanHostKey { name }).await
}

#[tauri::command]
pub async fn trust_host_key(ipc: State<'_, Ipc>, name: String, fingerprint: String) -> Res<()> {
    call::<serde_json::Value>(&ipc, Request::TrustHostKey { name, fingerprint })
        .await
        .map(drop)
}

#[tauri::command]
pub async fn replace_host_key(ipc: State<'_, Ipc>, name: String, fingerprint: String) -> Res<()> {
    call::<serde_json::Value>(&ipc, Request::ReplaceHostKey { name, fingerprint })
        .await
        .map(drop)
}

#[tauri::command]
pub async fn key_gen(ipc: State<'_, Ipc>, name: String) -> Res<KeyView> {
    call(&ipc, Request::KeyGen { name }).await
}

#[tauri::command]
pub async fn key_import(ipc: State<'_, Ipc>, name: String, path: String, passphrase: Option<String>) -> Res<KeyView> {
    let passphrase = passphrase.filter(|p| !p.is_empty());
    call(
        &ipc,
        Request::KeyImport {
            name,
            path: path.trim().into(),
            passphrase: passphrase.map(Into::into),
        },
    )
    .await
}

#[tauri::command]
pub async fn key_show(ipc: State<'_, Ipc>, name: String) -> Res<KeyView> {
    call(&ipc, Request::KeyShow { name }).await
}

#[tauri::command]
pub async fn key_install(ipc: State<'_, Ipc>, vm: String, key: String, password: String) -> Res<KeyView> {
    call(
        &ipc,
        Request::KeyInstall {
            vm,
            key,
            password: password.into(),
        },
    )
    .await
}

/// Gives a VM a keychain key it can already log in with (the user ran the copied command).
#[tauri::command]
pub async fn use_key(ipc: State<'_, Ipc>, vm: String, key: String) -> Res<()> {
    call::<serde_json::Value>(&ipc, Request::VmSetKey { name: vm, key })
        .await
        .map(drop)
}

#[tauri::command]
pub async fn check_vm(ipc: State<'_, Ipc>, name: String) -> Res<Vec<Check>> {
    call(&ipc, Request::CheckVm { name }).await
}

/// Every check Tether depends on; the app's own PATH and DOCKER_HOST stand for the user's.
#[tauri::command]
pub async fn doctor(ipc: State<'_, Ipc>) -> Res<tether_core::doctor::Doctor> {
    let facts = tether_core::doctor::ClientFacts {
        path: std::env::var("PATH").ok(),
        docker_host: std::env::var("DOCKER_HOST").ok(),
    };
    call(&ipc, Request::Doctor { name: None, facts }).await
}

/// The engine's recent log lines, all or about one VM.
#[tauri::command]
pub async fn logs(ipc: State<'_, Ipc>, name: Option<String>, lines: usize) -> Res<Vec<tether_core::logring::LogLine>> {
    call(&ipc, Request::Logs { name, lines }).await
}

#[tauri::command]
pub async fn use_docker_context(ipc: State<'_, Ipc>, vm: Option<String>) -> Res<String> {
    call(&ipc, Request::UseDockerContext { vm }).await
}

#[tauri::command]
pub async fn health(ipc: State<'_, Ipc>, name: String) -> Res<HealthReport> {
    call(&ipc, Request::Health { name: Some(name) }).await
}

#[tauri::command]
pub async fn containers(ipc: State<'_, Ipc>, name: String) -> Res<Vec<ContainerView>> {
    call(&ipc, Request::Containers { name: Some(name) }).await
}

#[tauri::command]
pub async fn container_action(ipc: State<'_, Ipc>, name: String, id: String, action: Action) -> Res<()> {
    call::<serde_json::Value>(
        &ipc,
        Request::ContainerAction {
            name: Some(name),
            id,
            action,
        },
    )
    .await
    .map(drop)
}

/// Starts, stops or restarts a whole Compose project, in dependency order.
#[tauri::command]
pub async fn project_action(ipc: State<'_, Ipc>, name: String, project: String, action: Action) -> Res<Vec<String>> {
    call(
        &ipc,
        Request::ProjectAction {
            name: Some(name),
            project,
            action,
        },
    )
    .await
}

#[tauri::command]
pub async fn container_logs(ipc: State<'_, Ipc>, name: String, id: String, tail: usize) -> Res<Vec<String>> {
    call(
        &ipc,
        Request::ContainerLogs {
            name: Some(name),
            id,
            tail,
        },
    )
    .await
}

/// Sends a container's last 200 log lines, then each new one, to `on_line` until
/// `unfollow_logs` or the page goes away.
#[tauri::command]
pub async fn follow_logs(
    ipc: State<'_, Ipc>,
    name: String,
    id: String,
    on_line: tauri::ipc::Channel<String>,
) -> Res<()> {
    let mut client = Client::connect(&ipc.socket).await?;
    client
        .call(&Request::FollowLogs {
            name: Some(name),
            id: id.clone(),
            tail: 200,
        })
        .await?;
    let cancel = CancellationToken::new();
    if let Ok(mut f) = ipc.follows.lock()
        && let Some(old) = f.insert(id, cancel.clone())
    {
        old.cancel();
    }
    tauri::async_runtime::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                line = client.next_event() => match line {
                    Ok(Some(serde_json::Value::String(l))) => {
                        if on_line.send(l).is_err() {
                            break;
                        }
                    }
                    _ => break,
                },
            }
        }
    });
    Ok(())
}

#[tauri::command]
pub async fn unfollow_logs(ipc: State<'_, Ipc>, id: String) -> Res<()> {
    if let Ok(mut f) = ipc.follows.lock()
        && let Some(c) = f.remove(&id)
    {
        c.cancel();
    }
    Ok(())
}

/// Per VM when a name is given, else the default for all VMs.
#[tauri::command]
pub async fn set_auto_forward(ipc: State<'_, Ipc>, name: Option<String>, on: bool) -> Res<()> {
    call::<serde_json::Value>(&ipc, Request::SetAutoForward { name, on })
        .await
        .map(drop)
}

#[tauri::command]
pub async fn set_privileged_ports(ipc: State<'_, Ipc>, on: bool) -> Res<()> {
    call::<serde_json::Value>(&ipc, Request::SetPrivilegedPorts { on })
        .await
        .map(drop)
}

/// Opens http://127.0.0.1:PORT (a forward of a published port) in the default browser.
#[tauri::command]
pub async fn open_port(app: tauri::AppHandle, port: u16) -> Res<()> {
    use tauri_plugin_opener::OpenerExt as _;
    app.opener()
        .open_url(format!("http://127.0.0.1:{port}/"), None::<&str>)
        .map_err(|e| IpcError::new("open", format!("cannot open a browser: {e}")))
}

#[tauri::command]
pub async fn set_start_at_login(app: tauri::AppHandle, ipc: State<'_, Ipc>, on: bool) -> Res<()> {
    let al = app.autolaunch();
    let res = if on { al.enable() } else { al.disable() };
    res.map_err(|e| IpcError::new("autostart", format!("cannot change start at login: {e}")))?;
    if ipc.attached {
        // The tray's "Start at login" check item lives in the service process.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{TRAY_REFRESH}").and_then(|_| out.flush());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_as_code_and_message() {
        let body = ErrorBody {
            code: "no_such_vm".into(),
            message: "no VM named 'arm'".into(),
            details: Some(Box::new(tether_core::api::ErrorDetails::Vm { vm: "arm".into() })),
        };
        let e: IpcError = ClientError::Remote(body).into();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "no_such_vm");
        assert!(v["message"].as_str().unwrap().contains("arm"));
        assert_eq!(v["details"]["kind"], "vm");
        assert_eq!(v["details"]["vm"], "arm");
        // Code, message and the facts: nothing else crosses.
        assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    }

    #[test]
    fn a_missing_engine_says_what_to_do() {
        let e: IpcError = ClientError::NotRunning("/x/control.sock".into()).into();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "engine_unreachable");
        assert!(v["message"].as_str().unwrap().contains("start Tether"), "{v}");
    }

    #[test]
    fn bad_arch_from_the_form_is_a_config_error() {
        let vm = NewVm {
            host: "h".into(),
            port: None,
            user: None,
            arch: Some("sparc".into()),
            identity: None,
            remote_socket: None,
            jump: Some("  ".into()),
        };
        let v = serde_json::to_value(vm.into_connection().unwrap_err()).unwrap();
        assert_eq!(v["code"], "config_invalid");
        assert!(v["message"].as_str().unwrap().contains("arm64 or x86_64"));
    }
}
