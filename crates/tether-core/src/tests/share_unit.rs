//! A unit against a second local folder standing in for the VM: the agent's part is played by
//! `tether_sync::apply` on that folder, as the agent does it, so the decisions and their effects
//! on both trees are checked without SSH.

use super::*;
use tether_sync::proto::Outcome;

struct Pair {
    laptop: tempfile::TempDir,
    vm: tempfile::TempDir,
    unit: Unit,
    vm_side: Replica,
    conflicts: Vec<ConflictView>,
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

impl Pair {
    fn new() -> Pair {
        let laptop = ok(tempfile::tempdir());
        let vm = ok(tempfile::tempdir());
        let unit = ok(Unit::new(1, "home".into(), laptop.path().to_path_buf(), None, vec![]));
        let vm_side = Replica::new(vm.path().to_path_buf(), ok(Rules::new(&[])));
        Pair {
            laptop,
            vm,
            unit,
            vm_side,
            conflicts: Vec::new(),
        }
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            ok(std::fs::create_dir_all(parent));
        }
        ok(std::fs::write(p, text));
    }

    fn read(dir: &Path, rel: &str) -> Option<String> {
        std::fs::read_to_string(dir.join(rel)).ok()
    }

    /// Both sides scanned, as at a connect; everything decided and carried out.
    fn connect(&mut self) {
        self.unit.pause();
        self.unit.scan_laptop();
        let (tree, _) = scan::tree(self.vm.path(), &self.vm_side.rules, &scan::Tree::new());
        self.unit.vm_root = Some(self.vm.path().display().to_string());
        let mut out = Vec::new();
        self.unit.on_scan(tree.into_iter().collect(), vec![], true, &mut out);
        self.run(out);
    }

    /// The laptop side noticed `rel`.
    fn laptop_changed(&mut self, rel: &str) {
        let mut out = Vec::new();
        self.unit.local_change(rel, &mut out);
        self.run(out);
    }

    /// The agent noticed `rel` on the VM side.
    fn vm_changed(&mut self, rel: &str) {
        let now = ok(scan::one(
            self.vm.path(),
            rel,
            Some(&self.vm_side.rules),
            &scan::Tree::new(),
            Some(1 << 20),
        ));
        let (entry, data) = match now {
            Some((e, d)) => (Some(e), d),
            None => (None, None),
        };
        let mut out = Vec::new();
        self.unit.on_vm_changed(rel.to_string(), entry, data, &mut out);
        self.run(out);
    }

    /// Plays the agent: each message applied to the VM folder, its answer handed back.
    fn run(&mut self, out: Vec<Out>) {
        let mut queue: std::collections::VecDeque<Out> = out.into();
        while let Some(o) = queue.pop_front() {
            let mut more = Vec::new();
            match o {
                Out::Conflict(c) => self.conflicts.push(c),
                Out::Msg(ToAgent::Dir {
                    path, expect, mtime, ..
                }) => {
                    let r = self.vm_side.mkdir(&path, expect, mtime).map(Some);
                    self.answer(&path, r, &mut more);
                }
                Out::Msg(ToAgent::Link {
                    path,
                    expect,
                    target,
                    mtime,
                    ..
                }) => {
                    let r = self.vm_side.link(&path, expect, &target, mtime).map(Some);
                    self.answer(&path, r, &mut more);
                }
                Out::Msg(ToAgent::Remove { path, expect, .. }) => {
                    let r = self.vm_side.remove(&path, expect).map(|_| None);
                    self.answer(&path, r, &mut more);
                }
                Out::Msg(other) => panic!("unexpected {other:?}"),
                Out::SendFile {
                    path,
                    expect,
                    exec,
                    mtime,
                    ..
                } => {
                    let data = ok(std::fs::read(self.laptop.path().join(&path)));
                    let r = self.vm_side.put_file(&path, expect, &data, exec, mtime).map(Some);
                    self.answer(&path, r, &mut more);
                }
                Out::Read { path, to, .. } => {
                    let full = self.vm.path().join(&path);
                    // As the agent answers a read it cannot do: the error, no content.
                    let Ok(data) = std::fs::read(&full) else {
                        self.unit
                            .end_pull(&path, to, None, None, Some("gone".into()), &mut more);
                        queue.extend(more);
                        continue;
                    };
                    let meta = ok(full.symlink_metadata());
                    let entry = Entry {
                        kind: Kind::File {
                            digest: tether_sync::entry::digest_of(&data),
                            exec: false,
                        },
                        size: data.len() as u64,
                        mtime: tether_sync::entry::mtime_ns(&meta),
                    };
                    let mut staged = ok(self.unit.begin_pull(&path, &to));
                    ok(staged.write(&data));
                    self.unit
                        .end_pull(&path, to, Some(staged), Some(entry), None, &mut more);
                }
            }
            queue.extend(more);
        }
    }

    fn answer(&mut self, path: &str, r: Result<Option<Entry>, ApplyError>, out: &mut Vec<Out>) {
        let outcome = match r {
            Ok(e) => Outcome::Done(e),
            Err(ApplyError::Changed { .. }) => Outcome::Refused,
            Err(e) => Outcome::Failed(e.to_string()),
        };
        let refused = outcome == Outcome::Refused;
        self.unit.on_applied(path, outcome, out);
        if refused {
            // The agent reports what is there now.
            let now = ok(scan::one(
                self.vm.path(),
                path,
                Some(&self.vm_side.rules),
                &scan::Tree::new(),
                Some(1 << 20),
            ));
            let (entry, data) = match now {
                Some((e, d)) => (Some(e), d),
                None => (None, None),
            };
            self.unit.on_vm_changed(path.to_string(), entry, data, out);
        }
    }
}

#[test]
fn the_saved_state_reads_back_as_it_was_and_spares_a_restart_reading_unchanged_files() {
    let mut p = Pair::new();
    Pair::write(p.laptop.path(), "src/a.txt", "a");
    Pair::write(p.vm.path(), "b.txt", "b");
    p.connect();
    let bytes = ok(postcard::to_allocvec(&p.unit.saved()));
    let saved: Saved = ok(postcard::from_bytes(&bytes));
    assert_eq!(saved.root, p.unit.root);
    assert_eq!(saved.base, p.unit.base.clone().into_iter().collect::<Vec<_>>());
    assert_eq!(saved.laptop, p.unit.laptop.clone().into_iter().collect::<Vec<_>>());
    let mut again = ok(Unit::new(2, "home".into(), p.laptop.path().to_path_buf(), None, vec![]));
    again.restore(saved);
    assert_eq!(again.base, p.unit.base);
    // A file whose stat is unchanged keeps the saved digest: the scan does not read it (here
    // the digest on record is not the content's, which a read would have replaced).
    let mut forged = again.laptop.clone();
    let Some(Entry {
        kind: Kind::File { digest, .. },
        ..
    }) = forged.get_mut("src/a.txt")
    else {
        panic!("src/a.txt is not a file in {forged:?}");
    };
    *digest = [7; 32];
    again.laptop = forged;
    again.scan_laptop();
    assert!(matches!(
        again.laptop.get("src/a.txt").map(|e| &e.kind),
        Some(Kind::File { digest, .. }) if *digest == [7; 32]
    ));
    assert_eq!(again.laptop.get("b.txt"), p.unit.laptop.get("b.txt"));
}

#[test]
fn a_first_sync_brings_each_sides_files_to_the_other() {
    let mut p = Pair::new();
    Pair::write(p.laptop.path(), "src/main.rs", "fn main() {}");
    Pair::write(p.vm.path(), "out/report.txt", "made by a container");
    p.connect();
    assert_eq!(Pair::read(p.vm.path(), "src/main.rs").as_deref(), Some("fn main() {}"));
    assert_eq!(
        Pair::read(p.laptop.path(), "out/report.txt").as_deref(),
        Some("made by a container")
    );
    assert!(p.unit.settled());
    assert!(p.conflicts.is_empty());
}

#[test]
fn edits_and_deletions_go_each_way_and_a_deletion_loses_to_an_edit() {
    let mut p = Pair::new();
    Pair::write(p.laptop.path(), "a.txt", "one");
    Pair::write(p.laptop.path(), "b.txt", "one");
    p.connect();
    // An edit on the laptop, a deletion on the VM.
    Pair::write(p.laptop.path(), "a.txt", "two");
    p.laptop_changed("a.txt");
    assert_eq!(Pair::read(p.vm.path(), "a.txt").as_deref(), Some("two"));
    ok(std::fs::remove_file(p.vm.path().join("b.txt")));
    p.vm_changed("b.txt");
    assert_eq!(Pair::read(p.laptop.path(), "b.txt"), None);
    // While apart: the laptop deletes a.txt, the VM edits it. The edit comes back.
    ok(std::fs::remove_file(p.laptop.path().join("a.txt")));
    Pair::write(p.vm.path(), "a.txt", "three");
    p.connect();
    assert_eq!(Pair::read(p.laptop.path(), "a.txt").as_deref(), Some("three"));
    assert_eq!(Pair::read(p.vm.path(), "a.txt").as_deref(), Some("three"));
}

#[test]
fn a_conflict_keeps_the_laptops_version_and_the_vms_beside_it_on_both_sides() {
    let mut p = Pair::new();
    Pair::write(p.laptop.path(), "notes.txt", "base");
    p.connect();
    Pair::write(p.laptop.path(), "notes.txt", "laptop");
    Pair::write(p.vm.path(), "notes.txt", "vm");
    p.connect();
    assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
    let copy = Path::new(&p.conflicts[0].copy)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        copy.starts_with("notes.conflict-vm-") && copy.ends_with(".txt"),
        "{copy}"
    );
    for side in [p.laptop.path(), p.vm.path()] {
        assert_eq!(Pair::read(side, "notes.txt").as_deref(), Some("laptop"));
        assert_eq!(Pair::read(side, &copy).as_deref(), Some("vm"));
    }
    assert!(p.unit.settled());
}

#[test]
fn a_vm_change_made_while_the_laptops_was_on_its_way_is_never_overwritten() {
    let mut p = Pair::new();
    Pair::write(p.laptop.path(), "f.txt", "base");
    p.connect();
    // The laptop's edit leaves, but the container wrote first: the agent refuses it, and the
    // merge keeps both.
    Pair::write(p.laptop.path(), "f.txt", "laptop edit");
    Pair::write(p.vm.path(), "f.txt", "container write!");
    p.laptop_changed("f.txt");
    assert_eq!(Pair::read(p.laptop.path(), "f.txt").as_deref(), Some("laptop edit"));
    assert_eq!(p.conflicts.len(), 1);
    let copy = Path::new(&p.conflicts[0].copy)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert_eq!(Pair::read(p.laptop.path(), &copy).as_deref(), Some("container write!"));
}

#[cfg(unix)]
#[test]
fn a_link_from_the_vm_is_kept_as_a_link_and_never_written_through() {
    let mut p = Pair::new();
    let outside = ok(tempfile::tempdir());
    p.connect();
    ok(std::os::unix::fs::symlink(outside.path(), p.vm.path().join("escape")));
    p.vm_changed("escape");
    let link = p.laptop.path().join("escape");
    assert!(ok(link.symlink_metadata()).file_type().is_symlink());
    // A file reported under the link lands nowhere.
    Pair::write(p.vm.path(), "inside/x", "x");
    let mut out = Vec::new();
    p.unit.on_vm_changed(
        "escape/evil".into(),
        Some(Entry {
            kind: Kind::File {
                digest: tether_sync::entry::digest_of(b"evil"),
                exec: false,
            },
            size: 4,
            mtime: 0,
        }),
        Some(b"evil".to_vec()),
        &mut out,
    );
    p.run(out);
    assert!(!outside.path().join("evil").exists());
    assert!(p.unit.problems.contains_key("escape/evil"), "{:?}", p.unit.problems);
}
