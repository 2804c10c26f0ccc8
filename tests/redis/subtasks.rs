//! Tasks that launch tasks on Redis: a registered task submits sub-tasks through
//! `taskweave::worker_client()` and waits for them; while it waits it lends its runner slot,
//! so that a recursion runs on one worker with one slot.

use std::time::Duration;

use taskweave::worker::Worker;
use taskweave::{Error, Task, TaskError};

use crate::{RedisServer, client, run, within};

/// fib(n) through tasks: each submits fib(n - 1) and fib(n - 2) and waits for both.
pub struct Fib;

impl Task for Fib {
    const NAME: &'static str = "subtasks_fib";
    type Input = u64;
    type Output = u64;
    type Error = Error;
    fn run(n: u64) -> Result<u64, Error> {
        if n < 2 {
            return Ok(n);
        }
        let client = taskweave::worker_client()?;
        let a = client.submit_task::<Fib>(n - 1);
        let b = client.submit_task::<Fib>(n - 2);
        let (a, b) = client.blocking().gather((&a, &b))?;
        Ok(a + b)
    }
}

/// Panics when asked to.
pub struct Boom;

impl Task for Boom {
    const NAME: &'static str = "subtasks_boom";
    type Input = String;
    type Output = ();
    type Error = Error;
    fn run(message: String) -> Result<(), Error> {
        panic!("{message}")
    }
}

/// Submits a `Boom` sub-task, and answers what its wait returned, and the sub-task's key.
pub struct Parent;

impl Task for Parent {
    const NAME: &'static str = "subtasks_parent";
    type Input = ();
    type Output = (String, String);
    type Error = Error;
    fn run((): ()) -> Result<(String, String), Error> {
        let client = taskweave::worker_client()?;
        let child = client.submit_task::<Boom>("child broke".into());
        let seen = match child.result() {
            Err(Error::Task(TaskError::Panicked { message, .. })) => format!("panicked: {message}"),
            other => format!("unexpected: {other:?}"),
        };
        Ok((seen, child.key().to_string()))
    }
}

/// One worker with one runner slot, running the tasks of this file.
async fn single_worker(server: &RedisServer, queue: &str) -> Worker {
    Worker::builder()
        .redis(server.url())
        .queue(queue)
        .concurrency(1)
        .register::<Fib>()
        .register::<Boom>()
        .register::<Parent>()
        .start()
        .await
        .expect("start a worker")
}

/// How long fib(20) may take: 21,891 tasks run one at a time, each a few round trips to Redis
/// and a hand-over between threads (the waiting task's and its stand-in's): about 30 s on a
/// quiet machine with a debug build, several times that on a loaded one.
const FIB_LIMIT: Duration = Duration::from_secs(400);

#[test]
fn fib_of_20_through_sub_tasks_finishes_on_one_worker_with_one_slot() {
    let (done, finished) = std::sync::mpsc::channel();
    let test = std::thread::spawn(move || {
        futures::executor::block_on(fib_of_20());
        let _ = done.send(());
    });
    if finished.recv_timeout(FIB_LIMIT + Duration::from_secs(10)).is_err() {
        panic!("fib(20) did not finish within {FIB_LIMIT:?}: it hangs");
    }
    test.join().unwrap();
}

async fn fib_of_20() {
    {
        // Not `run`: its deadline is shorter than this test may take.
        let server = RedisServer::start();
        let worker = single_worker(&server, "fib").await;
        let client = client(&server, "fib").await;
        let root = client.submit_task::<Fib>(20);
        let started = std::time::Instant::now();
        let value = within(&client, FIB_LIMIT, "fib(20)", Box::pin(root.clone())).await;
        eprintln!("fib(20) through tasks on one worker slot took {:?}", started.elapsed());
        assert_eq!(value.unwrap(), 6765);
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
        assert!(worker.error().is_none());
    }
}

#[test]
fn a_sub_task_panic_reaches_its_parent_as_an_error_and_its_key_is_under_the_parent() {
    run(|| async {
        let server = RedisServer::start();
        let worker = single_worker(&server, "parent").await;
        let client = client(&server, "parent").await;
        let parent = client.submit_task::<Parent>(());
        let (seen, child_key) =
            within(&client, Duration::from_secs(30), "the parent", Box::pin(parent.clone()))
                .await
                .unwrap();
        assert!(seen.starts_with("panicked: "), "{seen}");
        assert!(seen.contains("child broke"), "{seen}");
        assert!(
            child_key.starts_with(&format!("{}/", parent.key())),
            "the sub-task's key {child_key} is under its parent's {}",
            parent.key()
        );
        client.close().await.unwrap();
        worker.shutdown();
        worker.stopped().await;
    });
}
