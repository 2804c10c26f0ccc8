//! `wait`, `as_completed` and the gather error modes, async and blocking.

use std::collections::HashSet;
use std::time::Duration;

use crate::testing::tasks::{Add, EvenOnly, Gate, Gated, Increment};
use crate::{Client, Error, ExecutorExt, GatherErrors, ReturnWhen, TaskError, TaskFuture};
use futures::StreamExt;

/// Registered tasks that give their index, except odd indices, which fail with `odd <i>`.
fn evens_succeed(client: &Client, n: i64) -> Vec<TaskFuture<i64>> {
    client.map_task::<EvenOnly>(0..n)
}

pub async fn gather_skip_returns_the_values_that_succeeded_with_their_indices(client: Client) {
    let futures = evens_succeed(&client, 7);
    let gathered = client.gather_with(&futures, GatherErrors::Skip).await.unwrap();
    let indices: Vec<usize> = gathered.iter().map(|g| g.index).collect();
    let values: Vec<i64> = gathered.iter().map(|g| g.value).collect();
    assert_eq!(indices, vec![0, 2, 4, 6]);
    assert_eq!(values, vec![0, 2, 4, 6]);
    for g in &gathered {
        assert_eq!(&g.key, futures[g.index].key());
    }
    // Raise (the default) is `gather`: the first error in input order.
    match client.gather_with(&futures, GatherErrors::default()).await {
        Err(Error::Task(TaskError::Failed { message, key })) => {
            assert_eq!(message, "odd 1");
            assert_eq!(&key, futures[1].key());
        }
        other => panic!("expected the error of item 1, got {other:?}"),
    }
    // Nothing failed: every value, in order.
    let all = client.map_task::<Add>((0..5).map(|x| (x, 0)));
    let gathered = client.gather_with(&all, GatherErrors::Skip).await.unwrap();
    assert_eq!(gathered.iter().map(|g| g.value).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
}

pub async fn wait_all_completed_waits_for_every_future_failed_or_not(client: Client) {
    let gate = Gate::new();
    let mut futures = evens_succeed(&client, 5);
    futures.push(client.submit_task::<Gated>(gate.input(100)));
    let waiting = {
        let client = client.clone();
        let futures = futures.clone();
        async move { client.wait(&futures, ReturnWhen::AllCompleted, None).await }
    };
    let (outcome, ()) = futures::join!(waiting, async move { drop(gate) });
    let outcome = outcome.unwrap();
    assert_eq!(outcome.done.len(), 6);
    assert!(outcome.not_done.is_empty());
    let done_keys: Vec<_> = outcome.done.iter().map(|f| f.key().clone()).collect();
    let input_keys: Vec<_> = futures.iter().map(|f| f.key().clone()).collect();
    assert_eq!(done_keys, input_keys, "done keeps input order");
    let failed: Vec<_> = outcome.failed().map(|(f, error)| (f.key().clone(), error)).collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(&failed[0].0, futures[1].key());
    assert!(failed[0].1.to_string().contains("odd 1"), "{}", failed[0].1);
    assert_eq!(&failed[1].0, futures[3].key());
    // No futures: nothing to wait for, in every mode.
    for mode in [ReturnWhen::AllCompleted, ReturnWhen::FirstCompleted, ReturnWhen::FirstException] {
        let empty: Vec<TaskFuture<i64>> = Vec::new();
        let outcome = client.wait(&empty, mode, None).await.unwrap();
        assert!(outcome.done.is_empty() && outcome.not_done.is_empty());
    }
}

pub async fn wait_first_completed_returns_while_the_others_are_blocked(client: Client) {
    // Two workers: the first gated task holds one, the quick task takes the other.
    let gate = Gate::new();
    let blocked_before = client.submit_task::<Gated>(gate.input(1));
    let quick = client.submit_task::<Add>((2, 18));
    let blocked_after = client.submit_task::<Gated>(gate.input(3));
    let futures = vec![blocked_before.clone(), quick.clone(), blocked_after.clone()];
    let outcome = client.wait(&futures, ReturnWhen::FirstCompleted, None).await.unwrap();
    assert_eq!(outcome.done.len(), 1);
    assert_eq!(outcome.done[0].key(), quick.key());
    let not_done: Vec<_> = outcome.not_done.iter().map(|f| f.key().clone()).collect();
    assert_eq!(not_done, vec![blocked_before.key().clone(), blocked_after.key().clone()]);
    gate.open();
    assert_eq!(client.gather(&futures).await.unwrap(), vec![1, 20, 3]);
}

pub async fn wait_first_exception_returns_as_soon_as_one_fails(client: Client) {
    // Two workers: the gated task holds one, the failing task runs on the other.
    let gate = Gate::new();
    let blocked = vec![client.submit_task::<Gated>(gate.input(0))];
    let failing = client.submit_task::<EvenOnly>(1);
    let mut futures = blocked.clone();
    futures.insert(0, failing.clone());
    let outcome = client.wait(&futures, ReturnWhen::FirstException, None).await.unwrap();
    assert_eq!(outcome.done.len(), 1);
    assert_eq!(outcome.done[0].key(), failing.key());
    assert_eq!(outcome.not_done.len(), 1, "the blocked task is still running");
    let failed: Vec<_> = outcome.failed().collect();
    assert_eq!(failed.len(), 1);
    match &failed[0].1 {
        TaskError::Failed { key, message } => {
            assert_eq!(key, failing.key());
            assert_eq!(message, "odd 1");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    // Nothing was cancelled: the blocked task finishes once released.
    gate.open();
    assert_eq!(client.gather(&blocked).await.unwrap(), vec![0]);
    // With no failure, FirstException waits for everything.
    let fine = client.map_task::<Add>((0..20).map(|x| (x, 1)));
    let outcome = client.wait(&fine, ReturnWhen::FirstException, None).await.unwrap();
    assert_eq!(outcome.done.len(), 20);
    assert!(outcome.not_done.is_empty());
    assert_eq!(outcome.failed().count(), 0);
}

pub async fn wait_timeout_gives_timeout_and_cancels_nothing(client: Client) {
    let gate = Gate::new();
    let blocked = client.submit_task::<Gated>(gate.input(42));
    let quick = client.submit_task::<Add>((7, 0));
    let futures = vec![quick.clone(), blocked.clone()];
    let limit = Duration::from_millis(20);
    match client.wait(&futures, ReturnWhen::AllCompleted, Some(limit)).await {
        Err(error @ Error::Timeout { after }) => {
            assert_eq!(after, limit);
            assert!(error.to_string().contains("the tasks keep running"), "{error}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(!blocked.is_done());
    gate.open();
    // The timed-out wait left everything in place: the task still gives its value.
    let outcome =
        client.wait(&futures, ReturnWhen::AllCompleted, Some(Duration::from_secs(30))).await;
    assert_eq!(outcome.unwrap().done.len(), 2);
    assert_eq!(blocked.await.unwrap(), 42);
    assert_eq!(quick.await.unwrap(), 7);
}

pub async fn as_completed_yields_ten_thousand_exactly_once_with_additions(client: Client) {
    const INITIAL: i64 = 5_000;
    const TOTAL: i64 = 10_000;
    let mut completed = client.as_completed(client.map_task::<Add>((0..INITIAL).map(|x| (x, 0))));
    let mut next_to_add = INITIAL;
    let mut seen = Vec::with_capacity(TOTAL as usize);
    let mut keys = HashSet::new();
    while let Some(future) = completed.next().await {
        assert!(future.is_done(), "a yielded future is done");
        assert!(keys.insert(future.key().clone()), "{} was yielded twice", future.key());
        seen.push(future.await.unwrap());
        if next_to_add < TOTAL {
            completed.add(client.submit_task::<Add>((next_to_add, 0)));
            next_to_add += 1;
        }
    }
    assert!(completed.is_empty());
    seen.sort_unstable();
    assert_eq!(seen, (0..TOTAL).collect::<Vec<_>>(), "every future exactly once");
    // A stream over nothing ends at once.
    let mut nothing = client.as_completed(Vec::<TaskFuture<i64>>::new());
    assert!(nothing.next().await.is_none());
}

/// `as_completed` yields in the order the tasks finish, not the order given: of two gated
/// tasks, the second's gate is opened first, and a dependent of the first comes last, even
/// when it has finished too by the time the stream is asked again (`local_workers`).
pub async fn as_completed_follows_completion_order(client: Client) {
    let gates: Vec<Gate> = (0..2).map(|_| Gate::new()).collect();
    let first = client.submit_task::<Gated>(gates[0].input(0));
    let second = client.submit_task::<Gated>(gates[1].input(1));
    let last = client.after(&first).submit_task::<Increment>();
    let (second_done, last_done) = (second.clone(), last.clone());
    let mut completed = client.as_completed(vec![first, second, last]);
    assert_eq!(completed.len(), 3);
    let mut order = Vec::new();
    // The second task is done before the stream first looks: it is yielded at once, before
    // the stream has looked at the tasks given after it.
    gates[1].open();
    assert_eq!(second_done.await, Ok(1));
    order.push(completed.next().await.expect("the second task").await.unwrap());
    // The first task and its dependent both finish before the stream is asked again: the
    // dependent still comes after its input.
    gates[0].open();
    assert_eq!(last_done.await, Ok(1));
    order.push(completed.next().await.expect("the first task").await.unwrap());
    order.push(completed.next().await.expect("the dependent").await.unwrap());
    assert_eq!(order, vec![1, 0, 1]);
    assert!(completed.next().await.is_none());
}

pub async fn as_completed_with_results_gives_values_and_errors(client: Client) {
    let mut all = evens_succeed(&client, 6);
    let mut results = client.as_completed(all.clone()).with_results();
    let mut seen = Vec::new();
    while let Some((future, result)) = results.next().await {
        let index = all.iter().position(|f| f.key() == future.key()).unwrap() as i64;
        match result {
            Ok(value) => assert_eq!(value, index),
            Err(TaskError::Failed { key, message }) => {
                assert_eq!(&key, future.key());
                assert_eq!(message, format!("odd {index}"));
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
        seen.push(index);
        // Adding works on this form too.
        if index == 0 {
            // A lazy iterator that submits, and looks at the stream, while it is added.
            results.update((6..8).map(|i| {
                let _pending = results.len(); // must not deadlock with the add in progress
                let added = client.submit_task::<Add>((i, 0));
                all.push(added.clone());
                added
            }));
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..8).collect::<Vec<_>>());
}

/// `batches` yields everything done at once, then each task as it finishes on its own
/// (`local_workers`: gated tasks finish one by one as the case opens their gates).
pub async fn as_completed_batches_yield_everything_already_done(client: Client) {
    let quick = client.map_task::<Add>((0..5).map(|x| (x, 0)));
    client.wait(&quick, ReturnWhen::AllCompleted, None).await.unwrap();
    let gates: Vec<Gate> = (0..3).map(|_| Gate::new()).collect();
    let blocked: Vec<_> = gates
        .iter()
        .zip(10..)
        .map(|(gate, i)| client.submit_task::<Gated>(gate.input(i)))
        .collect();
    let mut batches = client.as_completed(quick.iter().chain(&blocked).cloned()).batches();
    let first = batches.next().await.unwrap();
    let mut values = client.gather(&first).await.unwrap();
    values.sort_unstable();
    assert_eq!(values, vec![0, 1, 2, 3, 4], "the first batch is everything done");
    // Each released task comes alone, as nothing else is done.
    for (gate, value) in gates.iter().zip(10..) {
        gate.open();
        let batch = batches.next().await.unwrap();
        assert_eq!(client.gather(&batch).await.unwrap(), vec![value]);
    }
    assert!(batches.next().await.is_none());
    assert!(blocked.iter().all(TaskFuture::is_done));
    // With results: every failure and value of what is done, in one batch.
    let mixed = evens_succeed(&client, 6);
    client.wait(&mixed, ReturnWhen::AllCompleted, None).await.unwrap();
    let mut batches = client.as_completed(mixed).with_results().batches();
    let batch = batches.next().await.unwrap();
    let mut values: Vec<i64> = batch.iter().filter_map(|(_, r)| r.as_ref().ok().copied()).collect();
    values.sort_unstable();
    assert_eq!(values, vec![0, 2, 4]);
    let mut messages: Vec<String> = batch
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().map(std::string::ToString::to_string))
        .collect();
    messages.sort_unstable();
    assert_eq!(messages.len(), 3);
    assert!(messages.iter().all(|m| m.contains("failed: odd")), "{messages:?}");
    assert!(batches.next().await.is_none());
}

pub async fn as_completed_adder_adds_from_another_thread(client: Client) {
    let gate = Gate::new();
    let mut completed = client.as_completed(vec![client.submit_task::<Gated>(gate.input(0))]);
    let adder = completed.adder();
    let producer = client.clone();
    // Adds 100 futures, then lets the first task end: the stream cannot end before.
    let thread = std::thread::spawn(move || {
        for i in 1..=100 {
            adder.add(producer.submit_task::<Add>((i, 0)));
        }
        drop(gate);
    });
    let mut values = Vec::new();
    while let Some(future) = completed.next().await {
        values.push(future.await.unwrap());
    }
    thread.join().unwrap();
    values.sort_unstable();
    assert_eq!(values, (0..=100).collect::<Vec<_>>());
}

/// The blocking twins of `gather_with`, `wait` and `as_completed` (as an iterator, adding
/// while iterating, with results, in batches) work from a plain thread, and refuse inside
/// async code (`local_workers`: a gated task stays unfinished until the thread opens it).
pub async fn blocking_twins_work_from_a_plain_thread(client: Client) {
    let thread_client = client.clone();
    let (finished, thread_finished) = futures::channel::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        // Reported when the thread ends, even by a failed assertion.
        let _finished = finished;
        let client = thread_client;
        let blocking = client.blocking();
        // gather_with
        let futures = evens_succeed(&client, 4);
        let kept = blocking.gather_with(&futures, GatherErrors::Skip).unwrap();
        assert_eq!(kept.iter().map(|g| (g.index, g.value)).collect::<Vec<_>>(), [(0, 0), (2, 2)]);
        // wait, with a timeout that passes and one that does not
        let gate = Gate::new();
        let blocked = client.submit_task::<Gated>(gate.input(5));
        let both = vec![futures[1].clone(), blocked.clone()];
        let outcome = blocking.wait(&both, ReturnWhen::FirstException, None).unwrap();
        assert_eq!(outcome.done.len(), 1);
        let timed_out =
            blocking.wait(&both, ReturnWhen::AllCompleted, Some(Duration::from_millis(10)));
        assert!(matches!(timed_out, Err(Error::Timeout { .. })), "{timed_out:?}");
        gate.open();
        let outcome = blocking.wait(&both, ReturnWhen::AllCompleted, None).unwrap();
        assert_eq!(outcome.done.len(), 2);
        // as_completed as an Iterator, adding while iterating
        let mut completed = blocking.as_completed(client.map_task::<Add>((0..50).map(|x| (x, 0))));
        let mut values = Vec::new();
        while let Some(future) = completed.next() {
            let value = future.unwrap().result().unwrap();
            values.push(value);
            if value < 50 {
                completed.add(client.submit_task::<Add>((value, 50)));
            }
        }
        values.sort_unstable();
        assert_eq!(values, (0..100).collect::<Vec<_>>());
        // with_results and batches
        let results: Vec<_> = blocking
            .as_completed(evens_succeed(&client, 4))
            .with_results()
            .map(Result::unwrap)
            .collect();
        assert_eq!(results.len(), 4);
        assert_eq!(results.iter().filter(|(_, result)| result.is_err()).count(), 2);
        let batched: usize = blocking
            .as_completed(client.map_task::<Add>((0..30).map(|x| (x, 0))))
            .batches()
            .map(|b| b.unwrap().len())
            .sum();
        assert_eq!(batched, 30);
        let result_batches: Vec<_> = blocking
            .as_completed(evens_succeed(&client, 4))
            .with_results()
            .batches()
            .map(Result::unwrap)
            .collect();
        let n_ok = result_batches.iter().flatten().filter(|(_, result)| result.is_ok()).count();
        assert_eq!(n_ok, 2);
    });
    // Await rather than join: on a current-thread runtime, blocking here would stall the
    // async tasks the thread waits for.
    let _ = thread_finished.await;
    thread.join().unwrap();

    // Inside async code the blocking twins refuse instead of stalling the runtime.
    let (report, reported) = futures::channel::oneshot::channel();
    let inside = client.clone();
    let future = client.submit_task::<Add>((1, 0));
    client
        .executor()
        .spawn_task(async move {
            let futures = vec![future];
            let wait = inside.blocking().wait(&futures, ReturnWhen::AllCompleted, None).map(drop);
            let gather = inside.blocking().gather_with(&futures, GatherErrors::Skip).map(drop);
            let next = inside.blocking().as_completed(futures).next().map(|item| item.map(drop));
            let _ = report.send((wait, gather, next));
        })
        .unwrap();
    let (wait, gather, next) = reported.await.unwrap();
    assert!(matches!(wait, Err(Error::BlockingInAsyncContext)), "{wait:?}");
    assert!(matches!(gather, Err(Error::BlockingInAsyncContext)), "{gather:?}");
    assert!(matches!(next, Some(Err(Error::BlockingInAsyncContext))), "{next:?}");
}

/// Runs `work` on a plain thread (where blocking calls are allowed) and awaits its answer
/// without blocking the executor's thread.
async fn on_plain_thread<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
    let (report, answer) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        let _ = report.send(work());
    });
    answer.await.expect("the thread reports")
}

/// Issue 13: `future.result_timeout(d)` gives `Error::Timeout` after `d` and cancels
/// nothing; inside async code it is refused like every blocking call.
pub async fn result_timeout_gives_timeout_and_cancels_nothing(client: Client) {
    let gate = Gate::new();
    let blocked = client.submit_task::<Gated>(gate.input(5));
    let inside = blocked.clone();
    let timed_out = on_plain_thread(move || inside.result_timeout(Duration::from_millis(10))).await;
    assert!(matches!(timed_out, Err(Error::Timeout { .. })), "{timed_out:?}");
    assert!(!blocked.is_done(), "nothing was cancelled");
    let (report, reported) = futures::channel::oneshot::channel();
    let inside = blocked.clone();
    client
        .executor()
        .spawn_task(async move {
            let _ = report.send(inside.result_timeout(Duration::from_secs(1)));
        })
        .unwrap();
    let refused = reported.await.unwrap();
    assert!(matches!(refused, Err(Error::BlockingInAsyncContext)), "{refused:?}");
    gate.open();
    let inside = blocked.clone();
    let value = on_plain_thread(move || inside.result_timeout(Duration::from_secs(30))).await;
    assert_eq!(value.unwrap(), 5);
    let failing = client.submit_task::<EvenOnly>(1);
    let error = on_plain_thread(move || failing.result_timeout(Duration::from_secs(30))).await;
    assert!(matches!(error, Err(Error::Task(TaskError::Failed { .. }))), "{error:?}");
}

/// Issue 13: `future.error()` reads the error without consuming the handle or waiting.
pub async fn error_reads_the_error_without_waiting_or_consuming(client: Client) {
    let gate = Gate::new();
    let blocked = client.submit_task::<Gated>(gate.input(5));
    assert!(blocked.error().is_none(), "no outcome yet");
    let failing = client.submit_task::<EvenOnly>(1);
    assert!((&failing).await.is_err());
    for _ in 0..2 {
        match failing.error() {
            Some(TaskError::Failed { key, message }) => {
                assert_eq!(&key, failing.key());
                assert_eq!(message, "odd 1");
            }
            other => panic!("expected Failed, got {other:?}"),
        }
    }
    gate.open();
    assert_eq!((&blocked).await.unwrap(), 5);
    assert!(blocked.error().is_none(), "a value is no error");
    blocked.cancel();
    assert!(blocked.error().is_some_and(|error| error.is_cancelled()));
}

/// Issue 13: `on_done(f)` calls `f` once with the finished future, on the executor (not on
/// the caller's thread), for tasks done already too, and survives a panicking callback.
pub async fn on_done_calls_back_once_when_the_task_is_done(client: Client) {
    let gate = Gate::new();
    let blocked = client.submit_task::<Gated>(gate.input(5));
    let (report, mut reports) = futures::channel::mpsc::unbounded();
    thread_local! {
        static IN_ON_DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    // Registers a callback that reports the value it saw and whether it ran inside the
    // `on_done` call itself (it must not).
    let register = |future: &TaskFuture<i64>, name: &'static str| {
        let report = report.clone();
        IN_ON_DONE.with(|inside| inside.set(true));
        future
            .on_done(move |done| {
                let inside = IN_ON_DONE.with(std::cell::Cell::get);
                let _ = report.unbounded_send((
                    name,
                    done.try_result().map(std::result::Result::ok),
                    inside,
                ));
            })
            .unwrap();
        IN_ON_DONE.with(|inside| inside.set(false));
    };
    register(&blocked, "blocked");
    blocked.on_done(|_| panic!("a callback that panics")).unwrap();
    let finished = client.submit_task::<Add>((1, 1));
    assert_eq!((&finished).await.unwrap(), 2);
    register(&finished, "finished");
    assert_eq!(reports.next().await, Some(("finished", Some(Some(2)), false)));
    gate.open();
    assert_eq!(reports.next().await, Some(("blocked", Some(Some(5)), false)));
    drop(report);
    // Both callbacks ran once and let go of their senders: the channel ends.
    assert_eq!(reports.next().await, None);
    assert_eq!(client.submit_task::<Add>((3, 0)).await.unwrap(), 3, "the client keeps working");
}

/// Issue 13: `as_completed(..).timeout(d)` yields what finished, then one `Error::Timeout`,
/// then ends, cancelling nothing; the blocking twin does the same.
pub async fn as_completed_timeout_yields_what_finished_then_a_timeout(client: Client) {
    let gate = Gate::new();
    let stuck = client.submit_task::<Gated>(gate.input(5));
    let quick = client.submit_task::<Add>((1, 0));
    (&quick).await.unwrap(); // done before the clock starts: the first item is certain
    let mut completed =
        client.as_completed(vec![stuck.clone(), quick]).timeout(Duration::from_millis(50));
    let first = completed.next().await.unwrap().unwrap();
    assert_eq!(first.await.unwrap(), 1);
    match completed.next().await {
        Some(Err(Error::Timeout { after })) => assert_eq!(after, Duration::from_millis(50)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(completed.next().await.is_none(), "the stream ends after its timeout");
    let pending = completed.into_pending();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].key(), stuck.key());
    assert!(!stuck.is_done(), "nothing was cancelled");

    // A stream whose futures all finish in time ends without a timeout.
    let all = client.map_task::<Add>((0..5).map(|x| (x, x)));
    let items: Vec<_> =
        client.as_completed(all).timeout(Duration::from_secs(30)).collect::<Vec<_>>().await;
    assert_eq!(items.len(), 5);
    assert!(items.iter().all(Result::is_ok));

    let blocking_client = client.clone();
    let waiting = stuck.clone();
    let (first, second) = on_plain_thread(move || {
        let mut completed = blocking_client
            .blocking()
            .as_completed(vec![waiting])
            .timeout(Duration::from_millis(10));
        (completed.next(), completed.next())
    })
    .await;
    assert!(matches!(first, Some(Err(Error::Timeout { .. }))), "{first:?}");
    assert!(second.is_none());
    gate.open();
    assert_eq!(stuck.await.unwrap(), 5);
}
