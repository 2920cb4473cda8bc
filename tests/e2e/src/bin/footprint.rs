//! The tray app's idle footprint, side by side with an empty Tauri 2 tray app built from the same
//! Tauri (src-tauri/examples/empty_tray.rs), on one Xvfb desktop in one run:
//!
//! - RSS and PSS of every process of each app, with the window closed;
//! - CPU over a window of seconds (default 60) with the window closed and one VM connected;
//! - the window's processes (its own and WebKit's) while it is open, and that they all exit when
//!   it is closed;
//! - the engine's CPU over the same window with 20 running containers whose ports it forwards;
//! - what costs what: the added PSS by kind of memory, and the app's resident code by crate.
//!
//! Usage: footprint [SECONDS]. Needs the lab (tests/footprint.sh starts it) and release builds.

// Test code fails loudly by design: an unwrap or a panic is a failed run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use tether_e2e::desktop::Desktop;
use tether_e2e::procs::{self, Proc};
use tether_e2e::*;

fn release(rel: &str) -> String {
    let p = repo().join("target/release").join(rel);
    assert!(p.exists(), "{} missing: run tests/footprint.sh", p.display());
    p.display().to_string()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Memory of a tree now, and CPU over `secs` seconds.
struct Sample {
    procs: Vec<Proc>,
    cpu_percent: f64,
}

fn sample(pid: u32, secs: u64) -> Sample {
    let ticks = |t: &[Proc]| t.iter().map(|p| p.ticks).sum::<u64>();
    let before = ticks(&procs::tree(pid));
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let after = procs::tree(pid);
    let cpu = (ticks(&after).saturating_sub(before)) as f64 / procs::ticks_per_second() as f64;
    Sample {
        cpu_percent: 100.0 * cpu / start.elapsed().as_secs_f64(),
        procs: after,
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn table(title: &str, ps: &[Proc]) -> (u64, u64) {
    println!("\n{title}");
    println!("  {:<8} {:<18} {:>9} {:>9}", "pid", "process", "RSS MB", "PSS MB");
    for p in ps {
        println!(
            "  {:<8} {:<18} {:>9.1} {:>9.1}",
            p.pid,
            p.name,
            mb(p.rss_kib),
            mb(p.pss_kib)
        );
    }
    let (rss, pss) = (ps.iter().map(|p| p.rss_kib).sum(), ps.iter().map(|p| p.pss_kib).sum());
    println!("  {:<8} {:<18} {:>9.1} {:>9.1}", "", "total", mb(rss), mb(pss));
    (rss, pss)
}

fn settle() {
    // Startup work (loading the tray icon, the first probes) is not idle: let it pass.
    std::thread::sleep(Duration::from_secs(5));
}

fn main() {
    let secs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(60);
    let mut t = Tether::new();
    // One auto-connect VM, which the app connects on launch.
    t.run(&[
        "vm",
        "add",
        "a",
        "--host",
        &var("LAB_A_IP"),
        "--user",
        &var("LAB_USER"),
        "--identity",
        &var("LAB_KEY"),
        "--remote-socket",
        &var("LAB_A_SOCK"),
        "--accept-new",
        "--auto-connect",
    ])
    .ok();
    t.stop_daemon();

    let desk = Desktop::plain(t.dir.path());
    let log: PathBuf = t.log_path();
    let env = t.app_env();
    println!("idle footprint, window closed, CPU over {secs} s (2 cores; 100% = one core)");

    let base = Killed(desk.launch(&release("examples/empty_tray"), &[], &env, Path::new(&log)));
    settle();
    let b = sample(base.0.id(), secs);
    let (b_rss, b_pss) = table("empty Tauri 2 tray app (baseline)", &b.procs);
    let b_parts = procs::pss_parts(base.0.id());
    drop(base);

    let app = Killed(desk.launch(&release("tether-app"), &["--hidden"], &env, &log));
    let pid = app.0.id();
    t.wait_state("a", "connected", Duration::from_secs(30));
    settle();
    let a = sample(pid, secs);
    let (a_rss, a_pss) = table("tether-app --hidden, one VM connected", &a.procs);
    let a_parts = procs::pss_parts(pid);
    let a_crates = code_by_crate(pid);

    // Open the window (a second launch asks the running app), then close it.
    let mut again = desk.launch(&release("tether-app"), &[], &env, &log);
    wait_for("the second launch to exit", Duration::from_secs(15), || {
        again.try_wait().ok().flatten()
    });
    let win = wait_for("the window", Duration::from_secs(20), || {
        desk.windows("Tether").first().copied()
    });
    wait_for("WebKit's web process", Duration::from_secs(20), || {
        procs::webkit(pid)
            .iter()
            .any(|p| p.name.starts_with("WebKitWebProc"))
            .then_some(())
    });
    settle();
    let (o_rss, o_pss) = table("window open", &procs::tree(pid));
    desk.close_window(win);
    let closed_at = Instant::now();
    wait_for("the window to close", Duration::from_secs(10), || {
        desk.windows("Tether").is_empty().then_some(())
    });
    wait_for("WebKit to exit", Duration::from_secs(30), || {
        procs::webkit(pid).is_empty().then_some(())
    });
    wait_for("the window process to exit", Duration::from_secs(30), || {
        (procs::tree(pid).len() == 1).then_some(())
    });
    let gone = closed_at.elapsed();
    settle();
    let (c_rss, c_pss) = table("window closed again", &procs::tree(pid));

    drop(app);
    let busy = containers_cpu(secs);

    println!("\nsummary");
    println!(
        "  baseline idle: {:.1} MB RSS, {:.1} MB PSS, CPU {:.3}%",
        mb(b_rss),
        mb(b_pss),
        b.cpu_percent
    );
    println!(
        "  tether idle:   {:.1} MB RSS, {:.1} MB PSS, CPU {:.3}%",
        mb(a_rss),
        mb(a_pss),
        a.cpu_percent
    );
    println!(
        "  tether adds:   {:+.1} MB RSS, {:+.1} MB PSS (target ≤ 10 MB PSS), CPU {:+.3}% (target ≤ 0.1%)",
        mb(a_rss) - mb(b_rss),
        mb(a_pss) - mb(b_pss),
        a.cpu_percent - b.cpu_percent
    );
    println!(
        "  window open:   {:+.1} MB RSS, {:+.1} MB PSS over idle",
        mb(o_rss) - mb(a_rss),
        mb(o_pss) - mb(a_pss)
    );
    println!(
        "  after close:   WebKit gone in {:.2} s; {:+.1} MB RSS, {:+.1} MB PSS over idle",
        gone.as_secs_f64(),
        mb(c_rss) - mb(a_rss),
        mb(c_pss) - mb(a_pss)
    );
    println!("  engine with 20 running containers, ports forwarded, window closed: CPU {busy:.3}%");

    // What costs what: the PSS that tether adds, by kind of memory, and whose code it is.
    println!("\nwhat tether adds, PSS by kind (MB)       baseline    tether     added");
    let rows = [
        ("own executable, code", b_parts.exe_code, a_parts.exe_code),
        ("own executable, data", b_parts.exe_data, a_parts.exe_data),
        ("shared libraries", b_parts.libraries, a_parts.libraries),
        ("heap", b_parts.heap, a_parts.heap),
        ("other anonymous (stacks, mmap)", b_parts.anon, a_parts.anon),
    ];
    for (what, b, a) in rows {
        println!("  {what:<36} {:>9.1} {:>9.1} {:>+9.1}", mb(b), mb(a), mb(a) - mb(b));
    }
    println!("\n{a_crates}");
}

/// The app's resident code by crate, from `tests/text_by_crate.py` (reads /proc/PID/pagemap).
fn code_by_crate(pid: u32) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../text_by_crate.py");
    match std::process::Command::new("python3")
        .arg(&script)
        .arg(pid.to_string())
        .arg("15")
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => format!(
            "(code by crate unavailable: {})",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("(code by crate unavailable: {e})"),
    }
}

/// CPU of `tether daemon` over `secs` with 20 running containers on its VM, all forwarded.
fn containers_cpu(secs: u64) -> f64 {
    let vm = TestVm::new("fp", 55, true);
    let sock = format!("unix://{}", vm.docker_sock());
    let names: Vec<String> = (0..20).map(|i| format!("fp{i}")).collect();
    let mut rm = vec!["rm", "-f"];
    rm.extend(names.iter().map(String::as_str));
    docker_at(&sock, &rm);
    for n in &names {
        let port = free_port().to_string();
        docker_at(
            &sock,
            &[
                "run",
                "-d",
                "--name",
                n,
                "-p",
                &format!("{port}:80"),
                &var("LAB_IMAGE"),
                "httpd",
                "-f",
                "-p",
                "80",
                "-h",
                "/www",
            ],
        )
        .ok();
    }
    let t = Tether::new();
    t.add_vm("fp", &vm.ip, 22, &vm.docker_sock()).ok();
    t.run(&["tunnel", "fp", "--auto", "on"]).ok();
    t.run(&["connect", "fp"]).ok();
    wait_for("20 forwards", Duration::from_secs(30), || {
        (t.status("fp")["forwards"].as_array().map(|a| a.len()) == Some(20)).then_some(())
    });
    settle();
    let pid: u32 = std::fs::read_to_string(t.home().join("run/engine.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .expect("engine pid");
    let s = sample(pid, secs);
    println!(
        "\ntether daemon, 20 running containers forwarded: RSS {:.1} MB, CPU {:.3}%",
        mb(s.procs.iter().map(|p| p.rss_kib).sum()),
        s.cpu_percent
    );
    docker_at(&sock, &rm);
    s.cpu_percent
}
