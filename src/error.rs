//! The two error types: [`Error`] (the client could not do what was asked) and
//! [`TaskError`] (a task's own outcome was not a value).

use std::time::Duration;

use crate::key::TaskKey;

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

    /// The client was closed before `operation` (such as `"submit"`, `"gather"`,
    /// `"scatter"`); a closed client accepts and answers nothing new.
    #[error(
        "the client is closed, so {operation} was refused; build a new client to submit more \
         work (a closed client only keeps the values its futures already hold)"
    )]
    Closed {
        /// The operation that was refused.
        operation: &'static str,
    },

    /// A wait did not finish within its time limit. Nothing was cancelled.
    #[error("timed out after {after:?}; the tasks keep running, wait again or cancel them")]
    Timeout {
        /// The time limit that passed.
        after: Duration,
    },

    /// A blocking call was made from a thread that is driving async work, where blocking
    /// would stall (and could deadlock) that runtime.
    ///
    /// With feature `tokio`, a thread of `tokio::task::spawn_blocking` is refused too (tokio
    /// has no way to tell it apart); wait there with
    /// `tokio::runtime::Handle::current().block_on(future)`.
    #[error(
        "a blocking taskweave call that has to wait was made from inside an async context (a \
         runtime thread or a taskweave worker, which runs blocking task bodies too); use the \
         async method with .await there (for a task body: submit it with submit_async), or make \
         the task depend on the future instead of waiting for it; a blocking body that must \
         wait: submit it with submit_with_context and wait through context.gather(..) or \
         context.result(..), or while it holds context.secede()"
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

    /// A coordination primitive ([`Lock`](crate::Lock), [`Semaphore`](crate::Semaphore),
    /// [`Queue`](crate::Queue), [`Variable`](crate::Variable), a published dataset, a topic)
    /// was asked for something it cannot do: a semaphore of no leases, a release of a lease
    /// that is not held, a read of a deleted variable, a value of another type than the
    /// name's first user gave, a dataset that was never published. A timeout is never this
    /// error: waits that run out answer `false` or `None`.
    #[error("{primitive} {name:?}: {problem}")]
    Coordination {
        /// The kind of primitive, such as `"semaphore"`.
        primitive: &'static str,
        /// The cluster-wide name it was obtained under.
        name: String,
        /// What was wrong and what to do instead.
        problem: String,
    },

    /// A cluster-management call ([`Client::wait_for_workers`](crate::Client::wait_for_workers))
    /// could not do what was asked: `problem` says what and what to do.
    #[error("{operation}: {problem}")]
    Cluster {
        /// The call, for example `"wait_for_workers"`.
        operation: &'static str,
        /// What went wrong and what to do about it.
        problem: String,
    },

    /// A task that was waited for did not produce a value.
    #[error(transparent)]
    Task(TaskError),

    /// A performance report ([`PerformanceReport`](crate::PerformanceReport)) could not be
    /// written to `path`.
    #[error(
        "could not write the performance report to {}: {source}; give a file path in a \
         directory that exists and that this process may write to",
        path.display()
    )]
    WriteReport {
        /// The path the report was to be written to.
        path: std::path::PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

/// A task's error as a client error: [`TaskError::ClientClosed`] becomes [`Error::Closed`]
/// (the client refused the work), every other error [`Error::Task`]. So one `?` in a handler
/// returning `Result<_, Error>` takes both an awaited task and a `gather`.
impl From<TaskError> for Error {
    fn from(error: TaskError) -> Error {
        match error {
            TaskError::ClientClosed { operation, .. } => Error::Closed { operation },
            other => Error::Task(other),
        }
    }
}

impl Error {
    /// Returns the task error inside, if this error is a task's own outcome.
    pub fn as_task_error(&self) -> Option<&TaskError> {
        match self {
            Error::Task(task_error) => Some(task_error),
            _ => None,
        }
    }

    /// Whether a task that was waited for was cancelled (see [`TaskError::is_cancelled`]):
    /// in a web service, the request's work was abandoned (HTTP 409, or 499 for a client that
    /// went away).
    ///
    /// The three predicates `is_cancelled`, [`is_timeout`](Error::is_timeout) and
    /// [`is_user_error`](Error::is_user_error) exclude each other, so that mapping an error to
    /// a status code is one `match`; everything else (the client closed, a transport failure,
    /// a lost worker) is the service's own trouble (HTTP 500 or 503).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::Error;
    ///
    /// fn status(error: &Error) -> u16 {
    ///     match error {
    ///         e if e.is_user_error() => 422, // the job itself failed or panicked
    ///         e if e.is_timeout() => 504,    // a wait with a deadline ran out
    ///         e if e.is_cancelled() => 409,  // somebody cancelled it
    ///         Error::Closed { .. } => 503,   // shutting down
    ///         _ => 500,
    ///     }
    /// }
    /// # fn main() -> Result<(), Error> {
    /// let client = taskweave::Client::new()?;
    /// let failing = client.try_submit(|_: ()| Err::<u32, _>("no such file"), ());
    /// assert_eq!(status(&failing.result().unwrap_err()), 422);
    /// let cancelled = client.submit(|_: ()| std::thread::sleep(std::time::Duration::from_secs(60)), ());
    /// cancelled.cancel();
    /// assert_eq!(status(&cancelled.result().unwrap_err()), 409);
    /// # Ok(()) }
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.as_task_error().is_some_and(TaskError::is_cancelled)
    }

    /// Whether a wait ran out of time ([`Error::Timeout`]); the tasks keep running. See
    /// [`is_cancelled`](Error::is_cancelled) for mapping errors to status codes.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Whether a task that was waited for failed because of its own body: it returned an error
    /// or panicked, directly or in a dependency (see [`TaskError::is_user_error`]). See
    /// [`is_cancelled`](Error::is_cancelled) for mapping errors to status codes.
    pub fn is_user_error(&self) -> bool {
        self.as_task_error().is_some_and(TaskError::is_user_error)
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

    /// The task was submitted to a client that was already closed, so it never ran.
    #[error(
        "task {key} was not run: the client was closed before {operation}; build a new client \
         to submit more work"
    )]
    ClientClosed {
        /// The task's key.
        key: TaskKey,
        /// The operation that submitted it, such as `"submit"`, `"map"` or `"scatter"`.
        operation: &'static str,
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
        /// How long the broker had failed the client's commands, from the first that failed
        /// (the broker timeout or a little more).
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
            | TaskError::ClientClosed { key, .. }
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

    /// Whether the task's own code failed: its body (or a dependency's, for
    /// [`TaskError::DependencyFailed`]) returned an error or panicked — as opposed to being
    /// cancelled or losing its workers.
    pub fn is_user_error(&self) -> bool {
        matches!(self.root(), TaskError::Failed { .. } | TaskError::Panicked { .. })
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

/// The longest task error text kept, in bytes: a longer message (from a body's error or a
/// panic) keeps its first and last parts around a note saying how much was cut, so that one
/// huge error is not stored with its future, sent through a broker and logged whole. Dask
/// bounds its error text the same way (`distributed.admin.max-error-length`, 10,000).
pub const MAX_ERROR_TEXT: usize = 10_000;

/// Bounds `message` to about [`MAX_ERROR_TEXT`] bytes (see there); shorter text is returned
/// as it is, without a copy.
pub(crate) fn bound_error_text(message: String) -> String {
    if message.len() <= MAX_ERROR_TEXT {
        return message;
    }
    // Keep four fifths from the start (where a message says what failed) and the rest from
    // the end (where a panic's or an error chain's last cause often is), on char boundaries.
    let mut head_end = MAX_ERROR_TEXT * 4 / 5;
    while !message.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = message.len() - (MAX_ERROR_TEXT - head_end);
    while !message.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    let cut = tail_start - head_end;
    format!(
        "{} [... {cut} bytes of this error cut; taskweave keeps {MAX_ERROR_TEXT} ...] {}",
        &message[..head_end],
        &message[tail_start..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_error_text_is_kept_whole() {
        assert_eq!(bound_error_text("boom".to_owned()), "boom");
        let exactly = "x".repeat(MAX_ERROR_TEXT);
        assert_eq!(bound_error_text(exactly.clone()), exactly);
    }

    #[test]
    fn long_error_text_keeps_its_start_and_end() {
        let long = format!("START{}END", "é".repeat(50_000));
        let bounded = bound_error_text(long.clone());
        assert!(bounded.len() < MAX_ERROR_TEXT + 100, "{}", bounded.len());
        assert!(bounded.starts_with("START") && bounded.ends_with("END"));
        assert!(bounded.contains("bytes of this error cut"), "{bounded}");
    }
}
