//! Which paths a share leaves alone: gitignore syntax, Tether's defaults first, then the share's
//! own lines (so `!node_modules/` brings a default back).
//!
//! An ignored path is not synced in either direction and never touched on the other side: each
//! side keeps its own. That is what a dependency or build folder wants, since a container builds
//! it for the VM's OS and architecture (a laptop's macOS `node_modules` would break a Linux
//! container, and the container's would break the laptop's editor tooling).

use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Ignored unless a share says otherwise, and why:
pub const DEFAULTS: &[&str] = &[
    // Dependencies and build output, built per OS and architecture on each side.
    "node_modules/",
    "target/",
    ".venv/",
    "venv/",
    "__pycache__/",
    ".tox/",
    ".gradle/",
    // Caches of tools that rebuild them on either side.
    ".next/cache/",
    ".pytest_cache/",
    ".mypy_cache/",
    // Desktop litter, and editors' swap files (written on every keystroke by vim).
    ".DS_Store",
    "Thumbs.db",
    ".*.swp",
    ".*.swx",
];

/// Tether's own temporary files: never synced, whatever the share says.
pub const TEMP_PREFIX: &str = ".~tether-";

#[derive(Debug, thiserror::Error)]
#[error("ignore rule {line:?}: {message}; rules use .gitignore syntax")]
pub struct BadRule {
    pub line: String,
    pub message: String,
}

/// A share's compiled rules.
#[derive(Debug, Clone)]
pub struct Rules {
    set: Gitignore,
}

impl Rules {
    /// The defaults followed by `extra` (gitignore lines).
    pub fn new(extra: &[String]) -> Result<Rules, BadRule> {
        // The root only anchors patterns with a slash; paths are matched relative to it.
        let mut b = GitignoreBuilder::new(Path::new("/"));
        for line in DEFAULTS.iter().map(|s| s.to_string()).chain(extra.iter().cloned()) {
            b.add_line(None, &line).map_err(|e| BadRule {
                line: line.clone(),
                message: e.to_string(),
            })?;
        }
        let set = b.build().map_err(|e| BadRule {
            line: String::new(),
            message: e.to_string(),
        })?;
        Ok(Rules { set })
    }

    /// Whether `rel` (a path under the share) is left alone, by itself or by a parent.
    pub fn ignored(&self, rel: &str, is_dir: bool) -> bool {
        let name = crate::path::name(rel);
        if name.starts_with(TEMP_PREFIX) {
            return true;
        }
        self.set
            .matched_path_or_any_parents(Path::new("/").join(rel), is_dir)
            .is_ignore()
    }

    /// Whether `rel` itself is left alone, its parents known not to be (a scan descending).
    pub fn ignored_here(&self, rel: &str, is_dir: bool) -> bool {
        if crate::path::name(rel).starts_with(TEMP_PREFIX) {
            return true;
        }
        self.set.matched(Path::new("/").join(rel), is_dir).is_ignore()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_leave_dependency_folders_alone_at_any_depth() {
        let r = Rules::new(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.ignored("node_modules", true));
        assert!(r.ignored("web/node_modules/react/index.js", false));
        assert!(r.ignored("target/debug/app", false));
        assert!(r.ignored("src/.main.rs.swp", false));
        assert!(!r.ignored("src/main.rs", false));
        assert!(!r.ignored("node_modules.txt", false));
        // A file named like a default folder is not a folder.
        assert!(!r.ignored("target", false));
    }

    #[test]
    fn a_share_can_bring_a_default_back_and_add_its_own() {
        let r =
            Rules::new(&["!node_modules/".into(), "*.log".into(), "/dist/".into()]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!r.ignored("node_modules/x.js", false));
        assert!(r.ignored("logs/a.log", false));
        assert!(r.ignored("dist/app.js", false));
        assert!(!r.ignored("web/dist/app.js", false));
    }

    #[test]
    fn tethers_temporary_files_are_always_ignored() {
        let r = Rules::new(&["!*".into()]).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.ignored("a/.~tether-1234.tmp", false));
    }
}
