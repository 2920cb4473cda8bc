//! Human-readable rendering of engine answers, from their types. Every string that came from a
//! VM or an engine goes through [`clean`] first. JSON output bypasses this module.

use std::borrow::Cow;

use tether_core::api::{
    Check, ContainerView, EngineInfo, Event, ForwardState, ForwardStatus, HealthReport, ReverseStatus, VmStatus,
};
use tether_core::config::Config;
use tether_core::state::State;

/// `text` without control characters (kept: newline and tab) and without the bidirectional
/// overrides that can make a terminal show text in another order than it reads.
pub fn clean(text: &str) -> Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if text.chars().any(bad) {
        Cow::Owned(text.chars().filter(|c| !bad(*c)).collect())
    } else {
        Cow::Borrowed(text)
    }
}

/// "3m ago" style age of a unix-millisecond timestamp; "-" for none (0).
fn ago(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let now = tether_core::clock::unix_ms();
    let secs = now.saturating_sub(ms) / 1000;
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

/// An optional string field, cleaned; empty when absent.
fn opt(v: &Option<String>) -> Cow<'_, str> {
    clean(v.as_deref().unwrap_or(""))
}

fn engine_line(e: Option<&EngineInfo>) -> String {
    match e {
        None => "-".into(),
        Some(e) if e.ok => format!("Docker {} ({}/{})", opt(&e.version), opt(&e.os), opt(&e.arch)),
        Some(e) => format!("engine unreachable: {}", opt(&e.error)),
    }
}

/// How to set `DOCKER_HOST` in this platform's shells. On Unix: `export DOCKER_HOST=…`, quoted
/// for a POSIX shell where the path needs it (a space in "Application Support", a quote in a
/// user name), so `eval "$(tether env)"` always works. On Windows: PowerShell's line, then
/// cmd's, each marked with its shell (a pipe name needs no quoting).
pub fn export_docker_host(host: &str) -> String {
    if cfg!(windows) {
        return format!("$env:DOCKER_HOST = \"{host}\"   # PowerShell\nset DOCKER_HOST={host}   REM cmd");
    }
    let quoted = shlex::try_quote(host)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| host.replace('\0', ""));
    format!("export DOCKER_HOST={quoted}")
}

/// " via a, b" for a VM reached through jump hosts.
fn via(st: &VmStatus) -> String {
    if st.via.is_empty() {
        return String::new();
    }
    format!(" via {}", clean(&st.via.join(", ")))
}

pub fn connected(st: &VmStatus) {
    println!(
        "connected to '{}' ({}{}) — {}",
        clean(&st.name),
        clean(&st.host),
        via(st),
        engine_line(st.engine.as_ref())
    );
    println!("socket: {}", clean(&st.socket));
    println!("{}", export_docker_host(&clean(&st.docker_host)));
    for f in &st.forwards {
        forward_line(f, "");
    }
    for r in &st.reverse {
        reverse_line(r, "");
    }
}

fn forward_state(s: ForwardState) -> &'static str {
    match s {
        ForwardState::Listening => "listening",
        ForwardState::Failed => "failed",
        ForwardState::Idle => "idle",
        ForwardState::Pending => "asking the VM",
    }
}

fn reverse_line(r: &ReverseStatus, indent: &str) {
    let err = r
        .error
        .as_deref()
        .map(|e| format!(": {}", clean(e)))
        .unwrap_or_default();
    let active = Some(r.active)
        .filter(|n| *n > 0)
        .map(|n| format!(" ({n} open)"))
        .unwrap_or_default();
    // Where the VM listens: the address in use, else what was asked (`docker` until resolved).
    let at = r
        .address
        .clone()
        .or_else(|| r.bind.clone())
        .unwrap_or_else(|| "127.0.0.1".into());
    println!(
        "{indent}reverse VM {at}:{} → this laptop's port {}  {}{active}{err}",
        r.remote,
        r.local,
        forward_state(r.state)
    );
}

fn forward_line(f: &ForwardStatus, indent: &str) {
    let err = f
        .error
        .as_deref()
        .map(|e| format!(": {}", clean(e)))
        .unwrap_or_default();
    let active = Some(f.active)
        .filter(|n| *n > 0)
        .map(|n| format!(" ({n} open)"))
        .unwrap_or_default();
    let auto = match (f.auto, f.container.as_deref()) {
        (true, Some(c)) if f.local != f.remote => format!("  auto for {} (port {} was taken)", clean(c), f.remote),
        (true, Some(c)) => format!("  auto for {}", clean(c)),
        _ => String::new(),
    };
    println!(
        "{indent}tunnel 127.0.0.1:{} → VM port {}  {}{active}{auto}{err}",
        f.local,
        f.remote,
        forward_state(f.state)
    );
}

pub fn tunnels(vm: Option<&VmStatus>) {
    let list = vm.map(|v| v.forwards.as_slice()).unwrap_or_default();
    let reverse = vm.map(|v| v.reverse.as_slice()).unwrap_or_default();
    if list.is_empty() && reverse.is_empty() {
        println!(
            "no tunnels; add one with `tether tunnel -p 3000`, or let the VM reach this laptop with `tether tunnel --reverse 5432`"
        );
    }
    for f in list {
        forward_line(f, "");
    }
    for r in reverse {
        reverse_line(r, "");
    }
}

pub fn vm_list(cfg: &Config) {
    if cfg.vms.is_empty() {
        println!("no VMs yet; add one with `tether vm add NAME --host HOST`");
        return;
    }
    for (name, p) in &cfg.vms {
        let mark = if cfg.active.as_deref() == Some(name) { "*" } else { " " };
        let arch = p.arch.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
        let user = p.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
        let port = p.port.map(|p| format!(":{p}")).unwrap_or_default();
        println!("{mark} {name:<16} {user}{}{port}  {arch}  {}", p.host, p.remote_socket);
    }
}

/// A state in words, with the attempt while reconnecting ("reconnecting #3").
fn state_words(state: State) -> String {
    match state {
        State::Reconnecting { attempt } => format!("{} #{attempt}", state.label()),
        other => other.label().to_string(),
    }
}

pub fn status(list: &[VmStatus]) {
    if list.is_empty() {
        println!("no VMs yet; add one with `tether vm add NAME --host HOST`");
        return;
    }
    println!(
        "  {:<14} {:<14} {:<9} {:<9} {:<8} ENGINE",
        "NAME", "STATE", "SINCE", "RTT", "ARCH"
    );
    for vm in list {
        let mark = if vm.active { "*" } else { " " };
        let rtt = vm.rtt_ms.map(|r| format!("{r:.1} ms")).unwrap_or_else(|| "-".into());
        let arch = vm.arch.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{mark} {:<14} {:<14} {:<9} {:<9} {:<8} {}",
            clean(&vm.name),
            state_words(vm.state),
            ago(vm.since_ms),
            rtt,
            arch,
            engine_line(vm.engine.as_ref())
        );
        if !vm.via.is_empty() {
            let s = if vm.via.len() > 1 { "s" } else { "" };
            println!("    through the jump host{s} {}", clean(&vm.via.join(", ")));
        }
        if let Some(k) = &vm.kube {
            println!(
                "    kubernetes: kubectl --context {} (127.0.0.1:{} → the VM's port {})",
                clean(&k.context),
                k.local,
                k.remote
            );
        }
        for f in &vm.forwards {
            forward_line(f, "    ");
        }
        for r in &vm.reverse {
            reverse_line(r, "    ");
        }
        for u in &vm.unforwarded {
            println!(
                "    {} port {} of {}: not forwarded ({})",
                u.proto.to_string().to_uppercase(),
                u.port,
                clean(&u.container),
                clean(&u.reason)
            );
        }
        crate::share::status_lines(&vm.shares);
        if let Some(w) = &vm.arch_warning {
            println!("    warning: {}", clean(w));
        }
        if let Some(e) = &vm.last_error {
            println!("    last error: {}", clean(e));
        }
    }
}

/// One engine event as a line of text, timestamped.
pub fn event(ev: &Event) {
    let now = tether_core::clock::unix_ms() / 1000;
    let hms = format!("{:02}:{:02}:{:02}", (now / 3600) % 24, (now / 60) % 60, now % 60);
    let text = match ev {
        Event::State { vm, state, error, .. } => {
            let err = error.as_deref().map(|e| format!(": {}", clean(e))).unwrap_or_default();
            let attempt = match state {
                State::Reconnecting { attempt } => format!(" (attempt {attempt})"),
                _ => String::new(),
            };
            format!("{}: {}{attempt}{err}", clean(vm), state.label())
        }
        Event::Forward { vm, forward: f } => {
            let err = f
                .error
                .as_deref()
                .map(|e| format!(": {}", clean(e)))
                .unwrap_or_default();
            format!(
                "{}: tunnel 127.0.0.1:{} → {} {}{err}",
                clean(vm),
                f.local,
                f.remote,
                forward_state(f.state)
            )
        }
        Event::Reverse { vm, reverse } => {
            let each: Vec<String> = reverse
                .iter()
                .map(|r| format!("VM {} → {} {}", r.remote, r.local, forward_state(r.state)))
                .collect();
            format!("{}: reverse {}", clean(vm), each.join(", "))
        }
        Event::Engine { vm, engine } => format!("{}: {}", clean(vm), engine_line(Some(engine))),
        Event::Rtt { vm, rtt_ms } => format!("{}: round trip {rtt_ms} ms", clean(vm)),
        Event::Active { vm } => format!("active VM is now {}", clean(vm.as_deref().unwrap_or("none"))),
        Event::VmAdded { vm } => format!("{}: added", clean(vm)),
        Event::VmRemoved { vm } => format!("{}: removed", clean(vm)),
        Event::Containers { vm } => format!("{}: containers changed", clean(vm)),
        Event::Health { vm, health: h } => {
            let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
            format!(
                "{}: health: rtt {} ms, engine {} ms, load {}",
                clean(vm),
                ms(h.rtt_ms),
                ms(h.engine.as_ref().map(|e| e.ping_ms)),
                ms(h.vm.as_ref().map(|v| v.load[0]))
            )
        }
        Event::Shares { vm, shares } => {
            let each: Vec<String> = shares
                .iter()
                .filter(|s| !s.folders.is_empty())
                .map(|s| format!("{} {}", clean(&s.name), crate::share::state_word(s.state)))
                .collect();
            format!("{}: shared folders: {}", clean(vm), each.join(", "))
        }
        Event::Conflict { vm, conflict } => format!(
            "{}: conflict on {}: both sides changed it; this laptop's version kept the name, the VM's is {}",
            clean(vm),
            clean(&conflict.path),
            clean(&conflict.copy)
        ),
        Event::ShareSuggested { vm, path } => format!(
            "{}: a container mounts {}, which is on this laptop but in no shared folder, so it gets the VM's own {}; `tether share add NAME {}` would make it this laptop's",
            clean(vm),
            clean(path),
            clean(path),
            clean(path)
        ),
    };
    println!("{hms} {text}");
}

/// The onboarding checks, one line each, with the fix under a failed one.
pub fn checks(checks: &[Check]) {
    for c in checks {
        println!(
            "{} {:<36} {}",
            if c.ok { "✓" } else { "✗" },
            clean(&c.title),
            clean(&c.detail)
        );
        if let Some(fix) = c.fix.as_deref().filter(|_| !c.ok) {
            println!("  fix: {}", clean(fix));
        }
    }
}

fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else {
        format!("{:.0} MB", b / 1e6)
    }
}

/// `tether health`.
pub fn health(report: &HealthReport) {
    let Some(h) = &report.latest else {
        println!("no health reading yet; the VM must be connected (readings come every 30 s, every 2 s while watched)");
        return;
    };
    let rtt = h.rtt_ms.map(|r| format!("{r:.1} ms")).unwrap_or_else(|| "-".into());
    println!("ssh        round trip {rtt}");
    if let Some(e) = &h.engine {
        println!(
            "engine     Docker {} (API {}), {} {} on {}, ping {} ms",
            clean(&e.version),
            clean(&e.api_version),
            clean(&e.os),
            clean(&e.kernel),
            clean(&e.arch),
            e.ping_ms
        );
        println!(
            "           containers {} running / {} total, {} images, data in {}",
            e.containers_running,
            e.containers_total,
            e.images,
            clean(&e.docker_root)
        );
    }
    if let Some(v) = &h.vm {
        println!(
            "vm         load {} {} {} on {} CPUs",
            v.load[0], v.load[1], v.load[2], v.cpus
        );
        println!("           memory {} used of {}", bytes(v.mem_used), bytes(v.mem_total));
        println!(
            "           disk / {} used of {}; Docker's {} used of {}",
            bytes(v.disk_root.used),
            bytes(v.disk_root.total),
            bytes(v.disk_docker.used),
            bytes(v.disk_docker.total)
        );
    }
    if let Some(w) = &h.arch_warning {
        println!("warning    {}", clean(w));
    }
    for p in &h.problems {
        println!("problem    {}", clean(p));
    }
}

/// `tether containers`.
pub fn containers(list: &Vec<ContainerView>) {
    if list.is_empty() {
        println!("no containers on this VM");
    }
    // Compose projects together, each under its name; containers of no project first.
    let mut projects: std::collections::BTreeMap<&str, Vec<&ContainerView>> = Default::default();
    for c in list {
        match c.project.as_deref() {
            Some(p) => projects.entry(p).or_default().push(c),
            None => container_line(c, ""),
        }
    }
    for (project, members) in projects {
        let running = members.iter().filter(|c| c.state == "running").count();
        println!(
            "project {} ({} containers, {running} running; `tether containers --project {} --restart`)",
            clean(project),
            members.len(),
            clean(project)
        );
        for c in members {
            container_line(c, "  ");
        }
    }
}

fn container_line(c: &ContainerView, indent: &str) {
    let ports: Vec<String> = c
        .ports
        .iter()
        .filter_map(|p| {
            let public = p.public?;
            let proto = p.proto;
            Some(match p.local {
                Some(l) => format!(
                    "{public}/{proto} → 127.0.0.1:{l}{}",
                    if p.auto { " (auto)" } else { "" }
                ),
                None if p.not_forwarded.is_some() => format!("{public}/{proto} (not forwarded)"),
                None => format!("{public}/{proto}"),
            })
        })
        .collect();
    let health = c
        .health
        .as_deref()
        .map(|h| format!(" ({})", clean(h)))
        .unwrap_or_default();
    let service = c
        .service
        .as_deref()
        .map(|s| format!(" [{}]", clean(s)))
        .unwrap_or_default();
    println!(
        "{indent}{:<24} {:<10} {:<28} {}",
        format!("{}{service}", clean(&c.name)),
        format!("{}{health}", clean(&c.state)),
        clean(&c.image),
        ports.join(", ")
    );
    for p in &c.ports {
        if let (Some(public), Some(why)) = (p.public, &p.not_forwarded) {
            println!("{indent}    {public}/{} not forwarded: {}", p.proto, clean(why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_a_vm_loses_its_control_characters_and_keeps_its_words() {
        let hostile = "engine \u{1b}]0;owned\u{7}\u{1b}[2Jdown\r\u{9b}31m on \u{202e}lanretxe\u{202c}\nsecond\tline";
        let shown = clean(hostile);
        assert_eq!(shown, "engine ]0;owned[2Jdown31m on lanretxe\nsecond\tline");
        // Plain text is passed through without a copy.
        assert!(matches!(clean("Docker 26.1 (linux/arm64)"), Cow::Borrowed(_)));
        // Optional fields too.
        assert_eq!(opt(&Some("a\u{1b}[31mb".into())), "a[31mb");
        assert_eq!(opt(&None), "");
    }

    #[cfg(unix)]
    #[test]
    fn docker_host_is_quoted_for_the_shell() {
        assert_eq!(
            export_docker_host("unix:///Users/me/Library/Application Support/tether/run/vms/a/docker.sock"),
            "export DOCKER_HOST='unix:///Users/me/Library/Application Support/tether/run/vms/a/docker.sock'"
        );
        assert_eq!(
            export_docker_host("unix:///run/a.sock"),
            "export DOCKER_HOST=unix:///run/a.sock"
        );
    }
}
