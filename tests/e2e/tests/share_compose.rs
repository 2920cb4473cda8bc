//! Shared folders with Compose, against the same lab VM as `share`: Compose `volumes:` get the
//! laptop's folders and watchers see edits, and Compose v2's `watch` syncs and rebuilds through
//! the proxy (BuildKit's streams included).

use std::time::Duration;

use tether_e2e::*;

use crate::share::Shared;

#[test]
fn compose_volumes_get_the_laptops_folders_and_watchers_see_edits() {
    let s = Shared::new("shcomp", 72);
    let project = s.path("project");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::create_dir_all(project.join("data")).unwrap();
    std::fs::write(project.join("src/index.js"), "console.log('v1')").unwrap();
    std::fs::write(project.join("data/seed.sql"), "select 1;").unwrap();
    // Short and long volume syntax, relative to the project, as developers write them.
    std::fs::write(
        project.join("docker-compose.yml"),
        format!(
            "version: '3.8'\nservices:\n  app:\n    image: {}\n    command: [\"inotifywait\", \"-m\", \"-e\", \"moved_to,close_write\", \"/src\"]\n    volumes:\n      - ./src:/src\n      - type: bind\n        source: ./data\n        target: /data\n",
            var("LAB_IMAGE")
        ),
    )
    .unwrap();
    let host = format!("unix://{}", s.t.socket("a").display());
    let compose = |args: &[&str]| {
        let out = std::process::Command::new("docker-compose")
            .args(["-p", "shcomp"])
            .args(args)
            .current_dir(&project)
            .env("DOCKER_HOST", &host)
            .env("HOME", s.t.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    compose(&["up", "-d"]);
    let exec = |cmd: &str| s.docker(&["exec", "shcomp_app_1", "sh", "-c", cmd]).ok().stdout;
    assert_eq!(exec("cat /src/index.js /data/seed.sql"), "console.log('v1')select 1;");
    // A save in the editor reaches the dev server's watcher.
    std::fs::write(project.join("src/index.js"), "console.log('v2')").unwrap();
    wait_for(
        "the watcher in the Compose service to see the save",
        Duration::from_secs(10),
        || {
            s.docker(&["logs", "shcomp_app_1"])
                .ok()
                .stdout
                .lines()
                .any(|l| l.ends_with(" index.js"))
                .then_some(())
        },
    );
    assert_eq!(exec("cat /src/index.js"), "console.log('v2')");
    compose(&["down"]);
}

/// Compose v2's `watch` through Tether's socket: it builds with BuildKit (the `/session` and
/// `/grpc` streams pass through the proxy), its `sync` action copies a laptop edit into the
/// running container through the API, its `rebuild` action builds again and recreates the
/// container, and a `volumes:` bind mount beside them is still the laptop's folder after the
/// recreate.
#[test]
fn compose_watch_syncs_and_rebuilds_through_tether() {
    let s = Shared::new("shwatch", 75);
    let project = s.path("watch");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::create_dir_all(project.join("data")).unwrap();
    std::fs::write(project.join("src/hello.txt"), "v1").unwrap();
    std::fs::write(project.join("version"), "1").unwrap();
    std::fs::write(project.join("data/seed"), "seed").unwrap();
    std::fs::write(
        project.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY src /app/src\nCOPY version /app/version\nCMD [\"sleep\", \"600\"]\n",
            var("LAB_IMAGE")
        ),
    )
    .unwrap();
    std::fs::write(
        project.join("compose.yaml"),
        "services:\n  app:\n    build: .\n    volumes:\n      - ./data:/data\n    develop:\n      watch:\n        - action: sync\n          path: ./src\n          target: /app/src\n        - action: rebuild\n          path: ./version\n",
    )
    .unwrap();
    let host = format!("unix://{}", s.t.socket("a").display());
    let compose2 = var("LAB_COMPOSE2");
    let log = s.path("watch.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut watch = std::process::Command::new(&compose2)
        .args(["-p", "shwatch", "watch"])
        .current_dir(&project)
        .env("DOCKER_HOST", &host)
        .env("HOME", s.t.dir.path())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let exec = |cmd: &str| s.docker(&["exec", "shwatch-app-1", "sh", "-c", cmd]);
    // Built with BuildKit through the proxy, started, and watching.
    wait_for("compose to build, start and watch", Duration::from_secs(120), || {
        let text = log_text();
        assert!(watch.try_wait().unwrap().is_none(), "compose watch exited:\n{text}");
        text.to_lowercase().contains("watch enabled").then_some(())
    });
    // BuildKit's own progress lines: the build went over `/session` and `/grpc`, not the
    // classic builder's single request.
    let text = log_text();
    assert!(
        text.contains("load build definition from Dockerfile") && !text.contains("Step 1/"),
        "not a BuildKit build:\n{text}"
    );
    assert_eq!(
        exec("cat /app/src/hello.txt /app/version /data/seed").ok().stdout,
        "v11seed"
    );
    let images = s
        .docker(&["image", "inspect", "shwatch-app", "--format", "{{.Id}}"])
        .ok()
        .stdout;
    // `sync`: a saved file is copied into the running container, which goes on running.
    let started = s
        .docker(&["inspect", "shwatch-app-1", "--format", "{{.Id}}"])
        .ok()
        .stdout;
    std::fs::write(project.join("src/hello.txt"), "v2").unwrap();
    wait_for("the sync action to copy the save in", Duration::from_secs(30), || {
        (exec("cat /app/src/hello.txt").stdout == "v2").then_some(())
    });
    assert_eq!(
        s.docker(&["inspect", "shwatch-app-1", "--format", "{{.Id}}"])
            .ok()
            .stdout,
        started,
        "a sync must not recreate the container:\n{}",
        log_text()
    );
    // `rebuild`: a new image, a new container, and the bind mount is still the laptop's folder.
    std::fs::write(project.join("version"), "2").unwrap();
    wait_for(
        "the rebuild action to build and recreate",
        Duration::from_secs(120),
        || (exec("cat /app/version").stdout == "2").then_some(()),
    );
    let rebuilt = s
        .docker(&["image", "inspect", "shwatch-app", "--format", "{{.Id}}"])
        .ok()
        .stdout;
    assert_ne!(rebuilt, images, "the rebuild made no new image:\n{}", log_text());
    std::fs::write(project.join("data/seed"), "seed2").unwrap();
    wait_for(
        "the recreated container's bind mount to follow the laptop",
        Duration::from_secs(10),
        || (exec("cat /data/seed").stdout == "seed2").then_some(()),
    );
    exec("echo made-in-container > /data/out").ok();
    wait_for(
        "the container's write to reach the laptop",
        Duration::from_secs(10),
        || (std::fs::read_to_string(project.join("data/out")).ok()? == "made-in-container\n").then_some(()),
    );
    let _ = watch.kill();
    let _ = watch.wait();
    let down = std::process::Command::new(&compose2)
        .args(["-p", "shwatch", "down"])
        .current_dir(&project)
        .env("DOCKER_HOST", &host)
        .env("HOME", s.t.dir.path())
        .output()
        .unwrap();
    assert!(
        down.status.success(),
        "compose down: {}",
        String::from_utf8_lossy(&down.stderr)
    );
}
