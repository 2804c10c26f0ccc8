//! [`Client::gather_with`]: gather with a choice of what a failed task does to the call.

use super::blocking::block_on_caller_thread;
use super::{BlockingClient, Client, TaskFuture};
use crate::error::Error;
use crate::scheduler::TaskKey;

/// What [`Client::gather_with`] does with a task that did not give a value, as Dask's
/// `errors=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum GatherErrors {
    /// Fail the call with the first error in input order (the default, and what
    /// [`Client::gather`] does).
    #[default]
    Raise,
    /// Leave failed tasks out and return the values of the others.
    Skip,
}

/// One gathered value, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Gathered<T> {
    /// The position of its future in the input.
    pub index: usize,
    /// The key of its task.
    pub key: TaskKey,
    /// The task's value.
    pub value: T,
}

impl Client {
    /// Waits for every future and returns the values with their input positions and keys,
    /// in input order; `errors` says what a task that failed does to the call.
    ///
    /// With [`GatherErrors::Skip`], failed (or cancelled) tasks are left out and the others
    /// are returned; the indices show which made it. With [`GatherErrors::Raise`] this is
    /// [`gather`](Client::gather) with positions and keys attached.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::GatherErrors;
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(2).build().await?;
    /// let parse = |text: &'static str| text.parse::<u8>();
    /// let futures: Vec<_> = ["1", "x", "3"].into_iter().map(|t| client.try_submit(parse, t)).collect();
    /// let values = client.gather_with(&futures, GatherErrors::Skip).await?;
    /// let kept: Vec<(usize, u8)> = values.iter().map(|g| (g.index, g.value)).collect();
    /// assert_eq!(kept, vec![(0, 1), (2, 3)]);
    /// # Ok(()) }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// With [`GatherErrors::Raise`], the first task error in input order, as [`Error::Task`].
    /// With [`GatherErrors::Skip`], none today.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future stops waiting; the tasks keep running.
    pub async fn gather_with<T: Clone + 'static>(
        &self,
        futures: &[TaskFuture<T>],
        errors: GatherErrors,
    ) -> Result<Vec<Gathered<T>>, Error> {
        self.refuse_if_closed("gather_with")?;
        let mut gathered = Vec::with_capacity(futures.len());
        // Awaiting one after the other costs no more than waiting for all at once: each
        // await registers one waker and returns at once for a task that already finished.
        for (index, future) in futures.iter().enumerate() {
            match (future.await, errors) {
                (Ok(value), _) => {
                    gathered.push(Gathered { index, key: future.key().clone(), value })
                }
                (Err(error), GatherErrors::Raise) => return Err(Error::from(error)),
                (Err(_), GatherErrors::Skip) => {}
            }
        }
        Ok(gathered)
    }
}

impl BlockingClient<'_> {
    /// The blocking twin of [`Client::gather_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::GatherErrors;
    ///
    /// let client = taskweave::Client::new()?;
    /// let futures: Vec<_> = (0..4)
    ///     .map(|i| client.try_submit(|x: i32| if x == 2 { Err("two") } else { Ok(x) }, i))
    ///     .collect();
    /// let values = client.blocking().gather_with(&futures, GatherErrors::Skip)?;
    /// assert_eq!(values.iter().map(|g| g.value).collect::<Vec<_>>(), vec![0, 1, 3]);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Client::gather_with`]; or [`Error::BlockingInAsyncContext`] when called from
    /// async code.
    pub fn gather_with<T: Clone + 'static>(
        &self,
        futures: &[TaskFuture<T>],
        errors: GatherErrors,
    ) -> Result<Vec<Gathered<T>>, Error> {
        block_on_caller_thread(self.client.gather_with(futures, errors))?
    }
}
