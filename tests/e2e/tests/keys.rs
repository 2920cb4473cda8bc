//! Keys in a real Secret Service (gnome-keyring on a private D-Bus session), against the lab:
//! generate, import (with a passphrase), show and remove; a locked, empty or absent keychain is a
//! clear error, and one restarted under a running engine is picked up again; a key is installed with one password login and then rotated, after which the VM
//! refuses the old key (checked with OpenSSH's own client) and takes the new one.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tether_e2e::keyring::{SecretService, bare_session_bus, session_bus};
use tether_e2e::*;

const SERVICE: &str = "dev.tether.ssh-key";

/// Files under `dir` holding a private key.
fn private_key_files(dir: &Path) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).contains("PRIVATE KEY"))
                .unwrap_or(false)
        })
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn keys_live_in_the_keychain_and_nowhere_else() {
    let probe = tempfile::tempdir().unwrap();
    let ss = SecretService::start(probe.path(), true);
    let t = Tether::with_env(&[("DBUS_SESSION_BUS_ADDRESS", &ss.bus)]);

    // Generate: the keychain holds it, the config its public half, no file its private half.
    let r = t.run(&["key", "gen", "work"]).ok();
    assert!(r.stdout.starts_with("ssh-ed25519 "), "{}", r.stdout);
    assert_eq!(ss.count(SERVICE, &t.account("work")), Some(1));
    let shown = t.run(&["key", "show", "work"]).ok();
    assert_eq!(shown.stdout, r.stdout);
    assert!(
        private_key_files(t.dir.path()).is_empty(),
        "{:?}",
        private_key_files(t.dir.path())
    );
    t.run(&["key", "gen", "work"]).fails_with(&["already exists"]);
    t.run(&["key", "gen", "bad name"]).fails_with(&["not a valid key name"]);

    // Import a passphrase-protected key: asked once, stored decrypted in the keychain only.
    let mut t = t;
    t.run(&["key", "import", "enc", &var("LAB_KEY_ENCRYPTED")])
        .fails_with(&["passphrase"]);
    t.set_env("TETHER_KEY_PASSPHRASE", &var("LAB_KEY_PASSPHRASE"));
    let imported = t.run(&["key", "import", "enc", &var("LAB_KEY_ENCRYPTED")]).ok();
    let public = std::fs::read_to_string(format!("{}.pub", var("LAB_KEY_ENCRYPTED"))).unwrap();
    assert_eq!(
        imported.stdout.split_whitespace().nth(1),
        public.split_whitespace().nth(1)
    );
    assert_eq!(ss.count(SERVICE, &t.account("enc")), Some(1));
    assert!(
        private_key_files(t.dir.path()).is_empty(),
        "{:?}",
        private_key_files(t.dir.path())
    );

    // The keychain key logs in with no passphrase and no file, after an engine restart too.
    t.set_env("TETHER_KEY_PASSPHRASE", "");
    t.start_daemon();
    t.run(&[
        "vm",
        "add",
        "a",
        "--host",
        &var("LAB_A_IP"),
        "--user",
        &var("LAB_USER"),
        "--key",
        "enc",
        "--remote-socket",
        &var("LAB_A_SOCK"),
        "--accept-new",
    ])
    .ok();
    t.run(&["connect", "a"]).ok();
    assert_eq!(t.docker("a", &["version", "--format", "{{.Server.Version}}"]).code, 0);
    t.run(&["key", "rm", "enc"]).fails_with(&["used by a"]);
    t.run(&["vm", "rm", "a"]).ok();
    t.run(&["key", "rm", "enc"]).ok();
    assert_eq!(ss.count(SERVICE, &t.account("enc")), Some(0));

    // Delete: gone from the keychain and the config.
    t.run(&["key", "rm", "work"]).ok();
    assert_eq!(ss.count(SERVICE, &t.account("work")), Some(0));
    t.run(&["key", "show", "work"])
        .fails_with(&["no key named 'work'", "tether key gen work"]);
}

#[test]
fn a_locked_or_missing_keychain_says_what_to_do() {
    // One session bus, its keychain daemon replaced between the steps as a desktop's may be;
    // one engine throughout, keeping its connection to the bus.
    let probe = tempfile::tempdir().unwrap();
    let (mut bus, addr) = session_bus();
    let t = Tether::with_env(&[("DBUS_SESSION_BUS_ADDRESS", &addr)]);

    // No keyring at all yet: nothing was ever unlocked, so there is no default to store into.
    let ss = SecretService::on_bus(&addr, probe.path(), false);
    t.run(&["key", "gen", "k"])
        .fails_with(&["no default keyring", "Password keyring", "ssh-agent", "--identity"]);
    drop(ss);

    // The daemon restarted, unlocked: the engine's old keychain session is gone with it, and
    // the engine opens a new one by itself.
    let ss = SecretService::on_bus(&addr, probe.path(), true);
    t.run(&["key", "gen", "k"]).ok();
    assert_eq!(ss.count(SERVICE, &t.account("k")), Some(1));
    drop(ss);

    // Locked: the login keyring exists, and nobody is there to type its password.
    let ss = SecretService::on_bus(&addr, probe.path(), false);
    let started = std::time::Instant::now();
    let r = t
        .run(&["key", "gen", "k2"])
        .fails_with(&["keychain", "ssh-agent", "--identity"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        r.stderr.contains("locked") || r.stderr.contains("did not answer"),
        "{}",
        r.stderr
    );
    assert!(
        !t.run(&["key", "list"]).ok().stdout.contains("k2 "),
        "a key was recorded anyway"
    );
    assert!(private_key_files(t.dir.path()).is_empty());
    drop(ss);
    let _ = bus.kill();
    let _ = bus.wait();

    // Missing: a session bus with no Secret Service on it, nor any to start.
    let (mut bus, addr) = bare_session_bus(probe.path());
    let t = Tether::with_env(&[("DBUS_SESSION_BUS_ADDRESS", &addr)]);
    t.run(&["key", "gen", "k"])
        .fails_with(&["no OS keychain is available", "ssh-agent"]);
    assert!(private_key_files(t.dir.path()).is_empty());
    let _ = bus.kill();
    let _ = bus.wait();
}

/// Whether OpenSSH's client logs in as `user` with `key` only (any host key taken).
fn openssh_login(ip: &str, port: u16, user: &str, key: &Path) -> bool {
    openssh_runs(
        ip,
        port,
        user,
        key,
        &["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"],
    )
}

/// A VM on port 2222 that takes passwords and reads ~/.ssh/authorized_keys with OpenSSH's strict
/// modes, a keychain, and a Tether that knows the VM and holds key `vmkey`, imported from a file
/// (so OpenSSH can check that key later). Returns the engine, the keychain and the key's file.
fn strict_vm(vm: &TestVm, user: &LabUser) -> (Tether, SecretService, tempfile::TempDir, std::path::PathBuf) {
    cloud_sshd(&vm.name, "2222");
    let probe = tempfile::tempdir().unwrap();
    let ss = SecretService::start(probe.path(), true);
    let t = Tether::with_env(&[("DBUS_SESSION_BUS_ADDRESS", &ss.bus)]);
    let old_key = t.dir.path().join("old_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "old", "-f"])
        .arg(&old_key)
        .status()
        .unwrap();
    assert!(made.success());
    t.run(&["key", "import", "vmkey", &old_key.display().to_string()]).ok();
    t.add_vm_as(&vm.name, &vm.ip, 2222, &user.0).ok();
    (t, ss, probe, old_key)
}

/// [`strict_vm`] with the key installed by one password login, and connected.
fn keyed_vm(vm: &TestVm, user: &LabUser) -> (Tether, SecretService, tempfile::TempDir, std::path::PathBuf) {
    let (mut t, ss, probe, old_key) = strict_vm(vm, user);
    t.set_env("TETHER_VM_PASSWORD", &var("LAB_PASSWORD"));
    t.run(&["key", "install", &vm.name, "--key", "vmkey"]).ok();
    t.set_env("TETHER_VM_PASSWORD", "");
    t.run(&["connect", &vm.name]).ok();
    assert!(openssh_login(&vm.ip, 2222, &user.0, &old_key));
    (t, ss, probe, old_key)
}

#[test]
fn rotation_on_a_full_disk_fails_cleanly_and_the_old_key_still_logs_in() {
    let vm = TestVm::new("full", 32, false);
    let user = LabUser::with_home_size("tlfull", "64k");
    let (t, _ss, _probe, old_key) = keyed_vm(&vm, &user);
    let authorized = user.home().join(".ssh/authorized_keys");
    // Fill the home to its last page: appending a line to authorized_keys still fits in the
    // file's own page, but no new file can get one.
    let mut fill = std::fs::File::create(user.home().join("fill")).unwrap();
    let page = [0u8; 4096];
    use std::io::Write as _;
    while fill.write_all(&page).is_ok() {}
    drop(fill);
    assert!(
        std::fs::write(user.home().join("probe"), b"x").is_err(),
        "the home is not full"
    );

    let r = t.run(&["key", "rotate", &vm.name]);
    let text = std::fs::read_to_string(&authorized).unwrap();
    assert!(
        text.lines().count() >= 1
            && text.contains(&std::fs::read_to_string(old_key.with_extension("pub")).unwrap()[..60]),
        "the old key left authorized_keys on a full disk: {text:?}\n{}{}",
        r.stdout,
        r.stderr
    );
    // Whatever rotation reports, it must not report a clean success, and both keys work.
    assert!(
        r.code != 0 || r.stderr.contains("warning"),
        "rotation reported success on a full disk: {}{}",
        r.stdout,
        r.stderr
    );
    assert!(r.stderr.contains("disk full"), "the reason is not named: {}", r.stderr);
    assert!(
        openssh_login(&vm.ip, 2222, &user.0, &old_key),
        "the old key no longer logs in after a failed removal"
    );
    // The key the engine holds now (old or new) logs in from a fresh engine.
    drop(t.run(&["disconnect", &vm.name]).ok());
    t.run(&["connect", &vm.name]).ok();
    assert_eq!(t.status(&vm.name)["state"], "connected");
    // No temp file was left behind in the full home.
    let leftovers: Vec<_> = std::fs::read_dir(user.home().join(".ssh"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tether"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn rotation_edits_a_symlinked_authorized_keys_where_it_points() {
    let vm = TestVm::new("linked", 33, false);
    let user = LabUser::new("tllinked");
    let (t, _ss, _probe, old_key) = keyed_vm(&vm, &user);
    // Dotfile managers keep the real file elsewhere and link it in.
    let ssh_dir = user.home().join(".ssh");
    let real = user.home().join("dotfiles-authorized_keys");
    std::fs::rename(ssh_dir.join("authorized_keys"), &real).unwrap();
    std::os::unix::fs::symlink(&real, ssh_dir.join("authorized_keys")).unwrap();
    // StrictModes checks the target: it belongs to the user and is 0600 already.

    let r = t.run(&["key", "rotate", &vm.name]).ok();
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    let link = std::fs::symlink_metadata(ssh_dir.join("authorized_keys")).unwrap();
    assert!(link.file_type().is_symlink(), "the link was replaced by a plain file");
    let text = std::fs::read_to_string(&real).unwrap();
    let new_key = t.run(&["key", "show", "vmkey"]).ok().stdout;
    assert!(text.contains(new_key.split_whitespace().nth(1).unwrap()), "{text}");
    assert!(
        !openssh_login(&vm.ip, 2222, &user.0, &old_key),
        "the old key still logs in"
    );
}

#[test]
fn password_once_installs_the_key_and_rotation_retires_the_old_one() {
    let vm = TestVm::new("pw", 23, false);
    let user = LabUser::new("tlpw");
    let (mut t, ss, _probe, old_key) = strict_vm(&vm, &user);
    assert!(
        !openssh_login(&vm.ip, 2222, &user.0, &old_key),
        "the key works before it was installed"
    );

    // A wrong password changes nothing; the right one installs the key, checked by a key login.
    t.set_env("TETHER_VM_PASSWORD", "not-the-password");
    t.run(&["key", "install", "pw", "--key", "vmkey"])
        .fails_with(&["password"]);
    assert!(!user.home().join(".ssh/authorized_keys").exists());
    t.set_env("TETHER_VM_PASSWORD", &var("LAB_PASSWORD"));
    t.run(&["key", "install", "pw", "--key", "vmkey"]).ok();
    let ssh_dir = user.home().join(".ssh");
    assert_eq!(std::fs::metadata(&ssh_dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(
        std::fs::metadata(ssh_dir.join("authorized_keys"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(
        openssh_login(&vm.ip, 2222, &user.0, &old_key),
        "the installed key does not log in"
    );
    // The password went nowhere.
    let log = std::fs::read_to_string(t.log_path()).unwrap_or_default();
    assert!(
        !log.contains(&var("LAB_PASSWORD")),
        "the password reached the engine log"
    );
    t.set_env("TETHER_VM_PASSWORD", "");
    t.run(&["connect", "pw"]).ok();
    assert_eq!(t.status("pw")["state"], "connected");

    // Rotate over the live session.
    let before = t.run(&["key", "show", "vmkey"]).ok().stdout;
    let r = t.run(&["key", "rotate", "pw"]).ok();
    assert!(r.stdout.contains("rotated key 'vmkey'"), "{}", r.stdout);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    let after = t.run(&["key", "show", "vmkey"]).ok().stdout;
    assert_ne!(before, after);
    let authorized = std::fs::read_to_string(ssh_dir.join("authorized_keys")).unwrap();
    assert!(
        authorized.contains(after.split_whitespace().nth(1).unwrap()),
        "{authorized}"
    );
    assert!(
        !authorized.contains(before.split_whitespace().nth(1).unwrap()),
        "{authorized}"
    );
    // The VM refuses the old key; a new engine (nothing cached) logs in with the new one.
    assert!(
        !openssh_login(&vm.ip, 2222, &user.0, &old_key),
        "the old key still logs in"
    );
    assert_eq!(ss.count(SERVICE, &t.account("vmkey")), Some(1));
    assert_eq!(ss.count(SERVICE, &t.account("vmkey.rotating")), Some(0));
    t.start_daemon();
    t.run(&["connect", "pw"]).ok();
    assert_eq!(t.status("pw")["state"], "connected");
    assert!(
        private_key_files(t.dir.path()).iter().all(|f| f.ends_with("old_key")),
        "{:?}",
        private_key_files(t.dir.path())
    );
}

#[test]
fn two_tether_homes_share_a_keychain_and_a_docker_config_without_touching_each_other() {
    let probe = tempfile::tempdir().unwrap();
    let ss = SecretService::start(probe.path(), true);
    let shared = tempfile::tempdir().unwrap();
    let docker_config = shared.path().display().to_string();
    let env = [
        ("DBUS_SESSION_BUS_ADDRESS", ss.bus.as_str()),
        ("DOCKER_CONFIG", docker_config.as_str()),
    ];
    let (one, two) = (Tether::with_env(&env), Tether::with_env(&env));
    assert_ne!(one.account("k"), two.account("k"));

    // The same key name in both: two entries, neither overwrote the other.
    one.run(&["key", "gen", "work"]).ok();
    two.run(&["key", "gen", "work"]).ok();
    assert_eq!(ss.count(SERVICE, &one.account("work")), Some(1));
    assert_eq!(ss.count(SERVICE, &two.account("work")), Some(1));
    let public = |t: &Tether| t.run(&["key", "show", "work"]).ok().stdout;
    let first = public(&one);
    assert_ne!(first, public(&two));

    // The same VM name in both: the first install's contexts stay its own.
    let socket = var("LAB_A_SOCK");
    one.add_vm("dev", &var("LAB_A_IP"), 22, &socket).ok();
    two.add_vm("dev", &var("LAB_A_IP"), 22, &socket).ok();
    let context_host = |name: &str| {
        let out = Command::new("docker")
            .args(["context", "inspect", name, "--format", "{{.Endpoints.docker.Host}}"])
            .env("DOCKER_CONFIG", shared.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let ones = format!("unix://{}", one.socket("dev").display());
    assert_eq!(context_host("tether-dev"), ones);
    assert!(two.log().contains("belongs to another Tether install"), "{}", two.log());

    // Removing everything from the second leaves the first's key and contexts.
    two.run(&["vm", "rm", "dev"]).ok();
    two.run(&["key", "rm", "work"]).ok();
    assert_eq!(ss.count(SERVICE, &two.account("work")), Some(0));
    assert_eq!(ss.count(SERVICE, &one.account("work")), Some(1));
    assert_eq!(public(&one), first);
    assert_eq!(context_host("tether-dev"), ones);
    assert_eq!(context_host("tether"), ones);
}

#[test]
fn a_key_is_installed_and_rotated_through_a_bastion_that_never_sees_the_password() {
    let bastion = TestVm::new("bast5", 65, false);
    let vm = TestVm::hidden("deep5", 66, &bastion, false);
    let user = LabUser::new("tljump");
    cloud_sshd(&vm.name, "2222");
    let probe = tempfile::tempdir().unwrap();
    let ss = SecretService::start(probe.path(), true);
    let mut t = Tether::with_env(&[("DBUS_SESSION_BUS_ADDRESS", &ss.bus)]);
    t.run(&["key", "gen", "vmkey"]).ok();
    // The bastion takes the user's default key (~/.ssh/id_ed25519, here the lab's key); it has no
    // identity of its own in the VM's settings or ~/.ssh/config. The VM takes only a password
    // until its key is installed.
    let default_key = t.dir.path().join(".ssh/id_ed25519");
    std::fs::copy(var("LAB_KEY"), &default_key).unwrap();
    std::fs::set_permissions(&default_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let jump = format!("{}@{}", var("LAB_USER"), bastion.ip);
    t.run(&[
        "vm",
        "add",
        "deep5",
        "--host",
        &vm.ip,
        "--port",
        "2222",
        "--user",
        &user.0,
        "--remote-socket",
        &var("LAB_A_SOCK"),
        "--accept-new",
        "--jump",
        &jump,
    ])
    .ok();
    let bastion_log = format!("{}/vms/{}/sshd_22.log", var("TETHER_LAB_DIR"), bastion.name);
    let password_lines = || -> Vec<String> {
        std::fs::read_to_string(&bastion_log)
            .unwrap()
            .lines()
            .filter(|l| l.to_lowercase().contains("password"))
            .map(str::to_string)
            .collect()
    };

    t.set_env("TETHER_VM_PASSWORD", &var("LAB_PASSWORD"));
    t.run(&["key", "install", "deep5", "--key", "vmkey"]).ok();
    t.set_env("TETHER_VM_PASSWORD", "");
    assert!(
        password_lines().is_empty(),
        "the bastion was offered a password: {:?}",
        password_lines()
    );
    let public = t.run(&["key", "show", "vmkey"]).ok().stdout;
    let authorized = std::fs::read_to_string(user.home().join(".ssh/authorized_keys")).unwrap();
    assert!(
        authorized.contains(public.split_whitespace().nth(1).unwrap()),
        "{authorized}"
    );

    t.run(&["connect", "deep5"]).ok();
    assert_eq!(t.status("deep5")["via"], serde_json::json!([format!("{jump}:22")]));
    let r = t.run(&["key", "rotate", "deep5"]).ok();
    assert!(r.stdout.contains("rotated key 'vmkey'"), "{}", r.stdout);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    let after = t.run(&["key", "show", "vmkey"]).ok().stdout;
    assert_ne!(public, after);
    // A new engine (nothing cached) gets through the bastion to the VM with the new key.
    t.start_daemon();
    t.run(&["connect", "deep5"]).ok();
    assert_eq!(t.status("deep5")["state"], "connected");
    assert!(password_lines().is_empty(), "{:?}", password_lines());
}
