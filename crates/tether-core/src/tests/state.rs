//! Unit tests of `state` (kept apart so the module file holds only shipping code).

use super::*;
use Action as A;
use Input as I;
use State as S;

#[test]
fn transition_table() {
    let r1 = S::Reconnecting { attempt: 1 };
    let r2 = S::Reconnecting { attempt: 2 };
    let table = [
        (S::Disconnected, I::Connect, S::Connecting, A::StartAttempt),
        (S::Failed, I::Connect, S::Connecting, A::StartAttempt),
        (S::Connected, I::Connect, S::Connected, A::Nothing),
        (r2, I::Connect, r2, A::StartAttempt),
        (S::Connecting, I::Established, S::Connected, A::Publish),
        (
            S::Connecting,
            I::AttemptFailed { permanent: false },
            S::Failed,
            A::TearDown,
        ),
        (
            S::Connecting,
            I::AttemptFailed { permanent: true },
            S::Failed,
            A::TearDown,
        ),
        (S::Connected, I::ProbeMissed, S::Degraded, A::Nothing),
        (S::Degraded, I::ProbeOk, S::Connected, A::Nothing),
        (S::Degraded, I::ProbeMissed, r1, A::ScheduleRetry { attempt: 1 }),
        (S::Connected, I::LinkLost, r1, A::ScheduleRetry { attempt: 1 }),
        (S::Degraded, I::LinkLost, r1, A::ScheduleRetry { attempt: 1 }),
        (
            r1,
            I::AttemptFailed { permanent: false },
            r2,
            A::ScheduleRetry { attempt: 2 },
        ),
        (r2, I::AttemptFailed { permanent: true }, S::Failed, A::TearDown),
        (r2, I::Established, S::Connected, A::Publish),
        (S::Connected, I::Disconnect, S::Disconnected, A::TearDown),
        (r2, I::Disconnect, S::Disconnected, A::TearDown),
        (S::Disconnected, I::LinkLost, S::Disconnected, A::Nothing),
        (S::Disconnected, I::Established, S::Disconnected, A::Nothing),
        (S::Failed, I::ProbeMissed, S::Failed, A::Nothing),
        (r1, I::ProbeOk, r1, A::Nothing),
    ];
    for (from, input, to, action) in table {
        assert_eq!(step(from, input), (to, action), "{from:?} + {input:?}");
    }
}

#[test]
fn listeners_stay_while_wanted() {
    assert!(S::Reconnecting { attempt: 9 }.wanted());
    assert!(S::Degraded.wanted());
    assert!(!S::Failed.wanted());
    assert!(!S::Disconnected.wanted());
}
