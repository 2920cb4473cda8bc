//! The exit codes `tether` ends with: one per kind of failure a script may want to tell apart,
//! found from the engine's error code (never from its words). Listed in `tether --help` and the
//! man page ([`HELP`]).

use tether_core::api::ErrorCode;
use tether_core::control::ClientError;

/// Something else failed (the message says what).
pub const FAILED: u8 = 1;
/// No engine runs and none could be started, or the link to it failed.
pub const NO_ENGINE: u8 = 3;
/// The VM cannot be reached: its name does not resolve, nothing listens, or it does not answer.
pub const UNREACHABLE: u8 = 4;
/// The VM's host key was refused (unknown to a script, changed, revoked, of another type).
pub const HOST_KEY: u8 = 5;
/// The VM refused the login, or the key cannot be used (passphrase, keychain, key file).
pub const LOGIN: u8 = 6;
/// `tether doctor` found failing checks.
pub const CHECKS: u8 = 7;

/// The table, as `tether --help` and the man page print it.
pub const HELP: &str = "Exit codes:
  0  success
  1  failed (the message says why)
  2  the command line is wrong
  3  no Tether engine runs and none could be started
  4  the VM cannot be reached (unknown host, connection refused, no answer)
  5  the VM's host key was refused (unknown, changed, revoked)
  6  the login failed (refused key, passphrase, keychain, key file)
  7  tether doctor found failing checks";

/// `tether doctor`'s failure: some checks failed (each printed with its fix).
#[derive(Debug)]
pub struct ChecksFailed;

impl std::fmt::Display for ChecksFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("some checks failed; each says how to fix it")
    }
}

impl std::error::Error for ChecksFailed {}

/// The exit code for an error that ended a command.
pub fn code_of(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<ChecksFailed>().is_some() {
        return CHECKS;
    }
    match e.chain().find_map(|c| c.downcast_ref::<ClientError>()) {
        Some(ClientError::Remote(body)) => of_code(body.code),
        Some(ClientError::NotRunning(_) | ClientError::Io(_)) => NO_ENGINE,
        _ => FAILED,
    }
}

/// The exit code for an engine error code.
pub fn of_code(code: ErrorCode) -> u8 {
    use ErrorCode as C;
    match code {
        c if c.is_host_key() => HOST_KEY,
        C::UnknownHost | C::ConnectionRefused | C::Unreachable | C::LinkLost => UNREACHABLE,
        C::AuthFailed
        | C::PassphraseRequired
        | C::WrongPassphrase
        | C::KeychainLocked
        | C::KeychainUnavailable
        | C::NoSuchKey
        | C::Keychain
        | C::Identity => LOGIN,
        C::EngineUnreachable | C::Engine | C::ShuttingDown => NO_ENGINE,
        _ => FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_code_and_the_help_lists_them() {
        assert_eq!(of_code(ErrorCode::HostKeyChanged), HOST_KEY);
        assert_eq!(of_code(ErrorCode::HostKeyUnknown), HOST_KEY);
        assert_eq!(of_code(ErrorCode::ConnectionRefused), UNREACHABLE);
        assert_eq!(of_code(ErrorCode::AuthFailed), LOGIN);
        assert_eq!(of_code(ErrorCode::NoSuchVm), FAILED);
        assert_eq!(of_code(ErrorCode::Unknown), FAILED);
        let e = anyhow::Error::new(ClientError::NotRunning("/x".into())).context("connecting");
        assert_eq!(code_of(&e), NO_ENGINE);
        assert_eq!(code_of(&anyhow::Error::new(ChecksFailed)), CHECKS);
        // 2, a command line that does not parse, is clap's own.
        for code in [FAILED, 2, NO_ENGINE, UNREACHABLE, HOST_KEY, LOGIN, CHECKS] {
            assert!(HELP.contains(&format!("\n  {code}  ")), "{code} is not in the help");
        }
    }
}
