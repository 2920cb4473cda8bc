//! Tauri commands: thin adapters from the window's IPC calls to engine calls. No logic lives
//! here; errors cross as `{code, message}`, the same shape as the control API.

use serde::{Deserialize, Serialize};
use tauri::State;
use tether_core::config::{Arch, PortMap, Profile};
use tether_core::control::ErrorBody;
use tether_core::engine::{Connect, TimedEvent};
use tether_core::error::EngineError;
use tether_core::session::VmStatus;

use crate::AppState;

/// The error every command returns: `{code, message}`.
#[derive(Debug, Serialize)]
pub struct IpcError(ErrorBody);

impl From<EngineError> for IpcError {
    fn from(e: EngineError) -> Self {
        IpcError(ErrorBody::from(&e))
    }
}

impl From<tether_core::config::ConfigError> for IpcError {
    fn from(e: tether_core::config::ConfigError) -> Self {
        EngineError::from(e).into()
    }
}

type Res<T> = Result<T, IpcError>;

/// A VM as the add form sends it.
#[derive(Debug, Deserialize)]
pub struct NewVm {
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub arch: Option<String>,
    pub identity: Option<String>,
    pub remote_socket: Option<String>,
}

impl NewVm {
    fn into_profile(self) -> Result<Profile, IpcError> {
        let mut p = Profile::new(self.host.trim());
        p.port = self.port;
        p.user = self.user.filter(|u| !u.trim().is_empty());
        p.arch = self.arch.filter(|a| !a.is_empty()).map(|a| a.parse::<Arch>()).transpose()?;
        p.identity = self.identity.filter(|i| !i.trim().is_empty()).map(Into::into);
        if let Some(s) = self.remote_socket.filter(|s| !s.trim().is_empty()) {
            p.remote_socket = s;
        }
        Ok(p)
    }
}

/// What the Settings view shows.
#[derive(Debug, Serialize)]
pub struct SettingsDto {
    pub notifications: bool,
    pub start_at_login: bool,
}

#[tauri::command]
pub async fn status(state: State<'_, AppState>) -> Res<Vec<VmStatus>> {
    Ok(state.engine.status().await)
}

#[tauri::command]
pub async fn connect(state: State<'_, AppState>, name: String, fingerprint: Option<String>) -> Res<VmStatus> {
    let opts = Connect { confirmed_fingerprint: fingerprint, ..Default::default() };
    Ok(state.engine.connect(Some(&name), opts).await?.status)
}

#[tauri::command]
pub async fn disconnect(state: State<'_, AppState>, name: String) -> Res<()> {
    state.engine.disconnect(Some(&name)).await?;
    Ok(())
}

#[tauri::command]
pub async fn use_vm(state: State<'_, AppState>, name: String) -> Res<()> {
    Ok(state.engine.set_active(&name).await?)
}

#[tauri::command]
pub async fn add_vm(state: State<'_, AppState>, name: String, vm: NewVm) -> Res<()> {
    Ok(state.engine.add_vm(&name, vm.into_profile()?).await?)
}

#[tauri::command]
pub async fn remove_vm(state: State<'_, AppState>, name: String) -> Res<()> {
    Ok(state.engine.remove_vm(&name).await?)
}

#[tauri::command]
pub async fn add_forward(state: State<'_, AppState>, name: String, spec: String) -> Res<Vec<PortMap>> {
    let map: PortMap = spec.parse()?;
    Ok(state.engine.add_forwards(Some(&name), &[map]).await?)
}

#[tauri::command]
pub async fn remove_forward(state: State<'_, AppState>, name: String, local: u16) -> Res<Vec<PortMap>> {
    Ok(state.engine.remove_forwards(Some(&name), &[local]).await?)
}

#[tauri::command]
pub async fn set_auto_connect(state: State<'_, AppState>, name: String, on: bool) -> Res<()> {
    Ok(state.engine.set_auto_connect(&name, on).await?)
}

#[tauri::command]
pub async fn recent_events(state: State<'_, AppState>, name: String) -> Res<Vec<TimedEvent>> {
    Ok(state.engine.recent_events(&name))
}

#[tauri::command]
pub async fn settings(app: tauri::AppHandle, state: State<'_, AppState>) -> Res<SettingsDto> {
    Ok(SettingsDto {
        notifications: state.engine.config().await.settings.notifications,
        start_at_login: crate::autostart_enabled(&app),
    })
}

#[tauri::command]
pub async fn set_notifications(state: State<'_, AppState>, on: bool) -> Res<()> {
    Ok(state.engine.set_notifications(on).await?)
}

#[tauri::command]
pub async fn set_start_at_login(app: tauri::AppHandle, on: bool) -> Res<()> {
    crate::set_autostart(&app, on).map_err(|e| IpcError(ErrorBody { code: "autostart".into(), message: e }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_as_code_and_message() {
        let e: IpcError = EngineError::Config(tether_core::config::ConfigError::NoSuchVm("arm".into())).into();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "no_such_vm");
        assert!(v["message"].as_str().unwrap().contains("arm"));
        assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    }

    #[test]
    fn bad_arch_from_the_form_is_a_config_error() {
        let vm = NewVm { host: "h".into(), port: None, user: None, arch: Some("sparc".into()), identity: None, remote_socket: None };
        let v = serde_json::to_value(vm.into_profile().unwrap_err()).unwrap();
        assert_eq!(v["code"], "config_invalid");
        assert!(v["message"].as_str().unwrap().contains("arm64 or x86_64"));
    }
}
