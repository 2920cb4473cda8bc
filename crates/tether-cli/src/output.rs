//! Human-readable rendering of engine answers. JSON output bypasses this module.

use std::borrow::Cow;

use serde_json::Value;
use tether_core::config::Config;

/// A string field of an answer, made safe for a terminal: text from a VM or an engine (errors,
/// OS names, container names) may carry escape sequences.
fn s(v: &Value) -> Cow<'_, str> {
    clean(v.as_str().unwrap_or(""))
}

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

/// "3m ago" style age of a unix-millisecond timestamp.
fn ago(ms: &Value) -> String {
    let Some(ms) = ms.as_u64() else { return "-".into() };
    let now = tether_core::clock::unix_ms();
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

/// `export DOCKER_HOST=…`, quoted for a POSIX shell where the path needs it (a space in
/// "Application Support", a quote in a user name), so `eval "$(tether env)"` always works.
pub fn export_docker_host(host: &str) -> String {
    let quoted = shlex::try_quote(host)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| host.replace('\0', ""));
    format!("export DOCKER_HOST={quoted}")
}

pub fn connected(st: &Value) {
    println!(
        "connected to '{}' ({}) — {}",
        s(&st["name"]),
        s(&st["host"]),
        engine_line(&st["engine"])
    );
    println!("socket: {}", s(&st["socket"]));
    println!("{}", export_docker_host(&s(&st["docker_host"])));
    for f in st["forwards"].as_array().into_iter().flatten() {
        forward_line(f, "");
    }
}

fn forward_line(f: &Value, indent: &str) {
    let err = f["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
    let active = f["active"]
        .as_u64()
        .filter(|n| *n > 0)
        .map(|n| format!(" ({n} open)"))
        .unwrap_or_default();
    let auto = match (f["auto"] == true, f["container"].as_str()) {
        (true, Some(c)) if f["local"] != f["remote"] => format!("  auto for {c} (port {} was taken)", f["remote"]),
        (true, Some(c)) => format!("  auto for {c}"),
        _ => String::new(),
    };
    println!(
        "{indent}tunnel 127.0.0.1:{} → VM port {}  {}{active}{auto}{err}",
        f["local"],
        f["remote"],
        s(&f["state"])
    );
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
    println!(
        "  {:<14} {:<14} {:<9} {:<9} {:<8} ENGINE",
        "NAME", "STATE", "SINCE", "RTT", "ARCH"
    );
    for vm in &list {
        let mark = if vm["active"] == Value::Bool(true) { "*" } else { " " };
        let state = match vm["attempt"].as_u64() {
            Some(n) => format!("{} #{n}", s(&vm["state"])),
            None => s(&vm["state"]).to_string(),
        };
        let rtt = vm["rtt_ms"]
            .as_f64()
            .map(|r| format!("{r:.1} ms"))
            .unwrap_or_else(|| "-".into());
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
        for u in vm["unforwarded"].as_array().into_iter().flatten() {
            println!(
                "    {} port {} of {}: not forwarded ({})",
                s(&u["proto"]).to_uppercase(),
                u["port"],
                s(&u["container"]),
                s(&u["reason"])
            );
        }
        if let Some(w) = vm["arch_warning"].as_str() {
            println!("    warning: {w}");
        }
        if let Some(e) = vm["last_error"].as_str() {
            println!("    last error: {e}");
        }
    }
}

/// One engine event as a line of text, timestamped.
pub fn event(ev: &Value) {
    let now = tether_core::clock::unix_ms() / 1000;
    let hms = format!("{:02}:{:02}:{:02}", (now / 3600) % 24, (now / 60) % 60, now % 60);
    let vm = s(&ev["vm"]);
    let text = match s(&ev["event"]).as_ref() {
        "state" => {
            let attempt = ev["attempt"]
                .as_u64()
                .map(|a| format!(" (attempt {a})"))
                .unwrap_or_default();
            let err = ev["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
            format!("{vm}: {}{attempt}{err}", s(&ev["state"]))
        }
        "forward" => {
            let f = &ev["forward"];
            let err = f["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
            format!(
                "{vm}: tunnel 127.0.0.1:{} → {} {}{err}",
                f["local"],
                f["remote"],
                s(&f["state"])
            )
        }
        "engine" => format!("{vm}: {}", engine_line(&ev["engine"])),
        "rtt" => format!("{vm}: round trip {} ms", ev["rtt_ms"]),
        "active" => format!("active VM is now {}", ev["vm"].as_str().unwrap_or("none")),
        "vm_added" => format!("{vm}: added"),
        "vm_removed" => format!("{vm}: removed"),
        "containers" => format!("{vm}: containers changed"),
        "health" => {
            let h = &ev["health"];
            format!(
                "{vm}: health: rtt {} ms, engine {} ms, load {}",
                h["rtt_ms"], h["engine"]["ping_ms"], h["vm"]["load"][0]
            )
        }
        other => format!("{other}: {ev}"),
    };
    println!("{hms} {text}");
}

/// The onboarding checks, one line each, with the fix under a failed one.
pub fn checks(checks: &[Value]) {
    for c in checks {
        let ok = c["ok"] == true;
        println!(
            "{} {:<36} {}",
            if ok { "✓" } else { "✗" },
            c["title"].as_str().unwrap_or(""),
            c["detail"].as_str().unwrap_or("")
        );
        if let Some(fix) = c["fix"].as_str().filter(|_| !ok) {
            println!("  fix: {fix}");
        }
    }
}

fn bytes(v: &Value) -> String {
    let b = v.as_f64().unwrap_or(0.0);
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else {
        format!("{:.0} MB", b / 1e6)
    }
}

/// `tether health`.
pub fn health(report: &Value) {
    let h = &report["latest"];
    if h.is_null() {
        println!("no health reading yet; the VM must be connected (readings come every 30 s, every 2 s while watched)");
        return;
    }
    let rtt = h["rtt_ms"]
        .as_f64()
        .map(|r| format!("{r:.1} ms"))
        .unwrap_or_else(|| "-".into());
    println!("ssh        round trip {rtt}");
    let e = &h["engine"];
    if !e.is_null() {
        println!(
            "engine     Docker {} (API {}), {} {} on {}, ping {} ms",
            s(&e["version"]),
            s(&e["api_version"]),
            s(&e["os"]),
            s(&e["kernel"]),
            s(&e["arch"]),
            e["ping_ms"]
        );
        println!(
            "           containers {} running / {} total, {} images, data in {}",
            e["containers_running"],
            e["containers_total"],
            e["images"],
            s(&e["docker_root"])
        );
    }
    let v = &h["vm"];
    if !v.is_null() {
        println!(
            "vm         load {} {} {} on {} CPUs",
            v["load"][0], v["load"][1], v["load"][2], v["cpus"]
        );
        println!(
            "           memory {} used of {}",
            bytes(&v["mem_used"]),
            bytes(&v["mem_total"])
        );
        println!(
            "           disk / {} used of {}; Docker's {} used of {}",
            bytes(&v["disk_root"]["used"]),
            bytes(&v["disk_root"]["total"]),
            bytes(&v["disk_docker"]["used"]),
            bytes(&v["disk_docker"]["total"])
        );
    }
    if let Some(w) = h["arch_warning"].as_str() {
        println!("warning    {w}");
    }
    for p in h["problems"].as_array().into_iter().flatten() {
        println!("problem    {}", s(p));
    }
}

/// `tether containers`.
pub fn containers(list: &Value) {
    let list = list.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no containers on this VM");
    }
    for c in list {
        let ports: Vec<String> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| !p["public"].is_null())
            .map(|p| match p["local"].as_u64() {
                Some(l) => format!(
                    "{}/{} → 127.0.0.1:{l}{}",
                    p["public"],
                    s(&p["proto"]),
                    if p["auto"] == true { " (auto)" } else { "" }
                ),
                None if p["not_forwarded"].is_string() => format!("{}/{} (not forwarded)", p["public"], s(&p["proto"])),
                None => format!("{}/{}", p["public"], s(&p["proto"])),
            })
            .collect();
        let health = c["health"].as_str().map(|h| format!(" ({h})")).unwrap_or_default();
        println!(
            "{:<24} {:<10} {:<28} {}",
            s(&c["name"]),
            format!("{}{health}", s(&c["state"])),
            s(&c["image"]),
            ports.join(", ")
        );
        for p in c["ports"].as_array().into_iter().flatten() {
            if let Some(why) = p["not_forwarded"].as_str() {
                println!("    {}/{} not forwarded: {}", p["public"], s(&p["proto"]), clean(why));
            }
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
        // Every string field of an answer goes through it.
        assert_eq!(s(&serde_json::json!("a\u{1b}[31mb")), "a[31mb");
    }

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
