//! `tether doctor` against the lab: every check passes on a healthy setup (a keychain key
//! installed with a password, and an encrypted key file with its passphrase), each broken thing
//! fails with its fix, and the report bundle holds what a bug report needs and none of the
//! test's own keys, passphrase or password.

use std::process::Command;

use tether_e2e::keyring::SecretService;
use tether_e2e::*;

/// The lines of a private key file's body: what must never leave it.
fn key_body(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect()
}

fn checks_of<'a>(doctor: &'a serde_json::Value, vm: Option<&str>) -> &'a Vec<serde_json::Value> {
    match vm {
        None => doctor["local"].as_array().unwrap(),
        Some(name) => doctor["vms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .and_then(|v| v["checks"].as_array())
            .unwrap_or_else(|| panic!("no VM {name} in {doctor}")),
    }
}

fn verdict(doctor: &serde_json::Value, vm: Option<&str>, id: &str) -> serde_json::Value {
    checks_of(doctor, vm)
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no check {id} for {vm:?} in {doctor}"))
}

#[test]
fn doctor_checks_everything_and_its_report_keeps_no_secret() {
    let vm = TestVm::new("doc", 43, false);
    let user = LabUser::new("tldoc");
    cloud_sshd(&vm.name, "2222");
    let probe = tempfile::tempdir().unwrap();
    let ss = SecretService::start(probe.path(), true);
    let mut t = Tether::with_env(&[("DBUS_SESSION_BUS_ADDRESS", &ss.bus)]);
    let key = t.dir.path().join("vm_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    // A keychain key, installed on the VM by one password login.
    t.run(&["key", "import", "vmkey", &key.display().to_string()]).ok();
    t.add_vm_as(&vm.name, &vm.ip, 2222, &user.0).ok();
    t.set_env("TETHER_VM_PASSWORD", &var("LAB_PASSWORD"));
    t.run(&["key", "install", &vm.name, "--key", "vmkey"]).ok();
    t.set_env("TETHER_VM_PASSWORD", "");
    t.run(&["connect", &vm.name]).ok();
    // An encrypted key file, opened with its passphrase.
    t.run(&[
        "vm",
        "add",
        "enc",
        "--host",
        &var("LAB_A_IP"),
        "--user",
        &var("LAB_USER"),
        "--identity",
        &var("LAB_KEY_ENCRYPTED"),
        "--remote-socket",
        &var("LAB_A_SOCK"),
        "--accept-new",
    ])
    .ok();
    t.set_env("TETHER_KEY_PASSPHRASE", &var("LAB_KEY_PASSPHRASE"));
    t.run(&["connect", "enc"]).ok();
    t.set_env("TETHER_KEY_PASSPHRASE", "");

    // Healthy: every check passes, and each layer was looked at.
    let r = t.run(&["doctor", "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let doctor: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    for id in ["engine", "runtime_dir", "keychain", "docker_cli", "contexts"] {
        assert_eq!(verdict(&doctor, None, id)["ok"], true, "{id}: {doctor}");
    }
    assert!(
        verdict(&doctor, None, "keychain")["detail"]
            .as_str()
            .unwrap()
            .contains("unlocked"),
        "{doctor}"
    );
    for vm_name in [vm.name.as_str(), "enc"] {
        for id in ["dns", "tcp", "ssh", "socket", "access", "forwarding", "arch", "clock"] {
            assert_eq!(
                verdict(&doctor, Some(vm_name), id)["ok"],
                true,
                "{vm_name} {id}: {doctor}"
            );
        }
    }
    assert!(
        verdict(&doctor, Some("enc"), "clock")["detail"]
            .as_str()
            .unwrap()
            .contains("this laptop"),
        "{doctor}"
    );

    // Broken things fail, each with its fix, and the command says so in its exit code.
    t.run(&["vm", "add", "gone", "--host", "127.0.0.1", "--port", "1", "--user", "x"]);
    t.set_env("DOCKER_HOST", "tcp://127.0.0.1:2375");
    let r = t.run(&["doctor"]);
    // 7: checks failed (see `tether --help`).
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.stdout.contains("✗ TCP to sshd"), "{}", r.stdout);
    assert!(r.stdout.contains("nothing answers at 127.0.0.1:1"), "{}", r.stdout);
    assert!(r.stdout.contains("✗ DOCKER_HOST"), "{}", r.stdout);
    assert!(r.stdout.contains("unset DOCKER_HOST"), "{}", r.stdout);
    assert!(r.stderr.contains("some checks failed"), "{}", r.stderr);
    t.set_env("DOCKER_HOST", "");

    // The engine's recent lines, filtered by VM.
    let logs = t.run(&["engine", "logs", &vm.name, "-n", "50"]).ok().stdout;
    assert!(logs.contains("connected") && logs.contains("vm=doc"), "{logs}");
    assert!(!logs.contains("vm=enc"), "{logs}");
    // As JSON, each line its fields.
    let json = t.run(&["engine", "logs", &vm.name, "-n", "50", "--json"]).ok().stdout;
    let lines: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert!(!lines.is_empty(), "{json}");
    // The old spelling still works for now, and says where the command went.
    let old = t.run(&["logs", &vm.name, "-n", "50"]).ok();
    assert!(old.stdout.contains("vm=doc"), "{}", old.stdout);
    assert!(old.stderr.contains("tether engine logs"), "{}", old.stderr);

    // The report: what a bug report needs, and no secret of this test's setup.
    let file = t.dir.path().join("report.tar.gz");
    let r = t.run(&["doctor", "--report", &file.display().to_string()]);
    assert!(r.stderr.contains("report written"), "{}", r.stderr);
    let out = tempfile::tempdir().unwrap();
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&file)
        .arg("-C")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(untar.success());
    let dir = out.path().join("tether-report");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(read("doctor.json").contains("\"gone\""));
    assert!(read("config.toml").contains("[vms.doc]"), "{}", read("config.toml"));
    assert!(read("status.json").contains("\"enc\""));
    assert!(read("health.json").contains("history"), "{}", read("health.json"));
    assert!(read("engine.log").contains("connected"), "{}", read("engine.log"));
    assert!(read("versions.json").contains("\"tether\""));
    let mut secrets = key_body(&key.display().to_string());
    secrets.extend(key_body(&var("LAB_KEY_ENCRYPTED")));
    secrets.extend(key_body(&var("LAB_KEY")));
    secrets.push(var("LAB_KEY_PASSPHRASE"));
    secrets.push(var("LAB_PASSWORD"));
    assert!(secrets.len() > 5, "{secrets:?}");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "{} holds a secret of the setup",
                path.display()
            );
        }
    }
    // Private to this user, like everything else Tether writes.
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
}
