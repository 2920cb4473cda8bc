//! Unit tests of `instance`: one lock holder per home, the owner named, released on drop.

use super::*;

fn home() -> (tempfile::TempDir, Paths) {
    let dir = tempfile::Builder::new()
        .prefix("inst")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let paths = Paths::under(dir.path().to_path_buf());
    (dir, paths)
}

#[test]
fn the_second_engine_is_told_who_runs() {
    let (_dir, paths) = home();
    assert_eq!(running(&paths).unwrap(), None);
    let first = acquire(&paths, Kind::App).unwrap();
    assert_eq!(first.owner.pid, std::process::id());
    match acquire(&paths, Kind::Daemon) {
        Err(InstanceError::Running(o)) => {
            assert_eq!(o, first.owner);
            let msg = InstanceError::Running(o).to_string();
            assert!(
                msg.contains("the Tether app") && msg.contains("tether engine stop"),
                "{msg}"
            );
        }
        other => panic!("a second lock was granted: {other:?}"),
    }
    assert_eq!(running(&paths).unwrap(), Some(first.owner.clone()));
    drop(first);
    assert_eq!(running(&paths).unwrap(), None);
    let again = acquire(&paths, Kind::Daemon).unwrap();
    assert_eq!(again.owner.kind, Kind::Daemon);
}

#[test]
fn racing_engines_end_as_one() {
    let (_dir, paths) = home();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (paths, barrier) = (paths.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                acquire(&paths, Kind::Daemon)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        if let Err(InstanceError::Running(o)) = r {
            assert_eq!(o, &winners[0].owner, "a loser named another owner");
        } else {
            assert!(r.is_ok(), "{r:?}");
        }
    }
}
