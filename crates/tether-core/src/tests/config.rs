//! Unit tests of `config` (kept apart so the module file holds only shipping code).

use super::*;

#[test]
fn port_map_parses_like_ssh_l() {
    assert_eq!(
        "3000".parse::<PortMap>().unwrap(),
        PortMap {
            local: 3000,
            remote: 3000
        }
    );
    assert_eq!(
        "5433:5432".parse::<PortMap>().unwrap(),
        PortMap {
            local: 5433,
            remote: 5432
        }
    );
    for bad in ["0", "70000", "a", "1:", ":2", "1:2:3"] {
        let e = bad.parse::<PortMap>().unwrap_err().to_string();
        assert!(e.contains("LOCAL:REMOTE"), "{bad}: {e}");
    }
}

#[test]
fn reverse_map_parses_like_ssh_r_and_prints_back() {
    assert_eq!(
        "5432".parse::<ReverseMap>().unwrap(),
        ReverseMap {
            remote: 5432,
            local: 5432,
            bind: None,
        }
    );
    let m: ReverseMap = "15432:5432".parse().unwrap();
    assert_eq!((m.remote, m.local), (15432, 5432));
    assert_eq!(m.to_string(), "15432:5432");
    assert_eq!("8080".parse::<ReverseMap>().unwrap().to_string(), "8080");
    for bad in ["0", "70000", "1:", ":2", "1:2:3", "1:0", "docker:", "docker:1:2:3"] {
        let e = bad.parse::<ReverseMap>().unwrap_err().to_string();
        assert!(e.contains("[BIND:]REMOTE[:LOCAL]"), "{bad}: {e}");
    }
    // A bind: the Docker bridge gateway, or one address; the loopback is no bind.
    let m: ReverseMap = "docker:5432".parse().unwrap();
    assert_eq!((m.bind, m.remote, m.local), (Some(ReverseBind::Docker), 5432, 5432));
    assert_eq!(m.to_string(), "docker:5432");
    let m: ReverseMap = "172.17.0.1:15432:5432".parse().unwrap();
    assert_eq!(m.bind, Some(ReverseBind::Addr("172.17.0.1".parse().unwrap())));
    assert_eq!(m.to_string(), "172.17.0.1:15432:5432");
    let m: ReverseMap = "[fd00::1]:80".parse().unwrap();
    assert_eq!(m.to_string(), "[fd00::1]:80");
    assert_eq!("127.0.0.1:80".parse::<ReverseMap>().unwrap().bind, None);
    // Never every address, and never a name that is not one.
    for wide in ["0.0.0.0:5432", "[::]:5432"] {
        let e = wide.parse::<ReverseMap>().unwrap_err().to_string();
        assert!(e.contains("every address"), "{wide}: {e}");
    }
    let e = "a:5432".parse::<ReverseMap>().unwrap_err().to_string();
    assert!(e.contains("docker") && e.contains("one IP address"), "{e}");
    // Saved as a string, read back the same.
    let toml = toml::to_string(&m).unwrap();
    assert_eq!(toml::from_str::<ReverseMap>(&toml).unwrap(), m);
    let d: ReverseMap = toml::from_str("remote = 1\nlocal = 2\nbind = \"docker\"\n").unwrap();
    assert_eq!(d.bind, Some(ReverseBind::Docker));
}

#[test]
fn a_reverse_port_on_the_vm_comes_to_one_laptop_port() {
    let mut vm = Profile::new("h");
    assert!(vm.add_reverse("5432".parse().unwrap()).unwrap());
    assert!(
        !vm.add_reverse("5432".parse().unwrap()).unwrap(),
        "the same one again is no change"
    );
    let e = vm.add_reverse("5432:6000".parse().unwrap()).unwrap_err().to_string();
    assert!(e.contains("--rm-reverse 5432"), "{e}");
    // Two reverse tunnels on one VM port, written by hand, are refused with the VM named.
    vm.reverse.push("5432:7000".parse().unwrap());
    let mut cfg = Config::default();
    cfg.vms.insert("arm".into(), vm);
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("'arm'") && e.contains("5432"), "{e}");
}

#[test]
fn round_trip_through_disk_is_lossless() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("c/config.toml"));
    let mut cfg = Config::default();
    let mut vm = Profile::new("10.0.0.2");
    vm.arch = Some(Arch::Arm64);
    vm.add_forward("5433:5432".parse().unwrap()).unwrap();
    vm.add_reverse("15432:5432".parse().unwrap()).unwrap();
    cfg.vms.insert("arm".into(), vm);
    cfg.active = Some("arm".into());
    store.save(&cfg).unwrap();
    assert_eq!(store.load().unwrap(), cfg);
}

#[test]
fn corrupt_file_reports_line_and_column_and_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let text = "version = 1\n[vms.a]\nhost = \"h\"\nport = \"twenty-two\"\n";
    std::fs::write(&path, text).unwrap();
    let err = Store::new(path.clone()).load().unwrap_err().to_string();
    assert!(err.contains("config.toml:4:8"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn newer_version_is_refused() {
    let err = Config::parse("version = 9\n", Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("version 9"), "{err}");
}

#[test]
fn duplicate_local_port_across_vms_is_invalid() {
    let mut cfg = Config::default();
    for n in ["a", "b"] {
        let mut vm = Profile::new("h");
        vm.add_forward("3000".parse().unwrap()).unwrap();
        cfg.vms.insert(n.into(), vm);
    }
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("local port 3000"), "{e}");
}

#[test]
fn names_are_checked() {
    assert!(validate_name("arm-1").is_ok());
    for bad in ["", "-a", "a/b", "a b", &"x".repeat(33)] {
        assert!(validate_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn resolve_uses_active_vm() {
    let mut cfg = Config::default();
    cfg.vms.insert("a".into(), Profile::new("h"));
    assert!(matches!(cfg.resolve(None), Err(ConfigError::NoActiveVm)));
    cfg.active = Some("a".into());
    assert_eq!(cfg.resolve(None).unwrap(), "a");
    assert!(matches!(cfg.resolve(Some("zz")), Err(ConfigError::NoSuchVm(_))));
}

#[test]
fn a_change_by_someone_else_is_noticed_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("config.toml"));
    let mut cfg = Config::default();
    cfg.vms.insert("arm".into(), Profile::new("10.0.0.2"));
    store.save(&cfg).unwrap();
    // Our own write is no outside change.
    assert_eq!(store.changed_on_disk().unwrap(), None);

    // Another program writes the file: its config comes back, once.
    let mut theirs = cfg.clone();
    theirs.vms.insert("x86".into(), Profile::new("10.0.0.3"));
    Store::new(store.path().to_path_buf()).save(&theirs).unwrap();
    assert_eq!(store.changed_on_disk().unwrap(), Some(theirs.clone()));
    assert_eq!(store.changed_on_disk().unwrap(), None);

    // A broken hand edit is an error, and the file is left as it is.
    let broken = "version = 1\n[vms.oops\n";
    std::fs::write(store.path(), broken).unwrap();
    let e = store.changed_on_disk().unwrap_err().to_string();
    assert!(e.contains("config.toml:2:") && e.contains("left untouched"), "{e}");
    assert_eq!(std::fs::read_to_string(store.path()).unwrap(), broken);

    // A file that was removed reads as an empty config.
    std::fs::remove_file(store.path()).unwrap();
    assert_eq!(store.changed_on_disk().unwrap(), Some(Config::default()));
}

/// A config with one of everything, as text: the seed the mutations below start from.
fn sample_text() -> String {
    let mut cfg = Config::default();
    let mut vm = Profile::new("10.0.0.2");
    vm.arch = Some(Arch::Arm64);
    vm.port = Some(2222);
    vm.user = Some("dev".into());
    vm.add_forward("5433:5432".parse().unwrap()).unwrap();
    vm.add_reverse("9229".parse().unwrap()).unwrap();
    vm.auto_forward = Some(true);
    cfg.vms.insert("arm".into(), vm);
    cfg.active = Some("arm".into());
    toml::to_string_pretty(&cfg).unwrap()
}

/// The codes a broken config may produce: never a panic, never an uncoded error.
fn assert_coded(r: Result<Config, ConfigError>) -> Result<(), proptest::test_runner::TestCaseError> {
    if let Err(e) = r {
        let code = crate::error::EngineError::from(e).code().as_str();
        proptest::prop_assert!(code == "config_corrupt" || code == "config_invalid", "{code}");
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

    #[test]
    fn any_text_parses_or_is_a_coded_error(text in ".{0,512}") {
        assert_coded(Config::parse(&text, Path::new("config.toml")))?;
    }

    /// A real config with bytes replaced, inserted or cut off: what a bad hand edit or a
    /// half-written file from elsewhere looks like.
    #[test]
    fn a_mangled_config_parses_or_is_a_coded_error(
        edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), ".{0,8}", 0usize..3), 1..6),
        cut in proptest::prelude::any::<proptest::sample::Index>(),
    ) {
        let mut text = sample_text();
        for (at, with, kind) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            match kind {
                0 => text.insert_str(i, &with),
                1 => {
                    let mut end = (i + with.len().max(1)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(i..end, &with);
                }
                _ => text.truncate(i),
            }
        }
        let mut end = cut.index(text.len() + 1).max(text.len() / 2);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        assert_coded(Config::parse(&text, Path::new("config.toml")))?;
    }

    /// Bytes that are not UTF-8 reach the parser only through the store, which reports them.
    #[test]
    fn a_file_that_is_not_utf8_is_a_coded_error(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..256)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let mut data = b"version = 1\n".to_vec();
        data.extend_from_slice(&bytes);
        std::fs::write(&path, &data).unwrap();
        let r = Store::new(path).load();
        if std::str::from_utf8(&data).is_err() {
            proptest::prop_assert!(r.is_err());
        }
        if let Err(e) = r {
            let code = crate::error::EngineError::from(e).code().as_str();
            proptest::prop_assert!(code.starts_with("config_"), "{code}");
        }
    }
}

#[test]
fn the_sample_config_parses() {
    assert!(Config::parse(&sample_text(), Path::new("config.toml")).is_ok());
}
