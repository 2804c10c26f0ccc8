//! Dask's futures semantics: dependencies, keys and purity, release, cancel, retries,
//! priority, scatter, `fire_and_forget`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::{CancelOutcome, Client, RetryOutcome, TaskError};

use super::registered::fresh_number;
use super::{eventually, hold_every_worker, worker_slots};
use crate::testing::tasks::{Add, EvenOnly, FailsOnce, Gate, Gated, Increment, Opens};

/// Occupies every one of the client's worker slots ([`worker_slots`]) until the returned
/// sender is dropped.
async fn block_every_worker(client: &Client) -> (flume::Sender<()>, Vec<crate::TaskFuture<bool>>) {
    block_workers(client, worker_slots(client).await)
}

/// Occupies `workers` of the client's workers until the returned sender is dropped.
fn block_workers(
    client: &Client,
    workers: usize,
) -> (flume::Sender<()>, Vec<crate::TaskFuture<bool>>) {
    let (release, gate) = flume::bounded::<()>(0);
    let blockers = (0..workers)
        .map(|_| {
            let gate = gate.clone();
            client.submit(move |_: ()| gate.recv().is_ok(), ())
        })
        .collect();
    (release, blockers)
}

fn inc(x: i64) -> i64 {
    x + 1
}

pub async fn dependents_receive_their_dependencies_values(client: Client) {
    let x = client.submit(inc, 1);
    let y = client.after(&x).submit(|x: i64| x * 10);
    let z = client.after((&x, &y)).submit(|(x, y): (i64, i64)| x + y);
    let parts = vec![x.clone(), y.clone(), z.clone()];
    let all = client.after(&parts).submit(|values: Vec<i64>| values);
    assert_eq!(all.await.unwrap(), vec![2, 20, 22]);
    let nested =
        client.after((&x, &parts)).submit(|(x, list): (i64, Vec<i64>)| x * list.len() as i64);
    assert_eq!(nested.await.unwrap(), 6);
}

pub async fn a_failed_dependency_fails_dependents_with_the_root_error(client: Client) {
    let root = client.try_submit(|_: ()| Err::<i64, _>("disk on fire"), ());
    let child = client.after(&root).submit(|x: i64| x + 1);
    let grandchild = client.after(&child).submit(|x: i64| x + 1);
    for dependent in [&child, &grandchild] {
        match dependent.await {
            Err(TaskError::DependencyFailed { key, root: cause }) => {
                assert_eq!(&key, dependent.key());
                assert_eq!(cause.key(), root.key(), "names the root, two levels down too");
                assert!(cause.to_string().contains("disk on fire"), "{cause}");
            }
            other => panic!("expected DependencyFailed, got {other:?}"),
        }
    }
    // A dependent submitted after the failure fails the same way.
    let late = client.after(&root).submit(|x: i64| x);
    assert!(matches!(late.await, Err(TaskError::DependencyFailed { .. })));
}

/// A chain of 10,000 dependents runs, and is released, without overflowing a stack: every
/// link waits for the one before (10,000 sequential round trips through a broker: `bulk`).
pub async fn a_chain_of_ten_thousand_tasks_runs_without_overflowing(client: Client) {
    let mut last = client.submit_task::<Increment>(-1);
    for _ in 0..10_000 {
        last = client.after(&last).submit_task::<Increment>();
    }
    assert_eq!((&last).await.unwrap(), 10_000);
    drop(last);
    let stats = client.clone();
    eventually(&client, Duration::from_secs(20), "release of the chain", move || {
        stats.stats().tasks.held() == 0
    })
    .await;
}

pub async fn pure_submissions_share_one_key_and_one_result(client: Client) {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    fn counted_square(x: u64) -> u64 {
        RUNS.fetch_add(1, Ordering::SeqCst);
        x * x
    }
    let before = RUNS.load(Ordering::SeqCst);
    let first = client.task().pure().submit(counted_square, 9);
    let second = client.task().pure().submit(counted_square, 9);
    let other = client.task().pure().submit(counted_square, 10);
    assert_eq!(first.key(), second.key());
    assert_ne!(first.key(), other.key());
    assert!(first.key().to_string().starts_with("counted_square-"), "{}", first.key());
    assert_eq!(first.clone().await.unwrap(), 81);
    assert_eq!(second.clone().await.unwrap(), 81);
    // Submitting a finished key returns its result without recomputing.
    let third = client.task().pure().submit(counted_square, 9);
    assert_eq!(third.await.unwrap(), 81);
    other.await.unwrap();
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 2, "9 once, 10 once");
    // Impure submissions always get new keys.
    let a = client.submit(counted_square, 9);
    let b = client.submit(counted_square, 9);
    assert_ne!(a.key(), b.key());
}

pub async fn identical_pure_maps_share_keys(client: Client) {
    let first = client.task().pure().map(inc, 0..5);
    let second = client.task().pure().map(inc, 0..5);
    let keys = |futures: &[crate::TaskFuture<i64>]| {
        futures.iter().map(|f| f.key().clone()).collect::<Vec<_>>()
    };
    assert_eq!(keys(&first), keys(&second));
    assert_eq!(client.gather(&second).await.unwrap(), vec![1, 2, 3, 4, 5]);
    // A pure dependent is keyed by its dependencies' keys.
    fn total(values: Vec<i64>) -> i64 {
        values.iter().sum()
    }
    let sum_a = client.after(&first).pure().submit(total);
    let sum_b = client.after(&second).pure().submit(total);
    assert_eq!(sum_a.key(), sum_b.key());
    assert!(sum_a.key().to_string().starts_with("total-"), "{}", sum_a.key());
    assert_eq!(sum_b.await.unwrap(), 15);
}

/// An explicit key is shared while it is held (a second submission under it gets the first
/// task's value, not its own), and runs again once released.
pub async fn an_explicit_key_is_shared_and_a_released_key_recomputes(client: Client) {
    let first = client.task().key("report-2026").submit_task::<Add>((1, 0));
    let second = client.task().key("report-2026").submit_task::<Add>((2, 0));
    assert_eq!(first.key().to_string(), "report-2026");
    assert_eq!(second.clone().await.unwrap(), 1, "the second submission shares the first task");
    assert_eq!(client.stats().tasks.total_finished, 1, "one task ran for both");
    drop((first, second));
    let stats = client.clone();
    eventually(&client, Duration::from_secs(10), "release", move || {
        stats.stats().tasks.held() == 0
    })
    .await;
    let again = client.task().key("report-2026").submit_task::<Add>((3, 0));
    assert_eq!(again.await.unwrap(), 3, "a released key runs again");
    assert_eq!(client.stats().tasks.total_finished, 2);
}

/// Cancelling the middle of a chain queued behind busy workers cancels what follows it,
/// naming it, and leaves what comes before (`local_workers`: the workers are held by gated
/// tasks).
pub async fn cancelling_the_middle_of_a_chain_cancels_what_follows(client: Client) {
    let (gate, blockers) = hold_every_worker(&client).await;
    let x = client.submit_task::<Add>((1, 1));
    let y = client.after(&x).submit_task::<Increment>();
    let z = client.after(&y).submit_task::<Increment>();
    y.cancel();
    match (&z).await {
        Err(TaskError::Cancelled { key, reason }) => {
            assert_eq!(&key, z.key());
            assert!(reason.contains(&y.key().to_string()), "{reason}");
        }
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert!((&y).await.unwrap_err().is_cancelled());
    gate.open();
    assert_eq!(x.await.unwrap(), 2, "x is untouched");
    for blocker in blockers {
        blocker.await.unwrap();
    }
}

pub async fn cancel_of_many_and_of_a_queued_async_body(client: Client) {
    let (release, blockers) = block_every_worker(&client).await;
    let queued = client.map(inc, 0..5);
    client.cancel(&queued);
    for future in &queued {
        assert!(future.await.unwrap_err().is_cancelled());
    }
    // A running async body is dropped: its completion never shows up.
    let (never, _keep) = futures::channel::oneshot::channel::<()>();
    let never = Arc::new(parking_lot::Mutex::new(Some(never)));
    let waiting = client.submit_async(
        move |_: ()| {
            let never = never.clone();
            async move {
                let _receiver_alive = never.lock().take();
                futures::future::pending::<()>().await;
            }
        },
        (),
    );
    waiting.cancel();
    assert!(waiting.await.unwrap_err().is_cancelled());
    drop(release);
    for blocker in blockers {
        blocker.await.unwrap();
    }
}

pub async fn retries_rerun_a_flaky_task_until_it_succeeds(client: Client) {
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = attempts.clone();
    let flaky = client.task().retries(3).try_submit(
        move |_: ()| {
            let attempt = counter.fetch_add(1, Ordering::SeqCst) + 1;
            if attempt < 3 { Err(format!("attempt {attempt} failed")) } else { Ok(attempt) }
        },
        (),
    );
    assert_eq!(flaky.await.unwrap(), 3, "succeeds on the third attempt");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);

    let hopeless = client.task().retries(2).submit(|_: ()| -> u8 { panic!("always") }, ());
    match hopeless.await {
        Err(TaskError::Panicked { message, .. }) => {
            assert!(message.contains("always"), "{message}");
            assert!(message.contains("gave up after 3 attempts"), "{message}");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
}

pub async fn higher_priority_runs_first_with_one_worker(client: Client) {
    let single = Client::builder()
        .shared_executor(client.executor().clone())
        .workers(1)
        .build()
        .await
        .unwrap();
    let (release, blockers) = block_workers(&single, 1);
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut futures = Vec::new();
    for (name, priority) in
        [("low", -1), ("normal-1", 0), ("high", 10), ("normal-2", 0), ("urgent", 20)]
    {
        let order = order.clone();
        futures.push(
            single
                .task()
                .priority(priority)
                .submit(move |name: &'static str| order.lock().push(name), name),
        );
    }
    drop(release);
    single.gather(&futures).await.unwrap();
    for blocker in blockers {
        blocker.await.unwrap();
    }
    assert_eq!(*order.lock(), ["urgent", "high", "normal-1", "normal-2", "low"]);
    single.close().await.unwrap();
}

pub async fn scattered_values_feed_dependents_without_copies(client: Client) {
    let table = client.scatter(Arc::new((0..1000u64).collect::<Vec<_>>()));
    assert!(table.is_done());
    let sums: Vec<_> = (0..4u64)
        .map(|offset| {
            client.after(&table).submit(move |t: Arc<Vec<u64>>| t.iter().sum::<u64>() + offset)
        })
        .collect();
    assert_eq!(client.gather(&sums).await.unwrap(), vec![499_500, 499_501, 499_502, 499_503]);
    let value = (&table).await.unwrap();
    assert_eq!(Arc::strong_count(&value), 2, "the client's copy and ours: dependents shared it");
}

/// A task given to `fire_and_forget` runs to its end after its last handle is dropped
/// (`local_workers`: the workers are held by gated tasks until the handle is gone, and the
/// task reports its run by opening a gate of the case's).
pub async fn fire_and_forget_runs_to_completion_without_a_handle(client: Client) {
    let (gate, blockers) = hold_every_worker(&client).await;
    let ran = Gate::new();
    let future = client.submit_task::<Opens>(ran.opener(42));
    client.fire_and_forget(std::slice::from_ref(&future));
    drop(future);
    gate.open();
    eventually(&client, Duration::from_secs(30), "the forgotten task's run", || ran.is_open())
        .await;
    for blocker in blockers {
        blocker.await.unwrap();
    }
}

pub async fn a_task_released_before_it_started_does_not_run(client: Client) {
    let (release, blockers) = block_every_worker(&client).await;
    let ran = Arc::new(AtomicU32::new(0));
    let counter = ran.clone();
    drop(client.submit(move |_: ()| counter.fetch_add(1, Ordering::SeqCst), ()));
    drop(release);
    for blocker in blockers {
        blocker.await.unwrap();
    }
    // Everything submitted after it has run; it never did.
    client.submit(|x: i32| x, 0).await.unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

/// The registered twin of [`a_task_released_before_it_started_does_not_run`], for every
/// backend with local workers: a task whose last handle is dropped while every worker is
/// busy never runs. On a broker that sends tasks ahead of its workers (Redis) the task is in
/// the broker's queue already, and the client takes its entry back before any worker begins
/// it.
pub async fn a_released_registered_task_that_has_not_started_does_not_run(client: Client) {
    let (gate, blockers) = hold_every_worker(&client).await;
    let ran = Gate::new();
    drop(client.submit_task::<Opens>(ran.opener(1)));
    // The client lets it go once no worker can begin it any more.
    let busy = blockers.len();
    eventually(&client, Duration::from_secs(20), "the released task is let go", || {
        client.stats().tasks.held() == busy
    })
    .await;
    // Twice as many tasks as slots after it: each slot takes some after its place in line.
    let slots = worker_slots(&client).await as i64;
    let after = client.map_task::<Add>((0..2 * slots).map(|i| (i, 0)));
    gate.open();
    for blocker in blockers {
        blocker.await.unwrap();
    }
    client.gather(&after).await.unwrap();
    assert!(!ran.is_open(), "a task released before it started ran");
}

pub async fn graphs_are_submitted_in_one_call_and_shared_nodes_run_once(client: Client) {
    use crate::{delayed, delayed_after};
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let base = delayed(
        move |x: i64| {
            counter.fetch_add(1, Ordering::SeqCst);
            x + 1
        },
        1,
    );
    let left = base.then(|x: i64| x * 10);
    let right = base.then(|x: i64| x * 100);
    let total = delayed_after((&left, &right, &base), |(l, r, b): (i64, i64, i64)| l + r + b);
    let leaves: Vec<_> = (0..4).map(|i| delayed(|x: i64| x * x, i)).collect();
    let squares = delayed_after(leaves.as_slice(), |values: Vec<i64>| values.iter().sum::<i64>());
    assert_eq!(client.compute(&total).await.unwrap(), 20 + 200 + 2);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "a node used three times is submitted once");
    let persisted = client.persist(&squares);
    assert_eq!(persisted.await.unwrap(), 14);
    // A failure inside a graph reaches the output as DependencyFailed naming the root.
    let broken = delayed(|_: ()| -> i64 { panic!("bad leaf") }, ());
    let output = broken.then(|x: i64| x + 1);
    match client.compute(&output).await {
        Err(crate::Error::Task(TaskError::DependencyFailed { root, .. })) => {
            assert!(matches!(*root, TaskError::Panicked { .. }), "{root:?}");
        }
        other => panic!("expected DependencyFailed, got {other:?}"),
    }
}

/// `retry` re-runs a failed task, which reads its input again; a finished task is not re-run.
pub async fn retry_reruns_a_failed_task_on_demand(client: Client) {
    let number = fresh_number();
    let input = client.submit_task::<Add>((number, 0));
    let flaky = client.after(&input).submit_task::<FailsOnce>();
    match (&flaky).await {
        Err(TaskError::Failed { message, .. }) => {
            assert!(message.contains("first run of"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(flaky.retry(), RetryOutcome::Rerunning);
    assert_eq!((&flaky).await.unwrap(), number, "the retried run read its input again");
    assert_eq!(client.stats().tasks.total_finished, 2, "the input, then the retried run");
    assert_eq!(flaky.retry(), RetryOutcome::NotFailed, "a finished task is not re-run");
    assert_eq!(flaky.await.unwrap(), number);
    assert_eq!(client.stats().tasks.total_finished, 2);
}

pub async fn map_over_futures_and_over_zipped_iterables(client: Client) {
    let numbers = client.map(inc, 0..4);
    let doubled = client.map_after(&numbers, |x: i64| x * 2);
    assert_eq!(client.gather(&doubled).await.unwrap(), vec![2, 4, 6, 8]);
    // Two iterables: zip them, the shortest wins (as in Dask's map over several lists).
    let sums = client.map(|(a, b): (i64, i64)| a + b, vec![1, 2, 3].into_iter().zip(vec![10, 20]));
    assert_eq!(client.gather(&sums).await.unwrap(), vec![11, 22]);
}

/// A body that fails on its first run and then returns `x + 1`; the counter counts runs.
fn fails_once(
    runs: &Arc<AtomicU32>,
) -> impl Fn(i64) -> Result<i64, String> + Send + Sync + 'static {
    let runs = runs.clone();
    move |x: i64| {
        if runs.fetch_add(1, Ordering::SeqCst) == 0 {
            Err("first run fails".to_string())
        } else {
            Ok(x + 1)
        }
    }
}

/// Issue 13, defect 2: `y.retry()` when `y` failed because `x` did re-runs `x`, then `y` (it
/// did nothing, even after `x.retry()` had succeeded).
pub async fn retrying_a_dependent_reruns_its_failed_dependency_first(client: Client) {
    let runs = Arc::new(AtomicU32::new(0));
    let x = client.try_submit(fails_once(&runs), 1);
    let y = client.after(&x).submit(|x: i64| x * 10);
    let z = client.after(&y).submit(|y: i64| y + 1);
    assert!(matches!((&z).await, Err(TaskError::DependencyFailed { .. })));
    assert_eq!(z.retry(), RetryOutcome::Rerunning);
    assert_eq!((&z).await.unwrap(), 21, "x, then y, then z ran again");
    assert_eq!((&x).await.unwrap(), 2, "every handle of x sees its new outcome");
    assert_eq!((&y).await.unwrap(), 20);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(z.retry(), RetryOutcome::NotFailed);

    // Retrying the dependency first, then the dependent, works too.
    let runs = Arc::new(AtomicU32::new(0));
    let x = client.try_submit(fails_once(&runs), 5);
    let y = client.after(&x).submit(|x: i64| x * 10);
    assert!((&y).await.is_err());
    assert_eq!(x.retry(), RetryOutcome::Rerunning);
    assert_eq!((&x).await.unwrap(), 6);
    assert!((&y).await.is_err(), "y keeps its outcome until it is retried");
    assert_eq!(client.retry(std::slice::from_ref(&y)), [RetryOutcome::Rerunning]);
    assert_eq!(y.await.unwrap(), 60);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// Issue 13, defect 2: a failed task whose dependency's handle was dropped can be retried:
/// it keeps that dependency's value for the purpose (the retry did nothing).
pub async fn a_failed_task_whose_dependency_was_released_can_be_retried(client: Client) {
    let runs = Arc::new(AtomicU32::new(0));
    let x = client.submit(inc, 1);
    let y = client.after(&x).try_submit(fails_once(&runs));
    drop(x);
    assert!((&y).await.is_err());
    assert_eq!(y.retry(), RetryOutcome::Rerunning);
    assert_eq!((&y).await.unwrap(), 3);
    drop(y);
    let stats = client.clone();
    eventually(&client, Duration::from_secs(10), "release", move || {
        stats.stats().tasks.held() == 0
    })
    .await;
}

/// Issue 13, defect 3: cancelling a finished task cancels it, as in Dask (it stayed finished
/// and usable as a dependency): its value is released, what read it is cancelled, and a task
/// submitted on it later is cancelled naming it; `cancel` and `retry` say what they did.
pub async fn cancelling_a_finished_task_cancels_it_and_what_reads_it(client: Client) {
    let table = client.scatter(Arc::new(vec![1u64, 2, 3]));
    let value = Arc::downgrade(&(&table).await.unwrap());
    let x = client.after(&table).submit(|t: Arc<Vec<u64>>| t.iter().sum::<u64>());
    let y = client.after(&x).submit(|x: u64| x * 10);
    assert_eq!((&y).await.unwrap(), 60);

    assert_eq!(table.cancel(), CancelOutcome::CancelledAfterFinishing);
    assert!(value.upgrade().is_none(), "the cancelled value is released");
    for (future, reason) in [(&x, table.key().to_string()), (&y, x.key().to_string())] {
        match future.await {
            Err(TaskError::Cancelled { key, reason: why }) => {
                assert_eq!(&key, future.key());
                assert!(why.contains(&reason), "{why}");
            }
            other => panic!("expected Cancelled, got {other:?}"),
        }
    }
    match (&table).await {
        Err(TaskError::Cancelled { reason, .. }) => {
            assert!(reason.contains("cancelled by the user"), "{reason}");
        }
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert_eq!(table.cancel(), CancelOutcome::AlreadyCancelled);
    assert_eq!(y.cancel(), CancelOutcome::AlreadyCancelled);
    assert_eq!(table.retry(), RetryOutcome::Cancelled, "a cancel is not undone by a retry");
    let late = client.after(&table).submit(|t: Arc<Vec<u64>>| t.len());
    match late.await {
        Err(TaskError::Cancelled { reason, .. }) => {
            assert!(reason.contains(&table.key().to_string()), "{reason}");
        }
        other => panic!("expected Cancelled, got {other:?}"),
    }

    // A failed task is cancelled too; an unfinished one answers `Cancelled`.
    let failed = client.try_submit(|_: ()| Err::<u8, _>("no"), ());
    assert!((&failed).await.is_err());
    let (release, blockers) = block_every_worker(&client).await;
    let queued = client.submit(inc, 1);
    let answers = client.cancel(std::slice::from_ref(&failed));
    assert_eq!(answers, [CancelOutcome::CancelledAfterFinishing]);
    assert!(failed.await.unwrap_err().is_cancelled());
    assert_eq!(queued.cancel(), CancelOutcome::Cancelled);
    assert!(queued.await.unwrap_err().is_cancelled());
    drop(release);
    for blocker in blockers {
        blocker.await.unwrap();
    }
    assert_eq!(client.submit(inc, 1).await.unwrap(), 2, "the client keeps working");
}

/// Issue 13: `{future:?}` shows the key and the status, like Dask's repr (`local_workers`: a
/// gated task stays running, and its dependent pending, until the case opens the gate).
pub async fn debug_shows_the_key_and_the_status(client: Client) {
    let gate = Gate::new();
    let running = client.submit_task::<Gated>(gate.input(1));
    let pending = client.task().key("pending").after(&running).submit_task::<Increment>();
    assert_eq!(format!("{pending:?}"), "TaskFuture { key: pending, status: pending }");
    assert!(format!("{running:?}").ends_with("status: running }"), "{running:?}");
    gate.open();
    assert_eq!((&pending).await.unwrap(), 2);
    assert_eq!(format!("{pending:?}"), "TaskFuture { key: pending, status: finished }");
    let failed = client.task().key("failed").submit_task::<EvenOnly>(1);
    assert!((&failed).await.is_err());
    assert_eq!(format!("{failed:?}"), "TaskFuture { key: failed, status: failed }");
    pending.cancel();
    assert_eq!(format!("{pending:?}"), "TaskFuture { key: pending, status: cancelled }");
}
