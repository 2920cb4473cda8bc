//! A VM's containers for the front ends: the list (name, image, state, health, published ports
//! with the laptop port that reaches each, one-shot CPU and memory, Compose project and service),
//! start/stop/restart of one container or of a whole Compose project, and a bounded log tail. All
//! of it through bollard on Tether's forwarded socket.

use futures_util::StreamExt as _;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, LogsOptionsBuilder, RestartContainerOptions, StartContainerOptions,
    StatsOptionsBuilder, StopContainerOptions,
};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::state::State;

pub use crate::api::{ContainerView, PortView};

/// The labels `docker compose` puts on every container it makes.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// `db:service_started:false,cache:service_healthy:true`: the services this one depends on.
const DEPENDS_LABEL: &str = "com.docker.compose.depends_on";

/// Most log lines one tail returns.
pub const MAX_LOG_LINES: usize = 1000;

/// What a container action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Start,
    Stop,
    Restart,
}

#[cfg(test)]
#[path = "tests/containers.rs"]
mod tests;

fn engine_err(vm: &str, e: bollard::errors::Error) -> EngineError {
    EngineError::DockerApi {
        vm: vm.into(),
        message: e.to_string(),
    }
}

/// Longest log line passed on whole; a longer one (a container printing without newlines) is
/// split into pieces of this size, so memory per follow stays bounded.
pub const MAX_LOG_LINE: usize = 64 * 1024;

/// Splits a byte stream into lines of at most [`MAX_LOG_LINE`] bytes. Each byte is scanned
/// once, however the stream is chunked, and a UTF-8 character split across chunks stays whole.
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    ready: std::collections::VecDeque<String>,
}

impl LineSplitter {
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = MAX_LOG_LINE - self.partial.len();
            let window = &bytes[..bytes.len().min(room)];
            match window.iter().position(|b| *b == b'\n') {
                Some(pos) => {
                    self.partial.extend_from_slice(&window[..pos]);
                    self.flush(self.partial.len());
                    bytes = &bytes[pos + 1..];
                }
                None => {
                    self.partial.extend_from_slice(window);
                    bytes = &bytes[window.len()..];
                    if self.partial.len() == MAX_LOG_LINE {
                        // Cut before a character the piece would split; it starts the next one.
                        let cut = utf8_cut(&self.partial);
                        self.flush(cut);
                    }
                }
            }
        }
    }

    /// Moves the first `n` bytes of the pending line out as a finished line.
    fn flush(&mut self, n: usize) {
        let rest = self.partial.split_off(n);
        let line = std::mem::replace(&mut self.partial, rest);
        self.ready.push_back(String::from_utf8_lossy(&line).into_owned());
    }

    pub fn next_line(&mut self) -> Option<String> {
        self.ready.pop_front()
    }

    /// The unfinished last line, at the end of the stream.
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned())
    }
}

/// The length of the longest prefix of `b` that does not end inside a UTF-8 character.
fn utf8_cut(b: &[u8]) -> usize {
    let n = b.len();
    // A character is at most 4 bytes: only its lead byte, among the last 3, can be cut off.
    for back in 1..=3.min(n) {
        let i = n - back;
        let lead = b[i];
        if lead & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for its lead
        }
        let len = match lead {
            0xF0..=0xF7 => 4,
            0xE0..=0xEF => 3,
            0xC0..=0xDF => 2,
            _ => 1,
        };
        return if back < len { i } else { n };
    }
    n
}

fn log_bytes(chunk: LogOutput) -> Option<bytes::Bytes> {
    match chunk {
        LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message } => Some(message),
        LogOutput::StdIn { .. } => None,
    }
}

/// Log chunks as lines (a chunk may hold several, or end mid-line; the remainder waits).
fn async_stream_lines(
    docker: Docker,
    id: String,
    opts: bollard::query_parameters::LogsOptions,
) -> impl futures_util::Stream<Item = String> + Send + 'static {
    let chunks = docker.logs(&id, Some(opts));
    futures_util::stream::unfold(
        (chunks, LineSplitter::default()),
        |(mut chunks, mut lines)| async move {
            loop {
                if let Some(line) = lines.next_line() {
                    return Some((line, (chunks, lines)));
                }
                match chunks.next().await? {
                    Ok(chunk) => lines.push(&log_bytes(chunk).unwrap_or_default()),
                    Err(_) => return None,
                }
            }
        },
    )
}

/// The health verdict in a status line ("Up 3 minutes (healthy)"), for engines older than
/// API 1.52, whose list has no health field.
pub fn health_from_status(status: &str) -> Option<String> {
    ["(healthy)", "(unhealthy)", "(health: starting)"]
        .iter()
        .find(|m| status.ends_with(*m))
        .map(|m| m.trim_matches(['(', ')']).trim_start_matches("health: ").to_string())
}

/// CPU use in percent of one core, from one stats reading (as `docker stats` computes it).
fn cpu_percent(s: &bollard::models::ContainerStatsResponse) -> Option<f64> {
    let cpu = s.cpu_stats.as_ref()?;
    let pre = s.precpu_stats.as_ref()?;
    let total = cpu.cpu_usage.as_ref()?.total_usage? as f64 - pre.cpu_usage.as_ref()?.total_usage.unwrap_or(0) as f64;
    let system = cpu.system_cpu_usage? as f64 - pre.system_cpu_usage.unwrap_or(0) as f64;
    let cpus = cpu.online_cpus.unwrap_or(1) as f64;
    (system > 0.0 && total >= 0.0).then(|| (total / system * cpus * 100.0 * 100.0).round() / 100.0)
}

impl Engine {
    /// A client for `vm`'s engine through the forwarded socket; the VM must be connected.
    async fn docker(&self, vm: &str) -> Result<Docker, EngineError> {
        let (_, session) = self.session(Some(vm)).await?;
        if session.status().state != State::Connected {
            return Err(EngineError::NotConnected { vm: vm.into() });
        }
        let path = self.paths().docker_socket(vm);
        crate::docker::client(&path).await.map_err(|e| engine_err(vm, e))
    }

    /// Every container of `vm`, running ones with one-shot CPU and memory figures.
    pub async fn containers(&self, vm: &str) -> Result<Vec<ContainerView>, EngineError> {
        let docker = self.docker(vm).await?;
        let status = self.session(Some(vm)).await?.1.status();
        let (forwards, unforwarded) = (status.forwards, status.unforwarded);
        let list = docker
            .list_containers(Some(ListContainersOptionsBuilder::default().all(true).build()))
            .await
            .map_err(|e| engine_err(vm, e))?;
        let views = list.into_iter().map(|c| {
            let docker = docker.clone();
            let forwards = forwards.clone();
            let unforwarded = unforwarded.clone();
            async move {
                let id = c.id.clone().unwrap_or_default();
                let state = c.state.map(|s| s.to_string()).unwrap_or_default();
                let (mut cpu, mut mem, mut limit) = (None, None, None);
                if state == "running" {
                    let opts = StatsOptionsBuilder::default().stream(false).one_shot(false).build();
                    if let Some(Ok(s)) = docker.stats(&id, Some(opts)).next().await {
                        cpu = cpu_percent(&s);
                        mem = s.memory_stats.as_ref().and_then(|m| m.usage);
                        limit = s.memory_stats.as_ref().and_then(|m| m.limit);
                    }
                }
                let name = c
                    .names
                    .as_ref()
                    .and_then(|n| n.first())
                    .map(|n| n.trim_start_matches('/').to_string());
                let label = |key: &str| c.labels.as_ref().and_then(|l| l.get(key)).cloned();
                let (project, service) = (label(PROJECT_LABEL), label(SERVICE_LABEL));
                let mut ports: Vec<PortView> = Vec::new();
                for p in c.ports.iter().flatten() {
                    let proto = crate::docker::proto(p.typ);
                    if ports
                        .iter()
                        .any(|q| q.private == p.private_port && q.public == p.public_port && q.proto == proto)
                    {
                        continue; // the same port published on IPv4 and IPv6
                    }
                    let fwd = p
                        .public_port
                        .filter(|_| proto == crate::api::Proto::Tcp)
                        .and_then(|pp| forwards.iter().find(|f| f.remote == pp));
                    let not_forwarded = match (fwd, p.public_port) {
                        (None, Some(pp)) => unforwarded
                            .iter()
                            .find(|u| u.port == pp && u.proto == proto && Some(&u.container) == name.as_ref())
                            .map(|u| u.reason.clone()),
                        _ => None,
                    };
                    ports.push(PortView {
                        private: p.private_port,
                        public: p.public_port,
                        proto,
                        local: fwd.map(|f| f.local),
                        auto: fwd.is_some_and(|f| f.auto),
                        not_forwarded,
                    });
                }
                ContainerView {
                    name: name.unwrap_or_default(),
                    image: c.image.unwrap_or_default(),
                    health: c
                        .health
                        .and_then(|h| h.status)
                        .map(|s| s.to_string())
                        .filter(|s| s != "none" && !s.is_empty())
                        .or_else(|| health_from_status(c.status.as_deref().unwrap_or_default())),
                    status: c.status.unwrap_or_default(),
                    state,
                    ports,
                    cpu_percent: cpu,
                    mem_bytes: mem,
                    mem_limit: limit,
                    id,
                    project,
                    service,
                }
            }
        });
        let mut out = join_all(views).await;
        out.sort_by(|a, b| (a.state != "running", &a.name).cmp(&(b.state != "running", &b.name)));
        Ok(out)
    }

    /// Starts, stops or restarts a container.
    pub async fn container_action(&self, vm: &str, id: &str, action: Action) -> Result<(), EngineError> {
        let docker = self.docker(vm).await?;
        let res = match action {
            Action::Start => docker.start_container(id, None::<StartContainerOptions>).await,
            Action::Stop => docker.stop_container(id, None::<StopContainerOptions>).await,
            Action::Restart => docker.restart_container(id, None::<RestartContainerOptions>).await,
        };
        res.map_err(|e| engine_err(vm, e))
    }

    /// Starts, stops or restarts every container of Compose project `project`, in the order
    /// Compose would: a service after the services it depends on, and stopped before them.
    /// Returns the containers' names in the order they were acted on.
    pub async fn project_action(&self, vm: &str, project: &str, action: Action) -> Result<Vec<String>, EngineError> {
        let docker = self.docker(vm).await?;
        let filter = std::collections::HashMap::from([("label", vec![format!("{PROJECT_LABEL}={project}")])]);
        let list = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filter)
                    .build(),
            ))
            .await
            .map_err(|e| engine_err(vm, e))?;
        if list.is_empty() {
            return Err(EngineError::DockerApi {
                vm: vm.into(),
                message: format!(
                    "no container belongs to a Compose project '{project}'; `tether containers {vm}` lists them"
                ),
            });
        }
        let members: Vec<Member> = list
            .into_iter()
            .map(|c| {
                let labels = c.labels.unwrap_or_default();
                Member {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    service: labels.get(SERVICE_LABEL).cloned().unwrap_or_default(),
                    depends_on: depends_on(labels.get(DEPENDS_LABEL).map(String::as_str).unwrap_or_default()),
                }
            })
            .collect();
        let mut order = start_order(&members);
        if action == Action::Stop {
            order.reverse();
        }
        let mut done = Vec::new();
        for i in order {
            let m = &members[i];
            self.container_action(vm, &m.id, action)
                .await
                .map_err(|e| EngineError::DockerApi {
                    vm: vm.into(),
                    message: format!(
                        "{e}; stopped at {} of project '{project}' after {} of {} containers",
                        m.name,
                        done.len(),
                        members.len()
                    ),
                })?;
            done.push(m.name.clone());
        }
        Ok(done)
    }

    /// The last `tail` lines of a container's output, then every new line as it is written,
    /// until the stream is dropped or the container's output ends.
    pub async fn follow_logs(
        &self,
        vm: &str,
        id: &str,
        tail: usize,
    ) -> Result<impl futures_util::Stream<Item = String> + Send + use<>, EngineError> {
        let docker = self.docker(vm).await?;
        let tail = tail.clamp(1, MAX_LOG_LINES);
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(true)
            .tail(&tail.to_string())
            .build();
        let id = id.to_string();
        let stream = async_stream_lines(docker, id, opts);
        Ok(stream)
    }

    /// The last `tail` lines (at most [`MAX_LOG_LINES`]) of a container's output.
    pub async fn container_logs(&self, vm: &str, id: &str, tail: usize) -> Result<Vec<String>, EngineError> {
        let docker = self.docker(vm).await?;
        let tail = tail.clamp(1, MAX_LOG_LINES);
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let mut stream = docker.logs(id, Some(opts));
        let (mut lines, mut split) = (std::collections::VecDeque::new(), LineSplitter::default());
        while let Some(item) = stream.next().await {
            split.push(&log_bytes(item.map_err(|e| engine_err(vm, e))?).unwrap_or_default());
            while let Some(line) = split.next_line() {
                lines.push_back(line);
                // Only the last `tail` are answered: keep no more, however long the lines.
                if lines.len() > tail {
                    lines.pop_front();
                }
            }
        }
        lines.extend(split.finish());
        let mut lines = Vec::from(lines);
        let skip = lines.len().saturating_sub(tail);
        Ok(lines.split_off(skip))
    }
}

/// One container of a Compose project, for ordering.
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) service: String,
    pub(crate) depends_on: Vec<String>,
}

/// The services named in a `com.docker.compose.depends_on` label.
pub(crate) fn depends_on(label: &str) -> Vec<String> {
    label
        .split(',')
        .filter_map(|d| d.split(':').next())
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

/// Indices of `members` with every service after the services it depends on (by name, then
/// container name, where the graph leaves a choice). A dependency that is not in the project, or
/// a cycle, does not hold anything back: each member is still listed once.
pub(crate) fn start_order(members: &[Member]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..members.len()).collect();
    idx.sort_by(|&a, &b| (&members[a].service, &members[a].name).cmp(&(&members[b].service, &members[b].name)));
    let mut placed = vec![false; members.len()];
    let mut order = Vec::with_capacity(members.len());
    while order.len() < members.len() {
        let ready = idx.iter().copied().find(|&i| {
            !placed[i]
                && members[i].depends_on.iter().all(|dep| {
                    members
                        .iter()
                        .enumerate()
                        .all(|(j, m)| m.service != *dep || placed[j] || j == i)
                })
        });
        // A cycle: take the first one left, as Compose would refuse; better than nothing.
        let next = ready.or_else(|| idx.iter().copied().find(|&i| !placed[i]));
        let Some(next) = next else { break };
        placed[next] = true;
        order.push(next);
    }
    order
}
