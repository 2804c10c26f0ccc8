//! The user-facing API: [`Client`], [`TaskFuture`], the blocking view.

mod actor;
mod as_completed;
pub(crate) mod blocking;
mod builder;
mod cancel_guard;
mod cluster;
mod cluster_handle;
mod context;
pub mod coordination;
pub(crate) mod core;
mod delayed;
mod deps;
pub mod events;
pub(crate) mod future;
mod gather;
mod outcome_waiter;
mod registered;
#[cfg(feature = "redis")]
mod remote_actor;
pub(crate) mod stats;
mod submit;
mod wait;
#[cfg(feature = "redis")]
mod worker_client;

use std::fmt;
use std::sync::Arc;

pub use crate::transport::{TransportStats, WorkerStats};
pub use actor::Actor;
pub use as_completed::{
    AsCompleted, AsCompletedAdder, AsCompletedBatches, AsCompletedResultBatches,
    AsCompletedTimeout, AsCompletedWithResults, BlockingAsCompleted, BlockingAsCompletedTimeout,
};
pub use blocking::BlockingClient;
pub use builder::ClientBuilder;
pub use cancel_guard::CancelOnDrop;
pub use cluster::RESTART_REASON;
pub use cluster_handle::ClusterHandle;
pub use context::{Cancelled, Seceded, TaskContext};
pub use delayed::{Delayed, DelayedInputs, delayed, delayed_after};
pub use deps::Dependencies;
pub use future::TaskFuture;
pub use gather::{Gather, GatherErrors, GatherList, Gathered};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use remote_actor::{ActorHost, ActorRestartPolicy, HostInput, RemoteActor, RemoteActorHandle};
pub use stats::{ClientStats, StatsStream};
pub use submit::{After, Impure, NoDeps, Pure, TaskBuilder};
pub use wait::{ReturnWhen, WaitOutcome};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use worker_client::{worker_client, worker_task_cancelled};

use self::core::Core;
use crate::error::Error;
use crate::executor::Executor;
use crate::scheduler::{CancelOutcome, Event, RetryOutcome};

/// A handle on a cluster of workers: submit work, get [`TaskFuture`]s back, gather results.
///
/// `Client` is `Clone + Send + Sync`: clones share one cluster, and any thread may submit.
/// Submitting never blocks and needs no `.await`. The same client serves async code (its
/// `async` methods) and blocking code ([`blocking`](Client::blocking),
/// [`TaskFuture::result`]).
///
/// Dropping the last clone closes the client without waiting; call
/// [`close`](Client::close) to wait until the workers have stopped.
///
/// # Examples
///
/// ```
/// # async fn run() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::builder().workers(2).build().await?;
/// let future = client.submit(|x: i64| x + 1, 10);
/// assert_eq!(future.await?, 11);
/// let squares = client.map(|x: i64| x * x, 0..5);
/// assert_eq!(client.gather(&squares).await?, vec![0, 1, 4, 9, 16]);
/// client.close().await?;
/// # Ok(()) }
/// # futures::executor::block_on(run()).unwrap();
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    /// The task whose body this client was handed to ([`TaskContext::client`]): what it
    /// submits are that task's sub-tasks. `None` for every other client.
    parent: Option<TaskContext>,
}

/// Lives as long as some `Client` clone does; closes the core when the last one goes.
struct Shared {
    core: Arc<Core>,
    /// The coordination backend (locks, queues, ...), made at the first use of a primitive;
    /// `None` inside when the transport has none. See `coordination::backend_for`.
    coordination: std::sync::OnceLock<Option<Arc<dyn coordination::Backend>>>,
    /// Set for a client attached to a [`ClusterHandle`]: what it has of its own there.
    member: Option<cluster_handle::Member>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        match &self.member {
            // The cluster goes on for its other clients.
            Some(member) => member.close(),
            // Start the shutdown; nobody is left to wait for it.
            None => drop(self.core.shut_down()),
        }
        coordination::close_backend(&self.coordination);
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("executor", &self.shared.core.executor.name())
            .field("transport", &self.shared.core.transport)
            .field("closed", &self.shared.core.is_closed())
            .field("parent", &self.parent.as_ref().map(TaskContext::key))
            .finish()
    }
}

impl Client {
    /// Starts configuring a client. See [`ClientBuilder`].
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::builder().workers(2).build_blocking()?;
    /// assert_eq!(client.stats().workers.len(), 2);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client with the defaults: the ambient executor (see
    /// [Choosing an executor](crate#choosing-an-executor)) and one in-process worker per core.
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// assert_eq!(client.submit(|x: u8| x + 1, 1).result()?, 2);
    /// // One in-process worker per core the process may use.
    /// let cores = std::thread::available_parallelism().map_or(1, usize::from);
    /// assert_eq!(client.stats().workers.len(), cores);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// When the workers cannot be started.
    pub fn new() -> Result<Client, Error> {
        Client::builder().build_now()
    }

    pub(crate) fn from_core(core: Arc<Core>) -> Client {
        Client {
            shared: Arc::new(Shared {
                core,
                coordination: std::sync::OnceLock::new(),
                member: None,
            }),
            parent: None,
        }
    }

    /// The task this client submits sub-tasks of, if it came from a [`TaskContext`].
    pub(crate) fn parent(&self) -> Option<&TaskContext> {
        self.parent.as_ref()
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.shared.core
    }

    /// The executor this client runs on.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskweave::{Error, ExecutorExt};
    ///
    /// let client = taskweave::Client::new()?;
    /// assert_eq!(client.executor().name(), "embedded"); // outside any runtime
    /// // Its timer serves timeouts in async code.
    /// let never = futures::future::pending::<()>();
    /// let waited = futures::executor::block_on(client.executor().timeout(Duration::from_millis(1), never));
    /// assert!(matches!(waited, Err(Error::Timeout { .. })));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.core().executor
    }

    /// The blocking view of this client, for code that is not async.
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let squares = client.map(|x: u32| x * x, 1..4);
    /// assert_eq!(client.blocking().gather(&squares)?, vec![1, 4, 9]);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn blocking(&self) -> BlockingClient<'_> {
        BlockingClient { client: self }
    }

    /// Whether [`close`](Client::close) was called (or the last clone dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let clone = client.clone();
    /// assert!(!clone.is_closed());
    /// client.blocking().close()?;
    /// assert!(clone.is_closed(), "clones share one cluster");
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        match &self.shared.member {
            Some(member) => member.is_closed(),
            None => self.core().is_closed(),
        }
    }

    /// Whether this client is attached to a [`ClusterHandle`] and closed while the cluster
    /// runs on (its submissions are refused here, not by the core).
    pub(crate) fn is_detached_member(&self) -> bool {
        self.shared.member.as_ref().is_some_and(|member| member.is_closed())
            && !self.core().is_closed()
    }

    /// On an attached client closed while its cluster runs on, resolves `job`, made for
    /// `operation`, with [`TaskError::ClientClosed`](crate::TaskError::ClientClosed) and
    /// returns true (it must not be submitted).
    pub(crate) fn refuse_if_detached(&self, job: &Arc<core::Job>, operation: &'static str) -> bool {
        if self.shared.member.is_none() || !self.is_detached_member() {
            return false;
        }
        job.resolve(Err(cluster_handle::closed_error(job, operation)));
        true
    }

    /// Notes a task an attached client submitted (or got a view of), for its close.
    pub(crate) fn track(&self, job: &Arc<core::Job>) {
        if let Some(member) = &self.shared.member {
            member.track(job);
        }
    }

    /// [`Error::Closed`] naming `operation` when the client is closed.
    pub(crate) fn refuse_if_closed(&self, operation: &'static str) -> Result<(), Error> {
        if self.is_closed() { Err(Error::Closed { operation }) } else { Ok(()) }
    }

    /// What the client holds and what its workers are doing, right now: tasks by state,
    /// totals, values held, per-worker counts and the transport in use. See [`ClientStats`].
    ///
    /// Cheap: it reads counters kept anyway (one short lock, a few atomic loads), never scans
    /// the tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let futures = client.map(|x: u64| x * 2, 0..10);
    /// client.blocking().gather(&futures)?;
    /// assert_eq!(client.stats().tasks.total_finished, 10);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> ClientStats {
        stats::snapshot(self.core())
    }

    /// A [`futures::Stream`] of [`stats`](Client::stats) snapshots for dashboards: one at
    /// once, then one every `interval` (timed by the client's executor), ending after the
    /// client closes.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use std::time::Duration;
    ///
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// let mut stats = client.stats_stream(Duration::from_millis(100));
    /// let first = stats.next().await.expect("the first snapshot comes at once");
    /// assert_eq!(first.tasks.held(), 0);
    /// client.close().await?;
    /// // After the close, at most one more snapshot, then the stream ends.
    /// while stats.next().await.is_some() {}
    /// # Ok(()) }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub fn stats_stream(&self, interval: std::time::Duration) -> StatsStream {
        StatsStream::new(Arc::clone(self.core()), interval)
    }

    /// The time since the client started, on its executor's clock
    /// ([`Executor::now`]): the scale of the times in [`task_stream`](Client::task_stream) and
    /// [`story`](Client::story).
    pub fn elapsed(&self) -> std::time::Duration {
        self.core().elapsed()
    }

    /// The runs that ended within `range` (times since the client started, as
    /// [`elapsed`](Client::elapsed) gives them; `..` for every run still held), oldest first:
    /// one [`TaskRecord`](events::TaskRecord) per run, with its key, name, worker, start, stop
    /// and status. Dask's `get_task_stream`.
    ///
    /// Reads the client's task-event ring (see [`events`] for its bounds); empty when
    /// recording is off ([`ClientBuilder::task_events`]). Scans the ring under the scheduler
    /// lock: a call for a person or a report, not for every task.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(2).build_blocking()?;
    /// let since = client.elapsed();
    /// let futures = client.map(|x: u64| x * 2, 0..10);
    /// client.blocking().gather(&futures)?;
    /// let records = client.task_stream(since..);
    /// assert_eq!(records.len(), 10);
    /// for record in &records {
    ///     assert!(record.start.unwrap() <= record.stop);
    ///     assert!(record.worker.as_deref().unwrap().starts_with("worker-"));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn task_stream(
        &self,
        range: impl std::ops::RangeBounds<std::time::Duration>,
    ) -> Vec<events::TaskRecord> {
        use std::ops::Bound;
        let nanos = |at: &std::time::Duration| u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
        let from = match range.start_bound() {
            Bound::Included(at) => nanos(at),
            Bound::Excluded(at) => nanos(at).saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(at) => nanos(at).saturating_add(1),
            Bound::Excluded(at) => nanos(at),
            Bound::Unbounded => u64::MAX,
        };
        self.core().with_events(|ring| ring.records(from, to)).unwrap_or_default()
    }

    /// A live [`Stream`](futures::Stream) of [`TaskRecord`](events::TaskRecord)s: each run as
    /// it ends, from now on, until the client closes.
    ///
    /// A slow consumer never slows the client: the stream reads the client's bounded ring, so
    /// one that falls more than the ring's capacity behind loses the oldest records it had not
    /// read, counted by [`TaskStreamLive::missed`](events::TaskStreamLive::missed). Ends at
    /// once when recording is off.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    ///
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// let mut live = client.task_stream_live();
    /// let future = client.submit(|x: u64| x + 1, 1);
    /// let record = live.next().await.expect("the run is reported");
    /// assert_eq!(&record.key, future.key());
    /// assert_eq!(future.await?, 2);
    /// client.close().await?;
    /// # Ok(()) }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub fn task_stream_live(&self) -> events::TaskStreamLive {
        events::TaskStreamLive::new(Arc::clone(self.core()))
    }

    /// The transitions of one task, in order: submitted, queued, started on which worker,
    /// finished or failed (with the error; for a dependent, the error names the root task
    /// that failed first), lost, retried (queued again), cancelled. Dask's `story`.
    ///
    /// Only what the client's task-event ring still holds (see [`events`]): a task's events
    /// are stored when a run of it ends, or when it fails or is cancelled without running,
    /// so a task still waiting or running has no story yet. Empty for a key the ring does not
    /// hold, and when recording is off. Scans the ring under its own lock (not the scheduler's:
    /// submissions go on meanwhile; workers' reports of finished runs wait for it).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::events::TaskTransition;
    ///
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build_blocking()?;
    /// let future = client.submit(|x: u64| x + 1, 1);
    /// future.result()?;
    /// let story: Vec<_> = client.story(&future).into_iter().map(|event| event.transition).collect();
    /// assert_eq!(story[0], TaskTransition::Submitted);
    /// assert_eq!(story[1], TaskTransition::Queued { attempt: 1 });
    /// assert!(matches!(story[2], TaskTransition::Started { attempt: 1, .. }));
    /// assert!(matches!(story[3], TaskTransition::Finished { attempt: 1, .. }));
    /// # Ok(()) }
    /// ```
    pub fn story(&self, task: &impl AsRef<crate::scheduler::TaskKey>) -> Vec<events::TaskEvent> {
        let key = task.as_ref();
        self.core().with_events(|ring| ring.story(key)).unwrap_or_default()
    }

    /// How many task events the client recorded, holds and dropped to make room, and its
    /// ring's capacity. See [`events`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().task_events(4).build_blocking()?;
    /// client.blocking().gather(&client.map(|x: u64| x, 0..10))?;
    /// let counts = client.task_event_counts();
    /// assert_eq!(counts.held, 4);
    /// assert_eq!(counts.dropped, counts.recorded - 4);
    /// # Ok(()) }
    /// ```
    pub fn task_event_counts(&self) -> events::TaskEventCounts {
        self.core().with_events(|ring| ring.counts()).unwrap_or_default()
    }

    /// Configures a submission: key, purity, priority, retries. See [`TaskBuilder`].
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let future = client.task().key("answer").priority(10).submit(|x: i64| x * 2, 21);
    /// assert_eq!(future.key().to_string(), "answer");
    /// assert_eq!(future.result()?, 42);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn task(&self) -> TaskBuilder<'_> {
        TaskBuilder::new(self)
    }

    /// Configures a task that runs after `deps` and receives their values. See
    /// [`Dependencies`] for what `deps` can be.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let x = client.submit(|x: i64| x + 1, 1);
    /// let y = client.after(&x).submit(|x: i64| x * 2);
    /// let z = client.after((&x, &y)).submit(|(x, y): (i64, i64)| x + y);
    /// assert_eq!(z.result()?, 6);
    /// # Ok(()) }
    /// ```
    pub fn after<D: Dependencies>(&self, deps: D) -> TaskBuilder<'_, After<D>> {
        TaskBuilder::with_deps(self, deps)
    }

    /// Runs `function(argument)` on a worker and returns its future at once.
    ///
    /// Never blocks and needs no `.await`. A panic in `function` becomes
    /// [`TaskError::Panicked`](crate::TaskError::Panicked) on the future; the worker survives.
    /// After [`close`](Client::close), the future resolves at once to
    /// [`TaskError::ClientClosed`](crate::TaskError::ClientClosed).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let future = client.submit(|x: i64| x + 1, 10);
    /// assert_eq!(future.result()?, 11);
    /// # Ok(()) }
    /// ```
    pub fn submit<F, A, R>(&self, function: F, argument: A) -> TaskFuture<R>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Clone + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        self.task().submit(function, argument)
    }

    /// Like [`submit`](Client::submit) for a function that can fail: an `Err` becomes
    /// [`TaskError::Failed`](crate::TaskError::Failed) with the error's text.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let parsed = client.try_submit(|text: &'static str| text.parse::<i32>(), "nope");
    /// let error = parsed.result().unwrap_err();
    /// assert!(error.to_string().contains("invalid digit"));
    /// # Ok(()) }
    /// ```
    pub fn try_submit<F, A, T, E>(&self, function: F, argument: A) -> TaskFuture<T>
    where
        F: Fn(A) -> Result<T, E> + Send + Sync + 'static,
        A: Clone + Send + Sync + 'static,
        T: Send + Sync + 'static,
        E: fmt::Display,
    {
        self.task().try_submit(function, argument)
    }

    /// Runs an async body on the client's executor instead of a worker: for I/O-bound work
    /// that waits rather than computes. The future has the same semantics as
    /// [`submit`](Client::submit)'s; cancelling it drops the running body.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let future = client.submit_async(|x: u64| async move { x * 3 }, 5);
    /// assert_eq!(future.result()?, 15);
    /// # Ok(()) }
    /// ```
    pub fn submit_async<F, A, Fut, R>(&self, function: F, argument: A) -> TaskFuture<R>
    where
        F: Fn(A) -> Fut + Send + Sync + 'static,
        A: Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = R> + Send + 'static,
        R: Send + Sync + 'static,
    {
        self.task().submit_async(function, argument)
    }

    /// Submits `function(item)` for every item, in order; returns the futures in the same
    /// order. An empty input gives an empty vector.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let futures = client.map(|x: i32| x * 10, vec![1, 2, 3]);
    /// assert_eq!(client.blocking().gather(&futures)?, vec![10, 20, 30]);
    /// # Ok(()) }
    /// ```
    #[must_use = "dropping the futures releases their tasks, which then may never run; keep them, or pass them to `client.fire_and_forget`"]
    pub fn map<F, I, R>(&self, function: F, items: I) -> Vec<TaskFuture<R>>
    where
        F: Fn(I::Item) -> R + Send + Sync + 'static,
        I: IntoIterator,
        I::Item: Clone + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        self.task().map(function, items)
    }

    /// Submits `function(value)` for each future, each task running after its own future:
    /// Dask's `client.map(f, futures)`. To map over several inputs, zip them (the shortest
    /// wins): `client.map(f, xs.into_iter().zip(ys))` for values,
    /// [`map_after_each`](Client::map_after_each) for futures (or futures and values).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let numbers = client.map(|x: i64| x + 1, 0..3);
    /// let doubled = client.map_after(&numbers, |x: i64| x * 2);
    /// assert_eq!(client.blocking().gather(&doubled)?, vec![2, 4, 6]);
    /// # Ok(()) }
    /// ```
    #[must_use = "dropping the futures releases their tasks, which then may never run; keep them, or pass them to `client.fire_and_forget`"]
    pub fn map_after<T, F, R>(&self, futures: &[TaskFuture<T>], function: F) -> Vec<TaskFuture<R>>
    where
        T: Clone + Send + Sync + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        let function = Arc::new(function);
        // The tasks reach the scheduler together, in a few holds of its lock.
        self.core().submit_together(|| {
            futures
                .iter()
                .map(|future| {
                    let function = Arc::clone(&function);
                    self.after(future).submit(move |value| function(value))
                })
                .collect()
        })
    }

    /// Submits one task per item of `items`, each running after the futures of its item and
    /// receiving their values: Dask's `client.map(f, xs, ys)` over futures. An item is
    /// anything [`after`](Client::after) takes — one future, a tuple of futures (zip several
    /// lists of futures: the shortest wins), a slice of futures — so plain values go in as
    /// scattered futures ([`scatter_each`](Client::scatter_each)).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let xs = client.map(|x: i64| x + 1, 0..3);
    /// let ys = client.scatter_each([10_i64, 20, 30, 40]);
    /// let sums = client.map_after_each(|(x, y): (i64, i64)| x + y, xs.iter().zip(&ys));
    /// assert_eq!(client.blocking().gather(&sums)?, vec![11, 22, 33]);
    /// # Ok(()) }
    /// ```
    #[must_use = "dropping the futures releases their tasks, which then may never run; keep them, or pass them to `client.fire_and_forget`"]
    pub fn map_after_each<D, F, R>(
        &self,
        function: F,
        items: impl IntoIterator<Item = D>,
    ) -> Vec<TaskFuture<R>>
    where
        D: Dependencies,
        F: Fn(D::Values) -> R + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        self.task().map_after_each(function, items)
    }

    /// Runs `build` and submits every task it submits through this client together, at its
    /// end: the bulk form for a graph of many dependent tasks, made with the ordinary calls
    /// (`submit`, `after(..).submit`, `map`, `task()` with options) on the client `build`
    /// is given. The tasks reach the scheduler in submission order, under one hold of its
    /// lock per 32 tasks instead of one per task, and the bookkeeping for the whole batch is
    /// made once: a graph of thousands of small tasks is submitted several times faster
    /// than by the same calls outside a batch (see `BENCHMARKS.md`). Returns what `build`
    /// returns, typically the futures.
    ///
    /// The futures made inside work there as anywhere: asking one's
    /// [`state`](TaskFuture::state), [`cancel`](TaskFuture::cancel)ling it, or blocking on
    /// any wait first submits what the batch holds so far (the rest stays held back);
    /// dropping one before the end releases its task once the batch is submitted, as
    /// outside. A task with a key shared with other submissions (a
    /// [`pure`](TaskBuilder::pure) task, or one given a [`key`](TaskBuilder::key)) goes
    /// through at once, after what is held back, since it may find an existing task. A
    /// panic in `build` still submits what it had submitted. Batches nest (an inner one
    /// joins the outer one) and are per thread: submissions from other threads meanwhile
    /// go through as usual.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// // A chain of 1,000 dependent tasks, submitted in one go.
    /// let last = client.batch(|client| {
    ///     let mut last = client.submit(|x: u64| x + 1, 0);
    ///     for _ in 1..1_000 {
    ///         last = client.after(&last).submit(|x: u64| x + 1);
    ///     }
    ///     last
    /// });
    /// assert_eq!(last.result()?, 1_000);
    /// # Ok(()) }
    /// ```
    pub fn batch<R>(&self, build: impl FnOnce(&Client) -> R) -> R {
        self.core().submit_together(|| build(self))
    }

    /// Puts `value` into the cluster and returns a finished future for it, to pass to tasks
    /// as a dependency: every dependent reads the one stored value, nothing is copied per
    /// dependent (Dask's `scatter`).
    ///
    /// The value stays in the client's process, on every transport: on Redis a registered
    /// task cannot depend on it (its workers cannot read it) and fails saying so; pass the
    /// value as the task's input there instead.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let table = client.scatter(std::sync::Arc::new(vec![1u64, 2, 3]));
    /// assert!(table.is_done());
    /// let sum = client.after(&table).submit(|table: std::sync::Arc<Vec<u64>>| table.iter().sum::<u64>());
    /// assert_eq!(sum.result()?, 6);
    /// # Ok(()) }
    /// ```
    pub fn scatter<T: Send + Sync + 'static>(&self, value: T) -> TaskFuture<T> {
        self.task().scatter(value)
    }

    /// Scatters each value of `values` as its own future (Dask's `scatter` of a list):
    /// dependents of one element read only that element.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let parts = client.scatter_each(vec![vec![1u8, 2], vec![3]]);
    /// assert_eq!(parts.len(), 2);
    /// let sizes = client.map_after(&parts, |part: Vec<u8>| part.len());
    /// assert_eq!(client.blocking().gather(&sizes)?, vec![2, 1]);
    /// # Ok(()) }
    /// ```
    #[must_use = "dropping the futures releases the scattered values"]
    pub fn scatter_each<T: Send + Sync + 'static>(
        &self,
        values: impl IntoIterator<Item = T>,
    ) -> Vec<TaskFuture<T>> {
        self.task().scatter_each(values)
    }

    /// Lets each task run to completion even if every handle to it is dropped (Dask's
    /// `fire_and_forget`). Its value is released once it finishes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let client = taskweave::Client::new()?;
    /// let (report, reports) = std::sync::mpsc::channel();
    /// let future = client.submit(move |x: u32| report.send(x).is_ok(), 7);
    /// client.fire_and_forget(std::slice::from_ref(&future));
    /// drop(future); // the last handle: without `fire_and_forget`, the task might never run
    /// assert_eq!(reports.recv_timeout(Duration::from_secs(10)).unwrap(), 7);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn fire_and_forget<T>(&self, futures: &[TaskFuture<T>]) {
        for future in futures {
            self.core().feed(Event::Pinned { id: future.handle.job.id });
        }
    }

    /// Cancels each task (and every task depending on it), in order, and says what was done
    /// to each; see [`TaskFuture::cancel`]. A task cancelled by the cascade from one before
    /// it in `futures` answers [`CancelOutcome::AlreadyCancelled`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use taskweave::CancelOutcome;
    ///
    /// let client = taskweave::Client::new()?;
    /// let x = client.submit(|n: i64| n + 1, 1);
    /// let y = client.after(&x).submit(|x: i64| x * 10);
    /// assert_eq!(y.result()?, 20);
    /// let answers = client.cancel(&[x, y]);
    /// assert_eq!(answers, [CancelOutcome::CancelledAfterFinishing, CancelOutcome::AlreadyCancelled]);
    /// # Ok(()) }
    /// ```
    pub fn cancel<T>(&self, futures: &[TaskFuture<T>]) -> Vec<CancelOutcome> {
        futures.iter().map(TaskFuture::cancel).collect()
    }

    /// Runs each failed task again, in order, and says what was done to each; see
    /// [`TaskFuture::retry`] (Dask's `client.retry(futures)`). A task already re-run by the
    /// retry of one before it in `futures` answers [`RetryOutcome::NotFailed`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use taskweave::RetryOutcome;
    ///
    /// static CALLS: AtomicU32 = AtomicU32::new(0);
    /// let client = taskweave::Client::new()?;
    /// let flaky = client.try_submit(
    ///     |_: ()| if CALLS.fetch_add(1, Ordering::SeqCst) == 0 { Err("first call fails") } else { Ok(1) },
    ///     (),
    /// );
    /// let fine = client.submit(|x: i32| x, 2);
    /// assert!(flaky.result().is_err());
    /// fine.result()?;
    /// let futures = [flaky, fine];
    /// assert_eq!(client.retry(&futures), [RetryOutcome::Rerunning, RetryOutcome::NotFailed]);
    /// assert_eq!(client.blocking().gather(&futures)?, [1, 2]);
    /// # Ok(()) }
    /// ```
    pub fn retry<T>(&self, futures: &[TaskFuture<T>]) -> Vec<RetryOutcome> {
        futures.iter().map(TaskFuture::retry).collect()
    }

    /// Closes the client: nothing new is accepted, unfinished tasks resolve to
    /// [`TaskError::Cancelled`](crate::TaskError::Cancelled), and the workers stop. Resolves
    /// when they have. Calling it again (from any clone) returns at once.
    ///
    /// A client attached to a [`ClusterHandle`] closes alone: its unfinished tasks are
    /// cancelled (not a shared task another client of the cluster holds), its holds on
    /// shared keys are given up, and the workers go on serving the other clients.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::TaskError;
    ///
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// let done = client.submit(|x: i32| x + 1, 1);
    /// assert_eq!((&done).await?, 2);
    /// client.close().await?;
    /// assert!(client.is_closed());
    /// // A closed client keeps the outcomes its futures hold, and refuses new work.
    /// assert_eq!(done.await?, 2);
    /// let late = client.submit(|x: i32| x, 3);
    /// assert!(matches!(late.await, Err(TaskError::ClientClosed { .. })));
    /// # Ok(()) }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for transports whose shutdown can fail.
    ///
    /// # Cancel safety
    ///
    /// The shutdown starts at the first poll and goes on if the future is dropped.
    pub async fn close(&self) -> Result<(), Error> {
        self.close_coordination();
        if let Some(member) = &self.shared.member {
            // Attached to a cluster: this client's tasks and holds only.
            member.close();
            return Ok(());
        }
        if let Some(stopped) = self.core().shut_down() {
            stopped.await;
        }
        Ok(())
    }

    /// The workers serving this client now: the in-process worker loops, or the worker
    /// processes of a distributed transport whose heartbeat has not expired.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(3).build().await?;
    /// let workers = client.workers().await?;
    /// assert_eq!(workers.len(), 3);
    /// assert_eq!(workers[0].queue, "in-process");
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when the transport cannot be asked (Redis is away).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future changes nothing.
    pub async fn workers(&self) -> Result<Vec<crate::transport::WorkerInfo>, Error> {
        self.refuse_if_closed("workers")?;
        self.core().transport.workers().await
    }
}
