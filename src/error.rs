//! The two error types: [`Error`] (the client could not do what was asked) and
//! [`TaskError`] (a task's own outcome was not a value).

use std::time::Duration;

use crate::scheduler::TaskKey;

/// The client, its transport or its executor could not do what was asked.
///
/// A task that ran and failed is not an `Error` of the client: it is a [`TaskError`], which
/// reaches [`Error`] only through [`Error::Task`] when a call such as
/// [`Client::gather`](crate::Client::gather) raises it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An executor was looked up from the ambient runtime, but none is running on this thread.
    #[error(
        "no {runtime} runtime is running on this thread; call this from inside the runtime \
         (for example from the async main function it runs) or pass an executor with \
         ClientBuilder::executor"
    )]
    NoRuntime {
        /// The runtime that was looked for, such as `"tokio"`.
        runtime: &'static str,
    },

    /// The executor refused new work because its runtime has shut down.
    #[error(
        "the {runtime} runtime has shut down and accepts no new work; keep the runtime alive \
         for as long as the client is used"
    )]
    RuntimeShutDown {
        /// The runtime that has shut down.
        runtime: &'static str,
    },

    /// The client was closed; it accepts no new work.
    #[error("the client is closed and accepts no new work; build a new client to submit more")]
    Closed,

    /// A wait did not finish within its time limit. Nothing was cancelled.
    #[error("timed out after {after:?}; the tasks keep running, wait again or cancel them")]
    Timeout {
        /// The time limit that passed.
        after: Duration,
    },

    /// A blocking call was made from a thread that is driving async work, where blocking
    /// would stall (and could deadlock) that runtime.
    #[error(
        "a blocking taskweave call was made from inside an async context (a runtime thread or \
         a taskweave worker); use the async method with .await there, or make the task depend \
         on the future instead of waiting for it"
    )]
    BlockingInAsyncContext,

    /// The operating system refused to start a thread.
    #[error(
        "could not start a thread: {0}; lower the number of workers or raise the process limits"
    )]
    ThreadSpawn(#[source] std::io::Error),

    /// A configuration value given to the builder is unusable.
    #[error("invalid configuration: {message}")]
    InvalidConfig {
        /// What was wrong and what to do instead.
        message: String,
    },

    /// The transport backend failed (for example, the broker went away).
    #[error("transport failed: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

    /// A value could not be encoded for, or decoded from, the transport.
    #[error("serialization failed: {0}")]
    Serialization(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

    /// A task that was waited for did not produce a value.
    #[error(transparent)]
    Task(#[from] TaskError),
}

impl Error {
    /// Returns the task error inside, if this error is a task's own outcome.
    pub fn as_task_error(&self) -> Option<&TaskError> {
        match self {
            Error::Task(task_error) => Some(task_error),
            _ => None,
        }
    }
}

/// A task did not produce a value.
///
/// Every variant names the task's key, so that a message in a log points at the task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The task body returned an error.
    #[error("task {key} failed: {message}")]
    Failed {
        /// The task's key.
        key: TaskKey,
        /// The error the body returned, as text.
        message: String,
    },

    /// The task body panicked. The worker that ran it survived.
    #[error("task {key} panicked: {message}")]
    Panicked {
        /// The task's key.
        key: TaskKey,
        /// The panic payload, as text.
        message: String,
    },

    /// The task was cancelled before it produced a value.
    #[error("task {key} was cancelled: {reason}")]
    Cancelled {
        /// The task's key.
        key: TaskKey,
        /// Why: an explicit cancel, a cancelled dependency, the client closing, ...
        reason: String,
    },

    /// The task was lost too many times: the workers running it died, or (on Redis) its
    /// queue entry vanished before a worker ran it.
    #[error(
        "task {key} was lost {attempts} times (its worker died, or its queue entry vanished) \
         and was given up; check the workers' logs for a crash this task causes, and that \
         nothing trims or deletes the task queue"
    )]
    WorkerLost {
        /// The task's key.
        key: TaskKey,
        /// How many deliveries were lost.
        attempts: u32,
    },

    /// The broker that carries the task (Redis) could not be reached for longer than the
    /// client's broker timeout, so the task was given up without knowing whether it ran.
    #[error(
        "task {key} was given up: the broker {broker} could not be reached for {after:?} \
         (last error: {last_error}); check that it runs and is reachable from this machine, \
         or raise the broker timeout (RedisTransportBuilder::broker_timeout)"
    )]
    BrokerUnavailable {
        /// The task's key.
        key: TaskKey,
        /// The broker's address, without its password.
        broker: String,
        /// The last error the broker's connection gave.
        last_error: String,
        /// How long the broker had been unreachable (the timeout).
        after: Duration,
    },

    /// A task this one depends on failed, so this one never ran.
    #[error("task {key} did not run because a dependency failed: {root}")]
    DependencyFailed {
        /// The task's key.
        key: TaskKey,
        /// The error of the dependency that failed first (the root cause).
        root: Box<TaskError>,
    },
}

impl TaskError {
    /// The key of the task this error belongs to.
    pub fn key(&self) -> &TaskKey {
        match self {
            TaskError::Failed { key, .. }
            | TaskError::Panicked { key, .. }
            | TaskError::Cancelled { key, .. }
            | TaskError::WorkerLost { key, .. }
            | TaskError::BrokerUnavailable { key, .. }
            | TaskError::DependencyFailed { key, .. } => key,
        }
    }

    /// Whether the task was cancelled (directly, or because a dependency was cancelled).
    pub fn is_cancelled(&self) -> bool {
        match self {
            TaskError::Cancelled { .. } => true,
            TaskError::DependencyFailed { root, .. } => root.is_cancelled(),
            _ => false,
        }
    }

    /// The root cause: the error itself, or for [`TaskError::DependencyFailed`] the error of the
    /// dependency that failed first.
    pub fn root(&self) -> &TaskError {
        match self {
            TaskError::DependencyFailed { root, .. } => root.root(),
            other => other,
        }
    }
}
