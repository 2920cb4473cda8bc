//! `tether doctor`: every thing Tether depends on, checked, each failure with its fix. The local
//! side (the engine, its runtime directory, the keychain, the docker CLI, the docker contexts, a
//! `DOCKER_HOST` that overrides them) and each VM (DNS, TCP, then the onboarding checks: SSH and
//! its host key and login, the socket, access, forwarding and the arch; and the VM's clock).
//!
//! `--report FILE` bundles versions, the doctor's verdicts, status with health history, the config
//! and the engine log's last lines into a tar.gz for a bug report. Nothing in it is secret by
//! construction (the config holds no key material, and nothing secret is ever logged); private-key
//! blocks are cut out of every text all the same.
//!
//! Longer than 500 lines on purpose: the checks and the report share one list of verdicts, and a
//! new check is added to both at once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::api::Check;
use crate::engine::Engine;
use crate::error::EngineError;

#[cfg(test)]
#[path = "tests/doctor.rs"]
mod tests;

/// How long one network step of a VM's checks may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// A VM clock further off than this breaks TLS, tokens and build caches: reported.
const MAX_SKEW_S: i64 = 30;
/// The engine log's last lines in a report.
const LOG_LINES: usize = 2000;

/// What only the caller's process knows: its `PATH` and `DOCKER_HOST`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
#[ts(optional_fields)]
pub struct ClientFacts {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub docker_host: Option<String>,
}

/// The doctor's verdicts.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct Doctor {
    pub local: Vec<Check>,
    pub vms: Vec<VmChecks>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct VmChecks {
    pub name: String,
    pub checks: Vec<Check>,
}

impl Doctor {
    pub fn ok(&self) -> bool {
        self.local
            .iter()
            .chain(self.vms.iter().flat_map(|v| &v.checks))
            .all(|c| c.ok)
    }
}

/// `docker` in `path` (a `PATH` value), if there is one.
pub fn find_in_path(path: &str, program: &str) -> Option<PathBuf> {
    let names: Vec<String> = if cfg!(windows) {
        vec![format!("{program}.exe"), program.to_string()]
    } else {
        vec![program.to_string()]
    };
    std::env::split_paths(path).find_map(|dir| {
        names.iter().map(|n| dir.join(n)).find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && crate::private::access(p, &m).mode & 0o111 != 0)
        })
    })
}

/// Whether `dir` is private: a directory of this user's that nobody else may enter.
fn private_dir(dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let access = crate::private::access(dir, &meta);
    if !access.mine {
        return Err(format!("{} belongs to another user", dir.display()));
    }
    if access.shared {
        return Err(format!(
            "{} has mode {:o}: other users may enter it",
            dir.display(),
            access.mode
        ));
    }
    Ok(())
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A kept log line as the log file would show it.
pub fn line_text(l: &crate::logring::LogLine) -> String {
    let secs = l.at_ms / 1000;
    let vm = l.vm.as_deref().map(|v| format!(" vm={v}")).unwrap_or_default();
    format!(
        "{:02}:{:02}:{:02}.{:03} {:>5}{vm} {}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        l.at_ms % 1000,
        l.level.to_uppercase(),
        l.text
    )
}

/// `text` with every PEM private-key block replaced by a marker.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN") {
        let (before, block) = rest.split_at(start);
        out.push_str(before);
        let is_key = block.lines().next().is_some_and(|l| l.contains("PRIVATE KEY"));
        if is_key {
            // To the end of the END line; a block cut short is removed to the end of the text.
            let end = block
                .find("-----END")
                .map_or(block.len(), |e| block[e..].find('\n').map_or(block.len(), |nl| e + nl));
            out.push_str("[private key removed]");
            rest = &block[end..];
        } else {
            out.push_str("-----BEGIN");
            rest = &block["-----BEGIN".len()..];
        }
    }
    out.push_str(rest);
    out
}

impl Engine {
    /// The local side's checks.
    async fn doctor_local(&self, facts: &ClientFacts) -> Vec<Check> {
        let mut out = vec![Check::new(
            "engine",
            "Tether's engine",
            true,
            format!(
                "version {} running as pid {}",
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            ),
            None,
        )];
        let runtime = &self.paths().runtime_dir;
        let res = private_dir(runtime);
        out.push(Check::new(
            "runtime_dir",
            "Runtime directory",
            res.is_ok(),
            res.clone().map_or_else(|e| e, |()| format!("{} is private (700)", runtime.display())),
            Some(format!(
                "Tether keeps the Docker sockets there; stop Tether, then `chmod 700 {}` (or remove it: Tether remakes it)",
                runtime.display()
            )),
        ));
        // Reading a key's secret is what needs the keychain unlocked; with no key to read, a
        // lookup still proves it answers. Either way under the keystore's own timeout.
        let config = self.config().await;
        let store = self.inner.keys.store();
        let keychain = match config.keys.keys().next() {
            Some(name) => store
                .load(name)
                .await
                .map(|_| format!("reachable and unlocked (read key '{name}')")),
            None => store
                .contains("tether-doctor-probe")
                .await
                .map(|_| "reachable (no Tether keys in it to read)".to_string()),
        };
        // Without keychain keys a missing keychain costs nothing: key files and ssh-agent work.
        let needed = !config.keys.is_empty() || config.vms.values().any(|p| p.key.is_some());
        let keychain = match keychain {
            Err(e) if !needed => Ok(format!("not needed (no VM logs in with a keychain key): {e}")),
            other => other,
        };
        out.push(Check::new(
            "keychain",
            "Keychain",
            keychain.is_ok(),
            keychain.unwrap_or_else(|e| e.to_string()),
            Some("unlock the desktop's keychain (GNOME Keyring, KWallet), or log in with ssh-agent or a key file instead".into()),
        ));
        let docker = facts.path.as_deref().and_then(|p| find_in_path(p, "docker"));
        out.push(Check::new(
            "docker_cli",
            "docker CLI",
            docker.is_some(),
            docker
                .as_ref()
                .map_or_else(|| "no `docker` on your PATH".into(), |p| format!("{}", p.display())),
            Some("install the docker CLI (Debian/Ubuntu: `sudo apt install docker.io`, or docker-ce-cli from Docker's repository); Tether needs no local engine".into()),
        ));
        match &self.inner.contexts {
            Some(store) => {
                self.sync_contexts(&config);
                let have = store.managed();
                let missing: Vec<String> = config
                    .vms
                    .keys()
                    .map(|n| format!("tether-{n}"))
                    .filter(|c| !have.contains_key(c))
                    .collect();
                out.push(Check::new(
                    "contexts",
                    "docker contexts",
                    missing.is_empty(),
                    if missing.is_empty() {
                        format!("{} Tether contexts in sync", have.len())
                    } else {
                        format!("missing: {}", missing.join(", "))
                    },
                    Some("another program owns a context of that name; remove it with `docker context rm NAME`, then run `tether doctor` again".into()),
                ));
            }
            None => out.push(Check::new(
                "contexts",
                "docker contexts",
                false,
                "no docker config directory (neither DOCKER_CONFIG nor HOME is set for the engine)".into(),
                Some("start Tether from your login session, where HOME is set".into()),
            )),
        }
        let status = self.status().await;
        if let Some(host) = facts.docker_host.as_deref().filter(|h| !h.is_empty()) {
            let vm = status.iter().find(|v| v.docker_host == host);
            let active = status.iter().find(|v| v.active);
            let ok = vm.is_some() && vm.map(|v| &v.name) == active.map(|v| &v.name);
            let detail = match vm {
                Some(v) => format!(
                    "DOCKER_HOST points at '{}'{}",
                    v.name,
                    if ok { ", the active VM" } else { ", not the active VM" }
                ),
                None => format!("DOCKER_HOST={host} is not a Tether socket, and overrides the docker context"),
            };
            out.push(Check::new(
                "docker_host",
                "DOCKER_HOST",
                ok,
                detail,
                Some("DOCKER_HOST wins over `docker context use` and `tether use`; `unset DOCKER_HOST`, or `eval \"$(tether env)\"` after switching".into()),
            ));
        }
        out
    }

    /// One VM's checks: DNS and TCP first (so a failure names the layer), then the onboarding
    /// checks over a fresh login, then the clock over the live connection.
    async fn doctor_vm(&self, name: &str) -> Result<Vec<Check>, EngineError> {
        let profile = self.config().await.vm(name)?.clone();
        let target = crate::target::resolve(&profile)?;
        let mut out = Vec::new();
        // Behind jump hosts, this laptop reaches only the first one: DNS and TCP are its.
        let (first, what) = match target.jumps.first() {
            Some(hop) => (hop, " (the first jump host)"),
            None => (&target, ""),
        };
        let where_ = format!("{}:{}", first.host, first.port);
        let addrs =
            tokio::time::timeout(STEP_TIMEOUT, tokio::net::lookup_host((first.host.as_str(), first.port))).await;
        let addrs: Vec<std::net::SocketAddr> = match addrs {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                out.push(Check::new(
                    "dns",
                    "Name lookup",
                    false,
                    format!("{}{what}: {e}", first.host),
                    Some("check the host name, your DNS or VPN, or use the VM's address".into()),
                ));
                return Ok(out);
            }
            Err(_) => {
                out.push(Check::new(
                    "dns",
                    "Name lookup",
                    false,
                    format!("{}{what}: no answer within {} s", first.host, STEP_TIMEOUT.as_secs()),
                    Some("check your DNS or VPN".into()),
                ));
                return Ok(out);
            }
        };
        let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        out.push(Check::new(
            "dns",
            "Name lookup",
            !addrs.is_empty(),
            format!("{}{what} is {}", first.host, shown.join(", ")),
            Some("the name has no address; check it".into()),
        ));
        let mut tcp_ok = None;
        let mut last_err = String::new();
        for a in &addrs {
            let t = Instant::now();
            match tokio::time::timeout(STEP_TIMEOUT, tokio::net::TcpStream::connect(a)).await {
                Ok(Ok(_)) => {
                    tcp_ok = Some((*a, t.elapsed()));
                    break;
                }
                Ok(Err(e)) => last_err = format!("{a}: {e}"),
                Err(_) => last_err = format!("{a}: no answer within {} s", STEP_TIMEOUT.as_secs()),
            }
        }
        match tcp_ok {
            Some((a, took)) => out.push(Check::new(
                "tcp",
                "TCP to sshd",
                true,
                format!("{a}{what} answers ({:.1} ms)", took.as_secs_f64() * 1e3),
                None,
            )),
            None => {
                out.push(Check::new("tcp", "TCP to sshd", false, last_err, Some(format!("nothing answers at {where_}: is the VM up and sshd running, and the port right? A firewall or security group may drop it"))));
                return Ok(out);
            }
        }
        // A connected VM is checked over its live connection: it logged in with what the user
        // gave once (a passphrase, a confirmed host key) and a fresh login would not have.
        let link = self.session(Some(name)).await.ok().and_then(|(_, s)| s.link());
        match &link {
            Some(link) => {
                out.push(Check::new(
                    "ssh",
                    crate::checks::TITLES[0].1,
                    true,
                    format!("logged in as {} (the live connection)", target.display()),
                    None,
                ));
                out.extend(crate::checks::over(link, &profile, &target).await);
            }
            None => out.extend(self.check_vm(name).await?),
        }
        match link {
            Some(link) => {
                let before = crate::clock::unix_ms();
                let res = crate::remote::run(&link, "date +%s", None, STEP_TIMEOUT).await;
                let after = crate::clock::unix_ms();
                let mid = i64::try_from((before + after) / 2 / 1000).unwrap_or(i64::MAX);
                match res.ok().and_then(|o| o.stdout.trim().parse::<i64>().ok()) {
                    Some(vm_s) => {
                        let skew = vm_s - mid;
                        out.push(Check::new(
                            "clock",
                            "VM clock",
                            skew.abs() <= MAX_SKEW_S,
                            format!(
                                "{} s {} this laptop",
                                skew.abs(),
                                if skew >= 0 { "ahead of" } else { "behind" }
                            ),
                            Some(
                                "turn on time sync on the VM (`sudo timedatectl set-ntp true`) or on this laptop"
                                    .into(),
                            ),
                        ));
                    }
                    None => out.push(Check::new(
                        "clock",
                        "VM clock",
                        false,
                        "the VM did not say its time (`date +%s`)".into(),
                        Some("check that the VM's shell runs `date`".into()),
                    )),
                }
            }
            None => out.push(Check::new(
                "clock",
                "VM clock",
                true,
                format!("not checked: '{name}' is not connected (`tether connect {name}` checks it)"),
                None,
            )),
        }
        Ok(out)
    }

    /// The engine's last `n` log lines, all or only those about `vm`.
    pub async fn logs(&self, vm: Option<&str>, n: usize) -> Result<Vec<crate::logring::LogLine>, EngineError> {
        if let Some(v) = vm {
            self.config().await.vm(v)?;
        }
        Ok(crate::logring::ring().recent(vm, n.min(crate::logring::KEEP)))
    }

    /// Every check, for every VM or only `only`.
    pub async fn doctor(&self, facts: &ClientFacts, only: Option<&str>) -> Result<Doctor, EngineError> {
        let local = self.doctor_local(facts).await;
        let names: Vec<String> = match only {
            Some(n) => {
                self.config().await.vm(n)?;
                vec![n.to_string()]
            }
            None => self.config().await.vms.keys().cloned().collect(),
        };
        let runs = names.iter().map(|n| async move {
            let checks = match self.doctor_vm(n).await {
                Ok(c) => c,
                Err(e) => vec![Check::new(
                    "config",
                    "Profile",
                    false,
                    e.to_string(),
                    Some("fix the VM's profile: `tether vm set NAME --host … --user … --port …`".into()),
                )],
            };
            VmChecks {
                name: n.clone(),
                checks,
            }
        });
        let vms = futures_util::future::join_all(runs).await;
        Ok(Doctor { local, vms })
    }

    /// Writes the report bundle to `file` (absolute), atomically and private to this user.
    /// Returns the names of the files in it.
    pub async fn doctor_report(&self, facts: &ClientFacts, file: &Path) -> Result<Vec<String>, EngineError> {
        let doctor = self.doctor(facts, None).await?;
        let status = self.status().await;
        let mut health = serde_json::Map::new();
        for v in &status {
            if let Ok(h) = self.health(&v.name).await {
                health.insert(v.name.clone(), serde_json::to_value(h).unwrap_or_default());
            }
        }
        let config = toml::to_string_pretty(&self.config().await).unwrap_or_default();
        // The lines this engine kept, then the log file's tail (an engine started in the
        // background writes one; its earlier runs are there too).
        let mut log: String = crate::logring::ring()
            .recent(None, LOG_LINES)
            .iter()
            .map(line_text)
            .collect::<Vec<_>>()
            .join("\n");
        if let Ok(file) = std::fs::read_to_string(self.paths().daemon_log()) {
            log = format!(
                "== {} ==\n{}\n\n== this engine's recent lines ==\n{log}",
                self.paths().daemon_log().display(),
                tail(&file, LOG_LINES)
            );
        }
        let versions = serde_json::json!({
            "tether": env!("CARGO_PKG_VERSION"),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "engines": status.iter().map(|v| (v.name.clone(), v.engine.clone())).collect::<std::collections::BTreeMap<_, _>>(),
        });
        let json = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
        let files: Vec<(&str, String)> = vec![
            ("versions.json", json(&versions)),
            ("doctor.json", json(&serde_json::to_value(&doctor).unwrap_or_default())),
            ("status.json", json(&serde_json::to_value(&status).unwrap_or_default())),
            ("health.json", json(&serde_json::Value::Object(health))),
            ("config.toml", config),
            ("engine.log", tail(&log, LOG_LINES)),
        ];
        let names: Vec<String> = files.iter().map(|(n, _)| format!("tether-report/{n}")).collect();
        let file = file.to_path_buf();
        tokio::task::spawn_blocking(move || write_bundle(&file, &files))
            .await
            .map_err(|e| EngineError::Internal {
                what: "report writer",
                message: e.to_string(),
            })?
            .map_err(|(path, e)| EngineError::Internal {
                what: "report writer",
                message: format!("cannot write {}: {e}", path.display()),
            })?;
        Ok(names)
    }
}

/// The tar.gz of `files` (each redacted), written beside `file` and renamed over it.
fn write_bundle(file: &Path, files: &[(&str, String)]) -> Result<(), (PathBuf, std::io::Error)> {
    let err = |e: std::io::Error| (file.to_path_buf(), e);
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    {
        let gz = flate2::write::GzEncoder::new(tmp.as_file(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let now = crate::clock::unix_ms() / 1000;
        for (name, text) in files {
            let body = redact(text);
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o600);
            header.set_mtime(now);
            header.set_cksum();
            tar.append_data(&mut header, format!("tether-report/{name}"), body.as_bytes())
                .map_err(err)?;
        }
        tar.into_inner().map_err(err)?.finish().map_err(err)?;
    }
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(file).map_err(|e| err(e.error))?;
    Ok(())
}
