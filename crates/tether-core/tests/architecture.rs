//! The module graph of tether-core, checked from the source: every module sits in one layer,
//! uses only its own layer and the ones below, and no two modules use each other, however
//! indirectly. A `use` that breaks this fails here, naming the edge and the rule. The source is
//! parsed (`syn`), so grouped imports (`use crate::{a, b::C}`) and paths in expressions count.
//!
//! Also kept true from here: ARCHITECTURE.md's code map names every module and file of the
//! engine, the CLI and the app, and nothing that is gone; and a source file over 500 lines says
//! at its top why it is one file.
//!
//! Longer than 500 lines on purpose: each rule comes with the test that shows it catching a
//! breach, beside it.

// A test: a missing source file should fail it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The layers, lowest first. A module may use its own layer and those before it.
const LAYERS: &[(&str, &[&str])] = &[
    // The operating system's seams: local endpoints, the peer's identity, private files. The only
    // modules with Unix-only code (see `os_specific_code_lives_in_the_seams`).
    ("os", &["endpoint", "peer", "private"]),
    // Data and rules: the wire types, the config, the state machine, time, window credit.
    (
        "model",
        &[
            "advice",
            "api",
            "backoff",
            "clock",
            "config",
            "dockerapi",
            "flow",
            "logring",
            "paths",
            "ports",
            "state",
            "target",
            "tasks",
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
            "instance",
            "keystore",
            "known_hosts",
            "kube",
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
    ("actors", &["monitor", "session", "share"]),
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

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The first segment after `crate::` of every path in a syntax tree: `use` trees (grouped ones
/// too) and paths in types and expressions.
#[derive(Default)]
struct CrateUses(BTreeSet<String>);

impl CrateUses {
    /// `tree` follows a `crate::`: record what each of its branches names first.
    fn first_segments(&mut self, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                self.0.insert(p.ident.to_string());
            }
            syn::UseTree::Name(n) => {
                self.0.insert(n.ident.to_string());
            }
            syn::UseTree::Rename(r) => {
                self.0.insert(r.ident.to_string());
            }
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.first_segments(t)),
            syn::UseTree::Glob(_) => {
                self.0.insert("*".into());
            }
        }
    }

    /// Finds `crate::` at the head of `tree` (or of a group's branch at the top).
    fn use_tree(&mut self, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) if p.ident == "crate" => self.first_segments(&p.tree),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(t)),
            _ => {}
        }
    }
}

impl<'ast> Visit<'ast> for CrateUses {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let mut segs = p.segments.iter();
        if segs.next().is_some_and(|s| s.ident == "crate")
            && let Some(next) = segs.next()
        {
            self.0.insert(next.ident.to_string());
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // Macro bodies are tokens, not syntax: `crate::x` inside `format!`, `matches!`, … still
        // counts. Tokens print as `crate :: x`.
        let text = m.tokens.to_string();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("crate :: ") {
            rest = &rest[i + "crate :: ".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                self.0.insert(name);
            }
        }
        syn::visit::visit_macro(self, m);
    }
}

/// The modules a source file names through `crate::`; comments are not code.
fn uses(text: &str) -> BTreeSet<String> {
    let file = syn::parse_file(text).unwrap_or_else(|e| panic!("not Rust: {e}\n{text}"));
    let mut v = CrateUses::default();
    v.visit_file(&file);
    v.0
}

/// Each module's source files: a top-level file, or a directory's files (`session/`). Unit tests
/// under `src/tests` belong to their modules and are left out.
fn sources() -> BTreeMap<String, Vec<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && name != "tests" {
            let mut texts = Vec::new();
            for file in std::fs::read_dir(&path).expect("module dir") {
                let file = file.expect("entry").path();
                if file.extension().is_some_and(|e| e == "rs") {
                    texts.push(std::fs::read_to_string(&file).expect("read"));
                }
            }
            out.insert(name, texts);
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
            out.insert(name, vec![std::fs::read_to_string(&path).expect("read")]);
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
                "module `{module}` is in no layer: add it to LAYERS in tests/architecture.rs and to ARCHITECTURE.md"
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

fn graph_of(sources: &BTreeMap<String, Vec<String>>) -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let mut graph = BTreeMap::new();
    let mut impl_engine = BTreeSet::new();
    for (name, texts) in sources {
        let mut deps = BTreeSet::new();
        for text in texts {
            deps.extend(uses(text));
            if text.contains("impl Engine {") {
                impl_engine.insert(name.clone());
            }
        }
        deps.remove(name);
        deps.retain(|d| sources.contains_key(d));
        graph.insert(name.clone(), deps);
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
        .push("use crate::session::SessionHandle;\n".into());
    // The clock naming the engine inside a grouped import, as rustfmt writes them.
    sources
        .get_mut("clock")
        .unwrap()
        .push("use crate::{\n    api::Event,\n    engine::Engine,\n};\n".into());
    // The flow module naming the monitor in an expression, and the pump in a macro.
    sources
        .get_mut("flow")
        .unwrap()
        .push("fn f() { let _ = crate::monitor::start(); tracing::info!(\"{}\", crate::pump::X); }\n".into());
    sources.insert("newthing".into(), vec!["use crate::clock;\n".into()]);
    let (graph, impl_engine) = graph_of(&sources);
    let broken = violations(&graph, &impl_engine).join("\n");
    assert!(broken.contains("`config` (model) uses `session` (actors)"), "{broken}");
    assert!(broken.contains("a cycle:") && broken.contains("config"), "{broken}");
    assert!(broken.contains("module `newthing` is in no layer"), "{broken}");
    assert!(broken.contains("`clock` (model) uses `engine` (engine)"), "{broken}");
    assert!(!broken.contains("`clock` (model) uses `api`"), "{broken}");
    assert!(broken.contains("`flow` (model) uses `monitor` (actors)"), "{broken}");
    assert!(broken.contains("`flow` (model) uses `pump` (io)"), "{broken}");
    // A comment naming a module is not a use; nor is a path that only ends in `crate`.
    assert!(uses("// see crate::engine\nfn f() { let x = 1; } // crate::session").is_empty());
    assert_eq!(
        uses("use crate::{a, b::{c, d}, e as f};\nuse super::crate_like;\n"),
        ["a", "b", "e"].iter().map(|s| s.to_string()).collect()
    );
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
    for (module, texts) in sources() {
        if seams.contains(&module.as_str()) {
            continue;
        }
        for line in texts.iter().flat_map(|t| os_specific(t)) {
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
    assert!(!os_specific(&sources()["private"][0]).is_empty());
    assert!(os_specific("// std::os::unix in a comment").is_empty());
}

/// The text of ARCHITECTURE.md's section whose heading starts with `### ` + `heading`, up to the
/// next heading of that level or above.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("### {heading}"))
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no section '### {heading}'"));
    let body = &doc[start + 4..];
    let end = body
        .find("\n### ")
        .into_iter()
        .chain(body.find("\n## "))
        .min()
        .unwrap_or(body.len());
    &body[..end]
}

/// The backticked names in the first cell of each row of the tables in `text`.
fn first_cells(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some(row) = line.strip_prefix("| `") else { continue };
        let cell = row.split(" |").next().unwrap_or("");
        for name in format!("`{cell}").split('`').skip(1).step_by(2) {
            out.insert(name.to_string());
        }
    }
    out
}

/// The layer table (`| layer | modules | may use |`) of the engine's section: layer → modules.
fn doc_layers(text: &str) -> Vec<(String, BTreeSet<String>)> {
    text.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            // "", layer, modules, may use, ""
            if cells.len() != 5 || cells[1].starts_with('`') || !cells[2].starts_with('`') {
                return None;
            }
            // Backticked names of modules; a remark such as "(the only `impl Engine` blocks)" is not.
            let mods = cells[2]
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|n| !n.contains(' '))
                .map(String::from)
                .collect();
            Some((cells[1].to_string(), mods))
        })
        .collect()
}

/// What is wrong between the engine's modules (`actual`) and its code map in `text`.
fn engine_map_errors(text: &str, actual: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let documented: BTreeSet<String> = first_cells(text).into_iter().filter(|n| !n.contains(' ')).collect();
    for m in actual.difference(&documented) {
        out.push(format!("ARCHITECTURE.md's engine code map has no row for module `{m}`"));
    }
    for m in documented.difference(actual) {
        out.push(format!(
            "ARCHITECTURE.md's engine code map names `{m}`, which is not a module"
        ));
    }
    let layers = doc_layers(text);
    let expected: Vec<(String, BTreeSet<String>)> = LAYERS
        .iter()
        .map(|(l, m)| (l.to_string(), m.iter().map(|s| s.to_string()).collect()))
        .collect();
    if layers != expected {
        out.push(format!(
            "ARCHITECTURE.md's layer table differs from LAYERS in tests/architecture.rs:\n    doc:  {layers:?}\n    test: {expected:?}"
        ));
    }
    out
}

/// Files under `dir` (relative to the repository) with the extension `rs`, as paths relative to
/// `dir`.
fn rust_files(dir: &str) -> Vec<String> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(at).unwrap_or_else(|e| panic!("{}: {e}", at.display())) {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(
                    p.strip_prefix(root)
                        .expect("under root")
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    let root = repo().join(dir);
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// What is wrong between a binary crate's files and its section of the code map: each file is
/// named there as `` `path.rs` `` (relative to the crate), and each file named there exists.
fn file_map_errors(crate_name: &str, text: &str, files: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let named: BTreeSet<String> = text
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|n| n.ends_with(".rs") && !n.contains(' '))
        .map(String::from)
        .collect();
    let have: BTreeSet<String> = files.iter().cloned().collect();
    for f in have.difference(&named) {
        out.push(format!("ARCHITECTURE.md's section on {crate_name} does not name `{f}`"));
    }
    for f in named.difference(&have) {
        out.push(format!(
            "ARCHITECTURE.md's section on {crate_name} names `{f}`, which does not exist"
        ));
    }
    out
}

fn architecture_md() -> String {
    std::fs::read_to_string(repo().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md")
}

/// The binary crates' files the code map must name: source files, apart from unit-test files
/// that `#[path]` puts inside their module.
fn binary_crates() -> Vec<(&'static str, &'static str, Vec<String>)> {
    let cli: Vec<String> = rust_files("crates/tether-cli/src");
    let mut app: Vec<String> = rust_files("src-tauri/src").into_iter().collect();
    app.extend(
        rust_files("src-tauri/examples")
            .into_iter()
            .map(|f| format!("examples/{f}")),
    );
    let drop_tests = |v: Vec<String>| v.into_iter().filter(|f| !f.starts_with("tests/")).collect();
    vec![
        ("`crates/tether-cli`", "tether-cli", drop_tests(cli)),
        ("`src-tauri/`", "tether-app", drop_tests(app)),
    ]
}

#[test]
fn the_code_map_names_every_module_and_nothing_that_is_gone() {
    let doc = architecture_md();
    let engine = section(&doc, "`crates/tether-core`");
    let actual: BTreeSet<String> = sources().into_keys().collect();
    let mut broken = engine_map_errors(engine, &actual);
    for (heading, name, files) in binary_crates() {
        broken.extend(file_map_errors(name, section(&doc, heading), &files));
    }
    assert!(
        broken.is_empty(),
        "ARCHITECTURE.md is out of date:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn the_code_map_check_catches_a_missing_module_a_gone_one_and_a_wrong_layer() {
    let doc = architecture_md();
    let engine = section(&doc, "`crates/tether-core`");
    let mut actual: BTreeSet<String> = sources().into_keys().collect();
    assert!(engine_map_errors(engine, &actual).is_empty());
    actual.insert("newthing".into());
    actual.remove("wake");
    let broken = engine_map_errors(engine, &actual).join("\n");
    assert!(broken.contains("no row for module `newthing`"), "{broken}");
    assert!(broken.contains("names `wake`, which is not a module"), "{broken}");
    let moved = engine.replace("| os | `endpoint`, `peer`, `private` |", "| os | `endpoint`, `peer` |");
    assert_ne!(moved, engine, "the test's layer row is out of date");
    let broken = engine_map_errors(&moved, &sources().into_keys().collect()).join("\n");
    assert!(broken.contains("layer table differs"), "{broken}");

    let (heading, name, mut files) = binary_crates().remove(0);
    files.push("newcmd.rs".into());
    files.retain(|f| f != "output.rs");
    let broken = file_map_errors(name, section(&doc, heading), &files).join("\n");
    assert!(broken.contains("does not name `newcmd.rs`"), "{broken}");
    assert!(broken.contains("names `output.rs`, which does not exist"), "{broken}");
}

/// How a long file's top doc comment says why it is long ("Longer than N lines on purpose: …").
const LONG_BECAUSE: &str = "//! Longer than";
const LONG: usize = 500;

/// Whether `text` is over the limit without a `//! Longer than…` line in its opening comments.
fn long_without_why(text: &str) -> bool {
    text.lines().count() > LONG
        && !text
            .lines()
            .take_while(|l| l.starts_with("//") || l.starts_with("#!") || l.trim().is_empty())
            .any(|l| l.starts_with(LONG_BECAUSE))
}

#[test]
fn a_file_over_500_lines_says_at_its_top_why() {
    let mut broken = Vec::new();
    for dir in [
        "crates",
        "src-tauri/src",
        "src-tauri/tests",
        "src-tauri/examples",
        "tests",
    ] {
        for f in rust_files(dir) {
            let path = repo().join(dir).join(&f);
            let text = std::fs::read_to_string(&path).expect("read");
            if long_without_why(&text) {
                broken.push(format!("{dir}/{f} ({} lines)", text.lines().count()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "files over {LONG} lines must say why at the top, in a line starting '{LONG_BECAUSE} 500 lines on purpose:' (or be split):\n  {}",
        broken.join("\n  ")
    );
    let long = "fn f() {}\n".repeat(LONG + 1);
    assert!(long_without_why(&format!("//! A module.\n{long}")));
    assert!(!long_without_why(&format!(
        "//! A module.\n//!\n{LONG_BECAUSE} 500 lines on purpose: one table.\n{long}"
    )));
    assert!(!long_without_why(&"fn f() {}\n".repeat(LONG)));
}

/// Lines of `text` (comments left out) that start a task no one tracks.
fn detached_spawns(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .filter(|code| code.contains("tokio::spawn(") || code.contains("task::spawn("))
        .map(|code| code.trim().to_string())
        .collect()
}

#[test]
fn every_task_is_spawned_through_the_engines_tracker() {
    let mut broken = Vec::new();
    for (module, texts) in sources() {
        for line in texts.iter().flat_map(|t| detached_spawns(t)) {
            broken.push(format!("`{module}`: {line}"));
        }
    }
    assert!(
        broken.is_empty(),
        "tasks spawned outside the engine's tracker (spawn them with `shared.tasks.spawn`, see `tasks`):\n  {}",
        broken.join("\n  ")
    );
    assert_eq!(detached_spawns("    tokio::spawn(async move { x.await });").len(), 1);
    assert!(detached_spawns("self.shared.tasks.spawn(f); // not tokio::spawn(f)").is_empty());
}

/// `super::NAME` uses between the files of a module directory: file → sibling files it names.
fn sibling_graph(files: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    files
        .iter()
        .map(|(name, text)| {
            let deps = files
                .keys()
                .filter(|other| *other != name && text.contains(&format!("super::{other}")))
                .cloned()
                .collect();
            (name.clone(), deps)
        })
        .collect()
}

/// The first cycle in `graph`, as `a → b → a`.
fn a_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    fn visit(m: &str, graph: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>) -> Option<String> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle.join(" → "));
        }
        path.push(m.to_string());
        for d in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, graph, path) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    graph.keys().find_map(|m| visit(m, graph, &mut Vec::new()))
}

#[test]
fn the_files_of_the_session_actor_use_each_other_without_a_cycle() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/session");
    let files: BTreeMap<String, String> = std::fs::read_dir(&dir)
        .expect("session/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs") && p.file_stem().is_some_and(|s| s != "mod"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("read"))
        })
        .collect();
    assert!(files.len() >= 5, "{:?}", files.keys());
    let graph = sibling_graph(&files);
    assert_eq!(a_cycle(&graph), None, "{graph:?}");
    // And the check finds one where there is one.
    let mut tangled = files.clone();
    tangled
        .get_mut("tunnels")
        .unwrap()
        .push_str("\nuse super::status::problem;\n");
    tangled
        .get_mut("status")
        .unwrap()
        .push_str("\nuse super::tunnels::Tunnel;\n");
    assert!(a_cycle(&sibling_graph(&tangled)).is_some());
}
