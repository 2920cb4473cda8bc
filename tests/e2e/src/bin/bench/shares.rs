//! Shared folders, side by side with `rsync -a` and `tar c | ssh tar x` to the same VM at the
//! same round trip: the first sync of a real source tree (this repository's tracked files), how
//! long a laptop write takes to reach a watcher in a container and a container's write to reach
//! the laptop, what the flush before a create costs on an unchanged tree, and what an idle share
//! of 100,000 files costs the engine.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tether_e2e::*;

use crate::{Path0, Row, median_f, ms, path_at, print_rows, quantile, target};

/// How much a run measures.
pub struct SharePlan {
    /// First syncs per tool (the median is shown).
    pub first_runs: usize,
    /// The tree also holds the sources of some of the workspace's dependencies (thousands of
    /// files, as a real project's checkout), not only this repository's own files.
    pub sources: bool,
    pub samples: usize,
    pub idle_files: usize,
    pub idle_secs: u64,
}

/// Copies the repository's tracked files into `to`.
fn copy_repo(to: &Path) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "git -C {} ls-files -z | tar -C {} --null -T - -cf - | tar -C {} -xf -",
            repo().display(),
            repo().display(),
            to.display()
        ))
        .status()
        .expect("copy the repository")
        .success();
    assert!(ok, "copying the repository's files");
}

/// Dependencies whose sources (from cargo's registry, at the versions Cargo.lock pins) join the
/// tree in a full run: source code of many sizes, as a real project holds.
const SOURCES: &[&str] = &[
    "tokio",
    "gtk",
    "tauri",
    "tao",
    "zbus",
    "regex-automata",
    "syn",
    "serde_json",
    "image",
    "webkit2gtk",
    "wry",
    "hyper",
    "clap_builder",
];

/// Copies the sources of [`SOURCES`] into `to/deps/NAME`: the versions Cargo.lock pins, from
/// cargo's registry (the build fetched them).
fn copy_sources(to: &Path) {
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).expect("Cargo.lock");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let registries: Vec<PathBuf> = std::fs::read_dir(cargo_home.join("registry/src"))
        .expect("cargo's registry sources")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let deps = to.join("deps");
    std::fs::create_dir_all(&deps).unwrap();
    for name in SOURCES {
        let header = format!("name = \"{name}\"\nversion = \"");
        let Some(version) = lock
            .match_indices(&header)
            .filter_map(|(i, _)| lock[i + header.len()..].split('"').next())
            .max()
        else {
            continue;
        };
        let Some(src) = registries
            .iter()
            .map(|r| r.join(format!("{name}-{version}")))
            .find(|d| d.is_dir())
        else {
            continue;
        };
        let ok = Command::new("cp")
            .arg("-r")
            .arg(&src)
            .arg(deps.join(name))
            .status()
            .expect("cp")
            .success();
        assert!(ok, "copying {}", src.display());
    }
}

fn count(dir: &Path) -> (usize, u64) {
    let files = files_under(dir);
    let bytes = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    (files.len(), bytes)
}

fn ssh_cmd(path: &Path0, known: &Path) -> String {
    format!(
        "ssh -F none -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={} -o LogLevel=ERROR -i {} -p {}",
        known.display(),
        var("LAB_KEY"),
        path.port
    )
}

fn timed(script: &str) -> Duration {
    let t0 = Instant::now();
    let st = Command::new("sh").arg("-c").arg(script).status().expect("sh");
    assert!(st.success(), "{script}");
    t0.elapsed()
}

/// `docker create` through `sock`, with `src` mounted at /app if given; the container is
/// removed afterwards (not timed).
fn create(sock: &Path, src: Option<&Path>) -> Duration {
    let mut args: Vec<String> = vec!["create".into()];
    if let Some(s) = src {
        args.extend(["-v".into(), format!("{}:/app", s.display())]);
    }
    args.extend([var("LAB_IMAGE"), "true".into()]);
    let host = format!("unix://{}", sock.display());
    let t0 = Instant::now();
    let out = docker_at(&host, &args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    let took = t0.elapsed();
    docker_at(&host, &["rm", out.stdout.trim()]).ok();
    took
}

pub fn run(rtts: &[u64], plan: &SharePlan, t: &Tether, dir: &Path) {
    let laptop = PathBuf::from(var("LAB_LAPTOP"));
    std::fs::create_dir_all(&laptop).unwrap();
    let work = tempfile::tempdir_in(&laptop).unwrap();
    let tree = work.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    copy_repo(&tree);
    if plan.sources {
        copy_sources(&tree);
    }
    let (files, bytes) = count(&tree);
    println!();
    println!(
        "shared folders: a tree of {files} files, {:.1} MB (this repository's tracked files{}); first syncs: the median of {}; {} samples per latency",
        bytes as f64 / 1e6,
        if plan.sources {
            " and the sources of some of its dependencies"
        } else {
            ""
        },
        plan.first_runs,
        plan.samples
    );
    let known = dir.join("known_hosts");
    let direct = format!("unix://{}", var("LAB_A_SOCK"));
    let labels = ["tether", "rsync -a", "tar c | ssh tar x"];
    for &rtt in rtts {
        let path = path_at(rtt);
        let vm = format!("s{rtt}");
        t.add_vm(&vm, &path.host, path.port, &var("LAB_A_SOCK")).ok();
        t.run(&["share", "add", "lab", &laptop.display().to_string(), "--vm", &vm])
            .ok();
        t.run(&["connect", &vm]).ok();
        let sock = t.socket(&vm);
        let mut rows = Vec::new();

        // First sync: a fresh copy of the tree for each tool and run, so nothing is there yet;
        // the tools take turns, so a drift in the machine's load reaches each alike. Nothing is
        // deleted until all have run: ext4 skips recently freed inodes when it allocates, so
        // deleting trees between runs made every later run slower than the one before.
        let fresh = |name: &str| {
            let d = work.path().join(format!("{name}-{rtt}"));
            Command::new("cp").arg("-a").arg(&tree).arg(&d).status().unwrap();
            d
        };
        let base = median_f((0..3).map(|_| ms(create(&sock, None))).collect());
        // The agent's start on this connection (its upload too, the first time a VM sees this
        // build): once per connection, so measured apart from the sync.
        let tiny = work.path().join(format!("tiny-{rtt}"));
        std::fs::create_dir_all(&tiny).unwrap();
        let agent_start = ms(create(&sock, Some(&tiny))) - base;
        let ssh = ssh_cmd(&path, &known);
        // rsync and tar write beside Tether's mirrors, in the mirror of the bench's own folder,
        // so every tool writes to the same part of the VM's disk: how costly a new file is
        // depends on where it goes (the lab's ext4 has no journal, and then passes over recently
        // freed inodes near the folder; a plain `tar x` took 0.07 s in one place and 0.8 s in
        // another).
        let mirrored = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{ssh} {} 'ls -d .local/share/tether/mirror/*/{}'",
                target(&path),
                work.path().display().to_string().trim_start_matches('/')
            ))
            .output()
            .expect("ssh");
        let mirrored = String::from_utf8_lossy(&mirrored.stdout).trim().to_string();
        assert!(
            !mirrored.is_empty() && !mirrored.contains('\n'),
            "the mirror of {}: {mirrored:?}",
            work.path().display()
        );
        let remote = format!("{mirrored}/bench-{rtt}");
        let (mut firsts, mut rsyncs, mut tars) = (Vec::new(), Vec::new(), Vec::new());
        let mut ours = PathBuf::new();
        for run in 0..plan.first_runs {
            ours = fresh(&format!("tether{run}"));
            firsts.push(ms(create(&sock, Some(&ours))) - base);
            let rs = fresh(&format!("rsync{run}"));
            rsyncs.push(ms(timed(&format!(
                "rsync -a -e '{ssh}' {}/ {}:{remote}-r{run}/",
                rs.display(),
                target(&path)
            ))));
            let tr = fresh(&format!("tar{run}"));
            tars.push(ms(timed(&format!(
                "tar c -C {} . | {ssh} {} 'mkdir -p {remote}-t{run} && tar x -C {remote}-t{run}'",
                tr.display(),
                target(&path)
            ))));
        }
        let spread = format!(
            "  first syncs, each run (ms): tether {}; rsync {}; tar {}",
            runs(&firsts),
            runs(&rsyncs),
            runs(&tars)
        );
        let (first, rsync, tar) = (median_f(firsts), median_f(rsyncs), median_f(tars));
        rows.push(Row {
            name: "the agent's start (once per link)".into(),
            unit: "ms",
            higher_is_better: false,
            values: vec![Some(agent_start), None, None],
        });
        rows.push(Row {
            name: "first sync of the tree".into(),
            unit: "ms",
            higher_is_better: false,
            values: vec![Some(first), Some(rsync), Some(tar)],
        });

        // The flush before a create, on the unchanged, synced tree: each sample a create with the
        // mount and one without, back to back, since dockerd's own create time drifts over a run
        // (against a base taken minutes earlier the difference read 2 to 33 ms).
        let flush = median_f(
            (0..plan.samples.min(10))
                .map(|_| {
                    let with = ms(create(&sock, Some(&ours)));
                    with - ms(create(&sock, None))
                })
                .collect(),
        );
        rows.push(Row {
            name: "docker create -v, unchanged tree: the flush".into(),
            unit: "ms",
            higher_is_better: false,
            values: vec![Some(flush), None, None],
        });

        // Laptop write → a watcher in the container. Files land by rename, as editors save, from
        // a folder outside the mounted one; the watcher's lines come over the VM's own socket.
        let host = format!("unix://{}", sock.display());
        let id = docker_at(
            &host,
            &[
                "run",
                "-d",
                "-v",
                &format!("{}:/app", ours.display()),
                &var("LAB_IMAGE"),
                "inotifywait",
                "-m",
                "-q",
                "-e",
                "moved_to,close_write",
                "--format",
                "%f",
                "/app",
            ],
        )
        .ok()
        .stdout
        .trim()
        .to_string();
        let (tx, rx) = mpsc::channel::<(String, Instant)>();
        let mut logs = Command::new("docker")
            .args(["-H", &direct, "logs", "-f", &id])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = logs.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((line, Instant::now())).is_err() {
                    return;
                }
            }
        });
        let staging = work.path().join("staging");
        std::fs::create_dir_all(&staging).unwrap();
        let mut to_vm = Vec::new();
        for i in 0..plan.samples {
            let name = format!("lat-{i}.txt");
            std::fs::write(staging.join(&name), format!("sample {i}")).unwrap();
            let t0 = Instant::now();
            std::fs::rename(staging.join(&name), ours.join(&name)).unwrap();
            let seen = loop {
                let (line, at) = rx.recv_timeout(Duration::from_secs(30)).expect("the watcher's line");
                if line == name {
                    break at;
                }
            };
            to_vm.push(seen - t0);
        }
        let _ = logs.kill();
        let _ = logs.wait();

        // Container write → the laptop: a loop in the container writes a file for each number
        // it reads; the laptop's own file events say when it is here.
        let mut exec = Command::new("docker")
            .args([
                "-H",
                &direct,
                "exec",
                "-i",
                &id,
                "sh",
                "-c",
                "while read n; do echo x > /app/c-$n; done",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut input = exec.stdin.take().unwrap();
        let (etx, erx) = mpsc::channel::<(String, Instant)>();
        let _watch = tether_sync::watch::start(&ours, tether_sync::rules::Rules::new(&[]).unwrap(), move |c| {
            if let tether_sync::watch::Change::Path(p) = c {
                let _ = etx.send((p, Instant::now()));
            }
        })
        .unwrap();
        let mut to_laptop = Vec::new();
        for i in 0..plan.samples {
            let name = format!("c-{i}");
            let t0 = Instant::now();
            writeln!(input, "{i}").unwrap();
            input.flush().unwrap();
            let seen = loop {
                let (p, at) = erx.recv_timeout(Duration::from_secs(30)).expect("the laptop's event");
                if p == name && std::fs::read_to_string(ours.join(&name)).ok().as_deref() == Some("x\n") {
                    break at;
                }
            };
            to_laptop.push(seen - t0);
        }
        drop(input);
        let _ = exec.wait();
        docker_at(&host, &["rm", "-f", &id]).ok();
        for (name, lat) in [
            ("laptop write → container watcher", &to_vm),
            ("container write → laptop", &to_laptop),
        ] {
            for q in [0.5, 0.99] {
                rows.push(Row {
                    name: format!("{name}, p{}", (q * 100.0) as u32),
                    unit: "ms",
                    higher_is_better: false,
                    values: vec![Some(ms(quantile(lat, q))), None, None],
                });
            }
        }
        print_rows(&format!("Shared folders, RTT {rtt} ms"), &labels, &rows);
        println!("{spread}");
        println!(
            "  goals: first sync ≤ 1.0× tar ({:.2}×); laptop → container p50 ≤ RTT + 30 ms ({:.1} ≤ {}), p99 ≤ RTT + 150 ms ({:.1} ≤ {}); container → laptop p50 ≤ RTT + 50 ms ({:.1} ≤ {}); flush ≤ RTT + 10 ms ({flush:.1} ≤ {})",
            first / tar,
            ms(quantile(&to_vm, 0.5)),
            rtt + 30,
            ms(quantile(&to_vm, 0.99)),
            rtt + 150,
            ms(quantile(&to_laptop, 0.5)),
            rtt + 50,
            rtt + 10
        );
        t.run(&["disconnect", &vm]).ok();
    }
    idle(plan, t, work.path());
    let path = path_at(0);
    remove_mirrors(&ssh_cmd(&path, &known), &path, work.path());
}

fn runs(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(" ")
}

/// Removes the VM's mirrors of `work` (the bench's folders, and rsync's and tar's copies beside
/// them), which would otherwise stay on the lab VM's disk run after run. Only at the end: a
/// deletion slows file creation near it for minutes after (see the first syncs).
fn remove_mirrors(ssh: &str, path: &Path0, work: &Path) {
    let rel = work.display().to_string();
    timed(&format!(
        "{ssh} {} 'rm -rf .local/share/tether/mirror/*/{}'",
        target(path),
        rel.trim_start_matches('/')
    ));
}

/// A share of many files at rest: the engine's CPU over a while, and its memory over its idle.
fn idle(plan: &SharePlan, t: &Tether, work: &Path) {
    let path = path_at(0);
    t.add_vm("idle", &path.host, path.port, &var("LAB_A_SOCK")).ok();
    t.run(&["share", "add", "lab", &var("LAB_LAPTOP"), "--vm", "idle"]).ok();
    t.run(&["connect", "idle"]).ok();
    let rss_before = t.engine_rss_kib();
    let big = work.join("idle");
    let per_dir = 100;
    for d in 0..plan.idle_files / per_dir {
        let sub = big.join(format!("d{d:04}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..per_dir {
            std::fs::write(sub.join(format!("f{f:03}.txt")), format!("{d}/{f}\n")).unwrap();
        }
    }
    let t0 = Instant::now();
    create(&t.socket("idle"), Some(&big));
    let first = t0.elapsed();
    let pid = t.engine_pid();
    let cpu = |pid: u32| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest = stat.rsplit_once(')').unwrap().1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
    };
    let c0 = cpu(pid);
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(plan.idle_secs));
    let share = (cpu(pid) - c0) / w0.elapsed().as_secs_f64() * 100.0;
    let rss_after = t.engine_rss_kib();
    println!();
    println!(
        "idle share of {} files: first sync {:.1} s; engine CPU over {} s at rest {share:.2} % of a core (goal ≤ 1 %); RSS {:.1} MiB over the engine's idle {:.1} MiB (goal ≤ 64 MiB)",
        plan.idle_files,
        first.as_secs_f64(),
        plan.idle_secs,
        (rss_after.saturating_sub(rss_before)) as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    t.run(&["disconnect", "idle"]).ok();
}
