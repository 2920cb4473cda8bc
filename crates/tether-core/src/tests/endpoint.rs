//! Unit tests of `endpoint`: each OS's endpoints, served and reached for real.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A private place for endpoints: a temp directory (Unix) or a scope of its own (Windows).
fn place() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let scope = format!("test{}", std::process::id());
    (dir, scope)
}

#[tokio::test]
async fn an_endpoint_serves_its_client_and_refuses_a_second_server() {
    let (dir, scope) = place();
    let path = vm_endpoint(dir.path(), Some(&scope), "vm1");
    if let Some(parent) = path.parent().filter(|_| IN_FILESYSTEM) {
        std::fs::create_dir_all(parent).unwrap();
    }
    let listener = bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let mut s = accept(&listener).await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&buf.map(|b| b.to_ascii_uppercase())).await.unwrap();
        // Both ends name the same user.
        (crate::peer::of(&s).unwrap(), listener)
    });
    let mut c = connect(&path).await.unwrap();
    c.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"PING");
    assert_eq!(crate::peer::of(&c).unwrap(), crate::peer::me());
    let (peer, _listener) = server.await.unwrap();
    assert_eq!(peer, crate::peer::me());
    // Another server on the same name is refused while this one lives (its probe may be
    // accepted by the live one, which is why it comes after the exchange above).
    let second = bind(&path);
    assert!(matches!(second, Err(BindError::InUse)), "{:?}", second.err());
}

#[test]
fn docker_host_names_the_endpoint_as_docker_does() {
    let (dir, scope) = place();
    let host = docker_host(&vm_endpoint(dir.path(), None, "arm"));
    if cfg!(windows) {
        assert_eq!(host, "npipe:////./pipe/tether-arm");
        assert_eq!(
            vm_endpoint(dir.path(), Some(&scope), "arm"),
            PathBuf::from(format!(r"\\.\pipe\tether.{scope}.arm"))
        );
    } else {
        assert_eq!(host, format!("unix://{}/vms/arm/docker.sock", dir.path().display()));
    }
    // No VM's endpoint is ever the control endpoint (VM names have no dots).
    assert_ne!(
        vm_endpoint(dir.path(), None, "control"),
        control_endpoint(dir.path(), None)
    );
}

#[cfg(windows)]
#[tokio::test]
async fn a_pipe_admits_its_owner_alone() {
    use std::os::windows::io::AsRawHandle;
    let me = crate::peer::me();
    assert!(me.starts_with("S-1-"), "{me}");
    let (dir, scope) = place();
    let path = vm_endpoint(dir.path(), Some(&scope), "acl");
    let listener = bind(&path).unwrap();
    let next = listener.next.lock().await;
    // What the system holds for the pipe: one entry, full access for this user's SID
    // (GENERIC_ALL, which Windows may store mapped to FILE_ALL_ACCESS), nothing for anyone else
    // (not Everyone, not Administrators, not SYSTEM), and nothing inherited from the namespace.
    let (entries, protected) = win::dacl(next.as_raw_handle()).unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, me, "{entries:?}");
    assert!(matches!(entries[0].1, 0x1000_0000 | 0x001F_01FF), "{entries:?}");
    assert!(protected, "the DACL is not protected from inheritance");
    // And the descriptor it was made from says exactly that.
    assert_eq!(win::owner_only(&me), format!("D:P(A;;GA;;;{me})"));
}

#[tokio::test]
async fn an_endpoint_serves_clients_one_after_another_and_at_once() {
    let (dir, scope) = place();
    let path = vm_endpoint(dir.path(), Some(&scope), "vm2");
    if let Some(parent) = path.parent().filter(|_| IN_FILESYSTEM) {
        std::fs::create_dir_all(parent).unwrap();
    }
    let listener = bind(&path).unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok(mut s) = accept(&listener).await else { return };
            tokio::spawn(async move {
                let mut b = [0u8; 1];
                while s.read_exact(&mut b).await.is_ok() {
                    if s.write_all(&b).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let echo = |path: PathBuf, byte: u8| async move {
        let mut c = connect(&path).await.unwrap();
        c.write_all(&[byte]).await.unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(b[0], byte);
        c
    };
    // One after another (each closed before the next), then eight held open together.
    for i in 0..3 {
        drop(
            tokio::time::timeout(std::time::Duration::from_secs(5), echo(path.clone(), i))
                .await
                .expect("served in time"),
        );
    }
    let mut held = Vec::new();
    for i in 0..8 {
        held.push(
            tokio::time::timeout(std::time::Duration::from_secs(5), echo(path.clone(), 10 + i))
                .await
                .expect("served in time"),
        );
    }
    server.abort();
}
