//! Shared folders end to end, against a lab VM that cannot see the laptop's folders (see
//! `files`): `docker run -v` gets the laptop's files, both sides' edits arrive live (a watcher in
//! the container sees them), a pause and a conflict lose nothing, and an engine restart copies
//! nothing again. Compose is in `share_compose`.

use std::time::Duration;

use tether_e2e::*;

/// A folder under the lab's laptop root, shared with VM `a` of a fresh Tether, the VM connected.
pub(crate) struct Shared {
    pub(crate) t: Tether,
    pub(crate) vm: TestVm,
    dir: tempfile::TempDir,
}

impl Shared {
    pub(crate) fn new(name: &str, idx: u8) -> Shared {
        let vm = TestVm::with_private_files(name, idx);
        let laptop = std::path::PathBuf::from(var("LAB_LAPTOP"));
        std::fs::create_dir_all(&laptop).unwrap();
        let dir = tempfile::tempdir_in(&laptop).unwrap();
        let t = Tether::new();
        t.add_vm("a", &vm.ip, 22, &vm.docker_sock()).ok();
        t.run(&["share", "add", "lab", &laptop.display().to_string(), "--vm", "a"])
            .ok();
        t.run(&["connect", "a"]).ok();
        Shared { t, vm, dir }
    }

    pub(crate) fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn docker(&self, args: &[&str]) -> Run {
        self.t.docker("a", args)
    }

    /// Runs `script` in a throwaway container with `rel` mounted at /app.
    fn run_in(&self, rel: &str, script: &str) -> String {
        let src = self.path(rel).display().to_string();
        self.docker(&[
            "run",
            "--rm",
            "-v",
            &format!("{src}:/app"),
            &var("LAB_IMAGE"),
            "busybox",
            "sh",
            "-c",
            script,
        ])
        .ok()
        .stdout
    }
}

#[test]
fn a_container_sees_the_laptops_folder_and_both_sides_edit_it_live() {
    let s = Shared::new("shr", 70);
    let app = s.path("app");
    std::fs::create_dir_all(app.join("empty")).unwrap();
    std::fs::write(app.join("hello.txt"), "hello from the laptop").unwrap();
    std::fs::write(app.join("run.sh"), "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(app.join("run.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("hello.txt", app.join("link")).unwrap();
    let mtime = std::fs::metadata(app.join("hello.txt")).unwrap().modified().unwrap();
    let mtime_s = mtime.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();

    // `docker run -v $PWD:/app` sees the laptop's files: content, exec bit, link, empty folder
    // and mtime.
    let seen = s.run_in(
        "app",
        "cat /app/hello.txt; echo; /app/run.sh; readlink /app/link; test -d /app/empty && echo empty-dir; stat -c %Y /app/hello.txt",
    );
    assert!(seen.contains("hello from the laptop"), "{seen}");
    assert!(seen.contains("ran"), "{seen}");
    assert!(seen.contains("\nhello.txt\n"), "{seen}");
    assert!(seen.contains("empty-dir"), "{seen}");
    assert!(seen.trim_end().ends_with(&mtime_s.to_string()), "{seen}");

    // The VM's own paths are untouched: its Docker socket, mounted by path.
    let sock = s.vm.docker_sock();
    let vm_side = s
        .docker(&[
            "run",
            "--rm",
            "-v",
            &format!("{sock}:/s"),
            &var("LAB_IMAGE"),
            "busybox",
            "sh",
            "-c",
            "test -S /s && echo socket",
        ])
        .ok()
        .stdout;
    assert!(vm_side.contains("socket"), "{vm_side}");

    // A running container with an inotify watcher on the mount.
    let src = app.display().to_string();
    let id = s
        .docker(&[
            "run",
            "-d",
            "-v",
            &format!("{src}:/app"),
            &var("LAB_IMAGE"),
            "inotifywait",
            "-m",
            "-e",
            "moved_to,close_write",
            "/app",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let logs = |s: &Shared| s.docker(&["logs", &id]).ok().stdout;
    // A laptop edit arrives as an ordinary write the watcher sees, never half a file.
    std::fs::write(app.join("new.txt"), "written on the laptop").unwrap();
    wait_for(
        "the container's watcher to see new.txt",
        Duration::from_secs(10),
        || logs(&s).lines().any(|l| l.ends_with(" new.txt")).then_some(()),
    );
    // Whole: the file arrived by a rename, so no event ever named it half written.
    assert!(!logs(&s).contains("CLOSE_WRITE,CLOSE new.txt"), "{}", logs(&s));
    let got = s.docker(&["exec", &id, "cat", "/app/new.txt"]).ok().stdout;
    assert_eq!(got, "written on the laptop");

    // A container's writes (as root, in a folder it made) come back to the laptop.
    s.docker(&[
        "exec",
        &id,
        "sh",
        "-c",
        "mkdir -p /app/gen && echo report > /app/gen/out.txt",
    ])
    .ok();
    wait_for("the container's file on the laptop", Duration::from_secs(10), || {
        std::fs::read_to_string(app.join("gen/out.txt"))
            .ok()
            .filter(|c| c == "report\n")
    });

    // ... and the laptop can delete them again, in the folder root made.
    std::fs::remove_dir_all(app.join("gen")).unwrap();
    wait_for("the deletion in the container", Duration::from_secs(10), || {
        s.docker(&["exec", &id, "sh", "-c", "test -e /app/gen || echo gone"])
            .ok()
            .stdout
            .contains("gone")
            .then_some(())
    });

    // A rename on the laptop is a rename in the container.
    std::fs::rename(app.join("new.txt"), app.join("renamed.txt")).unwrap();
    wait_for("the rename in the container", Duration::from_secs(10), || {
        let ls = s.docker(&["exec", &id, "ls", "/app"]).ok().stdout;
        (ls.contains("renamed.txt") && !ls.contains("new.txt")).then_some(())
    });
    // The laptop's files are untouched by all of it.
    assert_eq!(
        std::fs::read_to_string(app.join("hello.txt")).unwrap(),
        "hello from the laptop"
    );
    s.docker(&["rm", "-f", &id]).ok();
}

#[test]
fn a_pause_keeps_both_sides_edits_a_conflict_keeps_both_versions_and_a_restart_copies_nothing() {
    let s = Shared::new("shc", 71);
    let image = var("LAB_IMAGE");
    // A source under a shared root that does not exist: Docker's own error, naming Tether.
    let missing = s.docker(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,source={},target=/app", s.path("missing").display()),
        &image,
        "true",
    ]);
    assert_eq!(missing.code, 125, "{}", missing.stderr);
    for needle in [
        "Error response from daemon: invalid mount config for type \"bind\": bind source path does not exist",
        "Tether",
        "create it",
    ] {
        assert!(missing.stderr.contains(needle), "{needle}: {}", missing.stderr);
    }

    let app = s.path("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("notes.txt"), "first").unwrap();
    std::fs::write(app.join("keep.txt"), "unchanged").unwrap();
    let src = app.display().to_string();
    let id = s
        .docker(&["run", "-d", "-v", &format!("{src}:/app"), &image, "sleep", "600"])
        .ok()
        .stdout
        .trim()
        .to_string();
    // The VM's own engine, reached without Tether (the link to it is cut below).
    let vm = format!("unix://{}", s.vm.docker_sock());
    let in_vm = |cmd: &str| docker_at(&vm, &["exec", &id, "sh", "-c", cmd]).ok().stdout;
    let inode = in_vm("stat -c %i /app/keep.txt");

    // The running agent's staging folder (named for its process) is the user's alone. The VM's
    // home is this machine's: only the laptop's folders are hidden from it.
    let staging = std::path::PathBuf::from(format!("/home/{}/.local/share/tether/staging", var("LAB_USER")));
    let agent: Vec<String> =
        s.vm.pids()
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .unwrap_or_default()
                    .starts_with("tether-agent")
            })
            .collect();
    assert_eq!(agent.len(), 1, "the VM's agent processes: {agent:?}");
    let ours: Vec<std::path::PathBuf> = std::fs::read_dir(&staging)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{}-", agent[0])))
        .map(|e| e.path())
        .collect();
    assert_eq!(ours.len(), 1, "the agent's staging folder in {}", staging.display());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(ours[0].metadata().unwrap().permissions().mode() & 0o777, 0o700);
    // The link goes; both sides go on editing.
    s.t.run(&["disconnect", "a"]).ok();
    // The agent ended with the link and took its staging folder with it.
    wait_for("the agent's staging folder to go", Duration::from_secs(10), || {
        (!ours[0].exists()).then_some(())
    });
    std::fs::write(app.join("notes.txt"), "the laptop's edit").unwrap();
    std::fs::write(app.join("laptop-offline.txt"), "made while apart").unwrap();
    in_vm("echo -n 'the container edit' > /app/notes.txt; echo -n vm > /app/vm-offline.txt");
    let share = || s.t.run(&["share", "ls", "--vm", "a"]).ok().stdout;
    assert!(share().contains("paused"), "{}", share());

    // Back: both sides converge, nothing lost.
    s.t.run(&["connect", "a"]).ok();
    wait_for(
        "the VM's file made while apart, on the laptop",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(app.join("vm-offline.txt"))
                .ok()
                .filter(|c| c == "vm")
        },
    );
    wait_for(
        "the laptop's file made while apart, on the VM",
        Duration::from_secs(20),
        || {
            in_vm("cat /app/laptop-offline.txt 2>/dev/null")
                .contains("made while apart")
                .then_some(())
        },
    );
    // The conflict: the laptop's version keeps the name on both sides, the container's is kept
    // beside it on both sides, and it is reported.
    let copy = wait_for("the conflict copy on the laptop", Duration::from_secs(20), || {
        std::fs::read_dir(&app)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("notes.conflict-vm-"))
            .map(|e| e.file_name().to_string_lossy().into_owned())
    });
    assert_eq!(std::fs::read_to_string(app.join(&copy)).unwrap(), "the container edit");
    assert_eq!(
        std::fs::read_to_string(app.join("notes.txt")).unwrap(),
        "the laptop's edit"
    );
    wait_for(
        "the laptop's version and the copy in the container",
        Duration::from_secs(20),
        || {
            let seen = in_vm(&format!("cat /app/notes.txt; echo; cat /app/{copy}"));
            (seen == "the laptop's edit\nthe container edit").then_some(())
        },
    );
    let listed = s.t.run(&["share", "ls", "--vm", "a", "--json"]).ok().stdout;
    assert!(listed.contains(&copy), "{listed}");

    // An engine restart resumes from what both sides hold: an unchanged file is not copied
    // again (its mirror keeps its inode), and a change made meanwhile still arrives.
    let mut t = s.t;
    t.stop_daemon();
    std::fs::write(app.join("after-restart.txt"), "new").unwrap();
    t.start_daemon();
    t.run(&["connect", "a"]).ok();
    // The container's next mount of the folder waits for the sync to catch up.
    let seen = t
        .docker(
            "a",
            &[
                "run",
                "--rm",
                "-v",
                &format!("{src}:/app"),
                &image,
                "cat",
                "/app/after-restart.txt",
            ],
        )
        .ok()
        .stdout;
    assert_eq!(seen, "new");
    assert_eq!(
        in_vm("stat -c %i /app/keep.txt"),
        inode,
        "an unchanged file was copied again"
    );
    docker_at(&vm, &["rm", "-f", &id]).ok();
}

#[test]
fn a_request_tether_cannot_read_gets_a_400_and_the_socket_goes_on() {
    use std::io::{Read, Write};
    let s = Shared::new("shbad", 73);
    let sock = s.t.socket("a");
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // A good request first, on the same connection: answered by the VM's engine.
    c.write_all(b"GET /version HTTP/1.1\r\nHost: docker\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\"ApiVersion\"") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "the connection closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    // Then one whose framing cannot be followed: a clear 400 in Docker's format, and the end.
    c.write_all(b"POST /containers/create HTTP/1.1\r\nContent-Length: twelve\r\n\r\n{}")
        .unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    let text = String::from_utf8_lossy(&rest);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(
        text.contains("\"message\":\"tether: bad request: a Content-Length that is not a number\""),
        "{text}"
    );
    // The engine and the socket are unharmed.
    assert!(
        s.docker(&["version", "--format", "{{.Server.Version}}"])
            .ok()
            .stdout
            .trim()
            .len()
            > 1
    );
}
