//! Cluster management from the user's side: [`Client::restart`].

use std::time::Duration;

use crate::client::RESTART_REASON;
use crate::testing::tasks::{Add, Gate, Gated};
use crate::{Client, TaskError};

/// How long the workers may take to answer a restart.
const RESTART_WITHIN: Duration = Duration::from_secs(30);

/// Whether `outcome` is the error a restart gives.
fn failed_by_the_restart(outcome: Result<i64, TaskError>) -> bool {
    match outcome {
        Err(TaskError::Cancelled { reason, .. }) => reason == RESTART_REASON,
        _ => false,
    }
}

pub async fn restart_fails_unfinished_tasks_keeps_finished_ones_and_the_client_works_after(
    client: Client,
) {
    let workers = client.wait_for_workers(1, RESTART_WITHIN).await.unwrap().len();
    let finished = client.submit_task::<Add>((1, 1));
    assert_eq!((&finished).await.unwrap(), 2);
    let gate = Gate::new();
    // Every worker held by a gated task, more of them queued behind, and a dependent.
    let held: Vec<_> =
        (0..2 * workers as i64).map(|i| client.submit_task::<Gated>(gate.input(i))).collect();
    let dependent = client.after((&held[0], &held[1])).submit_task::<Add>();
    let restarted = client.restart(RESTART_WITHIN).await.unwrap();
    assert_eq!(restarted.len(), workers, "every worker restarted: {restarted:?}");
    for future in held.iter().chain([&dependent]) {
        let outcome = future.clone().await;
        assert!(
            failed_by_the_restart(outcome.clone()),
            "task {} should fail naming the restart, got {outcome:?}",
            future.key()
        );
    }
    // What finished before keeps its value.
    assert_eq!(finished.clone().await.unwrap(), 2);
    // The bodies that ran let go of their workers; the client works as before.
    gate.open();
    let after = client.submit_task::<Add>((40, 2));
    assert_eq!(after.await.unwrap(), 42);
    let again = client.map_task::<Add>((0..10).map(|i| (i, i)));
    assert_eq!(client.gather(&again).await.unwrap(), (0..10).map(|i| 2 * i).collect::<Vec<_>>());
}

/// A keyed task cancelled, by [`restart`](Client::restart) or by `cancel`, gives its key up:
/// submitting the key again computes anew, as the restart's error tells the user to do, even
/// while a handle of the cancelled future lives (as in Dask, where a cancel forgets the key).
pub async fn a_key_cancelled_by_restart_or_cancel_computes_anew_when_submitted_again(
    client: Client,
) {
    let workers = client.wait_for_workers(1, RESTART_WITHIN).await.unwrap().len();
    let gate = Gate::new();
    // Every worker held, so that the keyed tasks wait in the queue.
    let held: Vec<_> =
        (0..workers as i64).map(|i| client.submit_task::<Gated>(gate.input(i))).collect();
    let cancelled = client.task().key("cancelled-key").submit_task::<Add>((1, 2));
    assert_eq!(cancelled.cancel(), crate::CancelOutcome::Cancelled);
    let restarted = client.task().key("restarted-key").submit_task::<Add>((3, 4));
    client.restart(RESTART_WITHIN).await.unwrap();
    assert!(failed_by_the_restart((&restarted).await));
    assert!(held.iter().all(|future| future.error().is_some_and(|error| error.is_cancelled())));
    gate.open();
    let again = client.task().key("restarted-key").submit_task::<Add>((3, 4));
    assert_eq!((&again).await, Ok(7), "the restart's message says: submit it again");
    let again = client.task().key("cancelled-key").submit_task::<Add>((1, 2));
    assert_eq!((&again).await, Ok(3), "a cancelled key computes anew");
    // The old handles keep their cancellation; the new key is found by the next submission.
    assert!((&restarted).await.unwrap_err().is_cancelled());
    assert!((&cancelled).await.unwrap_err().is_cancelled());
    let found = client.task().key("restarted-key").submit_task::<Add>((0, 0));
    assert_eq!(found.await, Ok(7), "the new task holds the key");
}
