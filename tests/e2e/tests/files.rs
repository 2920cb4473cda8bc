//! Laptop folders and the lab: the control test that makes every test about files honest. The
//! lab's VMs share this machine's file system, so a VM's dockerd would serve a bind mount of a
//! laptop path with no sync at all; a VM started with private files sees an empty folder there,
//! as a VM on another machine would.

use std::time::Duration;

use tether_e2e::*;

#[test]
fn a_vm_with_private_files_does_not_see_the_laptops_folders_without_tether() {
    let laptop = std::path::PathBuf::from(var("LAB_LAPTOP"));
    std::fs::create_dir_all(&laptop).unwrap();
    let folder = tempfile::tempdir_in(&laptop).unwrap();
    std::fs::write(folder.path().join("on-the-laptop.txt"), "laptop").unwrap();
    let src = folder.path().display().to_string();
    let image = var("LAB_IMAGE");
    let ls = |sock: &str| {
        docker_at(
            &format!("unix://{sock}"),
            &[
                "run",
                "--rm",
                "-v",
                &format!("{src}:/app"),
                &image,
                "busybox",
                "ls",
                "-A",
                "/app",
            ],
        )
        .ok()
        .stdout
    };

    // The hazard: a VM on this machine's file system serves the laptop's folder by itself.
    assert!(ls(&var("LAB_A_SOCK")).contains("on-the-laptop.txt"));

    // A VM with private files: the same mount is an empty folder, nothing of the laptop's.
    let vm = TestVm::with_private_files("files", 69);
    let seen = ls(&vm.docker_sock());
    assert!(seen.trim().is_empty(), "the VM sees the laptop's folder: {seen}");
    // Its sshd sees the same as its dockerd: a login there finds no laptop file either.
    let ssh = std::process::Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
        .arg("-i")
        .arg(var("LAB_KEY"))
        .arg(format!("{}@{}", var("LAB_USER"), vm.ip))
        .arg(format!(
            "test -d {} && test ! -e {src}/on-the-laptop.txt",
            laptop.display()
        ))
        .env_remove("SSH_AUTH_SOCK")
        .status()
        .unwrap();
    assert!(ssh.success(), "the VM's sshd sees the laptop's file");
    // And the laptop still has it.
    assert!(folder.path().join("on-the-laptop.txt").exists());
}

/// A folder under the lab's laptop root, shared with VM `a` of a fresh Tether, the VM connected.
struct Shared {
    t: Tether,
    vm: TestVm,
    dir: tempfile::TempDir,
}

impl Shared {
    fn new(name: &str, idx: u8) -> Shared {
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

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    fn docker(&self, args: &[&str]) -> Run {
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

/// Drives one agent binary through its protocol: a greeting naming its architecture, a mirror
/// opened and scanned, a file written on condition, a change on its side reported.
fn agent_speaks_its_protocol(arch: &str, runner: Option<&str>) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use tether_sync::apply::Expect;
    use tether_sync::proto::{self, FromAgent, Outcome, ToAgent};

    let bin = tether_bin().with_file_name(format!("tether-agent-{arch}"));
    assert!(
        bin.exists(),
        "{} is missing: installers/agents.sh builds it",
        bin.display()
    );
    let home = tempfile::tempdir().unwrap();
    let mut cmd = match runner {
        Some(r) => {
            let mut c = Command::new(r);
            c.arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    let mut child = cmd
        .env("HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut next = || proto::read_frame::<FromAgent>(&mut out).unwrap().expect("a message");
    match next() {
        FromAgent::Hello {
            arch: a,
            home: h,
            version,
        } => {
            assert_eq!(a, arch);
            assert_eq!(h, home.path().display().to_string());
            assert_eq!(version, proto::VERSION);
        }
        other => panic!("{other:?}"),
    }
    let root = home.path().join("mirror");
    let mut send = |m: &ToAgent| {
        proto::write_frame(&mut input, m).unwrap();
        input.flush().unwrap();
    };
    send(&ToAgent::Open {
        unit: 1,
        root: root.display().to_string(),
        ignore: vec![],
    });
    assert!(matches!(next(), FromAgent::Scan { unit: 1, done: true, ref entries, .. } if entries.is_empty()));
    send(&ToAgent::File {
        unit: 1,
        path: "src/main.rs".into(),
        expect: Expect::Absent,
        exec: false,
        mtime: 1_700_000_000_000_000_000,
        data: b"fn main() {}".to_vec(),
        more: false,
    });
    match next() {
        FromAgent::Applied {
            unit: 1,
            path,
            outcome: Outcome::Done(Some(e)),
        } => {
            assert_eq!(path, "src/main.rs");
            assert_eq!(e.size, 12);
            assert_eq!(e.mtime, 1_700_000_000_000_000_000);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(root.join("src/main.rs")).unwrap(),
        "fn main() {}"
    );
    // A file made on its side (a container's) is reported with its content.
    std::fs::write(root.join("src/gen.rs"), "// generated").unwrap();
    let reported = wait_for("the agent's report", Duration::from_secs(20), || match next() {
        FromAgent::Changed { path, data, .. } if path == "src/gen.rs" => Some(data),
        _ => None,
    });
    assert_eq!(reported.as_deref(), Some(&b"// generated"[..]));
    drop(input);
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_x86_64_agent_speaks_its_protocol() {
    agent_speaks_its_protocol("x86_64", None);
}

#[test]
fn the_arm64_agent_speaks_its_protocol_under_qemu() {
    agent_speaks_its_protocol("aarch64", Some("qemu-aarch64"));
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

    // The link goes; both sides go on editing.
    s.t.run(&["disconnect", "a"]).ok();
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
