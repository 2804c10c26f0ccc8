//! The scheduler state machine: tasks, their dependencies and references, the ready queue.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::event::{Action, CancelOutcome, Event, RetryOutcome, TaskSpec};
use super::ids::IdList;
use super::sharded::{ProxyUpdate, SlotPool};
use super::table::TaskTable;
use crate::error::TaskError;
use crate::key::{TaskId, TaskKey};
#[cfg(feature = "__planted")]
use crate::planted::PlantedBug;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Submitted; some dependency has not finished yet.
    Waiting,
    /// Every dependency finished; queued for a worker.
    Ready,
    /// Sent to a worker (or running on the executor).
    Running,
    /// Produced a value.
    Finished,
    /// Failed for good (its own error, a dependency's, or lost workers).
    Failed,
    /// Cancelled (explicitly, through a dependency, or by closing the client).
    Cancelled,
}

impl TaskState {
    /// Whether the task will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskState::Finished | TaskState::Failed | TaskState::Cancelled)
    }

    const ALL: [TaskState; 6] = [
        TaskState::Waiting,
        TaskState::Ready,
        TaskState::Running,
        TaskState::Finished,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// How many tasks the scheduler holds, by state, plus totals since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerCounts {
    /// Tasks waiting for dependencies.
    pub waiting: usize,
    /// Tasks queued for a worker.
    pub ready: usize,
    /// Tasks on a worker.
    pub running: usize,
    /// Finished tasks whose values are still held.
    pub finished: usize,
    /// Failed tasks still held.
    pub failed: usize,
    /// Cancelled tasks still held.
    pub cancelled: usize,
    /// Tasks that finished since the scheduler started.
    pub total_finished: u64,
    /// Tasks that failed for good since the scheduler started.
    pub total_failed: u64,
}

impl SchedulerCounts {
    /// Every task the scheduler holds, in any state.
    pub fn held(&self) -> usize {
        self.waiting + self.ready + self.running + self.finished + self.failed + self.cancelled
    }
}

/// One task, as the scheduler knows it. Its key is kept apart (see [`Keys`]): records are
/// the bulk of the scheduler's memory, one per pending task (64 bytes, see the size test).
/// It has no submission number: task ids are handed out in submission order, and the id
/// orders the ready queue (see [`ReadyQueue`]).
#[derive(Debug)]
struct Record<P> {
    state: TaskState,
    payload: P,
    /// Tasks this one reads; their `dependent_refs` count this task until it is terminal.
    deps: IdList,
    /// Set once this task gave back its references to `deps`.
    deps_released: bool,
    /// Tasks that read this one.
    dependents: IdList,
    /// Dependencies that have not finished yet.
    waiting_on: u32,
    /// Live client handles.
    client_refs: u32,
    /// Unfinished dependents that will read this task's value.
    dependent_refs: u32,
    pinned: bool,
    shared_key: bool,
    uses_worker: bool,
    /// Set while the task occupies one of the `capacity` in-flight slots.
    holds_slot: bool,
    /// Set while the task's running body gave its slot back to wait for other tasks
    /// ([`Event::Seceded`]), until it takes one again or reports.
    seceded: bool,
    /// Set once [`Action::Withdraw`] asked the transport to take this dispatch back, until
    /// the task reports.
    withdrawing: bool,
    attempts: u32,
}

/// The part of a task's record that most tasks never use: kept apart, in
/// [`Scheduler::cold`], and only for the tasks that use it (a record is the scheduler's
/// memory per pending task).
#[derive(Debug)]
struct Cold {
    /// Runs left after the body fails (from [`TaskSpec::retries`]).
    retries_left: u32,
    /// Lost deliveries still tolerated (from [`TaskSpec::allowed_failures`]).
    failures_left: u32,
    /// How many times a worker was lost while running the task.
    lost: u32,
    /// Among ready tasks, higher is dispatched first ([`TaskSpec::priority`]).
    priority: i32,
    /// The error, once the task failed or was cancelled (dependents inherit it).
    error: Option<TaskError>,
}

/// What a task without a cold part has: the defaults of a submission.
impl Default for Cold {
    fn default() -> Cold {
        Cold {
            retries_left: 0,
            failures_left: super::DEFAULT_ALLOWED_FAILURES,
            lost: 0,
            priority: 0,
            error: None,
        }
    }
}

impl<P> Record<P> {
    /// Whether something still refers to the task: a client handle, an unfinished dependent,
    /// a worker slot, `fire_and_forget`, or a running async body.
    fn is_needed(&self) -> bool {
        self.client_refs > 0
            || self.dependent_refs > 0
            || self.holds_slot
            || self.seceded
            || (self.pinned && !self.state.is_terminal())
            || (self.state == TaskState::Running && !self.uses_worker)
    }
}

/// Asks the transport to take back the dispatch of task `id` when nothing needs it but its
/// worker slot (no client handle, no unfinished dependent, not pinned, not waiting on
/// sub-tasks): a worker that has not begun it need not run it ([`Action::Withdraw`]). Once
/// per dispatch. A task already begun runs on and reports as usual.
fn offer_withdraw<P: Clone>(id: TaskId, record: &mut Record<P>, out: &mut Vec<Action<P>>) {
    if record.holds_slot
        && !record.withdrawing
        && record.state == TaskState::Running
        && record.client_refs == 0
        && record.dependent_refs == 0
        && !record.pinned
        && !record.seceded
    {
        record.withdrawing = true;
        out.push(Action::Withdraw { id, payload: record.payload.clone() });
    }
}

/// Notes that an unfinished task's reference to `dep` was given back (`taken` false) or
/// taken again, if `dep` is a proxy (see `Scheduler::proxy_refs_changed`).
#[inline]
fn note_proxy_ref(
    proxies: &HashMap<TaskId, u64>,
    changed: &mut Vec<(TaskId, bool)>,
    dep: TaskId,
    taken: bool,
) {
    if !proxies.is_empty() && proxies.contains_key(&dep) {
        changed.push((dep, taken));
    }
}

/// Where the scheduler finds a task's key (needed only for errors and shared keys).
enum Keys<P> {
    /// In a table of their own, by task id.
    Stored(TaskTable<TaskKey>),
    /// In the payload, through this function ([`Scheduler::with_keys_in_payload`]): a key
    /// stored once per task instead of twice.
    InPayload(fn(&P) -> &TaskKey),
}

impl<P> std::fmt::Debug for Keys<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keys::Stored(keys) => f.debug_tuple("Stored").field(&keys.iter().count()).finish(),
            Keys::InPayload(_) => f.write_str("InPayload"),
        }
    }
}

/// Whether a task being failed has just reported the end of its run (so there is nothing
/// left to abort).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reported {
    Yes,
    No,
}

/// Ready worker tasks: highest priority first, and within one priority in the order of their
/// ids, which is submission order ([`TaskSpec::id`]).
///
/// Not a binary heap: almost every task has the default priority and becomes ready in
/// submission order, so each level is a FIFO where pushing and popping are O(1) and an entry
/// is the task's id alone, 8 bytes (the ready queue's memory per pending task). A task that
/// becomes ready out of order (a retry, a dependent submitted before tasks already queued) is
/// inserted at its place by binary search. The order is the id's own, never read from the
/// record: an entry left behind by a task cancelled or forgotten while queued (skipped when
/// popped, see `Scheduler::pump`) still sorts where it did.
#[derive(Debug, Default)]
struct ReadyQueue {
    /// The tasks of the default priority, 0: almost all, so a push or pop of one is a
    /// `VecDeque`'s, with no map to walk.
    normal: VecDeque<TaskId>,
    /// One queue per other priority, highest first. **Invariant:** no level is empty.
    others: BTreeMap<Reverse<i32>, VecDeque<TaskId>>,
}

impl ReadyQueue {
    fn push(&mut self, priority: i32, id: TaskId) {
        let level = if priority == 0 {
            &mut self.normal
        } else {
            self.others.entry(Reverse(priority)).or_default()
        };
        match level.back() {
            Some(&last) if last > id => {
                let at = level.partition_point(|&queued| queued < id);
                level.insert(at, id);
            }
            _ => level.push_back(id),
        }
    }

    fn pop(&mut self) -> Option<TaskId> {
        if self.others.is_empty() {
            return self.normal.pop_front();
        }
        let mut entry = self.others.first_entry().expect("checked above");
        if entry.key().0 < 0
            && let Some(id) = self.normal.pop_front()
        {
            return Some(id);
        }
        let id = entry.get_mut().pop_front();
        if entry.get().is_empty() {
            entry.remove();
        }
        id
    }

    fn clear(&mut self) {
        self.normal.clear();
        self.others.clear();
    }

    fn is_empty(&self) -> bool {
        self.normal.is_empty() && self.others.is_empty()
    }
}

/// The task graph as a pure state machine: [`Event`]s in, [`Action`]s out, no I/O, no
/// awaiting, no clock.
///
/// `P` is the payload the core attaches to each task (for the in-process client, the job to
/// run); the scheduler only hands it back in actions.
///
/// **Invariant:** a task leaves the graph (an [`Action::Forget`]) only when no client handle
/// and no unfinished dependent refers to it and it is not running.
#[derive(Debug)]
pub struct Scheduler<P> {
    tasks: TaskTable<Record<P>>,
    /// Each held task's key.
    keys: Keys<P>,
    /// The cold part of the records that have one (see [`Cold`]); removed with the record.
    cold: HashMap<TaskId, Cold>,
    by_key: HashMap<TaskKey, TaskId>,
    ready: ReadyQueue,
    /// Slots taken by dispatched worker tasks.
    in_flight: usize,
    /// How many worker tasks may be dispatched at once.
    capacity: usize,
    closed: bool,
    counts_by_state: [usize; 6],
    total_finished: u64,
    total_failed: u64,
    /// Reused work list for cascades and releases, so that long chains need no recursion.
    worklist: Vec<TaskId>,
    /// Reused work list of `forget_unneeded`.
    forget_list: Vec<TaskId>,
    /// Reused list of the ids `on_finished` visits (dependents, then inputs).
    visit_list: Vec<TaskId>,
    /// An emptied list of dependencies kept for the next [`TaskSpec`] (see
    /// [`Scheduler::spare_ids`]).
    spare_ids: Vec<TaskId>,
    /// The slots of every shard of a [`ShardedScheduler`](super::ShardedScheduler), when
    /// this scheduler is one of its shards: `in_flight` then counts this shard's share, and
    /// a dispatch takes its slot from the pool (`capacity` is unused). `None` otherwise.
    pool: Option<Arc<SlotPool>>,
    /// When this scheduler is a shard: the records that stand for another shard's tasks
    /// (proxies, see `sharded.rs`), each with the version of the last update applied. Such a
    /// record is never dispatched, is left out of the counts, and its actions are not the
    /// client's (the sharded scheduler drops them). Empty otherwise.
    proxies: HashMap<TaskId, u64>,
    /// Proxies forgotten since the sharded scheduler last looked: it gives their references
    /// back to the source shards.
    proxies_forgotten: Vec<TaskId>,
    /// References of unfinished tasks here to proxies, given back (`false`) or taken again
    /// (`true`, a retry) since the sharded scheduler last looked: each stands for one on the
    /// proxy's task in its own shard, where the sharded scheduler gives it back or takes it.
    proxy_refs_changed: Vec<(TaskId, bool)>,
    /// When this scheduler is a shard: the tasks a cascade (failure or cancel) terminated
    /// whose references are not given back yet. One scheduler gives them back once the
    /// whole cascade is done, so that no task it would reach is forgotten first; a cascade
    /// that crosses shards is done only when every shard it reaches has run its part, after
    /// which the sharded scheduler calls [`flush_deferred`](Scheduler::flush_deferred).
    deferred: Vec<TaskId>,
    /// How many times a proxy finished and failed, taken off the totals of
    /// [`counts`](Scheduler::counts) (the source's shard counts the task once).
    proxy_totals: (u64, u64),
    /// The bug planted in this scheduler, if any (see [`Scheduler::plant`]).
    #[cfg(feature = "__planted")]
    planted: Option<PlantedBug>,
}

impl<P: Clone> Scheduler<P> {
    /// A scheduler that keeps at most `capacity` worker tasks dispatched at once (at least 1).
    pub fn new(capacity: usize) -> Scheduler<P> {
        Scheduler::with_keys(capacity, Keys::Stored(TaskTable::default()))
    }

    /// A scheduler as [`new`](Scheduler::new) makes, for payloads that carry their task's
    /// key: it reads a task's key from its payload with `key_of` instead of storing it a
    /// second time (24 bytes less per task). `key_of` must give the key of the task's
    /// [`TaskSpec`].
    pub fn with_keys_in_payload(capacity: usize, key_of: fn(&P) -> &TaskKey) -> Scheduler<P> {
        Scheduler::with_keys(capacity, Keys::InPayload(key_of))
    }

    fn with_keys(capacity: usize, keys: Keys<P>) -> Scheduler<P> {
        Scheduler {
            tasks: TaskTable::default(),
            keys,
            cold: HashMap::new(),
            by_key: HashMap::new(),
            ready: ReadyQueue::default(),
            in_flight: 0,
            capacity: capacity.max(1),
            closed: false,
            counts_by_state: [0; 6],
            total_finished: 0,
            total_failed: 0,
            worklist: Vec::new(),
            forget_list: Vec::new(),
            visit_list: Vec::new(),
            spare_ids: Vec::new(),
            pool: None,
            proxies: HashMap::new(),
            proxies_forgotten: Vec::new(),
            proxy_refs_changed: Vec::new(),
            deferred: Vec::new(),
            proxy_totals: (0, 0),
            #[cfg(feature = "__planted")]
            planted: None,
        }
    }

    /// Plants `bug` in this scheduler (internal: for the simulation's planted-bug tests).
    #[cfg(feature = "__planted")]
    #[doc(hidden)]
    pub fn plant(&mut self, bug: PlantedBug) {
        self.planted = Some(bug);
    }

    /// The task that holds `key`, if it was submitted with a shared key and is still held.
    pub fn lookup(&self, key: &TaskKey) -> Option<TaskId> {
        self.by_key.get(key).copied()
    }

    /// An empty list with room for a few ids, to fill with the dependencies of the next
    /// [`TaskSpec`]: the scheduler keeps the buffer of a spec's short list of dependencies
    /// (none or one, which it stores inline), so that submitting a chain allocates no list
    /// per task. Equivalent to `Vec::new()` in every other way.
    pub fn spare_ids(&mut self) -> Vec<TaskId> {
        std::mem::take(&mut self.spare_ids)
    }

    /// The key of held task `id`.
    fn key(&self, id: TaskId) -> TaskKey {
        match &self.keys {
            Keys::Stored(keys) => keys[&id].clone(),
            Keys::InPayload(key_of) => key_of(&self.tasks[&id].payload).clone(),
        }
    }

    /// Task `id`'s priority (kept with its cold part when it is not 0).
    fn priority(&self, id: TaskId) -> i32 {
        if self.cold.is_empty() {
            return 0;
        }
        self.cold.get(&id).map_or(0, |cold| cold.priority)
    }

    /// The error task `id` failed or was cancelled with, if it did.
    fn error(&self, id: TaskId) -> Option<TaskError> {
        self.cold.get(&id).and_then(|cold| cold.error.clone())
    }

    /// Stores the key of a new task `id` (unless the payload carries it).
    fn store_key(&mut self, id: TaskId, key: TaskKey, payload: &P) {
        match &mut self.keys {
            Keys::Stored(keys) => {
                keys.insert(id, key);
            }
            Keys::InPayload(key_of) => {
                debug_assert!(*key_of(payload) == key, "the payload carries another key");
            }
        }
    }

    /// The payload of a held task.
    pub fn payload(&self, id: TaskId) -> Option<&P> {
        self.tasks.get(&id).map(|record| &record.payload)
    }

    /// The state of a task, or `None` once it was forgotten.
    pub fn state(&self, id: TaskId) -> Option<TaskState> {
        self.tasks.get(&id).map(|record| record.state)
    }

    /// Task counts by state and totals.
    pub fn counts(&self) -> SchedulerCounts {
        let mut by_state = self.counts_by_state;
        for id in self.proxies.keys() {
            if let Some(record) = self.tasks.get(id) {
                by_state[record.state.index()] -= 1;
            }
        }
        let count = |state: TaskState| by_state[state.index()];
        SchedulerCounts {
            waiting: count(TaskState::Waiting),
            ready: count(TaskState::Ready),
            running: count(TaskState::Running),
            finished: count(TaskState::Finished),
            failed: count(TaskState::Failed),
            cancelled: count(TaskState::Cancelled),
            total_finished: self.total_finished - self.proxy_totals.0,
            total_failed: self.total_failed - self.proxy_totals.1,
        }
    }

    /// Worker tasks dispatched and not yet reported.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Feeds one event and appends the resulting actions to `out`, in the order they must be
    /// carried out (a task's value is published before any dependent is dispatched).
    pub fn handle(&mut self, event: Event<P>, out: &mut Vec<Action<P>>) {
        match event {
            Event::Submitted(spec) => self.on_submitted(spec, out),
            Event::Scattered(spec) => self.on_scattered(spec),
            Event::Pinned { id } => {
                if let Some(record) = self.tasks.get_mut(&id) {
                    record.pinned = true;
                }
            }
            Event::Retained { id } => {
                if let Some(record) = self.tasks.get_mut(&id) {
                    record.client_refs += 1;
                }
            }
            Event::Finished { id } => self.on_finished(id, out),
            Event::Failed { id, error } => self.on_failed(id, error, out),
            Event::Lost { id } => self.on_lost(id, out),
            Event::CancelRequested { id, reason } => self.on_cancel(id, reason, out),
            Event::Released { id } => {
                if let Some(record) = self.tasks.get_mut(&id) {
                    record.client_refs = record.client_refs.saturating_sub(1);
                    if record.is_needed() {
                        offer_withdraw(id, record, out);
                    } else {
                        self.forget_unneeded(id, out);
                    }
                }
            }
            Event::RetryRequested { id } => self.on_retry(id, out),
            Event::Withdrawn { id } => self.on_withdrawn(id, out),
            Event::Seceded { id } => self.on_seceded(id),
            Event::Rejoined { id } => self.on_rejoined(id, out),
            Event::Closed => self.on_closed(out),
        }
        self.pump(out);
    }

    fn set_state(&mut self, id: TaskId, state: TaskState) {
        if let Some(record) = self.tasks.get_mut(&id) {
            self.counts_by_state[record.state.index()] -= 1;
            self.counts_by_state[state.index()] += 1;
            record.state = state;
        }
    }

    fn on_submitted(&mut self, spec: TaskSpec<P>, out: &mut Vec<Action<P>>) {
        let id = spec.id;
        if self.closed {
            out.push(Action::Resolve {
                id,
                payload: spec.payload,
                outcome: Err(TaskError::ClientClosed { key: spec.key, operation: "submit" }),
            });
            return;
        }
        // Look at the dependencies first: a failed one fails this task at once. Register
        // with those that exist, in the same look up, so that they stay held until this task
        // is done with them.
        let mut waiting_on = 0;
        let mut inherited: Option<TaskError> = None;
        for dep in &spec.deps {
            match self.tasks.get_mut(dep) {
                Some(record) => {
                    record.dependents.push(id);
                    record.dependent_refs += 1;
                    match record.state {
                        TaskState::Finished => {}
                        TaskState::Failed | TaskState::Cancelled => {
                            if inherited.is_none() {
                                inherited = self.cold.get(dep).and_then(|cold| cold.error.clone());
                            }
                        }
                        _ => waiting_on += 1,
                    }
                }
                None => {
                    if inherited.is_none() {
                        inherited = Some(TaskError::Cancelled {
                            key: spec.key.clone(),
                            reason: format!(
                                "its dependency {dep:?} was already released; keep a handle \
                                 to a future for as long as new tasks may depend on it"
                            ),
                        });
                    }
                }
            }
        }
        if spec.shared_key {
            self.by_key.insert(spec.key.clone(), id);
        }
        self.store_key(id, spec.key, &spec.payload);
        let mut deps = spec.deps;
        let deps_list = IdList::take_from(&mut deps);
        if deps.capacity() > self.spare_ids.capacity() && deps.capacity() <= 64 {
            self.spare_ids = deps;
        }
        let mut record = Record {
            state: TaskState::Waiting,
            payload: spec.payload,
            deps: deps_list,
            deps_released: false,
            dependents: IdList::Empty,
            waiting_on,
            client_refs: 1,
            dependent_refs: 0,
            pinned: spec.pinned,
            shared_key: spec.shared_key,
            uses_worker: spec.uses_worker,
            holds_slot: false,
            seceded: false,
            withdrawing: false,
            attempts: 0,
        };
        if spec.retries > 0
            || spec.priority != 0
            || spec.allowed_failures != super::DEFAULT_ALLOWED_FAILURES
        {
            let cold = self.cold.entry(id).or_default();
            cold.retries_left = spec.retries;
            cold.failures_left = spec.allowed_failures;
            cold.priority = spec.priority;
        }
        // The common case, a worker task with nothing to wait for, is queued as `Ready` right
        // away: `make_ready` would look the record up twice more (every submission pays it).
        let ready_now = inherited.is_none() && waiting_on == 0 && record.uses_worker;
        if ready_now {
            record.state = TaskState::Ready;
        }
        self.counts_by_state[record.state.index()] += 1;
        let priority = spec.priority;
        self.tasks.insert(id, record);
        if ready_now {
            self.ready.push(priority, id);
            return;
        }
        match inherited {
            Some(root) => {
                let error = self.dependency_error(id, root);
                // As in a cascade: a cancelled dependency makes this task cancelled, not failed.
                let state =
                    if error.is_cancelled() { TaskState::Cancelled } else { TaskState::Failed };
                self.finish_with_error(id, state, error, Reported::No, out);
            }
            None if waiting_on == 0 => self.make_ready(id, out),
            None => {}
        }
    }

    fn on_scattered(&mut self, spec: TaskSpec<P>) {
        let id = spec.id;
        if spec.shared_key {
            self.by_key.insert(spec.key.clone(), id);
        }
        self.counts_by_state[TaskState::Finished.index()] += 1;
        self.store_key(id, spec.key, &spec.payload);
        self.tasks.insert(
            id,
            Record {
                state: TaskState::Finished,
                payload: spec.payload,
                deps: IdList::Empty,
                deps_released: true,
                dependents: IdList::Empty,
                waiting_on: 0,
                client_refs: 1,
                dependent_refs: 0,
                pinned: false,
                shared_key: spec.shared_key,
                uses_worker: false,
                holds_slot: false,
                seceded: false,
                withdrawing: false,
                attempts: 0,
            },
        );
    }

    /// The error a dependent gets when `root` failed: cancellations stay cancellations,
    /// everything else becomes `DependencyFailed` carrying the root cause.
    fn dependency_error(&self, id: TaskId, root: TaskError) -> TaskError {
        let key = self.key(id);
        let root = match root {
            TaskError::DependencyFailed { root, .. } => *root,
            other => other,
        };
        match root {
            TaskError::Cancelled { key: root_key, .. } => TaskError::Cancelled {
                key,
                reason: format!("its dependency {root_key} was cancelled"),
            },
            other => TaskError::DependencyFailed { key, root: Box::new(other) },
        }
    }

    fn make_ready(&mut self, id: TaskId, out: &mut Vec<Action<P>>) {
        if !self.proxies.is_empty() && self.proxies.contains_key(&id) {
            // Another shard runs the task; this record only mirrors its outcome.
            return;
        }
        let record = &self.tasks[&id];
        if !record.uses_worker {
            // Async bodies run on the executor, outside the worker slots.
            self.dispatch(id, out);
            return;
        }
        let priority = self.priority(id);
        self.set_state(id, TaskState::Ready);
        self.ready.push(priority, id);
    }

    fn dispatch(&mut self, id: TaskId, out: &mut Vec<Action<P>>) {
        self.set_state(id, TaskState::Running);
        let record = self.tasks.get_mut(&id).expect("dispatching a held task");
        record.attempts += 1;
        if record.uses_worker {
            record.holds_slot = true;
            self.in_flight += 1;
            if let Some(pool) = &self.pool {
                pool.take_anyway();
            }
        }
        out.push(Action::Dispatch {
            id,
            attempt: record.attempts,
            payload: record.payload.clone(),
        });
    }

    /// Dispatches ready tasks, highest priority first, while worker slots are free.
    fn pump(&mut self, out: &mut Vec<Action<P>>) {
        while !self.ready.is_empty() && self.take_slot() {
            let Some(id) = self.ready.pop() else {
                self.give_slot_back();
                break;
            };
            // Entries of tasks cancelled or forgotten while queued are skipped here.
            if let Some(record) = self.tasks.get_mut(&id)
                && record.state == TaskState::Ready
            {
                // As `dispatch`, on the record at hand (a queued task uses a worker).
                self.counts_by_state[TaskState::Ready.index()] -= 1;
                self.counts_by_state[TaskState::Running.index()] += 1;
                record.state = TaskState::Running;
                record.attempts += 1;
                record.holds_slot = true;
                self.in_flight += 1;
                out.push(Action::Dispatch {
                    id,
                    attempt: record.attempts,
                    payload: record.payload.clone(),
                });
            } else {
                self.give_slot_back();
            }
        }
    }

    /// Takes a free slot for a dispatch, if there is one: this scheduler's own count, or
    /// the pool shared by the shards. `pump` counts it in `in_flight` once it dispatches.
    #[inline]
    fn take_slot(&mut self) -> bool {
        match &self.pool {
            None => self.in_flight < self.capacity,
            Some(pool) => pool.try_take(),
        }
    }

    /// Gives back a slot [`take_slot`](Scheduler::take_slot) took for nothing.
    #[inline]
    fn give_slot_back(&self) {
        if let Some(pool) = &self.pool {
            pool.give_back();
        }
    }

    /// A dispatched worker task no longer holds its slot.
    #[inline]
    fn free_slot(&mut self) {
        self.in_flight -= 1;
        self.give_slot_back();
    }

    /// Takes a reported task off its slot; `None` when the report is stale.
    fn take_report(&mut self, id: TaskId) -> Option<TaskState> {
        let record = self.tasks.get_mut(&id)?;
        if record.holds_slot {
            record.holds_slot = false;
            self.in_flight -= 1;
            if let Some(pool) = &self.pool {
                pool.give_back();
            }
        }
        record.seceded = false;
        record.withdrawing = false;
        Some(record.state)
    }

    /// Whether [`Action::Withdraw`] asked the transport to take task `id`'s dispatch back
    /// and the task has not reported since: a report that it did not run
    /// ([`TaskOutcome::NotRun`](crate::transport::TaskOutcome::NotRun)) is then
    /// [`Event::Withdrawn`].
    pub fn is_withdrawing(&self, id: TaskId) -> bool {
        self.tasks.get(&id).is_some_and(|record| record.withdrawing)
    }

    /// The transport took back task `id`'s dispatch before any worker began it (after
    /// [`Action::Withdraw`]): its slot is free, and it is forgotten, or (needed again
    /// meanwhile, through a shared key) queued to run again.
    fn on_withdrawn(&mut self, id: TaskId, out: &mut Vec<Action<P>>) {
        if self.take_report(id) == Some(TaskState::Running)
            && self.tasks.get(&id).is_some_and(Record::is_needed)
        {
            self.make_ready(id, out);
            return;
        }
        self.forget_unneeded(id, out);
    }

    /// A running worker task gives its slot back while it waits (the slot goes to the next
    /// ready task, by `pump`); it stays held, as running, until it reports.
    fn on_seceded(&mut self, id: TaskId) {
        let Some(record) = self.tasks.get_mut(&id) else { return };
        if record.holds_slot && record.state == TaskState::Running {
            record.holds_slot = false;
            record.seceded = true;
            self.free_slot();
        }
    }

    /// A seceded task takes a slot again, even beyond `capacity` (it runs on at once: waiting
    /// for a slot could wait for tasks that wait for it); nothing more is dispatched until
    /// `in_flight` is below `capacity` again. A task cancelled meanwhile takes none.
    fn on_rejoined(&mut self, id: TaskId, out: &mut Vec<Action<P>>) {
        let Some(record) = self.tasks.get_mut(&id) else { return };
        if !record.seceded {
            return;
        }
        record.seceded = false;
        if record.state == TaskState::Running {
            record.holds_slot = true;
            self.in_flight += 1;
            if let Some(pool) = &self.pool {
                pool.take_anyway();
            }
        } else {
            self.forget_unneeded(id, out);
        }
    }

    /// A worker's task produced its value: it is resolved, the dependents it was the last
    /// input of are queued, and its own references to its inputs are given back. This is the
    /// scheduler's busiest path (once per task, under the client's lock), so it looks each
    /// record up once: the finishing task's, then each dependent's and each input's.
    fn on_finished(&mut self, id: TaskId, out: &mut Vec<Action<P>>) {
        let Some(record) = self.tasks.get_mut(&id) else { return };
        // As `take_report`, on the record at hand.
        if record.holds_slot {
            record.holds_slot = false;
            self.in_flight -= 1;
            if let Some(pool) = &self.pool {
                pool.give_back();
            }
        }
        record.seceded = false;
        record.withdrawing = false;
        match record.state {
            TaskState::Running => {}
            #[cfg(feature = "__planted")]
            _ if self.planted == Some(PlantedBug::AcceptSecondResult) => {}
            _ => {
                // Cancelled while it ran: the value is discarded.
                self.forget_unneeded(id, out);
                return;
            }
        }
        self.counts_by_state[record.state.index()] -= 1;
        self.counts_by_state[TaskState::Finished.index()] += 1;
        record.state = TaskState::Finished;
        self.total_finished += 1;
        out.push(Action::Resolve { id, payload: record.payload.clone(), outcome: Ok(()) });
        // The ids to visit, copied into a reused list (the record keeps its lists: a cancel
        // still reaches the dependents, a retry re-acquires the inputs): first the
        // dependents, then the inputs whose references this task gives back.
        let mut visit = std::mem::take(&mut self.visit_list);
        visit.clear();
        visit.extend_from_slice(record.dependents.as_slice());
        let n_dependents = visit.len();
        if !record.deps_released {
            record.deps_released = true;
            visit.extend_from_slice(record.deps.as_slice());
        }
        // Nothing below changes what refers to this task (it is no input of its inputs, and
        // queueing a dependent does not touch this record): whether it is still needed is
        // known now.
        let needed = record.is_needed();
        for &dependent in &visit[..n_dependents] {
            if let Some(dependent_record) = self.tasks.get_mut(&dependent)
                && dependent_record.state == TaskState::Waiting
            {
                dependent_record.waiting_on -= 1;
                let ready = dependent_record.waiting_on == 0;
                #[cfg(feature = "__planted")]
                let ready = ready || self.planted == Some(PlantedBug::ReadyAfterFirstDependency);
                if ready {
                    if dependent_record.uses_worker {
                        // As `make_ready`, on the record at hand.
                        self.counts_by_state[TaskState::Waiting.index()] -= 1;
                        self.counts_by_state[TaskState::Ready.index()] += 1;
                        dependent_record.state = TaskState::Ready;
                        let priority = if self.cold.is_empty() {
                            0
                        } else {
                            self.cold.get(&dependent).map_or(0, |cold| cold.priority)
                        };
                        self.ready.push(priority, dependent);
                    } else {
                        self.make_ready(dependent, out);
                    }
                }
            }
        }
        // As `release_deps`: every reference first, then whatever that frees.
        let mut freed = n_dependents;
        for index in n_dependents..visit.len() {
            let dep = visit[index];
            if let Some(dep_record) = self.tasks.get_mut(&dep) {
                if !self.proxies.is_empty() && dep_record.dependent_refs > 0 {
                    note_proxy_ref(&self.proxies, &mut self.proxy_refs_changed, dep, false);
                }
                dep_record.dependent_refs = dep_record.dependent_refs.saturating_sub(1);
                if dep_record.is_needed() {
                    offer_withdraw(dep, dep_record, out);
                } else {
                    visit[freed] = dep;
                    freed += 1;
                }
            }
        }
        for &dep in &visit[n_dependents..freed] {
            self.forget_unneeded(dep, out);
        }
        self.visit_list = visit;
        if !needed {
            self.forget_unneeded(id, out);
        }
    }

    fn on_failed(&mut self, id: TaskId, error: TaskError, out: &mut Vec<Action<P>>) {
        match self.take_report(id) {
            Some(TaskState::Running) => {}
            #[cfg(feature = "__planted")]
            Some(_) if self.planted == Some(PlantedBug::AcceptSecondResult) => {}
            Some(_) => {
                self.forget_unneeded(id, out);
                return;
            }
            None => return,
        }
        #[cfg(feature = "__planted")]
        if self.planted == Some(PlantedBug::LeakSlotOnFailure) {
            self.in_flight += 1;
            if let Some(pool) = &self.pool {
                pool.take_anyway();
            }
        }
        // Retries are for errors the task raised; a transport that gave up on lost workers
        // has already redelivered as often as allowed.
        let raised_by_task =
            !matches!(error, TaskError::WorkerLost { .. } | TaskError::BrokerUnavailable { .. });
        if raised_by_task
            && let Some(cold) = self.cold.get_mut(&id)
            && cold.retries_left > 0
        {
            cold.retries_left -= 1;
            self.make_ready(id, out);
            return;
        }
        let attempts = self.tasks[&id].attempts;
        let error = match error {
            TaskError::Failed { key, message } if attempts > 1 => TaskError::Failed {
                key,
                message: format!("{message} (gave up after {attempts} attempts)"),
            },
            TaskError::Panicked { key, message } if attempts > 1 => TaskError::Panicked {
                key,
                message: format!("{message} (gave up after {attempts} attempts)"),
            },
            other => other,
        };
        self.finish_with_error(id, TaskState::Failed, error, Reported::Yes, out);
    }

    fn on_lost(&mut self, id: TaskId, out: &mut Vec<Action<P>>) {
        // A dispatch the transport was asked to take back may be found gone before the
        // transport heard that it removed it: lost or withdrawn, nothing needs it run.
        let withdrawing = self.is_withdrawing(id);
        match self.take_report(id) {
            Some(TaskState::Running) => {}
            Some(_) => {
                self.forget_unneeded(id, out);
                return;
            }
            None => return,
        }
        if withdrawing && !self.tasks.get(&id).is_some_and(Record::is_needed) {
            self.forget_unneeded(id, out);
            return;
        }
        let cold = self.cold.entry(id).or_default();
        cold.lost += 1;
        let attempts = cold.lost;
        if cold.failures_left > 0 {
            cold.failures_left -= 1;
            self.make_ready(id, out);
            return;
        }
        let error = TaskError::WorkerLost { key: self.key(id), attempts };
        self.finish_with_error(id, TaskState::Failed, error, Reported::Yes, out);
    }

    /// What [`Event::RetryRequested`] for `id` would do now.
    pub fn retry_outcome(&self, id: TaskId) -> RetryOutcome {
        match self.retry_plan(id) {
            Ok(_) => RetryOutcome::Rerunning,
            Err(outcome) => outcome,
        }
    }

    /// The failed tasks a retry of `id` runs again, dependencies before dependents: `id` and
    /// every failed task it reads, directly or not. The walk stops at tasks that have not
    /// failed: a finished one gives its value, an unfinished one is waited for as usual.
    fn retry_plan(&self, id: TaskId) -> Result<Vec<TaskId>, RetryOutcome> {
        let Some(record) = self.tasks.get(&id) else {
            // Not reached through a handle (a handle keeps its task): nothing to run again.
            return Err(RetryOutcome::NotFailed);
        };
        if self.closed {
            return Err(RetryOutcome::ClientClosed);
        }
        match record.state {
            TaskState::Failed => {}
            TaskState::Cancelled => return Err(RetryOutcome::Cancelled),
            _ => return Err(RetryOutcome::NotFailed),
        }
        // Depth-first, iteratively (chains of any length), emitting a task after the failed
        // tasks it reads; `true` marks a task whose dependencies were pushed already.
        let mut order = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![(id, false)];
        while let Some((task, expanded)) = stack.pop() {
            if expanded {
                order.push(task);
                continue;
            }
            if !seen.insert(task) {
                continue;
            }
            stack.push((task, true));
            for dep in &self.tasks[&task].deps {
                match self.tasks.get(dep).map(|dep_record| dep_record.state) {
                    Some(TaskState::Failed) => stack.push((*dep, false)),
                    // A failed task keeps its dependencies, and a cancel reaches every held
                    // dependent: a failed task never reads a cancelled or forgotten one. Were
                    // it to, its input is gone for good, as after a cancel.
                    Some(TaskState::Cancelled) | None => return Err(RetryOutcome::Cancelled),
                    Some(_) => {}
                }
            }
        }
        Ok(order)
    }

    /// Runs a failed task again, after the failed tasks it reads (see `retry_plan`).
    fn on_retry(&mut self, id: TaskId, out: &mut Vec<Action<P>>) {
        let Ok(plan) = self.retry_plan(id) else { return };
        if !self.proxies.is_empty() && plan.iter().any(|task| self.proxies.contains_key(task)) {
            // A failed input of another shard that did not run again first (see
            // `ShardedScheduler::retry`): it cannot, so neither can this task.
            return;
        }
        for task in &plan {
            let record = self.tasks.get_mut(task).expect("planned tasks are held");
            // A failed task keeps its dependencies (see `finish_with_error`); take them again
            // should it have given them back.
            if record.deps_released {
                record.deps_released = false;
                let deps = record.deps.clone();
                for dep in &deps {
                    if let Some(dep_record) = self.tasks.get_mut(dep) {
                        dep_record.dependent_refs += 1;
                        note_proxy_ref(&self.proxies, &mut self.proxy_refs_changed, *dep, true);
                    }
                }
            }
            if let Some(cold) = self.cold.get_mut(task) {
                cold.error = None;
            }
            let record = &self.tasks[task];
            out.push(Action::Reset { id: *task, payload: record.payload.clone() });
            self.set_state(*task, TaskState::Waiting);
        }
        for task in plan {
            let record = &self.tasks[&task];
            let waiting_on = record
                .deps
                .as_slice()
                .iter()
                .filter(|dep| self.state(**dep) != Some(TaskState::Finished))
                .count() as u32;
            self.tasks.get_mut(&task).expect("planned tasks are held").waiting_on = waiting_on;
            if waiting_on == 0 {
                self.make_ready(task, out);
            }
        }
    }

    /// The tasks that have not finished (waiting, ready or running), newest first: the order
    /// in which cancelling them one by one gives each its own error, before a cancelled
    /// dependency's cascade reaches it.
    pub fn unfinished(&self) -> Vec<TaskId> {
        let mut unfinished: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(id, record)| !record.state.is_terminal() && !self.proxies.contains_key(id))
            .map(|(id, _)| id)
            .collect();
        // Ids are handed out in submission order.
        unfinished.sort_unstable_by(|a, b| b.cmp(a));
        unfinished
    }

    /// What [`Event::CancelRequested`] for `id` would do now.
    pub fn cancel_outcome(&self, id: TaskId) -> CancelOutcome {
        match self.tasks.get(&id).map(|record| record.state) {
            None | Some(TaskState::Cancelled) => CancelOutcome::AlreadyCancelled,
            Some(TaskState::Finished | TaskState::Failed) => CancelOutcome::CancelledAfterFinishing,
            Some(_) => CancelOutcome::Cancelled,
        }
    }

    /// Cancels `id` and every dependent the scheduler holds, transitively, whatever its
    /// state (Dask's `cancel`): a finished or failed task gives its outcome up.
    fn on_cancel(&mut self, id: TaskId, reason: String, out: &mut Vec<Action<P>>) {
        if self.cancel_outcome(id) == CancelOutcome::AlreadyCancelled {
            return;
        }
        let error = TaskError::Cancelled { key: self.key(id), reason };
        self.cancel_with(id, error, out);
    }

    /// Cancels `id` with `error`, and every dependent the scheduler holds, transitively
    /// (see [`on_cancel`](Scheduler::on_cancel)).
    fn cancel_with(&mut self, id: TaskId, error: TaskError, out: &mut Vec<Action<P>>) {
        let mut cascade = std::mem::take(&mut self.worklist);
        cascade.clear();
        let mut cancelled = vec![id];
        self.cancel_one(id, error, out);
        #[cfg(feature = "__planted")]
        let cascades = self.planted != Some(PlantedBug::NoCancelCascade);
        #[cfg(not(feature = "__planted"))]
        let cascades = true;
        if cascades {
            cascade.push(id);
        }
        while let Some(parent) = cascade.pop() {
            let root = self.error(parent).expect("cancelled");
            let dependents = self.tasks[&parent].dependents.clone();
            for &dependent in &dependents {
                let held = self
                    .tasks
                    .get(&dependent)
                    .is_some_and(|record| record.state != TaskState::Cancelled);
                if held {
                    let error = self.dependency_error(dependent, root.clone());
                    self.cancel_one(dependent, error, out);
                    cancelled.push(dependent);
                    cascade.push(dependent);
                }
            }
        }
        self.worklist = cascade;
        if self.pool.is_some() {
            // A shard: the cascade goes on in other shards first (see `deferred`).
            self.deferred.extend(cancelled);
            return;
        }
        // Release references only after the whole cascade, so that no task in it is
        // forgotten while the cascade still reads it.
        for task in &cancelled {
            self.release_deps(*task, out);
        }
        for task in cancelled {
            self.forget_unneeded(task, out);
        }
    }

    /// Makes one task cancelled with `error`; an outcome it had published is discarded first.
    fn cancel_one(&mut self, id: TaskId, error: TaskError, out: &mut Vec<Action<P>>) {
        let record = &self.tasks[&id];
        if matches!(record.state, TaskState::Finished | TaskState::Failed) {
            out.push(Action::Discard { id, payload: record.payload.clone() });
        }
        self.terminate(id, TaskState::Cancelled, error, Reported::No, out);
    }

    /// Makes `id` terminal with `error`, resolves it, and cascades to every unfinished
    /// dependent (iteratively: chains of any length are fine).
    ///
    /// A task that ends failed keeps its references to its dependencies until it is
    /// forgotten, so that a retry (`Event::RetryRequested`) finds its inputs, or runs them
    /// again; a cancelled one gives them back at once.
    fn finish_with_error(
        &mut self,
        id: TaskId,
        state: TaskState,
        error: TaskError,
        reported: Reported,
        out: &mut Vec<Action<P>>,
    ) {
        let mut cascade = std::mem::take(&mut self.worklist);
        cascade.clear();
        let mut terminated = vec![id];
        self.terminate(id, state, error, reported, out);
        #[cfg(feature = "__planted")]
        let cascades =
            !(state == TaskState::Cancelled && self.planted == Some(PlantedBug::NoCancelCascade));
        #[cfg(not(feature = "__planted"))]
        let cascades = true;
        if cascades {
            cascade.push(id);
        }
        while let Some(failed) = cascade.pop() {
            let Some(root) = self.error(failed) else {
                continue;
            };
            let dependents = self.tasks[&failed].dependents.clone();
            for &dependent in &dependents {
                let unfinished =
                    self.tasks.get(&dependent).is_some_and(|record| !record.state.is_terminal());
                if unfinished {
                    let error = self.dependency_error(dependent, root.clone());
                    let state =
                        if error.is_cancelled() { TaskState::Cancelled } else { TaskState::Failed };
                    self.terminate(dependent, state, error, Reported::No, out);
                    terminated.push(dependent);
                    cascade.push(dependent);
                }
            }
        }
        self.worklist = cascade;
        if self.pool.is_some() {
            // A shard: the cascade goes on in other shards first (see `deferred`).
            self.deferred.extend(terminated);
            return;
        }
        // Release references only after the whole cascade, so that no task in it is
        // forgotten while the cascade still reads it.
        for task in &terminated {
            if self.state(*task) == Some(TaskState::Cancelled) {
                self.release_deps(*task, out);
            }
        }
        for task in terminated {
            self.forget_unneeded(task, out);
        }
    }

    fn terminate(
        &mut self,
        id: TaskId,
        state: TaskState,
        error: TaskError,
        reported: Reported,
        out: &mut Vec<Action<P>>,
    ) {
        let previous = self.tasks[&id].state;
        self.set_state(id, state);
        self.cold.entry(id).or_default().error = Some(error.clone());
        let record = &self.tasks[&id];
        if state == TaskState::Failed {
            self.total_failed += 1;
        }
        // A run that has not reported yet is stopped; one that just reported has ended.
        if previous == TaskState::Running && reported == Reported::No {
            out.push(Action::Abort { id, payload: record.payload.clone() });
        }
        out.push(Action::Resolve { id, payload: record.payload.clone(), outcome: Err(error) });
    }

    /// `id` no longer needs its dependencies' values.
    fn release_deps(&mut self, id: TaskId, out: &mut Vec<Action<P>>) {
        let Some(record) = self.tasks.get_mut(&id) else { return };
        if record.deps_released {
            return;
        }
        record.deps_released = true;
        // Taken out while the dependencies are released (no copy per task), then put back:
        // the list stays, since a retry of this task re-acquires its dependencies. Releasing
        // them never forgets this task (it is no dependency of theirs).
        let deps = std::mem::take(&mut record.deps);
        for dep in &deps {
            if let Some(dep_record) = self.tasks.get_mut(dep) {
                if !self.proxies.is_empty() && dep_record.dependent_refs > 0 {
                    note_proxy_ref(&self.proxies, &mut self.proxy_refs_changed, *dep, false);
                }
                dep_record.dependent_refs = dep_record.dependent_refs.saturating_sub(1);
            }
        }
        for &dep in &deps {
            self.forget_unneeded(dep, out);
        }
        if let Some(record) = self.tasks.get_mut(&id) {
            record.deps = deps;
        }
    }

    /// Forgets `id` if nothing needs it any more, and then whatever that frees in turn.
    fn forget_unneeded(&mut self, id: TaskId, out: &mut Vec<Action<P>>) {
        // Most calls find the task still needed: answered in one look up, with no work list.
        let Some(record) = self.take_unneeded(id, out) else { return };
        // A reused list: every task's last release comes through here.
        let mut pending = std::mem::take(&mut self.forget_list);
        pending.clear();
        self.forget_record(id, record, &mut pending, out);
        while let Some(id) = pending.pop() {
            if let Some(record) = self.take_unneeded(id, out) {
                self.forget_record(id, record, &mut pending, out);
            }
        }
        self.forget_list = pending;
    }

    /// Takes task `id`'s record out of the table if nothing needs it; if something does,
    /// offers to withdraw its dispatch (see [`offer_withdraw`]). One look up.
    fn take_unneeded(&mut self, id: TaskId, out: &mut Vec<Action<P>>) -> Option<Record<P>> {
        self.tasks.remove_if(&id, |record| {
            if record.is_needed() {
                offer_withdraw(id, record, out);
                false
            } else {
                true
            }
        })
    }

    /// Forgets the record of task `id`, just taken out of the table: its side entries go, and
    /// the dependencies it still held a reference to are pushed on `pending`, to be forgotten
    /// in turn if nothing else needs them.
    fn forget_record(
        &mut self,
        id: TaskId,
        record: Record<P>,
        pending: &mut Vec<TaskId>,
        out: &mut Vec<Action<P>>,
    ) {
        self.counts_by_state[record.state.index()] -= 1;
        if !self.cold.is_empty() {
            self.cold.remove(&id);
        }
        if !self.proxies.is_empty() && self.proxies.remove(&id).is_some() {
            self.proxies_forgotten.push(id);
        }
        let stored_key = match &mut self.keys {
            Keys::Stored(keys) => keys.remove(&id),
            Keys::InPayload(_) => None,
        };
        if record.shared_key {
            let key = match (&stored_key, &self.keys) {
                (Some(key), _) => key,
                (None, Keys::InPayload(key_of)) => key_of(&record.payload),
                (None, Keys::Stored(_)) => unreachable!("every held task's key is stored"),
            };
            if self.by_key.get(key) == Some(&id) {
                self.by_key.remove(key);
            }
        }
        if !record.deps_released {
            for dep in &record.deps {
                if let Some(dep_record) = self.tasks.get_mut(dep) {
                    if !self.proxies.is_empty() && dep_record.dependent_refs > 0 {
                        note_proxy_ref(&self.proxies, &mut self.proxy_refs_changed, *dep, false);
                    }
                    dep_record.dependent_refs = dep_record.dependent_refs.saturating_sub(1);
                    pending.push(*dep);
                }
            }
        }
        if !self.proxies.is_empty() {
            // A task holds each proxy it reads (once, however often it lists it) for as
            // long as it is held itself, as a dependent stays on its input's list here: a
            // cancel of the input reaches it even after it finished.
            let deps = record.deps.as_slice();
            for (at, dep) in deps.iter().enumerate() {
                if self.proxies.contains_key(dep) && !deps[..at].contains(dep) {
                    let proxy = self.tasks.get_mut(dep).expect("a proxy is held");
                    proxy.client_refs -= 1;
                    pending.push(*dep);
                }
            }
        }
        out.push(Action::Forget { id, payload: record.payload });
    }

    fn on_closed(&mut self, out: &mut Vec<Action<P>>) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut unfinished: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(_, record)| !record.state.is_terminal())
            .map(|(id, _)| id)
            .collect();
        // Resolve in submission order (the ids') so that the outcome does not depend on
        // hashing.
        unfinished.sort_unstable();
        for id in &unfinished {
            let key = self.key(*id);
            let error = TaskError::Cancelled { key, reason: "the client was closed".into() };
            self.terminate(*id, TaskState::Cancelled, error, Reported::No, out);
        }
        self.ready.clear();
        for id in &unfinished {
            self.release_deps(*id, out);
        }
        for id in unfinished {
            self.forget_unneeded(id, out);
        }
    }

    // -----------------------------------------------------------------------------------
    // What a `ShardedScheduler` needs of its shards (see `sharded.rs`).

    /// Makes this scheduler a shard whose dispatches take their slots from `pool`.
    pub(super) fn share_slots(&mut self, pool: Arc<SlotPool>) {
        self.pool = Some(pool);
    }

    /// Dispatches ready tasks while the pool has free slots.
    pub(super) fn pump_ready(&mut self, out: &mut Vec<Action<P>>) {
        self.pump(out);
    }

    /// Whether a task is ready to be dispatched (a slot is all it waits for).
    pub(super) fn has_ready(&self) -> bool {
        self.counts_by_state[TaskState::Ready.index()] > 0
    }

    /// Whether `id` is held here as a proxy of another shard's task.
    pub(super) fn is_proxy(&self, id: TaskId) -> bool {
        !self.proxies.is_empty() && self.proxies.contains_key(&id)
    }

    /// Whether any proxy is held or was forgotten since the last
    /// [`take_forgotten_proxies`](Scheduler::take_forgotten_proxies).
    pub(super) fn has_proxies(&self) -> bool {
        !self.proxies.is_empty()
            || !self.proxies_forgotten.is_empty()
            || !self.proxy_refs_changed.is_empty()
    }

    /// The proxies forgotten since the last call, moved into `forgotten`, and the
    /// references to proxies given back or taken, into `references`.
    pub(super) fn take_proxy_changes(
        &mut self,
        forgotten: &mut Vec<TaskId>,
        references: &mut Vec<(TaskId, bool)>,
    ) {
        forgotten.append(&mut self.proxies_forgotten);
        references.append(&mut self.proxy_refs_changed);
    }

    /// Whether a cascade's references wait to be given back (see `deferred`).
    pub(super) fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Gives back the references of the tasks cascades terminated (see `deferred`), and
    /// forgets whatever that frees, as one scheduler does at the end of a cascade.
    pub(super) fn flush_deferred(&mut self, out: &mut Vec<Action<P>>) {
        let terminated = std::mem::take(&mut self.deferred);
        for task in &terminated {
            if self.state(*task) == Some(TaskState::Cancelled) {
                self.release_deps(*task, out);
            }
        }
        for task in terminated {
            self.forget_unneeded(task, out);
        }
    }

    /// Drops proxy `id` at once, whatever holds it here: its task was forgotten in its own
    /// shard (so nothing will happen to it any more: the tasks here that listed it keep
    /// their lists, as a forgotten input's dependents do).
    pub(super) fn drop_proxy(&mut self, id: TaskId) {
        if self.proxies.remove(&id).is_none() {
            return;
        }
        if let Some(record) = self.tasks.remove(&id) {
            self.counts_by_state[record.state.index()] -= 1;
        }
        self.cold.remove(&id);
        if let Keys::Stored(keys) = &mut self.keys {
            keys.remove(&id);
        }
    }

    /// The key of held task `id`.
    pub(super) fn key_of(&self, id: TaskId) -> TaskKey {
        self.key(id)
    }

    /// The held task `id`'s state and, when it failed or was cancelled, its error.
    pub(super) fn outcome_of(&self, id: TaskId) -> Option<(TaskState, Option<TaskError>)> {
        let state = self.state(id)?;
        Some((state, if state.is_terminal() { self.error(id) } else { None }))
    }

    /// Every proxy held, with the version of its last update.
    pub(super) fn proxies(&self) -> impl Iterator<Item = (TaskId, u64)> + '_ {
        self.proxies.iter().map(|(id, version)| (*id, *version))
    }

    /// Takes one more client reference on held task `id` (as [`Event::Retained`]).
    pub(super) fn retain(&mut self, id: TaskId) -> bool {
        match self.tasks.get_mut(&id) {
            Some(record) => {
                record.client_refs += 1;
                true
            }
            None => false,
        }
    }

    /// Holds task `id` of another shard as a proxy: a record that stands for it here, so
    /// that this shard's tasks can read it as an input, with its `key` and `payload`. It starts in `state` (`Waiting` for
    /// a task not yet done) with `error` if it failed or was cancelled, at `version`, with
    /// one client reference: the dependent's, which it gives back when it is forgotten
    /// (each task held here holds each proxy it reads once).
    pub(super) fn insert_proxy(
        &mut self,
        id: TaskId,
        key: TaskKey,
        payload: P,
        version: u64,
        state: TaskState,
        error: Option<TaskError>,
    ) {
        let state = match state {
            TaskState::Ready | TaskState::Running => TaskState::Waiting,
            other => other,
        };
        self.counts_by_state[state.index()] += 1;
        if let Some(error) = error {
            self.cold.entry(id).or_default().error = Some(error);
        }
        self.proxies.insert(id, version);
        self.store_key(id, key, &payload);
        self.tasks.insert(
            id,
            Record {
                state,
                payload,
                deps: IdList::Empty,
                // It reads nothing; as an unfinished task's, its (empty) list is still held.
                deps_released: false,
                dependents: IdList::Empty,
                waiting_on: 0,
                client_refs: 1,
                dependent_refs: 0,
                pinned: false,
                shared_key: false,
                uses_worker: false,
                holds_slot: false,
                seceded: false,
                withdrawing: false,
                attempts: 0,
            },
        );
    }

    /// Applies what happened to the source of proxy `id` (at `version`, newer than any
    /// applied: older ones, overtaken on their way, are ignored): its dependents here are
    /// queued, failed or cancelled exactly as a task of this shard's would make them.
    pub(super) fn update_proxy(
        &mut self,
        id: TaskId,
        version: u64,
        update: ProxyUpdate,
        out: &mut Vec<Action<P>>,
    ) {
        let Some(applied) = self.proxies.get_mut(&id) else { return };
        if *applied >= version {
            return;
        }
        *applied = version;
        if let ProxyUpdate::Forgotten = update {
            self.drop_proxy(id);
            return;
        }
        let Some(state) = self.state(id) else { return };
        if state == TaskState::Cancelled {
            // Final: a cancelled task never runs again.
            return;
        }
        match update {
            ProxyUpdate::Waiting => {
                if state != TaskState::Waiting {
                    if let Some(cold) = self.cold.get_mut(&id) {
                        cold.error = None;
                    }
                    self.set_state(id, TaskState::Waiting);
                }
            }
            ProxyUpdate::Finished => {
                if state == TaskState::Finished {
                    return;
                }
                if let Some(cold) = self.cold.get_mut(&id) {
                    cold.error = None;
                }
                // As a report of a run: the dependents it was the last input of are queued.
                self.set_state(id, TaskState::Running);
                self.proxy_totals.0 += 1;
                self.on_finished(id, out);
            }
            ProxyUpdate::Failed(error) => {
                if state == TaskState::Waiting {
                    self.proxy_totals.1 += 1;
                    self.finish_with_error(id, TaskState::Failed, error, Reported::Yes, out);
                }
            }
            ProxyUpdate::Cancelled(error) => self.cancel_with(id, error, out),
            ProxyUpdate::Forgotten => unreachable!("handled above"),
        }
    }

    /// The failed proxies among the tasks a retry of `id` runs again (see `retry_plan`):
    /// their sources must run again first.
    pub(super) fn failed_proxies_in_retry(&self, id: TaskId) -> Vec<TaskId> {
        match self.retry_plan(id) {
            Ok(plan) => plan.into_iter().filter(|task| self.is_proxy(*task)).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Checks the internal bookkeeping; used by tests after every event.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        for id in self.proxies.keys() {
            let Some(record) = self.tasks.get(id) else {
                return Err(format!("{id:?}: a proxy without a record"));
            };
            if !record.deps.as_slice().is_empty() || record.holds_slot || record.attempts > 0 {
                return Err(format!("{id:?}: a proxy with inputs, a slot or a run"));
            }
            if matches!(record.state, TaskState::Ready | TaskState::Running) {
                return Err(format!("{id:?}: a proxy in state {:?}", record.state));
            }
            let readers =
                self.tasks.iter().filter(|(_, reader)| reader.deps.contains(id)).count() as u32;
            if record.client_refs != readers {
                return Err(format!(
                    "{id:?}: a proxy held {} times but read by {readers} held tasks",
                    record.client_refs
                ));
            }
        }
        let mut by_state = [0usize; 6];
        let mut slots = 0;
        for (id, record) in self.tasks.iter() {
            by_state[record.state.index()] += 1;
            if record.holds_slot {
                slots += 1;
            }
            let live_dependents = record
                .dependents
                .as_slice()
                .iter()
                .filter(|dependent| {
                    self.tasks
                        .get(dependent)
                        .is_some_and(|d| !d.deps_released && d.deps.contains(&id))
                })
                .count() as u32;
            if live_dependents != record.dependent_refs {
                return Err(format!(
                    "{id:?}: dependent_refs {} but {live_dependents} live dependents",
                    record.dependent_refs
                ));
            }
            if record.state == TaskState::Failed && record.deps_released {
                return Err(format!(
                    "{id:?}: failed but gave its dependencies back (retry needs them)"
                ));
            }
            if record.state.is_terminal()
                && record.state != TaskState::Finished
                && self.error(id).is_none()
            {
                return Err(format!("{id:?}: terminal without an error"));
            }
        }
        if let Some(id) = self.cold.keys().find(|id| self.tasks.get(id).is_none()) {
            return Err(format!("{id:?}: forgotten but its cold part is kept"));
        }
        for state in TaskState::ALL {
            if by_state[state.index()] != self.counts_by_state[state.index()] {
                return Err(format!("count of {state:?} is off"));
            }
        }
        if slots != self.in_flight {
            return Err(format!("{slots} slots held but in_flight is {}", self.in_flight));
        }
        Ok(())
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// A record is the scheduler's memory per pending task: a field added to it shows up
    /// here, to be weighed against that cost (`benches/overhead.rs`, memory per pending task).
    #[test]
    fn a_record_takes_64_bytes() {
        // The client's payload is one pointer (`Arc<Job>`).
        assert_eq!(size_of::<Record<std::sync::Arc<()>>>(), 64);
        assert_eq!(size_of::<Option<Record<std::sync::Arc<()>>>>(), 64);
    }

    /// An entry is the task's id and sorts by it, so an entry left behind by a task
    /// cancelled while queued does not disturb a later ordered insert.
    #[test]
    fn ready_entries_are_ids_kept_in_id_order_per_priority() {
        let mut queue = ReadyQueue::default();
        for id in [3, 5, 7] {
            queue.push(0, TaskId(id));
        }
        // 5 was cancelled meanwhile: its entry stays, to be skipped when popped.
        queue.push(0, TaskId(4));
        queue.push(1, TaskId(9));
        queue.push(0, TaskId(6));
        queue.push(-1, TaskId(2));
        queue.push(2, TaskId(10));
        queue.push(-1, TaskId(1));
        let popped: Vec<u64> = std::iter::from_fn(|| queue.pop()).map(|id| id.0).collect();
        assert_eq!(popped, [10, 9, 3, 4, 5, 6, 7, 1, 2]);
        assert!(queue.others.is_empty(), "emptied levels go");
    }
}
