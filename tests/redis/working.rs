//! The happy paths: registered tasks run on a worker and come back typed.

use std::time::Duration;

use taskweave::transport::redis::RedisTransport;
use taskweave::{Client, Error, TaskError};

use crate::tasks::{Add, Explode, Parse, Sleepy};
use crate::{RedisServer, client, run, worker};

#[test]
fn registered_tasks_run_on_a_worker_and_come_back_typed() {
    run(|| async {
        let server = RedisServer::start();
        let worker = worker(&server, "typed", 2).await;
        let client = client(&server, "typed").await;
        let sum = client.submit_task::<Add>((2, 3));
        assert_eq!(sum.await.unwrap(), 5);
        let futures = client.map_task::<Add>((0..200).map(|i| (i, 1)));
        let values = client.gather(&futures).await.unwrap();
        assert_eq!(values, (1..201).collect::<Vec<i64>>());
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}

#[test]
fn task_errors_and_panics_reach_the_client_and_the_worker_survives() {
    run(|| async {
        let server = RedisServer::start();
        let worker = worker(&server, "errors", 1).await;
        let client = client(&server, "errors").await;
        match client.submit_task::<Parse>("forty-two".into()).await {
            Err(TaskError::Failed { key, message }) => {
                assert!(message.contains("invalid digit"), "{message}");
                assert!(key.to_string().starts_with("Parse-"), "{key}");
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        match client.submit_task::<Explode>("boom on a remote worker".into()).await {
            Err(TaskError::Panicked { message, .. }) => {
                assert_eq!(message, "boom on a remote worker")
            }
            other => panic!("expected Panicked, got {other:?}"),
        }
        // The single worker thread survived both.
        assert_eq!(client.submit_task::<Parse>("7".into()).await.unwrap(), 7);
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}

#[test]
fn a_closure_cannot_cross_machines() {
    run(|| async {
        let server = RedisServer::start();
        let client = client(&server, "closures").await;
        let error = client.submit(|x: i32| x + 1, 1).await.unwrap_err();
        match &error {
            TaskError::Failed { message, .. } => assert!(
                message.starts_with("closures cannot cross machines; submit a registered Task"),
                "{message}"
            ),
            other => panic!("expected Failed, got {other:?}"),
        }
        client.close().await.unwrap();
    });
}

#[test]
fn an_oversized_input_fails_at_submit() {
    run(|| async {
        let server = RedisServer::start();
        let transport = RedisTransport::builder(server.url())
            .queue("big")
            .max_payload_bytes(1000)
            .connect()
            .await
            .unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        // No worker runs: the error comes from the client itself, at once.
        let big = client.submit_task::<Parse>("9".repeat(5000));
        match big.await {
            Err(TaskError::Failed { message, .. }) => {
                assert!(message.contains("5002 bytes, over the limit of 1000 bytes"), "{message}");
                assert!(message.contains("max_payload_bytes"), "{message}");
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        client.close().await.unwrap();
    });
}

#[test]
fn workers_are_listed_while_alive() {
    run(|| async {
        let server = RedisServer::start();
        let running = worker(&server, "listed", 3).await;
        let transport =
            RedisTransport::builder(server.url()).queue("listed").connect().await.unwrap();
        let workers = transport.workers().await.unwrap();
        assert_eq!(workers.len(), 1);
        assert_eq!(workers[0].name, running.name());
        assert_eq!(workers[0].concurrency, 3);
        assert_eq!(
            workers[0].tasks,
            ["add", "counted", "explode", "length", "parse", "repeat", "sleepy", "sum"]
        );
        assert_eq!(workers[0].pid, std::process::id());
        // The client lists the same workers.
        let client = client(&server, "listed").await;
        assert_eq!(client.workers().await.unwrap(), workers);
        client.close().await.unwrap();
        running.shutdown();
        running.stopped().await;
        assert!(transport.workers().await.unwrap().is_empty(), "a stopped worker signs off");
    });
}

/// The result keys under `taskweave:result:` on the server.
fn result_keys(connection: &mut redis::Connection) -> usize {
    let keys: Vec<String> = redis::cmd("KEYS").arg("taskweave:result:*").query(connection).unwrap();
    keys.len()
}

#[test]
fn released_results_are_deleted_from_redis() {
    run(|| async {
        let server = RedisServer::start();
        let worker = worker(&server, "release", 2).await;
        let client = client(&server, "release").await;
        // Outputs over 256 bytes are stored under their result keys by the worker.
        let futures = client.map_task::<crate::tasks::Repeat>((0..20).map(|i| 300 + i));
        client.gather(&futures).await.unwrap();
        let mut connection = server.connection();
        assert_eq!(result_keys(&mut connection), 20, "finished results live in redis while held");
        drop(futures);
        let executor = client.executor().clone();
        let deleted = taskweave::ExecutorExt::timeout(&*executor, Duration::from_secs(10), async {
            while result_keys(&mut connection) > 0 {
                executor.sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(deleted.is_ok(), "released results were not deleted");
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}

/// The entry_of keys (`taskweave:{queue}:entry:*`) on the server.
fn entry_of_keys(connection: &mut redis::Connection, queue: &str) -> usize {
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("taskweave:{queue}:entry:*")).query(connection).unwrap();
    keys.len()
}

/// The client deletes a reported delivery's entry_of key once it read the completion (in
/// the pipeline of its next read of the reply stream), while it stays open: none is left
/// behind to wait for its expiry.
#[test]
fn reported_deliveries_leave_no_entry_of_keys() {
    run(|| async {
        let server = RedisServer::start();
        let worker = worker(&server, "entries", 2).await;
        let client = client(&server, "entries").await;
        let mut connection = server.connection();
        let futures = client.map_task::<Add>((0..50).map(|i| (i, i)));
        let sums = client.gather(&futures).await.unwrap();
        assert_eq!(sums, (0..50).map(|i| 2 * i).collect::<Vec<_>>());
        let executor = client.executor().clone();
        let deleted = taskweave::ExecutorExt::timeout(&*executor, Duration::from_secs(10), async {
            while entry_of_keys(&mut connection, "entries") > 0 {
                executor.sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(deleted.is_ok(), "entry_of keys of reported deliveries were left behind");
        // The futures are still held: the outputs are kept, only the keys are gone.
        assert_eq!(client.gather(&futures).await.unwrap()[49], 98);
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}

/// A small output is written once, in its completion: the client keeps it, and writes it
/// under its result key only when a dependent task (whose worker reads it there) is sent.
#[test]
fn small_outputs_are_written_once_and_stored_only_for_dependents() {
    run(|| async {
        let server = RedisServer::start();
        let worker = worker(&server, "once", 2).await;
        let client = client(&server, "once").await;
        let mut connection = server.connection();
        let small = client.map_task::<Add>((0..10).map(|i| (i, i)));
        let texts = client.map_task::<crate::tasks::Repeat>([5, 200, 300]);
        client.gather(&small).await.unwrap();
        client.gather(&texts).await.unwrap();
        // Only the 300-letter output (302 bytes of JSON) is over the limit of 256.
        assert_eq!(result_keys(&mut connection), 1, "small outputs live in completions only");
        // Dependents sent after their dependencies finished: the client writes the two
        // outputs they read (and only those), and they get the right inputs.
        let pair = client.after((&small[2], &small[3])).submit_task::<Add>();
        assert_eq!(pair.await.unwrap(), 10);
        assert_eq!(result_keys(&mut connection), 3);
        // Read from Redis again by a second dependent: still there, not written twice.
        let again = client.after((&small[2], &small[3])).submit_task::<Add>();
        assert_eq!(again.await.unwrap(), 10);
        let lengths: Vec<_> = texts
            .iter()
            .map(|text| client.after(text).submit_task::<crate::tasks::Length>())
            .collect();
        assert_eq!(client.gather(&lengths).await.unwrap(), vec![5, 200, 300]);
        assert_eq!(result_keys(&mut connection), 5, "two kept texts written for their dependents");
        // Released: every key this client wrote, or its workers did, is deleted.
        drop((small, texts, lengths));
        let executor = client.executor().clone();
        let deleted = taskweave::ExecutorExt::timeout(&*executor, Duration::from_secs(10), async {
            while result_keys(&mut connection) > 0 {
                executor.sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(deleted.is_ok(), "released results were not deleted");
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}

/// A small output the client wrote for a first dependent can be gone from Redis by the next
/// one (evicted, expired while the client was away, or lost with a restart without
/// persistence): the client still has its copy and writes it again, so later dependents get
/// it instead of failing with "the result of its dependency is gone from Redis".
#[test]
fn a_small_output_is_written_again_for_dependents_after_its_first_write_is_gone() {
    run(|| async {
        let mut server = RedisServer::start();
        let worker = worker(&server, "again", 2).await;
        let client = client(&server, "again").await;
        let text = client.submit_task::<crate::tasks::Repeat>(10);
        let first = client.after(&text).submit_task::<crate::tasks::Length>();
        assert_eq!(first.await.unwrap(), 10);
        // The write for the first dependent goes (the client holds `text` throughout), as
        // an eviction or an expiry would take it.
        let mut connection = server.connection();
        let keys: Vec<String> =
            redis::cmd("KEYS").arg("taskweave:result:*").query(&mut connection).unwrap();
        assert_eq!(keys.len(), 1, "the output written for the first dependent");
        let () = redis::cmd("DEL").arg(&keys).query(&mut connection).unwrap();
        let second = client.after(&text).submit_task::<crate::tasks::Length>();
        assert_eq!(second.await.unwrap(), 10, "a dependent sent after the write was gone");
        // Redis restarts without persistence: everything it had is gone.
        server.restart();
        let third = client.after(&text).submit_task::<crate::tasks::Length>();
        assert_eq!(third.await.unwrap(), 10, "a dependent sent after a restart");
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}

/// A result the client holds lives in Redis as long as it holds it, however short
/// `result_ttl` (which is for the results of clients that die): the client renews it, so a
/// dependent submitted long after its input finished reads it instead of failing with "the
/// result of its dependency is gone from Redis".
#[test]
fn a_held_result_outlives_result_ttl_for_later_dependents() {
    run(|| async {
        let server = RedisServer::start();
        let worker = worker(&server, "renewed", 2).await;
        let transport = RedisTransport::builder(server.url())
            .queue("renewed")
            .result_ttl(Duration::from_secs(2))
            .connect()
            .await
            .unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        // Over `INLINE_RESULT_MAX`: the worker writes it under its result key.
        let text = client.submit_task::<crate::tasks::Repeat>(1000);
        let first = client.after(&text).submit_task::<crate::tasks::Length>();
        assert_eq!(first.await.unwrap(), 1000);
        // Over twice the result_ttl goes by while the client holds `text` (a ttl long enough
        // for the renewals, every third of it, to come in time on a loaded machine).
        client.executor().sleep(Duration::from_secs(5)).await;
        let later = client.after(&text).submit_task::<crate::tasks::Length>();
        assert_eq!(later.await.unwrap(), 1000, "a dependent sent after result_ttl");
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}

/// A dependent that waits in the queue longer than `result_ttl` (its one worker busy) still
/// reads its inputs, a small one the client wrote for it and a large one its worker wrote:
/// the client renews both while it holds them.
#[test]
fn a_dependent_queued_past_result_ttl_still_reads_its_inputs() {
    run(|| async {
        let server = RedisServer::start();
        let worker = worker(&server, "queued", 1).await;
        let transport = RedisTransport::builder(server.url())
            .queue("queued")
            .result_ttl(Duration::from_secs(2))
            .connect()
            .await
            .unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        let small = client.submit_task::<crate::tasks::Repeat>(10);
        let large = client.submit_task::<crate::tasks::Repeat>(1000);
        client.gather((&small, &large)).await.unwrap();
        let busy = client.submit_task::<Sleepy>((5000, 1));
        let lengths = [
            client.after(&small).submit_task::<crate::tasks::Length>(),
            client.after(&large).submit_task::<crate::tasks::Length>(),
        ];
        assert_eq!(busy.await.unwrap(), 1);
        assert_eq!(client.gather(&lengths).await.unwrap(), vec![10, 1000]);
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}

/// A scattered value stays in the client's process: a registered task that depends on it
/// on Redis fails saying so and what to do, rather than naming only the dependency's key.
#[test]
fn a_task_after_a_scattered_value_fails_saying_why() {
    run(|| async {
        let server = RedisServer::start();
        let worker = worker(&server, "scattered", 1).await;
        let client = client(&server, "scattered").await;
        let text = client.scatter("hello".to_owned());
        let length = client.after(&text).submit_task::<crate::tasks::Length>();
        match length.await {
            Err(TaskError::Failed { message, .. }) => assert!(
                message.contains("client.scatter") && message.contains("task's input"),
                "{message}"
            ),
            other => panic!("expected a failure naming scatter, got {other:?}"),
        }
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}

#[test]
fn a_wrong_password_is_a_clear_error() {
    run(|| async {
        let server = RedisServer::start_with(crate::ServerOptions {
            password: Some("right-secret".into()),
            ..Default::default()
        });
        let error = RedisTransport::connect(server.url_with_password("wrong")).await.unwrap_err();
        assert!(matches!(error, Error::Transport(_)), "{error:?}");
        let message = error.to_string();
        assert!(message.starts_with("transport failed: redis connect failed:"), "{message}");
        assert!(message.contains("the server refused the credentials"), "{message}");
        assert!(message.contains("check the user and password in the URL"), "{message}");
        let worker_error = taskweave::worker::Worker::builder()
            .redis(server.url_with_password("wrong"))
            .register::<Add>()
            .start()
            .await
            .unwrap_err();
        assert!(worker_error.to_string().contains("refused the credentials"), "{worker_error}");
        // The right password works end to end.
        let worker = worker(&server, "default", 1).await;
        let client = client(&server, "default").await;
        assert_eq!(client.submit_task::<Add>((20, 22)).await.unwrap(), 42);
        client.close().await.unwrap();
        // An ACL user in the URL (`redis://user:password@host`) works too.
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("alice")
            .arg("on")
            .arg(">alice-secret")
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query(&mut server.connection())
            .unwrap();
        let acl_url = format!("redis://alice:alice-secret@127.0.0.1:{}", server.port());
        let transport = RedisTransport::connect(acl_url.clone()).await.unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        assert_eq!(client.submit_task::<Add>((1, 2)).await.unwrap(), 3);
        client.close().await.unwrap();
        let wrong_user = format!("redis://mallory:alice-secret@127.0.0.1:{}", server.port());
        let error = RedisTransport::connect(wrong_user).await.unwrap_err();
        assert!(error.to_string().contains("refused the credentials"), "{error}");
        worker.shutdown();
        worker.stopped().await;
    });
}

#[test]
fn dependents_read_their_inputs_from_redis_by_key() {
    run(|| async {
        let server = RedisServer::start();
        let worker = worker(&server, "deps", 2).await;
        let client = client(&server, "deps").await;
        let a = client.submit_task::<Add>((1, 2));
        let b = client.submit_task::<Add>((3, 4));
        // A tuple of dependencies gives a tuple input.
        let pair = client.after((&a, &b)).submit_task::<Add>();
        // A list gives a list.
        let parts = client.map_task::<Add>((0..5).map(|i| (i, i)));
        let total = client.after(&parts).submit_task::<crate::tasks::Sum>();
        // One dependency: its output is the input, or a one-element list.
        let again = client.after(&total).submit_task::<crate::tasks::Sum>();
        assert_eq!(pair.await.unwrap(), 10);
        assert_eq!(total.await.unwrap(), 20);
        assert_eq!(again.await.unwrap(), 20);
        // A failed dependency fails the dependent with the root error, without running it.
        let broken = client.submit_task::<Parse>("x".into());
        let after_broken = client.after(&broken).submit_task::<Add>();
        match after_broken.await {
            Err(TaskError::DependencyFailed { root, .. }) => {
                assert!(matches!(*root, TaskError::Failed { .. }), "{root:?}")
            }
            other => panic!("expected DependencyFailed, got {other:?}"),
        }
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}

#[cfg(feature = "redis-tls")]
#[test]
fn tls_with_a_private_ca_works_end_to_end() {
    run(|| async {
        let server =
            RedisServer::start_with(crate::ServerOptions { tls: true, ..Default::default() });
        let ca = server.ca_certificate();
        let worker = crate::tasks::register_all(
            taskweave::worker::Worker::builder()
                .redis(server.url())
                .tls_root_certificate(ca.clone())
                .queue("tls"),
        )
        .start()
        .await
        .unwrap();
        let transport = RedisTransport::builder(server.url())
            .queue("tls")
            .tls_root_certificate(ca)
            .connect()
            .await
            .unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        assert_eq!(client.submit_task::<Add>((40, 2)).await.unwrap(), 42);
        // Without the CA, the server's certificate is not trusted: a clear connect error.
        let error = RedisTransport::connect(server.url()).await.unwrap_err();
        assert!(
            error.to_string().starts_with("transport failed: redis connect failed:"),
            "{error}"
        );
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}

#[test]
fn closing_a_client_deletes_the_entries_of_its_unfinished_tasks() {
    run(|| async {
        let server = RedisServer::start();
        let client = client(&server, "closing").await;
        // No worker runs: the entries wait in the stream.
        let futures = client.map_task::<Add>((0..30).map(|i| (i, i)));
        let mut connection = server.connection();
        let length = |connection: &mut redis::Connection| -> usize {
            redis::cmd("XLEN").arg("taskweave:closing:tasks").query(connection).unwrap()
        };
        let executor = client.executor().clone();
        let enqueued =
            taskweave::ExecutorExt::timeout(&*executor, Duration::from_secs(10), async {
                while length(&mut connection) < 30 {
                    executor.sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
        assert!(enqueued.is_ok(), "the entries were not enqueued");
        client.close().await.unwrap();
        for future in &futures {
            assert!(future.await.unwrap_err().is_cancelled());
        }
        assert_eq!(length(&mut connection), 0, "a worker started now would find nothing to run");
    });
}

/// With the default prefetch a worker takes about 20 ms of measured work per slot ahead, and
/// gives back what it took ahead once its running tasks outlast that: a queue of long tasks
/// spreads over every worker, even one that joins later, and even right after short tasks.
/// With the old default (8 entries ahead) the first worker took 10 of these 12 tasks and ran
/// them in 5 rounds while the other ran 2 and idled (issue 19: 12 tasks of 5 s on 2 workers
/// took 25 s instead of 15); without the give-back, a worker that had run short tasks took
/// all 12.
#[test]
fn long_tasks_spread_over_every_worker_with_the_default_prefetch() {
    run(|| async {
        let server = RedisServer::start();
        let first = worker(&server, "long", 2).await;
        let client = client(&server, "long").await;
        // Short tasks first: a worker that measured only those takes many entries ahead.
        let short = client.map_task::<Add>((0..200).map(|i| (i, 1)));
        client.gather(&short).await.unwrap();
        drop(short);
        // 4 slots once the second worker runs: 6 tasks each when spread; the first worker
        // kept 10 with the old default. Counted from the task stream (who ran what), not
        // timed: a loaded machine delays the second worker's start, not the spread.
        let futures = client.map_task::<Sleepy>((0..12).map(|i| (400, i)));
        let second = worker(&server, "long", 2).await;
        let values = client.gather(&futures).await.unwrap();
        assert_eq!(values, (0..12).collect::<Vec<i64>>());
        let keys: std::collections::HashSet<_> =
            futures.iter().map(|future| future.key().clone()).collect();
        let ran_by = |worker: &taskweave::worker::Worker| {
            client
                .task_stream(..)
                .iter()
                .filter(|record| keys.contains(&record.key))
                .filter(|record| {
                    record.worker.as_deref().is_some_and(|name| name.starts_with(worker.name()))
                })
                .count()
        };
        let (by_first, by_second) = (ran_by(&first), ran_by(&second));
        assert_eq!(by_first + by_second, 12, "every run names its worker");
        assert!(
            by_first >= 3 && by_second >= 3,
            "12 tasks of 400 ms on 2 workers of 2 slots: the first ran {by_first}, the second \
             {by_second} (6 and 6 when spread; 10 and 2 when the first keeps what it took)"
        );
        client.close().await.unwrap();
        for worker in [&first, &second] {
            worker.shutdown();
        }
        first.stopped().await;
        second.stopped().await;
    });
}
