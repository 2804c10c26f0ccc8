//! The conformance cases, grouped by theme. Every case is `pub async fn(client: Client)`;
//! `crate::conformance_suite!` lists them (in `testing/mod.rs`).

pub mod basics;
pub mod cancelling;
pub mod errors;
pub mod events;
pub mod keys;
pub mod lifecycle;
pub mod registered;
pub mod semantics;
pub mod shapes;
pub mod stats;
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
