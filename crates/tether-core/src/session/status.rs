//! What a session publishes: its status (the watch every client reads), its state events, and
//! the small conversions both use.

use std::time::SystemTime;

use crate::api::{ConnectReport, ErrorBody, ErrorCode, Event, VmStatus};
use crate::clock::{millis, unix_ms_of as unix_ms};
use crate::config::Profile;
use crate::error::EngineError;
use crate::paths::Paths;
use crate::state::State;

use super::Actor;

impl Actor {
    pub(super) fn set_state(&mut self, next: State) {
        if next != self.state {
            // "Since" is when the VM entered this kind of state: a further reconnect attempt
            // does not restart the clock of the outage.
            if next.label() != self.state.label() {
                self.since = SystemTime::now();
            }
            self.state = next;
            let error = if matches!(next, State::Connected) {
                None
            } else {
                self.health.last_error.clone()
            };
            let (error, code, details, advice) = match error {
                Some(e) => (
                    Some(e.message),
                    Some(e.code),
                    e.details.map(|d| *d),
                    e.advice.map(|a| *a),
                ),
                None => (None, None, None, None),
            };
            let _ = self.events.send(Event::State {
                vm: self.name.clone(),
                state: next,
                error,
                code,
                details,
                advice,
            });
        }
    }

    pub(super) fn report(&self) -> Result<ConnectReport, EngineError> {
        Ok(ConnectReport {
            status: self.status.borrow().clone(),
        })
    }

    pub(super) fn publish(&self) {
        let wanted = self.local.wanted;
        let forwards = self.local.tunnels.values().map(|t| t.status(wanted)).collect();
        self.status.send_modify(|s| {
            s.host = self.profile.host.clone();
            s.via = self.ssh.via.clone();
            s.kube = self
                .profile
                .kube
                .as_ref()
                .map(|k| crate::api::KubeView::of(&self.name, k));
            s.arch = self.profile.arch;
            s.state = self.state;
            s.since_ms = unix_ms(self.since);
            s.rtt_ms = self.rtt().map(millis);
            s.forwards = forwards;
            s.reverse = self.reverse_status();
            s.last_error = self.health.last_error.as_ref().map(|e| e.message.clone());
            s.error_code = self.health.last_error.as_ref().map(|e| e.code);
            s.error_advice = self
                .health
                .last_error
                .as_ref()
                .and_then(|e| e.advice.as_deref().cloned());
            s.error_details = self
                .health
                .last_error
                .as_ref()
                .and_then(|e| e.details.as_deref().cloned());
            s.engine = self.health.engine.clone();
            s.auto_connect = self.profile.auto_connect;
            s.unforwarded = self.local.unforwarded.clone();
            s.arch_warning = self.health.arch_warning.clone();
        });
    }
}

/// A failure the session notices itself (no `EngineError` behind it).
pub(super) fn problem(code: ErrorCode, message: &str) -> ErrorBody {
    ErrorBody::new(code, message.to_string(), None)
}

/// A new session's status: disconnected, nothing forwarded.
pub(super) fn initial(name: &str, profile: &Profile, paths: &Paths) -> VmStatus {
    let socket = paths.docker_socket(name);
    VmStatus {
        name: name.to_string(),
        host: profile.host.clone(),
        via: Vec::new(),
        kube: profile.kube.as_ref().map(|k| crate::api::KubeView::of(name, k)),
        arch: profile.arch,
        state: State::Disconnected,
        since_ms: unix_ms(SystemTime::now()),
        rtt_ms: None,
        socket: socket.display().to_string(),
        docker_host: crate::endpoint::docker_host(&socket),
        forwards: Vec::new(),
        reverse: Vec::new(),
        last_error: None,
        error_code: None,
        error_details: None,
        error_advice: None,
        engine: None,
        active: false,
        auto_connect: profile.auto_connect,
        unforwarded: Vec::new(),
        arch_warning: None,
        auto_forward: false,
        docker_pool: None,
        shares: Vec::new(),
    }
}
