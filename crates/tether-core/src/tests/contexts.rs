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
    let store = ContextStore::at(dir.path());
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
    let store = ContextStore::at(dir.path());
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
