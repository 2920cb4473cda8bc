//! Host certificates on the lab: a VM whose sshd presents a certificate signed by an authority
//! that `~/.ssh/known_hosts` trusts (`@cert-authority`) is added and connected to with no key to
//! confirm and nothing recorded, as OpenSSH's own client does. An expired certificate, or one for
//! another host, vouches for nothing: its key is then an unknown key, and the error says why the
//! certificate was not taken. A revoked authority is refused outright.

use std::path::{Path, PathBuf};
use std::process::Command;

use tether_e2e::*;

/// Signs the lab VM's host key with the authority `ca` for `principal` over `validity`
/// (ssh-keygen's -V syntax), in a file named after `label`; the certificate's path.
fn sign(ca: &Path, vm: &TestVm, label: &str, principal: &str, validity: &str) -> PathBuf {
    let dir = ca.parent().unwrap();
    let public = dir.join(format!("{label}.pub"));
    std::fs::copy(
        format!("{}/vms/{}/ssh_host_ed25519_key.pub", var("TETHER_LAB_DIR"), vm.name),
        &public,
    )
    .unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-q")
        .arg("-s")
        .arg(ca)
        .args(["-I", label, "-h", "-n", principal, "-V", validity])
        .arg(&public)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir.join(format!("{label}-cert.pub"))
}

/// Whether OpenSSH's client, trusting only `known_hosts`, logs in to the VM's `port`.
fn openssh_trusts(vm: &TestVm, port: u16, known_hosts: &Path) -> bool {
    let file = format!("UserKnownHostsFile={}", known_hosts.display());
    let options = ["StrictHostKeyChecking=yes", &file, "GlobalKnownHostsFile=/dev/null"];
    openssh_runs(&vm.ip, port, &var("LAB_USER"), Path::new(&var("LAB_KEY")), &options)
}

#[test]
fn a_certificate_from_a_trusted_authority_stands_for_the_host_key() {
    let vm = TestVm::new("hcert", 54, false);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("lab-ca");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "lab-ca", "-f"])
        .arg(&ca)
        .status()
        .unwrap();
    assert!(made.success());
    let ca_public = std::fs::read_to_string(ca.with_extension("pub")).unwrap();
    let ca_fp = {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(ca.with_extension("pub"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };

    // Three servers of one VM: a good certificate, an expired one, and one for another host.
    let good = sign(&ca, &vm, "good", &vm.ip, "-5m:+1h");
    let expired = sign(&ca, &vm, "expired", &vm.ip, "20200101:20200102");
    let elsewhere = sign(&ca, &vm, "elsewhere", "other.lab.internal", "-5m:+1h");
    for (port, cert) in [("2222", &good), ("2223", &expired), ("2224", &elsewhere)] {
        lab_cmd(&["sshd", &vm.name, port, &format!("HostCertificate={}", cert.display())]);
    }

    let t = Tether::new();
    // The user's known_hosts trusts the authority for the lab's addresses and knows no key.
    let known_hosts = t.dir.path().join(".ssh/known_hosts");
    std::fs::write(&known_hosts, format!("@cert-authority 10.77.54.* {ca_public}")).unwrap();
    assert!(
        openssh_trusts(&vm, 2222, &known_hosts),
        "OpenSSH does not trust the lab certificate"
    );
    assert!(!openssh_trusts(&vm, 2223, &known_hosts));

    // Added with no --accept-new and no terminal: the certificate is enough.
    let (user, key, sock) = (var("LAB_USER"), var("LAB_KEY"), var("LAB_A_SOCK"));
    let add = |name: &str, port: &str| {
        t.run(&[
            "vm",
            "add",
            name,
            "--host",
            &vm.ip,
            "--port",
            port,
            "--user",
            &user,
            "--identity",
            &key,
            "--remote-socket",
            &sock,
        ])
        .ok()
    };
    let out = add("hc", "2222");
    assert!(
        out.stdout.contains("host key verified") && out.stdout.contains(&ca_fp),
        "{}",
        out.stdout
    );
    t.run(&["connect", "hc"]).ok();
    assert_eq!(t.status("hc")["state"], "connected");
    let v = t.docker("hc", &["version", "--format", "{{.Server.Os}}"]).ok();
    assert_eq!(v.stdout.trim(), "linux");
    t.run(&["disconnect", "hc"]).ok();
    // Nothing was learned: the authority vouches, no key is pinned.
    let own = std::fs::read_to_string(t.home().join("config/known_hosts")).unwrap_or_default();
    assert!(!own.contains(&vm.ip), "{own}");

    // A server with no certificate, though an authority is listed for it: its bare key is asked
    // about as any unknown key (the handshake offered certificates first, and got a key).
    let out = add("hc-plain", "22");
    assert!(out.stdout.contains("not accepted"), "{}", out.stdout);

    // An expired certificate, and one for another host: the key inside is an unknown key.
    let out = add("hc-old", "2223");
    assert!(
        out.stdout
            .contains("not accepted (its host certificate was not accepted: it expired at"),
        "{}",
        out.stdout
    );
    t.run(&["connect", "hc-old"]).fails_with(&[
        "not known yet",
        "its host certificate was not accepted: it expired at",
        "2020",
    ]);
    add("hc-other", "2224");
    t.run(&["connect", "hc-other"])
        .fails_with(&["not known yet", &format!("it is for other.lab.internal, not {}", vm.ip)]);

    // The authority revoked: refused, whatever the certificate says.
    std::fs::write(
        &known_hosts,
        format!("@cert-authority 10.77.54.* {ca_public}@revoked * {ca_public}"),
    )
    .unwrap();
    t.run(&["connect", "hc"])
        .fails_with(&["REFUSED", "@revoked", &known_hosts.display().to_string()]);
    assert_ne!(t.status("hc")["state"], "connected");
}
