//! Port planning for automatic forwards, as pure functions: which of a container's published
//! ports are forwarded (the deny-list and the container's labels decide), and which laptop port
//! each new one tries, in order. The session binds; everything it decides is here.

use std::collections::HashMap;

/// How far a port below 1024 moves up when it cannot be taken: 80 becomes 10080, for automatic
/// forwards and in the alternative a refused tunnel suggests.
pub const PRIVILEGED_OFFSET: u16 = 10000;

/// How many laptop ports a new automatic forward tries, from its natural one up.
pub const TRIES: usize = 100;

/// A published TCP port a container wants on the laptop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoWant {
    pub remote: u16,
    pub container: String,
}

/// How automatic forwards pick their local port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AutoPolicy {
    /// Map ports below 1024 to the same number instead of a high one.
    pub allow_privileged: bool,
}

/// The label that keeps all of a container's ports from being forwarded automatically, when
/// "false"; `dev.tether.forward.PORT` does it for one published port ("false"), or forwards a
/// port on the deny list ("true").
pub const FORWARD_LABEL: &str = "dev.tether.forward";

/// Whether a published TCP port is forwarded automatically; if not, why (for the user).
pub fn auto_verdict(port: u16, labels: Option<&HashMap<String, String>>, deny: &[u16]) -> Result<(), String> {
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(|v| v.trim().to_ascii_lowercase());
    let per_port = format!("{FORWARD_LABEL}.{port}");
    match (label(FORWARD_LABEL).as_deref(), label(&per_port).as_deref()) {
        (_, Some("false")) => Err(format!("its label {per_port}=false asks not to be")),
        (_, Some("true")) => Ok(()),
        (Some("false"), _) => Err(format!("its label {FORWARD_LABEL}=false asks not to be")),
        _ if deny.contains(&port) => Err(format!(
            "{port} is a well-known service port, so local clients of that service would reach the container; \
             add a tunnel, or label the container {per_port}=true (settings.auto_forward_deny lists these ports)"
        )),
        _ => Ok(()),
    }
}

/// A tunnel the session has, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub local: u16,
    pub remote: u16,
    /// The container an automatic forward serves; `None` for the user's own tunnels.
    pub container: Option<String>,
}

/// A new automatic forward: the laptop ports to try, in order, until one binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewForward {
    pub remote: u16,
    pub container: String,
    pub candidates: Vec<u16>,
}

/// What brings the automatic forwards in line with what containers want.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Automatic forwards to drop, by laptop port: no container wants them any more, or a
    /// manual tunnel now forwards their port.
    pub remove: Vec<u16>,
    /// Automatic forwards that stay, with the container serving them now.
    pub relabel: Vec<(u16, String)>,
    /// Automatic forwards to make.
    pub add: Vec<NewForward>,
}

/// Plans the automatic forwards: the user's tunnels always win (by remote port, and their
/// laptop ports are never candidates), an existing forward for a wanted port stays where it
/// is, and a new one tries its own port number first (a privileged one moved up by
/// [`PRIVILEGED_OFFSET`] unless allowed), then the next ones.
pub fn plan_auto(existing: &[Existing], wants: &[AutoWant], policy: AutoPolicy) -> Plan {
    let manual_remotes: Vec<u16> = existing
        .iter()
        .filter(|t| t.container.is_none())
        .map(|t| t.remote)
        .collect();
    let wants: Vec<&AutoWant> = wants.iter().filter(|w| !manual_remotes.contains(&w.remote)).collect();
    let mut plan = Plan::default();
    for t in existing.iter().filter(|t| t.container.is_some()) {
        match wants.iter().find(|w| w.remote == t.remote) {
            Some(w) => plan.relabel.push((t.local, w.container.clone())),
            None => plan.remove.push(t.local),
        }
    }
    let kept: Vec<u16> = existing
        .iter()
        .filter(|t| !plan.remove.contains(&t.local))
        .map(|t| t.local)
        .collect();
    for w in wants {
        if existing.iter().any(|t| t.container.is_some() && t.remote == w.remote) {
            continue; // already forwarded: relabelled above
        }
        let first = if w.remote < 1024 && !policy.allow_privileged {
            w.remote.saturating_add(PRIVILEGED_OFFSET)
        } else {
            w.remote
        };
        let candidates = (first..=u16::MAX).filter(|p| !kept.contains(p)).take(TRIES).collect();
        plan.add.push(NewForward {
            remote: w.remote,
            container: w.container.clone(),
            candidates,
        });
    }
    plan
}

#[cfg(test)]
#[path = "tests/ports.rs"]
mod tests;
