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
