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
//! The conformance suite (`tests/conformance/`) runs the same test bodies against every
//! backend to hold them to this.

mod in_process;

use std::fmt;
use std::sync::{Arc, Weak};

pub use in_process::InProcessTransport;

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

    /// The value of the task with `key` is no longer needed; free it wherever it is stored.
    fn release(&self, key: &TaskKey) {
        let _ = key;
    }

    /// Stops the workers: no new task starts after this call. The returned future resolves
    /// when every worker has stopped.
    fn close(&self) -> BoxFuture<()>;
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
}
