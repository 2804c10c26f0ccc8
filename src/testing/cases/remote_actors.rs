//! Actors whose calls cross a broker ([`Client::remote_actor`], feature `redis`), hosted by
//! a worker that registers `ActorHost<Tally>`: the `remote_actors` capability.

use std::time::Duration;

use crate::testing::tasks::{Tally, TallyCall};
use crate::{ActorRestartPolicy, Client, Error, TaskError};

use super::eventually;

/// A remote actor on `client` whose total starts at `start`.
async fn tally(client: &Client, start: i64) -> crate::RemoteActorHandle<Tally> {
    client
        .remote_actor::<Tally>(start, 0, ActorRestartPolicy::FailPending)
        .await
        .expect("make a remote actor")
}

/// Drops `actor`, the last handle, and waits until its host task has ended and been forgotten
/// (it gave its worker slot back), so that the case leaves no actor behind.
async fn release(client: &Client, actor: crate::RemoteActorHandle<Tally>) {
    drop(actor);
    let stats = client.clone();
    eventually(client, Duration::from_secs(30), "the end of the actor's host", move || {
        let tasks = stats.stats().tasks;
        tasks.held() == 0 && tasks.total_finished >= 1
    })
    .await;
}

pub async fn remote_actor_calls_run_in_call_order_and_keep_state(client: Client) {
    let actor = tally(&client, 100).await;
    // Made without waiting, from two handles of one actor: they run in call order.
    let other = actor.clone();
    let calls: Vec<_> =
        (1..=20)
            .map(|i| {
                if i % 2 == 0 {
                    actor.call(TallyCall::Add(i))
                } else {
                    other.call(TallyCall::Add(i))
                }
            })
            .collect();
    let totals = client.gather(&calls).await.unwrap();
    let expected: Vec<i64> = (1..=20)
        .scan(100, |total, i| {
            *total += i;
            Some(*total)
        })
        .collect();
    assert_eq!(totals, expected);
    // The state stays between rounds of calls.
    assert_eq!(actor.call(TallyCall::Add(-310)).await.unwrap(), 0);
    drop((calls, other));
    release(&client, actor).await;
}

pub async fn a_panic_in_a_remote_actor_call_fails_that_call_and_the_actor_goes_on(client: Client) {
    let actor = tally(&client, 1).await;
    let before = actor.call(TallyCall::Add(1));
    let failing = actor.call(TallyCall::Panic("tally overflow".into()));
    let after = actor.call(TallyCall::Add(1));
    assert_eq!(before.await.unwrap(), 2);
    match (&failing).await {
        Err(TaskError::Failed { key, message }) => {
            assert_eq!(&key, failing.key());
            assert!(message.contains("the call panicked: tally overflow"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(after.await.unwrap(), 3, "the actor kept its state and went on");
    drop(failing);
    release(&client, actor).await;
}

pub async fn dropping_the_last_remote_actor_handle_runs_pending_calls_then_releases_it(
    client: Client,
) {
    let actor = tally(&client, 0).await;
    let calls: Vec<_> = (0..5).map(|_| actor.call(TallyCall::Add(1))).collect();
    let values = {
        let client = client.clone();
        let calls = calls.clone();
        async move { client.gather(&calls).await }
    };
    // The handle is dropped while its calls are pending (none is awaited yet): they still run.
    let (values, ()) = futures::join!(values, release(&client, actor));
    assert_eq!(values.unwrap(), vec![1, 2, 3, 4, 5]);
    drop(calls);
}

/// `remote_actor` on a closed client is refused, naming the operation.
pub async fn a_remote_actor_after_close_gives_a_clear_error(client: Client) {
    client.close().await.unwrap();
    match client.remote_actor::<Tally>(0, 0, ActorRestartPolicy::FailPending).await {
        Err(error @ Error::Closed { operation: "remote_actor" }) => {
            assert!(error.to_string().contains("remote_actor was refused"), "{error}");
        }
        other => panic!("expected Closed, got {other:?}"),
    }
}
