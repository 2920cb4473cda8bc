//! The VM script's output parser, the history window, and the arch warning.

use super::*;

#[test]
fn parses_the_vm_script() {
    let out =
        "load 0.52 0.30 0.10\ncpus 4\nmem 1048576000 4194304000\ndisk / 5000 10000\ndisk /var/lib/docker 700 2000\n";
    let v = parse_vm(out, "/var/lib/docker");
    assert_eq!(v.load, [0.52, 0.30, 0.10]);
    assert_eq!(v.cpus, 4);
    assert_eq!((v.mem_used, v.mem_total), (1048576000, 4194304000));
    assert_eq!(
        v.disk_root,
        Disk {
            used: 5000,
            total: 10000
        }
    );
    assert_eq!(v.disk_docker, Disk { used: 700, total: 2000 });
    // Docker's root on / itself: both are the same filesystem.
    let v = parse_vm("disk / 1 2\n", "/");
    assert_eq!(v.disk_docker, v.disk_root);
}

#[test]
fn the_history_keeps_one_hour() {
    let shared = Shared::default();
    let hour = HISTORY.as_millis() as u64;
    for i in 0..5u64 {
        let h = Health {
            at_ms: 1_000_000_000 + i * hour / 2,
            rtt_ms: Some(i as f64),
            ..Default::default()
        };
        shared.record("a", &h);
    }
    let r = shared.report("a");
    assert_eq!(r.history.len(), 3, "{:?}", r.history);
    assert_eq!(r.latest.unwrap().rtt_ms, Some(4.0));
    shared.forget("a");
    assert!(shared.report("a").latest.is_none());
}

#[test]
fn warns_only_on_a_real_mismatch() {
    assert!(
        arch_warning(Some(Arch::Arm64), "amd64")
            .unwrap()
            .contains("runs x86_64")
    );
    assert_eq!(arch_warning(Some(Arch::X86_64), "amd64"), None);
    assert_eq!(arch_warning(Some(Arch::Arm64), "aarch64"), None);
    assert_eq!(arch_warning(None, "amd64"), None);
    assert_eq!(arch_warning(Some(Arch::Arm64), "riscv64"), None);
}
