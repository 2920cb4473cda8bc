//! Automatic port forwarding against a real dockerd (each test has a VM and engine of its own,
//! since an engine forwards every container of its VM): a container's published port is
//! served on the laptop within a second of the container starting (driven by Docker's event
//! stream), moves to the next free port when taken, leaves with the container, never overrides a
//! manual mapping, moves privileged ports up, shows UDP as not forwarded, and survives a burst.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use tether_e2e::*;

/// A VM with its own dockerd, and the docker CLI on the VM (as a user there would run it).
struct DockerVm {
    vm: TestVm,
}

impl DockerVm {
    /// The VM's engine keeps its data across runs: containers of an earlier run are removed.
    fn new(name: &str, idx: u8) -> Self {
        let me = DockerVm {
            vm: TestVm::new(name, idx, true),
        };
        me.clear();
        me
    }

    fn clear(&self) {
        let old = self.docker(&["ps", "-aq"]).stdout;
        let ids: Vec<&str> = old.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            self.docker(&args);
        }
    }

    fn docker(&self, args: &[&str]) -> Run {
        docker_at(&format!("unix://{}", self.vm.docker_sock()), args)
    }

    /// Starts a busybox web server publishing `spec` (docker's -p syntax); returns once it runs.
    fn web(&self, name: &str, spec: &str) {
        self.docker(&[
            "run",
            "-d",
            "--name",
            name,
            "-p",
            spec,
            &var("LAB_IMAGE"),
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ])
        .ok();
    }

    /// A Tether with this VM added, automatic forwarding on, and connected.
    fn tether(&self) -> Tether {
        let t = Tether::new();
        t.add_vm("a", &self.vm.ip, 22, &self.vm.docker_sock()).ok();
        t.run(&["tunnel", "a", "--auto", "on"]).ok();
        t.run(&["connect", "a"]).ok();
        t
    }
}

impl Drop for DockerVm {
    fn drop(&mut self) {
        self.clear();
    }
}

fn serves(port: u16) -> bool {
    http_tcp(port, "/index.html")
        .map(|(status, _)| status.contains("200"))
        .unwrap_or(false)
}

fn forward(st: &serde_json::Value, remote: u16) -> Option<&serde_json::Value> {
    st["forwards"]
        .as_array()?
        .iter()
        .find(|f| f["remote"] == remote && f["auto"] == true)
}

#[test]
fn published_ports_follow_their_containers() {
    let vm = DockerVm::new("afa", 26);
    let t = vm.tether();
    let tag = "f";

    // Started: served on the same port within a second.
    let p = free_port();
    let started = Instant::now();
    vm.web(&format!("af-{tag}-web"), &format!("{p}:80"));
    let ran = started.elapsed();
    let since_run = Instant::now();
    wait_for("the forward to serve", Duration::from_secs(5), || {
        serves(p).then_some(())
    });
    let latency = since_run.elapsed();
    eprintln!(
        "container started ({:.0} ms for docker run); served on 127.0.0.1:{p} {:.0} ms later",
        ran.as_secs_f64() * 1e3,
        latency.as_secs_f64() * 1e3
    );
    assert!(latency < Duration::from_secs(1), "took {latency:?}");
    let st = t.status("a");
    let f = forward(&st, p).unwrap_or_else(|| panic!("{st}"));
    assert_eq!(f["local"], p);
    assert_eq!(f["container"], format!("af-{tag}-web"));
    assert!(
        t.run(&["status"])
            .ok()
            .stdout
            .contains(&format!("auto for af-{tag}-web"))
    );

    // Taken on the laptop: the next free port, shown as such.
    let q = free_port();
    let _squatter = TcpListener::bind(("127.0.0.1", q)).unwrap();
    vm.web(&format!("af-{tag}-busy"), &format!("{q}:80"));
    let moved = wait_for("the moved forward", Duration::from_secs(5), || {
        forward(&t.status("a"), q)
            .and_then(|f| f["local"].as_u64())
            .map(|l| l as u16)
    });
    assert_ne!(moved, q);
    assert!(serves(moved));
    assert!(
        t.run(&["status"])
            .ok()
            .stdout
            .contains(&format!("(port {q} was taken)"))
    );

    // Privileged ports move up by 10000 unless allowed.
    vm.web(&format!("af-{tag}-low"), "81:80");
    let low = wait_for("the privileged forward", Duration::from_secs(5), || {
        forward(&t.status("a"), 81).and_then(|f| f["local"].as_u64())
    });
    assert_eq!(low, 10081);
    assert!(serves(10081));
    // …and keep their number when the user allows it.
    t.run(&["tunnel", "--privileged-ports", "on"]).ok();
    vm.web(&format!("af-{tag}-low2"), "82:80");
    let low2 = wait_for("the allowed privileged forward", Duration::from_secs(5), || {
        forward(&t.status("a"), 82).and_then(|f| f["local"].as_u64())
    });
    assert_eq!(low2, 82);
    assert!(serves(82));

    // UDP is shown, not pretended.
    let u = free_port();
    vm.docker(&[
        "run",
        "-d",
        "--name",
        &format!("af-{tag}-udp"),
        "-p",
        &format!("{u}:53/udp"),
        &var("LAB_IMAGE"),
        "sleep",
        "600",
    ])
    .ok();
    wait_for("the UDP port listed", Duration::from_secs(5), || {
        t.status("a")["unforwarded"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["port"] == u).cloned())
    });
    assert!(
        t.run(&["status"])
            .ok()
            .stdout
            .contains(&format!("UDP port {u} of af-{tag}-udp: not forwarded"))
    );
    let containers = t.run(&["containers", "a"]).ok().stdout;
    assert!(containers.contains(&format!("{u}/udp (not forwarded)")), "{containers}");
    assert!(
        containers.contains(&format!("{p}/tcp → 127.0.0.1:{p} (auto)")),
        "{containers}"
    );

    // A manual mapping of a published port wins: no automatic forward for it.
    let m_remote = free_port();
    let m_local = free_port();
    t.run(&["tunnel", "a", "-p", &format!("{m_local}:{m_remote}")]).ok();
    vm.web(&format!("af-{tag}-manual"), &format!("{m_remote}:80"));
    wait_for("the manual tunnel to serve", Duration::from_secs(5), || {
        serves(m_local).then_some(())
    });
    let st = t.status("a");
    assert!(forward(&st, m_remote).is_none(), "{st}");

    // Stopped: the forward goes, and the port is free again.
    vm.docker(&["stop", "-t", "1", &format!("af-{tag}-web")]).ok();
    let stopped = Instant::now();
    wait_for("the forward to go", Duration::from_secs(5), || {
        forward(&t.status("a"), p).is_none().then_some(())
    });
    eprintln!(
        "forward removed {:.0} ms after docker stop returned",
        stopped.elapsed().as_secs_f64() * 1e3
    );
    assert!(TcpListener::bind(("127.0.0.1", p)).is_ok(), "port {p} still bound");

    // Off: every automatic forward goes; manual ones stay.
    t.run(&["tunnel", "a", "--auto", "off"]).ok();
    wait_for("automatic forwards to go", Duration::from_secs(5), || {
        let st = t.status("a");
        (!st["forwards"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["auto"] == true))
        .then_some(())
    });
    assert!(serves(m_local));
}

#[test]
fn a_burst_of_twenty_containers_leaks_nothing() {
    let vm = DockerVm::new("afb", 27);
    let t = vm.tether();
    let tag = "b";
    let ports: Vec<u16> = (0..20).map(|_| free_port()).collect();
    let names: Vec<String> = (0..20).map(|i| format!("af-{tag}-b{i}")).collect();
    std::thread::scope(|s| {
        for (n, p) in names.iter().zip(&ports) {
            let vm = &vm;
            s.spawn(move || vm.web(n, &format!("{p}:80")));
        }
    });
    for p in &ports {
        wait_for(&format!("port {p} forwarded"), Duration::from_secs(10), || {
            serves(*p).then_some(())
        });
    }
    let st = t.status("a");
    assert_eq!(
        st["forwards"]
            .as_array()
            .map(|a| a.iter().filter(|f| f["auto"] == true).count()),
        Some(20),
        "{st}"
    );

    let mut args = vec!["rm", "-f"];
    args.extend(names.iter().map(String::as_str));
    vm.docker(&args).ok();
    wait_for("every forward to go", Duration::from_secs(10), || {
        t.status("a")["forwards"]
            .as_array()
            .is_some_and(|a| a.is_empty())
            .then_some(())
    });
    for p in &ports {
        assert!(TcpListener::bind(("127.0.0.1", *p)).is_ok(), "port {p} leaked");
    }
}

#[test]
fn service_ports_and_labelled_containers_are_not_forwarded_and_say_why() {
    let vm = DockerVm::new("afc", 62);
    let t = vm.tether();
    let tag = std::process::id();
    let run = |name: &str, spec: &str, labels: &[&str]| {
        let name = format!("af-{tag}-{name}");
        let mut args = vec!["run", "-d", "--name", name.as_str(), "-p", spec];
        for l in labels {
            args.extend(["--label", l]);
        }
        let image = var("LAB_IMAGE");
        args.extend([image.as_str(), "httpd", "-f", "-p", "80", "-h", "/www"]);
        vm.docker(&args).ok();
    };
    // A database's port: laptop clients of a local Postgres would reach the container.
    run("pg", "5432:80", &[]);
    // The same kind of port, which its container asks for explicitly.
    run("cache", "6379:80", &["dev.tether.forward.6379=true"]);
    // A container that asks for none of its ports, and one that asks it for one.
    let (a, b, c) = (free_port(), free_port(), free_port());
    run("quiet", &format!("{a}:80"), &["dev.tether.forward=false"]);
    run("half", &format!("{b}:80"), &[&format!("dev.tether.forward.{b}=false")]);
    // Another container's label about port b changes nothing for this one.
    run("other", &format!("{c}:80"), &[&format!("dev.tether.forward.{b}=false")]);

    // The plain one and the opted-in one are served; the others are listed with the reason.
    wait_for("the allowed forwards", Duration::from_secs(10), || {
        (serves(c) && serves(6379)).then_some(())
    });
    let st = wait_for("every kept-back port listed", Duration::from_secs(10), || {
        let st = t.status("a");
        (st["unforwarded"].as_array().map(|u| u.len()) == Some(3)).then_some(st)
    });
    let reason = |port: u16| {
        st["unforwarded"]
            .as_array()
            .and_then(|u| u.iter().find(|x| x["port"] == port))
            .map(|x| x["reason"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert!(reason(5432).contains("well-known service port"), "{st}");
    assert!(reason(a).contains("dev.tether.forward=false"), "{st}");
    assert!(reason(b).contains(&format!("dev.tether.forward.{b}=false")), "{st}");
    for port in [5432, a, b] {
        assert!(forward(&st, port).is_none(), "{port} was forwarded: {st}");
    }
    // (Whether the laptop port is free says nothing here: other tests' forwards move up to free
    // ports. This engine's forwards are what count, and none serves them.)
    let containers = t.run(&["containers", "a"]).ok().stdout;
    assert!(containers.contains("5432/tcp (not forwarded)"), "{containers}");
    assert!(
        containers.contains("5432/tcp not forwarded: 5432 is a well-known service port"),
        "{containers}"
    );
    assert!(containers.contains("6379/tcp → 127.0.0.1:6379 (auto)"), "{containers}");
}

/// A VM whose health sample hangs (its load script never answers within the sample's 10 s) still
/// has a new container's port forwarded at once: container events never wait for a sample.
#[test]
fn a_hanging_health_sample_never_holds_up_a_new_containers_forward() {
    let vm = DockerVm::new("afslow", 68);
    // sshd on 2222 runs every command through this script, which holds the health script (the
    // one that reads /proc/loadavg) for a minute and runs everything else.
    let script = "/var/lib/tether-lab/slow-health.sh";
    std::fs::write(
        script,
        "#!/bin/sh\ncase \"$SSH_ORIGINAL_COMMAND\" in *loadavg*) exec sleep 60 ;; esac\nexec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n",
    )
    .unwrap();
    std::fs::set_permissions(script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    lab_cmd(&["sshd", &vm.vm.name, "2222", &format!("ForceCommand={script}")]);
    let t = Tether::new();
    t.add_vm("slow", &vm.vm.ip, 2222, &vm.vm.docker_sock()).ok();
    t.run(&["tunnel", "slow", "--auto", "on"]).ok();
    t.run(&["connect", "slow"]).ok();
    // The first sample is under way, held on the VM.
    let held = wait_for("the health script to hang on the VM", Duration::from_secs(10), || {
        let s = vm.vm.pids_named("sleep");
        (!s.is_empty()).then_some(s)
    });

    let p = free_port();
    vm.web("af-slow-web", &format!("{p}:80"));
    let started = Instant::now();
    // Within 5 s, while the sample would hold a monitor that waited on it for 10.
    wait_for(
        "the new container's port to be forwarded",
        Duration::from_secs(5),
        || {
            forward(&t.status("slow"), p)
                .filter(|f| f["state"] == "listening")
                .map(|_| ())
        },
    );
    eprintln!("forwarded {:?} after the container started", started.elapsed());
    assert!(
        held.iter().any(|pid| vm.vm.pids_named("sleep").contains(pid)),
        "the sample was no longer held when the forward came"
    );
    assert!(serves(p), "the forwarded port does not serve the container");
}
