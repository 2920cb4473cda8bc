//! The docker context store: Tether's contexts are written where the docker CLI looks, kept in
//! step with the wanted set, and nobody else's context is touched.

use super::*;

fn want(name: &str, host: &str) -> Wanted {
    Wanted {
        name: name.into(),
        description: format!("Tether: {name}"),
        host: host.into(),
    }
}

#[test]
fn sync_writes_updates_and_removes_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContextStore::at(dir.path(), "aaaa000000000001", "/home/a");
    // A context of the user's, and one that happens to be called like ours.
    for (name, host) in [("mine", "tcp://10.0.0.1:2375"), ("tether-x", "unix:///elsewhere.sock")] {
        let d = store.dir_of(name);
        std::fs::create_dir_all(&d).unwrap();
        let doc = json!({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host}}});
        std::fs::write(d.join("meta.json"), doc.to_string()).unwrap();
    }
    let before_mine = std::fs::read(store.dir_of("mine").join("meta.json")).unwrap();

    let problems = store.sync(&[
        want("tether-a", "unix:///a.sock"),
        want("tether", "unix:///a.sock"),
        want("tether-x", "unix:///x.sock"),
    ]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .to_string()
            .contains("'tether-x' already exists and was not made by Tether")
    );
    assert_eq!(
        store.managed().keys().cloned().collect::<Vec<_>>(),
        ["tether", "tether-a"]
    );
    let a = store.read(&store.dir_of("tether-a")).unwrap();
    assert_eq!(a["Endpoints"]["docker"]["Host"], "unix:///a.sock");
    // The active VM changes and a VM goes away.
    store.sync(&[want("tether-b", "unix:///b.sock"), want("tether", "unix:///b.sock")]);
    assert_eq!(
        store.managed().keys().cloned().collect::<Vec<_>>(),
        ["tether", "tether-b"]
    );
    assert_eq!(
        store.read(&store.dir_of("tether")).unwrap()["Endpoints"]["docker"]["Host"],
        "unix:///b.sock"
    );
    assert_eq!(
        std::fs::read(store.dir_of("mine").join("meta.json")).unwrap(),
        before_mine
    );
    assert!(store.dir_of("tether-x").join("meta.json").exists());

    // Nothing wanted: only Tether's go.
    store.sync(&[]);
    assert!(store.managed().is_empty());
    assert!(store.dir_of("mine").join("meta.json").exists());
}

#[test]
fn set_current_keeps_every_other_setting() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContextStore::at(dir.path(), "aaaa000000000001", "/home/a");
    assert_eq!(store.current(), None);
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"auths":{"r.example":{"auth":"x"}},"currentContext":"mine"}"#,
    )
    .unwrap();
    store.set_current("tether").unwrap();
    let v: Value = serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(v["currentContext"], "tether");
    assert_eq!(v["auths"]["r.example"]["auth"], "x");
    // A broken file is reported and left as it was.
    std::fs::write(dir.path().join("config.json"), "{oops").unwrap();
    let err = store.set_current("tether").unwrap_err();
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("config.json")).unwrap(),
        "{oops"
    );
}

#[test]
fn two_installs_on_one_docker_config_leave_each_other_alone() {
    let dir = tempfile::tempdir().unwrap();
    let a = ContextStore::at(dir.path(), "aaaa000000000001", "/home/a/.config/tether");
    let b = ContextStore::at(dir.path(), "bbbb000000000002", "/home/b/tether");
    assert!(
        a.sync(&[want("tether-a", "unix:///a.sock"), want("tether", "unix:///a.sock")])
            .is_empty()
    );
    // B wants a context of the same name: reported, and A's is left as it was.
    let problems = b.sync(&[want("tether", "unix:///b.sock"), want("tether-b", "unix:///b.sock")]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let msg = problems[0].to_string();
    assert!(msg.contains("another Tether install (/home/a/.config/tether)"), "{msg}");
    assert_eq!(
        a.read(&a.dir_of("tether")).unwrap()["Endpoints"]["docker"]["Host"],
        "unix:///a.sock"
    );
    // B's sync removes only B's: A's survive B wanting nothing at all.
    b.sync(&[]);
    assert!(b.managed().is_empty());
    assert_eq!(a.managed().keys().cloned().collect::<Vec<_>>(), ["tether", "tether-a"]);
    // And the other way round.
    b.sync(&[want("tether-b", "unix:///b.sock")]);
    a.sync(&[]);
    assert_eq!(b.managed().keys().cloned().collect::<Vec<_>>(), ["tether-b"]);
}

#[test]
fn a_context_from_before_install_ids_is_adopted_but_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContextStore::at(dir.path(), "aaaa000000000001", "/home/a");
    for name in ["tether-old", "tether-kept"] {
        let d = store.dir_of(name);
        std::fs::create_dir_all(&d).unwrap();
        let doc = json!({"Name": name, "Metadata": {"ManagedBy": "tether"}, "Endpoints": {"docker": {"Host": "unix:///old.sock"}}});
        std::fs::write(d.join("meta.json"), doc.to_string()).unwrap();
    }
    assert!(store.sync(&[want("tether-kept", "unix:///new.sock")]).is_empty());
    assert_eq!(
        store.read(&store.dir_of("tether-kept")).unwrap()["Endpoints"]["docker"]["Host"],
        "unix:///new.sock"
    );
    // It may be another install's from before: not ours to remove.
    assert!(store.dir_of("tether-old").join("meta.json").exists());
}
