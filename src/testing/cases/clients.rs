//! Two clients on one cluster ([`ClusterHandle`](crate::ClusterHandle), Dask's several
//! `Client`s on one scheduler): results shared by key, cancels and releases per client.
//!
//! Each case builds a cluster on the case's executor (in-process workers: the bodies are
//! closures that count their runs), attaches two clients to it, and closes it at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::eventually;
use crate::testing::tasks::{Gate, Gated};
use crate::{CancelOutcome, Client, ClusterHandle, Task, TaskError};

/// How long a case waits for something it expects.
const LIMIT: Duration = Duration::from_secs(10);

fn cluster_on(client: &Client) -> ClusterHandle {
    Client::builder().executor(client.executor().clone()).workers(2).build_cluster().unwrap()
}

/// A body that counts its starts, waits for `gate` to open (at most
/// [`GATE_LIMIT`](crate::testing::tasks::GATE_LIMIT)), and returns `value`.
fn gated(
    runs: &Arc<AtomicUsize>,
    gate: &Gate,
    value: i64,
) -> impl Fn(()) -> i64 + Send + Sync + use<> {
    let runs = Arc::clone(runs);
    let input = gate.input(value);
    move |()| {
        runs.fetch_add(1, Ordering::SeqCst);
        Gated::run(input).unwrap_or(-1)
    }
}

fn counted(runs: &Arc<AtomicUsize>, value: i64) -> impl Fn(()) -> i64 + Send + Sync + use<> {
    let runs = Arc::clone(runs);
    move |()| {
        runs.fetch_add(1, Ordering::SeqCst);
        value
    }
}

fn square(x: i64) -> i64 {
    x * x
}

/// (a) A task with an explicit key computed by one client is found by the other, while it
/// runs (the other waits for that run) and after it finished; a pure task likewise. Tasks
/// with generated keys stay each client's own.
pub async fn two_clients_share_a_keyed_result_computed_once(client: Client) {
    let cluster = cluster_on(&client);
    let (a, b) = (cluster.client(), cluster.client());
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Gate::new();

    // While A's run is under way, B's submission waits for it instead of running again.
    let from_a = a.task().key("report").submit(gated(&runs, &gate, 7), ());
    eventually(&client, LIMIT, "A's run starts", || runs.load(Ordering::SeqCst) == 1).await;
    let from_b = b.task().key("report").submit(gated(&runs, &gate, 99), ());
    assert_eq!(from_b.key().to_string(), "report");
    gate.open();
    assert_eq!((&from_b).await.unwrap(), 7, "B got A's value");
    assert_eq!((&from_a).await.unwrap(), 7);
    // After it finished, too.
    let later = b.task().key("report").submit(counted(&runs, 99), ());
    assert_eq!(later.await.unwrap(), 7);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one run for three submissions");

    // A pure task: the same function and input, one run.
    let pure_a = a.task().pure().submit(square, 12);
    let pure_b = b.task().pure().submit(square, 12);
    assert_eq!(pure_a.key(), pure_b.key());
    assert_eq!((pure_a.await.unwrap(), pure_b.await.unwrap()), (144, 144));

    // A dependent of a shared task, submitted by each client under a shared key, runs once.
    let deps_runs = Arc::new(AtomicUsize::new(0));
    let x_a = a.task().key("x").scatter(20_i64);
    let x_b = b.task().key("x").scatter(0_i64);
    assert_eq!((&x_b).await.unwrap(), 20, "a keyed scatter is found by the other client");
    let counter = Arc::clone(&deps_runs);
    let plus = move |x: i64| {
        counter.fetch_add(1, Ordering::SeqCst);
        x + 1
    };
    let y_a = a.task().key("y").after(&x_a).submit(plus.clone());
    let y_b = b.task().key("y").after(&x_b).submit(plus);
    assert_eq!((y_a.await.unwrap(), y_b.await.unwrap()), (21, 21));
    assert_eq!(deps_runs.load(Ordering::SeqCst), 1);

    // Generated keys are never shared.
    let own_a = a.submit(counted(&runs, 1), ());
    let own_b = b.submit(counted(&runs, 2), ());
    assert_ne!(own_a.key(), own_b.key());
    assert_eq!((own_a.await.unwrap(), own_b.await.unwrap()), (1, 2));
    drop(gate);
    cluster.close().await.unwrap();
}

/// (b) A cancel by one client cancels its own future (and what depends on it), not the
/// other client's future with the same key; the shared run is cancelled only when every
/// client holding it cancelled.
pub async fn a_cancel_by_one_client_leaves_the_other_clients_future(client: Client) {
    let cluster = cluster_on(&client);
    let (a, b) = (cluster.client(), cluster.client());
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Gate::new();

    // Cancelled by A while it runs: B's future gets the value of the one run.
    let from_a = a.task().key("slow").submit(gated(&runs, &gate, 5), ());
    eventually(&client, LIMIT, "the run starts", || runs.load(Ordering::SeqCst) == 1).await;
    let from_b = b.task().key("slow").submit(gated(&runs, &gate, 99), ());
    let after_a = a.after(&from_a).submit(|x: i64| x + 1);
    let after_b = b.after(&from_b).submit(|x: i64| x + 1);
    assert_eq!(from_a.cancel(), CancelOutcome::Cancelled);
    assert!(matches!((&from_a).await, Err(TaskError::Cancelled { .. })));
    assert!((&after_a).await.unwrap_err().is_cancelled(), "A's dependent is cancelled");
    gate.open();
    assert_eq!((&from_b).await.unwrap(), 5, "B's future is not A's to cancel");
    assert_eq!(after_b.await.unwrap(), 6);
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // Cancelled by A after it finished: B keeps its value, and a new submission still finds it.
    let done_a = a.task().key("done").submit(counted(&runs, 8), ());
    let done_b = b.task().key("done").submit(counted(&runs, 99), ());
    assert_eq!(((&done_a).await.unwrap(), (&done_b).await.unwrap()), (8, 8));
    assert_eq!(done_a.cancel(), CancelOutcome::CancelledAfterFinishing);
    assert_eq!((&done_b).await.unwrap(), 8);
    let again = b.task().key("done").submit(counted(&runs, 99), ());
    assert_eq!(again.await.unwrap(), 8);
    assert_eq!(runs.load(Ordering::SeqCst), 2, "one run per key");

    // Cancelled by both before it ran: the shared task is cancelled (it never runs).
    let busy_gate = Gate::new();
    let busy: Vec<_> = (0..2).map(|_| a.submit(gated(&runs, &busy_gate, 0), ())).collect();
    eventually(&client, LIMIT, "both workers are busy", || runs.load(Ordering::SeqCst) == 4).await;
    let queued_a = a.task().key("queued").submit(counted(&runs, 1), ());
    let queued_b = b.task().key("queued").submit(counted(&runs, 1), ());
    assert_eq!(queued_a.cancel(), CancelOutcome::Cancelled);
    assert_eq!(queued_b.cancel(), CancelOutcome::Cancelled);
    busy_gate.open();
    assert_eq!(a.gather(&busy).await.unwrap(), [0, 0]);
    let fresh = b.task().key("queued").submit(counted(&runs, 3), ());
    assert_eq!(fresh.await.unwrap(), 3, "a cancelled shared key computes anew");
    assert_eq!(runs.load(Ordering::SeqCst), 5, "the cancelled task never ran");
    cluster.close().await.unwrap();
}

/// (c) A shared key lives until the last client releases it: A's release (a dropped future,
/// or A's close) leaves B's value readable and findable; once B releases it too, the key
/// computes anew. Closing A cancels A's own unfinished tasks, never B's.
pub async fn a_shared_key_lives_until_the_last_client_releases_it(client: Client) {
    let cluster = cluster_on(&client);
    let (a, b) = (cluster.client(), cluster.client());
    let runs = Arc::new(AtomicUsize::new(0));

    let from_a = a.task().key("kept").submit(counted(&runs, 4), ());
    assert_eq!((&from_a).await.unwrap(), 4);
    let from_b = b.task().key("kept").submit(counted(&runs, 99), ());
    drop(from_a);
    assert_eq!((&from_b).await.unwrap(), 4, "A's release leaves B's value");
    let again = b.task().key("kept").submit(counted(&runs, 99), ());
    assert_eq!(again.await.unwrap(), 4, "B still holds the key: no new run");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    drop(from_b);
    let fresh = a.task().key("kept").submit(counted(&runs, 6), ());
    assert_eq!(fresh.await.unwrap(), 6, "released by both: computed anew");
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    // A closes while it holds a shared running task, a private one, and a finished key:
    // B's futures are untouched; A's private task is cancelled.
    let finished_a = a.task().key("finished").submit(counted(&runs, 12), ());
    assert_eq!((&finished_a).await.unwrap(), 12);
    let finished_b = b.task().key("finished").submit(counted(&runs, 99), ());
    let gate = Gate::new();
    let shared_a = a.task().key("running").submit(gated(&runs, &gate, 10), ());
    eventually(&client, LIMIT, "the shared run starts", || runs.load(Ordering::SeqCst) == 4).await;
    let shared_b = b.task().key("running").submit(gated(&runs, &gate, 99), ());
    let private_a = a.submit(gated(&runs, &gate, 11), ());
    a.close().await.unwrap();
    assert!(a.is_closed() && !b.is_closed());
    assert!(matches!(a.submit(|x: i64| x, 1).await, Err(TaskError::ClientClosed { .. })));
    gate.open();
    assert_eq!(shared_b.await.unwrap(), 10, "A's close left B's shared task running");
    assert_eq!(finished_b.await.unwrap(), 12, "A's close left B's value");
    assert_eq!((&finished_a).await.unwrap(), 12, "A's futures keep what they had");
    assert!((&shared_a).await.unwrap_err().is_cancelled());
    assert!((&private_a).await.unwrap_err().is_cancelled(), "A's close cancelled its own task");
    assert_eq!(b.submit(|x: i64| x * 2, 21).await.unwrap(), 42, "the workers serve B");
    drop(gate);
    cluster.close().await.unwrap();
    assert!(b.is_closed());
}

/// (d) A future is a dependency only for its own client's tasks (or those of a client of
/// the same cluster): another client's future is refused at once, naming it and saying what
/// to do, instead of being looked up by its id among this client's tasks (an unrelated
/// task, or none).
pub async fn a_future_of_another_client_is_refused_as_a_dependency(client: Client) {
    let cluster = cluster_on(&client);
    let (a, b) = (cluster.client(), cluster.client());
    let runs = Arc::new(AtomicUsize::new(0));
    // Ids in this client that the other clients' tasks' ids may coincide with.
    let own: Vec<_> = (0..4).map(|i| client.submit(counted(&runs, i), ())).collect();
    assert_eq!(client.gather(&own).await.unwrap(), [0, 1, 2, 3]);
    let gate = Gate::new();
    let unfinished = a.submit(gated(&runs, &gate, 7), ());
    let finished = a.submit(counted(&runs, 8), ());
    assert_eq!((&finished).await.unwrap(), 8);
    for theirs in [&unfinished, &finished] {
        let dependent = client.after(theirs).submit(|x: i64| x + 1);
        let error = dependent.await.unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, TaskError::Failed { .. }), "{error:?}");
        assert!(message.contains("another client"), "{message}");
        assert!(message.contains(&theirs.key().to_string()), "names the future: {message}");
        let pair = client.after((&own[0], theirs)).submit(|(x, y): (i64, i64)| x + y);
        assert!(pair.await.unwrap_err().to_string().contains("another client"));
    }
    // A client of the same cluster may depend on it.
    let same_cluster = b.after(&finished).submit(|x: i64| x + 1);
    assert_eq!(same_cluster.await.unwrap(), 9);
    gate.open();
    assert_eq!(unfinished.await.unwrap(), 7);
    cluster.close().await.unwrap();
}

/// The coordination primitives are the cluster's, as in Dask (one scheduler's locks, queues
/// and datasets for every client): a lock held through one client is held for the other, a
/// queue filled through one is drained through the other, a dataset one publishes the other
/// reads. Closing one client ends its own waits with [`Error::Closed`](crate::Error::Closed)
/// and refuses its later calls, while the other client's primitives work on.
pub async fn clients_of_one_cluster_share_coordination_and_a_close_ends_only_its_own_waits(
    client: Client,
) {
    let cluster = cluster_on(&client);
    let (a, b) = (cluster.client(), cluster.client());

    let held = a.lock("door").acquire().await.unwrap();
    let short = Duration::from_millis(20);
    let tried = b.lock("door").acquire_timeout(short).await.unwrap();
    assert!(tried.is_none(), "a lock held through one client is held for the other");
    drop(held);
    let taken = b.lock("door").acquire_timeout(LIMIT).await.unwrap();
    assert!(taken.is_some(), "released through one client, the other takes it");
    drop(taken);

    a.queue::<u32>("jobs").put(7).await.unwrap();
    assert_eq!(b.queue::<u32>("jobs").get_timeout(LIMIT).await.unwrap(), Some(7));

    let squared = a.submit(square, 9);
    a.publish_dataset("squares", &squared).await.unwrap();
    let seen = b.dataset::<i64>("squares").await.unwrap();
    assert_eq!(seen.await.unwrap(), 81, "a dataset published by one client is the other's");

    // B waits on an event; B's close ends that wait, and nothing of A's.
    let event_of_b = b.event("go");
    let closing = async {
        b.close().await.unwrap();
    };
    let (waited, ()) = futures::join!(event_of_b.wait(), closing);
    assert!(matches!(waited, Err(crate::Error::Closed { .. })), "{waited:?}");
    assert!(matches!(b.lock("door").acquire().await, Err(crate::Error::Closed { .. })));
    let event_of_a = a.event("go");
    event_of_a.set().await.unwrap();
    assert!(event_of_a.wait_timeout(LIMIT).await.unwrap(), "A's event works after B closed");
    assert_eq!(a.list_datasets().await.unwrap(), vec![String::from("squares")]);
    a.close().await.unwrap();
    cluster.close().await.unwrap();
}
