//! The authorized_keys scripts, run by the real `sh` against a scratch HOME: they create
//! ~/.ssh 0700 and the file 0600, add a key once, and remove exactly the lines of one key.
//!
//! The authorized_keys scripts run in sh: Unix only.
#![cfg(unix)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use super::*;

fn sh(home: &Path, script: &str, input: &str) -> bool {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("HOME", home)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait().unwrap().success()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn install_then_remove() {
    let home = tempfile::tempdir().unwrap();
    let a = public_line(&identity::generate_ed25519("a")).unwrap();
    let b = public_line(&identity::generate_ed25519("b")).unwrap();
    let file = home.path().join(".ssh/authorized_keys");

    assert!(sh(home.path(), INSTALL, &format!("{a}\n")));
    assert_eq!(mode(&home.path().join(".ssh")), 0o700);
    assert_eq!(mode(&file), 0o600);
    // Twice is once.
    assert!(sh(home.path(), INSTALL, &format!("{a}\n")));
    assert!(sh(home.path(), INSTALL, &format!("{b}\n")));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");

    // A line with options for the same key goes too; other lines stay.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(format!("no-pty {a}\n# note\n").as_bytes())
        .unwrap();
    assert!(sh(home.path(), REMOVE, &format!("{}\n", blob(&a))));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(blob(&a)), "{text}");
    assert!(text.contains(&b) && text.contains("# note"), "{text}");
    assert_eq!(mode(&file), 0o600);
    // An empty blob is refused rather than removing every line.
    assert!(!sh(home.path(), REMOVE, "\n"));
    assert!(std::fs::read_to_string(&file).unwrap().contains(&b));
}

#[test]
fn the_copyable_command_installs_the_same_line() {
    let home = tempfile::tempdir().unwrap();
    let a = public_line(&identity::generate_ed25519("it's mine")).unwrap();
    assert!(sh(home.path(), &install_command(&a), ""));
    let text = std::fs::read_to_string(home.path().join(".ssh/authorized_keys")).unwrap();
    assert_eq!(text.trim(), a);
    assert_eq!(mode(&home.path().join(".ssh/authorized_keys")), 0o600);
}
