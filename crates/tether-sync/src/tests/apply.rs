use super::*;

fn replica() -> (tempfile::TempDir, Replica) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rules = Rules::new(&[]).unwrap_or_else(|e| panic!("{e}"));
    let r = Replica::new(dir.path().to_path_buf(), rules);
    (dir, r)
}

fn ok<T>(r: Result<T, ApplyError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_file_lands_whole_with_its_mode_and_mtime_and_parents() {
    let (dir, r) = replica();
    let e = ok(r.put_file(
        "a/b/run.sh",
        Expect::Absent,
        b"#!/bin/sh\n",
        true,
        1_600_000_000_000_000_123,
    ));
    let p = dir.path().join("a/b/run.sh");
    assert_eq!(std::fs::read(&p).unwrap_or_default(), b"#!/bin/sh\n");
    assert_eq!(e.mtime, 1_600_000_000_000_000_123);
    assert!(matches!(e.kind, Kind::File { exec: true, digest } if digest == entry::digest_of(b"#!/bin/sh\n")));
    // Nothing temporary is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn a_change_made_meanwhile_is_never_overwritten() {
    let (dir, r) = replica();
    let first = ok(r.put_file("f", Expect::Absent, b"one", false, 1_000_000_000));
    // Someone writes the file after the other side last heard of it.
    std::fs::write(dir.path().join("f"), b"someone else's").unwrap_or_default();
    let got = r.put_file("f", Expect::Is(first.clone()), b"two", false, 2_000_000_000);
    assert!(matches!(got, Err(ApplyError::Changed { .. })), "{got:?}");
    assert_eq!(
        std::fs::read(dir.path().join("f")).unwrap_or_default(),
        b"someone else's"
    );
    // A new file where one already exists is refused too.
    assert!(matches!(
        r.put_file("f", Expect::Absent, b"x", false, 0),
        Err(ApplyError::Changed { .. })
    ));
    assert!(matches!(
        r.remove("f", Expect::Is(first)),
        Err(ApplyError::Changed { .. })
    ));
}

#[cfg(unix)]
#[test]
fn nothing_is_written_through_a_link_out_of_the_root() {
    let (dir, r) = replica();
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let link = ok(r.link("src", Expect::Absent, &outside.path().display().to_string(), 0));
    assert!(matches!(link.kind, Kind::Link { .. }));
    let got = r.put_file("src/evil", Expect::Absent, b"x", false, 0);
    assert!(matches!(got, Err(ApplyError::Parent { .. })), "{got:?}");
    assert!(!outside.path().join("evil").exists());
    assert!(r.mkdir("src/d", Expect::Absent, 0).is_err());
    assert!(!outside.path().join("d").exists());
    // The link itself is kept as a link.
    assert!(
        dir.path()
            .join("src")
            .symlink_metadata()
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
    );
}

#[test]
fn a_folder_goes_only_with_what_the_rules_ignore_inside() {
    let (dir, r) = replica();
    let d = ok(r.mkdir("web", Expect::Absent, 0));
    ok(r.mkdir("web/node_modules", Expect::Absent, 0));
    ok(r.put_file("web/node_modules/x.js", Expect::Absent, b"x", false, 0));
    ok(r.remove("web", Expect::Is(d.clone())));
    assert!(!dir.path().join("web").exists());

    let d = ok(r.mkdir("app", Expect::Absent, 0));
    ok(r.put_file("app/new.txt", Expect::Absent, b"added meanwhile", false, 0));
    assert!(matches!(
        r.remove("app", Expect::Is(d)),
        Err(ApplyError::Changed { .. })
    ));
    assert!(dir.path().join("app/new.txt").exists());
}
