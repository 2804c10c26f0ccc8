//! [`Queue`]: a cluster-wide multi-producer, multi-consumer queue.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::backend::{Kind, Payload, TypeTag, problem, short_type_name};
use super::{Blocking, Ctx, Item, run_now};
use crate::client::blocking::block_on_caller_thread;
use crate::error::Error;

/// A cluster-wide FIFO queue of `T`s (Dask's `Queue`): any number of producers and
/// consumers, optionally bounded. Get one with [`Client::queue`](crate::Client::queue) or
/// [`Client::bounded_queue`](crate::Client::bounded_queue); clones are handles on the same
/// queue.
///
/// - Items come out in the order they went in: all of one producer's in its order.
/// - A bounded queue pushes back: [`put`](Queue::put) waits while it is full,
///   [`put_timeout`](Queue::put_timeout) gives the value back if it stays full.
/// - A queued [`TaskFuture`](crate::TaskFuture) keeps its task alive until a consumer takes
///   it out (and drops it).
/// - The first user of a name fixes its item type; a handle of another type gets
///   [`Error::Coordination`].
///
/// # Examples
///
/// ```
/// # async fn run() -> Result<(), taskweave::Error> {
/// use std::time::Duration;
///
/// let client = taskweave::Client::builder().workers(1).build().await?;
/// let results = client.queue::<u64>("results");
/// for x in 0..5 {
///     results.put(x * x).await?;
/// }
/// assert_eq!(results.get_batch(3).await?, vec![0, 1, 4]);
/// assert_eq!(results.get_timeout(Duration::from_millis(10)).await?, Some(9));
/// assert_eq!(results.len().await?, 1);
/// # client.close().await }
/// # futures::executor::block_on(run()).unwrap();
/// ```
pub struct Queue<T> {
    ctx: Ctx,
    name: Arc<str>,
    /// The bound this handle asks for; `None` takes the queue's.
    capacity: Option<usize>,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            ctx: self.ctx.clone(),
            name: Arc::clone(&self.name),
            capacity: self.capacity,
            _items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("item", &short_type_name(std::any::type_name::<T>()))
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<T: Item> Queue<T> {
    pub(super) fn new(ctx: Ctx, name: String, capacity: Option<usize>) -> Queue<T> {
        Queue { ctx, name: name.into(), capacity, _items: PhantomData }
    }

    /// The name it was obtained under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends `value`, waiting for room while a bounded queue is full.
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when the queue carries another type, or another handle bounded
    /// it differently; [`Error::Closed`] after the client closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes leaves the queue without the value (and drops
    /// it).
    pub async fn put(&self, value: T) -> Result<(), Error> {
        match self.put_within(value, None, "put").await? {
            Ok(()) => Ok(()),
            Err(_) => unreachable!("a wait without a limit ends with the value queued"),
        }
    }

    /// Appends `value`, waiting up to `timeout` for room; `Ok(Err(value))` gives the value
    /// back when the queue stayed full.
    ///
    /// # Errors
    ///
    /// As [`put`](Queue::put); running out of time is not an error.
    ///
    /// # Cancel safety
    ///
    /// As [`put`](Queue::put).
    pub async fn put_timeout(&self, value: T, timeout: Duration) -> Result<Result<(), T>, Error> {
        self.put_within(value, Some(timeout), "put_timeout").await
    }

    async fn put_within(
        &self,
        value: T,
        wait: Option<Duration>,
        operation: &'static str,
    ) -> Result<Result<(), T>, Error> {
        let backend = self.ctx.backend(Kind::Queue, &self.name, operation)?;
        let tag = TypeTag::of::<T>();
        let payload = super::pack(&**backend, Kind::Queue, &self.name, value)?;
        match backend.push_item(&self.name, tag, self.capacity, payload, wait).await? {
            Ok(()) => Ok(Ok(())),
            Err(payload) => Ok(Err(self.unpack(payload)?)),
        }
    }

    /// Takes the item at the front, waiting for one for as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when the queue carries another type; [`Error::Closed`] after
    /// the client closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes takes nothing.
    pub async fn get(&self) -> Result<T, Error> {
        let mut items = self.pop(1, None, "get").await?;
        Ok(items.pop().expect("a wait without a limit ends with an item"))
    }

    /// Takes the item at the front, waiting up to `timeout` for one; `Ok(None)` when the
    /// queue stayed empty.
    ///
    /// # Errors
    ///
    /// As [`get`](Queue::get); running out of time is not an error.
    ///
    /// # Cancel safety
    ///
    /// As [`get`](Queue::get).
    pub async fn get_timeout(&self, timeout: Duration) -> Result<Option<T>, Error> {
        Ok(self.pop(1, Some(timeout), "get_timeout").await?.pop())
    }

    /// Takes `n` items from the front at once, waiting until there are `n` (Dask's
    /// `get(batch=n)`). Two consumers never split a batch. `n == 0` answers an empty batch.
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when `n` is more than this handle's bound (the queue could
    /// never hold `n`), or as [`get`](Queue::get).
    ///
    /// # Cancel safety
    ///
    /// As [`get`](Queue::get).
    pub async fn get_batch(&self, n: usize) -> Result<Vec<T>, Error> {
        self.pop(n, None, "get_batch").await
    }

    /// Takes `n` items from the front at once, waiting up to `timeout` until there are `n`;
    /// when the time is up, takes what is there (fewer, or none).
    ///
    /// # Errors
    ///
    /// As [`get_batch`](Queue::get_batch); running out of time is not an error.
    ///
    /// # Cancel safety
    ///
    /// As [`get`](Queue::get).
    pub async fn get_batch_timeout(&self, n: usize, timeout: Duration) -> Result<Vec<T>, Error> {
        self.pop(n, Some(timeout), "get_batch_timeout").await
    }

    async fn pop(
        &self,
        n: usize,
        wait: Option<Duration>,
        operation: &'static str,
    ) -> Result<Vec<T>, Error> {
        let backend = self.ctx.backend(Kind::Queue, &self.name, operation)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        if let Some(bound) = self.capacity.filter(|bound| n > *bound) {
            return Err(problem(
                Kind::Queue,
                &self.name,
                format!(
                    "a batch of {n} items was asked for, but the queue holds at most {bound}; \
                     ask for at most {bound}"
                ),
            ));
        }
        let payloads = backend.pop_items(&self.name, TypeTag::of::<T>(), n, wait).await?;
        payloads.into_iter().map(|payload| self.unpack(payload)).collect()
    }

    /// How many items the queue holds now (Dask's `qsize`).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the client closed.
    pub async fn len(&self) -> Result<usize, Error> {
        self.count("len").await
    }

    async fn count(&self, operation: &'static str) -> Result<usize, Error> {
        self.ctx.backend(Kind::Queue, &self.name, operation)?.count_items(&self.name).await
    }

    /// Whether the queue is empty now.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the client closed.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.count("is_empty").await? == 0)
    }

    fn unpack(&self, payload: Payload) -> Result<T, Error> {
        super::unpack(Kind::Queue, &self.name, payload)
    }

    /// The blocking twin of this queue's methods.
    pub fn blocking(&self) -> Blocking<'_, Queue<T>> {
        Blocking { primitive: self }
    }
}

impl<T: Item> Blocking<'_, Queue<T>> {
    /// Blocks until `value` is queued; see [`Queue::put`].
    ///
    /// # Errors
    ///
    /// As [`Queue::put`]. It waits only while a bounded queue is full, and only that is
    /// refused in async code ([`Error::BlockingInAsyncContext`]): with room it works
    /// anywhere, task bodies included (see [`Blocking`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let queue = client.queue::<String>("lines");
    /// queue.blocking().put("hello".to_owned())?;
    /// assert_eq!(queue.blocking().get()?, "hello");
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn put(&self, value: T) -> Result<(), Error> {
        run_now(self.primitive.put(value))?
    }

    /// Blocks up to `timeout` to queue `value`; see [`Queue::put_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Queue::put`]; [`Error::BlockingInAsyncContext`] in async code.
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<Result<(), T>, Error> {
        block_on_caller_thread(self.primitive.put_timeout(value, timeout))?
    }

    /// Blocks until an item is taken; see [`Queue::get`].
    ///
    /// # Errors
    ///
    /// As [`Queue::get`]; [`Error::BlockingInAsyncContext`] in async code.
    pub fn get(&self) -> Result<T, Error> {
        block_on_caller_thread(self.primitive.get())?
    }

    /// Blocks up to `timeout` for an item; see [`Queue::get_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Queue::get`]; [`Error::BlockingInAsyncContext`] in async code.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Option<T>, Error> {
        block_on_caller_thread(self.primitive.get_timeout(timeout))?
    }

    /// Blocks until `n` items are taken at once; see [`Queue::get_batch`].
    ///
    /// # Errors
    ///
    /// As [`Queue::get_batch`]; [`Error::BlockingInAsyncContext`] in async code.
    pub fn get_batch(&self, n: usize) -> Result<Vec<T>, Error> {
        block_on_caller_thread(self.primitive.get_batch(n))?
    }

    /// Blocks up to `timeout` for `n` items; see [`Queue::get_batch_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Queue::get_batch`]; [`Error::BlockingInAsyncContext`] in async code.
    pub fn get_batch_timeout(&self, n: usize, timeout: Duration) -> Result<Vec<T>, Error> {
        block_on_caller_thread(self.primitive.get_batch_timeout(n, timeout))?
    }

    /// How many items the queue holds; see [`Queue::len`].
    ///
    /// # Errors
    ///
    /// As [`Queue::len`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`]).
    pub fn len(&self) -> Result<usize, Error> {
        run_now(self.primitive.len())?
    }

    /// Whether the queue is empty; see [`Queue::is_empty`].
    ///
    /// # Errors
    ///
    /// As [`Queue::len`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`]).
    pub fn is_empty(&self) -> Result<bool, Error> {
        run_now(self.primitive.is_empty())?
    }
}
