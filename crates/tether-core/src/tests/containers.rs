//! Reading a container's health out of its status line.

use super::*;

#[test]
fn health_from_the_status_line() {
    assert_eq!(health_from_status("Up 3 minutes (healthy)").as_deref(), Some("healthy"));
    assert_eq!(
        health_from_status("Up 1 second (health: starting)").as_deref(),
        Some("starting")
    );
    assert_eq!(
        health_from_status("Up 2 hours (unhealthy)").as_deref(),
        Some("unhealthy")
    );
    assert_eq!(health_from_status("Up 2 hours"), None);
    assert_eq!(health_from_status("Exited (0) 5 seconds ago"), None);
}
