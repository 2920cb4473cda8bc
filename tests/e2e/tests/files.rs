//! Laptop folders and the lab: the control test that makes every test about files honest. The
//! lab's VMs share this machine's file system, so a VM's dockerd would serve a bind mount of a
//! laptop path with no sync at all; a VM started with private files sees an empty folder there,
//! as a VM on another machine would.

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
