//! The churn soak: short Docker API connections, tunnel adds and removes, link cuts, and
//! containers started and stopped with automatic forwarding on, all against one engine; then
//! the engine's memory, open files and live tasks must be back where they started.
//!
//! `tests/soak.sh` runs it at full size (minutes); the end-to-end suite runs a one-minute size.

use std::time::{Duration, Instant};

use crate::*;

/// How much of each kind of churn.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub api: usize,
    pub tunnels: usize,
    pub cuts: usize,
    pub containers: usize,
}

impl Size {
    pub const FULL: Size = Size {
        api: 100_000,
        tunnels: 1_000,
        cuts: 30,
        containers: 200,
    };
    pub const MINUTE: Size = Size {
        api: 30_000,
        tunnels: 300,
        cuts: 4,
        containers: 40,
    };
}

/// The engine's resources at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub rss_kib: u64,
    pub fds: usize,
    pub tasks: u64,
    /// Forwarded streams open (the monitor's Docker event stream, when it is up).
    pub streams: u64,
}

/// One request on the control socket, answered.
fn control(t: &Tether, req: &serde_json::Value) -> serde_json::Value {
    let v = t.control(req);
    assert_eq!(v["ok"], true, "{req} failed: {v}");
    v["result"].clone()
}

pub fn sample(t: &Tether) -> Sample {
    let pid = t.engine_pid();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let ping = control(t, &serde_json::json!({"op": "ping"}));
    Sample {
        rss_kib: t.engine_rss_kib(),
        fds,
        tasks: ping["tasks"].as_u64().expect("tasks in ping"),
        streams: ping["streams"].as_u64().expect("streams in ping"),
    }
}

/// What a run did and measured.
#[derive(Debug)]
pub struct Report {
    pub start: Sample,
    pub end: Sample,
    pub took: Duration,
}

fn api_burst(sock: &std::path::Path, n: usize) {
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let sock = sock.to_path_buf();
            let share = n / 8 + usize::from(i < n % 8);
            std::thread::spawn(move || {
                for _ in 0..share {
                    let (status, body) = http_unix(&sock, "/_ping").expect("ping through tether");
                    assert!(status.contains("200") && body == b"OK", "{status}");
                }
            })
        })
        .collect();
    for th in threads {
        th.join().expect("api thread");
    }
}

fn tunnel_churn(t: &Tether, vm: &str, n: usize, port: u16) {
    for _ in 0..n {
        control(
            t,
            &serde_json::json!({"op": "tunnel_add", "name": vm, "maps": [{"local": port, "remote": 8000}]}),
        );
        control(
            t,
            &serde_json::json!({"op": "tunnel_remove", "name": vm, "ports": [port]}),
        );
    }
}

fn container_churn(vm: &TestVm, n: usize) {
    let host = format!("unix://{}", vm.docker_sock());
    for i in 0..n {
        let name = format!("soak{i}");
        let port = free_port();
        docker_at(
            &host,
            &[
                "run",
                "-d",
                "--name",
                &name,
                "-p",
                &format!("{port}:80"),
                &var("LAB_IMAGE"),
                "httpd",
                "-f",
                "-p",
                "80",
            ],
        )
        .ok();
        docker_at(&host, &["rm", "-f", &name]).ok();
    }
}

fn cut(t: &Tether, vm: &TestVm) {
    lab_cmd(&["link", &vm.name, "down"]);
    t.wait_state(&vm.name, "reconnecting", Duration::from_secs(20));
    lab_cmd(&["link", &vm.name, "up"]);
    t.wait_state(&vm.name, "connected", Duration::from_secs(40));
}

/// Runs the soak on a VM of its own (`idx` picks its address) and checks the engine ends as it
/// started: RSS within 10 MiB, no more open files, no more live tasks.
pub fn run(size: Size, name: &str, idx: u8) -> Report {
    let vm = TestVm::new(name, idx, true);
    let host = format!("unix://{}", vm.docker_sock());
    let old = docker_at(&host, &["ps", "-aq"]).stdout;
    for id in old.split_whitespace() {
        docker_at(&host, &["rm", "-f", id]);
    }
    lab_cmd(&["web", &vm.name, "8000"]);
    let t = Tether::new();
    t.add_vm(&vm.name, &vm.ip, 22, &vm.docker_sock()).ok();
    t.run(&["tunnel", &vm.name, "--auto", "on"]).ok();
    t.run(&["connect", &vm.name]).ok();
    let sock = t.socket(&vm.name);
    let port = free_port();

    // One round of everything first, so what is made once and kept (buffers, the monitor's
    // client, the reconnect path) is in the baseline.
    api_burst(&sock, 200);
    tunnel_churn(&t, &vm.name, 5, port);
    container_churn(&vm, 1);
    cut(&t, &vm);
    let start = settle(&t, &vm.name, None);
    eprintln!("soak start: {start:?}");

    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| api_burst(&sock, size.api));
        s.spawn(|| tunnel_churn(&t, &vm.name, size.tunnels, port));
        s.spawn(|| container_churn(&vm, size.containers));
    });
    for _ in 0..size.cuts {
        cut(&t, &vm);
    }
    let took = t0.elapsed();
    let end = settle(&t, &vm.name, Some(start));
    eprintln!(
        "soak of {} API connections, {} tunnel adds and removes, {} link cuts, {} containers: {took:.1?}\n  \
         start: RSS {} KiB, {} fds, {} tasks\n  end:   RSS {} KiB, {} fds, {} tasks",
        size.api,
        size.tunnels,
        size.cuts,
        size.containers,
        start.rss_kib,
        start.fds,
        start.tasks,
        end.rss_kib,
        end.fds,
        end.tasks
    );
    assert!(
        end.fds <= start.fds,
        "open files grew from {} to {}",
        start.fds,
        end.fds
    );
    assert!(
        end.tasks <= start.tasks,
        "live tasks grew from {} to {}",
        start.tasks,
        end.tasks
    );
    assert!(
        end.rss_kib <= start.rss_kib + 10 * 1024,
        "RSS grew from {} KiB to {} KiB",
        start.rss_kib,
        end.rss_kib
    );
    Report { start, end, took }
}

/// Waits until the engine is idle: the automatic forwards of removed containers gone, streams
/// closed, and (given a baseline) files and tasks back to it or the deadline passed.
///
/// The baseline itself is the engine at rest after a link cut: connected again, the monitor's
/// Docker event stream open again, and the task count the same over a second. Taken any earlier
/// (the event stream still waiting for the link) it would count one stream's tasks short, and
/// the end, at rest, would look like a leak.
fn settle(t: &Tether, vm: &str, baseline: Option<Sample>) -> Sample {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last: Option<Sample> = None;
    loop {
        let s = sample(t);
        let st = t.status(vm);
        let idle = st["forwards"]
            .as_array()
            .is_none_or(|f| f.iter().all(|f| f["auto"] != true));
        let at_rest = match baseline {
            Some(b) => s.fds <= b.fds && s.tasks <= b.tasks,
            None => {
                st["state"] == "connected"
                    && s.streams >= 1
                    && last.is_some_and(|l| l.tasks == s.tasks && l.streams == s.streams)
            }
        };
        if (idle && at_rest) || Instant::now() > deadline {
            return s;
        }
        last = Some(s);
        std::thread::sleep(Duration::from_millis(if baseline.is_some() { 200 } else { 1000 }));
    }
}
