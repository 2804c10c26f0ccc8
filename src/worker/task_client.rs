//! How a registered task running on a Redis worker reaches its cluster: [`client`], a
//! [`Client`] on the worker's own server, namespace and queue, made at the first call and
//! shared by the worker's tasks. Through it a task uses the coordination primitives by name
//! (`client.lock("db").blocking().acquire()`), as any client of the cluster does.

use std::cell::RefCell;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::client::Client;
use crate::error::Error;
use crate::executor::Executor;
use crate::transport::redis::{RedisConfig, RedisTransport};

thread_local! {
    /// The services of the worker whose task runs on this thread, while it runs.
    static CURRENT: RefCell<Option<Arc<TaskServices>>> = const { RefCell::new(None) };
}

/// What a worker offers the tasks it runs: a client of its cluster, made when first asked.
pub(crate) struct TaskServices {
    config: RedisConfig,
    executor: Arc<dyn Executor>,
    client: Mutex<Option<Client>>,
}

impl TaskServices {
    pub(crate) fn new(config: RedisConfig, executor: Arc<dyn Executor>) -> TaskServices {
        TaskServices { config, executor, client: Mutex::new(None) }
    }

    /// Closes the client the worker's tasks used, if one was made (the worker stops).
    pub(crate) fn close(&self) {
        if let Some(client) = self.client.lock().take() {
            let _ = self.executor.spawn(Box::pin(async move {
                let _ = client.close().await;
            }));
        }
    }
}

/// Runs `body` (a registered task's blocking body) with `services` reachable through
/// [`client`]. The runner thread is not an async context for the body's duration: the body
/// is blocking code with the thread to itself, so the blocking views work in it.
pub(crate) fn run_with<R>(services: Option<&Arc<TaskServices>>, body: impl FnOnce() -> R) -> R {
    let Some(services) = services else { return body() };
    let previous = CURRENT.with(|current| current.replace(Some(Arc::clone(services))));
    let _blocking = crate::executor::leave_async_context();
    struct Restore(Option<Arc<TaskServices>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|current| *current.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    body()
}

/// A client of the cluster the current registered task runs on: its worker's Redis server,
/// namespace and queue. Call it from a [`Task::run`](crate::Task::run) body on a
/// [`Worker`](super::Worker) to use the coordination primitives by name, shared with every
/// other client and worker of the namespace (use their blocking views: a task body is
/// blocking code). The client is made at the first call on a worker (it connects to Redis:
/// that call blocks for the connection) and shared by its tasks; do not close it.
///
/// # Errors
///
/// [`Error::InvalidConfig`] when called anywhere but in a registered task running on a
/// worker started with [`WorkerBuilder::start`](super::WorkerBuilder::start) or
/// [`run`](super::WorkerBuilder::run); [`Error::Transport`] when Redis cannot be reached.
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
///         let client = taskweave::worker::client()?;
///         let lock = client.lock("log-file");
///         let _guard = lock.blocking().acquire()?;
///         // ... append `line` ...
///         # let _ = line;
///         Ok(())
///     }
/// }
/// ```
pub fn client() -> Result<Client, Error> {
    let Some(services) = CURRENT.with(|current| current.borrow().clone()) else {
        return Err(Error::InvalidConfig {
            message: "taskweave::worker::client() was called outside a registered task running \
                      on a redis worker; call it from a Task::run body, or build a Client with \
                      a RedisTransport elsewhere"
                .into(),
        });
    };
    let mut slot = services.client.lock();
    if let Some(client) = &*slot {
        return Ok(client.clone());
    }
    let (config, executor) = (services.config.clone(), Arc::clone(&services.executor));
    // The body runs outside the async context (`run_with`): blocking here is allowed.
    let client = crate::client::blocking::block_on_caller_thread(async move {
        let transport = RedisTransport::builder_with(config).connect().await?;
        Client::builder().transport(transport).executor(executor).build().await
    })??;
    *slot = Some(client.clone());
    Ok(client)
}
