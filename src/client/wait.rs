//! [`Client::wait`]: wait until all, the first, or the first failed of some futures is done.

use std::fmt;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::blocking::block_on_caller_thread;
use super::outcome_waiter::OutcomeWaiter;
use super::{BlockingClient, Client, TaskFuture};
use crate::error::{Error, TaskError};
use crate::executor::ExecutorExt;

/// When [`Client::wait`] returns, as Dask's `return_when`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ReturnWhen {
    /// When every future is done (the default).
    #[default]
    AllCompleted,
    /// When any future is done, with a value or an error.
    FirstCompleted,
    /// When any future fails (an error, a panic, a cancel, ...), or else when every future is
    /// done. Dask lacks this one; it is what a pipeline that should stop at the first failure
    /// needs.
    FirstException,
}

/// What [`Client::wait`] found: the futures that are done and those that are not, each in
/// input order (handles, cloned from the input).
///
/// A future counts as done when it has an outcome, a value or an error alike; see
/// [`failed`](WaitOutcome::failed) for the ones that did not give a value.
pub struct WaitOutcome<T> {
    /// The futures that have an outcome, in input order.
    pub done: Vec<TaskFuture<T>>,
    /// The futures that are still pending or running, in input order.
    pub not_done: Vec<TaskFuture<T>>,
}

impl<T> fmt::Debug for WaitOutcome<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitOutcome")
            .field("done", &self.done)
            .field("not_done", &self.not_done)
            .finish()
    }
}

impl<T> WaitOutcome<T> {
    /// The done futures whose task did not give a value, each with its error, in input order.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::ReturnWhen;
    ///
    /// let client = taskweave::Client::new()?;
    /// let futures = vec![
    ///     client.try_submit(|x: i32| if x < 0 { Err("negative") } else { Ok(x) }, -1),
    ///     client.try_submit(|x: i32| if x < 0 { Err("negative") } else { Ok(x) }, 1),
    /// ];
    /// let outcome = client.blocking().wait(&futures, ReturnWhen::AllCompleted, None)?;
    /// let failed: Vec<_> = outcome.failed().map(|(future, _)| future.key().clone()).collect();
    /// assert_eq!(failed, vec![futures[0].key().clone()]);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn failed(&self) -> impl Iterator<Item = (&TaskFuture<T>, TaskError)> + '_ {
        self.done.iter().filter_map(|future| match future.handle.job.peek_outcome() {
            Some(Err(error)) => Some((future, error)),
            _ => None,
        })
    }
}

impl Client {
    /// Waits until the futures are done as `return_when` says, then splits them into
    /// [`done` and `not_done`](WaitOutcome), like Dask's `wait`.
    ///
    /// A task error does not make `wait` fail: a failed future is simply done (see
    /// [`WaitOutcome::failed`]). With [`ReturnWhen::FirstException`], `wait` returns as soon
    /// as one future fails, while the others may still run. With no futures, every mode
    /// returns at once. `wait` neither cancels nor releases anything.
    ///
    /// Waiting costs one wake-up per finished task, not a pass over every future.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::ReturnWhen;
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(2).build().await?;
    /// let futures = client.map(|x: u64| x * 2, 0..10);
    /// let outcome = client.wait(&futures, ReturnWhen::AllCompleted, None).await?;
    /// assert_eq!(outcome.done.len(), 10);
    /// assert!(outcome.not_done.is_empty());
    /// # Ok(()) }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when `timeout` passes first (measured by the client's executor).
    /// Nothing is cancelled then: the tasks keep running, and waiting again picks them up.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future stops waiting; the tasks keep running.
    pub async fn wait<T>(
        &self,
        futures: &[TaskFuture<T>],
        return_when: ReturnWhen,
        timeout: Option<Duration>,
    ) -> Result<WaitOutcome<T>, Error> {
        self.refuse_if_closed("wait")?;
        let until = wait_until(futures, return_when);
        match timeout {
            Some(limit) => self.executor().timeout(limit, until).await?,
            None => until.await,
        }
        Ok(split(futures))
    }
}

/// Resolves when the condition of `return_when` holds for `futures`.
///
/// Every future is polled once by `FuturesUnordered`; after that only the ones whose task
/// resolved (and so woke their own waker) are polled again. When the wait ends early (the
/// condition holds, or it times out), the unfinished ones take their wakers back.
async fn wait_until<T>(futures: &[TaskFuture<T>], return_when: ReturnWhen) {
    let mut outcomes: FuturesUnordered<_> =
        futures.iter().map(|future| OutcomeWaiter::new(future.clone())).collect();
    while let Some((_, outcome)) = outcomes.next().await {
        match return_when {
            ReturnWhen::AllCompleted => {}
            ReturnWhen::FirstCompleted => return,
            ReturnWhen::FirstException if outcome.is_err() => return,
            ReturnWhen::FirstException => {}
        }
    }
}

/// Splits `futures` by whether they are done now, keeping input order.
fn split<T>(futures: &[TaskFuture<T>]) -> WaitOutcome<T> {
    let (done, not_done) = futures.iter().cloned().partition(TaskFuture::is_done);
    WaitOutcome { done, not_done }
}

impl BlockingClient<'_> {
    /// The blocking twin of [`Client::wait`]: blocks this thread until the futures are done
    /// as `return_when` says.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskweave::ReturnWhen;
    ///
    /// let client = taskweave::Client::new()?;
    /// let futures = client.map(|x: u64| x + 1, 0..4);
    /// let outcome =
    ///     client.blocking().wait(&futures, ReturnWhen::FirstCompleted, Some(Duration::from_secs(30)))?;
    /// assert!(!outcome.done.is_empty());
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] as for [`Client::wait`] (nothing is cancelled);
    /// [`Error::BlockingInAsyncContext`] when called from async code.
    pub fn wait<T>(
        &self,
        futures: &[TaskFuture<T>],
        return_when: ReturnWhen,
        timeout: Option<Duration>,
    ) -> Result<WaitOutcome<T>, Error> {
        block_on_caller_thread(self.client.wait(futures, return_when, timeout))?
    }
}
