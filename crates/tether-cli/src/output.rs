//! Human-readable rendering of engine answers. JSON output bypasses this module.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tether_core::config::Config;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// "3m ago" style age of a unix-millisecond timestamp.
fn ago(ms: &Value) -> String {
    let Some(ms) = ms.as_u64() else { return "-".into() };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(ms);
    let secs = now.saturating_sub(ms) / 1000;
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

fn engine_line(e: &Value) -> String {
    if e.is_null() {
        return "-".into();
    }
    if e["ok"] == Value::Bool(true) {
        format!("Docker {} ({}/{})", s(&e["version"]), s(&e["os"]), s(&e["arch"]))
    } else {
        format!("engine unreachable: {}", s(&e["error"]))
    }
}

pub fn connected(st: &Value) {
    println!("connected to '{}' ({}) — {}", s(&st["name"]), s(&st["host"]), engine_line(&st["engine"]));
    println!("socket: {}", s(&st["socket"]));
    println!("export DOCKER_HOST={}", s(&st["docker_host"]));
    for f in st["forwards"].as_array().into_iter().flatten() {
        forward_line(f, "");
    }
}

fn forward_line(f: &Value, indent: &str) {
    let err = f["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
    let active = f["active"].as_u64().filter(|n| *n > 0).map(|n| format!(" ({n} open)")).unwrap_or_default();
    println!("{indent}tunnel 127.0.0.1:{} → VM port {}  {}{active}{err}", f["local"], f["remote"], s(&f["state"]));
}

pub fn tunnels(vm: &Value) {
    let list = vm["forwards"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no tunnels; add one with `tether tunnel -p 3000`");
    }
    for f in &list {
        forward_line(f, "");
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

pub fn status(all: &Value) {
    let list = all.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no VMs yet; add one with `tether vm add NAME --host HOST`");
        return;
    }
    println!("  {:<14} {:<14} {:<9} {:<9} {:<8} ENGINE", "NAME", "STATE", "SINCE", "RTT", "ARCH");
    for vm in &list {
        let mark = if vm["active"] == Value::Bool(true) { "*" } else { " " };
        let state = match vm["attempt"].as_u64() {
            Some(n) => format!("{} #{n}", s(&vm["state"])),
            None => s(&vm["state"]).to_string(),
        };
        let rtt = vm["rtt_ms"].as_f64().map(|r| format!("{r:.1} ms")).unwrap_or_else(|| "-".into());
        let arch = vm["arch"].as_str().unwrap_or("-");
        println!(
            "{mark} {:<14} {:<14} {:<9} {:<9} {:<8} {}",
            s(&vm["name"]),
            state,
            ago(&vm["since_ms"]),
            rtt,
            arch,
            engine_line(&vm["engine"])
        );
        for f in vm["forwards"].as_array().into_iter().flatten() {
            forward_line(f, "    ");
        }
        if let Some(e) = vm["last_error"].as_str() {
            println!("    last error: {e}");
        }
    }
}

/// One engine event as a line of text, timestamped.
pub fn event(ev: &Value) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let hms = format!("{:02}:{:02}:{:02}", (now / 3600) % 24, (now / 60) % 60, now % 60);
    let vm = s(&ev["vm"]);
    let text = match s(&ev["event"]) {
        "state" => {
            let attempt = ev["attempt"].as_u64().map(|a| format!(" (attempt {a})")).unwrap_or_default();
            let err = ev["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
            format!("{vm}: {}{attempt}{err}", s(&ev["state"]))
        }
        "forward" => {
            let f = &ev["forward"];
            let err = f["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
            format!("{vm}: tunnel 127.0.0.1:{} → {} {}{err}", f["local"], f["remote"], s(&f["state"]))
        }
        "engine" => format!("{vm}: {}", engine_line(&ev["engine"])),
        "rtt" => format!("{vm}: round trip {} ms", ev["rtt_ms"]),
        "active" => format!("active VM is now {}", ev["vm"].as_str().unwrap_or("none")),
        "vm_added" => format!("{vm}: added"),
        "vm_removed" => format!("{vm}: removed"),
        other => format!("{other}: {ev}"),
    };
    println!("{hms} {text}");
}

/// The onboarding checks, one line each, with the fix under a failed one.
pub fn checks(checks: &[Value]) {
    for c in checks {
        let ok = c["ok"] == true;
        println!("{} {:<36} {}", if ok { "✓" } else { "✗" }, c["title"].as_str().unwrap_or(""), c["detail"].as_str().unwrap_or(""));
        if let Some(fix) = c["fix"].as_str().filter(|_| !ok) {
            println!("  fix: {fix}");
        }
    }
}
