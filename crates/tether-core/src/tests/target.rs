//! Unit tests of `target` (kept apart so the module file holds only shipping code).

use super::*;

#[test]
fn parse_honours_hostname_user_port_identity() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config");
    std::fs::write(
        &p,
        "Host armvm\n  HostName 10.9.9.9\n  User deb\n  Port 2202\n  IdentityFile /k/id_ed25519\n  ServerAliveInterval 5\n",
    )
    .unwrap();
    let q = parse(&p).unwrap().query("armvm");
    assert_eq!(q.host_name.as_deref(), Some("10.9.9.9"));
    assert_eq!(q.user.as_deref(), Some("deb"));
    assert_eq!(q.port, Some(2202));
    assert_eq!(q.identity_file.unwrap(), vec![PathBuf::from("/k/id_ed25519")]);
}

#[test]
fn hops_parse_user_host_port_and_brackets() {
    let h = hop("ops@bastion.example:2200", None).unwrap();
    assert_eq!(
        (h.user.as_str(), h.host.as_str(), h.port),
        ("ops", "bastion.example", 2200)
    );
    let h = hop("[fd00::1]:2222", None).unwrap();
    assert_eq!((h.host.as_str(), h.port), ("fd00::1", 2222));
    let h = hop("ssh://me@10.0.0.1", None).unwrap();
    assert_eq!((h.user.as_str(), h.host.as_str(), h.port), ("me", "10.0.0.1", 22));
    for bad in [
        "",
        "@host",
        "host:",
        "host:0",
        "host:99999",
        "[fd00::1",
        "a b",
        "host:22x",
    ] {
        let e = hop(bad, None).unwrap_err();
        assert!(e.contains("[user@]host[:port]"), "{bad}: {e}");
    }
    assert_eq!(split_jumps(" a , b@c:2 ,"), vec!["a", "b@c:2"]);
    assert!(split_jumps("none").is_empty());
}

#[test]
fn proxy_jump_hops_resolve_through_the_config_and_the_profile_wins() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config");
    std::fs::write(
        &p,
        "Host inner\n  HostName 10.78.1.2\n  ProxyJump gate,ops@10.0.0.9:2201\n\
         Host gate\n  HostName 10.77.1.2\n  User jumper\n  Port 2222\n  IdentityFile /k/gate\n",
    )
    .unwrap();
    let cfg = parse(&p).unwrap();
    let q = cfg.query("inner");
    let spec = q.proxy_jump.unwrap();
    let hops: Vec<Target> = spec.iter().map(|h| hop(h, Some(&cfg)).unwrap()).collect();
    assert_eq!(hops[0].display(), "jumper@10.77.1.2:2222");
    assert_eq!(hops[0].identity_files, vec![PathBuf::from("/k/gate")]);
    assert_eq!(hops[1].display(), "ops@10.0.0.9:2201");
    // What the hop itself says wins over its Host entry.
    assert_eq!(hop("root@gate:22", Some(&cfg)).unwrap().display(), "root@10.77.1.2:22");
}

#[test]
fn the_first_hop_is_reached_through_its_own_proxy_jump_and_a_loop_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config");
    std::fs::write(
        &p,
        "Host gate\n  HostName 10.77.1.2\n  ProxyJump outer\n\
         Host outer\n  HostName 203.0.113.7\n  ProxyJump corp\n\
         Host corp\n  HostName 198.51.100.1\n\
         Host mid\n  ProxyJump elsewhere\n\
         Host selfish\n  ProxyJump selfish\n",
    )
    .unwrap();
    let cfg = parse(&p).unwrap();
    let path = |hops: &[&str]| reach_first(hops.iter().map(|h| h.to_string()).collect(), Some(&cfg));
    // The first hop's ProxyJump, and that one's, come first; a later hop's own is not followed.
    assert_eq!(path(&["gate", "mid"]).unwrap(), vec!["corp", "outer", "gate", "mid"]);
    assert_eq!(path(&["mid"]).unwrap(), vec!["elsewhere", "mid"]);
    assert_eq!(path(&["10.0.0.1"]).unwrap(), vec!["10.0.0.1"]);
    assert_eq!(reach_first(vec!["gate".into()], None).unwrap(), vec!["gate"]);
    let e = path(&["selfish"]).unwrap_err();
    assert!(
        e.contains("more than 8 jump hosts") && e.contains("names itself"),
        "{e}"
    );
}

#[test]
fn known_hosts_and_revoked_keys_files_come_from_the_config_per_host() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config");
    std::fs::write(
        &p,
        "Host pinned\n  UserKnownHostsFile /k/mine /k/mine2\n  GlobalKnownHostsFile none\n  RevokedHostKeys /k/revoked\n\n\
         Host plain\n  HostName 10.0.0.9\n",
    )
    .unwrap();
    let cfg = parse(&p).unwrap();
    let pinned = HostKeyFiles::from_params(Some(&cfg.query("pinned")));
    assert_eq!(
        pinned,
        HostKeyFiles {
            user: Some(vec![PathBuf::from("/k/mine"), PathBuf::from("/k/mine2")]),
            global: Some(Vec::new()),
            revoked: Some(PathBuf::from("/k/revoked")),
        }
    );
    let defaults = [
        PathBuf::from("/home/u/.ssh/known_hosts"),
        PathBuf::from("/etc/ssh/ssh_known_hosts"),
        PathBuf::from("/tether/known_hosts"),
    ];
    // Named files replace OpenSSH's; Tether's own stays last.
    assert_eq!(
        pinned.apply(&defaults),
        [
            PathBuf::from("/k/mine"),
            PathBuf::from("/k/mine2"),
            PathBuf::from("/tether/known_hosts")
        ]
    );
    let plain = HostKeyFiles::from_params(Some(&cfg.query("plain")));
    assert_eq!(plain, HostKeyFiles::default());
    assert_eq!(plain.apply(&defaults), defaults);
}

#[test]
fn the_config_is_parsed_once_per_change() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config");
    std::fs::write(&p, "Host a\n  HostName 10.0.0.1\n").unwrap();
    let first = parse(&p).unwrap();
    let again = parse(&p).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again), "parsed again without a change");
    std::fs::write(&p, "Host a\n  HostName 10.0.0.22\n").unwrap();
    let changed = parse(&p).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first, &changed));
    assert_eq!(changed.query("a").host_name.as_deref(), Some("10.0.0.22"));
}
