//! Live statistics: counts by state, per-worker gauges, totals, the snapshot stream.

use std::time::Duration;

use crate::Client;
use futures::StreamExt;

use super::eventually;

pub async fn stats_count_tasks_by_state_and_by_worker(client: Client) {
    let n_workers = client.stats().workers.len();
    assert!(n_workers > 0, "the transport reports its workers");
    let (release, gate) = flume::bounded::<()>(0);
    // Occupy every worker, then queue one more behind them.
    let blockers: Vec<_> = (0..n_workers)
        .map(|_| {
            let gate = gate.clone();
            client.submit(move |_: ()| gate.recv().is_err(), ())
        })
        .collect();
    let stats_client = client.clone();
    eventually(&client, Duration::from_secs(10), "every worker busy", move || {
        let stats = stats_client.stats();
        stats.tasks.running == n_workers && stats.workers.iter().all(|worker| worker.running == 1)
    })
    .await;
    let queued = client.submit(|x: u32| x + 1, 1);
    let stats = client.stats();
    // The queued task is ready, or already handed to the transport's queue (running).
    assert_eq!(stats.tasks.ready + stats.tasks.running, n_workers + 1, "{stats:?}");
    assert_eq!(stats.tasks.held(), n_workers + 1, "{stats:?}");
    assert_eq!(stats.tasks.finished, 0, "{stats:?}");
    assert!(!stats.transport.is_empty(), "{stats:?}");
    assert_eq!(stats.executor, client.executor().name());

    drop(release);
    for blocker in &blockers {
        assert!(blocker.await.unwrap(), "the gate closed");
    }
    assert_eq!((&queued).await.unwrap(), 2);
    let failing = client.try_submit(|_: ()| Err::<u32, _>("no"), ());
    assert!(failing.await.is_err());

    let stats = client.stats();
    assert_eq!(stats.tasks.finished, n_workers + 1, "{stats:?}");
    assert_eq!(stats.values_held, n_workers + 1, "{stats:?}");
    assert_eq!(stats.tasks.total_finished, n_workers as u64 + 1, "{stats:?}");
    assert_eq!(stats.tasks.total_failed, 1, "{stats:?}");
    assert_eq!(stats.bytes_held, None, "values in the client's process have no known size");
    let completed: u64 = stats.workers.iter().map(|worker| worker.completed).sum();
    assert_eq!(completed, n_workers as u64 + 2, "every run is counted once: {stats:?}");
    assert!(stats.workers.iter().all(|worker| worker.running == 0), "{stats:?}");

    drop(blockers);
    drop(queued);
    assert_eq!(client.stats().values_held, 0, "released values are no longer held");
}

pub async fn stats_stream_yields_at_once_and_ends_after_close(client: Client) {
    // A long interval: the first snapshot must not wait for it.
    let mut stream = client.stats_stream(Duration::from_secs(3600));
    let first = stream.next().await.expect("a first snapshot at once");
    assert_eq!(first.tasks.held(), 0);
    let future = client.submit_task::<crate::testing::tasks::Add>((3, 6));
    assert_eq!(future.await.unwrap(), 9);
    client.close().await.unwrap();

    let mut fast = client.stats_stream(Duration::from_millis(1));
    let last = fast.next().await.expect("one snapshot after the close");
    assert_eq!(last.tasks.total_finished, 1);
    assert!(fast.next().await.is_none(), "the stream ends after the client closed");
}
