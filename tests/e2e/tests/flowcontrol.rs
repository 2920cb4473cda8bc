//! Flow control end to end: `docker save` through Tether into readers that are slow or stop,
//! against the lab's sshd and dockerd. A slow reader must slow only its own stream, get every
//! byte, and cost the engine no more than its window.
//!
//! The suite moves 272 MiB into the slow reader and 32 × 48 MiB through the stalled ones: well
//! past every window, so an engine that buffered instead of pacing the VM would break the same
//! memory bounds. `TETHER_E2E_FULL=1` (tests/soak.sh) moves 1.09 GiB and 32 × 287 MB.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tether_e2e::*;

const MIB: u64 = 1024 * 1024;

/// These tests measure the engine's memory and other streams' latency while each moves gigabytes,
/// so they run one at a time.
fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

enum Pace {
    /// Reads at most this many bytes per second, as `| gzip` would.
    Rate(u64),
    /// Reads this many bytes, says so, and reads nothing more until told to resume.
    StallAfter {
        bytes: u64,
        stalled: Sender<()>,
        resume: Receiver<()>,
    },
}

/// `docker save IMAGE` through `sock`, read by a thread at the given pace; yields its sha256 and
/// length.
struct Save {
    child: Child,
    reader: JoinHandle<(String, u64)>,
}

impl Save {
    fn spawn(sock: &Path, image: &str, pace: Pace) -> Self {
        let mut child = Command::new("docker")
            .args(["save", image])
            .env("DOCKER_HOST", format!("unix://{}", sock.display()))
            .env("DOCKER_CONFIG", "/var/tmp/tether-e2e-docker-config")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker save");
        let mut out = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut hash = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0u64;
            let t0 = Instant::now();
            let mut pace = Some(pace);
            loop {
                let n = out.read(&mut buf).expect("read docker save");
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                total += n as u64;
                match &pace {
                    Some(Pace::Rate(rate)) => {
                        // Pacing, not waiting: stay at or under `rate` bytes per second.
                        let due = Duration::from_secs_f64(total as f64 / *rate as f64);
                        if let Some(ahead) = due.checked_sub(t0.elapsed()) {
                            std::thread::sleep(ahead);
                        }
                    }
                    Some(Pace::StallAfter { bytes, .. }) if total >= *bytes => {
                        if let Some(Pace::StallAfter { stalled, resume, .. }) = pace.take() {
                            stalled.send(()).expect("report the stall");
                            resume.recv().expect("resume");
                        }
                    }
                    _ => {}
                }
            }
            (format!("{:x}", hash.finalize()), total)
        });
        Save { child, reader }
    }

    fn done(&self) -> bool {
        self.reader.is_finished()
    }

    fn finish(mut self) -> (String, u64) {
        let digest = self.reader.join().expect("reader thread");
        let status = self.child.wait().expect("wait docker save");
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "docker save through tether failed ({status}): {err}");
        digest
    }
}

/// sha256 and length of `docker save IMAGE` from the VM's own socket, without Tether.
fn direct_digest(image: &str) -> (String, u64) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; docker -H unix://{} save {image} | tee >(wc -c >&2) | sha256sum",
            var("LAB_A_SOCK")
        ))
        .output()
        .expect("direct docker save");
    assert!(
        out.status.success(),
        "direct docker save failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = String::from_utf8_lossy(&out.stderr)
        .trim()
        .lines()
        .last()
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(0);
    let sha = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    (sha, size)
}

/// One `docker ps` on its own stream, with how long it took.
fn timed_ps(sock: &Path) -> Duration {
    let t0 = Instant::now();
    let ps = docker_at_with_timeout(
        &format!("unix://{}", sock.display()),
        &["ps", "--format", "{{.ID}}"],
        10,
    );
    let took = t0.elapsed();
    assert_eq!(
        ps.code, 0,
        "docker ps failed beside the transfer (after {took:?}): {}",
        ps.stderr
    );
    took
}

fn connected_engine() -> (Tether, u64) {
    let t = Tether::new();
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", "a"]).ok();
    // The first API call starts the monitor's work; idle is measured after it.
    t.docker("a", &["ps"]).ok();
    let idle = t.engine_rss_kib();
    (t, idle)
}

#[test]
fn a_slow_reader_gets_a_big_save_byte_exact_in_flat_memory() {
    let _heavy = heavy();
    let (image, least) = if full_size() {
        lab_cmd(&["image", "a", &var("LAB_HUGE_IMAGE"), "1088"]);
        (var("LAB_HUGE_IMAGE"), 1024 * MIB)
    } else {
        (var("LAB_BIG_IMAGE"), 256 * MIB)
    };
    let (t, idle) = connected_engine();
    let sock = t.socket("a");

    let t0 = Instant::now();
    let save = Save::spawn(&sock, &image, Pace::Rate(30_000_000));
    let (mut worst, mut polls, mut sampled) = (Duration::ZERO, 0, idle);
    while !save.done() {
        let took = timed_ps(&sock);
        worst = worst.max(took);
        polls += 1;
        assert!(
            took < Duration::from_secs(1),
            "docker ps took {took:?} beside a slow transfer (poll {polls})"
        );
        let s = t.status("a");
        assert_eq!(s["state"], "connected", "the VM dropped during the transfer: {s}");
        sampled = sampled.max(t.engine_rss_kib());
    }
    let (sha, bytes) = save.finish();
    let took = t0.elapsed();
    let peak = t.engine_peak_rss_kib();
    let (direct, direct_bytes) = direct_digest(&image);
    eprintln!(
        "slow reader: {bytes} bytes in {took:.1?} ({:.1} MB/s); engine RSS idle {} MiB, peak {} MiB (+{} MiB); \
         {polls} docker ps beside it, slowest {worst:?}",
        bytes as f64 / took.as_secs_f64() / 1e6,
        idle / 1024,
        peak / 1024,
        peak.saturating_sub(idle) / 1024,
    );
    assert!(bytes >= least, "the image saved only {bytes} bytes");
    assert_eq!(
        (sha, bytes),
        (direct, direct_bytes),
        "docker save through tether differs from the VM's own socket"
    );
    assert!(polls >= 10, "only {polls} docker ps calls during the transfer");
    assert!(
        peak.max(sampled) <= idle + 64 * 1024,
        "engine RSS rose from {idle} KiB to {peak} KiB"
    );
}

#[test]
fn thirty_two_stalled_readers_cost_bounded_memory_and_all_finish() {
    let _heavy = heavy();
    let (t, idle) = connected_engine();
    let sock = t.socket("a");
    let image = var(if full_size() {
        "LAB_BIG_IMAGE"
    } else {
        "LAB_MEDIUM_IMAGE"
    });

    let (stalled_tx, stalled_rx) = std::sync::mpsc::channel();
    let mut resumes = Vec::new();
    let mut saves = Vec::new();
    for _ in 0..32 {
        let (resume_tx, resume_rx) = std::sync::mpsc::channel();
        resumes.push(resume_tx);
        let pace = Pace::StallAfter {
            bytes: MIB,
            stalled: stalled_tx.clone(),
            resume: resume_rx,
        };
        saves.push(Save::spawn(&sock, &image, pace));
    }
    // dockerd reads each exported layer before its first byte: 32 exports of a 287 MB image take
    // about 28 s on two idle cores (of 48 MiB, about a sixth of that), and much longer when the machine is busy, so the deadline is
    // generous. What is measured starts once every reader is stalled.
    let started = Instant::now();
    for i in 0..32 {
        stalled_rx
            .recv_timeout(Duration::from_secs(240))
            .unwrap_or_else(|_| panic!("only {i} of 32 readers got their first MiB"));
    }
    eprintln!("32 readers had their first MiB after {:.1?}", started.elapsed());

    // Every reader is stalled with most of its image still to come. For 5 s other streams must
    // answer promptly, the VM stay connected and the engine hold only the streams' windows.
    let until = Instant::now() + Duration::from_secs(5);
    let mut worst = Duration::ZERO;
    while Instant::now() < until {
        let took = timed_ps(&sock);
        worst = worst.max(took);
        assert!(
            took < Duration::from_secs(1),
            "docker ps took {took:?} beside 32 stalled streams"
        );
        let s = t.status("a");
        assert_eq!(s["state"], "connected", "the VM dropped behind stalled streams: {s}");
    }
    let stalled_rss = t.engine_rss_kib();
    assert!(saves.iter().all(|s| !s.done()), "a reader finished while stalled");

    for r in &resumes {
        r.send(()).expect("resume a reader");
    }
    let t0 = Instant::now();
    let digests: Vec<_> = saves.into_iter().map(Save::finish).collect();
    let took = t0.elapsed();
    let peak = t.engine_peak_rss_kib();
    let direct = direct_digest(&image);
    eprintln!(
        "32 stalled readers: engine RSS idle {} MiB, stalled {} MiB, peak {} MiB (+{} MiB); slowest docker ps {worst:?}; \
         resumed transfers of {} MiB took {took:.1?}",
        idle / 1024,
        stalled_rss / 1024,
        peak / 1024,
        peak.saturating_sub(idle) / 1024,
        32 * direct.1 / MIB,
    );
    for (i, d) in digests.iter().enumerate() {
        assert_eq!(d, &direct, "reader {i} got a different save");
    }
    assert!(
        peak <= idle + 128 * 1024,
        "engine RSS rose from {idle} KiB to {peak} KiB"
    );
    assert_eq!(t.status("a")["state"], "connected");
}
