//! Docker contexts, through the real docker CLI: `tether-NAME` per VM and `tether` for the active
//! VM appear in `docker context ls`, reach the right engine, follow `tether use` and `vm rm`, and
//! leave the user's own contexts and current context alone.

use std::path::Path;
use std::process::Command;

use tether_e2e::*;

fn docker(config: &Path, args: &[&str]) -> Run {
    let out = Command::new("docker")
        .args(args)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .output()
        .expect("docker CLI");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).trim().into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn names(config: &Path) -> Vec<String> {
    docker(config, &["context", "ls", "--format", "{{.Name}}"])
        .ok()
        .stdout
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn contexts_follow_the_vms_and_touch_nothing_else() {
    let t = Tether::new();
    let cfg = t.dir.path().join(".docker");
    docker(
        &cfg,
        &["context", "create", "mine", "--docker", "host=tcp://127.0.0.1:9"],
    )
    .ok();
    let mine_before = docker(&cfg, &["context", "inspect", "mine"]).ok().stdout;

    t.add_vm("a", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    t.add_vm("b", &var("LAB_B_IP"), 22, &var("LAB_B_SOCK")).ok();
    let ls = names(&cfg);
    for want in ["default", "mine", "tether", "tether-a", "tether-b"] {
        assert!(ls.contains(&want.to_string()), "{want} missing from {ls:?}");
    }
    assert_eq!(
        docker(&cfg, &["context", "show"]).ok().stdout,
        "default",
        "the current context was changed"
    );

    // Each context reaches its own VM's engine (the lab's engines keep their data apart).
    t.run(&["connect", "a"]).ok();
    t.run(&["connect", "b"]).ok();
    let root = |ctx: &str| {
        docker(&cfg, &["--context", ctx, "info", "--format", "{{.DockerRootDir}}"])
            .ok()
            .stdout
    };
    assert!(root("tether-a").ends_with("/a"), "{}", root("tether-a"));
    assert!(root("tether-b").ends_with("/b"), "{}", root("tether-b"));
    // `tether` is the active VM: the first one added, then whichever `tether use` picks.
    assert!(root("tether").ends_with("/a"), "{}", root("tether"));
    t.run(&["use", "b"]).ok();
    assert!(root("tether").ends_with("/b"), "{}", root("tether"));

    // Removing a VM removes its context; the user's context is as it was.
    t.run(&["vm", "rm", "a"]).ok();
    let ls = names(&cfg);
    assert!(!ls.contains(&"tether-a".to_string()), "{ls:?}");
    assert!(ls.contains(&"tether-b".to_string()), "{ls:?}");
    assert_eq!(docker(&cfg, &["context", "inspect", "mine"]).ok().stdout, mine_before);
    assert_eq!(docker(&cfg, &["context", "show"]).ok().stdout, "default");
}
