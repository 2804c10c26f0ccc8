//! Task events: what happened to each task and when, kept in a bounded ring per client.
//!
//! The client core records a task's transitions as it carries out the scheduler's actions,
//! into a ring behind a short lock of its own (the scheduler itself stays pure: it has no
//! clock, the time comes from [`Executor::now`](crate::Executor::now), read by the core or by
//! the worker that ran the task). A run's entry is written when its worker reports, before
//! the scheduler lock is taken for the report, into a staging area of the reporting thread
//! (see `EventLog`), from which it moves into the ring when the area is full or when anyone
//! reads the ring; a dispatched task's queue time is stored in its job after the scheduler
//! lock is let go, before the transport gets the task. So recording adds nothing to the
//! time the scheduler lock is held for a run that ends well, and two workers reporting at
//! once do not meet at the ring's lock. A failure or cancel without a run of its own is written
//! under the scheduler lock (the ring's lock nested in it). Every entry of a task is in the
//! ring or a staging area before its futures are resolved, and every read moves the staged
//! entries into the ring first, so a `story` read after awaiting a result shows how the run
//! ended. Read them with [`Client::task_stream`](crate::Client::task_stream)
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
//! 4 MiB by default on a 64-bit target, reserved at once but only touched as it fills),
//! and drops its oldest entry for each new one once full: [`TaskEventCounts::dropped`] says
//! how many. Besides the ring, up to 256 runs per staging area (16 areas, 256 KiB at most)
//! wait to be moved into it. No entry is allocated on its own: the ring is one buffer, and an entry names its
//! worker by an index into a table of the names the ring holds. With `task_events(0)`
//! nothing is recorded and no clock is read. To keep an entry to one cache line, its worker,
//! registered name and attempt are 16-bit: past 65,534 worker names held at once (or
//! registered names) a run shows no worker (or its key's prefix as its name), and an
//! attempt past 65,535 shows as 65,535.
//!
//! The clock is read once per `submit` (once per batch of a `map`), once per run on a busy
//! in-process worker, and never otherwise on the way of a task. When the executor's clock is
//! the system's ([`Executor::now_is_system_clock`](crate::Executor::now_is_system_clock), true
//! for the bundled executors but the simulation's) a reading is one of the CPU's
//! time-stamp counter, about 10 ns on the benchmark's virtual machine against 26–28 for
//! [`Executor::now`](crate::Executor::now) through the client's `dyn Executor`; otherwise it is `now`. The first
//! client in a process that records events on such an executor calibrates the counter once
//! (a busy loop of about a millisecond, bounded at 200). `BENCHMARKS.md` has the measured
//! cost of recording.
//!
//! # Resolution
//!
//! Times are nanoseconds of [`Executor::now`](crate::Executor::now) since the client started, but some are shared
//! rather than read for each event:
//!
//! - the tasks of one batch of a `map` (up to 32) share their submit time, and a task queued
//!   by a run's report is queued at that run's end (or at its own submission, if later);
//! - an in-process worker that takes its next task from its queue without waiting starts it
//!   when the previous run ended: the few microseconds between, in which it reported that run
//!   and took this one, count into this run. A start is never before the task was queued,
//!   nor a stop before its start, so each story is in time order and a worker's runs never
//!   overlap.
//!
//! # Runs on Redis workers
//!
//! A Redis worker writes its name (its consumer name) and when it started and finished the
//! run, on its own wall clock in microseconds, into the completion it writes anyway (no
//! extra round trip). The client maps those times onto its own timeline as "when the
//! completion arrived, less how long ago the time was on the client's wall clock", so a
//! worker whose clock is skewed against the client's shifts its runs by the skew: within
//! the bounds the client knows (a start no earlier than the task was queued, a stop no later
//! than the completion arrived). Keep the hosts' clocks synchronised (NTP) for the task
//! stream to line up across hosts. A worker of a version without these fields reports none:
//! its runs show no worker and no start.
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

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::Stream;
use parking_lot::{Mutex, MutexGuard};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::TaskError;
use crate::job::Job;
use crate::key::TaskKey;
use crate::transport::EventClock;

use super::core::Core;

/// How many entries a client's task-event ring holds unless
/// [`ClientBuilder::task_events`](crate::ClientBuilder::task_events) says otherwise: 65,536
/// (as many runs; 4 MiB on a 64-bit target).
pub const DEFAULT_TASK_EVENTS: usize = 65_536;

/// The bytes one entry of the task-event ring takes (64 on a 64-bit target, one cache line;
/// the error of a failure is held beside the ring, in a queue of its own).
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

/// An entry of the ring: a time, a task, what happened. One cache line (64 bytes on a 64-bit
/// target, see [`TASK_EVENT_BYTES`]): a run is one entry, its worker's name an index into the
/// ring's [`Workers`], its registered name one into [`Names`], its error (rare) held beside
/// the ring, in `EventRing::errors`.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Entry {
    key: TaskKey,
    /// Nanoseconds since the client's origin.
    at: u64,
    /// When the task was submitted and (for a run) queued for this run, from its job
    /// (`UNKNOWN`: not recorded).
    submitted: u64,
    queued: u64,
    /// For a run: when it started (`UNKNOWN`: not reported).
    started: u64,
    /// The registered task's name, if any, in the ring's [`Names`] (`NO_NAME`: none).
    name: u16,
    /// For a run: its worker, in [`Workers`] (`NO_WORKER`: not reported).
    worker: u16,
    /// For a run: which one, from 1 (65,535 stands for that many or more).
    attempt: u16,
    kind: Kind,
    /// Whether `EventRing::errors` holds an error for this entry: for a run, its error if it
    /// failed or panicked; else the task's error.
    has_error: bool,
}

/// A time not recorded.
pub(crate) const UNKNOWN: u64 = u64::MAX;

/// A worker not reported (or past the 65,534 names the table holds at once).
const NO_WORKER: u32 = u16::MAX as u32;

/// No registered name (or past the 65,534 names the table holds).
const NO_NAME: u32 = u16::MAX as u32;

/// The registered tasks' names the ring's entries name, each held once (an index is 4 bytes
/// of an entry, the name 16). Registered names are constants of the program, so the table
/// stays small; it is never shrunk.
#[derive(Debug, Default)]
struct Names {
    names: Vec<&'static str>,
    /// The index found last: tasks of one name come in runs.
    last: u32,
}

impl Names {
    fn index(&mut self, name: Option<&'static str>) -> u32 {
        let Some(name) = name else { return NO_NAME };
        let same = |held: &&'static str| std::ptr::eq(*held, name) || *held == name;
        if self.names.get(self.last as usize).is_some_and(same) {
            return self.last;
        }
        let index = match self.names.iter().position(same) {
            Some(index) => index,
            None if self.names.len() < NO_NAME as usize => {
                self.names.push(name);
                self.names.len() - 1
            }
            None => return NO_NAME,
        };
        self.last = index as u32;
        self.last
    }

    fn name(&self, index: u32) -> Option<&'static str> {
        self.names.get(index as usize).copied()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A run ended at `at` (with a value, or its `error`).
    Ran,
    /// A run ended at `at` with its worker lost.
    Lost,
    /// The task failed or was cancelled without a run of its own (`error`).
    Failed,
}

/// The names of the workers the ring's entries name, each held once: an entry holds an
/// index, so that recording a run neither copies a name nor touches the reference count of
/// the worker's own `Arc` from another thread. A name is forgotten (its slot reused) when
/// no entry names it any more, so the table is bounded by the ring, however many workers
/// come and go.
#[derive(Debug, Default)]
struct Workers {
    /// Per slot: the name (`None`: free) and how many entries hold it.
    slots: Vec<(Option<Arc<str>>, u32)>,
    /// The slot of each name held.
    index: HashMap<Arc<str>, u32>,
    free: Vec<u32>,
}

impl Workers {
    /// The slot of `name` (a new one, held by no entry yet, if it has none), before the
    /// entries that name it are counted with [`add_holds`](Workers::add_holds).
    fn slot_of(&mut self, name: &Arc<str>) -> u32 {
        // A few workers (the common case): their slots, compared by address, before hashing
        // the name.
        match self
            .slots
            .iter()
            .take(8)
            .position(|slot| slot.0.as_ref().is_some_and(|held| Arc::ptr_eq(held, name)))
        {
            Some(index) => index as u32,
            None => self.find_or_add(name),
        }
    }

    /// Slot `index` (from [`slot_of`](Workers::slot_of)) is held by `entries` more entries.
    fn add_holds(&mut self, index: u32, entries: u32) {
        if let Some(slot) = self.slots.get_mut(index as usize) {
            slot.1 += entries;
        }
    }

    /// The slot of `name`, found by hashing it, or a new one.
    fn find_or_add(&mut self, name: &Arc<str>) -> u32 {
        match self.index.get(name) {
            Some(&index) => index,
            None => {
                let index = match self.free.pop() {
                    Some(index) => {
                        self.slots[index as usize] = (Some(Arc::clone(name)), 0);
                        index
                    }
                    None if self.slots.len() < NO_WORKER as usize => {
                        self.slots.push((Some(Arc::clone(name)), 0));
                        (self.slots.len() - 1) as u32
                    }
                    None => return NO_WORKER,
                };
                self.index.insert(Arc::clone(name), index);
                index
            }
        }
    }

    /// An entry holding slot `index` was dropped.
    fn release(&mut self, index: u32) {
        if let Some(slot) = self.slots.get_mut(index as usize) {
            slot.1 -= 1;
            if slot.1 == 0
                && let Some(name) = slot.0.take()
            {
                self.index.remove(&name);
                self.free.push(index);
            }
        }
    }

    fn name(&self, index: u32) -> Option<Arc<str>> {
        self.slots.get(index as usize).and_then(|slot| slot.0.clone())
    }
}

/// The clock of one hold of the scheduler lock: read at most once, and only when something
/// is recorded.
pub(crate) struct Stamp<'a> {
    clock: &'a EventClock,
    at: Option<u64>,
}

impl<'a> Stamp<'a> {
    pub(crate) fn new(clock: &'a EventClock) -> Stamp<'a> {
        Stamp { clock, at: None }
    }

    /// A stamp at a time already known, in nanoseconds since the origin (a worker's report
    /// of when its run ended).
    pub(crate) fn at(clock: &'a EventClock, at: u64) -> Stamp<'a> {
        Stamp { clock, at: Some(at) }
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
                let at = self.clock.now();
                self.at = Some(at);
                at
            }
        }
    }

    pub(crate) fn nanos(&self, at: Instant) -> u64 {
        self.clock.nanos_at(at)
    }
}

/// The ring of one client, behind a lock of its own (see `Core::complete`).
pub(crate) struct EventRing {
    entries: VecDeque<Entry>,
    capacity: usize,
    /// Entries recorded since the start: the sequence number of the next one.
    recorded: u64,
    /// Live streams waiting for the next run to end.
    live: Vec<Waker>,
    /// The errors of the entries that have one (`Entry::has_error`), by sequence number,
    /// oldest first: failures are rare, so an entry does not carry room for one.
    errors: VecDeque<(u64, TaskError)>,
    /// The names of the workers the entries name.
    workers: Workers,
    /// The registered names the entries name.
    names: Names,
    /// Per staging area, the list [`EventLog::unstage`] swaps with the area's (both keep
    /// their room, so that moving entries allocates nothing once every area was filled).
    unstaging: [Staged; STAGING_AREAS],
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
            errors: VecDeque::new(),
            workers: Workers::default(),
            names: Names::default(),
            unstaging: Default::default(),
        }
    }

    /// Adds `entry` (with `error`, if any) as the newest, dropping the oldest when full;
    /// returns it, where it is held. (Its small fields are set there rather than before the
    /// entry is copied in: a copy that reads fields just written one by one waits for them.)
    #[inline]
    fn push(&mut self, entry: Entry, error: Option<TaskError>) -> &mut Entry {
        if self.entries.len() == self.capacity
            && let Some(oldest) = self.entries.pop_front()
        {
            if u32::from(oldest.worker) != NO_WORKER {
                self.workers.release(u32::from(oldest.worker));
            }
            // Errors are held in the entries' order, and every older entry is gone.
            if oldest.has_error {
                self.errors.pop_front();
            }
        }
        let has_error = error.is_some();
        if let Some(error) = error {
            self.errors.push_back((self.recorded, error));
        }
        self.entries.push_back(entry);
        self.recorded += 1;
        let held = self.entries.back_mut().expect("an entry was just pushed");
        held.has_error = has_error;
        held
    }

    /// The error of `entry`, the one of sequence number `seq`.
    fn error_of(&self, seq: u64, entry: &Entry) -> Option<&TaskError> {
        if !entry.has_error {
            return None;
        }
        let index = self.errors.binary_search_by_key(&seq, |(held, _)| *held).ok()?;
        Some(&self.errors[index].1)
    }

    /// The entries held with their sequence numbers, oldest first.
    fn numbered(&self) -> impl Iterator<Item = (u64, &Entry)> {
        let first = self.first_seq();
        self.entries.iter().enumerate().map(move |(index, entry)| (first + index as u64, entry))
    }

    /// Moves the runs taken from the staging areas (into `unstaging`) into the ring, in the
    /// order they ended, as the ring was written before: each area's runs are in its
    /// writer's order already, so this merges them (a run that ended at the same time as
    /// another goes in after those of lower areas), without sorting or a scratch list. Each
    /// entry's registered name and worker, indexes into its area's tables, become indexes
    /// into the ring's.
    fn push_unstaged(&mut self) {
        let mut areas = std::mem::take(&mut self.unstaging);
        // Each area's names and workers become indexes into the ring's tables once per move,
        // not once per run; and every run's worker is counted as held before any run goes in,
        // so a slot that the entries dropped meanwhile free is never one of these.
        for area in &mut areas {
            if area.is_empty() {
                continue;
            }
            let Staged { entries, names, workers, name_slots, worker_slots, .. } = area;
            name_slots.clear();
            name_slots.extend(names.iter().map(|&name| self.names.index(Some(name)) as u16));
            worker_slots.clear();
            worker_slots.extend(workers.iter().map(|worker| self.workers.slot_of(worker) as u16));
            if let [only] = worker_slots.as_slice() {
                // One worker reported every run of the area (the common case).
                let held = entries.iter().filter(|entry| entry.worker == 0).count();
                self.workers.add_holds(u32::from(*only), held as u32);
            } else {
                for entry in entries.iter() {
                    if let Some(&slot) = worker_slots.get(usize::from(entry.worker)) {
                        self.workers.add_holds(u32::from(slot), 1);
                    }
                }
            }
        }
        {
            let mut runs = areas.each_mut().map(|area| {
                let Staged { entries, errors, name_slots, worker_slots, .. } = area;
                (entries.drain(..), errors.drain(..), &*name_slots, &*worker_slots)
            });
            // The areas with runs left (most are empty: one per reporting thread).
            let mut left = [0; STAGING_AREAS];
            let mut count = 0;
            for (index, (entries, ..)) in runs.iter().enumerate() {
                if !entries.as_slice().is_empty() {
                    left[count] = index;
                    count += 1;
                }
            }
            while count > 0 {
                // The area whose next run ended first (the lowest such area on a tie).
                let mut first = 0;
                if count > 1 {
                    let mut first_at = u64::MAX;
                    for (position, &index) in left[..count].iter().enumerate() {
                        let at = runs[index].0.as_slice().first().map_or(u64::MAX, |e| e.at);
                        if at < first_at || position == 0 {
                            (first, first_at) = (position, at);
                        }
                    }
                }
                let (entries, errors, name_slots, worker_slots) = &mut runs[left[first]];
                if let Some(entry) = entries.next() {
                    let error = if entry.has_error { errors.next() } else { None };
                    let name = name_slots.get(usize::from(entry.name)).copied();
                    let worker = worker_slots.get(usize::from(entry.worker)).copied();
                    let held = self.push(entry, error);
                    held.name = name.unwrap_or(NO_NAME as u16);
                    held.worker = worker.unwrap_or(NO_WORKER as u16);
                }
                if entries.as_slice().is_empty() {
                    left.copy_within(first + 1..count, first);
                    count -= 1;
                }
            }
        }
        for area in &mut areas {
            area.names.clear();
            area.workers.clear();
        }
        self.unstaging = areas;
    }

    pub(crate) fn failed(
        &mut self,
        job: &Job,
        name: Option<&'static str>,
        error: &TaskError,
        at: &mut Stamp,
    ) {
        let name = self.names.index(name);
        let entry = entry(job, name, at.now(), Kind::Failed);
        self.push(entry, Some(error.clone()));
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
        self.numbered()
            .filter(|(_, entry)| (from..to).contains(&entry.at))
            .filter_map(|(seq, entry)| self.record_of(seq, entry))
            .collect()
    }

    /// The runs recorded from sequence number `next` on, with how many of them were dropped
    /// before they could be read; returns the next sequence number to read.
    fn records_since(&self, next: u64, into: &mut VecDeque<TaskRecord>) -> (u64, u64) {
        let first = self.first_seq();
        let missed = first.saturating_sub(next);
        let skip = next.saturating_sub(first) as usize;
        into.extend(
            self.numbered().skip(skip).filter_map(|(seq, entry)| self.record_of(seq, entry)),
        );
        (self.recorded, missed)
    }

    /// The run `entry` records, if it is one.
    fn record_of(&self, seq: u64, entry: &Entry) -> Option<TaskRecord> {
        let status = run_status(entry.kind, self.error_of(seq, entry))?;
        Some(TaskRecord {
            key: entry.key.clone(),
            name: match self.names.name(u32::from(entry.name)) {
                Some(name) => Arc::from(name),
                None => Arc::from(key_name(&entry.key)),
            },
            worker: self.workers.name(u32::from(entry.worker)),
            start: (entry.started != UNKNOWN).then(|| Duration::from_nanos(entry.started)),
            stop: Duration::from_nanos(entry.at),
            status,
            attempt: u32::from(entry.attempt),
        })
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
        for (seq, entry) in self.numbered().skip(skip).take(max) {
            let error = self.error_of(seq, entry).cloned();
            let run = run_status(entry.kind, error.as_ref()).map(|status| RunView {
                worker: self.workers.name(u32::from(entry.worker)),
                start: (entry.started != UNKNOWN).then(|| Duration::from_nanos(entry.started)),
                stop: Duration::from_nanos(entry.at),
                status,
                attempt: u32::from(entry.attempt),
            });
            let registered = self.names.name(u32::from(entry.name));
            into.push(EntryView { key: entry.key.clone(), registered, run, error });
            read += 1;
        }
        (read, missed)
    }

    /// The transitions of the task `key`, in order.
    pub(crate) fn story(&self, key: &TaskKey) -> Vec<TaskEvent> {
        let mut story = Vec::new();
        let mut told_submitted = false;
        for (seq, entry) in self.numbered().filter(|(_, entry)| entry.key == *key) {
            let event = |at: u64, transition| TaskEvent {
                key: entry.key.clone(),
                at: Duration::from_nanos(at),
                transition,
            };
            if !told_submitted && entry.submitted != UNKNOWN {
                story.push(event(entry.submitted, TaskTransition::Submitted));
                told_submitted = true;
            }
            let error = self.error_of(seq, entry);
            match entry.kind {
                Kind::Ran | Kind::Lost => {
                    let worker = self.workers.name(u32::from(entry.worker));
                    let attempt = u32::from(entry.attempt);
                    if entry.queued != UNKNOWN {
                        story.push(event(entry.queued, TaskTransition::Queued { attempt }));
                    }
                    if entry.started != UNKNOWN {
                        story.push(event(
                            entry.started,
                            TaskTransition::Started { worker: worker.clone(), attempt },
                        ));
                    }
                    let end = match (entry.kind, error) {
                        (Kind::Lost, _) => TaskTransition::Lost { worker, attempt },
                        (_, None) => TaskTransition::Finished { worker, attempt },
                        (_, Some(error)) => {
                            TaskTransition::RunFailed { worker, attempt, error: error.clone() }
                        }
                    };
                    story.push(event(entry.at, end));
                }
                Kind::Failed => {
                    let transition = match error {
                        Some(TaskError::Cancelled { reason, .. }) => {
                            TaskTransition::Cancelled { reason: reason.clone() }
                        }
                        Some(other) => TaskTransition::Failed { error: other.clone() },
                        None => continue,
                    };
                    story.push(event(entry.at, transition));
                }
            }
        }
        story
    }
}

/// How many staging areas a client's [`EventLog`] has: each thread that reports runs writes
/// to one of them (threads are spread over them in turn), so that two workers reporting at
/// once do not meet at one lock or write to the same cache lines.
const STAGING_AREAS: usize = 16;

/// How many runs a staging area holds before the thread that fills it moves every staging
/// area's entries into the ring.
const STAGED_AT_MOST: usize = 256;

/// The staging area of the calling thread, chosen once per thread.
fn staging_area_of_this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static AREA: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STAGING_AREAS;
    }
    AREA.with(|area| *area)
}

/// The runs waiting in a staging area, each one entry as the ring holds it but for its
/// registered name and worker, which are indexes into the area's own tables (so that a run
/// is staged without copying a name or touching its worker's reference count): they become
/// indexes into the ring's tables when the entry moves into the ring.
#[derive(Default)]
struct Staged {
    /// In the order they were reported.
    entries: Vec<Entry>,
    /// The errors of the entries that have one (`Entry::has_error`), in the same order.
    errors: Vec<TaskError>,
    /// The registered names the entries name (at most 65,535: past that, none).
    names: Vec<&'static str>,
    /// The workers the entries name (at most 65,535: past that, none).
    workers: Vec<Arc<str>>,
    /// While the entries move into the ring: the ring's index of each of `names`.
    name_slots: Vec<u16>,
    /// While the entries move into the ring: the ring's slot of each of `workers`.
    worker_slots: Vec<u16>,
}

impl Staged {
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds a run's entry, made by `entry` from the indexes of its registered name and
    /// worker in this area's tables and whether it has an error.
    #[cfg(test)]
    fn stage(
        &mut self,
        name: Option<&'static str>,
        worker: Option<&Arc<str>>,
        error: Option<TaskError>,
        entry: impl FnOnce(u16, u16, bool) -> Entry,
    ) {
        let (name, worker) = self.indexes(name, worker);
        let has_error = error.is_some();
        self.errors.extend(error);
        self.make_room();
        self.entries.push(entry(name, worker, has_error));
    }

    /// The indexes of a run's registered name and worker in this area's tables (added if
    /// new).
    #[inline]
    fn indexes(&mut self, name: Option<&'static str>, worker: Option<&Arc<str>>) -> (u16, u16) {
        let name = match name {
            None => NO_NAME as u16,
            Some(name) => {
                let same = |held: &&'static str| std::ptr::eq(*held, name) || *held == name;
                match self.names.iter().rposition(same) {
                    Some(index) => index as u16,
                    None if self.names.len() < NO_NAME as usize => {
                        self.names.push(name);
                        (self.names.len() - 1) as u16
                    }
                    None => NO_NAME as u16,
                }
            }
        };
        let worker = match worker {
            None => NO_WORKER as u16,
            Some(worker) => match self.workers.iter().rposition(|held| Arc::ptr_eq(held, worker)) {
                Some(index) => index as u16,
                None if self.workers.len() < NO_WORKER as usize => {
                    self.workers.push(Arc::clone(worker));
                    (self.workers.len() - 1) as u16
                }
                None => NO_WORKER as u16,
            },
        };
        (name, worker)
    }

    /// Makes room for one more entry, so that the push that follows cannot grow the list.
    #[inline]
    fn make_room(&mut self) {
        if self.entries.len() == self.entries.capacity() {
            self.entries.reserve(STAGED_AT_MOST);
        }
    }
}

/// One staging area, on cache lines of its own.
#[repr(align(128))]
#[derive(Default)]
struct StagingArea(Mutex<Staged>);

/// A client's task events: the [`EventRing`], and the staging areas runs are written to
/// first.
///
/// A run's entry goes into the staging area of the reporting thread (a short lock that
/// other threads rarely take), and from there into the ring when the area is full, and
/// whenever the ring is read: [`lock`](EventLog::lock) moves every staged entry into the ring
/// before it returns it, so a reader sees every run that was reported before it locked.
/// **Invariant:** a run's entry is in the ring or in a staging area before its task's
/// futures are resolved, so a reader that runs after a result was awaited sees how the run
/// ended. Lock order: the ring's, then the staging areas' in order; a writer holds only its
/// own area's lock, never with another.
pub(crate) struct EventLog {
    ring: Mutex<EventRing>,
    staging: Box<[StagingArea]>,
    /// Whether a live stream may be waiting for the next run: then a writer moves its entry
    /// into the ring at once and wakes the streams.
    live_waiting: AtomicBool,
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog").finish_non_exhaustive()
    }
}

impl EventLog {
    /// A log whose ring holds `capacity` entries.
    pub(crate) fn new(capacity: usize) -> EventLog {
        EventLog {
            ring: Mutex::new(EventRing::new(capacity)),
            staging: (0..STAGING_AREAS).map(|_| StagingArea::default()).collect(),
            live_waiting: AtomicBool::new(false),
        }
    }

    /// The ring, locked, with every staged entry moved into it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, EventRing> {
        let mut ring = self.ring.lock();
        self.unstage(&mut ring);
        ring
    }

    /// Moves every staged entry into `ring` (whose lock the caller holds), oldest end first;
    /// returns whether there was any. Every area is locked at once, so what moves is a
    /// consistent cut: a run reported after another (a retry after the failed run) is never
    /// moved without it.
    fn unstage(&self, ring: &mut EventRing) -> bool {
        let mut moved = false;
        {
            let mut areas: [MutexGuard<'_, Staged>; STAGING_AREAS] =
                std::array::from_fn(|index| self.staging[index].0.lock());
            // Each area's entries change places with the ring's empty list for it (the
            // locks are held only for the swaps).
            for (area, unstaged) in areas.iter_mut().zip(&mut ring.unstaging) {
                if !area.is_empty() {
                    std::mem::swap(&mut **area, unstaged);
                    moved = true;
                }
            }
        }
        if moved {
            ring.push_unstaged();
        }
        moved
    }

    /// A run ended (at the stamp's time); `error` is `None` for a value. Returns the wakers
    /// of the live streams to wake once the caller holds no lock.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn ran(
        &self,
        job: &Job,
        name: Option<&'static str>,
        worker: Option<&Arc<str>>,
        started: Option<u64>,
        attempt: u32,
        error: Option<TaskError>,
        lost: bool,
        at: &mut Stamp,
    ) -> Vec<Waker> {
        let kind = if lost { Kind::Lost } else { Kind::Ran };
        let submitted = job.submitted_at.load(Ordering::Relaxed);
        let queued = job.queued_at.load(Ordering::Relaxed);
        let at = not_before(submitted, queued, at.now());
        // A start read once for a busy stretch of a worker may be older than the queueing.
        let started = started.map_or(UNKNOWN, |started| {
            started.max(if queued == UNKNOWN { 0 } else { queued }).min(at)
        });
        let attempt = u16::try_from(attempt).unwrap_or(u16::MAX);
        let key = job.key.clone();
        let has_error = error.is_some();
        // The flag is read under the area's lock: a stream that registers its waker sets it
        // before it locks every area to move their entries (see `register_live`), so either
        // that move finds this entry, or this finds the flag. No fence is needed: the area's
        // lock orders the two.
        let (full, live_waiting) = {
            let mut area = self.staging[staging_area_of_this_thread()].0.lock();
            let (name, worker) = area.indexes(name, worker);
            // Not `extend`: it copies the whole option first, in 16-byte words, waiting
            // for the discriminant just written under one of them.
            if let Some(error) = error {
                area.errors.push(error);
            }
            area.make_room();
            // Built here from the values at hand, with room known to be there (checked
            // again: the compiler cannot see through `make_room`), so that the entry is
            // written field by field where it is held: built before a possible growth, or
            // handed to a function, it would be written to the stack first and copied in
            // 16-byte words, each waiting for the smaller fields just written under it (a
            // store-forwarding stall, a fifth of this function's time in `perf annotate`).
            if area.entries.len() < area.entries.capacity() {
                let entry = Entry {
                    key,
                    at,
                    submitted,
                    queued,
                    started,
                    name,
                    worker,
                    attempt,
                    kind,
                    has_error,
                };
                area.entries.push(entry);
            }
            (area.len() >= STAGED_AT_MOST, self.live_waiting.load(Ordering::Relaxed))
        };
        if full || live_waiting {
            let mut ring = self.lock();
            if ring.live.is_empty() {
                return Vec::new();
            }
            self.live_waiting.store(false, Ordering::Relaxed);
            return ring.take_live();
        }
        Vec::new()
    }

    /// Registers a live stream's `waker` on `ring` (locked by [`lock`](EventLog::lock));
    /// returns whether entries arrived meanwhile (then the stream reads again rather than
    /// waiting).
    pub(crate) fn register_live(&self, ring: &mut EventRing, waker: &Waker) -> bool {
        if !ring.live.iter().any(|held| held.will_wake(waker)) {
            ring.live.push(waker.clone());
        }
        // Before the areas are locked (see `ran`).
        self.live_waiting.store(true, Ordering::Relaxed);
        self.unstage(ring)
    }
}

/// Names whose submissions [`SubmittedByName`] counts one by one (as many as the dashboard
/// tracks); further names are counted together.
#[cfg(feature = "dashboard")]
pub(crate) const SUBMITTED_NAMES: usize = 64;

/// How many tasks were submitted per name: a few names, each held once, the last one found
/// first (a program submits many tasks of one name in a row).
#[cfg(feature = "dashboard")]
#[derive(Debug, Default)]
pub(crate) struct SubmittedByName {
    names: Vec<(Arc<str>, u64)>,
    /// Submissions of names past [`SUBMITTED_NAMES`].
    other: u64,
    last: usize,
}

#[cfg(feature = "dashboard")]
impl SubmittedByName {
    /// One more task of `name` was submitted.
    pub(crate) fn add(&mut self, name: &str) {
        if let Some((held, count)) = self.names.get_mut(self.last)
            && **held == *name
        {
            *count += 1;
            return;
        }
        match self.names.iter().position(|(held, _)| **held == *name) {
            Some(index) => {
                self.names[index].1 += 1;
                self.last = index;
            }
            None if self.names.len() < SUBMITTED_NAMES => {
                self.names.push((Arc::from(name), 1));
                self.last = self.names.len() - 1;
            }
            None => self.other += 1,
        }
    }

    /// Copies the counts per name into `into` and returns the count of further names.
    pub(crate) fn copy_into(&self, into: &mut Vec<(Arc<str>, u64)>) -> u64 {
        into.extend(self.names.iter().map(|(name, count)| (Arc::clone(name), *count)));
        self.other
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
///
/// A stamp read once for a whole batch of completions may be older than a dependent that
/// was submitted while the batch waited for the lock (its failure then comes from the
/// batch): the entry's time is never before the task's own submission or queueing, so a
/// story stays in time order.
/// `at`, moved up to the task's submission or queueing if it is earlier (`UNKNOWN`: none).
fn not_before(submitted: u64, queued: u64, at: u64) -> u64 {
    let earliest = [submitted, queued].into_iter().filter(|&t| t != UNKNOWN).max();
    earliest.map_or(at, |earliest| at.max(earliest))
}

fn entry(job: &Job, name: u32, at: u64, kind: Kind) -> Entry {
    // `Names` gives no index past `NO_NAME`.
    let name = name as u16;
    let submitted = job.submitted_at.load(Ordering::Relaxed);
    let queued = job.queued_at.load(Ordering::Relaxed);
    Entry {
        key: job.key.clone(),
        name,
        at: not_before(submitted, queued, at),
        submitted,
        queued,
        started: UNKNOWN,
        attempt: 0,
        worker: NO_WORKER as u16,
        kind,
        has_error: false,
    }
}

/// How a run ended, from its entry's kind and error; `None` for an entry that is no run.
fn run_status(kind: Kind, error: Option<&TaskError>) -> Option<RunStatus> {
    Some(match (kind, error) {
        (Kind::Failed, _) => return None,
        (Kind::Lost, _) => RunStatus::Lost,
        (Kind::Ran, None) => RunStatus::Finished,
        (Kind::Ran, Some(TaskError::Panicked { .. })) => RunStatus::Panicked,
        (Kind::Ran, Some(_)) => RunStatus::Failed,
    })
}

/// The readable part of a key: its prefix, without a trailing `-<16 hex digits>` token.
pub(crate) fn key_name(key: &TaskKey) -> &str {
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
            let read = core.with_event_log(|log, ring| {
                // Read under the lock: a close after this hold takes the waker and wakes it.
                let closed = core.is_closed();
                let mut read = ring.records_since(this.next, &mut this.buffered);
                if this.buffered.is_empty() && !closed && log.register_live(ring, cx.waker()) {
                    // Runs staged while the waker was registered: read them now.
                    let (next, missed) = ring.records_since(read.0, &mut this.buffered);
                    read = (next, read.1 + missed);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use std::sync::Arc;

    use super::{Entry, EventLog, Kind, RunStatus, UNKNOWN, entry};
    use crate::job::Job;
    use crate::key::{TaskId, TaskKey};

    /// The entry of a first run of `key` that ended at `at`, built as `EventLog::stage` asks
    /// (from the area's name and worker slots and whether it failed).
    fn run(key: &str, at: u64) -> impl FnOnce(u16, u16, bool) -> Entry {
        let key = TaskKey::named(key);
        move |name, worker, has_error| Entry {
            key,
            at,
            submitted: UNKNOWN,
            queued: UNKNOWN,
            started: UNKNOWN,
            name,
            worker,
            attempt: 1,
            kind: Kind::Ran,
            has_error,
        }
    }

    /// Runs staged by several threads move into the ring in the order they ended (one that
    /// ended at the same time as another after those of lower areas), each area's in its
    /// writer's order, with their workers, names and errors, and the areas are empty
    /// afterwards; again on a second round, which reuses the lists the first one swapped in.
    #[test]
    fn staged_runs_move_into_the_ring_in_the_order_they_ended() {
        let log = EventLog::new(64);
        // A key's worker is `w` and the key's first letter, its name `n1` for a key ending
        // in 1 (else `n2`); the runs of keys ending in 2 failed.
        let workers: Vec<Arc<str>> = ["wa", "wb", "wc", "wd", "we"].map(Arc::from).into();
        let worker_of = |key: &str| &workers[usize::from(key.as_bytes()[0] - b'a')];
        let name_of = |key: &str| -> &'static str { if key.ends_with('1') { "n1" } else { "n2" } };
        let error_of = |key: &str| {
            key.ends_with('2').then(|| crate::TaskError::Failed {
                key: TaskKey::named(key),
                message: key.to_owned(),
            })
        };
        let rounds: [&[&[(&str, u64)]]; 2] = [
            &[&[("a1", 10), ("a2", 40), ("a3", 50)], &[], &[("b1", 20), ("b2", 40)], &[("c1", 5)]],
            &[&[], &[("d1", 60), ("d2", 61)], &[], &[], &[("e1", 55)]],
        ];
        let expected = [
            vec!["c1", "a1", "b1", "a2", "b2", "a3"],
            vec!["c1", "a1", "b1", "a2", "b2", "a3", "e1", "d1", "d2"],
        ];
        for (areas, expected) in rounds.iter().zip(expected) {
            for (index, runs) in areas.iter().enumerate() {
                let mut area = log.staging[index].0.lock();
                for &(key, at) in runs.iter() {
                    let (name, worker) = (Some(name_of(key)), Some(worker_of(key)));
                    area.stage(name, worker, error_of(key), run(key, at));
                }
            }
            let ring = log.lock();
            let keys: Vec<TaskKey> = ring.entries.iter().map(|entry| entry.key.clone()).collect();
            assert_eq!(keys, expected.iter().map(|&key| TaskKey::named(key)).collect::<Vec<_>>());
            let records = ring.records(0, u64::MAX);
            for (record, key) in records.iter().zip(&expected) {
                assert_eq!(record.worker.as_ref(), Some(worker_of(key)), "{key}");
                assert_eq!(&*record.name, name_of(key), "{key}");
                let failed =
                    if key.ends_with('2') { RunStatus::Failed } else { RunStatus::Finished };
                assert_eq!(record.status, failed, "{key}");
            }
            assert_eq!(records.len(), expected.len());
            drop(ring);
            assert!(log.staging.iter().all(|area| area.0.lock().is_empty()));
        }
    }

    /// A ring that drops its oldest entries while staged runs move in keeps each moved run's
    /// worker, even when the dropped entries were the last to name that worker, and forgets
    /// a worker no entry names any more.
    #[test]
    fn moved_runs_keep_their_worker_while_the_oldest_entries_drop_out() {
        let log = EventLog::new(1);
        let workers: Vec<Arc<str>> = ["wa", "wb"].map(Arc::from).into();
        // Each round: the runs staged in area 0 (key, worker), then the ring's one record.
        type Round<'a> = (&'a [(&'a str, usize)], &'a str, usize);
        let rounds: [Round; 4] = [
            (&[("a1", 0)], "a1", 0),
            (&[("a2", 0)], "a2", 0),
            (&[("b1", 1), ("a3", 0)], "a3", 0),
            (&[("b2", 1)], "b2", 1),
        ];
        let mut at = 0;
        for (runs, last, worker) in rounds {
            {
                let mut area = log.staging[0].0.lock();
                for &(key, worker) in runs {
                    at += 10;
                    area.stage(Some("n"), Some(&workers[worker]), None, run(key, at));
                }
            }
            let ring = log.lock();
            let records = ring.records(0, u64::MAX);
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].key, TaskKey::named(last));
            assert_eq!(records[0].worker.as_ref(), Some(&workers[worker]), "{last}");
            assert_eq!(ring.workers.index.len(), 1, "only the held entry's worker is named");
        }
    }

    /// A stamp read for a batch before a dependent was submitted (the dependent then failed
    /// with the batch) is moved up to the submission: a story stays in time order.
    #[test]
    fn an_entry_is_never_stamped_before_its_tasks_submission() {
        let job = Job::new(
            TaskId(1),
            TaskKey::named("late"),
            Vec::new(),
            super::super::actor::ActorCallBody,
            None,
        );
        assert_eq!(entry(&job, 0, 50, Kind::Failed).at, 50, "no submission known");
        job.submitted_at.store(100, Ordering::Relaxed);
        assert_eq!(entry(&job, 0, 50, Kind::Failed).at, 100);
        job.queued_at.store(120, Ordering::Relaxed);
        assert_eq!(entry(&job, 0, 50, Kind::Failed).at, 120);
        assert_eq!(entry(&job, 0, 150, Kind::Failed).at, 150);
    }
}
