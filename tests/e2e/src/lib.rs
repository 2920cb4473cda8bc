//! Harness for Tether's end-to-end tests: the lab's variables, a private Tether home with its own
//! engine, the `tether` binary, the docker CLI, and waiting on conditions with deadlines.
//!
//! The lab (tests/lab/lab.sh up) must be running and the tests must run as root; the test runner
//! script arranges both. When something fails, the engine log is printed for context.
//!
//! Longer than 500 lines on purpose: the harness every test file shares (the engine, VMs, waiting,
//! HTTP and docker helpers); the larger parts (desktop, keyring, procs, relay, soak, WebDriver)
//! are modules of their own.

// Test code fails loudly by design: an unwrap or a panic is a failed run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use anyhow::Result;

pub mod desktop;
pub mod keyring;
pub mod procs;
pub mod relay;
pub mod soak;
pub mod webdriver;

/// Repository root (two levels above this crate).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn lab_script() -> PathBuf {
    repo().join("tests/lab/lab.sh")
}

/// The lab's variables, from `lab.sh env`.
pub fn lab() -> &'static HashMap<String, String> {
    static LAB: OnceLock<HashMap<String, String>> = OnceLock::new();
    LAB.get_or_init(|| {
        let out = Command::new(lab_script()).arg("env").output().expect("run lab.sh env");
        let vars: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        let sock = vars.get("LAB_A_SOCK").cloned().unwrap_or_default();
        assert!(
            Path::new(&sock).exists(),
            "the lab is not running ({sock} missing): run `bash tests/run.sh`, or `tests/lab/lab.sh up` as root"
        );
        vars
    })
}

/// Whether the heavy tests run at full size (`TETHER_E2E_FULL=1`, as tests/soak.sh runs them)
/// rather than the suite's: the same bounds, checked on less data.
pub fn full_size() -> bool {
    std::env::var("TETHER_E2E_FULL").is_ok_and(|v| v == "1")
}

pub fn var(k: &str) -> String {
    lab()
        .get(k)
        .cloned()
        .unwrap_or_else(|| panic!("lab variable {k} missing"))
}

/// Runs lab.sh with arguments; panics with its output on failure.
pub fn lab_cmd(args: &[&str]) {
    let out = Command::new(lab_script()).args(args).output().expect("run lab.sh");
    assert!(
        out.status.success(),
        "lab.sh {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The built `tether` binary (cargo builds it for this package's tests).
pub fn tether_bin() -> PathBuf {
    let p = repo()
        .join("target")
        .join(if cfg!(debug_assertions) { "debug" } else { "release" })
        .join("tether");
    assert!(
        p.exists(),
        "{} not built: run `cargo build -p tether-cli` first",
        p.display()
    );
    p
}

/// A local TCP port that is free now and that no other test gets during this lab's life.
///
/// Why not port 0: the OS may hand the same ephemeral port to two calls in a row once the first
/// listener is closed, and an outgoing connection may take it before the test binds it. Ports
/// come instead from below the ephemeral range, and each is claimed once: tests run in processes
/// of their own (nextest), so the claim is a file made with `create_new` in the lab's `ports`
/// directory, which `lab.sh up` and `down` empty. A port is handed out only if a bind on
/// 127.0.0.1 succeeds too, and never one automatic forwarding declines by default.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u32>().ok()))
        .unwrap_or(32768);
    let span = ephemeral_start.saturating_sub(LOW).max(1000);
    // Processes start at different offsets, so they seldom try the same claims.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id() * 97) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let claims = Path::new(&var("TETHER_LAB_DIR")).join("ports");
    std::fs::create_dir_all(&claims).expect("the lab's ports directory");
    for _ in 0..span {
        let port = LOW + NEXT.fetch_add(1, Ordering::SeqCst) % span;
        // A service's well-known port (MongoDB's 27017 lies in this range) is one that automatic
        // forwarding leaves alone by default: a test that publishes it would wait in vain.
        if tether_core::config::DEFAULT_AUTO_FORWARD_DENY.contains(&(port as u16)) {
            continue;
        }
        let claimed = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(claims.join(port.to_string()))
            .is_ok();
        if claimed && TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    panic!("no free port in {LOW}..{}", LOW + span)
}

/// Polls `f` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Output of a command, with helpers.
#[derive(Clone, Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "command failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails_with(self, needles: &[&str]) -> Self {
        // `tether`'s exit codes for a failure are 1 and 3 to 7 (see `tether --help`); 2 is a
        // command line it could not read.
        assert!(
            self.code == 1 || (3..=7).contains(&self.code),
            "expected a failure's exit code:\nexit {}\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout,
            self.stderr
        );
        for n in needles {
            assert!(self.stderr.contains(n), "stderr lacks {n:?}:\n{}", self.stderr);
        }
        self
    }
}

impl Run {
    /// As [`Run::fails_with`], with this exit code.
    #[track_caller]
    pub fn fails_with_code(self, code: i32, needles: &[&str]) -> Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.fails_with(needles)
    }
}

/// A private Tether installation: its own TETHER_HOME and HOME, and its own engine.
pub struct Tether {
    pub dir: tempfile::TempDir,
    daemon: Option<Child>,
    extra_env: Vec<(String, String)>,
}

impl Default for Tether {
    fn default() -> Self {
        Self::new()
    }
}

impl Tether {
    /// A fresh home with a running engine (`tether daemon`).
    pub fn new() -> Self {
        Self::with_daemon_prefix(&[])
    }

    /// A fresh home with a running engine that sees `env` (and so does every command).
    pub fn with_env(env: &[(&str, &str)]) -> Self {
        let mut t = Self::without_daemon(env);
        t.start_daemon();
        t
    }

    /// A fresh home and no engine: the first command that needs one starts it.
    pub fn without_daemon(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tt")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join(".ssh")).expect("mkdir .ssh");
        let extra_env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Tether {
            dir,
            daemon: None,
            extra_env,
        }
    }

    /// Like `new`, but the engine runs under a wrapper (e.g. setpriv dropping a capability).
    pub fn with_daemon_prefix(prefix: &[&str]) -> Self {
        let mut t = Self::without_daemon(&[]);
        t.start_daemon_with(prefix);
        t
    }

    /// Starts (or restarts) this home's engine.
    pub fn start_daemon(&mut self) {
        self.start_daemon_with(&[]);
    }

    fn start_daemon_with(&mut self, prefix: &[&str]) {
        self.stop_daemon();
        let mut cmd = if prefix.is_empty() {
            Command::new(tether_bin())
        } else {
            let mut c = Command::new(prefix[0]);
            c.args(&prefix[1..]).arg(tether_bin());
            c
        };
        cmd.arg("daemon");
        self.envs(&mut cmd);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log");
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        self.daemon = Some(cmd.spawn().expect("spawn tether daemon"));
        let sock = self.home().join("run/control.sock");
        wait_for("the engine's control socket", Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&sock).ok().map(|_| ())
        });
    }

    /// Stops the engine this harness started (as a crash would: no cleanup), so another
    /// process (the app) can take over the same home.
    pub fn stop_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    /// The environment that makes another program (the app) use this home, and nothing of the
    /// user's: TETHER_HOME, HOME and DOCKER_CONFIG.
    pub fn app_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TETHER_HOME", self.home().display().to_string()),
            ("HOME", self.dir.path().display().to_string()),
            ("DOCKER_CONFIG", self.dir.path().join(".docker").display().to_string()),
        ]
    }

    /// The file the engine's output goes to (the app's, too, when a test launches it).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// One request on the control socket; the whole answer line, parsed.
    pub fn control(&self, req: &serde_json::Value) -> serde_json::Value {
        use std::io::{BufRead as _, Write as _};
        let mut s =
            std::os::unix::net::UnixStream::connect(self.home().join("run/control.sock")).expect("control socket");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        writeln!(s, "{req}").expect("request");
        let mut line = String::new();
        std::io::BufReader::new(s).read_line(&mut line).expect("answer");
        serde_json::from_str(&line).expect("json answer")
    }

    /// The engine's `ping`: pid, version, live tasks and open streams.
    pub fn ping(&self) -> serde_json::Value {
        let v = self.control(&serde_json::json!({"op": "ping"}));
        assert_eq!(v["ok"], true, "ping failed: {v}");
        v["result"].clone()
    }

    /// The keychain account of this home's key `name`: its install id, a slash, the name.
    pub fn account(&self, name: &str) -> String {
        let id = std::fs::read_to_string(self.home().join("config/install-id")).expect("install id");
        format!("{}/{name}", id.trim())
    }

    pub fn set_env(&mut self, k: &str, v: &str) {
        self.extra_env.push((k.into(), v.into()));
    }

    fn envs(&self, cmd: &mut Command) {
        cmd.env("TETHER_HOME", self.home())
            .env("HOME", self.dir.path())
            .env("DOCKER_CONFIG", self.dir.path().join(".docker"))
            .env("TETHER_LOG", "info,tether_core=debug,russh=warn")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("DOCKER_HOST")
            .env_remove("TETHER_KEY_PASSPHRASE");
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
    }

    /// Runs `tether ARGS` on a terminal (via script(1)). For each (prompt, answer), waits until
    /// the prompt is on screen, then types the answer, as a person would.
    pub fn run_tty(&self, args: &[&str], dialogue: &[(&str, &str)]) -> Run {
        use std::io::{Read, Write};
        use std::sync::{Arc, Mutex};
        let line = std::iter::once(tether_bin().display().to_string())
            .chain(args.iter().map(|a| format!("'{a}'")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.envs(&mut cmd);
        let mut child = cmd.spawn().expect("script");
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut out = child.stdout.take().expect("stdout");
        let sink = screen.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let mut stdin = child.stdin.take().expect("stdin");
        let mut seen = 0;
        for (prompt, answer) in dialogue {
            wait_for(&format!("the prompt {prompt:?}"), Duration::from_secs(20), || {
                let text = String::from_utf8_lossy(&screen.lock().unwrap()[seen..]).into_owned();
                text.find(prompt).map(|i| seen += i + prompt.len())
            });
            stdin.write_all(format!("{answer}\n").as_bytes()).expect("type");
        }
        drop(stdin);
        let status = child.wait().expect("script");
        reader.join().expect("reader");
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let stdout = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: err,
        }
    }

    /// `tether ARGS` with this home's environment, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(tether_bin());
        cmd.args(args).stdin(Stdio::null());
        self.envs(&mut cmd);
        cmd
    }

    /// Runs `tether ARGS` and returns its output.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(tether_bin());
        cmd.args(args).stdin(Stdio::null());
        self.envs(&mut cmd);
        Run::from(cmd.output().expect("run tether"))
    }

    /// Starts `tether ARGS` in the background with its stdout as a line channel.
    pub fn spawn_lines(&self, args: &[&str]) -> (Child, std::sync::mpsc::Receiver<String>) {
        use std::io::BufRead;
        let mut cmd = Command::new(tether_bin());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        self.envs(&mut cmd);
        let mut child = cmd.spawn().expect("spawn tether");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (child, rx)
    }

    /// Adds a lab VM with the lab key, accepting its host key.
    pub fn add_vm(&self, name: &str, ip: &str, port: u16, socket: &str) -> Run {
        self.add_vm_with(name, ip, port, socket, &[])
    }

    /// [`Tether::add_vm`] with more `vm add` options (`--arch x86_64`, `--auto-connect`, …).
    pub fn add_vm_with(&self, name: &str, ip: &str, port: u16, socket: &str, extra: &[&str]) -> Run {
        self.vm_add(name, ip, port, &var("LAB_USER"), Some(&var("LAB_KEY")), socket, extra)
    }

    /// `tether vm add` for a VM that logs in as `user` (by a keychain key or a password, not the
    /// lab's key file), its host key accepted.
    pub fn add_vm_as(&self, name: &str, ip: &str, port: u16, user: &str) -> Run {
        self.vm_add(name, ip, port, user, None, &var("LAB_A_SOCK"), &[])
    }

    #[allow(clippy::too_many_arguments)]
    fn vm_add(
        &self,
        name: &str,
        ip: &str,
        port: u16,
        user: &str,
        identity: Option<&str>,
        socket: &str,
        extra: &[&str],
    ) -> Run {
        let port = port.to_string();
        let mut args = vec!["vm", "add", name, "--host", ip, "--port", &port, "--user", user];
        if let Some(key) = identity {
            args.extend(["--identity", key]);
        }
        args.extend(["--remote-socket", socket, "--accept-new"]);
        args.extend(extra);
        self.run(&args)
    }

    pub fn socket(&self, vm: &str) -> PathBuf {
        self.home().join("run/vms").join(vm).join("docker.sock")
    }

    /// Runs the docker CLI against this Tether's socket for `vm`.
    pub fn docker(&self, vm: &str, args: &[&str]) -> Run {
        docker_at(&format!("unix://{}", self.socket(vm).display()), args)
    }

    /// `tether status --json` parsed; the entry for `vm`.
    pub fn status(&self, vm: &str) -> serde_json::Value {
        let r = self.run(&["status", "--json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("status json");
        v.as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == vm).cloned())
            .unwrap_or_default()
    }

    /// Waits until `vm` is in `state`.
    pub fn wait_state(&self, vm: &str, state: &str, timeout: Duration) -> serde_json::Value {
        wait_for(&format!("{vm} to be {state}"), timeout, || {
            let s = self.status(vm);
            (s["state"] == state).then_some(s)
        })
    }

    /// The engine's pid (from its pid file).
    pub fn engine_pid(&self) -> u32 {
        let pid = std::fs::read_to_string(self.home().join("run/engine.pid")).expect("engine pid file");
        pid.trim().parse().expect("engine pid")
    }

    /// The engine's resident memory, in KiB.
    pub fn engine_rss_kib(&self) -> u64 {
        proc_status_kib(self.engine_pid(), "VmRSS")
    }

    /// The most the engine was ever resident, in KiB.
    pub fn engine_peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.engine_pid(), "VmHWM")
    }

    pub fn log(&self) -> String {
        let started = std::fs::read_to_string(self.dir.path().join("daemon.log"));
        started
            .or_else(|_| std::fs::read_to_string(self.home().join("logs/engine.log")))
            .unwrap_or_default()
    }
}

impl Drop for Tether {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- engine log ----\n{}\n---- end of engine log ----", self.log());
        }
        if self.daemon.is_none() {
            // An engine the CLI started on its own: stop it by its pid file.
            if let Ok(pid) = std::fs::read_to_string(self.home().join("run/engine.pid")) {
                let _ = Command::new("kill").arg(pid.trim()).status();
                let sock = self.home().join("run/control.sock");
                let deadline = Instant::now() + Duration::from_secs(10);
                while sock.exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        if let Some(mut d) = self.daemon.take() {
            // SIGTERM lets the engine disconnect and remove its sockets.
            let _ = Command::new("kill").arg(d.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = d.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

/// A `kB` field of /proc/PID/status (`VmRSS`, `VmHWM`, …).
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Runs the docker CLI against `host` (a DOCKER_HOST value).
pub fn docker_at(host: &str, args: &[&str]) -> Run {
    docker_at_with_timeout(host, args, 300)
}

/// Like `docker_at`, killing docker after `secs` (exit code 124).
pub fn docker_at_with_timeout(host: &str, args: &[&str], secs: u32) -> Run {
    let out = Command::new("timeout")
        .arg(secs.to_string())
        .arg("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", "/var/tmp/tether-e2e-docker-config")
        .stdin(Stdio::null())
        .output()
        .expect("run docker");
    Run::from(out)
}

/// A lab VM made for one test (own namespace and sshd), removed on drop.
pub struct TestVm {
    pub name: String,
    pub ip: String,
}

impl TestVm {
    /// `idx` must be unique among concurrently running tests (10..=250).
    pub fn new(name: &str, idx: u8, docker: bool) -> Self {
        Self::start(
            name,
            &["vm-up", name, &idx.to_string()],
            docker,
            format!("10.77.{idx}.2"),
        )
    }

    /// A VM with its own engine whose sshd and dockerd do not see the laptop's test folders
    /// (`LAB_LAPTOP`, an empty tmpfs in their mount namespace): what a VM on another machine sees
    /// of them, nothing. Tests about files put the laptop's folders under `LAB_LAPTOP`.
    pub fn with_private_files(name: &str, idx: u8) -> Self {
        let _ = Command::new(lab_script()).args(["vm-down", name]).status();
        lab_cmd(&["vm-up", name, &idx.to_string(), "docker", "files"]);
        lab_cmd(&["images", name]);
        TestVm {
            name: name.into(),
            ip: format!("10.77.{idx}.2"),
        }
    }

    /// A VM this machine cannot reach: wired only to `bastion`, at 10.78.`idx`.2.
    pub fn hidden(name: &str, idx: u8, bastion: &TestVm, docker: bool) -> Self {
        let args = ["hidden", name, &idx.to_string(), &bastion.name];
        Self::start(name, &args, docker, format!("10.78.{idx}.2"))
    }

    /// Runs the lab's `args` (after removing a VM left by an earlier run), with its own engine
    /// and images if `docker`.
    fn start(name: &str, args: &[&str], docker: bool, ip: String) -> Self {
        let _ = Command::new(lab_script()).args(["vm-down", name]).status();
        let mut args = args.to_vec();
        if docker {
            args.push("docker");
        }
        lab_cmd(&args);
        if docker {
            lab_cmd(&["images", name]);
        }
        TestVm { name: name.into(), ip }
    }

    pub fn docker_sock(&self) -> String {
        format!("{}/vms/{}/docker.sock", var("TETHER_LAB_DIR"), self.name)
    }

    pub fn sshd_pid(&self, port: u16) -> i32 {
        let p = format!("{}/vms/{}/sshd_{port}.pid", var("TETHER_LAB_DIR"), self.name);
        std::fs::read_to_string(&p)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in {p}"))
    }

    /// Pids of every process in the VM's namespace (sshd and its per-connection children, …).
    pub fn pids(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["netns", "pids", &format!("tl-{}", self.name)])
            .output()
            .expect("ip netns pids");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// Pids of the VM's processes named `comm` (`sshd`, `dockerd`).
    pub fn pids_named(&self, comm: &str) -> Vec<String> {
        self.pids()
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .unwrap_or_default()
                    .trim()
                    == comm
            })
            .collect()
    }
}

/// The one-letter state of a process (`T` when stopped), if it still exists.
pub fn proc_state(pid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Sends `signal` (`STOP`, `KILL`, …) to `pids`. A pid gone by its turn is fine: callers wait on
/// the state they want instead.
pub fn signal(pids: &[String], signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids)
        .stderr(Stdio::null())
        .status();
}

impl Drop for TestVm {
    fn drop(&mut self) {
        let _ = Command::new(lab_script()).args(["vm-down", &self.name]).status();
    }
}

/// A lab user whose keys live in ~/.ssh/authorized_keys, removed on drop.
pub struct LabUser(pub String);

impl LabUser {
    pub fn new(name: &str) -> Self {
        lab_cmd(&["user", name]);
        LabUser(name.into())
    }
    /// A user whose home is a tmpfs of `size` (e.g. "64k") that a test can fill.
    pub fn with_home_size(name: &str, size: &str) -> Self {
        lab_cmd(&["user", name, size]);
        LabUser(name.into())
    }
    pub fn home(&self) -> std::path::PathBuf {
        Path::new("/var/lib/tether-lab/homes").join(&self.0)
    }
}

impl Drop for LabUser {
    fn drop(&mut self) {
        let _ = Command::new(lab_script()).args(["user-rm", &self.0]).status();
    }
}

/// Another sshd on `vm`'s `port` as a cloud image ships it: password logins on, keys read from
/// `~/.ssh/authorized_keys` with strict modes.
pub fn cloud_sshd(vm: &str, port: &str) {
    lab_cmd(&[
        "sshd",
        vm,
        port,
        "PasswordAuthentication=yes",
        "AuthorizedKeysFile=.ssh/authorized_keys",
        "StrictModes=yes",
    ]);
}

/// The SHA256 fingerprint of a lab VM's host key, as `ssh-keygen -l` prints it.
pub fn host_key_fingerprint(vm: &str) -> String {
    let out = Command::new("ssh-keygen")
        .args([
            "-lf",
            &format!("{}/vms/{vm}/ssh_host_ed25519_key.pub", var("TETHER_LAB_DIR")),
        ])
        .output()
        .expect("ssh-keygen");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// One raw HTTP/1.0 request over a Unix socket; returns (status line, body).
pub fn http_unix(sock: &Path, path: &str) -> std::io::Result<(String, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    split_http(&raw)
}

/// One HTTP/1.0 GET over TCP to 127.0.0.1:port.
pub fn http_tcp(port: u16, path: &str) -> std::io::Result<(String, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    split_http(&raw)
}

fn split_http(raw: &[u8]) -> std::io::Result<(String, Vec<u8>)> {
    let pos = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP head in {} bytes", raw.len())))?;
    let head = String::from_utf8_lossy(&raw[..pos]).into_owned();
    let status = head.lines().next().unwrap_or("").to_string();
    Ok((status, raw[pos + 4..].to_vec()))
}

/// A web server on this laptop's loopback that answers every request with `body`; its port.
pub fn laptop_web(body: &str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = body.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                use std::io::{BufRead as _, Write as _};
                let mut r = std::io::BufReader::new(conn);
                let mut line = String::new();
                // The request's head, to its blank line: answering earlier could reset it.
                while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let _ = write!(
                    r.get_mut(),
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// Whether OpenSSH's own client logs in to `ip:port` as `user` with `key` only and runs `true`,
/// with `options` (`-o`, e.g. how host keys are checked) and no agent: an oracle for tests.
pub fn openssh_runs(ip: &str, port: u16, user: &str, key: &Path, options: &[&str]) -> bool {
    let mut ssh = Command::new("ssh");
    ssh.args([
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=5",
    ]);
    for o in options {
        ssh.args(["-o", o]);
    }
    ssh.arg("-i")
        .arg(key)
        .args(["-p", &port.to_string(), &format!("{user}@{ip}"), "true"])
        .env_remove("SSH_AUTH_SOCK")
        .status()
        .is_ok_and(|s| s.success())
}

/// Every file under `dir`, at any depth (directories themselves left out).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
