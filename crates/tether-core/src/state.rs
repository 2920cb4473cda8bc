//! The session state machine as a pure function, so every transition is table-tested and the
//! actor in `session` only performs the I/O each transition asks for.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Where a VM's session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum State {
    /// Not wanted: no connection, no listeners.
    Disconnected,
    /// The user asked to connect; first attempt under way.
    Connecting,
    /// Link up, probes answered.
    Connected,
    /// Link up but the last probe went unanswered; forwards still run.
    Degraded,
    /// The link was lost; retrying with backoff. Listeners stay bound.
    Reconnecting { attempt: u32 },
    /// Stopped on an error only the user can fix (host key, login); listeners closed.
    Failed,
}

impl State {
    /// Whether the user wants this VM up (listeners stay bound in these states).
    pub fn wanted(self) -> bool {
        matches!(
            self,
            State::Connecting | State::Connected | State::Degraded | State::Reconnecting { .. }
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            State::Disconnected => "disconnected",
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Degraded => "degraded",
            State::Reconnecting { .. } => "reconnecting",
            State::Failed => "failed",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Connect,
    Disconnect,
    Established,
    AttemptFailed { permanent: bool },
    ProbeOk,
    ProbeMissed,
    LinkLost,
}

/// What the actor must do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// Bind listeners (if not bound) and start a connection attempt now.
    StartAttempt,
    /// Drop the link, keep listeners, and schedule attempt number `attempt` after backoff.
    ScheduleRetry {
        attempt: u32,
    },
    /// Drop the link and close listeners.
    TearDown,
    /// The link is up: publish it and start probing.
    Publish,
}

/// The transition function.
pub fn step(state: State, input: Input) -> (State, Action) {
    use Action as A;
    use Input as I;
    use State as S;
    match (state, input) {
        (_, I::Disconnect) => (S::Disconnected, A::TearDown),
        (S::Disconnected | S::Failed, I::Connect) => (S::Connecting, A::StartAttempt),
        // Connect while reconnecting means "try now", without waiting out the backoff.
        (S::Reconnecting { attempt }, I::Connect) => (S::Reconnecting { attempt }, A::StartAttempt),
        (s, I::Connect) => (s, A::Nothing),
        (S::Connecting | S::Reconnecting { .. }, I::Established) => (S::Connected, A::Publish),
        // A first attempt that fails is reported to the user, not retried behind their back.
        (S::Connecting, I::AttemptFailed { .. }) => (S::Failed, A::TearDown),
        (S::Reconnecting { .. }, I::AttemptFailed { permanent: true }) => (S::Failed, A::TearDown),
        (S::Reconnecting { attempt }, I::AttemptFailed { permanent: false }) => {
            let next = attempt.saturating_add(1);
            (S::Reconnecting { attempt: next }, A::ScheduleRetry { attempt: next })
        }
        (S::Connected | S::Degraded, I::ProbeOk) => (S::Connected, A::Nothing),
        (S::Connected, I::ProbeMissed) => (S::Degraded, A::Nothing),
        (S::Degraded, I::ProbeMissed) | (S::Connected | S::Degraded, I::LinkLost) => {
            (S::Reconnecting { attempt: 1 }, A::ScheduleRetry { attempt: 1 })
        }
        // Stale inputs from a link or attempt that no longer matters.
        (s, _) => (s, A::Nothing),
    }
}

#[cfg(test)]
#[path = "tests/state.rs"]
mod tests;
