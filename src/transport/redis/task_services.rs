//! What a Redis worker offers the registered tasks it runs, while they run: its server's
//! configuration and executor, and a slot for the one client its tasks share
//! ([`crate::worker_client`] makes it there, on first use). The worker sets it around each
//! task body ([`run_with`]) and empties the slot when it stops ([`TaskServices::close`]).
//!
//! It lives with the transport, below both the worker (which sets it) and the client (which
//! reads it), so that neither imports the other.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use super::RedisConfig;
use crate::executor::Executor;

thread_local! {
    /// The services of the worker whose task runs on this thread, while it runs.
    static CURRENT: RefCell<Option<Arc<TaskServices>>> = const { RefCell::new(None) };
    /// The key of the task whose body runs on this thread, while it runs: what it submits
    /// is keyed under it.
    static TASK_KEY: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Whether the body running on this thread has lent its runner slot ([`lend_while_blocked`]).
    static LENT: Cell<bool> = const { Cell::new(false) };
    /// The cancel signal of the run whose body runs on this thread, while it runs.
    static RUN: RefCell<Option<Arc<RunSignal>>> = const { RefCell::new(None) };
}

/// The cancel signal of one run of a registered task on a worker: set when the run's client
/// cancels it while it runs (the worker hears of it on the control stream) or when the
/// worker restarts. What the body submitted through the worker's client registers a hook
/// here ([`on_cancel`](RunSignal::on_cancel)), so that a cancelled task's sub-tasks are
/// cancelled with it.
#[derive(Default)]
pub(crate) struct RunSignal {
    cancelled: std::sync::atomic::AtomicBool,
    /// Run once, at the cancel.
    hooks: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

impl RunSignal {
    /// Whether the run was cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Cancels the run: sets the flag, then runs the hooks (once).
    pub(crate) fn cancel(&self) {
        let hooks = {
            // Set under the lock that `on_cancel` checks it under: no hook is missed.
            let mut hooks = self.hooks.lock();
            if self.cancelled.swap(true, std::sync::atomic::Ordering::AcqRel) {
                return;
            }
            std::mem::take(&mut *hooks)
        };
        for hook in hooks {
            hook();
        }
    }

    /// Runs `hook` when the run is cancelled, at once if it was. Kept until the run ends
    /// (a small box per sub-task: hooks hold their task weakly).
    pub(crate) fn on_cancel(&self, hook: Box<dyn FnOnce() + Send>) {
        {
            let mut hooks = self.hooks.lock();
            if !self.is_cancelled() {
                hooks.push(hook);
                return;
            }
        }
        hook();
    }
}

/// The cancel signal of the registered task body running on this thread, if one does.
pub(crate) fn current_run() -> Option<Arc<RunSignal>> {
    RUN.with(|run| run.borrow().clone())
}

/// What lends a worker's runner slot while a task body blocks (the worker implements it):
/// `secede` lets another runner work in its place, `rejoin` takes the slot back.
pub(crate) trait Lend: Send + Sync {
    /// The body stops running for a while (it waits): another runner may take its slot.
    fn secede(&self);
    /// The body runs again: it takes its slot back at once (the pool may run over its size
    /// until a runner finishes its task).
    fn rejoin(&self);
}

/// How to close a client made for a worker's tasks: a future that closes it.
pub(crate) type CloseClient = Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send>;

/// A client made for a worker's tasks, and how to close it.
struct SharedClient {
    client: Box<dyn Any + Send + Sync>,
    close: CloseClient,
}

/// What a worker offers the tasks it runs: its server's configuration and executor, and the
/// client its tasks share once one asked for it.
pub(crate) struct TaskServices {
    pub(crate) config: RedisConfig,
    pub(crate) executor: Arc<dyn Executor>,
    shared: Mutex<Option<SharedClient>>,
    /// The worker's runner pool, which lends a slot while a body waits (set once, at start).
    lender: OnceLock<Weak<dyn Lend>>,
}

impl TaskServices {
    pub(crate) fn new(config: RedisConfig, executor: Arc<dyn Executor>) -> TaskServices {
        TaskServices { config, executor, shared: Mutex::new(None), lender: OnceLock::new() }
    }

    /// Sets what lends the worker's runner slots while bodies wait (once).
    pub(crate) fn set_lender(&self, lender: Weak<dyn Lend>) {
        let _ = self.lender.set(lender);
    }

    /// The shared client, made by `make` (with the configuration and executor) on first
    /// use; `close` is what [`TaskServices::close`] runs when the worker stops.
    pub(crate) fn shared_client<C, E>(
        &self,
        make: impl FnOnce(&RedisConfig, &Arc<dyn Executor>) -> Result<(C, CloseClient), E>,
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

    /// Closes the client the worker's tasks used, if one was made (the worker stops), in
    /// the background.
    pub(crate) fn close(&self) {
        if let Some(closing) = self.closing() {
            let _ = self.executor.spawn(closing);
        }
    }

    /// Takes the client the worker's tasks used, if one was made, and returns the future
    /// that closes it; the next task to ask for one gets a new one.
    pub(crate) fn closing(&self) -> Option<futures::future::BoxFuture<'static, ()>> {
        let shared = self.shared.lock().take()?;
        Some((shared.close)())
    }
}

/// The services of the worker whose registered task runs on this thread, if one does.
pub(crate) fn current() -> Option<Arc<TaskServices>> {
    CURRENT.with(|current| current.borrow().clone())
}

/// The key of the registered task whose body runs on this thread, if one does: a client
/// used in the body keys what it submits under it (`<key>/<prefix>-<token>`).
pub(crate) fn current_task_key() -> Option<String> {
    TASK_KEY.with(|key| key.borrow().clone())
}

/// The guard of [`lend_while_blocked`]: takes the runner slot back when dropped.
pub(crate) struct Lent(Arc<dyn Lend>);

impl Drop for Lent {
    fn drop(&mut self) {
        LENT.with(|lent| lent.set(false));
        self.0.rejoin();
    }
}

/// Lends the runner slot of the registered task body running on this thread (if one does,
/// on a worker, and has not lent it already) until the guard drops: the worker runs another
/// task in its place meanwhile. Every blocking wait of a client does this (Dask's
/// `secede`/`rejoin`), so that a body waiting for its own sub-tasks does not hold the slot
/// they need.
pub(crate) fn lend_while_blocked() -> Option<Lent> {
    if LENT.with(Cell::get) || TASK_KEY.with(|key| key.borrow().is_none()) {
        return None;
    }
    let lender = current()?.lender.get()?.upgrade()?;
    LENT.with(|lent| lent.set(true));
    lender.secede();
    Some(Lent(lender))
}

/// Runs `body` (a registered task's blocking body, for the task `key`) with `services`
/// reachable through [`current`]. The runner thread is not an async context for the body's
/// duration: the body is blocking code with the thread to itself, so the blocking views
/// work in it.
pub(crate) fn run_with<R>(
    services: Option<&Arc<TaskServices>>,
    key: &str,
    body: impl FnOnce() -> R,
) -> R {
    run_signalled(services, key, None, body)
}

/// [`run_with`], with the run's cancel signal reachable through [`current_run`].
pub(crate) fn run_signalled<R>(
    services: Option<&Arc<TaskServices>>,
    key: &str,
    signal: Option<Arc<RunSignal>>,
    body: impl FnOnce() -> R,
) -> R {
    let Some(services) = services else { return body() };
    let previous = CURRENT.with(|current| current.replace(Some(Arc::clone(services))));
    let previous_key = TASK_KEY.with(|current| current.replace(Some(key.to_owned())));
    let previous_lent = LENT.with(|lent| lent.replace(false));
    let previous_run = RUN.with(|run| run.replace(signal));
    let _blocking = crate::executor::leave_async_context();
    struct Restore(Option<Arc<TaskServices>>, Option<String>, bool, Option<Arc<RunSignal>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|current| *current.borrow_mut() = previous);
            let previous_key = self.1.take();
            TASK_KEY.with(|current| *current.borrow_mut() = previous_key);
            LENT.with(|lent| lent.set(self.2));
            let previous_run = self.3.take();
            RUN.with(|run| *run.borrow_mut() = previous_run);
        }
    }
    let _restore = Restore(previous, previous_key, previous_lent, previous_run);
    body()
}
