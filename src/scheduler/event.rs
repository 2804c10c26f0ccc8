//! What the scheduler is told ([`Event`], past-tense facts) and what it answers ([`Action`],
//! commands for the client core to carry out).

use crate::error::TaskError;
use crate::key::{TaskId, TaskKey};

/// Everything the scheduler needs to know about a new task.
#[derive(Debug, Clone)]
pub struct TaskSpec<P> {
    /// The new task's id; must not be in use. Ids are expected in submission order (the
    /// client hands them out from a counter): among ready tasks of one priority, the lowest
    /// id is dispatched first, and [`Scheduler::unfinished`](super::Scheduler::unfinished)
    /// lists the highest first.
    pub id: TaskId,
    /// The task's key.
    pub key: TaskKey,
    /// Tasks whose values this task needs; it runs after all of them finished.
    pub deps: Vec<TaskId>,
    /// Among ready tasks, higher priority is dispatched first (FIFO within one priority).
    pub priority: i32,
    /// How many times to re-run the task when its body fails or panics.
    pub retries: u32,
    /// How many lost deliveries (a worker died while running it) are tolerated.
    pub allowed_failures: u32,
    /// Whether the task occupies a worker slot (blocking bodies) or runs on the executor
    /// (async bodies), outside the in-flight limit.
    pub uses_worker: bool,
    /// Run to completion even when every handle is dropped (`fire_and_forget`).
    pub pinned: bool,
    /// Whether another submission with the same key should find this task.
    pub shared_key: bool,
    /// What the core needs to run and resolve the task; opaque to the scheduler.
    pub payload: P,
}

/// A fact reported to the scheduler.
#[derive(Debug, Clone)]
pub enum Event<P> {
    /// A task was submitted; the client holds one handle to it.
    Submitted(TaskSpec<P>),
    /// A value was put into the cluster directly (`scatter`): the task is finished from the
    /// start and never runs; the client holds one handle to it.
    Scattered(TaskSpec<P>),
    /// Keep the task until it finishes even if every handle is dropped (`fire_and_forget`).
    Pinned {
        /// The task.
        id: TaskId,
    },
    /// One more client handle now refers to an existing task (same key submitted again).
    Retained {
        /// The task.
        id: TaskId,
    },
    /// The task's body returned a value.
    Finished {
        /// The task.
        id: TaskId,
    },
    /// The task's body returned an error or panicked.
    Failed {
        /// The task.
        id: TaskId,
        /// What went wrong.
        error: TaskError,
    },
    /// The worker running the task was lost before it reported.
    Lost {
        /// The task.
        id: TaskId,
    },
    /// Someone asked to cancel the task, and so every task depending on it that the
    /// scheduler still holds, whatever its state: a finished task gives its value up and
    /// reports cancelled from then on, as in Dask. [`Scheduler::cancel_outcome`] tells
    /// beforehand what the request will do.
    ///
    /// [`Scheduler::cancel_outcome`]: super::Scheduler::cancel_outcome
    CancelRequested {
        /// The task.
        id: TaskId,
        /// Why, as the futures will report it.
        reason: String,
    },
    /// One client handle to the task was dropped.
    Released {
        /// The task.
        id: TaskId,
    },
    /// Someone asked to run a failed task again (`TaskFuture::retry`). The failed
    /// dependencies it reads (and theirs, transitively) run again first, then the task; a
    /// task that has not failed, or was cancelled, is left alone.
    /// [`Scheduler::retry_outcome`] tells beforehand what the request will do.
    ///
    /// [`Scheduler::retry_outcome`]: super::Scheduler::retry_outcome
    RetryRequested {
        /// The task.
        id: TaskId,
    },
    /// The transport took back a dispatched task before any worker began it, as
    /// [`Action::Withdraw`] asked: its slot is free; it is forgotten, or queued to run again
    /// if it is needed again by then. Ignored for a task that reported already.
    Withdrawn {
        /// The task.
        id: TaskId,
    },
    /// The running worker task gave its slot back while it waits for other tasks (Dask's
    /// `secede`): one more ready task may be dispatched. It stays running until it reports;
    /// ignored unless it holds a slot.
    Seceded {
        /// The task.
        id: TaskId,
    },
    /// A task that [`Seceded`](Event::Seceded) takes a slot again (Dask's `rejoin`), at once,
    /// even when every slot is taken: the pool is over its capacity until a slot frees.
    /// Ignored unless the task seceded.
    Rejoined {
        /// The task.
        id: TaskId,
    },
    /// The client closed: every unfinished task is cancelled and nothing new is accepted.
    Closed,
}

/// A command from the scheduler.
#[derive(Debug, Clone, PartialEq)]
pub enum Action<P> {
    /// Send the task to a worker. `attempt` counts from 1.
    Dispatch {
        /// The task.
        id: TaskId,
        /// Which run of the task this is, counting from 1.
        attempt: u32,
        /// The task's payload.
        payload: P,
    },
    /// Resolve the task's futures: `Ok` means "publish the value the worker reported".
    Resolve {
        /// The task.
        id: TaskId,
        /// The task's payload.
        payload: P,
        /// The outcome; `Ok(())` publishes the reported value.
        outcome: Result<(), TaskError>,
    },
    /// Stop the running task if it can be stopped (async bodies); its result will be ignored.
    Abort {
        /// The task.
        id: TaskId,
        /// The task's payload.
        payload: P,
    },
    /// Nothing needs the dispatched task any more but its worker slot (its last handle was
    /// dropped): the transport may take it back if no worker has begun it, and then reports
    /// it as not run ([`Event::Withdrawn`]); one already begun runs on and reports as usual.
    Withdraw {
        /// The task.
        id: TaskId,
        /// The task's payload.
        payload: P,
    },
    /// The task runs again: forget its published outcome so that a new one can be published.
    Reset {
        /// The task.
        id: TaskId,
        /// The task's payload.
        payload: P,
    },
    /// The task's published outcome no longer stands (it was cancelled after it finished or
    /// failed): take it back from the futures and free its value wherever it is stored. A
    /// [`Action::Resolve`] with the new outcome follows; the task stays in the graph.
    Discard {
        /// The task.
        id: TaskId,
        /// The task's payload.
        payload: P,
    },
    /// Nothing refers to the task any more: free its value wherever it is stored.
    Forget {
        /// The task.
        id: TaskId,
        /// The task's payload.
        payload: P,
    },
}

/// What cancelling a task did (the answer of `TaskFuture::cancel` and `Client::cancel`).
///
/// Cancelling is Dask's: a cancelled task reports [`TaskError::Cancelled`] from then on,
/// whatever it was doing, and so does every task depending on it that the client still holds.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), taskweave::Error> {
/// use taskweave::CancelOutcome;
///
/// let client = taskweave::Client::new()?;
/// let done = client.submit(|x: i64| x + 1, 1);
/// assert_eq!(done.result()?, 2);
/// // A finished task gives its value up: awaiting it now reports the cancel.
/// assert_eq!(done.cancel(), CancelOutcome::CancelledAfterFinishing);
/// assert!(done.result().is_err());
/// assert_eq!(done.cancel(), CancelOutcome::AlreadyCancelled);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The task had no outcome yet: it will not start, or what its running body returns is
    /// discarded (a running async body is dropped).
    Cancelled,
    /// The task had already finished, with a value or an error: that outcome was dropped (its
    /// value released) and the task reports [`TaskError::Cancelled`] from now on. Tasks that
    /// read it were cancelled too, finished or not.
    CancelledAfterFinishing,
    /// The task was already cancelled (by an earlier cancel, a cancelled dependency or closing
    /// the client): nothing changed.
    AlreadyCancelled,
    /// The client is closed: nothing changed. A closed client keeps the outcomes its futures
    /// already hold and refuses everything else, cancels included.
    ClientClosed,
}

/// What asking to run a task again did (the answer of `TaskFuture::retry`).
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), taskweave::Error> {
/// use taskweave::RetryOutcome;
///
/// let client = taskweave::Client::new()?;
/// let fine = client.submit(|x: i64| x + 1, 1);
/// assert_eq!(fine.result()?, 2);
/// assert_eq!(fine.retry(), RetryOutcome::NotFailed);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryOutcome {
    /// The task runs again, after every failed task it depends on (directly or not) has run
    /// again; every handle to them waits for the new outcomes.
    Rerunning,
    /// The task has not failed (it is waiting, running, or has its value): nothing changed.
    NotFailed,
    /// The task was cancelled (directly, through a dependency, or by closing the client),
    /// which a retry does not undo: nothing changed. Submit it again instead.
    Cancelled,
    /// The client was closed: nothing runs any more.
    ClientClosed,
}
