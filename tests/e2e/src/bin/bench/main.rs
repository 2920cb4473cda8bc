//! Side-by-side benchmark on the lab, at several round-trip times in one run: Tether's forwarded
//! Docker socket against OpenSSH `ssh -L` (default ciphers), `ssh -L` added to a ControlMaster,
//! `docker -H ssh://`, and the engine's own socket as the limit. The VM sits behind the lab's
//! delay relay (`tether_e2e::relay`) for every RTT above 0; the direct socket never does.
//!
//! Run through `tests/bench.sh` (needs the lab, so root). `--quick` is the short version the test
//! run uses to prove the benchmark still works: small counts, a small image, 0 and 20 ms.
//! `--rtt MS`, repeatable, runs only those round-trip times.
//!
//! Longer than 500 lines on purpose: one table of ways to reach the engine, measured by the same
//! loops, so every row is comparable.

// Test code fails loudly by design: an unwrap or a panic is a failed run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tether_e2e::relay::Relay;
use tether_e2e::*;

mod shares;

/// How much of everything a run does.
struct Plan {
    rtts: Vec<u64>,
    pings: usize,
    commands: usize,
    parallel: usize,
    bulk_runs: usize,
    image: String,
    raw_bytes: u64,
    shares: shares::SharePlan,
}

impl Plan {
    fn full() -> Self {
        Plan {
            rtts: vec![0, 20, 100],
            pings: 200,
            commands: 10,
            parallel: 64,
            bulk_runs: 3,
            image: "tether-lab/bench512".into(),
            raw_bytes: 256 << 20,
            shares: shares::SharePlan {
                sources: true,
                first_runs: 5,
                samples: 100,
                idle_files: 100_000,
                idle_secs: 60,
            },
        }
    }

    fn quick() -> Self {
        Plan {
            rtts: vec![0, 20],
            pings: 20,
            commands: 2,
            parallel: 16,
            bulk_runs: 1,
            image: var("LAB_IMAGE"),
            raw_bytes: 8 << 20,
            shares: shares::SharePlan {
                sources: false,
                first_runs: 1,
                samples: 10,
                idle_files: 5_000,
                idle_secs: 3,
            },
        }
    }

    /// Fewer sequential round trips where each costs 100 ms.
    fn pings_at(&self, rtt: u64) -> usize {
        if rtt >= 100 { self.pings / 4 } else { self.pings }
    }

    /// One transfer of each kind at 100 ms: through `ssh -L` a 512 MiB image takes half a minute.
    fn bulk_runs_at(&self, rtt: u64) -> usize {
        if rtt >= 100 { 1 } else { self.bulk_runs }
    }
}

/// The raw stream's source on VM a (`lab.sh source`).
const SOURCE_PORT: u16 = 9700;

/// One way of reaching VM a's Docker engine.
enum Via {
    /// A local Unix socket forwarded to the VM's (Tether, `ssh -L`, ControlMaster, direct).
    Socket(PathBuf),
    /// `docker -H ssh://USER@HOST:PORT`: a new `ssh` and `docker system dial-stdio` per command.
    DockerSsh { url: String, home: PathBuf },
}

struct Setup {
    via: Via,
    /// A local TCP port tunnelled to the VM's raw source, if this setup has one.
    raw: Option<SocketAddr>,
}

/// A process to stop when the run ends (an `ssh` holding forwards).
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where an SSH client reaches VM a at this RTT: the relay's port, or the VM itself.
struct Path0 {
    host: String,
    port: u16,
    _relay: Option<Relay>,
}

fn path_at(rtt: u64) -> Path0 {
    let vm: SocketAddr = format!("{}:22", var("LAB_A_IP")).parse().expect("VM address");
    if rtt == 0 {
        return Path0 {
            host: var("LAB_A_IP"),
            port: 22,
            _relay: None,
        };
    }
    let relay = Relay::start(vm, Duration::from_millis(rtt / 2));
    Path0 {
        host: "127.0.0.1".into(),
        port: relay.addr.port(),
        _relay: Some(relay),
    }
}

fn ssh_base(dir: &Path, path: &Path0) -> Command {
    let mut c = Command::new("ssh");
    c.args([
        "-N",
        "-F",
        "none",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "StrictHostKeyChecking=accept-new",
    ])
    .args(["-o", "LogLevel=ERROR"])
    .arg("-o")
    .arg(format!("UserKnownHostsFile={}", dir.join("known_hosts").display()))
    .args(["-i", &var("LAB_KEY"), "-p", &path.port.to_string()])
    .stdin(Stdio::null());
    c
}

fn target(path: &Path0) -> String {
    format!("{}@{}", var("LAB_USER"), path.host)
}

/// `ssh -N -L SOCK:DOCKER -L PORT:SOURCE`: OpenSSH's own forward, default ciphers.
fn ssh_l(dir: &Path, path: &Path0, name: &str) -> (Kill, PathBuf, SocketAddr) {
    let sock = dir.join(format!("{name}.sock"));
    let port = free_port();
    let child = ssh_base(dir, path)
        .arg("-L")
        .arg(format!("{}:{}", sock.display(), var("LAB_A_SOCK")))
        .arg("-L")
        .arg(format!("127.0.0.1:{port}:127.0.0.1:{SOURCE_PORT}"))
        .arg(target(path))
        .spawn()
        .expect("ssh");
    wait_for("ssh -L's socket", Duration::from_secs(20), || {
        sock.exists().then_some(())
    });
    (Kill(child), sock, ([127, 0, 0, 1], port).into())
}

/// A ControlMaster, and the same two forwards added to it with `ssh -O forward`.
fn control_master(dir: &Path, path: &Path0, name: &str) -> (Kill, PathBuf, SocketAddr) {
    let ctl = dir.join(format!("{name}.ctl"));
    let master = ssh_base(dir, path)
        .args(["-o", "ControlMaster=yes", "-o"])
        .arg(format!("ControlPath={}", ctl.display()))
        .arg(target(path))
        .spawn()
        .expect("ssh master");
    wait_for("the ControlMaster", Duration::from_secs(20), || {
        ctl.exists().then_some(())
    });
    let sock = dir.join(format!("{name}.sock"));
    let port = free_port();
    let out = Command::new("ssh")
        .args(["-F", "none", "-o"])
        .arg(format!("ControlPath={}", ctl.display()))
        .args(["-O", "forward", "-L"])
        .arg(format!("{}:{}", sock.display(), var("LAB_A_SOCK")))
        .arg("-L")
        .arg(format!("127.0.0.1:{port}:127.0.0.1:{SOURCE_PORT}"))
        .arg(target(path))
        .output()
        .expect("ssh -O forward");
    assert!(
        out.status.success(),
        "ssh -O forward: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the ControlMaster's socket", Duration::from_secs(20), || {
        sock.exists().then_some(())
    });
    (Kill(master), sock, ([127, 0, 0, 1], port).into())
}

/// `docker -H ssh://` runs `ssh`, which reads its config from the passwd home, not $HOME; a
/// wrapper first on PATH hands it the lab's key and known hosts.
fn docker_ssh_home(dir: &Path) -> PathBuf {
    let home = dir.join("dockerssh");
    std::fs::create_dir_all(home.join("bin")).expect("mkdir");
    std::fs::write(
        home.join("ssh_config"),
        format!(
            "Host *\n  IdentityFile {}\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile {}\n  LogLevel ERROR\n",
            var("LAB_KEY"),
            dir.join("known_hosts").display()
        ),
    )
    .expect("ssh config");
    let wrapper = home.join("bin/ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
            home.join("ssh_config").display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    home
}

/// `docker ARGS` through a setup; stdout to /dev/null (`docker save -o` refuses devices), or
/// stdin from `input`. Its wall time.
fn docker(via: &Via, args: &str, input: Option<&Path>) -> Duration {
    let mut cmd = Command::new("sh");
    let redirect = input.map(|p| format!(" < {}", p.display())).unwrap_or_default();
    match via {
        Via::Socket(sock) => {
            cmd.arg("-c")
                .arg(format!(
                    "docker -H unix://{} {args}{redirect} >/dev/null",
                    sock.display()
                ))
                .env("DOCKER_CONFIG", "/var/tmp/tether-e2e-docker-config");
        }
        Via::DockerSsh { url, home } => {
            cmd.arg("-c")
                .arg(format!("docker -H {url} {args}{redirect} >/dev/null"))
                .env(
                    "PATH",
                    format!(
                        "{}:{}",
                        home.join("bin").display(),
                        std::env::var("PATH").unwrap_or_default()
                    ),
                )
                .env("HOME", home)
                .env("DOCKER_CONFIG", home.join(".docker"));
        }
    }
    // `docker build` uploads its context whole with the classic builder, as every client without
    // BuildKit's session does: the upload measured here.
    cmd.env("DOCKER_BUILDKIT", "0");
    let t0 = Instant::now();
    let out = cmd.stdout(Stdio::null()).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t0.elapsed()
}

/// One HTTP/1.1 request on an open connection; reads the response through its body.
fn request(r: &mut BufReader<UnixStream>, path: &str) {
    write!(r.get_mut(), "GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n").expect("write");
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    assert!(line.contains(" 200 "), "{path}: {line}");
    let mut length = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().expect("content length");
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).expect("body");
}

/// The ping the latency figures use: versioned, so that it always reaches the engine (Tether
/// answers the unversioned `/_ping` on the laptop, see `ping` in tether-core). The version is the
/// engine's own, read off its socket.
fn ping_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let mut s = UnixStream::connect(var("LAB_A_SOCK")).expect("engine socket");
        write!(s, "GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n").expect("write");
        let mut head = String::new();
        s.read_to_string(&mut head).expect("read");
        let version = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("api-version:")
                    .map(|v| v.trim().to_string())
            })
            .expect("Api-Version in the engine's ping");
        format!("/v{version}/_ping")
    })
}

/// `path` on a new connection each time: every latency.
fn ping_new(sock: &Path, n: usize, path: &str) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t0 = Instant::now();
            let mut r = BufReader::new(UnixStream::connect(sock).expect("connect"));
            request(&mut r, path);
            t0.elapsed()
        })
        .collect()
}

/// The versioned ping again and again on one kept connection.
fn ping_kept(sock: &Path, n: usize) -> Vec<Duration> {
    let mut r = BufReader::new(UnixStream::connect(sock).expect("connect"));
    request(&mut r, ping_path());
    (0..n)
        .map(|_| {
            let t0 = Instant::now();
            request(&mut r, ping_path());
            t0.elapsed()
        })
        .collect()
}

/// `n` new connections at once, each one versioned ping: the time until the last answer.
fn parallel(sock: &Path, n: usize) -> Duration {
    let t0 = Instant::now();
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let sock = sock.to_path_buf();
            std::thread::spawn(move || {
                let mut r = BufReader::new(UnixStream::connect(&sock).expect("connect"));
                request(&mut r, ping_path());
            })
        })
        .collect();
    for t in threads {
        t.join().expect("parallel ping");
    }
    t0.elapsed()
}

/// `GET /images/NAME/get` (what `docker save` asks) read to the end: bytes per second.
fn download(sock: &Path, image: &str) -> f64 {
    let t0 = Instant::now();
    let mut s = UnixStream::connect(sock).expect("connect");
    write!(s, "GET /images/{image}/get HTTP/1.0\r\nHost: docker\r\n\r\n").expect("write");
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) => panic!("read: {e}"),
        }
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// `bytes` read from a TCP port: bytes per second over all of it, and over its second half (once
/// windows have grown: on a long link the first half includes their growth).
fn raw(addr: SocketAddr, bytes: u64) -> (f64, f64) {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0u64;
    let mut half: Option<(Instant, u64)> = None;
    while n < bytes {
        match s.read(&mut buf) {
            Ok(0) => panic!("the raw stream ended after {n} bytes"),
            Ok(k) => n += k as u64,
            Err(e) => panic!("read: {e}"),
        }
        if half.is_none() && n >= bytes / 2 {
            half = Some((Instant::now(), n));
        }
    }
    let (t_half, n_half) = half.expect("half way");
    (
        n as f64 / t0.elapsed().as_secs_f64(),
        (n - n_half) as f64 / t_half.elapsed().as_secs_f64(),
    )
}

fn quantile(xs: &[Duration], q: f64) -> Duration {
    let mut v = xs.to_vec();
    v.sort();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn median_f(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One figure for every setup (None where a setup cannot take part), and whether more is better.
struct Row {
    name: String,
    unit: &'static str,
    higher_is_better: bool,
    values: Vec<Option<f64>>,
}

fn machine() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!(
        "{cores} cores, load {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut plan = if args.iter().any(|a| a == "--quick") {
        Plan::quick()
    } else {
        Plan::full()
    };
    // `--rtt MS` (repeatable): only these round-trip times.
    let only: Vec<u64> = args
        .windows(2)
        .filter(|w| w[0] == "--rtt")
        .map(|w| w[1].parse().expect("--rtt takes milliseconds"))
        .collect();
    if !only.is_empty() {
        plan.rtts = only;
    }
    println!("machine: {}", machine());
    // `--shares`: only the shared folders' section (it needs no image and no tunnels).
    if args.iter().any(|a| a == "--shares") {
        let dir = tempfile::Builder::new()
            .prefix("tb")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let t = Tether::new();
        shares::run(&plan.rtts, &plan.shares, &t, dir.path());
        println!();
        println!("machine at the end: {}", machine());
        return;
    }
    lab_cmd(&["source", "a", &SOURCE_PORT.to_string()]);
    let image_mib = if plan.image.contains("bench512") { "512" } else { "" };
    if !image_mib.is_empty() {
        lab_cmd(&["image", "a", &plan.image, image_mib]);
    }

    let dir = tempfile::Builder::new()
        .prefix("tb")
        .tempdir_in("/var/tmp")
        .expect("tempdir");
    let docker_home = docker_ssh_home(dir.path());
    // The image as a file, for the uploads (`docker load`), saved straight from the engine.
    let tarball = dir.path().join("image.tar");
    let saved = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker -H unix://{} save {} > {}",
            var("LAB_A_SOCK"),
            plan.image,
            tarball.display()
        ))
        .env("DOCKER_CONFIG", "/var/tmp/tether-e2e-docker-config")
        .status()
        .expect("docker save");
    assert!(saved.success(), "docker save {}", plan.image);
    let image_bytes = std::fs::metadata(&tarball).expect("tarball").len() as f64;
    println!(
        "image {} ({:.0} MB); raw stream {} MiB; {} pings per figure",
        plan.image,
        image_bytes / 1e6,
        plan.raw_bytes >> 20,
        plan.pings
    );

    // A build context to upload (the classic builder sends it whole as the request body): the
    // repository's tracked files, and a Dockerfile that only labels the lab's image.
    let context = dir.path().join("context");
    std::fs::create_dir_all(&context).expect("mkdir");
    let copied = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "git -C {r} ls-files -z | tar -C {r} --null -T - -cf - | tar -C {c} -xf -",
            r = repo().display(),
            c = context.display()
        ))
        .status()
        .expect("copy the context");
    assert!(copied.success());
    let dockerfile = dir.path().join("Dockerfile.bench");
    std::fs::write(&dockerfile, format!("FROM {}\nLABEL bench=1\n", var("LAB_IMAGE"))).expect("Dockerfile");
    let context_bytes: u64 = files_under(&context)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let build = format!("build -q -f {} {}", dockerfile.display(), context.display());

    let t = Tether::new();
    let labels = [
        "tether",
        "ssh -L",
        "ssh -L (ControlMaster)",
        "docker -H ssh://",
        "direct socket",
    ];
    for &rtt in &plan.rtts {
        let path = path_at(rtt);
        let vm = format!("r{rtt}");
        t.add_vm(&vm, &path.host, path.port, &var("LAB_A_SOCK")).ok();
        let connect_t0 = Instant::now();
        t.run(&["connect", &vm]).ok();
        let tether_connect = connect_t0.elapsed();
        let tport = free_port();
        t.run(&["tunnel", &vm, "-p", &format!("{tport}:{SOURCE_PORT}")]).ok();
        let (_ssh, ssh_sock, ssh_raw) = ssh_l(dir.path(), &path, &format!("l{rtt}"));
        let (_cm, cm_sock, cm_raw) = control_master(dir.path(), &path, &format!("m{rtt}"));
        let setups = [
            Setup {
                via: Via::Socket(t.socket(&vm)),
                raw: Some(([127, 0, 0, 1], tport).into()),
            },
            Setup {
                via: Via::Socket(ssh_sock),
                raw: Some(ssh_raw),
            },
            Setup {
                via: Via::Socket(cm_sock),
                raw: Some(cm_raw),
            },
            Setup {
                via: Via::DockerSsh {
                    url: format!("ssh://{}:{}", target(&path), path.port),
                    home: docker_home.clone(),
                },
                raw: None,
            },
            Setup {
                via: Via::Socket(PathBuf::from(var("LAB_A_SOCK"))),
                raw: None,
            },
        ];
        let sock_of = |s: &Setup| match &s.via {
            Via::Socket(p) => Some(p.clone()),
            Via::DockerSsh { .. } => None,
        };

        let n = plan.pings_at(rtt);
        let bulk_runs = plan.bulk_runs_at(rtt);
        let mut rows: Vec<Row> = Vec::new();
        let mut add = |name: &str, unit: &'static str, higher_is_better: bool, values: Vec<Option<f64>>| {
            rows.push(Row {
                name: name.to_string(),
                unit,
                higher_is_better,
                values,
            })
        };
        let new_lat: Vec<Option<Vec<Duration>>> = setups
            .iter()
            .map(|s| sock_of(s).map(|p| ping_new(&p, n, ping_path())))
            .collect();
        // The docker CLI's own ping, unversioned: Tether answers it on the laptop.
        let cli_lat: Vec<Option<Vec<Duration>>> = setups
            .iter()
            .map(|s| sock_of(s).map(|p| ping_new(&p, n, "/_ping")))
            .collect();
        let kept_lat: Vec<Option<Vec<Duration>>> =
            setups.iter().map(|s| sock_of(s).map(|p| ping_kept(&p, n))).collect();
        let q = |lat: &[Option<Vec<Duration>>], at: f64| -> Vec<Option<f64>> {
            lat.iter().map(|v| v.as_ref().map(|v| ms(quantile(v, at)))).collect()
        };
        add("/_ping, new connection, p50", "ms", false, q(&new_lat, 0.5));
        add("/_ping, new connection, p99", "ms", false, q(&new_lat, 0.99));
        add("/_ping, kept connection, p50", "ms", false, q(&kept_lat, 0.5));
        add("/_ping, kept connection, p99", "ms", false, q(&kept_lat, 0.99));
        add("CLI's /_ping (unversioned), new, p50", "ms", false, q(&cli_lat, 0.5));
        for cmd in ["version", "ps"] {
            let values = setups
                .iter()
                .map(|s| {
                    Some(median_f(
                        (0..plan.commands).map(|_| ms(docker(&s.via, cmd, None))).collect(),
                    ))
                })
                .collect();
            add(&format!("docker {cmd}, median"), "ms", false, values);
        }
        // From nothing to the first answer: `tether connect` then `docker ps`, against
        // `docker -H ssh:// ps`, which logs in anew for every command.
        let mut cold = vec![None; setups.len()];
        cold[0] = Some(ms(tether_connect) + ms(docker(&setups[0].via, "ps", None)));
        cold[3] = Some(ms(docker(&setups[3].via, "ps", None)));
        add("cold start to a first docker ps", "ms", false, cold);
        let values = setups
            .iter()
            .map(|s| sock_of(s).map(|p| median_f((0..3).map(|_| ms(parallel(&p, plan.parallel))).collect())))
            .collect();
        add(
            &format!("{} new connections at once", plan.parallel),
            "ms",
            false,
            values,
        );
        let values = setups
            .iter()
            .map(|s| {
                Some(median_f(
                    (0..bulk_runs)
                        .map(|_| match &s.via {
                            Via::Socket(p) => download(p, &plan.image) / 1e6,
                            Via::DockerSsh { .. } => {
                                let save = format!("save {}", plan.image);
                                image_bytes / docker(&s.via, &save, None).as_secs_f64() / 1e6
                            }
                        })
                        .collect(),
                ))
            })
            .collect();
        add("download (docker save)", "MB/s", true, values);
        let values = setups
            .iter()
            .map(|s| {
                Some(median_f(
                    (0..bulk_runs)
                        .map(|_| image_bytes / docker(&s.via, "load -q", Some(&tarball)).as_secs_f64() / 1e6)
                        .collect(),
                ))
            })
            .collect();
        add("upload (docker load)", "MB/s", true, values);
        let values = setups
            .iter()
            .map(|s| {
                Some(median_f(
                    (0..bulk_runs)
                        .map(|_| context_bytes as f64 / docker(&s.via, &build, None).as_secs_f64() / 1e6)
                        .collect(),
                ))
            })
            .collect();
        add("upload (docker build context)", "MB/s", true, values);
        let runs: Vec<Option<Vec<(f64, f64)>>> = setups
            .iter()
            .map(|s| s.raw.map(|a| (0..bulk_runs).map(|_| raw(a, plan.raw_bytes)).collect()))
            .collect();
        let pick = |second: bool| -> Vec<Option<f64>> {
            runs.iter()
                .map(|r| {
                    r.as_ref().map(|v| {
                        median_f(
                            v.iter()
                                .map(|&(all, half)| if second { half } else { all } / 1e6)
                                .collect(),
                        )
                    })
                })
                .collect()
        };
        add("raw stream", "MB/s", true, pick(false));
        add("raw stream, its second half", "MB/s", true, pick(true));
        t.run(&["disconnect", &vm]).ok();

        print_rows(&format!("RTT {rtt} ms"), &labels, &rows);
        let (fresh, kept) = (&rows[0].values[0], &rows[2].values[0]);
        if let (Some(fresh), Some(kept)) = (fresh, kept) {
            println!(
                "  tether's new connection / its kept connection, p50: {:.2}×",
                fresh / kept
            );
            // A command's one request beyond the CLI's ping must cross the link: no exact
            // forwarder beats the CLI on the engine's own socket plus one kept round trip.
            for r in rows.iter().filter(|r| r.name.starts_with("docker ")) {
                let (Some(ours), Some(direct)) = (r.values[0], r.values[4]) else {
                    continue;
                };
                let floor = direct + kept;
                let mut line = format!(
                    "  {}: floor (direct + one round trip) {floor:.2} ms, tether {:+.2} ms over it",
                    r.name,
                    ours - floor
                );
                if let Some(ssh) = r.values[3].filter(|v| *v > 0.0) {
                    line += &format!(
                        ", floor / docker -H ssh:// {:.3}×, tether's {:.3}×",
                        floor / ssh,
                        ours / ssh
                    );
                }
                println!("{line}");
            }
        }
    }
    shares::run(&plan.rtts, &plan.shares, &t, dir.path());
    through_a_jump_host(&plan, dir.path(), &t);
    println!();
    println!("machine at the end: {}", machine());
}

/// A table of figures, one column per setup, then each figure's ratio of Tether (the first
/// column) to every other.
fn print_rows(title: &str, labels: &[&str], rows: &[Row]) {
    println!();
    println!("== {title} ({}) ==", machine());
    print!("{:<36}", "figure");
    for l in labels {
        print!(" {l:>22}");
    }
    println!();
    for r in rows {
        print!("{:<36}", format!("{} ({})", r.name, r.unit));
        for v in &r.values {
            match v {
                Some(v) => print!(" {v:>22.2}"),
                None => print!(" {:>22}", "-"),
            }
        }
        println!();
    }
    println!("ratios: how many times better tether is than each (above 1: tether is better)");
    for r in rows {
        let Some(Some(ours)) = r.values.first() else { continue };
        let mut line = format!("  {:<34}", r.name);
        for (l, v) in labels.iter().zip(&r.values).skip(1) {
            if let Some(v) = v.filter(|v| *v > 0.0) {
                let better = if r.higher_is_better { ours / v } else { v / ours };
                line += &format!("  {l}: {better:.2}");
            }
        }
        println!("{line}");
    }
}

/// A VM only a bastion reaches: Tether (`--jump`, the VM's session inside a channel of the
/// bastion's) against OpenSSH forwarding the same socket through the same bastion (`ssh -J`, as
/// a `ProxyCommand` so the hop gets the lab's key: one `ssh` per hop, the inner one's bytes piped
/// through the outer).
fn through_a_jump_host(plan: &Plan, dir: &Path, t: &Tether) {
    let bastion = TestVm::new("bjump", 64, false);
    let deep = TestVm::hidden("hjump", 65, &bastion, true);
    if plan.image.contains("bench512") {
        lab_cmd(&["image", "hjump", &plan.image, "512"]);
    }
    let user = var("LAB_USER");
    let jump = format!("{user}@{}", bastion.ip);
    t.add_vm_with("jump", &deep.ip, 22, &deep.docker_sock(), &["--jump", &jump])
        .ok();
    t.run(&["connect", "jump"]).ok();
    let known = dir.join("known_hosts");
    let proxy = format!(
        "ssh -F none -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={} -o LogLevel=ERROR -i {} -W %h:%p {jump}",
        known.display(),
        var("LAB_KEY")
    );
    let sock = dir.join("jump.sock");
    let direct = Path0 {
        host: deep.ip.clone(),
        port: 22,
        _relay: None,
    };
    let _ssh = Kill(
        ssh_base(dir, &direct)
            .arg("-o")
            .arg(format!("ProxyCommand={proxy}"))
            .arg("-L")
            .arg(format!("{}:{}", sock.display(), deep.docker_sock()))
            .arg(target(&direct))
            .spawn()
            .expect("ssh -J"),
    );
    wait_for("ssh -J's socket", Duration::from_secs(20), || {
        sock.exists().then_some(())
    });
    let socks = [t.socket("jump"), sock];
    let mut rows = Vec::new();
    let ping = socks
        .iter()
        .map(|p| Some(ms(quantile(&ping_new(p, plan.pings, ping_path()), 0.5))))
        .collect();
    rows.push(Row {
        name: "/_ping, new connection, p50".into(),
        unit: "ms",
        higher_is_better: false,
        values: ping,
    });
    let version = socks
        .iter()
        .map(|p| {
            let via = Via::Socket(p.clone());
            Some(median_f(
                (0..plan.commands).map(|_| ms(docker(&via, "version", None))).collect(),
            ))
        })
        .collect();
    rows.push(Row {
        name: "docker version, median".into(),
        unit: "ms",
        higher_is_better: false,
        values: version,
    });
    let save = socks
        .iter()
        .map(|p| {
            Some(median_f(
                (0..plan.bulk_runs).map(|_| download(p, &plan.image) / 1e6).collect(),
            ))
        })
        .collect();
    rows.push(Row {
        name: "download (docker save)".into(),
        unit: "MB/s",
        higher_is_better: true,
        values: save,
    });
    t.run(&["disconnect", "jump"]).ok();
    print_rows("through a jump host, 0 ms", &["tether", "ssh -J -L"], &rows);
}
