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
pub fn model(vms: &[VmStatus], autostart: bool) -> Vec<Entry> {
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
    let items = build(app, &model(vms, autostart))?;
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
pub fn refresh(app: &AppHandle, vms: &[VmStatus], autostart: bool) -> tauri::Result<()> {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return Ok(());
    };
    let state = TrayState::of(vms);
    let up = vms.iter().filter(|v| v.state == State::Connected).count();
    let tooltip = format!("Tether: {up} of {} VMs connected", vms.len());
    let entries = model(vms, autostart);
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
mod tests {
    use super::*;
    use tether_core::config::Arch;

    fn vm(name: &str, state: State, active: bool) -> VmStatus {
        VmStatus {
            name: name.into(),
            host: format!("{name}.lan"),
            via: Vec::new(),
            kube: None,
            arch: Some(Arch::Arm64),
            state,
            since_ms: 0,
            rtt_ms: None,
            socket: String::new(),
            docker_host: String::new(),
            forwards: vec![],
            reverse: vec![],
            last_error: None,
            error_code: None,
            error_details: None,
            engine: None,
            active,
            auto_connect: false,
            unforwarded: vec![],
            arch_warning: None,
            auto_forward: false,
            docker_pool: None,
        }
    }

    #[test]
    fn forwards_udp_and_arch_warnings_are_in_the_menu() {
        use tether_core::api::{ForwardStatus, UnforwardedPort};
        let mut a = vm("arm", State::Connected, true);
        let fwd = |local, remote, container: Option<&str>| ForwardStatus {
            local,
            remote,
            state: tether_core::api::ForwardState::Listening,
            error: None,
            active: 0,
            total: 0,
            refused: 0,
            auto: container.is_some(),
            container: container.map(Into::into),
        };
        a.forwards = vec![
            fwd(3000, 3000, None),
            fwd(8081, 8080, Some("web")),
            fwd(10080, 80, Some("proxy")),
        ];
        a.unforwarded = vec![UnforwardedPort {
            container: "dns".into(),
            port: 53,
            proto: tether_core::api::Proto::Udp,
            reason: "Tether forwards TCP only, and this is udp".into(),
        }];
        a.arch_warning = Some("labelled arm64, but its Docker engine runs x86_64".into());
        let m = model(&[a], false);
        let Entry::Sub { label, items } = &m[0] else {
            panic!("{m:?}")
        };
        assert!(label.ends_with('⚠'), "{label}");
        let labels: Vec<&str> = items
            .iter()
            .filter_map(|e| match e {
                Entry::Item { label, .. } => Some(label.as_str()),
                _ => None,
            })
            .collect();
        for want in [
            "127.0.0.1:3000 → 3000  (manual)",
            "127.0.0.1:8081 → 8080  (auto for web, port 8080 was taken)",
            "127.0.0.1:10080 → 80  (auto for proxy, port 80 was taken)",
            "53/udp of dns: not forwarded",
            "⚠ labelled arm64, but its Docker engine runs x86_64",
        ] {
            assert!(labels.contains(&want), "{want:?} missing from {labels:?}");
        }
    }

    #[test]
    fn tray_state_table() {
        use State::*;
        assert_eq!(TrayState::of(&[]), TrayState::NoneConnected);
        assert_eq!(TrayState::of(&[vm("a", Disconnected, true)]), TrayState::NoneConnected);
        assert_eq!(
            TrayState::of(&[vm("a", Connected, true), vm("b", Disconnected, false)]),
            TrayState::AllConnected
        );
        assert_eq!(
            TrayState::of(&[vm("a", Connected, true), vm("b", Reconnecting { attempt: 2 }, false)]),
            TrayState::SomeDown
        );
        assert_eq!(
            TrayState::of(&[vm("a", Connected, true), vm("b", Failed, false)]),
            TrayState::Error
        );
    }

    #[test]
    fn menu_has_vms_use_group_and_actions() {
        let m = model(
            &[vm("arm", State::Connected, true), vm("x86", State::Disconnected, false)],
            true,
        );
        let Entry::Sub { label, items } = &m[0] else {
            panic!("{m:?}")
        };
        assert_eq!(label, "● arm  arm64");
        assert!(items.contains(&Entry::Item {
            id: "disconnect:arm".into(),
            label: "Disconnect".into(),
            enabled: true
        }));
        let Entry::Sub { items: x86, .. } = &m[1] else { panic!() };
        assert!(
            x86.iter()
                .any(|e| matches!(e, Entry::Item { id, .. } if id == "connect:x86"))
        );
        let use_group = m.iter().find_map(|e| match e {
            Entry::Sub { label, items } if label == "Use" => Some(items.clone()),
            _ => None,
        });
        let use_group = use_group.unwrap();
        assert_eq!(
            use_group
                .iter()
                .filter(|e| matches!(e, Entry::Check { checked: true, .. }))
                .count(),
            1
        );
        let ids: Vec<String> = m
            .iter()
            .filter_map(|e| match e {
                Entry::Item { id, .. } | Entry::Check { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect();
        for want in ["open", "copy-docker-host", "autostart", "quit"] {
            assert!(ids.contains(&want.to_string()), "{want} missing from {ids:?}");
        }
    }

    /// macOS tints a template image by its alpha alone: each must be black on transparent, 22 pt
    /// at 2x, and tell the states apart by shape, since the colour is gone.
    #[test]
    fn the_menu_bar_icons_are_template_images_on_macos() {
        let states = [
            TrayState::AllConnected,
            TrayState::SomeDown,
            TrayState::NoneConnected,
            TrayState::Error,
        ];
        let mut shapes = Vec::new();
        for state in states {
            let icon = Image::from_bytes(state.icon_bytes(true)).unwrap();
            assert_eq!((icon.width(), icon.height()), (44, 44), "{state:?}");
            let px: Vec<&[u8]> = icon.rgba().chunks(4).collect();
            assert!(px.iter().all(|p| p[..3] == [0, 0, 0]), "{state:?} template has colour");
            assert!(
                px.iter().filter(|p| p[3] == 255).count() > 100,
                "{state:?} template is empty"
            );
            shapes.push(px.iter().map(|p| p[3]).collect::<Vec<u8>>());
            // Elsewhere the state is a colour, which the template cannot carry.
            let coloured = Image::from_bytes(state.icon_bytes(false)).unwrap();
            assert!(
                coloured.rgba().chunks(4).any(|p| p[3] == 255 && p[..3] != [0, 0, 0]),
                "{state:?}"
            );
        }
        // Connected and disconnected differ in shape (a filled dot, a ring).
        assert_ne!(shapes[0], shapes[2]);
    }
}
