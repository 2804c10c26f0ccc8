//! Cluster management on Redis from the user's side: `wait_for_workers` sees worker
//! processes join by their heartbeat, and gives up at its timeout saying how many came.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use taskweave::worker::Worker;
use taskweave::{Error, ExecutorExt, Task};

use crate::tasks::{Add, Sleepy, Unregistered};
use crate::{RedisServer, client, run, within, worker};

#[test]
fn wait_for_workers_returns_once_enough_workers_joined() {
    run(|| async {
        let server = RedisServer::start();
        let client = client(&server, "joining").await;
        let first = worker(&server, "joining", 1).await;
        // The second joins while the client waits.
        let waiting = client.wait_for_workers(2, Duration::from_secs(30));
        let (workers, second) = within(
            &client,
            Duration::from_secs(30),
            "wait_for_workers",
            Box::pin(futures::future::join(waiting, worker(&server, "joining", 1))),
        )
        .await;
        let workers = workers.unwrap();
        let mut names: Vec<&str> = workers.iter().map(|worker| worker.name.as_str()).collect();
        names.sort_unstable();
        let mut expected = vec![first.name(), second.name()];
        expected.sort_unstable();
        assert_eq!(names, expected);
        client.close().await.unwrap();
        first.shutdown();
        second.shutdown();
        first.stopped().await;
        second.stopped().await;
    });
}

#[test]
fn wait_for_workers_gives_up_at_its_timeout_saying_how_many_joined() {
    run(|| async {
        let server = RedisServer::start();
        let client = client(&server, "few").await;
        let only = worker(&server, "few", 1).await;
        let started = Instant::now();
        let error = client.wait_for_workers(3, Duration::from_millis(300)).await.unwrap_err();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300), "waited its timeout: {waited:?}");
        assert!(waited < Duration::from_secs(10), "gave up at its timeout: {waited:?}");
        assert!(matches!(error, Error::Cluster { .. }), "{error:?}");
        assert!(error.to_string().contains("1 of 3 workers joined"), "{error}");
        assert!(matches!(
            client.wait_for_workers(0, Duration::from_secs(1)).await,
            Err(Error::InvalidConfig { .. })
        ));
        client.close().await.unwrap();
        only.shutdown();
        only.stopped().await;
    });
}

/// How many `Occupy` tasks run at once in this process, and the most that ever did.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MOST: AtomicUsize = AtomicUsize::new(0);

/// Holds a worker slot for a moment, counting how many run at once.
struct Occupy;

impl Task for Occupy {
    const NAME: &'static str = "cluster_occupy";
    type Input = u32;
    type Output = u32;
    type Error = std::convert::Infallible;
    fn run(x: u32) -> Result<u32, Self::Error> {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        MOST.fetch_max(now, Ordering::SeqCst);
        // The work: long enough for the others to start if they were allowed to.
        std::thread::sleep(Duration::from_millis(50));
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        Ok(x)
    }
}

/// A worker for `queue` running `Occupy`, with `gpus` GPUs (none for 0), that fails an entry
/// no live worker can run after `unrunnable_after`.
async fn gpu_worker(
    server: &RedisServer,
    queue: &str,
    concurrency: usize,
    gpus: u64,
    unrunnable_after: Duration,
) -> Worker {
    let builder = Worker::builder()
        .redis(server.url())
        .queue(queue)
        .concurrency(concurrency)
        .unrunnable_after(unrunnable_after)
        .register::<Occupy>();
    let builder = if gpus > 0 { builder.resources("GPU", gpus) } else { builder };
    builder.start().await.expect("start a worker")
}

#[test]
fn a_task_that_needs_a_resource_waits_for_a_worker_that_has_it_and_shares_it() {
    run(|| async {
        let server = RedisServer::start();
        let client = client(&server, "gpu").await;
        // Only a worker without GPU at first: the tasks wait (given back to the queue), for
        // as long as the GPU worker takes to start: with the 1 s of the case below, they
        // failed when a loaded machine started it later than that.
        let cpu_only = gpu_worker(&server, "gpu", 4, 0, Duration::from_secs(60)).await;
        let tasks: Vec<_> =
            (0..4).map(|x| client.task().resources("GPU", 1).submit_task::<Occupy>(x)).collect();
        let waiting = client.executor().timeout(Duration::from_millis(300), client.gather(&tasks));
        assert!(waiting.await.is_err(), "no worker with a GPU yet: nothing ran");
        // A worker with one GPU and four slots joins, late (later than the 1 s the tasks
        // once waited): it runs them, one at a time.
        client.executor().sleep(Duration::from_millis(1_500)).await;
        let gpu = gpu_worker(&server, "gpu", 4, 1, Duration::from_secs(60)).await;
        let workers = client.wait_for_workers(2, Duration::from_secs(10)).await.unwrap();
        let announced: Vec<_> = workers.iter().map(|worker| worker.resources.get("GPU")).collect();
        assert!(announced.contains(&Some(&1)) && announced.contains(&None), "{announced:?}");
        let values = within(
            &client,
            Duration::from_secs(60),
            "the GPU tasks",
            Box::pin(client.gather(&tasks)),
        )
        .await
        .unwrap();
        assert_eq!(values, [0, 1, 2, 3]);
        assert_eq!(MOST.load(Ordering::SeqCst), 1, "one GPU: one GPU task at a time");
        client.close().await.unwrap();
        for worker in [&cpu_only, &gpu] {
            worker.shutdown();
            worker.stopped().await;
        }
    });
}

#[test]
fn a_task_that_needs_a_resource_no_worker_has_fails_naming_it() {
    run(|| async {
        let server = RedisServer::start();
        let client = client(&server, "nogpu").await;
        let worker = gpu_worker(&server, "nogpu", 1, 0, Duration::from_secs(1)).await;
        let task = client.task().resources("TPU", 2).submit_task::<Occupy>(7);
        let outcome =
            within(&client, Duration::from_secs(60), "the TPU task", Box::pin(task.clone())).await;
        let error = outcome.unwrap_err().to_string();
        assert!(error.contains("TPU=2") && error.contains("resources"), "{error}");
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}

#[test]
fn a_worker_refuses_a_resource_of_no_amount() {
    run(|| async {
        let server = RedisServer::start();
        let refused = Worker::builder()
            .redis(server.url())
            .resources("GPU", 0)
            .register::<Occupy>()
            .start()
            .await
            .unwrap_err();
        assert!(matches!(refused, Error::InvalidConfig { .. }), "{refused:?}");
        assert!(refused.to_string().contains("resources(\"GPU\", 0)"), "{refused}");
    });
}

#[test]
fn a_retired_worker_finishes_its_running_task_and_leaves_the_rest_to_the_others() {
    run(|| async {
        let server = RedisServer::start();
        let client = client(&server, "retire").await;
        let leaving = worker(&server, "retire", 1).await;
        // A task running on the worker that will retire (the only worker so far).
        let running = client.submit_task::<Sleepy>((1_000, 1));
        let admin = taskweave::transport::redis::RedisAdmin::builder(server.url())
            .queue("retire")
            .connect()
            .await
            .unwrap();
        let executor = client.executor().clone();
        let taken = async {
            loop {
                let stats = admin.queue_stats().await.unwrap();
                if stats.consumers.iter().any(|c| c.name == leaving.name() && c.pending == 1) {
                    break;
                }
                executor.sleep(Duration::from_millis(5)).await;
            }
        };
        within(&client, Duration::from_secs(30), "the task to be taken", Box::pin(taken)).await;
        let staying = worker(&server, "retire", 1).await;
        let retired =
            client.retire_workers(&[leaving.name()], Duration::from_secs(30)).await.unwrap();
        assert_eq!(retired, [leaving.name().to_owned()]);
        within(
            &client,
            Duration::from_secs(30),
            "the retired worker to stop",
            Box::pin(leaving.stopped()),
        )
        .await;
        assert!(leaving.error().is_none(), "retiring is no error");
        // Its running task finished; new work goes to the worker that stays.
        assert_eq!(
            within(&client, Duration::from_secs(30), "the running task", Box::pin(running.clone()))
                .await
                .unwrap(),
            1
        );
        let after = client.submit_task::<Sleepy>((0, 2));
        assert_eq!(
            within(&client, Duration::from_secs(30), "a later task", Box::pin(after.clone()))
                .await
                .unwrap(),
            2
        );
        let names: Vec<String> =
            client.workers().await.unwrap().into_iter().map(|worker| worker.name).collect();
        assert_eq!(names, [staying.name().to_owned()]);
        client.close().await.unwrap();
        staying.shutdown();
        staying.stopped().await;
    });
}

#[test]
fn retiring_an_unknown_worker_asks_nobody_and_says_who_is_there() {
    run(|| async {
        let server = RedisServer::start();
        let client = client(&server, "unknown").await;
        let only = worker(&server, "unknown", 1).await;
        let error = client
            .retire_workers(&["no-such-worker", only.name()], Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Cluster { operation: "retire_workers", .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("no-such-worker") && message.contains(only.name()), "{message}");
        let none: [&str; 0] = [];
        assert!(matches!(
            client.retire_workers(&none, Duration::from_secs(1)).await,
            Err(Error::InvalidConfig { .. })
        ));
        // Nobody was asked: the worker still runs tasks.
        let task = client.submit_task::<Sleepy>((0, 5));
        assert_eq!(
            within(&client, Duration::from_secs(30), "a task", Box::pin(task.clone()))
                .await
                .unwrap(),
            5
        );
        assert_eq!(client.workers().await.unwrap().len(), 1);
        client.close().await.unwrap();
        only.shutdown();
        only.stopped().await;
    });
}

#[test]
fn run_on_workers_runs_a_registered_task_once_on_each_worker() {
    run(|| async {
        let server = RedisServer::start();
        let client = client(&server, "runs").await;
        let none = client.run_on_workers::<Add>((1, 1), Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(none, Error::Cluster { operation: "run_on_workers", .. }), "{none:?}");
        let (a, b) = (worker(&server, "runs", 1).await, worker(&server, "runs", 1).await);
        client.wait_for_workers(2, Duration::from_secs(10)).await.unwrap();
        let sums = client.run_on_workers::<Add>((2, 3), Duration::from_secs(30)).await.unwrap();
        let mut names: Vec<&str> = sums.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = vec![a.name(), b.name()];
        expected.sort_unstable();
        assert_eq!(names, expected);
        assert!(sums.values().all(|sum| *sum.as_ref().unwrap() == 5), "{sums:?}");
        // A task the workers do not register: each says so.
        let refused =
            client.run_on_workers::<Unregistered>(1, Duration::from_secs(30)).await.unwrap();
        assert_eq!(refused.len(), 2);
        for (name, outcome) in &refused {
            let error = outcome.as_ref().unwrap_err().to_string();
            assert!(
                error.contains(name.as_str()) && error.contains("does not register"),
                "{error}"
            );
        }
        client.close().await.unwrap();
        for worker in [&a, &b] {
            worker.shutdown();
            worker.stopped().await;
        }
    });
}
