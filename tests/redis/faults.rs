//! Faults an in-process worker must survive, and the owner checks of the Lua scripts.

use std::collections::HashMap;
use std::time::Duration;

use redis::streams::StreamRangeReply;
use taskweave::transport::redis::RedisTransport;
use taskweave::{Client, TaskError};

use crate::tasks::{Add, AddWithText, Sleepy, Unregistered};
use crate::{RedisServer, run, within, worker};

fn dead_letters(server: &RedisServer, queue: &str) -> StreamRangeReply {
    redis::cmd("XRANGE")
        .arg(format!("taskweave:{queue}:dead"))
        .arg("-")
        .arg("+")
        .query(&mut server.connection())
        .unwrap()
}

#[test]
fn an_unrunnable_tasks_dead_letter_names_the_deciding_worker_even_when_its_heartbeat_is_late() {
    run(|| async {
        let server = RedisServer::start();
        // A reclaim time of 30 s: the worker refreshes its heartbeat every 10 s.
        let running = crate::tasks::register_all(
            taskweave::worker::Worker::builder()
                .redis(server.url())
                .queue("late")
                .concurrency(1)
                .reclaim_after(Duration::from_secs(30))
                .unrunnable_after(Duration::from_millis(300)),
        )
        .start()
        .await
        .unwrap();
        let client = crate::client(&server, "late").await;
        // Its heartbeat expires (a loaded host), again and again until the task failed.
        let heartbeat = format!("taskweave:late:worker:{}", running.name());
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let expirer = {
            let (done, mut connection) = (done.clone(), server.connection());
            std::thread::spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    let _: i64 = redis::cmd("DEL").arg(&heartbeat).query(&mut connection).unwrap();
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        let outcome = within(
            &client,
            Duration::from_secs(30),
            "an unrunnable task failing",
            Box::pin(client.submit_task::<Unregistered>(1)),
        )
        .await;
        done.store(true, std::sync::atomic::Ordering::Release);
        expirer.join().unwrap();
        match outcome {
            Err(TaskError::Failed { message, .. }) => {
                // Before, it said "workers seen: none" though the worker deciding was alive.
                assert!(!message.contains("workers seen: none"), "{message}");
                assert!(message.contains(running.name()), "names the worker: {message}");
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        running.shutdown();
        running.stopped().await;
    });
}

#[test]
fn entries_that_cannot_run_are_dead_lettered_and_the_worker_keeps_running() {
    run(|| async {
        let server = RedisServer::start();
        // A task no live worker registers waits this long for one, then fails.
        let running = crate::tasks::register_all(
            taskweave::worker::Worker::builder()
                .redis(server.url())
                .queue("garbage")
                .concurrency(2)
                .reclaim_after(Duration::from_millis(500))
                .unrunnable_after(Duration::from_millis(300)),
        )
        .start()
        .await
        .unwrap();
        let transport =
            RedisTransport::builder(server.url()).queue("garbage").connect().await.unwrap();
        let client_id = transport.client_id().to_owned();
        let client = Client::builder().transport(transport).build().await.unwrap();
        let mut connection = server.connection();
        // Garbage, and an entry of another format version, written straight into the stream.
        let _: String = redis::cmd("XADD")
            .arg("taskweave:garbage:tasks")
            .arg("*")
            .arg("hello")
            .arg("world")
            .query(&mut connection)
            .unwrap();
        let _: String = redis::cmd("XADD")
            .arg("taskweave:garbage:tasks")
            .arg("*")
            .arg("v")
            .arg("99")
            .arg("reply")
            .arg(format!("taskweave:reply:{client_id}"))
            .arg("rid")
            .arg("not-a-task-of-this-client")
            .query(&mut connection)
            .unwrap();
        // A task no worker registered, and an input the worker's `add` cannot read.
        match client.submit_task::<Unregistered>(1).await {
            Err(TaskError::Failed { message, .. }) => {
                assert!(message.contains("moved it to the dead-letter stream"), "{message}");
                assert!(
                    message
                        .contains("no live worker of queue \"garbage\" runs \"nobody-runs-this\""),
                    "{message}"
                );
                assert!(message.contains(running.name()), "names the workers seen: {message}");
                assert!(message.contains("Worker::builder().register::<T>()"), "{message}");
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        match client.submit_task::<AddWithText>("two".into()).await {
            Err(TaskError::Failed { message, .. }) => assert!(
                message.contains("the input does not decode as the input of task \"add\""),
                "{message}"
            ),
            other => panic!("expected Failed, got {other:?}"),
        }
        // The worker keeps running.
        let futures = client.map_task::<Add>((0..50).map(|i| (i, 1)));
        assert_eq!(client.gather(&futures).await.unwrap(), (1..51).collect::<Vec<i64>>());
        let dead = dead_letters(&server, "garbage");
        let mut reasons: Vec<String> =
            dead.ids.iter().map(|entry| entry.get::<String>("dead_reason").unwrap()).collect();
        reasons.sort();
        assert_eq!(reasons.len(), 4, "{reasons:#?}");
        assert!(reasons[0].contains("no live worker of queue"), "{reasons:#?}");
        assert_eq!(
            reasons[1],
            "the entry has format version \"99\", this worker reads versions \"1\" and \"2\"; upgrade the workers to the taskweave version of the client"
        );
        assert_eq!(reasons[2], "the entry has no format version field `v`");
        assert!(reasons[3].starts_with("the input does not decode"), "{reasons:#?}");
        // Nothing is left pending.
        let pending: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg("taskweave:garbage:tasks")
            .arg("workers")
            .query(&mut connection)
            .unwrap();
        assert_eq!(pending.0, 0);
        client.close().await.unwrap();
        running.shutdown();
        running.stopped().await;
    });
}

/// Invokes `complete.lua` as `consumer` for `entry`; returns the script's answer.
fn complete_as(connection: &mut redis::Connection, consumer: &str, entry: &str, body: &str) -> i64 {
    let delivery = crate::OneDelivery {
        stream: "taskweave:trap:tasks",
        starts: "taskweave:trap:starts",
        entry_of: "taskweave:trap:entry:c1:1:1",
    };
    crate::complete_one(connection, &delivery, consumer, entry, body)
}

#[test]
fn only_the_current_owner_completes_an_entry_and_only_once() {
    let server = RedisServer::start();
    let mut connection = server.connection();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("taskweave:trap:tasks")
        .arg("workers")
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut connection)
        .unwrap();
    let entry: String = redis::cmd("XADD")
        .arg("taskweave:trap:tasks")
        .arg("*")
        .arg("task")
        .arg("add")
        .query(&mut connection)
        .unwrap();
    // `slow` reads the entry, then `fast` reclaims it (as XAUTOCLAIM would after a stall).
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("slow")
        .arg("STREAMS")
        .arg("taskweave:trap:tasks")
        .arg(">")
        .query(&mut connection)
        .unwrap();
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg("taskweave:trap:tasks")
        .arg("workers")
        .arg("fast")
        .arg(0)
        .arg(&entry)
        .query(&mut connection)
        .unwrap();
    let replies = |connection: &mut redis::Connection| -> usize {
        redis::cmd("XLEN").arg("taskweave:reply:c1").query(connection).unwrap()
    };
    // Starts are counted once per delivery, and only for the owner.
    let begin = |connection: &mut redis::Connection, consumer: &str| -> i64 {
        let answers: Vec<i64> = redis::Script::new(concat!(
            include_str!("../../src/transport/redis/pending_of.lua"),
            include_str!("../../src/transport/redis/begin.lua")
        ))
        .key("taskweave:trap:tasks")
        .key("taskweave:trap:starts")
        .arg("workers")
        .arg(consumer)
        .arg(&entry)
        .invoke(connection)
        .unwrap();
        assert_eq!(answers.len(), 1, "one answer per entry");
        answers[0]
    };
    assert_eq!(begin(&mut connection, "slow"), -2, "slow does not own the entry any more");
    assert_eq!(begin(&mut connection, "fast"), 1);
    assert_eq!(begin(&mut connection, "fast"), 1, "a repeated begin (lost reply) counts once");
    // The old owner's completion is refused: no result, no reply, the entry stays pending.
    assert_eq!(complete_as(&mut connection, "slow", &entry, "1"), -1);
    let result: Option<String> =
        redis::cmd("GET").arg("taskweave:result:c1:1").query(&mut connection).unwrap();
    assert_eq!(result, None);
    assert_eq!(replies(&mut connection), 0);
    // The current owner's is accepted, once: a repeat (say, after a lost reply) changes nothing.
    assert_eq!(complete_as(&mut connection, "fast", &entry, "2"), 1);
    assert_eq!(complete_as(&mut connection, "fast", &entry, "3"), 0);
    assert_eq!(complete_as(&mut connection, "slow", &entry, "4"), 0);
    let result: Option<String> =
        redis::cmd("GET").arg("taskweave:result:c1:1").query(&mut connection).unwrap();
    assert_eq!(result.as_deref(), Some("2"));
    assert_eq!(replies(&mut connection), 1, "exactly one accepted result reached the client");
    // The reply names the worker that ran it (the consumer) and carries its run's times.
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg("taskweave:reply:c1")
        .arg("-")
        .arg("+")
        .query(&mut connection)
        .unwrap();
    let fields = &entries[0].1;
    assert_eq!(fields["worker"], "fast");
    assert_eq!((&*fields["started_us"], &*fields["finished_us"]), ("1000", "2000"));
    let length: usize =
        redis::cmd("XLEN").arg("taskweave:trap:tasks").query(&mut connection).unwrap();
    assert_eq!(length, 0, "the completed entry is acknowledged and deleted");
    let starts: usize =
        redis::cmd("HLEN").arg("taskweave:trap:starts").query(&mut connection).unwrap();
    assert_eq!(starts, 0, "the completed entry's start count is deleted too");
}

#[test]
fn a_client_whose_redis_is_gone_fails_fast_and_retries_without_hanging() {
    run(|| async {
        let mut server = RedisServer::start();
        let url = server.url();
        server.kill();
        let error = RedisTransport::connect(url).await.unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("transport failed: redis connect failed:"), "{message}");
        assert!(message.contains("is redis-server running at that address?"), "{message}");
        drop(server);
        // A client that loses Redis mid-run keeps its futures pending (they do not fail
        // spuriously) and a caller's timeout still fires.
        let server = RedisServer::start();
        let client = crate::client(&server, "gone").await;
        drop(server);
        let future = client.submit_task::<Add>((1, 1));
        let waited = within(
            &client,
            Duration::from_secs(10),
            "the timeout",
            Box::pin(async {
                taskweave::ExecutorExt::timeout(
                    &**client.executor(),
                    Duration::from_millis(300),
                    future.clone(),
                )
                .await
            }),
        )
        .await;
        assert!(matches!(waited, Err(taskweave::Error::Timeout { .. })), "{waited:?}");
        within(&client, Duration::from_secs(10), "close", Box::pin(client.close())).await.unwrap();
    });
}

#[test]
fn tasks_survive_a_redis_restart_with_append_only_persistence() {
    run(|| async {
        let mut server = RedisServer::start_with(crate::ServerOptions {
            append_only: true,
            ..Default::default()
        });
        let running = worker(&server, "restart", 2).await;
        let client = crate::client(&server, "restart").await;
        let futures = client.map_task::<Sleepy>((0..60).map(|i| (10, i)));
        within(
            &client,
            Duration::from_secs(30),
            "the first results",
            Box::pin(async {
                for future in &futures[..5] {
                    future.await.unwrap();
                }
            }),
        )
        .await;
        // Redis goes away mid-run and comes back with its data; client and worker reconnect.
        server.restart();
        let values = client.gather(&futures).await.unwrap();
        assert_eq!(values, (0..60).collect::<Vec<i64>>());
        assert_eq!(client.submit_task::<Add>((1, 1)).await.unwrap(), 2);
        client.close().await.unwrap();
        running.shutdown();
        running.stopped().await;
    });
}
