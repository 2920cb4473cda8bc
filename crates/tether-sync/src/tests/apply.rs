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

#[cfg(unix)]
#[test]
fn a_file_made_in_staging_lands_whole_and_leaves_nothing_there() {
    let top = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = top.path().join("mirror");
    let staging = top.path().join("staging");
    std::fs::create_dir(&root).unwrap_or_else(|e| panic!("{e}"));
    let mut r = Replica::new(root.clone(), Rules::new(&[]).unwrap_or_else(|e| panic!("{e}")));
    r.staging = Some(staging.clone());
    r.keep_dirs = true;
    let e = ok(r.put_file("src/app.js", Expect::Absent, b"v1", true, 1_700_000_000_000_000_042));
    assert_eq!(std::fs::read(root.join("src/app.js")).unwrap_or_default(), b"v1");
    assert_eq!(e.mtime, 1_700_000_000_000_000_042);
    assert!(matches!(e.kind, Kind::File { exec: true, .. }));
    // A change conditioned on what is there goes the same way.
    let e2 = ok(r.put_file("src/app.js", Expect::Is(e), b"v2", false, 1_700_000_000_000_000_043));
    assert_eq!(std::fs::read(root.join("src/app.js")).unwrap_or_default(), b"v2");
    assert!(matches!(e2.kind, Kind::File { exec: false, .. }));
    // A new file where one appeared meanwhile is refused, and its staged copy removed.
    std::fs::write(root.join("src/new.js"), b"someone else's").unwrap_or_default();
    assert!(matches!(
        r.put_file("src/new.js", Expect::Absent, b"mine", false, 0),
        Err(ApplyError::Changed { .. })
    ));
    assert_eq!(
        std::fs::read(root.join("src/new.js")).unwrap_or_default(),
        b"someone else's"
    );
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in staging: {left:?}");
    let beside: Vec<_> = std::fs::read_dir(root.join("src"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(beside.len(), 2, "{beside:?}");
}

#[cfg(unix)]
#[test]
fn a_folder_kept_open_is_never_followed_through_a_link_put_in_its_place() {
    let (dir, mut r) = replica();
    r.keep_dirs = true;
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    ok(r.put_file("d/a", Expect::Absent, b"a", false, 0));
    // Someone moves the folder away and puts a link to outside the root in its place, between
    // two files of a burst.
    std::fs::rename(dir.path().join("d"), dir.path().join("moved")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(outside.path(), dir.path().join("d")).unwrap_or_else(|e| panic!("{e}"));
    // The folder held open is the folder itself, wherever it went: not the link.
    ok(r.put_file("d/b", Expect::Absent, b"b", false, 0));
    assert!(dir.path().join("moved/b").exists());
    assert!(!outside.path().join("b").exists());
    // Once the burst ends, the path is looked up again: a link in it is refused.
    r.forget_dirs();
    let got = r.put_file("d/c", Expect::Absent, b"c", false, 0);
    assert!(matches!(got, Err(ApplyError::Parent { .. })), "{got:?}");
    assert_eq!(std::fs::read_dir(outside.path()).map(|d| d.count()).unwrap_or(1), 0);
}
