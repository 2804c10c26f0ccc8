//! [`TaskFuture`]: the handle to one task's result.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use super::blocking::block_on_caller_thread;
use super::core::{Core, Job, Value, panic_message};
use super::outcome_waiter::OutcomeWaiter;
use crate::error::{Error, TaskError};
use crate::executor::ExecutorExt;
use crate::scheduler::{CancelOutcome, Event, RetryOutcome, TaskKey, TaskState};

/// Anything that holds a task handle: what [`until_gathered`] waits on.
pub(crate) trait AsHandle {
    fn handle(&self) -> &Handle;
}

impl<T> AsHandle for TaskFuture<T> {
    fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl AsHandle for &Handle {
    fn handle(&self) -> &Handle {
        self
    }
}

/// One client handle on a task; the last one dropped releases the task.
///
/// Not an `Arc` of its own: the job counts its handles (`JobOf::handles`), so a task costs
/// no allocation for its handle, and only the last drop talks to the scheduler.
pub(crate) struct Handle {
    pub(crate) job: Arc<Job>,
    pub(crate) core: Arc<Core>,
}

impl Handle {
    /// Takes over the handle a submission counted in `job.handles` for its caller.
    fn counted(job: Arc<Job>, core: Arc<Core>) -> Handle {
        Handle { job, core }
    }
}

impl Clone for Handle {
    fn clone(&self) -> Handle {
        // Relaxed as `Arc::clone`: a new handle is made from one that keeps the count above
        // zero, so no change from none to some can happen here.
        self.job.handles.fetch_add(1, Ordering::Relaxed);
        Handle { job: Arc::clone(&self.job), core: Arc::clone(&self.core) }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // An actor call's job is not the scheduler's: nothing to tell it.
        if self.job.handles.fetch_sub(1, Ordering::AcqRel) == 1 && !self.job.is_detached() {
            self.core.release(self.job.id);
        }
    }
}

/// The result of a submitted task, to await (it is a [`Future`]) or to wait for
/// ([`result`](TaskFuture::result)).
///
/// A `TaskFuture` is a handle: clones share one task and see one result, each getting its own
/// copy of the value (hence `T: Clone` to read it; wrap large values in an `Arc`).
///
/// # Costs: what is cloned
///
/// The task keeps one value, shared by every handle and dependent behind an `Arc`; reading it
/// copies it out:
///
/// - `.await`, [`result`](TaskFuture::result), [`try_result`](TaskFuture::try_result),
///   [`Client::gather`](crate::Client::gather): one `T::clone` per read, as the handle stays
///   usable;
/// - [`into_value`](TaskFuture::into_value) (async) and
///   [`into_result`](TaskFuture::into_result) (blocking): no clone when this is the last
///   handle and no dependent still needs the value — the value moves out — and one clone
///   otherwise; [`try_unwrap`](TaskFuture::try_unwrap) and
///   [`try_into_value`](TaskFuture::try_into_value) never clone and need no `T: Clone`: they
///   give the handle back instead;
/// - a dependent receives one clone of each value it reads, per run;
/// - a body's argument (`submit(f, argument)`) is cloned for each run, the first included:
///   the task keeps it, because a failed task can run again (retries, a lost worker,
///   [`retry`](TaskFuture::retry)). For a large argument, pass an `Arc` (a clone
///   is then a count increment), or [`scatter`](crate::Client::scatter) an `Arc` once and
///   depend on it.
///
/// # Drop behaviour
///
/// Dropping a handle does not cancel the task; dropping the **last** handle *releases* it, as
/// in Dask: the client forgets the task and frees its value. A task released while it waits in
/// the scheduler's queue never starts (use
/// [`Client::fire_and_forget`](crate::Client::fire_and_forget) to keep it); one already handed
/// to a worker runs to its end and its value is discarded. To stop work, call
/// [`cancel`](TaskFuture::cancel).
///
/// So a `TaskFuture` is `#[must_use]`, and so are the `map` methods' vectors: the compiler
/// warns about a submission whose future is dropped at once. The pitfall, then the right way
/// (the first example fails to compile because it denies the warning):
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let client = taskweave::Client::new().unwrap();
/// client.submit(|x: i32| x + 1, 1); // dropped at once: the job may never run
/// client.map(|x: i32| x + 1, 0..3);
/// ```
///
/// ```
/// #![deny(unused_must_use)]
/// let client = taskweave::Client::new().unwrap();
/// let kept = client.submit(|x: i32| x + 1, 1);
/// let forgotten = client.map(|x: i32| x + 1, 0..3);
/// client.fire_and_forget(&forgotten); // runs to completion without a handle
/// assert_eq!(kept.result().unwrap(), 2);
/// ```
///
/// # Examples
///
/// ```
/// let client = taskweave::Client::new()?;
/// let future = client.submit(|x: i64| x + 1, 10);
/// let copy = future.clone();
/// assert_eq!(future.result()?, 11);
/// assert_eq!(copy.result()?, 11);
/// # Ok::<(), taskweave::Error>(())
/// ```
#[must_use = "dropping a TaskFuture releases its task, which then may never run; keep it, \
              await it, or pass it to `client.fire_and_forget`"]
pub struct TaskFuture<T> {
    pub(crate) handle: Handle,
    _value: PhantomData<fn() -> T>,
}

/// The task's key (see [`key`](TaskFuture::key)), so that calls taking a key, such as
/// [`Client::story`](crate::Client::story), take the future too.
impl<T> AsRef<TaskKey> for TaskFuture<T> {
    fn as_ref(&self) -> &TaskKey {
        self.key()
    }
}

impl<T> Clone for TaskFuture<T> {
    fn clone(&self) -> Self {
        TaskFuture { handle: self.handle.clone(), _value: PhantomData }
    }
}

/// Shows the task's key and status, like Dask's repr of a future:
/// `TaskFuture { key: inc-3f2a.., status: finished }`. The status is one of `pending`
/// (waiting for its dependencies or for a worker), `running`, `finished` (it has its value),
/// `failed` and `cancelled`.
///
/// # Examples
///
/// ```
/// let client = taskweave::Client::new()?;
/// let future = client.task().key("answer").submit(|x: i64| x * 2, 21);
/// future.result()?;
/// assert_eq!(format!("{future:?}"), "TaskFuture { key: answer, status: finished }");
/// future.cancel();
/// assert_eq!(format!("{future:?}"), "TaskFuture { key: answer, status: cancelled }");
/// # Ok::<(), taskweave::Error>(())
/// ```
impl<T> fmt::Debug for TaskFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskFuture")
            .field("key", &format_args!("{}", self.handle.job.key))
            .field("status", &format_args!("{}", self.status_name()))
            .finish()
    }
}

impl<T> TaskFuture<T> {
    /// The future of a submission; `job.handles` already counts it (see `Core::submit`).
    pub(crate) fn from_job(job: Arc<Job>, core: Arc<Core>) -> TaskFuture<T> {
        TaskFuture { handle: Handle::counted(job, core), _value: PhantomData }
    }

    /// The same handle with another value type (graph walks keep futures type-erased).
    pub(crate) fn retype<U>(self) -> TaskFuture<U> {
        TaskFuture { handle: self.handle, _value: PhantomData }
    }

    /// The task's key, as in Dask (`inc-3f2a...`, or the key you chose).
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let named = client.task().key("report-2024").submit(|x: u8| x, 1);
    /// assert_eq!(named.key().to_string(), "report-2024");
    /// // A generated key starts with the function's name, as Dask's do.
    /// fn inc(x: i64) -> i64 { x + 1 }
    /// let generated = client.submit(inc, 1);
    /// assert!(generated.key().to_string().starts_with("inc-"), "{}", generated.key());
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn key(&self) -> &TaskKey {
        &self.handle.job.key
    }

    /// Whether the task has an outcome (a value or an error). Never blocks.
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let (release, gate) = flume::bounded::<()>(1);
    /// let gated = client.submit(move |_: ()| gate.recv().is_ok(), ());
    /// assert!(!gated.is_done());
    /// release.send(()).unwrap();
    /// gated.result()?;
    /// assert!(gated.is_done());
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn is_done(&self) -> bool {
        self.handle.job.peek_outcome().is_some()
    }

    /// The task's error, if it failed or was cancelled; `None` while it has no outcome, and
    /// when it has its value. Never blocks, and reads no value (no `T: Clone` needed); the
    /// handle stays usable. Dask's `future.exception()`, which waits first: await the
    /// future, or [`Client::wait`](crate::Client::wait) for it, to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let failing = client.try_submit(|_: ()| Err::<u8, _>("disk full"), ());
    /// assert!(failing.result().is_err());
    /// let error = failing.error().expect("it failed");
    /// assert!(error.to_string().contains("disk full"));
    /// assert!(failing.error().is_some(), "asking again gives it again");
    /// # Ok(()) }
    /// ```
    pub fn error(&self) -> Option<TaskError> {
        self.handle.job.peek_outcome()?.err()
    }

    /// Calls `callback` with a handle to the task once the task has an outcome (a value or
    /// an error), as Dask's `add_done_callback`.
    ///
    /// The callback runs once, on the client's executor: as a task spawned there when this is
    /// called, which waits for the outcome and then calls it — so on one of the runtime's
    /// threads, never on the caller's thread inside `on_done`, never on a worker running a
    /// task body, and never under a lock of the client. If the task already has its outcome,
    /// the callback runs as soon as the executor polls that task. A later
    /// [`retry`](TaskFuture::retry) or [`cancel`](TaskFuture::cancel) does not call it again.
    /// Until it has run, the callback holds a handle, so the task is not released before. A
    /// panic in the callback is caught and logged (`tracing`, at `warn`). A blocking callback
    /// blocks an executor thread: hand heavy work on to `spawn_blocking` or a task.
    ///
    /// # Errors
    ///
    /// [`Error::RuntimeShutDown`] when the executor no longer accepts tasks (the callback is
    /// then not called).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let (report, reports) = std::sync::mpsc::channel();
    /// let future = client.submit(|x: i64| x * 2, 21);
    /// future.on_done(move |done| {
    ///     let _ = report.send(done.try_result());
    /// })?;
    /// let seen = reports.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    /// assert_eq!(seen.unwrap().unwrap(), 42);
    /// # Ok(()) }
    /// ```
    pub fn on_done(
        &self,
        callback: impl FnOnce(TaskFuture<T>) + Send + 'static,
    ) -> Result<(), Error>
    where
        T: 'static,
    {
        let waiter = OutcomeWaiter::new(self.clone());
        self.handle.core.executor.spawn(Box::pin(async move {
            let (future, _) = waiter.await;
            let key = future.key().clone();
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| callback(future))) {
                tracing::warn!(key = %key, message = panic_message(&*panic), "an on_done callback panicked");
            }
        }))
    }

    /// The status word `Debug` shows: the published outcome if there is one (what every
    /// handle reads), else where the scheduler has the task.
    fn status_name(&self) -> &'static str {
        match self.handle.job.peek_outcome() {
            Some(Ok(_)) => "finished",
            Some(Err(error)) if error.is_cancelled() => "cancelled",
            Some(Err(TaskError::ClientClosed { .. })) => "cancelled",
            Some(Err(_)) => "failed",
            None => match self.state() {
                Some(TaskState::Running) => "running",
                _ => "pending",
            },
        }
    }

    /// Where the task is in its life. After the client was closed, the outcome the future
    /// holds decides: `Finished` for a value, `Failed` for an error, `Cancelled` for a task
    /// cancelled by the close or refused by the closed client; `None` only for a task the
    /// client no longer tracks and that has no outcome.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::scheduler::TaskState;
    ///
    /// let client = taskweave::Client::new()?;
    /// let (release, gate) = flume::bounded::<()>(1);
    /// let gated = client.submit(move |_: ()| gate.recv().is_ok(), ());
    /// let after = client.after(&gated).submit(|ok: bool| ok);
    /// assert_eq!(after.state(), Some(TaskState::Waiting), "its dependency has not finished");
    /// release.send(()).unwrap();
    /// assert!(after.result()?);
    /// assert_eq!(after.state(), Some(TaskState::Finished));
    /// after.cancel();
    /// assert_eq!(after.state(), Some(TaskState::Cancelled));
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn state(&self) -> Option<TaskState> {
        let job = &self.handle.job;
        self.handle.core.state(job.id).or_else(|| {
            job.peek_outcome().map(|outcome| match outcome {
                Ok(_) => TaskState::Finished,
                Err(error) if error.is_cancelled() => TaskState::Cancelled,
                Err(TaskError::ClientClosed { .. }) => TaskState::Cancelled,
                Err(_) => TaskState::Failed,
            })
        })
    }

    /// Cancels the task, and every task depending on it that the client still holds, and
    /// says what it did; as Dask's `Future.cancel`.
    ///
    /// From then on the task reports [`TaskError::Cancelled`], whatever it was doing:
    ///
    /// - not started yet: it never starts ([`CancelOutcome::Cancelled`]);
    /// - running: a running async body is dropped; a running blocking body cannot be stopped
    ///   from the outside: it runs to its end and its value is discarded, unless it was
    ///   submitted with [`submit_with_context`](crate::Client::submit_with_context) and polls
    ///   [`TaskContext::is_cancelled`](crate::TaskContext::is_cancelled)
    ///   ([`CancelOutcome::Cancelled`]);
    /// - finished, with a value or an error: the outcome is dropped and its value released
    ///   ([`CancelOutcome::CancelledAfterFinishing`]); a task submitted later that depends on
    ///   it is cancelled at once, with a reason naming it;
    /// - cancelled already: nothing changes ([`CancelOutcome::AlreadyCancelled`]);
    /// - the client is closed: nothing changes ([`CancelOutcome::ClientClosed`]); a closed
    ///   client keeps the outcomes its futures hold.
    ///
    /// Tasks that depend on it are cancelled the same way, finished or not. Every handle to
    /// the task sees the cancel; a cancelled task is not run again by
    /// [`retry`](TaskFuture::retry): submit it again instead.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use taskweave::{CancelOutcome, TaskError};
    ///
    /// let client = taskweave::Client::new()?;
    /// let x = client.submit(|n: i64| n + 1, 1);
    /// let y = client.after(&x).submit(|x: i64| x * 10);
    /// assert_eq!(y.result()?, 20);
    /// assert_eq!(x.cancel(), CancelOutcome::CancelledAfterFinishing);
    /// assert!(matches!(x.try_result(), Some(Err(TaskError::Cancelled { .. }))));
    /// // y read x, so it is cancelled too.
    /// assert!(matches!(y.try_result(), Some(Err(TaskError::Cancelled { .. }))));
    /// // So is a task submitted on x now.
    /// let late = client.after(&x).submit(|x: i64| x);
    /// assert!(late.result().is_err());
    /// # Ok(()) }
    /// ```
    pub fn cancel(&self) -> CancelOutcome {
        self.cancel_with_reason("cancelled by the user")
    }

    /// Runs the task again if it failed, and says what it did (Dask's `Future.retry`).
    ///
    /// Every failed task it depends on, directly or not, runs again first: a task that
    /// failed because a dependency failed succeeds once that dependency does. A failed task
    /// keeps the tasks it reads (and their values) until its last handle is dropped, so their
    /// handles may have been dropped meanwhile. Every handle to a task that runs again waits
    /// for its new outcome. A task that has not failed ([`RetryOutcome::NotFailed`]), was
    /// cancelled ([`RetryOutcome::Cancelled`]), or whose client was closed
    /// ([`RetryOutcome::ClientClosed`]) is left as it is.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use taskweave::RetryOutcome;
    ///
    /// static CALLS: AtomicU32 = AtomicU32::new(0);
    /// let client = taskweave::Client::new()?;
    /// let flaky = client.try_submit(
    ///     |_: ()| if CALLS.fetch_add(1, Ordering::SeqCst) == 0 { Err("first call fails") } else { Ok(7) },
    ///     (),
    /// );
    /// let doubled = client.after(&flaky).submit(|x: i32| x * 2);
    /// assert!(doubled.result().is_err()); // the dependency failed
    /// // Retrying the dependent runs the failed dependency again, then the dependent.
    /// assert_eq!(doubled.retry(), RetryOutcome::Rerunning);
    /// assert_eq!(doubled.result()?, 14);
    /// assert_eq!(flaky.result()?, 7);
    /// assert_eq!(doubled.retry(), RetryOutcome::NotFailed);
    /// # Ok(()) }
    /// ```
    pub fn retry(&self) -> RetryOutcome {
        let outcome = self.handle.core.retry(&self.handle.job);
        tracing::debug!(key = %self.handle.job.key, ?outcome, "retry requested");
        outcome
    }

    pub(crate) fn cancel_with_reason(&self, reason: &str) -> CancelOutcome {
        tracing::debug!(key = %self.handle.job.key, reason, "cancel requested");
        self.handle.core.cancel(&self.handle.job, reason)
    }
}

impl<T: Clone + 'static> TaskFuture<T> {
    /// Blocks the calling thread until the task has an outcome.
    ///
    /// # Errors
    ///
    /// [`Error::Task`] with the task's error; [`Error::BlockingInAsyncContext`] when called
    /// from a thread that drives async work that taskweave can see: its workers, its
    /// executors' threads, and the runtimes of the enabled adapter features (a tokio runtime
    /// with feature `tokio`, and so on). Use `.await` there, or a dependency.
    ///
    /// # Examples
    ///
    /// The pitfall, and the right way: a task body that waits for another task blocks a
    /// worker (with few workers, forever), so the wait is refused; make it a dependency.
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let future = client.submit(|x: i64| x * 2, 4);
    /// // Wrong: blocking inside a worker.
    /// let other = future.clone();
    /// let waiting = client.submit(move |_: ()| other.result().map_err(|e| e.to_string()), ());
    /// assert!(matches!(waiting.result()?, Err(text) if text.contains("inside an async context")));
    /// // Right: depend on it.
    /// let doubled = client.after(&future).submit(|x: i64| x * 2);
    /// assert_eq!(doubled.result()?, 16);
    /// # Ok(()) }
    /// ```
    pub fn result(&self) -> Result<T, Error> {
        block_on_caller_thread(self.clone())?.map_err(Error::from)
    }

    /// Blocks the calling thread until the task has an outcome, or until `timeout` has
    /// passed (measured by the client's executor), as Dask's `future.result(timeout=..)`.
    /// A timeout cancels nothing: the task keeps running, and waiting again picks it up.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when `timeout` passes first; [`Error::Task`] with the task's error;
    /// [`Error::BlockingInAsyncContext`] when called from a thread that drives async work
    /// (there, use `client.executor().timeout(d, &future).await`).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use std::time::Duration;
    ///
    /// let client = taskweave::Client::new()?;
    /// let (release, gate) = flume::bounded::<()>(1);
    /// let gated = client.submit(move |_: ()| gate.recv().is_ok(), ());
    /// let waited = gated.result_timeout(Duration::from_millis(20));
    /// assert!(matches!(waited, Err(taskweave::Error::Timeout { .. })));
    /// release.send(()).unwrap();
    /// assert!(gated.result_timeout(Duration::from_secs(30))?, "nothing was cancelled");
    /// # Ok(()) }
    /// ```
    pub fn result_timeout(&self, timeout: Duration) -> Result<T, Error> {
        let waiting = self.handle.core.executor.timeout(timeout, OutcomeWaiter::new(self.clone()));
        let (future, outcome) = block_on_caller_thread(waiting)??;
        read_value(future.key(), outcome).map_err(Error::Task)
    }

    /// The outcome if there is one, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let (release, gate) = flume::bounded::<()>(1);
    /// let gated = client.submit(move |_: ()| gate.recv().is_ok(), ());
    /// assert!(gated.try_result().is_none(), "no outcome yet, and it does not wait");
    /// release.send(()).unwrap();
    /// gated.result()?;
    /// assert!(matches!(gated.try_result(), Some(Ok(true))));
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn try_result(&self) -> Option<Result<T, TaskError>> {
        self.handle.job.peek_outcome().map(|outcome| read_value(&self.handle.job.key, outcome))
    }
}

impl<T: Send + Sync + 'static> TaskFuture<T> {
    /// Moves the value out of the task if this is its only handle, without a clone and
    /// without waiting; otherwise gives the handle back (as [`Arc::try_unwrap`]). Needs no
    /// `T: Clone`.
    ///
    /// `Ok(Ok(value))` when the task has its value, this is the last handle, and nothing else
    /// in the client still reads the value (a task that depends on it and has not finished,
    /// or failed and may be retried, keeps it); the task is then released, as when the last
    /// handle is dropped. `Ok(Err(error))` when the task failed or was cancelled (the error is
    /// cloned; the handle is released). `Err(future)`, the handle unchanged, when the task
    /// has no outcome yet or its value is shared: another handle exists, or a dependent needs
    /// it. To wait first, use [`try_into_value`](TaskFuture::try_into_value).
    ///
    /// # Errors
    ///
    /// The inner `Err` is the task's [`TaskError`]; the outer `Err` is the handle given back.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use taskweave::ReturnWhen;
    ///
    /// /// A value that cannot be cloned.
    /// #[derive(Debug)]
    /// struct Report(String);
    ///
    /// let client = taskweave::Client::new()?;
    /// let future = client.submit(|n: u32| Report(format!("{n} rows")), 3);
    /// let shared = future.clone();
    /// client.blocking().wait(std::slice::from_ref(&future), ReturnWhen::AllCompleted, None)?;
    /// // Two handles: the value cannot move out yet.
    /// let future = future.try_unwrap().expect_err("another handle exists");
    /// drop(shared);
    /// let report = future.try_unwrap().expect("the last handle")?;
    /// assert_eq!(report.0, "3 rows");
    /// # Ok(()) }
    /// ```
    pub fn try_unwrap(self) -> Result<Result<T, TaskError>, TaskFuture<T>> {
        let key = &self.handle.job.key;
        match self.handle.job.peek_outcome() {
            None => return Err(self),
            Some(Err(error)) => return Ok(Err(error)),
            Some(Ok(value)) if !value.is::<T>() => return Ok(Err(mismatch::<T>(key))),
            Some(Ok(_)) => {}
        }
        // Cheap refusal first: another handle shares the value.
        if self.handle.job.handles.load(Ordering::Acquire) != 1 {
            return Err(self);
        }
        let job = Arc::clone(&self.handle.job);
        let core = Arc::clone(&self.handle.core);
        // Release the task as a dropped last handle does: the scheduler then forgets it,
        // unless a dependent may still read the value (one that has not finished, or failed
        // and may be retried). Forgotten, it is out of everyone's reach: no handle, no
        // dependent and no shared key can read it again, so the value may move.
        drop(self);
        if core.state(job.id).is_none()
            && let Some(value) = job.take_unshared_value::<T>()
        {
            return Ok(Ok(value));
        }
        // Shared after all: take a handle again, as a submission of its shared key would.
        if job.handles.fetch_add(1, Ordering::AcqRel) == 0 {
            core.feed(Event::Retained { id: job.id });
        }
        Err(TaskFuture::from_job(job, core))
    }

    /// Waits for the task's outcome, then moves the value out as
    /// [`try_unwrap`](TaskFuture::try_unwrap) does; gives the handle back when the value is
    /// shared. Needs no `T: Clone`: for values that cannot be cloned.
    ///
    /// # Errors
    ///
    /// The inner `Err` is the task's [`TaskError`]; the outer `Err` is the handle given back
    /// when the value is shared.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn handler(client: taskweave::Client) -> Result<(), taskweave::Error> {
    /// struct Report(String); // not Clone
    /// let future = client.submit(|n: u32| Report(format!("{n} rows")), 3);
    /// let report = match future.try_into_value().await {
    ///     Ok(outcome) => outcome?,
    ///     Err(_shared) => unreachable!("the only handle"),
    /// };
    /// assert_eq!(report.0, "3 rows");
    /// # Ok(()) }
    /// # let client = taskweave::Client::new().unwrap();
    /// # futures::executor::block_on(handler(client)).unwrap();
    /// ```
    pub async fn try_into_value(mut self) -> Result<Result<T, TaskError>, TaskFuture<T>> {
        loop {
            // `OutcomeWaiter` is dropped at the end of the statement: its extra handle with it.
            self = OutcomeWaiter::new(self).await.0;
            match self.try_unwrap() {
                // No outcome: a cancel after finishing took the value back; wait again.
                Err(future) if !future.is_done() => self = future,
                taken => return taken,
            }
        }
    }
}

impl<T: Clone + Send + Sync + 'static> TaskFuture<T> {
    /// Awaits the value, moving it out without a clone when this is the task's last handle
    /// and nothing else reads it (see [`try_unwrap`](TaskFuture::try_unwrap)); otherwise
    /// clones it, as `.await` always does. Consumes the handle, which releases the task.
    ///
    /// # Errors
    ///
    /// The task's [`TaskError`], as `.await` gives.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn handler(client: taskweave::Client) -> Result<(), taskweave::Error> {
    /// let future = client.submit(|n: usize| vec![0u8; n], 1 << 20);
    /// let buffer: Vec<u8> = future.into_value().await?; // moved, not copied
    /// assert_eq!(buffer.len(), 1 << 20);
    /// # Ok(()) }
    /// # let client = taskweave::Client::new().unwrap();
    /// # futures::executor::block_on(handler(client)).unwrap();
    /// ```
    pub async fn into_value(self) -> Result<T, TaskError> {
        match self.try_into_value().await {
            Ok(outcome) => outcome,
            // Shared: read it as `.await` does, with a clone.
            Err(shared) => shared.await,
        }
    }

    /// Blocks the calling thread until the task has an outcome, then moves the value out as
    /// [`into_value`](TaskFuture::into_value) does: the blocking twin, as
    /// [`result`](TaskFuture::result) is of `.await`.
    ///
    /// # Errors
    ///
    /// As [`result`](TaskFuture::result): [`Error::Task`] with the task's error;
    /// [`Error::BlockingInAsyncContext`] when called from a thread that drives async work.
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let future = client.submit(|n: usize| vec![0u8; n], 1 << 20);
    /// let buffer: Vec<u8> = future.into_result()?; // moved, not copied
    /// assert_eq!(buffer.len(), 1 << 20);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn into_result(self) -> Result<T, Error> {
        block_on_caller_thread(self.into_value())?.map_err(Error::from)
    }
}

/// Waits until every future in `futures` has an outcome, or until the futures before the first
/// unfinished one include a failure (which `gather` then reports).
///
/// It waits on the *last* unfinished future rather than on each in turn: tasks mostly finish
/// in submission order, so one wake-up then finds (nearly) all of them done, where waiting in
/// order costs a wake-up of the waiting thread per task. That wake-up (a futex call, a context
/// switch) was the largest cost of gathering many small tasks. So that a failure is still
/// reported as soon as the tasks before it are done (not when the last task is), it also asks
/// the client to wake it at any task failure (`Core::watch_failures`); failures are rare, so
/// that costs one registration per wait.
pub(crate) async fn until_gathered<H: AsHandle>(futures: &[H]) {
    let mut front = 0;
    let mut back = futures.len();
    let mut watching = FailureWatch { registrations: Vec::new() };
    std::future::poll_fn(|cx| {
        loop {
            while front < back {
                match futures[front].handle().job.status() {
                    Some(true) => front += 1,
                    Some(false) => return Poll::Ready(()),
                    None => break,
                }
            }
            while back > front && futures[back - 1].handle().job.status().is_some() {
                back -= 1;
            }
            if back == front {
                return Poll::Ready(());
            }
            watching.watch(&futures[front].handle().core, cx);
            // The front may have failed between the look above and the registration.
            if futures[front].handle().job.status().is_some() {
                continue;
            }
            if futures[back - 1].handle().job.poll_outcome(cx).is_pending() {
                return Poll::Pending;
            }
        }
    })
    .await;
}

/// The failure registrations of one `until_gathered`, ended when it ends (or is dropped).
struct FailureWatch {
    /// Each client watched (futures of several clients can be gathered together), with its
    /// registration.
    registrations: Vec<(Arc<Core>, Option<u64>)>,
}

impl FailureWatch {
    fn watch(&mut self, core: &Arc<Core>, cx: &Context<'_>) {
        let index = match self.registrations.iter().position(|(c, _)| Arc::ptr_eq(c, core)) {
            Some(index) => index,
            None => {
                self.registrations.push((Arc::clone(core), None));
                self.registrations.len() - 1
            }
        };
        let (core, registration) = &mut self.registrations[index];
        core.watch_failures(registration, cx.waker());
    }
}

impl Drop for FailureWatch {
    fn drop(&mut self) {
        for (core, registration) in &self.registrations {
            if let Some(registration) = registration {
                core.unwatch_failures(*registration);
            }
        }
    }
}

/// Copies a typed value out of a shared one.
pub(crate) fn read_value<T: Clone + 'static>(
    key: &TaskKey,
    outcome: Result<Value, TaskError>,
) -> Result<T, TaskError> {
    let value = outcome?;
    match value.downcast_ref::<T>() {
        Some(typed) => Ok(typed.clone()),
        None => Err(mismatch::<T>(key)),
    }
}

/// The error for a value that is not a `T`.
fn mismatch<T>(key: &TaskKey) -> TaskError {
    TaskError::Failed {
        key: key.clone(),
        message: format!(
            "the task's value is not a {}: its key was reused for a task of another type",
            std::any::type_name::<T>()
        ),
    }
}

impl<T: Clone + 'static> Future for TaskFuture<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let job = &self.handle.job;
        job.poll_outcome(cx).map(|outcome| read_value(&job.key, outcome))
    }
}

/// Awaiting a reference waits without giving up the handle: `(&future).await`.
impl<T: Clone + 'static> IntoFuture for &TaskFuture<T> {
    type Output = Result<T, TaskError>;
    type IntoFuture = TaskFuture<T>;

    fn into_future(self) -> TaskFuture<T> {
        self.clone()
    }
}
