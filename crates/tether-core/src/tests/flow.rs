//! Unit tests of `flow`: the window invariant under a simulated VM and reader, growth, shrink and
//! the shared budget.

use super::*;

const MIB: usize = 1024 * 1024;

/// A VM that sends whatever window it holds, in packets of up to 32 KiB.
struct Peer {
    window: u64,
}

impl Peer {
    fn send(&mut self, credit: &mut Credit, most: u64) -> u64 {
        let n = self.window.min(most).min(32 * 1024);
        self.window -= n;
        credit.received(n as usize);
        n
    }

    /// Sends until its window is spent: what arrived, for the reader to take.
    fn spend(&mut self, credit: &mut Credit) -> u64 {
        let mut got = 0;
        while self.window > 0 {
            got += self.send(credit, u64::MAX);
        }
        got
    }

    /// One round trip of a long link: the VM spends its whole window and the reader takes it.
    fn round(&mut self, credit: &mut Credit) {
        let got = self.spend(credit);
        self.window += u64::from(credit.consumed(got as usize));
    }
}

fn started(budget: &Arc<Budget>) -> (Credit, Peer) {
    let mut c = Credit::new(budget.clone());
    let grant = c.start();
    (
        c,
        Peer {
            window: u64::from(FLOOR) + u64::from(grant),
        },
    )
}

#[test]
fn a_stream_starts_at_start_reserving_only_above_the_floor() {
    let budget = Budget::new(BUDGET);
    let (c, peer) = started(&budget);
    assert_eq!(c.size(), u64::from(START));
    assert_eq!(peer.window, u64::from(START));
    assert_eq!(budget.in_use(), (START - FLOOR) as usize);
    drop(c);
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn a_reader_that_stops_holds_one_window_and_grants_nothing() {
    let budget = Budget::new(BUDGET);
    let (mut c, mut peer) = started(&budget);
    let backlog = peer.spend(&mut c);
    assert_eq!(backlog, u64::from(START));
    // Nothing consumed: nothing to grant however long it waits.
    assert_eq!(c.consumed(0), 0);
    assert_eq!(c.outstanding(), u64::from(START));
}

#[test]
fn a_slow_reader_keeps_memory_within_the_window_and_gets_everything() {
    let budget = Budget::new(BUDGET);
    let (mut c, mut peer) = started(&budget);
    let total = 300 * MIB as u64;
    let (mut sent, mut consumed, mut backlog, mut peak) = (0u64, 0u64, 0u64, 0u64);
    let mut round = 0u64;
    while consumed < total {
        round += 1;
        // The link delivers 4× what the reader takes each round.
        for _ in 0..4 {
            let n = peer.send(&mut c, total - sent);
            sent += n;
            backlog += n;
        }
        peak = peak.max(backlog);
        let take = backlog.min(16 * 1024 + (round % 3) * 8 * 1024);
        backlog -= take;
        consumed += take;
        peer.window += u64::from(c.consumed(take as usize));
        assert!(
            c.outstanding() <= u64::from(MAX),
            "outstanding {} at round {round}",
            c.outstanding()
        );
        assert!(budget.in_use() <= BUDGET);
    }
    assert_eq!(sent, total);
    assert!(peak <= u64::from(MAX), "peak backlog {peak}");
    // The reader was the bottleneck all along, so the window ends where it started.
    assert_eq!(c.size(), u64::from(START));
}

#[test]
fn a_fast_reader_on_a_window_limited_link_grows_to_max() {
    let budget = Budget::new(BUDGET);
    let (mut c, mut peer) = started(&budget);
    for _ in 0..64 {
        peer.round(&mut c);
    }
    assert_eq!(c.size(), u64::from(MAX));
    assert_eq!(budget.in_use(), (MAX - FLOOR) as usize);
}

#[test]
fn growth_stops_at_the_budget_and_the_budget_comes_back() {
    let budget = Budget::new(6 * MIB);
    let (mut a, mut pa) = started(&budget);
    let (mut b, mut pb) = started(&budget);
    for _ in 0..64 {
        pa.round(&mut a);
        pb.round(&mut b);
    }
    assert_eq!(budget.in_use(), 6 * MIB, "both streams grew into the whole budget");
    assert!(a.size() + b.size() <= (6 * MIB) as u64 + 2 * u64::from(FLOOR));
    // A third stream starts at the floor when nothing is left, and still works.
    let (mut c, mut pc) = started(&budget);
    assert_eq!(c.size(), u64::from(FLOOR));
    let got = pc.spend(&mut c);
    assert!(
        c.consumed(got as usize) > 0,
        "a floor-sized stream is still granted what it consumed"
    );
    drop(a);
    drop(b);
    drop(c);
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn a_reader_that_falls_behind_shrinks_its_window_back() {
    let budget = Budget::new(BUDGET);
    let (mut c, mut peer) = started(&budget);
    for _ in 0..64 {
        peer.round(&mut c);
    }
    assert_eq!(c.size(), u64::from(MAX));
    // Now the reader takes 64 KiB per 1 MiB the VM could send.
    let mut backlog = 0;
    for _ in 0..4096 {
        while peer.window > 0 {
            backlog += peer.send(&mut c, u64::MAX);
        }
        let take = backlog.min(64 * 1024);
        backlog -= take;
        peer.window += u64::from(c.consumed(take as usize));
    }
    assert_eq!(c.size(), u64::from(START));
    assert_eq!(
        budget.in_use(),
        (START - FLOOR) as usize,
        "the surplus went back to the budget"
    );
}

#[test]
fn an_idle_stream_goes_back_to_start_and_returns_its_budget_as_it_is_consumed() {
    let budget = Budget::new(BUDGET);
    let (mut c, mut peer) = started(&budget);
    for _ in 0..64 {
        peer.round(&mut c);
    }
    assert_eq!(c.size(), u64::from(MAX));
    // Quiet: the VM still holds a full window it may use, so that much stays reserved.
    assert!(c.idle());
    assert_eq!(c.size(), u64::from(START));
    assert_eq!(budget.in_use(), (MAX - FLOOR) as usize);
    assert!(!c.idle(), "a stream at START has nothing to shrink");
    // It sends that window after all; once consumed, the window restarts from START (here it
    // doubles once, as the reader kept up) and the rest of the reservation is back.
    let got = peer.spend(&mut c);
    assert_eq!(got, u64::from(MAX));
    peer.window += u64::from(c.consumed(got as usize));
    assert_eq!(peer.window, 2 * u64::from(START));
    assert_eq!(budget.in_use(), (2 * START - FLOOR) as usize);
    // And a busy link grows it again.
    for _ in 0..64 {
        peer.round(&mut c);
    }
    assert_eq!(c.size(), u64::from(MAX));
}

/// A long link simulated a millisecond at a time: data and grants each take `rtt / 2` to cross,
/// the VM sends at most `per_ms` bytes a millisecond, the reader takes what arrives at once.
/// Returns the stream and what arrived in the last second.
fn long_link(rtt_ms: u64, per_ms: u64, millis: u64, measured: bool) -> (Credit, u64) {
    use std::collections::VecDeque;
    use std::time::{Duration, Instant};
    let budget = Budget::new(BUDGET);
    let (mut c, mut peer) = started(&budget);
    let half = rtt_ms / 2;
    let base = Instant::now();
    let mut data: VecDeque<(u64, u64)> = VecDeque::new();
    let mut grants: VecDeque<(u64, u64)> = VecDeque::new();
    let mut last_second = 0;
    for t in 0..millis {
        while grants.front().is_some_and(|g| g.0 <= t) {
            peer.window += grants.pop_front().map_or(0, |g| g.1);
        }
        let n = peer.window.min(per_ms);
        if n > 0 {
            peer.window -= n;
            data.push_back((t + half, n));
        }
        while data.front().is_some_and(|d| d.0 <= t) {
            let n = data.pop_front().map_or(0, |d| d.1);
            c.received(n as usize);
            let rtt = if measured {
                Duration::from_millis(rtt_ms)
            } else {
                Duration::ZERO
            };
            let grant = c.consumed_at(n as usize, base + Duration::from_millis(t), rtt);
            if grant > 0 {
                grants.push_back((t + half, u64::from(grant)));
            }
            if t + 1000 >= millis {
                last_second += n;
            }
        }
    }
    (c, last_second)
}

#[test]
fn on_a_long_fat_link_the_window_grows_with_bandwidth_times_rtt() {
    // 100 ms, a link that could carry 1 GB/s: the window doubles each round trip up to MAX, and
    // the stream then carries most of MAX per round trip (grants go out a quarter window at a
    // time, so the VM holds a little less than the whole window on average).
    let (c, bytes) = long_link(100, 1_000_000, 3000, true);
    assert_eq!(c.size(), u64::from(MAX));
    let bound = u64::from(MAX) * 10;
    assert!(
        bytes >= bound * 3 / 4,
        "{bytes} bytes in the last second, bound {bound}"
    );

    // Without a measured round trip, bytes on the way look like window the VM still holds: the
    // stream would stay at START and carry a tenth as much.
    let (c, bytes) = long_link(100, 1_000_000, 3000, false);
    assert_eq!(c.size(), u64::from(START));
    assert!(bytes <= u64::from(START) * 11);
}

#[test]
fn a_window_grows_only_as_far_as_the_link_needs() {
    // 5 MB/s at 100 ms: half a megabyte in flight fills the link; the start window already does.
    let (c, bytes) = long_link(100, 5_000, 3000, true);
    assert_eq!(c.size(), u64::from(START));
    assert!(bytes >= 4_900_000, "{bytes} bytes in the last second");
    // 20 MB/s at 100 ms: 2 MB in flight fills it. The start window is nearly all taken each
    // round trip, so the stream probes one step (to four times START) and stops there, far
    // below MAX.
    let (c, bytes) = long_link(100, 20_000, 3000, true);
    assert!(c.size() <= 4 * u64::from(START), "window {}", c.size());
    assert!(bytes >= 19_000_000, "{bytes} bytes in the last second");
}
