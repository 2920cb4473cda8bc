//! When to raise a desktop notification, as a pure policy over engine events.
//!
//! Once per unexpected drop (not a storm while reconnecting), once when a notified VM is back,
//! once per host-key problem, and never for a disconnect the user asked for: a user disconnect
//! goes straight to `disconnected`, never through `reconnecting`.

use std::collections::HashSet;

use tether_core::api::Event;
use tether_core::state::State;

/// A notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub title: String,
    pub body: String,
}

/// Remembers which VMs have an outstanding "dropped" notification.
#[derive(Debug, Default)]
pub struct Notifier {
    dropped: HashSet<String>,
}

impl Notifier {
    pub fn on_event(&mut self, event: &Event) -> Option<Note> {
        let Event::State {
            vm, state, error, code, ..
        } = event
        else {
            return None;
        };
        let why = error.clone().unwrap_or_default();
        match state {
            State::Reconnecting { .. } => self.dropped.insert(vm.clone()).then(|| Note {
                title: format!("{vm} disconnected"),
                body: if why.is_empty() {
                    "Reconnecting…".into()
                } else {
                    format!("{why}. Reconnecting…")
                },
            }),
            State::Connected => self.dropped.remove(vm).then(|| Note {
                title: format!("{vm} is back"),
                body: "Reconnected; the Docker socket and tunnels work again.".into(),
            }),
            // By code, never by the wording of the message.
            State::Failed if code.as_deref().is_some_and(|c| c.starts_with("host_key_")) => {
                self.dropped.remove(vm);
                Some(Note {
                    title: format!("Host key problem on {vm}"),
                    body: why,
                })
            }
            State::Failed if self.dropped.remove(vm) => Some(Note {
                title: format!("{vm} could not reconnect"),
                body: why,
            }),
            State::Disconnected => {
                self.dropped.remove(vm);
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(state: State, error: Option<&str>) -> Event {
        coded(state, error, None)
    }

    fn coded(state: State, error: Option<&str>, code: Option<&str>) -> Event {
        Event::State {
            vm: "arm".into(),
            state,
            error: error.map(str::to_string),
            code: code.map(str::to_string),
            details: None,
        }
    }

    #[test]
    fn one_note_per_drop_and_one_when_back() {
        let mut n = Notifier::default();
        let first = n
            .on_event(&ev(
                State::Reconnecting { attempt: 1 },
                Some("the SSH connection dropped"),
            ))
            .unwrap();
        assert_eq!(first.title, "arm disconnected");
        assert!(first.body.contains("the SSH connection dropped"));
        for attempt in 2..10 {
            assert_eq!(n.on_event(&ev(State::Reconnecting { attempt }, Some("refused"))), None);
        }
        assert_eq!(n.on_event(&ev(State::Connected, None)).unwrap().title, "arm is back");
        // A later clean connect says nothing.
        assert_eq!(n.on_event(&ev(State::Connected, None)), None);
    }

    #[test]
    fn user_disconnect_is_silent() {
        let mut n = Notifier::default();
        assert_eq!(n.on_event(&ev(State::Connecting, None)), None);
        assert_eq!(n.on_event(&ev(State::Connected, None)), None);
        assert_eq!(n.on_event(&ev(State::Disconnected, None)), None);
        // Disconnecting during a drop cancels the "back" note.
        n.on_event(&ev(State::Reconnecting { attempt: 1 }, None));
        assert_eq!(n.on_event(&ev(State::Disconnected, None)), None);
        assert_eq!(n.on_event(&ev(State::Connected, None)), None);
    }

    #[test]
    fn host_key_problems_always_notify() {
        let mut n = Notifier::default();
        let note = n
            .on_event(&coded(
                State::Failed,
                Some("REFUSED: the host key of h has CHANGED"),
                Some("host_key_changed"),
            ))
            .unwrap();
        assert_eq!(note.title, "Host key problem on arm");
        assert!(note.body.contains("CHANGED"));
        // A key of another type is a host-key problem too, whatever its message says.
        let other = n.on_event(&coded(State::Failed, Some("REFUSED: …"), Some("host_key_other_type")));
        assert_eq!(other.unwrap().title, "Host key problem on arm");
        // Words alone decide nothing.
        assert_eq!(
            n.on_event(&coded(State::Failed, Some("the host key"), Some("auth_failed"))),
            None
        );
        // A first connect that fails for another reason is the CLI's or UI's to report, not a note.
        assert_eq!(n.on_event(&ev(State::Failed, Some("connection refused"))), None);
    }
}
