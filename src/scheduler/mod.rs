//! The scheduler: a pure state machine over the task graph.
//!
//! It is fed [`Event`]s — facts such as "submitted", "finished", "failed", "released" — and
//! answers with [`Action`]s — commands such as "dispatch", "resolve", "forget". It does no
//! I/O, never awaits and never reads a clock, so every rule of the futures model (dependencies,
//! reference counting, cancellation cascades, retries, priorities) is tested here with plain
//! `#[test]`s, and every transport reuses it unchanged.
//!
//! ```
//! use taskweave::scheduler::{Action, Event, Scheduler, TaskId, TaskKey, TaskSpec};
//!
//! let mut scheduler = Scheduler::new(1);
//! let mut actions = Vec::new();
//! let spec = TaskSpec {
//!     id: TaskId(1),
//!     key: TaskKey::named("x"),
//!     deps: vec![],
//!     priority: 0,
//!     retries: 0,
//!     allowed_failures: 0,
//!     uses_worker: true,
//!     pinned: false,
//!     shared_key: false,
//!     payload: "job x",
//! };
//! scheduler.handle(Event::Submitted(spec), &mut actions);
//! assert_eq!(actions, [Action::Dispatch { id: TaskId(1), attempt: 1, payload: "job x" }]);
//! ```

mod event;
mod graph;
mod ids;
mod sharded;
mod table;
#[cfg(test)]
mod tests;

pub use crate::job::DEFAULT_ALLOWED_FAILURES;
pub use crate::key::{KeyTokens, TaskId, TaskKey, prefix_for_type_name};
pub use event::{Action, CancelOutcome, Event, RetryOutcome, TaskSpec};
pub use graph::{Scheduler, SchedulerCounts, TaskState};
pub use sharded::ShardedScheduler;
