//! Task events from the user's side: `story`, `task_stream`, the live stream, the ring's
//! bounds, recording switched off, and deterministic times on the simulation.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use taskweave::events::{RunStatus, TaskEvent, TaskTransition};
use taskweave::{Client, TaskError};

/// The longest any wait of these tests may take: they wait for events, never sleep.
const PATIENCE: Duration = Duration::from_secs(30);

fn transitions(story: &[TaskEvent]) -> Vec<TaskTransition> {
    story.iter().map(|event| event.transition.clone()).collect()
}

fn assert_in_time_order(story: &[TaskEvent]) {
    for pair in story.windows(2) {
        assert!(pair[0].at <= pair[1].at, "story out of time order: {story:#?}");
    }
}

fn worker_of(transition: &TaskTransition) -> Option<&str> {
    match transition {
        TaskTransition::Started { worker, .. }
        | TaskTransition::Finished { worker, .. }
        | TaskTransition::RunFailed { worker, .. }
        | TaskTransition::Lost { worker, .. } => worker.as_deref(),
        _ => None,
    }
}

#[test]
fn story_of_a_finished_task() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let future = client.submit(|x: u64| x + 1, 1);
    assert_eq!(future.result().unwrap(), 2);
    let story = client.story(&future);
    assert_in_time_order(&story);
    let steps = transitions(&story);
    assert_eq!(steps.len(), 4, "{steps:#?}");
    assert_eq!(steps[0], TaskTransition::Submitted);
    assert_eq!(steps[1], TaskTransition::Queued { attempt: 1 });
    assert!(matches!(steps[2], TaskTransition::Started { attempt: 1, .. }), "{steps:#?}");
    assert!(matches!(steps[3], TaskTransition::Finished { attempt: 1, .. }), "{steps:#?}");
    assert_eq!(worker_of(&steps[2]), Some("worker-0"));
    assert_eq!(worker_of(&steps[3]), Some("worker-0"));
    // The key works as well as the future.
    assert_eq!(client.story(future.key()), story);
}

#[test]
fn story_of_a_failed_task_and_of_its_dependent_names_the_root() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let root = client.try_submit(|_: u64| Err::<u64, _>("no such file"), 1);
    let dependent = client.after(&root).submit(|x: u64| x + 1);
    assert!(dependent.result().is_err());

    let steps = transitions(&client.story(&root));
    match steps.last() {
        Some(TaskTransition::RunFailed { error: TaskError::Failed { key, message }, .. }) => {
            assert_eq!(key, root.key());
            assert!(message.contains("no such file"), "{message}");
        }
        other => panic!("expected the root's run to fail, got {other:?} in {steps:#?}"),
    }

    let story = client.story(&dependent);
    assert_in_time_order(&story);
    let steps = transitions(&story);
    assert_eq!(steps[0], TaskTransition::Submitted);
    assert!(!steps.iter().any(|step| matches!(step, TaskTransition::Started { .. })));
    match steps.last() {
        Some(TaskTransition::Failed { error }) => {
            assert!(matches!(error, TaskError::DependencyFailed { .. }), "{error:?}");
            assert_eq!(error.root().key(), root.key(), "the story names the root task");
        }
        other => panic!("expected a dependency failure, got {other:?} in {steps:#?}"),
    }
}

#[test]
fn story_of_a_panicked_task_says_it_panicked() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let future = client.submit(|_: u64| -> u64 { panic!("boom") }, 1);
    assert!(future.result().is_err());
    let steps = transitions(&client.story(&future));
    assert!(
        matches!(
            steps.last(),
            Some(TaskTransition::RunFailed { error: TaskError::Panicked { .. }, .. })
        ),
        "{steps:#?}"
    );
    let records = client.task_stream(..);
    let record = records.iter().find(|record| &record.key == future.key()).unwrap();
    assert_eq!(record.status, RunStatus::Panicked);
}

#[test]
fn story_of_a_cancelled_task() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let wait = std::sync::Mutex::new(wait);
    let blocker =
        client.submit(move |_: u64| wait.lock().unwrap().recv_timeout(PATIENCE).is_ok(), 1);
    let waiting = client.after(&blocker).submit(|ok: bool| ok);
    waiting.cancel();
    release.send(()).unwrap();
    assert!(blocker.result().unwrap());
    let steps = transitions(&client.story(&waiting));
    assert_eq!(steps[0], TaskTransition::Submitted);
    assert!(
        matches!(steps.last(), Some(TaskTransition::Cancelled { .. })),
        "expected the story to end cancelled: {steps:#?}"
    );
    assert!(!steps.iter().any(|step| matches!(step, TaskTransition::Queued { .. })));
}

#[test]
fn story_of_a_retried_task_shows_both_runs() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let future = client.task().retries(1).try_submit(
        move |x: u64| match counter.fetch_add(1, Ordering::SeqCst) {
            0 => Err("the first run fails"),
            _ => Ok(x),
        },
        7,
    );
    assert_eq!(future.result().unwrap(), 7);
    let story = client.story(&future);
    assert_in_time_order(&story);
    let steps = transitions(&story);
    let kinds: Vec<&str> = steps
        .iter()
        .map(|step| match step {
            TaskTransition::Submitted => "submitted",
            TaskTransition::Queued { attempt: 1 } => "queued",
            TaskTransition::Queued { .. } => "retried",
            TaskTransition::Started { .. } => "started",
            TaskTransition::Finished { .. } => "finished",
            TaskTransition::RunFailed { .. } => "run failed",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        ["submitted", "queued", "started", "run failed", "retried", "started", "finished"]
    );
    assert!(matches!(steps[6], TaskTransition::Finished { attempt: 2, .. }));

    // A retry asked for by the user shows as a later attempt too.
    let fails = client.try_submit(|_: u64| Err::<u64, _>("always"), 2);
    assert!(fails.result().is_err());
    assert_eq!(fails.retry(), taskweave::RetryOutcome::Rerunning);
    assert!(fails.result().is_err());
    let steps = transitions(&client.story(&fails));
    assert!(steps.contains(&TaskTransition::Queued { attempt: 2 }), "{steps:#?}");
    let runs = steps.iter().filter(|step| matches!(step, TaskTransition::RunFailed { .. }));
    assert_eq!(runs.count(), 2, "{steps:#?}");
}

#[test]
fn task_stream_shows_every_task_of_a_map_once() {
    let client = Client::builder().workers(2).build_blocking().unwrap();
    let since = client.elapsed();
    let futures = client.map(|x: u64| x * 2, 0..200);
    client.blocking().gather(&futures).unwrap();
    let records = client.task_stream(since..);
    let mut seen = HashMap::new();
    for record in &records {
        *seen.entry(record.key.clone()).or_insert(0) += 1;
        let start = record.start.expect("in-process workers say when a run started");
        assert!(since <= start && start <= record.stop, "{record:?}");
        assert!(record.stop <= client.elapsed());
        assert_eq!(record.status, RunStatus::Finished);
        assert_eq!(record.attempt, 1);
        let worker = record.worker.as_deref().expect("in-process workers say who they are");
        assert!(worker == "worker-0" || worker == "worker-1", "{worker}");
        assert!(!record.name.is_empty());
    }
    assert_eq!(seen.len(), 200);
    for future in &futures {
        assert_eq!(seen.get(future.key()), Some(&1), "{:?} once", future.key());
    }
    // A range that ends before the work began holds none of it.
    assert!(client.task_stream(..since).iter().all(|record| !seen.contains_key(&record.key)));
}

/// A busy worker reads the clock once per run: a run taken from the queue right after the
/// previous one starts when that one ended, moved to when the task was queued if that is
/// later. So a worker's runs never overlap, and every story still reads queued, started,
/// finished in time order.
#[test]
fn runs_of_a_busy_worker_start_after_they_were_queued_and_never_overlap() {
    let client = Client::builder().workers(2).build_blocking().unwrap();
    // Submitted one by one, so that a worker often takes a task queued while it reported
    // its previous one.
    let futures: Vec<_> = (0..4_000).map(|x: u64| client.submit(|x: u64| x + 1, x)).collect();
    client.blocking().gather(&futures).unwrap();
    for future in &futures {
        let story = client.story(future);
        assert_in_time_order(&story);
        assert_eq!(story.len(), 4, "{story:#?}");
    }
    let mut by_worker: HashMap<Arc<str>, Vec<(Duration, Duration)>> = HashMap::new();
    for record in client.task_stream(..) {
        let worker = record.worker.expect("in-process workers say who they are");
        by_worker.entry(worker).or_default().push((record.start.unwrap(), record.stop));
    }
    for (worker, mut runs) in by_worker {
        runs.sort();
        for pair in runs.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "runs of {worker} overlap: {pair:?}");
        }
    }
}

/// The ring names each run's worker however many times it wrapped around (the entries
/// hold an index into a table of names that the dropped entries give back).
#[test]
fn worker_names_stay_right_after_the_ring_wraps_around() {
    let client = Client::builder().workers(2).task_events(8).build_blocking().unwrap();
    for round in 0..20u64 {
        let futures = client.map(move |x: u64| x + round, 0..16);
        client.blocking().gather(&futures).unwrap();
        let records = client.task_stream(..);
        assert_eq!(records.len(), 8);
        for record in records {
            let worker = record.worker.expect("in-process workers say who they are");
            assert!(&*worker == "worker-0" || &*worker == "worker-1", "{worker}");
        }
    }
}

#[test]
fn errors_stay_with_their_tasks_after_the_ring_wraps_around() {
    // Every third task fails with its own input in the message; the ring keeps 7 entries, so
    // failures are dropped from it while newer ones are kept.
    let client = Client::builder().workers(2).task_events(7).build_blocking().unwrap();
    for round in 0..6u64 {
        let inputs: Vec<u64> = (round * 10..round * 10 + 10).collect();
        let futures: Vec<_> = inputs
            .iter()
            .map(|&x| {
                client.try_submit(
                    |x: u64| {
                        if x.is_multiple_of(3) { Err(format!("bad input {x}")) } else { Ok(x) }
                    },
                    x,
                )
            })
            .collect();
        for future in &futures {
            let _ = future.result();
        }
        for (x, future) in inputs.iter().zip(&futures) {
            let story = client.story(future);
            let Some(end) = story.last() else { continue };
            match &end.transition {
                TaskTransition::RunFailed { error, .. } => {
                    assert!(x.is_multiple_of(3), "{x} did not fail: {story:#?}");
                    assert!(error.to_string().contains(&format!("bad input {x}")), "{error}");
                }
                TaskTransition::Finished { .. } => assert!(!x.is_multiple_of(3), "{x} failed"),
                other => panic!("{x}: {other:?}"),
            }
        }
        for record in client.task_stream(..) {
            if let Some(offset) = futures.iter().position(|future| future.key() == &record.key) {
                let failed = record.status == RunStatus::Failed;
                assert_eq!(failed, inputs[offset].is_multiple_of(3), "{record:?}");
            }
        }
    }
}

#[test]
fn a_registered_name_or_the_key_prefix_names_a_record() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let keyed = client.task().key("resize-0123456789abcdef").submit(|x: u64| x, 1);
    let plain = client.task().key("just-a-name").submit(|x: u64| x, 2);
    keyed.result().unwrap();
    plain.result().unwrap();
    let names: HashMap<_, _> =
        client.task_stream(..).into_iter().map(|record| (record.key, record.name)).collect();
    assert_eq!(&*names[keyed.key()], "resize");
    assert_eq!(&*names[plain.key()], "just-a-name");
}

#[test]
fn an_async_body_is_recorded_without_a_worker() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let future = client.submit_async(|x: u64| async move { x + 1 }, 1);
    assert_eq!(future.result().unwrap(), 2);
    let records = client.task_stream(..);
    let record = records.iter().find(|record| &record.key == future.key()).unwrap();
    assert_eq!(record.worker, None);
    assert!(record.start.unwrap() <= record.stop);
}

#[test]
fn the_ring_is_bounded_and_counts_what_it_dropped() {
    let client = Client::builder().workers(1).task_events(10).build_blocking().unwrap();
    let futures = client.map(|x: u64| x, 0..20);
    client.blocking().gather(&futures).unwrap();
    let counts = client.task_event_counts();
    assert_eq!(counts.capacity, 10);
    assert_eq!(counts.held, 10);
    // One entry per run.
    assert_eq!(counts.recorded, 20);
    assert_eq!(counts.dropped, 10);
    // The oldest went first: the first task's story is gone, the last task's run is kept.
    assert!(client.story(&futures[0]).is_empty());
    let last = transitions(&client.story(&futures[19]));
    assert!(matches!(last.last(), Some(TaskTransition::Finished { .. })), "{last:#?}");
    assert!(client.task_stream(..).len() <= 10);
    // The documented memory bound: the default capacity times this.
    let entry_bytes = std::hint::black_box(taskweave::events::TASK_EVENT_BYTES);
    if cfg!(target_pointer_width = "64") {
        assert!(entry_bytes <= 64, "one cache line: {entry_bytes}");
    }
}

#[test]
fn recording_off_records_nothing() {
    let client = Client::builder().workers(1).task_events(0).build_blocking().unwrap();
    let futures = client.map(|x: u64| x, 0..20);
    client.blocking().gather(&futures).unwrap();
    assert!(client.task_stream(..).is_empty());
    assert!(client.story(&futures[0]).is_empty());
    assert_eq!(client.task_event_counts(), Default::default());
    let mut live = client.task_stream_live();
    assert!(futures::executor::block_on(live.next()).is_none(), "ends at once when off");
}

#[test]
fn the_live_stream_sees_tasks_as_they_finish_and_ends_at_close() {
    futures::executor::block_on(async {
        let client = Client::builder().workers(2).build().await.unwrap();
        let before = client.submit(|x: u64| x, 100);
        before.clone().await.unwrap();
        let mut live = client.task_stream_live();
        let futures = client.map(|x: u64| x + 1, 0..50);
        let mut seen = std::collections::HashSet::new();
        let waiting = async {
            while seen.len() < 50 {
                let record = live.next().await.expect("the stream lives while the client does");
                assert_ne!(&record.key, before.key(), "only runs that end after subscribing");
                assert!(seen.insert(record.key.clone()), "each run once");
            }
        };
        let timeout = client.executor().sleep(PATIENCE);
        futures::pin_mut!(waiting);
        match futures::future::select(waiting, timeout).await {
            futures::future::Either::Left(((), _)) => {}
            futures::future::Either::Right(_) => panic!("the live stream saw only {}", seen.len()),
        }
        for future in &futures {
            assert!(seen.contains(future.key()));
        }
        assert_eq!(live.missed(), 0);
        client.close().await.unwrap();
        assert!(live.next().await.is_none(), "ends after the close");
    });
}

/// Runs wait in their worker's staging area until it fills or someone reads (see the
/// `events` module docs); a live stream that waits must still get each one at once: here each
/// task is submitted only after the stream saw the previous one's run, so a stream woken only
/// when an area fills would hang.
#[test]
fn a_waiting_live_stream_gets_each_run_before_the_next_task_is_submitted() {
    futures::executor::block_on(async {
        let client = Client::builder().workers(2).build().await.unwrap();
        let mut live = client.task_stream_live();
        let seen = std::cell::Cell::new(0);
        let one_at_a_time = async {
            for i in 0..300u64 {
                let future = client.submit(|x: u64| x, i);
                let record = live.next().await.expect("the stream lives while the client does");
                assert_eq!(&record.key, future.key(), "the run of the task just submitted");
                seen.set(seen.get() + 1);
            }
        };
        let timeout = client.executor().sleep(PATIENCE);
        futures::pin_mut!(one_at_a_time);
        if let futures::future::Either::Right(_) =
            futures::future::select(one_at_a_time, timeout).await
        {
            panic!("the live stream stopped after {} runs", seen.get());
        }
        client.close().await.unwrap();
    });
}

#[test]
fn a_live_stream_that_falls_behind_misses_the_oldest_and_counts_them() {
    let client = Client::builder().workers(1).task_events(8).build_blocking().unwrap();
    let mut live = client.task_stream_live();
    let futures = client.map(|x: u64| x, 0..20);
    client.blocking().gather(&futures).unwrap();
    let mut read = Vec::new();
    while let Some(Some(record)) = futures::FutureExt::now_or_never(live.next()) {
        read.push(record);
    }
    assert_eq!(read.len(), 8);
    assert_eq!(live.missed(), 20 - 8);
    assert_eq!(read.last().map(|record| &record.key), Some(futures[19].key()));
}

#[cfg(feature = "sim")]
#[test]
fn the_simulation_gives_deterministic_times() {
    use taskweave::runtimes::sim::{SimConfig, SimExecutor};

    let run = |seed| {
        let sim = SimExecutor::new(SimConfig::new(seed));
        let client = Client::builder().executor(sim.clone()).workers(2).build_blocking().unwrap();
        let spender = sim.clone();
        let futures = client.map(
            move |x: u64| {
                spender.spend(Duration::from_millis(10)).unwrap();
                x
            },
            0..6,
        );
        sim.block_on(client.gather(&futures)).unwrap().unwrap();
        let records: Vec<_> = client
            .task_stream(..)
            .into_iter()
            .map(|record| (record.key.to_string(), record.worker, record.start, record.stop))
            .collect();
        drop(futures);
        drop(client);
        sim.run_until_idle().unwrap();
        sim.shutdown();
        records
    };
    let first = run(7);
    assert_eq!(first.len(), 6);
    for (_, _, start, stop) in &first {
        // Virtual time: a body spends 10 ms (more when the simulation runs another worker's
        // body inside its spend, as a second thread would).
        assert!(*stop - start.unwrap() >= Duration::from_millis(10), "{first:?}");
    }
    assert_eq!(first, run(7), "one seed, one set of keys, workers and times");
}

/// A run's entry is in the ring once its result can be awaited: a `story` or `task_stream`
/// read right after shows how the run ended, on every one of many tasks spread over two
/// busy workers (a recording that buffered entries per worker, or wrote them after
/// resolving the futures, would miss some).
#[test]
fn a_reader_right_after_a_result_sees_the_run_end() {
    let client = Client::builder().workers(2).build_blocking().unwrap();
    for round in 0..200u64 {
        // Keeps the other worker busy too, so that runs end on both while this one is read.
        let _background = client.map(|x: u64| x * 2, (0..4).map(|i| round * 10 + i + 1_000_000));
        let future = client.submit(|x: u64| x + 1, round);
        assert_eq!(future.result().unwrap(), round + 1);
        let steps = transitions(&client.story(&future));
        assert!(
            matches!(steps.last(), Some(TaskTransition::Finished { attempt: 1, .. })),
            "round {round}: the story misses the finish: {steps:#?}"
        );
        let failing = client.try_submit(|_: u64| Err::<u64, _>("refused"), round);
        assert!(failing.result().is_err());
        let steps = transitions(&client.story(&failing));
        assert!(
            matches!(steps.last(), Some(TaskTransition::RunFailed { attempt: 1, .. })),
            "round {round}: the story misses the failed run: {steps:#?}"
        );
    }
    let futures = client.map(|x: u64| x + 1, 0..500);
    client.blocking().gather(&futures).unwrap();
    let stream = client.task_stream(..);
    for future in &futures {
        let runs = stream.iter().filter(|record| &record.key == future.key()).count();
        assert_eq!(runs, 1, "task_stream misses or repeats {}", future.key());
    }
}
