//! The clock of a client's task events (see `client::events`), shared by the client's core
//! and the in-process workers, which stamp each run with it.

use std::sync::Arc;
use std::time::Instant;

use crate::executor::{Executor, SystemTicks};

/// The clock of a client's task events: nanoseconds since the client started, on its
/// executor's timeline ([`Executor::now`]).
///
/// When the executor's `now` is the system's clock ([`Executor::now_is_system_clock`]) it
/// reads the CPU's time-stamp counter instead (see `SystemTicks`), about 10 ns against some
/// 26–28 for `now` through the `dyn Executor` on the benchmark's machine; otherwise (a
/// simulation's virtual time) it calls `now`.
#[derive(Debug)]
pub(crate) struct EventClock {
    source: ClockSource,
    /// Time zero, on the executor's timeline.
    origin: Instant,
}

#[derive(Debug)]
enum ClockSource {
    System(SystemTicks),
    Executor(Arc<dyn Executor>),
}

impl EventClock {
    /// The clock of a client on `executor`; `records` says whether it records task events
    /// (when not, the counter is not calibrated: nothing reads it).
    pub(crate) fn new(executor: &Arc<dyn Executor>, records: bool) -> EventClock {
        if records && executor.now_is_system_clock() {
            let ticks = SystemTicks::new();
            EventClock { origin: ticks.origin(), source: ClockSource::System(ticks) }
        } else {
            EventClock {
                origin: executor.now(),
                source: ClockSource::Executor(Arc::clone(executor)),
            }
        }
    }

    /// Time zero, on the executor's timeline.
    pub(crate) fn origin(&self) -> Instant {
        self.origin
    }

    /// Nanoseconds since time zero, now.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        match &self.source {
            ClockSource::System(ticks) => ticks.nanos(),
            ClockSource::Executor(executor) => self.nanos_at(executor.now()),
        }
    }

    /// Nanoseconds since time zero at `at` (a time a transport reported).
    pub(crate) fn nanos_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }
}
