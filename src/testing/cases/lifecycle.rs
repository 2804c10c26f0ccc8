use std::time::Duration;

use crate::testing::tasks::{Add, EvenOnly};
use crate::{Client, Error, TaskError};

use super::{eventually, hold_every_worker};

pub async fn close_twice_is_fine(client: Client) {
    client.close().await.unwrap();
    client.close().await.unwrap();
    assert!(client.is_closed());
}

pub async fn submit_after_close_gives_a_clear_error(client: Client) {
    let before = client.submit(|x: i32| x, 7);
    assert_eq!((&before).await.unwrap(), 7);
    client.close().await.unwrap();
    let late = client.submit(|x: i32| x, 1);
    match (&late).await {
        Err(error @ TaskError::ClientClosed { .. }) => {
            let text = error.to_string();
            assert!(text.contains("client was closed before submit"), "{text}");
            assert!(text.contains("build a new client"), "{text}");
            assert!(!error.is_cancelled(), "refused work was never accepted, so not cancelled");
        }
        other => panic!("expected ClientClosed, got {other:?}"),
    }
    assert_eq!(late.state(), Some(crate::scheduler::TaskState::Cancelled));
    assert_eq!(before.state(), Some(crate::scheduler::TaskState::Finished));
    // `?` into the client's error gives `Error::Closed`, naming the operation.
    let error = Error::from((&late).await.unwrap_err());
    assert!(matches!(error, Error::Closed { operation: "submit" }), "{error:?}");
    // Every other operation says the same, naming itself.
    let mapped = client.map(|x: i32| x, 0..3);
    assert!(matches!((&mapped[2]).await, Err(TaskError::ClientClosed { operation: "map", .. })));
    let scattered = client.scatter(5_i32);
    assert!(matches!(
        (&scattered).await,
        Err(TaskError::ClientClosed { operation: "scatter", .. })
    ));
    let dependent = client.after(&before).submit(|x: i32| x + 1);
    assert!(matches!(dependent.await, Err(TaskError::ClientClosed { .. })));
    let gathered = client.gather(std::slice::from_ref(&before)).await;
    assert!(matches!(gathered, Err(Error::Closed { operation: "gather" })), "{gathered:?}");
    let waited = client.wait(&mapped, crate::ReturnWhen::AllCompleted, None).await;
    assert!(matches!(waited, Err(Error::Closed { operation: "wait" })));
    let workers = client.workers().await;
    assert!(matches!(workers, Err(Error::Closed { operation: "workers" })));
    assert!(Error::Closed { operation: "gather" }.to_string().contains("gather was refused"));
    // Cancel and retry are refused too, and change nothing: a held value stays readable.
    assert_eq!(before.cancel(), crate::CancelOutcome::ClientClosed);
    assert_eq!(late.cancel(), crate::CancelOutcome::ClientClosed);
    assert_eq!(late.retry(), crate::RetryOutcome::ClientClosed);
    assert_eq!(before.await.unwrap(), 7);
}

/// The registered twin of `submit_after_close_gives_a_clear_error`.
pub async fn registered_submit_after_close_gives_a_clear_error(client: Client) {
    let before = client.submit_task::<Add>((7, 0));
    assert_eq!((&before).await.unwrap(), 7);
    client.close().await.unwrap();
    let late = client.submit_task::<Add>((1, 0));
    match (&late).await {
        Err(error @ TaskError::ClientClosed { .. }) => {
            let text = error.to_string();
            assert!(text.contains("client was closed before submit"), "{text}");
            assert!(text.contains("build a new client"), "{text}");
            assert!(!error.is_cancelled(), "refused work was never accepted, so not cancelled");
        }
        other => panic!("expected ClientClosed, got {other:?}"),
    }
    assert_eq!(late.state(), Some(crate::scheduler::TaskState::Cancelled));
    assert_eq!(before.state(), Some(crate::scheduler::TaskState::Finished));
    // `?` into the client's error gives `Error::Closed`, naming the operation.
    let error = Error::from((&late).await.unwrap_err());
    assert!(matches!(error, Error::Closed { operation: "submit" }), "{error:?}");
    // Every other operation says the same, naming itself.
    let mapped = client.map_task::<Add>((0..3).map(|x| (x, 0)));
    // `map_task` submits item by item, so it names `submit`; the closure case checks `map`.
    assert!(matches!((&mapped[2]).await, Err(TaskError::ClientClosed { .. })));
    let scattered = client.scatter(5_i32);
    assert!(matches!(
        (&scattered).await,
        Err(TaskError::ClientClosed { operation: "scatter", .. })
    ));
    let dependent = client.after(&before).submit_task::<EvenOnly>();
    assert!(matches!(dependent.await, Err(TaskError::ClientClosed { .. })));
    let gathered = client.gather(std::slice::from_ref(&before)).await;
    assert!(matches!(gathered, Err(Error::Closed { operation: "gather" })), "{gathered:?}");
    let waited = client.wait(&mapped, crate::ReturnWhen::AllCompleted, None).await;
    assert!(matches!(waited, Err(Error::Closed { operation: "wait" })));
    let workers = client.workers().await;
    assert!(matches!(workers, Err(Error::Closed { operation: "workers" })));
    assert!(Error::Closed { operation: "gather" }.to_string().contains("gather was refused"));
    // Cancel and retry are refused too, and change nothing: a held value stays readable.
    assert_eq!(before.cancel(), crate::CancelOutcome::ClientClosed);
    assert_eq!(late.cancel(), crate::CancelOutcome::ClientClosed);
    assert_eq!(late.retry(), crate::RetryOutcome::ClientClosed);
    assert_eq!(before.await.unwrap(), 7);
}

/// Closing resolves what is queued behind busy workers, and what runs, with an error. The
/// workers are held by [`Gated`](crate::testing::tasks::Gated) tasks (`local_workers`); on a
/// broker the queued tasks may already be in its queue: the client resolves them all the same.
pub async fn close_resolves_pending_tasks_with_an_error(client: Client) {
    // Occupy every worker, then queue more behind them.
    let (gate, blockers) = hold_every_worker(&client).await;
    let queued = client.map_task::<Add>((0..10).map(|x| (x, 0)));
    let closing = {
        let client = client.clone();
        std::thread::spawn(move || client.blocking().close())
    };
    for future in &queued {
        let error = future.await.unwrap_err();
        assert!(error.is_cancelled(), "{error:?}");
        assert!(error.to_string().contains("client was closed"), "{error}");
    }
    gate.open(); // let the running tasks end so the workers can stop
    let (report, closed) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        let _ = report.send(closing.join());
    });
    // Awaited, not joined: the close may need this executor's thread.
    closed.await.unwrap().unwrap().unwrap();
    for blocker in &blockers {
        assert!(blocker.await.is_err(), "running tasks are cancelled by close too");
    }
}

/// Cancelling a task queued behind busy workers resolves it as cancelled by the user and
/// leaves the running tasks alone (`local_workers`: the workers are held by gated tasks).
pub async fn cancel_gives_cancelled(client: Client) {
    let (gate, blockers) = hold_every_worker(&client).await;
    let queued = client.submit_task::<Add>((5, 0));
    queued.cancel();
    match (&queued).await {
        Err(TaskError::Cancelled { key, reason }) => {
            assert_eq!(&key, queued.key());
            assert!(reason.contains("cancelled by the user"), "{reason}");
        }
        other => panic!("expected Cancelled, got {other:?}"),
    }
    gate.open();
    for blocker in &blockers {
        assert!(blocker.await.is_ok(), "running tasks are not touched by cancelling another");
    }
    // The client still works.
    assert_eq!(client.submit_task::<Add>((4, 4)).await.unwrap(), 8);
}

pub async fn released_tasks_are_forgotten(client: Client) {
    let futures = client.map(|x: i32| x, 0..100);
    assert_eq!(client.gather(&futures).await.unwrap().len(), 100);
    assert_eq!(client.stats().tasks.finished, 100);
    drop(futures);
    let stats_client = client.clone();
    eventually(&client, Duration::from_secs(10), "release of 100 tasks", move || {
        stats_client.stats().tasks.held() == 0
    })
    .await;
    assert_eq!(client.stats().tasks.total_finished, 100);
}
