//! Compose projects on the lab's dockerd: `tether containers` groups containers by their
//! `com.docker.compose.project` label, and starts, stops and restarts a whole project in the
//! order Compose would (a service after what it depends on, and stopped before it).

use std::time::Duration;

use tether_e2e::*;

/// A long-running container with Compose's labels (as `docker compose up` makes them).
fn compose_container(sock: &str, project: &str, service: &str, depends_on: &str) -> String {
    let name = format!("{project}-{service}-1");
    let mut args = vec![
        "run".to_string(),
        "-d".into(),
        "--name".into(),
        name.clone(),
        "--label".into(),
        format!("com.docker.compose.project={project}"),
        "--label".into(),
        format!("com.docker.compose.service={service}"),
    ];
    if !depends_on.is_empty() {
        args.extend(["--label".into(), format!("com.docker.compose.depends_on={depends_on}")]);
    }
    // Exits on SIGTERM at once, as a well-behaved service does (a bare `sleep` as pid 1 ignores
    // it, and every stop would wait out Docker's 10 s grace).
    args.extend([
        var("LAB_IMAGE"),
        "sh".into(),
        "-c".into(),
        "trap 'exit 0' TERM; sleep 100000 & wait".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker_at(sock, &args).ok();
    name
}

fn state_of(sock: &str, name: &str) -> String {
    docker_at(sock, &["inspect", "-f", "{{.State.Status}}", name])
        .ok()
        .stdout
        .trim()
        .to_string()
}

#[test]
fn a_compose_project_is_listed_together_and_acted_on_whole_in_order() {
    let vm = TestVm::new("comp", 41, true);
    let sock = format!("unix://{}", vm.docker_sock());
    // The VM's engine keeps its containers from an earlier run.
    docker_at(
        &sock,
        &[
            "rm",
            "-f",
            "shop-db-1",
            "shop-api-1",
            "shop-web-1",
            "blog-app-1",
            "loose",
        ],
    );
    let db = compose_container(&sock, "shop", "db", "");
    let api = compose_container(&sock, "shop", "api", "db:service_started:false");
    let web = compose_container(&sock, "shop", "web", "api:service_started:false");
    let other = compose_container(&sock, "blog", "app", "");
    docker_at(
        &sock,
        &["run", "-d", "--name", "loose", &var("LAB_IMAGE"), "sleep", "100000"],
    )
    .ok();

    let t = Tether::new();
    t.add_vm(&vm.name, &vm.ip, 22, &vm.docker_sock()).ok();
    t.run(&["connect", &vm.name]).ok();

    // Listed by project, each container with its service.
    let out = t.run(&["containers", &vm.name]).ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no '{needle}' in:\n{out}"))
    };
    assert!(at("loose") < at("project blog"), "{out}");
    assert!(at("project blog") < at("project shop"), "{out}");
    assert!(lines[at("project shop")].contains("3 containers, 3 running"), "{out}");
    for c in [&db, &api, &web] {
        assert!(at(c) > at("project shop") && lines[at(c)].starts_with("  "), "{out}");
    }
    assert!(lines[at(&api)].contains("[api]"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&t.run(&["containers", &vm.name, "--json"]).ok().stdout).unwrap();
    let web_json = json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == web.as_str())
        .unwrap();
    assert_eq!(web_json["project"], "shop");
    assert_eq!(web_json["service"], "web");

    // Stopped whole, dependents first; the other project and the loose container keep running.
    let stop = t
        .run(&["containers", &vm.name, "--project", "shop", "--stop"])
        .ok()
        .stdout;
    assert_eq!(stop.trim(), format!("stopped project shop: {web}, {api}, {db}"));
    for c in [&db, &api, &web] {
        assert_eq!(state_of(&sock, c), "exited", "{c}");
    }
    assert_eq!(state_of(&sock, &other), "running");
    assert_eq!(state_of(&sock, "loose"), "running");

    // Started whole, dependencies first.
    let start = t
        .run(&["containers", &vm.name, "--project", "shop", "--start"])
        .ok()
        .stdout;
    assert_eq!(start.trim(), format!("started project shop: {db}, {api}, {web}"));
    for c in [&db, &api, &web] {
        assert_eq!(state_of(&sock, c), "running", "{c}");
    }
    // A restart really restarts: each container's start time moves on.
    let started_at = |c: &str| {
        docker_at(&sock, &["inspect", "-f", "{{.State.StartedAt}}", c])
            .ok()
            .stdout
    };
    let before = started_at(&web);
    t.run(&["containers", &vm.name, "--project", "shop", "--restart"]).ok();
    wait_for("the restarted web container", Duration::from_secs(10), || {
        (started_at(&web) != before && state_of(&sock, &web) == "running").then_some(())
    });

    // Bad input names the way out, and an action needs a project.
    let none = t.run(&["containers", &vm.name, "--project", "nope", "--stop"]);
    assert_ne!(none.code, 0);
    assert!(
        none.stderr.contains("no container belongs to a Compose project 'nope'"),
        "{}",
        none.stderr
    );
    let bare = t.run(&["containers", &vm.name, "--stop"]);
    assert_ne!(bare.code, 0);
    assert!(bare.stderr.contains("--project"), "{}", bare.stderr);
}
