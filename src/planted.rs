//! Bugs planted on purpose, so that the simulation's tests can prove they catch them.
//!
//! A bug is a value given to what it breaks when that is built: the client's scheduler and
//! its in-process workers ([`ClientBuilder::planted`](crate::ClientBuilder::planted)), and
//! the simulated Redis server and the transports connected to it
//! (`SimRedis::with_planted`). Nothing reads a global or a thread-local: a run without one
//! given is a run without bugs.
//!
//! Not a public API: this module exists only with the internal `__planted` feature (see
//! `Cargo.toml`), hidden from the docs, and it may change at any time. Without the feature
//! no build carries a bug (`tests/tidy.rs` checks every mention sits under the feature).

/// A bug that can be planted; see the module docs.
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
    /// Redis coordination: a lease acquire treats every lease that expires within one lease
    /// timeout as expired already, so it drops live leases and grants theirs again.
    RedisLeaseAcquireIgnoresExpiry,
    /// Redis coordination: a lease refresh does not check that the lease is still held, so
    /// a holder that was paused past its lease's expiry gets it back even after it went to
    /// another.
    RedisLeaseRefreshRevives,
}

impl PlantedBug {
    /// Every bug, for runners that plant one by name.
    pub const ALL: [PlantedBug; 10] = [
        PlantedBug::NoCancelCascade,
        PlantedBug::AcceptSecondResult,
        PlantedBug::LeakSlotOnFailure,
        PlantedBug::RunCancelledTask,
        PlantedBug::ReadyAfterFirstDependency,
        PlantedBug::RedisAckBeforeResult,
        PlantedBug::RedisAcceptSecondResult,
        PlantedBug::RedisNoOwnerCheckOnComplete,
        PlantedBug::RedisLeaseAcquireIgnoresExpiry,
        PlantedBug::RedisLeaseRefreshRevives,
    ];
}
