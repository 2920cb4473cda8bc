//! Reading a container's health out of its status line.

use super::*;

#[test]
fn health_from_the_status_line() {
    assert_eq!(health_from_status("Up 3 minutes (healthy)").as_deref(), Some("healthy"));
    assert_eq!(
        health_from_status("Up 1 second (health: starting)").as_deref(),
        Some("starting")
    );
    assert_eq!(
        health_from_status("Up 2 hours (unhealthy)").as_deref(),
        Some("unhealthy")
    );
    assert_eq!(health_from_status("Up 2 hours"), None);
    assert_eq!(health_from_status("Exited (0) 5 seconds ago"), None);
}

#[test]
fn log_lines_split_across_chunks_and_long_lines_are_cut() {
    let mut s = LineSplitter::default();
    s.push(b"one\ntw");
    s.push(b"o\n\nthree");
    assert_eq!(s.next_line().as_deref(), Some("one"));
    assert_eq!(s.next_line().as_deref(), Some("two"));
    assert_eq!(s.next_line().as_deref(), Some(""));
    assert_eq!(s.next_line(), None);
    assert_eq!(s.finish().as_deref(), Some("three"));

    // 5 MiB without a newline, a byte at a time at the end: pieces of at most 64 KiB.
    let mut s = LineSplitter::default();
    let total = 5 << 20;
    s.push(&vec![b'x'; total - 10]);
    for _ in 0..10 {
        s.push(b"x");
    }
    let mut got = 0;
    while let Some(l) = s.next_line() {
        assert!(l.len() <= MAX_LOG_LINE, "{}", l.len());
        got += l.len();
    }
    got += s.finish().map(|l| l.len()).unwrap_or(0);
    assert_eq!(got, total);
}

#[test]
fn a_long_line_is_cut_between_characters() {
    // "é" is two bytes: with an odd prefix, a cut at exactly 64 KiB would split one.
    let mut text = vec![b'a'];
    while text.len() < MAX_LOG_LINE + 100 {
        text.extend_from_slice("é".as_bytes());
    }
    let mut s = LineSplitter::default();
    // Chunks that also split characters.
    for chunk in text.chunks(7) {
        s.push(chunk);
    }
    let mut lines = Vec::new();
    while let Some(l) = s.next_line() {
        lines.push(l);
    }
    lines.extend(s.finish());
    assert!(lines.iter().all(|l| !l.contains('\u{fffd}')), "a character was split");
    assert_eq!(lines.concat().as_bytes(), &text[..]);
}

#[test]
fn what_a_follow_holds_stays_under_one_line_however_long_the_output() {
    // 32 MiB without a newline, 1 KiB at a time: what waits never reaches one line's cap, so
    // each byte is scanned once and memory stays flat.
    let mut s = LineSplitter::default();
    let chunk = [b'y'; 1024];
    for _ in 0..32 * 1024 {
        s.push(&chunk);
        assert!(s.partial.len() < MAX_LOG_LINE, "{}", s.partial.len());
        while s.next_line().is_some() {}
        assert!(s.ready.is_empty());
    }
}

fn member(service: &str, name: &str, deps: &str) -> Member {
    Member {
        id: format!("id-{name}"),
        name: name.into(),
        service: service.into(),
        depends_on: depends_on(deps),
    }
}

fn names(members: &[Member], order: &[usize]) -> Vec<String> {
    order.iter().map(|&i| members[i].name.clone()).collect()
}

#[test]
fn compose_depends_on_names_the_services() {
    assert_eq!(
        depends_on("db:service_started:false,cache:service_healthy:true"),
        vec!["db", "cache"]
    );
    assert!(depends_on("").is_empty());
}

#[test]
fn a_project_starts_each_service_after_what_it_depends_on() {
    let members = vec![
        member("web", "p-web-1", "api:service_started:false"),
        member("api", "p-api-1", "db:service_healthy:false,cache:service_started:false"),
        member("db", "p-db-1", ""),
        member("cache", "p-cache-1", ""),
        member("api", "p-api-2", "db:service_healthy:false"),
    ];
    let order = names(&members, &start_order(&members));
    let at = |n: &str| order.iter().position(|x| x == n).unwrap();
    assert_eq!(order.len(), 5, "{order:?}");
    assert!(
        at("p-db-1") < at("p-api-1") && at("p-cache-1") < at("p-api-1"),
        "{order:?}"
    );
    assert!(at("p-db-1") < at("p-api-2"), "{order:?}");
    assert!(
        at("p-api-1") < at("p-web-1") && at("p-api-2") < at("p-web-1"),
        "{order:?}"
    );
}

#[test]
fn a_missing_dependency_or_a_cycle_still_lists_every_container_once() {
    let members = vec![
        member("a", "a-1", "b:service_started:false"),
        member("b", "b-1", "a:service_started:false"),
        member("c", "c-1", "gone:service_started:false"),
    ];
    let mut order = start_order(&members);
    assert_eq!(order.len(), 3);
    order.sort();
    assert_eq!(order, vec![0, 1, 2]);
}
