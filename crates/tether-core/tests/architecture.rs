//! The module graph of tether-core, checked from the source: every module sits in one layer,
//! uses only its own layer and the ones below, and no two modules use each other, however
//! indirectly. A `use` that breaks this fails here, naming the edge and the rule.

// A test: a missing source file should fail it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first. A module may use its own layer and those before it.
const LAYERS: &[(&str, &[&str])] = &[
    // The operating system's seams: local endpoints, the peer's identity, private files. The only
    // modules with Unix-only code (see `os_specific_code_lives_in_the_seams`).
    ("os", &["endpoint", "peer", "private"]),
    // Data and rules: the wire types, the config, the state machine, time, window credit.
    (
        "model",
        &[
            "api", "backoff", "clock", "config", "flow", "logring", "paths", "ports", "state", "target",
        ],
    ),
    // One outside party each: the SSH link, the keychain, known_hosts, the Docker socket, the
    // docker CLI's contexts, the OS (locks, sleep, network changes), the local listeners.
    (
        "io",
        &[
            "contexts",
            "docker",
            "forward",
            "identity",
            "kube",
            "instance",
            "keystore",
            "known_hosts",
            "netwatch",
            "ping",
            "pool",
            "pump",
            "remote",
            "reverse",
            "ssh",
            "wake",
        ],
    ),
    // Every failure a caller sees, gathered from the layers below.
    ("errors", &["error"]),
    // The actors: one session per VM and its Docker monitor.
    ("actors", &["monitor", "session"]),
    // The engine and its operations (the only `impl Engine` blocks).
    (
        "engine",
        &[
            "checks",
            "containers",
            "doctor",
            "engine",
            "hostkeys",
            "k8s",
            "keys",
            "profiles",
        ],
    ),
    // The control API over the engine.
    ("control", &["control"]),
];

/// `crate::NAME` references in `text`, comments left out.
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Each module's source: a top-level file, or a directory's files together (`session/`). Unit
/// tests under `src/tests` belong to their modules and are left out.
fn sources() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && name != "tests" {
            let mut text = String::new();
            for file in std::fs::read_dir(&path).expect("module dir") {
                let file = file.expect("entry").path();
                if file.extension().is_some_and(|e| e == "rs") {
                    text.push_str(&std::fs::read_to_string(&file).expect("read"));
                }
            }
            out.insert(name, text);
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
            out.insert(name, std::fs::read_to_string(&path).expect("read"));
        }
    }
    out
}

/// Every broken rule, as a sentence.
fn violations(graph: &BTreeMap<String, BTreeSet<String>>, impl_engine: &BTreeSet<String>) -> Vec<String> {
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, mods))| mods.iter().map(move |m| (*m, i)))
        .collect();
    let mut out = Vec::new();
    for (module, deps) in graph {
        let Some(&mine) = layer_of.get(module.as_str()) else {
            out.push(format!(
                "module `{module}` is in no layer: add it to LAYERS in tests/architecture.rs"
            ));
            continue;
        };
        for dep in deps {
            match layer_of.get(dep.as_str()) {
                Some(&theirs) if theirs > mine => out.push(format!(
                    "`{module}` ({}) uses `{dep}` ({}), a layer above it",
                    LAYERS[mine].0, LAYERS[theirs].0
                )),
                _ => {}
            }
        }
    }
    // Cycles, also within a layer: a depth-first search that reports the first back edge.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        out: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|p| *p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m);
            out.push(format!("a cycle: {}", cycle.join(" → ")));
            return;
        }
        if !done.insert(m) {
            return;
        }
        path.push(m);
        for d in graph.get(m).into_iter().flatten() {
            visit(d, graph, path, done, out);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, graph, &mut Vec::new(), &mut done, &mut out);
    }
    let engine_layer = LAYERS
        .iter()
        .find(|(n, _)| *n == "engine")
        .map(|(_, m)| *m)
        .unwrap_or(&[]);
    for m in impl_engine {
        if !engine_layer.contains(&m.as_str()) {
            out.push(format!("`{m}` adds an `impl Engine` block; only the engine layer may"));
        }
    }
    out
}

fn graph_of(sources: &BTreeMap<String, String>) -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let mut graph = BTreeMap::new();
    let mut impl_engine = BTreeSet::new();
    for (name, text) in sources {
        let mut deps = uses(text);
        deps.remove(name);
        deps.retain(|d| sources.contains_key(d));
        graph.insert(name.clone(), deps);
        if text.contains("impl Engine {") {
            impl_engine.insert(name.clone());
        }
    }
    (graph, impl_engine)
}

#[test]
fn modules_use_only_their_layer_and_below_and_never_each_other() {
    let (graph, impl_engine) = graph_of(&sources());
    // A module in a directory is read as one: the session's files use the SSH layer.
    assert!(graph["session"].contains("ssh"), "{:?}", graph["session"]);
    let broken = violations(&graph, &impl_engine);
    assert!(
        broken.is_empty(),
        "the module graph breaks its rules:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn the_check_catches_an_upward_use_a_cycle_and_a_module_without_a_layer() {
    let mut sources = sources();
    // The config starting to talk to a session: up two layers, and a cycle through them.
    sources
        .get_mut("config")
        .unwrap()
        .push_str("\nuse crate::session::SessionHandle;\n");
    sources.insert("newthing".into(), "use crate::clock;\n".into());
    let (graph, impl_engine) = graph_of(&sources);
    let broken = violations(&graph, &impl_engine).join("\n");
    assert!(broken.contains("`config` (model) uses `session` (actors)"), "{broken}");
    assert!(broken.contains("a cycle:") && broken.contains("config"), "{broken}");
    assert!(broken.contains("module `newthing` is in no layer"), "{broken}");
    // A comment naming a module is not a use.
    assert!(uses("// see crate::engine\nlet x = 1; // crate::session").is_empty());
}

/// What only the seams may say: Unix sockets, file modes, uids, raw libc.
const OS_SPECIFIC: &[&str] = &[
    "std::os::unix",
    "tokio::net::Unix",
    "tokio::net::unix",
    "libc::",
    "connect_with_unix",
    "connect_uds",
    "PermissionsExt",
    "OpenOptionsExt",
    "peer_cred",
];

/// Lines of `text` (comments left out) that say something only the seams may.
fn os_specific(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .filter(|code| OS_SPECIFIC.iter().any(|s| code.contains(s)))
        .map(|code| code.trim().to_string())
        .collect()
}

#[test]
fn os_specific_code_lives_in_the_seams() {
    let seams = LAYERS[0].1;
    let mut broken = Vec::new();
    for (module, text) in sources() {
        if seams.contains(&module.as_str()) {
            continue;
        }
        for line in os_specific(&text) {
            broken.push(format!("`{module}`: {line}"));
        }
    }
    assert!(
        broken.is_empty(),
        "OS-specific code outside the seams ({}); move it behind one of them:\n  {}",
        seams.join(", "),
        broken.join("\n  ")
    );
    // And the check sees such code where it is.
    assert!(!os_specific(&sources()["private"]).is_empty());
    assert!(os_specific("// std::os::unix in a comment").is_empty());
}
