//! The scheduler ↔ worker seam: a [`Transport`] carries ready tasks to workers and their
//! outcomes back.
//!
//! # Guarantees every backend gives
//!
//! - every task given to [`Transport::dispatch`] is reported exactly once to the
//!   [`CompletionSink`] — with its outcome, or as lost ([`CompletionSink::lost`]) when the
//!   worker running it died — unless the transport was closed first;
//! - a panic in a task body is reported as a panic, never lost with its worker;
//! - after [`Transport::close`] no new task starts, and the returned future resolves once the
//!   workers have stopped.
//!
//! The conformance suite (`taskweave::testing`, feature `testing`) runs the same test
//! bodies against every backend, ours and yours, to hold them to this.

mod event_clock;
mod in_process;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod stats;

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Instant;

pub(crate) use event_clock::EventClock;
pub use in_process::InProcessTransport;
pub use stats::{TransportStats, WorkerStats};

use crate::Error;
use crate::error::TaskError;
use crate::executor::{BoxFuture, Executor};
use crate::job::Job;
pub use crate::job::{TaskFailure, TaskOutcome, TaskRun, TaskValue};
use crate::key::{TaskId, TaskKey};

/// Carries ready tasks to workers and their outcomes back to the client.
///
/// The client calls [`start`](Transport::start) once, then [`dispatch`](Transport::dispatch)
/// for every task the scheduler lets run (never more than [`capacity`](Transport::capacity)
/// worker tasks at once), [`abort`](Transport::abort) when a dispatched task is cancelled,
/// [`withdraw`](Transport::withdraw) when one lost its last handle before it reported,
/// [`release`](Transport::release) when a task's value is no longer needed, and
/// [`close`](Transport::close) at the end. A worker takes a [`ReadyTask`], runs it
/// ([`ReadyTask::run`] for a blocking body, [`ReadyTask::run_async`] for an async one; or,
/// in another process, the registered task named by [`ReadyTask::task_name`] with
/// [`ReadyTask::encode_input`]), and reports a [`TaskOutcome`] to the [`CompletionSink`]
/// given at start: a value, a failure, a panic, [`NotRun`](TaskOutcome::NotRun) or
/// [`Lost`](TaskOutcome::Lost).
///
/// # A complete transport
///
/// Every method below points here. This transport runs each blocking body with
/// [`Executor::spawn_blocking`] and each async body as a task on the executor; it is
/// written against the public API only, as a crate of yours would be:
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::OnceLock;
///
/// use taskweave::executor::BoxFuture;
/// use taskweave::transport::{CompletionSink, ReadyTask, TaskOutcome, Transport};
/// use taskweave::{Client, Error, Executor, ExecutorExt, TaskError};
///
/// #[derive(Debug, Default)]
/// struct OnTheExecutor {
///     started: OnceLock<(Arc<dyn Executor>, CompletionSink)>,
///     closed: AtomicBool,
/// }
///
/// impl Transport for OnTheExecutor {
///     fn name(&self) -> &'static str {
///         "on-the-executor"
///     }
///
///     fn capacity(&self) -> usize {
///         4 // blocking bodies at once; the scheduler queues the rest
///     }
///
///     fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error> {
///         let _ = self.started.set((executor, sink));
///         Ok(())
///     }
///
///     fn dispatch(&self, task: ReadyTask) {
///         let Some((executor, sink)) = self.started.get() else { return };
///         let sink = sink.clone();
///         if self.closed.load(Ordering::Acquire) {
///             return sink.complete(&task, TaskOutcome::NotRun);
///         }
///         let (reported, reporter) = (task.clone(), sink.clone());
///         let spawned = if task.is_async() {
///             executor.spawn_task(async move {
///                 let outcome = task.run_async().await;
///                 sink.complete(&task, outcome);
///             })
///         } else {
///             executor.spawn_blocking(Box::new(move || {
///                 // Cancelled while it waited: do not start it, give its slot back.
///                 let outcome = if task.is_resolved() { TaskOutcome::NotRun } else { task.run() };
///                 sink.complete(&task, outcome);
///             }))
///         };
///         if let Err(error) = spawned {
///             reporter.complete(&reported, TaskOutcome::failed(format!("not started: {error}")));
///         }
///     }
///
///     fn close(&self) -> BoxFuture<()> {
///         // Bodies already handed to the executor finish there; nothing new starts.
///         self.closed.store(true, Ordering::Release);
///         Box::pin(async {})
///     }
/// }
///
/// let client = Client::builder().transport(OnTheExecutor::default()).build_blocking()?;
/// assert_eq!(client.submit(|x: u32| x + 1, 1).result()?, 2);
/// assert_eq!(client.submit_async(|x: u32| async move { x * 3 }, 2).result()?, 6);
/// let failed = client.try_submit(|x: &str| x.parse::<u8>(), "x").result();
/// assert!(matches!(failed, Err(Error::Task(TaskError::Failed { .. }))));
/// let panicked = client.submit(|_: ()| -> u8 { panic!("boom") }, ()).result();
/// assert!(matches!(panicked, Err(Error::Task(TaskError::Panicked { .. }))));
/// client.blocking().close()?;
/// # Ok::<(), Error>(())
/// ```
///
/// A transport whose workers live in other processes sends [`ReadyTask::task_name`] and
/// [`ReadyTask::encode_input`] instead of running the body, and turns the bytes that come
/// back into an outcome with [`ReadyTask::decode_output`]; the Redis transport
/// (`transport::redis`, feature `redis`) is one.
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// A short name for `Debug` output and statistics, such as `"in-process"`. See the
    /// [complete transport](Transport#a-complete-transport).
    ///
    /// # Examples
    ///
    /// From a transport that runs each blocking body with
    /// [`Executor::spawn_blocking`] (the [complete transport](Transport#a-complete-transport)
    /// has all of it):
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicBool, Ordering};
    /// # use std::sync::{Arc, Mutex, OnceLock};
    /// # use taskweave::executor::BoxFuture;
    /// # use taskweave::scheduler::{TaskId, TaskKey, TaskState};
    /// # use taskweave::transport::{CompletionSink, ReadyTask, TaskOutcome, Transport};
    /// # use taskweave::{Client, Error, Executor};
    /// # /// Runs each blocking body with `spawn_blocking`; records what the client asked.
    /// # #[derive(Debug, Default)]
    /// # struct Pool {
    /// #     started: OnceLock<(Arc<dyn Executor>, CompletionSink)>,
    /// #     seen: Arc<Seen>,
    /// # }
    /// # #[derive(Debug, Default)]
    /// # struct Seen {
    /// #     aborted: Mutex<Vec<TaskId>>,
    /// #     released: Mutex<Vec<TaskKey>>,
    /// #     closed: AtomicBool,
    /// # }
    /// impl Transport for Pool {
    ///     fn name(&self) -> &'static str {
    ///         "pool"
    ///     }
    /// #     fn capacity(&self) -> usize {
    /// #         2
    /// #     }
    /// #     fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error> {
    /// #         let _ = self.started.set((executor, sink));
    /// #         Ok(())
    /// #     }
    /// #     fn dispatch(&self, task: ReadyTask) {
    /// #         let (executor, sink) = self.started.get().expect("started before any dispatch");
    /// #         let (sink, reporter, reported) = (sink.clone(), sink.clone(), task.clone());
    /// #         let spawned = executor.spawn_blocking(Box::new(move || {
    /// #             // Cancelled while it waited: do not start it, give its slot back.
    /// #             let outcome = if task.is_resolved() { TaskOutcome::NotRun } else { task.run() };
    /// #             sink.complete(&task, outcome);
    /// #         }));
    /// #         if let Err(error) = spawned {
    /// #             reporter.complete(&reported, TaskOutcome::failed(format!("not started: {error}")));
    /// #         }
    /// #     }
    /// #     fn abort(&self, id: TaskId) {
    /// #         // A body already running cannot be stopped from here; one still waiting for a
    /// #         // thread sees `is_resolved` and reports `NotRun`.
    /// #         self.seen.aborted.lock().unwrap().push(id);
    /// #     }
    /// #     fn release(&self, key: &TaskKey) {
    /// #         // Values live in the client here; a store would delete `key`'s value.
    /// #         self.seen.released.lock().unwrap().push(key.clone());
    /// #     }
    /// #     fn close(&self) -> BoxFuture<()> {
    /// #         // Nothing new starts; bodies already handed to the executor finish there.
    /// #         self.seen.closed.store(true, Ordering::Release);
    /// #         Box::pin(async {})
    /// #     }
    ///     // ...
    /// }
    ///
    /// let client = Client::builder().transport(Pool::default()).build_blocking()?;
    /// assert_eq!(client.stats().transport, "pool");
    /// assert!(format!("{client:?}").contains("Pool"));
    /// # Ok::<(), Error>(())
    /// ```
    fn name(&self) -> &'static str;

    /// How many worker tasks may be dispatched and unreported at once. The scheduler keeps
    /// the rest in its priority queue (async bodies take no slot). See the
    /// [complete transport](Transport#a-complete-transport).
    ///
    /// # Examples
    ///
    /// From a transport that runs each blocking body with
    /// [`Executor::spawn_blocking`] (the [complete transport](Transport#a-complete-transport)
    /// has all of it):
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicBool, Ordering};
    /// # use std::sync::{Arc, Mutex, OnceLock};
    /// # use taskweave::executor::BoxFuture;
    /// # use taskweave::scheduler::{TaskId, TaskKey, TaskState};
    /// # use taskweave::transport::{CompletionSink, ReadyTask, TaskOutcome, Transport};
    /// # use taskweave::{Client, Error, Executor};
    /// # /// Runs each blocking body with `spawn_blocking`; records what the client asked.
    /// # #[derive(Debug, Default)]
    /// # struct Pool {
    /// #     started: OnceLock<(Arc<dyn Executor>, CompletionSink)>,
    /// #     seen: Arc<Seen>,
    /// # }
    /// # #[derive(Debug, Default)]
    /// # struct Seen {
    /// #     aborted: Mutex<Vec<TaskId>>,
    /// #     released: Mutex<Vec<TaskKey>>,
    /// #     closed: AtomicBool,
    /// # }
    /// impl Transport for Pool {
    /// #     fn name(&self) -> &'static str {
    /// #         "pool"
    /// #     }
    ///     fn capacity(&self) -> usize {
    ///         2
    ///     }
    /// #     fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error> {
    /// #         let _ = self.started.set((executor, sink));
    /// #         Ok(())
    /// #     }
    /// #     fn dispatch(&self, task: ReadyTask) {
    /// #         let (executor, sink) = self.started.get().expect("started before any dispatch");
    /// #         let (sink, reporter, reported) = (sink.clone(), sink.clone(), task.clone());
    /// #         let spawned = executor.spawn_blocking(Box::new(move || {
    /// #             // Cancelled while it waited: do not start it, give its slot back.
    /// #             let outcome = if task.is_resolved() { TaskOutcome::NotRun } else { task.run() };
    /// #             sink.complete(&task, outcome);
    /// #         }));
    /// #         if let Err(error) = spawned {
    /// #             reporter.complete(&reported, TaskOutcome::failed(format!("not started: {error}")));
    /// #         }
    /// #     }
    /// #     fn abort(&self, id: TaskId) {
    /// #         // A body already running cannot be stopped from here; one still waiting for a
    /// #         // thread sees `is_resolved` and reports `NotRun`.
    /// #         self.seen.aborted.lock().unwrap().push(id);
    /// #     }
    /// #     fn release(&self, key: &TaskKey) {
    /// #         // Values live in the client here; a store would delete `key`'s value.
    /// #         self.seen.released.lock().unwrap().push(key.clone());
    /// #     }
    /// #     fn close(&self) -> BoxFuture<()> {
    /// #         // Nothing new starts; bodies already handed to the executor finish there.
    /// #         self.seen.closed.store(true, Ordering::Release);
    /// #         Box::pin(async {})
    /// #     }
    ///     // ...
    /// }
    ///
    /// let client = Client::builder().transport(Pool::default()).build_blocking()?;
    /// let (release, gate) = flume::unbounded::<()>();
    /// let gated: Vec<_> = (0..3)
    ///     .map(|_| {
    ///         let gate = gate.clone();
    ///         client.submit(move |_: ()| gate.recv().is_ok(), ())
    ///     })
    ///     .collect();
    /// // Two slots: the third task waits in the scheduler's queue, not in the transport.
    /// assert_eq!(gated[2].state(), Some(TaskState::Ready));
    /// (0..3).for_each(|_| release.send(()).unwrap());
    /// assert_eq!(client.blocking().gather(&gated)?, [true, true, true]);
    /// # Ok::<(), Error>(())
    /// ```
    fn capacity(&self) -> usize;

    /// Starts the workers (or connects to them), reporting to `sink`. Called once, before
    /// any other method but [`name`](Transport::name) and [`capacity`](Transport::capacity).
    /// See the [complete transport](Transport#a-complete-transport).
    ///
    /// # Examples
    ///
    /// From a transport that runs each blocking body with
    /// [`Executor::spawn_blocking`] (the [complete transport](Transport#a-complete-transport)
    /// has all of it):
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicBool, Ordering};
    /// # use std::sync::{Arc, Mutex, OnceLock};
    /// # use taskweave::executor::BoxFuture;
    /// # use taskweave::scheduler::{TaskId, TaskKey, TaskState};
    /// # use taskweave::transport::{CompletionSink, ReadyTask, TaskOutcome, Transport};
    /// # use taskweave::{Client, Error, Executor};
    /// # /// Runs each blocking body with `spawn_blocking`; records what the client asked.
    /// # #[derive(Debug, Default)]
    /// # struct Pool {
    /// #     started: OnceLock<(Arc<dyn Executor>, CompletionSink)>,
    /// #     seen: Arc<Seen>,
    /// # }
    /// # #[derive(Debug, Default)]
    /// # struct Seen {
    /// #     aborted: Mutex<Vec<TaskId>>,
    /// #     released: Mutex<Vec<TaskKey>>,
    /// #     closed: AtomicBool,
    /// # }
    /// impl Transport for Pool {
    /// #     fn name(&self) -> &'static str {
    /// #         "pool"
    /// #     }
    /// #     fn capacity(&self) -> usize {
    /// #         2
    /// #     }
    ///     fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error> {
    ///         let _ = self.started.set((executor, sink));
    ///         Ok(())
    ///     }
    /// #     fn dispatch(&self, task: ReadyTask) {
    /// #         let (executor, sink) = self.started.get().expect("started before any dispatch");
    /// #         let (sink, reporter, reported) = (sink.clone(), sink.clone(), task.clone());
    /// #         let spawned = executor.spawn_blocking(Box::new(move || {
    /// #             // Cancelled while it waited: do not start it, give its slot back.
    /// #             let outcome = if task.is_resolved() { TaskOutcome::NotRun } else { task.run() };
    /// #             sink.complete(&task, outcome);
    /// #         }));
    /// #         if let Err(error) = spawned {
    /// #             reporter.complete(&reported, TaskOutcome::failed(format!("not started: {error}")));
    /// #         }
    /// #     }
    /// #     fn abort(&self, id: TaskId) {
    /// #         // A body already running cannot be stopped from here; one still waiting for a
    /// #         // thread sees `is_resolved` and reports `NotRun`.
    /// #         self.seen.aborted.lock().unwrap().push(id);
    /// #     }
    /// #     fn release(&self, key: &TaskKey) {
    /// #         // Values live in the client here; a store would delete `key`'s value.
    /// #         self.seen.released.lock().unwrap().push(key.clone());
    /// #     }
    /// #     fn close(&self) -> BoxFuture<()> {
    /// #         // Nothing new starts; bodies already handed to the executor finish there.
    /// #         self.seen.closed.store(true, Ordering::Release);
    /// #         Box::pin(async {})
    /// #     }
    ///     // ...
    /// }
    ///
    /// // The client calls `start` once, when it is built; keep the sink to report to.
    /// let client = Client::builder().transport(Pool::default()).build_blocking()?;
    /// assert_eq!(client.submit(|x: u32| x + 1, 1).result()?, 2);
    ///
    /// // A transport whose `start` fails makes the build fail with its error.
    /// #[derive(Debug)]
    /// struct Unreachable;
    /// impl Transport for Unreachable {
    ///     fn start(&self, _: Arc<dyn Executor>, _: CompletionSink) -> Result<(), Error> {
    ///         Err(Error::InvalidConfig { message: "no broker at 10.0.0.1:6379".into() })
    ///     }
    ///     // ...
    /// #   fn name(&self) -> &'static str { "unreachable" }
    /// #   fn capacity(&self) -> usize { 1 }
    /// #   fn dispatch(&self, _: ReadyTask) {}
    /// #   fn close(&self) -> BoxFuture<()> { Box::pin(async {}) }
    /// }
    /// let built = Client::builder().transport(Unreachable).build_blocking();
    /// assert!(matches!(built, Err(Error::InvalidConfig { .. })));
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// When the workers cannot be started, for example [`Error::ThreadSpawn`]; the client's
    /// build fails with it.
    fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error>;

    /// Sends one ready task to a worker. Must not block. Every task dispatched is reported
    /// exactly once to the sink. See the
    /// [complete transport](Transport#a-complete-transport).
    ///
    /// # Examples
    ///
    /// From a transport that runs each blocking body with
    /// [`Executor::spawn_blocking`] (the [complete transport](Transport#a-complete-transport)
    /// has all of it):
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicBool, Ordering};
    /// # use std::sync::{Arc, Mutex, OnceLock};
    /// # use taskweave::executor::BoxFuture;
    /// # use taskweave::scheduler::{TaskId, TaskKey, TaskState};
    /// # use taskweave::transport::{CompletionSink, ReadyTask, TaskOutcome, Transport};
    /// # use taskweave::{Client, Error, Executor};
    /// # /// Runs each blocking body with `spawn_blocking`; records what the client asked.
    /// # #[derive(Debug, Default)]
    /// # struct Pool {
    /// #     started: OnceLock<(Arc<dyn Executor>, CompletionSink)>,
    /// #     seen: Arc<Seen>,
    /// # }
    /// # #[derive(Debug, Default)]
    /// # struct Seen {
    /// #     aborted: Mutex<Vec<TaskId>>,
    /// #     released: Mutex<Vec<TaskKey>>,
    /// #     closed: AtomicBool,
    /// # }
    /// impl Transport for Pool {
    /// #     fn name(&self) -> &'static str {
    /// #         "pool"
    /// #     }
    /// #     fn capacity(&self) -> usize {
    /// #         2
    /// #     }
    /// #     fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error> {
    /// #         let _ = self.started.set((executor, sink));
    /// #         Ok(())
    /// #     }
    ///     fn dispatch(&self, task: ReadyTask) {
    ///         let (executor, sink) = self.started.get().expect("started before any dispatch");
    ///         let (sink, reporter, reported) = (sink.clone(), sink.clone(), task.clone());
    ///         let spawned = executor.spawn_blocking(Box::new(move || {
    ///             // Cancelled while it waited: do not start it, give its slot back.
    ///             let outcome = if task.is_resolved() { TaskOutcome::NotRun } else { task.run() };
    ///             sink.complete(&task, outcome);
    ///         }));
    ///         if let Err(error) = spawned {
    ///             reporter.complete(&reported, TaskOutcome::failed(format!("not started: {error}")));
    ///         }
    ///     }
    /// #     fn abort(&self, id: TaskId) {
    /// #         // A body already running cannot be stopped from here; one still waiting for a
    /// #         // thread sees `is_resolved` and reports `NotRun`.
    /// #         self.seen.aborted.lock().unwrap().push(id);
    /// #     }
    /// #     fn release(&self, key: &TaskKey) {
    /// #         // Values live in the client here; a store would delete `key`'s value.
    /// #         self.seen.released.lock().unwrap().push(key.clone());
    /// #     }
    /// #     fn close(&self) -> BoxFuture<()> {
    /// #         // Nothing new starts; bodies already handed to the executor finish there.
    /// #         self.seen.closed.store(true, Ordering::Release);
    /// #         Box::pin(async {})
    /// #     }
    ///     // ...
    /// }
    ///
    /// let client = Client::builder().transport(Pool::default()).build_blocking()?;
    /// assert_eq!(client.submit(|x: u32| x * 3, 2).result()?, 6);
    /// let panicked = client.submit(|_: ()| -> u8 { panic!("boom") }, ()).result();
    /// assert!(panicked.is_err(), "`run` caught the panic and reported it");
    /// # Ok::<(), Error>(())
    /// ```
    fn dispatch(&self, task: ReadyTask);

    /// The task `id`, dispatched and not yet reported, no longer needs to run: it was
    /// cancelled, or its client is closing. A transport that can should keep it from
    /// starting — workers check [`ReadyTask::is_resolved`] before they start a task (see
    /// the [complete transport](Transport#a-complete-transport)), the Redis transport
    /// removes its stream entry if no worker has begun it; an async body run with
    /// [`ReadyTask::run_async`] stops by itself. Either way the transport still reports the
    /// task once, with [`TaskOutcome::NotRun`] if it never ran, so that its slot is given
    /// back. Must not block. The default does nothing.
    ///
    /// # Examples
    ///
    /// From a transport that runs each blocking body with
    /// [`Executor::spawn_blocking`] (the [complete transport](Transport#a-complete-transport)
    /// has all of it):
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicBool, Ordering};
    /// # use std::sync::{Arc, Mutex, OnceLock};
    /// # use taskweave::executor::BoxFuture;
    /// # use taskweave::scheduler::{TaskId, TaskKey, TaskState};
    /// # use taskweave::transport::{CompletionSink, ReadyTask, TaskOutcome, Transport};
    /// # use taskweave::{Client, Error, Executor};
    /// # /// Runs each blocking body with `spawn_blocking`; records what the client asked.
    /// # #[derive(Debug, Default)]
    /// # struct Pool {
    /// #     started: OnceLock<(Arc<dyn Executor>, CompletionSink)>,
    /// #     seen: Arc<Seen>,
    /// # }
    /// # #[derive(Debug, Default)]
    /// # struct Seen {
    /// #     aborted: Mutex<Vec<TaskId>>,
    /// #     released: Mutex<Vec<TaskKey>>,
    /// #     closed: AtomicBool,
    /// # }
    /// impl Transport for Pool {
    /// #     fn name(&self) -> &'static str {
    /// #         "pool"
    /// #     }
    /// #     fn capacity(&self) -> usize {
    /// #         2
    /// #     }
    /// #     fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error> {
    /// #         let _ = self.started.set((executor, sink));
    /// #         Ok(())
    /// #     }
    /// #     fn dispatch(&self, task: ReadyTask) {
    /// #         let (executor, sink) = self.started.get().expect("started before any dispatch");
    /// #         let (sink, reporter, reported) = (sink.clone(), sink.clone(), task.clone());
    /// #         let spawned = executor.spawn_blocking(Box::new(move || {
    /// #             // Cancelled while it waited: do not start it, give its slot back.
    /// #             let outcome = if task.is_resolved() { TaskOutcome::NotRun } else { task.run() };
    /// #             sink.complete(&task, outcome);
    /// #         }));
    /// #         if let Err(error) = spawned {
    /// #             reporter.complete(&reported, TaskOutcome::failed(format!("not started: {error}")));
    /// #         }
    /// #     }
    ///     fn abort(&self, id: TaskId) {
    ///         // A body already running cannot be stopped from here; one still waiting for a
    ///         // thread sees `is_resolved` and reports `NotRun`.
    ///         self.seen.aborted.lock().unwrap().push(id);
    ///     }
    /// #     fn release(&self, key: &TaskKey) {
    /// #         // Values live in the client here; a store would delete `key`'s value.
    /// #         self.seen.released.lock().unwrap().push(key.clone());
    /// #     }
    /// #     fn close(&self) -> BoxFuture<()> {
    /// #         // Nothing new starts; bodies already handed to the executor finish there.
    /// #         self.seen.closed.store(true, Ordering::Release);
    /// #         Box::pin(async {})
    /// #     }
    ///     // ...
    /// }
    ///
    /// let pool = Pool::default();
    /// let seen = Arc::clone(&pool.seen);
    /// let client = Client::builder().transport(pool).build_blocking()?;
    /// let (release, gate) = flume::bounded::<()>(1);
    /// let gated = client.submit(move |_: ()| gate.recv().is_ok(), ());
    /// assert_eq!(gated.state(), Some(TaskState::Running)); // dispatched at once: a slot was free
    /// gated.cancel();
    /// assert_eq!(seen.aborted.lock().unwrap().len(), 1);
    /// release.send(()).unwrap(); // the running body ends; its value is discarded
    /// # Ok::<(), Error>(())
    /// ```
    fn abort(&self, id: TaskId) {
        let _ = id;
    }

    /// The task `id`, dispatched and not yet reported, lost its last reference (every handle
    /// was dropped, and no task depends on it): if no worker has begun it, it need not run.
    /// A transport that can should take it back — the Redis transport removes its stream
    /// entry if no worker has begun it, batched with cancels — and report it once with
    /// [`TaskOutcome::NotRun`]; the client then forgets it (or dispatches it again, if a
    /// shared key made it needed again meanwhile). A task already begun runs on and reports
    /// as usual: a release does not stop a running body (a cancel does, see
    /// [`abort`](Transport::abort)). Must not block. The default does nothing: the task runs
    /// and its value is dropped, which is right for a transport that dispatches only to a
    /// free worker (the in-process one).
    ///
    /// # Examples
    ///
    /// From a transport that runs each blocking body with [`Executor::spawn_blocking`] (so
    /// every task it is handed has begun, and it lets it run on); a broker-backed transport
    /// would delete the task's queued message here:
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex, OnceLock};
    /// # use taskweave::executor::BoxFuture;
    /// # use taskweave::scheduler::{TaskId, TaskKey, TaskState};
    /// # use taskweave::transport::{CompletionSink, ReadyTask, TaskOutcome, Transport};
    /// # use taskweave::{Client, Error, Executor};
    /// # #[derive(Debug, Default)]
    /// # struct Pool {
    /// #     started: OnceLock<(Arc<dyn Executor>, CompletionSink)>,
    /// #     withdrawn: Arc<Mutex<Vec<TaskId>>>,
    /// # }
    /// impl Transport for Pool {
    /// #     fn name(&self) -> &'static str {
    /// #         "pool"
    /// #     }
    /// #     fn capacity(&self) -> usize {
    /// #         2
    /// #     }
    /// #     fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error> {
    /// #         let _ = self.started.set((executor, sink));
    /// #         Ok(())
    /// #     }
    /// #     fn dispatch(&self, task: ReadyTask) {
    /// #         let (executor, sink) = self.started.get().expect("started before any dispatch");
    /// #         let (sink, reporter, reported) = (sink.clone(), sink.clone(), task.clone());
    /// #         let spawned = executor.spawn_blocking(Box::new(move || {
    /// #             let outcome = if task.is_resolved() { TaskOutcome::NotRun } else { task.run() };
    /// #             sink.complete(&task, outcome);
    /// #         }));
    /// #         if let Err(error) = spawned {
    /// #             reporter.complete(&reported, TaskOutcome::failed(format!("not started: {error}")));
    /// #         }
    /// #     }
    ///     fn withdraw(&self, id: TaskId) {
    ///         // Every task handed to this pool has begun on a thread: it runs on and reports
    ///         // as usual (its value is dropped). Only record that nobody needs it.
    ///         self.withdrawn.lock().unwrap().push(id);
    ///     }
    /// #     fn close(&self) -> BoxFuture<()> {
    /// #         Box::pin(async {})
    /// #     }
    ///     // ...
    /// }
    ///
    /// let pool = Pool::default();
    /// let withdrawn = Arc::clone(&pool.withdrawn);
    /// let client = Client::builder().transport(pool).build_blocking()?;
    /// let (release, gate) = flume::bounded::<()>(1);
    /// let gated = client.submit(move |_: ()| gate.recv().is_ok(), ());
    /// assert_eq!(gated.state(), Some(TaskState::Running)); // dispatched at once: a slot was free
    /// drop(gated); // its last handle: nothing needs the task any more
    /// assert_eq!(withdrawn.lock().unwrap().len(), 1);
    /// release.send(()).unwrap(); // the running body ends; its value is dropped
    /// # Ok::<(), Error>(())
    /// ```
    fn withdraw(&self, id: TaskId) {
        let _ = id;
    }

    /// A blocking body running on one of this transport's workers is about to wait for
    /// other tasks (its own sub-tasks, through its
    /// [`TaskContext`](crate::TaskContext)): it gives its worker back while it waits, as
    /// Dask's `secede` does. Return `true` when the transport can run one more task at once
    /// until the matching [`rejoin`](Transport::rejoin) — the in-process transport starts a
    /// stand-in worker loop, or keeps an idle one — and the scheduler then dispatches one
    /// more task. Return `false` to refuse: the body waits holding its slot, which
    /// deadlocks a pool whose every worker waits for tasks that have no worker left. The
    /// default refuses. Must not block.
    fn secede(&self) -> bool {
        false
    }

    /// A body that [`secede`](Transport::secede)d (and got `true`) stopped waiting and runs
    /// on: the transport may retire one stand-in worker once it is idle. The default does
    /// nothing.
    fn rejoin(&self) {}

    /// The value of the task with `key` is no longer needed; free it wherever it is stored
    /// (a transport that keeps values only in the client, as in the
    /// [complete transport](Transport#a-complete-transport), has nothing to do). The
    /// default does nothing.
    ///
    /// # Examples
    ///
    /// From a transport that runs each blocking body with
    /// [`Executor::spawn_blocking`] (the [complete transport](Transport#a-complete-transport)
    /// has all of it):
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicBool, Ordering};
    /// # use std::sync::{Arc, Mutex, OnceLock};
    /// # use taskweave::executor::BoxFuture;
    /// # use taskweave::scheduler::{TaskId, TaskKey, TaskState};
    /// # use taskweave::transport::{CompletionSink, ReadyTask, TaskOutcome, Transport};
    /// # use taskweave::{Client, Error, Executor};
    /// # /// Runs each blocking body with `spawn_blocking`; records what the client asked.
    /// # #[derive(Debug, Default)]
    /// # struct Pool {
    /// #     started: OnceLock<(Arc<dyn Executor>, CompletionSink)>,
    /// #     seen: Arc<Seen>,
    /// # }
    /// # #[derive(Debug, Default)]
    /// # struct Seen {
    /// #     aborted: Mutex<Vec<TaskId>>,
    /// #     released: Mutex<Vec<TaskKey>>,
    /// #     closed: AtomicBool,
    /// # }
    /// impl Transport for Pool {
    /// #     fn name(&self) -> &'static str {
    /// #         "pool"
    /// #     }
    /// #     fn capacity(&self) -> usize {
    /// #         2
    /// #     }
    /// #     fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error> {
    /// #         let _ = self.started.set((executor, sink));
    /// #         Ok(())
    /// #     }
    /// #     fn dispatch(&self, task: ReadyTask) {
    /// #         let (executor, sink) = self.started.get().expect("started before any dispatch");
    /// #         let (sink, reporter, reported) = (sink.clone(), sink.clone(), task.clone());
    /// #         let spawned = executor.spawn_blocking(Box::new(move || {
    /// #             // Cancelled while it waited: do not start it, give its slot back.
    /// #             let outcome = if task.is_resolved() { TaskOutcome::NotRun } else { task.run() };
    /// #             sink.complete(&task, outcome);
    /// #         }));
    /// #         if let Err(error) = spawned {
    /// #             reporter.complete(&reported, TaskOutcome::failed(format!("not started: {error}")));
    /// #         }
    /// #     }
    /// #     fn abort(&self, id: TaskId) {
    /// #         // A body already running cannot be stopped from here; one still waiting for a
    /// #         // thread sees `is_resolved` and reports `NotRun`.
    /// #         self.seen.aborted.lock().unwrap().push(id);
    /// #     }
    ///     fn release(&self, key: &TaskKey) {
    ///         // Values live in the client here; a store would delete `key`'s value.
    ///         self.seen.released.lock().unwrap().push(key.clone());
    ///     }
    /// #     fn close(&self) -> BoxFuture<()> {
    /// #         // Nothing new starts; bodies already handed to the executor finish there.
    /// #         self.seen.closed.store(true, Ordering::Release);
    /// #         Box::pin(async {})
    /// #     }
    ///     // ...
    /// }
    ///
    /// let pool = Pool::default();
    /// let seen = Arc::clone(&pool.seen);
    /// let client = Client::builder().transport(pool).build_blocking()?;
    /// let future = client.task().key("table").submit(|x: u32| x, 1);
    /// assert_eq!(future.result()?, 1);
    /// drop(future); // the last handle: the client forgets the task and releases its value
    /// assert_eq!(seen.released.lock().unwrap()[0].to_string(), "table");
    /// # Ok::<(), Error>(())
    /// ```
    fn release(&self, key: &TaskKey) {
        let _ = key;
    }

    /// What the transport knows of its workers and stored values, for
    /// [`Client::stats`](crate::Client::stats). Called only when someone asks for statistics;
    /// keep it to counter reads. The default knows nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::transport::{TransportStats, WorkerStats};
    ///
    /// // What a transport with one idle worker that ran 7 tasks would return:
    /// let stats = TransportStats::new(vec![WorkerStats::new("worker-0", 0, 7)], None);
    /// assert_eq!(stats.workers[0].completed, 7);
    /// ```
    fn stats(&self) -> TransportStats {
        TransportStats::default()
    }

    /// Stops the workers: no new task starts after this call. The returned future resolves
    /// when every worker has stopped. See the
    /// [complete transport](Transport#a-complete-transport).
    ///
    /// # Examples
    ///
    /// From a transport that runs each blocking body with
    /// [`Executor::spawn_blocking`] (the [complete transport](Transport#a-complete-transport)
    /// has all of it):
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicBool, Ordering};
    /// # use std::sync::{Arc, Mutex, OnceLock};
    /// # use taskweave::executor::BoxFuture;
    /// # use taskweave::scheduler::{TaskId, TaskKey, TaskState};
    /// # use taskweave::transport::{CompletionSink, ReadyTask, TaskOutcome, Transport};
    /// # use taskweave::{Client, Error, Executor};
    /// # /// Runs each blocking body with `spawn_blocking`; records what the client asked.
    /// # #[derive(Debug, Default)]
    /// # struct Pool {
    /// #     started: OnceLock<(Arc<dyn Executor>, CompletionSink)>,
    /// #     seen: Arc<Seen>,
    /// # }
    /// # #[derive(Debug, Default)]
    /// # struct Seen {
    /// #     aborted: Mutex<Vec<TaskId>>,
    /// #     released: Mutex<Vec<TaskKey>>,
    /// #     closed: AtomicBool,
    /// # }
    /// impl Transport for Pool {
    /// #     fn name(&self) -> &'static str {
    /// #         "pool"
    /// #     }
    /// #     fn capacity(&self) -> usize {
    /// #         2
    /// #     }
    /// #     fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error> {
    /// #         let _ = self.started.set((executor, sink));
    /// #         Ok(())
    /// #     }
    /// #     fn dispatch(&self, task: ReadyTask) {
    /// #         let (executor, sink) = self.started.get().expect("started before any dispatch");
    /// #         let (sink, reporter, reported) = (sink.clone(), sink.clone(), task.clone());
    /// #         let spawned = executor.spawn_blocking(Box::new(move || {
    /// #             // Cancelled while it waited: do not start it, give its slot back.
    /// #             let outcome = if task.is_resolved() { TaskOutcome::NotRun } else { task.run() };
    /// #             sink.complete(&task, outcome);
    /// #         }));
    /// #         if let Err(error) = spawned {
    /// #             reporter.complete(&reported, TaskOutcome::failed(format!("not started: {error}")));
    /// #         }
    /// #     }
    /// #     fn abort(&self, id: TaskId) {
    /// #         // A body already running cannot be stopped from here; one still waiting for a
    /// #         // thread sees `is_resolved` and reports `NotRun`.
    /// #         self.seen.aborted.lock().unwrap().push(id);
    /// #     }
    /// #     fn release(&self, key: &TaskKey) {
    /// #         // Values live in the client here; a store would delete `key`'s value.
    /// #         self.seen.released.lock().unwrap().push(key.clone());
    /// #     }
    ///     fn close(&self) -> BoxFuture<()> {
    ///         // Nothing new starts; bodies already handed to the executor finish there.
    ///         self.seen.closed.store(true, Ordering::Release);
    ///         Box::pin(async {})
    ///     }
    ///     // ...
    /// }
    ///
    /// let pool = Pool::default();
    /// let seen = Arc::clone(&pool.seen);
    /// let client = Client::builder().transport(pool).build_blocking()?;
    /// client.blocking().close()?; // calls `close` and waits for its future
    /// assert!(seen.closed.load(Ordering::Acquire));
    /// # Ok::<(), Error>(())
    /// ```
    fn close(&self) -> BoxFuture<()>;

    /// The workers serving this transport now (what [`Client::workers`](crate::Client::workers)
    /// lists). The default lists none.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::transport::WorkerInfo;
    ///
    /// // What a transport with one worker running any closure, two at a time, would list:
    /// let info = WorkerInfo::new("worker-0".into(), "in-process".into(), 2, Vec::new());
    /// assert_eq!(info.pid, std::process::id());
    /// ```
    fn workers(&self) -> BoxFuture<Result<Vec<WorkerInfo>, Error>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// The transport as `Any`, so that the client can find the services of the transports
    /// it knows (the Redis transport's coordination backend). Not for other transports: the
    /// default (`None`) is right for them.
    #[doc(hidden)]
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// What a worker says about itself (see [`Client::workers`](crate::Client::workers)).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// The worker's name, unique among the transport's workers (for Redis, its consumer
    /// name in the group).
    pub name: String,
    /// The queue it serves (`"in-process"` for the in-process workers).
    pub queue: String,
    /// How many tasks it runs at once.
    pub concurrency: usize,
    /// The registered tasks it runs; empty for workers that run any closure.
    pub tasks: Vec<String>,
    /// The machine it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The resources it declares (name and amount), which tasks that need them
    /// ([`TaskBuilder::resources`](crate::client::TaskBuilder::resources)) hold while they
    /// run; empty for a worker that declares none (and for workers of older versions).
    #[serde(default)]
    pub resources: std::collections::BTreeMap<String, u64>,
    /// The newest Redis task entry format the worker reads (`2` for a Redis worker of this
    /// version). `0` for a worker that does not say: a Redis worker older than entry format
    /// 2 (it reads format 1 only) and the in-process workers. A Redis client writes format 2
    /// only while at least one worker of its queue is live and every live one announces 2 or
    /// more; otherwise it writes format 1, which every worker reads.
    #[serde(default)]
    pub entry_format: u32,
}

impl WorkerInfo {
    /// A worker's announcement.
    pub fn new(name: String, queue: String, concurrency: usize, tasks: Vec<String>) -> WorkerInfo {
        WorkerInfo {
            name,
            queue,
            concurrency,
            tasks,
            host: host_name(),
            pid: std::process::id(),
            resources: std::collections::BTreeMap::new(),
            entry_format: 0,
        }
    }
}

/// This machine's name, as the kernel knows it (`"unknown-host"` when it cannot be read).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// A task whose dependencies have all finished, handed to a [`Transport`] to run: what to
/// run ([`run`](ReadyTask::run), [`run_async`](ReadyTask::run_async), or for a worker in
/// another process [`task_name`](ReadyTask::task_name) and
/// [`encode_input`](ReadyTask::encode_input)), and who it is ([`key`](ReadyTask::key),
/// [`id`](ReadyTask::id), [`attempt`](ReadyTask::attempt)). Report how it ended to the
/// [`CompletionSink`] with this same `ReadyTask`.
///
/// Cheap to clone (one reference count); `Send` and `Sync`, so a worker on any thread can
/// carry it. See the [complete transport](Transport#a-complete-transport).
#[derive(Clone)]
pub struct ReadyTask {
    job: Arc<Job>,
    attempt: u32,
}

impl fmt::Debug for ReadyTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadyTask")
            .field("key", &self.job.key)
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl ReadyTask {
    pub(crate) fn new(job: Arc<Job>, attempt: u32) -> ReadyTask {
        ReadyTask { job, attempt }
    }

    /// The task's key.
    pub fn key(&self) -> &TaskKey {
        &self.job.key
    }

    /// The task's id within its client (what [`Transport::abort`] names).
    pub fn id(&self) -> TaskId {
        self.job.id
    }

    /// Which run of the task this is, counting from 1 (retries and lost workers add runs).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the task already has an outcome: it was cancelled (or its client closed) after
    /// it was dispatched, while it waited for a worker. A worker does not start such a task;
    /// it reports [`TaskOutcome::NotRun`] instead, which gives the worker slot back.
    pub fn is_resolved(&self) -> bool {
        self.job.status().is_some()
    }

    /// Whether the body is async (run it with [`run_async`](ReadyTask::run_async) on the
    /// executor) rather than blocking (run it with [`run`](ReadyTask::run) on a worker).
    pub fn is_async(&self) -> bool {
        self.job.is_async()
    }

    /// Runs a blocking body on the current thread. A panic in the body is caught and
    /// reported in the outcome.
    pub fn run(&self) -> TaskOutcome {
        self.job.run_blocking()
    }

    /// [`run`](ReadyTask::run) unless the task [`is_resolved`](ReadyTask::is_resolved)
    /// (cancelled while it waited): then [`TaskOutcome::NotRun`], and the body never
    /// starts. One look at the job where the two calls take two.
    pub(crate) fn run_unless_resolved(&self) -> TaskOutcome {
        self.job.run_blocking_unless(true)
    }

    /// Runs an async body. A panic while polling it is caught and reported in the outcome;
    /// a cancel while it runs stops it, and the outcome is [`TaskOutcome::NotRun`].
    pub fn run_async(&self) -> BoxFuture<TaskOutcome> {
        self.job.run_async()
    }

    /// The [`Task::NAME`](crate::Task::NAME) of a registered task, `None` for a closure.
    ///
    /// A transport whose workers run in other processes can only carry registered tasks: it
    /// sends this name and [`encode_input`](ReadyTask::encode_input) instead of the body.
    pub fn task_name(&self) -> Option<&'static str> {
        self.job.call().map(|call| call.name)
    }

    /// The registered task's input, encoded as JSON; `None` for a closure and for a task
    /// whose input is composed from its dependencies' outputs (see
    /// [`dependency_keys`](ReadyTask::dependency_keys)).
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`] (with the encoder's error as its source) when the input
    /// cannot be encoded.
    pub fn encode_input(&self) -> Option<Result<Vec<u8>, Error>> {
        let encode = self.job.call()?.encode_input.as_ref()?;
        Some(encode().map_err(|error| Error::Serialization(Box::new(error))))
    }

    /// Turns the JSON of a registered task's output, as a remote worker produced it, into the
    /// outcome to [`complete`](CompletionSink::complete) the task with. Bytes that do not
    /// decode into the task's output type give a failed outcome that says so (with the
    /// decoder's error as its source).
    pub fn decode_output(&self, bytes: &[u8]) -> TaskOutcome {
        match self.job.call() {
            Some(call) => match (call.decode_output)(bytes) {
                Ok(value) => TaskOutcome::Value(TaskValue(value)),
                Err(failure) => TaskOutcome::Failed(TaskFailure::with_source(
                    format!(
                        "the worker's result does not decode as the output of {} (are the \
                         client and the workers built from the same task definitions?)",
                        call.name
                    ),
                    failure,
                )),
            },
            None => TaskOutcome::failed("a closure's result cannot be decoded from bytes"),
        }
    }

    /// How many deliveries of a registered task may die with their worker before it fails
    /// with [`TaskError::WorkerLost`]
    /// ([`TaskBuilder::allowed_failures`](crate::client::TaskBuilder::allowed_failures)), for
    /// transports that redeliver by themselves; `None` for a closure.
    pub fn allowed_failures(&self) -> Option<u32> {
        self.job.call().map(|call| call.allowed_failures)
    }

    /// The worker resources one run of this task holds (name and amount, each name once;
    /// [`TaskBuilder::resources`](crate::client::TaskBuilder::resources)); empty for a task
    /// that needs none, and for a closure.
    pub fn resources(&self) -> &[(String, u64)] {
        self.job.call().map_or(&[], |call| call.resources.as_slice())
    }

    /// Whether the registered task's key is shared: pure, or given explicitly
    /// ([`TaskBuilder::key`](crate::client::TaskBuilder::key)), so that every submission of
    /// it means the same task. A transport that several client processes share (Redis) runs
    /// such a key once for all of them and keeps its result while any of them holds it; a
    /// generated key is one client's alone. `false` for a closure.
    pub fn has_shared_key(&self) -> bool {
        self.job.call().is_some_and(|call| call.shared_key)
    }

    /// The keys of the tasks whose values this task reads, in argument order.
    pub fn dependency_keys(&self) -> Vec<TaskKey> {
        self.job.dep_keys()
    }
}

/// A run as a transport reports it to the core: a [`TaskRun`] with its worker's name lent
/// rather than given, so that an in-process worker reports each run without touching its
/// name's reference count (two atomic operations a task; the ring keeps a name only once).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunReport<'a> {
    pub(crate) worker: Option<&'a Arc<str>>,
    pub(crate) times: RunTimes,
}

/// When a run started and finished, as a transport reports it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RunTimes {
    /// On the executor's clock (a [`TaskRun`]).
    Instants { started: Instant, finished: Instant },
    /// On the client's [`EventClock`] already, in nanoseconds since the client started (an
    /// in-process worker, which reads that clock).
    Nanos { started: u64, finished: u64 },
}

/// What a [`CompletionSink`] reports to: the client's core, seen from the transport.
pub(crate) trait Reports: Send + Sync {
    /// How the `attempt`th run of `job` ended, and when and where it ran if known.
    fn complete(&self, job: &Arc<Job>, attempt: u32, outcome: TaskOutcome, run: Option<RunReport>);
    /// The transport gave `job` up with `error` (not one the task raised: no retry).
    fn given_up_with(&self, job: &Arc<Job>, error: TaskError);
}

/// Where a transport reports outcomes, given to [`Transport::start`]. Cheap to clone; reports
/// after the client is gone are ignored. See the
/// [complete transport](Transport#a-complete-transport).
#[derive(Clone)]
pub struct CompletionSink {
    core: Weak<dyn Reports>,
    /// The clock of the client's task events; `None` when it records none (and so wants
    /// no [`TaskRun`]s).
    clock: Option<Arc<EventClock>>,
}

impl fmt::Debug for CompletionSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletionSink")
            .field("client_alive", &(self.core.strong_count() > 0))
            .finish()
    }
}

impl CompletionSink {
    pub(crate) fn new(core: Weak<dyn Reports>, clock: Option<Arc<EventClock>>) -> CompletionSink {
        CompletionSink { core, clock }
    }

    /// The clock of the client's task events, when it records them: an in-process worker
    /// stamps its runs with it.
    pub(crate) fn event_clock(&self) -> Option<&Arc<EventClock>> {
        self.clock.as_ref()
    }

    /// Reports how a run of `task` ended (see [`TaskOutcome`] for what each outcome does).
    /// Report each dispatched task once; a second report of the same run is ignored.
    ///
    /// The client's task events then show the run without a worker or a start time; report
    /// with [`complete_run`](CompletionSink::complete_run) to give them.
    pub fn complete(&self, task: &ReadyTask, outcome: TaskOutcome) {
        if let Some(core) = self.core.upgrade() {
            core.complete(&task.job, task.attempt, outcome, None);
        }
    }

    /// Whether the client records task events, and so reads the [`TaskRun`] given to
    /// [`complete_run`](CompletionSink::complete_run): when it does not, a transport need not
    /// read the clock for it.
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// // The in-process transport checks it once per worker, not once per task.
    /// let client = taskweave::Client::builder().task_events(0).build_blocking()?;
    /// assert_eq!(client.task_event_counts().capacity, 0);
    /// # Ok(()) }
    /// ```
    pub fn records_runs(&self) -> bool {
        self.clock.is_some()
    }

    /// Reports how a run of `task` ended, as [`complete`](CompletionSink::complete), with who
    /// ran it and when (for [`Client::task_stream`](crate::Client::task_stream) and
    /// [`Client::story`](crate::Client::story)). Cheap: the run is stored under the lock the
    /// report takes anyway.
    pub fn complete_run(&self, task: &ReadyTask, outcome: TaskOutcome, run: TaskRun) {
        if let Some(core) = self.core.upgrade() {
            let TaskRun { worker, started, finished } = run;
            let times = RunTimes::Instants { started, finished };
            let run = RunReport { worker: worker.as_ref(), times };
            core.complete(&task.job, task.attempt, outcome, self.records_runs().then_some(run));
        }
    }

    /// [`complete_run`](CompletionSink::complete_run) by the worker `worker`, lent, with
    /// times read from the sink's [`event_clock`](CompletionSink::event_clock).
    pub(crate) fn complete_run_by(
        &self,
        task: &ReadyTask,
        outcome: TaskOutcome,
        worker: &Arc<str>,
        started: u64,
        finished: u64,
    ) {
        if let Some(core) = self.core.upgrade() {
            let times = RunTimes::Nanos { started, finished };
            let run = RunReport { worker: Some(worker), times };
            core.complete(&task.job, task.attempt, outcome, self.records_runs().then_some(run));
        }
    }

    /// Reports that the worker running `task` was lost: the same as completing it with
    /// [`TaskOutcome::Lost`].
    pub fn lost(&self, task: &ReadyTask) {
        self.complete(task, TaskOutcome::Lost);
    }

    /// Reports that the transport gave `task` up because its broker (`broker`, an address
    /// without password) could not be reached for `after`, the last error being
    /// `last_error`: the task fails with
    /// [`TaskError::BrokerUnavailable`], without retry.
    pub fn broker_unavailable(
        &self,
        task: &ReadyTask,
        broker: &str,
        last_error: &str,
        after: std::time::Duration,
    ) {
        if let Some(core) = self.core.upgrade() {
            let error = TaskError::BrokerUnavailable {
                key: task.job.key.clone(),
                broker: broker.to_owned(),
                last_error: last_error.to_owned(),
                after,
            };
            core.given_up_with(&task.job, error);
        }
    }

    /// Reports that the transport gave `task` up after its workers were lost `attempts`
    /// times, for transports that redeliver by themselves (the scheduler does not re-run it):
    /// the task fails with [`TaskError::WorkerLost`].
    pub fn gave_up(&self, task: &ReadyTask, attempts: u32) {
        if let Some(core) = self.core.upgrade() {
            let error = TaskError::WorkerLost { key: task.job.key.clone(), attempts };
            core.given_up_with(&task.job, error);
        }
    }
}
