//! Kubernetes on a lab VM, reached from the laptop: a stand-in API server (TLS, client
//! certificates, a certificate that names only api.lab.internal) is tunnelled, the user's
//! kubeconfig gains a `tether-NAME` context and nothing else changes, and the real kubectl
//! reaches it with the server name verified and credentials read from the VM, before and after
//! a link cut. `--off` takes it all back out.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use tether_e2e::*;

/// The user's own kubeconfig, which Tether must leave as it is.
const THEIRS: &str = "apiVersion: v1\nkind: Config\ncurrent-context: work\nclusters:\n- name: work\n  cluster:\n    server: https://work.example:6443\n\
users:\n- name: work\n  user:\n    token: theirs-token\ncontexts:\n- name: work\n  context:\n    cluster: work\n    user: work\n";

fn kubectl(t: &Tether, args: &[&str]) -> Run {
    let out = Command::new("kubectl")
        .envs(t.app_env())
        .args(args)
        .output()
        .expect("run kubectl (lab.sh install installs it)");
    Run::from(out)
}

fn server_version(t: &Tether, context: &str) -> String {
    let out = kubectl(
        t,
        &[
            "--context",
            context,
            "version",
            "-o",
            "json",
            "--request-timeout",
            "20s",
        ],
    )
    .ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn kubectl_reaches_the_vm_api_server_through_the_tunnel_with_its_name_verified() {
    let vm = TestVm::new("kube", 48, true);
    let api_port = free_port();
    lab_cmd(&["kube", "kube", &api_port.to_string()]);
    let lab_dir = format!("{}/vms/kube/kube", var("TETHER_LAB_DIR"));
    let t = Tether::new();
    let kubeconfig = t.dir.path().join(".kube/config");
    std::fs::create_dir_all(kubeconfig.parent().unwrap()).unwrap();
    std::fs::write(&kubeconfig, THEIRS).unwrap();
    std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o600)).unwrap();

    t.add_vm(&vm.name, &vm.ip, 22, &vm.docker_sock()).ok();
    // Not connected: nothing to read the VM's kubeconfig over.
    t.run(&["kube", "kube", "--config", &format!("{lab_dir}/kubeconfig")])
        .fails_with(&["not connected", "tether connect kube"]);
    assert_eq!(std::fs::read_to_string(&kubeconfig).unwrap(), THEIRS);

    t.run(&["connect", "kube"]).ok();
    // A file that is not there is named, with the way out.
    t.run(&["kube", "kube", "--config", "/nonexistent/kubeconfig"])
        .fails_with(&["/nonexistent/kubeconfig", "--config PATH"]);
    let out = t
        .run(&["kube", "kube", "--config", &format!("{lab_dir}/kubeconfig")])
        .ok();
    assert!(out.stdout.contains("kubectl --context tether-kube"), "{}", out.stdout);
    assert!(out.stdout.contains("api.lab.internal"), "{}", out.stdout);

    // Only Tether's entries were added; the user's stay, and no secret was written.
    let written = std::fs::read_to_string(&kubeconfig).unwrap();
    for theirs in [
        "name: work",
        "token: theirs-token",
        "server: https://work.example:6443",
        "current-context: work",
    ] {
        assert!(written.contains(theirs), "{theirs} is gone:\n{written}");
    }
    assert!(written.contains("tls-server-name: api.lab.internal"), "{written}");
    let lab_kubeconfig = std::fs::read_to_string(format!("{lab_dir}/kubeconfig")).unwrap();
    let key_data = lab_kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-key-data: "))
        .unwrap();
    assert!(
        !written.contains(key_data) && !written.contains("PRIVATE KEY"),
        "{written}"
    );
    let mode = std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let config = std::fs::read_to_string(t.home().join("config/config.toml")).unwrap();
    assert!(config.contains("[vms.kube.kube]"), "{config}");
    let status = t.run(&["status"]).ok();
    assert!(
        status.stdout.contains("kubectl --context tether-kube"),
        "{}",
        status.stdout
    );
    assert_eq!(t.status("kube")["kube"]["server_name"], "api.lab.internal");

    // The real kubectl: TLS verified against api.lab.internal through 127.0.0.1, a client
    // certificate from the VM, and the API server sees the lab's admin.
    assert_eq!(server_version(&t, "tether-kube"), "v1.31.0-tether-lab");
    let seen = std::fs::read_to_string(format!("{lab_dir}/requests.log")).unwrap();
    assert!(
        seen.lines()
            .any(|l| l.starts_with("/version") && l.ends_with(" tether-lab-admin")),
        "{seen}"
    );
    // Without the server name the same certificate does not verify for 127.0.0.1: it is the
    // name, not a skipped check, that makes kubectl trust it.
    let local = t.status("kube")["forwards"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["remote"] == api_port).cloned())
        .unwrap_or_else(|| panic!("no tunnel to {api_port}"))["local"]
        .as_u64()
        .unwrap();
    let bare = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", &format!("{lab_dir}/ca.crt")])
        .arg(format!("https://127.0.0.1:{local}/version"))
        .output()
        .unwrap();
    assert_eq!(
        bare.status.code(),
        Some(60),
        "{}",
        String::from_utf8_lossy(&bare.stderr)
    );

    // Restored with the link, as any tunnel.
    lab_cmd(&["link", "kube", "down"]);
    t.wait_state("kube", "reconnecting", Duration::from_secs(45));
    lab_cmd(&["link", "kube", "up"]);
    t.wait_state("kube", "connected", Duration::from_secs(60));
    assert_eq!(server_version(&t, "tether-kube"), "v1.31.0-tether-lab");

    // Off: the tunnel and Tether's entries go, the user's file is as it was.
    t.run(&["kube", "kube", "--off"]).ok();
    let after = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(!after.contains("tether-kube"), "{after}");
    for theirs in ["name: work", "token: theirs-token", "current-context: work"] {
        assert!(after.contains(theirs), "{theirs} is gone:\n{after}");
    }
    assert!(
        t.status("kube")["forwards"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["remote"] != api_port)
    );
    kubectl(&t, &["--context", "tether-kube", "version", "-o", "json"]).fails_with(&["tether-kube"]);
}

#[test]
fn an_api_server_on_a_well_known_port_gets_another_laptop_port_and_prints_no_escapes() {
    // An API server on the VM's 5432: taking the same port here would make this laptop's psql
    // talk to it, so another one is picked, as for automatic forwards.
    let vm = TestVm::new("kubepg", 67, false);
    lab_cmd(&["kube", &vm.name, "5432"]);
    let lab_dir = format!("{}/vms/{}/kube", var("TETHER_LAB_DIR"), vm.name);
    let t = Tether::new();
    std::fs::create_dir_all(t.dir.path().join(".kube")).unwrap();
    t.add_vm(&vm.name, &vm.ip, 22, &var("LAB_A_SOCK")).ok();
    t.run(&["connect", &vm.name]).ok();
    t.run(&["kube", &vm.name, "--config", &format!("{lab_dir}/kubeconfig")])
        .ok();
    let local = t.status(&vm.name)["forwards"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["remote"] == 5432).cloned())
        .unwrap_or_else(|| panic!("no tunnel to 5432"))["local"]
        .as_u64()
        .unwrap();
    assert_ne!(local, 5432, "the API server took this laptop's postgres port");
    assert_eq!(server_version(&t, &format!("tether-{}", vm.name)), "v1.31.0-tether-lab");

    // A VM whose kubeconfig names its server with terminal escapes in it: what Tether prints of
    // it holds none of them.
    let theirs = std::fs::read_to_string(format!("{lab_dir}/kubeconfig")).unwrap();
    let evil: String = theirs
        .lines()
        .map(|l| match l.split_once("server: https://api.lab.internal:") {
            // YAML's double-quoted \e and \a are ESC and BEL.
            Some((indent, port)) => {
                format!("{indent}server: \"https://api.lab\\e]0;owned\\a\\e[2J.internal:{port}\"\n")
            }
            None => format!("{l}\n"),
        })
        .collect();
    assert_ne!(evil, theirs);
    let evil_path = format!("{lab_dir}/kubeconfig.evil");
    std::fs::write(&evil_path, evil).unwrap();
    let out = t.run(&["kube", &vm.name, "--config", &evil_path]);
    let status = t.run(&["status"]);
    for text in [&out.stdout, &out.stderr, &status.stdout, &status.stderr] {
        assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{text:?}");
    }
    assert!(out.stdout.contains("api.lab]0;owned[2J.internal"), "{out:?}");
}
