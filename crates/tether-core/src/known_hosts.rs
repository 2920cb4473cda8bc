//! Host-key verification with OpenSSH known_hosts semantics.
//!
//! Keys are looked up in ~/.ssh/known_hosts (read only) and Tether's own known_hosts (where keys
//! the user accepted in Tether are appended). Plain, wildcard, negated and hashed (`|1|`) host
//! patterns are understood, and `@revoked` keys are refused. Nothing here accepts a key on its own:
//! an unknown key is reported with its fingerprint for the caller to confirm.
//!
//! Host certificates are trusted through `@cert-authority` lines as OpenSSH trusts them: signed
//! by an authority listed for the host, a host (not user) certificate, naming the host among its
//! principals, inside its validity window, with no critical option. A certificate that fails
//! any of these is no worse than a bare key: the key inside it is checked as one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::known_hosts::{Entry, HostPatterns, Marker};
use russh::keys::{Certificate, HashAlg, PublicKey};
use sha1::Sha1;

/// What the known_hosts files say about a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// The key is recorded for this host.
    Known,
    /// No key of this type is recorded for this host.
    Unknown,
    /// A different key of the same type is recorded: possible man-in-the-middle.
    Changed {
        file: PathBuf,
        line: usize,
        recorded_fingerprint: String,
    },
    /// The key is marked `@revoked`.
    Revoked { file: PathBuf, line: usize },
    /// Keys of other types are recorded for this host, and none of the presented key's type.
    /// The VM may have dropped a key type, but a man in the middle who cannot present the
    /// recorded key would look exactly like this, so it is refused like a changed key and
    /// never shown as a first connection.
    OtherType { recorded: Vec<Recorded> },
}

/// One key recorded for a host (the wire's [`RecordedKey`]: file, line, type, fingerprint).
pub use crate::api::RecordedKey as Recorded;

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({}:{})",
            self.key_type,
            self.fingerprint,
            self.file.display(),
            self.line
        )
    }
}

/// SHA256 fingerprint as OpenSSH prints it: `SHA256:base64`.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The name a host is recorded under: `host`, or `[host]:port` off port 22.
pub fn host_entry_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The line of `file` (a RevokedHostKeys list: one public key per line, as authorized_keys
/// writes them) that revokes `key`, if any. A file that cannot be read, or is a binary KRL,
/// is an error: OpenSSH refuses every host then too, and so does Tether.
pub fn revoked_in(file: &Path, key: &russh::keys::ssh_key::public::KeyData) -> std::io::Result<Option<usize>> {
    let bytes = std::fs::read(file).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot read the RevokedHostKeys file {} named in ~/.ssh/config ({e}); fix or remove that line",
                file.display()
            ),
        )
    })?;
    if bytes.starts_with(b"SSHKRL\n") {
        return Err(std::io::Error::other(format!(
            "{} is a binary key revocation list (KRL), which Tether cannot read; list the revoked keys there \
             as public key lines (`cat key.pub >> {}`), or remove RevokedHostKeys from ~/.ssh/config",
            file.display(),
            file.display()
        )));
    }
    let text = String::from_utf8_lossy(&bytes);
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if PublicKey::from_openssh(line).is_ok_and(|k| k.key_data() == key) {
            return Ok(Some(idx + 1));
        }
    }
    Ok(None)
}

/// Checks `key` for `host:port` against `files`, in order.
pub fn check(host: &str, port: u16, key: &PublicKey, files: &[PathBuf]) -> std::io::Result<HostKeyStatus> {
    let name = host_entry_name(host, port);
    let mut known = false;
    let mut changed = None;
    let mut others = Vec::new();
    // A revocation under the bare name holds for the host on any port, as a key known there may
    // be taken for it (below).
    for (file, line, entry) in entries_for_either(host, port, files)? {
        if entry.marker() == Some(&Marker::Revoked) && entry.public_key().key_data() == key.key_data() {
            return Ok(HostKeyStatus::Revoked { file, line });
        }
    }
    // An unparsable line (unsupported key type, stray text) is skipped, as OpenSSH does.
    for (file, line, entry) in entries_for(&name, files)? {
        let same_key = entry.public_key().key_data() == key.key_data();
        if entry.marker().is_some() {
            // @revoked lines were read above; @cert-authority ones vouch for certificates.
            continue;
        }
        if same_key {
            known = true;
        } else if entry.public_key().algorithm() == key.algorithm() {
            if changed.is_none() {
                changed = Some(HostKeyStatus::Changed {
                    file,
                    line,
                    recorded_fingerprint: fingerprint(entry.public_key()),
                });
            }
        } else {
            others.push(Recorded {
                file,
                line,
                key_type: entry.public_key().algorithm().to_string(),
                fingerprint: fingerprint(entry.public_key()),
            });
        }
    }
    // A mismatching line wins over a matching one elsewhere: OpenSSH refuses in that case too,
    // because someone who can append to a file should not override a pinned key.
    if let Some(c) = changed {
        return Ok(c);
    }
    Ok(if known {
        HostKeyStatus::Known
    } else if !others.is_empty() {
        HostKeyStatus::OtherType { recorded: others }
    } else if port != 22 && check(host, 22, key, files)? == HostKeyStatus::Known {
        // Nothing recorded for `[host]:port`: OpenSSH then takes the bare host's key, if it is
        // this one ("checking without port identifier"), and only that; a bare line never refuses.
        HostKeyStatus::Known
    } else {
        HostKeyStatus::Unknown
    })
}

/// Algorithms of keys recorded for a host, so the handshake can prefer a key we already trust.
pub fn recorded_algorithms(host: &str, port: u16, files: &[PathBuf]) -> Vec<russh::keys::Algorithm> {
    let mut out = Vec::new();
    // Unreadable files give no preference; the key check itself reports them.
    for (_, _, entry) in entries_for(&host_entry_name(host, port), files).unwrap_or_default() {
        if entry.marker().is_none() && !out.contains(&entry.public_key().algorithm()) {
            out.push(entry.public_key().algorithm());
        }
    }
    out
}

/// The lines of `files` for the host recorded as `name`, with their file and line number.
fn entries_for(name: &str, files: &[PathBuf]) -> std::io::Result<Vec<(PathBuf, usize, Entry)>> {
    let mut out = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for (idx, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Ok(entry) = Entry::from_str(line)
                && host_matches(entry.host_patterns(), name)
            {
                out.push((file.clone(), idx + 1, entry));
            }
        }
    }
    Ok(out)
}

/// Whether an `@cert-authority` line covers `host:port`: only then does the handshake ask the
/// host for a certificate (one no authority vouches for would be checked as its bare key anyway).
pub fn has_authority(host: &str, port: u16, files: &[PathBuf]) -> bool {
    entries_for_either(host, port, files)
        .is_ok_and(|e| e.iter().any(|(_, _, e)| e.marker() == Some(&Marker::CertAuthority)))
}

/// The lines for `[host]:port`, then those for the bare host: OpenSSH looks a host on another
/// port up without the port too ("checking without port identifier").
fn entries_for_either(host: &str, port: u16, files: &[PathBuf]) -> std::io::Result<Vec<(PathBuf, usize, Entry)>> {
    let mut entries = entries_for(&host_entry_name(host, port), files)?;
    if port != 22 {
        entries.extend(entries_for(host, files)?);
    }
    Ok(entries)
}

/// What the known_hosts files say about a host certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertStatus {
    /// Good: signed by `authority` (its fingerprint), trusted for this host at `file:line`.
    Trusted {
        authority: String,
        file: PathBuf,
        line: usize,
    },
    /// Not vouched for, and why; the key inside is to be checked as a bare key.
    Untrusted(String),
    /// The certificate's key, or the authority that signed it, is marked `@revoked`.
    Revoked { file: PathBuf, line: usize },
}

/// Checks a host certificate presented by `host:port` at `now` (Unix seconds).
pub fn check_certificate(
    host: &str,
    port: u16,
    cert: &Certificate,
    files: &[PathBuf],
    now: u64,
) -> std::io::Result<CertStatus> {
    let entries = entries_for_either(host, port, files)?;
    for (file, line, e) in &entries {
        let key = e.public_key().key_data();
        if e.marker() == Some(&Marker::Revoked) && (key == cert.signature_key() || key == cert.public_key()) {
            return Ok(CertStatus::Revoked {
                file: file.clone(),
                line: *line,
            });
        }
    }
    let authority = cert.signature_key().fingerprint(HashAlg::Sha256);
    let Some((file, line, _)) = entries.iter().find(|(_, _, e)| {
        e.marker() == Some(&Marker::CertAuthority) && e.public_key().key_data() == cert.signature_key()
    }) else {
        return Ok(CertStatus::Untrusted(format!(
            "no @cert-authority line for {} names its signer {authority}",
            host_entry_name(host, port)
        )));
    };
    let untrusted = |why: String| Ok(CertStatus::Untrusted(why));
    if cert.cert_type() != CertType::Host {
        return untrusted("it is a user certificate, not a host certificate".into());
    }
    let when = |t: u64| {
        std::time::UNIX_EPOCH
            .checked_add(std::time::Duration::from_secs(t))
            .map_or_else(|| t.to_string(), httpdate::fmt_http_date)
    };
    if now < cert.valid_after() {
        return untrusted(format!(
            "it is valid only from {} (is this laptop's clock right?)",
            when(cert.valid_after())
        ));
    }
    if now >= cert.valid_before() {
        return untrusted(format!("it expired at {}", when(cert.valid_before())));
    }
    // OpenSSH refuses a host certificate with no principals: it would vouch for any host.
    if !cert.valid_principals().iter().any(|p| p.eq_ignore_ascii_case(host)) {
        return untrusted(if cert.valid_principals().is_empty() {
            "it names no host (no principals)".into()
        } else {
            format!("it is for {}, not {host}", cert.valid_principals().join(", "))
        });
    }
    if let Some((name, _)) = cert.critical_options().iter().next() {
        return untrusted(format!(
            "it carries the critical option '{name}', which no host certificate may"
        ));
    }
    if cert.validate_at(now, [&authority]).is_err() {
        return untrusted(format!("its signature does not verify with the authority {authority}"));
    }
    Ok(CertStatus::Trusted {
        authority: authority.to_string(),
        file: file.clone(),
        line: *line,
    })
}

/// Appends `key` for `host:port` to `file` (created 0600 if missing).
pub fn learn(file: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let openssh = key.to_openssh().map_err(std::io::Error::other)?;
    let mut f = crate::private::file_options(std::fs::OpenOptions::new().create(true).append(true)).open(file)?;
    // One write call per line so concurrent appenders cannot interleave within a line.
    f.write_all(format!("{} {}\n", host_entry_name(host, port), openssh).as_bytes())?;
    f.sync_all()
}

/// Removes from `file` the lines that record another key of `key`'s type for `host:port` (the
/// conflicting ones), or with `any_type` every other key of the host, keeping every other line
/// as it was. Answers how many went. Only Tether's own file is ever given here:
/// ~/.ssh/known_hosts belongs to OpenSSH and the user.
pub fn forget_conflicting(
    file: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
    any_type: bool,
) -> std::io::Result<usize> {
    let name = host_entry_name(host, port);
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let conflicting = |line: &str| {
        Entry::from_str(line.trim()).is_ok_and(|entry| {
            entry.marker().is_none()
                && host_matches(entry.host_patterns(), &name)
                && (any_type || entry.public_key().algorithm() == key.algorithm())
                && entry.public_key().key_data() != key.key_data()
        })
    };
    let (gone, kept): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| conflicting(l));
    let removed = gone.len();
    if removed > 0 {
        let mut body = kept.join("\n");
        if !body.is_empty() {
            body.push('\n');
        }
        crate::paths::write_atomic(file, body.as_bytes())?;
    }
    Ok(removed)
}

fn host_matches(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::HashedName { salt, hash } => {
            let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(salt) else {
                return false;
            };
            mac.update(name.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
        HostPatterns::Patterns(list) => {
            let mut matched = false;
            for p in list {
                if let Some(neg) = p.strip_prefix('!') {
                    if wildcard(neg, name) {
                        return false;
                    }
                } else if wildcard(p, name) {
                    matched = true;
                }
            }
            matched
        }
    }
}

/// OpenSSH's `*` and `?` glob, case-insensitive like host names.
fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Hashes a host name the way `ssh-keygen -H` does (for tests and for users who hash).
pub fn hashed_name(salt: &[u8], name: &str) -> Option<String> {
    let mut mac = Hmac::<Sha1>::new_from_slice(salt).ok()?;
    mac.update(name.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD;
    Some(format!(
        "|1|{}|{}",
        b64.encode(salt),
        b64.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
#[path = "tests/known_hosts.rs"]
mod tests;
