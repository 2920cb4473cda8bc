//! The session's SSH link: connection attempts, liveness probes (and the quick re-check after a
//! network change or wake), and the periodic Docker engine check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::{EngineInfo, Event};
use crate::docker;
use crate::error::EngineError;
use crate::ssh::{self, Connection, HostKeyPolicy, SshError};
use crate::state::{Input, State};
use crate::target;

use super::status::problem;
use super::{Actor, Link, PROBE_TIMEOUT, RECHECK_TIMEOUT};

impl Actor {
    pub(super) fn fail_waiting(&mut self, e: EngineError) {
        self.health.last_error = Some(e.body());
        let shared = Arc::new(e);
        for w in self.ssh.waiting.drain(..) {
            let _ = w.send(Err(EngineError::Shared(shared.clone())));
        }
    }

    pub(super) fn drop_link(&mut self) {
        if let Some(p) = self.ssh.probe.take() {
            p.abort();
        }
        self.ssh.recheck = false;
        if let Some(e) = self.health.engine_check.take() {
            e.abort();
        }
        self.answer_engine_waiters();
        self.ssh.misses = 0;
        // Without a link there is no round trip and no engine answer to report.
        self.set_rtt(None);
        self.health.engine = None;
        self.reverse_link_down();
        let _ = self.ssh.link.send(None);
        let hops = std::mem::take(&mut self.ssh.hops);
        if let Some((link, _)) = self.ssh.conn.take() {
            self.shared.tasks.spawn(async move {
                let _ = link
                    .disconnect(russh::Disconnect::ByApplication, "tether disconnect", "en")
                    .await;
                // Innermost first, so each session says goodbye through the hops still open.
                for hop in hops.into_iter().rev() {
                    let _ = hop
                        .disconnect(russh::Disconnect::ByApplication, "tether disconnect", "en")
                        .await;
                }
            });
        }
    }

    pub(super) fn start_attempt(&mut self) {
        if let Some(a) = self.ssh.attempt.take() {
            a.abort();
        }
        let profile = self.profile.clone();
        let files = self.paths.known_hosts_files();
        let (accept_new, confirmed) = self.ssh.policy.clone();
        let passphrase = self.ssh.passphrase.clone();
        let keys = self.keys.clone();
        let reverse = self.reverse.table.clone();
        self.ssh.attempt = Some(self.shared.tasks.spawn(async move {
            // ~/.ssh/config is file I/O: off the runtime's workers.
            let resolve = profile.clone();
            let target = tokio::task::spawn_blocking(move || target::resolve(&resolve))
                .await
                .map_err(|e| SshError::Handshake {
                    addr: profile.host.clone(),
                    message: e.to_string(),
                })?
                .map_err(|e| SshError::Handshake {
                    addr: profile.host.clone(),
                    message: e.to_string(),
                })?;
            let logins = crate::identity::logins_for(&profile, &target, &keys).await?;
            let policy = HostKeyPolicy {
                files,
                accept_new,
                confirmed: ssh::Confirmation::of(confirmed),
                scan: false,
            };
            let pass = passphrase.as_ref().map(|p| p.as_str());
            let conn = ssh::connect(&target, policy, logins, pass, ssh::Timeouts::default(), Some(reverse)).await?;
            let info = docker::probe(&conn.handle, &profile.remote_socket, &target.user).await;
            Ok((conn, info))
        }));
    }

    pub(super) fn attempt_done(&mut self, res: Option<Result<(Connection, EngineInfo), SshError>>) {
        let res = res.unwrap_or(Err(SshError::Closed));
        // The confirmation applied to one attempt only.
        self.ssh.policy = (false, None);
        match res {
            Ok((conn, info)) => {
                self.ssh.hops = conn.hops;
                self.ssh.via = conn.via;
                let link: Link = Arc::new(conn.handle);
                self.ssh.conn = Some((link.clone(), conn.closed));
                let _ = self.ssh.link.send(Some(link));
                self.health.last_error = None;
                self.input(Input::Established, None);
                self.request_all_reverse();
                self.set_engine(info);
                for w in std::mem::take(&mut self.ssh.waiting) {
                    let _ = w.send(self.report());
                }
                tracing::info!(vm = %self.name, "connected");
            }
            Err(e) => {
                let permanent = e.is_permanent();
                tracing::warn!(vm = %self.name, error = %e, permanent, "connection attempt failed");
                self.health.last_error = Some(e.body());
                // The waiters hear of the failure only after the state machine has acted on it,
                // so a failed connect has already removed its socket when the caller returns.
                let waiters = std::mem::take(&mut self.ssh.waiting);
                // A user-requested attempt while reconnecting reports its error but keeps retrying.
                let permanent = permanent || (!waiters.is_empty() && matches!(self.state, State::Connecting));
                self.input(Input::AttemptFailed { permanent }, None);
                self.ssh.waiting = waiters;
                self.fail_waiting(EngineError::from(e));
            }
        }
        self.publish();
    }

    pub(super) fn start_probe(&mut self) {
        self.probe_with(PROBE_TIMEOUT);
    }

    /// After a network change or a wake the connection may lead nowhere (a new network, or a VM
    /// that forgot it while the laptop slept), and no FIN or RST will say so. Probe at once with
    /// a short deadline, and on no answer reconnect at once rather than after two slow misses.
    pub(super) fn recheck(&mut self) {
        // A quick probe already out keeps its earlier deadline: changes come in bursts, and
        // restarting the clock on each would only delay the verdict.
        if self.ssh.recheck && self.ssh.probe.is_some() {
            return;
        }
        if let Some(p) = self.ssh.probe.take() {
            p.abort();
        }
        let deadline = self
            .rtt()
            .map_or(RECHECK_TIMEOUT, |rtt| (rtt * 4).clamp(RECHECK_TIMEOUT, PROBE_TIMEOUT));
        tracing::info!(vm = %self.name, deadline_ms = deadline.as_millis() as u64, "network changed or the laptop woke; checking the link now");
        self.ssh.recheck = true;
        self.probe_with(deadline);
    }

    pub(super) fn probe_with(&mut self, deadline: Duration) {
        let Some((link, _)) = &self.ssh.conn else { return };
        let link = link.clone();
        self.ssh.probe = Some(self.shared.tasks.spawn(async move {
            let t0 = Instant::now();
            let ok = matches!(tokio::time::timeout(deadline, link.send_ping()).await, Ok(Ok(())));
            // send_ping also returns Ok when the session is already gone; check that too.
            (ok && !link.is_closed()).then(|| t0.elapsed())
        }));
    }

    /// The last probe's round trip; `None` before one was answered on this link.
    pub(super) fn rtt(&self) -> Option<Duration> {
        let us = self.ssh.rtt_us.load(std::sync::atomic::Ordering::Relaxed);
        (us != 0).then(|| Duration::from_micros(us))
    }

    fn set_rtt(&self, rtt: Option<Duration>) {
        // A round trip of under a microsecond still counts as known.
        let us = rtt.map_or(0, |r| u64::try_from(r.as_micros()).unwrap_or(u64::MAX).max(1));
        self.ssh.rtt_us.store(us, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn probe_done(&mut self, rtt: Option<Duration>) {
        let recheck = std::mem::take(&mut self.ssh.recheck);
        if recheck && rtt.is_none() {
            tracing::warn!(vm = %self.name, "no answer after a network change or wake; reconnecting now");
            self.health.last_error = Some(problem(
                crate::api::ErrorCode::Unreachable,
                "the VM stopped answering after the network changed or the laptop woke",
            ));
            self.input(Input::LinkLost, None);
            // The link is known dead, not flaky: the first retry goes at once.
            if self.ssh.retry_at.take().is_some() {
                self.start_attempt();
            }
            self.publish();
            return;
        }
        match rtt {
            Some(rtt) => {
                self.ssh.misses = 0;
                let ms = crate::clock::millis(rtt);
                // Tell subscribers when it moved by a tenth or 0.2 ms, not every 2 s.
                let moved = self.rtt().is_none_or(|old| {
                    let old = old.as_secs_f64() * 1e3;
                    (ms - old).abs() >= (old * 0.1).max(0.2)
                });
                if moved {
                    let _ = self.events.send(Event::Rtt {
                        vm: self.name.clone(),
                        rtt_ms: ms,
                    });
                }
                self.set_rtt(Some(rtt));
                self.input(Input::ProbeOk, None);
            }
            None => {
                self.ssh.misses += 1;
                tracing::warn!(vm = %self.name, misses = self.ssh.misses, "liveness probe unanswered");
                self.health.last_error = Some(problem(
                    crate::api::ErrorCode::Unreachable,
                    &format!(
                        "the VM did not answer a liveness probe within {} s",
                        PROBE_TIMEOUT.as_secs()
                    ),
                ));
                self.input(Input::ProbeMissed, None);
            }
        }
        self.publish();
    }

    pub(super) fn answer_engine_waiters(&mut self) {
        for w in std::mem::take(&mut self.health.engine_waiters) {
            let _ = w.send(self.report());
        }
    }

    pub(super) fn start_engine_check(&mut self) {
        let Some((link, _)) = &self.ssh.conn else { return };
        let link = link.clone();
        let socket = self.profile.remote_socket.clone();
        let profile = self.profile.clone();
        self.health.engine_check = Some(self.shared.tasks.spawn(async move {
            // Reading ~/.ssh/config is file I/O: off the runtime's workers.
            let user =
                tokio::task::spawn_blocking(move || target::resolve(&profile).map(|t| t.user).unwrap_or_default())
                    .await
                    .unwrap_or_default();
            docker::probe(&link, &socket, &user).await
        }));
    }

    pub(super) fn set_engine(&mut self, info: EngineInfo) {
        if self.health.engine.as_ref() != Some(&info) {
            let _ = self.events.send(Event::Engine {
                vm: self.name.clone(),
                engine: info.clone(),
            });
        }
        self.health.engine = Some(info);
        self.publish();
    }
}
