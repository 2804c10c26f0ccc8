//! Actors (`Client::actor`): calls run one at a time in call order and keep the actor's
//! state; many concurrent callers never overlap; a panicking call fails alone; dropping the
//! last handle runs the pending calls, then releases the state; handles reach tasks, and a
//! task may depend on a call. The actor lives in the client's process on every transport,
//! so the cases that call it only from the case body need no capability; those that submit
//! closures holding a handle need `closures`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::{Client, ExecutorExt, TaskError, TaskFuture};

/// How long any one wait of these cases may take.
const LIMIT: Duration = Duration::from_secs(30);

/// Awaits `future` with the [`LIMIT`].
async fn within<T: Clone + Send + Sync + 'static>(
    client: &Client,
    future: TaskFuture<T>,
) -> Result<T, TaskError> {
    match client.executor().timeout(LIMIT, future).await {
        Ok(outcome) => outcome,
        Err(_) => panic!("an actor call did not finish within {LIMIT:?}"),
    }
}

pub async fn actor_calls_run_in_call_order_and_keep_state(client: Client) {
    let log = client.actor(Vec::<u32>::new).expect("place the actor");
    let pushes: Vec<TaskFuture<usize>> = (0..100)
        .map(|i| {
            log.call(move |log| {
                log.push(i);
                log.len()
            })
        })
        .collect();
    let lengths = within(&client, log.call(|log| log.clone())).await.unwrap();
    assert_eq!(lengths, (0..100).collect::<Vec<_>>(), "calls run in the order they were made");
    for (i, push) in pushes.into_iter().enumerate() {
        assert_eq!(within(&client, push).await.unwrap(), i + 1, "each call saw the ones before");
    }
    assert!(log.key().to_string().starts_with("Vec-"), "{}", log.key());
}

pub async fn actor_calls_from_many_callers_never_overlap(client: Client) {
    struct Account {
        balance: u64,
        inside: Arc<AtomicBool>,
    }
    let inside = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let state_flag = Arc::clone(&inside);
    let account =
        client.actor(move || Account { balance: 0, inside: state_flag }).expect("place the actor");
    // Eight callers on eight threads, each making 200 calls as fast as it can.
    let (done, finished) = flume::unbounded();
    for _ in 0..8 {
        let account = account.clone();
        let overlaps = Arc::clone(&overlaps);
        let done = done.clone();
        std::thread::spawn(move || {
            let calls: Vec<TaskFuture<()>> = (0..200)
                .map(|_| {
                    let overlaps = Arc::clone(&overlaps);
                    account.call(move |account| {
                        if account.inside.swap(true, Ordering::SeqCst) {
                            overlaps.fetch_add(1, Ordering::SeqCst);
                        }
                        account.balance += 1;
                        account.inside.store(false, Ordering::SeqCst);
                    })
                })
                .collect();
            let _ = done.send(calls);
        });
    }
    drop(done);
    let mut calls = Vec::new();
    for _ in 0..8 {
        let batch = client.executor().timeout(LIMIT, finished.recv_async()).await;
        calls.extend(batch.expect("every caller made its calls").expect("a caller's calls"));
    }
    for call in calls {
        within(&client, call).await.unwrap();
    }
    assert_eq!(within(&client, account.call(|account| account.balance)).await.unwrap(), 1600);
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two calls ran at once");
    assert!(!inside.load(Ordering::SeqCst));
}

pub async fn a_panic_in_an_actor_call_fails_that_call_and_the_actor_goes_on(client: Client) {
    let counter = client.actor(|| 0_i64).expect("place the actor");
    let before = counter.call(|n| {
        *n += 1;
        *n
    });
    let broken = counter.call(|n| -> i64 {
        *n += 10;
        panic!("the call gave up");
    });
    let after = counter.call(|n| {
        *n += 100;
        *n
    });
    assert_eq!(within(&client, before).await.unwrap(), 1);
    match within(&client, broken.clone()).await {
        Err(TaskError::Panicked { key, message }) => {
            assert_eq!(&key, broken.key());
            assert!(message.contains("the call gave up"), "{message}");
            assert!(message.contains(&counter.key().to_string()), "names the actor: {message}");
        }
        other => panic!("expected the call to panic, got {other:?}"),
    }
    assert_eq!(within(&client, after).await.unwrap(), 111, "the state is as the panic left it");

    let unmade = client.actor(|| -> u8 { panic!("no configuration") }).expect("place the actor");
    match within(&client, unmade.call(|n| *n)).await {
        Err(TaskError::Failed { message, .. }) => {
            assert!(message.contains("constructor panicked (no configuration)"), "{message}");
        }
        other => panic!("expected a failed call, got {other:?}"),
    }
}

pub async fn dropping_the_last_actor_handle_runs_pending_calls_then_releases_it(client: Client) {
    /// Says when it is dropped.
    struct Tracked {
        calls: u32,
        dropped: flume::Sender<u32>,
    }
    impl Drop for Tracked {
        fn drop(&mut self) {
            let _ = self.dropped.send(self.calls);
        }
    }
    let (dropped, released) = flume::unbounded();
    let actor = client.actor(move || Tracked { calls: 0, dropped }).expect("place the actor");
    let copy = actor.clone();
    let pending: Vec<TaskFuture<u32>> = (0..50)
        .map(|_| {
            actor.call(|state| {
                state.calls += 1;
                state.calls
            })
        })
        .collect();
    drop(actor);
    assert!(released.is_empty(), "a handle is left");
    drop(copy);
    let calls = client.executor().timeout(LIMIT, released.recv_async()).await;
    assert_eq!(calls.expect("released in time").unwrap(), 50, "the pending calls ran first");
    for (i, call) in pending.into_iter().enumerate() {
        assert_eq!(within(&client, call).await.unwrap(), i as u32 + 1);
    }
}

pub async fn a_pending_actor_call_can_be_cancelled(client: Client) {
    let (open, gate) = flume::bounded::<()>(1);
    let actor = client.actor(|| 0_u32).expect("place the actor");
    let (started, running) = flume::bounded::<()>(1);
    let blocker = actor.call(move |n| {
        let _ = started.send(());
        // The runner is this actor's alone: blocking it holds only the actor's later calls.
        let _ = gate.recv_timeout(LIMIT);
        *n += 1;
        *n
    });
    let cancelled = actor.call(|n| {
        *n += 10;
        *n
    });
    let later = actor.call(|n| {
        *n += 100;
        *n
    });
    let waited = client.executor().timeout(LIMIT, running.recv_async()).await;
    waited.expect("the first call started").unwrap();
    assert_eq!(cancelled.cancel(), crate::CancelOutcome::Cancelled);
    open.send(()).unwrap();
    assert_eq!(within(&client, blocker).await.unwrap(), 1);
    assert!(matches!(within(&client, cancelled).await, Err(TaskError::Cancelled { .. })));
    assert_eq!(within(&client, later).await.unwrap(), 101, "the cancelled call never ran");
}

pub async fn an_actor_call_after_close_gives_a_clear_error(client: Client) {
    let actor = client.actor(|| 1_u8).expect("place the actor");
    client.close().await.unwrap();
    match within(&client, actor.call(|n| *n)).await {
        Err(TaskError::ClientClosed { .. }) => {}
        other => panic!("expected ClientClosed, got {other:?}"),
    }
    let refused = client.actor(|| 1_u8).unwrap_err();
    assert!(refused.to_string().contains("closed"), "{refused}");
}

pub async fn tasks_call_an_actor_and_depend_on_its_calls(client: Client) {
    let counter = client.actor(|| 0_u64).expect("place the actor");
    // Blocking bodies that hold a handle wait for their calls through their context (which
    // lends their worker meanwhile).
    let adds: Vec<TaskFuture<u64>> = (1..=10_u64)
        .map(|by| {
            let counter = counter.clone();
            client.try_submit_with_context(
                move |context: &crate::TaskContext, by: u64| {
                    context.result(&counter.call(move |n| {
                        *n += by;
                        *n
                    }))
                },
                by,
            )
        })
        .collect();
    // Async bodies await theirs.
    let from_async = {
        let counter = counter.clone();
        client.submit_async(
            // The call's future is the body's future: the task ends with the call.
            move |by: u64| counter.call(move |n| *n * by),
            2,
        )
    };
    for add in adds {
        within(&client, add).await.unwrap();
    }
    let total = within(&client, counter.call(|n| *n)).await.unwrap();
    assert_eq!(total, 55);
    let doubled = within(&client, from_async).await.unwrap().unwrap();
    assert!(doubled % 2 == 0 && doubled <= 110, "{doubled}");
    // A task depending on a call waits for it and reads its value.
    let read = counter.call(|n| *n + 1);
    let dependent = client.after(&read).submit(|n: u64| n * 2);
    assert_eq!(within(&client, dependent).await.unwrap(), 112);
    let failing = counter.call(|_| -> u64 { panic!("no value") });
    let after_failing = client.after(&failing).submit(|n: u64| n);
    let error = within(&client, after_failing).await.unwrap_err();
    assert!(error.to_string().contains("no value"), "{error}");
}
