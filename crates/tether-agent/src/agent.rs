//! The agent's loop: one thread owns the mirrors; stdin and the watches feed it over a channel.
//!
//! Longer than 500 lines on purpose: the agent is one loop over one set of mirrors; splitting it
//! would split its ordering guarantees across files.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc;

use tether_sync::apply::{ApplyError, Replica, Staged};
use tether_sync::entry::sha::{Digest, Sha256};
use tether_sync::entry::{self, Entry, Kind, Stat};
use tether_sync::path;
use tether_sync::proto::{self, FromAgent, Outcome, ToAgent, Unit};
use tether_sync::rules::Rules;
use tether_sync::scan::{self, Problem};
use tether_sync::watch::{self, Change};

enum Input {
    /// A message from the engine, with its weight in the [`Backlog`].
    Msg(ToAgent, usize),
    Fs(Unit, Change),
    End(Option<String>),
}

struct UnitState {
    replica: Replica,
    /// What the engine has heard of each path: reports and applied changes. Also the digests a
    /// scan reuses: an entry holds the stat its digest was read at.
    known: BTreeMap<String, Entry>,
    _watch: Option<watch::Watch>,
}

/// A file arriving in pieces.
enum Receiving {
    Into {
        unit: Unit,
        staged: Box<Staged>,
        exec: bool,
        mtime: i64,
    },
    /// Its first piece was refused: the rest are dropped.
    Dropping,
}

struct Agent<W: Write> {
    out: W,
    units: HashMap<Unit, UnitState>,
    receiving: Option<Receiving>,
    tx: mpsc::Sender<Input>,
    /// This run's staging folder (see [`Replica::staging`]), made at the first open.
    staging: PathBuf,
}

/// How many bytes of the engine's messages may wait to be applied. stdin is read ahead of the
/// applying, so the pipe from sshd stays drained (see [`crate::pipe`]); past this the reader
/// waits, and the SSH channel's window holds the engine back instead of the agent's memory.
const BACKLOG: usize = 16 << 20;

/// The bytes read from stdin and not yet applied.
#[derive(Default)]
struct Backlog {
    held: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

impl Backlog {
    fn take(&self, n: usize) {
        let Ok(mut held) = self.held.lock() else { return };
        while *held > BACKLOG {
            held = match self.freed.wait(held) {
                Ok(h) => h,
                Err(_) => return,
            };
        }
        *held += n;
    }

    fn give(&self, n: usize) {
        if let Ok(mut held) = self.held.lock() {
            let was = *held;
            *held = held.saturating_sub(n);
            // Only a reader past the bound waits; waking nobody is a system call per message.
            if was > BACKLOG && *held <= BACKLOG {
                self.freed.notify_one();
            }
        }
    }
}

/// A message's share of the backlog: its content, and a little for the rest.
fn weight(m: &ToAgent) -> usize {
    64 + match m {
        ToAgent::File { data, path, .. } => data.len() + path.len(),
        ToAgent::Piece { data, .. } => data.len(),
        _ => 0,
    }
}

/// This run's staging folder, under `~/.local/share/tether/staging/` (where the mirrors are, so
/// a rename reaches them), named for this process. What a run that was killed left there (its
/// process is gone) is removed.
fn staging_dir(home: &str) -> PathBuf {
    let base = PathBuf::from(home).join(".local/share/tether/staging");
    if let Ok(rd) = std::fs::read_dir(&base) {
        for item in rd.flatten() {
            let name = item.file_name();
            let pid = name.to_str().and_then(|n| n.split('-').next()).unwrap_or("");
            if !pid.is_empty() && !std::path::Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(item.path());
            }
        }
    }
    base.join(format!("{}-{:08x}", std::process::id(), rand::random::<u32>()))
}

/// Runs until stdin ends; the exit code says why it stopped.
pub fn run() -> i32 {
    let home = std::env::var("HOME").unwrap_or_default();
    let staging = staging_dir(&home);
    let code = serve(home, staging.clone());
    let _ = std::fs::remove_dir_all(&staging);
    code
}

fn serve(home: String, staging: PathBuf) -> i32 {
    #[cfg(target_os = "linux")]
    crate::pipe::widen();
    let (tx, rx) = mpsc::channel();
    let backlog = std::sync::Arc::new(Backlog::default());
    let stdout = std::io::stdout();
    let mut agent = Agent {
        out: BufWriter::with_capacity(256 * 1024, stdout.lock()),
        units: HashMap::new(),
        receiving: None,
        tx: tx.clone(),
        staging,
    };
    if agent
        .send(&FromAgent::Hello {
            version: proto::VERSION,
            arch: std::env::consts::ARCH.to_string(),
            home,
        })
        .and_then(|_| agent.flush())
        .is_err()
    {
        return 1;
    }
    let reader_backlog = backlog.clone();
    std::thread::spawn(move || {
        // Large reads: the pipe from sshd holds up to a MiB (see `pipe`).
        let mut stdin = std::io::BufReader::with_capacity(256 * 1024, std::io::stdin().lock());
        loop {
            match proto::read_frame::<ToAgent>(&mut stdin) {
                Ok(Some(m)) => {
                    let w = weight(&m);
                    reader_backlog.take(w);
                    if tx.send(Input::Msg(m, w)).is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    let _ = tx.send(Input::End(None));
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Input::End(Some(e.to_string())));
                    return;
                }
            }
        }
    });
    loop {
        let Ok(first) = rx.recv() else { return 0 };
        let mut next = Some(first);
        // Everything already queued is handled before the output is flushed: one write for a
        // burst of events or changes.
        while let Some(input) = next {
            match input {
                Input::Msg(m, w) => {
                    let handled = agent.handle(m);
                    backlog.give(w);
                    if handled.is_err() {
                        return 1;
                    }
                }
                Input::Fs(unit, change) => {
                    if agent.changed(unit, change).is_err() {
                        return 1;
                    }
                }
                Input::End(None) => return 0,
                Input::End(Some(e)) => {
                    eprintln!("tether-agent: {e}");
                    return 2;
                }
            }
            next = rx.try_recv().ok();
        }
        for u in agent.units.values() {
            u.replica.forget_dirs();
        }
        if agent.flush().is_err() {
            return 1;
        }
    }
}

type Sent = Result<(), proto::FrameError>;

impl<W: Write> Agent<W> {
    fn send(&mut self, m: &FromAgent) -> Sent {
        proto::write_frame(&mut self.out, m)
    }

    fn flush(&mut self) -> Sent {
        self.out.flush()?;
        Ok(())
    }

    fn handle(&mut self, m: ToAgent) -> Sent {
        match m {
            ToAgent::Open { unit, root, ignore } => self.open(unit, root, ignore),
            ToAgent::Close { unit } => {
                self.units.remove(&unit);
                Ok(())
            }
            ToAgent::File {
                unit,
                path,
                expect,
                exec,
                mtime,
                data,
                more,
            } => {
                if let Some(Receiving::Into { staged, .. }) = self.receiving.take() {
                    staged.abort();
                }
                let Some(u) = self.units.get(&unit) else {
                    return self.applied(unit, path, Outcome::Failed("unit not open".into()));
                };
                if !more {
                    // Whole in one message, as most files are.
                    let written = u.replica.put_file(&path, expect, &data, exec, mtime);
                    return match written {
                        Ok(e) => self.done(unit, path, Some(e)),
                        Err(e) => self.failed(unit, path, e),
                    };
                }
                match u.replica.begin(&path, expect) {
                    Ok(mut staged) => {
                        if let Err(e) = staged.write(&data) {
                            staged.abort();
                            self.receiving = more.then_some(Receiving::Dropping);
                            return self.failed(unit, path, e);
                        }
                        self.receiving = Some(Receiving::Into {
                            unit,
                            staged: Box::new(staged),
                            exec,
                            mtime,
                        });
                        Ok(())
                    }
                    Err(e) => {
                        self.receiving = more.then_some(Receiving::Dropping);
                        self.failed(unit, path, e)
                    }
                }
            }
            ToAgent::Piece { data, more, .. } => {
                match self.receiving.as_mut() {
                    Some(Receiving::Into { staged, unit, .. }) => {
                        if let Err(e) = staged.write(&data) {
                            let unit = *unit;
                            let path = staged.rel().to_string();
                            if let Some(Receiving::Into { staged, .. }) = self.receiving.take() {
                                staged.abort();
                            }
                            self.receiving = more.then_some(Receiving::Dropping);
                            return self.failed(unit, path, e);
                        }
                    }
                    Some(Receiving::Dropping) | None => {}
                }
                if more {
                    Ok(())
                } else if matches!(self.receiving, Some(Receiving::Into { .. })) {
                    self.commit()
                } else {
                    self.receiving = None;
                    Ok(())
                }
            }
            ToAgent::Dir {
                unit,
                path,
                expect,
                mtime,
            } => self.change(unit, path, |r, p| r.mkdir(p, expect, mtime).map(Some)),
            ToAgent::Link {
                unit,
                path,
                expect,
                target,
                mtime,
            } => self.change(unit, path, |r, p| r.link(p, expect, &target, mtime).map(Some)),
            ToAgent::Remove { unit, path, expect } => self.change(unit, path, |r, p| r.remove(p, expect).map(|_| None)),
            ToAgent::Read { unit, path, id } => self.read(unit, path, id),
        }
    }

    fn open(&mut self, unit: Unit, root: String, ignore: Vec<String>) -> Sent {
        let rules = match Rules::new(&ignore) {
            Ok(r) => r,
            Err(e) => return self.problem(unit, "", e.to_string()),
        };
        let root = PathBuf::from(root);
        if let Err(e) = std::fs::create_dir_all(&root) {
            return self.problem(unit, "", format!("cannot make the mirror {}: {e}", root.display()));
        }
        let mut replica = Replica::new(root.clone(), rules.clone());
        // Folders stay open through a burst of files (closed when the queue runs dry).
        replica.keep_dirs = true;
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            use std::os::unix::fs::MetadataExt;
            // Staging only where a rename reaches the mirror (the same file system); the user's
            // alone, as files pass through it.
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.staging);
            if let (Ok(m), Ok(s)) = (root.metadata(), self.staging.metadata())
                && m.dev() == s.dev()
            {
                replica.staging = Some(self.staging.clone());
            }
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::MetadataExt;
            if let Ok(uid) = root.metadata().map(|m| m.uid()) {
                let _ = crate::acl::inherit(&root, uid);
                replica.on_new_dir = Some(Box::new(move |dir| {
                    let _ = crate::acl::inherit(dir, uid);
                }));
            }
        }
        // The watch starts before the scan, so nothing that changes during it is missed.
        let tx = self.tx.clone();
        let watch = match watch::start(&root, rules.clone(), move |c| {
            let _ = tx.send(Input::Fs(unit, c));
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                self.problem(
                    unit,
                    "",
                    format!(
                        "cannot watch {} for changes ({e}); changes made on the VM are not seen until the next connect. If the VM is out of inotify watches, raise fs.inotify.max_user_watches",
                        root.display()
                    ),
                )?;
                None
            }
        };
        let (tree, problems) = scan::tree(&root, &rules, &scan::Tree::new());
        let entries: Vec<(String, Entry)> = tree.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        self.units.insert(
            unit,
            UnitState {
                replica,
                known: tree,
                _watch: watch,
            },
        );
        let mut problems = Some(problems);
        let mut parts = entries.chunks(4096).peekable();
        if parts.peek().is_none() {
            return self.send(&FromAgent::Scan {
                unit,
                entries: Vec::new(),
                problems: problems.take().unwrap_or_default(),
                done: true,
            });
        }
        while let Some(part) = parts.next() {
            let done = parts.peek().is_none();
            self.send(&FromAgent::Scan {
                unit,
                entries: part.to_vec(),
                problems: if done {
                    problems.take().unwrap_or_default()
                } else {
                    Vec::new()
                },
                done,
            })?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Sent {
        let Some(Receiving::Into {
            unit,
            staged,
            exec,
            mtime,
        }) = self.receiving.take()
        else {
            return Ok(());
        };
        let path = staged.rel().to_string();
        let Some(u) = self.units.get(&unit) else {
            staged.abort();
            return self.applied(unit, path, Outcome::Failed("unit not open".into()));
        };
        match (*staged).commit(&u.replica, exec, mtime) {
            Ok(e) => self.done(unit, path, Some(e)),
            Err(e) => self.failed(unit, path, e),
        }
    }

    fn change(
        &mut self,
        unit: Unit,
        path: String,
        f: impl FnOnce(&Replica, &str) -> Result<Option<Entry>, ApplyError>,
    ) -> Sent {
        let Some(u) = self.units.get(&unit) else {
            return self.applied(unit, path, Outcome::Failed("unit not open".into()));
        };
        match f(&u.replica, &path) {
            Ok(e) => self.done(unit, path, e),
            Err(e) => self.failed(unit, path, e),
        }
    }

    fn done(&mut self, unit: Unit, path: String, e: Option<Entry>) -> Sent {
        if let Some(u) = self.units.get_mut(&unit) {
            match &e {
                Some(e) => {
                    u.known.insert(path.clone(), e.clone());
                }
                None => {
                    let gone = path::keys_under(&u.known, &path);
                    for k in gone {
                        u.known.remove(&k);
                    }
                }
            }
        }
        self.applied(unit, path, Outcome::Done(e))
    }

    fn failed(&mut self, unit: Unit, path: String, e: ApplyError) -> Sent {
        match e {
            // Refused: say so, then say what is there now (the engine merges the two).
            ApplyError::Changed { .. } => {
                self.applied(unit, path.clone(), Outcome::Refused)?;
                self.report(unit, &path, true)
            }
            other => self.applied(unit, path, Outcome::Failed(other.to_string())),
        }
    }

    fn applied(&mut self, unit: Unit, path: String, outcome: Outcome) -> Sent {
        self.send(&FromAgent::Applied { unit, path, outcome })
    }

    fn problem(&mut self, unit: Unit, path: &str, message: String) -> Sent {
        self.send(&FromAgent::Problem {
            unit,
            problem: Problem {
                path: path.to_string(),
                message,
            },
        })
    }

    fn read(&mut self, unit: Unit, path: String, id: u64) -> Sent {
        let full = self
            .units
            .get(&unit)
            .ok_or_else(|| "unit not open".to_string())
            .and_then(|u| path::join(&u.replica.root, &path).map_err(|e| e.to_string()))
            .and_then(|full| {
                if self
                    .units
                    .get(&unit)
                    .is_some_and(|u| scan::parents_are_dirs(&u.replica.root, &path))
                {
                    Ok(full)
                } else {
                    Err("a parent is not a folder".to_string())
                }
            });
        let opened = full.and_then(|full| {
            let meta = full.symlink_metadata().map_err(|e| e.to_string())?;
            if !meta.file_type().is_file() {
                return Err("not a file".to_string());
            }
            let f = std::fs::File::open(&full).map_err(|e| e.to_string())?;
            Ok((f, Stat::of(&meta)))
        });
        let (mut f, stat) = match opened {
            Ok(x) => x,
            Err(error) => {
                return self.send(&FromAgent::Content {
                    id,
                    data: Vec::new(),
                    done: true,
                    entry: None,
                    error: Some(error),
                });
            }
        };
        let mut buf = vec![0u8; proto::CHUNK];
        let mut total = 0u64;
        let mut h = <Sha256 as Digest>::new();
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return self.send(&FromAgent::Content {
                        id,
                        data: Vec::new(),
                        done: true,
                        entry: None,
                        error: Some(e.to_string()),
                    });
                }
            };
            Digest::update(&mut h, &buf[..n]);
            total += n as u64;
            self.send(&FromAgent::Content {
                id,
                data: buf[..n].to_vec(),
                done: false,
                entry: None,
                error: None,
            })?;
        }
        let digest: entry::Digest = Digest::finalize(h).into();
        self.send(&FromAgent::Content {
            id,
            data: Vec::new(),
            done: true,
            entry: Some(Entry {
                kind: Kind::File {
                    digest,
                    exec: stat.exec,
                },
                size: total,
                mtime: stat.mtime,
            }),
            error: None,
        })
    }

    fn changed(&mut self, unit: Unit, change: Change) -> Sent {
        match change {
            Change::Path(rel) => self.report(unit, &rel, false),
            Change::Rescan => self.rescan(unit),
        }
    }

    /// Looks at `rel` again and tells the engine if it is not what the engine last heard
    /// (`always`: tell it anyway, after a refused change).
    fn report(&mut self, unit: Unit, rel: &str, always: bool) -> Sent {
        let Some(u) = self.units.get_mut(&unit) else {
            return Ok(());
        };
        let root = u.replica.root.clone();
        // A cheap look first: most events are echoes of the engine's own changes. A path found
        // as last reported needs no look at its parents: had one become a link, the event for
        // that parent reports it.
        let stat = path::join(&root, rel)
            .ok()
            .and_then(|p| p.symlink_metadata().ok())
            .map(|m| Stat::of(&m));
        let known = u.known.get(rel);
        if !always {
            match (stat, known) {
                (Some(s), Some(k)) if s.matches(k) => return Ok(()),
                (None, None) => return Ok(()),
                (Some(_), None) if !scan::parents_are_dirs(&root, rel) => return Ok(()),
                _ => {}
            }
        }
        let now = scan::one(&root, rel, Some(&u.replica.rules), &u.known, Some(proto::INLINE))
            .ok()
            .flatten();
        match now {
            Some((e, data)) => {
                let was_dir = matches!(known, Some(k) if k.kind == Kind::Dir);
                let is_dir = e.kind == Kind::Dir;
                // A folder that became a file or a link: what was inside is gone from the tree
                // (a path under a link is not a path in it).
                let orphans: Vec<String> = if was_dir && !is_dir {
                    path::keys_under(&u.known, rel)
                        .into_iter()
                        .filter(|k| k != rel)
                        .collect()
                } else {
                    Vec::new()
                };
                for k in &orphans {
                    u.known.remove(k);
                }
                u.known.insert(rel.to_string(), e.clone());
                for k in orphans.into_iter().rev() {
                    self.send(&FromAgent::Changed {
                        unit,
                        path: k,
                        entry: None,
                        data: None,
                    })?;
                }
                self.send(&FromAgent::Changed {
                    unit,
                    path: rel.to_string(),
                    entry: Some(e),
                    data,
                })?;
                if is_dir && !was_dir {
                    // A folder that appeared whole (moved in, or filled before its watch
                    // was added): what is inside is new too.
                    self.report_under(unit, rel)?;
                }
                Ok(())
            }
            None => {
                if known.is_none() && !always {
                    return Ok(());
                }
                // Gone: everything under it too, deepest first.
                let gone = path::keys_under(&u.known, rel);
                for k in gone.iter().rev() {
                    u.known.remove(k);
                }
                let mut gone = gone;
                if gone.is_empty() {
                    gone.push(rel.to_string());
                }
                for k in gone.into_iter().rev() {
                    self.send(&FromAgent::Changed {
                        unit,
                        path: k,
                        entry: None,
                        data: None,
                    })?;
                }
                Ok(())
            }
        }
    }

    fn report_under(&mut self, unit: Unit, dir: &str) -> Sent {
        let Some(u) = self.units.get_mut(&unit) else {
            return Ok(());
        };
        let mut tree = scan::Tree::new();
        let mut problems = Vec::new();
        scan::subtree(
            &u.replica.root.clone(),
            dir,
            &u.replica.rules,
            &u.known,
            &mut tree,
            &mut problems,
        );
        for rel in tree.keys() {
            self.report(unit, rel, false)?;
        }
        Ok(())
    }

    fn rescan(&mut self, unit: Unit) -> Sent {
        let Some(u) = self.units.get_mut(&unit) else {
            return Ok(());
        };
        let (tree, _) = scan::tree(&u.replica.root.clone(), &u.replica.rules, &u.known);
        let mut paths: Vec<String> = tree.keys().cloned().collect();
        paths.extend(u.known.keys().filter(|k| !tree.contains_key(*k)).cloned());
        paths.sort();
        for rel in paths {
            self.report(unit, &rel, false)?;
        }
        Ok(())
    }
}
