//! Laptop folders in containers on the VM: one actor per VM keeps the folders that containers
//! bind-mount in sync with mirrors on the VM, both ways, live.
//!
//! Where it applies: a VM's shared roots (`Profile::shares`, by default the home folder). The
//! Docker socket's forward hands every container create to [`ShareHandle`] (as
//! [`dockerapi::Binds`]): a bind source under a root is synced (the folder actually mounted,
//! from its first use on: a root is never copied whole) and, once the mirror has caught up, the
//! create goes to the VM with the mirror's path in its place. Other sources are the VM's own
//! paths and pass untouched.
//!
//! How: [`agent`] starts `tether-agent` on the VM over the live SSH connection; each synced
//! folder is a [`unit::Unit`] holding both trees and the last agreed state. The laptop side is
//! watched with the OS's file events, the VM side by the agent's; every change is carried when it
//! happens, decided by a three-way merge (conflicts keep both versions). A lost link pauses the
//! folders; the next connection rescans both sides and carries only the differences. The agreed
//! state is saved under the state directory, so an engine restart resumes without a re-copy.
//!
//! Longer than 500 lines on purpose: the actor's loop and every input it handles (creates, the link, the
//! agent's messages, file events, reads, saving, status) read as one state machine; the
//! decisions themselves live in `unit`.

pub mod agent;
pub mod unit;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tether_sync::apply::Staged;
use tether_sync::proto::{self, FromAgent, ToAgent};
use tether_sync::watch::Change;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::api::{Event, ShareView, SyncState};
use crate::config::Share;
use crate::dockerapi::{self, Refusal, Resolved};
use crate::forward::Link;
use crate::paths::Paths;
use crate::tasks::Tasks;
use agent::{AgentBins, AgentConn};
use unit::{Out, Pull, Saved, Unit};

enum Cmd {
    Resolve {
        sources: Vec<String>,
        reply: oneshot::Sender<Resolved>,
    },
    SetShares(Vec<Share>),
}

/// The engine's handle on a VM's share actor.
#[derive(Clone)]
pub struct ShareHandle {
    tx: mpsc::UnboundedSender<Cmd>,
    views: watch::Receiver<Vec<ShareView>>,
}

impl ShareHandle {
    /// Each shared root and the folders synced under it.
    pub fn views(&self) -> Vec<ShareView> {
        self.views.borrow().clone()
    }

    /// The VM's shared roots changed (a profile edit).
    pub fn set_shares(&self, shares: Vec<Share>) {
        let _ = self.tx.send(Cmd::SetShares(shares));
    }
}

impl dockerapi::Binds for ShareHandle {
    fn resolve(&self, sources: Vec<String>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Resolved> + Send>> {
        let tx = self.tx.clone();
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            if tx.send(Cmd::Resolve { sources, reply }).is_err() {
                return Err(Refusal {
                    status: 500,
                    message: "Tether's shared folders stopped; restart Tether".into(),
                });
            }
            rx.await.unwrap_or_else(|_| {
                Err(Refusal {
                    status: 500,
                    message: "Tether's shared folders stopped; restart Tether".into(),
                })
            })
        })
    }
}

/// What every VM's share actor gets from the engine.
#[derive(Clone)]
pub struct Env {
    /// This install's id: mirrors live under it on the VM, so two laptops never share one.
    pub install: String,
    pub bins: Arc<AgentBins>,
}

/// What a VM's share actor needs.
pub struct ShareCtx {
    pub vm: String,
    pub shares: Vec<Share>,
    pub link: Link,
    pub paths: Paths,
    pub install: String,
    pub events: broadcast::Sender<Event>,
    pub tasks: Tasks,
    pub bins: Arc<AgentBins>,
}

/// Starts a VM's share actor.
pub fn spawn(ctx: ShareCtx) -> ShareHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let (views_tx, views) = watch::channel(Vec::new());
    let tasks = ctx.tasks.clone();
    tasks.spawn(run(ctx, rx, views_tx));
    ShareHandle { tx, views }
}

/// A create waiting for its folders to catch up.
struct Waiting {
    /// Per source: the unit and path in it, or `None` (a VM path).
    targets: Vec<Option<(u32, String)>>,
    reply: oneshot::Sender<Resolved>,
}

/// A read from the VM under way.
struct Reading {
    unit: u32,
    path: String,
    to: Pull,
    staged: Option<Staged>,
    failed: Option<String>,
}

struct Actor {
    ctx: ShareCtx,
    units: BTreeMap<u32, Unit>,
    next_unit: u32,
    agent: Option<(mpsc::Sender<ToAgent>, String)>,
    agent_error: Option<String>,
    local_tx: mpsc::UnboundedSender<(u32, Change)>,
    waiting: Vec<Waiting>,
    reads: HashMap<u64, Reading>,
    next_read: u64,
    suggested: HashSet<PathBuf>,
    /// Units made for a create and not scanned yet: the agent is asked to open them first, so
    /// its round trip and its own scan overlap the laptop's scan.
    unscanned: Vec<u32>,
    views: watch::Sender<Vec<ShareView>>,
    /// When the views were last published, and a publication held back until then (counts
    /// change with every file of a big sync: they are published at most every `PUBLISH_EVERY`).
    published: tokio::time::Instant,
    publish_at: Option<tokio::time::Instant>,
}

/// The most often a folder's counts are published while only they change.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// How many queued messages (from the agent, or the laptop's watches) one turn of the actor
/// handles before it sends what they asked for.
const BATCH: usize = 256;

async fn run(ctx: ShareCtx, mut rx: mpsc::UnboundedReceiver<Cmd>, views: watch::Sender<Vec<ShareView>>) {
    let (local_tx, mut local_rx) = mpsc::unbounded_channel();
    let mut link = ctx.link.clone();
    let mut a = Actor {
        ctx,
        units: BTreeMap::new(),
        next_unit: 1,
        agent: None,
        agent_error: None,
        local_tx,
        waiting: Vec::new(),
        reads: HashMap::new(),
        next_read: 1,
        suggested: HashSet::new(),
        unscanned: Vec::new(),
        views,
        published: tokio::time::Instant::now(),
        publish_at: None,
    };
    blocking(|| a.restore());
    let mut agent_rx: Option<mpsc::UnboundedReceiver<FromAgent>> = None;
    let mut starting: Option<tokio::task::JoinHandle<Result<AgentConn, String>>> = None;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut save = tokio::time::interval(Duration::from_secs(2));
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = a.ctx.tasks.clone();
    loop {
        // The agent runs while the link is up and some folder is in use (a VM nobody mounts
        // from costs nothing); it stops with the link.
        let live = link.borrow().clone().filter(|h| !h.is_closed());
        match live {
            None => {
                if agent_rx.take().is_some() || a.agent.is_some() {
                    a.lost();
                }
                if let Some(s) = starting.take() {
                    s.abort();
                }
            }
            Some(h) => {
                if a.agent.is_none()
                    && agent_rx.is_none()
                    && starting.is_none()
                    && retry_at.is_none()
                    && (!a.units.is_empty() || !a.waiting.is_empty())
                {
                    let bins = a.ctx.bins.clone();
                    let tasks = a.ctx.tasks.clone();
                    starting = Some(a.ctx.tasks.spawn(async move { agent::start(&h, &bins, &tasks).await }));
                }
            }
        }
        let mut out = Vec::new();
        tokio::select! {
            _ = stop.stopping() => break,
            cmd = rx.recv() => match cmd {
                None => break,
                Some(Cmd::Resolve { sources, reply }) => {
                    // Everything the laptop already said goes first.
                    while let Ok((u, c)) = local_rx.try_recv() {
                        blocking(|| a.local(u, c, &mut out));
                    }
                    a.resolve(sources, reply, &mut out);
                }
                Some(Cmd::SetShares(s)) => a.ctx.shares = s,
            },
            changed = link.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            res = async {
                match starting.as_mut() {
                    Some(s) => s.await,
                    None => std::future::pending().await,
                }
            } => {
                starting = None;
                match res {
                    Ok(Ok(conn)) => {
                        agent_rx = Some(conn.rx);
                        a.agent_error = None;
                        a.connected(conn.tx, conn.home, &mut out);
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(vm = %a.ctx.vm, error = %e, "shared folders: the agent did not start");
                        a.agent_error = Some(e);
                        retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(30));
                        a.fail_waiting();
                    }
                    Err(_) => {}
                }
            }
            _ = async {
                match retry_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => retry_at = None,
            msg = async {
                match agent_rx.as_mut() {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            } => match msg {
                Some(m) => {
                    // What else the agent already said is handled in the same turn: one hand-off
                    // of the worker for a burst (a first sync answers every file) instead of one
                    // per message.
                    let mut batch = vec![m];
                    while batch.len() < BATCH
                        && let Some(Ok(m)) = agent_rx.as_mut().map(|r| r.try_recv())
                    {
                        batch.push(m);
                    }
                    blocking(|| {
                        for m in batch {
                            a.on_agent(m, &mut out);
                        }
                    });
                }
                None => {
                    agent_rx = None;
                    a.lost();
                }
            },
            ev = local_rx.recv() => if let Some(first) = ev {
                let mut batch = vec![first];
                while batch.len() < BATCH
                    && let Ok(ev) = local_rx.try_recv()
                {
                    batch.push(ev);
                }
                blocking(|| {
                    for (u, c) in batch {
                        a.local(u, c, &mut out);
                    }
                });
            },
            _ = save.tick() => blocking(|| a.save(false)),
            _ = async {
                match a.publish_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => a.publish_at = None,
        }
        a.send(out).await;
        if !a.unscanned.is_empty() {
            blocking(|| a.scan_new());
        }
        a.log_settled();
        a.answer_waiting();
        a.publish();
    }
    blocking(|| a.save(true));
}

impl Actor {
    fn state_dir(&self) -> PathBuf {
        self.ctx.paths.state_dir.join("shares").join(&self.ctx.vm)
    }

    /// Reopens the folders an earlier run synced: containers may still mount their mirrors.
    fn restore(&mut self) {
        let Ok(rd) = std::fs::read_dir(self.state_dir()) else {
            return;
        };
        for item in rd.flatten() {
            let Ok(bytes) = std::fs::read(item.path()) else {
                continue;
            };
            let Ok(saved) = postcard::from_bytes::<Saved>(&bytes) else {
                tracing::warn!(file = %item.path().display(), "shared folders: an unreadable saved state; starting that folder over");
                continue;
            };
            let Some(share) = self.ctx.shares.iter().find(|s| s.name == saved.share).cloned() else {
                continue;
            };
            let id = self.next_unit;
            self.next_unit += 1;
            let Ok(mut u) = Unit::new(id, share.name, saved.root.clone(), saved.only.clone(), share.ignore) else {
                continue;
            };
            u.restore(saved);
            self.start_unit(u);
        }
    }

    fn start_unit(&mut self, mut u: Unit) {
        self.watch_unit(&mut u);
        u.scan_laptop();
        self.units.insert(u.id, u);
    }

    /// Scans the units made since the last turn (their Open is on its way to the agent).
    fn scan_new(&mut self) {
        for id in std::mem::take(&mut self.unscanned) {
            if let Some(u) = self.units.get_mut(&id) {
                u.scan_laptop();
            }
        }
    }

    /// Starts watching a unit's folder: before its scan, so nothing that changes during the scan
    /// is missed.
    fn watch_unit(&mut self, u: &mut Unit) {
        let tx = self.local_tx.clone();
        let id = u.id;
        match tether_sync::watch::start(&u.root, u.replica.rules.clone(), move |c| {
            let _ = tx.send((id, c));
        }) {
            Ok(w) => u.watch = Some(w),
            Err(e) => u.error = Some(format!("cannot watch {} for changes: {e}", u.root.display())),
        }
    }

    fn connected(&mut self, tx: mpsc::Sender<ToAgent>, home: String, out: &mut Vec<Out>) {
        for u in self.units.values_mut() {
            out.push(Out::Msg(u.open(&home, &self.ctx.install)));
        }
        self.agent = Some((tx, home));
    }

    fn lost(&mut self) {
        self.agent = None;
        for u in self.units.values_mut() {
            u.pause();
        }
        for (_, r) in self.reads.drain() {
            if let Some(s) = r.staged {
                s.abort();
            }
        }
    }

    fn fail_waiting(&mut self) {
        let why = self.agent_error.clone().unwrap_or_default();
        for w in self.waiting.drain(..) {
            let _ = w.reply.send(Err(Refusal {
                status: 500,
                message: format!("Tether cannot sync laptop folders to this VM: {why}"),
            }));
        }
    }

    fn resolve(&mut self, sources: Vec<String>, reply: oneshot::Sender<Resolved>, out: &mut Vec<Out>) {
        let mut targets = Vec::new();
        for src in &sources {
            match self.target(src, out) {
                Ok(t) => targets.push(t),
                Err(r) => {
                    let _ = reply.send(Err(r));
                    return;
                }
            }
        }
        if targets.iter().all(Option::is_none) {
            let _ = reply.send(Ok(vec![None; sources.len()]));
            return;
        }
        if let Some(e) = &self.agent_error
            && self.agent.is_none()
        {
            let _ = reply.send(Err(Refusal {
                status: 500,
                message: format!("Tether cannot sync laptop folders to this VM: {e}"),
            }));
            return;
        }
        self.waiting.push(Waiting { targets, reply });
    }

    /// Where a bind source lives: in a unit (made now if needed), or on the VM.
    fn target(&mut self, src: &str, out: &mut Vec<Out>) -> Result<Option<(u32, String)>, Refusal> {
        let p = clean(Path::new(src));
        let Some(p) = p else { return Ok(None) };
        let share = self
            .ctx
            .shares
            .iter()
            .find(|s| {
                let root = std::fs::canonicalize(&s.path).unwrap_or_else(|_| s.path.clone());
                p.starts_with(&s.path) || p.starts_with(&root)
            })
            .cloned();
        let Some(share) = share else {
            self.suggest(&p);
            return Ok(None);
        };
        let meta = match std::fs::metadata(&p) {
            Ok(m) => m,
            Err(_) => {
                return Err(Refusal {
                    status: 400,
                    message: format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {src} (Tether: this path is in the shared folder \"{}\" ({}) but does not exist on this laptop; create it, or fix the path)",
                        share.name,
                        share.path.display()
                    ),
                });
            }
        };
        let real = std::fs::canonicalize(&p).unwrap_or(p.clone());
        // A folder a unit already covers.
        for u in self.units.values() {
            if let Some(rel) = u.covers(&real) {
                return Ok(Some((u.id, rel)));
            }
        }
        let (root, only) = if meta.is_dir() {
            (real.clone(), None)
        } else {
            let Some(parent) = real.parent() else { return Ok(None) };
            let name = real.file_name().map(|n| n.to_string_lossy().into_owned());
            (parent.to_path_buf(), name)
        };
        let id = self.next_unit;
        self.next_unit += 1;
        let mut u =
            Unit::new(id, share.name.clone(), root.clone(), only.clone(), share.ignore.clone()).map_err(|e| {
                Refusal {
                    status: 400,
                    message: format!(
                        "Tether: the shared folder \"{}\" has a bad ignore rule: {e}",
                        share.name
                    ),
                }
            })?;
        // Folders this one contains are covered by it from now on; what they agreed on carries
        // over, so nothing is copied again.
        if only.is_none() {
            let inner: Vec<u32> = self
                .units
                .values()
                .filter(|o| o.only.is_none() && o.root != root && o.root.starts_with(&root))
                .map(|o| o.id)
                .collect();
            for oid in inner {
                if let Some(o) = self.units.remove(&oid) {
                    let prefix = tether_sync::path::relative(&root, &o.root).unwrap_or_default();
                    for (k, v) in &o.base {
                        u.base.insert(tether_sync::path::child(&prefix, k), v.clone());
                    }
                    u.base.insert(prefix, tether_sync::entry::Kind::Dir);
                    out.push(Out::Msg(ToAgent::Close { unit: oid }));
                    let _ = std::fs::remove_file(self.saved_file(&o));
                }
            }
        }
        blocking(|| self.watch_unit(&mut u));
        self.units.insert(id, u);
        self.unscanned.push(id);
        if let Some((_, home)) = &self.agent {
            let home = home.clone();
            if let Some(u) = self.units.get_mut(&id) {
                out.push(Out::Msg(u.open(&home, &self.ctx.install)));
            }
        }
        let rel = only.unwrap_or_default();
        Ok(Some((id, rel)))
    }

    fn suggest(&mut self, p: &Path) {
        // The system's own folders: a container mounting these means the VM's (its clock, logs,
        // runtime state), whatever the laptop has there.
        const SYSTEM: &[&str] = &[
            "/etc",
            "/proc",
            "/sys",
            "/dev",
            "/usr",
            "/lib",
            "/lib32",
            "/lib64",
            "/bin",
            "/sbin",
            "/boot",
            "/run",
            "/var/run",
            "/var/lib",
            "/var/log",
            "/var/cache",
            "/var/spool",
        ];
        if SYSTEM.iter().any(|s| p.starts_with(s)) || self.suggested.contains(p) {
            return;
        }
        let Ok(meta) = std::fs::metadata(p) else { return };
        if !(meta.is_dir() || meta.is_file()) {
            return;
        }
        self.suggested.insert(p.to_path_buf());
        let _ = self.ctx.events.send(Event::ShareSuggested {
            vm: self.ctx.vm.clone(),
            path: p.display().to_string(),
        });
    }

    /// Says in the log when a folder opened on this link first caught up, and how long it took.
    fn log_settled(&mut self) {
        for u in self.units.values_mut() {
            if let Some(t0) = u.opened_at.filter(|_| u.settled()) {
                u.opened_at = None;
                tracing::info!(
                    vm = %self.ctx.vm,
                    folder = %u.root.display(),
                    entries = u.base.len(),
                    ms = t0.elapsed().as_millis() as u64,
                    "shared folder in sync"
                );
            }
        }
    }

    fn answer_waiting(&mut self) {
        let mut i = 0;
        while i < self.waiting.len() {
            let ready = self.waiting[i]
                .targets
                .iter()
                .flatten()
                .all(|(u, _)| self.units.get(u).is_some_and(|u| u.settled() && u.vm_root.is_some()));
            if !ready {
                i += 1;
                continue;
            }
            let w = self.waiting.remove(i);
            let paths = w
                .targets
                .iter()
                .map(|t| {
                    t.as_ref()
                        .and_then(|(u, rel)| self.units.get(u).and_then(|u| u.vm_path(rel)))
                })
                .collect();
            let _ = w.reply.send(Ok(paths));
        }
    }

    fn local(&mut self, unit: u32, change: Change, out: &mut Vec<Out>) {
        let Some(u) = self.units.get_mut(&unit) else { return };
        match change {
            Change::Path(rel) => u.local_change(&rel, out),
            Change::Rescan => u.rescan_laptop(out),
        }
    }

    fn on_agent(&mut self, m: FromAgent, out: &mut Vec<Out>) {
        match m {
            FromAgent::Hello { .. } => {}
            FromAgent::Scan {
                unit,
                entries,
                problems,
                done,
            } => {
                if let Some(u) = self.units.get_mut(&unit) {
                    u.on_scan(entries, problems, done, out);
                }
            }
            FromAgent::Changed {
                unit,
                path,
                entry,
                data,
            } => {
                if let Some(u) = self.units.get_mut(&unit) {
                    u.on_vm_changed(path, entry, data, out);
                }
            }
            FromAgent::Applied { unit, path, outcome } => {
                if let Some(u) = self.units.get_mut(&unit) {
                    u.on_applied(&path, outcome, out);
                }
            }
            FromAgent::Content {
                id,
                data,
                done,
                entry,
                error,
            } => self.content(id, data, done, entry, error, out),
            FromAgent::Problem { unit, problem } => {
                if let Some(u) = self.units.get_mut(&unit) {
                    if problem.path.is_empty() {
                        u.error = Some(problem.message);
                    } else {
                        u.problems.insert(format!("VM: {}", problem.path), problem.message);
                    }
                }
            }
        }
    }

    fn content(
        &mut self,
        id: u64,
        data: Vec<u8>,
        done: bool,
        entry: Option<tether_sync::entry::Entry>,
        error: Option<String>,
        out: &mut Vec<Out>,
    ) {
        let Some(r) = self.reads.get_mut(&id) else { return };
        let Some(u) = self.units.get_mut(&r.unit) else {
            self.reads.remove(&id);
            return;
        };
        if r.staged.is_none() && r.failed.is_none() && error.is_none() {
            match u.begin_pull(&r.path, &r.to) {
                Ok(s) => r.staged = Some(s),
                Err(e) => r.failed = Some(e.to_string()),
            }
        }
        if let Some(s) = r.staged.as_mut()
            && !data.is_empty()
            && let Err(e) = s.write(&data)
        {
            r.failed = Some(e.to_string());
        }
        if !done {
            return;
        }
        let Some(r) = self.reads.remove(&id) else { return };
        let (staged, error) = match (r.staged, r.failed.or(error)) {
            (Some(s), Some(e)) => {
                s.abort();
                (None, Some(e))
            }
            (s, e) => (s, e),
        };
        u.end_pull(&r.path, r.to, staged, entry, error, out);
    }

    /// Sends what the units asked for, in order.
    async fn send(&mut self, out: Vec<Out>) {
        let mut queue: std::collections::VecDeque<Out> = out.into();
        while let Some(o) = queue.pop_front() {
            let Some((tx, _)) = self.agent.clone() else {
                if let Out::Conflict(c) = o {
                    let _ = self.ctx.events.send(Event::Conflict {
                        vm: self.ctx.vm.clone(),
                        conflict: c,
                    });
                }
                continue;
            };
            let ok = match o {
                Out::Msg(m) => tx.send(m).await.is_ok(),
                Out::Conflict(c) => {
                    let _ = self.ctx.events.send(Event::Conflict {
                        vm: self.ctx.vm.clone(),
                        conflict: c,
                    });
                    true
                }
                Out::Read { unit, path, to } => {
                    let id = self.next_read;
                    self.next_read += 1;
                    self.reads.insert(
                        id,
                        Reading {
                            unit,
                            path: path.clone(),
                            to,
                            staged: None,
                            failed: None,
                        },
                    );
                    tx.send(ToAgent::Read { unit, path, id }).await.is_ok()
                }
                Out::SendFile {
                    unit,
                    path,
                    expect,
                    exec,
                    mtime,
                } => {
                    let full = self
                        .units
                        .get(&unit)
                        .and_then(|u| tether_sync::path::join(&u.root, &path).ok());
                    let sent = match full {
                        Some(full) => send_file(&tx, unit, path.clone(), expect, &full, exec, mtime).await,
                        None => Sent::Gone,
                    };
                    match sent {
                        Sent::Done => true,
                        Sent::AgentGone => false,
                        Sent::Gone => {
                            if let Some(u) = self.units.get_mut(&unit) {
                                u.inflight.remove(&path);
                                let mut more = Vec::new();
                                blocking(|| u.local_change(&path, &mut more));
                                queue.extend(more);
                            }
                            true
                        }
                    }
                }
            };
            if !ok {
                // The agent is gone: the loop hears it from the reader.
                return;
            }
        }
    }

    fn saved_file(&self, u: &Unit) -> PathBuf {
        let key = format!("{}\0{}", u.root.display(), u.only.clone().unwrap_or_default());
        let d = tether_sync::entry::digest_of(key.as_bytes());
        let name = tether_sync::entry::hex(&d[..8]);
        self.state_dir().join(format!("{name}.state"))
    }

    fn save(&mut self, all: bool) {
        let dir = self.state_dir();
        let mut made = false;
        let ids: Vec<u32> = self.units.keys().copied().collect();
        for id in ids {
            let Some(u) = self.units.get(&id) else { continue };
            if !(all || u.dirty && u.settled()) {
                continue;
            }
            if !made {
                if let Err(e) = crate::paths::ensure_private_dir(&dir) {
                    tracing::warn!(error = %e, "shared folders: cannot save their state");
                    return;
                }
                made = true;
            }
            let file = self.saved_file(u);
            match postcard::to_allocvec(&u.saved()) {
                Ok(bytes) => {
                    if let Err(e) = crate::paths::write_atomic(&file, &bytes) {
                        tracing::warn!(error = %e, file = %file.display(), "shared folders: cannot save a folder's state");
                        continue;
                    }
                }
                Err(_) => continue,
            }
            if let Some(u) = self.units.get_mut(&id) {
                u.dirty = false;
            }
        }
    }

    fn publish(&mut self) {
        let paused = self.agent.is_none();
        let mut views = Vec::new();
        for s in &self.ctx.shares {
            let folders: Vec<_> = self
                .units
                .values()
                .filter(|u| u.share == s.name)
                .map(|u| u.view(paused && self.agent_error.is_none()))
                .collect();
            let state = folders
                .iter()
                .map(|f| f.state)
                .max_by_key(|st| match st {
                    SyncState::InSync => 0,
                    SyncState::Syncing => 1,
                    SyncState::Scanning => 2,
                    SyncState::Paused => 3,
                    SyncState::Conflict => 4,
                    SyncState::Error => 5,
                })
                .unwrap_or(SyncState::InSync);
            let error = if folders.is_empty() {
                None
            } else {
                self.agent_error.clone()
            };
            views.push(ShareView {
                name: s.name.clone(),
                path: s.path.display().to_string(),
                ignore: s.ignore.clone(),
                state: if error.is_some() { SyncState::Error } else { state },
                folders,
                error,
            });
        }
        let now = tokio::time::Instant::now();
        let shown = self.views.borrow().clone();
        if shown == views {
            self.publish_at = None;
            return;
        }
        // A change of state, a conflict or an error goes out at once; counts alone wait their turn.
        let counts_only = strip_counts(&shown) == strip_counts(&views);
        if counts_only && now < self.published + PUBLISH_EVERY {
            self.publish_at = Some(self.published + PUBLISH_EVERY);
            return;
        }
        self.published = now;
        self.publish_at = None;
        self.views.send_replace(views.clone());
        let _ = self.ctx.events.send(Event::Shares {
            vm: self.ctx.vm.clone(),
            shares: views,
        });
    }
}

/// The views without their counts, to tell a change of state from progress.
fn strip_counts(views: &[ShareView]) -> Vec<ShareView> {
    let mut v = views.to_vec();
    for s in &mut v {
        for f in &mut s.folders {
            f.entries = 0;
            f.pending = 0;
        }
    }
    v
}

/// How a file's sending went.
enum Sent {
    Done,
    /// The laptop file is gone since it was decided on: look at it again.
    Gone,
    /// The agent is gone.
    AgentGone,
}

/// A file this small is read without handing the runtime's worker off (see [`blocking`]).
const SMALL: u64 = 64 * 1024;

/// Sends a laptop file to the agent in pieces of at most [`proto::CHUNK`], each read into a
/// buffer of its own size (a tree of small files allocates small buffers).
async fn send_file(
    tx: &mpsc::Sender<ToAgent>,
    unit: u32,
    path: String,
    expect: tether_sync::apply::Expect,
    full: &Path,
    exec: bool,
    mtime: i64,
) -> Sent {
    use std::io::Read;
    let Ok(file) = std::fs::File::open(full) else {
        return Sent::Gone;
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut file = file;
    let mut first = true;
    loop {
        let mut buf = Vec::with_capacity(size.min(proto::CHUNK as u64) as usize);
        let mut read = || (&mut file).take(proto::CHUNK as u64).read_to_end(&mut buf);
        // A small file is read in place: handing the worker off costs more than the read.
        let read = if size <= SMALL { read() } else { blocking(read) };
        if read.is_err() {
            return Sent::Gone;
        }
        let more = buf.len() == proto::CHUNK;
        let msg = if first {
            ToAgent::File {
                unit,
                path: path.clone(),
                expect: expect.clone(),
                exec,
                mtime,
                data: buf,
                more,
            }
        } else {
            ToAgent::Piece { unit, data: buf, more }
        };
        first = false;
        if tx.send(msg).await.is_err() {
            return Sent::AgentGone;
        }
        if !more {
            return Sent::Done;
        }
    }
}

/// Runs file-system work that may take a while (a scan, a large write) without holding up the
/// runtime's other tasks: on a multi-threaded runtime (the engine's) the worker hands its other
/// tasks on first; a single-threaded one (some tests) just runs it.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// An absolute path without `.` or `..` (lexically), or `None` if it is not one.
fn clean(p: &Path) -> Option<PathBuf> {
    use std::path::Component;
    if !p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    Some(out)
}
