//! Reaching work a Redis worker runs: cancelling a running root cancels its tree of
//! sub-tasks on the worker, and `Client::restart` restarts worker processes promptly. The
//! worker is a separate process (this test binary run again with
//! `TASKWEAVE_TEST_CONTROL_WORKER` set), with one runner slot.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use taskweave::client::RESTART_REASON;
use taskweave::worker::Worker;
use taskweave::{Client, Error, ExecutorExt, Task, TaskError};

use crate::{RedisServer, client, run, within};

/// The Redis key where [`Tree`] counts its runs.
const RUNS: &str = "control-test:runs";

/// How long a cancelled tree may take to be torn down: one control message per level.
const TEAR_DOWN: Duration = Duration::from_secs(20);

/// fib(n) through sub-tasks, counting each run in Redis (the input carries the server's URL):
/// fib(30) is 2.7 million runs, far more than a test waits for.
pub struct Tree;

impl Task for Tree {
    const NAME: &'static str = "control_tree";
    type Input = (u64, String);
    type Output = u64;
    type Error = Error;
    fn run((n, url): (u64, String)) -> Result<u64, Error> {
        count_run(&url);
        if n < 2 {
            return Ok(n);
        }
        let client = taskweave::worker_client()?;
        let a = client.submit_task::<Tree>((n - 1, url.clone()));
        let b = client.submit_task::<Tree>((n - 2, url));
        let (a, b) = client.blocking().gather((&a, &b))?;
        Ok(a + b)
    }
}

/// Spins until its run is cancelled (at most [`SPIN_LIMIT`]), and records in Redis that it
/// started and whether it saw the cancel.
pub struct Spin;

/// How long a [`Spin`] waits for its cancel.
const SPIN_LIMIT: Duration = Duration::from_secs(30);

impl Task for Spin {
    const NAME: &'static str = "control_spin";
    type Input = String;
    type Output = bool;
    type Error = std::convert::Infallible;
    fn run(url: String) -> Result<bool, Self::Error> {
        let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
        let _: () =
            redis::cmd("SET").arg("control-test:spinning").arg(1).query(&mut connection).unwrap();
        let started = std::time::Instant::now();
        while !taskweave::worker_task_cancelled() && started.elapsed() < SPIN_LIMIT {
            std::thread::yield_now();
        }
        let saw = taskweave::worker_task_cancelled();
        let _: () = redis::cmd("SET")
            .arg("control-test:saw-cancel")
            .arg(i32::from(saw))
            .query(&mut connection)
            .unwrap();
        Ok(saw)
    }
}

/// Returns its input.
pub struct Marker;

impl Task for Marker {
    const NAME: &'static str = "control_marker";
    type Input = u64;
    type Output = u64;
    type Error = std::convert::Infallible;
    fn run(n: u64) -> Result<u64, Self::Error> {
        Ok(n)
    }
}

fn count_run(url: &str) {
    let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
    let _: i64 = redis::cmd("INCR").arg(RUNS).query(&mut connection).unwrap();
}

fn runs(server: &RedisServer) -> i64 {
    read(server, RUNS).unwrap_or(0)
}

/// The number under `key`, if there is one.
fn read(server: &RedisServer, key: &str) -> Option<i64> {
    let mut connection = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    redis::cmd("GET").arg(key).query(&mut connection).unwrap()
}

/// Not a test on its own: the worker process of this file's tests.
#[test]
fn control_worker_process() {
    let Ok(url) = std::env::var("TASKWEAVE_TEST_CONTROL_WORKER") else { return };
    let queue = std::env::var("TASKWEAVE_TEST_CONTROL_QUEUE").unwrap();
    let outcome = futures::executor::block_on(
        Worker::builder()
            .redis(url)
            .queue(queue)
            .concurrency(1)
            .register::<Tree>()
            .register::<Marker>()
            .register::<Spin>()
            .run(),
    );
    std::process::exit(i32::from(outcome.is_err()));
}

/// A worker process, killed on drop.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn spawn(server: &RedisServer, queue: &str) -> WorkerProcess {
        let logs = std::env::var_os("TASKWEAVE_TEST_LOGS").is_some();
        let child = Command::new(std::env::current_exe().expect("the test binary's path"))
            .args(["--exact", "control::control_worker_process", "--nocapture", "--test-threads=1"])
            .env("TASKWEAVE_TEST_CONTROL_WORKER", server.url())
            .env("TASKWEAVE_TEST_CONTROL_QUEUE", queue)
            .stdout(Stdio::null())
            .stderr(if logs { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("start the worker process");
        WorkerProcess(child)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) until `condition` holds, looking every 20 ms.
async fn eventually(client: &Client, limit: Duration, what: &str, condition: impl Fn() -> bool) {
    let executor = client.executor().clone();
    let polled = executor
        .timeout(limit, async {
            while !condition() {
                executor.sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    assert!(polled.is_ok(), "{what} did not happen within {limit:?}");
}

/// Waits (bounded) until the queue holds no entry, waiting or taken.
async fn until_the_queue_is_empty(client: &Client, queue: &str, server: &RedisServer) {
    let admin = taskweave::transport::redis::RedisAdmin::builder(server.url())
        .queue(queue)
        .connect()
        .await
        .unwrap();
    let executor = client.executor().clone();
    let emptied = executor
        .timeout(TEAR_DOWN, async {
            loop {
                let stats = admin.queue_stats().await.unwrap();
                if stats.length == 0 && stats.pending == 0 {
                    return;
                }
                executor.sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    assert!(
        emptied.is_ok(),
        "the tree's sub-tasks were still queued or running {TEAR_DOWN:?} later ({} runs)",
        runs(server)
    );
}

/// After the tree was torn down: no run of it happens while a marker task goes through the
/// one slot.
async fn no_run_after(client: &Client, server: &RedisServer) {
    let before = runs(server);
    let marker = client.submit_task::<Marker>(7);
    assert_eq!(within(client, TEAR_DOWN, "a marker task", Box::pin(marker)).await.unwrap(), 7);
    assert_eq!(runs(server), before, "a sub-task of the torn-down tree ran");
}

#[test]
fn cancelling_a_running_root_cancels_its_sub_tasks_on_the_worker() {
    run(|| async {
        let server = RedisServer::start();
        let queue = "tree-cancel";
        let _worker = WorkerProcess::spawn(&server, queue);
        let client = client(&server, queue).await;
        client.wait_for_workers(1, Duration::from_secs(60)).await.unwrap();
        let root = client.submit_task::<Tree>((30, server.url()));
        eventually(&client, Duration::from_secs(60), "the tree grows", || runs(&server) >= 30)
            .await;
        root.cancel();
        assert!(root.clone().await.unwrap_err().is_cancelled());
        until_the_queue_is_empty(&client, queue, &server).await;
        no_run_after(&client, &server).await;
        client.close().await.unwrap();
    });
}

#[test]
fn restart_cancels_the_work_of_a_worker_process_and_it_serves_again() {
    run(|| async {
        let server = RedisServer::start();
        let queue = "restart";
        let _worker = WorkerProcess::spawn(&server, queue);
        let client = client(&server, queue).await;
        let workers = client.wait_for_workers(1, Duration::from_secs(60)).await.unwrap();
        let root = client.submit_task::<Tree>((30, server.url()));
        let queued = client.map_task::<Marker>(0..5);
        eventually(&client, Duration::from_secs(60), "the tree grows", || runs(&server) >= 30)
            .await;
        let restarted = within(
            &client,
            TEAR_DOWN,
            "the restart",
            Box::pin(client.restart(Duration::from_secs(15))),
        )
        .await
        .unwrap();
        assert_eq!(restarted, [workers[0].name.clone()]);
        let restart_cancelled = |outcome: Result<u64, TaskError>| match outcome {
            Err(TaskError::Cancelled { reason, .. }) => reason == RESTART_REASON,
            _ => false,
        };
        let outcome = root.clone().await;
        assert!(
            restart_cancelled(outcome.clone()),
            "expected the restart's cancel, got {outcome:?}"
        );
        // The markers ran on stand-ins while the tree's bodies waited, or were cancelled.
        for (i, future) in (0..).zip(&queued) {
            let outcome = future.clone().await;
            assert!(
                outcome == Ok(i) || restart_cancelled(outcome.clone()),
                "marker {i}: expected its value or the restart's cancel, got {outcome:?}"
            );
        }
        until_the_queue_is_empty(&client, queue, &server).await;
        no_run_after(&client, &server).await;
        client.close().await.unwrap();
    });
}

#[test]
fn a_registered_body_sees_its_cancel_through_worker_task_cancelled() {
    run(|| async {
        let server = RedisServer::start();
        let queue = "spin";
        let _worker = WorkerProcess::spawn(&server, queue);
        let client = client(&server, queue).await;
        client.wait_for_workers(1, Duration::from_secs(60)).await.unwrap();
        let spin = client.submit_task::<Spin>(server.url());
        eventually(&client, Duration::from_secs(60), "the body starts", || {
            read(&server, "control-test:spinning").is_some()
        })
        .await;
        spin.cancel();
        eventually(&client, TEAR_DOWN, "the body sees its cancel", || {
            read(&server, "control-test:saw-cancel").is_some()
        })
        .await;
        assert_eq!(read(&server, "control-test:saw-cancel"), Some(1), "it saw the cancel");
        client.close().await.unwrap();
    });
}

/// A restart is the cluster's: another client's task that a worker was running when a
/// client restarted the workers fails saying so; what its body returned once it saw its
/// cancel (here `true`, an early return) is not given to that client as the task's value.
#[test]
fn a_restart_fails_another_clients_running_task_instead_of_giving_its_early_return() {
    run(|| async {
        let server = RedisServer::start();
        let queue = "restart-other";
        let _worker = WorkerProcess::spawn(&server, queue);
        let restarting = client(&server, queue).await;
        let other = client(&server, queue).await;
        restarting.wait_for_workers(1, Duration::from_secs(60)).await.unwrap();
        let spin = other.submit_task::<Spin>(server.url());
        eventually(&other, Duration::from_secs(60), "the body starts", || {
            read(&server, "control-test:spinning").is_some()
        })
        .await;
        within(&restarting, TEAR_DOWN, "the restart", Box::pin(restarting.restart(TEAR_DOWN)))
            .await
            .unwrap();
        let outcome = within(&other, TEAR_DOWN, "the other client's outcome", Box::pin(spin)).await;
        let error = outcome.expect_err("the cancelled run's early return is not a value");
        assert!(error.to_string().contains("cancelled while it ran"), "{error}");
        assert_eq!(read(&server, "control-test:saw-cancel"), Some(1), "it saw the cancel");
        restarting.close().await.unwrap();
        other.close().await.unwrap();
    });
}
