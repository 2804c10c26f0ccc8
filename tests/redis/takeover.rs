//! Taking over a dead worker's entries (issue 19): promptly even while the live workers have
//! a backlog, and forgetting the dead worker's consumer afterwards. The dead worker is a
//! consumer that reads entries with `XREADGROUP` and never acknowledges them.

use std::time::{Duration, Instant};

use taskweave::Client;
use taskweave::worker::Worker;

use crate::tasks::{Add, Sleepy, register_all};
use crate::{RedisServer, client, run, within};

/// The live worker's reclaim time.
const RECLAIM_AFTER: Duration = Duration::from_millis(500);
/// Its reclaim loop's period: half the reclaim time.
const RECLAIM_EVERY: Duration = Duration::from_millis(250);
/// Time for the round trips and for the task running when the orphans are taken over.
const SLACK: Duration = Duration::from_millis(1500);

/// Waits (bounded) until `queue`'s stream holds `count` entries.
async fn stream_holds(client: &Client, server: &RedisServer, queue: &str, count: usize) {
    let stream = format!("taskweave:{queue}:tasks");
    let executor = client.executor().clone();
    let mut connection = server.connection();
    within(
        client,
        Duration::from_secs(30),
        "the entries in the stream",
        Box::pin(async move {
            loop {
                let length: usize = redis::cmd("XLEN").arg(&stream).query(&mut connection).unwrap();
                if length >= count {
                    return;
                }
                executor.sleep(Duration::from_millis(10)).await;
            }
        }),
    )
    .await;
}

/// A consumer `ghost` of `queue`'s group reads `count` entries and never acknowledges them:
/// a worker that died holding them.
fn ghost_takes(server: &RedisServer, queue: &str, count: usize) {
    let stream = format!("taskweave:{queue}:tasks");
    let mut connection = server.connection();
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("workers")
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut connection);
    if let Err(error) = created {
        assert_eq!(error.code(), Some("BUSYGROUP"), "{error}");
    }
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("ghost")
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query(&mut connection)
        .unwrap();
    assert_eq!(read.keys[0].ids.len(), count, "the ghost took {count} entries");
}

/// The consumer names of `queue`'s group.
fn consumers(server: &RedisServer, queue: &str) -> Vec<String> {
    let mut connection = server.connection();
    let reply: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(format!("taskweave:{queue}:tasks"))
        .arg("workers")
        .query(&mut connection)
        .unwrap();
    reply.consumers.into_iter().map(|consumer| consumer.name).collect()
}

/// Defect 2: takeover used to fill only free slots, and a worker with a backlog refilled
/// every freed slot with new entries first, so a dead worker's entries waited as long as the
/// backlog lasted. They are now taken over within the reclaim time plus one reclaim period,
/// and run before the backlog.
#[test]
fn a_dead_workers_entries_are_taken_over_while_the_live_worker_has_a_backlog() {
    let server = RedisServer::start();
    run(move || async move {
        let client = client(&server, "backlog").await;
        let orphans = client.map_task::<Add>((0..3).map(|i| (i, i)));
        stream_holds(&client, &server, "backlog", 3).await;
        ghost_takes(&server, "backlog", 3);
        let orphaned = Instant::now();
        // A backlog of 40 tasks of 100 ms for a worker that runs one at a time: 4 s, longer
        // than the bound below, so it lasts the whole test.
        let backlog = client.map_task::<Sleepy>((0..40).map(|i| (100, i)));
        stream_holds(&client, &server, "backlog", 43).await;
        let worker = register_all(
            Worker::builder()
                .redis(server.url())
                .queue("backlog")
                .concurrency(1)
                .reclaim_after(RECLAIM_AFTER),
        )
        .start()
        .await
        .unwrap();
        let bound = RECLAIM_AFTER + RECLAIM_EVERY + SLACK;
        let values = within(
            &client,
            Duration::from_secs(60),
            "the orphaned tasks",
            Box::pin(client.gather(&orphans)),
        )
        .await
        .unwrap();
        let took = orphaned.elapsed();
        assert_eq!(values, [0, 2, 4]);
        assert!(took <= bound, "the orphaned entries took {took:?}, over {bound:?}");
        let unfinished = backlog.iter().filter(|future| !future.is_done()).count();
        assert!(unfinished > 0, "the backlog lasted while the orphans were taken over");
        let values = client.gather(&backlog).await.unwrap();
        assert_eq!(values, (0..40).collect::<Vec<i64>>());
        worker.shutdown();
        worker.stopped().await;
        client.close().await.unwrap();
    });
}

/// Defect 7: a dead worker's consumer stayed in the group forever. Once its entries are
/// taken over and its heartbeat has expired (it never had one here), a live worker removes
/// it.
#[test]
fn a_dead_workers_consumer_leaves_the_group_once_its_entries_are_taken_over() {
    let server = RedisServer::start();
    run(move || async move {
        let client = client(&server, "forget").await;
        let orphans = client.map_task::<Add>((0..3).map(|i| (i, i)));
        stream_holds(&client, &server, "forget", 3).await;
        ghost_takes(&server, "forget", 3);
        let worker = register_all(
            Worker::builder()
                .redis(server.url())
                .queue("forget")
                .concurrency(1)
                .reclaim_after(RECLAIM_AFTER),
        )
        .start()
        .await
        .unwrap();
        let values = within(
            &client,
            Duration::from_secs(30),
            "the orphaned tasks",
            Box::pin(client.gather(&orphans)),
        )
        .await
        .unwrap();
        assert_eq!(values, [0, 2, 4]);
        let executor = client.executor().clone();
        let server = &server;
        within(
            &client,
            Duration::from_secs(30),
            "the dead consumer's removal",
            Box::pin(async move {
                while consumers(server, "forget").iter().any(|name| name == "ghost") {
                    executor.sleep(Duration::from_millis(20)).await;
                }
            }),
        )
        .await;
        // The live worker stays.
        assert_eq!(consumers(server, "forget"), [worker.name()]);
        worker.shutdown();
        worker.stopped().await;
        client.close().await.unwrap();
    });
}
