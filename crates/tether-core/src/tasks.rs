//! Every task the engine spawns, in one place, so that stopping the engine is a state it reaches
//! and not a hope: `shutdown` tells the tasks that outlive a request (the watchers of the network,
//! the clock and logind, the event recorder) to stop, then waits for all of them, up to a grace
//! period, and says how many did not end. A task spawned here is never detached.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// The engine's tasks: cloned into everything that spawns one.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    /// Runs `task` on the runtime, counted until it ends.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Resolves once the engine is stopping: a task that would otherwise run for the engine's
    /// whole life selects on this and returns.
    pub fn stopping(&self) -> WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    /// A token that fires when the engine stops, for a task that outlives this handle's borrow.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// How many tasks are running now.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Tells every task to stop and waits, at most `grace`, for all of them to end; returns how
    /// many were still running then (0 when every one ended). Nothing new is counted afterwards
    /// as running for long: the tracker is closed, and a task spawned later still ends with the
    /// runtime.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.stop.cancel();
        self.tracker.close();
        match tokio::time::timeout(grace, self.tracker.wait()).await {
            Ok(()) => 0,
            Err(_) => self.tracker.len(),
        }
    }
}

#[cfg(test)]
#[path = "tests/tasks.rs"]
mod tests;
