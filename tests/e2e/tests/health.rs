//! `tether health` against a VM with its own dockerd: the engine's figures equal what
//! `docker info`/`docker version` say, the VM's equal /proc and df (the lab's VMs share this
//! machine's kernel and disks), a wrong architecture label raises the warning in health and
//! status, and samples come quickly while someone watches.

use std::time::Duration;

use tether_e2e::*;

fn docker_fmt(sock: &str, args: &[&str]) -> String {
    docker_at(&format!("unix://{sock}"), args)
        .ok()
        .stdout
        .trim()
        .to_string()
}

fn proc_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn health_matches_the_engine_and_proc_and_warns_on_arch() {
    let vm = TestVm::new("hl", 28, true);
    let sock = vm.docker_sock();
    // One stopped and one running container, so the counts mean something (the VM's data
    // outlives the VM, so an earlier run's are cleared first).
    docker_at(&format!("unix://{sock}"), &["rm", "-f", "hl-done", "hl-up"]);
    docker_at(
        &format!("unix://{sock}"),
        &["run", "--name", "hl-done", &var("LAB_IMAGE"), "sh", "-c", "exit 0"],
    )
    .ok();
    docker_at(
        &format!("unix://{sock}"),
        &["run", "-d", "--name", "hl-up", &var("LAB_IMAGE"), "sleep", "600"],
    )
    .ok();
    let t = Tether::new();
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    };
    let other = if arch == "arm64" { "x86_64" } else { "arm64" };
    t.run(&[
        "vm",
        "add",
        "hl",
        "--host",
        &vm.ip,
        "--user",
        &var("LAB_USER"),
        "--identity",
        &var("LAB_KEY"),
        "--remote-socket",
        &sock,
        "--arch",
        arch,
        "--accept-new",
    ])
    .ok();
    t.run(&["connect", "hl"]).ok();

    let h = wait_for("a health reading", Duration::from_secs(20), || {
        let r = t.run(&["health", "hl", "--json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&r.stdout).ok()?;
        (!v["latest"]["vm"].is_null() && !v["latest"]["engine"].is_null()).then(|| v["latest"].clone())
    });
    let e = &h["engine"];
    assert_eq!(
        e["version"],
        docker_fmt(&sock, &["version", "--format", "{{.Server.Version}}"])
    );
    assert_eq!(
        e["api_version"],
        docker_fmt(&sock, &["version", "--format", "{{.Server.APIVersion}}"])
    );
    assert_eq!(
        e["kernel"],
        docker_fmt(&sock, &["info", "--format", "{{.KernelVersion}}"])
    );
    assert_eq!(
        e["os"],
        docker_fmt(&sock, &["info", "--format", "{{.OperatingSystem}}"])
    );
    assert_eq!(
        e["docker_root"],
        docker_fmt(&sock, &["info", "--format", "{{.DockerRootDir}}"])
    );
    assert_eq!(
        e["containers_total"].to_string(),
        docker_fmt(&sock, &["info", "--format", "{{.Containers}}"])
    );
    assert_eq!(
        e["containers_running"].to_string(),
        docker_fmt(&sock, &["info", "--format", "{{.ContainersRunning}}"])
    );
    assert_eq!(
        e["images"].to_string(),
        docker_fmt(&sock, &["info", "--format", "{{.Images}}"])
    );
    assert_eq!(
        (e["containers_running"].as_i64(), e["containers_total"].as_i64()),
        (Some(1), Some(2))
    );
    assert!(e["ping_ms"].as_f64().is_some_and(|p| p > 0.0 && p < 1000.0), "{e}");
    assert!(h["rtt_ms"].as_f64().is_some(), "{h}");

    let v = &h["vm"];
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(v["cpus"].as_u64(), Some(cpus as u64));
    assert_eq!(v["mem_total"].as_u64(), Some(proc_kib("MemTotal:") * 1024));
    let used = v["mem_used"].as_u64().unwrap();
    let now_used = (proc_kib("MemTotal:") - proc_kib("MemAvailable:")) * 1024;
    assert!(used.abs_diff(now_used) < 512 << 20, "used {used} vs {now_used} now");
    let load: f64 = std::fs::read_to_string("/proc/loadavg")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (v["load"][0].as_f64().unwrap() - load).abs() < 2.0,
        "{} vs {load}",
        v["load"]
    );
    let df = std::process::Command::new("df").args(["-Pk", "/"]).output().unwrap();
    let total_kib: u64 = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(v["disk_root"]["total"].as_u64(), Some(total_kib * 1024));
    assert!(v["disk_docker"]["total"].as_u64().unwrap() > 0, "{v}");
    assert!(h["arch_warning"].is_null(), "{h}");
    assert!(
        t.run(&["health", "hl"])
            .ok()
            .stdout
            .contains("containers 1 running / 2 total")
    );

    // Samples come every couple of seconds while someone watches.
    let (mut watch, lines) = t.spawn_lines(&["status", "--watch", "--json"]);
    let mut readings = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while readings < 3 && std::time::Instant::now() < deadline {
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(200))
            && l.contains("\"event\":\"health\"")
        {
            readings += 1;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(readings >= 3, "only {readings} health readings in 8 s while watched");

    // Labelled with the wrong architecture: health and status say so.
    t.run(&["vm", "rm", "hl"]).ok();
    t.run(&[
        "vm",
        "add",
        "hl",
        "--host",
        &vm.ip,
        "--user",
        &var("LAB_USER"),
        "--identity",
        &var("LAB_KEY"),
        "--remote-socket",
        &sock,
        "--arch",
        other,
        "--accept-new",
    ])
    .ok();
    t.run(&["connect", "hl"]).ok();
    let warning = wait_for("the arch warning", Duration::from_secs(20), || {
        t.status("hl")["arch_warning"].as_str().map(str::to_string)
    });
    assert!(
        warning.contains(&format!("labelled {other}")) && warning.contains(&format!("runs {arch}")),
        "{warning}"
    );
    assert!(
        t.run(&["status"]).ok().stdout.contains("warning: labelled"),
        "status lacks the warning"
    );
    assert!(
        t.run(&["health", "hl"]).ok().stdout.contains("warning"),
        "health lacks the warning"
    );
}
