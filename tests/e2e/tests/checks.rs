//! `tether vm check`, the onboarding checks, against the lab: each failure is found for what it
//! is and comes with its fix; a healthy VM passes all five.

use tether_e2e::*;

fn checks(t: &Tether, vm: &str) -> (i32, Vec<serde_json::Value>) {
    let r = t.run(&["vm", "check", vm, "--json"]);
    let v: serde_json::Value =
        serde_json::from_str(r.stdout.split("\nerror").next().unwrap_or(&r.stdout)).unwrap_or_default();
    (r.code, v.as_array().cloned().unwrap_or_default())
}

fn verdict(list: &[serde_json::Value], id: &str) -> (bool, String) {
    let c = list
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {list:?}"));
    (
        c["ok"] == true,
        format!(
            "{} | {}",
            c["detail"].as_str().unwrap_or(""),
            c["fix"].as_str().unwrap_or("")
        ),
    )
}

#[test]
fn each_check_finds_its_own_problem() {
    let vm = TestVm::new("chk", 24, false);
    // On VM a, where the engine's socket lives in the same network namespace as sshd.
    lab_cmd(&["sshd", "a", "2204", "AllowStreamLocalForwarding=no"]);
    let t = Tether::new();
    let add_at = |ip: &str, name: &str, port: &str, user: &str, arch: &str, socket: &str, key: &str| {
        t.run(&[
            "vm",
            "add",
            name,
            "--host",
            ip,
            "--port",
            port,
            "--user",
            user,
            "--arch",
            arch,
            "--identity",
            key,
            "--remote-socket",
            socket,
            "--accept-new",
        ])
        .ok();
    };
    let add = |name: &str, port: &str, user: &str, arch: &str, socket: &str, key: &str| {
        add_at(&vm.ip, name, port, user, arch, socket, key)
    };
    let (user, key, sock) = (var("LAB_USER"), var("LAB_KEY"), var("LAB_A_SOCK"));

    // Healthy (the lab's engines run on this machine's architecture, x86_64 here).
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    };
    let other = if arch == "arm64" { "x86_64" } else { "arm64" };
    add("good", "22", &user, arch, &sock, &key);
    let (code, list) = checks(&t, "good");
    assert_eq!(code, 0, "{list:?}");
    assert_eq!(list.len(), 5);
    assert!(list.iter().all(|c| c["ok"] == true), "{list:?}");
    assert!(verdict(&list, "arch").1.contains("Docker "), "{list:?}");

    // Architecture mismatch.
    add("wrongarch", "22", &user, other, &sock, &key);
    let (code, list) = checks(&t, "wrongarch");
    assert_eq!(code, 1);
    let (ok, text) = verdict(&list, "arch");
    assert!(
        !ok && text.contains(&format!("set the VM's architecture to {arch}")),
        "{text}"
    );

    // Not in the docker group.
    add("nogroup", "22", &var("LAB_USER_NODOCKER"), arch, &sock, &key);
    let (_, list) = checks(&t, "nogroup");
    let (ok, text) = verdict(&list, "access");
    assert!(!ok && text.contains("usermod -aG docker"), "{text}");
    assert!(verdict(&list, "socket").0);

    // No Docker socket at that path.
    add("nosock", "22", &user, arch, "/run/nothing/docker.sock", &key);
    let (_, list) = checks(&t, "nosock");
    let (ok, text) = verdict(&list, "socket");
    assert!(
        !ok && text.contains("does not exist") && text.contains("systemctl enable --now docker"),
        "{text}"
    );

    // sshd forbids socket forwarding.
    add_at(&var("LAB_A_IP"), "nofwd", "2204", &user, arch, &sock, &key);
    let (_, list) = checks(&t, "nofwd");
    let (ok, text) = verdict(&list, "forwarding");
    assert!(!ok && text.contains("AllowStreamLocalForwarding yes"), "{text}");
    assert!(verdict(&list, "socket").0 && verdict(&list, "access").0, "{list:?}");
    lab_cmd(&["sshd-stop", "a", "2204"]);

    // No login: the rest is not checked, and says so.
    add("nokey", "22", &user, arch, &sock, &var("LAB_KEY_STRANGER"));
    let (_, list) = checks(&t, "nokey");
    assert!(!verdict(&list, "ssh").0, "{list:?}");
    assert!(verdict(&list, "socket").1.contains("needs SSH"), "{list:?}");
}
