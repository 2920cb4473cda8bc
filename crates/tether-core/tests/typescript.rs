//! The UI's view of the engine's wire types, generated from the Rust types so the two cannot
//! drift: this test fails when `ui/src/lib/engine.gen.ts` is not what the types generate now.
//! `TETHER_BLESS=1 cargo test -p tether-core --test typescript` rewrites it.

// A test: a file that cannot be read or written should fail it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use tether_core::api::*;
use tether_core::config::{Arch, KeyOrigin, KubeLink, PortMap, Profile, ReverseMap, Settings};
use tether_core::state::State;
use ts_rs::{Config, TS};

fn generated_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/lib/engine.gen.ts")
}

/// One declaration, with its doc comment, as the UI imports it.
fn declare<T: TS>(cfg: &Config) -> String {
    let docs = T::docs().unwrap_or_default();
    format!("{docs}export {}\n", T::decl(cfg))
}

/// The whole generated file.
fn generate() -> String {
    // Every integer on the wire fits a JS number (ports, counts, bytes, Unix milliseconds).
    let cfg = Config::new().with_large_int("number");
    let decls = [
        declare::<State>(&cfg),
        declare::<Arch>(&cfg),
        declare::<EngineInfo>(&cfg),
        declare::<PoolView>(&cfg),
        declare::<ForwardState>(&cfg),
        declare::<ForwardStatus>(&cfg),
        declare::<ReverseStatus>(&cfg),
        declare::<KubeView>(&cfg),
        declare::<tether_core::doctor::Doctor>(&cfg),
        declare::<tether_core::doctor::VmChecks>(&cfg),
        declare::<tether_core::logring::LogLine>(&cfg),
        declare::<Proto>(&cfg),
        declare::<UnforwardedPort>(&cfg),
        declare::<VmStatus>(&cfg),
        declare::<tether_core::api::SyncState>(&cfg),
        declare::<tether_core::api::ConflictView>(&cfg),
        declare::<tether_core::api::SyncedFolder>(&cfg),
        declare::<tether_core::api::ShareView>(&cfg),
        declare::<tether_core::api::VmShares>(&cfg),
        declare::<tether_core::config::Share>(&cfg),
        declare::<Event>(&cfg),
        declare::<TimedEvent>(&cfg),
        declare::<ConnectReport>(&cfg),
        declare::<EngineHealth>(&cfg),
        declare::<Disk>(&cfg),
        declare::<VmHealth>(&cfg),
        declare::<Health>(&cfg),
        declare::<Sample>(&cfg),
        declare::<HealthReport>(&cfg),
        declare::<ConnectionSettings>(&cfg),
        declare::<tether_core::api::ErrorCode>(&cfg),
        declare::<tether_core::api::FixAction>(&cfg),
        declare::<tether_core::api::Fix>(&cfg),
        declare::<tether_core::api::Advice>(&cfg),
        declare::<ErrorDetails>(&cfg),
        declare::<RecordedKey>(&cfg),
        declare::<ErrorBody>(&cfg),
        declare::<Settings>(&cfg),
        declare::<KeyOrigin>(&cfg),
        declare::<KeyView>(&cfg),
        declare::<RotateReport>(&cfg),
        declare::<PortView>(&cfg),
        declare::<ContainerView>(&cfg),
        declare::<Check>(&cfg),
        declare::<SshHost>(&cfg),
        declare::<HostKeyVerdict>(&cfg),
        declare::<HostKeyScan>(&cfg),
        // What the window sends: the control API's requests, as the engine reads them.
        declare::<PortMap>(&cfg),
        declare::<ReverseMap>(&cfg),
        declare::<KubeLink>(&cfg),
        declare::<Profile>(&cfg),
        declare::<tether_core::k8s::KubeSetup>(&cfg),
        declare::<tether_core::doctor::ClientFacts>(&cfg),
        declare::<tether_core::containers::Action>(&cfg),
        declare::<tether_core::control::Request>(&cfg),
    ];
    format!(
        "// Generated from tether-core's wire types by crates/tether-core/tests/typescript.rs; do not edit.\n\
         // After changing a type: TETHER_BLESS=1 cargo test -p tether-core --test typescript\n\n{}",
        decls.join("\n")
    )
}

#[test]
fn the_ui_types_are_generated_from_the_engine_types() {
    let want = generate();
    let path = generated_file();
    if std::env::var_os("TETHER_BLESS").is_some() {
        std::fs::write(&path, &want).expect("write the generated types");
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale: the engine's types changed. Run `TETHER_BLESS=1 cargo test -p tether-core --test \
         typescript` and commit the result.\nFirst difference at line {}",
        path.display(),
        have.lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| have.lines().count().min(want.lines().count()) + 1, |i| i + 1)
    );
}

#[test]
fn a_changed_type_makes_the_file_stale() {
    // What the check compares is the type's shape: a field more is a different file.
    let cfg = Config::new().with_large_int("number");
    let before = declare::<Disk>(&cfg);
    #[derive(TS)]
    #[ts(rename = "Disk")]
    #[allow(dead_code)]
    struct DiskWithMore {
        used: u64,
        total: u64,
        free: u64,
    }
    let after = declare::<DiskWithMore>(&cfg);
    assert_ne!(before, after);
    assert!(generate().contains(&before));
    assert!(!generate().contains(&after));
}
