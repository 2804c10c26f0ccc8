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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use super::core::{Body, Value};
use super::deps::{Dependencies, DependencyList, DependencyReader};
use super::submit::{After, Impure, NoDeps};
use super::{Client, TaskBuilder, TaskFuture};
use crate::executor::BoxFuture;
use crate::job::TaskFailure;
use crate::scheduler::TaskKey;

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
struct ContextInner {
    key: TaskKey,
    /// Set once, when the task is cancelled (or its client closes) while it runs or waits.
    cancelled: AtomicBool,
    /// The wakers of [`TaskContext::cancelled`] futures waiting for the flag.
    wakers: Mutex<Vec<Waker>>,
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
    fn new(key: TaskKey) -> TaskContext {
        TaskContext {
            inner: Arc::new(ContextInner {
                key,
                cancelled: AtomicBool::new(false),
                wakers: Mutex::new(Vec::new()),
            }),
        }
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

    /// Sets the flag and wakes every [`cancelled`](TaskContext::cancelled) waiter.
    pub(crate) fn cancel(&self) {
        if self.inner.cancelled.swap(true, Ordering::AcqRel) {
            return;
        }
        let wakers = std::mem::take(&mut *self.inner.wakers.lock());
        for waker in wakers {
            waker.wake();
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
        let body = BlockingContextBody {
            context: TaskContext::new(key.0.clone()),
            function: move |context: &TaskContext, _: &[Value]| {
                Ok(Arc::new(function(context, argument.clone())) as Value)
            },
        };
        self.submit_job(key, DependencyList::default(), body, None)
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
        let body = BlockingContextBody {
            context: TaskContext::new(key.0.clone()),
            function: move |context: &TaskContext, _: &[Value]| match function(
                context,
                argument.clone(),
            ) {
                Ok(value) => Ok(Arc::new(value) as Value),
                Err(error) => Err(TaskFailure::new(error.to_string())),
            },
        };
        self.submit_job(key, DependencyList::default(), body, None)
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
        let body = AsyncContextBody {
            context: TaskContext::new(key.0.clone()),
            function: move |context: TaskContext| -> BoxFuture<Result<Value, TaskFailure>> {
                let running = function(context, argument.clone());
                Box::pin(async move { Ok(Arc::new(running.await) as Value) })
            },
        };
        self.submit_job(key, DependencyList::default(), body, None)
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
        let body = BlockingContextBody {
            context: TaskContext::new(key.0.clone()),
            function: move |context: &TaskContext, inputs: &[Value]| {
                let values =
                    D::read(&mut DependencyReader::new(inputs, &lengths)).ok_or_else(|| {
                        "internal error: dependency values of an unexpected type".to_owned()
                    })?;
                Ok(Arc::new(function(context, values)) as Value)
            },
        };
        self.submit_job(key, list, body, None)
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
