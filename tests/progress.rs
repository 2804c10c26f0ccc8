//! `taskweave::progress`: waits for every future and counts how each ended, async and
//! blocking.

use taskweave::Client;

#[test]
fn blocking_progress_counts_finished_failed_and_cancelled() {
    let client = Client::builder().workers(2).build_blocking().unwrap();
    let (release, gate) = flume::bounded::<()>(0);
    // Hold both workers so that the task cancelled below is certainly not finished.
    let blockers: Vec<_> = (0..2)
        .map(|_| {
            let gate = gate.clone();
            client.try_submit(move |_: ()| gate.recv().map_or(Ok(0), |()| Err("opened")), ())
        })
        .collect();
    let cancelled = client.try_submit(|x: u32| Ok::<_, String>(x), 7);
    cancelled.cancel();
    let failed = client.try_submit(|_: ()| Err::<u32, _>("no"), ());
    let plain = client.map(|x: u32| x, 0..50);
    drop(release);

    let mut all = blockers.clone();
    all.push(cancelled);
    all.push(failed);
    let summary = taskweave::progress(&all).hidden().blocking().unwrap();
    assert_eq!(summary.total, 4);
    assert_eq!(summary.finished, 2, "{summary:?}");
    assert_eq!(summary.failed, 1, "{summary:?}");
    assert_eq!(summary.cancelled, 1, "{summary:?}");

    let summary = taskweave::progress(&plain).blocking().unwrap();
    assert_eq!((summary.total, summary.finished), (50, 50));
}

#[test]
fn progress_of_nothing_is_done_at_once() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let none: Vec<taskweave::TaskFuture<u32>> = Vec::new();
    let summary = taskweave::progress(&none).blocking().unwrap();
    assert_eq!(summary.total, 0);
    drop(client);
}

#[test]
fn async_progress_waits_for_every_future() {
    futures::executor::block_on(async {
        let client = Client::builder().workers(2).build().await.unwrap();
        let futures = client.map(|x: u64| x * 2, 0..1000);
        let summary = taskweave::progress(&futures).hidden().await;
        assert_eq!(summary.finished, 1000);
        assert!(futures.iter().all(|future| future.is_done()));
    });
}
