//! Task events: what happened to each task and when, kept in a bounded ring per client.
//!
//! The client core records a task's transitions as it carries out the scheduler's actions,
//! under the scheduler lock it holds anyway (the scheduler itself stays pure: it has no clock,
//! the time comes from [`Executor::now`], read by the core or by the
//! worker that ran the task). Read them with [`Client::task_stream`](crate::Client::task_stream)
//! (one [`TaskRecord`] per run: who ran it, from when to when, how it ended),
//! [`Client::task_stream_live`](crate::Client::task_stream_live) (the same, as they happen)
//! and [`Client::story`](crate::Client::story) (every [`TaskEvent`] of one task, in order).
//!
//! # Cost and bounds
//!
//! A task makes one entry per run (written when the run ends, with the times it was
//! submitted and queued, which the task keeps until then, and its start and end, which its
//! worker reports with the outcome), or one when it fails or is cancelled without a run of
//! its own; each entry takes [`TASK_EVENT_BYTES`] bytes of the ring, plus the error of a
//! failure. So a task still waiting or running has no story yet. The ring holds
//! [`DEFAULT_TASK_EVENTS`] entries unless
//! [`ClientBuilder::task_events`](crate::ClientBuilder::task_events) says otherwise (at most
//! about 7 MiB by default on a 64-bit target, reserved at once but only touched as it fills),
//! and drops its oldest entry for each new one once full: [`TaskEventCounts::dropped`] says
//! how many. No entry is allocated on its own: the ring is one buffer. With `task_events(0)`
//! nothing is recorded and no clock is read.
//!
//! # Where a panic happened
//!
//! A panic's message is kept ([`TaskError::Panicked`]); its location (file and line) is not.
//! The standard library hands a panic's [`Location`](std::panic::Location) only to the
//! process-wide panic hook, and taskweave does not install one: a library that replaces (or
//! wraps, even for a while) the hook of the application it runs in changes what that
//! application's own panics do, races with other threads that set the hook, and cannot tell
//! its workers' panics from the host's without thread-local bookkeeping on every task. The
//! default hook already prints the location to stderr (with the worker's thread name,
//! `worker-N`); an application that wants it in the task's error can install a hook of its
//! own that formats the location into the payload.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::Stream;

use std::sync::atomic::Ordering;

use crate::error::TaskError;
use crate::executor::Executor;
use crate::job::Job;
use crate::key::TaskKey;

use super::core::Core;

/// How many entries a client's task-event ring holds unless
/// [`ClientBuilder::task_events`](crate::ClientBuilder::task_events) says otherwise: 65,536
/// (as many runs; at most about 7 MiB on a 64-bit target).
pub const DEFAULT_TASK_EVENTS: usize = 65_536;

/// The bytes one entry of the task-event ring takes (at most 112 on a 64-bit target; the
/// error of a failure is held besides, in its own allocation).
pub const TASK_EVENT_BYTES: usize = std::mem::size_of::<Entry>();

/// One transition of one task, as [`Client::story`](crate::Client::story) returns it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskEvent {
    /// The task's key.
    pub key: TaskKey,
    /// When, since the client started, on its executor's clock
    /// ([`Client::elapsed`](crate::Client::elapsed)).
    pub at: Duration,
    /// What happened.
    pub transition: TaskTransition,
}

/// What happened to a task (see [`TaskEvent`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TaskTransition {
    /// The client accepted the task.
    Submitted,
    /// Its dependencies were done and it was handed to the transport, for its `attempt`th run
    /// (counting from 1: a later attempt is a retry, automatic or asked for, or a re-run after
    /// a lost worker).
    Queued {
        /// Which run this is, from 1.
        attempt: u32,
    },
    /// A worker started running it (`None`: the transport did not say which, or an async
    /// body, which runs on the executor rather than a worker).
    Started {
        /// The worker's name, such as `worker-0`.
        worker: Option<Arc<str>>,
        /// Which run this is, from 1.
        attempt: u32,
    },
    /// The run produced the task's value.
    Finished {
        /// The worker's name.
        worker: Option<Arc<str>>,
        /// Which run this is, from 1.
        attempt: u32,
    },
    /// The run returned an error or panicked. If no `Queued` follows, that is the task's
    /// outcome.
    RunFailed {
        /// The worker's name.
        worker: Option<Arc<str>>,
        /// Which run this is, from 1.
        attempt: u32,
        /// The error, as the task's future reports it.
        error: TaskError,
    },
    /// The worker running it was lost (it died, or its delivery vanished). A `Queued` follows
    /// when it runs again, a `Failed` when it was lost too often.
    Lost {
        /// The worker's name, when known.
        worker: Option<Arc<str>>,
        /// Which run this was, from 1.
        attempt: u32,
    },
    /// It failed without a run of its own failing: a dependency failed
    /// ([`TaskError::DependencyFailed`], whose [`root`](TaskError::root) names the task that
    /// failed first, key and error), it was lost too often, or its transport gave it up.
    Failed {
        /// The error its future reports.
        error: TaskError,
    },
    /// It was cancelled (directly, through a dependency, or by the client closing).
    Cancelled {
        /// Why, as its future reports it.
        reason: String,
    },
}

/// How a run ended, in a [`TaskRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunStatus {
    /// It produced a value.
    Finished,
    /// Its body returned an error.
    Failed,
    /// Its body panicked.
    Panicked,
    /// Its worker was lost.
    Lost,
}

impl RunStatus {
    /// A short lowercase name (`finished`, `failed`, `panicked`, `lost`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
            RunStatus::Panicked => "panicked",
            RunStatus::Lost => "lost",
        }
    }
}

/// One run of one task, as [`Client::task_stream`](crate::Client::task_stream) returns it
/// (Dask's `get_task_stream`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskRecord {
    /// The task's key.
    pub key: TaskKey,
    /// The registered task's [`NAME`](crate::Task::NAME), else the key's readable prefix
    /// (the function's name for generated keys; for a key given by the user, the key without
    /// a trailing `-<16 hex digits>`).
    pub name: Arc<str>,
    /// Who ran it (`None`: the transport did not say, or an async body run on the executor).
    pub worker: Option<Arc<str>>,
    /// When the run started, since the client started (`None`: the transport did not say).
    pub start: Option<Duration>,
    /// When it ended, since the client started.
    pub stop: Duration,
    /// How it ended.
    pub status: RunStatus,
    /// Which run of the task this was, from 1.
    pub attempt: u32,
}

/// How many task events a client recorded and kept
/// ([`Client::task_event_counts`](crate::Client::task_event_counts)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TaskEventCounts {
    /// How many entries the ring holds at most (0: recording is off).
    pub capacity: usize,
    /// How many it holds now.
    pub held: usize,
    /// How many were recorded since the client started.
    pub recorded: u64,
    /// How many of those were dropped, oldest first, to make room.
    pub dropped: u64,
}

/// An entry of the ring: a time, a task, what happened. Kept small (see [`TASK_EVENT_BYTES`]):
/// a run is one entry, its error boxed.
#[derive(Debug)]
pub(crate) struct Entry {
    key: TaskKey,
    /// The registered task's name, if any.
    name: Option<&'static str>,
    /// Nanoseconds since the client's origin.
    at: u64,
    /// When the task was submitted and (for a run) queued for this run, from its job
    /// (`UNKNOWN`: not recorded).
    submitted: u64,
    queued: u64,
    kind: Kind,
}

/// A time not recorded.
const UNKNOWN: u64 = u64::MAX;

#[derive(Debug)]
enum Kind {
    /// A run ended at `at`; it started at `started` (nanoseconds), if known.
    Ran {
        worker: Option<Arc<str>>,
        started: Option<u64>,
        attempt: u32,
        /// `None`: it produced a value; else its error (`Failed`, `Panicked`), or for a lost
        /// worker `None` with `lost` set.
        error: Option<Box<TaskError>>,
        lost: bool,
    },
    Failed(Box<TaskError>),
}

/// The clock of one hold of the scheduler lock: read at most once, and only when something
/// is recorded.
pub(crate) struct Stamp<'a> {
    executor: &'a dyn Executor,
    origin: Instant,
    at: Option<u64>,
}

impl<'a> Stamp<'a> {
    pub(crate) fn new(executor: &'a dyn Executor, origin: Instant) -> Stamp<'a> {
        Stamp { executor, origin, at: None }
    }

    /// A stamp at a time already known (a worker's report of when its run ended).
    pub(crate) fn at(executor: &'a dyn Executor, origin: Instant, at: Instant) -> Stamp<'a> {
        Stamp { executor, origin, at: Some(nanos_since(origin, at)) }
    }

    /// Reads the clock now (before taking a lock, to keep the lock short).
    pub(crate) fn read(&mut self) {
        self.now();
    }

    /// The stamp's time, read from the clock the first time.
    pub(crate) fn now(&mut self) -> u64 {
        match self.at {
            Some(at) => at,
            None => {
                let at = nanos_since(self.origin, self.executor.now());
                self.at = Some(at);
                at
            }
        }
    }

    pub(crate) fn nanos(&self, at: Instant) -> u64 {
        nanos_since(self.origin, at)
    }
}

fn nanos_since(origin: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

/// The ring of one client, kept beside its scheduler under the same lock.
pub(crate) struct EventRing {
    entries: VecDeque<Entry>,
    capacity: usize,
    /// Entries recorded since the start: the sequence number of the next one.
    recorded: u64,
    /// Live streams waiting for the next run to end.
    live: Vec<Waker>,
}

impl EventRing {
    pub(crate) fn new(capacity: usize) -> EventRing {
        // Reserved whole, so that it never grows (and copies itself) under the lock: an
        // allocation this large is mapped lazily by the system, so the pages a client never
        // fills cost no memory.
        EventRing {
            entries: VecDeque::with_capacity(capacity),
            capacity,
            recorded: 0,
            live: Vec::new(),
        }
    }

    fn push(&mut self, entry: Entry) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
        self.recorded += 1;
    }

    /// A run ended (at the stamp's time); `error` is `None` for a value.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn ran(
        &mut self,
        job: &Job,
        name: Option<&'static str>,
        worker: Option<Arc<str>>,
        started: Option<u64>,
        attempt: u32,
        error: Option<TaskError>,
        lost: bool,
        at: &mut Stamp,
    ) {
        let at = at.now();
        let kind = Kind::Ran { worker, started, attempt, error: error.map(Box::new), lost };
        self.push(entry(job, name, at, kind));
    }

    pub(crate) fn failed(
        &mut self,
        job: &Job,
        name: Option<&'static str>,
        error: &TaskError,
        at: &mut Stamp,
    ) {
        let at = at.now();
        self.push(entry(job, name, at, Kind::Failed(Box::new(error.clone()))));
    }

    /// The wakers of the live streams, to wake after the lock (a run ended, or the client
    /// closed).
    pub(crate) fn take_live(&mut self) -> Vec<Waker> {
        if self.live.is_empty() { Vec::new() } else { std::mem::take(&mut self.live) }
    }

    pub(crate) fn counts(&self) -> TaskEventCounts {
        TaskEventCounts {
            capacity: self.capacity,
            held: self.entries.len(),
            recorded: self.recorded,
            dropped: self.recorded - self.entries.len() as u64,
        }
    }

    /// The sequence number of the oldest entry held.
    fn first_seq(&self) -> u64 {
        self.recorded - self.entries.len() as u64
    }

    /// The runs that ended within `range` (nanoseconds), oldest first.
    pub(crate) fn records(&self, from: u64, to: u64) -> Vec<TaskRecord> {
        // Entries are in recording order, and their times grow with it except for a worker's
        // report that reached the lock late: scan them all (a debugging call).
        self.entries
            .iter()
            .filter(|entry| (from..to).contains(&entry.at))
            .filter_map(record_of)
            .collect()
    }

    /// The runs recorded from sequence number `next` on, with how many of them were dropped
    /// before they could be read; returns the next sequence number to read.
    fn records_since(&self, next: u64, into: &mut VecDeque<TaskRecord>) -> (u64, u64) {
        let first = self.first_seq();
        let missed = first.saturating_sub(next);
        let skip = next.saturating_sub(first) as usize;
        into.extend(self.entries.iter().skip(skip).filter_map(record_of));
        (self.recorded, missed)
    }

    /// At most `max` entries recorded from sequence number `next` on, oldest first, for a
    /// reader that keeps up in small bites (the dashboard): one hold of the lock copies at
    /// most `max` of them, and allocates nothing but a failure's error. Returns the next
    /// sequence number to read and how many entries were dropped before they could be read.
    #[cfg(feature = "dashboard")]
    pub(crate) fn entries_since(
        &self,
        next: u64,
        max: usize,
        into: &mut Vec<EntryView>,
    ) -> (u64, u64) {
        let first = self.first_seq();
        let missed = first.saturating_sub(next);
        let skip = next.saturating_sub(first) as usize;
        let mut read = next.max(first);
        for entry in self.entries.iter().skip(skip).take(max) {
            let (run, error) = match &entry.kind {
                Kind::Ran { worker, started, attempt, error, lost } => (
                    Some(RunView {
                        worker: worker.clone(),
                        start: started.map(Duration::from_nanos),
                        stop: Duration::from_nanos(entry.at),
                        status: run_status(error.as_deref(), *lost),
                        attempt: *attempt,
                    }),
                    error.as_deref().cloned(),
                ),
                Kind::Failed(error) => (None, Some((**error).clone())),
            };
            into.push(EntryView { key: entry.key.clone(), registered: entry.name, run, error });
            read += 1;
        }
        (read, missed)
    }

    /// The transitions of the task `key`, in order.
    pub(crate) fn story(&self, key: &TaskKey) -> Vec<TaskEvent> {
        let mut story = Vec::new();
        let mut told_submitted = false;
        for entry in self.entries.iter().filter(|entry| entry.key == *key) {
            let event = |at: u64, transition| TaskEvent {
                key: entry.key.clone(),
                at: Duration::from_nanos(at),
                transition,
            };
            if !told_submitted && entry.submitted != UNKNOWN {
                story.push(event(entry.submitted, TaskTransition::Submitted));
                told_submitted = true;
            }
            match &entry.kind {
                Kind::Ran { worker, started, attempt, error, lost } => {
                    let (worker, attempt) = (worker.clone(), *attempt);
                    if entry.queued != UNKNOWN {
                        story.push(event(entry.queued, TaskTransition::Queued { attempt }));
                    }
                    if let Some(started) = started {
                        story.push(event(
                            *started,
                            TaskTransition::Started { worker: worker.clone(), attempt },
                        ));
                    }
                    let end = match (error, lost) {
                        (_, true) => TaskTransition::Lost { worker, attempt },
                        (None, false) => TaskTransition::Finished { worker, attempt },
                        (Some(error), false) => {
                            TaskTransition::RunFailed { worker, attempt, error: (**error).clone() }
                        }
                    };
                    story.push(event(entry.at, end));
                }
                Kind::Failed(error) => story.push(event(
                    entry.at,
                    match &**error {
                        TaskError::Cancelled { reason, .. } => {
                            TaskTransition::Cancelled { reason: reason.clone() }
                        }
                        other => TaskTransition::Failed { error: other.clone() },
                    },
                )),
            }
        }
        story
    }
}

/// One ring entry as [`EventRing::entries_since`] copies it out: the run, if it was one,
/// and the error of a failure (a run's, or a failure or cancel without a run of its own).
#[cfg(feature = "dashboard")]
#[derive(Debug)]
pub(crate) struct EntryView {
    pub(crate) key: TaskKey,
    registered: Option<&'static str>,
    pub(crate) run: Option<RunView>,
    pub(crate) error: Option<TaskError>,
}

#[cfg(feature = "dashboard")]
impl EntryView {
    /// The task's name, as [`TaskRecord::name`] gives it.
    pub(crate) fn name(&self) -> &str {
        self.registered.unwrap_or_else(|| key_name(&self.key))
    }

    /// An entry as the ring would give it, for the dashboard's unit tests (the key's prefix
    /// is the name).
    #[cfg(test)]
    pub(crate) fn for_tests(
        key: TaskKey,
        run: Option<RunView>,
        error: Option<TaskError>,
    ) -> EntryView {
        EntryView { key, registered: None, run, error }
    }
}

/// One run, in an [`EntryView`].
#[cfg(feature = "dashboard")]
#[derive(Debug)]
pub(crate) struct RunView {
    pub(crate) worker: Option<Arc<str>>,
    pub(crate) start: Option<Duration>,
    pub(crate) stop: Duration,
    pub(crate) status: RunStatus,
    pub(crate) attempt: u32,
}

/// An entry for `job`, with the times it keeps.
fn entry(job: &Job, name: Option<&'static str>, at: u64, kind: Kind) -> Entry {
    Entry {
        key: job.key.clone(),
        name,
        at,
        submitted: job.submitted_at.load(Ordering::Relaxed),
        queued: job.queued_at.load(Ordering::Relaxed),
        kind,
    }
}

fn record_of(entry: &Entry) -> Option<TaskRecord> {
    let Kind::Ran { worker, started, attempt, error, lost } = &entry.kind else {
        return None;
    };
    let status = run_status(error.as_deref(), *lost);
    Some(TaskRecord {
        key: entry.key.clone(),
        name: match entry.name {
            Some(name) => Arc::from(name),
            None => Arc::from(key_name(&entry.key)),
        },
        worker: worker.clone(),
        start: started.map(Duration::from_nanos),
        stop: Duration::from_nanos(entry.at),
        status,
        attempt: *attempt,
    })
}

/// How a run ended, from its error and whether its worker was lost.
fn run_status(error: Option<&TaskError>, lost: bool) -> RunStatus {
    match (error, lost) {
        (_, true) => RunStatus::Lost,
        (None, false) => RunStatus::Finished,
        (Some(TaskError::Panicked { .. }), false) => RunStatus::Panicked,
        (Some(_), false) => RunStatus::Failed,
    }
}

/// The readable part of a key: its prefix, without a trailing `-<16 hex digits>` token.
fn key_name(key: &TaskKey) -> &str {
    let prefix = key.prefix();
    match prefix.rsplit_once('-') {
        Some((name, token))
            if token.len() == 16 && token.bytes().all(|byte| byte.is_ascii_hexdigit()) =>
        {
            name
        }
        _ => prefix,
    }
}

/// A live [`Stream`] of [`TaskRecord`]s, one per run as it ends, from
/// [`Client::task_stream_live`](crate::Client::task_stream_live).
///
/// It reads the client's task-event ring; it holds no buffer of its own beyond what one poll
/// takes, so a slow or stalled consumer never slows the client down or makes it hold more
/// memory: when it falls more than the ring's capacity behind, the oldest records it had not
/// read are gone, and [`missed`](TaskStreamLive::missed) counts the entries it lost (every
/// kind, not only runs). It ends after the client closes (with the records recorded until
/// then). With recording off it ends at once.
///
/// # Cancel safety
///
/// Dropping it stops it; nothing else is affected.
pub struct TaskStreamLive {
    core: Arc<Core>,
    next: u64,
    missed: u64,
    buffered: VecDeque<TaskRecord>,
}

impl fmt::Debug for TaskStreamLive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskStreamLive")
            .field("next", &self.next)
            .field("missed", &self.missed)
            .finish_non_exhaustive()
    }
}

impl TaskStreamLive {
    pub(crate) fn new(core: Arc<Core>) -> TaskStreamLive {
        // From now on: what was recorded before is in `Client::task_stream`.
        let next = core.with_events(|ring| ring.recorded).unwrap_or(0);
        TaskStreamLive { core, next, missed: 0, buffered: VecDeque::new() }
    }

    /// How many ring entries were dropped before this stream read them (the consumer fell
    /// more than the ring's capacity behind).
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

impl Stream for TaskStreamLive {
    type Item = TaskRecord;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TaskRecord>> {
        let this = &mut *self;
        loop {
            if let Some(record) = this.buffered.pop_front() {
                return Poll::Ready(Some(record));
            }
            let core = Arc::clone(&this.core);
            let read = core.with_events(|ring| {
                // Read under the lock: a close after this hold takes the waker and wakes it.
                let closed = core.is_closed();
                let read = ring.records_since(this.next, &mut this.buffered);
                if this.buffered.is_empty()
                    && !closed
                    && !ring.live.iter().any(|waker| waker.will_wake(cx.waker()))
                {
                    ring.live.push(cx.waker().clone());
                }
                (read, closed)
            });
            let Some(((next, missed), closed)) = read else {
                return Poll::Ready(None);
            };
            this.next = next;
            this.missed += missed;
            if this.buffered.is_empty() {
                return if closed { Poll::Ready(None) } else { Poll::Pending };
            }
        }
    }
}
