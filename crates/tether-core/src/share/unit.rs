//! One synced folder: the laptop's tree, the VM's, the last state both agreed on, and the
//! decisions between them ([`tether_sync::merge`]). Synchronous: the actor calls it with what
//! happened and sends what it asks for ([`Out`]).
//!
//! Longer than 500 lines on purpose: one synced folder's state and every transition of it, so each
//! decision and its effect on both trees and the agreed base are read together.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tether_sync::apply::{ApplyError, Expect, Replica, Staged};
use tether_sync::entry::{Entry, Kind};
use tether_sync::merge::{self, Decision};
use tether_sync::path;
use tether_sync::proto::{Outcome, ToAgent};
use tether_sync::rules::Rules;
use tether_sync::scan::{self, Tree};

use crate::api::{ConflictView, SyncState, SyncedFolder};

/// What a unit asks the actor to do.
#[derive(Debug)]
pub enum Out {
    Msg(ToAgent),
    /// Send the laptop file `path` of the unit (read in pieces by the actor).
    SendFile {
        unit: u32,
        path: String,
        expect: Expect,
        exec: bool,
        mtime: i64,
    },
    /// Read the VM's file `path` into the laptop's `to`.
    Read {
        unit: u32,
        path: String,
        to: Pull,
    },
    Conflict(ConflictView),
}

/// Where a read from the VM goes.
#[derive(Debug, Clone)]
pub enum Pull {
    /// The path itself.
    Path,
    /// A conflict's copy, beside it.
    Copy(String),
}

/// What is saved of a unit between engine runs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Saved {
    pub root: PathBuf,
    pub only: Option<String>,
    pub share: String,
    pub base: Vec<(String, Kind)>,
    pub laptop: Vec<(String, Entry)>,
}

/// [`Saved`] as it is written, from the unit's own maps (postcard writes a map as it writes a
/// sequence of pairs, so [`Saved`] reads it back).
#[derive(Serialize)]
pub struct SavedRef<'a> {
    pub root: &'a Path,
    pub only: &'a Option<String>,
    pub share: &'a str,
    pub base: &'a BTreeMap<String, Kind>,
    pub laptop: &'a Tree,
}

pub struct Unit {
    pub id: u32,
    pub share: String,
    /// The laptop folder (for a single-file mount, the file's folder).
    pub root: PathBuf,
    /// For a single-file mount: the file's name; nothing else in `root` is synced.
    pub only: Option<String>,
    pub ignore: Vec<String>,
    pub replica: Replica,
    pub base: BTreeMap<String, Kind>,
    pub laptop: Tree,
    pub vm: Tree,
    /// The mirror's path on the VM, once the agent said where home is.
    pub vm_root: Option<String>,
    /// The VM's scan under way (parts so far).
    scan_buf: Option<Tree>,
    /// The VM's tree is known (scanned on this agent connection).
    pub vm_ready: bool,
    /// Changes sent to the VM, not yet answered.
    pub inflight: BTreeSet<String>,
    /// Reads from the VM under way.
    pub fetching: BTreeSet<String>,
    /// Small files' content from the VM's reports, kept until pulled.
    inline: HashMap<String, Vec<u8>>,
    pub conflicts: Vec<ConflictView>,
    pub problems: BTreeMap<String, String>,
    pub error: Option<String>,
    /// The base changed since it was saved.
    pub dirty: bool,
    /// When this agent connection opened the folder, until it first settles (for the log).
    pub opened_at: Option<std::time::Instant>,
    pub watch: Option<tether_sync::watch::Watch>,
}

impl Unit {
    pub fn new(
        id: u32,
        share: String,
        root: PathBuf,
        only: Option<String>,
        ignore: Vec<String>,
    ) -> Result<Unit, String> {
        let mut lines = ignore.clone();
        if let Some(name) = &only {
            // A single file: everything else in its folder is left alone.
            lines.push("/*".into());
            lines.push(format!("!/{}", glob_escape(name)));
        }
        let rules = Rules::new(&lines).map_err(|e| e.to_string())?;
        Ok(Unit {
            id,
            share,
            replica: Replica::new(root.clone(), rules),
            root,
            only,
            ignore: lines,
            base: BTreeMap::new(),
            laptop: Tree::new(),
            vm: Tree::new(),
            vm_root: None,
            scan_buf: None,
            vm_ready: false,
            inflight: BTreeSet::new(),
            fetching: BTreeSet::new(),
            inline: HashMap::new(),
            conflicts: Vec::new(),
            problems: BTreeMap::new(),
            error: None,
            dirty: false,
            opened_at: None,
            watch: None,
        })
    }

    /// Picks up what an earlier run saved: the agreed state, and the laptop's tree as it was
    /// (the next scan reads only the files whose stat changed since).
    pub fn restore(&mut self, saved: Saved) {
        self.base = saved.base.into_iter().collect();
        self.laptop = saved.laptop.into_iter().collect();
    }

    /// What is saved, borrowed: a folder of 100,000 files is not copied to be written.
    pub fn saved(&self) -> SavedRef<'_> {
        SavedRef {
            root: &self.root,
            only: &self.only,
            share: &self.share,
            base: &self.base,
            laptop: &self.laptop,
        }
    }

    /// The laptop path a container mounted, if this unit covers it, as a path in the unit.
    pub fn covers(&self, p: &Path) -> Option<String> {
        match &self.only {
            Some(name) => (p == self.root.join(name)).then(|| name.clone()),
            None => {
                if p == self.root {
                    Some(String::new())
                } else {
                    path::relative(&self.root, p)
                }
            }
        }
    }

    /// Scans the laptop side (blocking).
    pub fn scan_laptop(&mut self) {
        let (tree, problems) = scan::tree(&self.root, &self.replica.rules, &self.laptop);
        self.laptop = tree;
        for p in problems {
            self.problems.insert(p.path, p.message);
        }
    }

    /// The agent connection ended: what was in flight is unknown until the next scan.
    pub fn pause(&mut self) {
        self.vm_ready = false;
        self.scan_buf = None;
        self.inflight.clear();
        self.fetching.clear();
        self.inline.clear();
    }

    /// The message that opens this unit on a new agent connection.
    pub fn open(&mut self, home: &str, install: &str) -> ToAgent {
        let root = format!("{home}/.local/share/tether/mirror/{install}/{}", mirror_rel(&self.root));
        self.vm_root = Some(root.clone());
        self.scan_buf = Some(Tree::new());
        self.opened_at = Some(std::time::Instant::now());
        ToAgent::Open {
            unit: self.id,
            root,
            ignore: self.ignore.clone(),
        }
    }

    /// The VM path of `rel` in this unit.
    pub fn vm_path(&self, rel: &str) -> Option<String> {
        let root = self.vm_root.as_ref()?;
        Some(if rel.is_empty() {
            root.clone()
        } else {
            format!("{root}/{rel}")
        })
    }

    /// Nothing is on its way.
    pub fn settled(&self) -> bool {
        self.vm_ready && self.inflight.is_empty() && self.fetching.is_empty()
    }

    pub fn on_scan(
        &mut self,
        entries: Vec<(String, Entry)>,
        problems: Vec<scan::Problem>,
        done: bool,
        out: &mut Vec<Out>,
    ) {
        let buf = self.scan_buf.get_or_insert_with(Tree::new);
        for (p, e) in entries {
            if path::check(&p).is_ok() {
                buf.insert(p, e);
            }
        }
        for p in problems {
            self.problems.insert(format!("VM: {}", p.path), p.message);
        }
        if done {
            self.vm = self.scan_buf.take().unwrap_or_default();
            self.vm_ready = true;
            self.reconcile_all(out);
        }
    }

    /// Decides every path; creations parents first, removals children first.
    pub fn reconcile_all(&mut self, out: &mut Vec<Out>) {
        let mut paths: BTreeSet<String> = self.base.keys().cloned().collect();
        paths.extend(self.laptop.keys().cloned());
        paths.extend(self.vm.keys().cloned());
        let mut removals = Vec::new();
        for p in paths {
            let d = merge::decide(self.base.get(&p), self.laptop.get(&p), self.vm.get(&p));
            let removal = match d {
                Decision::ToVm => !self.laptop.contains_key(&p),
                Decision::ToLaptop => !self.vm.contains_key(&p),
                _ => false,
            };
            if removal {
                removals.push(p);
            } else {
                self.act(&p, d, out);
            }
        }
        for p in removals.into_iter().rev() {
            self.reconcile(&p, out);
        }
    }

    pub fn reconcile(&mut self, p: &str, out: &mut Vec<Out>) {
        if !self.vm_ready || self.inflight.contains(p) || self.fetching.contains(p) {
            return;
        }
        let d = merge::decide(self.base.get(p), self.laptop.get(p), self.vm.get(p));
        self.act(p, d, out);
    }

    fn act(&mut self, p: &str, d: Decision, out: &mut Vec<Out>) {
        if d != Decision::Agree {
            tracing::debug!(path = p, decision = ?d, base = ?self.base.get(p).map(short), laptop = ?self.laptop.get(p).map(|e| short(&e.kind)), vm = ?self.vm.get(p).map(|e| short(&e.kind)), "shared folder: a change");
        }
        match d {
            Decision::Agree => {
                let now = self.laptop.get(p).map(|e| e.kind.clone());
                if self.base.get(p) != now.as_ref() {
                    match now {
                        Some(k) => self.base.insert(p.to_string(), k),
                        None => self.base.remove(p),
                    };
                    self.dirty = true;
                }
                self.problems.remove(p);
            }
            Decision::ToVm => self.push(p, out),
            Decision::ToLaptop => self.pull(p, out),
            Decision::Conflict => self.conflict(p, out),
            Decision::Stuck => {
                self.problems.insert(
                    p.to_string(),
                    "a folder on the VM and a file on the laptop have this name; rename one of them".into(),
                );
            }
        }
    }

    fn vm_expect(&self, p: &str) -> Expect {
        match self.vm.get(p) {
            Some(e) => Expect::Is(e.clone()),
            None => Expect::Absent,
        }
    }

    fn laptop_expect(&self, p: &str) -> Expect {
        match self.laptop.get(p) {
            Some(e) => Expect::Is(e.clone()),
            None => Expect::Absent,
        }
    }

    /// Sends the laptop's version of `p` to the VM.
    fn push(&mut self, p: &str, out: &mut Vec<Out>) {
        let expect = self.vm_expect(p);
        let msg = match self.laptop.get(p) {
            None => Out::Msg(ToAgent::Remove {
                unit: self.id,
                path: p.to_string(),
                expect,
            }),
            Some(e) => match &e.kind {
                Kind::Dir => Out::Msg(ToAgent::Dir {
                    unit: self.id,
                    path: p.to_string(),
                    expect,
                    mtime: e.mtime,
                }),
                Kind::Link { target } => Out::Msg(ToAgent::Link {
                    unit: self.id,
                    path: p.to_string(),
                    expect,
                    target: target.clone(),
                    mtime: e.mtime,
                }),
                Kind::File { exec, .. } => {
                    // Windows keeps no executable bit: the VM's stays as it was.
                    let exec = if tether_sync::entry::HAS_EXEC {
                        *exec
                    } else {
                        matches!(self.vm.get(p).map(|v| &v.kind), Some(Kind::File { exec: true, .. }))
                    };
                    Out::SendFile {
                        unit: self.id,
                        path: p.to_string(),
                        expect,
                        exec,
                        mtime: e.mtime,
                    }
                }
            },
        };
        self.inflight.insert(p.to_string());
        out.push(msg);
    }

    /// Brings the VM's version of `p` to the laptop.
    fn pull(&mut self, p: &str, out: &mut Vec<Out>) {
        let expect = self.laptop_expect(p);
        let result = match self.vm.get(p).cloned() {
            None => self.replica.remove(p, expect).map(|_| None),
            Some(v) => match &v.kind {
                Kind::Dir => self.replica.mkdir(p, expect, v.mtime).map(Some),
                Kind::Link { target } => self.replica.link(p, expect, target, v.mtime).map(Some),
                Kind::File { exec, digest } => match self.inline.remove(p) {
                    Some(data) if tether_sync::entry::digest_of(&data) == *digest => {
                        self.replica.put_file(p, expect, &data, *exec, v.mtime).map(Some)
                    }
                    _ => {
                        self.fetching.insert(p.to_string());
                        out.push(Out::Read {
                            unit: self.id,
                            path: p.to_string(),
                            to: Pull::Path,
                        });
                        return;
                    }
                },
            },
        };
        self.landed(p, result, out);
    }

    /// Records a change made on the laptop: the VM's version of `p` (agreed: both hold it now),
    /// or a new file of the laptop's alone (a conflict's copy: `agreed` false, so it goes to the
    /// VM as new).
    fn landed(&mut self, p: &str, result: Result<Option<Entry>, ApplyError>, out: &mut Vec<Out>) {
        self.landed_as(p, result, true, out)
    }

    fn landed_as(&mut self, p: &str, result: Result<Option<Entry>, ApplyError>, agreed: bool, out: &mut Vec<Out>) {
        match result {
            Ok(Some(e)) => {
                if agreed {
                    self.base.insert(p.to_string(), e.kind.clone());
                } else {
                    self.base.remove(p);
                }
                self.laptop.insert(p.to_string(), e);
                self.dirty = true;
                self.problems.remove(p);
            }
            Ok(None) => {
                let gone = path::keys_under(&self.laptop, p);
                for k in gone {
                    self.laptop.remove(&k);
                }
                self.base.remove(p);
                self.dirty = true;
                self.problems.remove(p);
            }
            // The laptop changed meanwhile: look again, and the merge sees both.
            Err(ApplyError::Changed { .. }) => return self.local_change(p, out),
            // Reported, and not tried again until either side changes the path.
            Err(e) => {
                self.problems.insert(p.to_string(), e.to_string());
                return;
            }
        }
        // A pulled version may differ from what the VM has now (it changed while read); a copy
        // goes to the VM.
        if !agreed || self.vm.get(p).map(|e| &e.kind) != self.base.get(p) {
            self.reconcile(p, out);
        }
    }

    /// Both sides changed `p`: the laptop's version keeps it, the VM's is kept beside it.
    fn conflict(&mut self, p: &str, out: &mut Vec<Out>) {
        let Some(v) = self.vm.get(p).cloned() else { return };
        let copy = path::conflict_name(p, "vm", &stamp());
        let view = ConflictView {
            path: self.root.join(p).display().to_string(),
            copy: self.root.join(&copy).display().to_string(),
            at_ms: crate::clock::unix_ms(),
        };
        match &v.kind {
            Kind::File { .. } => {
                self.fetching.insert(copy.clone());
                out.push(Out::Read {
                    unit: self.id,
                    path: p.to_string(),
                    to: Pull::Copy(copy.clone()),
                });
            }
            Kind::Link { target } => {
                let r = self.replica.link(&copy, Expect::Absent, target, v.mtime).map(Some);
                self.landed_as(&copy, r, false, out);
            }
            Kind::Dir => return,
        }
        self.conflicts.push(view.clone());
        out.push(Out::Conflict(view));
        // The read above reaches the agent before this change, so the VM's version is read
        // before it is replaced.
        self.push(p, out);
    }

    pub fn on_applied(&mut self, p: &str, outcome: Outcome, out: &mut Vec<Out>) {
        tracing::debug!(path = p, ?outcome, "shared folder: the VM applied a change");
        self.inflight.remove(p);
        match outcome {
            Outcome::Done(Some(e)) => {
                self.base.insert(p.to_string(), e.kind.clone());
                self.vm.insert(p.to_string(), e);
                self.dirty = true;
                self.problems.remove(p);
            }
            Outcome::Done(None) => {
                let gone = path::keys_under(&self.vm, p);
                for k in gone {
                    self.vm.remove(&k);
                }
                self.base.remove(p);
                self.dirty = true;
                self.problems.remove(p);
            }
            // What is there now follows as a report.
            Outcome::Refused => return,
            Outcome::Failed(m) => {
                self.problems.insert(p.to_string(), format!("on the VM: {m}"));
                return;
            }
        }
        self.reconcile(p, out);
    }

    pub fn on_vm_changed(&mut self, p: String, entry: Option<Entry>, data: Option<Vec<u8>>, out: &mut Vec<Out>) {
        if path::check(&p).is_err() {
            return;
        }
        match entry {
            Some(e) => {
                self.vm.insert(p.clone(), e);
            }
            None => {
                self.vm.remove(&p);
            }
        }
        match data {
            Some(d) => {
                self.inline.insert(p.clone(), d);
            }
            None => {
                self.inline.remove(&p);
            }
        }
        if self.vm_ready {
            self.reconcile(&p, out);
        } else if let Some(buf) = self.scan_buf.as_mut() {
            // A report during the scan updates it.
            match self.vm.remove(&p) {
                Some(e) => buf.insert(p, e),
                None => buf.remove(&p),
            };
        }
    }

    /// Starts a read's file on the laptop.
    pub fn begin_pull(&mut self, p: &str, to: &Pull) -> Result<Staged, ApplyError> {
        let target = match to {
            Pull::Path => p.to_string(),
            Pull::Copy(c) => c.clone(),
        };
        let expect = match to {
            Pull::Path => self.laptop_expect(p),
            Pull::Copy(_) => Expect::Absent,
        };
        self.replica.begin(&target, expect)
    }

    /// A read ended: `staged` holds it (or the read failed: `error`).
    pub fn end_pull(
        &mut self,
        p: &str,
        to: Pull,
        staged: Option<Staged>,
        entry: Option<Entry>,
        error: Option<String>,
        out: &mut Vec<Out>,
    ) {
        let target = match &to {
            Pull::Path => p.to_string(),
            Pull::Copy(c) => c.clone(),
        };
        self.fetching.remove(&target);
        let (Some(staged), Some(e)) = (staged, entry) else {
            if let Some(err) = error {
                self.problems.insert(p.to_string(), format!("on the VM: {err}"));
            }
            return;
        };
        let exec = matches!(e.kind, Kind::File { exec: true, .. });
        let result = staged.commit(&self.replica, exec, e.mtime).map(Some);
        match to {
            Pull::Path => self.landed(p, result, out),
            // New on the laptop alone: it goes to the VM under its own name.
            Pull::Copy(c) => self.landed_as(&c, result, false, out),
        }
    }

    /// Something under `rel` may have changed on the laptop.
    pub fn local_change(&mut self, rel: &str, out: &mut Vec<Out>) {
        if self.only.as_deref().is_some_and(|o| o != rel) {
            return;
        }
        let now = match scan::one(&self.root, rel, Some(&self.replica.rules), &self.laptop, None) {
            Ok(n) => n.map(|(e, _)| e),
            Err(e) => {
                self.problems.insert(rel.to_string(), e.to_string());
                return;
            }
        };
        self.local_now(rel, now, out);
    }

    /// `rel` on the laptop is now `now` (`None`: gone).
    fn local_now(&mut self, rel: &str, now: Option<Entry>, out: &mut Vec<Out>) {
        let was = self.laptop.get(rel).cloned();
        match (&now, &was) {
            (Some(n), Some(w)) if n.stat().tag == tether_sync::entry::Tag::Dir && w.kind == Kind::Dir => return,
            (Some(n), Some(w)) if n == w => return,
            (None, None) => return,
            _ => {}
        }
        match now {
            Some(e) => {
                let new_dir = e.kind == Kind::Dir && was.as_ref().is_none_or(|w| w.kind != Kind::Dir);
                self.laptop.insert(rel.to_string(), e);
                self.reconcile(rel, out);
                if new_dir {
                    let mut tree = Tree::new();
                    let mut problems = Vec::new();
                    scan::subtree(
                        &self.root,
                        rel,
                        &self.replica.rules,
                        &self.laptop,
                        &mut tree,
                        &mut problems,
                    );
                    for (k, v) in tree {
                        if self.laptop.get(&k) != Some(&v) {
                            self.laptop.insert(k.clone(), v);
                            self.reconcile(&k, out);
                        }
                    }
                }
            }
            None => {
                let gone = path::keys_under(&self.laptop, rel);
                for k in &gone {
                    self.laptop.remove(k);
                }
                for k in gone.iter().rev() {
                    self.reconcile(k, out);
                }
            }
        }
    }

    /// Looks at the whole laptop tree again (events were lost).
    pub fn rescan_laptop(&mut self, out: &mut Vec<Out>) {
        let (mut tree, _) = scan::tree(&self.root, &self.replica.rules, &self.laptop);
        let mut paths: BTreeSet<String> = tree.keys().cloned().collect();
        paths.extend(self.laptop.keys().cloned());
        for p in paths {
            if self.only.as_deref().is_some_and(|o| o != p) {
                continue;
            }
            let now = tree.remove(&p);
            self.local_now(&p, now, out);
        }
    }

    pub fn view(&self, paused: bool) -> SyncedFolder {
        let conflicts: Vec<ConflictView> = self
            .conflicts
            .iter()
            .filter(|c| Path::new(&c.copy).symlink_metadata().is_ok())
            .cloned()
            .collect();
        let pending = (self.inflight.len() + self.fetching.len()) as u64;
        let state = if self.error.is_some() {
            SyncState::Error
        } else if paused {
            SyncState::Paused
        } else if !self.vm_ready {
            SyncState::Scanning
        } else if pending > 0 {
            SyncState::Syncing
        } else if !conflicts.is_empty() {
            SyncState::Conflict
        } else {
            SyncState::InSync
        };
        let laptop = match &self.only {
            Some(n) => self.root.join(n),
            None => self.root.clone(),
        };
        SyncedFolder {
            laptop: laptop.display().to_string(),
            vm: self
                .vm_root
                .as_ref()
                .map(|r| match &self.only {
                    Some(n) => format!("{r}/{n}"),
                    None => r.clone(),
                })
                .unwrap_or_default(),
            state,
            entries: self.base.len() as u64,
            pending,
            conflicts,
            problems: self.problems.iter().map(|(p, m)| format!("{p}: {m}")).collect(),
            error: self.error.clone(),
        }
    }
}

/// A kind in a log line: its first digest bytes.
fn short(k: &Kind) -> String {
    match k {
        Kind::File { digest, exec } => format!(
            "file {:02x}{:02x}{}",
            digest[0],
            digest[1],
            if *exec { " x" } else { "" }
        ),
        Kind::Dir => "dir".into(),
        Kind::Link { target } => format!("link {target}"),
    }
}

/// The mirror's path for a laptop folder, under the install's mirror directory: the folder's
/// absolute path with its drive (Windows) as a first name.
pub fn mirror_rel(p: &Path) -> String {
    use std::path::Component;
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Prefix(pre) => {
                let s = pre.as_os_str().to_string_lossy();
                parts.push(s.trim_end_matches(':').replace(['\\', '?', '.', ':'], ""));
            }
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

fn glob_escape(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '!' | '#') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

/// A conflict copy's time stamp, UTC: `20261207-101500`.
fn stamp() -> String {
    let secs = (crate::clock::unix_ms() / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
#[path = "../tests/share_unit.rs"]
mod tests;
