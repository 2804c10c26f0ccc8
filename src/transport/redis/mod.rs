//! The Redis Streams backend (feature `redis`): worker processes on any machine, fed through
//! a Redis server.
//!
//! # The model
//!
//! - The client enqueues each ready task as an entry of the queue's stream: the registered
//!   task's [`NAME`](crate::Task::NAME), its input as JSON, and where to put the outcome.
//!   Closures cannot cross machines: on this transport only
//!   [`submit_task`](crate::Client::submit_task) and [`map_task`](crate::Client::map_task)
//!   run; a closure's future fails with an error that says so.
//! - Worker processes ([`Worker`](crate::worker::Worker)) join the stream's consumer group,
//!   run the entries they read, and push a completion with the output to the submitting
//!   client's reply stream, which the client reads with a blocking `XREAD`: a result reaches
//!   the client without polling delay. An output over 256 bytes is also stored under a
//!   result key with a time to live, where dependent tasks read it; a smaller one the client
//!   keeps, and stores only when a dependent task needs it.
//! - A worker that dies leaves its entries pending; after the reclaim time another worker
//!   claims them (`XAUTOCLAIM`) and runs them. An entry started more often than allowed
//!   without finishing is poison: it goes to the dead-letter stream and its future fails
//!   with [`TaskError::WorkerLost`](crate::TaskError::WorkerLost).
//! - A completion is accepted atomically and only from the entry's current owner (a Lua
//!   script checks the owner, stores the result, notifies the client and acknowledges in one
//!   step), so a slow worker whose entry was reclaimed cannot ack it behind the new owner's
//!   back, and a crash can never produce two accepted results.
//! - Nothing is lost silently. The client checks on the entries of its unfinished tasks
//!   every [`reconcile_every`](RedisTransportBuilder::reconcile_every): an entry that
//!   vanished before a worker ran it (the stream trimmed or deleted, a server restarted
//!   without its last writes) is enqueued again, counted like a lost worker against the
//!   task's `allowed_failures`, and fails with
//!   [`TaskError::WorkerLost`](crate::TaskError::WorkerLost) once they are spent. Delivery is
//!   at least once, with a single accepted result.
//! - Enqueueing is idempotent per delivery: an enqueue resent after its reply was lost finds
//!   the entry it made and adds no second one.
//! - Cancelling a task removes its entry if no worker has begun it, so it never runs. A
//!   worker begins an entry when it starts running it (not when it takes it ahead,
//!   [`prefetch`](crate::worker::WorkerBuilder::prefetch)), so a cancel stops every task that
//!   has not started yet.
//! - Dropping the last handle to a future deletes its result from Redis.
//! - The coordination primitives of a client on this transport
//!   ([`Client::lock`](crate::Client::lock), queues, events, ...) live in Redis under the
//!   namespace, shared by name with every client and worker of it; a registered task reaches
//!   them through [`worker_client`](crate::worker_client). See
//!   [`client::coordination`](crate::client::coordination).
//!
//! The key layout is documented in `ARCHITECTURE.md`.
//!
//! # Examples
//!
//! Moving an application from one machine to many is one builder line:
//!
//! ```no_run
//! use taskweave::Task;
//! use taskweave::transport::redis::RedisTransport;
//!
//! struct Add;
//! impl Task for Add {
//!     const NAME: &'static str = "add";
//!     type Input = (i64, i64);
//!     type Output = i64;
//!     type Error = std::convert::Infallible;
//!     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> {
//!         Ok(a + b)
//!     }
//! }
//!
//! # async fn run() -> Result<(), taskweave::Error> {
//! let client = taskweave::Client::builder()
//!     .transport(RedisTransport::connect("redis://127.0.0.1:6379").await?)
//!     .build()
//!     .await?;
//! // A worker process running `Worker::builder().register::<Add>()` computes it.
//! assert_eq!(client.submit_task::<Add>((2, 3)).await?, 5);
//! client.close().await
//! # }
//! ```

mod admin;
mod config;
// The store seam and what crosses it are crate-private; their items are `pub` only so that
// `crate::sim::redis::internals` (feature `sim`, hidden) can hand them to the tests that
// check the model against Redis and fuzz the decoders. Without `sim` nothing reaches them;
// with it, only through that hidden module (no API, so not documented as one).
// The coordination primitives' storage seam (the client's `RedisCoordination` is built on
// it); `pub` items only for `sim::redis::internals`.
#[allow(unreachable_pub, missing_docs)]
pub(crate) mod coordination_seam;
#[allow(unreachable_pub, missing_docs)]
pub(crate) mod protocol;
#[allow(unreachable_pub, missing_docs)]
pub(crate) mod redis_store;
pub(crate) mod retry;
#[allow(unreachable_pub, missing_docs)]
pub(crate) mod store;
pub(crate) mod task_services;

pub use self::admin::{
    ConsumerStats, DEFAULT_DEAD_LETTER_CAP, DeadLetter, QueueStats, RedisAdmin, RedisAdminBuilder,
};
pub use self::config::{DEFAULT_NAMESPACE, DEFAULT_QUEUE, RedisConfig};

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::future::{Either, select};
use parking_lot::Mutex;

use self::protocol::Reply;
pub(crate) use self::protocol::{
    Keys, Notify, Rejection, RunAnswer, RunRequest, Status, TaskEntry,
};
pub(crate) use self::redis_store::{RedisStore, Role};
use self::retry::{Retry, RetryPolicy};
use self::store::{
    Cancelled, Dispatched, Failure, Joined, Left, Located, ShareKeys, Store, StoreError,
    StreamEntry,
};
pub use super::WorkerInfo;
use super::{CompletionSink, ReadyTask, TaskOutcome, TaskRun, Transport};
use crate::Error;
use crate::executor::{BoxFuture, Executor, ExecutorExt};
use crate::key::{TaskId, TaskKey};

/// The longest [`result_ttl`](RedisTransportBuilder::result_ttl) a client accepts (365 days).
pub const MAX_RESULT_TTL: Duration = Duration::from_millis(protocol::MAX_TTL_MS);

/// How long a blocking read waits on the server before it looks around (for a stop request).
const BLOCK: Duration = Duration::from_secs(1);
/// The shortest time between two renewals of the held results (for a very short
/// [`result_ttl`](RedisTransportBuilder::result_ttl), which then may expire between them).
const MIN_RENEW_EVERY: Duration = Duration::from_millis(10);
/// How many entries one batch of enqueues, completions or deletions holds at most.
const BATCH: usize = 512;

/// The client side of the Redis Streams backend: a [`Transport`] that enqueues registered
/// tasks to a Redis stream for [`Worker`](crate::worker::Worker) processes. See the
/// [module docs](self).
///
/// Cheap to clone: clones share one connection, so you can keep one to call
/// [`workers`](RedisTransport::workers) after handing another to the client builder.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), taskweave::Error> {
/// use taskweave::transport::redis::RedisTransport;
///
/// let redis = RedisTransport::builder("redis://user:secret@127.0.0.1:6379")
///     .queue("images")
///     .connect()
///     .await?;
/// let client = taskweave::Client::builder().transport(redis.clone()).build().await?;
/// for worker in redis.workers().await? {
///     println!("{} runs {:?}", worker.name, worker.tasks);
/// }
/// # client.close().await }
/// ```
#[derive(Clone)]
pub struct RedisTransport {
    inner: Arc<Inner>,
}

/// Configures and connects a [`RedisTransport`].
#[derive(Debug, Clone)]
#[must_use = "a RedisTransportBuilder does nothing until `connect` is called"]
pub struct RedisTransportBuilder {
    /// The server, queue and timeouts (shared with the worker's builder).
    config: RedisConfig,
    max_in_flight: usize,
    max_payload_bytes: usize,
    result_ttl: Duration,
    reconcile_every: Duration,
    shared_lease: Duration,
}

/// A result key and the output a client kept for it, to be written before a dependent.
type KeptValue = (String, Vec<u8>);

/// The result key of a task a client holds, and its output while only the client has it.
///
/// A worker leaves a small output (at most [`INLINE_RESULT_MAX`](protocol::INLINE_RESULT_MAX)
/// bytes) out of Redis when the entry allows it: the completion carries it, and writing it a
/// second time under the result key cost redis-server a command per task that nothing read
/// in most programs. The client keeps such an output here and writes it under the result key
/// only when a dependent task, which its worker reads from there, is dispatched.
///
/// The client keeps its copy as long as it holds the result, and writes it again for every
/// batch of dependents: what it wrote may be gone from Redis by the next dependent (expired
/// after [`result_ttl`](RedisTransportBuilder::result_ttl), lost in a restart without
/// persistence, or never written when the broker stayed away), and the client's copy makes
/// each dependent independent of that.
#[derive(Debug)]
struct HeldResult {
    key: String,
    /// The output, when the worker left it out of Redis; `None` when the worker wrote it
    /// (or there is none yet, or it failed).
    kept: Option<Vec<u8>>,
    /// Whether this client wrote [`kept`](HeldResult::kept) under the key (for a
    /// dependent), so that releasing the result deletes the key.
    written: bool,
}

impl HeldResult {
    fn new(key: String) -> HeldResult {
        HeldResult { key, kept: None, written: false }
    }

    /// Whether the key may exist in Redis, to be deleted when the result is released.
    fn in_redis(&self) -> bool {
        self.kept.is_none() || self.written
    }
}

struct Inner {
    keys: Keys,
    /// The server's URL without its password, for messages.
    broker: String,
    /// How long the broker may stay unreachable before pending futures fail.
    broker_timeout: Duration,
    /// Whether the broker answers (see [`BrokerHealth`]).
    health: Mutex<Health>,
    store: Arc<dyn Store>,
    client_id: String,
    reply: String,
    max_in_flight: usize,
    max_payload_bytes: usize,
    result_ttl: Duration,
    /// Entries waiting to be written to the stream (batched by the sender loop).
    outbox: (flume::Sender<TaskEntry>, flume::Receiver<TaskEntry>),
    /// Result keys to delete (batched by the janitor loop).
    releases: (flume::Sender<String>, flume::Receiver<String>),
    /// Dispatched tasks, until their completion arrives (or they are found lost, or a cancel
    /// removed their entry).
    in_flight: Mutex<InFlight>,
    /// Delivery ids of cancelled tasks whose entries are to be removed (the cancel loop).
    cancels: (flume::Sender<String>, flume::Receiver<String>),
    /// How often the reconciliation loop looks for entries that vanished.
    reconcile_every: Duration,
    /// Whether this client writes task entries in format 2 (packed, which only workers of
    /// that version read) rather than 1: set at connect and by the format loop from the live
    /// workers' announcements ([`packing_allowed`]).
    packed_entries: AtomicBool,
    /// Result keys of tasks the client holds, for dependents and release.
    results: Mutex<HashMap<TaskKey, HeldResult>>,
    /// Outputs this client kept (see [`HeldResult`]) that a dependent task needs under their
    /// result keys: the sender loop writes them before it enqueues the entries sent after
    /// them.
    kept_values: (flume::Sender<KeptValue>, flume::Receiver<KeptValue>),
    /// How long this client's hold on a shared key lasts unless renewed (every third of it).
    shared_lease: Duration,
    /// Set once the client dispatched a shared key: only then do release and completions
    /// look at [`Inner::shares`] (one atomic load otherwise).
    any_shared: AtomicBool,
    /// The shared keys this client holds, and the runs it enqueued for them.
    shares: Mutex<Shares>,
    /// Work for the share loop (joins, leaves, forwards).
    share_ops: (flume::Sender<ShareOp>, flume::Receiver<ShareOp>),
    started: OnceLock<Started>,
    /// Dropped on close: every background loop watches it.
    stop: Mutex<Option<flume::Sender<()>>>,
    stop_signal: flume::Receiver<()>,
    /// How [`RedisTransport::admin`] connects: this transport's server, namespace and queue.
    admin: RedisAdminBuilder,
    /// Where the coordination primitives live: the server connected to (on the simulation's
    /// model of Redis, the builder's config, with `coordination_connector` set too).
    coordination: OnceLock<RedisConfig>,
    /// How the coordination primitives reach their state when not through a connection of
    /// their own to `coordination`'s server (the simulation's model of Redis).
    coordination_connector: OnceLock<Arc<dyn coordination_seam::Connector>>,
}

/// The shared keys (pure, or given explicitly) a client holds: on Redis, several clients'
/// submissions of one such key share one run and one result (see `share.lua`).
#[derive(Default)]
struct Shares {
    /// Each held key's record and result.
    held: HashMap<TaskKey, ShareKeys>,
    /// The runs this client enqueued for a shared key, by delivery id: their completion is
    /// forwarded to the other clients waiting for it, even after this client let go.
    runs: HashMap<String, ShareKeys>,
}

/// What the share loop is asked to do.
enum ShareOp {
    /// Join the shared key of the dispatched delivery `rid`: run it, wait for another
    /// client's run, or take its result.
    Join(String),
    /// Give up the hold on a shared key (released, or the delivery `rid` cancelled).
    Leave { share: ShareKeys, rid: String },
    /// Forward the completion of this client's run `rid` of a shared key to its waiters.
    Done { share: ShareKeys, reply: Reply },
}

/// The deliveries a client has dispatched and not seen completed.
#[derive(Default)]
struct InFlight {
    by_rid: HashMap<String, Flight>,
    /// The delivery id of each task's current attempt (for [`Transport::abort`]).
    rid_of: HashMap<TaskId, String>,
}

/// One dispatched delivery, from `dispatch` to its completion.
struct Flight {
    task: ReadyTask,
    /// Where its enqueue stands.
    enqueued: Enqueued,
    /// Cancelled: it is not sent, or, once enqueued, the cancel loop removes its entry.
    cancelled: bool,
    /// Withdrawn (released while dispatched): as `cancelled`, except that a worker that has
    /// begun it is not told to stop.
    withdrawn: bool,
    /// Reconciliation passes in a row that found the delivery reported while its
    /// completion had not arrived.
    done_passes: u32,
    /// The record and result of its shared key, if it has one.
    shared: Option<ShareKeys>,
}

impl Flight {
    /// Whether its entry is to be removed if no worker has begun it (cancelled or
    /// withdrawn).
    fn taken_back(&self) -> bool {
        self.cancelled || self.withdrawn
    }
}

impl InFlight {
    fn insert(&mut self, rid: String, task: ReadyTask) {
        self.rid_of.insert(task.id(), rid.clone());
        self.by_rid.insert(
            rid,
            Flight {
                task,
                enqueued: Enqueued::Sending,
                cancelled: false,
                withdrawn: false,
                done_passes: 0,
                shared: None,
            },
        );
    }

    /// A delivery of a shared key, joining its record before anything is enqueued.
    fn insert_shared(&mut self, rid: String, task: ReadyTask, share: ShareKeys, entry: TaskEntry) {
        self.rid_of.insert(task.id(), rid.clone());
        self.by_rid.insert(
            rid,
            Flight {
                task,
                enqueued: Enqueued::Sharing(Box::new(entry)),
                cancelled: false,
                withdrawn: false,
                done_passes: 0,
                shared: Some(share),
            },
        );
    }

    fn remove(&mut self, rid: &str) -> Option<Flight> {
        let flight = self.by_rid.remove(rid)?;
        if self.rid_of.get(&flight.task.id()).is_some_and(|current| current == rid) {
            self.rid_of.remove(&flight.task.id());
        }
        Some(flight)
    }

    /// The enqueued deliveries, as the store's `locate` and `cancel` take them.
    fn dispatched(&self, rid: &str) -> Option<Dispatched> {
        let entry_id = match &self.by_rid.get(rid)?.enqueued {
            Enqueued::Sending | Enqueued::Sharing(_) => return None,
            Enqueued::Written(entry_id) => Some(entry_id.clone()),
            Enqueued::AlreadyReported => None,
        };
        Some(Dispatched { rid: rid.to_owned(), entry_id })
    }
}

/// Where a dispatched delivery's enqueue stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Enqueued {
    /// Not acknowledged yet: the sender loop holds it (or retries it).
    Sending,
    /// Acknowledged: the id of the stream entry written for it.
    Written(String),
    /// Acknowledged, but a worker had reported the delivery by then (its entry may be gone
    /// already), so the enqueue returned no entry id.
    AlreadyReported,
    /// A shared key's delivery that is not enqueued: joining the key's record, or waiting
    /// for another client's run of it (its outcome is forwarded to this delivery). The entry
    /// is kept for a take-over, should that client die before its run is enqueued.
    Sharing(Box<TaskEntry>),
}

impl Enqueued {
    /// What an acknowledged enqueue returned for one delivery (see [`Store::enqueue`]).
    fn acknowledged(entry_id: Option<String>) -> Enqueued {
        entry_id.map_or(Enqueued::AlreadyReported, Enqueued::Written)
    }
}

/// Whether the broker answered the client's last commands.
#[derive(Default)]
struct Health {
    /// Since when commands fail because the broker cannot be reached (`None` while they
    /// succeed).
    down_since: Option<std::time::Instant>,
    /// The last such failure.
    last_error: String,
    /// The pending futures were failed for this outage: new tasks fail at once until the
    /// broker answers again.
    gave_up: bool,
}

/// Whether a client's broker answers, from [`RedisTransport::health`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerHealth {
    /// The client's last commands reached the broker (or it has sent none yet).
    Up,
    /// Commands have failed for `down_for`, the client retries them; pending futures fail
    /// once this reaches the [broker timeout](RedisTransportBuilder::broker_timeout).
    Down {
        /// How long commands have been failing.
        down_for: Duration,
        /// The last error.
        last_error: String,
    },
    /// Unreachable for longer than the broker timeout: the futures that were pending then
    /// failed with [`TaskError::BrokerUnavailable`](crate::TaskError::BrokerUnavailable),
    /// and so does every task dispatched until the broker answers again.
    Unavailable {
        /// How long commands have been failing.
        down_for: Duration,
        /// The last error.
        last_error: String,
    },
}

/// How many passes in a row may find a delivery reported before its completion arrives;
/// after that it counts as lost (its completion was lost with the reply stream).
const DONE_PASSES: u32 = 3;

struct Started {
    executor: Arc<dyn Executor>,
    sink: CompletionSink,
    /// Disconnects when every background loop has ended (each holds a sender).
    stopped: flume::Receiver<()>,
}

impl fmt::Debug for RedisTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTransport")
            .field("queue", &self.inner.keys.queue())
            .field("client_id", &self.inner.client_id)
            .field("in_flight", &self.inner.in_flight.lock().by_rid.len())
            .finish_non_exhaustive()
    }
}

impl RedisTransportBuilder {
    /// Replaces the server, namespace, queue, timeouts and TLS settings with `config`'s.
    pub fn redis_config(mut self, config: RedisConfig) -> Self {
        self.config = config;
        self
    }

    /// The namespace every key starts with; see [`RedisConfig::namespace`].
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config = self.config.namespace(namespace);
        self
    }

    /// The queue to submit to; see [`RedisConfig::queue`].
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.config = self.config.queue(queue);
        self
    }

    /// How many tasks may be enqueued and unfinished at once (default 4096); the scheduler
    /// holds the rest back, by priority.
    pub fn max_in_flight(mut self, tasks: usize) -> Self {
        self.max_in_flight = tasks.max(1);
        self
    }

    /// The largest encoded input accepted (default 1 MiB). A bigger one fails its future at
    /// submit with an error that says so; store large data elsewhere and pass a reference.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// How long results and completions live in Redis when nobody releases them (default one
    /// hour; from 1 ms, a shorter one counts as 1 ms, to [`MAX_RESULT_TTL`], 365 days).
    /// Released results are deleted at once, and the client renews the expiry of the
    /// results it holds every third of this time (at most every 10 ms), so a held result
    /// stays readable by dependents however long ago it finished, and a long time only
    /// keeps the results of clients that died. [`connect`](RedisTransportBuilder::connect) refuses a longer time
    /// (such as `Duration::MAX`): Redis cannot use it as an expiry.
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// How long this client's hold on a shared key lasts unless renewed (default 30 s; from
    /// 100 ms to [`MAX_RESULT_TTL`]).
    ///
    /// A task with a shared key — pure, or given explicitly with
    /// [`TaskBuilder::key`](crate::client::TaskBuilder::key) — is one task for every client
    /// of the queue (Dask's several clients on one scheduler): the first client to submit it
    /// enqueues it, a second one that submits the key meanwhile waits for that run instead
    /// of enqueueing it again (or takes the result at once if it exists), a cancel by one
    /// client leaves the others' futures running, and the result stays in Redis while any
    /// client holds the key. Each client renews its holds every third of this time, so that
    /// a client whose process dies lets go of its keys within it: the result is then deleted
    /// unless another client holds it, and a client waiting for a dead client's run that
    /// never got enqueued (or whose outcome was never forwarded) takes it over. Generated keys
    /// are one client's alone and pay nothing for this.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// use std::time::Duration;
    /// use taskweave::transport::redis::RedisTransport;
    /// # struct Report;
    /// # impl taskweave::Task for Report {
    /// #     const NAME: &'static str = "report";
    /// #     type Input = u32;
    /// #     type Output = String;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run(day: u32) -> Result<String, Self::Error> { Ok(day.to_string()) }
    /// # }
    ///
    /// // In each of several web server processes:
    /// let redis = RedisTransport::builder("redis://127.0.0.1:6379")
    ///     .shared_lease(Duration::from_secs(10))
    ///     .connect()
    ///     .await?;
    /// let client = taskweave::Client::builder().transport(redis).build().await?;
    /// // Computed once, whichever process asks first; the others wait for that run.
    /// let report = client.task().key("report-2024-06-01").submit_task::<Report>(20240601);
    /// println!("{}", report.await?);
    /// # client.close().await }
    /// ```
    pub fn shared_lease(mut self, lease: Duration) -> Self {
        self.shared_lease = lease.clamp(Duration::from_millis(100), MAX_RESULT_TTL);
        self
    }

    /// How long one Redis command may take; see [`RedisConfig::command_timeout`].
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.command_timeout(timeout);
        self
    }

    /// How long the broker may stay unreachable before the client gives its pending tasks
    /// up; see [`RedisConfig::broker_timeout`] and [`RedisTransport::health`].
    pub fn broker_timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.broker_timeout(timeout);
        self
    }

    /// How often the client checks that the entries of its unfinished tasks still exist
    /// (default 5 s; at least 10 ms). An entry can vanish without a worker ever seeing it:
    /// someone trims the stream (`XTRIM`, `MAXLEN`) or deletes it, or the server restarts
    /// and loses its last writes. Each pass asks Redis, in batches, whether every enqueued
    /// task's entry is still in the stream, pending with a worker, or reported; a task whose
    /// entry is gone is enqueued again as its next attempt, counted like a lost worker
    /// against its [`allowed_failures`](crate::client::TaskBuilder::allowed_failures), and
    /// fails with [`TaskError::WorkerLost`](crate::TaskError::WorkerLost) once they are
    /// spent. A shorter interval finds lost entries sooner at the cost of a round trip per
    /// 512 unfinished tasks each time.
    ///
    /// Also how often (at most every 10 s; every 100 ms while no worker is live) the client
    /// checks which task entry format the live workers of its queue read: it writes the
    /// packed format 2 only while every live worker announces it, and format 1, which older
    /// workers read too, while one does not.
    pub fn reconcile_every(mut self, interval: Duration) -> Self {
        self.reconcile_every = interval.max(Duration::from_millis(10));
        self
    }

    /// Trusts this CA certificate (PEM) for a `rediss://` server; see
    /// [`RedisConfig::tls_root_certificate`].
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.config = self.config.tls_root_certificate(pem);
        self
    }

    /// Connects, authenticates and checks that the server answers.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] with the Redis message when the URL is invalid, the server cannot
    /// be reached or refuses the credentials, or its access control (ACL) refuses the user a
    /// command a client needs (the message names it); [`Error::InvalidConfig`] for an empty queue
    /// name or a [`result_ttl`](RedisTransportBuilder::result_ttl) over
    /// [`MAX_RESULT_TTL`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the half-made connections.
    pub async fn connect(self) -> Result<RedisTransport, Error> {
        self.check()?;
        let keys = self.keys();
        let options = self.config.connect_options(BLOCK);
        let store = RedisStore::connect(self.config.url(), keys.clone(), &options).await?;
        store.check_access(Role::Client).await?;
        let config = self.config.clone();
        let transport = self.connect_store(Arc::new(store), keys).await?;
        let _ = transport.inner.coordination.set(config);
        Ok(transport)
    }

    /// The keys of the queue this transport submits to.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn keys(&self) -> Keys {
        self.config.keys()
    }

    /// A [`RedisAdmin`] builder for this transport's server, namespace and queue.
    fn admin_builder(&self) -> RedisAdminBuilder {
        RedisAdmin::builder(self.config.url()).redis_config(self.config.clone())
    }

    /// Checks the settings that Redis would refuse later, one task at a time.
    fn check(&self) -> Result<(), Error> {
        self.config.check()?;
        if self.result_ttl > MAX_RESULT_TTL {
            return Err(Error::InvalidConfig {
                message: format!(
                    "result_ttl({:?}) is longer than Redis can use as an expiry here: pass a \
                     time from 1 ms to {} days (MAX_RESULT_TTL); released results are deleted \
                     at once, so a long time only keeps the results of clients that die",
                    self.result_ttl,
                    MAX_RESULT_TTL.as_secs() / 86_400
                ),
            });
        }
        Ok(())
    }

    /// Sets the transport up on `store` (a Redis server, or the simulation's model of one).
    pub(crate) async fn connect_store(
        self,
        store: Arc<dyn Store>,
        keys: Keys,
    ) -> Result<RedisTransport, Error> {
        self.check()?;
        // The group exists before the first entry, so that workers started later see every
        // entry.
        store.ensure_group().await?;
        let client_id = format!("c{}", store.next_number().await?);
        let reply = keys.reply(&client_id);
        let (stop, stop_signal) = flume::bounded(1);
        let transport = RedisTransport {
            inner: Arc::new(Inner {
                keys,
                broker: self.config.url_without_password(),
                broker_timeout: self.config.broker_timeout_value(),
                health: Mutex::new(Health::default()),
                store,
                client_id,
                reply,
                max_in_flight: self.max_in_flight,
                max_payload_bytes: self.max_payload_bytes,
                result_ttl: self.result_ttl,
                outbox: flume::unbounded(),
                releases: flume::unbounded(),
                in_flight: Mutex::new(InFlight::default()),
                cancels: flume::unbounded(),
                reconcile_every: self.reconcile_every,
                packed_entries: AtomicBool::new(false),
                results: Mutex::new(HashMap::new()),
                kept_values: flume::unbounded(),
                shared_lease: self.shared_lease,
                any_shared: AtomicBool::new(false),
                shares: Mutex::new(Shares::default()),
                share_ops: flume::unbounded(),
                started: OnceLock::new(),
                stop: Mutex::new(Some(stop)),
                stop_signal,
                admin: self.admin_builder(),
                coordination: OnceLock::new(),
                coordination_connector: OnceLock::new(),
            }),
        };
        // The entry format, from the workers live now (the format loop checks again later).
        transport.inner.check_entry_format(true).await;
        Ok(transport)
    }
}

impl RedisTransport {
    /// Connects to the Redis server at `url` (`redis://[user:password@]host:port[/db]`, or
    /// `rediss://` for TLS with the `redis-tls` feature) with
    /// the default settings; see [`builder`](RedisTransport::builder) for the others.
    ///
    /// # Errors
    ///
    /// As [`RedisTransportBuilder::connect`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the half-made connections.
    pub async fn connect(url: impl Into<String>) -> Result<RedisTransport, Error> {
        RedisTransport::builder(url).connect().await
    }

    /// Starts configuring a transport for the server at `url`.
    pub fn builder(url: impl Into<String>) -> RedisTransportBuilder {
        RedisTransport::builder_with(RedisConfig::new(url))
    }

    /// Starts configuring a transport with the server, queue and timeouts of `config` (which
    /// a program's workers may share).
    pub fn builder_with(config: RedisConfig) -> RedisTransportBuilder {
        RedisTransportBuilder {
            config,
            max_in_flight: 4096,
            max_payload_bytes: 1 << 20,
            result_ttl: Duration::from_secs(3600),
            reconcile_every: Duration::from_secs(5),
            shared_lease: Duration::from_secs(30),
        }
    }

    /// This client's id in Redis (its reply stream and result keys carry it).
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// Whether the broker answers this client's commands: [`BrokerHealth::Up`], `Down`
    /// (failing, retried) or `Unavailable` (failing for longer than the
    /// [broker timeout](RedisTransportBuilder::broker_timeout): pending futures were failed).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// use taskweave::transport::redis::{BrokerHealth, RedisTransport};
    ///
    /// let redis = RedisTransport::connect("redis://127.0.0.1:6379").await?;
    /// let client = taskweave::Client::builder().transport(redis.clone()).build().await?;
    /// if let BrokerHealth::Down { down_for, last_error } = redis.health() {
    ///     eprintln!("redis unreachable for {down_for:?}: {last_error}");
    /// }
    /// # client.close().await }
    /// ```
    pub fn health(&self) -> BrokerHealth {
        let inner = &self.inner;
        let health = inner.health.lock();
        let (Some(since), Some(started)) = (health.down_since, inner.started()) else {
            return BrokerHealth::Up;
        };
        let down_for = started.executor.now().saturating_duration_since(since);
        let last_error = health.last_error.clone();
        if health.gave_up {
            BrokerHealth::Unavailable { down_for, last_error }
        } else {
            BrokerHealth::Down { down_for, last_error }
        }
    }

    /// An operator's handle on this transport's queue (queue statistics, dead letters), on a
    /// connection of its own to the same server; see [`RedisAdmin`].
    ///
    /// # Errors
    ///
    /// As [`RedisAdminBuilder::connect`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// use taskweave::transport::redis::RedisTransport;
    ///
    /// let redis = RedisTransport::connect("redis://127.0.0.1:6379").await?;
    /// let client = taskweave::Client::builder().transport(redis.clone()).build().await?;
    /// let stats = redis.admin().await?.queue_stats().await?;
    /// println!("{} waiting, {} dead letters", stats.waiting, stats.dead_letters);
    /// # client.close().await }
    /// ```
    pub async fn admin(&self) -> Result<RedisAdmin, Error> {
        self.inner.admin.clone().connect().await
    }

    /// The workers of this transport's queue whose heartbeat has not expired.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when Redis cannot be asked.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future changes nothing (at worst, expired workers stay listed in Redis
    /// until the next call).
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let announcements = self.inner.store.live_workers().await?;
        let workers = self.inner.queue_workers(&announcements);
        // The read is made anyway: it sets the entry format too (see `packing_allowed`).
        self.inner.set_entry_format(&workers, false);
        Ok(workers)
    }
}

impl RedisTransport {
    /// Asks each of `workers` to run the registered task `task` once on `input` (JSON),
    /// under the request `id`; the answers live for `ttl`.
    pub(crate) async fn request_runs(
        &self,
        workers: &[String],
        request: &RunRequest,
        ttl: Duration,
    ) -> Result<(), Error> {
        let bytes =
            serde_json::to_vec(request).map_err(|error| Error::Serialization(Box::new(error)))?;
        for worker in workers {
            self.inner.store.request_run(worker, &bytes, ttl).await?;
        }
        Ok(())
    }

    /// The answers of `workers` to the run request `id` so far, in order.
    pub(crate) async fn run_answers(
        &self,
        id: &str,
        workers: &[String],
    ) -> Result<Vec<Option<RunAnswer>>, Error> {
        let keys: Vec<String> =
            workers.iter().map(|worker| self.inner.keys.run_answer(id, worker)).collect();
        let raw = self.inner.store.read_answers(&keys).await?;
        Ok(raw
            .into_iter()
            .map(|answer| answer.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
            .collect())
    }

    /// Asks every worker of this queue to restart (`Client::restart`), on the control stream
    /// they all read; each answers under the run answer of `id`, which lives for `ttl`.
    pub(crate) async fn request_restart(&self, id: &str, ttl: Duration) -> Result<(), Error> {
        let message = protocol::ControlMessage::Restart {
            id: id.to_owned(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        };
        let bytes =
            serde_json::to_vec(&message).map_err(|error| Error::Serialization(Box::new(error)))?;
        Ok(self.inner.store.send_control(&bytes).await?)
    }

    /// Asks the worker `name` of this queue to retire (its flag lives for `ttl`).
    pub(crate) async fn request_retire(&self, name: &str, ttl: Duration) -> Result<(), Error> {
        Ok(self.inner.store.request_retire(name, ttl).await?)
    }
}

impl Inner {
    fn started(&self) -> Option<&Started> {
        self.started.get()
    }

    /// A command reached the broker: if it was gone, say once that it is back.
    fn reached(&self) {
        let mut health = self.health.lock();
        if let Some(since) = health.down_since.take() {
            let down_for =
                self.started().map(|s| s.executor.now().saturating_duration_since(since));
            health.gave_up = false;
            drop(health);
            tracing::info!(broker = %self.broker, ?down_for, "the Redis broker answers again");
        }
    }

    /// A command failed. Says so once per outage, and once the broker has failed the
    /// client's commands for the broker timeout (unreachable, or refusing them: a revoked
    /// permission), fails every pending task.
    fn failed(&self, error: &StoreError) {
        let Some(started) = self.started() else { return };
        let now = started.executor.now();
        let mut health = self.health.lock();
        health.last_error = error.to_string();
        let since = match health.down_since {
            Some(since) => since,
            None => {
                health.down_since = Some(now);
                tracing::warn!(broker = %self.broker, %error, timeout = ?self.broker_timeout, "the Redis broker fails this client's commands; retrying (pending tasks fail if this lasts the timeout)");
                now
            }
        };
        if health.gave_up || now.saturating_duration_since(since) < self.broker_timeout {
            return;
        }
        drop(health);
        self.give_up(error);
    }

    /// Gives the broker up (unless it was already, for this outage): fails every pending
    /// task with [`TaskError::BrokerUnavailable`](crate::TaskError::BrokerUnavailable), and
    /// every task dispatched until the broker answers again. Called once the broker failed
    /// the client's commands for the broker timeout ([`Inner::failed`]), or when a loop that
    /// every pending task needs gave up earlier (the reply stream refused however often it
    /// is read).
    /// How long the broker has failed this client's commands without one answered between
    /// (zero while it answers).
    fn down_for(&self, now: Instant) -> Duration {
        self.health
            .lock()
            .down_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }

    fn give_up(&self, error: &StoreError) {
        let Some(started) = self.started() else { return };
        let now = started.executor.now();
        let mut health = self.health.lock();
        if health.gave_up {
            return;
        }
        health.gave_up = true;
        health.last_error = error.to_string();
        let since = *health.down_since.get_or_insert(now);
        // How long the broker has failed this client's commands: at least the broker timeout
        // when `failed` gives up, less when a loop gave up sooner (the reply stream refused).
        let down_for = now.saturating_duration_since(since);
        let last_error = health.last_error.clone();
        drop(health);
        let mut flights: Vec<(String, Flight)> = {
            let mut in_flight = self.in_flight.lock();
            in_flight.rid_of.clear();
            in_flight.by_rid.drain().collect()
        };
        // In a fixed order (not the map's), so that a simulation replays the same way.
        flights.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (rid, flight) in &flights {
            if flight.enqueued != Enqueued::Sending {
                // Deleted once the broker answers again (else they expire).
                let _ = self.releases.0.send(self.keys.entry_of(rid));
            }
        }
        tracing::error!(broker = %self.broker, after = ?down_for, %last_error, tasks = flights.len(), "the Redis broker failed this client's commands for too long; failing the pending tasks");
        for (_, flight) in flights {
            started.sink.broker_unavailable(&flight.task, &self.broker, &last_error, down_for);
        }
    }

    /// Fails the tasks of `batch`, whose enqueue the server refuses however often it is tried
    /// (`error`: a permission, a script error).
    fn refuse(&self, batch: &[TaskEntry], error: &StoreError) {
        let Some(started) = self.started() else { return };
        let failed: Vec<ReadyTask> = {
            let mut in_flight = self.in_flight.lock();
            batch.iter().filter_map(|entry| in_flight.remove(&entry.rid)).map(|f| f.task).collect()
        };
        tracing::error!(%error, tasks = failed.len(), "redis refuses to enqueue tasks; failing them");
        for task in &failed {
            let message = format!(
                "redis at {} refused to enqueue it ({error}); check the permissions of the \
                 client's Redis user (ACL) and the keys under its namespace",
                self.broker
            );
            started.sink.complete(task, TaskOutcome::failed(message));
        }
    }

    /// Whether the broker was given up for (see [`Inner::failed`]).
    fn given_up(&self) -> Option<String> {
        let health = self.health.lock();
        health.gave_up.then(|| health.last_error.clone())
    }

    fn fail(&self, task: &ReadyTask, message: String) {
        if let Some(started) = self.started() {
            started.sink.complete(task, TaskOutcome::failed(message));
        }
    }

    /// Reports one completion read from the reply stream, and adds the entry_of key it
    /// makes useless to `released` (deleted with the reply loop's next read).
    fn deliver(&self, reply: Reply, clock: &mut RunClock, released: &mut Vec<String>) {
        let Some(started) = self.started() else { return };
        if self.any_shared.load(Ordering::Acquire) {
            // This client's run of a shared key: the other clients waiting for it hear of
            // its outcome too, whether or not this client still waits for it.
            if let Some(share) = self.shares.lock().runs.remove(&reply.rid) {
                let _ = self.share_ops.0.send(ShareOp::Done { share, reply: reply.clone() });
            }
        }
        let Some(flight) = self.take_in_flight(&reply.rid) else {
            tracing::debug!(rid = %reply.rid, "a completion for a task this client no longer waits for");
            return;
        };
        // Its entry_of key is not needed any more, once the enqueue was acknowledged (until
        // then a resend must still find it; the sender deletes it after the acknowledgement).
        if matches!(flight.enqueued, Enqueued::Written(_) | Enqueued::AlreadyReported) {
            released.push(self.keys.entry_of(&reply.rid));
        }
        let task = flight.task;
        if reply.status == Status::Ok && !reply.stored {
            // The worker left the output out of Redis: kept here, before the sink hears of
            // it (its dependents are dispatched from there, and look for it).
            if let Some(held) = self.results.lock().get_mut(task.key()) {
                held.kept = Some(reply.body.clone());
            }
        }
        let text = || String::from_utf8_lossy(&reply.body).into_owned();
        // Who ran it and when, for the task events, if the worker said and they are recorded.
        let run = match &reply.run {
            Some(run) if started.sink.records_runs() => {
                Some(clock.task_run(&*started.executor, run))
            }
            _ => None,
        };
        let complete = |outcome| match run {
            Some(run) => started.sink.complete_run(&task, outcome, run),
            None => started.sink.complete(&task, outcome),
        };
        match reply.status {
            Status::Ok => complete(task.decode_output(&reply.body)),
            Status::Failed => complete(TaskOutcome::failed(text())),
            Status::Panicked => complete(TaskOutcome::panicked(text())),
            Status::Lost => {
                let attempts = text().parse().unwrap_or(reply.deliveries.saturating_sub(1));
                tracing::warn!(key = %task.key(), attempts, "task given up after its workers died");
                started.sink.gave_up(&task, attempts);
            }
            Status::Rejected => started.sink.complete(
                &task,
                TaskOutcome::failed(format!(
                    "a worker could not run it and moved it to the dead-letter stream: {}",
                    text()
                )),
            ),
        }
    }

    /// The task waiting for the completion of delivery `rid`, no longer waiting. A
    /// completion is matched by its delivery id (task and attempt), so that a duplicated or
    /// stale completion of an earlier attempt is never taken for the current one.
    fn take_in_flight(&self, rid: &str) -> Option<Flight> {
        let mut in_flight = self.in_flight.lock();
        if let Some(flight) = in_flight.remove(rid) {
            return Some(flight);
        }
        #[cfg(feature = "__planted")]
        if self.store.planted() == Some(crate::planted::PlantedBug::RedisAcceptSecondResult) {
            // The planted bug: match by task (`{client}:{task id}:`), whatever the attempt.
            let task_prefix = rid.rsplit_once(':').map(|(task, _)| format!("{task}:"))?;
            let current =
                in_flight.by_rid.keys().find(|other| other.starts_with(&task_prefix)).cloned();
            return current.and_then(|current| in_flight.remove(&current));
        }
        None
    }

    /// Turns a ready task into a stream entry, or says why it cannot be one.
    fn entry_for(&self, task: &ReadyTask) -> Result<TaskEntry, String> {
        let Some(name) = task.task_name() else {
            return Err("closures cannot cross machines; submit a registered Task \
                        (client.submit_task::<T>(input)) to run it on Redis workers"
                .to_owned());
        };
        let dependency_keys = task.dependency_keys();
        let (input, deps) = if dependency_keys.is_empty() {
            let input = match task.encode_input() {
                Some(Ok(input)) => input,
                Some(Err(error)) => return Err(format!("its input could not be encoded: {error}")),
                None => return Err("it has no input to send".to_owned()),
            };
            if input.len() > self.max_payload_bytes {
                return Err(format!(
                    "its input is {} bytes, over the limit of {} bytes; store large data \
                     elsewhere and pass a reference, or raise \
                     RedisTransportBuilder::max_payload_bytes",
                    input.len(),
                    self.max_payload_bytes
                ));
            }
            (Some(input), Vec::new())
        } else {
            let mut results = self.results.lock();
            if let Some(key) = dependency_keys.iter().find(|key| !results.contains_key(*key)) {
                return Err(format!(
                    "its dependency {key} did not run on this Redis transport, so its workers \
                     cannot read its value: a scattered value (client.scatter) or a closure's \
                     result stays in the client's process; pass the value as the task's input \
                     (client.submit_task::<T>(input)) instead"
                ));
            }
            let mut deps = Vec::with_capacity(dependency_keys.len());
            for key in &dependency_keys {
                let Some(held) = results.get_mut(key) else { continue };
                // Kept by this client: the sender writes it before this entry, again for every
                // batch (an earlier write may have expired or been lost with a restart).
                if let Some(output) = &held.kept {
                    let _ = self.kept_values.0.send((held.key.clone(), output.clone()));
                    held.written = true;
                }
                deps.push(held.key.clone());
            }
            (None, deps)
        };
        let rid = format!("{}:{}:{}", self.client_id, task.id().0, task.attempt());
        let result = self.keys.result(&self.client_id, task.id().0);
        Ok(TaskEntry {
            task: name.to_owned(),
            key: task.key().to_string(),
            rid,
            result,
            reply: self.reply.clone(),
            input,
            deps,
            // Each task's own `allowed_failures` (default 3: four deliveries, as in Dask).
            max_deliveries: task
                .allowed_failures()
                .unwrap_or(crate::job::DEFAULT_ALLOWED_FAILURES)
                .saturating_add(1),
            // `connect` checked the range; clamped again so no entry ever carries another.
            ttl_ms: u64::try_from(self.result_ttl.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, protocol::MAX_TTL_MS),
            resources: task.resources().to_vec(),
            // A small output comes back in the completion alone (see `HeldResult`).
            inline_max: Some(protocol::INLINE_RESULT_MAX),
            // Format 2 (packed; the client reads packed completions too) once every live
            // worker of the queue reads it, else format 1 (see `packing_allowed`).
            packed: self.packed_entries.load(Ordering::Relaxed),
        })
    }
}

impl Inner {
    /// Dispatches a task with a shared key: its result lives under the key (one for every
    /// client), and the share loop joins the key's record before anything is enqueued.
    fn dispatch_shared(&self, task: ReadyTask, mut entry: TaskEntry) {
        let key = task.key().to_string();
        let share = ShareKeys {
            record: self.keys.share_record(&key),
            result: self.keys.shared_result(&key),
        };
        entry.result.clone_from(&share.result);
        // The worker's result lives as long as a lease; live holders extend it. Other
        // clients read it: always written.
        entry.ttl_ms = lease_ms(self.shared_lease);
        entry.inline_max = None;
        self.any_shared.store(true, Ordering::Release);
        self.results.lock().insert(task.key().clone(), HeldResult::new(share.result.clone()));
        self.shares.lock().held.insert(task.key().clone(), share.clone());
        let rid = entry.rid.clone();
        self.in_flight.lock().insert_shared(rid.clone(), task, share, entry);
        let _ = self.share_ops.0.send(ShareOp::Join(rid));
    }

    /// Joins the shared key of the waiting delivery `rid` (see `share.lua`): enqueues it if
    /// it is the key's run now, reports the result if there is one, else leaves it waiting.
    async fn join(&self, rid: String) {
        let Some(started) = self.started() else { return };
        let share = {
            let in_flight = self.in_flight.lock();
            match in_flight.by_rid.get(&rid) {
                Some(Flight { shared: Some(share), enqueued: Enqueued::Sharing(_), .. }) => {
                    share.clone()
                }
                _ => return,
            }
        };
        let joined =
            self.store.share_join(&share, &self.client_id, &rid, &self.reply, self.shared_lease);
        let joined = match joined.await {
            Ok(joined) => {
                self.reached();
                joined
            }
            Err(error) => {
                self.failed(&error);
                if error.failure() != Failure::Unreachable {
                    if let Some(flight) = self.in_flight.lock().remove(&rid) {
                        self.fail(
                            &flight.task,
                            format!(
                                "redis at {} refused to share its key ({error}); check the \
                                 permissions of the client's Redis user (ACL) and the keys \
                                 under its namespace",
                                self.broker
                            ),
                        );
                    }
                } else {
                    // Tried again at the next renewal; the broker timeout bounds it.
                    tracing::debug!(%error, %rid, "could not join a shared key; trying again");
                }
                return;
            }
        };
        let mut in_flight = self.in_flight.lock();
        match joined {
            Joined::Run => {
                let Some(flight) = in_flight.by_rid.get_mut(&rid) else { return };
                let Enqueued::Sharing(entry) =
                    std::mem::replace(&mut flight.enqueued, Enqueued::Sending)
                else {
                    return;
                };
                self.shares.lock().runs.insert(rid, share);
                drop(in_flight);
                let _ = self.outbox.0.send(*entry);
            }
            Joined::Wait => {}
            Joined::Done(output) => {
                let Some(flight) = in_flight.remove(&rid) else { return };
                drop(in_flight);
                tracing::debug!(key = %flight.task.key(), "a shared key's result was there already");
                started.sink.complete(&flight.task, flight.task.decode_output(&output));
            }
        }
    }

    /// Gives up this client's hold on a shared key (released, or its delivery `rid`
    /// cancelled). The run is cancelled only when no client holds the key any more.
    async fn leave(&self, executor: &dyn Executor, share: ShareKeys, rid: String) {
        let Some(started) = self.started() else { return };
        let mut retry = Retry::new(RetryPolicy::after_tries(CANCEL_TRIES));
        let left = loop {
            match self.store.share_leave(&share, &self.client_id, &rid).await {
                Ok(left) => break Some(left),
                Err(error) => {
                    let Some(delay) = retry.next_delay(error.failure(), executor.now()) else {
                        // The hold expires with its lease.
                        tracing::debug!(%error, "gave up letting go of a shared key; it expires");
                        break None;
                    };
                    executor.sleep(delay).await;
                }
            }
        };
        let run = match left {
            Some(Left::Last(run)) => run,
            Some(Left::Kept) | None => None,
        };
        if rid.is_empty() {
            // A release: an unfinished run nobody holds any more is cancelled below.
            if let Some(run) = run {
                let _ = self.store.cancel(&[Dispatched { rid: run, entry_id: None }]).await;
            }
            return;
        }
        // Cancelled: this client holds the key no more (its renewals would hold it again).
        self.shares.lock().held.retain(|_, held| *held != share);
        let own_run = run.as_deref() == Some(rid.as_str());
        let not_run = {
            let mut in_flight = self.in_flight.lock();
            match in_flight.by_rid.get(&rid).map(|flight| &flight.enqueued) {
                // This client's run, enqueued, and nobody else holds the key: cancel its
                // entry as any other (the cancel loop reports it).
                Some(Enqueued::Written(_) | Enqueued::AlreadyReported) if own_run => {
                    let _ = self.cancels.0.send(rid.clone());
                    None
                }
                // Not sent yet: the sender drops it, or cancels it once acknowledged.
                Some(Enqueued::Sending) if own_run => None,
                // Another client still holds the key (the run goes on for it), or the run
                // was another client's: this client's future is cancelled, nothing more.
                Some(_) => in_flight.remove(&rid),
                None => None,
            }
        };
        if let Some(flight) = not_run {
            started.sink.complete(&flight.task, TaskOutcome::NotRun);
        }
        if let Some(run) = run.filter(|run| *run != rid) {
            // Nobody holds the key: the other client's run need not run.
            let _ = self.store.cancel(&[Dispatched { rid: run, entry_id: None }]).await;
        }
    }

    /// Renews this client's holds on its shared keys, and joins again the keys its
    /// deliveries wait for (a run whose client died is taken over).
    async fn renew_shares(&self) {
        let held: Vec<ShareKeys> = self.shares.lock().held.values().cloned().collect();
        if !held.is_empty() {
            match self.store.share_refresh(&held, &self.client_id, self.shared_lease).await {
                Ok(found) => {
                    self.reached();
                    let gone = found.iter().filter(|found| !**found).count();
                    if gone > 0 {
                        tracing::warn!(
                            keys = gone,
                            "shared keys this client holds expired in Redis (was the client paused for longer than its shared_lease?); their results are gone"
                        );
                    }
                }
                Err(error) => {
                    self.failed(&error);
                    tracing::debug!(%error, "could not renew the holds on shared keys; trying again");
                }
            }
        }
        let mut waiting: Vec<String> = {
            let in_flight = self.in_flight.lock();
            in_flight
                .by_rid
                .iter()
                .filter(|(_, flight)| matches!(flight.enqueued, Enqueued::Sharing(_)))
                .map(|(rid, _)| rid.clone())
                .collect()
        };
        waiting.sort_unstable();
        for rid in waiting {
            self.join(rid).await;
        }
    }
}

/// A lease as an expiry in ms Redis takes.
fn lease_ms(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).clamp(1, protocol::MAX_TTL_MS)
}

/// Carries out the work of shared keys (joins, leaves, forwards of this client's runs'
/// completions), and every third of the shared lease renews this client's holds and joins
/// again the keys its deliveries wait for. A client that never dispatches a shared key
/// only wakes up to find nothing held.
async fn share_loop(inner: Arc<Inner>, executor: Arc<dyn Executor>, _done: flume::Sender<()>) {
    let stop = inner.stop_signal.clone();
    let every = inner.shared_lease / 3;
    let mut next = executor.now() + every;
    loop {
        let now = executor.now();
        if now >= next {
            next = now + every;
            if unless_stopped(&stop, inner.renew_shares()).await.is_none() {
                return;
            }
            continue;
        }
        let op = {
            let received = inner.share_ops.1.recv_async();
            let timer = executor.sleep(next - now);
            match unless_stopped(&stop, select(received, timer)).await {
                None => return,
                Some(Either::Left((Ok(op), _))) => op,
                Some(Either::Left((Err(_), _))) => return,
                Some(Either::Right(_)) => continue,
            }
        };
        let work = async {
            match op {
                ShareOp::Join(rid) => inner.join(rid).await,
                ShareOp::Leave { share, rid } => inner.leave(&*executor, share, rid).await,
                ShareOp::Done { share, reply } => {
                    let forwarded = inner.store.share_done(
                        &share,
                        &reply.rid,
                        reply.status,
                        &reply.body,
                        reply.deliveries,
                        inner.result_ttl,
                    );
                    // One try: a client that misses it joins again at its next renewal and
                    // finds the result (or takes the run over).
                    if let Err(error) = forwarded.await {
                        tracing::debug!(%error, "could not forward a shared key's completion; its waiters find it at their next renewal");
                    }
                }
            }
        };
        if unless_stopped(&stop, work).await.is_none() {
            return;
        }
    }
}

/// Waits for `future` unless the stop signal fires first (then `None`).
pub(crate) async fn unless_stopped<F: std::future::Future>(
    stop: &flume::Receiver<()>,
    future: F,
) -> Option<F::Output> {
    let future = std::pin::pin!(future);
    let stopped = stop.recv_async();
    match select(future, stopped).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}

/// How many times a call the server refuses (a script error, a wrong type) is tried before
/// the client gives up: an enqueue's tasks fail, a reply stream it cannot read fails the
/// pending tasks.
const REFUSED_TRIES: u32 = 3;
/// How many times the removal of cancelled tasks' entries is tried before the cancel is
/// given up (the tasks then run and report as they would have without it).
const CANCEL_TRIES: u32 = 5;

/// How long a closing client still waits for the reply to an enqueue already sent.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Writes queued entries to the stream in batches; retries a failed batch with back-off.
///
/// Gives up on a batch as [`Retry`] says: once the server refused it [`REFUSED_TRIES`] times
/// (or refused a permission), its tasks fail with the reason ([`Inner::refuse`]); once the
/// broker was unreachable for the broker timeout, they fail with
/// [`TaskError::BrokerUnavailable`](crate::TaskError::BrokerUnavailable) (as every pending
/// task does then, [`Inner::failed`]).
async fn sender_loop(inner: Arc<Inner>, executor: Arc<dyn Executor>, _done: flume::Sender<()>) {
    let stop = inner.stop_signal.clone();
    loop {
        let Some(Ok(first)) = unless_stopped(&stop, inner.outbox.1.recv_async()).await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match inner.outbox.1.try_recv() {
                Ok(entry) => batch.push(entry),
                Err(_) => break,
            }
        }
        // A task cancelled (or withdrawn) before it was sent is not sent: report that it never
        // ran.
        let not_sent: Vec<ReadyTask> = {
            let mut in_flight = inner.in_flight.lock();
            // Given up (the broker stayed away): nobody waits for it any more.
            batch.retain(|entry| in_flight.by_rid.contains_key(&entry.rid));
            let cancelled: Vec<String> = batch
                .iter()
                .filter(|entry| in_flight.by_rid.get(&entry.rid).is_some_and(Flight::taken_back))
                .map(|entry| entry.rid.clone())
                .collect();
            batch.retain(|entry| !cancelled.contains(&entry.rid));
            cancelled.iter().filter_map(|rid| in_flight.remove(rid)).map(|f| f.task).collect()
        };
        if let Some(started) = inner.started() {
            for task in &not_sent {
                started.sink.complete(task, TaskOutcome::NotRun);
            }
        }
        // Outputs kept by this client that dependents in this batch (or sent before it, or
        // cancelled since) read from Redis: written first, whether or not the batch is sent,
        // since later dependents count on them being there.
        let mut values: Vec<(String, Vec<u8>)> = inner.kept_values.1.try_iter().collect();
        // Several dependents of one output in a batch: written once (the latest copy).
        if values.len() > 1 {
            let mut seen = HashSet::with_capacity(values.len());
            values.reverse();
            values.retain(|(key, _)| seen.insert(key.clone()));
            values.reverse();
        }
        if batch.is_empty() && values.is_empty() {
            continue;
        }
        let ttl_ms = u64::try_from(inner.result_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, protocol::MAX_TTL_MS);
        let mut retry = Retry::new(RetryPolicy::after(REFUSED_TRIES, inner.broker_timeout));
        loop {
            // Tasks given up while this batch was retried (the broker stayed away for the
            // broker timeout) are not sent.
            batch.retain(|entry| inner.in_flight.lock().by_rid.contains_key(&entry.rid));
            if batch.is_empty() && values.is_empty() {
                break;
            }
            let outcome = {
                let mut enqueue =
                    std::pin::pin!(inner.store.enqueue_after_values(&values, ttl_ms, &batch));
                match unless_stopped(&stop, enqueue.as_mut()).await {
                    Some(outcome) => outcome,
                    // Closing: the batch may already be in the stream. Wait a bounded while for
                    // the reply, so that its entry ids are known and `close` can delete the
                    // entries.
                    None => match executor.timeout(CLOSE_GRACE, enqueue).await {
                        Ok(outcome) => outcome,
                        Err(_) => return,
                    },
                }
            };
            match outcome {
                Ok(ids) => {
                    inner.reached();
                    let mut in_flight = inner.in_flight.lock();
                    for (entry, id) in batch.iter().zip(ids) {
                        match in_flight.by_rid.get_mut(&entry.rid) {
                            Some(flight) => {
                                flight.enqueued = Enqueued::acknowledged(id);
                                if flight.taken_back() {
                                    let _ = inner.cancels.0.send(entry.rid.clone());
                                }
                            }
                            // Its completion came already (or it was given up): the entry_of
                            // key, kept so far for a resend to find, can go.
                            None => {
                                let _ = inner.releases.0.send(inner.keys.entry_of(&entry.rid));
                            }
                        }
                    }
                    drop(in_flight);
                    if stop.is_disconnected() {
                        return;
                    }
                    break;
                }
                Err(error) => {
                    inner.failed(&error);
                    let delay = match retry.next_delay(error.failure(), executor.now()) {
                        // The broker answered other calls since this batch first failed: this
                        // is a later outage, and its time counts from its own start.
                        None if error.failure() == Failure::Unreachable
                            && inner.down_for(executor.now()) < inner.broker_timeout =>
                        {
                            retry.reset();
                            Some(Retry::FIRST_DELAY)
                        }
                        delay => delay,
                    };
                    let Some(delay) = delay else {
                        if error.failure() == Failure::Unreachable {
                            // The broker timeout is up: `failed` gave the pending tasks up
                            // (or does so at its next failure).
                            inner.give_up(&error);
                        } else {
                            // Retrying a call the server refuses is pointless: fail the
                            // batch's tasks with the reason.
                            inner.refuse(&batch, &error);
                        }
                        // The outputs were not written: the client still has them (see
                        // `HeldResult`), and the next dependent's batch writes them.
                        break;
                    };
                    // Once per outage at warn (`failed`); each retry at debug.
                    tracing::debug!(%error, retry_in = ?delay, tasks = batch.len(), "could not enqueue tasks; retrying");
                    if unless_stopped(&stop, executor.sleep(delay)).await.is_none() {
                        return;
                    }
                }
            }
        }
    }
}

/// Reads completions from this client's reply stream and reports them, deleting those it
/// delivered in the round trip of its next read ([`Store::read_replies`]).
///
/// Gives up as [`Retry`] says (the broker unreachable for the broker timeout, or refusing
/// the read [`REFUSED_TRIES`] times or a permission): no pending task can finish without
/// its completion, so every one fails with
/// [`TaskError::BrokerUnavailable`](crate::TaskError::BrokerUnavailable) ([`Inner::give_up`]).
/// From then on the loop only probes, every [`Retry::MAX_DELAY`], so that the client
/// notices when the broker answers again and takes tasks again.
async fn reply_loop(inner: Arc<Inner>, executor: Arc<dyn Executor>, _done: flume::Sender<()>) {
    let stop = inner.stop_signal.clone();
    let mut after = "0-0".to_owned();
    let mut retry = Retry::new(RetryPolicy::after(REFUSED_TRIES, inner.broker_timeout));
    let mut clock = RunClock::default();
    // The completions read and delivered, and the entry_of keys of the deliveries they
    // reported, deleted by the next read (in its round trip, not the janitor's: a round trip
    // fewer per batch of completions); kept until a read succeeds.
    let mut consumed: Vec<String> = Vec::new();
    let mut released: Vec<String> = Vec::new();
    loop {
        let read =
            inner.store.read_replies(&inner.reply, &consumed, &released, &after, BATCH, BLOCK);
        let entries: Vec<StreamEntry> = match unless_stopped(&stop, read).await {
            None => {
                // Stopping: the janitor deletes them if it still runs (they expire anyway).
                for key in released {
                    let _ = inner.releases.0.send(key);
                }
                return;
            }
            Some(Ok(entries)) => {
                retry.reset();
                inner.reached();
                consumed.clear();
                released.clear();
                if entries.is_empty() {
                    // Nothing new: next time read from the start. Read completions are
                    // deleted, so this finds only ones left behind — a deletion that failed,
                    // or a completion written after a restarted server gave out ids this
                    // loop had read past.
                    after = "0-0".to_owned();
                }
                entries
            }
            Some(Err(error)) => {
                inner.failed(&error);
                let mut next = retry.next_delay(error.failure(), executor.now());
                if next.is_none()
                    && error.failure() == Failure::Unreachable
                    && inner.down_for(executor.now()) < inner.broker_timeout
                {
                    // The broker answered other calls since this loop first failed: a later
                    // outage, whose time counts from its own start.
                    retry.reset();
                    next = Some(Retry::FIRST_DELAY);
                }
                let delay = match next {
                    Some(delay) => {
                        // Once per outage at warn (`failed`); each retry at debug.
                        tracing::debug!(%error, retry_in = ?delay, "could not read completions; retrying");
                        delay
                    }
                    None => {
                        inner.give_up(&error);
                        Retry::MAX_DELAY
                    }
                };
                if unless_stopped(&stop, executor.sleep(delay)).await.is_none() {
                    return;
                }
                continue;
            }
        };
        clock.batch();
        for entry in entries {
            after.clone_from(&entry.id);
            match Reply::decode(&entry.fields) {
                Ok(reply) => inner.deliver(reply, &mut clock, &mut released),
                Err(problem) => {
                    tracing::warn!(entry = %entry.id, problem, "ignoring a malformed completion");
                }
            }
            consumed.push(entry.id);
        }
    }
}

/// Maps the run times workers report (their wall clocks) onto the client's timeline, and
/// holds the names of the workers lately heard from, so that a run's record does not copy
/// its worker's name.
///
/// A reported time becomes "now, less how long ago it was on the client's wall clock",
/// with both clocks read once per batch of completions. A worker whose clock runs ahead of
/// the client's has its times moved back to when the batch arrived at the latest, and the
/// client moves a start to when it queued the task at the earliest; within those bounds a
/// skew between the worker's clock and the client's shifts the run by as much.
#[derive(Default)]
struct RunClock {
    /// The client's clocks, read at the first run of this batch: monotonic, and the wall
    /// clock in microseconds since the epoch.
    now: Option<(Instant, u64)>,
    names: Vec<Arc<str>>,
}

impl RunClock {
    /// How many worker names it keeps (the most recently heard from).
    const NAMES: usize = 64;

    /// A new batch of completions: the clocks are read again when needed.
    fn batch(&mut self) {
        self.now = None;
    }

    fn task_run(&mut self, executor: &dyn Executor, run: &protocol::ReportedRun) -> TaskRun {
        let (now, wall_us) = *self
            .now
            .get_or_insert_with(|| (executor.now(), protocol::micros(executor.wall_clock())));
        let at = |micros: u64| {
            now.checked_sub(Duration::from_micros(wall_us.saturating_sub(micros))).unwrap_or(now)
        };
        let worker = match self.names.iter().position(|name| **name == *run.worker) {
            Some(index) => Arc::clone(&self.names[index]),
            None => {
                if self.names.len() == Self::NAMES {
                    self.names.remove(0);
                }
                let name: Arc<str> = Arc::from(run.worker.as_str());
                self.names.push(Arc::clone(&name));
                name
            }
        };
        TaskRun::new(Some(worker), at(run.times.started_us), at(run.times.finished_us))
    }
}

/// Removes the entries of cancelled (and withdrawn) tasks that no worker has begun, in
/// batches; reports the removed ones as never run. A cancel that fails is given up after [`CANCEL_TRIES`] tries
/// (a permission at once; [`Retry`]): the task then runs and reports as it would have
/// without it.
async fn cancel_loop(inner: Arc<Inner>, executor: Arc<dyn Executor>, _done: flume::Sender<()>) {
    let stop = inner.stop_signal.clone();
    loop {
        let Some(Ok(first)) = unless_stopped(&stop, inner.cancels.1.recv_async()).await else {
            return;
        };
        let mut rids = vec![first];
        while rids.len() < BATCH {
            match inner.cancels.1.try_recv() {
                Ok(rid) => rids.push(rid),
                Err(_) => break,
            }
        }
        let (deliveries, cancelled): (Vec<Dispatched>, Vec<bool>) = {
            let in_flight = inner.in_flight.lock();
            rids.iter()
                .filter_map(|rid| {
                    let cancelled = in_flight.by_rid.get(rid)?.cancelled;
                    Some((in_flight.dispatched(rid)?, cancelled))
                })
                .unzip()
        };
        let mut retry = Retry::new(RetryPolicy::after_tries(CANCEL_TRIES));
        let mut outcomes = None;
        loop {
            match unless_stopped(&stop, inner.store.cancel(&deliveries)).await {
                None => return,
                Some(Ok(found)) => {
                    outcomes = Some(found);
                    break;
                }
                Some(Err(error)) => {
                    let Some(delay) = retry.next_delay(error.failure(), executor.now()) else {
                        break;
                    };
                    tracing::debug!(%error, retry_in = ?delay, "could not remove cancelled tasks' entries; retrying");
                    if unless_stopped(&stop, executor.sleep(delay)).await.is_none() {
                        return;
                    }
                }
            }
        }
        let Some(outcomes) = outcomes else {
            tracing::debug!(
                tasks = deliveries.len(),
                "gave up removing cancelled tasks' entries; they run and report"
            );
            continue;
        };
        // Those a worker runs hear of the cancel on the control stream: their bodies are
        // signalled and their sub-tasks cancelled. One message per batch, only when some ran.
        // A withdrawn task that a worker began runs on (a release does not stop a body).
        let running: Vec<String> = deliveries
            .iter()
            .zip(&outcomes)
            .zip(&cancelled)
            .filter(|((_, outcome), cancelled)| **outcome == Cancelled::Started && **cancelled)
            .map(|((delivery, _), _)| delivery.rid.clone())
            .collect();
        if !running.is_empty() {
            let message = protocol::ControlMessage::Cancel { rids: running };
            let bytes = serde_json::to_vec(&message).unwrap_or_default();
            // One try: a worker that does not hear of it runs the task to its end, and the
            // client drops the outcome, as before.
            if let Some(Err(error)) = unless_stopped(&stop, inner.store.send_control(&bytes)).await
            {
                tracing::debug!(%error, "could not tell the workers of cancelled running tasks; they run to their end");
            }
        }
        let removed: Vec<ReadyTask> = {
            let mut in_flight = inner.in_flight.lock();
            deliveries
                .iter()
                .zip(outcomes)
                .filter(|(_, outcome)| *outcome == Cancelled::Removed)
                .filter_map(|(delivery, _)| in_flight.remove(&delivery.rid))
                .map(|flight| flight.task)
                .collect()
        };
        if let Some(started) = inner.started() {
            for task in &removed {
                tracing::debug!(key = %task.key(), "removed a cancelled or released task's entry before any worker began it");
                started.sink.complete(task, TaskOutcome::NotRun);
            }
        }
    }
}

/// Every `reconcile_every`, checks that each enqueued, unfinished task's entry still
/// exists (in the stream, pending with a worker, or reported); a task whose entry vanished
/// is reported lost, which enqueues it again as its next attempt (see
/// [`RedisTransportBuilder::reconcile_every`]).
async fn reconcile_loop(inner: Arc<Inner>, executor: Arc<dyn Executor>, _done: flume::Sender<()>) {
    let stop = inner.stop_signal.clone();
    loop {
        if unless_stopped(&stop, executor.sleep(inner.reconcile_every)).await.is_none() {
            return;
        }
        let mut all: Vec<Dispatched> = {
            let in_flight = inner.in_flight.lock();
            in_flight.by_rid.keys().filter_map(|rid| in_flight.dispatched(rid)).collect()
        };
        // In a fixed order (not the map's), so that a simulation replays the same way.
        all.sort_unstable_by(|a, b| a.rid.cmp(&b.rid));
        for deliveries in all.chunks(BATCH) {
            let located = match unless_stopped(&stop, inner.store.locate(deliveries)).await {
                None => return,
                Some(Ok(located)) => located,
                Some(Err(error)) => {
                    tracing::debug!(%error, "could not check on enqueued tasks; trying again next pass");
                    break;
                }
            };
            let lost: Vec<(ReadyTask, bool)> = {
                let mut in_flight = inner.in_flight.lock();
                let mut lost = Vec::new();
                for (delivery, found) in deliveries.iter().zip(located) {
                    let Some(flight) = in_flight.by_rid.get_mut(&delivery.rid) else { continue };
                    let reported = match found {
                        Located::Queued => {
                            flight.done_passes = 0;
                            continue;
                        }
                        Located::Done => {
                            flight.done_passes += 1;
                            if flight.done_passes < DONE_PASSES {
                                continue;
                            }
                            true
                        }
                        Located::Missing => false,
                    };
                    if let Some(flight) = in_flight.remove(&delivery.rid) {
                        lost.push((flight.task, reported));
                    }
                }
                lost
            };
            let Some(started) = inner.started() else { return };
            // One line per pass, not one per task (a restart without persistence loses
            // thousands at once); each task at debug.
            let reported = lost.iter().filter(|(_, reported)| *reported).count();
            if reported > 0 {
                tracing::warn!(
                    tasks = reported,
                    "workers reported tasks whose completions never arrived (was a reply stream deleted?); enqueueing them again"
                );
            }
            if lost.len() > reported {
                tracing::warn!(
                    tasks = lost.len() - reported,
                    "task entries vanished from the Redis stream before they ran (trimmed, deleted, or lost in a server restart); enqueueing them again"
                );
            }
            for (task, reported) in lost {
                let rid = format!("{}:{}:{}", inner.client_id, task.id().0, task.attempt());
                let _ = inner.releases.0.send(inner.keys.entry_of(&rid));
                tracing::debug!(key = %task.key(), attempt = task.attempt(), reported, "enqueueing a lost task again");
                started.sink.lost(&task);
            }
        }
    }
}

/// Renews the results this client holds that are (or may be) in Redis, every third of
/// [`result_ttl`](RedisTransportBuilder::result_ttl), so that a result lives as long as the
/// client holds it: a dependent submitted hours after its input finished still reads it. The
/// expiry is for the results of clients that die. Shared keys are left to the share loop.
async fn renew_loop(inner: Arc<Inner>, executor: Arc<dyn Executor>, _done: flume::Sender<()>) {
    let stop = inner.stop_signal.clone();
    let every = (inner.result_ttl / 3).max(MIN_RENEW_EVERY);
    let ttl_ms = u64::try_from(inner.result_ttl.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, protocol::MAX_TTL_MS);
    loop {
        if unless_stopped(&stop, executor.sleep(every)).await.is_none() {
            return;
        }
        let mut held: Vec<(TaskKey, String)> = inner
            .results
            .lock()
            .iter()
            .filter(|(_, result)| result.in_redis())
            .map(|(task, result)| (task.clone(), result.key.clone()))
            .collect();
        if inner.any_shared.load(Ordering::Acquire) {
            let shares = inner.shares.lock();
            held.retain(|(task, _)| !shares.held.contains_key(task));
        }
        // In a fixed order (not the map's), so that a simulation replays the same way.
        let mut keys: Vec<String> = held.into_iter().map(|(_, key)| key).collect();
        keys.sort_unstable();
        for chunk in keys.chunks(BATCH) {
            match unless_stopped(&stop, inner.store.renew_values(chunk, ttl_ms)).await {
                None => return,
                Some(Ok(())) => {}
                Some(Err(error)) => {
                    tracing::debug!(%error, "could not renew held results; trying again next pass");
                    break;
                }
            }
        }
    }
}

/// The longest time between two checks of which task entry format the live workers of a
/// client's queue read: they run every
/// [`reconcile_every`](RedisTransportBuilder::reconcile_every) (default 5 s), or every 10 s
/// when that is longer.
const FORMAT_CHECK_EVERY: Duration = Duration::from_secs(10);

/// The first wait between checks while no worker of its queue is live (`reconcile_every`
/// when shorter), doubled after each check that finds none, up to [`FORMAT_CHECK_EVERY`]: a
/// client started just before its workers writes the packed format soon after the first of
/// them announces itself (in the simulation, where clients connect as their workers boot, 1 s
/// left a third of the entries in format 1, 100 ms a sixth: those written before the first
/// check or while no worker was booted), and a client whose workers stay away (an outage of
/// the workers, or a client-only process) reads no more than every 10 s.
const FORMAT_CHECK_WITHOUT_WORKERS: Duration = Duration::from_millis(100);

/// Whether a client may write task entries in format 2 (packed) to a queue whose live
/// workers are `workers`: only when at least one is live and every one of them announces
/// [`WorkerInfo::entry_format`] 2 or more. Otherwise the names of the live workers that read
/// format 1 only (empty when no worker is live): the client writes format 1, which every
/// worker reads, so that a deploy that upgrades clients before workers fails no task.
fn packing_allowed(workers: &[WorkerInfo]) -> Result<(), Vec<String>> {
    let older: Vec<String> = workers
        .iter()
        .filter(|worker| worker.entry_format < protocol::ENTRY_FORMAT)
        .map(|worker| worker.name.clone())
        .collect();
    if workers.is_empty() || !older.is_empty() { Err(older) } else { Ok(()) }
}

impl Inner {
    /// The announcements of workers of this client's queue among `announcements` (those that
    /// do not decode are left out).
    fn queue_workers(&self, announcements: &[Vec<u8>]) -> Vec<WorkerInfo> {
        announcements
            .iter()
            .filter_map(|raw| serde_json::from_slice::<WorkerInfo>(raw).ok())
            .filter(|worker| worker.queue == self.keys.queue())
            .collect()
    }

    /// Reads the live workers of the queue (one `live_workers` read) and sets the task entry
    /// format from them ([`Inner::set_entry_format`]). A read that fails keeps the format
    /// until the next check. Returns whether a worker is live (`true` when unknown).
    async fn check_entry_format(&self, first: bool) -> bool {
        let workers = match self.store.live_workers().await {
            Ok(announcements) => self.queue_workers(&announcements),
            Err(error) => {
                tracing::debug!(%error, "could not read which entry format the workers read; keeping this one until the next check");
                return true;
            }
        };
        self.set_entry_format(&workers, first);
        !workers.is_empty()
    }

    /// Sets the task entry format this client writes from `workers`, the live workers of its
    /// queue ([`packing_allowed`]), and logs when it changes (`first`: the check at connect,
    /// which also names any older workers that hold format 2 back). Any read of the live
    /// workers sets it ([`RedisTransport::workers`] too).
    fn set_entry_format(&self, workers: &[WorkerInfo], first: bool) {
        let verdict = packing_allowed(workers);
        let packed = verdict.is_ok();
        let changed = self.packed_entries.swap(packed, Ordering::Relaxed) != packed;
        let queue = self.keys.queue();
        match verdict {
            Ok(()) if changed && !first => tracing::info!(
                queue,
                "every live worker of the queue reads task entry format 2: writing format 2"
            ),
            Err(older) if older.is_empty() && changed => tracing::info!(
                queue,
                "no worker of the queue is live: writing task entry format 1, which every worker reads, until one announces format 2"
            ),
            Err(older) if !older.is_empty() && (changed || first) => tracing::info!(
                queue,
                workers = ?older,
                "live workers of the queue read task entry format 1 only (older taskweave): writing format 1 until they are gone; upgrade them"
            ),
            _ => {
                tracing::debug!(queue, packed, workers = workers.len(), "task entry format checked")
            }
        }
    }
}

/// Checks on its schedule which task entry format the live workers of the queue read (see
/// [`Inner::check_entry_format`]): every [`FORMAT_CHECK_EVERY`], or while none is live from
/// [`FORMAT_CHECK_WITHOUT_WORKERS`] doubling up to it; `reconcile_every` when shorter.
async fn format_loop(inner: Arc<Inner>, executor: Arc<dyn Executor>, _done: flume::Sender<()>) {
    let stop = inner.stop_signal.clone();
    // Unknown yet (the check at connect ran): checked again soon.
    let mut without_workers = FORMAT_CHECK_WITHOUT_WORKERS;
    let mut any_worker = false;
    loop {
        let every = if any_worker {
            without_workers = FORMAT_CHECK_WITHOUT_WORKERS;
            FORMAT_CHECK_EVERY
        } else {
            let every = without_workers;
            without_workers = (without_workers * 2).min(FORMAT_CHECK_EVERY);
            every
        };
        if unless_stopped(&stop, executor.sleep(every.min(inner.reconcile_every))).await.is_none() {
            return;
        }
        match unless_stopped(&stop, inner.check_entry_format(false)).await {
            None => return,
            Some(live) => any_worker = live,
        }
    }
}

/// Deletes released results in batches.
async fn janitor_loop(inner: Arc<Inner>, _done: flume::Sender<()>) {
    let stop = inner.stop_signal.clone();
    loop {
        let Some(Ok(first)) = unless_stopped(&stop, inner.releases.1.recv_async()).await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match inner.releases.1.try_recv() {
                Ok(key) => batch.push(key),
                Err(_) => break,
            }
        }
        if let Err(error) = inner.store.delete_keys(&batch).await {
            tracing::debug!(%error, "could not delete released results (they expire)");
        }
    }
}

impl RedisTransport {
    /// The connection settings a client on this transport keeps its coordination primitives
    /// with (on the simulation's model of Redis, reached through
    /// [`coordination_connector`](RedisTransport::coordination_connector)).
    pub(crate) fn coordination_config(&self) -> Option<RedisConfig> {
        self.inner.coordination.get().cloned()
    }

    /// What the coordination primitives reach their state through instead of a connection
    /// of their own, if anything (the simulation's model of Redis).
    pub(crate) fn coordination_connector(&self) -> Option<Arc<dyn coordination_seam::Connector>> {
        self.inner.coordination_connector.get().cloned()
    }

    /// Keeps this transport's clients' coordination primitives under `config`'s namespace,
    /// reached through `connector` (the simulation's model of Redis).
    #[cfg(feature = "sim")]
    pub(crate) fn keep_coordination_on(
        &self,
        config: RedisConfig,
        connector: Arc<dyn coordination_seam::Connector>,
    ) {
        let _ = self.inner.coordination.set(config);
        let _ = self.inner.coordination_connector.set(connector);
    }

    /// The server, queue and timeouts this builder was given.
    #[cfg(feature = "sim")]
    pub(crate) fn config_of(builder: &RedisTransportBuilder) -> RedisConfig {
        builder.config.clone()
    }
}

impl Transport for RedisTransport {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn capacity(&self) -> usize {
        self.inner.max_in_flight
    }

    fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error> {
        let (done, stopped) = flume::bounded::<()>(1);
        let inner = &self.inner;
        if inner.started.set(Started { executor: Arc::clone(&executor), sink, stopped }).is_err() {
            return Err(Error::InvalidConfig {
                message: "this RedisTransport already serves a client; connect another one \
                          for a second client"
                    .into(),
            });
        }
        executor.spawn_task(sender_loop(Arc::clone(inner), Arc::clone(&executor), done.clone()))?;
        executor.spawn_task(reply_loop(Arc::clone(inner), Arc::clone(&executor), done.clone()))?;
        executor.spawn_task(cancel_loop(Arc::clone(inner), Arc::clone(&executor), done.clone()))?;
        executor.spawn_task(reconcile_loop(
            Arc::clone(inner),
            Arc::clone(&executor),
            done.clone(),
        ))?;
        executor.spawn_task(share_loop(Arc::clone(inner), Arc::clone(&executor), done.clone()))?;
        executor.spawn_task(renew_loop(Arc::clone(inner), Arc::clone(&executor), done.clone()))?;
        executor.spawn_task(format_loop(Arc::clone(inner), Arc::clone(&executor), done.clone()))?;
        executor.spawn_task(janitor_loop(Arc::clone(inner), done))?;
        Ok(())
    }

    fn dispatch(&self, task: ReadyTask) {
        let inner = &self.inner;
        if let Some(last_error) = inner.given_up() {
            if let Some(started) = inner.started() {
                started.sink.broker_unavailable(
                    &task,
                    &inner.broker,
                    &last_error,
                    inner.broker_timeout,
                );
            }
            return;
        }
        match inner.entry_for(&task) {
            Ok(entry) if task.has_shared_key() && inner.store.shares_keys() => {
                inner.dispatch_shared(task, entry);
            }
            Ok(entry) => {
                inner
                    .results
                    .lock()
                    .insert(task.key().clone(), HeldResult::new(entry.result.clone()));
                inner.in_flight.lock().insert(entry.rid.clone(), task);
                // The receiver lives in `inner`: sending cannot fail while it exists.
                let _ = inner.outbox.0.send(entry);
            }
            Err(reason) => inner.fail(&task, reason),
        }
    }

    fn abort(&self, id: TaskId) {
        let inner = &self.inner;
        let mut in_flight = inner.in_flight.lock();
        let Some(rid) = in_flight.rid_of.get(&id).cloned() else { return };
        let Some(flight) = in_flight.by_rid.get_mut(&rid) else { return };
        flight.cancelled = true;
        // A shared key: the share loop gives up this client's hold, and cancels the run only
        // if no other client holds the key.
        if let Some(share) = flight.shared.clone() {
            let _ = inner.share_ops.0.send(ShareOp::Leave { share, rid });
            return;
        }
        // Not yet enqueued: the sender drops it, or hands it to the cancel loop once its
        // enqueue is acknowledged.
        if flight.enqueued != Enqueued::Sending {
            let _ = inner.cancels.0.send(rid);
        }
    }

    fn withdraw(&self, id: TaskId) {
        let inner = &self.inner;
        let mut in_flight = inner.in_flight.lock();
        let Some(rid) = in_flight.rid_of.get(&id).cloned() else { return };
        let Some(flight) = in_flight.by_rid.get_mut(&rid) else { return };
        if flight.taken_back() {
            return;
        }
        flight.withdrawn = true;
        // As `abort`: a shared key gives up only this client's hold (another client may be
        // waiting for this run); otherwise, not yet enqueued, the sender drops it or hands it
        // on once acknowledged.
        if let Some(share) = flight.shared.clone() {
            let _ = inner.share_ops.0.send(ShareOp::Leave { share, rid });
            return;
        }
        if flight.enqueued != Enqueued::Sending {
            let _ = inner.cancels.0.send(rid);
        }
    }

    fn release(&self, key: &TaskKey) {
        let inner = &self.inner;
        let Some(result) = inner.results.lock().remove(key) else { return };
        if inner.any_shared.load(Ordering::Acquire) {
            // A shared key's result is deleted only when no client holds it any more.
            if let Some(share) = inner.shares.lock().held.remove(key) {
                let _ = inner.share_ops.0.send(ShareOp::Leave { share, rid: String::new() });
                return;
            }
        }
        // An output only this client had and never wrote is not in Redis: nothing to delete.
        if result.in_redis() {
            let _ = inner.releases.0.send(result.key);
        }
    }

    fn workers(&self) -> BoxFuture<Result<Vec<WorkerInfo>, Error>> {
        let transport = self.clone();
        Box::pin(async move { RedisTransport::workers(&transport).await })
    }

    fn close(&self) -> BoxFuture<()> {
        let inner = Arc::clone(&self.inner);
        drop(inner.stop.lock().take());
        Box::pin(async move {
            let Some(started) = inner.started() else { return };
            while started.stopped.recv_async().await.is_ok() {}
            // Best effort, bounded: Redis may be gone, and what is left expires anyway.
            let held: Vec<ShareKeys> = {
                let mut shares = inner.shares.lock();
                shares.runs.clear();
                shares.held.drain().map(|(_, share)| share).collect()
            };
            let mut leftovers: Vec<String> = inner
                .results
                .lock()
                .drain()
                .filter(|(_, result)| result.in_redis())
                .map(|(_, result)| result.key)
                .filter(|key| !held.iter().any(|share| share.result == *key))
                .collect();
            leftovers.extend(inner.releases.1.try_iter());
            leftovers.push(inner.reply.clone());
            // Entries of unfinished tasks are deleted: workers that have not taken them never
            // will (nobody waits for their results any more).
            let mut flights: Vec<(String, Flight)> = {
                let mut in_flight = inner.in_flight.lock();
                in_flight.rid_of.clear();
                in_flight.by_rid.drain().collect()
            };
            flights.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let mut unfinished = Vec::new();
            for (rid, flight) in flights {
                leftovers.push(inner.keys.entry_of(&rid));
                // A shared key's run is removed below only if no other client holds it.
                if flight.shared.is_some() {
                    continue;
                }
                if let Enqueued::Written(id) = flight.enqueued {
                    unfinished.push(Dispatched { rid, entry_id: Some(id) });
                }
            }
            let cleanup = async {
                // Give up this client's holds on shared keys; the last holder removes the
                // unstarted run, if any.
                for share in &held {
                    if let Left::Last(Some(run)) =
                        inner.store.share_leave(share, &inner.client_id, "").await?
                    {
                        unfinished.push(Dispatched { rid: run, entry_id: None });
                    }
                }
                // Through `cancel.lua`, which finds each entry by its entry_of key: an entry a
                // worker handed back (a rebalance, a restart) has a new id by now.
                for batch in unfinished.chunks(BATCH) {
                    inner.store.cancel(batch).await?;
                }
                inner.store.delete_keys(&leftovers).await
            };
            if let Ok(Err(error)) = started.executor.timeout(Duration::from_secs(2), cleanup).await
            {
                tracing::debug!(%error, "could not delete this client's keys on close (they expire)");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtimes::embedded::EmbeddedExecutor;

    fn run_at(worker: &str, started_us: u64, finished_us: u64) -> protocol::ReportedRun {
        protocol::ReportedRun {
            worker: worker.to_owned(),
            times: protocol::RunTimes { started_us, finished_us },
        }
    }

    #[test]
    fn entries_are_packed_only_while_every_live_worker_reads_the_packed_format() {
        let worker = |name: &str, entry_format: u32| {
            let mut info = WorkerInfo::new(name.into(), "q".into(), 1, Vec::new());
            info.entry_format = entry_format;
            info
        };
        assert_eq!(packing_allowed(&[]), Err(Vec::new()), "no live worker: format 1");
        assert_eq!(packing_allowed(&[worker("new", 2)]), Ok(()));
        assert_eq!(packing_allowed(&[worker("new", 2), worker("newer", 3)]), Ok(()));
        assert_eq!(
            packing_allowed(&[worker("a", 2), worker("old", 0), worker("b", 2), worker("c", 1)]),
            Err(vec!["old".to_owned(), "c".to_owned()])
        );
        // An announcement of a worker older than the field says nothing: format 1 only.
        let old = r#"{"name":"old","queue":"q","concurrency":1,"tasks":[],"host":"h","pid":1}"#;
        let old: WorkerInfo = serde_json::from_str(old).unwrap();
        assert_eq!(old.entry_format, 0);
        assert_eq!(packing_allowed(&[old]), Err(vec!["old".to_owned()]));
    }

    #[test]
    fn reported_times_land_on_the_clients_timeline_and_never_after_the_arrival() {
        let executor = EmbeddedExecutor::global();
        let mut clock = RunClock::default();
        clock.batch();
        let before = executor.now();
        let wall = protocol::micros(executor.wall_clock());
        // A run that ended half a second ago on a clock in step with the client's.
        let run = clock.task_run(&executor, &run_at("w1", wall - 700_000, wall - 500_000));
        let arrived = clock.now.expect("read for the first run of the batch").0;
        assert!(before <= arrived);
        let took = run.finished.checked_duration_since(run.started).unwrap();
        assert_eq!(took, Duration::from_millis(200));
        let ago = arrived.checked_duration_since(run.finished).unwrap();
        assert!(ago >= Duration::from_millis(499) && ago <= Duration::from_millis(600), "{ago:?}");
        // A worker whose clock runs an hour ahead: its times are moved back to the arrival.
        let ahead = wall + 3_600_000_000;
        let run = clock.task_run(&executor, &run_at("w2", ahead, ahead + 10));
        assert_eq!((run.started, run.finished), (arrived, arrived));
        // Names are shared, not copied per run.
        let first = clock.task_run(&executor, &run_at("w1", wall, wall)).worker.unwrap();
        let again = clock.task_run(&executor, &run_at("w1", wall, wall)).worker.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
    }
}
