//! The tray menu's model, tested as pure data.
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
        error_advice: None,
        engine: None,
        active,
        auto_connect: false,
        unforwarded: vec![],
        arch_warning: None,
        auto_forward: false,
        docker_pool: None,
        shares: Vec::new(),
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
    let m = model(&[a], false, &[]);
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
        &[],
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

#[test]
fn shared_folders_get_one_line_and_an_unshared_mount_an_offer() {
    use tether_core::api::{ConflictView, ShareView, SyncState, SyncedFolder};
    let folder = |state, pending, conflicts: usize| SyncedFolder {
        laptop: "/home/me/app".into(),
        vm: "/m/home/me/app".into(),
        state,
        entries: 10,
        pending,
        conflicts: (0..conflicts)
            .map(|i| ConflictView {
                path: format!("/home/me/app/{i}"),
                copy: format!("/home/me/app/{i}.conflict"),
                at_ms: 0,
            })
            .collect(),
        problems: vec![],
        error: None,
    };
    let with = |folders: Vec<SyncedFolder>| {
        let mut v = vm("arm", State::Connected, true);
        v.shares = vec![ShareView {
            name: "home".into(),
            path: "/home/me".into(),
            ignore: vec![],
            state: folders.first().map(|f| f.state).unwrap_or(SyncState::InSync),
            folders,
            error: None,
        }];
        v
    };
    let line = |v: VmStatus| {
        let m = model(&[v], false, &[]);
        let Entry::Sub { items, .. } = &m[0] else {
            panic!("{m:?}")
        };
        items.iter().find_map(|e| match e {
            Entry::Item { id, label, .. } if id == "shares:arm" => Some(label.clone()),
            _ => None,
        })
    };
    assert_eq!(line(with(vec![])), None, "no line while no folder is in use");
    assert_eq!(
        line(with(vec![folder(SyncState::InSync, 0, 0)])).as_deref(),
        Some("Shared folders: in sync")
    );
    assert_eq!(
        line(with(vec![folder(SyncState::Syncing, 3, 0)])).as_deref(),
        Some("Shared folders: syncing 3 changes")
    );
    assert_eq!(
        line(with(vec![folder(SyncState::Conflict, 0, 1)])).as_deref(),
        Some("Shared folders: 1 conflict kept both versions")
    );
    assert_eq!(
        line(with(vec![folder(SyncState::Paused, 0, 0)])).as_deref(),
        Some("Shared folders: paused")
    );

    let m = model(
        &[vm("arm", State::Connected, true)],
        false,
        &[("arm".into(), "/srv/data".into())],
    );
    assert!(m.contains(&Entry::Item {
        id: "share:arm:/srv/data".into(),
        label: "Share /srv/data with arm".into(),
        enabled: true,
    }));
}
