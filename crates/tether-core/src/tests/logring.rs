//! Unit tests of `logring` (kept apart so the module file holds only shipping code).

use super::*;

fn line(vm: Option<&str>, text: &str) -> LogLine {
    LogLine {
        at_ms: 0,
        level: "info".into(),
        vm: vm.map(str::to_string),
        text: text.into(),
    }
}

#[test]
fn the_ring_keeps_the_newest_lines_and_filters_by_vm() {
    let ring = Ring::default();
    for i in 0..KEEP + 5 {
        ring.push(line(if i % 2 == 0 { Some("arm") } else { None }, &i.to_string()));
    }
    let all = ring.recent(None, usize::MAX);
    assert_eq!(all.len(), KEEP);
    assert_eq!(all.first().unwrap().text, "5");
    assert_eq!(all.last().unwrap().text, (KEEP + 4).to_string());
    let arm = ring.recent(Some("arm"), 3);
    assert_eq!(
        arm.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
        vec![(KEEP).to_string(), (KEEP + 2).to_string(), (KEEP + 4).to_string()]
    );
    assert!(ring.recent(Some("x86"), 10).is_empty());
}

#[test]
fn events_fill_the_ring_with_their_vm_apart_and_debug_left_out() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    let subscriber = tracing_subscriber::registry().with(layer().with_filter(filter()));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(vm = "ring-test-vm", attempt = 3, "reconnect scheduled");
        tracing::debug!(vm = "ring-test-vm", "a debug line");
    });
    let got = ring().recent(Some("ring-test-vm"), 10);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].text, "reconnect scheduled attempt=3");
    assert_eq!(got[0].level, "info");
}
