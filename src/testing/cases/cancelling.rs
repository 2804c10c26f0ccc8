//! Cancelling running work: blocking bodies that poll their `TaskContext` stop early, on a
//! cancel, a dropped `cancel_on_drop` guard, or the client closing.

use std::time::Duration;

use crate::{Client, ExecutorExt, TaskContext, TaskError};

use super::eventually;

/// How long a body may take to notice its cancellation before the case fails.
const NOTICE: Duration = Duration::from_secs(10);

/// Submits a body that reports its start, spins until its context says cancelled, then
/// reports that it stopped. Returns the future and the two report channels.
fn spin_until_cancelled(
    client: &Client,
) -> (crate::TaskFuture<u64>, flume::Receiver<()>, flume::Receiver<()>) {
    let (started, has_started) = flume::bounded(1);
    let (stopped, has_stopped) = flume::bounded(1);
    let future = client.submit_with_context(
        move |context: &TaskContext, _: ()| {
            let _ = started.send(());
            let mut rounds = 0u64;
            while !context.is_cancelled() {
                rounds += 1;
                std::thread::yield_now();
            }
            let _ = stopped.send(());
            rounds
        },
        (),
    );
    (future, has_started, has_stopped)
}

/// Waits (bounded) for one message on `channel`.
async fn expect_message(client: &Client, channel: &flume::Receiver<()>, what: &str) {
    let received = client.executor().timeout(NOTICE, channel.recv_async()).await;
    assert!(matches!(received, Ok(Ok(()))), "{what} did not happen within {NOTICE:?}");
}

pub async fn cancel_stops_a_running_blocking_body_that_polls_its_context(client: Client) {
    let (future, has_started, has_stopped) = spin_until_cancelled(&client);
    expect_message(&client, &has_started, "the body's start").await;
    assert_eq!(client.stats().cancelled_while_running, 0);

    future.cancel();
    match (&future).await {
        Err(TaskError::Cancelled { key, reason }) => {
            assert_eq!(&key, future.key());
            assert!(reason.contains("cancelled by the user"), "{reason}");
        }
        other => panic!("expected Cancelled, got {other:?}"),
    }
    expect_message(&client, &has_stopped, "the running body stopping").await;
    assert_eq!(client.stats().cancelled_while_running, 1, "{:?}", client.stats());
    let stats_client = client.clone();
    eventually(&client, NOTICE, "every worker idle again", move || {
        stats_client.stats().workers.iter().all(|worker| worker.running == 0)
    })
    .await;
    // The worker it occupied is free: more work runs.
    assert_eq!(client.submit(|x: u32| x + 1, 1).await.unwrap(), 2);
}

pub async fn a_dropped_cancel_on_drop_guard_stops_its_running_body(client: Client) {
    let (future, has_started, has_stopped) = spin_until_cancelled(&client);
    let observer = future.clone();
    let guard = future.cancel_on_drop();
    assert_eq!(guard.future().key(), observer.key());
    expect_message(&client, &has_started, "the body's start").await;
    drop(guard); // as a server drops a disconnected request's handler
    expect_message(&client, &has_stopped, "the running body stopping").await;
    let error = (&observer).await.unwrap_err();
    assert!(error.is_cancelled(), "{error:?}");
    assert!(error.to_string().contains("cancel_on_drop guard was dropped"), "{error}");

    // Awaited to the end, a guard gives the value and cancels nothing.
    let kept = client.submit(|x: u32| x * 3, 5);
    assert_eq!(kept.clone().cancel_on_drop().await.unwrap(), 15);
    assert_eq!((&kept).await.unwrap(), 15);
    // Disarmed, it gives the future back and cancels nothing when it goes.
    let (running, has_started, _has_stopped) = spin_until_cancelled(&client);
    let running = running.cancel_on_drop().disarm();
    expect_message(&client, &has_started, "the second body's start").await;
    assert!(!running.is_done(), "a disarmed guard cancels nothing");
    running.cancel();
    assert!((&running).await.unwrap_err().is_cancelled());
}

pub async fn close_stops_running_bodies_that_poll_their_context(client: Client) {
    let (future, has_started, has_stopped) = spin_until_cancelled(&client);
    expect_message(&client, &has_started, "the body's start").await;
    // Without the signal, the worker would spin for ever and close would never return.
    let closed = client.executor().timeout(NOTICE, client.close()).await;
    assert!(matches!(closed, Ok(Ok(()))), "close did not return within {NOTICE:?}: {closed:?}");
    expect_message(&client, &has_stopped, "the running body stopping").await;
    let error = (&future).await.unwrap_err();
    assert!(error.is_cancelled(), "{error:?}");
}

pub async fn a_context_knows_its_key_and_can_be_awaited(client: Client) {
    let (contexts, context) = flume::bounded(1);
    let blocking = client.submit_with_context(
        move |context: &TaskContext, _: ()| {
            let _ = contexts.send(context.clone());
            context.key().to_string()
        },
        (),
    );
    assert_eq!((&blocking).await.unwrap(), blocking.key().to_string());
    let context = context.recv_async().await.unwrap();
    assert!(!context.is_cancelled(), "a finished task was not cancelled");

    let fallible = client.try_submit_with_context(
        |context: &TaskContext, text: &'static str| {
            text.parse::<u32>().map_err(|error| format!("{}: {error}", context.key()))
        },
        "x",
    );
    let error = (&fallible).await.unwrap_err();
    assert!(error.is_user_error(), "{error:?}");
    assert!(error.to_string().contains(&fallible.key().to_string()), "{error}");

    // So does a dependent's body, with its dependencies' values.
    let base = client.submit(|x: u64| x * 10, 4);
    let dependent = client
        .after(&base)
        .submit_with_context(|context: &TaskContext, x: u64| (context.key().to_string(), x + 2));
    let (key, value) = (&dependent).await.unwrap();
    assert_eq!((key, value), (dependent.key().to_string(), 42));

    // An async body gets its context too; `cancelled()` resolves once the task is cancelled.
    let (contexts, context) = flume::bounded(1);
    let waiting = client.submit_async_with_context(
        move |context: TaskContext, _: ()| {
            let contexts = contexts.clone();
            async move {
                let _ = contexts.send(context.clone());
                context.cancelled().await;
            }
        },
        (),
    );
    let context = client.executor().timeout(NOTICE, context.recv_async()).await.unwrap().unwrap();
    assert_eq!(context.key(), waiting.key());
    waiting.cancel();
    let noticed = client.executor().timeout(NOTICE, context.cancelled()).await;
    assert!(noticed.is_ok(), "cancelled() did not resolve after the cancel");
    assert!((&waiting).await.unwrap_err().is_cancelled());
}
