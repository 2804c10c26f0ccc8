//! Cluster-wide coordination primitives, each found by name through a [`Client`]: Dask's
//! `Lock`, `Semaphore`, `Event`, `Queue`, `Variable`, published datasets and topics.
//!
//! # The model
//!
//! - Each primitive lives in the cluster under a name; a handle (`client.lock("db")`) is a
//!   cheap, cloneable way to reach it. Two handles with one name, from clones of one client
//!   or from task bodies given a clone, reach the same primitive. Each kind has its own names
//!   (a lock `"a"` and a queue `"a"` are two things).
//! - Every operation is an `async fn`; its blocking twin is on the primitive's
//!   [`blocking`](Lock::blocking) view ([`Blocking`]). See [Where the blocking twins
//!   work](#where-the-blocking-twins-work).
//! - A wait that runs out is an answer, not an error: `acquire_timeout` gives `None`,
//!   `Event::wait_timeout` `false`, `get_timeout` `None`, `put_timeout` the value back.
//!   Timeouts are measured by the client's [`Executor`](crate::Executor), so they run in
//!   virtual time under the simulation executor.
//! - Misuse is [`Error::Coordination`], naming the primitive and what to do: a semaphore of
//!   no leases, a release of a lease that is not held, a read of a deleted variable, a value
//!   of another type than the name's first user gave, a dataset that was never published.
//! - Closing the client (or dropping its last clone) ends every wait in progress with
//!   [`Error::Closed`] (naming the operation) and ends subscriptions; a lease released after
//!   the close ([`Lease::release`], [`Semaphore::release`], or dropping the guard) is still
//!   given back, and the release answers `Ok`.
//! - A name's state lasts while it is in use: once it is back to its empty state (no lease,
//!   no waiter, no item, an event not set, a variable never set, no subscriber) it is let
//!   go, so a service that uses a name per request does not grow. Such a name starts afresh:
//!   a semaphore's `max_leases`, a queue's bound and a topic's type are fixed again by the
//!   next user.
//! - Values are `serde` values or task futures ([`Item`]); in-process they move as they are,
//!   never encoded. A [`TaskFuture`] held by a queue, a variable or a dataset keeps its task
//!   (and value) alive, as a handle does. A dataset publishes a task future of a `serde`
//!   value: in-process the future itself, on Redis a copy of its value.
//!
//! Usable from task bodies too: move a handle (or a clone of the client) into an async body,
//! which awaits the async methods.
//!
//! # Where the blocking twins work
//!
//! - **Calls that never wait work from any thread**, a worker thread running a blocking task
//!   body and an async runtime's thread included: `Event::set`, `clear`, `is_set`;
//!   `Variable::set`, `delete`; `Queue::put` (when there is room: always on an unbounded
//!   queue), `len`, `is_empty`; `try_acquire`, `release`, `held`, `is_locked`;
//!   `log_event`, `subscribe`, and the dataset calls (in-process; on Redis
//!   `publish_dataset` waits for its task's value).
//! - **Calls that can wait** (`acquire`, `acquire_timeout`, `Event::wait`, `Queue::get`,
//!   `get_batch`, `put_timeout`, a `put` into a full bounded queue, `Variable::get`, and
//!   their `_timeout` variants) are refused in an async context with
//!   [`Error::BlockingInAsyncContext`], as [`Client::blocking`] and `TaskFuture::result`
//!   are. That includes a *blocking task body* on a worker: the worker blocked in the wait
//!   may be the one the awaited holder needs (on a bounded pool, or under the one-thread
//!   simulation, nothing would ever run it), and even a timeout would only stall the pool.
//!   Wait in an async body instead ([`submit_async`](Client::submit_async), then `.await`),
//!   or make the task depend on a future rather than wait for a signal.
//! - On a backend in another process a call that never waits still needs a round trip; one
//!   that cannot answer at once is then refused in an async context like a wait.
//!
//! # Cancel safety
//!
//! Every operation is one step of the backend: dropping its future either changes nothing or
//! lets the step finish. A wait that is dropped (or runs out) has taken nothing: no lease is
//! granted to a dropped `acquire`, no item leaves the queue for a dropped `get`, and a dropped
//! `put` has not queued its value. The methods' own `# Cancel safety` notes say what a drop
//! does where there is more to say.
//!
//! # Backends
//!
//! The state lives in the client's coordination backend, chosen by its transport:
//!
//! - with the in-process transport, in this process (plain Rust synchronisation, waiters
//!   woken rather than polled);
//! - with the Redis transport (feature `redis`), in Redis, under the transport's namespace:
//!   every client and worker process of the namespace shares the primitives by name. Each
//!   operation is one Lua script (or command) on the server; values travel as JSON; a
//!   [`Lease`] refreshes itself every third of its timeout while it lives, so a lease whose
//!   holder's process dies ends within the timeout; waiters are woken through pub/sub and
//!   re-check at least every second. A [`TaskFuture`] cannot be put in a queue or variable
//!   there (another process could not read its value: put the output); a published dataset
//!   is a copy of its task's value, kept in Redis until it is unpublished, so it outlives
//!   the client (and the process) that published it (see
//!   [`Client::publish_dataset`]);
//! - a client on another transport has none, and every operation answers
//!   [`Error::Coordination`] saying so.
//!
//! A registered task running on a Redis `Worker` reaches the primitives through
//! `taskweave::worker_client()` (feature `redis`), with the blocking views (its body is
//! blocking code on a thread of its own).
//!
//! # Examples
//!
//! A lock serialises updates made by concurrent tasks:
//!
//! ```
//! # async fn run() -> Result<(), taskweave::Error> {
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! let client = taskweave::Client::builder().workers(2).build().await?;
//! let total = Arc::new(AtomicU64::new(0));
//! let tasks: Vec<_> = (0..8)
//!     .map(|_| {
//!         let lock = client.lock("total");
//!         let total = Arc::clone(&total);
//!         client.submit_async(
//!             move |_: ()| {
//!                 let (lock, total) = (lock.clone(), Arc::clone(&total));
//!                 async move {
//!                     let _guard = lock.acquire().await.map_err(|e| e.to_string())?;
//!                     let seen = total.load(Ordering::SeqCst);
//!                     total.store(seen + 1, Ordering::SeqCst); // a read-modify-write, safe
//!                     Ok::<(), String>(())
//!                 } // the guard drops here: the lock is released
//!             },
//!             (),
//!         )
//!     })
//!     .collect();
//! for outcome in client.gather(&tasks).await? {
//!     outcome.expect("every task got the lock");
//! }
//! assert_eq!(total.load(Ordering::SeqCst), 8);
//! # client.close().await }
//! # futures::executor::block_on(run()).unwrap();
//! ```

pub(crate) mod backend;
mod dataset;
mod event;
mod lease;
pub(crate) mod member;
mod queue;
#[cfg(feature = "redis")]
pub(crate) mod redis;
mod topic;
mod variable;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

pub use backend::LeaseId;
pub use event::Event;
pub use lease::{DEFAULT_LEASE_TIMEOUT, Lease, Lock, Semaphore};
pub use queue::Queue;
pub use topic::Subscription;
pub use variable::Variable;

pub(crate) use backend::Backend;
use backend::{Encoded, InProcess, Kind, Payload, SharedPayload, problem};

use super::blocking::block_on_caller_thread;
use super::core::Core;
use super::{Client, TaskFuture};
use crate::error::Error;

/// What a queue, a variable or a topic can carry: a `serde` value
/// (`Serialize + DeserializeOwned`), or a [`TaskFuture`].
///
/// The `serde` bounds keep code portable between backends: in-process the value moves as it
/// is (nothing is encoded), on a backend in another process (Redis) it is encoded as JSON. A
/// `TaskFuture` passed through a queue or a variable keeps its task alive until it is taken
/// out and dropped, as a handle does; on Redis a `TaskFuture` is refused with
/// [`Error::Coordination`] (another process could not read its value): await it and pass
/// its output.
///
/// Sealed: implemented for every such type, and nothing else.
pub trait Item: Send + Sync + 'static + sealed::Sealed {}

impl<T> Item for T where T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {}
impl<T: Send + Sync + 'static> Item for TaskFuture<T> {}

mod sealed {
    /// How an [`Item`](super::Item) crosses to a backend in another process (Redis): as
    /// JSON. Private to the crate (the trait cannot be named outside it).
    pub trait Sealed: Sized {
        /// The item as JSON, or why it cannot leave this process.
        fn encode_item(&self) -> Result<Vec<u8>, String>;
        /// The item from its JSON, or why the bytes are not one.
        fn decode_item(bytes: &[u8]) -> Result<Self, String>;
    }
    impl<T> Sealed for T
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        fn encode_item(&self) -> Result<Vec<u8>, String> {
            serde_json::to_vec(self).map_err(|error| {
                format!("a value of type {} cannot be encoded: {error}", std::any::type_name::<T>())
            })
        }
        fn decode_item(bytes: &[u8]) -> Result<Self, String> {
            serde_json::from_slice(bytes).map_err(|error| {
                format!(
                    "a stored value is not a {} ({error}); use one type per name",
                    std::any::type_name::<T>()
                )
            })
        }
    }
    impl<T: Send + Sync + 'static> Sealed for super::TaskFuture<T> {
        fn encode_item(&self) -> Result<Vec<u8>, String> {
            Err(format!(
                "task {} cannot be stored as a TaskFuture on a transport whose primitives live \
                 in another process (redis) yet: another client could not read its value; \
                 await the future and store its output instead",
                self.key()
            ))
        }
        fn decode_item(_: &[u8]) -> Result<Self, String> {
            Err("a stored value cannot be read as a TaskFuture on this transport; store the \
                 task's output instead"
                .to_owned())
        }
    }
}

/// `value` as the backend keeps it: itself in-process, encoded for a backend in another
/// process.
fn pack<T: Item>(
    backend: &dyn Backend,
    kind: Kind,
    name: &str,
    value: T,
) -> Result<Payload, Error> {
    if backend.encodes() {
        let bytes = value.encode_item().map_err(|problem_| problem(kind, name, problem_))?;
        return Ok(Box::new(Encoded(bytes)));
    }
    Ok(Box::new(value))
}

/// A value from the backend as a `T` (see [`pack`]).
fn unpack<T: Item>(kind: Kind, name: &str, payload: Payload) -> Result<T, Error> {
    let payload = match payload.downcast::<Encoded>() {
        Ok(encoded) => {
            return T::decode_item(&encoded.0).map_err(|problem_| problem(kind, name, problem_));
        }
        Err(payload) => payload,
    };
    payload.downcast::<T>().map(|value| *value).map_err(|_| {
        problem(
            kind,
            name,
            format!(
                "an item is not a {}; use one item type per name",
                backend::short_type_name(std::any::type_name::<T>())
            ),
        )
    })
}

/// [`pack`] for a value several readers copy from.
fn share<T: Item>(
    backend: &dyn Backend,
    kind: Kind,
    name: &str,
    value: T,
) -> Result<SharedPayload, Error> {
    if backend.encodes() {
        let bytes = value.encode_item().map_err(|problem_| problem(kind, name, problem_))?;
        return Ok(Arc::new(Encoded(bytes)));
    }
    Ok(Arc::new(value))
}

/// A copy of a shared value as a `T` (see [`share`]).
fn unshare<T: Item + Clone>(kind: Kind, name: &str, value: &SharedPayload) -> Result<T, Error> {
    if let Some(encoded) = value.downcast_ref::<Encoded>() {
        return T::decode_item(&encoded.0).map_err(|problem_| problem(kind, name, problem_));
    }
    value.downcast_ref::<T>().cloned().ok_or_else(|| {
        problem(
            kind,
            name,
            format!(
                "its value is not a {}; use one type per name",
                backend::short_type_name(std::any::type_name::<T>())
            ),
        )
    })
}

/// The blocking twin of a primitive's async methods: `lock.blocking().acquire()`. Get one
/// with the primitive's `blocking` method.
///
/// A method that may wait refuses to block inside an async context and returns
/// [`Error::BlockingInAsyncContext`] instead, as [`Client::blocking`] does; one that never
/// waits works anywhere (see [Where the blocking twins
/// work](self#where-the-blocking-twins-work)).
///
/// # Examples
///
/// ```
/// let client = taskweave::Client::new()?;
/// let event = client.event("ready");
/// event.blocking().set()?;
/// assert!(event.blocking().wait_timeout(std::time::Duration::from_secs(1))?);
/// # Ok::<(), taskweave::Error>(())
/// ```
pub struct Blocking<'a, P> {
    primitive: &'a P,
}

impl<P: fmt::Debug> fmt::Debug for Blocking<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Blocking").field(self.primitive).finish()
    }
}

impl<P> Clone for Blocking<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P> Copy for Blocking<'_, P> {}

/// How a handle reaches its cluster's coordination state: the client's core (to refuse work
/// once it is closed) and its backend.
#[derive(Clone)]
pub(crate) struct Ctx {
    core: Arc<Core>,
    /// `None` when the client's transport has no coordination backend.
    backend: Option<Arc<dyn Backend>>,
}

impl Ctx {
    /// The backend for `operation` on `kind` `name`: refused once the client is closed, and
    /// on a transport without a backend.
    fn backend(
        &self,
        kind: Kind,
        name: &str,
        operation: &'static str,
    ) -> Result<&Arc<dyn Backend>, Error> {
        if self.core.is_closed() {
            return Err(Error::Closed { operation });
        }
        self.any_backend(kind, name)
    }

    /// The backend even after the client closed: for giving a lease back, which is still
    /// done then (see the module docs).
    fn any_backend(&self, kind: Kind, name: &str) -> Result<&Arc<dyn Backend>, Error> {
        self.backend.as_ref().ok_or_else(|| {
            problem(
                kind,
                name,
                format!(
                    "the {} transport has no coordination backend; coordination primitives \
                     work with the in-process and redis transports (the simulation's model of \
                     redis included); use one of those",
                    self.core.transport.name()
                ),
            )
        })
    }
}

/// Runs a call that answers without waiting (a set, a delete, a count, an unbounded put, a
/// release...) from any thread, an async context included, where
/// [`block_on_caller_thread`] would refuse: in-process such a call completes in its first
/// poll. A call that does not (a backend that needs a round trip, or a bounded put into a
/// full queue) would block the thread, so it is refused in an async context as any blocking
/// call is.
fn run_now<F: Future>(future: F) -> Result<F::Output, Error> {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
        return Ok(output);
    }
    block_on_caller_thread(future)
}

/// The coordination backend for a client built on `core`: the in-process one for the
/// in-process transport, Redis for a Redis transport on a real server, none for the others.
pub(crate) fn backend_for(core: &Core) -> Option<Arc<dyn Backend>> {
    #[cfg(feature = "redis")]
    if let Some(redis) = core
        .transport
        .as_any()
        .and_then(|transport| transport.downcast_ref::<crate::transport::redis::RedisTransport>())
    {
        let config = redis.coordination_config()?;
        let executor = Arc::clone(&core.executor);
        return Some(Arc::new(match redis.coordination_connector() {
            Some(connector) => redis::RedisCoordination::on(config, connector, executor),
            None => redis::RedisCoordination::new(config, executor),
        }));
    }
    (core.transport.name() == "in-process")
        .then(|| Arc::new(InProcess::new(Arc::clone(&core.executor))) as Arc<dyn Backend>)
}

impl Client {
    /// Makes `config`'s Redis this client's coordination backend (see
    /// [`ClientBuilder::coordination_redis`](crate::ClientBuilder::coordination_redis)).
    #[cfg(feature = "redis")]
    pub(crate) fn keep_coordination_in_redis(&self, config: crate::transport::redis::RedisConfig) {
        let backend = redis::RedisCoordination::new(config, Arc::clone(&self.core().executor));
        let _ = self.shared.coordination.set(Some(Arc::new(backend)));
    }
}

/// Closes the backend in `slot`, if one was made.
pub(crate) fn close_backend(slot: &std::sync::OnceLock<Option<Arc<dyn Backend>>>) {
    if let Some(Some(backend)) = slot.get() {
        backend.close();
    }
}

impl Client {
    /// Ends every coordination wait in progress with [`Error::Closed`]: called when the
    /// client closes (or its last clone is dropped).
    pub(crate) fn close_coordination(&self) {
        close_backend(&self.shared.coordination);
    }

    /// How many names the coordination backend keeps state for in this process, over every
    /// kind of primitive (0 before the first use, and on a backend that keeps none here). A
    /// name is let go when it is back to its empty state and nobody holds or waits on it, so
    /// a name per request does not make this grow. For tests and leak checks.
    #[doc(hidden)]
    pub fn coordination_live_names(&self) -> usize {
        match self.shared.coordination.get() {
            Some(Some(backend)) => backend.live_names(),
            _ => 0,
        }
    }

    /// How handles reach this client's coordination state (shared by every clone).
    fn coordination(&self) -> Ctx {
        let backend = self.shared.coordination.get_or_init(|| backend_for(self.core())).clone();
        Ctx { core: Arc::clone(self.core()), backend }
    }

    /// The cluster-wide lock named `name` (Dask's `Lock(name)`): one holder at a time. See
    /// [`Lock`].
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// let lock = client.lock("db");
    /// let guard = lock.acquire().await?;
    /// assert!(lock.try_acquire().await?.is_none(), "held");
    /// drop(guard);
    /// assert!(lock.try_acquire().await?.is_some(), "free again");
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub fn lock(&self, name: impl Into<String>) -> Lock {
        Lock::new(self.coordination(), name.into())
    }

    /// The cluster-wide semaphore named `name`, which grants at most `max_leases` leases at
    /// once (Dask's `Semaphore(max_leases, name)`). See [`Semaphore`].
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when `max_leases` is 0 (nothing could ever acquire it), or the
    /// semaphore `name` exists (a lease is held or awaited) with another `max_leases`;
    /// [`Error::Closed`] after the client closed.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// let limit = client.semaphore("api", 2)?;
    /// let held = limit.acquire().await?;
    /// assert!(client.semaphore("api", 5).is_err(), "one name, one max_leases");
    /// let second = limit.acquire().await?;
    /// assert!(limit.try_acquire().await?.is_none(), "both leases are out");
    /// drop((held, second));
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub fn semaphore(&self, name: impl Into<String>, max_leases: u32) -> Result<Semaphore, Error> {
        let semaphore = Semaphore::new(self.coordination(), name.into(), max_leases)?;
        semaphore.check_max_leases()?;
        Ok(semaphore)
    }

    /// The cluster-wide event named `name` (Dask's `Event(name)`): a flag tasks wait for.
    /// See [`Event`].
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// let go = client.event("go");
    /// let waiter = client.submit_async(
    ///     {
    ///         let go = go.clone();
    ///         move |_: ()| {
    ///             let go = go.clone();
    ///             async move { go.wait().await.is_ok() }
    ///         }
    ///     },
    ///     (),
    /// );
    /// go.set().await?;
    /// assert!(waiter.await?);
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub fn event(&self, name: impl Into<String>) -> Event {
        Event::new(self.coordination(), name.into())
    }

    /// The cluster-wide queue named `name` (Dask's `Queue(name)`), multi-producer and
    /// multi-consumer, carrying `T`s. Unbounded unless some handle bounded it
    /// ([`bounded_queue`](Client::bounded_queue)); then this handle keeps that bound. See
    /// [`Queue`].
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// let jobs = client.queue::<String>("jobs");
    /// jobs.put("first".to_owned()).await?;
    /// jobs.put("second".to_owned()).await?;
    /// assert_eq!(jobs.len().await?, 2);
    /// assert_eq!(jobs.get().await?, "first");
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub fn queue<T: Item>(&self, name: impl Into<String>) -> Queue<T> {
        Queue::new(self.coordination(), name.into(), None)
    }

    /// The cluster-wide queue named `name`, holding at most `capacity` items: a
    /// [`put`](Queue::put) into a full queue waits for room (back-pressure). The first bound
    /// given to a name fixes it. See [`Queue`].
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when `capacity` is 0 (no item could ever be put).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// use std::time::Duration;
    ///
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// let queue = client.bounded_queue::<u32>("work", 1)?;
    /// queue.put(1).await?;
    /// // Full: a put with a timeout gives the value back.
    /// assert_eq!(queue.put_timeout(2, Duration::from_millis(10)).await?, Err(2));
    /// assert_eq!(queue.get().await?, 1);
    /// assert_eq!(queue.put_timeout(2, Duration::from_millis(10)).await?, Ok(()));
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub fn bounded_queue<T: Item>(
        &self,
        name: impl Into<String>,
        capacity: usize,
    ) -> Result<Queue<T>, Error> {
        let name = name.into();
        if capacity == 0 {
            return Err(problem(
                Kind::Queue,
                &name,
                "a capacity of 0 would let nothing in; give at least 1, or use Client::queue \
                 for an unbounded queue",
            ));
        }
        Ok(Queue::new(self.coordination(), name, Some(capacity)))
    }

    /// The cluster-wide variable named `name` (Dask's `Variable(name)`): one value (or task
    /// future) that tasks set and read. See [`Variable`].
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// let learning_rate = client.variable::<f64>("learning-rate");
    /// learning_rate.set(0.1).await?;
    /// assert_eq!(learning_rate.get().await?, 0.1);
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub fn variable<T: Item + Clone>(&self, name: impl Into<String>) -> Variable<T> {
        Variable::new(self.coordination(), name.into())
    }
}
