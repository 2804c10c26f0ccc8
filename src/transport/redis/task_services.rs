//! What a Redis worker offers the registered tasks it runs, while they run: its server's
//! configuration and executor, and a slot for the one client its tasks share
//! ([`crate::worker_client`] makes it there, on first use). The worker sets it around each
//! task body ([`run_with`]) and empties the slot when it stops ([`TaskServices::close`]).
//!
//! It lives with the transport, below both the worker (which sets it) and the client (which
//! reads it), so that neither imports the other.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

use parking_lot::Mutex;

use super::RedisConfig;
use crate::executor::Executor;

thread_local! {
    /// The services of the worker whose task runs on this thread, while it runs.
    static CURRENT: RefCell<Option<Arc<TaskServices>>> = const { RefCell::new(None) };
}

/// A client made for a worker's tasks, and how to close it.
struct SharedClient {
    client: Box<dyn Any + Send + Sync>,
    close: Box<dyn FnOnce() + Send>,
}

/// What a worker offers the tasks it runs: its server's configuration and executor, and the
/// client its tasks share once one asked for it.
pub(crate) struct TaskServices {
    pub(crate) config: RedisConfig,
    pub(crate) executor: Arc<dyn Executor>,
    shared: Mutex<Option<SharedClient>>,
}

impl TaskServices {
    pub(crate) fn new(config: RedisConfig, executor: Arc<dyn Executor>) -> TaskServices {
        TaskServices { config, executor, shared: Mutex::new(None) }
    }

    /// The shared client, made by `make` (with the configuration and executor) on first
    /// use; `close` is what [`TaskServices::close`] runs when the worker stops.
    pub(crate) fn shared_client<C, E>(
        &self,
        make: impl FnOnce(&RedisConfig, &Arc<dyn Executor>) -> Result<(C, Box<dyn FnOnce() + Send>), E>,
    ) -> Result<C, E>
    where
        C: Clone + Send + Sync + 'static,
    {
        let mut slot = self.shared.lock();
        if let Some(shared) = &*slot
            && let Some(client) = shared.client.downcast_ref::<C>()
        {
            return Ok(client.clone());
        }
        let (client, close) = make(&self.config, &self.executor)?;
        *slot = Some(SharedClient { client: Box::new(client.clone()), close });
        Ok(client)
    }

    /// Closes the client the worker's tasks used, if one was made (the worker stops).
    pub(crate) fn close(&self) {
        if let Some(shared) = self.shared.lock().take() {
            (shared.close)();
        }
    }
}

/// The services of the worker whose registered task runs on this thread, if one does.
pub(crate) fn current() -> Option<Arc<TaskServices>> {
    CURRENT.with(|current| current.borrow().clone())
}

/// Runs `body` (a registered task's blocking body) with `services` reachable through
/// [`current`]. The runner thread is not an async context for the body's duration: the body
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
