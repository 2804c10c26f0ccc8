//! How a registered task running on a Redis worker reaches its cluster: [`worker_client`], a
//! [`Client`] on the worker's own server, namespace and queue, made at the first call and
//! shared by the worker's tasks. Through it a task uses the coordination primitives by name
//! (`client.lock("db").blocking().acquire()`), as any client of the cluster does.

use std::sync::Arc;

use crate::client::Client;
use crate::error::Error;
use crate::transport::redis::RedisTransport;
use crate::transport::redis::task_services;

/// How many sub-tasks a worker's tasks may have enqueued and unfinished at once: no limit in
/// practice. A sub-task held back by the client would deadlock the tree of tasks that waits
/// for it; what bounds them is the work the tasks create.
const SUB_TASKS_IN_FLIGHT: usize = 1 << 30;

/// A client of the cluster the current registered task runs on: its worker's Redis server,
/// namespace and queue. Call it from a [`Task::run`](crate::Task::run) body on a
/// [`Worker`](crate::worker::Worker) to use the coordination primitives by name, shared with every
/// other client and worker of the namespace (use their blocking views: a task body is
/// blocking code). The client is made at the first call on a worker (it connects to Redis:
/// that call blocks for the connection) and shared by its tasks; do not close it.
///
/// # Errors
///
/// [`Error::InvalidConfig`] when called anywhere but in a registered task running on a
/// worker started with [`WorkerBuilder::start`](crate::worker::WorkerBuilder::start) or
/// [`run`](crate::worker::WorkerBuilder::run); [`Error::Transport`] when Redis cannot be reached.
///
/// # Examples
///
/// ```no_run
/// use taskweave::Task;
///
/// /// Appends a line to a shared file, one writer at a time across the cluster.
/// struct Append;
/// impl Task for Append {
///     const NAME: &'static str = "append";
///     type Input = String;
///     type Output = ();
///     type Error = taskweave::Error;
///     fn run(line: String) -> Result<(), taskweave::Error> {
///         let client = taskweave::worker_client()?;
///         let lock = client.lock("log-file");
///         let _guard = lock.blocking().acquire()?;
///         // ... append `line` ...
///         # let _ = line;
///         Ok(())
///     }
/// }
/// ```
pub fn worker_client() -> Result<Client, Error> {
    let Some(services) = task_services::current() else {
        return Err(Error::InvalidConfig {
            message: "taskweave::worker_client() was called outside a registered task running \
                      on a redis worker; call it from a Task::run body, or build a Client with \
                      a RedisTransport elsewhere"
                .into(),
        });
    };
    services.shared_client(|config, executor| {
        let (config, executor) = (config.clone(), Arc::clone(executor));
        // The body runs outside the async context (`run_with`): blocking here is allowed.
        let client = crate::client::blocking::block_on_without_lending(async move {
            // Not throttled: its tasks are sub-tasks that tasks in flight wait for (a
            // recursion's tree), and one held back behind them would never be sent.
            let transport = RedisTransport::builder_with(config)
                .max_in_flight(SUB_TASKS_IN_FLIGHT)
                .connect()
                .await?;
            Client::builder().transport(transport).executor(executor).build().await
        })??;
        let closing = client.clone();
        let close: task_services::CloseClient = Box::new(move || {
            Box::pin(async move {
                let _ = closing.close().await;
            })
        });
        Ok((client, close))
    })
}

/// Whether the registered task whose body runs on this thread, on a Redis worker, was
/// cancelled while it ran: its client cancelled it (or a cancel cascaded to it), or the
/// cluster was [restarted](Client::restart). The Redis twin of
/// [`TaskContext::is_cancelled`](crate::TaskContext::is_cancelled): once true it stays
/// true, nobody reads what the body returns, and the sub-tasks it submitted through
/// [`worker_client`] are cancelled already; return as soon as convenient.
///
/// The worker hears of the cancel on its queue's control stream, within a round trip to
/// Redis. False outside a registered task's body on a worker.
///
/// # Examples
///
/// ```
/// use taskweave::Task;
///
/// struct Search;
/// impl Task for Search {
///     const NAME: &'static str = "search";
///     type Input = u64;
///     type Output = Option<u64>;
///     type Error = std::convert::Infallible;
///     fn run(limit: u64) -> Result<Option<u64>, Self::Error> {
///         for candidate in 0..limit {
///             if candidate % 1_000 == 0 && taskweave::worker_task_cancelled() {
///                 return Ok(None); // nobody waits for it any more
///             }
///             if candidate * candidate == 1_369 {
///                 return Ok(Some(candidate));
///             }
///         }
///         Ok(None)
///     }
/// }
///
/// // Outside a worker it is never cancelled.
/// assert!(!taskweave::worker_task_cancelled());
/// assert_eq!(Search::run(100), Ok(Some(37)));
/// ```
pub fn worker_task_cancelled() -> bool {
    task_services::current_run().is_some_and(|run| run.is_cancelled())
}
