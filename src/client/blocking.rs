//! The blocking view of a client: the same client, for code that is not async.

use std::future::Future;

use super::Client;
use crate::Error;
use crate::executor::is_async_context;

/// Runs `future` to completion on the caller's own thread (the one place where taskweave
/// blocks a thread it does not own), refusing to when that thread drives async work.
pub(crate) fn block_on_caller_thread<F: Future>(future: F) -> Result<F::Output, Error> {
    if is_async_context() {
        return Err(Error::BlockingInAsyncContext);
    }
    // A registered task's body on a Redis worker lends its runner slot while it waits.
    // Inside `Client::batch`, what it holds back reaches the scheduler first: the wait
    // may be for one of its tasks.
    super::core::submit_held_back_before_blocking();
    #[cfg(feature = "redis")]
    let _lent = crate::transport::redis::task_services::lend_while_blocked();
    Ok(futures::executor::block_on(future))
}

/// [`block_on_caller_thread`] without lending a Redis worker's runner slot: for a short
/// wait on nothing but the network (connecting).
#[cfg(feature = "redis")]
pub(crate) fn block_on_without_lending<F: Future>(future: F) -> Result<F::Output, Error> {
    if is_async_context() {
        return Err(Error::BlockingInAsyncContext);
    }
    super::core::submit_held_back_before_blocking();
    Ok(futures::executor::block_on(future))
}

/// The blocking twin of a [`Client`]'s async methods, for scripts, threads and synchronous
/// handlers. Get one with [`Client::blocking`].
///
/// Every method refuses to block inside an async context and returns
/// [`Error::BlockingInAsyncContext`] instead, so a mistake shows up as an error rather than a
/// stalled runtime.
///
/// # Examples
///
/// ```
/// let client = taskweave::Client::new()?;
/// let futures = client.map(|x: u64| x * x, 0..4);
/// assert_eq!(client.blocking().gather(&futures)?, vec![0, 1, 4, 9]);
/// client.blocking().close()?;
/// # Ok::<(), taskweave::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct BlockingClient<'a> {
    pub(crate) client: &'a Client,
}

impl BlockingClient<'_> {
    /// Waits for every future and returns their values in the same shape; see
    /// [`Client::gather`] and [`Gather`](crate::client::Gather).
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let x = client.submit(|x: i32| x + 1, 1);
    /// let ys = client.map(|y: i32| y * 2, 0..3);
    /// // Any shape: here a tuple of a future and a vector of futures.
    /// let (x, ys) = client.blocking().gather((&x, &ys))?;
    /// assert_eq!((x, ys), (2, vec![0, 2, 4]));
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The first task error in input order, as [`Error::Task`]; [`Error::Closed`]; or
    /// [`Error::BlockingInAsyncContext`].
    pub fn gather<G: crate::client::Gather>(&self, futures: G) -> Result<G::Output, Error> {
        block_on_caller_thread(self.client.gather(futures))?
    }

    /// Submits the graph behind `delayed` and waits for its output; see
    /// [`Client::compute`].
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::delayed;
    ///
    /// let client = taskweave::Client::new()?;
    /// let graph = delayed(|x: i64| x + 1, 1).then(|x: i64| x * 10);
    /// assert_eq!(client.blocking().compute(&graph)?, 20);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The output task's error as [`Error::Task`]; or [`Error::BlockingInAsyncContext`].
    pub fn compute<T: Clone + 'static>(&self, delayed: &crate::Delayed<T>) -> Result<T, Error> {
        block_on_caller_thread(self.client.compute(delayed))?
    }

    /// Closes the client and waits until its workers have stopped. Idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// assert_eq!(client.submit(|x: i32| x, 1).result()?, 1);
    /// client.blocking().close()?;
    /// client.blocking().close()?; // again: returns at once
    /// assert!(client.is_closed());
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::BlockingInAsyncContext`] when called from async code.
    pub fn close(&self) -> Result<(), Error> {
        block_on_caller_thread(self.client.close())?
    }
}
