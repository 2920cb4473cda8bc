//! The tray icon and its menu. Linux trays give no click events and no tooltip, so everything is
//! reachable from the menu. The menu is a pure model ([`model`]) computed from engine status on
//! every event, and handed to the tray only when it changed: replacing a menu closes it under the
//! user's pointer, and gives its entries new ids a click in flight no longer finds.

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Wry};
use tether_core::api::VmStatus;
use tether_core::state::State;

pub const TRAY_ID: &str = "tether";

/// The four looks of the tray icon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayState {
    AllConnected,
    SomeDown,
    NoneConnected,
    Error,
}

impl TrayState {
    /// Error beats everything; then any VM the user wants up but is not fully up is "some down".
    pub fn of(vms: &[VmStatus]) -> Self {
        if vms.iter().any(|v| v.state == State::Failed) {
            return TrayState::Error;
        }
        let wanted: Vec<&VmStatus> = vms.iter().filter(|v| v.state.wanted()).collect();
        if wanted.is_empty() {
            TrayState::NoneConnected
        } else if wanted.iter().all(|v| v.state == State::Connected) {
            TrayState::AllConnected
        } else {
            TrayState::SomeDown
        }
    }

    /// This state's icon: a template image (black on transparent) when `template`, which macOS
    /// tints to suit a light or dark menu bar; the coloured one elsewhere.
    fn icon_bytes(self, template: bool) -> &'static [u8] {
        match (self, template) {
            (TrayState::AllConnected, true) => include_bytes!("../../icons/tray-connected-template.png"),
            (TrayState::SomeDown, true) => include_bytes!("../../icons/tray-degraded-template.png"),
            (TrayState::NoneConnected, true) => include_bytes!("../../icons/tray-disconnected-template.png"),
            (TrayState::Error, true) => include_bytes!("../../icons/tray-error-template.png"),
            (TrayState::AllConnected, false) => include_bytes!("../../icons/tray-connected.png"),
            (TrayState::SomeDown, false) => include_bytes!("../../icons/tray-degraded.png"),
            (TrayState::NoneConnected, false) => include_bytes!("../../icons/tray-disconnected.png"),
            (TrayState::Error, false) => include_bytes!("../../icons/tray-error.png"),
        }
    }
}

/// The menu bar icon is a template image on macOS only.
const TEMPLATE_ICON: bool = cfg!(target_os = "macos");

/// One menu entry, independent of Tauri.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Item { id: String, label: String, enabled: bool },
    Check { id: String, label: String, checked: bool },
    Sub { label: String, items: Vec<Entry> },
    Separator,
}

/// A state's dot: menus cannot colour text, so the shape carries the state.
pub fn dot(state: State) -> &'static str {
    match state {
        State::Connected => "●",
        State::Connecting | State::Degraded | State::Reconnecting { .. } => "◐",
        State::Disconnected => "○",
        State::Failed => "✕",
    }
}

/// The whole menu for these VMs.
/// One line for a VM's shared folders in use: their worst state, and what is on the way.
fn shares_line(v: &VmStatus) -> Option<String> {
    use tether_core::api::SyncState;
    let used: Vec<_> = v.shares.iter().filter(|s| !s.folders.is_empty()).collect();
    if used.is_empty() {
        return None;
    }
    let folders: Vec<_> = used.iter().flat_map(|s| s.folders.iter()).collect();
    let pending: u64 = folders.iter().map(|f| f.pending).sum();
    let conflicts: usize = folders.iter().map(|f| f.conflicts.len()).sum();
    let worst = |st: SyncState| folders.iter().any(|f| f.state == st) || used.iter().any(|s| s.state == st);
    let state = if worst(SyncState::Error) {
        "need attention (open Tether)".to_string()
    } else if conflicts > 0 {
        format!(
            "{conflicts} conflict{} kept both versions",
            if conflicts == 1 { "" } else { "s" }
        )
    } else if worst(SyncState::Paused) {
        "paused".to_string()
    } else if pending > 0 {
        format!("syncing {pending} change{}", if pending == 1 { "" } else { "s" })
    } else if worst(SyncState::Scanning) || worst(SyncState::Syncing) {
        "syncing".to_string()
    } else {
        "in sync".to_string()
    };
    Some(format!("Shared folders: {state}"))
}

/// The menu for `vms`; `suggestions` are laptop folders containers mounted without a share, as
/// (VM, path), each offered as "Share PATH with VM".
pub fn model(vms: &[VmStatus], autostart: bool, suggestions: &[(String, String)]) -> Vec<Entry> {
    let mut out = Vec::new();
    if vms.is_empty() {
        out.push(Entry::Item {
            id: "open".into(),
            label: "No VMs yet: add one…".into(),
            enabled: true,
        });
    }
    for v in vms {
        let arch = v.arch.map(|a| a.to_string()).unwrap_or_else(|| "arch?".into());
        let mut state = v.state.label().to_string();
        if let State::Reconnecting { attempt } = v.state {
            state = format!("reconnecting (attempt {attempt})");
        }
        let up = v.state.wanted();
        let mut items = vec![
            Entry::Item {
                id: format!("state:{}", v.name),
                label: format!("{} · {}", v.host, state),
                enabled: false,
            },
            if up {
                Entry::Item {
                    id: format!("disconnect:{}", v.name),
                    label: "Disconnect".into(),
                    enabled: true,
                }
            } else {
                Entry::Item {
                    id: format!("connect:{}", v.name),
                    label: "Connect".into(),
                    enabled: true,
                }
            },
        ];
        for f in &v.forwards {
            let how = match &f.container {
                Some(c) if f.local != f.remote => format!("auto for {c}, port {} was taken", f.remote),
                Some(c) => format!("auto for {c}"),
                None => "manual".to_string(),
            };
            items.push(Entry::Item {
                id: format!("forward:{}:{}", v.name, f.local),
                label: format!("127.0.0.1:{} → {}  ({how})", f.local, f.remote),
                enabled: false,
            });
        }
        for u in &v.unforwarded {
            items.push(Entry::Item {
                id: format!("udp:{}:{}", v.name, u.port),
                label: format!("{}/{} of {}: not forwarded", u.port, u.proto, u.container),
                enabled: false,
            });
        }
        if let Some(line) = shares_line(v) {
            items.push(Entry::Item {
                id: format!("shares:{}", v.name),
                label: line,
                enabled: false,
            });
        }
        if let Some(w) = &v.arch_warning {
            items.push(Entry::Item {
                id: format!("arch:{}", v.name),
                label: format!("⚠ {w}"),
                enabled: false,
            });
        }
        if let Some(e) = &v.last_error
            && !matches!(v.state, State::Connected)
        {
            let short: String = e.lines().next().unwrap_or("").chars().take(80).collect();
            items.push(Entry::Item {
                id: format!("error:{}", v.name),
                label: short,
                enabled: false,
            });
        }
        let warn = if v.arch_warning.is_some() { "  ⚠" } else { "" };
        out.push(Entry::Sub {
            label: format!("{} {}  {}{warn}", dot(v.state), v.name, arch),
            items,
        });
    }
    if !vms.is_empty() {
        out.push(Entry::Separator);
        let choices = vms
            .iter()
            .map(|v| Entry::Check {
                id: format!("use:{}", v.name),
                label: v.name.clone(),
                checked: v.active,
            })
            .collect();
        out.push(Entry::Sub {
            label: "Use".into(),
            items: choices,
        });
    }
    out.push(Entry::Separator);
    for (vm, path) in suggestions {
        out.push(Entry::Item {
            id: format!("share:{vm}:{path}"),
            label: format!("Share {path} with {vm}"),
            enabled: true,
        });
    }
    out.push(Entry::Item {
        id: "open".into(),
        label: "Open Tether…".into(),
        enabled: true,
    });
    out.push(Entry::Item {
        id: "copy-docker-host".into(),
        label: "Copy DOCKER_HOST".into(),
        enabled: vms.iter().any(|v| v.active),
    });
    out.push(Entry::Check {
        id: "autostart".into(),
        label: "Start at login".into(),
        checked: autostart,
    });
    out.push(Entry::Separator);
    out.push(Entry::Item {
        id: "quit".into(),
        label: "Quit Tether".into(),
        enabled: true,
    });
    out
}

fn build(app: &AppHandle, entries: &[Entry]) -> tauri::Result<Vec<Box<dyn IsMenuItem<Wry>>>> {
    let mut items: Vec<Box<dyn IsMenuItem<Wry>>> = Vec::new();
    for e in entries {
        match e {
            Entry::Item { id, label, enabled } => {
                items.push(Box::new(MenuItem::with_id(app, id, label, *enabled, None::<&str>)?))
            }
            Entry::Check { id, label, checked } => items.push(Box::new(CheckMenuItem::with_id(
                app,
                id,
                label,
                true,
                *checked,
                None::<&str>,
            )?)),
            Entry::Sub { label, items: sub } => {
                let children = build(app, sub)?;
                let refs: Vec<&dyn IsMenuItem<Wry>> = children.iter().map(|b| b.as_ref()).collect();
                items.push(Box::new(Submenu::with_items(app, label, true, &refs)?));
            }
            Entry::Separator => items.push(Box::new(PredefinedMenuItem::separator(app)?)),
        }
    }
    Ok(items)
}

fn menu(app: &AppHandle, vms: &[VmStatus], autostart: bool) -> tauri::Result<Menu<Wry>> {
    let items = build(app, &model(vms, autostart, &[]))?;
    let refs: Vec<&dyn IsMenuItem<Wry>> = items.iter().map(|b| b.as_ref()).collect();
    Menu::with_items(app, &refs)
}

/// Creates the tray icon; menu clicks go to `on_menu`.
pub fn create(app: &AppHandle, on_menu: impl Fn(&AppHandle, &str) + Send + Sync + 'static) -> tauri::Result<()> {
    let icon = Image::from_bytes(TrayState::NoneConnected.icon_bytes(TEMPLATE_ICON))?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon)
        .icon_as_template(TEMPLATE_ICON)
        .menu(&menu(app, &[], false)?)
        .show_menu_on_left_click(true)
        .tooltip("Tether")
        .on_menu_event(move |app, event| on_menu(app, event.id().as_ref()))
        .build(app)?;
    app.manage(TrayShown::default());
    Ok(())
}

/// What the tray shows now: icon, tooltip and menu model.
struct Shown {
    state: TrayState,
    tooltip: String,
    entries: Vec<Entry>,
}

/// The app's record of what its tray shows (managed state, like the rest of the service's).
#[derive(Default)]
struct TrayShown(std::sync::Mutex<Option<Shown>>);

/// Redraws whichever of icon, tooltip and menu the current status changes.
pub fn refresh(
    app: &AppHandle,
    vms: &[VmStatus],
    autostart: bool,
    suggestions: &[(String, String)],
) -> tauri::Result<()> {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return Ok(());
    };
    let state = TrayState::of(vms);
    let up = vms.iter().filter(|v| v.state == State::Connected).count();
    let tooltip = format!("Tether: {up} of {} VMs connected", vms.len());
    let entries = model(vms, autostart, suggestions);
    let Some(record) = app.try_state::<TrayShown>() else {
        return Ok(());
    };
    let mut shown = record.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let old = shown.as_ref();
    if old.is_none_or(|o| o.state != state) {
        tray.set_icon(Some(Image::from_bytes(state.icon_bytes(TEMPLATE_ICON))?))?;
    }
    if old.is_none_or(|o| o.tooltip != tooltip) {
        tray.set_tooltip(Some(tooltip.clone()))?;
    }
    if old.is_none_or(|o| o.entries != entries) {
        let items = build(app, &entries)?;
        let refs: Vec<&dyn IsMenuItem<Wry>> = items.iter().map(|b| b.as_ref()).collect();
        tray.set_menu(Some(Menu::with_items(app, &refs)?))?;
    }
    *shown = Some(Shown {
        state,
        tooltip,
        entries,
    });
    Ok(())
}

#[cfg(test)]
#[path = "tests/tray.rs"]
mod tests;
