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
//! The conformance suite ([`testing`](crate::testing), feature `testing`) runs the same test
//! bodies against every backend, ours and yours, to hold them to this.

mod in_process;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

use std::fmt;
use std::sync::{Arc, Weak};

pub use in_process::InProcessTransport;

pub use crate::client::{TransportStats, WorkerStats};

use crate::Error;
use crate::client::core::{BodyOutcome, Core, Job};
use crate::executor::{BoxFuture, Executor};
use crate::scheduler::{TaskId, TaskKey};

/// Carries ready tasks to workers and their outcomes back to the client.
///
/// The client calls [`start`](Transport::start) once, then [`dispatch`](Transport::dispatch)
/// for every task the scheduler lets run (never more than [`capacity`](Transport::capacity)
/// worker tasks at once), [`release`](Transport::release) when a task's value is no longer
/// needed, and [`close`](Transport::close) at the end.
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// A short name for `Debug` output and statistics, such as `"in-process"`.
    fn name(&self) -> &'static str;

    /// How many worker tasks may be dispatched and unreported at once. The scheduler keeps
    /// the rest in its priority queue.
    fn capacity(&self) -> usize;

    /// Starts the workers (or connects to them), reporting to `sink`.
    ///
    /// # Errors
    ///
    /// When the workers cannot be started, for example [`Error::ThreadSpawn`].
    fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error>;

    /// Sends one ready task to a worker. Must not block.
    fn dispatch(&self, task: ReadyTask);

    /// The task `id`, dispatched and not yet reported, no longer needs to run: it was
    /// cancelled, or its client is closing. A transport that can should keep it from
    /// starting — the in-process workers check [`ReadyTask::is_resolved`] themselves, the
    /// Redis transport removes its stream entry if no worker has begun it. Either way the
    /// transport still reports the task once, with [`TaskOutcome::not_run`] if it never ran,
    /// so that its slot is given back. Must not block. The default does nothing.
    fn abort(&self, id: TaskId) {
        let _ = id;
    }

    /// The value of the task with `key` is no longer needed; free it wherever it is stored.
    fn release(&self, key: &TaskKey) {
        let _ = key;
    }

    /// What the transport knows of its workers and stored values, for
    /// [`Client::stats`](crate::Client::stats). Called only when someone asks for statistics;
    /// keep it to counter reads. The default knows nothing.
    fn stats(&self) -> TransportStats {
        TransportStats::default()
    }

    /// Stops the workers: no new task starts after this call. The returned future resolves
    /// when every worker has stopped.
    fn close(&self) -> BoxFuture<()>;

    /// The workers serving this transport now (what [`Client::workers`](crate::Client::workers)
    /// lists). The default lists none.
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
}

impl WorkerInfo {
    /// A worker's announcement.
    pub fn new(name: String, queue: String, concurrency: usize, tasks: Vec<String>) -> WorkerInfo {
        WorkerInfo { name, queue, concurrency, tasks, host: host_name(), pid: std::process::id() }
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

/// A task whose dependencies have all finished, handed to a [`Transport`] to run.
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

    /// The task's id within its client.
    pub fn id(&self) -> TaskId {
        self.job.id
    }

    /// Which run of the task this is, counting from 1 (retries and lost workers add runs).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the task already has an outcome: it was cancelled (or its client closed) after
    /// it was dispatched, while it waited for a worker. A worker does not start such a task;
    /// it reports [`TaskOutcome::not_run`] instead, which gives the worker slot back.
    pub fn is_resolved(&self) -> bool {
        self.job.peek_outcome().is_some()
    }

    /// Whether the body is async (run it with [`run_async`](ReadyTask::run_async) on the
    /// executor) rather than blocking (run it with [`run`](ReadyTask::run) on a worker).
    pub fn is_async(&self) -> bool {
        self.job.is_async()
    }

    /// Runs a blocking body on the current thread. A panic in the body is caught and
    /// reported in the outcome.
    pub fn run(&self) -> TaskOutcome {
        TaskOutcome(self.job.run_blocking())
    }

    /// Runs an async body. A panic while polling it is caught and reported in the outcome.
    pub fn run_async(&self) -> BoxFuture<TaskOutcome> {
        let future = self.job.run_async();
        Box::pin(async move { TaskOutcome(future.await) })
    }

    /// The [`Task::NAME`](crate::Task::NAME) of a registered task, `None` for a closure.
    ///
    /// A transport whose workers run in other processes can only carry registered tasks: it
    /// sends this name and [`encode_input`](ReadyTask::encode_input) instead of the body.
    pub fn task_name(&self) -> Option<&'static str> {
        self.job.call.as_ref().map(|call| call.name)
    }

    /// The registered task's input, encoded as JSON; `None` for a closure and for a task
    /// whose input is composed from its dependencies' outputs (see
    /// [`dependency_keys`](ReadyTask::dependency_keys)).
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`] when the input cannot be encoded.
    pub fn encode_input(&self) -> Option<Result<Vec<u8>, Error>> {
        let encode = self.job.call.as_ref()?.encode_input.as_ref()?;
        Some(encode().map_err(|message| Error::Serialization(message.into())))
    }

    /// Turns the JSON of a registered task's output, as a remote worker produced it, into the
    /// outcome to [`complete`](CompletionSink::complete) the task with. Bytes that do not
    /// decode into the task's output type give a failed outcome that says so.
    pub fn decode_output(&self, bytes: &[u8]) -> TaskOutcome {
        match &self.job.call {
            Some(call) => match (call.decode_output)(bytes) {
                Ok(value) => TaskOutcome(BodyOutcome::Value(value)),
                Err(message) => TaskOutcome::failed(format!(
                    "the worker's result does not decode as the output of {}: {message}; are \
                     the client and the workers built from the same task definitions?",
                    call.name
                )),
            },
            None => TaskOutcome::failed("a closure's result cannot be decoded from bytes"),
        }
    }

    /// How many deliveries of a registered task may die with their worker before it fails
    /// with [`TaskError::WorkerLost`](crate::TaskError::WorkerLost)
    /// ([`TaskBuilder::allowed_failures`](crate::client::TaskBuilder::allowed_failures)), for
    /// transports that redeliver by themselves; `None` for a closure.
    pub fn allowed_failures(&self) -> Option<u32> {
        self.job.call.as_ref().map(|call| call.allowed_failures)
    }

    /// The keys of the tasks whose values this task reads, in argument order.
    pub fn dependency_keys(&self) -> Vec<TaskKey> {
        self.job.dep_keys()
    }

    /// Registers the handle that stops this task's async body when the task is cancelled.
    pub fn set_abort_handle(&self, handle: futures::future::AbortHandle) {
        self.job.set_abort_handle(handle);
    }
}

/// How one run of a task body ended: a value, an error it returned, or a panic.
pub struct TaskOutcome(pub(crate) BodyOutcome);

impl TaskOutcome {
    /// The outcome of a body that never ran to the end because its executor dropped it
    /// (for example, the runtime shut down).
    pub fn dropped_by_executor() -> TaskOutcome {
        TaskOutcome(BodyOutcome::Failed(
            "the executor dropped the task before it finished (has the runtime shut down?)".into(),
        ))
    }

    /// The outcome reported for a task that was not started because it was already resolved
    /// (see [`ReadyTask::is_resolved`]); the scheduler only frees the task's slot.
    pub fn not_run() -> TaskOutcome {
        TaskOutcome(BodyOutcome::Failed(
            "the task was resolved (cancelled) before a worker started it".into(),
        ))
    }

    /// A body that returned an error with this text
    /// ([`TaskError::Failed`](crate::TaskError::Failed) once reported).
    pub fn failed(message: impl Into<String>) -> TaskOutcome {
        TaskOutcome(BodyOutcome::Failed(message.into()))
    }

    /// A body that panicked with this message
    /// ([`TaskError::Panicked`](crate::TaskError::Panicked) once reported).
    pub fn panicked(message: impl Into<String>) -> TaskOutcome {
        TaskOutcome(BodyOutcome::Panicked(message.into()))
    }

    /// Whether the body produced a value.
    pub fn is_value(&self) -> bool {
        matches!(self.0, BodyOutcome::Value(_))
    }
}

impl fmt::Debug for TaskOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            BodyOutcome::Value(_) => f.write_str("TaskOutcome::Value(..)"),
            BodyOutcome::Failed(message) => write!(f, "TaskOutcome::Failed({message:?})"),
            BodyOutcome::Panicked(message) => write!(f, "TaskOutcome::Panicked({message:?})"),
        }
    }
}

/// Where a transport reports outcomes. Cheap to clone; reports after the client is gone are
/// ignored.
#[derive(Clone)]
pub struct CompletionSink {
    core: Weak<Core>,
}

impl fmt::Debug for CompletionSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletionSink")
            .field("client_alive", &(self.core.strong_count() > 0))
            .finish()
    }
}

impl CompletionSink {
    pub(crate) fn new(core: Weak<Core>) -> CompletionSink {
        CompletionSink { core }
    }

    /// Reports how a run of `task` ended.
    pub fn complete(&self, task: &ReadyTask, outcome: TaskOutcome) {
        if let Some(core) = self.core.upgrade() {
            core.complete(&task.job, outcome.0);
        }
    }

    /// Reports that the worker running `task` was lost; the scheduler re-runs the task or,
    /// past its allowed failures, fails it with [`TaskError::WorkerLost`](crate::TaskError).
    pub fn lost(&self, task: &ReadyTask) {
        if let Some(core) = self.core.upgrade() {
            core.lost(&task.job);
        }
    }

    /// Reports that the transport gave `task` up because its broker (`broker`, an address
    /// without password) could not be reached for `after`, the last error being
    /// `last_error`: the task fails with
    /// [`TaskError::BrokerUnavailable`](crate::TaskError::BrokerUnavailable), without retry.
    pub fn broker_unavailable(
        &self,
        task: &ReadyTask,
        broker: &str,
        last_error: &str,
        after: std::time::Duration,
    ) {
        if let Some(core) = self.core.upgrade() {
            let error = crate::TaskError::BrokerUnavailable {
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
    /// the task fails with [`TaskError::WorkerLost`](crate::TaskError::WorkerLost).
    pub fn gave_up(&self, task: &ReadyTask, attempts: u32) {
        if let Some(core) = self.core.upgrade() {
            core.gave_up(&task.job, attempts);
        }
    }
}
