//! Unit tests of `kube` (kept apart so the module file holds only shipping code).

use super::*;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn k3s_like() -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: https://127.0.0.1:6443\n  name: default\n\
         contexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\nkind: Config\n\
         users:\n- name: default\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
        ca = b64("CA PEM"),
        cert = b64("-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n"),
        key = b64("-----BEGIN EC PRIVATE KEY-----\nK\n-----END EC PRIVATE KEY-----\n"),
    )
}

#[test]
fn the_vm_kubeconfig_gives_server_ca_and_credentials() {
    let r = parse_remote("~/.kube/config", &k3s_like()).unwrap();
    assert_eq!((r.host.as_str(), r.port), ("127.0.0.1", 6443));
    assert_eq!(r.ca_data.as_deref(), Some(b64("CA PEM").as_str()));
    let Auth::Cert { cert, key } = &r.auth else {
        panic!("no cert")
    };
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(key.contains("EC PRIVATE KEY"));
    let cred = exec_credential(&r.auth);
    assert_eq!(cred["kind"], "ExecCredential");
    assert_eq!(cred["status"]["clientKeyData"].as_str(), Some(key.as_str()));
}

#[test]
fn a_vm_kubeconfig_tether_cannot_use_says_why() {
    for (text, needle) in [
        ("kind: Config\n", "no current-context"),
        ("current-context: x\ncontexts: []\n", "'x' is not defined"),
        (
            "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\nclusters:\n- name: k\n  cluster: {server: 'http://h:80'}\nusers:\n- name: u\n  user: {token: t}\n",
            "not an https:// URL",
        ),
        (
            "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\nclusters:\n- name: k\n  cluster: {server: 'https://h:6443', certificate-authority: /etc/ca.crt}\nusers:\n- name: u\n  user: {token: t}\n",
            "--flatten",
        ),
        (
            "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\nclusters:\n- name: k\n  cluster: {server: 'https://h:6443'}\nusers:\n- name: u\n  user: {client-certificate: /x}\n",
            "neither inline",
        ),
        ("[not: yaml", "cannot be read"),
    ] {
        let e = parse_remote("/etc/k.yaml", text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains(needle), "{text}: {e}");
    }
    // A token user and a DNS name with the default port.
    let r = parse_remote(
        "p",
        "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\nclusters:\n- name: k\n  cluster: {server: 'https://api.lab.internal/'}\nusers:\n- name: u\n  user: {token: s3cr3t}\n",
    )
    .unwrap();
    assert_eq!((r.host.as_str(), r.port), ("api.lab.internal", 443));
    assert!(matches!(&r.auth, Auth::Token(t) if t.as_str() == "s3cr3t"));
}

#[test]
fn only_tether_entries_change_and_no_secret_is_written() {
    let r = parse_remote("p", &k3s_like()).unwrap();
    let exec = vec![
        "/usr/bin/tether".to_string(),
        "kube-credential".to_string(),
        "arm".to_string(),
    ];
    let theirs = "apiVersion: v1\nkind: Config\ncurrent-context: work\nclusters:\n- name: work\n  cluster: {server: 'https://work:6443'}\n\
                  users:\n- name: work\n  user: {token: theirs}\ncontexts:\n- name: work\n  context: {cluster: work, user: work}\n";
    let path = Path::new("/home/u/.kube/config");
    let entry = Entry {
        vm: "arm",
        local_port: 16443,
        remote: &r,
        exec: &exec,
    };
    let once = install(path, Some(theirs), &entry).unwrap();
    // Installing twice changes nothing more.
    assert_eq!(install(path, Some(&once), &entry).unwrap(), once);
    let doc: Value = serde_norway::from_str(&once).unwrap();
    assert_eq!(
        get_str(&doc, "current-context"),
        Some("work"),
        "the user's choice stays"
    );
    let cluster = named(&doc, "clusters", "cluster", "tether-arm").unwrap();
    assert_eq!(get_str(cluster, "server"), Some("https://127.0.0.1:16443"));
    assert_eq!(get_str(cluster, "tls-server-name"), Some("127.0.0.1"));
    let user = named(&doc, "users", "user", "tether-arm").unwrap();
    assert_eq!(get_str(get(user, "exec").unwrap(), "command"), Some("/usr/bin/tether"));
    assert!(!once.contains("PRIVATE KEY") && !once.contains(&b64("-----BEGIN EC")[..12]));
    assert!(named(&doc, "users", "user", "work").is_some());
    // Removing takes Tether's entries only; removing again finds nothing.
    let after = uninstall(path, &once, "arm").unwrap().unwrap();
    let back: Value = serde_norway::from_str(&after).unwrap();
    let orig: Value = serde_norway::from_str(theirs).unwrap();
    assert_eq!(back, orig);
    assert!(uninstall(path, &after, "arm").unwrap().is_none());
    // With no file, the context becomes the current one.
    let fresh = install(path, None, &entry).unwrap();
    assert!(fresh.contains("current-context: tether-arm"), "{fresh}");
    let e = install(path, Some("- a list"), &entry).err().unwrap().to_string();
    assert!(e.contains("/home/u/.kube/config") && e.contains("KUBECONFIG"), "{e}");
}

#[test]
fn kubeconfig_env_first_file_wins() {
    let home = Path::new("/h");
    assert_eq!(local_path(None, home), PathBuf::from("/h/.kube/config"));
    assert_eq!(local_path(Some(""), home), PathBuf::from("/h/.kube/config"));
    if !cfg!(windows) {
        assert_eq!(local_path(Some("/a/k:/b/k"), home), PathBuf::from("/a/k"));
    }
}

#[test]
fn a_kubeconfig_that_cannot_be_read_is_never_taken_for_absent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    assert!(read(&path).unwrap().is_none());
    // Not UTF-8: an error naming the file and the fix, and the bytes stay as they were.
    std::fs::write(&path, b"apiVersion: v1\n\xff\xfe").unwrap();
    let e = read(&path).unwrap_err().to_string();
    assert!(
        e.contains(&path.display().to_string()) && e.contains("KUBECONFIG"),
        "{e}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"apiVersion: v1\n\xff\xfe");
    // A directory where the file should be.
    let e = read(dir.path()).unwrap_err().to_string();
    assert!(e.starts_with("cannot read"), "{e}");
}
