//! Redis Cluster mode (`RedisConfig::cluster`, issue 19 "scale-out past one Redis") against
//! a real cluster of three masters on loopback (`tests/support/redis_cluster.rs`): queues on
//! different shards, a dead worker's entries taken over, a master restarted mid-run, the
//! admin calls, and what cluster mode refuses.

use std::time::Duration;

use futures::StreamExt;
use taskweave::transport::redis::{RedisAdmin, RedisConfig, RedisTransport};
use taskweave::worker::Worker;
use taskweave::{Client, Error};

use crate::redis_cluster::RedisCluster;
use crate::tasks::{Add, register_all};
use crate::{run, within};

/// The summary form of `XPENDING`: count, smallest and largest id, per-consumer counts.
type Summary = (u64, Option<String>, Option<String>, Option<Vec<(String, u64)>>);

/// The tasks per queue of the throughput tests.
const TASKS: i64 = 1_000;

/// The config of `queue` on `cluster`.
fn config(cluster: &RedisCluster, queue: &str) -> RedisConfig {
    RedisConfig::cluster(cluster.urls()).queue(queue)
}

/// A client on `cluster` for `queue`.
async fn client(cluster: &RedisCluster, queue: &str) -> Client {
    let transport = RedisTransport::builder_with(config(cluster, queue))
        .connect()
        .await
        .expect("connect the client to the cluster");
    Client::builder().transport(transport).build().await.expect("build a cluster client")
}

/// An in-process worker for `queue` on `cluster`.
async fn worker(cluster: &RedisCluster, queue: &str) -> Worker {
    register_all(
        Worker::builder()
            .redis_config(config(cluster, queue))
            .concurrency(4)
            .reclaim_after(Duration::from_millis(500)),
    )
    .start()
    .await
    .expect("start a worker on the cluster")
}

/// The hash-tagged task stream of `queue`.
fn stream(queue: &str) -> String {
    format!("{{taskweave:{queue}}}:tasks")
}

/// Two queue names whose keys live on different masters.
fn queues_on_two_masters(cluster: &RedisCluster) -> (String, usize, String, usize) {
    let first = "images".to_owned();
    let first_node = cluster.node_of(&stream(&first));
    for i in 0..1000 {
        let second = format!("mail-{i}");
        let second_node = cluster.node_of(&stream(&second));
        if second_node != first_node {
            return (first, first_node, second, second_node);
        }
    }
    panic!("no queue name hashed to another master");
}

/// Submits `TASKS` additions to `client` and checks every value.
async fn run_many(client: &Client, offset: i64) {
    let futures = client.map_task::<Add>((0..TASKS).map(|i| (i, offset)));
    let values = within(
        client,
        Duration::from_secs(90),
        "gathering the tasks of one queue",
        Box::pin(client.gather(&futures)),
    )
    .await
    .expect("every task gives its value");
    assert_eq!(values, (0..TASKS).map(|i| i + offset).collect::<Vec<i64>>());
}

/// Every key of a queue carries its hash tag, so one queue's keys sit on one master; two
/// queues whose tags hash to different masters each run 1,000 tasks on their own shard,
/// every value right.
#[test]
fn two_queues_on_two_masters_each_run_a_thousand_tasks() {
    let cluster = RedisCluster::start(3);
    run(move || async move {
        let (first, first_node, second, second_node) = queues_on_two_masters(&cluster);
        // Every key of a queue shares the slot of its tag.
        let slot = cluster.slot_of(&format!("{{taskweave:{first}}}"));
        for suffix in [":tasks", ":starts", ":dead", ":workers", ":seq", ":entry:c1:1:1"] {
            assert_eq!(cluster.slot_of(&format!("{{taskweave:{first}}}{suffix}")), slot);
        }
        assert_ne!(first_node, second_node);

        let (client_a, client_b) =
            (client(&cluster, &first).await, client(&cluster, &second).await);
        let (worker_a, worker_b) =
            (worker(&cluster, &first).await, worker(&cluster, &second).await);
        futures::join!(run_many(&client_a, 0), run_many(&client_b, 1_000_000));

        // The streams live on the masters their tags hash to, and nowhere else.
        for (queue, node) in [(&first, first_node), (&second, second_node)] {
            for index in 0..3 {
                let mut connection = cluster.connection(index);
                let exists: redis::RedisResult<i64> =
                    redis::cmd("EXISTS").arg(stream(queue)).query(&mut connection);
                if index == node {
                    assert_eq!(exists.unwrap(), 1, "{queue}'s stream is on node {node}");
                } else {
                    let error = exists.expect_err("another master redirects");
                    assert_eq!(error.code(), Some("MOVED"), "{error}");
                }
            }
        }
        // The admin's queue list visits every master.
        let admin =
            RedisAdmin::builder("").redis_config(config(&cluster, &first)).connect().await.unwrap();
        let queues = admin.queues().await.unwrap();
        assert_eq!(queues, {
            let mut both = vec![first.clone(), second.clone()];
            both.sort();
            both
        });
        assert_eq!(admin.for_queue(&second).queue_stats().await.unwrap().dead_letters, 0);

        for worker in [&worker_a, &worker_b] {
            worker.shutdown();
            worker.stopped().await;
            assert!(worker.error().is_none(), "{:?}", worker.error());
        }
        client_a.close().await.unwrap();
        client_b.close().await.unwrap();
    });
}

/// A worker that died holding entries (a consumer that took them and never acknowledged
/// them) has them taken over by a live worker of the same queue, through the cluster
/// client.
#[test]
fn a_dead_workers_entries_are_taken_over_on_a_cluster() {
    let cluster = RedisCluster::start(3);
    run(move || async move {
        let queue = "takeover";
        let client = client(&cluster, queue).await;
        let futures = client.map_task::<Add>((0..20).map(|i| (i, 1)));
        let key = stream(queue);
        let mut connection = cluster.cluster_connection();
        // Bounded wait for the 20 entries, then the ghost takes 5 and dies.
        let executor = client.executor().clone();
        within(
            &client,
            Duration::from_secs(30),
            "the entries in the stream",
            Box::pin(async {
                loop {
                    let length: usize =
                        redis::cmd("XLEN").arg(&key).query(&mut connection).unwrap();
                    if length >= 20 {
                        return;
                    }
                    executor.sleep(Duration::from_millis(10)).await;
                }
            }),
        )
        .await;
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
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
            .arg(5)
            .arg("STREAMS")
            .arg(&key)
            .arg(">")
            .query(&mut connection)
            .unwrap();
        assert_eq!(read.keys[0].ids.len(), 5, "the ghost took 5 entries");

        let worker = worker(&cluster, queue).await;
        let values = within(
            &client,
            Duration::from_secs(60),
            "the tasks, the ghost's included",
            Box::pin(client.gather(&futures)),
        )
        .await
        .unwrap();
        assert_eq!(values, (1..=20).collect::<Vec<i64>>());
        let pending: Summary =
            redis::cmd("XPENDING").arg(&key).arg("workers").query(&mut connection).unwrap();
        assert_eq!(pending.0, 0, "nothing is left pending: the ghost's entries were taken over");
        worker.shutdown();
        worker.stopped().await;
        client.close().await.unwrap();
    });
}

/// The master that holds a queue is killed and restarted (append-only persistence on) while
/// its tasks run: the client and the worker reconnect through the cluster client and every
/// task gives its value, none lost.
#[test]
fn a_master_restarted_mid_run_loses_no_task() {
    let mut cluster = RedisCluster::start(3);
    let queue = "restart";
    let node = cluster.node_of(&stream(queue));
    let (ask_restart, restart_asked) = std::sync::mpsc::channel::<()>();
    let (done, mut finished) = futures::channel::mpsc::unbounded::<&'static str>();
    let urls = cluster.urls();
    let restarter = std::thread::spawn(move || {
        restart_asked.recv().expect("the test asks for the restart");
        cluster.kill(node);
        done.unbounded_send("killed").unwrap();
        cluster.start_again(node);
        done.unbounded_send("restarted").unwrap();
        cluster
    });
    run(move || async move {
        let redis = RedisConfig::cluster(urls).queue(queue);
        let transport = RedisTransport::builder_with(redis.clone()).connect().await.unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        let worker = register_all(
            Worker::builder()
                .redis_config(redis)
                .concurrency(4)
                .reclaim_after(Duration::from_millis(500)),
        )
        .start()
        .await
        .unwrap();
        let first = client.map_task::<Add>((0..TASKS).map(|i| (i, 0)));
        // Some of them done, then the master goes down and comes back.
        within(
            &client,
            Duration::from_secs(60),
            "the first task",
            Box::pin(async { first[0].clone().await.unwrap() }),
        )
        .await;
        ask_restart.send(()).unwrap();
        let second = client.map_task::<Add>((0..TASKS).map(|i| (i, 7)));
        let said =
            within(&client, Duration::from_secs(30), "the kill", Box::pin(finished.next())).await;
        assert_eq!(said, Some("killed"));
        // The master died while tasks of the second batch were still to run.
        let unfinished = second.iter().filter(|future| !future.is_done()).count();
        assert!(unfinished > 0, "the master was killed mid-run");
        let said =
            within(&client, Duration::from_secs(60), "the restart", Box::pin(finished.next()))
                .await;
        assert_eq!(said, Some("restarted"));
        for (futures, offset) in [(&first, 0), (&second, 7)] {
            let values = within(
                &client,
                Duration::from_secs(90),
                "every task after the restart",
                Box::pin(client.gather(futures)),
            )
            .await
            .expect("no task lost");
            assert_eq!(values, (0..TASKS).map(|i| i + offset).collect::<Vec<i64>>());
        }
        worker.shutdown();
        worker.stopped().await;
        client.close().await.unwrap();
    });
    drop(restarter.join().expect("the restart thread"));
}

/// What cluster mode refuses, each with a clear error: names that would break the hash tag,
/// and no node at all.
#[test]
fn cluster_mode_refuses_bad_names_clearly() {
    let cluster = RedisCluster::start(3);
    run(move || async move {
        let braces = RedisTransport::builder_with(config(&cluster, "a{b}")).connect().await;
        match braces {
            Err(Error::InvalidConfig { message }) => {
                assert!(message.contains("hash tag"), "{message}")
            }
            other => panic!("a queue name with braces is refused, got {:?}", other.map(|_| ())),
        }
        let none = RedisTransport::builder_with(RedisConfig::cluster(Vec::<String>::new()))
            .connect()
            .await;
        match none {
            Err(Error::InvalidConfig { message }) => {
                assert!(message.contains("no node"), "{message}")
            }
            other => panic!("a cluster without nodes is refused, got {:?}", other.map(|_| ())),
        }
        let worker =
            register_all(Worker::builder().redis_config(config(&cluster, "{x"))).start().await;
        assert!(matches!(worker, Err(Error::InvalidConfig { .. })), "{:?}", worker.err());
    });
}

/// The key of a coordination primitive's leases, as the backend names it.
fn leases_key(kind: &str, name: &str) -> String {
    format!("taskweave:coord:{{{kind}:{name}}}:leases")
}

/// Two lock names whose keys live on different masters.
fn locks_on_two_masters(cluster: &RedisCluster) -> (String, String) {
    let first = "door".to_owned();
    let first_node = cluster.node_of(&leases_key("lock", &first));
    for i in 0..1000 {
        let second = format!("gate-{i}");
        if cluster.node_of(&leases_key("lock", &second)) != first_node {
            return (first, second);
        }
    }
    panic!("no lock name hashed to another master");
}

/// The coordination primitives on a cluster: each name's keys share one hash tag, so its
/// scripts run on one node, and names spread over the masters. Two clients of different
/// queues (and one that computes in-process, with `coordination_redis` on the cluster) share
/// locks on two masters, a semaphore, a queue, a variable, an event, a topic and datasets.
#[test]
fn coordination_primitives_work_on_a_cluster() {
    let cluster = RedisCluster::start(3);
    run(move || async move {
        let (first, second) = locks_on_two_masters(&cluster);
        let a = client(&cluster, "coord-a").await;
        let b = client(&cluster, "coord-b").await;
        let local = Client::builder()
            .workers(1)
            .coordination_redis(RedisConfig::cluster(cluster.urls()))
            .build()
            .await
            .expect("coordination_redis on a cluster");

        // Locks on two masters: one holder each, across clients.
        for name in [&first, &second] {
            let held = a.lock(name.as_str()).acquire().await.expect("a lock on the cluster");
            assert!(b.lock(name.as_str()).try_acquire().await.unwrap().is_none(), "{name}");
            assert!(local.lock(name.as_str()).try_acquire().await.unwrap().is_none(), "{name}");
            assert!(b.lock(name.as_str()).is_locked().await.unwrap());
            held.release().await.unwrap();
            let taken = within(
                &b,
                Duration::from_secs(10),
                "b takes the released lock",
                Box::pin(b.lock(name.as_str()).acquire()),
            )
            .await
            .expect("the lock is free again");
            taken.release().await.unwrap();
        }

        // A semaphore of two, over three clients.
        let one = a.semaphore("pool", 2).unwrap().acquire().await.unwrap();
        let two = local.semaphore("pool", 2).unwrap().acquire().await.unwrap();
        assert!(b.semaphore("pool", 2).unwrap().try_acquire().await.unwrap().is_none());
        assert_eq!(b.semaphore("pool", 2).unwrap().held().await.unwrap(), 2);
        drop((one, two));

        // A queue, a variable, an event and a topic, across clients.
        let jobs = a.queue::<String>("jobs");
        for job in ["x", "y", "z"] {
            jobs.put(job.into()).await.unwrap();
        }
        assert_eq!(b.queue::<String>("jobs").get_batch(2).await.unwrap(), ["x", "y"]);
        assert_eq!(local.queue::<String>("jobs").get().await.unwrap(), "z");
        a.variable::<f64>("rate").set(0.5).await.unwrap();
        assert_eq!(b.variable::<f64>("rate").get().await.unwrap(), 0.5);
        let (go, start) = (b.event("go"), a.event("go"));
        let waiter = go.wait_timeout(Duration::from_secs(10));
        let (woken, set) = futures::join!(waiter, start.set());
        set.unwrap();
        assert!(woken.unwrap(), "the event's waiter is woken");
        let mut feed = b.subscribe::<u32>("progress").await.unwrap();
        for step in 1..=3_u32 {
            a.log_event("progress", step).await.unwrap();
        }
        let seen = within(
            &b,
            Duration::from_secs(10),
            "the topic's messages",
            Box::pin(async move {
                let mut seen = Vec::new();
                while seen.len() < 3 {
                    seen.push(feed.next().await.expect("the feed goes on"));
                }
                seen
            }),
        )
        .await;
        assert_eq!(seen, [1, 2, 3]);

        // Datasets: each name's keys on its slot, the index of names on another.
        for name in ["alpha", "beta", "gamma"] {
            a.publish_dataset(name, &a.scatter(name.len())).await.unwrap();
        }
        assert_eq!(local.list_datasets().await.unwrap(), ["alpha", "beta", "gamma"]);
        assert_eq!(b.dataset::<usize>("gamma").await.unwrap().await.unwrap(), 5);
        for name in ["alpha", "beta", "gamma"] {
            b.unpublish_dataset(name).await.unwrap();
        }
        assert!(a.list_datasets().await.unwrap().is_empty());

        for client in [a, b, local] {
            client.close().await.unwrap();
        }
    });
}

/// The scripts that reach keys named by a prefix (`hand_back.lua`, `requeue.lua`,
/// `dead_letter.lua`) stay within the queue's slot on a cluster: a worker stopped while it
/// holds entries taken ahead hands them back and another runs them; an undecodable entry is
/// dead-lettered, requeued and purged through the admin calls.
#[test]
fn hand_back_and_dead_letters_work_on_a_cluster() {
    let cluster = RedisCluster::start(3);
    run(move || async move {
        let queue = "scripts";
        let key = stream(queue);
        let client = client(&cluster, queue).await;
        let executor = client.executor().clone();
        let first = register_all(
            Worker::builder().redis_config(config(&cluster, queue)).concurrency(1).prefetch(8),
        )
        .start()
        .await
        .unwrap();
        let futures = client.map_task::<crate::tasks::Sleepy>((0..6).map(|i| (300, i)));
        let mut connection = cluster.cluster_connection();
        // Bounded wait until the worker holds entries beyond the one it runs.
        within(
            &client,
            Duration::from_secs(30),
            "entries taken ahead",
            Box::pin(async {
                loop {
                    let pending: Summary = redis::cmd("XPENDING")
                        .arg(&key)
                        .arg("workers")
                        .query(&mut connection)
                        .unwrap();
                    if pending.0 >= 3 {
                        return;
                    }
                    executor.sleep(Duration::from_millis(10)).await;
                }
            }),
        )
        .await;
        first.shutdown();
        first.stopped().await;
        let second = worker(&cluster, queue).await;
        let values = within(
            &client,
            Duration::from_secs(60),
            "the tasks handed back",
            Box::pin(client.gather(&futures)),
        )
        .await
        .unwrap();
        assert_eq!(values, (0..6).collect::<Vec<i64>>());

        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("garbage")
            .arg("1")
            .query(&mut connection)
            .unwrap();
        let admin =
            RedisAdmin::builder("").redis_config(config(&cluster, queue)).connect().await.unwrap();
        let dead_letter_count = |admin: RedisAdmin| {
            let executor = executor.clone();
            async move {
                loop {
                    let stats = admin.queue_stats().await.unwrap();
                    if stats.dead_letters == 1 {
                        return;
                    }
                    executor.sleep(Duration::from_millis(10)).await;
                }
            }
        };
        within(
            &client,
            Duration::from_secs(30),
            "the dead letter",
            Box::pin(dead_letter_count(admin.clone())),
        )
        .await;
        assert_eq!(admin.requeue_all_dead_letters().await.unwrap(), 1);
        within(
            &client,
            Duration::from_secs(30),
            "the dead letter again",
            Box::pin(dead_letter_count(admin.clone())),
        )
        .await;
        assert_eq!(admin.purge_dead_letters().await.unwrap(), 1);
        second.shutdown();
        second.stopped().await;
        assert!(second.error().is_none(), "{:?}", second.error());
        client.close().await.unwrap();
    });
}

/// A master killed for good mid-run (no restart), on a cluster with one replica per master:
/// its replica takes over the slots and every task of the queue still gives its value. What
/// the master had not yet copied to its replica when it died (Redis replicates after
/// answering) is found missing by the client's check of its pending tasks and sent again.
#[test]
fn a_replica_takes_over_a_killed_master_and_no_task_is_lost() {
    use crate::redis_cluster::ClusterOptions;
    let mut cluster = RedisCluster::start_with(ClusterOptions {
        masters: 3,
        replicas: 1,
        node_timeout: Duration::from_millis(1_000),
        ..ClusterOptions::default()
    });
    let queue = "failover";
    let key = stream(queue);
    let master = cluster.node_of(&key);
    let (ask_kill, kill_asked) = std::sync::mpsc::channel::<()>();
    // `None` once the master is dead, then the node that serves the slot after the takeover.
    let (done, mut finished) = futures::channel::mpsc::unbounded::<Option<usize>>();
    let urls = cluster.urls();
    let killer = std::thread::spawn(move || {
        kill_asked.recv().expect("the test asks for the kill");
        cluster.kill(master);
        done.unbounded_send(None).unwrap();
        let serving = cluster.wait_for_takeover(master, &key, Duration::from_secs(30));
        done.unbounded_send(Some(serving)).unwrap();
        cluster
    });
    run(move || async move {
        let redis = RedisConfig::cluster(urls).queue(queue);
        let transport = RedisTransport::builder_with(redis.clone()).connect().await.unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        let worker = register_all(
            Worker::builder()
                .redis_config(redis)
                .concurrency(4)
                .reclaim_after(Duration::from_millis(500)),
        )
        .start()
        .await
        .unwrap();
        let first = client.map_task::<Add>((0..TASKS).map(|i| (i, 0)));
        within(
            &client,
            Duration::from_secs(60),
            "the first task",
            Box::pin(async { first[0].clone().await.unwrap() }),
        )
        .await;
        ask_kill.send(()).unwrap();
        let second = client.map_task::<Add>((0..TASKS).map(|i| (i, 7)));
        let said =
            within(&client, Duration::from_secs(30), "the kill", Box::pin(finished.next())).await;
        assert_eq!(said, Some(None), "the killer thread reports the kill");
        // The master died while tasks of the second batch were still to run.
        let unfinished = second.iter().filter(|future| !future.is_done()).count();
        assert!(unfinished > 0, "the master was killed mid-run");
        let serving =
            within(&client, Duration::from_secs(60), "the takeover", Box::pin(finished.next()))
                .await
                .flatten()
                .expect("the killer thread reports the takeover");
        assert_ne!(serving, master, "a replica serves the queue's slot now");
        for (futures, offset) in [(&first, 0), (&second, 7)] {
            let values = within(
                &client,
                Duration::from_secs(90),
                "every task after the takeover",
                Box::pin(client.gather(futures)),
            )
            .await
            .expect("no task lost");
            assert_eq!(values, (0..TASKS).map(|i| i + offset).collect::<Vec<i64>>());
        }
        worker.shutdown();
        worker.stopped().await;
        client.close().await.unwrap();
    });
    drop(killer.join().expect("the killer thread"));
}

/// A cluster that serves TLS only (client ports, bus and replication): clients and workers
/// given `rediss://` nodes and the test CA run a queue's tasks through it, and the admin
/// calls reach it; a plain `redis://` client cannot, and mixed schemes are refused clearly.
#[cfg(feature = "redis-tls")]
#[test]
fn a_tls_cluster_runs_tasks_and_mixed_schemes_are_refused() {
    use crate::redis_cluster::ClusterOptions;
    let cluster =
        RedisCluster::start_with(ClusterOptions { tls: true, ..ClusterOptions::default() });
    run(move || async move {
        let redis = RedisConfig::cluster(cluster.urls())
            .queue("secure")
            .tls_root_certificate(cluster.ca_certificate());
        let transport = RedisTransport::builder_with(redis.clone()).connect().await.unwrap();
        let client = Client::builder().transport(transport).build().await.unwrap();
        let worker = register_all(Worker::builder().redis_config(redis.clone()).concurrency(4))
            .start()
            .await
            .expect("a worker connects to the TLS cluster");
        let futures = client.map_task::<Add>((0..200).map(|i| (i, 1)));
        let values = within(
            &client,
            Duration::from_secs(60),
            "the tasks through the TLS cluster",
            Box::pin(client.gather(&futures)),
        )
        .await
        .expect("every task gives its value");
        assert_eq!(values, (0..200).map(|i| i + 1).collect::<Vec<i64>>());
        let admin = RedisAdmin::builder("")
            .redis_config(redis.clone())
            .connect()
            .await
            .expect("admin over TLS");
        let queues = admin.queues().await.expect("the admin scans every master over TLS");
        assert!(queues.iter().any(|queue| queue.contains("secure")), "{queues:?}");
        worker.shutdown();
        worker.stopped().await;
        client.close().await.unwrap();

        let mut mixed = cluster.urls();
        mixed[0] = mixed[0].replacen("rediss://", "redis://", 1);
        match RedisTransport::builder_with(RedisConfig::cluster(mixed).queue("secure"))
            .connect()
            .await
        {
            Err(Error::InvalidConfig { message }) => {
                assert!(message.contains("same scheme"), "{message}")
            }
            other => panic!("mixed schemes are refused, got {:?}", other.map(|_| ())),
        }
    });
}
