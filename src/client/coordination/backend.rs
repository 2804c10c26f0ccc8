//! The seam between the coordination primitives and the place their state lives.
//!
//! The typed handles ([`Lock`](super::Lock), [`Semaphore`](super::Semaphore),
//! [`Event`](super::Event), [`Queue`](super::Queue), [`Variable`](super::Variable), datasets
//! and topics) hold no state of their own: every operation is one call of a [`Backend`],
//! named by what it does to the cluster-wide state under a name. This file holds the trait
//! and the in-process implementation ([`InProcess`]: plain Rust synchronisation, wake-ups
//! through `event-listener`, timeouts through the client's [`Executor`], so the simulation
//! executor runs it unchanged). The Redis implementation sits behind the same trait, in
//! `src/client/coordination/redis.rs`.
//!
//! # What a backend must guarantee
//!
//! Each operation is **atomic**: it sees and changes the state under its name as one step,
//! whatever other clients and workers do at the same time. The notes on each method say
//! what that means for a backend whose state lives in another process (on Redis: one Lua
//! script, or one command, per operation; never a read in one round trip and a write in the
//! next).
//!
//! Waiting operations take `wait`: `None` waits for as long as it takes, `Some(limit)` gives
//! up after `limit` and answers "no" (`None`, `false`, an empty batch), never an error. They
//! must be **cancel safe**: a future dropped before it completes has changed nothing (no
//! lease granted to nobody, no item taken and lost). In-process that holds because a change
//! and the answer happen in one poll; on Redis the change and its reply travel in one round
//! trip, so a dropped call must be made harmless (a lease granted to a dropped waiter expires
//! with its lease timeout; a popped item must not vanish: pop with `LMOVE` into a per-client
//! list, or give the blocking command the timeout instead of dropping it).

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use event_listener::{Event as Wakeup, IntoNotification};
use futures::Stream;
use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::error::Error;
use crate::executor::{Executor, ExecutorExt};

/// A value as the in-process backend keeps it: the typed Rust value itself, moved, never
/// encoded. (The Redis backend will keep `serde` values encoded; see [`Item`](super::Item).)
pub(crate) type Payload = Box<dyn Any + Send + Sync>;

/// A value that several readers copy from: a variable's value, a dataset, a topic message.
pub(crate) type SharedPayload = Arc<dyn Any + Send + Sync>;

/// A value encoded for a backend in another process (JSON, by the handle that knows its
/// type): what a [`Payload`] or [`SharedPayload`] holds when [`Backend::encodes`] is true.
#[derive(Debug, Clone)]
pub(crate) struct Encoded(pub(crate) Vec<u8>);

/// A published dataset as a backend in another process keeps it: the encoded value and the
/// name of the Rust type it was published as (for errors: the reader decodes it as the type
/// it asks for).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug, Clone)]
pub(crate) struct PublishedCopy {
    pub(crate) type_name: String,
    pub(crate) bytes: Vec<u8>,
}

/// The messages of one topic subscription, in the order they were logged.
pub(crate) type TopicFeed = Pin<Box<dyn Stream<Item = SharedPayload> + Send>>;

/// Which kind of primitive a name belongs to. Each kind has its own names: a lock `"a"` and
/// a semaphore `"a"` are two things.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Lock,
    Semaphore,
    Event,
    Queue,
    Variable,
    Dataset,
    Topic,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Lock => "lock",
            Kind::Semaphore => "semaphore",
            Kind::Event => "event",
            Kind::Queue => "queue",
            Kind::Variable => "variable",
            Kind::Dataset => "dataset",
            Kind::Topic => "topic",
        }
    }
}

/// The Rust type of the values under a name: the first user of a name fixes it, and a handle
/// of another type is refused (rather than handed a value it cannot read). A backend that
/// stores values out of process compares [`name`](TypeTag::name)s.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TypeTag {
    id: TypeId,
    name: &'static str,
}

impl TypeTag {
    pub(crate) fn of<T: 'static>() -> TypeTag {
        TypeTag { id: TypeId::of::<T>(), name: std::any::type_name::<T>() }
    }

    /// The type's name as errors and `Debug` show it: without module paths
    /// ([`short_type_name`]).
    pub(crate) fn short_name(&self) -> String {
        short_type_name(self.name)
    }

    /// The type's name (`std::any::type_name`): what a backend in another process keeps.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Refuses `asked` when the name's values are of this type and `asked` is another.
    fn check(&self, kind: Kind, name: &str, asked: TypeTag) -> Result<(), Error> {
        if self.id == asked.id {
            return Ok(());
        }
        Err(problem(
            kind,
            name,
            format!(
                "it holds values of type {}, and this handle asks for {}; use one type per \
                 name (or another name)",
                self.short_name(),
                asked.short_name()
            ),
        ))
    }
}

/// `name` (a [`std::any::type_name`]) without module paths, as a reader writes it:
/// `alloc::vec::Vec<alloc::string::String>` becomes `Vec<String>`. Errors and `Debug` output
/// both use this one form.
pub(crate) fn short_type_name(name: &str) -> String {
    let mut short = String::with_capacity(name.len());
    let mut segment = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            short.push_str(segment.rsplit("::").next().unwrap_or(""));
            segment.clear();
            short.push(c);
        }
    }
    short.push_str(segment.rsplit("::").next().unwrap_or(""));
    short
}

/// The error for publishing a dataset under a name that has one.
pub(crate) fn already_published(name: &str) -> Error {
    problem(
        Kind::Dataset,
        name,
        "a dataset of this name is published already; unpublish it first, choose another \
         name, or replace it with Client::replace_dataset (Dask's override=True)",
    )
}

/// The error for a dataset name nothing is published under.
pub(crate) fn not_published(name: &str) -> Error {
    problem(
        Kind::Dataset,
        name,
        "no dataset of this name is published; publish it first (Client::list_datasets \
         shows the names there are)",
    )
}

/// The error for a primitive asked for something it cannot do.
pub(crate) fn problem(kind: Kind, name: &str, problem: impl Into<String>) -> Error {
    Error::Coordination { primitive: kind.as_str(), name: name.to_owned(), problem: problem.into() }
}

/// The id of one lease on a lock or semaphore, unique in the cluster: what
/// [`Lease::detach`](super::Lease::detach) gives, and [`Semaphore::release`](super::Semaphore::release)
/// and [`Lock::release`](super::Lock::release) take.
///
/// A plain value: `Copy`, `serde` (so it can travel through a [`Queue`](super::Queue) or a
/// [`Variable`](super::Variable) to the task that gives the lease back), and written as 16
/// hex digits by `Display`, which [`FromStr`](std::str::FromStr) reads back.
///
/// # Examples
///
/// ```
/// # async fn run() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::builder().workers(1).build().await?;
/// let lock = client.lock("handover");
/// let holder = client.variable::<taskweave::LeaseId>("holder");
/// holder.set(lock.acquire().await?.detach()).await?;
/// // ... later, perhaps in another task:
/// lock.release(holder.get().await?).await?;
/// assert!(!lock.is_locked().await?);
/// let id = lock.acquire().await?.detach();
/// assert_eq!(id.to_string().parse::<taskweave::LeaseId>()?, id);
/// # lock.release(id).await?;
/// # client.close().await }
/// # futures::executor::block_on(run()).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct LeaseId(pub(crate) u64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for LeaseId {
    type Err = Error;

    /// Reads the form `Display` writes (hex digits).
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when `text` is not hex digits.
    fn from_str(text: &str) -> Result<LeaseId, Error> {
        u64::from_str_radix(text, 16).map(LeaseId).map_err(|_| Error::Coordination {
            primitive: "lease",
            name: text.to_owned(),
            problem: "this is not a lease id (16 hex digits, as a lease id is displayed); \
                      pass the text LeaseId's Display gave"
                .to_owned(),
        })
    }
}

/// Where the coordination state of one cluster lives. See the [module docs](self) for the
/// guarantees every operation gives (atomic, cancel safe, timeouts answer "no").
pub(crate) trait Backend: Send + Sync + fmt::Debug + 'static {
    /// Whether values cross to another process: then the handles hand over (and expect back)
    /// [`Encoded`] values instead of the typed values themselves.
    fn encodes(&self) -> bool {
        false
    }

    /// Whether leases expire unless refreshed: then a [`Lease`](super::Lease) guard refreshes
    /// its lease in the background while it lives.
    fn expires_leases(&self) -> bool {
        false
    }

    // --- Leases: `Lock` (one lease) and `Semaphore` (`max_leases`) ---------------------------

    /// Grants a new lease on `name` if fewer than `max_leases` are held, waiting up to `wait`
    /// for one to come free; `Ok(None)` when the wait runs out.
    ///
    /// Atomic: count the live leases, compare with `max_leases` and record the new one in one
    /// step (Redis: a Lua script over a sorted set of lease ids scored by expiry, which first
    /// drops the leases whose expiry passed, then `ZADD`s). The lease expires `lease_timeout`
    /// after it was granted or last refreshed, unless the backend can tell that its holder is
    /// alive (in-process, a lease lasts until it is released: the holder's process is this
    /// one). The first call for `name` records `max_leases`; a later call with another count
    /// is refused (two counts would break the bound both promise).
    fn acquire_lease<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        max_leases: u32,
        lease_timeout: Duration,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<LeaseId>, Error>>;

    /// Extends `lease` by another `lease_timeout`; `Ok(false)` when it is no longer held (it
    /// was released, or expired: then another holder may have it).
    ///
    /// Atomic: the check that the lease is still held and the new expiry are one step
    /// (Redis: `ZADD XX` with the new score, in a script that first drops expired leases).
    fn refresh_lease<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        lease: LeaseId,
        lease_timeout: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>>;

    /// Ends `lease` and wakes the waiters of `name`; `Ok(false)` when it was not held (a
    /// second release, or a lease that expired): the caller reports that as an error.
    ///
    /// Atomic: remove and answer whether it was there in one step (Redis: `ZREM`'s reply);
    /// then wake waiters (Redis: `PUBLISH` on the name's channel, or a list the waiters
    /// block on).
    fn release_lease<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        lease: LeaseId,
    ) -> BoxFuture<'a, Result<bool, Error>>;

    /// Refuses a handle asking for `max_leases` on a name that was made with another count,
    /// changing nothing: called when a [`Semaphore`](super::Semaphore) handle is made, so the
    /// mismatch shows there rather than at its first `acquire`. A name with no state is
    /// accepted (the first `acquire_lease` records its count). Redis: read the count kept
    /// beside the lease set (one `HGET`). The default accepts every handle, leaving the
    /// check to `acquire_lease` (which must refuse a mismatch anyway).
    fn check_max_leases<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        max_leases: u32,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let _ = (kind, name, max_leases);
        Box::pin(async { Ok(()) })
    }

    /// How many leases on `name` are held now (expired ones not counted).
    fn count_leases<'a>(&'a self, kind: Kind, name: &'a str) -> BoxFuture<'a, Result<u32, Error>>;

    // --- Events ----------------------------------------------------------------------------

    /// Sets the event and wakes every waiter (Redis: `SET` then `PUBLISH`, or one script).
    fn set_event<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    /// Clears the event; later waiters wait again.
    fn clear_event<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    /// Whether the event is set now.
    fn is_event_set<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, Error>>;

    /// Waits up to `wait` for the event to be set; `Ok(false)` when the wait runs out.
    ///
    /// A set that happens after the waiter started waiting wakes it with `true` **even if a
    /// clear follows at once**, before the waiter looked (as in Dask, asyncio and
    /// `threading`): a waiter answers "was it set at any moment since I began", not "is it
    /// set now". In-process: `set_event` bumps a generation counter, and a waiter returns
    /// `true` when the flag is set or the generation moved since it began. Redis: keep the
    /// generation in the event's hash (`HINCRBY` in the set script, with the flag), read it
    /// when the wait begins (after subscribing to the name's channel), and answer `true` on a
    /// set message or when a later read finds another generation.
    fn wait_event<'a>(
        &'a self,
        name: &'a str,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool, Error>>;

    // --- Queues ----------------------------------------------------------------------------

    /// Appends `item` to the queue, waiting up to `wait` while it holds `capacity` items;
    /// `Ok(Err(item))` gives the item back when the wait runs out.
    ///
    /// `capacity` is `None` for "as the queue was made" (unbounded if it never was bounded);
    /// a bound differing from the queue's is refused. The bound belongs to the name's state,
    /// not to a handle: every handle's calls obey it. It lasts as long as the name's state
    /// (see [`live_names`](Backend::live_names)): an empty queue nobody waits on may forget
    /// it, and the next bounded call sets it again. Atomic: the length check and the append
    /// are one step (Redis: a script doing `LLEN` and `RPUSH`), so concurrent producers never
    /// overfill it. Items of one producer keep their order.
    fn push_item<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        capacity: Option<usize>,
        item: Payload,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Result<(), Payload>, Error>>;

    /// Takes `n` items from the front of the queue, waiting up to `wait` for there to be `n`;
    /// when the wait runs out, takes what is there (up to `n`, maybe none).
    ///
    /// Atomic: the items are taken together or not at all (Redis: `LPOP key n`, or `LMOVE`
    /// for a safe hand-over), so two consumers never split one batch, and no item is taken by
    /// a call that is then dropped. Wakes producers waiting for room.
    ///
    /// `n` larger than the queue's bound is refused with [`Error::Coordination`] (it could
    /// never be met), also when the bound was set by another handle, and also when it is set
    /// while this call waits.
    fn pop_items<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        n: usize,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<Payload>, Error>>;

    /// How many items the queue holds now.
    fn count_items<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<usize, Error>>;

    // --- Variables -------------------------------------------------------------------------

    /// Replaces the variable's value and wakes its waiters (Redis: `SET` then `PUBLISH`).
    fn set_variable<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        value: SharedPayload,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// The variable's value, waiting up to `wait` while it was never set; `Ok(None)` when the
    /// wait runs out; an error once it was deleted (until it is set again).
    fn get_variable<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<SharedPayload>, Error>>;

    /// Deletes the variable's value (releasing a future it held); waiters get an error. A
    /// variable that was never set (or is deleted already) is left as it is: its waiters keep
    /// waiting for a set, as Dask's `Variable.get` does.
    fn delete_variable<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    // --- Published datasets ----------------------------------------------------------------

    /// Publishes `value` under `name`: in-process the task future itself, on a backend that
    /// [`encodes`](Backend::encodes) an [`Encoded`] copy of the task's value. Refused if the
    /// name is taken, unless `replace` (then the old dataset is let go).
    ///
    /// Atomic: check and write in one step (Redis: one script over the name's keys). The
    /// published value must outlive the client that made it (Redis: a copy of the value
    /// under the dataset's own key, with no expiry, that nothing but an unpublish deletes).
    fn publish_dataset<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        value: SharedPayload,
        replace: bool,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// The dataset published under `name`; an error if there is none. In-process the type is
    /// checked here (by `TypeId`); a backend that encodes answers a [`PublishedCopy`] and the
    /// handle checks the type by decoding it.
    fn fetch_dataset<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
    ) -> BoxFuture<'a, Result<SharedPayload, Error>>;

    /// The names of the published datasets, sorted.
    fn list_datasets(&self) -> BoxFuture<'_, Result<Vec<String>, Error>>;

    /// Removes the dataset `name` (releasing its result); an error if there is none.
    fn unpublish_dataset<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    // --- Topics ----------------------------------------------------------------------------

    /// Delivers `message` to every current subscriber of `topic`, after the messages logged
    /// before it (Redis: `XADD` to the topic's stream, which orders them).
    fn log_event<'a>(
        &'a self,
        topic: &'a str,
        tag: TypeTag,
        message: SharedPayload,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// A feed of the messages logged to `topic` from now on, in order (Redis: `XREAD` from
    /// the stream's last id at the time of the call).
    fn subscribe_topic<'a>(
        &'a self,
        topic: &'a str,
        tag: TypeTag,
    ) -> BoxFuture<'a, Result<TopicFeed, Error>>;

    // --- Lifecycle -------------------------------------------------------------------------

    /// How many names this backend keeps state for in this process, over every kind: what
    /// tests check to see that names are let go. A name's state must go when it is back to
    /// its empty state and nobody holds or waits on it (no leases, no waiters, no items, an
    /// event not set, a variable never set, no subscribers, no dataset), so a service using a
    /// name per request stays flat. A backend keeping no per-name state in this process
    /// (Redis keeps it in the server, with keys that the same rule deletes) answers 0.
    fn live_names(&self) -> usize {
        0
    }

    /// The client closed: every wait in progress ends with [`Error::Closed`] (new calls are
    /// refused before they reach the backend). Leases still held may be released; a backend
    /// in another process keeps the cluster's state (other clients may use it), and only
    /// stops this client's waits and subscriptions.
    fn close(&self);
}

// ---------------------------------------------------------------------------------------------
// The in-process backend
// ---------------------------------------------------------------------------------------------

/// The coordination state of an in-process cluster: one map per kind of primitive, each
/// name's state behind its own short lock, waiters parked on an `event-listener` event of
/// the name (woken, never polled). Timeouts run on the client's executor.
///
/// Why `parking_lot::Mutex` and not an async mutex: every critical section is a few map or
/// queue operations and never awaits, so a plain lock is cheaper and cannot be held across a
/// suspension (clippy's `await_holding_lock` is denied crate-wide).
pub(crate) struct InProcess {
    executor: Arc<dyn Executor>,
    /// Set by `close`: every wait ends with `Error::Closed`.
    closed: AtomicBool,
    next_lease: AtomicU64,
    /// The leases of locks and of semaphores (two kinds, two maps: a lookup by `&str`
    /// allocates nothing).
    lock_leases: Mutex<HashMap<String, Arc<LeaseState>>>,
    semaphore_leases: Mutex<HashMap<String, Arc<LeaseState>>>,
    events: Mutex<HashMap<String, Arc<EventState>>>,
    queues: Mutex<HashMap<String, Arc<QueueState>>>,
    variables: Mutex<HashMap<String, Arc<VariableState>>>,
    datasets: Mutex<BTreeMap<String, (TypeTag, SharedPayload)>>,
    /// Shared with the live subscriptions' feeds, which drop their topic's state when the
    /// last one ends.
    topics: Arc<Mutex<HashMap<String, TopicState>>>,
}

impl fmt::Debug for InProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcess").finish_non_exhaustive()
    }
}

/// The leases of one lock or semaphore.
struct LeaseState {
    /// Fixed by the first user of the name.
    max_leases: u32,
    /// The ids of the leases held now.
    held: Mutex<HashSet<u64>>,
    /// Notified when a lease ends.
    freed: Wakeup,
}

struct EventState {
    set: Mutex<EventFlag>,
    /// Notified when the event is set.
    changed: Wakeup,
}

struct EventFlag {
    set: bool,
    /// Bumped by every set: a waiter that sees it moved was set since it began, even if the
    /// event was cleared again before it looked.
    generation: u64,
}

/// The state of a name that can be dropped from its map when nobody uses it (see
/// [`Backend::live_names`]).
trait Idle {
    /// Back to the state a new name starts in (what makes it safe to forget, once nobody
    /// holds a handle on the state itself).
    fn is_idle(&self) -> bool;
}

impl Idle for LeaseState {
    fn is_idle(&self) -> bool {
        self.held.lock().is_empty()
    }
}

impl Idle for EventState {
    fn is_idle(&self) -> bool {
        !self.set.lock().set
    }
}

impl Idle for QueueState {
    fn is_idle(&self) -> bool {
        self.inner.lock().items.is_empty()
    }
}

impl Idle for VariableState {
    fn is_idle(&self) -> bool {
        matches!(*self.value.lock(), VariableValue::Unset)
    }
}

/// A name's state in use by one operation. Every waiter and every call in progress holds one,
/// so the map's own `Arc` is the only one exactly when nobody uses the state: dropping the
/// last user forgets the name if its state is idle. Doing this in `Drop` covers a wait that is
/// cancelled as well as one that returns.
struct Using<'a, V: Idle> {
    state: Option<Arc<V>>,
    map: &'a Mutex<HashMap<String, Arc<V>>>,
    name: &'a str,
}

impl<V: Idle> Deref for Using<'_, V> {
    type Target = V;

    fn deref(&self) -> &V {
        self.state.as_ref().expect("the state is held until drop")
    }
}

impl<V: Idle> Drop for Using<'_, V> {
    fn drop(&mut self) {
        drop(self.state.take());
        let mut map = self.map.lock();
        // Under the map's lock nobody can take a new `Arc`: a count of one is the map's own.
        let idle = map
            .get(self.name)
            .is_some_and(|state| Arc::strong_count(state) == 1 && state.is_idle());
        if idle {
            map.remove(self.name);
        }
    }
}

struct QueueState {
    tag: TypeTag,
    /// The bound and the items, under one lock so that a producer's check and append are one
    /// step. `None`: unbounded.
    inner: Mutex<QueueInner>,
    /// Notified when items are appended (consumers wait on it).
    pushed: Wakeup,
    /// Notified when items are taken (producers waiting for room wait on it).
    popped: Wakeup,
}

struct QueueInner {
    capacity: Option<usize>,
    items: VecDeque<Payload>,
}

struct VariableState {
    tag: TypeTag,
    value: Mutex<VariableValue>,
    /// Notified when the value is set or deleted.
    changed: Wakeup,
}

enum VariableValue {
    /// Never set: readers wait.
    Unset,
    Set(SharedPayload),
    /// Deleted: readers get an error until it is set again.
    Deleted,
}

struct TopicState {
    tag: TypeTag,
    /// One unbounded channel per live subscription; closed ones are dropped on the next log.
    subscribers: Vec<async_channel::Sender<SharedPayload>>,
}

impl InProcess {
    pub(crate) fn new(executor: Arc<dyn Executor>) -> InProcess {
        InProcess {
            executor,
            closed: AtomicBool::new(false),
            next_lease: AtomicU64::new(1),
            lock_leases: Mutex::default(),
            semaphore_leases: Mutex::default(),
            events: Mutex::default(),
            queues: Mutex::default(),
            variables: Mutex::default(),
            datasets: Mutex::default(),
            topics: Arc::default(),
        }
    }

    /// Runs `attempt` until it answers `Some`, waking up only when `wakeup` is notified, for
    /// up to `wait`; `Ok(None)` when the wait runs out, [`Error::Closed`] once the client
    /// closed (`close` notifies every wake-up).
    ///
    /// Cancel safe as long as `attempt` changes state only when it answers `Some`: the answer
    /// is returned in the same poll.
    async fn wait_for<R>(
        &self,
        wakeup: &Wakeup,
        wait: Option<Duration>,
        mut attempt: impl FnMut() -> Option<R> + Send,
    ) -> Result<Option<R>, Error> {
        let closed = || Error::Closed { operation: "a coordination wait" };
        if self.closed.load(Ordering::SeqCst) {
            return Err(closed());
        }
        if let Some(answer) = attempt() {
            return Ok(Some(answer));
        }
        if wait == Some(Duration::ZERO) {
            return Ok(None);
        }
        let waiting = async move {
            loop {
                // Listen first, then look: a notification between the two is not missed.
                let listener = wakeup.listen();
                if self.closed.load(Ordering::SeqCst) {
                    return Err(closed());
                }
                if let Some(answer) = attempt() {
                    return Ok(answer);
                }
                listener.await;
            }
        };
        match wait {
            None => waiting.await.map(Some),
            Some(limit) => match self.executor.timeout(limit, waiting).await {
                Ok(answer) => answer.map(Some),
                Err(_) => Ok(None),
            },
        }
    }

    fn lease_map(&self, kind: Kind) -> &Mutex<HashMap<String, Arc<LeaseState>>> {
        match kind {
            Kind::Lock => &self.lock_leases,
            _ => &self.semaphore_leases,
        }
    }

    fn lease_state<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        max_leases: u32,
    ) -> Result<Using<'a, LeaseState>, Error> {
        let state = state_of(self.lease_map(kind), name, || LeaseState {
            max_leases,
            held: Mutex::default(),
            freed: Wakeup::new(),
        });
        if state.max_leases != max_leases {
            return Err(problem(
                kind,
                name,
                format!(
                    "it was made with max_leases {}, and this handle asks for {max_leases}; give \
                     every handle of one name the same max_leases",
                    state.max_leases
                ),
            ));
        }
        Ok(state)
    }

    fn existing_lease_state<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
    ) -> Option<Using<'a, LeaseState>> {
        let map = self.lease_map(kind);
        let state = map.lock().get(name).cloned()?;
        Some(Using { state: Some(state), map, name })
    }

    fn event_state<'a>(&'a self, name: &'a str) -> Using<'a, EventState> {
        state_of(&self.events, name, || EventState {
            set: Mutex::new(EventFlag { set: false, generation: 0 }),
            changed: Wakeup::new(),
        })
    }

    fn queue_state<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        capacity: Option<usize>,
    ) -> Result<Using<'a, QueueState>, Error> {
        let state = state_of(&self.queues, name, || QueueState {
            tag,
            inner: Mutex::new(QueueInner { capacity, items: VecDeque::new() }),
            pushed: Wakeup::new(),
            popped: Wakeup::new(),
        });
        state.tag.check(Kind::Queue, name, tag)?;
        if let Some(asked) = capacity {
            let mut inner = state.inner.lock();
            match inner.capacity {
                // Made by a handle that did not bound it: the first bound given fixes it.
                None => inner.capacity = Some(asked),
                Some(bound) if bound != asked => {
                    return Err(problem(
                        Kind::Queue,
                        name,
                        format!(
                            "it holds at most {bound} items, and this handle asks for a bound \
                             of {asked}; give every bounded handle of one name the same \
                             capacity (or use Client::queue, which takes the queue's)"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(state)
    }

    fn variable_state<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
    ) -> Result<Using<'a, VariableState>, Error> {
        let state = state_of(&self.variables, name, || VariableState {
            tag,
            value: Mutex::new(VariableValue::Unset),
            changed: Wakeup::new(),
        });
        state.tag.check(Kind::Variable, name, tag)?;
        Ok(state)
    }
}

/// The state of `name` in `map`, made with `make` if there is none. Looks up by `&str` first,
/// so that using an existing name allocates nothing.
fn state_of<'a, V: Idle>(
    map: &'a Mutex<HashMap<String, Arc<V>>>,
    name: &'a str,
    make: impl FnOnce() -> V,
) -> Using<'a, V> {
    let mut locked = map.lock();
    let state = match locked.get(name) {
        Some(state) => Arc::clone(state),
        None => Arc::clone(locked.entry(name.to_owned()).or_insert_with(|| Arc::new(make()))),
    };
    drop(locked);
    Using { state: Some(state), map, name }
}

impl Backend for InProcess {
    fn acquire_lease<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        max_leases: u32,
        _lease_timeout: Duration,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<LeaseId>, Error>> {
        Box::pin(async move {
            let state = self.lease_state(kind, name, max_leases)?;
            let granted = self
                .wait_for(&state.freed, wait, || {
                    let mut held = state.held.lock();
                    if held.len() >= state.max_leases as usize {
                        return None;
                    }
                    let id = self.next_lease.fetch_add(1, Ordering::Relaxed);
                    held.insert(id);
                    Some(LeaseId(id))
                })
                .await?;
            Ok(granted)
        })
    }

    fn refresh_lease<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        lease: LeaseId,
        _lease_timeout: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        // In-process a lease never expires while it is held: refreshing only says whether it
        // still is.
        Box::pin(async move {
            Ok(self
                .existing_lease_state(kind, name)
                .is_some_and(|state| state.held.lock().contains(&lease.0)))
        })
    }

    fn release_lease<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        lease: LeaseId,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let Some(state) = self.existing_lease_state(kind, name) else {
                return Ok(false);
            };
            let released = state.held.lock().remove(&lease.0);
            if released {
                // One lease came free: one waiter can take it. A waiter that was notified and
                // dropped passes the notification on (event-listener's rule), so none is lost.
                state.freed.notify(1.additional());
            }
            Ok(released)
        })
    }

    fn check_max_leases<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        max_leases: u32,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match self.existing_lease_state(kind, name) {
                Some(state) if state.max_leases != max_leases => Err(problem(
                    kind,
                    name,
                    format!(
                        "it was made with max_leases {}, and this handle asks for {max_leases}; \
                         give every handle of one name the same max_leases",
                        state.max_leases
                    ),
                )),
                _ => Ok(()),
            }
        })
    }

    fn count_leases<'a>(&'a self, kind: Kind, name: &'a str) -> BoxFuture<'a, Result<u32, Error>> {
        Box::pin(async move {
            Ok(self
                .existing_lease_state(kind, name)
                .map_or(0, |state| state.held.lock().len() as u32))
        })
    }

    fn set_event<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let state = self.event_state(name);
            {
                let mut flag = state.set.lock();
                flag.set = true;
                flag.generation = flag.generation.wrapping_add(1);
            }
            state.changed.notify(usize::MAX);
            Ok(())
        })
    }

    fn clear_event<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.event_state(name).set.lock().set = false;
            Ok(())
        })
    }

    fn is_event_set<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move { Ok(self.event_state(name).set.lock().set) })
    }

    fn wait_event<'a>(
        &'a self,
        name: &'a str,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let state = self.event_state(name);
            // A set after this point counts even if a clear follows before this waiter looks
            // (as Dask's, asyncio's and `threading`'s events): it moved the generation.
            let began = state.set.lock().generation;
            let woken = self
                .wait_for(&state.changed, wait, || {
                    let flag = state.set.lock();
                    (flag.set || flag.generation != began).then_some(())
                })
                .await?;
            Ok(woken.is_some())
        })
    }

    fn push_item<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        capacity: Option<usize>,
        item: Payload,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Result<(), Payload>, Error>> {
        Box::pin(async move {
            let state = self.queue_state(name, tag, capacity)?;
            // The item moves into the queue in the attempt that finds room; until then it
            // stays here, so a timeout (or a drop) gives it back.
            let mut item = Some(item);
            let pushed = self
                .wait_for(&state.popped, wait, || {
                    let mut inner = state.inner.lock();
                    if inner.capacity.is_some_and(|bound| inner.items.len() >= bound) {
                        return None;
                    }
                    inner.items.push_back(item.take()?);
                    Some(())
                })
                .await?;
            match pushed {
                Some(()) => {
                    // Every consumer looks: one waiting for a batch may not take this item,
                    // and a wake-up it swallowed would strand a consumer that would.
                    state.pushed.notify(usize::MAX);
                    Ok(Ok(()))
                }
                None => Ok(Err(item.expect("an item not pushed is still here"))),
            }
        })
    }

    fn pop_items<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        n: usize,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<Payload>, Error>> {
        Box::pin(async move {
            let state = self.queue_state(name, tag, None)?;
            let take = |minimum: usize| {
                let mut inner = state.inner.lock();
                // The bound is the name's, whichever handle set it (perhaps while this waits).
                if let Some(bound) = inner.capacity.filter(|bound| n > *bound) {
                    return Some(Err(problem(
                        Kind::Queue,
                        name,
                        format!(
                            "a batch of {n} items was asked for, but the queue holds at most \
                             {bound}; ask for at most {bound}"
                        ),
                    )));
                }
                if inner.items.len() < minimum.max(1) {
                    return None;
                }
                let count = n.min(inner.items.len());
                Some(Ok(inner.items.drain(..count).collect::<Vec<_>>()))
            };
            let mut items = self.wait_for(&state.pushed, wait, || take(n)).await?;
            if items.is_none() {
                // The wait ran out: take what is there.
                items = take(1);
            }
            let items = items.transpose()?.unwrap_or_default();
            if !items.is_empty() {
                // Room for that many producers.
                state.popped.notify(items.len().additional());
            }
            Ok(items)
        })
    }

    fn count_items<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<usize, Error>> {
        Box::pin(async move {
            let state = self.queues.lock().get(name).cloned();
            Ok(state.map_or(0, |state| state.inner.lock().items.len()))
        })
    }

    fn set_variable<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        value: SharedPayload,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let state = self.variable_state(name, tag)?;
            // The old value (perhaps a future, which this releases) is dropped after the lock.
            let old = std::mem::replace(&mut *state.value.lock(), VariableValue::Set(value));
            drop(old);
            state.changed.notify(usize::MAX);
            Ok(())
        })
    }

    fn get_variable<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<SharedPayload>, Error>> {
        Box::pin(async move {
            let state = self.variable_state(name, tag)?;
            let read = self
                .wait_for(&state.changed, wait, || match &*state.value.lock() {
                    VariableValue::Unset => None,
                    VariableValue::Set(value) => Some(Some(Arc::clone(value))),
                    VariableValue::Deleted => Some(None),
                })
                .await?;
            match read {
                None => Ok(None),
                Some(Some(value)) => Ok(Some(value)),
                Some(None) => Err(problem(
                    Kind::Variable,
                    name,
                    "it was deleted, so it has no value to get; set it again first",
                )),
            }
        })
    }

    fn delete_variable<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let state = self.variables.lock().get(name).cloned();
            if let Some(state) = state {
                let old = {
                    let mut value = state.value.lock();
                    match *value {
                        // Never set: nothing to delete, and its waiters keep waiting.
                        VariableValue::Unset => return Ok(()),
                        _ => std::mem::replace(&mut *value, VariableValue::Deleted),
                    }
                };
                drop(old);
                state.changed.notify(usize::MAX);
            }
            Ok(())
        })
    }

    fn publish_dataset<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        value: SharedPayload,
        replace: bool,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let old = {
                let mut datasets = self.datasets.lock();
                if !replace && datasets.contains_key(name) {
                    return Err(already_published(name));
                }
                datasets.insert(name.to_owned(), (tag, value))
            };
            // The replaced future (perhaps the last hold on its task) is let go after the lock.
            drop(old);
            Ok(())
        })
    }

    fn fetch_dataset<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
    ) -> BoxFuture<'a, Result<SharedPayload, Error>> {
        Box::pin(async move {
            let datasets = self.datasets.lock();
            let Some((published, value)) = datasets.get(name) else {
                return Err(not_published(name));
            };
            published.check(Kind::Dataset, name, tag)?;
            Ok(Arc::clone(value))
        })
    }

    fn list_datasets(&self) -> BoxFuture<'_, Result<Vec<String>, Error>> {
        Box::pin(async move { Ok(self.datasets.lock().keys().cloned().collect()) })
    }

    fn unpublish_dataset<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let removed = self.datasets.lock().remove(name);
            match removed {
                Some(dataset) => {
                    drop(dataset);
                    Ok(())
                }
                None => Err(problem(
                    Kind::Dataset,
                    name,
                    "no dataset of this name is published, so there is nothing to unpublish",
                )),
            }
        })
    }

    fn log_event<'a>(
        &'a self,
        topic: &'a str,
        tag: TypeTag,
        message: SharedPayload,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut topics = self.topics.lock();
            // A topic nobody subscribes to has no state (and no type): the message is dropped.
            let Some(state) = topics.get_mut(topic) else { return Ok(()) };
            state.subscribers.retain(|subscriber| !subscriber.is_closed());
            if !state.subscribers.is_empty() {
                state.tag.check(Kind::Topic, topic, tag)?;
            }
            // Sending under the topic's lock keeps one order for every subscriber when several
            // threads log at once. The channels are unbounded: a send never waits.
            state
                .subscribers
                .retain(|subscriber| subscriber.try_send(Arc::clone(&message)).is_ok());
            if state.subscribers.is_empty() {
                topics.remove(topic);
            }
            Ok(())
        })
    }

    fn subscribe_topic<'a>(
        &'a self,
        topic: &'a str,
        tag: TypeTag,
    ) -> BoxFuture<'a, Result<TopicFeed, Error>> {
        Box::pin(async move {
            let mut topics = self.topics.lock();
            let state = topics
                .entry(topic.to_owned())
                .or_insert_with(|| TopicState { tag, subscribers: Vec::new() });
            // With every earlier subscription gone, the topic starts afresh: this one fixes
            // its type.
            state.subscribers.retain(|subscriber| !subscriber.is_closed());
            if state.subscribers.is_empty() {
                state.tag = tag;
            }
            state.tag.check(Kind::Topic, topic, tag)?;
            let (sender, receiver) = async_channel::unbounded();
            state.subscribers.push(sender);
            let feed = Feed {
                receiver: Some(Box::pin(receiver)),
                topics: Arc::downgrade(&self.topics),
                topic: topic.to_owned(),
            };
            Ok(Box::pin(feed) as TopicFeed)
        })
    }

    fn live_names(&self) -> usize {
        self.lock_leases.lock().len()
            + self.semaphore_leases.lock().len()
            + self.events.lock().len()
            + self.queues.lock().len()
            + self.variables.lock().len()
            + self.datasets.lock().len()
            + self.topics.lock().len()
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // Wake every waiter: each finds `closed` set and ends. Waiters that start listening
        // after this look at `closed` after they listen, so none is left behind.
        for map in [&self.lock_leases, &self.semaphore_leases] {
            for state in map.lock().values() {
                state.freed.notify(usize::MAX);
            }
        }
        for state in self.events.lock().values() {
            state.changed.notify(usize::MAX);
        }
        for state in self.queues.lock().values() {
            state.pushed.notify(usize::MAX);
            state.popped.notify(usize::MAX);
        }
        for state in self.variables.lock().values() {
            state.changed.notify(usize::MAX);
        }
        // Subscriptions end: their feeds close.
        for topic in self.topics.lock().values_mut() {
            topic.subscribers.clear();
        }
    }
}

/// One subscription's messages. When it is dropped it lets go of its topic's state if it was
/// the last subscription (so a topic per request leaves nothing behind, and a later subscriber
/// may choose another type).
struct Feed {
    /// `Some` until drop: dropped first there, so the channel reads as closed.
    receiver: Option<Pin<Box<async_channel::Receiver<SharedPayload>>>>,
    topics: Weak<Mutex<HashMap<String, TopicState>>>,
    topic: String,
}

impl Stream for Feed {
    type Item = SharedPayload;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SharedPayload>> {
        match self.receiver.as_mut() {
            Some(receiver) => receiver.as_mut().poll_next(cx),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let Some(topics) = self.topics.upgrade() else { return };
        let mut topics = topics.lock();
        if let Some(state) = topics.get_mut(&self.topic) {
            state.subscribers.retain(|subscriber| !subscriber.is_closed());
            if state.subscribers.is_empty() {
                topics.remove(&self.topic);
            }
        }
    }
}
