//! Cases written with registered tasks only, so that they run on every transport: in-process
//! and on workers fed through Redis (closures cannot cross machines).

use std::time::Duration;

use crate::testing::tasks::{Add, EvenOnly, Explode, FailsOnce, SleepThen, Sum};
use crate::{CancelOutcome, Client, Error, RetryOutcome, ReturnWhen, TaskError};
use futures::StreamExt;

/// An even number no other case uses, for [`FailsOnce`].
pub(crate) fn fresh_number() -> i64 {
    static NEXT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1_000);
    NEXT.fetch_add(2, std::sync::atomic::Ordering::SeqCst)
}

pub async fn registered_task_gives_its_value(client: Client) {
    assert_eq!(client.submit_task::<Add>((40, 2)).await.unwrap(), 42);
}

pub async fn map_task_then_gather_keeps_order(client: Client) {
    // Later items finish first: gather must still return input order.
    let futures = client.map_task::<SleepThen>((0..10).map(|i| (2 * (10 - i) as u64, i)));
    assert_eq!(client.gather(&futures).await.unwrap(), (0..10).collect::<Vec<i64>>());
    let empty = client.map_task::<Add>(Vec::new());
    assert!(empty.is_empty());
    assert_eq!(client.gather(&empty).await.unwrap(), Vec::<i64>::new());
}

pub async fn two_thousand_registered_tasks_all_return(client: Client) {
    let futures = client.map_task::<Add>((0..2_000).map(|i| (i, i)));
    let values = client.gather(&futures).await.unwrap();
    assert_eq!(values.len(), 2_000);
    for (i, value) in values.iter().enumerate() {
        assert_eq!(*value, 2 * i as i64, "task {i}");
    }
}

pub async fn registered_errors_and_panics_reach_the_future(client: Client) {
    match client.submit_task::<EvenOnly>(3).await {
        Err(TaskError::Failed { key, message }) => {
            assert_eq!(message, "odd 3");
            assert!(key.to_string().starts_with("EvenOnly-"), "{key}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    match client.submit_task::<Explode>("boom in a registered task".into()).await {
        Err(TaskError::Panicked { message, .. }) => {
            assert_eq!(message, "boom in a registered task");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    // The workers survived.
    let after = client.map_task::<Add>((0..8).map(|i| (i, 1)));
    assert_eq!(client.gather(&after).await.unwrap(), (1..9).collect::<Vec<i64>>());
}

pub async fn gather_raises_the_first_registered_error_in_input_order(client: Client) {
    let futures = client.map_task::<EvenOnly>(0..6);
    match client.gather(&futures).await {
        Err(Error::Task(TaskError::Failed { message, .. })) => assert_eq!(message, "odd 1"),
        other => panic!("expected the error of item 1, got {other:?}"),
    }
}

pub async fn registered_dependents_receive_their_dependencies_outputs(client: Client) {
    let a = client.submit_task::<Add>((1, 2));
    let b = client.submit_task::<Add>((3, 4));
    let pair = client.after((&a, &b)).submit_task::<Add>();
    let parts = client.map_task::<Add>((0..5).map(|i| (i, i)));
    let total = client.after(&parts).submit_task::<Sum>();
    let again = client.after(&total).submit_task::<Sum>();
    assert_eq!(pair.await.unwrap(), 10);
    assert_eq!(again.await.unwrap(), 20);
    let broken = client.submit_task::<EvenOnly>(1);
    match client.after(&broken).submit_task::<Sum>().await {
        Err(TaskError::DependencyFailed { root, .. }) => {
            assert!(matches!(*root, TaskError::Failed { ref message, .. } if message == "odd 1"));
        }
        other => panic!("expected DependencyFailed, got {other:?}"),
    }
}

pub async fn registered_retries_rerun_and_then_give_up(client: Client) {
    let failing = client.task().retries(2).submit_task::<EvenOnly>(5);
    match failing.await {
        Err(TaskError::Failed { message, .. }) => {
            assert_eq!(message, "odd 5 (gave up after 3 attempts)");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

pub async fn wait_and_as_completed_work_on_registered_tasks(client: Client) {
    let slow = client.submit_task::<SleepThen>((300, 1));
    let fast = client.submit_task::<SleepThen>((0, 2));
    let futures = vec![slow.clone(), fast.clone()];
    let outcome = client.wait(&futures, ReturnWhen::FirstCompleted, None).await.unwrap();
    assert!(!outcome.done.is_empty());
    let failing = client.submit_task::<EvenOnly>(7);
    let mixed = vec![slow.clone(), failing];
    let outcome = client.wait(&mixed, ReturnWhen::FirstException, None).await.unwrap();
    assert!(outcome.done.iter().any(|future| future.try_result().is_some_and(|r| r.is_err())));
    let mut values: Vec<i64> = client
        .as_completed(client.map_task::<Add>((0..20).map(|i| (i, 0))))
        .then(|future| async move { future.await.unwrap() })
        .collect()
        .await;
    values.sort_unstable();
    assert_eq!(values, (0..20).collect::<Vec<i64>>());
}

pub async fn released_registered_tasks_are_forgotten(client: Client) {
    let futures = client.map_task::<Add>((0..100).map(|i| (i, 0)));
    assert_eq!(client.gather(&futures).await.unwrap().len(), 100);
    drop(futures);
    let stats_client = client.clone();
    super::eventually(&client, Duration::from_secs(10), "release of 100 tasks", move || {
        stats_client.stats().tasks.held() == 0
    })
    .await;
}

pub async fn registered_tasks_from_a_plain_thread_with_the_blocking_view(client: Client) {
    // The thread's answer is awaited, not joined: joining would block this executor's thread,
    // which may be the one driving the transport's I/O (a current-thread runtime).
    let (report, answer) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        let futures = client.map_task::<Add>((0..50).map(|i| (i, 1)));
        let values = client.blocking().gather(&futures).unwrap();
        let single = client.submit_task::<Add>((2, 2)).result().unwrap();
        let _ = report.send((values, single));
    });
    let (values, single) = answer.await.expect("the thread reports");
    assert_eq!(values, (1..51).collect::<Vec<i64>>());
    assert_eq!(single, 4);
}

pub async fn close_cancels_what_is_unfinished_and_later_submits(client: Client) {
    let running = client.submit_task::<SleepThen>((200, 1));
    client.close().await.unwrap();
    client.close().await.unwrap();
    assert!(client.is_closed());
    let error = running.await.unwrap_err();
    assert!(error.is_cancelled(), "{error:?}");
    match client.submit_task::<Add>((1, 1)).await {
        Err(TaskError::ClientClosed { operation, .. }) => assert_eq!(operation, "submit"),
        other => panic!("expected ClientClosed, got {other:?}"),
    }
    let mapped = client.map_task::<Add>([(1, 1)]);
    assert!(matches!((&mapped[0]).await, Err(TaskError::ClientClosed { .. })));
}

pub async fn cancelling_a_registered_task_cancels_it_and_its_dependents(client: Client) {
    let slow = client.submit_task::<SleepThen>((200, 1));
    let dependent = client.after(&slow).submit_task::<Sum>();
    slow.cancel();
    match (&slow).await {
        Err(TaskError::Cancelled { key, reason }) => {
            assert_eq!(&key, slow.key());
            assert!(reason.contains("cancelled by the user"), "{reason}");
        }
        other => panic!("expected Cancelled, got {other:?}"),
    }
    let error = dependent.await.unwrap_err();
    assert!(error.is_cancelled(), "{error:?}");
    // The client keeps working.
    assert_eq!(client.submit_task::<Add>((1, 1)).await.unwrap(), 2);
}

/// Issue 13, defect 2, on every transport: retrying a dependent re-runs its failed
/// dependency first; a failed task keeps a dependency whose handle was dropped.
pub async fn retrying_a_registered_dependent_reruns_its_failed_dependency(client: Client) {
    let number = fresh_number();
    let flaky = client.submit_task::<FailsOnce>(number);
    let dependent = client.after(&flaky).submit_task::<EvenOnly>();
    match (&dependent).await {
        Err(TaskError::DependencyFailed { root, .. }) => {
            assert!(root.to_string().contains("first run of"), "{root}");
        }
        other => panic!("expected DependencyFailed, got {other:?}"),
    }
    assert_eq!(dependent.retry(), RetryOutcome::Rerunning);
    assert_eq!((&dependent).await.unwrap(), number);
    assert_eq!(flaky.await.unwrap(), number);

    let number = fresh_number();
    let input = client.submit_task::<Add>((number, 0));
    let failing = client.after(&input).submit_task::<FailsOnce>();
    drop(input);
    assert!((&failing).await.is_err());
    assert_eq!(failing.retry(), RetryOutcome::Rerunning);
    assert_eq!(failing.await.unwrap(), number, "the input was kept for the retry");
}

/// Issue 13, defect 3, on every transport: cancelling a finished task cancels it and its
/// dependents, and later dependents are cancelled at once.
pub async fn cancelling_a_finished_registered_task_cancels_it_and_its_dependents(client: Client) {
    let a = client.submit_task::<Add>((1, 2));
    let b = client.after((&a, &a)).submit_task::<Add>();
    assert_eq!((&b).await.unwrap(), 6);
    assert_eq!(a.cancel(), CancelOutcome::CancelledAfterFinishing);
    assert!((&a).await.unwrap_err().is_cancelled());
    match (&b).await {
        Err(TaskError::Cancelled { reason, .. }) => {
            assert!(reason.contains(&a.key().to_string()), "{reason}");
        }
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert_eq!(b.cancel(), CancelOutcome::AlreadyCancelled);
    let late = client.after((&a, &a)).submit_task::<Add>();
    assert!(late.await.unwrap_err().is_cancelled());
    drop((a, b));
    let stats_client = client.clone();
    super::eventually(&client, Duration::from_secs(10), "release", move || {
        stats_client.stats().tasks.held() == 0
    })
    .await;
    assert_eq!(client.submit_task::<Add>((1, 1)).await.unwrap(), 2, "the client keeps working");
}
