//! The conformance cases, grouped by theme. Every case is `pub async fn(client: Client)`;
//! `crate::conformance_suite!` lists them (in `testing/mod.rs`).

pub mod actors;
pub mod basics;
pub mod cancelling;
pub mod clients;
pub mod cluster;
pub mod coordination;
pub mod errors;
pub mod events;
pub mod keys;
pub mod lifecycle;
pub mod registered;
#[cfg(feature = "redis")]
pub mod remote_actors;
pub mod semantics;
pub mod shapes;
pub mod stats;
pub mod subtasks;
pub mod threads;
pub mod values;
pub mod waiting;

use std::time::Duration;

use crate::{Client, ExecutorExt};

/// Waits for `condition` to hold, checking after each short executor sleep; fails after
/// `limit` instead of hanging.
pub(crate) async fn eventually(
    client: &Client,
    limit: Duration,
    what: &str,
    condition: impl Fn() -> bool,
) {
    let executor = client.executor().clone();
    let polled = executor
        .timeout(limit, async {
            while !condition() {
                executor.sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    assert!(polled.is_ok(), "{what} did not happen within {limit:?}");
}

/// How many tasks the client's workers run at once: the sum of the
/// [`concurrency`](crate::transport::WorkerInfo::concurrency) of the workers that
/// [`Client::workers`] lists, or two when the transport lists none (the suite's documented
/// assumption; see "What a case may assume" in the module docs).
pub(crate) async fn worker_slots(client: &Client) -> usize {
    let listed = client.workers().await.unwrap_or_default();
    match listed.iter().map(|worker| worker.concurrency).sum() {
        0 => 2,
        slots => slots,
    }
}

/// Holds every one of the client's worker slots ([`worker_slots`]) with a
/// [`Gated`](crate::testing::tasks::Gated) task until the returned gate is opened or dropped
/// (the `local_workers` capability); the tasks give their index.
pub(crate) async fn hold_every_worker(
    client: &Client,
) -> (crate::testing::tasks::Gate, Vec<crate::TaskFuture<i64>>) {
    use crate::testing::tasks::{Gate, Gated};
    let gate = Gate::new();
    let slots = worker_slots(client).await as i64;
    let blockers = (0..slots).map(|i| client.submit_task::<Gated>(gate.input(i))).collect();
    (gate, blockers)
}
