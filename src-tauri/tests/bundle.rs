//! The packaging settings each platform relies on, read from the files the bundler reads: a
//! menu-bar app without a Dock icon on macOS, a per-user install without a UAC prompt on Windows,
//! both binaries in the Linux packages, and every icon the bundle names.
#![allow(clippy::panic)]

use std::path::{Path, PathBuf};

use serde_json::Value;

fn app_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn config(name: &str) -> Value {
    let path = app_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A file the config names, relative to the app's directory as the bundler resolves it.
fn named(path: &Value) -> PathBuf {
    let p = path.as_str().unwrap_or_else(|| panic!("not a path: {path}"));
    app_dir().join(p)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value after `<key>KEY</key>` in a property list, as its raw XML element.
fn plist_value(plist: &str, key: &str) -> Option<String> {
    let after = plist.split(&format!("<key>{key}</key>")).nth(1)?;
    let element = after.trim_start();
    let end = element.find("/>").map(|i| i + 2).or_else(|| {
        let close = element.find("</")?;
        element[close..].find('>').map(|j| close + j + 1)
    })?;
    Some(element[..end].to_string())
}

#[test]
fn macos_is_a_menu_bar_app_with_network_entitlements_and_no_sandbox() {
    let conf = config("tauri.conf.json");
    let mac = &conf["bundle"]["macOS"];
    let info = read(&named(&mac["infoPlist"]));
    assert_eq!(plist_value(&info, "LSUIElement").as_deref(), Some("<true/>"), "{info}");
    let ent = read(&named(&mac["entitlements"]));
    for key in ["com.apple.security.network.client", "com.apple.security.network.server"] {
        assert_eq!(plist_value(&ent, key).as_deref(), Some("<true/>"), "{key} in {ent}");
    }
    // A sandboxed app could not read ~/.ssh or serve the Docker socket.
    assert_eq!(plist_value(&ent, "com.apple.security.app-sandbox"), None);
    let min = mac["minimumSystemVersion"].as_str().unwrap_or_default();
    assert!(min.starts_with("11."), "minimumSystemVersion {min:?}");
    // The CLI ships inside the bundle, beside the app.
    assert_eq!(mac["files"]["MacOS/tether"], "../target/release/tether");
    let targets = conf["bundle"]["targets"].as_array().cloned().unwrap_or_default();
    for t in ["app", "dmg", "deb", "rpm", "nsis"] {
        assert!(targets.iter().any(|v| v == t), "bundle target {t} missing: {targets:?}");
    }
}

#[test]
fn windows_installs_per_user_with_the_cli_on_path() {
    let conf = config("tauri.conf.json");
    let nsis = &conf["bundle"]["windows"]["nsis"];
    // currentUser: installed under %LOCALAPPDATA%, so no UAC prompt.
    assert_eq!(nsis["installMode"], "currentUser");
    let hooks = read(&named(&nsis["installerHooks"]));
    for hook in ["NSIS_HOOK_POSTINSTALL", "NSIS_HOOK_PREUNINSTALL"] {
        assert!(hooks.contains(&format!("!macro {hook}")), "{hook} missing:\n{hooks}");
    }
    // The folder reaches PowerShell through the environment, never spliced into its code, and
    // the user's Path keeps its type (REG_EXPAND_SZ) and unexpanded variables.
    assert!(hooks.contains("TETHER_INSTDIR\", t \"$INSTDIR\""), "{hooks}");
    assert!(hooks.contains("$$env:TETHER_INSTDIR"), "{hooks}");
    assert!(hooks.contains("-PropertyType ExpandString"), "{hooks}");
    assert!(hooks.contains("DoNotExpandEnvironmentNames"), "{hooks}");
    for line in hooks.lines().filter(|l| l.contains("powershell")) {
        assert!(
            !line.contains("$INSTDIR"),
            "the folder is spliced into PowerShell's code: {line}"
        );
    }
    let win = config("../installers/windows/tauri.conf.json");
    assert_eq!(win["bundle"]["resources"]["../target/release/tether.exe"], "tether.exe");
}

#[test]
fn linux_packages_hold_both_binaries() {
    let conf = config("tauri.conf.json");
    for kind in ["deb", "rpm"] {
        assert_eq!(
            conf["bundle"]["linux"][kind]["files"]["/usr/bin/tether"], "../target/release/tether",
            "{kind}"
        );
    }
}

#[test]
fn every_icon_the_bundle_names_exists_and_windows_has_one() {
    let conf = config("tauri.conf.json");
    let icons = conf["bundle"]["icon"].as_array().cloned().unwrap_or_default();
    for icon in &icons {
        let path = named(icon);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let png = bytes.starts_with(b"\x89PNG\r\n\x1a\n");
        // An icon directory: reserved 0, type 1 (icon), then at least one image.
        let ico = bytes.len() > 6 && bytes[..4] == [0, 0, 1, 0] && bytes[4..6] != [0, 0];
        assert!(png || ico, "{} is neither a PNG nor an icon file", path.display());
    }
    assert!(
        icons.iter().any(|i| i.as_str().is_some_and(|s| s.ends_with(".ico"))),
        "Windows needs an .ico: {icons:?}"
    );
}
