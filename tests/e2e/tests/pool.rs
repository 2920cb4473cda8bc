//! Channels to the Docker socket opened ahead of demand (`settings.docker_pool`): after a first
//! connection the next one starts on a pooled channel; a dockerd restart between pooling and use
//! never hands out a channel the VM closed; with the setting at 0 nothing is pooled.

use std::time::Duration;

use tether_e2e::*;

/// The pool's counters in `tether status --json` for `vm`.
fn pool(t: &Tether, vm: &str) -> (u64, u64, u64, u64) {
    let p = t.status(vm)["docker_pool"].clone();
    let n = |k: &str| p[k].as_u64().unwrap_or_else(|| panic!("docker_pool.{k} missing: {p}"));
    (n("ready"), n("hits"), n("misses"), n("stale"))
}

fn ping(t: &Tether, vm: &str) {
    let (head, body) = http_unix(&t.socket(vm), "/_ping").expect("ping through tether");
    assert!(head.contains("200") && body == b"OK", "{head}");
}

#[test]
fn a_new_connection_starts_on_a_pooled_channel_even_after_dockerd_restarts() {
    let vm = TestVm::new("pool", 37, true);
    let t = Tether::new();
    t.add_vm("pool", &vm.ip, 22, &vm.docker_sock()).ok();
    t.run(&["connect", "pool"]).ok();

    // Nothing waits before docker is used (the engine's own health and event requests do not
    // count); once it is, a channel waits in the pool and the next connection starts on it.
    assert_eq!(pool(&t, "pool"), (0, 0, 0, 0));
    ping(&t, "pool");
    let (_, _, misses0, _) = pool(&t, "pool");
    assert!(misses0 >= 1, "the first connection found a pooled channel");
    wait_for("a pooled channel", Duration::from_secs(10), || {
        (pool(&t, "pool").0 >= 1).then_some(())
    });
    let (_, hits0, misses1, _) = pool(&t, "pool");
    ping(&t, "pool");
    let (_, hits1, misses2, _) = pool(&t, "pool");
    assert_eq!(
        (hits1, misses2),
        (hits0 + 1, misses1),
        "the connection did not start on the pooled channel"
    );

    // dockerd restarts while a channel waits in the pool: the VM closes it, and the next
    // connection must get a working channel, not that one.
    wait_for("the pool refilled", Duration::from_secs(10), || {
        (pool(&t, "pool").0 >= 1).then_some(())
    });
    lab_cmd(&["dockerd-stop", "pool"]);
    lab_cmd(&["dockerd-start", "pool"]);
    let (_, _, _, stale0) = pool(&t, "pool");
    ping(&t, "pool");
    let (_, _, _, stale1) = pool(&t, "pool");
    assert!(
        stale1 > stale0,
        "no pooled channel was found closed ({stale0} → {stale1})"
    );
    // And the pool works again with the new dockerd.
    wait_for("the pool refilled after the restart", Duration::from_secs(10), || {
        (pool(&t, "pool").0 >= 1).then_some(())
    });
    let (_, hits2, _, _) = pool(&t, "pool");
    ping(&t, "pool");
    assert_eq!(pool(&t, "pool").1, hits2 + 1);
    let docker = t.docker("pool", &["version", "--format", "{{.Server.Version}}"]).ok();
    assert!(!docker.stdout.trim().is_empty());
}

#[test]
fn an_idle_pool_empties_and_zero_turns_pooling_off() {
    // Pooling off: every connection opens its own channel, none waits.
    let off = Tether::without_daemon(&[]);
    let config = off.home().join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(
        config.join("config.toml"),
        "version = 1\n\n[settings]\ndocker_pool = 0\n",
    )
    .expect("config");
    off.add_vm("off", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    off.run(&["connect", "off"]).ok();
    for _ in 0..5 {
        ping(&off, "off");
    }
    let (ready, hits, misses, _) = pool(&off, "off");
    assert_eq!((ready, hits, misses), (0, 0, 5));

    // On (the default): pooled after use, and nothing left after half a minute without a
    // connection, so an idle engine keeps no channel open on the VM.
    let on = Tether::new();
    on.add_vm("on", &var("LAB_A_IP"), 22, &var("LAB_A_SOCK")).ok();
    on.run(&["connect", "on"]).ok();
    ping(&on, "on");
    wait_for("a pooled channel", Duration::from_secs(10), || {
        (pool(&on, "on").0 >= 1).then_some(())
    });
    wait_for("the idle pool to empty", Duration::from_secs(45), || {
        (pool(&on, "on").0 == 0).then_some(())
    });
}
