//! [`CancelOnDrop`]: a task future that cancels its task when it is dropped unfinished — the
//! web idiom, where a server drops a request's handler future when its client disconnects.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::TaskFuture;
use crate::error::TaskError;

/// Why a task cancelled by a dropped [`CancelOnDrop`] was cancelled.
const DROPPED_REASON: &str = "its cancel_on_drop guard was dropped before it finished (for example, the HTTP request \
     waiting for it was dropped when its client disconnected)";

impl<T> TaskFuture<T> {
    /// Wraps this future in a guard that [`cancel`](TaskFuture::cancel)s the task if the guard
    /// is dropped before the task has an outcome. The guard is itself a future: awaiting it
    /// gives what awaiting this future gives.
    ///
    /// This is the web idiom: a server (axum, hyper, actix) drops a request's handler future
    /// when its client disconnects, and with it the guard, so the abandoned work is cancelled
    /// instead of finishing for nobody. A blocking body stops early only if it polls its
    /// [`TaskContext`](super::TaskContext) (submit it with
    /// [`submit_with_context`](crate::Client::submit_with_context)); an async body is dropped.
    ///
    /// Cancelling is for the task, not for this handle: other handles of the same task see
    /// [`TaskError::Cancelled`] too. [`disarm`](CancelOnDrop::disarm) gives the plain future
    /// back.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn handler(client: taskweave::Client) -> Result<u64, taskweave::Error> {
    /// use taskweave::client::TaskContext;
    ///
    /// // In an HTTP handler: if the client goes away, the handler future is dropped while it
    /// // waits here, and the running body sees `is_cancelled()` and stops.
    /// let sum = client
    ///     .submit_with_context(
    ///         |context: &TaskContext, n: u64| {
    ///             let mut sum = 0u64;
    ///             for i in 0..n {
    ///                 if i % 1_000_000 == 0 && context.is_cancelled() {
    ///                     break;
    ///                 }
    ///                 sum = sum.wrapping_add(i);
    ///             }
    ///             sum
    ///         },
    ///         10_000,
    ///     )
    ///     .cancel_on_drop()
    ///     .await?;
    /// Ok(sum)
    /// # }
    /// # let client = taskweave::Client::new().unwrap();
    /// # assert_eq!(futures::executor::block_on(handler(client)).unwrap(), 49_995_000);
    /// ```
    pub fn cancel_on_drop(self) -> CancelOnDrop<T> {
        CancelOnDrop { future: Some(self) }
    }
}

/// A [`TaskFuture`] that cancels its task when dropped before the task has an outcome; made by
/// [`TaskFuture::cancel_on_drop`].
///
/// Awaiting it gives the task's outcome, as awaiting the future would.
///
/// # Drop behaviour
///
/// Dropped while the task has no outcome, it cancels the task (and its dependents), with
/// the reason that the guard was dropped. Dropped after the outcome, or after
/// [`disarm`](CancelOnDrop::disarm), it only drops its handle.
///
/// # Cancel safety
///
/// Dropping it mid-await cancels the task: that is its purpose.
#[must_use = "dropping a CancelOnDrop at once cancels its task; await it"]
pub struct CancelOnDrop<T> {
    /// `None` once disarmed.
    future: Option<TaskFuture<T>>,
}

impl<T> fmt::Debug for CancelOnDrop<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelOnDrop").field("future", &self.future).finish()
    }
}

impl<T> CancelOnDrop<T> {
    /// The task's future, with the guard defused: the task is no longer cancelled when the
    /// guard goes. Use it when a request hands its work over to something that outlives it.
    #[allow(clippy::missing_panics_doc, reason = "the future is taken only here, by value")]
    pub fn disarm(mut self) -> TaskFuture<T> {
        self.future.take().expect("a guard is disarmed only once, by value")
    }

    /// The task's future, to look at (its key, whether it is done) without disarming.
    #[allow(clippy::missing_panics_doc, reason = "only `disarm` takes the future")]
    pub fn future(&self) -> &TaskFuture<T> {
        self.future.as_ref().expect("only `disarm` takes the future, and it consumes the guard")
    }
}

impl<T> Drop for CancelOnDrop<T> {
    fn drop(&mut self) {
        if let Some(future) = self.future.take()
            && !future.is_done()
        {
            future.cancel_with_reason(DROPPED_REASON);
        }
    }
}

impl<T: Clone + 'static> Future for CancelOnDrop<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.future.as_mut() {
            Some(future) => Pin::new(future).poll(cx),
            None => unreachable!("a disarmed guard is consumed"),
        }
    }
}
