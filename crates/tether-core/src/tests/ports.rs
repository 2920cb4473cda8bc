//! Port planning, as a table: manual against automatic, taken ports, privileged ports, the
//! deny-list and the containers' labels.

use super::*;

fn auto(local: u16, remote: u16, container: &str) -> Existing {
    Existing {
        local,
        remote,
        container: Some(container.into()),
    }
}

fn manual(local: u16, remote: u16) -> Existing {
    Existing {
        local,
        remote,
        container: None,
    }
}

fn want(remote: u16, container: &str) -> AutoWant {
    AutoWant {
        remote,
        container: container.into(),
    }
}

fn new(remote: u16, container: &str, first: &[u16]) -> (u16, String, Vec<u16>) {
    (remote, container.into(), first.to_vec())
}

#[test]
fn planning_table() {
    let strict = AutoPolicy::default();
    let lax = AutoPolicy { allow_privileged: true };
    // (what the session has, what containers want, policy) → (remove, relabel, add: first candidates)
    type Row = (
        &'static str,
        Vec<Existing>,
        Vec<AutoWant>,
        AutoPolicy,
        Vec<u16>,
        Vec<(u16, String)>,
        Vec<(u16, String, Vec<u16>)>,
    );
    let rows: Vec<Row> = vec![
        (
            "nothing wanted, nothing had",
            vec![],
            vec![],
            strict,
            vec![],
            vec![],
            vec![],
        ),
        (
            "a new port tries its own number first",
            vec![],
            vec![want(8080, "web")],
            strict,
            vec![],
            vec![],
            vec![new(8080, "web", &[8080, 8081, 8082])],
        ),
        (
            "a laptop port held by the user's tunnel is never a candidate",
            vec![manual(8080, 9999)],
            vec![want(8080, "web")],
            strict,
            vec![],
            vec![],
            vec![new(8080, "web", &[8081, 8082])],
        ),
        (
            "a manual tunnel of the same remote port wins, and its automatic twin goes",
            vec![manual(3000, 8080), auto(8080, 8080, "web")],
            vec![want(8080, "web")],
            strict,
            vec![8080],
            vec![],
            vec![],
        ),
        (
            "an existing forward stays where it is and follows its new container",
            vec![auto(8081, 8080, "old")],
            vec![want(8080, "new")],
            strict,
            vec![],
            vec![(8081, "new".into())],
            vec![],
        ),
        (
            "a container gone takes its forward with it",
            vec![auto(8080, 8080, "web"), auto(9000, 9000, "api")],
            vec![want(9000, "api")],
            strict,
            vec![8080],
            vec![(9000, "api".into())],
            vec![],
        ),
        (
            "privileged ports move up unless allowed",
            vec![],
            vec![want(80, "proxy")],
            strict,
            vec![],
            vec![],
            vec![new(80, "proxy", &[10080, 10081])],
        ),
        (
            "allowed privileged ports keep their number",
            vec![],
            vec![want(80, "proxy")],
            lax,
            vec![],
            vec![],
            vec![new(80, "proxy", &[80, 81])],
        ),
        (
            "the top of the range does not wrap",
            vec![],
            vec![want(65535, "edge")],
            strict,
            vec![],
            vec![],
            vec![new(65535, "edge", &[65535])],
        ),
    ];
    for (what, existing, wants, policy, remove, relabel, add) in rows {
        let plan = plan_auto(&existing, &wants, policy);
        assert_eq!(plan.remove, remove, "{what}");
        assert_eq!(plan.relabel, relabel, "{what}");
        assert_eq!(plan.add.len(), add.len(), "{what}: {:?}", plan.add);
        for (got, (remote, container, first)) in plan.add.iter().zip(add) {
            assert_eq!((got.remote, &got.container), (remote, &container), "{what}");
            assert_eq!(&got.candidates[..first.len()], &first[..], "{what}");
            assert!(got.candidates.len() <= TRIES, "{what}");
        }
    }
}

#[test]
fn verdicts_then_plans_from_containers_to_laptop_ports() {
    use std::collections::HashMap;
    let deny = crate::config::DEFAULT_AUTO_FORWARD_DENY;
    let labels = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    // Published ports with their containers' labels; what is forwarded, and why not.
    let published: Vec<(u16, &str, HashMap<String, String>)> = vec![
        (3000, "web", labels(&[])),
        (5432, "db", labels(&[])),
        (6379, "cache", labels(&[("dev.tether.forward.6379", "true")])),
        (9000, "quiet", labels(&[("dev.tether.forward", "false")])),
        (9001, "half", labels(&[("dev.tether.forward.9001", "false")])),
        (9002, "half", labels(&[("dev.tether.forward.9001", "false")])),
    ];
    let mut wants = Vec::new();
    let mut kept_back = Vec::new();
    for (port, container, l) in &published {
        match auto_verdict(*port, Some(l), deny) {
            Ok(()) => wants.push(want(*port, container)),
            Err(why) => kept_back.push((*port, why)),
        }
    }
    let plan = plan_auto(&[], &wants, AutoPolicy::default());
    let firsts: Vec<(u16, u16)> = plan.add.iter().map(|n| (n.remote, n.candidates[0])).collect();
    assert_eq!(firsts, [(3000, 3000), (6379, 6379), (9002, 9002)]);
    let ports: Vec<u16> = kept_back.iter().map(|(p, _)| *p).collect();
    assert_eq!(ports, [5432, 9000, 9001]);
    assert!(kept_back[0].1.contains("well-known service port"));
}

#[test]
fn automatic_forwards_skip_service_ports_and_follow_labels() {
    use std::collections::HashMap;
    let deny = crate::config::DEFAULT_AUTO_FORWARD_DENY;
    let labels = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    assert!(auto_verdict(3000, None, deny).is_ok());
    for port in [5432, 6379, 3306, 22, 27017] {
        let why = auto_verdict(port, None, deny).unwrap_err();
        assert!(why.contains("well-known service port"), "{why}");
    }
    // A container that asks for a denied port gets it; one that asks for none gets none.
    assert!(auto_verdict(5432, Some(&labels(&[("dev.tether.forward.5432", "true")])), deny).is_ok());
    let off = labels(&[("dev.tether.forward", "false")]);
    assert!(
        auto_verdict(3000, Some(&off), deny)
            .unwrap_err()
            .contains("dev.tether.forward=false")
    );
    // Per port wins over the container's label, both ways; other labels change nothing.
    let mixed = labels(&[("dev.tether.forward", "false"), ("dev.tether.forward.3000", "true")]);
    assert!(auto_verdict(3000, Some(&mixed), deny).is_ok());
    assert!(auto_verdict(3001, Some(&mixed), deny).is_err());
    let one = labels(&[("dev.tether.forward.8080", "FALSE"), ("other", "x")]);
    assert!(auto_verdict(8080, Some(&one), deny).is_err());
    assert!(auto_verdict(8081, Some(&one), deny).is_ok());
    // An empty deny list (the user's choice) forwards service ports too.
    assert!(auto_verdict(5432, None, &[]).is_ok());
}
