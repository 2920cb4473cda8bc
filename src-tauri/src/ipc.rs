//! Tauri commands of the window. One command, `engine`, carries any control request the page
//! builds from the generated `Request` type (ui/src/lib/engine.gen.ts) to the engine and brings
//! back its reply, so a new engine request needs nothing here. The few others exist because only
//! this process knows what they need: its own environment (the doctor's PATH and DOCKER_HOST,
//! the kubeconfig and the `tether` beside the app), the OS's login items, the browser, and a
//! stream of log lines. Errors cross as `{code, message, details}`, the shape the control API
//! already uses.

use std::io::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tauri::State;
use tauri_plugin_autostart::ManagerExt as _;
use tether_core::api::{ErrorCode, KubeView};
use tether_core::config::Config;
use tether_core::control::{Client, ClientError, ErrorBody, Request};

use crate::service::TRAY_REFRESH;
use tokio_util::sync::CancellationToken;

/// Where the engine is, and whether a service started this window.
pub struct Ipc {
    pub socket: PathBuf,
    pub attached: bool,
    /// Log tails being followed, by container id.
    pub follows: std::sync::Mutex<std::collections::HashMap<String, CancellationToken>>,
}

/// The error every command returns: `{code, message, details}`.
#[derive(Debug, Serialize)]
pub struct IpcError(ErrorBody);

impl IpcError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        IpcError(ErrorBody::new(code, message.into(), None))
    }
}

impl From<ClientError> for IpcError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Remote(body) => IpcError(body),
            ClientError::NotRunning(_) => IpcError::new(
                ErrorCode::EngineUnreachable,
                "the Tether engine is not running; start Tether again (it lives in the tray)",
            ),
            other => IpcError::new(ErrorCode::Engine, other.to_string()),
        }
    }
}

type Res<T> = Result<T, IpcError>;

/// One request to the engine, its reply decoded as `T`.
async fn call<T: DeserializeOwned>(ipc: &Ipc, req: Request) -> Res<T> {
    let mut client = Client::connect(&ipc.socket).await?;
    let value = client.call(&req).await?;
    serde_json::from_value(value)
        .map_err(|e| IpcError::new(ErrorCode::Engine, format!("unexpected reply from the engine: {e}")))
}

/// Why the page may not send `req` through [`engine`], if it may not. The window is the user's
/// own, but it renders what VMs and containers say, so what it can ask for stays within what a
/// window needs: streams have commands of their own, and a kubectl credential, a report written
/// to any path or stopping the engine are never the page's to ask.
fn refused(req: &Request) -> Option<&'static str> {
    match req {
        Request::Subscribe | Request::FollowLogs { .. } => Some("a stream has a command of its own"),
        Request::KubeCredential { .. } => Some("credentials are for kubectl only"),
        Request::DoctorReport { .. } | Request::Shutdown => Some("not from the window"),
        _ => None,
    }
}

/// Any control request the page builds (the generated `Request` type); the engine's reply as it
/// came.
#[tauri::command]
pub async fn engine(ipc: State<'_, Ipc>, request: Request) -> Res<serde_json::Value> {
    if let Some(why) = refused(&request) {
        return Err(IpcError::new(
            ErrorCode::BadRequest,
            format!("the window cannot send this request: {why}"),
        ));
    }
    call(&ipc, request).await
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

/// What the Settings view shows: the engine's settings and whether the app starts at login.
#[derive(Debug, Serialize)]
pub struct SettingsDto {
    pub notifications: bool,
    pub start_at_login: bool,
    pub auto_forward: bool,
    pub privileged_ports: bool,
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
pub async fn set_start_at_login(app: tauri::AppHandle, ipc: State<'_, Ipc>, on: bool) -> Res<()> {
    let al = app.autolaunch();
    let res = if on { al.enable() } else { al.disable() };
    res.map_err(|e| IpcError::new(ErrorCode::Autostart, format!("cannot change start at login: {e}")))?;
    if ipc.attached {
        // The tray's "Start at login" check item lives in the service process.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{TRAY_REFRESH}").and_then(|_| out.flush());
    }
    Ok(())
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

/// Opens http://127.0.0.1:PORT (a forward of a published port) in the default browser.
#[tauri::command]
pub async fn open_port(app: tauri::AppHandle, port: u16) -> Res<()> {
    use tauri_plugin_opener::OpenerExt as _;
    app.opener()
        .open_url(format!("http://127.0.0.1:{port}/"), None::<&str>)
        .map_err(|e| IpcError::new(ErrorCode::Open, format!("cannot open a browser: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_as_code_and_message() {
        let body = ErrorBody::new(
            ErrorCode::NoSuchVm,
            "no VM named 'arm'".into(),
            Some(tether_core::api::ErrorDetails::Vm { vm: "arm".into() }),
        );
        let e: IpcError = ClientError::Remote(body).into();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "no_such_vm");
        assert!(v["message"].as_str().unwrap().contains("arm"));
        assert_eq!(v["details"]["kind"], "vm");
        assert_eq!(v["details"]["vm"], "arm");
        // The window's words come with it, from the code and the facts.
        assert_eq!(v["advice"]["title"], "This VM is gone");
        // Code, message, the facts and the advice: nothing else crosses.
        assert_eq!(v.as_object().unwrap().len(), 4, "{v}");
    }

    #[test]
    fn a_missing_engine_says_what_to_do() {
        let e: IpcError = ClientError::NotRunning("/x/control.sock".into()).into();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "engine_unreachable");
        assert!(v["message"].as_str().unwrap().contains("start Tether"), "{v}");
        assert!(
            v["advice"]["sentence"].as_str().unwrap().contains("Start Tether again"),
            "{v}"
        );
    }

    /// The page's requests arrive as the generated type describes them, and what a window must
    /// not ask for is refused before it reaches the engine.
    #[test]
    fn the_page_sends_requests_and_some_are_not_its_to_send() {
        let req: Request = serde_json::from_value(serde_json::json!({
            "op": "vm_add",
            "name": "arm",
            "profile": { "host": "10.0.0.5", "user": "dev" }
        }))
        .unwrap();
        assert!(refused(&req).is_none());
        let Request::VmAdd { profile, .. } = req else {
            panic!("not a vm_add")
        };
        // What the page leaves out takes the file's defaults.
        assert_eq!(profile.remote_socket, tether_core::config::DEFAULT_REMOTE_SOCKET);
        assert!(!profile.auto_connect);
        let req: Request = serde_json::from_value(serde_json::json!({ "op": "connect", "name": "arm" })).unwrap();
        assert!(refused(&req).is_none());
        for op in [
            serde_json::json!({ "op": "kube_credential", "name": "arm" }),
            serde_json::json!({ "op": "subscribe" }),
            serde_json::json!({ "op": "shutdown" }),
            serde_json::json!({ "op": "doctor_report", "file": "/home/u/.bashrc" }),
        ] {
            let req: Request = serde_json::from_value(op.clone()).unwrap();
            assert!(refused(&req).is_some(), "{op}");
        }
    }
}
