//! Bugs planted on purpose, so that the simulation's tests can prove they catch them.
//!
//! Every bug is off unless a test switches it on for the current thread with [`plant`]. The
//! simulation runs the whole system on one thread, so a bug planted there is on for exactly
//! one simulated run and never for anything else (other tests, other threads, users).
//!
//! Not a public API: it exists only with the internal `__planted` feature (see `Cargo.toml`),
//! hidden from the docs, and it may change at any time. Without the feature, `active` is a
//! constant `false`, so no user build carries a switch.

#[cfg(feature = "__planted")]
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
    /// Redis: completing an entry acknowledges it first and stores the result and the
    /// client's notification in a second round trip, so a worker that dies (or a command that
    /// fails) in between loses the result while the entry is gone from the queue.
    RedisAckBeforeResult,
    /// Redis: the client matches a completion to its task by the task's id instead of the
    /// delivery id, so a second (duplicated or stale) completion is accepted for whichever
    /// attempt of the task is running now.
    RedisAcceptSecondResult,
    /// Redis: completing an entry does not check that the worker still owns it, so a slow
    /// worker whose entry was reclaimed (or completed) by another still publishes its result.
    RedisNoOwnerCheckOnComplete,
}

#[cfg(feature = "__planted")]
thread_local! {
    static PLANTED: Cell<Option<PlantedBug>> = const { Cell::new(None) };
}

/// Switches `bug` on for the current thread until the guard is dropped.
#[cfg(feature = "__planted")]
pub fn plant(bug: PlantedBug) -> PlantedGuard {
    let previous = PLANTED.with(|planted| planted.replace(Some(bug)));
    PlantedGuard { previous, _not_send: std::marker::PhantomData }
}

/// Keeps a planted bug switched on; see [`plant`].
#[cfg(feature = "__planted")]
#[derive(Debug)]
pub struct PlantedGuard {
    previous: Option<PlantedBug>,
    _not_send: std::marker::PhantomData<*const ()>,
}

#[cfg(feature = "__planted")]
impl Drop for PlantedGuard {
    fn drop(&mut self) {
        PLANTED.with(|planted| planted.set(self.previous));
    }
}

/// Whether `bug` is switched on for the current thread.
#[cfg(feature = "__planted")]
pub(crate) fn active(bug: PlantedBug) -> bool {
    PLANTED.with(|planted| planted.get() == Some(bug))
}

/// Never: this build has no planted bugs (feature `__planted` is off).
#[cfg(not(feature = "__planted"))]
#[inline(always)]
pub(crate) const fn active(_bug: PlantedBug) -> bool {
    false
}
