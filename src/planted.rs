//! Bugs planted on purpose, so that the simulation's tests can prove they catch them.
//!
//! Every bug is off unless a test switches it on for the current thread with [`plant`]. The
//! simulation runs the whole system on one thread, so a bug planted there is on for exactly
//! one simulated run and never for anything else (other tests, other threads, users).
//!
//! Not a public API: hidden from the docs, and it may change at any time.

use std::cell::Cell;

/// A bug that can be planted; see [`plant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlantedBug {
    /// The scheduler does not cancel the dependents of a cancelled task.
    NoCancelCascade,
    /// The scheduler accepts a report for a task that is no longer running, as if it were a
    /// task's (second) result.
    AcceptSecondResult,
    /// The scheduler does not give the worker slot back when a task fails.
    LeakSlotOnFailure,
    /// An in-process worker starts a task that was cancelled while it waited in the queue.
    RunCancelledTask,
    /// The scheduler makes a task ready when its first dependency finishes, not its last.
    ReadyAfterFirstDependency,
}

thread_local! {
    static PLANTED: Cell<Option<PlantedBug>> = const { Cell::new(None) };
}

/// Switches `bug` on for the current thread until the guard is dropped.
pub fn plant(bug: PlantedBug) -> PlantedGuard {
    let previous = PLANTED.with(|planted| planted.replace(Some(bug)));
    PlantedGuard { previous, _not_send: std::marker::PhantomData }
}

/// Keeps a planted bug switched on; see [`plant`].
#[derive(Debug)]
pub struct PlantedGuard {
    previous: Option<PlantedBug>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for PlantedGuard {
    fn drop(&mut self) {
        PLANTED.with(|planted| planted.set(self.previous));
    }
}

/// Whether `bug` is switched on for the current thread.
pub(crate) fn active(bug: PlantedBug) -> bool {
    PLANTED.with(|planted| planted.get() == Some(bug))
}
