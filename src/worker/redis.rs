//! The Redis worker: a process (or a part of one) that runs registered tasks read from a
//! Redis stream. See [`Worker`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use futures::StreamExt;
use futures::future::{Either, select};
use parking_lot::Mutex;

use crate::Error;
use crate::error::bound_error_text;
use crate::executor::{Executor, ExecutorExt};
use crate::job::panic_message;
use crate::task::{Task, compose_outputs};
use crate::transport::redis::protocol::ControlMessage;
use crate::transport::redis::protocol::RunTimes;
use crate::transport::redis::retry::{Retry, RetryPolicy};
use crate::transport::redis::store::{
    ClaimedEntry, Completion, DeadLetter, Failure, Fields, Ownership, Store, StoreError,
    StreamEntry,
};
use crate::transport::redis::task_services::{Lend, RunSignal};
use crate::transport::redis::{
    Keys, Notify, RedisConfig, RedisStore, Rejection, Role, RunAnswer, RunRequest, Status,
    TaskEntry, WorkerInfo, unless_stopped,
};

/// How long a blocking read waits on the server before the worker looks around.
const BLOCK: Duration = Duration::from_secs(1);
/// The most entries one batch of completions holds.
const BATCH: usize = 256;
/// How long a task that no live worker of the queue registers waits for one by default
/// (see [`WorkerBuilder::unrunnable_after`]).
const DEFAULT_UNRUNNABLE_AFTER: Duration = Duration::from_secs(300);
/// How many times a call the server refused (a script error, a wrong type) is tried before
/// the entries it concerns are given up (dead-lettered).
const REFUSED_TRIES: u32 = 3;
/// The most entries a worker takes ahead of the ones it runs by default (see
/// [`WorkerBuilder::prefetch`]).
const DEFAULT_MAX_PREFETCH: usize = 64;
/// How much work, in measured task time per runner, a worker with the default (adaptive)
/// prefetch takes ahead: enough entries to keep its runners busy while the next read is on
/// its way, few enough that a long task is never held back while another worker is idle.
const TAKE_AHEAD_TIME: Duration = Duration::from_millis(20);
/// How often a worker with the default (adaptive) prefetch checks that it does not hold more
/// entries ahead than its tasks' measured length allows, and gives the surplus back.
const REBALANCE_EVERY: Duration = Duration::from_millis(100);

/// How long a runner about to write for the others waits at most for the runners still
/// running a task to ask to write too ([`Shared::gather_writes`]), and the longest measured
/// mean run time at which it waits at all: for longer tasks the others would not come in
/// time, and a script call per task is a small share of their cost anyway.
const GATHER_LIMIT: Duration = Duration::from_micros(200);

/// How many tries in a row a retry loop makes at most once the worker is shutting down
/// (it does not wait out the reclaim time: the entries are let go of, and reclaimed).
const SHUTDOWN_TRIES: u32 = 10;

/// What running a registered task on some input gave.
enum HandlerOutcome {
    Output(Vec<u8>),
    Failed(String),
    Panicked(String),
    /// The input did not decode into the task's input type.
    BadInput(String),
}

type Handler = Arc<dyn Fn(&[u8]) -> HandlerOutcome + Send + Sync>;

fn handler_for<T: Task>() -> Handler {
    Arc::new(|input: &[u8]| {
        let input = match serde_json::from_slice::<T::Input>(input) {
            Ok(input) => input,
            Err(error) => {
                return HandlerOutcome::BadInput(format!(
                    "the input does not decode as the input of task {:?}: {error}",
                    T::NAME
                ));
            }
        };
        match catch_unwind(AssertUnwindSafe(|| T::run(input))) {
            Ok(Ok(output)) => match serde_json::to_vec(&output) {
                Ok(bytes) => HandlerOutcome::Output(bytes),
                Err(error) => {
                    HandlerOutcome::Failed(format!("its output could not be encoded: {error}"))
                }
            },
            Ok(Err(error)) => HandlerOutcome::Failed(error.to_string()),
            Err(panic) => HandlerOutcome::Panicked(panic_message(&*panic)),
        }
    })
}
impl Worker {
    /// Starts configuring a worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// let builder = Worker::builder().redis("redis://127.0.0.1:6379").queue("images").register::<Add>();
    /// let shown = format!("{builder:?}");
    /// assert!(shown.contains("images") && shown.contains("add"), "{shown}");
    /// ```
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder {
            // No server until `redis` or `redis_config` names one (`start` checks).
            config: RedisConfig::new(""),
            concurrency: std::thread::available_parallelism().map_or(1, usize::from) * 2,
            reclaim_after: Duration::from_secs(30),
            prefetch: None,
            unrunnable_after: DEFAULT_UNRUNNABLE_AFTER,
            registry: HashMap::new(),
            executor: None,
            dead_letter_cap: crate::transport::redis::DEFAULT_DEAD_LETTER_CAP,
            serve_tasks: false,
            resources: BTreeMap::new(),
        }
    }
}

/// Configures and starts a [`Worker`].
#[must_use = "a WorkerBuilder does nothing until `start` or `run` is called"]
pub struct WorkerBuilder {
    /// The server, queue and timeouts (shared with the client's transport builder).
    config: RedisConfig,
    concurrency: usize,
    reclaim_after: Duration,
    /// `None`: adaptive (see [`WorkerBuilder::prefetch`]).
    prefetch: Option<usize>,
    unrunnable_after: Duration,
    registry: HashMap<&'static str, Handler>,
    executor: Option<Arc<dyn Executor>>,
    dead_letter_cap: u64,
    /// Whether its tasks can reach the cluster through `taskweave::worker_client()` (a worker on a
    /// real server; not on the simulation's model of Redis).
    serve_tasks: bool,
    /// The resources it declares ([`WorkerBuilder::resources`]).
    resources: BTreeMap<String, u64>,
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tasks: Vec<_> = self.registry.keys().collect();
        tasks.sort();
        f.debug_struct("WorkerBuilder")
            .field("queue", &self.config.queue_name())
            .field("concurrency", &self.concurrency)
            .field("reclaim_after", &self.reclaim_after)
            .field("tasks", &tasks)
            .finish_non_exhaustive()
    }
}

impl WorkerBuilder {
    /// The Redis server to work for: `redis://[user:password@]host:port[/db]` (or `rediss://`
    /// for TLS, feature `redis-tls`). Required (here or with
    /// [`redis_config`](WorkerBuilder::redis_config)).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// let builder = Worker::builder().redis("redis://:secret@127.0.0.1:6379/0").register::<Add>();
    /// # drop(builder);
    /// // Without a server, `start` refuses at once, connecting to nothing.
    /// let missing = futures::executor::block_on(Worker::builder().register::<Add>().start());
    /// assert!(matches!(missing, Err(taskweave::Error::InvalidConfig { .. })));
    /// ```
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.config = self.config.redis(url);
        self
    }

    /// Replaces the server, namespace, queue, timeouts and TLS settings with `config`'s (the
    /// same [`RedisConfig`] a client's transport can take).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// use taskweave::transport::redis::{RedisConfig, RedisTransport};
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// // One configuration for the workers and the clients of a queue.
    /// let config = RedisConfig::new("redis://127.0.0.1:6379").namespace("shop").queue("images");
    /// let worker = Worker::builder().redis_config(config.clone()).register::<Add>().start().await?;
    /// let transport = RedisTransport::builder_with(config).connect().await?;
    /// # drop((worker, transport));
    /// # Ok(()) }
    /// ```
    pub fn redis_config(mut self, config: RedisConfig) -> Self {
        self.config = config;
        self
    }

    /// The key namespace; must match the clients'. See [`RedisConfig::namespace`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// // Keys become `shop:{queue}:...`; the clients of this worker use `.namespace("shop")` too.
    /// let worker = Worker::builder()
    ///     .redis("redis://127.0.0.1:6379")
    ///     .namespace("shop")
    ///     .register::<Add>()
    ///     .start()
    ///     .await?;
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config = self.config.namespace(namespace);
        self
    }

    /// The queue to read; see [`RedisConfig::queue`].
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// // Workers of the queue "images" run only what clients of that queue submit.
    /// let builder = Worker::builder().redis("redis://127.0.0.1:6379").queue("images").register::<Add>();
    /// assert!(format!("{builder:?}").contains(r#"queue: "images""#));
    /// ```
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.config = self.config.queue(queue);
        self
    }

    /// How many tasks run at once (default: two per core); each gets a worker thread.
    ///
    /// Two per core because a runner waits for Redis after each task (its outcome and the
    /// start of its next task are written before that task starts): with one per core the
    /// cores idle during those waits, and short tasks ran 40% slower on the 2-core benchmark
    /// machine (`BENCHMARKS.md`). Tasks that use a core for long only share the cores. Set
    /// the number of cores for tasks that need a core each without sharing, or more for
    /// tasks that wait on I/O.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// use taskweave::Error;
    ///
    /// let builder = Worker::builder().redis("redis://127.0.0.1:6379").register::<Add>();
    /// assert!(format!("{:?}", builder.concurrency(4)).contains("concurrency: 4"));
    /// // Zero is refused by `start`, before it connects.
    /// let zero = Worker::builder().redis("redis://127.0.0.1:6379").register::<Add>().concurrency(0);
    /// let refused = futures::executor::block_on(zero.start());
    /// assert!(matches!(refused, Err(Error::InvalidConfig { .. })));
    /// ```
    pub fn concurrency(mut self, tasks: usize) -> Self {
        self.concurrency = tasks;
        self
    }

    /// How long an entry may sit unacknowledged and untouched (its worker dead or cut off)
    /// before another worker takes it over (default 30 s). Running tasks are touched every
    /// third of this, so a long task is not taken away from a live worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// use std::time::Duration;
    ///
    /// // Tasks of dead workers are taken over after 10 s instead of 30 s.
    /// let builder = Worker::builder().register::<Add>().reclaim_after(Duration::from_secs(10));
    /// assert!(format!("{builder:?}").contains("reclaim_after: 10s"));
    /// ```
    pub fn reclaim_after(mut self, time: Duration) -> Self {
        self.reclaim_after = time;
        self
    }

    /// How long one Redis command may take; see [`RedisConfig::command_timeout`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// use std::time::Duration;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// // A Redis call that takes longer than 2 s fails (and is retried).
    /// let worker = Worker::builder()
    ///     .redis("redis://127.0.0.1:6379")
    ///     .command_timeout(Duration::from_secs(2))
    ///     .register::<Add>()
    ///     .start()
    ///     .await?;
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.command_timeout(timeout);
        self
    }

    /// How long Redis may stay out of reach before the worker stops with the error; see
    /// [`RedisConfig::broker_timeout`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// use std::time::Duration;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let worker = Worker::builder()
    ///     .redis("redis://127.0.0.1:6379")
    ///     .broker_timeout(Duration::from_secs(10))
    ///     .register::<Add>()
    ///     .start()
    ///     .await?;
    /// // Redis away for 10 s: the worker stops and says why.
    /// worker.stopped().await;
    /// if let Some(error) = worker.error() {
    ///     eprintln!("worker stopped: {error}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn broker_timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.broker_timeout(timeout);
        self
    }

    /// About how many entries the queue's dead-letter stream keeps (default
    /// [`DEFAULT_DEAD_LETTER_CAP`](crate::transport::redis::DEFAULT_DEAD_LETTER_CAP), 10,000;
    /// at least 1): each dead letter this worker writes trims it (`XADD MAXLEN ~`, in whole
    /// stream nodes, so it may hold up to about 100 more), the oldest first. Inspect and
    /// requeue them with [`RedisAdmin`](crate::transport::redis::RedisAdmin).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// // Keep about the last 1,000 dead letters of the queue.
    /// let worker = Worker::builder()
    ///     .redis("redis://127.0.0.1:6379")
    ///     .dead_letter_cap(1_000)
    ///     .register::<Add>()
    ///     .start()
    ///     .await?;
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn dead_letter_cap(mut self, entries: u64) -> Self {
        self.dead_letter_cap = entries.max(1);
        self
    }

    /// How many entries the worker takes ahead of the ones it runs, always, instead of the
    /// default adaptive amount.
    ///
    /// Taking entries ahead lets a runner find its next task without a round trip to Redis
    /// and makes reads come in batches: for short tasks it is what makes a worker fast. But
    /// a long task taken ahead waits behind the running ones while another worker may be
    /// idle, and a worker that dies leaves the entries it took ahead waiting until they are
    /// reclaimed (they count no failure against their tasks: a worker's death counts only
    /// against the tasks it was running).
    ///
    /// By default the worker measures how long its tasks run and takes ahead about 20 ms of
    /// work per task slot, at most 64 entries, and nothing before it has measured a task:
    /// trivial tasks get the full 64, tasks of 10 ms or more about none, so that a queue of
    /// long tasks spreads over every worker. A running task longer than the mean counts as
    /// that long, and every 100 ms the worker gives the entries it took ahead beyond the
    /// amount back to the queue (without counting a start): a worker that ran short tasks
    /// and took long ones ahead keeps them only until its running ones outlast the short
    /// ones. Set a number here for a fixed amount (0 for never).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// // A fixed amount: take nothing ahead, so that an idle worker elsewhere gets the next one.
    /// let worker = Worker::builder()
    ///     .redis("redis://127.0.0.1:6379")
    ///     .concurrency(2)
    ///     .prefetch(0)
    ///     .register::<Add>()
    ///     .start()
    ///     .await?;
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn prefetch(mut self, entries: usize) -> Self {
        self.prefetch = Some(entries);
        self
    }

    /// How long an entry of a task this worker does not register may wait for a live worker
    /// of the queue that does (default 5 minutes).
    ///
    /// During a rolling deploy, older workers (without a new task) and newer ones share the
    /// queue: an older worker that reads an entry of the new task gives it back to the queue
    /// for a worker that has the task, and never fails it while one is alive. When no live
    /// worker of the queue has registered the task for this long after this worker first saw
    /// the entry, the entry goes to the dead-letter stream, and its future fails with an error
    /// that names the task and the workers seen.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// use std::time::Duration;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// // An entry of a task no live worker registers fails after 1 minute, not 5.
    /// let worker = Worker::builder()
    ///     .redis("redis://127.0.0.1:6379")
    ///     .unrunnable_after(Duration::from_secs(60))
    ///     .register::<Add>()
    ///     .start()
    ///     .await?;
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn unrunnable_after(mut self, time: Duration) -> Self {
        self.unrunnable_after = time;
        self
    }

    /// Trusts this CA certificate (PEM) for a `rediss://` server; see
    /// [`RedisConfig::tls_root_certificate`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let ca = std::fs::read("redis-ca.pem").expect("the CA certificate");
    /// let worker = Worker::builder()
    ///     .redis("rediss://redis.internal:6380")
    ///     .tls_root_certificate(ca)
    ///     .register::<Add>()
    ///     .start()
    ///     .await?;
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.config = self.config.tls_root_certificate(pem);
        self
    }

    /// Registers the task `T`: entries named [`T::NAME`](Task::NAME) run `T::run`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// // Entries named "add" run `Add::run`; a worker runs only the tasks it registers.
    /// let builder = Worker::builder().register::<Add>();
    /// assert!(format!("{builder:?}").contains(r#"tasks: ["add"]"#));
    /// ```
    pub fn register<T: Task>(mut self) -> Self {
        self.registry.insert(T::NAME, handler_for::<T>());
        self
    }

    /// Runs the worker's loops on `executor` instead of the ambient one.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// use taskweave::runtimes::embedded::EmbeddedExecutor;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let worker = Worker::builder()
    ///     .redis("redis://127.0.0.1:6379")
    ///     .register::<Add>()
    ///     .executor(EmbeddedExecutor::global())
    ///     .start()
    ///     .await?;
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn executor(mut self, executor: impl Executor) -> Self {
        self.executor = Some(Arc::new(executor));
        self
    }

    /// Connects and starts working; returns a handle to stop it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let worker = Worker::builder().redis("redis://127.0.0.1:6379").register::<Add>().start().await?;
    /// println!("working as {}", worker.name());
    /// // ... until the program is done with it:
    /// worker.shutdown();
    /// worker.stopped().await;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] without a Redis URL, with zero concurrency or no registered
    /// task; [`Error::Transport`] with the Redis message when the server cannot be reached
    /// or refuses the credentials, or when its access control (ACL) refuses the user a
    /// command the worker needs (the message names the missing permission).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it resolves starts nothing.
    pub async fn start(self) -> Result<Worker, Error> {
        self.config.check()?;
        if self.config.url().is_empty() {
            return Err(Error::InvalidConfig {
                message: "a worker needs a Redis server: call .redis(\"redis://host:6379\")".into(),
            });
        }
        if self.concurrency == 0 {
            return Err(Error::InvalidConfig {
                message: "concurrency(0): a worker needs at least one task slot".into(),
            });
        }
        if self.registry.is_empty() {
            return Err(Error::InvalidConfig {
                message: "a worker with no task to run: call .register::<T>() for each task".into(),
            });
        }
        self.check_resources()?;
        let keys = self.keys();
        let options = self.config.connect_options(BLOCK);
        let mut store = RedisStore::connect(self.config.url(), keys.clone(), &options).await?;
        store.set_dead_letter_cap(self.dead_letter_cap);
        store.check_access(Role::Worker).await?;
        let serving = WorkerBuilder { serve_tasks: true, ..self };
        serving.start_on(Arc::new(store), keys).await
    }

    /// Declares that this worker has `amount` of the resource `name` (Dask's
    /// `--resources "GPU=2"`): tasks that need it
    /// ([`TaskBuilder::resources`](crate::client::TaskBuilder::resources)) run here, and at
    /// once only as many as the amount allows (a task that needs 1 of 2 GPUs: two at once,
    /// whatever the [`concurrency`](WorkerBuilder::concurrency)). A task that needs a
    /// resource this worker lacks, or more of it than it has, is given back to the queue for
    /// a worker that has it, as a task it does not register is; when no live worker of the
    /// queue has it for [`unrunnable_after`](WorkerBuilder::unrunnable_after), the task fails
    /// with a message naming the resource. Call it once per resource; a name given again
    /// keeps the last amount. The worker announces its resources
    /// ([`Client::workers`](crate::Client::workers)).
    ///
    /// A task waiting here for a resource that other tasks hold keeps its runner slot
    /// meanwhile; a task that holds a resource and waits for a sub-task that needs the same
    /// resource, on a worker that has no more of it, waits for ever (as in Dask): give such
    /// sub-tasks no resource, or the worker more of it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Train;
    /// # impl Task for Train {
    /// #     const NAME: &'static str = "train";
    /// #     type Input = u32;
    /// #     type Output = f64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run(_: u32) -> Result<f64, Self::Error> { Ok(0.0) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// // Runs up to 8 tasks at once, of which at most 2 that each need a GPU.
    /// Worker::builder()
    ///     .redis("redis://127.0.0.1:6379")
    ///     .concurrency(8)
    ///     .resources("GPU", 2)
    ///     .register::<Train>()
    ///     .run()
    ///     .await
    /// # }
    /// ```
    ///
    /// On the client: `client.task().resources("GPU", 1).submit_task::<Train>(epochs)`.
    pub fn resources(mut self, name: impl Into<String>, amount: u64) -> Self {
        self.resources.insert(name.into(), amount);
        self
    }

    /// Refuses resources a task could never hold: an empty name, an amount of 0.
    fn check_resources(&self) -> Result<(), Error> {
        if self.resources.contains_key("") {
            return Err(Error::InvalidConfig {
                message: "resources(\"\", ..): a resource needs a name, such as \"GPU\"".into(),
            });
        }
        if let Some((name, _)) = self.resources.iter().find(|(_, amount)| **amount == 0) {
            return Err(Error::InvalidConfig {
                message: format!(
                    "resources({name:?}, 0): declare at least 1, or do not declare {name:?}"
                ),
            });
        }
        Ok(())
    }

    /// The keys of the queue this worker reads.
    pub(crate) fn keys(&self) -> Keys {
        self.config.keys()
    }

    /// Starts working on `store` (a Redis server, or the simulation's model of one).
    pub(crate) async fn start_on(self, store: Arc<dyn Store>, keys: Keys) -> Result<Worker, Error> {
        if self.concurrency == 0 {
            return Err(Error::InvalidConfig {
                message: "concurrency(0): a worker needs at least one task slot".into(),
            });
        }
        if self.registry.is_empty() {
            return Err(Error::InvalidConfig {
                message: "a worker with no task to run: call .register::<T>() for each task".into(),
            });
        }
        self.check_resources()?;
        let executor = self.executor.clone().unwrap_or_else(crate::runtimes::ambient_executor);
        store.ensure_group().await?;
        let mut tasks: Vec<String> = self.registry.keys().map(|name| (*name).to_owned()).collect();
        tasks.sort();
        let queue = self.config.queue_name().to_owned();
        let mut info = WorkerInfo::new(String::new(), queue.clone(), self.concurrency, tasks);
        info.resources = self.resources.clone();
        // Clients write the packed format once every live worker of the queue reads it.
        info.entry_format = crate::transport::redis::protocol::ENTRY_FORMAT;
        info.name = format!("{}-{}-w{}", info.host, info.pid, store.next_number().await?);
        let name = info.name.clone();
        let (stop, stop_signal) = flume::bounded::<()>(1);
        let stop = Arc::new(Mutex::new(Some(stop)));
        let fatal = Arc::new(Mutex::new(None));
        let services = self.serve_tasks.then(|| {
            Arc::new(crate::transport::redis::task_services::TaskServices::new(
                self.config.clone(),
                Arc::clone(&executor),
            ))
        });
        let shared = Arc::new(Shared {
            services,
            name: name.clone(),
            keys,
            store,
            registry: self.registry,
            executor: Arc::clone(&executor),
            reclaim_after: self.reclaim_after,
            broker_timeout: self.config.broker_timeout_value(),
            announcement: serde_json::to_vec(&info).unwrap_or_default(),
            stop_signal,
            stop: Arc::clone(&stop),
            fatal: Arc::clone(&fatal),
            concurrency: self.concurrency,
            prefetch: self.prefetch,
            mean_run_nanos: AtomicU64::new(0),
            epoch: executor.now(),
            running_since: (0..self.concurrency).map(|_| AtomicU64::new(0)).collect(),
            runner_numbers: AtomicU64::new(0),
            writes: Mutex::new(Writes::default()),
            write_queued: event_listener::Event::new(),
            idle_runners: AtomicUsize::new(0),
            slot_freed: flume::bounded(1),
            runnable: async_channel::unbounded(),
            reclaimed: async_channel::unbounded(),
            owned: Mutex::new(HashSet::new()),
            unrunnable_after: self.unrunnable_after,
            unrunnable: Mutex::new(Unrunnable::default()),
            pool: Mutex::new(RunnerPool::default()),
            lender: OnceLock::new(),
            resources: self.resources,
            held: Mutex::new(BTreeMap::new()),
            resources_freed: event_listener::Event::new(),
            control: Mutex::new(ControlState::default()),
            restarts: AtomicU64::new(0),
            restarting: std::sync::atomic::AtomicBool::new(false),
        });
        if let Some(services) = &shared.services {
            let lender = Arc::new(Lender(Arc::downgrade(&shared)));
            let weak: Weak<dyn Lend> = Arc::downgrade(&lender) as Weak<dyn Lend>;
            services.set_lender(weak);
            let _ = shared.lender.set(lender);
        }
        shared.store.heartbeat(&name, &shared.announcement, shared.heartbeat_ttl()).await?;
        let (stopped_sender, stopped) = flume::bounded::<()>(1);
        executor.spawn_task(supervise(Arc::clone(&shared), self.concurrency, stopped_sender))?;
        // The start-up banner: one line that says what this worker is and does (issue 19).
        tracing::info!(
            worker = %name,
            queue = %queue,
            namespace = %self.config.namespace_name(),
            concurrency = self.concurrency,
            prefetch = %self.prefetch.map_or_else(
                || format!("adaptive, at most {DEFAULT_MAX_PREFETCH}"),
                |entries| entries.to_string()
            ),
            tasks = %info.tasks.join(","),
            redis = %self.config.url_without_password(),
            reclaim_after = ?self.reclaim_after,
            touch_every = ?shared.heartbeat_every(),
            reclaim_every = ?shared.reclaim_every(),
            broker_timeout = ?shared.broker_timeout,
            "worker started"
        );
        Ok(Worker { name, stop, fatal, stopped })
    }

    /// What [`run`](WorkerBuilder::run) prints on stderr at start-up when no `tracing`
    /// subscriber is installed: queue, concurrency, tasks and Redis (without its password).
    fn plain_banner(&self) -> String {
        let mut tasks: Vec<&str> = self.registry.keys().copied().collect();
        tasks.sort_unstable();
        format!(
            "queue {}, concurrency {}, tasks {}, redis {} (install a tracing subscriber for the full log)",
            self.config.queue_name(),
            self.concurrency,
            tasks.join(","),
            self.config.url_without_password(),
        )
    }

    /// Starts the worker and runs it until the process gets Ctrl-C (SIGINT) or SIGTERM,
    /// then shuts down gracefully (a second signal stops waiting for running tasks).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// // A worker binary's whole job: work until Ctrl-C or SIGTERM, then shut down gracefully.
    /// Worker::builder().redis("redis://127.0.0.1:6379").register::<Add>().run().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`start`](WorkerBuilder::start); [`Error::Transport`] when the signal handlers
    /// cannot be installed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future shuts the worker down gracefully in the background.
    pub async fn run(self) -> Result<(), Error> {
        use async_signal::{Signal, Signals};
        let mut signals = Signals::new([Signal::Int, Signal::Term])
            .map_err(|error| Error::Transport(Box::new(error)))?;
        // With no tracing subscriber nothing of the log is seen: a worker process then says
        // on stderr what it is, and why it stopped, as Celery's worker does.
        let plain = !tracing::dispatcher::has_been_set();
        let banner = self.plain_banner();
        let worker = match self.start().await {
            Ok(worker) => worker,
            Err(error) => {
                if plain {
                    eprintln!("taskweave worker: could not start: {error}");
                }
                return Err(error);
            }
        };
        if plain {
            eprintln!("taskweave worker {} started: {banner}", worker.name);
        }
        // Stop when a signal comes, or when the worker ended by itself.
        match select(signals.next(), std::pin::pin!(worker.stopped())).await {
            Either::Left((signal, _)) => {
                tracing::info!(?signal, worker = %worker.name, "shutting down: finishing running tasks");
                if plain {
                    eprintln!(
                        "taskweave worker {}: shutting down, finishing running tasks",
                        worker.name
                    );
                }
                worker.shutdown();
            }
            Either::Right(((), _)) => {
                let error = worker.error();
                if plain {
                    match &error {
                        Some(error) => {
                            eprintln!("taskweave worker {} stopped: {error}", worker.name)
                        }
                        None => eprintln!("taskweave worker {} stopped", worker.name),
                    }
                }
                return error.map_or(Ok(()), Err);
            }
        }
        match select(signals.next(), std::pin::pin!(worker.stopped())).await {
            Either::Left(_) => {
                tracing::warn!(worker = %worker.name, "second signal: not waiting for running tasks");
                if plain {
                    eprintln!(
                        "taskweave worker {}: second signal, not waiting for running tasks",
                        worker.name
                    );
                }
            }
            Either::Right(((), _)) => {
                tracing::info!(worker = %worker.name, "worker stopped");
                if plain {
                    eprintln!("taskweave worker {} stopped", worker.name);
                }
            }
        }
        Ok(())
    }
}

/// A worker process for the Redis backend: joins a queue's consumer group, runs the
/// registered tasks it reads, and reports their outcomes. Start one with
/// [`Worker::builder`].
///
/// # What a worker guarantees
///
/// - It runs at most [`concurrency`](WorkerBuilder::concurrency) tasks at once, each on a
///   worker thread (tasks may block).
/// - It touches the entries it runs, so that other workers reclaim them only when this
///   worker stopped (died, hung or lost Redis) for the [reclaim
///   time](WorkerBuilder::reclaim_after); and it reclaims such entries of dead workers itself.
/// - A result is accepted only while this worker still owns the entry, atomically with the
///   acknowledgement (see [`crate::transport::redis`]).
/// - It does not keep long tasks from idle workers: with the default
///   [`prefetch`](WorkerBuilder::prefetch) it takes ahead only about 20 ms of measured work
///   per task slot, and gives back what it took ahead beyond that.
/// - It takes over the entries of stopped workers within half a reclaim time of their
///   becoming reclaimable, even while it has a backlog, and runs them before the entries it
///   read (they are older).
/// - An entry it cannot run (garbage, another format version, an input that does not
///   decode) goes to the dead-letter stream with a reason and a log line; the client's
///   future fails with that reason; the worker keeps going. So does an entry that was
///   started more often than its client allows without finishing (a poison task); a
///   worker's death counts only against the tasks it was running, not the ones it took
///   ahead.
/// - An entry of a task it does not register goes back to the queue for a worker that has
///   it (a rolling deploy); see [`unrunnable_after`](WorkerBuilder::unrunnable_after).
/// - On shutdown ([`Worker::shutdown`], or Ctrl-C / SIGTERM under
///   [`run`](WorkerBuilder::run)) it stops reading, finishes the tasks it runs, and hands the
///   ones it took but did not start back to the queue.
/// - When Redis goes away it logs the error and retries with back-off. An entry whose
///   outcome it cannot write for the [reclaim time](WorkerBuilder::reclaim_after) (at
///   least 30 s) is let go of (another worker reclaims and runs it); one whose outcome
///   Redis refuses (a bad argument, a wrong key type) goes to the dead-letter stream with
///   the reason. If it cannot read its queue or send its heartbeat for the [broker
///   timeout](WorkerBuilder::broker_timeout) (default 60 s), it stops and reports the error
///   ([`Worker::error`]), whether its slots are free or busy. No retry loop runs forever.
/// - A permission Redis's access control refuses (`NOPERM`) stops the worker: it is
///   checked at start-up, and if it still happens while running (the user's rights changed)
///   the worker shuts down and reports the error ([`Worker::error`],
///   [`run`](WorkerBuilder::run) returns it).
///
/// # Examples
///
/// ```no_run
/// use taskweave::Task;
/// use taskweave::worker::Worker;
///
/// struct Add;
/// impl Task for Add {
///     const NAME: &'static str = "add";
///     type Input = (i64, i64);
///     type Output = i64;
///     type Error = std::convert::Infallible;
///     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> {
///         Ok(a + b)
///     }
/// }
///
/// # async fn run() -> Result<(), taskweave::Error> {
/// // Runs until Ctrl-C or SIGTERM, then shuts down gracefully.
/// Worker::builder()
///     .redis("redis://127.0.0.1:6379")
///     .queue("demo")
///     .concurrency(4)
///     .register::<Add>()
///     .run()
///     .await
/// # }
/// ```
///
/// A `Worker` value is a started worker (from [`WorkerBuilder::start`]); dropping it shuts
/// the worker down gracefully in the background.
#[derive(Debug)]
#[must_use = "dropping a Worker shuts it down; keep it, or await `stopped`"]
pub struct Worker {
    name: String,
    /// Shared with the worker's loops, which drop it too on a fatal error.
    stop: Arc<Mutex<Option<flume::Sender<()>>>>,
    /// The error that stopped the worker by itself, if one did.
    fatal: Arc<Mutex<Option<Arc<StoreError>>>>,
    stopped: flume::Receiver<()>,
}

impl Worker {
    /// The worker's consumer name (unique per worker).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let worker = Worker::builder().redis("redis://127.0.0.1:6379").register::<Add>().start().await?;
    /// // `{host}-{pid}-w{number}`: which machine and process to look at.
    /// assert!(worker.name().contains(&std::process::id().to_string()));
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts a graceful shutdown: no new task is taken, running ones finish, taken but
    /// unstarted ones go back to the queue. Returns at once; see
    /// [`stopped`](Worker::stopped).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let worker = Worker::builder().redis("redis://127.0.0.1:6379").register::<Add>().start().await?;
    /// worker.shutdown(); // returns at once
    /// worker.stopped().await; // running tasks finished, the others handed back
    /// assert!(worker.error().is_none(), "a requested shutdown is no error");
    /// # Ok(()) }
    /// ```
    pub fn shutdown(&self) {
        drop(self.stop.lock().take());
    }

    /// Resolves when the worker has stopped.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::worker::Worker;
    /// use std::time::Duration;
    /// use taskweave::ExecutorExt;
    /// use taskweave::runtimes::embedded::EmbeddedExecutor;
    /// # use taskweave::Task;
    /// # struct Add;
    /// # impl Task for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Input = (i64, i64);
    /// #     type Output = i64;
    /// #     type Error = std::convert::Infallible;
    /// #     fn run((a, b): (i64, i64)) -> Result<i64, Self::Error> { Ok(a + b) }
    /// # }
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let worker = Worker::builder().redis("redis://127.0.0.1:6379").register::<Add>().start().await?;
    /// // Work for an hour at most, unless the worker stops by itself first.
    /// let executor = EmbeddedExecutor::global();
    /// if executor.timeout(Duration::from_secs(3600), worker.stopped()).await.is_err() {
    ///     worker.shutdown();
    ///     worker.stopped().await;
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future changes nothing.
    pub async fn stopped(&self) {
        while self.stopped.recv_async().await.is_ok() {}
    }

    /// The error that made the worker stop by itself, if one did: Redis refused it a
    /// permission it needs (`NOPERM`, for example after an operator changed its user's
    /// rights; the message names the command: grant it with `ACL SETUSER <user>
    /// +<command>`), refused to read the queue however often it was asked, or stayed out of
    /// reach for the [broker timeout](WorkerBuilder::broker_timeout). Fix the cause and start
    /// the worker again. `None` while it runs and after a requested shutdown.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(worker: taskweave::worker::Worker) {
    /// worker.stopped().await;
    /// if let Some(error) = worker.error() {
    ///     eprintln!("worker {} stopped: {error}", worker.name());
    /// }
    /// # }
    /// ```
    pub fn error(&self) -> Option<Error> {
        let fatal = self.fatal.lock().clone()?;
        Some(Error::Transport(Box::new(fatal)))
    }
}

/// What a worker's loops share.
struct Shared {
    /// What its tasks reach the cluster with (`taskweave::worker_client()`).
    services: Option<Arc<crate::transport::redis::task_services::TaskServices>>,
    name: String,
    keys: Keys,
    store: Arc<dyn Store>,
    registry: HashMap<&'static str, Handler>,
    executor: Arc<dyn Executor>,
    reclaim_after: Duration,
    /// How long the reader and the heartbeat retry a Redis out of reach before the worker
    /// stops.
    broker_timeout: Duration,
    announcement: Vec<u8>,
    /// Disconnects when a shutdown starts.
    stop_signal: flume::Receiver<()>,
    /// The sending side of `stop_signal` (shared with [`Worker`]): dropped to start a
    /// shutdown.
    stop: Arc<Mutex<Option<flume::Sender<()>>>>,
    /// The error that stops the worker by itself (a refused permission).
    fatal: Arc<Mutex<Option<Arc<StoreError>>>>,
    /// How many tasks run at once. The worker holds (taken, running or reporting) at most
    /// this many entries plus those it takes ahead ([`Shared::take_ahead`]). Reading and
    /// reclaiming run concurrently and may overshoot it a little; it bounds, it does not
    /// count exactly.
    concurrency: usize,
    /// A fixed number of entries to take ahead, or `None` for the adaptive amount.
    prefetch: Option<usize>,
    /// The mean time a task ran, in ns (a moving average; 0 before the first).
    mean_run_nanos: AtomicU64,
    /// When this worker started, the origin of `running_since`.
    epoch: std::time::Instant,
    /// Per runner, when its running task started (ns after `epoch`, plus one), or 0.
    running_since: Vec<AtomicU64>,
    /// Hands each runner its index into `running_since`.
    runner_numbers: AtomicU64,
    /// Outcomes and starts the runners write together ([`Shared::write_together`]).
    writes: Mutex<Writes>,
    /// Notified when a runner asks to write ([`Shared::gather_writes`] waits on it).
    write_queued: event_listener::Event,
    /// How many runners wait for an entry to start ([`Shared::next_delivery`]): they have
    /// nothing to write soon.
    idle_runners: AtomicUsize,
    /// Signalled when the worker lets go of an entry (the reader waits on it when full).
    slot_freed: (flume::Sender<()>, flume::Receiver<()>),
    /// Entries read and not yet started. async-channel, not flume: several runners await it
    /// (see the in-process transport's queue).
    runnable: (async_channel::Sender<Delivery>, async_channel::Receiver<Delivery>),
    /// Entries reclaimed from stopped workers and not yet started: runners take these before
    /// the ones in `runnable` (they are older).
    reclaimed: (async_channel::Sender<Delivery>, async_channel::Receiver<Delivery>),
    /// Entries this worker owns and has not reported, touched so nobody reclaims them.
    owned: Mutex<HashSet<String>>,
    /// See [`WorkerBuilder::unrunnable_after`].
    unrunnable_after: Duration,
    /// Entries of tasks this worker does not register that it has seen.
    unrunnable: Mutex<Unrunnable>,
    /// The runner loops, and how many of their bodies lent their slot while they wait.
    pool: Mutex<RunnerPool>,
    /// What lends runner slots to the bodies (`services` holds it weakly).
    lender: OnceLock<Arc<Lender>>,
    /// The resources this worker declares ([`WorkerBuilder::resources`]).
    resources: BTreeMap<String, u64>,
    /// How much of each resource the running tasks hold.
    held: Mutex<BTreeMap<String, u64>>,
    /// Notified when a task lets go of resources.
    resources_freed: event_listener::Event,
    /// The cancel signals of the runs in progress, and the deliveries cancelled lately.
    control: Mutex<ControlState>,
    /// How many restarts (`Client::restart`) this worker began.
    restarts: AtomicU64,
    /// Set while a restart closes the tasks' shared client: runs that start meanwhile start
    /// cancelled, so that no entry of that client grows a tree again.
    restarting: std::sync::atomic::AtomicBool,
}

/// What the control loop needs of the runs in progress (see [`control_loop`]).
#[derive(Default)]
struct ControlState {
    /// The cancel signal of each run in progress, by delivery (`rid`).
    running: HashMap<String, Arc<RunSignal>>,
    /// Deliveries a cancel named that ran nowhere here yet (their runner may be about to
    /// start them), the most recent [`RECENT_CANCELS`].
    cancelled: std::collections::VecDeque<String>,
}

/// How long a restart waits for the tasks' shared client to close.
const RESTART_CLOSE_LIMIT: Duration = Duration::from_secs(10);

/// How many cancelled deliveries a worker remembers for a run about to start.
const RECENT_CANCELS: usize = 1_024;

/// Whether `declared` resources are enough for one run that `needs` these.
fn resources_suffice(declared: &BTreeMap<String, u64>, needs: &[(String, u64)]) -> bool {
    needs.iter().all(|(name, amount)| declared.get(name).is_some_and(|has| has >= amount))
}

/// The resources one run holds, given back when dropped.
struct HeldResources<'a> {
    shared: &'a Shared,
    needs: &'a [(String, u64)],
}

impl Drop for HeldResources<'_> {
    fn drop(&mut self) {
        {
            let mut held = self.shared.held.lock();
            for (name, amount) in self.needs {
                if let Some(holding) = held.get_mut(name) {
                    *holding = holding.saturating_sub(*amount);
                }
            }
        }
        self.shared.resources_freed.notify(usize::MAX);
    }
}

/// The worker's runner loops: `concurrency` of them, plus one stand-in per body that lent
/// its slot while it waits (for its sub-tasks, a lock, ...). A runner steps out after its
/// task when more than `concurrency + seceded` take tasks, so that a body that rejoins puts
/// the pool over its size only until the next task finishes.
///
/// A runner that steps out waits on the bench, taking no task, while fewer than
/// `concurrency + seceded` wait there, and the next body that lends its slot calls it back
/// instead of starting a thread (a recursion through waiting bodies lends and takes back
/// slots all the time); otherwise it ends. A body taking its slot back sends the oldest
/// benched runners beyond that number away, and the shutdown all of them.
#[derive(Default)]
struct RunnerPool {
    /// Runner loops that take tasks (benched ones not included).
    runners: usize,
    /// Bodies that lent their slot and have not taken it back.
    seceded: usize,
    /// What a stand-in runner holds so that the shutdown waits for it (taken at shutdown).
    done: Option<flume::Sender<()>>,
    /// The calls of the benched runners, the most recently benched last.
    bench: std::collections::VecDeque<flume::Sender<()>>,
}

thread_local! {
    /// On a runner thread: its index into `running_since` (`usize::MAX` for a stand-in), when
    /// its body lent its slot (if it does now), and for how long it lent it during the
    /// running task: time lent is not run time (the adaptive prefetch goes by run time).
    static RUNNER: std::cell::Cell<(usize, Option<std::time::Instant>, Duration)> =
        const { std::cell::Cell::new((usize::MAX, None, Duration::ZERO)) };
}

/// Lends a worker's runner slots to the registered task bodies it runs
/// ([`task_services::lend_while_blocked`](crate::transport::redis::task_services)).
struct Lender(Weak<Shared>);

impl Lend for Lender {
    fn secede(&self) {
        let Some(shared) = self.0.upgrade() else { return };
        let (number, _, lent) = RUNNER.with(std::cell::Cell::get);
        RUNNER.with(|runner| runner.set((number, Some(shared.executor.now()), lent)));
        if let Some(since) = shared.running_since.get(number) {
            since.store(0, Ordering::Relaxed);
        }
        let stand_in = {
            let mut pool = shared.pool.lock();
            pool.seceded += 1;
            let wanted = shared.concurrency + pool.seceded;
            match pool.done.clone() {
                Some(done) if pool.runners < wanted && !shared.stopping() => {
                    pool.runners += 1;
                    // A benched runner takes the lent slot if one waits; a call fails
                    // only if its runner is gone, which it is not while its call is here.
                    let mut called = false;
                    while let Some(call) = pool.bench.pop_back() {
                        if call.send(()).is_ok() {
                            called = true;
                            break;
                        }
                    }
                    (!called).then_some(done)
                }
                _ => None,
            }
        };
        // The reader may wait for a free slot: the lent one is.
        let _ = shared.slot_freed.0.try_send(());
        if let Some(done) = stand_in {
            let runner = runner_loop(Arc::clone(&shared), done);
            if let Err(error) =
                shared.executor.spawn_dedicated("redis-worker-stand-in", Box::pin(runner))
            {
                shared.pool.lock().runners -= 1;
                tracing::error!(%error, worker = %shared.name, "could not start a stand-in runner for a waiting task");
            }
        }
    }

    fn rejoin(&self) {
        if let Some(shared) = self.0.upgrade() {
            {
                let mut pool = shared.pool.lock();
                pool.seceded = pool.seceded.saturating_sub(1);
                let wanted = shared.concurrency + pool.seceded;
                while pool.bench.len() > wanted {
                    // Dropping its call ends that runner.
                    drop(pool.bench.pop_front());
                }
            }
            let (number, lent_at, lent) = RUNNER.with(std::cell::Cell::get);
            let now = shared.executor.now();
            let lent =
                lent + lent_at.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
            RUNNER.with(|runner| runner.set((number, None, lent)));
            if let Some(since) = shared.running_since.get(number) {
                since.store(shared.nanos_since_epoch() + 1, Ordering::Relaxed);
            }
        }
    }
}

/// What a worker remembers of the entries of tasks it does not register, which it passes on.
#[derive(Default)]
struct Unrunnable {
    /// When this worker first saw each delivery (by `rid`, which stays the same when an entry
    /// is given back to the queue under a new id).
    first_seen: HashMap<String, std::time::Instant>,
    /// The task names it has logged a warning for (once each).
    warned: HashSet<String>,
}

/// Where entries a worker takes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Read from the stream: never delivered before.
    Read,
    /// Taken over from a worker that stopped touching them: older than any new entry.
    Reclaimed,
}

/// What [`Shared::take`] did with a batch of entries.
#[derive(Debug, Default, Clone, Copy)]
struct Taken {
    /// Queued for the runners.
    queued: usize,
    /// Given back to the queue for a worker that has their task.
    passed_on: usize,
}

/// Counts a runner idle ([`Shared::idle_runners`]) while it lives.
struct Idle<'a>(&'a Shared);

impl<'a> Idle<'a> {
    fn new(shared: &'a Shared) -> Idle<'a> {
        shared.idle_runners.fetch_add(1, Ordering::AcqRel);
        // A runner gathering writes may be waiting for this one.
        shared.write_queued.notify(usize::MAX);
        Idle(shared)
    }
}

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        self.0.idle_runners.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a runner does with an entry it is about to start.
enum Start {
    /// Run it.
    Run(Delivery),
    /// Dead-letter it without running it: poison, or its start refused.
    DeadLetter(DeadLetter),
    /// Leave it: another worker owns it now, or it is gone (cancelled).
    Skip,
}

/// What recording a runner's start of an entry found ([`Shared::write_and_begin`]).
enum Begun {
    /// Recorded: the entry was started this many times, this start included.
    Started(u32),
    /// This worker no longer owns the entry (reclaimed by another worker, or cancelled).
    NotOwner(Ownership),
    /// Redis refuses to record the start however often it is tried (its error).
    Refused(String),
    /// Not recorded: Redis stayed out of reach, refused a permission (the worker stops),
    /// or there was nothing to start; other workers reclaim the entry.
    NotRecorded,
}

/// What the runners have asked to write together, and whether one of them is writing.
#[derive(Default)]
struct Writes {
    queue: Vec<Write>,
    leading: bool,
}

/// One runner's outcome and the start of its next entry, to write with the others'.
struct Write {
    completion: Option<Completion>,
    begin: Option<String>,
    answer: flume::Sender<Written>,
}

/// What became of a [`Write`].
enum Written {
    /// Written: the outcome's [`Ownership`] and the start's count, for those it had.
    Done(Option<Ownership>, Option<Result<u32, Ownership>>),
    /// The call with the others failed: the runner writes its own, with its retries.
    Alone(Option<Completion>),
    /// Write the next batch (this runner's request among it).
    Lead,
}

/// A decoded entry this worker owns, ready to run.
struct Delivery {
    entry_id: String,
    entry: TaskEntry,
    /// How many restarts the worker had had when it took the entry: a run of an entry taken
    /// before a restart starts cancelled (see [`Shared::restart`]).
    generation: u64,
}

/// The outcome of a task a runner ran, which it writes before it starts another.
enum Report {
    Complete(Completion),
    DeadLetter(DeadLetter),
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop_signal.is_disconnected()
    }

    /// Whether the calling runner leaves the pool now (it has no task): true, and counted
    /// out, when more runners live than the slots not lent ([`RunnerPool`]).
    fn surplus_runner_leaves(&self) -> bool {
        let mut pool = self.pool.lock();
        if pool.runners > self.concurrency + pool.seceded {
            pool.runners -= 1;
            return true;
        }
        false
    }

    /// A runner that left the pool ([`surplus_runner_leaves`](Shared::surplus_runner_leaves))
    /// waits on the bench until a body that lends its slot calls it back (true: it is
    /// counted again and takes tasks), or ends (false) when as many as that pool wants wait
    /// there already, when it is sent away, or when the worker shuts down.
    async fn wait_on_bench(&self) -> bool {
        let (call, called) = flume::bounded(1);
        {
            let mut pool = self.pool.lock();
            if pool.done.is_none() || pool.bench.len() >= self.concurrency + pool.seceded {
                return false;
            }
            pool.bench.push_back(call);
        }
        called.recv_async().await.is_ok()
    }

    /// Stops the worker because of `error`, which retrying cannot fix (a permission Redis
    /// refuses; a read of the queue it refuses, or Redis out of reach for the broker
    /// timeout): it shuts down as it would on a signal and reports the error.
    fn stop_fatally(&self, error: StoreError) {
        let mut fatal = self.fatal.lock();
        if fatal.is_none() {
            match error.failure() {
                Failure::Permission => {
                    tracing::error!(worker = %self.name, %error, "stopping the worker: Redis refuses a permission it needs; grant it (ACL SETUSER) and start the worker again")
                }
                Failure::Refused => {
                    tracing::error!(worker = %self.name, %error, "stopping the worker: Redis refuses to read the queue however often it is asked; check the queue's keys for values of the wrong type, then start the worker again")
                }
                Failure::Unreachable => {
                    tracing::error!(worker = %self.name, %error, timeout = ?self.broker_timeout, "stopping the worker: Redis stayed out of reach for the broker timeout; start the worker again once it answers")
                }
            }
            *fatal = Some(Arc::new(error));
        }
        drop(fatal);
        drop(self.stop.lock().take());
    }

    /// Handles a failed store call of a retry loop: stops the worker on a refused
    /// permission; otherwise waits the back-off and says whether to try again. See
    /// [`Retry`].
    async fn retry(&self, retry: &mut Retry, error: StoreError, what: &str) -> Option<GiveUp> {
        if self.stopping() {
            retry.at_most(SHUTDOWN_TRIES);
        }
        let failure = error.failure();
        let Some(delay) = retry.next_delay(failure, self.executor.now()) else {
            return Some(match failure {
                Failure::Permission => {
                    self.stop_fatally(error);
                    GiveUp::Permission
                }
                Failure::Refused => GiveUp::Refused(error.to_string()),
                // Past the reclaim time other workers take the entries over anyway.
                Failure::Unreachable => GiveUp::Unreachable(error.to_string()),
            });
        };
        // The first failure of a call at warn, its retries at debug.
        if retry.failures() == 1 {
            tracing::warn!(%error, retry_in = ?delay, worker = %self.name, "could not {what}; retrying");
        } else {
            tracing::debug!(%error, retry_in = ?delay, worker = %self.name, "could not {what}; retrying");
        }
        self.executor.sleep(delay).await;
        None
    }

    /// The retry state of a loop that holds entries (see [`GiveUp`]).
    fn entry_retry(&self) -> Retry {
        Retry::new(RetryPolicy::after(REFUSED_TRIES, self.unreachable_limit()))
    }

    /// How long a retry loop keeps trying a Redis it cannot reach before it lets go of the
    /// entries: the reclaim time (other workers take them over after it anyway), at least
    /// 30 s, so that a short outage does not make tasks run twice.
    fn unreachable_limit(&self) -> Duration {
        self.reclaim_after.max(Duration::from_secs(30))
    }

    fn heartbeat_every(&self) -> Duration {
        (self.reclaim_after / 3).clamp(Duration::from_millis(10), Duration::from_secs(10))
    }

    /// How often the reclaim loop looks for entries of stopped workers: every half reclaim
    /// time, so that such an entry is taken over at most half the reclaim time after it
    /// became reclaimable.
    fn reclaim_every(&self) -> Duration {
        (self.reclaim_after / 2).clamp(Duration::from_millis(10), Duration::from_secs(5))
    }

    fn heartbeat_ttl(&self) -> Duration {
        (self.heartbeat_every() * 3).max(Duration::from_secs(1))
    }

    /// How many more entries this worker may take now.
    fn free_slots(&self) -> usize {
        let lent = self.pool.lock().seceded;
        let capacity = self.concurrency + lent + self.take_ahead();
        capacity.saturating_sub(self.owned.lock().len()).min(BATCH)
    }

    /// Whether the reader waits for more free slots before it reads `slots` entries: while
    /// the runners still have entries queued and fewer than half the worker's capacity is
    /// free. Refilling every freed slot at once cost one `XREADGROUP` per task.
    /// Only with entries taken ahead: without, a free slot is an idle runner. A runner that
    /// takes the last queued entry wakes the reader ([`Shared::try_next_delivery`]).
    fn read_later(&self, slots: usize) -> bool {
        let ahead = self.take_ahead();
        if ahead == 0 {
            return false;
        }
        let queued = self.runnable.1.len() + self.reclaimed.1.len();
        queued > 0 && slots < (self.concurrency + ahead).div_ceil(2)
    }

    /// How many entries to take ahead of the running ones: the fixed
    /// [`prefetch`](WorkerBuilder::prefetch), or by default [`TAKE_AHEAD_TIME`] of measured
    /// work per task slot, at most [`DEFAULT_MAX_PREFETCH`], and none before a task was
    /// measured (a queue of long tasks must not go all to the first worker that reads it).
    fn take_ahead(&self) -> usize {
        if let Some(entries) = self.prefetch {
            return entries;
        }
        // A task running longer than the mean counts as that long already: a worker that
        // ran short tasks must not take a queue of long ones ahead.
        let mean = self.mean_run_nanos.load(Ordering::Relaxed).max(self.longest_running());
        if mean == 0 {
            return 0;
        }
        let per_slot = u64::try_from(TAKE_AHEAD_TIME.as_nanos()).unwrap_or(u64::MAX) / mean;
        let ahead = per_slot.saturating_mul(self.concurrency as u64);
        usize::try_from(ahead).unwrap_or(usize::MAX).min(DEFAULT_MAX_PREFETCH)
    }

    /// How long the longest-running task has run so far, in ns (0 when none runs).
    fn longest_running(&self) -> u64 {
        let now = self.nanos_since_epoch();
        self.running_since
            .iter()
            .map(|since| since.load(Ordering::Relaxed))
            .filter(|since| *since > 0)
            .map(|since| now.saturating_sub(since - 1))
            .max()
            .unwrap_or(0)
    }

    fn nanos_since_epoch(&self) -> u64 {
        let elapsed = self.executor.now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Adds a task's run time to the moving mean [`Shared::take_ahead`] goes by (each new
    /// time weighs an eighth, so a change of the tasks' length shows within a few tasks).
    fn measured(&self, took: Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let _ = self.mean_run_nanos.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |mean| {
            Some(if mean == 0 { took } else { (mean - mean / 8).saturating_add(took / 8).max(1) })
        });
    }

    /// Writes this runner's outcome and the start of its next entry with those of the other
    /// runners that are waiting to write theirs: one call for them all
    /// ([`Store::complete_and_begin`]), made by the first of them (the others wait for its
    /// answer, and one of those that came while it was on its way writes the next batch).
    /// Each runner still starts its next entry only once its own outcome and start are
    /// written, so a crash counts against the entries that were running only. Before it
    /// writes, the first waits briefly for the runners still running short tasks
    /// ([`Shared::gather_writes`]). One try: if the call fails, every runner writes its own
    /// again with its own retries ([`Written::Alone`]).
    async fn write_together(
        &self,
        completion: Option<Completion>,
        begin: Option<String>,
    ) -> Written {
        let (answer, answered) = flume::bounded(1);
        let lead = {
            let mut writes = self.writes.lock();
            writes.queue.push(Write { completion, begin, answer });
            !std::mem::replace(&mut writes.leading, true)
        };
        if !lead {
            self.write_queued.notify(usize::MAX);
            match answered.recv_async().await {
                Ok(Written::Lead) => {}
                Ok(written) => return written,
                // The leader answers every request it takes: not reachable.
                Err(_) => return Written::Alone(None),
            }
        }
        self.gather_writes().await;
        let mut batch = std::mem::take(&mut self.writes.lock().queue);
        let mut completions = Vec::new();
        let mut begins = Vec::new();
        // Which of the two each request had, in order.
        let mut had = Vec::with_capacity(batch.len());
        for write in &mut batch {
            had.push((write.completion.is_some(), write.begin.is_some()));
            completions.extend(write.completion.take());
            begins.extend(write.begin.take());
        }
        let written = self.store.complete_and_begin(&self.name, &completions, &begins).await;
        let mut answers = match written {
            Ok((ownerships, starts))
                if ownerships.len() == completions.len() && starts.len() == begins.len() =>
            {
                Some((ownerships.into_iter(), starts.into_iter()))
            }
            _ => None,
        };
        let mut unwritten = completions.into_iter();
        for (write, (completion, begin)) in batch.into_iter().zip(had) {
            let written = match &mut answers {
                Some((ownerships, starts)) => Written::Done(
                    if completion { ownerships.next() } else { None },
                    if begin { starts.next() } else { None },
                ),
                None => Written::Alone(if completion { unwritten.next() } else { None }),
            };
            let _ = write.answer.try_send(written);
        }
        // Hand the writing on to a runner that asked meanwhile, if one did.
        {
            let mut writes = self.writes.lock();
            loop {
                if writes.queue.is_empty() {
                    writes.leading = false;
                    break;
                }
                if writes.queue[0].answer.try_send(Written::Lead).is_ok() {
                    break;
                }
                writes.queue.remove(0);
            }
        }
        answered.try_recv().unwrap_or(Written::Alone(None))
    }

    /// Waits, at most [`GATHER_LIMIT`], until every runner that is running a task has asked
    /// to write too, so that one script call carries all their outcomes and starts instead
    /// of a call for the first to finish and another for the rest (with trivial tasks the
    /// runners come back from each call at once, a few µs apart). Does not wait when no
    /// other runner runs a task (a finished result is never held back while nothing else is
    /// coming: the round trip of a lone task is not lengthened), when the tasks' measured
    /// mean run time is longer than the limit, or when the worker shuts down.
    async fn gather_writes(&self) {
        let mean = Duration::from_nanos(self.mean_run_nanos.load(Ordering::Relaxed));
        if mean.is_zero() || mean > GATHER_LIMIT || self.stopping() {
            return;
        }
        let deadline = self.executor.now() + GATHER_LIMIT;
        loop {
            let listener = self.write_queued.listen();
            // One lock at a time: the queue's length first, then the pool's counts.
            let queued = self.writes.lock().queue.len();
            if queued >= self.busy_runners() {
                return;
            }
            let left = deadline.saturating_duration_since(self.executor.now());
            if left.is_zero() {
                return;
            }
            let _ = select(listener, self.executor.sleep(left)).await;
        }
    }

    /// How many runners have, or are about to have, something to write: those neither
    /// waiting for an entry nor lending their slot (a body that lent it waits for something
    /// else, for as long as that takes).
    fn busy_runners(&self) -> usize {
        let (runners, lent) = {
            let pool = self.pool.lock();
            (pool.runners, pool.seceded)
        };
        runners.saturating_sub(lent).saturating_sub(self.idle_runners.load(Ordering::Acquire))
    }

    /// Lets go of entries (reported, dead-lettered or handed back).
    fn release<'a>(&self, ids: impl IntoIterator<Item = &'a String>) {
        {
            let mut owned = self.owned.lock();
            for id in ids {
                owned.remove(id);
            }
        }
        self.wake_reader_if_it_reads();
    }

    /// Wakes the reader if it would read now: it has free slots and does not wait for more
    /// ([`Shared::read_later`]). Waking it at every entry let go of, only for it to find
    /// that it waits for more, cost a wake-up (a thread switch) per task. What can make it
    /// read wakes it: an entry let go of (here), a runner taking the last queued entry
    /// ([`Shared::taken_from_queue`]) and a body lending its slot.
    fn wake_reader_if_it_reads(&self) {
        let slots = self.free_slots();
        if slots > 0 && !self.read_later(slots) {
            let _ = self.slot_freed.0.try_send(());
        }
    }

    fn rejection_letter(&self, entry_id: &str, rejection: Rejection, ttl_ms: u64) -> DeadLetter {
        tracing::warn!(
            worker = %self.name,
            entry = %entry_id,
            reason = %rejection.reason,
            "moving an entry that cannot be run to the dead-letter stream"
        );
        let reason = rejection.reason;
        DeadLetter {
            entry_id: entry_id.to_owned(),
            notify: rejection
                .notify
                .map(|notify| (notify, Status::Rejected, reason.clone().into_bytes())),
            reason,
            ttl_ms,
        }
    }

    /// Decides what to do with entries this worker now owns: dead-letter those that cannot
    /// be decoded, pass on those of tasks it does not register ([`Shared::pass_on`]), and
    /// queue the others for the runners, reclaimed ones ahead of read ones (they are older).
    ///
    /// Nothing is begun here: a runner begins an entry when it starts it
    /// ([`Shared::start`]), so that a worker's crash counts only against the entries it was
    /// running, never against those it took ahead.
    async fn take(&self, entries: Vec<(String, Fields)>, source: Source) -> Taken {
        let mut taken = Taken::default();
        let mut unrunnable = Vec::new();
        for (id, fields) in entries {
            // An entry this worker holds already (queued or running) that reaches it again,
            // claimed by itself after a pause longer than the reclaim time or redelivered:
            // the copy it holds will report it, so this one must not run a second time
            // (found by the simulation, `redis_chaos 6155814219636133984`).
            if !self.owned.lock().insert(id.clone()) {
                tracing::debug!(worker = %self.name, entry = %id, "an entry this worker holds was delivered to it again; not running it twice");
                continue;
            }
            match TaskEntry::decode(&fields, self.keys()) {
                Err(rejection) => {
                    let letter = self.rejection_letter(&id, rejection, 3_600_000);
                    self.report_dead_letter(&letter).await;
                }
                Ok(entry)
                    if !self.registry.contains_key(entry.task.as_str())
                        || !resources_suffice(&self.resources, &entry.resources) =>
                {
                    unrunnable.push(Delivery { entry_id: id, entry, generation: 0 });
                }
                Ok(entry) => {
                    let queue = match source {
                        Source::Read => &self.runnable.0,
                        Source::Reclaimed => &self.reclaimed.0,
                    };
                    let generation = self.restarts.load(Ordering::Acquire);
                    let _ = queue.try_send(Delivery { entry_id: id, entry, generation });
                    taken.queued += 1;
                }
            }
        }
        if !unrunnable.is_empty() {
            taken.passed_on = self.pass_on(unrunnable).await;
        }
        taken
    }

    /// The next entry to start if one is at hand: a reclaimed one if there is one (it is
    /// older than any entry read), else a read one.
    fn try_next_delivery(&self) -> Option<Delivery> {
        let delivery = self.reclaimed.1.try_recv().or_else(|_| self.runnable.1.try_recv()).ok();
        self.taken_from_queue(delivery.is_some());
        delivery
    }

    /// Wakes the reader when a runner took the last queued entry: it may be waiting for
    /// more free slots while entries were queued ([`Shared::read_later`]).
    fn taken_from_queue(&self, took: bool) {
        if took && self.runnable.1.is_empty() && self.reclaimed.1.is_empty() {
            let _ = self.slot_freed.0.try_send(());
        }
    }

    /// The next entry to start (see [`Shared::try_next_delivery`]), waiting for one; `None`
    /// once the worker shuts down.
    async fn next_delivery(&self) -> Option<Delivery> {
        loop {
            if let Some(delivery) = self.try_next_delivery() {
                return Some(delivery);
            }
            let reclaimed = std::pin::pin!(self.reclaimed.1.recv());
            let runnable = std::pin::pin!(self.runnable.1.recv());
            // Counted idle while it waits: a runner writing for the others does not wait
            // for this one ([`Shared::gather_writes`]).
            let idle = Idle::new(self);
            let waited = select(self.stop_signal.recv_async(), select(reclaimed, runnable)).await;
            drop(idle);
            match waited {
                Either::Right((Either::Left((Ok(delivery), _)), _))
                | Either::Right((Either::Right((Ok(delivery), _)), _)) => {
                    self.taken_from_queue(true);
                    return Some(delivery);
                }
                // Shared holds both senders: a closed queue is not reachable.
                Either::Right(_) => continue,
                Either::Left(_) => return None,
            }
        }
    }

    /// Writes the outcome of the runner's last task, if it has one, then records that the
    /// runner starts `delivery` (`begin`, counted once per delivery), and says what to do
    /// with it: run it; dead-letter it when it was started more often than its client allows
    /// without finishing (poison: it crashed or hung its workers) or when Redis refuses to
    /// record its start; or leave it when this worker no longer owns it (reclaimed by
    /// another worker, or cancelled) or could not record its start.
    async fn start(&self, delivery: Delivery, last: Option<Report>) -> Start {
        let ids = [delivery.entry_id.clone()];
        match self.write_and_begin(last, Some(&delivery.entry_id)).await {
            Begun::NotRecorded => {
                // Redis out of reach (or a permission refused: the worker stops): another
                // worker reclaims it.
                self.release(&ids);
                Start::Skip
            }
            Begun::NotOwner(ownership) => {
                tracing::debug!(worker = %self.name, entry = %delivery.entry_id, ?ownership, "not running an entry this worker no longer owns");
                self.release(&ids);
                Start::Skip
            }
            // Not run, so not counted: dead-lettered rather than taken again and again.
            Begun::Refused(reason) => {
                Start::DeadLetter(self.refused_letter(&delivery, "record the start of", &reason))
            }
            Begun::Started(starts) if starts > delivery.entry.max_deliveries => {
                Start::DeadLetter(self.poison_letter(&delivery, starts.saturating_sub(1)))
            }
            Begun::Started(_) => Start::Run(delivery),
        }
    }

    /// Writes a runner's outcome (if any) and records the start of its next entry (if any),
    /// in one round trip when both are there, before the runner starts that entry. An
    /// outcome is never left on its way while the next task runs: a task that finished but
    /// whose outcome was not written yet when the next one crashed the worker would have
    /// that crash counted against it too (found by the simulation, `redis_chaos
    /// 16571889743754548335`: the healthy task before a poison task was reclaimed, run and
    /// struck three times over). Lets go of the reported entry, and returns what the start
    /// found ([`Begun::NotRecorded`] without a next entry).
    ///
    /// Gives up as [`Retry`] says. When Redis refuses the call however often it is tried,
    /// the outcome and the start are tried apart to find the refused one: an outcome Redis
    /// refuses goes to the dead-letter stream (the client is told why), a start it refuses
    /// is answered [`Begun::Refused`]. When Redis stays out of reach (or refuses a
    /// permission: the worker stops), both entries are let go of and other workers reclaim
    /// them.
    async fn write_and_begin(&self, outcome: Option<Report>, next: Option<&String>) -> Begun {
        let mut completions: Vec<Completion> = match outcome {
            Some(Report::Complete(completion)) => vec![completion],
            Some(Report::DeadLetter(letter)) => {
                self.report_dead_letter(&letter).await;
                Vec::new()
            }
            None => Vec::new(),
        };
        let begins: Vec<String> = next.into_iter().cloned().collect();
        if completions.is_empty() && begins.is_empty() {
            return Begun::NotRecorded;
        }
        let entry_id = completions.first().map(|completion| completion.entry_id.clone());
        match self.write_together(completions.pop(), begins.first().cloned()).await {
            Written::Done(ownership, start) => {
                if let (Some(entry_id), Some(ownership)) = (&entry_id, ownership) {
                    if ownership == Ownership::NotOwner {
                        warn_dropped(&self.name, entry_id);
                    }
                    self.release([entry_id]);
                }
                return match start {
                    Some(Ok(starts)) => Begun::Started(starts),
                    Some(Err(ownership)) => Begun::NotOwner(ownership),
                    None => Begun::NotRecorded,
                };
            }
            // Written alone below, with retries (the call failed, or nothing came back).
            Written::Alone(completion) => completions.extend(completion),
            Written::Lead => {}
        }
        let mut retry = self.entry_retry();
        let give_up = loop {
            match self.store.complete_and_begin(&self.name, &completions, &begins).await {
                Ok((ownerships, starts)) => {
                    self.warn_not_owner(&completions, &ownerships);
                    self.release(completions.iter().map(|completion| &completion.entry_id));
                    return self.begun(starts, begins.len());
                }
                Err(error) => {
                    let what = match (completions.is_empty(), begins.is_empty()) {
                        (false, false) => "report a result and start a task",
                        (false, true) => "report a result",
                        _ => "start a task",
                    };
                    if let Some(give_up) = self.retry(&mut retry, error, what).await {
                        break give_up;
                    }
                }
            }
        };
        let reason = match give_up {
            GiveUp::Refused(reason) => reason,
            give_up => {
                if let GiveUp::Unreachable(_) = give_up {
                    tracing::error!(worker = %self.name, reason = %give_up, "giving up reporting a result and starting a task; other workers will reclaim and rerun them");
                }
                self.release(completions.iter().map(|completion| &completion.entry_id));
                return Begun::NotRecorded;
            }
        };
        // Refused however often it was tried: find which of the two Redis refuses, the
        // outcome first (it is written before the next task starts, as above).
        if let Some(completion) = completions.pop() {
            let refused = if begins.is_empty() {
                Some(GiveUp::Refused(reason.clone()))
            } else {
                self.report(std::slice::from_ref(&completion)).await
            };
            match refused {
                None => self.release([&completion.entry_id]),
                Some(GiveUp::Refused(reason)) => {
                    // Held (and touched) until its dead letter is written.
                    self.report_dead_letter(&completion_letter(self, &completion, &reason)).await;
                }
                Some(GiveUp::Unreachable(_) | GiveUp::Permission) => {
                    self.release([&completion.entry_id]);
                    return Begun::NotRecorded;
                }
            }
            if begins.is_empty() {
                return Begun::NotRecorded;
            }
            return self.begin_alone(&begins).await;
        }
        Begun::Refused(reason)
    }

    /// Records the start of one entry alone (see [`Shared::write_and_begin`]), giving up as
    /// [`Retry`] says.
    async fn begin_alone(&self, ids: &[String]) -> Begun {
        let mut retry = self.entry_retry();
        loop {
            match self.store.begin(&self.name, ids).await {
                Ok(starts) => return self.begun(starts, ids.len()),
                Err(error) => match self.retry(&mut retry, error, "start a task").await {
                    None => {}
                    Some(GiveUp::Refused(reason)) => return Begun::Refused(reason),
                    Some(give_up) => {
                        tracing::error!(worker = %self.name, reason = %give_up, "giving up starting a task; other workers will reclaim it");
                        return Begun::NotRecorded;
                    }
                },
            }
        }
    }

    /// What `begin` answered for the one entry begun (`begins` of them were asked for).
    fn begun(&self, mut starts: Vec<Result<u32, Ownership>>, begins: usize) -> Begun {
        if starts.len() != begins {
            tracing::error!(worker = %self.name, "begin answered for another number of entries; other workers will reclaim them");
            return Begun::NotRecorded;
        }
        match starts.pop() {
            Some(Ok(starts)) => Begun::Started(starts),
            Some(Err(ownership)) => Begun::NotOwner(ownership),
            None => Begun::NotRecorded,
        }
    }

    /// Warns of results dropped because another worker owns their entries now.
    fn warn_not_owner(&self, completions: &[Completion], ownerships: &[Ownership]) {
        for (completion, ownership) in completions.iter().zip(ownerships) {
            if *ownership == Ownership::NotOwner {
                warn_dropped(&self.name, &completion.entry_id);
            }
        }
    }

    /// Passes on entries of tasks this worker does not register (during a rolling deploy,
    /// another worker of the queue may have them): gives them back to the queue, without a
    /// strike (they never started), for a worker that has their task. An entry whose task no
    /// live worker of the queue has registered for [`Shared::unrunnable_after`] since this
    /// worker first saw it is dead-lettered instead, its error naming the task and the
    /// workers seen. Returns how many entries were given back.
    async fn pass_on(&self, deliveries: Vec<Delivery>) -> usize {
        let now = self.executor.now();
        let limit = self.unrunnable_after;
        let (mut back, overdue) = {
            let mut unrunnable = self.unrunnable.lock();
            // Forget deliveries first seen long ago: run elsewhere or cancelled since, or still
            // waiting for a busy worker that has their task (their wait then starts again).
            let keep = limit.saturating_mul(2).saturating_add(Duration::from_secs(60));
            unrunnable.first_seen.retain(|_, first| now.saturating_duration_since(*first) < keep);
            let mut back = Vec::new();
            let mut overdue = Vec::new();
            for delivery in deliveries {
                let registered = self.registry.contains_key(delivery.entry.task.as_str());
                if registered && unrunnable.warned.insert(format!("{:?}", delivery.entry.resources))
                {
                    tracing::info!(
                        worker = %self.name,
                        task = %delivery.entry.task,
                        resources = ?delivery.entry.resources,
                        "this worker lacks resources a task needs: giving its entries back to \
                         the queue for a worker that has them"
                    );
                } else if !registered && unrunnable.warned.insert(delivery.entry.task.clone()) {
                    tracing::warn!(
                        worker = %self.name,
                        task = %delivery.entry.task,
                        "this worker does not run task {:?}: giving its entries back to the \
                         queue for a worker that does (a rolling deploy?)",
                        delivery.entry.task
                    );
                }
                let first = *unrunnable.first_seen.entry(delivery.entry.rid.clone()).or_insert(now);
                if now.saturating_duration_since(first) >= limit {
                    overdue.push((delivery, now.saturating_duration_since(first)));
                } else {
                    back.push(delivery);
                }
            }
            (back, overdue)
        };
        if !overdue.is_empty() {
            match self.store.live_workers().await {
                Ok(announcements) => {
                    let mut workers: Vec<WorkerInfo> = announcements
                        .iter()
                        .filter_map(|raw| serde_json::from_slice::<WorkerInfo>(raw).ok())
                        .filter(|worker| worker.queue == self.keys.queue())
                        .collect();
                    // This worker is alive too, even when its own heartbeat is late (its
                    // announcement expired under load): the dead letter names it.
                    if !workers.iter().any(|worker| worker.name == self.name)
                        && let Ok(own) = serde_json::from_slice::<WorkerInfo>(&self.announcement)
                    {
                        workers.push(own);
                    }
                    for (delivery, waited) in overdue {
                        if workers.iter().any(|worker| {
                            worker.tasks.contains(&delivery.entry.task)
                                && resources_suffice(&worker.resources, &delivery.entry.resources)
                        }) {
                            // A worker that runs it is alive (busy): keep waiting for it.
                            back.push(delivery);
                            continue;
                        }
                        self.unrunnable.lock().first_seen.remove(&delivery.entry.rid);
                        let letter = self.unrunnable_letter(&delivery, waited, &workers);
                        self.report_dead_letter(&letter).await;
                    }
                }
                Err(error) => {
                    if error.failure() == Failure::Permission {
                        self.stop_fatally(error);
                    } else {
                        tracing::warn!(%error, worker = %self.name, "could not list the live workers; giving the entries back");
                    }
                    back.extend(overdue.into_iter().map(|(delivery, _)| delivery));
                }
            }
        }
        if back.is_empty() {
            return 0;
        }
        let ids: Vec<String> = back.iter().map(|delivery| delivery.entry_id.clone()).collect();
        let handed = match self.store.hand_back(&self.name, &ids).await {
            Ok(count) => {
                tracing::debug!(worker = %self.name, count, "gave entries of tasks this worker does not run back to the queue");
                count
            }
            Err(error) if error.failure() == Failure::Permission => {
                self.stop_fatally(error);
                0
            }
            Err(error) => {
                // Given up at once: nothing is lost, the entries are reclaimed after the
                // reclaim time (by a worker that has the task, or passed on again).
                tracing::warn!(%error, worker = %self.name, "could not give entries of tasks this worker does not run back; they are reclaimed after the reclaim time");
                0
            }
        };
        self.release(&ids);
        handed
    }

    /// The dead letter of an entry whose task no live worker registered for `waited`.
    fn unrunnable_letter(
        &self,
        delivery: &Delivery,
        waited: Duration,
        workers: &[WorkerInfo],
    ) -> DeadLetter {
        let entry = &delivery.entry;
        let seen = if workers.is_empty() {
            "none".to_owned()
        } else {
            workers
                .iter()
                .map(|worker| format!("{} (runs {:?})", worker.name, worker.tasks))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let registered = workers.iter().any(|worker| worker.tasks.contains(&entry.task));
        let reason = if registered && !entry.resources.is_empty() {
            let needs: Vec<String> =
                entry.resources.iter().map(|(name, amount)| format!("{name}={amount}")).collect();
            let seen: Vec<String> = workers
                .iter()
                .map(|worker| format!("{} (resources {:?})", worker.name, worker.resources))
                .collect();
            format!(
                "task {} ({:?}) waited {:.1} s and no live worker of queue {:?} that runs it has \
                 the resources it needs ({}) (workers seen: {}); start a worker with \
                 .resources(name, amount), or submit it needing less",
                entry.key,
                entry.task,
                waited.as_secs_f64(),
                self.keys.queue(),
                needs.join(", "),
                seen.join(", "),
            )
        } else {
            format!(
                "task {} ({:?}) waited {:.1} s and no live worker of queue {:?} runs {:?} (workers \
                 seen: {seen}); start a worker that registers it \
                 (Worker::builder().register::<T>()), or raise WorkerBuilder::unrunnable_after",
                entry.key,
                entry.task,
                waited.as_secs_f64(),
                self.keys.queue(),
                entry.task,
            )
        };
        let rejection = Rejection {
            reason,
            notify: Some(Notify { reply: entry.reply.clone(), rid: entry.rid.clone() }),
        };
        self.rejection_letter(&delivery.entry_id, rejection, entry.ttl_ms)
    }

    /// The dead letter of a task started `attempts` times that never finished.
    fn poison_letter(&self, delivery: &Delivery, attempts: u32) -> DeadLetter {
        let entry = &delivery.entry;
        tracing::error!(
            worker = %self.name,
            entry = %delivery.entry_id,
            key = %entry.key,
            attempts,
            "task was started {attempts} times and never finished (does it crash its worker?); \
             moving it to the dead-letter stream"
        );
        DeadLetter {
            entry_id: delivery.entry_id.clone(),
            reason: format!(
                "delivered {attempts} times without finishing: its workers died or hung"
            ),
            notify: Some((
                Notify { reply: entry.reply.clone(), rid: entry.rid.clone() },
                Status::Lost,
                attempts.to_string().into_bytes(),
            )),
            ttl_ms: entry.ttl_ms,
        }
    }

    fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The dead letter of an entry whose `what` Redis refused (`reason`) however often it
    /// was tried: the client is told, its future fails with the reason.
    fn refused_letter(&self, delivery: &Delivery, what: &str, reason: &str) -> DeadLetter {
        let entry = &delivery.entry;
        let reason = format!(
            "redis refused to {what} the entry of task {} ({reason}); check the keys under \
             this queue's namespace for values of the wrong type or a changed configuration",
            entry.key
        );
        tracing::error!(worker = %self.name, entry = %delivery.entry_id, key = %entry.key, %reason, "moving an entry to the dead-letter stream");
        DeadLetter {
            entry_id: delivery.entry_id.clone(),
            notify: Some((
                Notify { reply: entry.reply.clone(), rid: entry.rid.clone() },
                Status::Rejected,
                reason.clone().into_bytes(),
            )),
            reason,
            ttl_ms: entry.ttl_ms,
        }
    }

    /// Dead-letters an entry, retrying while Redis is away (a bounded number of times once
    /// shutting down), then lets go of it.
    ///
    /// Gives up as [`Retry`] says; a letter Redis refuses is tried once more without telling
    /// the client (its reply stream may be what Redis refuses), then let go of.
    async fn report_dead_letter(&self, letter: &DeadLetter) {
        let mut retry = self.entry_retry();
        let mut letter = std::borrow::Cow::Borrowed(letter);
        loop {
            match self.store.dead_letter(&self.name, &letter).await {
                Ok(Ownership::NotOwner) => {
                    tracing::warn!(worker = %self.name, entry = %letter.entry_id, "entry was reclaimed by another worker before it could be dead-lettered");
                    break;
                }
                Ok(_) => break,
                Err(error) => match self.retry(&mut retry, error, "dead-letter an entry").await {
                    None => {}
                    Some(GiveUp::Refused(reason)) if letter.notify.is_some() => {
                        tracing::warn!(worker = %self.name, entry = %letter.entry_id, %reason, "redis refused a dead letter; writing it without telling the client");
                        let mut quiet = letter.into_owned();
                        quiet.notify = None;
                        quiet.reason =
                            format!("{} (the client could not be told: {reason})", quiet.reason);
                        letter = std::borrow::Cow::Owned(quiet);
                        retry = self.entry_retry();
                    }
                    Some(give_up) => {
                        tracing::error!(worker = %self.name, entry = %letter.entry_id, reason = %give_up, "giving up dead-lettering; another worker will reclaim the entry");
                        break;
                    }
                },
            }
        }
        self.release([&letter.entry_id]);
    }

    /// Runs one delivery and says what to report.
    async fn run(&self, delivery: Delivery) -> Report {
        let Delivery { entry_id, entry, generation } = delivery;
        let report = |status: Status, body: Vec<u8>, run: Option<RunTimes>| {
            Report::Complete(Completion {
                entry_id: entry_id.clone(),
                reply: entry.reply.clone(),
                result: entry.result.clone(),
                rid: entry.rid.clone(),
                // A small output the client keeps from the reply is written only there.
                store_result: entry
                    .inline_max
                    .is_none_or(|inline_max| body.len() as u64 > inline_max),
                status,
                body,
                ttl_ms: entry.ttl_ms,
                run,
                packed_reply: entry.packed,
            })
        };
        let complete = |status: Status, body: Vec<u8>| report(status, body, None);
        // A single dependency's output is also tried as the input itself (see `Task`).
        let (input, single) = match &entry.input {
            Some(input) => (input.clone(), None),
            None => match self.dependency_outputs(&entry).await {
                Ok(mut outputs) => {
                    let input = compose_outputs(outputs.iter().map(Vec::as_slice));
                    let single = if outputs.len() == 1 { outputs.pop() } else { None };
                    (input, single)
                }
                Err(message) => return complete(Status::Failed, message.into_bytes()),
            },
        };
        let Some(handler) = self.registry.get(entry.task.as_str()) else {
            // `take` checked the registry; this is unreachable in practice.
            return complete(Status::Rejected, b"the task is not registered here".to_vec());
        };
        // Held from here until the report is made: its resources are free for the next.
        let _held = self.hold_resources(&entry.resources).await;
        let services = self.services.as_ref();
        // The run's times go with its outcome, for the client's task events: this worker's
        // wall clock, which the client maps onto its own timeline.
        let started = self.executor.wall_clock();
        let signal = self.running(&entry.rid, generation);
        let mut outcome = crate::transport::redis::task_services::run_signalled(
            services,
            &entry.key,
            Some(Arc::clone(&signal)),
            || handler(&input),
        );
        if let (HandlerOutcome::BadInput(_), Some(single)) = (&outcome, &single) {
            outcome = crate::transport::redis::task_services::run_signalled(
                services,
                &entry.key,
                Some(Arc::clone(&signal)),
                || handler(single),
            );
        }
        self.control.lock().running.remove(&entry.rid);
        let ran = Some(RunTimes::new(started, self.executor.wall_clock()));
        // A run cancelled while it ran (a cancel, or a restart, which may be another
        // client's): what the body returned is discarded, not given as the task's value.
        if signal.is_cancelled() && !matches!(outcome, HandlerOutcome::BadInput(_)) {
            let message = format!(
                "task {} was cancelled while it ran on worker {} (Client::restart or a cancel); \
                 what it returned was discarded: submit it again",
                entry.key, self.name
            );
            return report(Status::Failed, message.into_bytes(), ran);
        }
        match outcome {
            HandlerOutcome::Output(output) => report(Status::Ok, output, ran),
            // Bounded before it goes to Redis (the client bounds what it reads, too).
            HandlerOutcome::Failed(message) => {
                report(Status::Failed, bound_error_text(message).into_bytes(), ran)
            }
            HandlerOutcome::Panicked(message) => {
                report(Status::Panicked, bound_error_text(message).into_bytes(), ran)
            }
            HandlerOutcome::BadInput(reason) => {
                let rejection = Rejection {
                    reason,
                    notify: Some(Notify { reply: entry.reply.clone(), rid: entry.rid.clone() }),
                };
                Report::DeadLetter(self.rejection_letter(&entry_id, rejection, entry.ttl_ms))
            }
        }
    }

    /// Takes `needs` of this worker's resources for one run, waiting while other runs hold
    /// too much of them (they finish: `take` let only entries through whose needs fit what
    /// this worker declares). `None` for a task that needs none.
    async fn hold_resources<'a>(&'a self, needs: &'a [(String, u64)]) -> Option<HeldResources<'a>> {
        if needs.is_empty() {
            return None;
        }
        loop {
            let freed = self.resources_freed.listen();
            {
                let mut held = self.held.lock();
                let fits = needs.iter().all(|(name, amount)| {
                    let holding = held.get(name).copied().unwrap_or(0);
                    let has = self.resources.get(name).copied().unwrap_or(0);
                    holding.saturating_add(*amount) <= has
                });
                if fits {
                    for (name, amount) in needs {
                        *held.entry(name.clone()).or_default() += amount;
                    }
                    return Some(HeldResources { shared: self, needs });
                }
            }
            freed.await;
        }
    }

    /// The outputs of the dependencies of a task that reads them, in dependency order.
    async fn dependency_outputs(&self, entry: &TaskEntry) -> Result<Vec<Vec<u8>>, String> {
        // Retried as every worker call is (see `Retry`): a short outage does not fail it.
        let mut retry = self.entry_retry();
        let values = loop {
            match self.store.read_values(&entry.deps).await {
                Ok(values) => break values,
                Err(error) => {
                    let message = format!("its dependencies' results could not be read: {error}");
                    if self.retry(&mut retry, error, "read dependencies' results").await.is_some() {
                        return Err(message);
                    }
                }
            }
        };
        entry
            .deps
            .iter()
            .zip(values)
            .map(|(key, value)| {
                value.ok_or_else(|| {
                    format!(
                        "the result of its dependency ({key}) is gone from Redis: it was \
                         released before this task ran, its client stopped renewing it (the \
                         client died, or was away past result_ttl), or the server lost its \
                         data (a restart without persistence)"
                    )
                })
            })
            .collect()
    }
}

impl Shared {
    /// Registers the run of delivery `rid` that starts now, taken in `generation`, and
    /// returns its cancel signal: cancelled at once if a cancel named it already, or if a
    /// restart came after it was taken (a runner took it as the restart handed the others
    /// back).
    fn running(&self, rid: &str, generation: u64) -> Arc<RunSignal> {
        let signal = Arc::new(RunSignal::default());
        let cancelled = {
            let mut control = self.control.lock();
            control.running.insert(rid.to_owned(), Arc::clone(&signal));
            generation < self.restarts.load(Ordering::Acquire)
                || self.restarting.load(Ordering::Acquire)
                || control.cancelled.iter().any(|cancelled| cancelled == rid)
        };
        if cancelled {
            signal.cancel();
        }
        signal
    }

    /// Carries out one control message (see [`ControlMessage`]).
    async fn on_control(&self, raw: &[u8]) {
        let Ok(message) = serde_json::from_slice::<ControlMessage>(raw) else {
            tracing::debug!(worker = %self.name, "ignoring a control message that does not decode");
            return;
        };
        match message {
            ControlMessage::Cancel { rids } => {
                let signals: Vec<Arc<RunSignal>> = {
                    let mut control = self.control.lock();
                    let mut signals = Vec::new();
                    for rid in rids {
                        match control.running.get(&rid) {
                            Some(signal) => signals.push(Arc::clone(signal)),
                            None => {
                                if control.cancelled.len() == RECENT_CANCELS {
                                    control.cancelled.pop_front();
                                }
                                control.cancelled.push_back(rid);
                            }
                        }
                    }
                    signals
                };
                for signal in signals {
                    tracing::debug!(worker = %self.name, "a running task was cancelled: signalling it and cancelling its sub-tasks");
                    signal.cancel();
                }
            }
            ControlMessage::Restart { id, ttl_ms } => self.restart(&id, ttl_ms).await,
        }
    }

    /// `Client::restart`: cancels every run in progress (their bodies are told through
    /// their signal; those that go on run to their end), hands the entries taken ahead
    /// back to the queue, drops the client the tasks shared (a new one is made at the next
    /// `worker_client()`), and answers.
    async fn restart(&self, id: &str, ttl_ms: u64) {
        let signals: Vec<Arc<RunSignal>> = {
            // Under the lock `running` registers under: a run is either listed here, or
            // sees the new count.
            let control = self.control.lock();
            self.restarting.store(true, Ordering::Release);
            self.restarts.fetch_add(1, Ordering::AcqRel);
            control.running.values().map(Arc::clone).collect()
        };
        tracing::info!(worker = %self.name, running = signals.len(), "restart requested: cancelling running tasks, handing queued ones back");
        for signal in &signals {
            signal.cancel();
        }
        let taken: Vec<Delivery> = std::iter::from_fn(|| self.reclaimed.1.try_recv().ok())
            .chain(std::iter::from_fn(|| self.runnable.1.try_recv().ok()))
            .collect();
        let mut handed_back = 0;
        if !taken.is_empty() {
            let ids: Vec<String> = taken.iter().map(|delivery| delivery.entry_id.clone()).collect();
            match self.store.hand_back(&self.name, &ids).await {
                Ok(count) => {
                    handed_back = count;
                    self.release(&ids);
                }
                Err(error) => {
                    // Still this worker's: they run here after all.
                    tracing::warn!(%error, worker = %self.name, "could not hand entries back at a restart; running them here");
                    for delivery in taken {
                        let _ = self.runnable.0.try_send(delivery);
                    }
                }
            }
        }
        // Closing it cancels its unfinished tasks and removes their entries (those handed
        // back just now included); runs started meanwhile start cancelled. Bounded: a
        // client's close gives up on Redis after a few seconds.
        if let Some(closing) = self.services.as_ref().and_then(|services| services.closing())
            && self.executor.timeout(RESTART_CLOSE_LIMIT, closing).await.is_err()
        {
            tracing::warn!(worker = %self.name, "the tasks' shared client did not close within {RESTART_CLOSE_LIMIT:?} at a restart; going on");
        }
        self.restarting.store(false, Ordering::Release);
        let answer = RunAnswer {
            status: "ok".into(),
            body: format!("{{\"cancelled\":{},\"handed_back\":{handed_back}}}", signals.len()),
        };
        let ttl =
            Duration::from_millis(ttl_ms.clamp(1, crate::transport::redis::protocol::MAX_TTL_MS));
        let key = self.keys.run_answer(id, &self.name);
        let bytes = serde_json::to_vec(&answer).unwrap_or_default();
        if let Err(error) = self.store.answer_run(&key, &bytes, ttl).await {
            tracing::warn!(%error, worker = %self.name, "could not answer a restart request");
        }
    }
}

/// Reads the queue's control stream (cancels of running tasks, restarts) and carries out
/// what it says, promptly: a blocking read on a connection of its own, so neither the task
/// reads nor the heartbeat wait for it. A store without a control stream (the simulation's
/// model) ends it at once.
///
/// Gives up as [`Retry`] says (three refusals, a permission, or Redis out of reach for the
/// broker timeout): then it logs a warning and ends; the worker goes on running tasks, but
/// cancels of running tasks and restarts no longer reach it.
async fn control_loop(shared: Arc<Shared>, _done: flume::Sender<()>) {
    let mut retry = Retry::new(RetryPolicy::after(REFUSED_TRIES, shared.broker_timeout));
    let mut after: Option<String> = None;
    loop {
        if shared.stopping() {
            break;
        }
        let read = shared.store.read_control(after.as_deref(), BLOCK);
        match unless_stopped(&shared.stop_signal, read).await {
            None | Some(Ok(None)) => break,
            Some(Ok(Some((last, messages)))) => {
                retry.reset();
                after = Some(last);
                for message in messages {
                    shared.on_control(&message).await;
                }
            }
            Some(Err(error)) => {
                let Some(delay) = retry.next_delay(error.failure(), shared.executor.now()) else {
                    tracing::warn!(%error, worker = %shared.name, "gave up reading the control stream: cancels of running tasks and restarts no longer reach this worker");
                    break;
                };
                tracing::debug!(%error, retry_in = ?delay, worker = %shared.name, "could not read the control stream; retrying");
                if unless_stopped(&shared.stop_signal, shared.executor.sleep(delay)).await.is_none()
                {
                    break;
                }
            }
        }
    }
}

/// Starts every loop of a worker, waits for the shutdown signal, and shuts down in order:
/// stop reading, let running tasks finish and report, hand back what was not started, sign
/// off.
async fn supervise(shared: Arc<Shared>, concurrency: usize, stopped: flume::Sender<()>) {
    let executor = Arc::clone(&shared.executor);
    let (readers_done, readers_finished) = flume::bounded::<()>(1);
    let (runners_done, runners_finished) = flume::bounded::<()>(1);
    // Dropped once the entries taken but not started are handed back: until then they are
    // this worker's, and the heartbeat keeps touching them so that nobody reclaims them (a
    // reclaimed entry would keep the start its `begin` counted, found by the simulation).
    let (handing_back, handed_back) = flume::bounded::<()>(1);
    let spawned = [
        executor.spawn_task(fetch_loop(Arc::clone(&shared), readers_done.clone())),
        executor.spawn_task(reclaim_loop(Arc::clone(&shared), readers_done.clone())),
        executor.spawn_task(rebalance_loop(Arc::clone(&shared), readers_done.clone())),
        executor.spawn_task(control_loop(Arc::clone(&shared), readers_done)),
        executor.spawn_task(heartbeat_loop(Arc::clone(&shared), handed_back, stopped.clone())),
    ];
    for (index, result) in spawned.into_iter().enumerate() {
        if let Err(error) = result {
            tracing::error!(%error, loop_index = index, "could not start a worker loop");
        }
    }
    {
        let mut pool = shared.pool.lock();
        pool.runners += concurrency;
        pool.done = Some(runners_done.clone());
    }
    for index in 0..concurrency {
        let runner = runner_loop(Arc::clone(&shared), runners_done.clone());
        if let Err(error) =
            executor.spawn_dedicated(&format!("redis-worker-{index}"), Box::pin(runner))
        {
            shared.pool.lock().runners -= 1;
            tracing::error!(%error, "could not start a worker thread");
        }
    }
    drop(runners_done);

    // Nobody sends on the stop channel: it disconnects when a shutdown starts.
    let _ = shared.stop_signal.recv_async().await;
    // No stand-in starts any more, benched runners end; the shutdown waits for those that run.
    {
        let mut pool = shared.pool.lock();
        drop(pool.done.take());
        pool.bench.clear();
    }
    while readers_finished.recv_async().await.is_ok() {}
    while runners_finished.recv_async().await.is_ok() {}
    let unstarted: Vec<String> = std::iter::from_fn(|| shared.reclaimed.1.try_recv().ok())
        .chain(std::iter::from_fn(|| shared.runnable.1.try_recv().ok()))
        .map(|delivery| delivery.entry_id)
        .collect();
    if !unstarted.is_empty() {
        let hand_back = shared.store.hand_back(&shared.name, &unstarted);
        match executor.timeout(Duration::from_secs(5), hand_back).await {
            Ok(Ok(count)) => {
                tracing::info!(worker = %shared.name, count, "handed unstarted tasks back to the queue")
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not hand tasks back; other workers will reclaim them")
            }
            Err(_) => {
                tracing::warn!("handing tasks back timed out; other workers will reclaim them")
            }
        }
    }
    drop(handing_back);
    if let Some(services) = &shared.services {
        services.close();
    }
    let sign_off = shared.store.sign_off(&shared.name);
    if let Ok(Err(error)) = executor.timeout(Duration::from_secs(2), sign_off).await {
        tracing::debug!(%error, "could not sign off (the heartbeat expires)");
    }
    drop(stopped);
}

/// Reads new entries while there are free slots.
///
/// Gives up as [`Retry`] says: when Redis refuses the read [`REFUSED_TRIES`] times (the
/// queue's stream overwritten with another type) or refuses a permission, or stays out of
/// reach for the [broker timeout](WorkerBuilder::broker_timeout), the worker stops with the
/// error ([`Worker::error`]): a worker that cannot read does nothing useful, and its
/// process supervisor (or operator) should hear of it.
async fn fetch_loop(shared: Arc<Shared>, _done: flume::Sender<()>) {
    let mut retry = Retry::new(RetryPolicy::after(REFUSED_TRIES, shared.broker_timeout));
    // Slows reading down while the stream holds only entries this worker passes on (of
    // tasks it does not register), so that it does not spin on them: not a retry (every
    // read succeeds), so it never gives up; it starts again at every entry it can run.
    let mut passing_on = Retry::new(RetryPolicy::after(u32::MAX, Duration::MAX));
    loop {
        if shared.stopping() {
            break;
        }
        let slots = shared.free_slots();
        if slots == 0 || shared.read_later(slots) {
            // Full: wait until an entry is let go of, or the shutdown.
            match select(shared.stop_signal.recv_async(), shared.slot_freed.1.recv_async()).await {
                Either::Right((Ok(()), _)) => continue,
                _ => break,
            }
        }
        // Not raced against the shutdown: what this read takes is run or handed back.
        match shared.store.read_new(&shared.name, slots, BLOCK).await {
            Ok(entries) => {
                retry.reset();
                let entries = entries.into_iter().map(|StreamEntry { id, fields }| (id, fields));
                let taken = shared.take(entries.collect(), Source::Read).await;
                if taken.queued > 0 || taken.passed_on == 0 {
                    passing_on.reset();
                } else {
                    let delay = passing_on
                        .next_delay(Failure::Unreachable, shared.executor.now())
                        .unwrap_or(Retry::MAX_DELAY);
                    if unless_stopped(&shared.stop_signal, shared.executor.sleep(delay))
                        .await
                        .is_none()
                    {
                        break;
                    }
                }
            }
            Err(error) => {
                let Some(delay) = retry.next_delay(error.failure(), shared.executor.now()) else {
                    shared.stop_fatally(error);
                    break;
                };
                tracing::warn!(%error, retry_in = ?delay, worker = %shared.name, "could not read tasks; retrying");
                if unless_stopped(&shared.stop_signal, shared.executor.sleep(delay)).await.is_none()
                {
                    break;
                }
            }
        }
    }
}

/// With the default (adaptive) prefetch: gives back to the queue the entries read ahead
/// beyond what the tasks' measured length allows now ([`Shared::take_ahead`]), so that
/// another worker runs them. A worker that ran short tasks takes up to 64 entries at once;
/// if those turn out to be long tasks, it holds them only until its running ones have run
/// for longer than the short ones did, not for as long as it takes to run them all.
/// Entries given back were never begun: no start is counted, and they keep their
/// delivery's `entry_of` key (`hand_back.lua`).
async fn rebalance_loop(shared: Arc<Shared>, _done: flume::Sender<()>) {
    if shared.prefetch.is_some() {
        return;
    }
    loop {
        let tick = shared.executor.sleep(REBALANCE_EVERY);
        if unless_stopped(&shared.stop_signal, tick).await.is_none() {
            break;
        }
        let allowed = shared.take_ahead();
        let queued = shared.runnable.1.len();
        if queued <= allowed {
            continue;
        }
        // Read entries only: reclaimed ones are older than any, and run here first.
        let surplus: Vec<Delivery> = std::iter::from_fn(|| shared.runnable.1.try_recv().ok())
            .take(queued - allowed)
            .collect();
        if surplus.is_empty() {
            continue;
        }
        let ids: Vec<String> = surplus.iter().map(|delivery| delivery.entry_id.clone()).collect();
        match shared.store.hand_back(&shared.name, &ids).await {
            Ok(count) => {
                tracing::debug!(worker = %shared.name, count, "gave entries taken ahead back to the queue: its tasks run longer than the ones before");
                shared.release(&ids);
            }
            Err(error) => {
                // Still this worker's: run them here after all.
                tracing::debug!(%error, worker = %shared.name, "could not give entries taken ahead back; running them here");
                for delivery in surplus {
                    let _ = shared.runnable.0.try_send(delivery);
                }
            }
        }
    }
}

/// How many `claim_idle` calls one reclaim pass makes at most (each claims up to [`BATCH`]
/// entries and examines up to ten times as many).
const RECLAIM_CALLS: usize = 64;

/// Takes over entries of workers that stopped touching them, on its own schedule (every half
/// reclaim time): whether this worker has free slots or not, since the entries it takes over
/// are older than any it reads, and runners start them first. Without that, a worker with a
/// backlog refilled every freed slot with new entries and a dead worker's entries waited as
/// long as the backlog lasted.
///
/// Every heartbeat time to live it also removes the consumers of dead workers from the group
/// once nothing is pending for them (see [`Store::forget_consumers`]), so that the group does
/// not keep every worker that ever died.
async fn reclaim_loop(shared: Arc<Shared>, _done: flume::Sender<()>) {
    let every = shared.reclaim_every();
    let mut last_forget = shared.executor.now();
    loop {
        if unless_stopped(&shared.stop_signal, shared.executor.sleep(every)).await.is_none() {
            break;
        }
        if shared.executor.now().saturating_duration_since(last_forget) >= shared.heartbeat_ttl() {
            last_forget = shared.executor.now();
            match shared.store.forget_consumers(shared.heartbeat_ttl()).await {
                Ok(removed) => {
                    for consumer in removed {
                        tracing::info!(worker = %shared.name, %consumer, "removed a dead worker's consumer from the group");
                    }
                }
                Err(error) if error.failure() == Failure::Permission => {
                    shared.stop_fatally(error);
                    return;
                }
                Err(error) => {
                    tracing::debug!(%error, "could not remove dead workers' consumers; trying again later")
                }
            }
        }
        // A full pass over the pending entries, claiming every one idle for the reclaim
        // time: a dead worker may have held more than this one's capacity (entries it
        // reclaimed on top of those it read), and several may have died at once.
        let mut cursor = "0-0".to_owned();
        for _call in 0..RECLAIM_CALLS {
            let claim = shared.store.claim_idle(&shared.name, shared.reclaim_after, &cursor, BATCH);
            match claim.await {
                Ok((next, claimed)) => {
                    let mut entries = Vec::with_capacity(claimed.len());
                    for ClaimedEntry { id, deliveries, fields } in claimed {
                        tracing::info!(worker = %shared.name, entry = %id, deliveries, "reclaimed an entry of a worker that stopped");
                        entries.push((id, fields));
                    }
                    shared.take(entries, Source::Reclaimed).await;
                    if next == "0-0" {
                        break;
                    }
                    cursor = next;
                }
                Err(error) if error.failure() == Failure::Permission => {
                    shared.stop_fatally(error);
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, worker = %shared.name, "could not reclaim idle tasks");
                    break;
                }
            }
        }
    }
}

/// Warns of a result dropped because another worker owns its entry now.
fn warn_dropped(worker: &str, entry: &str) {
    tracing::warn!(
        worker = %worker,
        entry = %entry,
        "dropping a result: the entry was reclaimed by another worker \
         (this one was too slow or cut off), which reports it instead"
    );
}

/// The dead letter of a completion Redis refuses to store (`reason`).
fn completion_letter(shared: &Shared, completion: &Completion, reason: &str) -> DeadLetter {
    let reason = format!(
        "redis refused to store the outcome ({}) of delivery {} ({reason}); check the keys \
         under this queue's namespace for values of the wrong type",
        completion.status, completion.rid
    );
    tracing::error!(worker = %shared.name, entry = %completion.entry_id, %reason, "moving an entry to the dead-letter stream");
    DeadLetter {
        entry_id: completion.entry_id.clone(),
        notify: Some((
            Notify { reply: completion.reply.clone(), rid: completion.rid.clone() },
            Status::Rejected,
            reason.clone().into_bytes(),
        )),
        reason,
        ttl_ms: completion.ttl_ms,
    }
}

impl Shared {
    /// Writes a batch of completions, retrying as [`Retry`] says; `None` once written,
    /// or why it gave up.
    async fn report(&self, completions: &[Completion]) -> Option<GiveUp> {
        if completions.is_empty() {
            return None;
        }
        let mut retry = self.entry_retry();
        loop {
            match self.store.complete(&self.name, completions).await {
                Ok(ownerships) => {
                    self.warn_not_owner(completions, &ownerships);
                    return None;
                }
                Err(error) => {
                    let Some(give_up) = self.retry(&mut retry, error, "report results").await
                    else {
                        continue;
                    };
                    if let GiveUp::Unreachable(reason) = &give_up {
                        tracing::error!(worker = %self.name, %reason, tasks = completions.len(), "giving up reporting results; other workers will reclaim and rerun these tasks");
                    }
                    return Some(give_up);
                }
            }
        }
    }
}

/// Every retry loop of the worker that holds entries gives up as [`Shared::entry_retry`]
/// says: at once on a refused permission (the worker stops), after [`REFUSED_TRIES`] tries
/// on a call the server refuses (the entries go to the dead-letter stream), and after
/// [`unreachable_limit`](Shared::unreachable_limit) without reaching the server (or
/// [`SHUTDOWN_TRIES`] tries once shutting down: the entries are let go of, and another
/// worker reclaims them).
/// Why a retry loop gave up.
enum GiveUp {
    /// Redis refuses a permission: the worker is stopping.
    Permission,
    /// Redis refuses the call itself (its error).
    Refused(String),
    /// Redis stayed out of reach (its last error).
    Unreachable(String),
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUp::Permission => f.write_str("redis refuses a permission this worker needs"),
            GiveUp::Refused(error) => write!(f, "redis refuses the call: {error}"),
            GiveUp::Unreachable(error) => write!(f, "redis stayed out of reach: {error}"),
        }
    }
}

/// Runs deliveries one at a time on this loop's thread (bodies may block), and writes
/// each one's outcome: together with the start of the next one when there is a next one
/// at hand, else at once.
async fn runner_loop(shared: Arc<Shared>, _done: flume::Sender<()>) {
    let number = usize::try_from(shared.runner_numbers.fetch_add(1, Ordering::Relaxed))
        .unwrap_or(usize::MAX);
    let since = shared.running_since.get(number);
    RUNNER.with(|runner| runner.set((number, None, Duration::ZERO)));
    // The outcome of the last task run, not written yet.
    let mut last: Option<Report> = None;
    loop {
        // A stand-in (or a runner whose body took its slot back) leaves once it has no task.
        if shared.surplus_runner_leaves() {
            if let Some(outcome) = last.take() {
                shared.write_and_begin(Some(outcome), None).await;
            }
            if shared.wait_on_bench().await {
                continue;
            }
            break;
        }
        let at_hand =
            if last.is_some() && !shared.stopping() { shared.try_next_delivery() } else { None };
        let delivery = match at_hand {
            Some(delivery) => delivery,
            None => {
                if let Some(outcome) = last.take() {
                    shared.write_and_begin(Some(outcome), None).await;
                }
                if shared.stopping() {
                    break;
                }
                let Some(delivery) = shared.next_delivery().await else { break };
                delivery
            }
        };
        last = match shared.start(delivery, last.take()).await {
            Start::Run(delivery) => {
                let started = shared.executor.now();
                if let Some(since) = since {
                    since.store(shared.nanos_since_epoch() + 1, Ordering::Relaxed);
                }
                let report = shared.run(delivery).await;
                if let Some(since) = since {
                    since.store(0, Ordering::Relaxed);
                }
                let (_, _, lent) =
                    RUNNER.with(|runner| runner.replace((number, None, Duration::ZERO)));
                let took = shared.executor.now().saturating_duration_since(started);
                shared.measured(took.saturating_sub(lent));
                Some(report)
            }
            Start::DeadLetter(letter) => Some(Report::DeadLetter(letter)),
            Start::Skip => None,
        };
    }
}

/// How many run requests a worker takes at one heartbeat.
const RUN_REQUESTS: usize = 16;

/// Runs what clients asked this worker to run once (`Client::run_on_workers`), each on a
/// blocking thread of the executor (beside the task slots: a run request is an
/// administrator's call, not a task), and answers each. A request that does not decode is
/// logged and dropped (its client times out); one for a task this worker does not register
/// is answered `rejected`.
async fn run_requested(shared: &Arc<Shared>) {
    let requests = match shared.store.take_run_requests(&shared.name, RUN_REQUESTS).await {
        Ok(requests) => requests,
        Err(error) => {
            tracing::debug!(%error, worker = %shared.name, "could not read run requests");
            return;
        }
    };
    for raw in requests {
        let Ok(request) = serde_json::from_slice::<RunRequest>(&raw) else {
            tracing::warn!(worker = %shared.name, "dropping a run request that does not decode");
            continue;
        };
        let answer_key = shared.keys.run_answer(&request.id, &shared.name);
        let ttl = Duration::from_millis(
            request.ttl_ms.clamp(1, crate::transport::redis::protocol::MAX_TTL_MS),
        );
        let Some(handler) = shared.registry.get(request.task.as_str()).cloned() else {
            let answer = RunAnswer {
                status: "rejected".into(),
                body: format!(
                    "worker {} does not register task {:?}; register it on every worker (Worker::builder().register::<T>())",
                    shared.name, request.task
                ),
            };
            let _ = shared
                .store
                .answer_run(&answer_key, &serde_json::to_vec(&answer).unwrap_or_default(), ttl)
                .await;
            continue;
        };
        let (done, outcome) = flume::bounded(1);
        let services = shared.services.clone();
        let key = format!("run-{}", request.id);
        let input = request.input.into_bytes();
        let run = Box::new(move || {
            let outcome =
                crate::transport::redis::task_services::run_with(services.as_ref(), &key, || {
                    handler(&input)
                });
            let _ = done.send(outcome);
        });
        if let Err(error) = shared.executor.spawn_blocking(run) {
            tracing::warn!(%error, worker = %shared.name, "could not start a run request");
            continue;
        }
        let answering = Arc::clone(shared);
        let answer = async move {
            let answer = match outcome.recv_async().await {
                Ok(HandlerOutcome::Output(output)) => RunAnswer {
                    status: "ok".into(),
                    body: String::from_utf8_lossy(&output).into_owned(),
                },
                Ok(HandlerOutcome::Failed(message)) => {
                    RunAnswer { status: "failed".into(), body: bound_error_text(message) }
                }
                Ok(HandlerOutcome::Panicked(message)) => {
                    RunAnswer { status: "panicked".into(), body: bound_error_text(message) }
                }
                Ok(HandlerOutcome::BadInput(reason)) => {
                    RunAnswer { status: "rejected".into(), body: reason }
                }
                Err(_) => return,
            };
            let bytes = serde_json::to_vec(&answer).unwrap_or_default();
            if let Err(error) = answering.store.answer_run(&answer_key, &bytes, ttl).await {
                tracing::warn!(%error, worker = %answering.name, "could not answer a run request");
            }
        };
        if let Err(error) = shared.executor.spawn_task(answer) {
            tracing::warn!(%error, worker = %shared.name, "could not answer a run request");
        }
    }
}

/// Touches the entries this worker owns and refreshes its announcement, until the runners
/// have stopped and what they did not start is handed back.
async fn heartbeat_loop(
    shared: Arc<Shared>,
    handed_back: flume::Receiver<()>,
    _stopped: flume::Sender<()>,
) {
    let every = shared.heartbeat_every();
    // A failed touch is retried sooner than the next heartbeat (with back-off, at most every
    // heartbeat), until the reclaim time is up: by then other workers take the entries
    // over anyway, and the loop keeps its plain schedule.
    let mut retry = shared.entry_retry();
    // Whether giving the quick retries up was logged (once per run of failures).
    let mut gave_up_logged = false;
    // The broker timeout, measured here too: the reader stops the worker when its reads
    // fail for that long, but it does not read while every slot is held, and a slot stays
    // held while its runner retries writing a result (for the reclaim time, at least 30 s).
    // The heartbeat is sent whatever the slots do, so a Redis out of reach stops the worker
    // once the heartbeat has failed for the broker timeout, slots full or not.
    let mut broker = Retry::new(RetryPolicy::after(u32::MAX, shared.broker_timeout));
    loop {
        let owned: Vec<String> = shared.owned.lock().iter().cloned().collect();
        // A failed touch is tried again soon: entries left untouched for the reclaim time are
        // taken over by other workers while this one still runs them.
        let mut next = every;
        match shared.store.touch(&shared.name, &owned).await {
            Err(error) if error.failure() == Failure::Permission => shared.stop_fatally(error),
            Err(error) => match retry.next_delay(error.failure(), shared.executor.now()) {
                Some(delay) => {
                    if retry.failures() == 1 {
                        tracing::warn!(%error, worker = %shared.name, "could not touch running tasks; retrying");
                    } else {
                        tracing::debug!(%error, worker = %shared.name, "could not touch running tasks");
                    }
                    next = every.min(delay);
                }
                None => {
                    if !gave_up_logged {
                        gave_up_logged = true;
                        tracing::warn!(%error, worker = %shared.name, "could not touch running tasks for the reclaim time; other workers may take them over");
                    }
                }
            },
            Ok(_) => {
                retry.reset();
                gave_up_logged = false;
            }
        }
        if !shared.stopping() {
            // Asked to retire (`Client::retire_workers`): the graceful shutdown of a SIGTERM.
            // A flag that cannot be read is asked again at the next heartbeat.
            match shared.store.retire_requested(&shared.name).await {
                Ok(true) => {
                    tracing::info!(worker = %shared.name, "asked to retire: finishing running tasks, handing the others back");
                    drop(shared.stop.lock().take());
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::debug!(%error, worker = %shared.name, "could not read the retire flag")
                }
            }
        }
        if !shared.stopping() {
            run_requested(&shared).await;
        }
        if !shared.stopping() {
            let ttl = shared.heartbeat_ttl();
            match shared.store.heartbeat(&shared.name, &shared.announcement, ttl).await {
                Err(error) if error.failure() == Failure::Permission => shared.stop_fatally(error),
                Err(error) if error.failure() == Failure::Unreachable => {
                    if broker.next_delay(Failure::Unreachable, shared.executor.now()).is_none() {
                        shared.stop_fatally(error);
                    } else {
                        tracing::debug!(%error, worker = %shared.name, "could not send a heartbeat");
                    }
                }
                Err(error) => {
                    // Refused, so answered: Redis is in reach.
                    broker.reset();
                    tracing::debug!(%error, worker = %shared.name, "could not send a heartbeat")
                }
                Ok(()) => broker.reset(),
            }
        }
        match select(shared.executor.sleep(next), handed_back.recv_async()).await {
            Either::Left(_) => {}
            Either::Right(_) => break,
        }
    }
}
