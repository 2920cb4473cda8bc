//! One watcher per VM of its Docker Engine, spoken to with bollard through Tether's own forwarded
//! socket while the VM is connected:
//!
//! - the engine's event stream says when containers change; the front ends are told, and the
//!   automatic port forwards are brought in line at once (no polling anywhere);
//! - health samples (SSH round trip, engine ping, engine facts, and the VM's load, memory and
//!   disks from one `sh` run over SSH) on a schedule that is quick while someone watches and
//!   slow otherwise, kept for about an hour for charts.
//!
//! The two run side by side: a sample may take up to its timeouts (three Docker calls, a 10 s
//! script) on a slow VM, and container events and automatic forwards never wait for it. A
//! watcher arriving while a sample runs is remembered (a counter, not a notification that only
//! reaches who waits at that moment), so the next sample follows at once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use futures_util::StreamExt as _;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::api::{Disk, EngineHealth, Event, Health, HealthReport, Proto, Sample, UnforwardedPort, VmHealth};
use crate::clock::unix_ms as now_ms;
use crate::config::Arch;
use crate::ports::{AutoPolicy, AutoWant, auto_verdict};
use crate::remote;
use crate::session::SessionHandle;
use crate::state::State;

/// Sampling while a window or `status --watch` is open.
pub const FAST: Duration = Duration::from_secs(2);
/// Sampling while nobody looks: enough for the history and the arch check.
pub const SLOW: Duration = Duration::from_secs(30);
/// How much history is kept.
pub const HISTORY: Duration = Duration::from_secs(3600);

/// One VM's latest reading and its history.
type Kept = (Option<Health>, VecDeque<Sample>);

/// What every monitor shares with the engine.
pub struct Shared {
    /// Subscribers that want live data (the window, `status --watch`).
    pub watchers: AtomicUsize,
    /// Bumped when a watcher arrives, so a monitor in its slow schedule samples at once.
    pub wake: watch::Sender<u64>,
    health: std::sync::Mutex<HashMap<String, Kept>>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            watchers: AtomicUsize::new(0),
            wake: watch::Sender::new(0),
            health: std::sync::Mutex::default(),
        }
    }
}

impl Shared {
    /// Asks every monitor for a sample now (after the one under way, if any).
    pub fn wake_all(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn report(&self, vm: &str) -> HealthReport {
        let map = self.health.lock();
        let Ok(map) = map else { return HealthReport::default() };
        map.get(vm)
            .map(|(latest, h)| HealthReport {
                latest: latest.clone(),
                history: h.iter().copied().collect(),
            })
            .unwrap_or_default()
    }

    fn record(&self, vm: &str, h: &Health) {
        let Ok(mut map) = self.health.lock() else { return };
        let (latest, hist) = map.entry(vm.to_string()).or_default();
        hist.push_back(Sample {
            at_ms: h.at_ms,
            rtt_ms: h.rtt_ms,
            engine_ms: h.engine.as_ref().map(|e| e.ping_ms),
            load1: h.vm.as_ref().map(|v| v.load[0]),
            mem_used: h.vm.as_ref().map(|v| v.mem_used),
        });
        let horizon = h.at_ms.saturating_sub(HISTORY.as_millis() as u64);
        while hist.front().is_some_and(|s| s.at_ms < horizon) {
            hist.pop_front();
        }
        *latest = Some(h.clone());
    }

    pub fn forget(&self, vm: &str) {
        if let Ok(mut map) = self.health.lock() {
            map.remove(vm);
        }
    }
}

/// What the monitor of one VM needs to know about its settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub auto_forward: bool,
    pub policy: AutoPolicy,
    pub arch: Option<Arch>,
    /// Ports never forwarded automatically (`settings.auto_forward_deny`).
    pub deny: std::sync::Arc<[u16]>,
}

/// A running monitor; stopped on drop.
pub struct Monitor {
    task: JoinHandle<()>,
    pub settings: watch::Sender<Settings>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching VM `name`, whose forwarded Docker socket is `socket`.
pub fn spawn(
    name: String,
    session: SessionHandle,
    socket: PathBuf,
    events: broadcast::Sender<Event>,
    shared: Arc<Shared>,
    settings: Settings,
    tasks: &crate::tasks::Tasks,
) -> Monitor {
    let (tx, rx) = watch::channel(settings);
    let task = tasks.spawn(run(name, session, socket, events, shared, rx, tasks.clone()));
    Monitor { task, settings: tx }
}

async fn run(
    name: String,
    session: SessionHandle,
    socket: PathBuf,
    events: broadcast::Sender<Event>,
    shared: Arc<Shared>,
    mut settings: watch::Receiver<Settings>,
    tasks: crate::tasks::Tasks,
) {
    let mut status = session.watch();
    loop {
        // Until connected.
        if status.wait_for(|s| s.state == State::Connected).await.is_err() {
            return;
        }
        let docker = crate::docker::client(&socket).await.ok();
        let Some(docker) = docker else {
            // The engine does not answer yet (the session reports why); look again shortly.
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        };
        let filters = HashMap::from([("type", vec!["container"])]);
        let mut stream = docker.events(Some(EventsOptionsBuilder::default().filters(&filters).build()));
        let now = settings.borrow().clone();
        reconcile(&docker, &session, now).await;
        let _ = events.send(Event::Containers { vm: name.clone() });
        // Samples run beside this loop until the link goes (the guard stops them), or the
        // monitor does (its task is aborted, dropping the guard).
        let stop = tokio_util::sync::CancellationToken::new();
        let _sampling = stop.clone().drop_guard();
        tasks.spawn(sampler(
            name.clone(),
            docker.clone(),
            session.clone(),
            events.clone(),
            shared.clone(),
            settings.clone(),
            stop,
        ));
        loop {
            tokio::select! {
                ev = stream.next() => match ev {
                    Some(Ok(m)) => {
                        let action = m.action.unwrap_or_default();
                        // Port publishing changes with these; others (exec, attach…) do not.
                        if matches!(action.as_str(), "start" | "die" | "stop" | "kill" | "destroy" | "pause" | "unpause" | "restart") {
                            let now = settings.borrow().clone();
                            reconcile(&docker, &session, now).await;
                        }
                        // A health check runs as an exec every interval (each second, say):
                        // those events change nothing a list shows, so they are not passed on.
                        if !action.starts_with("exec_") {
                            let _ = events.send(Event::Containers { vm: name.clone() });
                        }
                    }
                    // The stream ends with the link; start over once connected again.
                    _ => break,
                },
                changed = settings.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = settings.borrow().clone();
                    reconcile(&docker, &session, now).await;
                }
                changed = status.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if status.borrow().state != State::Connected {
                        break;
                    }
                }
            }
        }
    }
}

/// Samples the VM's health now, then on its schedule (quick while someone watches), and at once
/// whenever a watcher arrives, until `stop`.
async fn sampler(
    name: String,
    docker: Docker,
    session: SessionHandle,
    events: broadcast::Sender<Event>,
    shared: Arc<Shared>,
    settings: watch::Receiver<Settings>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut wake = shared.wake.subscribe();
    loop {
        // Seen now: a bump from here on, even during the sample, asks for the next one.
        wake.mark_unchanged();
        let arch = settings.borrow().arch;
        let h = tokio::select! {
            h = sample(&docker, &session, arch) => h,
            () = stop.cancelled() => return,
        };
        session.set_arch_warning(h.arch_warning.clone()).await;
        shared.record(&name, &h);
        let _ = events.send(Event::Health {
            vm: name.clone(),
            health: Box::new(h),
        });
        let fast = shared.watchers.load(Ordering::Relaxed) > 0;
        tokio::select! {
            () = tokio::time::sleep(if fast { FAST } else { SLOW }) => {}
            changed = wake.changed() => if changed.is_err() { return },
            () = stop.cancelled() => return,
        }
    }
}

/// Brings the automatic forwards in line with the running containers' published ports.
async fn reconcile(docker: &Docker, session: &SessionHandle, settings: Settings) {
    let list = match docker
        .list_containers(Some(ListContainersOptionsBuilder::default().all(false).build()))
        .await
    {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list containers");
            return;
        }
    };
    let mut wants: BTreeMap<u16, AutoWant> = BTreeMap::new();
    let mut unforwarded: BTreeMap<(u16, Proto), UnforwardedPort> = BTreeMap::new();
    for c in &list {
        let container = c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_else(|| c.id.clone().unwrap_or_default().chars().take(12).collect());
        for p in c.ports.iter().flatten() {
            let Some(public) = p.public_port else { continue };
            let proto = crate::docker::proto(p.typ);
            let verdict = if proto == Proto::Tcp {
                auto_verdict(public, c.labels.as_ref(), &settings.deny)
            } else {
                Err(format!("Tether forwards TCP only, and this is {proto}"))
            };
            match verdict {
                Ok(()) => {
                    wants.entry(public).or_insert(AutoWant {
                        remote: public,
                        container: container.clone(),
                    });
                }
                // A kept-back TCP port matters only when ports are forwarded automatically.
                Err(_) if proto == Proto::Tcp && !settings.auto_forward => {}
                Err(reason) => {
                    unforwarded.insert(
                        (public, proto),
                        UnforwardedPort {
                            container: container.clone(),
                            port: public,
                            proto,
                            reason,
                        },
                    );
                }
            }
        }
    }
    let wants = if settings.auto_forward {
        wants.into_values().collect()
    } else {
        Vec::new()
    };
    session
        .set_auto(wants, unforwarded.into_values().collect(), settings.policy)
        .await;
}

/// Reads the VM's load, CPUs, memory and the disks of `/` and `$1` (Docker's data root).
/// Byte counts go through printf, since awk prints large numbers in exponent notation.
const VM_SCRIPT: &str = r#"read l1 l5 l15 _ < /proc/loadavg; echo "load $l1 $l5 $l15"; echo "cpus $(grep -c ^processor /proc/cpuinfo)"; awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} END{printf "mem %.0f %.0f\n", (t-a)*1024, t*1024}' /proc/meminfo; for d in / "$1"; do df -Pk "$d" 2>/dev/null | awk -v d="$d" 'NR==2{printf "disk %s %.0f %.0f\n", d, $3*1024, $2*1024}'; done"#;

async fn sample(docker: &Docker, session: &SessionHandle, arch: Option<Arch>) -> Health {
    let mut h = Health {
        at_ms: now_ms(),
        rtt_ms: session.status().rtt_ms,
        ..Default::default()
    };
    let started = Instant::now();
    let ping = docker.ping().await;
    let ping_ms = crate::clock::millis(started.elapsed());
    let info = docker.info().await;
    let version = docker.version().await;
    match (ping, info, version) {
        (Ok(_), Ok(i), Ok(v)) => {
            let e = EngineHealth {
                ping_ms,
                version: v.version.unwrap_or_default(),
                api_version: v.api_version.unwrap_or_default(),
                os: i.operating_system.unwrap_or_default(),
                kernel: i.kernel_version.unwrap_or_default(),
                arch: v.arch.unwrap_or_default(),
                containers_running: i.containers_running.unwrap_or_default(),
                containers_total: i.containers.unwrap_or_default(),
                images: i.images.unwrap_or_default(),
                docker_root: i.docker_root_dir.unwrap_or_default(),
            };
            h.arch_warning = arch_warning(arch, &e.arch);
            h.engine = Some(e);
        }
        (p, i, v) => {
            let why = p
                .err()
                .or(i.err())
                .or(v.err())
                .map(|e| e.to_string())
                .unwrap_or_default();
            h.problems.push(format!("the Docker engine did not answer: {why}"));
        }
    }
    if let Some(link) = session.link() {
        let root = h
            .engine
            .as_ref()
            .map(|e| e.docker_root.clone())
            .unwrap_or_else(|| "/".into());
        let script = format!("set -- {}; {VM_SCRIPT}", remote::quote(&root));
        match remote::run(&link, &script, None, Duration::from_secs(10)).await {
            Ok(out) => h.vm = Some(parse_vm(&out.stdout, &root)),
            Err(e) => h.problems.push(format!("cannot read the VM's load: {e}")),
        }
    }
    h
}

/// The warning for an engine that runs another architecture than the VM is labelled with.
pub fn arch_warning(label: Option<Arch>, reported: &str) -> Option<String> {
    let got = Arch::from_engine(reported)?;
    let want = label?;
    (got != want).then(|| {
        format!(
            "labelled {want}, but its Docker engine runs {got}: images built for {want} will run emulated or not at all"
        )
    })
}

/// Parses the output of [`VM_SCRIPT`].
pub fn parse_vm(text: &str, root: &str) -> VmHealth {
    let mut v = VmHealth::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["load", a, b, c] => {
                v.load = [
                    a.parse().unwrap_or(0.0),
                    b.parse().unwrap_or(0.0),
                    c.parse().unwrap_or(0.0),
                ]
            }
            ["cpus", n] => v.cpus = n.parse().unwrap_or(0),
            ["mem", used, total] => {
                v.mem_used = used.parse().unwrap_or(0);
                v.mem_total = total.parse().unwrap_or(0);
            }
            ["disk", d, used, total] => {
                let disk = Disk {
                    used: used.parse().unwrap_or(0),
                    total: total.parse().unwrap_or(0),
                };
                if *d == "/" {
                    v.disk_root = disk;
                }
                if *d == root {
                    v.disk_docker = disk;
                }
            }
            _ => {}
        }
    }
    v
}

#[cfg(test)]
#[path = "tests/monitor.rs"]
mod tests;
