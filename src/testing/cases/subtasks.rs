//! Tasks that launch tasks: a body submits sub-tasks through its `TaskContext`'s client and
//! waits for them; a blocking body that waits through its context gives its worker back, so
//! that a recursion does not deadlock even on one worker; sub-tasks are keyed under their
//! parent and cancelled with it; a sub-task's panic reaches its parent as an error.
//!
//! The cases build an in-process client of their own, on the case's executor, with the
//! number of workers they need (one, for the recursions): lending a worker is the in-process
//! transport's doing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::testing::recursion::{async_fib, blocking_fib};
use crate::{Client, Error, ExecutorExt, TaskContext, TaskError, TaskFuture};

use super::eventually;

/// How long a tree of tasks may take to react (finish, or stop once cancelled).
const LIMIT: Duration = Duration::from_secs(30);

/// An in-process client with `workers` workers on `client`'s executor.
async fn in_process_client(client: &Client, workers: usize) -> Client {
    Client::builder()
        .shared_executor(client.executor().clone())
        .workers(workers)
        .build()
        .await
        .expect("build an in-process client")
}

/// fib(20) through blocking bodies: 21,891 tasks on one worker, each body that waits handing
/// its thread over to a stand-in (some 10,000 thread starts and as many wake-ups), so it
/// takes as long as the machine's wake-ups do: about 5 s in a debug build at a load of 20,
/// over 30 s with a CPU hog on each core. What it checks is that the recursion finishes at
/// all, so it waits as long as the suite lets a case run (its
/// [`DEADLINE`](crate::testing::DEADLINE), which reports a hang), not a tighter time.
pub async fn fib_of_20_through_blocking_sub_tasks_finishes_on_one_worker(client: Client) {
    let single = in_process_client(&client, 1).await;
    let root = blocking_fib(&single, 20);
    assert_eq!(root.clone().await.unwrap(), 6765);
    // Every stand-in worker gave its place back: the pool is its size again, idle.
    single.close().await.unwrap();
}

/// fib(20) through async bodies on one worker; bounded by the suite's deadline, as the
/// blocking twin is.
pub async fn fib_of_20_through_async_sub_tasks_finishes_on_one_worker(client: Client) {
    let single = in_process_client(&client, 1).await;
    let root = async_fib(&single, 20);
    assert_eq!(root.clone().await.unwrap(), Ok(6765));
    single.close().await.unwrap();
}

/// Counts of a tree's leaves, which spin until their context says cancelled.
#[derive(Default)]
struct Leaves {
    started: AtomicUsize,
    running: AtomicUsize,
    /// Keys of the leaves, to check they sit under the root.
    keys: parking_lot::Mutex<Vec<String>>,
}

/// A blocking task that submits `fan_out` sub-tasks `depth` levels deep and waits for them
/// through its context; the leaves spin until cancelled.
fn tree(client: &Client, depth: u32, fan_out: u32, leaves: Arc<Leaves>) -> TaskFuture<u32> {
    client.try_submit_with_context(
        move |context: &TaskContext, depth: u32| -> Result<u32, Error> {
            if depth == 0 {
                leaves.keys.lock().push(context.key().to_string());
                leaves.started.fetch_add(1, Ordering::SeqCst);
                leaves.running.fetch_add(1, Ordering::SeqCst);
                while !context.is_cancelled() {
                    std::thread::yield_now();
                }
                leaves.running.fetch_sub(1, Ordering::SeqCst);
                return Ok(1);
            }
            let client = context.client()?;
            let children: Vec<_> = (0..fan_out)
                .map(|_| tree(&client, depth - 1, fan_out, Arc::clone(&leaves)))
                .collect();
            Ok(context.gather(&children)?.iter().sum())
        },
        depth,
    )
}

pub async fn cancelling_the_root_cancels_every_sub_task(client: Client) {
    // Four workers for the four leaves, which hold theirs: the three bodies that wait for
    // sub-tasks lend theirs, or the leaves would not all run.
    let pool = in_process_client(&client, 4).await;
    let leaves = Arc::new(Leaves::default());
    let root = tree(&pool, 2, 2, Arc::clone(&leaves));
    eventually(&client, LIMIT, "all four leaves run", || {
        leaves.started.load(Ordering::SeqCst) == 4
    })
    .await;
    let root_key = root.key().to_string();
    for key in leaves.keys.lock().iter() {
        assert!(key.starts_with(&format!("{root_key}/")), "leaf {key} is not under {root_key}");
        assert_eq!(key.matches('/').count(), 2, "leaf {key} is two levels under the root");
    }
    root.cancel();
    eventually(&client, LIMIT, "every leaf stops", || leaves.running.load(Ordering::SeqCst) == 0)
        .await;
    assert!(matches!(root.error(), Some(TaskError::Cancelled { .. })), "{:?}", root.error());
    assert_eq!(leaves.started.load(Ordering::SeqCst), 4, "no leaf started after the cancel");
    // The pool works on: every worker lent was taken back.
    let after = pool.submit(|x: u32| x + 1, 1);
    assert_eq!(client.executor().timeout(LIMIT, after.clone()).await.unwrap().unwrap(), 2);
    pool.close().await.unwrap();
}

pub async fn a_panic_in_a_sub_task_reaches_its_parent_as_an_error(client: Client) {
    let single = in_process_client(&client, 1).await;
    // A blocking parent: the panic comes back from `context.result`, to handle.
    let blocking = single.try_submit_with_context(
        |context: &TaskContext, _: ()| -> Result<String, Error> {
            let child = context.client()?.submit(|_: ()| -> u32 { panic!("sub-task broke") }, ());
            match context.result(&child) {
                Err(Error::Task(TaskError::Panicked { message, .. })) => {
                    Ok(format!("handled: {message}"))
                }
                other => Ok(format!("unexpected: {other:?}")),
            }
        },
        (),
    );
    let handled = client.executor().timeout(LIMIT, blocking.clone()).await.unwrap().unwrap();
    assert!(handled.starts_with("handled: ") && handled.contains("sub-task broke"), "{handled}");
    // An async parent: the sub-task's future resolves to the panic.
    let awaiting = single.submit_async_with_context(
        |context: TaskContext, _: ()| async move {
            let client = context.client().expect("the client is open");
            let child = client.submit(|_: ()| -> u32 { panic!("sub-task broke") }, ());
            match child.await {
                Err(TaskError::Panicked { key, .. }) => {
                    key.to_string().starts_with(&format!("{}/", context.key()))
                }
                _ => false,
            }
        },
        (),
    );
    let under_parent = client.executor().timeout(LIMIT, awaiting.clone()).await.unwrap().unwrap();
    assert!(under_parent, "the async parent sees its sub-task's panic, keyed under it");
    single.close().await.unwrap();
}

pub async fn a_blocking_body_that_secedes_may_block_on_a_sub_task(client: Client) {
    let single = in_process_client(&client, 1).await;
    let outer = single.try_submit_with_context(
        |context: &TaskContext, x: u32| -> Result<u32, Error> {
            // Without the guard, blocking on a worker thread is refused.
            let refused = context.client()?.submit(|x: u32| x, x).result();
            assert!(matches!(refused, Err(Error::BlockingInAsyncContext)), "{refused:?}");
            let inner = context.client()?.submit(|x: u32| x * 2, x);
            let _seceded = context.secede();
            inner.result()
        },
        21,
    );
    let value = client.executor().timeout(LIMIT, outer.clone()).await.unwrap();
    assert_eq!(value.unwrap(), 42);
    single.close().await.unwrap();
}
