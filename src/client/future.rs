//! [`TaskFuture`]: the handle to one task's result.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use super::blocking::block_on_caller_thread;
use super::core::{Core, Job, Value};
use crate::error::{Error, TaskError};
use crate::scheduler::{Event, TaskKey, TaskState};

/// Anything that holds a task handle: what [`settle`] waits on.
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
        if self.job.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.core.feed(Event::Released { id: self.job.id });
        }
    }
}

/// The result of a submitted task, to await (it is a [`Future`]) or to wait for
/// ([`result`](TaskFuture::result)).
///
/// A `TaskFuture` is a handle: clones share one task and see one result, each getting its own
/// copy of the value (hence `T: Clone` to read it; wrap large values in an `Arc`).
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

impl<T> Clone for TaskFuture<T> {
    fn clone(&self) -> Self {
        TaskFuture { handle: self.handle.clone(), _value: PhantomData }
    }
}

impl<T> fmt::Debug for TaskFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskFuture")
            .field("key", &self.handle.job.key)
            .field("done", &self.is_done())
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
    pub fn key(&self) -> &TaskKey {
        &self.handle.job.key
    }

    /// Whether the task has an outcome (a value or an error). Never blocks.
    pub fn is_done(&self) -> bool {
        self.handle.job.peek_outcome().is_some()
    }

    /// Where the task is in its life. After the client was closed, the outcome the future
    /// holds decides: `Finished` for a value, `Failed` for an error, `Cancelled` for a task
    /// cancelled by the close or refused by the closed client; `None` only for a task the
    /// client no longer tracks and that has no outcome.
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

    /// Cancels the task, and every task depending on it, if it has not finished.
    ///
    /// Awaiting it then gives [`TaskError::Cancelled`]. A running async body is dropped; a
    /// running blocking body cannot be stopped from the outside: it runs until it returns,
    /// and its value is discarded. Submit it with
    /// [`submit_with_context`](crate::Client::submit_with_context) and poll
    /// [`TaskContext::is_cancelled`](crate::TaskContext::is_cancelled) to stop it early.
    pub fn cancel(&self) {
        self.cancel_with_reason("cancelled by the user")
    }

    /// Runs the task again if it failed on its own (its body returned an error, panicked,
    /// or its workers were lost) and its dependencies still hold their values; otherwise does
    /// nothing. Every handle then waits for the new outcome (Dask's `Future.retry`).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// static CALLS: AtomicU32 = AtomicU32::new(0);
    /// let client = taskweave::Client::new()?;
    /// let flaky = client.try_submit(
    ///     |_: ()| if CALLS.fetch_add(1, Ordering::SeqCst) == 0 { Err("first call fails") } else { Ok(7) },
    ///     (),
    /// );
    /// assert!(flaky.result().is_err());
    /// flaky.retry();
    /// assert_eq!(flaky.result()?, 7);
    /// # Ok(()) }
    /// ```
    pub fn retry(&self) {
        self.handle.core.retry(&self.handle.job);
    }

    pub(crate) fn cancel_with_reason(&self, reason: &str) {
        tracing::debug!(key = %self.handle.job.key, reason, "cancel requested");
        self.handle
            .core
            .feed(Event::CancelRequested { id: self.handle.job.id, reason: reason.to_owned() });
    }
}

impl<T: Clone + 'static> TaskFuture<T> {
    /// Blocks the calling thread until the task has an outcome.
    ///
    /// # Errors
    ///
    /// [`Error::Task`] with the task's error; [`Error::BlockingInAsyncContext`] when called
    /// from a thread that drives async work (use `.await` there).
    ///
    /// # Examples
    ///
    /// The pitfall, and the right way:
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let future = client.submit(|x: i64| x * 2, 4);
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// runtime.block_on(async {
    ///     // Wrong: blocking inside async code would stall the runtime.
    ///     assert!(matches!(future.result(), Err(taskweave::Error::BlockingInAsyncContext)));
    ///     // Right: await it.
    ///     assert_eq!(future.clone().await.unwrap(), 8);
    /// });
    /// # Ok(()) }
    /// ```
    pub fn result(&self) -> Result<T, Error> {
        block_on_caller_thread(self.clone())?.map_err(Error::from)
    }

    /// The outcome if there is one, without waiting.
    pub fn try_result(&self) -> Option<Result<T, TaskError>> {
        self.handle.job.peek_outcome().map(|outcome| read_value(&self.handle.job.key, outcome))
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
pub(crate) async fn settle<H: AsHandle>(futures: &[H]) {
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
    .await
}

/// The failure registrations of one `settle`, ended when it ends (or is dropped).
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
        None => Err(TaskError::Failed {
            key: key.clone(),
            message: format!(
                "the task's value is not a {}: its key was reused for a task of another type",
                std::any::type_name::<T>()
            ),
        }),
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
