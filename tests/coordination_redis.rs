#![allow(unreachable_pub)]
//! The coordination primitives on the Redis transport, against a real `redis-server`
//! (started per test on a free loopback port): several clients sharing primitives by name,
//! mutual exclusion under 20 concurrent tasks, leases that expire when their holding process
//! is SIGKILLed, timeouts, drops and misuse.
//!
//! The cases of `tests/coordination.rs` submit closures (`submit_async`) as their concurrent
//! tasks, which the Redis transport cannot run (closures do not cross processes); the cases
//! here run their concurrent tasks on the client's executor instead, and spread them over
//! two clients, so that every wake-up crosses Redis.

#[path = "support/lossy_proxy.rs"]
mod lossy_proxy;
#[path = "support/redis_case.rs"]
mod redis_case;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::channel::oneshot;
use lossy_proxy::LossyProxy;
use redis_case::{BOUND, client, run, within};
use redis_server::RedisServer;
use taskweave::transport::redis::RedisTransport;
use taskweave::{Client, Error, ExecutorExt};

/// A wait that is meant to run out.
const SHORT: Duration = Duration::from_millis(50);

/// Runs `future` as its own task on the client's executor; the receiver gets its output.
fn spawn<T: Send + 'static>(
    client: &Client,
    future: impl Future<Output = T> + Send + 'static,
) -> oneshot::Receiver<T> {
    let (sender, receiver) = oneshot::channel();
    client
        .executor()
        .spawn_task(async move {
            let _ = sender.send(future.await);
        })
        .expect("spawn a task");
    receiver
}

/// The problem text of an [`Error::Coordination`], or a failure naming what came instead.
fn problem_of<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Coordination { problem, .. }) => problem,
        other => panic!("expected a coordination error, got {other:?}"),
    }
}

/// 20 concurrent tasks, half on each of two clients, each add 10 times to a counter kept in
/// a Redis variable with a read, a pause and a write under one lock: no update is lost, and
/// nobody is ever inside with another.
#[test]
fn a_lock_gives_mutual_exclusion_to_twenty_tasks_on_two_clients() {
    let server = RedisServer::start();
    let url = server.url();
    run(move || async move {
        let clients = [client(&url).await, client(&url).await];
        clients[0].variable::<u64>("counter").set(0).await.unwrap();
        let inside = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|index| {
                let client = clients[index % 2].clone();
                let inside = Arc::clone(&inside);
                spawn(&clients[index % 2], async move {
                    let (lock, counter) =
                        (client.lock("counter"), client.variable::<u64>("counter"));
                    let mut overlaps = 0;
                    for _ in 0..10 {
                        let guard = lock.acquire().await.unwrap();
                        overlaps += inside.fetch_add(1, Ordering::SeqCst);
                        let seen = counter.get().await.unwrap();
                        client.executor().sleep(Duration::from_millis(1)).await;
                        counter.set(seen + 1).await.unwrap();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        guard.release().await.unwrap();
                    }
                    overlaps
                })
            })
            .collect();
        let overlaps = within(&clients[0], "20 tasks", futures::future::join_all(tasks)).await;
        let overlaps: u32 = overlaps.into_iter().map(|overlaps| overlaps.unwrap()).sum();
        assert_eq!(overlaps, 0, "two holders were inside at once");
        assert_eq!(clients[1].variable::<u64>("counter").get().await.unwrap(), 200, "lost update");
        assert!(!clients[1].lock("counter").is_locked().await.unwrap(), "every lease released");
        for client in clients {
            client.close().await.unwrap();
        }
    });
}

/// 12 tasks over two clients share a semaphore of 3: never more than 3 inside, every task
/// gets in, and a handle asking for another count is refused.
#[test]
fn a_semaphore_never_exceeds_its_leases_across_clients() {
    let server = RedisServer::start();
    let url = server.url();
    run(move || async move {
        let clients = [client(&url).await, client(&url).await];
        let (inside, most) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let tasks: Vec<_> = (0..12)
            .map(|index| {
                let client = clients[index % 2].clone();
                let (inside, most) = (Arc::clone(&inside), Arc::clone(&most));
                spawn(&clients[index % 2], async move {
                    let semaphore = client.semaphore("pool", 3).unwrap();
                    for _ in 0..3 {
                        let lease = semaphore.acquire().await.unwrap();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        client.executor().sleep(Duration::from_millis(2)).await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(lease);
                    }
                })
            })
            .collect();
        for done in within(&clients[0], "12 tasks", futures::future::join_all(tasks)).await {
            done.unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 3, "more than 3 inside at once");
        let other = clients[1].semaphore("pool", 4).unwrap();
        let refused = problem_of(other.try_acquire().await);
        assert!(refused.contains("max_leases 3"), "{refused}");
        // Guards dropped: their releases finish on the executor right after.
        let held = clients[0].semaphore("pool", 3).unwrap();
        within(&clients[0], "the last release", async {
            while held.held().await.unwrap() != 0 {
                clients[0].executor().sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    });
}

/// Queue, variable, event and topic shared by name between two clients, each wait woken by
/// the other client's change.
#[test]
fn two_clients_share_a_queue_a_variable_an_event_and_a_topic() {
    let server = RedisServer::start();
    let url = server.url();
    run(move || async move {
        let (a, b) = (client(&url).await, client(&url).await);

        // Queue: b waits, a puts; order kept; batches; back-pressure.
        let waiting = spawn(&b, {
            let queue = b.queue::<String>("jobs");
            async move { queue.get().await.unwrap() }
        });
        a.queue::<String>("jobs").put("first".into()).await.unwrap();
        assert_eq!(within(&b, "a get woken by a put", waiting).await.unwrap(), "first");
        let jobs = a.queue::<String>("jobs");
        for job in ["x", "y", "z"] {
            jobs.put(job.into()).await.unwrap();
        }
        assert_eq!(b.queue::<String>("jobs").len().await.unwrap(), 3);
        assert_eq!(b.queue::<String>("jobs").get_batch(2).await.unwrap(), ["x", "y"]);
        assert_eq!(b.queue::<String>("jobs").get().await.unwrap(), "z");
        let bounded = a.bounded_queue::<u32>("bounded", 1).unwrap();
        bounded.put(1).await.unwrap();
        assert_eq!(bounded.put_timeout(2, SHORT).await.unwrap(), Err(2), "full: value back");
        let producer = spawn(&a, {
            let bounded = bounded.clone();
            async move { bounded.put(2).await.unwrap() }
        });
        assert_eq!(b.queue::<u32>("bounded").get().await.unwrap(), 1);
        within(&a, "a put woken by a get", producer).await.unwrap();
        assert_eq!(b.queue::<u32>("bounded").get().await.unwrap(), 2);

        // Variable: b's get waits for a's set; a delete makes reads fail until set again.
        let reader = spawn(&b, {
            let rate = b.variable::<f64>("rate");
            async move { rate.get().await.unwrap() }
        });
        a.variable::<f64>("rate").set(0.5).await.unwrap();
        assert_eq!(within(&b, "a get woken by a set", reader).await.unwrap(), 0.5);
        a.variable::<f64>("rate").delete().await.unwrap();
        let deleted = problem_of(b.variable::<f64>("rate").get().await);
        assert!(deleted.contains("deleted"), "{deleted}");

        // Event: every waiter on b is woken by a's set.
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let go = b.event("go");
                spawn(&b, async move { go.wait_timeout(BOUND).await.unwrap() })
            })
            .collect();
        assert!(!b.event("go").is_set().await.unwrap());
        a.event("go").set().await.unwrap();
        for woken in within(&b, "the event's waiters", futures::future::join_all(waiters)).await {
            assert!(woken.unwrap());
        }
        a.event("go").clear().await.unwrap();
        assert!(!b.event("go").wait_timeout(SHORT).await.unwrap());

        // Topic: b's subscription sees a's messages, in order, from its subscription on.
        a.log_event("progress", 0_u32).await.unwrap();
        let mut feed = b.subscribe::<u32>("progress").await.unwrap();
        for step in 1..=5_u32 {
            a.log_event("progress", step).await.unwrap();
        }
        let seen: Vec<u32> = within(&b, "five messages", (&mut feed).take(5).collect()).await;
        assert_eq!(seen, [1, 2, 3, 4, 5]);

        a.close().await.unwrap();
        b.close().await.unwrap();
    });
}

/// Waits that run out answer "no", take nothing, and a wait dropped mid-way leaves the
/// queue's items where they were.
#[test]
fn timeouts_answer_no_and_dropped_waits_take_nothing() {
    let server = RedisServer::start();
    let url = server.url();
    run(move || async move {
        let client = client(&url).await;
        let queue = client.queue::<u32>("q");
        assert_eq!(queue.get_timeout(SHORT).await.unwrap(), None);
        assert_eq!(queue.get_batch_timeout(3, SHORT).await.unwrap(), Vec::<u32>::new());
        queue.put(1).await.unwrap();
        // A batch of 3 that runs out takes what is there.
        assert_eq!(queue.get_batch_timeout(3, SHORT).await.unwrap(), [1]);
        let lock = client.lock("l");
        let guard = lock.acquire().await.unwrap();
        assert!(lock.acquire_timeout(SHORT).await.unwrap().is_none());
        assert!(!client.event("e").wait_timeout(SHORT).await.unwrap());
        assert_eq!(client.variable::<u8>("v").get_timeout(SHORT).await.unwrap(), None);
        // Dropped waits, each at a different point of its round trips.
        for delay_ms in [0, 1, 2, 5, 10, 20] {
            let get = queue.get();
            let _ = client.executor().timeout(Duration::from_millis(delay_ms), get).await;
            let acquire = lock.acquire();
            let _ = client.executor().timeout(Duration::from_millis(delay_ms), acquire).await;
        }
        queue.put(7).await.unwrap();
        drop(guard);
        // Nothing was taken by a dropped get (an item taken in flight is put back), and no
        // lease is left to a dropped acquire.
        assert_eq!(within(&client, "the item", queue.get()).await.unwrap(), 7);
        let again = within(&client, "the lock", lock.acquire()).await.unwrap();
        again.release().await.unwrap();
        client.close().await.unwrap();
    });
}

/// Misuse gets a clear error: another type under a name, releasing twice, a task future in a
/// queue; closing ends waits.
#[test]
fn misuse_gets_clear_errors_and_close_ends_waits() {
    let server = RedisServer::start();
    let url = server.url();
    run(move || async move {
        let (a, b) = (client(&url).await, client(&url).await);
        a.queue::<u32>("typed").put(1).await.unwrap();
        let wrong = problem_of(b.queue::<String>("typed").put("x".into()).await);
        assert!(wrong.contains("u32") && wrong.contains("String"), "{wrong}");
        let lock = a.lock("twice");
        let id = lock.acquire().await.unwrap().detach();
        lock.release(id).await.unwrap();
        let twice = problem_of(lock.release(id).await);
        assert!(twice.contains("not held"), "{twice}");
        let future = a.scatter(3_u8);
        let refused =
            problem_of(a.queue::<taskweave::TaskFuture<u8>>("futures").put(future.clone()).await);
        assert!(refused.contains("await the future"), "{refused}");
        let waiting = spawn(&b, {
            let queue = b.queue::<u32>("never");
            async move { queue.get().await }
        });
        b.close().await.unwrap();
        let closed = within(&a, "the closed wait", waiting).await.unwrap();
        assert!(matches!(closed, Err(Error::Closed { .. })), "{closed:?}");
        a.close().await.unwrap();
    });
}

/// The publisher in [`a_dataset_outlives_the_process_that_published_it`]: run as a child
/// process of this test binary, it computes a value, publishes it, releases its future,
/// closes its client and exits. Does nothing when run as a test of its own.
#[test]
fn publisher_process() {
    let Ok(url) = std::env::var("TASKWEAVE_TEST_DATASET_PUBLISHER") else { return };
    futures::executor::block_on(async move {
        let client = client(&url).await;
        let table = client.scatter((0..5_u64).map(|i| i * i).collect::<Vec<u64>>());
        client.publish_dataset("squares", &table).await.unwrap();
        drop(table);
        client.close().await.unwrap();
    });
    println!("PUBLISHED");
}

/// A dataset published by a process that then closed its client and exited is read by a
/// client of another process, stays until it is unpublished, and is gone after.
#[test]
fn a_dataset_outlives_the_process_that_published_it() {
    let server = RedisServer::start();
    let url = server.url();
    let publisher = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "publisher_process", "--nocapture", "--test-threads=1"])
        .env("TASKWEAVE_TEST_DATASET_PUBLISHER", &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .expect("run the publisher process");
    assert!(publisher.status.success(), "the publisher process failed");
    let said = String::from_utf8_lossy(&publisher.stdout);
    assert!(said.contains("PUBLISHED"), "the publisher published: {said}");
    run(move || async move {
        let reader = client(&url).await;
        assert_eq!(reader.list_datasets().await.unwrap(), ["squares"]);
        let squares = reader.dataset::<Vec<u64>>("squares").await.unwrap();
        assert_eq!(within(&reader, "the dataset", squares).await.unwrap(), [0, 1, 4, 9, 16]);
        let wrong = problem_of(reader.dataset::<String>("squares").await);
        assert!(wrong.contains("Vec<u64>") && wrong.contains("String"), "{wrong}");
        // Still there for a second reader, until it is unpublished.
        let second = client(&url).await;
        assert!(second.dataset::<Vec<u64>>("squares").await.is_ok());
        second.unpublish_dataset("squares").await.unwrap();
        assert!(reader.list_datasets().await.unwrap().is_empty());
        let gone = problem_of(reader.dataset::<Vec<u64>>("squares").await);
        assert!(gone.contains("no dataset"), "{gone}");
        reader.close().await.unwrap();
        second.close().await.unwrap();
    });
}

/// A lease held by a live client outlasts its timeout many times (its guard refreshes it),
/// and ends at once when the guard drops.
#[test]
fn a_held_lease_is_refreshed_past_its_timeout() {
    let server = RedisServer::start();
    let url = server.url();
    run(move || async move {
        let (a, b) = (client(&url).await, client(&url).await);
        // Refreshed every third of a second; a shared machine may delay a refresh a little.
        let timeout = Duration::from_secs(1);
        let guard = a.lock("refreshed").with_lease_timeout(timeout).acquire().await.unwrap();
        let other = b.lock("refreshed");
        assert!(other.acquire_timeout(timeout * 5 / 2).await.unwrap().is_none(), "still held");
        assert!(guard.refresh().await.unwrap());
        drop(guard);
        let taken = within(&b, "the lock after the drop", other.acquire()).await.unwrap();
        taken.release().await.unwrap();
    });
}

/// The holder in [`a_lease_held_by_a_killed_process_is_free_again_within_its_timeout`]: run
/// as a child process of this test binary, it takes the lock, says so, and waits to be
/// killed. Does nothing when run as a test of its own.
#[test]
fn holder_process() {
    let Ok(url) = std::env::var("TASKWEAVE_TEST_LEASE_HOLDER") else { return };
    futures::executor::block_on(async move {
        let client = client(&url).await;
        let lock = client.lock("victim").with_lease_timeout(Duration::from_secs(2));
        let _guard = lock.acquire().await.unwrap();
        println!("HELD");
        client.executor().sleep(Duration::from_secs(600)).await;
    });
}

/// A lease whose holding process is SIGKILLed is free again within its timeout (2 s, plus a
/// re-check), and every task waiting for it gets it in turn.
#[test]
fn a_lease_held_by_a_killed_process_is_free_again_within_its_timeout() {
    let server = RedisServer::start();
    let url = server.url();
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "holder_process", "--nocapture", "--test-threads=1"])
        .env("TASKWEAVE_TEST_LEASE_HOLDER", &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the holder process");
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    let held = lines.by_ref().map_while(Result::ok).any(|line| line.contains("HELD"));
    assert!(held, "the holder process took the lock");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut holder = Kill(holder);
    run(move || async move {
        let client = client(&url).await;
        let lock = client.lock("victim").with_lease_timeout(Duration::from_secs(2));
        assert!(lock.is_locked().await.unwrap(), "held by the other process");
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let lock = lock.clone();
                let executor = Arc::clone(client.executor());
                spawn(&client, async move {
                    let guard = lock.acquire_timeout(BOUND).await.unwrap().expect("the lock");
                    executor.sleep(Duration::from_millis(5)).await;
                    guard.release().await.unwrap();
                    Instant::now()
                })
            })
            .collect();
        assert!(lock.acquire_timeout(Duration::from_millis(500)).await.unwrap().is_none());
        holder.0.kill().expect("SIGKILL the holder"); // std's kill is SIGKILL on Unix
        let killed = Instant::now();
        let mut finished = Vec::new();
        for waiter in waiters {
            finished.push(within(&client, "a waiter", waiter).await.unwrap());
        }
        let first = finished.iter().min().unwrap().duration_since(killed);
        assert!(
            first < Duration::from_secs(2) + Duration::from_secs(6),
            "the lease ended {first:?} after its holder died (timeout 2 s; the default is 30 s)"
        );
        assert!(!lock.is_locked().await.unwrap());
        client.close().await.unwrap();
    });
}

/// A registered task that takes the lock `victim` (lease timeout 2 s) through its worker's
/// client, says so with the event `held`, and keeps it until its process is killed.
struct HoldLock;

impl taskweave::Task for HoldLock {
    const NAME: &'static str = "hold_lock";
    type Input = ();
    type Output = ();
    type Error = Error;
    fn run((): ()) -> Result<(), Error> {
        let client = taskweave::worker_client()?;
        let lock = client.lock("victim").with_lease_timeout(Duration::from_secs(2));
        let _guard = lock.blocking().acquire()?;
        client.event("held").blocking().set()?;
        // Held until the process is killed (an event nobody sets).
        client.event("never").blocking().wait_timeout(Duration::from_secs(600))?;
        Ok(())
    }
}

/// A registered task that waits up to 30 s for the lock `victim`, holds it briefly, and
/// answers whether it got it.
struct TakeLock;

impl taskweave::Task for TakeLock {
    const NAME: &'static str = "take_lock";
    type Input = u32;
    type Output = bool;
    type Error = Error;
    fn run(_: u32) -> Result<bool, Error> {
        let client = taskweave::worker_client()?;
        let lock = client.lock("victim").with_lease_timeout(Duration::from_secs(2));
        let Some(guard) = lock.blocking().acquire_timeout(Duration::from_secs(30))? else {
            return Ok(false);
        };
        assert!(lock.blocking().is_locked()?);
        drop(guard);
        Ok(true)
    }
}

/// The worker process of
/// [`a_lease_held_by_a_killed_worker_process_is_free_again_and_every_waiting_task_finishes`]:
/// runs `HoldLock` from the queue `holder` until killed. Does nothing as a test of its own.
#[test]
fn holder_worker_process() {
    let Ok(url) = std::env::var("TASKWEAVE_TEST_HOLDER_WORKER") else { return };
    futures::executor::block_on(async move {
        taskweave::worker::Worker::builder()
            .redis(url)
            .queue("holder")
            .concurrency(1)
            .register::<HoldLock>()
            .run()
            .await
            .unwrap();
    });
}

/// A registered task in a worker process holds a lock; the process is SIGKILLed; the lease
/// is free again within its timeout (2 s, plus a re-check), and every registered task
/// waiting for it on another worker gets it and finishes.
#[test]
fn a_lease_held_by_a_killed_worker_process_is_free_again_and_every_waiting_task_finishes() {
    use taskweave::worker::Worker;
    let server = RedisServer::start();
    let url = server.url();
    let worker = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "holder_worker_process", "--nocapture", "--test-threads=1"])
        .env("TASKWEAVE_TEST_HOLDER_WORKER", &url)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the worker process");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut worker = Kill(worker);
    run(move || async move {
        let holder = Client::builder()
            .transport(RedisTransport::builder(&url).queue("holder").connect().await.unwrap())
            .build()
            .await
            .unwrap();
        let _held_until_killed = holder.submit_task::<HoldLock>(());
        assert!(holder.event("held").wait_timeout(BOUND).await.unwrap(), "the task took the lock");
        let waiters_worker = Worker::builder()
            .redis(&url)
            .queue("waiters")
            .concurrency(5)
            .register::<TakeLock>()
            .start()
            .await
            .unwrap();
        let client = Client::builder()
            .transport(RedisTransport::builder(&url).queue("waiters").connect().await.unwrap())
            .build()
            .await
            .unwrap();
        let waiting: Vec<_> = (0..5).map(|index| client.submit_task::<TakeLock>(index)).collect();
        let lock = client.lock("victim").with_lease_timeout(Duration::from_secs(2));
        assert!(lock.acquire_timeout(Duration::from_millis(500)).await.unwrap().is_none());
        worker.0.kill().expect("SIGKILL the worker"); // std's kill is SIGKILL on Unix
        let killed = Instant::now();
        let got = within(&client, "the waiting tasks", client.gather(&waiting)).await.unwrap();
        assert_eq!(got, [true; 5], "every waiting task got the lock");
        let elapsed = killed.elapsed();
        assert!(
            elapsed < Duration::from_secs(2) + Duration::from_secs(6),
            "the waiting tasks finished {elapsed:?} after the holder died (lease timeout 2 s; \
             the default is 30 s)"
        );
        waiters_worker.shutdown();
        within(&client, "the worker's stop", waiters_worker.stopped()).await;
        client.close().await.unwrap();
        drop(holder);
    });
}

/// A registered task that adds 5 times to the Redis variable `shared-counter`, each time a
/// read and a write under the lock `shared-counter`, counting how often it found another
/// holder inside (through the variable `inside`, updated under the same lock).
struct Increment;

impl taskweave::Task for Increment {
    const NAME: &'static str = "increment";
    type Input = u32;
    type Output = u32;
    type Error = Error;
    fn run(_: u32) -> Result<u32, Error> {
        let client = taskweave::worker_client()?;
        let (lock, counter) =
            (client.lock("shared-counter"), client.variable::<u64>("shared-counter"));
        let inside = client.variable::<u32>("inside");
        let mut overlaps = 0;
        for _ in 0..5 {
            let guard = lock.blocking().acquire()?;
            let others = inside.blocking().get()?;
            overlaps += others;
            inside.blocking().set(others + 1)?;
            let seen = counter.blocking().get()?;
            counter.blocking().set(seen + 1)?;
            inside.blocking().set(others)?;
            drop(guard);
        }
        Ok(overlaps)
    }
}

/// 20 registered tasks running at once on a worker with 20 slots update one counter under
/// one lock through their worker's client: no update is lost, nobody is inside with another.
#[test]
fn twenty_registered_tasks_on_a_worker_never_lose_an_update_under_the_lock() {
    use taskweave::worker::Worker;
    let server = RedisServer::start();
    let url = server.url();
    run(move || async move {
        let worker = Worker::builder()
            .redis(&url)
            .queue("counting")
            .concurrency(20)
            .register::<Increment>()
            .start()
            .await
            .unwrap();
        let client = Client::builder()
            .transport(RedisTransport::builder(&url).queue("counting").connect().await.unwrap())
            .build()
            .await
            .unwrap();
        client.variable::<u64>("shared-counter").set(0).await.unwrap();
        client.variable::<u32>("inside").set(0).await.unwrap();
        let tasks: Vec<_> = (0..20).map(|index| client.submit_task::<Increment>(index)).collect();
        let overlaps = within(&client, "20 tasks", client.gather(&tasks)).await.unwrap();
        assert_eq!(overlaps.iter().sum::<u32>(), 0, "two holders were inside at once");
        assert_eq!(client.variable::<u64>("shared-counter").get().await.unwrap(), 100);
        worker.shutdown();
        within(&client, "the worker's stop", worker.stopped()).await;
        client.close().await.unwrap();
    });
}

/// Redis restarts under a waiting get: the clients reconnect, and the get is woken by a put
/// made after the restart (through the re-subscribed wake-ups, or the re-check).
#[test]
fn a_wait_survives_a_redis_restart() {
    let mut server = RedisServer::start();
    let url = server.url();
    let (restarted, restart) = std::sync::mpsc::channel::<()>();
    let (waiting, wait_started) = std::sync::mpsc::channel::<()>();
    let body = std::thread::spawn(move || {
        run(move || async move {
            let (a, b) = (client(&url).await, client(&url).await);
            let getter = spawn(&a, {
                let queue = a.queue::<u32>("survivor");
                async move { queue.get().await.unwrap() }
            });
            // Both clients connected their coordination state before the restart.
            assert_eq!(b.queue::<u32>("survivor").len().await.unwrap(), 0);
            waiting.send(()).unwrap();
            restart.recv().unwrap();
            let queue = b.queue::<u32>("survivor");
            within(&b, "a put after the restart", async {
                while queue.put(5).await.is_err() {
                    b.executor().sleep(Duration::from_millis(50)).await;
                }
            })
            .await;
            assert_eq!(within(&a, "the woken get", getter).await.unwrap(), 5);
        })
    });
    wait_started.recv().unwrap();
    server.restart();
    restarted.send(()).unwrap();
    body.join().unwrap();
}

/// Gets and acquires dropped at every point of their round trip while there is something to
/// take: an item taken by a dropped get goes back to the queue, a lease granted to a dropped
/// acquire is released, so nothing vanishes and nothing stays held.
#[test]
fn gets_and_acquires_dropped_in_flight_take_nothing_away() {
    let server = RedisServer::start();
    let url = server.url();
    run(move || async move {
        let client = client(&url).await;
        let executor = Arc::clone(client.executor());
        let (queue, lock) = (client.queue::<u32>("in-flight"), client.lock("in-flight"));
        queue.put(42).await.unwrap();
        let (mut completed, mut dropped) = (0, 0);
        for step in 0..60_u64 {
            let delay = Duration::from_micros(step * 25);
            match executor.timeout(delay, queue.get()).await {
                Ok(item) => {
                    assert_eq!(item.unwrap(), 42);
                    completed += 1;
                    queue.put(42).await.unwrap();
                }
                Err(_) => dropped += 1,
            }
            if let Ok(guard) = executor.timeout(delay, lock.acquire()).await {
                guard.unwrap().release().await.unwrap();
            }
            // A dropped call is finished and undone in the background: wait for it.
            within(&client, "the item back and the lock free", async {
                while queue.len().await.unwrap() != 1 || lock.is_locked().await.unwrap() {
                    executor.sleep(Duration::from_millis(1)).await;
                }
            })
            .await;
        }
        assert!(completed > 0 && dropped > 0, "{completed} completed, {dropped} dropped");
        assert_eq!(queue.get_batch_timeout(2, SHORT).await.unwrap(), [42], "one item, intact");
        client.close().await.unwrap();
    });
}

/// A detached lease is not refreshed: it expires after its timeout, another client gets the
/// lock, and releasing the expired lease is refused as "not held".
#[test]
fn a_detached_lease_expires_and_its_late_release_is_refused() {
    let server = RedisServer::start();
    let url = server.url();
    run(move || async move {
        let (a, b) = (client(&url).await, client(&url).await);
        let timeout = Duration::from_millis(300);
        let lock = a.lock("expiring").with_lease_timeout(timeout);
        let id = lock.acquire().await.unwrap().detach();
        let started = Instant::now();
        let taken = b.lock("expiring").acquire_timeout(BOUND).await.unwrap().expect("expired");
        assert!(started.elapsed() >= timeout / 2, "taken while the lease was live");
        let late = problem_of(lock.release(id).await);
        assert!(late.contains("not held"), "{late}");
        taken.release().await.unwrap();
    });
}

/// Whether `haystack` contains `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// A queue get whose reply is lost to the network after Redis ran it (the connection cut
/// between the script and its answer) still hands the caller the item it took: the retry
/// of the same get finds the items its first try took, and no item is lost or skipped.
#[test]
fn a_get_whose_reply_is_lost_still_gets_its_item() {
    let server = RedisServer::start();
    let proxy = LossyProxy::start(server.port(), |request| {
        // The first pop (the script by its body or its hash) on the queue "lossy".
        contains(request, b"{queue:lossy}:items")
            && (contains(request, b"LPOP") || contains(request, queue_pop_hash().as_bytes()))
    });
    let (url, direct) = (proxy.url(), server.url());
    let server = Arc::new(server);
    run(move || async move {
        let producer = client(&direct).await;
        // Redis knows the scripts already, so the lost reply is that of a script that ran
        // (not a NOSCRIPT answer, which redis-rs follows with the script's body).
        let warm_up = producer.queue::<u32>("warm-up");
        warm_up.put(0).await.unwrap();
        warm_up.get().await.unwrap();
        let queue = producer.queue::<u32>("lossy");
        for item in [1, 2, 3] {
            queue.put(item).await.unwrap();
        }
        let consumer = client(&url).await;
        let got =
            within(&consumer, "a get across a lost reply", consumer.queue::<u32>("lossy").get())
                .await
                .expect("the get rides out the cut connection");
        assert_eq!(proxy.lost(), 1, "the proxy lost the get's reply");
        assert_eq!(got, 1, "the item the lost reply carried, not the next one");
        let rest = consumer.queue::<u32>("lossy").get_batch_timeout(3, SHORT).await.unwrap();
        assert_eq!(rest, [2, 3], "nothing lost, nothing skipped");
        // Answered gets leave no receipt behind (they are deleted, not left to expire).
        within(&consumer, "the receipts deleted", async {
            loop {
                let receipts: Vec<String> = redis::cmd("KEYS")
                    .arg("*:taken:*")
                    .query(&mut server.connection())
                    .expect("list the receipts");
                if receipts.is_empty() {
                    break;
                }
                consumer.executor().sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        consumer.close().await.unwrap();
        producer.close().await.unwrap();
    });
}

/// A lock acquire whose reply is lost after Redis granted it: the retry finds the lease it
/// was granted, so the lock is not held by nobody until the lease times out.
#[test]
fn an_acquire_whose_reply_is_lost_holds_the_lease_it_was_granted() {
    let server = RedisServer::start();
    let proxy = LossyProxy::start(server.port(), |request| {
        contains(request, b"lossy-lock") && contains(request, b"leases")
    });
    let (url, direct) = (proxy.url(), server.url());
    run(move || async move {
        let other = client(&direct).await;
        // Redis knows the script already (see the queue's case).
        other.lock("warm-up").acquire().await.unwrap().release().await.unwrap();
        let holder = client(&url).await;
        let guard =
            within(&holder, "an acquire across a lost reply", holder.lock("lossy-lock").acquire())
                .await
                .expect("the acquire rides out the cut connection");
        assert_eq!(proxy.lost(), 1, "the proxy lost the acquire's reply");
        guard.release().await.expect("release the lease it holds");
        // Free at once for another client: no orphaned lease waits out its timeout.
        let free = other.lock("lossy-lock").acquire_timeout(Duration::from_secs(2)).await.unwrap();
        assert!(free.is_some(), "the lock is free once its one holder released it");
        other.close().await.unwrap();
        holder.close().await.unwrap();
    });
}

/// The SHA1 by which redis-rs calls the queue's pop script.
fn queue_pop_hash() -> String {
    redis::Script::new(include_str!("../src/client/coordination/redis/queue_pop.lua"))
        .get_hash()
        .to_owned()
}

/// An event set and cleared again before a waiter on another client looked (here: in one
/// transaction, as a fast `set` then `clear` from another process can fall) still ends the
/// wait with `true`: the set moved the event's generation, which the waiter checks.
#[test]
fn a_waiter_sees_a_set_that_was_cleared_before_it_looked() {
    let server = RedisServer::start();
    let url = server.url();
    let server = Arc::new(server);
    run(move || async move {
        let waiter_client = client(&url).await;
        let event = waiter_client.event("flicker");
        assert!(!event.is_set().await.unwrap(), "connected, and the event starts unset");
        let commands_before = commands_processed(&server);
        let waiting = spawn(&waiter_client, {
            let event = event.clone();
            async move { event.wait_timeout(Duration::from_secs(3)).await.unwrap() }
        });
        // The waiter has looked once (found the event unset) before the flicker.
        within(&waiter_client, "the waiter's first look", async {
            // Each INFO counts itself: the waiter has sent a command once the count is
            // above the INFO calls made since.
            let mut infos = 0;
            loop {
                infos += 1;
                if commands_processed(&server) > commands_before + infos {
                    break;
                }
                waiter_client.executor().sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        let (flag, generation, channel) = (
            "taskweave:coord:{event:flicker}",
            "taskweave:coord:{event:flicker}:generation",
            "taskweave:coord:wake:event:flicker",
        );
        let source = include_str!("../src/client/coordination/redis/event_set.lua");
        let mut flicker = redis::pipe();
        flicker.atomic();
        flicker.cmd("EVAL").arg(source).arg(2).arg(flag).arg(generation).arg(channel).ignore();
        flicker.del(flag).ignore();
        let _: redis::Value = flicker.query(&mut server.connection()).expect("set and clear");
        let woken = within(&waiter_client, "the waiter's answer", waiting).await.unwrap();
        assert!(woken, "a set between the waiter's looks ends its wait, cleared or not");
        waiter_client.close().await.unwrap();
    });
}

/// Redis's count of commands processed (this call's own INFO included).
fn commands_processed(server: &RedisServer) -> u64 {
    let info: String =
        redis::cmd("INFO").arg("stats").query(&mut server.connection()).expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix("total_commands_processed:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("INFO stats has total_commands_processed")
}
