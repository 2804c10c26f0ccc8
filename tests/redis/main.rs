//! The Redis backend against a real `redis-server` (started per test on a free loopback
//! port): registered tasks, the worker library, the example binaries, and faults.

#![allow(unreachable_pub)]

#[path = "../support/example_binary.rs"]
mod example_binary;
#[path = "../support/redis_cluster.rs"]
mod redis_cluster;
#[path = "../support/redis_server.rs"]
mod redis_server;

mod admin;
mod cluster;
mod cluster_mode;
mod control;
mod faults;
mod lost;
mod operator;
mod processes;
mod report;
mod shared;
mod subtasks;
mod takeover;
mod tasks;
mod working;

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use taskweave::transport::redis::RedisTransport;
use taskweave::worker::Worker;
use taskweave::{Client, ExecutorExt};

pub use redis_server::{RedisServer, ServerOptions};

/// How long any one test may take before it counts as hung.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Runs an async test body on the embedded executor, failing it after [`DEADLINE`].
pub fn run<F>(body: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()> + Send + 'static,
{
    let (done, finished) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            futures::executor::block_on(body())
        }));
        let _ = done.send(());
        result
    });
    match finished.recv_timeout(DEADLINE) {
        Ok(()) => {
            if let Err(panic) = thread.join().expect("the test thread reports") {
                std::panic::resume_unwind(panic);
            }
        }
        Err(_) => panic!("the test did not finish within {DEADLINE:?}: it hangs"),
    }
}

/// A client on the Redis transport for `queue`.
pub async fn client(server: &RedisServer, queue: &str) -> Client {
    let transport = RedisTransport::builder(server.url())
        .queue(queue)
        .connect()
        .await
        .expect("connect the client to redis");
    Client::builder().transport(transport).build().await.expect("build a redis client")
}

/// An in-process worker for `queue` running the test tasks.
pub async fn worker(server: &RedisServer, queue: &str, concurrency: usize) -> Worker {
    tasks::register_all(
        Worker::builder()
            .redis(server.url())
            .queue(queue)
            .concurrency(concurrency)
            .reclaim_after(Duration::from_millis(500)),
    )
    .start()
    .await
    .expect("start a worker")
}

/// Awaits `future` for at most `limit` on the client's executor.
pub async fn within<T>(
    client: &Client,
    limit: Duration,
    what: &str,
    future: BoxFuture<'_, T>,
) -> T {
    match client.executor().timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what} did not happen within {limit:?}"),
    }
}

/// The keys of one delivery that [`complete_one`] reports on (the client `c1`, its task 1).
pub struct OneDelivery<'a> {
    /// The queue's task stream.
    pub stream: &'a str,
    /// The queue's starts hash.
    pub starts: &'a str,
    /// The delivery's entry_of key.
    pub entry_of: &'a str,
}

/// Invokes `complete.lua` directly for one outcome (`ok`, `body`) of `entry`, reported by
/// `consumer` for the delivery `c1:1:1`; returns the script's answer for it.
pub fn complete_one(
    connection: &mut redis::Connection,
    delivery: &OneDelivery<'_>,
    consumer: &str,
    entry: &str,
    body: &str,
) -> i64 {
    let answers: Vec<i64> = redis::Script::new(concat!(
        include_str!("../../src/transport/redis/pending_of.lua"),
        include_str!("../../src/transport/redis/complete.lua")
    ))
    .key(delivery.stream)
    .key(delivery.starts)
    .key("taskweave:reply:c1")
    .key("taskweave:result:c1:1")
    .key(delivery.entry_of)
    .arg("workers")
    .arg(consumer)
    .arg(entry)
    .arg("c1:1:1")
    .arg("ok")
    .arg(body)
    .arg(60_000)
    // When the run started and finished (microseconds since the epoch).
    .arg(1_000)
    .arg(2_000)
    // Stored under the result key too (the test reads it there).
    .arg("1")
    // The reply one field per field (not packed).
    .arg("")
    .invoke(connection)
    .unwrap();
    assert_eq!(answers.len(), 1, "one answer per outcome");
    answers[0]
}

/// A test's server whose port another server took first fails to start (and is tried again
/// on another port) instead of passing that server off as its own: a test that did shared
/// the other test's keys and lost its connections when that test ended and killed it.
#[test]
fn a_test_server_never_takes_another_for_its_own() {
    let first = RedisServer::start();
    let second = RedisServer::start_on_taken_port(&first);
    assert!(second.is_err(), "the second server's start was answered by the first server");
}
