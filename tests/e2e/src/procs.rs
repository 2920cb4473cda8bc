//! A process and its descendants as /proc sees them: names, RSS, PSS and CPU time. The app tests
//! use it to see WebKit's processes come and go; the footprint tool to measure them.

use std::collections::HashMap;
use std::path::Path;

/// One process of a tree.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: u32,
    pub name: String,
    pub rss_kib: u64,
    pub pss_kib: u64,
    /// User plus system CPU time of all its threads, in clock ticks.
    pub ticks: u64,
}

/// (ppid, utime + stime) from /proc/PID/stat. The name field may hold spaces and parentheses,
/// so fields are counted from its closing parenthesis.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12).
    Some((
        f.get(1)?.parse().ok()?,
        f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    ))
}

fn kib(file: &Path, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `root` and every process below it that is alive now.
pub fn tree(root: u32) -> Vec<Proc> {
    let mut parent = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
            && let Some((ppid, _)) = stat(pid)
        {
            parent.insert(pid, ppid);
        }
    }
    let within = |mut pid: u32| {
        while pid > 1 {
            if pid == root {
                return true;
            }
            pid = parent.get(&pid).copied().unwrap_or(0);
        }
        false
    };
    let mut pids: Vec<u32> = parent.keys().copied().filter(|p| within(*p)).collect();
    pids.sort_unstable();
    pids.into_iter()
        .filter_map(|pid| {
            let dir = Path::new("/proc").join(pid.to_string());
            let name = std::fs::read_to_string(dir.join("comm")).ok()?.trim().to_string();
            let (_, ticks) = stat(pid)?;
            Some(Proc {
                pid,
                name,
                rss_kib: kib(&dir.join("status"), "VmRSS:"),
                pss_kib: kib(&dir.join("smaps_rollup"), "Pss:"),
                ticks,
            })
        })
        .collect()
}

/// WebKit's helper processes in `root`'s tree (web content, network, GPU).
pub fn webkit(root: u32) -> Vec<Proc> {
    tree(root)
        .into_iter()
        .filter(|p| p.name.starts_with("WebKit"))
        .collect()
}

/// Clock ticks per second (USER_HZ).
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Where a process's PSS lives, in KiB, from /proc/PID/smaps: its own executable's code
/// (`exe_code`) and other pages (`exe_data`: read-only data, relocations), shared libraries,
/// the heap, and other anonymous memory (thread stacks, mmap'd allocations).
#[derive(Debug, Default, Clone, Copy)]
pub struct PssParts {
    pub exe_code: u64,
    pub exe_data: u64,
    pub libraries: u64,
    pub heap: u64,
    pub anon: u64,
}

pub fn pss_parts(pid: u32) -> PssParts {
    let mut parts = PssParts::default();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return parts;
    };
    // A mapping's header line starts with its address range; its "Pss:" line follows.
    let mut slot: Option<&mut u64> = None;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let f: Vec<&str> = line.split_whitespace().collect();
            let perms = f.get(1).copied().unwrap_or("");
            let path = f.get(5).copied().unwrap_or("");
            slot = Some(if Path::new(path) == exe {
                if perms.contains('x') {
                    &mut parts.exe_code
                } else {
                    &mut parts.exe_data
                }
            } else if path == "[heap]" {
                &mut parts.heap
            } else if path.starts_with('/') {
                &mut parts.libraries
            } else {
                &mut parts.anon
            });
        } else if let Some(v) = line.strip_prefix("Pss:")
            && let Some(s) = slot.as_deref_mut()
        {
            *s += v
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    parts
}
