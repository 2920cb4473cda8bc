//! Side-by-side benchmark on the lab: Tether's forwarded Docker socket against OpenSSH's
//! `ssh -N -L sock:remote.sock`, `docker -H ssh://`, and the engine's own socket as the ceiling.
//! Run through `tests/bench.sh` (needs the lab, so root). Prints a table and ratios.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tether_e2e::*;

const RUNS: usize = 5;
const PINGS: usize = 200;

/// Bytes per second of `GET /images/NAME/get` read to the end over a Unix socket.
fn bulk(sock: &Path, image: &str) -> (u64, Duration) {
    let t0 = Instant::now();
    let mut s = UnixStream::connect(sock).expect("connect");
    write!(s, "GET /images/{image}/get HTTP/1.0\r\nHost: docker\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) => panic!("read: {e}"),
        }
    }
    (n, t0.elapsed())
}

/// Mean time of one `GET /_ping` on a fresh connection (a new SSH channel each time).
fn ping_latency(sock: &Path) -> Duration {
    let t0 = Instant::now();
    for _ in 0..PINGS {
        let (status, body) = http_unix(sock, "/_ping").expect("ping");
        assert!(status.contains("200") && body == b"OK", "{status}");
    }
    t0.elapsed() / PINGS as u32
}

fn best<T: PartialOrd + Copy>(xs: &[T]) -> T {
    xs.iter().copied().fold(xs[0], |a, b| if b < a { b } else { a })
}

struct SshForward {
    child: Child,
    sock: PathBuf,
}

impl Drop for SshForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
    }
}

fn ssh_forward(dir: &Path, name: &str, extra: &[&str]) -> SshForward {
    let sock = dir.join(name);
    let child = Command::new("ssh")
        .args([
            "-N",
            "-F",
            "none",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
        ])
        .args(extra)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", dir.join("known_hosts").display()))
        .args(["-i", &var("LAB_KEY"), "-L"])
        .arg(format!("{}:{}", sock.display(), var("LAB_A_SOCK")))
        .arg(format!("{}@{}", var("LAB_USER"), var("LAB_A_IP")))
        .stdin(Stdio::null())
        .spawn()
        .expect("ssh");
    wait_for("ssh -L socket", Duration::from_secs(10), || sock.exists().then_some(()));
    SshForward { child, sock }
}

/// `docker -H ssh://…` runs `ssh`, which reads its config from the passwd home, not $HOME; a
/// wrapper first on PATH hands it the lab's config. Output goes to /dev/null through the shell
/// (`docker save -o` refuses character devices).
fn docker_ssh(home: &Path, args: &str) -> Duration {
    let t0 = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker -H ssh://{}@{} {args} >/dev/null",
            var("LAB_USER"),
            var("LAB_A_IP")
        ))
        .env(
            "PATH",
            format!(
                "{}:{}",
                home.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .stdout(Stdio::null())
        .output()
        .expect("docker");
    assert!(
        out.status.success(),
        "docker -H ssh:// {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t0.elapsed()
}

fn docker_sock(sock: &Path, args: &str) -> Duration {
    let t0 = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("docker -H unix://{} {args} >/dev/null", sock.display()))
        .env("DOCKER_CONFIG", "/var/tmp/tether-e2e-docker-config")
        .output()
        .expect("docker");
    assert!(
        out.status.success(),
        "docker {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t0.elapsed()
}

fn main() {
    let image = var("LAB_BIG_IMAGE");
    let t = Tether::new();
    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", "a"]).ok();
    let dir = tempfile::Builder::new().prefix("tb").tempdir_in("/var/tmp").unwrap();
    let ssh = ssh_forward(dir.path(), "ssh-L.sock", &[]);
    let ssh_gcm = ssh_forward(dir.path(), "ssh-L-gcm.sock", &["-c", "aes128-gcm@openssh.com"]);
    std::fs::create_dir_all(dir.path().join("bin")).unwrap();
    let wrapper = dir.path().join("bin/ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
            dir.path().join("ssh_config").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("ssh_config"),
        format!(
            "Host {}\n  IdentityFile {}\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile {}\n",
            var("LAB_A_IP"),
            var("LAB_KEY"),
            dir.path().join("known_hosts").display()
        ),
    )
    .unwrap();

    let tether = t.socket("a");
    let direct = PathBuf::from(var("LAB_A_SOCK"));
    let socks: [(&str, &Path); 4] = [
        ("tether", &tether),
        ("ssh -L", &ssh.sock),
        ("ssh -L (aes-gcm)", &ssh_gcm.sock),
        ("direct socket", &direct),
    ];

    println!("Bulk: GET /images/{image}/get (docker save), best of {RUNS}, setups interleaved");
    // Round-robin so that machine noise lands on every setup alike.
    let mut runs: Vec<Vec<(u64, Duration)>> = vec![Vec::new(); socks.len()];
    for _ in 0..RUNS {
        for (i, (_, sock)) in socks.iter().enumerate() {
            runs[i].push(bulk(sock, &image));
        }
    }
    let mut mbps = Vec::new();
    for ((label, _), runs) in socks.iter().zip(&runs) {
        let (bytes, d) = runs.iter().copied().min_by_key(|(_, d)| *d).unwrap();
        let rate = bytes as f64 / d.as_secs_f64() / 1e6;
        println!(
            "  {label:<16} {:>7.1} MB/s  ({} MB in {:.2} s)",
            rate,
            bytes / 1_000_000,
            d.as_secs_f64()
        );
        mbps.push(rate);
    }
    let save = format!("save {image}");
    let (mut save_ssh, mut save_tether) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        save_ssh.push(docker_ssh(dir.path(), &save));
        save_tether.push(docker_sock(&tether, &save));
    }
    println!(
        "  docker save via docker -H ssh://: {:.2} s; via tether: {:.2} s",
        best(&save_ssh).as_secs_f64(),
        best(&save_tether).as_secs_f64()
    );

    println!("Latency: GET /_ping on a fresh connection, mean of {PINGS}");
    let mut lat = Vec::new();
    for (label, sock) in socks {
        let l = best(&(0..3).map(|_| ping_latency(sock)).collect::<Vec<_>>());
        println!("  {label:<16} {:>8.3} ms", l.as_secs_f64() * 1e3);
        lat.push(l);
    }
    let v_ssh = best(&(0..5).map(|_| docker_ssh(dir.path(), "version")).collect::<Vec<_>>());
    let v_tether = best(&(0..5).map(|_| docker_sock(&tether, "version")).collect::<Vec<_>>());
    println!(
        "  `docker version` via docker -H ssh://: {:.1} ms; via tether: {:.1} ms",
        v_ssh.as_secs_f64() * 1e3,
        v_tether.as_secs_f64() * 1e3
    );

    println!("Ratios (tether vs the others; >1 means tether is better)");
    println!("  throughput  tether / ssh -L          = {:.2}", mbps[0] / mbps[1]);
    println!("  throughput  tether / ssh -L aes-gcm  = {:.2}", mbps[0] / mbps[2]);
    println!("  throughput  tether / direct socket   = {:.2}", mbps[0] / mbps[3]);
    println!(
        "  docker save docker -H ssh:// / tether = {:.2}",
        best(&save_ssh).as_secs_f64() / best(&save_tether).as_secs_f64()
    );
    println!(
        "  ping        ssh -L / tether          = {:.2}",
        lat[1].as_secs_f64() / lat[0].as_secs_f64()
    );
    println!(
        "  docker version  -H ssh:// / tether   = {:.2}",
        v_ssh.as_secs_f64() / v_tether.as_secs_f64()
    );
}
