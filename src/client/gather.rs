//! [`Client::gather_with`]: gather with a choice of what a failed task does to the call.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};

use super::blocking::block_on_caller_thread;
use super::future::Handle;
use super::{BlockingClient, Client, TaskFuture};
use crate::error::{Error, TaskError};
use crate::scheduler::TaskKey;

/// What [`Client::gather`] accepts: futures in some shape, whose values come back in the
/// same shape (Dask's `gather` of a list, a dict or a nested structure).
///
/// | you pass | you get |
/// |---|---|
/// | `&TaskFuture<T>` | `T` |
/// | `&[TaskFuture<T>]`, `&Vec<TaskFuture<T>>`, `&[TaskFuture<T>; N]` (or owned) | `Vec<T>` |
/// | a tuple of up to six of these, e.g. `(&a, &b)` | a tuple, e.g. `(A, B)` |
/// | `&HashMap<K, TaskFuture<T>>`, `&BTreeMap<K, TaskFuture<T>>` | a map of `K` to `T` |
/// | any nesting of these, e.g. `&Vec<Vec<TaskFuture<T>>>` | the same nesting of values |
///
/// The first error in the order the shape lists its futures (a map's iteration order) is
/// returned, as soon as it and the futures before it are done. This trait is sealed.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), taskweave::Error> {
/// use std::collections::HashMap;
/// let client = taskweave::Client::new()?;
/// let count = client.submit(|x: u32| x + 1, 1);
/// let name = client.submit(|x: &'static str| x.to_uppercase(), "ada");
/// let (count, name) = client.blocking().gather((&count, &name))?;
/// assert_eq!((count, name.as_str()), (2, "ADA"));
/// let by_name: HashMap<&str, _> =
///     [("one", client.submit(|x: u8| x, 1)), ("two", client.submit(|x: u8| x, 2))].into();
/// assert_eq!(client.blocking().gather(&by_name)?["two"], 2);
/// let grid = vec![client.map(|x: u8| x, 0..2), client.map(|x: u8| x * 10, 0..2)];
/// assert_eq!(client.blocking().gather(&grid)?, vec![vec![0, 1], vec![0, 10]]);
/// # Ok(()) }
/// ```
pub trait Gather: sealed::Sealed {
    /// The values, in the shape of the futures.
    type Output;

    /// Lists the handles to wait for, in order.
    #[doc(hidden)]
    fn collect<'a>(&'a self, list: &mut GatherList<'a>);

    /// Reads the values (every future listed is done, or one before it failed).
    #[doc(hidden)]
    fn assemble(&self) -> Result<Self::Output, TaskError>;
}

mod sealed {
    pub trait Sealed {}
}

/// The handles a gather waits for.
#[doc(hidden)]
pub struct GatherList<'a> {
    handles: Vec<&'a Handle>,
}

impl<T> sealed::Sealed for TaskFuture<T> {}
impl<T: Clone + 'static> Gather for TaskFuture<T> {
    type Output = T;

    fn collect<'a>(&'a self, list: &mut GatherList<'a>) {
        list.handles.push(&self.handle);
    }

    fn assemble(&self) -> Result<T, TaskError> {
        self.try_result().unwrap_or_else(|| {
            Err(TaskError::Failed {
                key: self.key().clone(),
                message: "internal error: gathered before it was done".into(),
            })
        })
    }
}

impl<G: Gather + ?Sized> sealed::Sealed for &G {}
impl<G: Gather + ?Sized> Gather for &G {
    type Output = G::Output;

    fn collect<'a>(&'a self, list: &mut GatherList<'a>) {
        (**self).collect(list);
    }

    fn assemble(&self) -> Result<G::Output, TaskError> {
        (**self).assemble()
    }
}

impl<G: Gather> sealed::Sealed for [G] {}
impl<G: Gather> Gather for [G] {
    type Output = Vec<G::Output>;

    fn collect<'a>(&'a self, list: &mut GatherList<'a>) {
        list.handles.reserve(self.len());
        for item in self {
            item.collect(list);
        }
    }

    fn assemble(&self) -> Result<Vec<G::Output>, TaskError> {
        self.iter().map(Gather::assemble).collect()
    }
}

impl<G: Gather> sealed::Sealed for Vec<G> {}
impl<G: Gather> Gather for Vec<G> {
    type Output = Vec<G::Output>;

    fn collect<'a>(&'a self, list: &mut GatherList<'a>) {
        self.as_slice().collect(list);
    }

    fn assemble(&self) -> Result<Vec<G::Output>, TaskError> {
        self.as_slice().assemble()
    }
}

impl<G: Gather, const N: usize> sealed::Sealed for [G; N] {}
impl<G: Gather, const N: usize> Gather for [G; N] {
    type Output = Vec<G::Output>;

    fn collect<'a>(&'a self, list: &mut GatherList<'a>) {
        self.as_slice().collect(list);
    }

    fn assemble(&self) -> Result<Vec<G::Output>, TaskError> {
        self.as_slice().assemble()
    }
}

impl<K, G: Gather, S> sealed::Sealed for HashMap<K, G, S> {}
impl<K: Clone + Eq + Hash, G: Gather, S: BuildHasher> Gather for HashMap<K, G, S> {
    type Output = HashMap<K, G::Output>;

    // Both walks see the map unchanged (it is borrowed throughout), so in one order.
    fn collect<'a>(&'a self, list: &mut GatherList<'a>) {
        for item in self.values() {
            item.collect(list);
        }
    }

    fn assemble(&self) -> Result<HashMap<K, G::Output>, TaskError> {
        self.iter().map(|(key, item)| Ok((key.clone(), item.assemble()?))).collect()
    }
}

impl<K, G: Gather> sealed::Sealed for BTreeMap<K, G> {}
impl<K: Clone + Ord, G: Gather> Gather for BTreeMap<K, G> {
    type Output = BTreeMap<K, G::Output>;

    fn collect<'a>(&'a self, list: &mut GatherList<'a>) {
        for item in self.values() {
            item.collect(list);
        }
    }

    fn assemble(&self) -> Result<BTreeMap<K, G::Output>, TaskError> {
        self.iter().map(|(key, item)| Ok((key.clone(), item.assemble()?))).collect()
    }
}

macro_rules! tuple_gather {
    ($($name:ident),+) => {
        impl<$($name: Gather),+> sealed::Sealed for ($($name,)+) {}
        impl<$($name: Gather),+> Gather for ($($name,)+) {
            type Output = ($($name::Output,)+);

            #[allow(non_snake_case)]
            fn collect<'a>(&'a self, list: &mut GatherList<'a>) {
                let ($($name,)+) = self;
                $($name.collect(list);)+
            }

            #[allow(non_snake_case)]
            fn assemble(&self) -> Result<Self::Output, TaskError> {
                let ($($name,)+) = self;
                Ok(($($name.assemble()?,)+))
            }
        }
    };
}

tuple_gather!(A);
tuple_gather!(A, B);
tuple_gather!(A, B, C);
tuple_gather!(A, B, C, D);
tuple_gather!(A, B, C, D, E);
tuple_gather!(A, B, C, D, E, F);

impl Client {
    /// Waits for every future in `futures` and returns their values in the same shape: a
    /// `Vec` for a slice or vector, a tuple for a tuple, a map for a map (see [`Gather`]).
    ///
    /// # Errors
    ///
    /// The first task error in input order, as [`Error::Task`], as soon as that task and the
    /// ones before it have finished (later tasks may still be running); [`Error::Closed`]
    /// when the client is closed. Gathering many tasks costs one wake-up of the waiting
    /// task, not one per task: gather waits for the last unfinished task, and is woken early
    /// only when some task fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future stops waiting; the tasks keep running.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(2).build().await?;
    /// let squares = client.map(|x: i64| x * x, 0..4);
    /// assert_eq!(client.gather(&squares).await?, vec![0, 1, 4, 9]);
    /// let (a, b) = client.gather((&squares[1], &squares[3])).await?;
    /// assert_eq!((a, b), (1, 9));
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub async fn gather<G: Gather>(&self, futures: G) -> Result<G::Output, Error> {
        self.refuse_if_closed("gather")?;
        let mut list = GatherList { handles: Vec::new() };
        futures.collect(&mut list);
        super::future::until_gathered(&list.handles).await;
        drop(list);
        Ok(futures.assemble()?)
    }
}

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
                    gathered.push(Gathered { index, key: future.key().clone(), value });
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
