//! Unit tests of `tasks` (kept apart so the module file holds only shipping code).

use super::*;

#[tokio::test(start_paused = true)]
async fn shutdown_stops_the_long_tasks_and_waits_for_the_rest() {
    let tasks = Tasks::default();
    // A watcher that runs for the engine's life, and a request that ends on its own.
    let t = tasks.clone();
    tasks.spawn(async move { t.stopping().await });
    tasks.spawn(tokio::time::sleep(Duration::from_millis(300)));
    assert_eq!(tasks.running(), 2);
    let started = tokio::time::Instant::now();
    assert_eq!(tasks.shutdown(Duration::from_secs(5)).await, 0);
    // It waited for the request to end, not for the grace period.
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(tasks.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_task_that_never_ends_is_counted_after_the_grace_period() {
    let tasks = Tasks::default();
    tasks.spawn(std::future::pending::<()>());
    let started = tokio::time::Instant::now();
    assert_eq!(tasks.shutdown(Duration::from_secs(2)).await, 1);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}
