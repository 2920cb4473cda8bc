//! When to raise a desktop notification, as a pure policy over engine events.
//!
//! Once per unexpected drop (not a storm while reconnecting), once when a notified VM is back,
//! once per host-key problem, and never for a disconnect the user asked for: a user disconnect
//! goes straight to `disconnected`, never through `reconnecting`.

use std::collections::HashSet;

use tether_core::api::{ErrorCode, Event};
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
    /// Laptop folders containers mounted without a share, by VM: offered in the menu.
    suggested: std::collections::BTreeSet<(String, String)>,
}

impl Notifier {
    pub fn on_event(&mut self, event: &Event) -> Option<Note> {
        match event {
            Event::Conflict { vm, conflict } => {
                return Some(Note {
                    title: format!("Both sides changed a file ({vm})"),
                    body: format!(
                        "{} changed here and on {vm}. Nothing was lost: this laptop's version kept the name, {vm}'s is beside it as {}.",
                        conflict.path, conflict.copy
                    ),
                });
            }
            Event::ShareSuggested { vm, path } => {
                return self.suggested.insert((vm.clone(), path.clone())).then(|| Note {
                    title: format!("{path} is not shared with {vm}"),
                    body: format!(
                        "A container mounts {path}, so it gets {vm}'s own folder of that name. To give it this laptop's folder, choose \"Share {path} with {vm}\" in Tether's menu."
                    ),
                });
            }
            _ => {}
        }
        let Event::State {
            vm,
            state,
            error,
            code,
            details,
            ..
        } = event
        else {
            return None;
        };
        // The words come from the code and its facts (never from the engine's message, which is
        // the CLI's); a code from a newer engine is shown by its message.
        let advice = code.and_then(|c| tether_core::advice::advise(c, details.as_ref()));
        let sentence = advice
            .as_ref()
            .map(|a| a.sentence.clone())
            .or_else(|| error.clone())
            .unwrap_or_default();
        match state {
            State::Reconnecting { .. } => self.dropped.insert(vm.clone()).then(|| Note {
                title: format!("{vm} disconnected"),
                body: match &advice {
                    Some(a) => format!("{}. Tether is reconnecting…", a.title),
                    None => "Tether is reconnecting…".into(),
                },
            }),
            State::Connected => self.dropped.remove(vm).then(|| Note {
                title: format!("{vm} is back"),
                body: "Reconnected; docker and the forwarded ports work again.".into(),
            }),
            // By code, never by the wording of the message.
            State::Failed if code.is_some_and(ErrorCode::is_host_key) => {
                self.dropped.remove(vm);
                Some(Note {
                    title: match &advice {
                        Some(a) => format!("{vm}: {}", a.title),
                        None => format!("Host key problem on {vm}"),
                    },
                    body: format!("{sentence} Open Tether to review it."),
                })
            }
            State::Failed if self.dropped.remove(vm) => Some(Note {
                title: format!("{vm} could not reconnect"),
                body: sentence,
            }),
            State::Disconnected => {
                self.dropped.remove(vm);
                None
            }
            _ => None,
        }
    }
}

impl Notifier {
    /// The folders offered for sharing, as (VM, path).
    pub fn suggestions(&self) -> Vec<(String, String)> {
        self.suggested.iter().cloned().collect()
    }

    /// A suggestion taken (or its share made some other way).
    pub fn forget_suggestion(&mut self, vm: &str, path: &str) {
        self.suggested.remove(&(vm.to_string(), path.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(state: State, error: Option<&str>) -> Event {
        coded(state, error, None)
    }

    fn coded(state: State, error: Option<&str>, code: Option<ErrorCode>) -> Event {
        Event::State {
            vm: "arm".into(),
            state,
            error: error.map(str::to_string),
            code,
            details: None,
            advice: None,
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
        assert_eq!(first.body, "Tether is reconnecting…");
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
    fn host_key_problems_always_notify_in_plain_words() {
        let mut n = Notifier::default();
        let note = n
            .on_event(&coded(
                State::Failed,
                Some("REFUSED: the host key of h has CHANGED; run `tether vm host-key arm --replace`"),
                Some(ErrorCode::HostKeyChanged),
            ))
            .unwrap();
        assert_eq!(note.title, "arm: The VM's identity changed");
        // The advice, not the CLI's message.
        assert!(note.body.contains("presents a different key"), "{note:?}");
        assert!(
            !note.body.contains("--replace") && !note.body.contains("REFUSED"),
            "{note:?}"
        );
        // A key of another type is a host-key problem too, whatever its message says.
        let other = n.on_event(&coded(
            State::Failed,
            Some("REFUSED: …"),
            Some(ErrorCode::HostKeyOtherType),
        ));
        assert_eq!(other.unwrap().title, "arm: The VM's identity changed");
        // Words alone decide nothing.
        assert_eq!(
            n.on_event(&coded(State::Failed, Some("the host key"), Some(ErrorCode::AuthFailed))),
            None
        );
        // A first connect that fails for another reason is the CLI's or UI's to report, not a note.
        assert_eq!(n.on_event(&ev(State::Failed, Some("connection refused"))), None);
    }

    #[test]
    fn a_drop_says_why_in_plain_words_and_a_newer_code_by_its_message() {
        let mut n = Notifier::default();
        let note = n
            .on_event(&coded(
                State::Reconnecting { attempt: 1 },
                Some("the VM did not answer a liveness probe within 5 s"),
                Some(ErrorCode::Unreachable),
            ))
            .unwrap();
        assert_eq!(note.body, "The VM does not answer. Tether is reconnecting…");
        let failed = n
            .on_event(&coded(
                State::Failed,
                Some("a newer engine's words"),
                Some(ErrorCode::Unknown),
            ))
            .unwrap();
        assert_eq!(failed.body, "a newer engine's words");
    }

    #[test]
    fn a_conflict_is_told_each_time_and_an_unshared_mount_once() {
        let mut n = Notifier::default();
        let conflict = Event::Conflict {
            vm: "arm".into(),
            conflict: tether_core::api::ConflictView {
                path: "/home/me/app/notes.txt".into(),
                copy: "/home/me/app/notes.conflict-vm-1.txt".into(),
                at_ms: 0,
            },
        };
        let note = n.on_event(&conflict).expect("a note");
        assert!(note.body.contains("notes.conflict-vm-1.txt"), "{note:?}");
        assert!(note.body.contains("Nothing was lost"), "{note:?}");
        assert!(n.on_event(&conflict).is_some());
        let suggest = Event::ShareSuggested {
            vm: "arm".into(),
            path: "/srv/data".into(),
        };
        assert!(
            n.on_event(&suggest)
                .expect("a note")
                .body
                .contains("Share /srv/data with arm")
        );
        assert_eq!(n.on_event(&suggest), None, "once per folder");
        assert_eq!(n.suggestions(), vec![("arm".to_string(), "/srv/data".to_string())]);
        n.forget_suggestion("arm", "/srv/data");
        assert!(n.suggestions().is_empty());
    }
}
