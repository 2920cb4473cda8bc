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
    // It widened the pipe from sshd (here, from this test) past sshd's 256 KiB reads, so sshd
    // never holds a backlog (the agent's pipe.rs).
    let pipe = rustix::pipe::fcntl_getpipe_size(&input).unwrap();
    assert!(pipe >= 256 * 1024, "the agent's stdin pipe holds {pipe} bytes");
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
    // (A report may come while the file is still being written, empty; a later one, after the
    // write closed, carries it whole.)
    wait_for(
        "the agent's report of the whole file",
        Duration::from_secs(20),
        || match next() {
            FromAgent::Changed {
                path, data: Some(d), ..
            } if path == "src/gen.rs" && d == b"// generated" => Some(()),
            _ => None,
        },
    );
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
