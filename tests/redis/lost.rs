//! Entries that vanish from the task stream before a worker runs them (trimmed, deleted, or
//! lost with a server that restarts without its data), an enqueue sent again after its reply
//! was lost, and cancelling queued tasks: no future hangs, no task runs twice, a cancelled
//! queued task never runs.

use std::time::Duration;

use taskweave::transport::redis::RedisTransport;
use taskweave::worker::Worker;
use taskweave::{Client, Executor, TaskError, TaskFuture};

use crate::tasks::{Counted, runs_of};
use crate::{RedisServer, run, within, worker};

/// The values of `futures`, gathered within 30 s (a panic naming `what` otherwise).
async fn gather_within(client: &Client, what: &str, futures: &[TaskFuture<i64>]) -> Vec<i64> {
    within(client, Duration::from_secs(30), what, Box::pin(client.gather(futures))).await.unwrap()
}

/// Every counted task among `tasks` ran exactly once.
fn assert_each_ran_once(tasks: impl Iterator<Item = (String, i64)>) {
    for (tag, _) in tasks {
        assert_eq!(runs_of(&tag), 1, "{tag} runs once");
    }
}

/// Closes the client, then stops the worker and waits for it.
async fn finish(client: Client, running: Worker) {
    client.close().await.unwrap();
    running.shutdown();
    running.stopped().await;
}

/// A client that checks on its enqueued tasks every 100 ms (instead of every 5 s).
async fn reconciling_client(server: &RedisServer, queue: &str) -> Client {
    let transport = RedisTransport::builder(server.url())
        .queue(queue)
        .reconcile_every(Duration::from_millis(100))
        .connect()
        .await
        .expect("connect the client to redis");
    Client::builder().transport(transport).build().await.expect("build a redis client")
}

fn stream_length(connection: &mut redis::Connection, queue: &str) -> usize {
    redis::cmd("XLEN").arg(format!("taskweave:{queue}:tasks")).query(connection).unwrap()
}

fn stream_ids(connection: &mut redis::Connection, queue: &str) -> Vec<String> {
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("taskweave:{queue}:tasks"))
        .arg("-")
        .arg("+")
        .query(connection)
        .unwrap();
    entries.ids.into_iter().map(|entry| entry.id).collect()
}

/// Waits (at most 10 s, looking every 20 ms) until `done` holds.
async fn until(client: &Client, what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        client.executor().sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not happen within 10 s");
}

/// Counted tasks tagged `{prefix}-{i}`, returning `i`.
fn counted(prefix: &str, count: i64) -> impl Iterator<Item = (String, i64)> + '_ {
    (0..count).map(move |i| (format!("{prefix}-{i}"), i))
}

#[test]
fn entries_trimmed_before_any_worker_read_them_still_resolve() {
    run(|| async {
        let server = RedisServer::start();
        let client = reconciling_client(&server, "trim").await;
        let futures = client.map_task::<Counted>(counted("trim", 20));
        let mut connection = server.connection();
        until(&client, "the entries reaching the stream", || {
            stream_length(&mut connection, "trim") == 20
        })
        .await;
        let trimmed: usize = redis::cmd("XTRIM")
            .arg("taskweave:trim:tasks")
            .arg("MAXLEN")
            .arg(0)
            .query(&mut connection)
            .unwrap();
        assert_eq!(trimmed, 20);
        let running = worker(&server, "trim", 2).await;
        let values = gather_within(&client, "the results of the trimmed tasks", &futures).await;
        assert_eq!(values, (0..20).collect::<Vec<i64>>());
        assert_each_ran_once(counted("trim", 20));
        finish(client, running).await;
    });
}

#[test]
fn an_unread_entry_deleted_with_xdel_still_resolves_and_the_others_run_once() {
    run(|| async {
        let server = RedisServer::start();
        let client = reconciling_client(&server, "xdel").await;
        let futures = client.map_task::<Counted>(counted("xdel", 3));
        let mut connection = server.connection();
        until(&client, "the entries reaching the stream", || {
            stream_length(&mut connection, "xdel") == 3
        })
        .await;
        let ids = stream_ids(&mut connection, "xdel");
        let deleted: usize = redis::cmd("XDEL")
            .arg("taskweave:xdel:tasks")
            .arg(&ids[1])
            .query(&mut connection)
            .unwrap();
        assert_eq!(deleted, 1);
        let running = worker(&server, "xdel", 1).await;
        let values = gather_within(&client, "the results", &futures).await;
        assert_eq!(values, vec![0, 1, 2]);
        assert_each_ran_once(counted("xdel", 3));
        finish(client, running).await;
    });
}

#[test]
fn tasks_whose_stream_was_deleted_or_lost_in_a_restart_still_resolve() {
    run(|| async {
        let mut server = RedisServer::start();
        let client = reconciling_client(&server, "gone").await;
        // The stream key itself deleted (with its consumer group).
        let first = client.map_task::<Counted>(counted("del", 5));
        let mut connection = server.connection();
        until(&client, "the entries reaching the stream", || {
            stream_length(&mut connection, "gone") == 5
        })
        .await;
        let deleted: usize =
            redis::cmd("DEL").arg("taskweave:gone:tasks").query(&mut connection).unwrap();
        assert_eq!(deleted, 1);
        let running = worker(&server, "gone", 2).await;
        let values = gather_within(&client, "the results after DEL", &first).await;
        assert_eq!(values, (0..5).collect::<Vec<i64>>());
        running.shutdown();
        running.stopped().await;
        // A server without persistence restarts: every entry (and entry_of key) is gone.
        let second = client.map_task::<Counted>(counted("restart", 5));
        until(&client, "the entries reaching the stream", || {
            stream_length(&mut connection, "gone") == 5
        })
        .await;
        server.restart();
        let mut connection = server.connection();
        assert_eq!(stream_length(&mut connection, "gone"), 0, "the restart lost the entries");
        let running = worker(&server, "gone", 2).await;
        let values = gather_within(&client, "the results after the restart", &second).await;
        assert_eq!(values, (0..5).collect::<Vec<i64>>());
        assert_each_ran_once(counted("del", 5).chain(counted("restart", 5)));
        finish(client, running).await;
    });
}

#[test]
fn a_task_whose_entry_keeps_vanishing_fails_as_lost_after_its_allowed_failures() {
    run(|| async {
        let server = RedisServer::start();
        let client = reconciling_client(&server, "vanish").await;
        let future = client.task().allowed_failures(1).submit_task::<Counted>(("vanish".into(), 7));
        let mut connection = server.connection();
        // No worker: delete each attempt's entry as it arrives, twice (one allowed failure).
        for attempt in 1..=2 {
            until(&client, "an attempt's entry reaching the stream", || {
                stream_length(&mut connection, "vanish") == 1
            })
            .await;
            let trimmed: usize = redis::cmd("XTRIM")
                .arg("taskweave:vanish:tasks")
                .arg("MAXLEN")
                .arg(0)
                .query(&mut connection)
                .unwrap();
            assert_eq!(trimmed, 1, "attempt {attempt}");
        }
        let outcome =
            within(&client, Duration::from_secs(30), "the task failing", Box::pin(future.clone()))
                .await;
        match outcome {
            Err(TaskError::WorkerLost { attempts, .. }) => assert_eq!(attempts, 2),
            other => panic!("expected WorkerLost, got {other:?}"),
        }
        let message = future.try_result().unwrap().unwrap_err().to_string();
        assert!(message.contains("its queue entry vanished"), "{message}");
        assert_eq!(runs_of("vanish"), 0);
        client.close().await.unwrap();
    });
}

#[test]
fn an_enqueue_sent_again_after_its_reply_was_lost_runs_the_task_once() {
    run(|| async {
        let server = RedisServer::start();
        let running = worker(&server, "resend", 1).await;
        // Commands time out after 50 ms: while the server is paused, the client gives up on
        // its enqueue (which the server carries out later) and sends it again.
        let transport = RedisTransport::builder(server.url())
            .queue("resend")
            .command_timeout(Duration::from_millis(50))
            .connect()
            .await
            .unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        let mut connection = server.connection();
        let () =
            redis::cmd("CLIENT").arg("PAUSE").arg(400).arg("WRITE").query(&mut connection).unwrap();
        let futures = client.map_task::<Counted>(counted("resend", 5));
        let values = gather_within(&client, "the results", &futures).await;
        assert_eq!(values, (0..5).collect::<Vec<i64>>());
        // Any second copy would still be in the stream or running: wait for it to drain.
        until(&client, "the stream draining", || stream_length(&mut connection, "resend") == 0)
            .await;
        running.shutdown();
        running.stopped().await;
        assert_each_ran_once(counted("resend", 5));
        client.close().await.unwrap();
    });
}

/// The values of the eight fields every entry has, in the order `enqueue.lua` names them
/// (`v`, `task`, `key`, `rid`, `result`, `reply`, `max_deliveries`, `ttl_ms`), for delivery
/// `rid` of a task `add` on `queue`: the script takes only these values, then the further
/// field-value pairs.
fn fixed_entry_values(queue: &str, rid: &str) -> Vec<String> {
    vec![
        "1".to_owned(),
        "add".to_owned(),
        "c1:1".to_owned(),
        rid.to_owned(),
        "taskweave:result:c1:1".to_owned(),
        format!("taskweave:{queue}:reply:c1"),
        "3".to_owned(),
        "60000".to_owned(),
    ]
}

#[test]
fn enqueue_is_idempotent_per_delivery() {
    let server = RedisServer::start();
    let mut connection = server.connection();
    let enqueue = |connection: &mut redis::Connection, value: &str| -> String {
        let ids: Vec<String> =
            redis::Script::new(include_str!("../../src/transport/redis/enqueue.lua"))
                .key("taskweave:idem:tasks")
                .key("taskweave:idem:entry:c1:1:1")
                .arg(60_000)
                .arg(2)
                .arg(fixed_entry_values("idem", "c1:1:1"))
                .arg("input")
                .arg(value)
                .invoke(connection)
                .unwrap();
        ids.into_iter().next().unwrap()
    };
    let first = enqueue(&mut connection, "1");
    assert_eq!(enqueue(&mut connection, "2"), first, "a resend finds the first entry");
    assert_eq!(stream_length(&mut connection, "idem"), 1);
    let () = redis::cmd("SET")
        .arg("taskweave:idem:entry:c1:1:1")
        .arg("done")
        .query(&mut connection)
        .unwrap();
    assert_eq!(enqueue(&mut connection, "3"), "done", "a reported delivery is not added again");
    assert_eq!(stream_length(&mut connection, "idem"), 1);
}

#[test]
fn cancelling_a_queued_task_removes_its_entry_and_it_never_runs() {
    run(|| async {
        let server = RedisServer::start();
        // One task in flight at a time: the kept task below runs only if the cancelled one
        // gave its slot back.
        let transport = RedisTransport::builder(server.url())
            .queue("cancel")
            .max_in_flight(1)
            .connect()
            .await
            .unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        let mut connection = server.connection();
        let doomed = client.submit_task::<Counted>(("cancel-doomed".into(), 1));
        until(&client, "the entry reaching the stream", || {
            stream_length(&mut connection, "cancel") == 1
        })
        .await;
        doomed.cancel();
        assert!(
            doomed.try_result().is_some_and(|outcome| outcome.is_err_and(|e| e.is_cancelled()))
        );
        until(&client, "the cancelled entry's removal", || {
            stream_length(&mut connection, "cancel") == 0
        })
        .await;
        // A worker started now finds nothing of it; the client's slot came back.
        let running = worker(&server, "cancel", 1).await;
        let kept = client.submit_task::<Counted>(("cancel-kept".into(), 2));
        let value = within(&client, Duration::from_secs(30), "the next task", Box::pin(kept)).await;
        assert_eq!(value.unwrap(), 2);
        assert_eq!(runs_of("cancel-doomed"), 0);
        finish(client, running).await;
    });
}

#[test]
fn an_outcome_for_an_entry_trimmed_while_it_ran_is_accepted_once() {
    let server = RedisServer::start();
    let mut connection = server.connection();
    let stream = "taskweave:ran:tasks";
    let entry_of = "taskweave:ran:entry:c1:1:1";
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg("workers")
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut connection)
        .unwrap();
    let entries: Vec<String> =
        redis::Script::new(include_str!("../../src/transport/redis/enqueue.lua"))
            .key(stream)
            .key(entry_of)
            .arg(60_000)
            .arg(0)
            .arg(fixed_entry_values("ran", "c1:1:1"))
            .invoke(&mut connection)
            .unwrap();
    let entry = entries[0].clone();
    // w1 reads it; the stream is trimmed; another worker's XAUTOCLAIM drops the deleted
    // entry from the pending list while w1 still runs it.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("w1")
        .arg("STREAMS")
        .arg(stream)
        .arg(">")
        .query(&mut connection)
        .unwrap();
    let _: usize =
        redis::cmd("XTRIM").arg(stream).arg("MAXLEN").arg(0).query(&mut connection).unwrap();
    let _: redis::Value = redis::cmd("XAUTOCLAIM")
        .arg(stream)
        .arg("workers")
        .arg("w2")
        .arg(0)
        .arg("0-0")
        .query(&mut connection)
        .unwrap();
    let delivery = crate::OneDelivery { stream, starts: "taskweave:ran:starts", entry_of };
    let complete = |connection: &mut redis::Connection, body: &str| -> i64 {
        crate::complete_one(connection, &delivery, "w1", &entry, body)
    };
    assert_eq!(complete(&mut connection, "1"), 1, "nobody else can run it: accepted");
    assert_eq!(complete(&mut connection, "2"), 0, "once");
    let result: Option<String> =
        redis::cmd("GET").arg("taskweave:result:c1:1").query(&mut connection).unwrap();
    assert_eq!(result.as_deref(), Some("1"));
    let replies: usize =
        redis::cmd("XLEN").arg("taskweave:reply:c1").query(&mut connection).unwrap();
    assert_eq!(replies, 1);
    // A delivery whose entry_of key names no entry (cancelled, or replaced) is refused.
    let () = redis::cmd("DEL").arg(entry_of).query(&mut connection).unwrap();
    let () = redis::cmd("DEL").arg("taskweave:reply:c1").query(&mut connection).unwrap();
    assert_eq!(complete(&mut connection, "3"), 0);
}
