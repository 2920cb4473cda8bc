//! Paths inside a replica: relative, `/`-separated, every component a plain name.
//!
//! Every path that crosses the wire is checked here before it touches a file system, so a VM
//! that reports `../../.ssh/authorized_keys` or `/etc/passwd` gets an error, not a write.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{path:?} is not a path inside a shared folder ({why})")]
pub struct BadPath {
    pub path: String,
    pub why: &'static str,
}

/// Checks a relative path from the wire: non-empty `/`-separated names, none of them `.`, `..`
/// or empty, no NUL, and (so that it means the same on Windows) no `\` or `:`.
pub fn check(rel: &str) -> Result<(), BadPath> {
    let bad = |why| {
        Err(BadPath {
            path: rel.to_string(),
            why,
        })
    };
    if rel.is_empty() {
        return bad("empty");
    }
    for part in rel.split('/') {
        match part {
            "" => return bad("an empty name or a leading slash"),
            "." | ".." => return bad("a . or .. component"),
            _ if part.contains('\0') => return bad("a NUL byte"),
            _ if part.contains('\\') || part.contains(':') => return bad("a \\ or : in a name"),
            _ => {}
        }
    }
    Ok(())
}

/// The file-system path of `rel` under `root`, after [`check`].
pub fn join(root: &Path, rel: &str) -> Result<PathBuf, BadPath> {
    check(rel)?;
    let mut p = root.to_path_buf();
    for part in rel.split('/') {
        p.push(part);
    }
    Ok(p)
}

/// `rel`'s parent, or `None` at the top.
pub fn parent(rel: &str) -> Option<&str> {
    rel.rsplit_once('/').map(|(p, _)| p)
}

/// `rel`'s last name.
pub fn name(rel: &str) -> &str {
    rel.rsplit_once('/').map_or(rel, |(_, n)| n)
}

/// Whether `rel` is `dir` or lies under it.
pub fn within(rel: &str, dir: &str) -> bool {
    rel == dir || (rel.len() > dir.len() && rel.starts_with(dir) && rel.as_bytes()[dir.len()] == b'/')
}

/// The keys of `map` that are `dir` or lie under it, in order (parents first).
pub fn keys_under<V>(map: &std::collections::BTreeMap<String, V>, dir: &str) -> Vec<String> {
    map.range(dir.to_string()..)
        .take_while(|(k, _)| within(k, dir))
        .map(|(k, _)| k.clone())
        .collect()
}

/// `rel` under `dir` (`dir` empty: the root).
pub fn child(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The relative path of `full` under `root`, if it lies strictly under it and every component is
/// a plain name that is valid UTF-8.
pub fn relative(root: &Path, full: &Path) -> Option<String> {
    let rest = full.strip_prefix(root).ok()?;
    let mut out = String::new();
    for c in rest.components() {
        match c {
            Component::Normal(n) => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(n.to_str()?);
            }
            _ => return None,
        }
    }
    (!out.is_empty() && check(&out).is_ok()).then_some(out)
}

/// The name a conflict's losing version is kept under, beside the path: `notes.txt` becomes
/// `notes.conflict-SIDE-STAMP.txt` (the extension kept last, so editors still know the type).
pub fn conflict_name(rel: &str, side: &str, stamp: &str) -> String {
    let (dir, file) = match rel.rsplit_once('/') {
        Some((d, f)) => (Some(d), f),
        None => (None, rel),
    };
    let renamed = match file.rfind('.').filter(|&i| i > 0) {
        Some(i) => format!("{}.conflict-{side}-{stamp}{}", &file[..i], &file[i..]),
        None => format!("{file}.conflict-{side}-{stamp}"),
    };
    match dir {
        Some(d) => format!("{d}/{renamed}"),
        None => renamed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_names_pass() {
        for ok in ["a", "a/b", "a b/c.txt", ".hidden/x", "..a/b.."] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "..", "a/../b", "./a", "a\0b", "a\\b", "c:x"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn relative_refuses_outside_and_the_root_itself() {
        let root = Path::new("/r/share");
        assert_eq!(relative(root, Path::new("/r/share/a/b")).as_deref(), Some("a/b"));
        assert_eq!(relative(root, Path::new("/r/share")), None);
        assert_eq!(relative(root, Path::new("/r/other/a")), None);
        assert_eq!(relative(root, Path::new("/r/share/../x")), None);
    }

    #[test]
    fn within_is_by_component() {
        assert!(within("a/b", "a"));
        assert!(within("a", "a"));
        assert!(!within("ab", "a"));
        assert!(!within("a", "a/b"));
    }

    #[test]
    fn conflict_names_keep_the_extension() {
        assert_eq!(
            conflict_name("src/app.js", "vm", "20261207-101500"),
            "src/app.conflict-vm-20261207-101500.js"
        );
        assert_eq!(conflict_name("Makefile", "vm", "1"), "Makefile.conflict-vm-1");
        assert_eq!(conflict_name(".env", "vm", "1"), ".env.conflict-vm-1");
    }
}
