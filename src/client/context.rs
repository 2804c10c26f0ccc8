//! [`TaskContext`]: what a running task body may ask about its own task — its key and whether
//! it was cancelled — and the `submit_with_context` family that hands it over.
//!
//! Cancelling a task drops a running async body at its next `.await`, but nothing can stop a
//! blocking body from the outside: Rust has no safe way to interrupt a thread. A blocking body
//! that should stop early takes a `&TaskContext` and polls
//! [`is_cancelled`](TaskContext::is_cancelled) between steps of its work: cooperative
//! cancellation, as with tokio-util's `CancellationToken`.
//!
//! Plain `submit`s pay nothing for this: only a submission `_with_context` carries a context
//! (one allocation), and a cancel reaches it through the job it belongs to.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use super::blocking::block_on_caller_thread;
use super::core::{Body, Core, Job, Value};
use super::deps::{Dependencies, DependencyList, DependencyReader};
use super::submit::{After, Impure, NoDeps};
use super::{Client, Gather, Shared, TaskBuilder, TaskFuture};
use crate::error::{Error, TaskError};
use crate::executor::{BoxFuture, suspend_async_context};
use crate::job::TaskFailure;
use crate::scheduler::{TaskId, TaskKey};

/// What a running task body knows about its own task: its key, and whether it was cancelled.
///
/// Handed to bodies submitted with [`Client::submit_with_context`] (blocking bodies get a
/// `&TaskContext`), [`Client::try_submit_with_context`] and
/// [`Client::submit_async_with_context`] (async bodies get their own clone). Clones share one
/// task: a body may pass a clone to the threads it starts.
///
/// # Cancellation is cooperative
///
/// [`TaskFuture::cancel`] (and [`TaskFuture::cancel_on_drop`], and closing the client) resolves
/// the task's futures to [`TaskError::Cancelled`](crate::TaskError::Cancelled) at once, and
/// sets this context's flag. A blocking body keeps running until it looks at the flag and
/// returns; whatever it returns then is discarded. A body that never looks runs to its end, so
/// poll [`is_cancelled`](TaskContext::is_cancelled) often enough that stopping is quick (one
/// atomic load: every few milliseconds of work is plenty, and costs nothing measurable).
///
/// Dropping the last handle of a task (releasing it) does not cancel it; see
/// [`TaskFuture`]'s drop behaviour.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), taskweave::Error> {
/// use taskweave::client::TaskContext;
///
/// let client = taskweave::Client::new()?;
/// let search = client.submit_with_context(
///     |context: &TaskContext, limit: u64| {
///         let mut found = 0;
///         for candidate in 0..limit {
///             if candidate % 100_000 == 0 && context.is_cancelled() {
///                 return None; // cancelled: stop early, the result is discarded anyway
///             }
///             found += u64::from(candidate % 7 == 0);
///         }
///         Some(found)
///     },
///     1_000_000,
/// );
/// assert_eq!(search.result()?, Some(142_858));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TaskContext {
    inner: Arc<ContextInner>,
}

/// The state every clone of one task's context shares.
///
/// It holds its client weakly: the context lives in the job's body, which the scheduler holds,
/// which the client holds; a strong reference would keep every client with a context body
/// open for ever. [`TaskContext::client`] upgrades it for as long as the body keeps the clone.
struct ContextInner {
    key: TaskKey,
    /// The task's id, for the scheduler (`secede`, `rejoin`).
    id: TaskId,
    /// The client the task was submitted to (see above).
    client: Weak<Shared>,
    /// Its core, reached without upgrading the client: cancelling sub-tasks happens while the
    /// core carries out actions, where the last client handle must not be dropped.
    core: Weak<Core>,
    /// Whether the body is blocking (runs on a worker) rather than async.
    blocking: bool,
    /// The task's priority; its sub-tasks start one above.
    priority: i32,
    /// Set once, when the task is cancelled (or its client closes) while it runs or waits.
    cancelled: AtomicBool,
    /// Set while the body has given its worker back ([`TaskContext::secede`]).
    seceded: AtomicBool,
    /// The wakers of [`TaskContext::cancelled`] futures waiting for the flag.
    wakers: Mutex<Vec<Waker>>,
    /// The tasks submitted through [`TaskContext::client`], cancelled with this one.
    children: Mutex<Vec<Weak<Job>>>,
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("key", &self.inner.key)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl TaskContext {
    fn new(
        client: &Client,
        id: TaskId,
        key: TaskKey,
        blocking: bool,
        priority: i32,
    ) -> TaskContext {
        TaskContext {
            inner: Arc::new(ContextInner {
                key,
                id,
                priority,
                client: Arc::downgrade(&client.shared),
                core: Arc::downgrade(client.core()),
                blocking,
                cancelled: AtomicBool::new(false),
                seceded: AtomicBool::new(false),
                wakers: Mutex::new(Vec::new()),
                children: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A client for the cluster this task runs on, to submit sub-tasks from the body (Dask's
    /// `get_client` / `worker_client`).
    ///
    /// It is a clone of the very client the task was submitted to — the same workers, the
    /// same coordination primitives by name — except that what it submits are this task's
    /// **sub-tasks**: their generated keys sit under this task's key
    /// (`<this key>/<prefix>-<token>`; explicit and pure keys are kept as given, so that they
    /// are still shared), they start one [priority](crate::TaskBuilder::priority) above this
    /// task (a tree of tasks runs depth first), and cancelling this task (or a cancel that cascades to it) cancels
    /// every sub-task that has not finished, and theirs in turn. (A sub-task's key holds
    /// every ancestor's, so keys grow with the depth of the tree.)
    ///
    /// An async body awaits its sub-tasks like any future. A blocking body waits through
    /// this context ([`gather`](TaskContext::gather), [`result`](TaskContext::result)) or
    /// inside a [`secede`](TaskContext::secede) guard, which give its worker back while it
    /// waits: a recursion of tasks does not deadlock even on one worker.
    ///
    /// The clone keeps the client open while the body holds it (the last user handle
    /// dropped closes the client only once the body drops it too): drop it when the body
    /// returns, as any local is.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when every handle of the client was dropped (it closed, and the
    /// task is being cancelled).
    ///
    /// # Examples
    ///
    /// A recursive Fibonacci where each task submits two sub-tasks, on one worker:
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use taskweave::{Client, TaskContext, TaskFuture};
    ///
    /// fn fib(client: &Client, n: u64) -> TaskFuture<u64> {
    ///     client.try_submit_with_context(
    ///         |context: &TaskContext, n: u64| -> Result<u64, taskweave::Error> {
    ///             if n < 2 {
    ///                 return Ok(n);
    ///             }
    ///             let client = context.client()?;
    ///             let parts = [fib(&client, n - 1), fib(&client, n - 2)];
    ///             // Gives the worker back while it waits: no deadlock on one worker.
    ///             Ok(context.gather(&parts)?.iter().sum())
    ///         },
    ///         n,
    ///     )
    /// }
    ///
    /// let client = Client::builder().workers(1).build_blocking()?;
    /// assert_eq!(fib(&client, 10).result()?, 55);
    /// # Ok(()) }
    /// ```
    pub fn client(&self) -> Result<Client, Error> {
        match self.inner.client.upgrade() {
            Some(shared) => Ok(Client { shared, parent: Some(self.clone()) }),
            None => Err(Error::Closed { operation: "TaskContext::client" }),
        }
    }

    /// Gives this blocking body's worker back to the pool until the guard is dropped (Dask's
    /// `secede`, then `rejoin` on drop), so that the body may block waiting for other tasks —
    /// its own sub-tasks — without holding a worker they need.
    ///
    /// While the guard lives, the transport runs one more task at once (the in-process
    /// transport starts a stand-in worker thread, or keeps one that is idle), and blocking
    /// calls are allowed on this worker thread: [`TaskFuture::result`], the client's
    /// [`blocking`](Client::blocking) view. When the guard drops, the body takes a worker slot
    /// again at once, even if that puts the pool over its size for a while (no new task starts
    /// until it is back under it): waiting for a free slot could wait for the very tasks
    /// that wait for this one.
    ///
    /// [`gather`](TaskContext::gather) and [`result`](TaskContext::result) do this for you;
    /// take the guard yourself for other waits (a [`Queue`](crate::Queue), an
    /// [`Event`](crate::Event), `as_completed`). Nested guards are fine (the inner ones do
    /// nothing). On an async body the guard does nothing: an async body does not hold a
    /// worker, and must not block anyway. A transport that cannot lend workers
    /// ([`Transport::secede`](crate::transport::Transport::secede) returns false) keeps
    /// the slot taken, and only lifts the refusal to block. Call it on the body's own thread
    /// (a clone of the context sent elsewhere would lend the worker while the body runs on).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use taskweave::TaskContext;
    ///
    /// let client = taskweave::Client::builder().workers(1).build_blocking()?;
    /// let outer = client.try_submit_with_context(
    ///     |context: &TaskContext, x: u32| -> Result<u32, taskweave::Error> {
    ///         let inner = context.client()?.submit(|x: u32| x * 2, x);
    ///         let _seceded = context.secede(); // the only worker is lent to `inner`
    ///         inner.result()
    ///     },
    ///     21,
    /// );
    /// assert_eq!(outer.result()?, 42);
    /// # Ok(()) }
    /// ```
    pub fn secede(&self) -> Seceded<'_> {
        if !self.inner.blocking || self.inner.seceded.swap(true, Ordering::AcqRel) {
            return Seceded { context: self, core: None, _suspended: None };
        }
        let core = self.inner.core.upgrade().filter(|core| core.secede(self.inner.id));
        Seceded { context: self, core, _suspended: Some(suspend_async_context()) }
    }

    /// Waits for `futures` (any [`Gather`] shape) and returns their values, from a blocking
    /// body, giving its worker back while it waits ([`secede`](TaskContext::secede)): the
    /// blocking twin of [`Client::gather`] for the sub-tasks of a task. Returns early when
    /// this task is cancelled.
    ///
    /// # Errors
    ///
    /// The first task error in input order, as [`Error::Task`] (a sub-task's panic is
    /// [`TaskError::Panicked`] there, for the body to handle); [`Error::Task`] with
    /// [`TaskError::Cancelled`] naming this task when it is cancelled while it waits;
    /// [`Error::Closed`] when the client closed; [`Error::BlockingInAsyncContext`] when called
    /// from an async body (await [`Client::gather`] there).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use taskweave::TaskContext;
    ///
    /// let client = taskweave::Client::builder().workers(1).build_blocking()?;
    /// let total = client.try_submit_with_context(
    ///     |context: &TaskContext, n: u64| -> Result<u64, taskweave::Error> {
    ///         let squares = context.client()?.map(|x: u64| x * x, 0..n);
    ///         Ok(context.gather(&squares)?.iter().sum())
    ///     },
    ///     4,
    /// );
    /// assert_eq!(total.result()?, 14);
    /// # Ok(()) }
    /// ```
    pub fn gather<G: Gather>(&self, futures: G) -> Result<G::Output, Error> {
        let client = self.waiting_client()?;
        let _seceded = self.secede();
        self.wait_unless_cancelled(client.gather(futures))?
    }

    /// Waits for one `future`'s value from a blocking body, giving its worker back while it
    /// waits: [`gather`](TaskContext::gather) of one future.
    ///
    /// # Errors
    ///
    /// As [`gather`](TaskContext::gather).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use taskweave::{TaskContext, TaskError};
    ///
    /// let client = taskweave::Client::builder().workers(1).build_blocking()?;
    /// let handled = client.try_submit_with_context(
    ///     |context: &TaskContext, _: ()| -> Result<&'static str, taskweave::Error> {
    ///         let child = context.client()?.submit(|_: ()| panic!("bad input"), ());
    ///         match context.result(&child) {
    ///             Err(taskweave::Error::Task(TaskError::Panicked { .. })) => Ok("recovered"),
    ///             other => panic!("expected a panic, got {other:?}"),
    ///         }
    ///     },
    ///     (),
    /// );
    /// assert_eq!(handled.result()?, "recovered");
    /// # Ok(()) }
    /// ```
    pub fn result<T: Clone + 'static>(&self, future: &TaskFuture<T>) -> Result<T, Error> {
        let _client = self.waiting_client()?;
        let _seceded = self.secede();
        self.wait_unless_cancelled(future.clone())?.map_err(Error::from)
    }

    /// The client to wait with, refusing an async body (which must not block).
    fn waiting_client(&self) -> Result<Client, Error> {
        if !self.inner.blocking {
            return Err(Error::BlockingInAsyncContext);
        }
        self.client()
    }

    /// Blocks on `wait` (the caller seceded) unless this task is cancelled first.
    fn wait_unless_cancelled<F: Future>(&self, wait: F) -> Result<F::Output, Error> {
        let wait = std::pin::pin!(wait);
        let either = block_on_caller_thread(futures::future::select(wait, self.cancelled()))?;
        match either {
            futures::future::Either::Left((output, _)) => Ok(output),
            futures::future::Either::Right(((), _)) => Err(Error::Task(TaskError::Cancelled {
                key: self.inner.key.clone(),
                reason: "the task was cancelled while it waited for other tasks".into(),
            })),
        }
    }

    /// Makes `job`, submitted through [`client`](TaskContext::client), a sub-task: cancelled
    /// with this task (at once, if it already was).
    pub(crate) fn adopt(&self, job: &Arc<Job>) {
        {
            let mut children = self.inner.children.lock();
            // Checked under the lock: `cancel` sets the flag before it takes the list.
            if !self.is_cancelled() {
                if children.len() == children.capacity() {
                    // Keep the list to the sub-tasks still held: a body that submits many
                    // over its life does not grow it for ever.
                    children.retain(|child| child.strong_count() > 0);
                }
                children.push(Arc::downgrade(job));
                return;
            }
        }
        if let Some(core) = self.inner.core.upgrade() {
            core.cancel(job, &self.child_cancel_reason());
        }
    }

    /// The task's priority (its sub-tasks start one above).
    pub(crate) fn priority(&self) -> i32 {
        self.inner.priority
    }

    fn child_cancel_reason(&self) -> String {
        format!("its parent task {} was cancelled", self.inner.key)
    }

    /// The key of the task this body runs for (the same as its future's
    /// [`key`](TaskFuture::key)), for logs and for naming what the body produces.
    pub fn key(&self) -> &TaskKey {
        &self.inner.key
    }

    /// Whether the task was cancelled: by [`TaskFuture::cancel`], by a dropped
    /// [`cancel_on_drop`](TaskFuture::cancel_on_drop) guard, by a cancelled dependency's
    /// cascade, or by the client closing. Once true, it stays true, and nobody will read
    /// what the body returns: return as soon as convenient.
    ///
    /// One atomic load; cheap enough to call in an inner loop.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// Resolves when the task is cancelled (at once if it already was): for async code that
    /// runs on behalf of the task, such as a helper future a body spawned, to `select` on.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use taskweave::client::TaskContext;
    ///
    /// let client = taskweave::Client::new()?;
    /// let (contexts, context) = flume::bounded(1);
    /// let future = client.submit_with_context(
    ///     move |context: &TaskContext, _: ()| {
    ///         contexts.send(context.clone()).unwrap();
    ///         while !context.is_cancelled() {
    ///             std::thread::yield_now();
    ///         }
    ///     },
    ///     (),
    /// );
    /// let context = context.recv().unwrap();
    /// future.cancel();
    /// futures::executor::block_on(context.cancelled()); // resolves: the task was cancelled
    /// assert!(context.is_cancelled());
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops waiting; nothing else changes.
    pub fn cancelled(&self) -> Cancelled {
        Cancelled { context: self.clone() }
    }

    /// Sets the flag, wakes every [`cancelled`](TaskContext::cancelled) waiter and cancels
    /// the sub-tasks that have not finished (which cancels theirs in turn).
    pub(crate) fn cancel(&self) {
        if self.inner.cancelled.swap(true, Ordering::AcqRel) {
            return;
        }
        let wakers = std::mem::take(&mut *self.inner.wakers.lock());
        for waker in wakers {
            waker.wake();
        }
        let children = std::mem::take(&mut *self.inner.children.lock());
        if children.is_empty() {
            return;
        }
        let Some(core) = self.inner.core.upgrade() else { return };
        let reason = self.child_cancel_reason();
        for child in children.iter().filter_map(Weak::upgrade) {
            // A finished sub-task keeps its value (a cancel would take it back).
            if child.status().is_none() {
                core.cancel(&child, &reason);
            }
        }
    }
}

/// The guard of [`TaskContext::secede`]: while it lives, the blocking body's worker is lent
/// to the pool and the body may block; dropping it takes a worker slot back (Dask's
/// `rejoin`). Not `Send`: it belongs to the body's thread, whose refusal to block it lifts.
#[must_use = "the worker is taken back as soon as the guard is dropped"]
pub struct Seceded<'a> {
    context: &'a TaskContext,
    /// The core that lent the slot, when one was lent.
    core: Option<Arc<Core>>,
    /// Lifts the worker thread's async-context mark while the guard lives (none for a guard
    /// that does nothing).
    _suspended: Option<crate::executor::SuspendedAsyncContext>,
}

impl fmt::Debug for Seceded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seceded")
            .field("key", self.context.key())
            .field("lent", &self.core.is_some())
            .finish()
    }
}

impl Drop for Seceded<'_> {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            core.rejoin(self.context.inner.id);
        }
        if self._suspended.is_some() {
            self.context.inner.seceded.store(false, Ordering::Release);
        }
    }
}

/// The future of [`TaskContext::cancelled`]: resolves once the task is cancelled.
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Cancelled {
    context: TaskContext,
}

impl Future for Cancelled {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.context.is_cancelled() {
            return Poll::Ready(());
        }
        let mut wakers = self.context.inner.wakers.lock();
        // Checked again under the lock: `cancel` sets the flag before it takes the wakers.
        if self.context.is_cancelled() {
            return Poll::Ready(());
        }
        if !wakers.iter().any(|waker| waker.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A blocking body that takes its task's context; the context lives in the body (and so in
/// the job), where a cancel finds it.
struct BlockingContextBody<F> {
    context: TaskContext,
    function: F,
}

impl<F> Body for BlockingContextBody<F>
where
    F: Fn(&TaskContext, &[Value]) -> Result<Value, TaskFailure> + Send + Sync + 'static,
{
    fn is_async(&self) -> bool {
        false
    }

    fn call_blocking(&self, inputs: &[Value]) -> Result<Value, TaskFailure> {
        (self.function)(&self.context, inputs)
    }

    fn call_async(&self, _: Vec<Value>) -> BoxFuture<Result<Value, TaskFailure>> {
        Box::pin(async { Err("internal error: a blocking task was run as an async one".into()) })
    }

    fn cancel(&self) {
        self.context.cancel();
    }
}

/// An async body that takes its task's context.
struct AsyncContextBody<F> {
    context: TaskContext,
    function: F,
}

impl<F> Body for AsyncContextBody<F>
where
    F: Fn(TaskContext) -> BoxFuture<Result<Value, TaskFailure>> + Send + Sync + 'static,
{
    fn is_async(&self) -> bool {
        true
    }

    fn call_blocking(&self, _: &[Value]) -> Result<Value, TaskFailure> {
        Err("internal error: an async task was run as a blocking one".into())
    }

    fn call_async(&self, _: Vec<Value>) -> BoxFuture<Result<Value, TaskFailure>> {
        (self.function)(self.context.clone())
    }

    fn cancel(&self) {
        self.context.cancel();
    }
}

/// Submissions whose bodies receive their [`TaskContext`].
impl TaskBuilder<'_, NoDeps, Impure> {
    /// Submits `function(&context, argument)` with this builder's options; see
    /// [`Client::submit_with_context`].
    pub fn submit_with_context<F, A, R>(&self, function: F, argument: A) -> TaskFuture<R>
    where
        F: Fn(&TaskContext, A) -> R + Send + Sync + 'static,
        A: Clone + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        let key = self.key_or::<F>(None);
        let (id, context) = self.context(&key.0, true);
        let body = BlockingContextBody {
            context,
            function: move |context: &TaskContext, _: &[Value]| {
                Ok(Arc::new(function(context, argument.clone())) as Value)
            },
        };
        self.submit_job_as(id, key, DependencyList::default(), body, None)
    }

    /// Submits a fallible `function(&context, argument)` with this builder's options; see
    /// [`Client::try_submit_with_context`].
    pub fn try_submit_with_context<F, A, T, E>(&self, function: F, argument: A) -> TaskFuture<T>
    where
        F: Fn(&TaskContext, A) -> Result<T, E> + Send + Sync + 'static,
        A: Clone + Send + Sync + 'static,
        T: Send + Sync + 'static,
        E: fmt::Display,
    {
        let key = self.key_or::<F>(None);
        let (id, context) = self.context(&key.0, true);
        let body = BlockingContextBody {
            context,
            function: move |context: &TaskContext, _: &[Value]| match function(
                context,
                argument.clone(),
            ) {
                Ok(value) => Ok(Arc::new(value) as Value),
                Err(error) => Err(TaskFailure::new(error.to_string())),
            },
        };
        self.submit_job_as(id, key, DependencyList::default(), body, None)
    }

    /// Submits an async `function(context, argument)` with this builder's options; see
    /// [`Client::submit_async_with_context`].
    pub fn submit_async_with_context<F, A, Fut, R>(&self, function: F, argument: A) -> TaskFuture<R>
    where
        F: Fn(TaskContext, A) -> Fut + Send + Sync + 'static,
        A: Clone + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: Send + Sync + 'static,
    {
        let key = self.key_or::<F>(None);
        let (id, context) = self.context(&key.0, false);
        let body = AsyncContextBody {
            context,
            function: move |context: TaskContext| -> BoxFuture<Result<Value, TaskFailure>> {
                let running = function(context, argument.clone());
                Box::pin(async move { Ok(Arc::new(running.await) as Value) })
            },
        };
        self.submit_job_as(id, key, DependencyList::default(), body, None)
    }
}

impl<D, P> TaskBuilder<'_, D, P> {
    /// The id and the context of a task about to be submitted with `key`.
    fn context(&self, key: &TaskKey, blocking: bool) -> (TaskId, TaskContext) {
        let client = self.client();
        let id = client.core().next_id();
        (id, TaskContext::new(client, id, key.clone(), blocking, self.priority_option()))
    }
}

/// Dependent submissions whose bodies receive their [`TaskContext`].
impl<D: Dependencies, P: 'static> TaskBuilder<'_, After<D>, P> {
    /// Like [`submit`](TaskBuilder::submit) (run once every dependency finished, with their
    /// values), for a blocking body that receives its [`&TaskContext`](TaskContext) and can
    /// stop early when cancelled (see [`Client::submit_with_context`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use taskweave::TaskContext;
    ///
    /// let client = taskweave::Client::new()?;
    /// let rows = client.submit(|n: u64| (0..n).collect::<Vec<u64>>(), 1_000);
    /// let total = client.after(&rows).submit_with_context(|context: &TaskContext, rows: Vec<u64>| {
    ///     let mut total = 0;
    ///     for chunk in rows.chunks(100) {
    ///         if context.is_cancelled() {
    ///             return None;
    ///         }
    ///         total += chunk.iter().sum::<u64>();
    ///     }
    ///     Some(total)
    /// });
    /// assert_eq!(total.result()?, Some(499_500));
    /// # Ok(()) }
    /// ```
    pub fn submit_with_context<F, R>(&self, function: F) -> TaskFuture<R>
    where
        F: Fn(&TaskContext, D::Values) -> R + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        let (list, lengths) = self.collect();
        let key = self.dependent_key::<F>(&list);
        let (id, context) = self.context(&key.0, true);
        let body = BlockingContextBody {
            context,
            function: move |context: &TaskContext, inputs: &[Value]| {
                let values =
                    D::read(&mut DependencyReader::new(inputs, &lengths)).ok_or_else(|| {
                        "internal error: dependency values of an unexpected type".to_owned()
                    })?;
                Ok(Arc::new(function(context, values)) as Value)
            },
        };
        self.submit_job_as(id, key, list, body, None)
    }
}

impl Client {
    /// Like [`submit`](Client::submit), for a blocking body that can stop early when its task
    /// is cancelled: it receives a [`&TaskContext`](TaskContext) and polls
    /// [`is_cancelled`](TaskContext::is_cancelled) between steps of its work.
    ///
    /// A plain `submit`'s body cannot be stopped once it runs (a cancel only discards its
    /// value); use this for long-running work that a user may abandon, such as the handler
    /// of an HTTP request the client may disconnect from (see
    /// [`TaskFuture::cancel_on_drop`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use taskweave::client::TaskContext;
    ///
    /// let client = taskweave::Client::new()?;
    /// let (started, has_started) = flume::bounded(1);
    /// let endless = client.submit_with_context(
    ///     move |context: &TaskContext, step: u64| {
    ///         started.send(()).unwrap();
    ///         let mut done = 0u64;
    ///         while !context.is_cancelled() {
    ///             done += step; // a slice of the real work
    ///         }
    ///         done
    ///     },
    ///     1,
    /// );
    /// has_started.recv().unwrap();
    /// endless.cancel(); // the body sees the flag and returns; its worker is free again
    /// assert!(endless.result().unwrap_err().to_string().contains("cancelled"));
    /// assert_eq!(client.submit(|x: u32| x + 1, 1).result()?, 2);
    /// # Ok(()) }
    /// ```
    pub fn submit_with_context<F, A, R>(&self, function: F, argument: A) -> TaskFuture<R>
    where
        F: Fn(&TaskContext, A) -> R + Send + Sync + 'static,
        A: Clone + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        self.task().submit_with_context(function, argument)
    }

    /// Like [`try_submit`](Client::try_submit), for a fallible blocking body that receives
    /// its [`&TaskContext`](TaskContext) (see [`submit_with_context`](Client::submit_with_context)).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use taskweave::client::TaskContext;
    ///
    /// let client = taskweave::Client::new()?;
    /// let checked = client.try_submit_with_context(
    ///     |context: &TaskContext, text: &'static str| {
    ///         if context.is_cancelled() {
    ///             return Err("cancelled before parsing".to_owned());
    ///         }
    ///         text.parse::<i32>().map_err(|error| format!("{}: {error}", context.key()))
    ///     },
    ///     "42",
    /// );
    /// assert_eq!(checked.result()?, 42);
    /// # Ok(()) }
    /// ```
    pub fn try_submit_with_context<F, A, T, E>(&self, function: F, argument: A) -> TaskFuture<T>
    where
        F: Fn(&TaskContext, A) -> Result<T, E> + Send + Sync + 'static,
        A: Clone + Send + Sync + 'static,
        T: Send + Sync + 'static,
        E: fmt::Display,
    {
        self.task().try_submit_with_context(function, argument)
    }

    /// Like [`submit_async`](Client::submit_async), for an async body that receives its own
    /// [`TaskContext`]. Cancelling drops the body at its next `.await` anyway; the context
    /// serves the work it hands elsewhere (a blocking helper polling
    /// [`is_cancelled`](TaskContext::is_cancelled), a spawned future awaiting
    /// [`cancelled`](TaskContext::cancelled)).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use taskweave::client::TaskContext;
    ///
    /// let client = taskweave::Client::new()?;
    /// let named = client.submit_async_with_context(
    ///     |context: TaskContext, n: u32| async move { format!("{} got {n}", context.key()) },
    ///     7,
    /// );
    /// assert!(named.result()?.ends_with(" got 7"));
    /// # Ok(()) }
    /// ```
    pub fn submit_async_with_context<F, A, Fut, R>(&self, function: F, argument: A) -> TaskFuture<R>
    where
        F: Fn(TaskContext, A) -> Fut + Send + Sync + 'static,
        A: Clone + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: Send + Sync + 'static,
    {
        self.task().submit_async_with_context(function, argument)
    }
}
