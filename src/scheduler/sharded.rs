//! [`ShardedScheduler`]: the scheduler split into shards that different tasks' events do
//! not share, for many cores.
//!
//! One [`Scheduler`] behind one lock serialises every task's events: its hold per task sets
//! a ceiling on throughput whatever the number of cores (`ARCHITECTURE.md`, "The many-core
//! ceiling"). Here the task graph is split into `S` shards, each an ordinary [`Scheduler`]
//! behind a lock of its own, whose events run single-threaded exactly as one scheduler's do;
//! nothing is done under a lock that all tasks share.
//!
//! - **Placement.** Task `id` lives in shard `(id / 128) % S`: a chunk of 128 consecutive
//!   ids (tasks submitted together: a chain, a stencil row and its neighbours, a `map`) stays
//!   in one shard, and an event finds its shard from the id alone, with no map to consult.
//! - **Inputs in another shard.** A task reading a task of another shard reads a *proxy*
//!   there: a record of the input's id in the dependent's shard that is never dispatched and
//!   mirrors the input's outcome. The input's shard counts the proxy as one client reference
//!   and lists the dependent's shard as a watcher. When the input is resolved (finished,
//!   failed, cancelled) or reset (retried), its shard sends the watchers an update, applied
//!   after its own lock is let go: the proxy finishes, fails or is cancelled, and the
//!   dependents in its shard are queued, failed or cancelled by that shard's own rules. When
//!   a proxy is no longer needed, its shard gives the reference back the same way.
//! - **Slots.** The in-flight limit is one atomic count ([`SlotPool`]) that every shard's
//!   dispatch takes from and every report gives back to; a shard whose ready task finds no
//!   slot raises its flag, and whoever frees a slot dispatches from flagged shards.
//!
//! **Invariant:** a shard's lock is held only while its own scheduler and watchers are
//! touched; two are held at once only while a proxy is made (the lower shard index first),
//! and no lock is held while updates are delivered, so no two locks are ever taken in
//! opposite orders.
//!
//! **Invariant:** updates carry the source shard's version (a counter per shard, bumped for
//! every update sent): a proxy applies only updates newer than the last it applied, so an
//! update overtaken on its way by a later one is ignored, and a proxy made after an update
//! was sent starts at the version it read.
//!
//! What one scheduler does that the shards do only approximately: among ready tasks of
//! different shards, priority and submission order are each shard's own (a freed slot goes
//! to the ready task of the shard that freed it, then to flagged shards in turn); shared
//! keys are looked up in every shard, and a lookup followed by a submission needs the
//! caller's own serialisation to find a task submitted meanwhile.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::{Mutex, MutexGuard};

use super::event::{Action, CancelOutcome, Event, RetryOutcome, TaskSpec};
use super::graph::{Scheduler, SchedulerCounts, TaskState};
use super::table::CHUNK;
use crate::error::TaskError;
use crate::key::{TaskId, TaskKey};

/// The worker slots every shard takes from: how many worker tasks are dispatched, against
/// how many may be.
#[derive(Debug)]
pub(crate) struct SlotPool {
    in_flight: AtomicUsize,
    capacity: usize,
}

impl SlotPool {
    /// Takes a slot if one is free.
    #[inline]
    pub(crate) fn try_take(&self) -> bool {
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |taken| {
                (taken < self.capacity).then_some(taken + 1)
            })
            .is_ok()
    }

    /// Takes a slot even beyond the capacity (a rejoining task).
    #[inline]
    pub(crate) fn take_anyway(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    /// Gives a slot back.
    #[inline]
    pub(crate) fn give_back(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    fn has_free(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) < self.capacity
    }
}

/// What happened to the source of a proxy, for the proxy to mirror.
#[derive(Debug, Clone)]
pub(crate) enum ProxyUpdate {
    /// The source runs again (a retry): the proxy waits again.
    Waiting,
    /// The source produced its value.
    Finished,
    /// The source failed with this error.
    Failed(TaskError),
    /// The source was cancelled with this error.
    Cancelled(TaskError),
    /// The source was forgotten: nothing will happen to it any more, and the proxy goes.
    Forgotten,
}

/// A message between shards, delivered with no lock held.
#[derive(Debug)]
enum Message {
    /// Task `id`'s outcome changed: its proxy in shard `to` mirrors it.
    Update { to: usize, id: TaskId, version: u64, update: ProxyUpdate },
    /// Shard `from` forgot its proxy of task `id`: it no longer watches it.
    Unwatch { id: TaskId, from: usize },
    /// A task of another shard gave back its reference to task `id` (through the proxy).
    Release { id: TaskId },
    /// A task of another shard took a reference to task `id` again (a retry).
    Retain { id: TaskId },
}

/// Messages waiting for delivery. Updates go first, in the order sent, then the cascades'
/// deferred references, then the rest: a cascade reaches every task it reaches, in every
/// shard, before any reference is given back, as in one scheduler (which terminates a whole
/// cascade before it releases anything), so no task it would reach is forgotten first.
#[derive(Debug, Default)]
struct Mail {
    updates: VecDeque<Message>,
    others: VecDeque<Message>,
    /// Shards whose cascades wait for their references to be given back (see
    /// `Scheduler::flush_deferred`): once no update is left, the cascade is done.
    cascaded: Vec<usize>,
}

impl Mail {
    fn push_back(&mut self, message: Message) {
        match message {
            Message::Update { .. } => self.updates.push_back(message),
            _ => self.others.push_back(message),
        }
    }

    fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.others.is_empty() && self.cascaded.is_empty()
    }
}

/// One shard: a scheduler, and for each of its tasks that other shards read, which shards
/// hold a proxy of it. Such a task holds one client reference per unfinished task of
/// another shard that reads it (as a dependent reference in one scheduler): taken when the
/// reader is submitted, given back when the reader's shard lets its proxy's reference go.
#[derive(Debug)]
struct Shard<P> {
    scheduler: Scheduler<P>,
    /// Task id → (watching shard, proxies it made). At rest one per watching shard; a
    /// proxy forgotten and one made again may cross on their way.
    watchers: HashMap<TaskId, Vec<(usize, u32)>>,
    /// The version of the last update this shard sent (see the module docs).
    version: u64,
}

/// A shard's lock on a cache line of its own.
#[derive(Debug)]
#[repr(align(128))]
struct Padded<T>(T);

/// The scheduler in shards, for many cores: the same [`Event`]s in and [`Action`]s out as
/// [`Scheduler`], fed through `&self` from any number of threads at once; events of tasks in
/// different shards take different locks (see the module docs of `sharded.rs` in the
/// source, and `ARCHITECTURE.md`, "Sharding").
///
/// # Examples
///
/// ```
/// use taskweave::scheduler::{Action, Event, ShardedScheduler, TaskId, TaskKey, TaskSpec};
///
/// let scheduler = ShardedScheduler::new(1, 4);
/// let spec = |id: u64, deps: Vec<TaskId>| TaskSpec {
///     id: TaskId(id),
///     key: TaskKey::named(format!("t{id}")),
///     deps,
///     priority: 0,
///     retries: 0,
///     allowed_failures: 0,
///     uses_worker: true,
///     pinned: false,
///     shared_key: false,
///     payload: id,
/// };
/// let mut actions = Vec::new();
/// // Task 1 and task 200 live in different shards; 200 reads 1.
/// scheduler.handle(Event::Submitted(spec(1, vec![])), &mut actions);
/// scheduler.handle(Event::Submitted(spec(200, vec![TaskId(1)])), &mut actions);
/// assert_ne!(scheduler.shard_of(TaskId(1)), scheduler.shard_of(TaskId(200)));
/// assert_eq!(actions, [Action::Dispatch { id: TaskId(1), attempt: 1, payload: 1 }]);
/// actions.clear();
/// scheduler.handle(Event::Finished { id: TaskId(1) }, &mut actions);
/// assert!(actions.contains(&Action::Dispatch { id: TaskId(200), attempt: 1, payload: 200 }));
/// scheduler.check_invariants().unwrap();
/// ```
#[derive(Debug)]
pub struct ShardedScheduler<P> {
    shards: Box<[Padded<Mutex<Shard<P>>>]>,
    /// Per shard: a ready task found no free slot (see [`SlotPool`]).
    ready: Box<[Padded<AtomicBool>]>,
    pool: Arc<SlotPool>,
    /// Where the next search for a flagged shard starts, so that shards take turns.
    next_pumped: AtomicUsize,
}

impl<P: Clone> ShardedScheduler<P> {
    /// A scheduler of `shards` shards (at least 1) that keeps at most `capacity` worker tasks
    /// dispatched at once (at least 1), storing each task's key.
    pub fn new(capacity: usize, shards: usize) -> ShardedScheduler<P> {
        ShardedScheduler::build(capacity, shards, |capacity| Scheduler::new(capacity))
    }

    /// As [`new`](ShardedScheduler::new), for payloads that carry their task's key (see
    /// [`Scheduler::with_keys_in_payload`]).
    pub fn with_keys_in_payload(
        capacity: usize,
        shards: usize,
        key_of: fn(&P) -> &TaskKey,
    ) -> ShardedScheduler<P> {
        ShardedScheduler::build(capacity, shards, |capacity| {
            Scheduler::with_keys_in_payload(capacity, key_of)
        })
    }

    fn build(
        capacity: usize,
        shards: usize,
        make: impl Fn(usize) -> Scheduler<P>,
    ) -> ShardedScheduler<P> {
        let capacity = capacity.max(1);
        let pool = Arc::new(SlotPool { in_flight: AtomicUsize::new(0), capacity });
        let shards = shards.max(1);
        ShardedScheduler {
            shards: (0..shards)
                .map(|_| {
                    let mut scheduler = make(capacity);
                    scheduler.share_slots(Arc::clone(&pool));
                    Padded(Mutex::new(Shard { scheduler, watchers: HashMap::new(), version: 0 }))
                })
                .collect(),
            ready: (0..shards).map(|_| Padded(AtomicBool::new(false))).collect(),
            pool,
            next_pumped: AtomicUsize::new(0),
        }
    }

    /// How many shards there are.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// The shard task `id` lives in.
    pub fn shard_of(&self, id: TaskId) -> usize {
        ((id.0 / CHUNK) % self.shards.len() as u64) as usize
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard<P>> {
        self.shards[shard].0.lock()
    }

    /// Feeds one event and appends the resulting actions to `out`, as
    /// [`Scheduler::handle`] does; callable from many threads at once. Everything the event
    /// sets off in other shards (proxies updated, references given back, tasks dispatched
    /// into freed slots) is done before it returns.
    pub fn handle(&self, event: Event<P>, out: &mut Vec<Action<P>>) {
        let mut messages = Mail::default();
        match event {
            Event::Submitted(spec) => self.submit(spec, out, &mut messages),
            Event::Closed => {
                for shard in 0..self.shards.len() {
                    self.in_shard(shard, out, &mut messages, |scheduler, out| {
                        scheduler.handle(Event::Closed, out);
                    });
                }
            }
            Event::RetryRequested { id } => self.retry(id, out, &mut messages),
            event => {
                let id = match &event {
                    Event::Scattered(spec) => spec.id,
                    Event::Pinned { id }
                    | Event::Retained { id }
                    | Event::Finished { id }
                    | Event::Failed { id, .. }
                    | Event::Lost { id }
                    | Event::CancelRequested { id, .. }
                    | Event::Released { id }
                    | Event::Withdrawn { id }
                    | Event::Seceded { id }
                    | Event::Rejoined { id } => *id,
                    Event::Submitted(_) | Event::Closed | Event::RetryRequested { .. } => {
                        unreachable!("handled above")
                    }
                };
                self.in_shard(self.shard_of(id), out, &mut messages, |scheduler, out| {
                    scheduler.handle(event, out);
                });
            }
        }
        self.deliver(&mut messages, out);
        self.pump_flagged(out);
    }

    /// Runs `work` on shard `shard`'s scheduler under its lock, then sorts what it did out
    /// (see [`after_hold`](ShardedScheduler::after_hold)).
    fn in_shard(
        &self,
        shard: usize,
        out: &mut Vec<Action<P>>,
        messages: &mut Mail,
        work: impl FnOnce(&mut Scheduler<P>, &mut Vec<Action<P>>),
    ) {
        let mut locked = self.lock(shard);
        let from = out.len();
        work(&mut locked.scheduler, out);
        self.after_hold(shard, &mut locked, out, from, messages);
    }

    /// After shard `shard` handled something (its actions are `out[from..]`): drops the
    /// actions of its proxies (another shard's tasks: not the caller's to carry out), turns
    /// the outcomes of watched tasks into updates and forgotten proxies into references
    /// given back, and raises or lowers the shard's ready flag.
    fn after_hold(
        &self,
        shard: usize,
        locked: &mut Shard<P>,
        out: &mut Vec<Action<P>>,
        from: usize,
        messages: &mut Mail,
    ) {
        let Shard { scheduler, watchers, version } = locked;
        if scheduler.has_proxies() || !watchers.is_empty() {
            let mut kept = from;
            for index in from..out.len() {
                let id = action_id(&out[index]);
                if self.shard_of(id) != shard {
                    // A proxy's: the task lives and is resolved in its own shard.
                    continue;
                }
                if let Some(watching) = watchers.get(&id) {
                    let update = match &out[index] {
                        Action::Resolve { outcome: Ok(()), .. } => Some(ProxyUpdate::Finished),
                        Action::Resolve { outcome: Err(error), .. } => {
                            Some(match scheduler.state(id) {
                                Some(TaskState::Cancelled) => ProxyUpdate::Cancelled(error.clone()),
                                _ => ProxyUpdate::Failed(error.clone()),
                            })
                        }
                        Action::Reset { .. } => Some(ProxyUpdate::Waiting),
                        _ => None,
                    };
                    if let Some(update) = update {
                        for &(to, _) in watching {
                            *version += 1;
                            let (version, update) = (*version, update.clone());
                            messages.push_back(Message::Update { to, id, version, update });
                        }
                    }
                    if matches!(out[index], Action::Forget { .. }) {
                        // Nothing of another shard needs it any more: its proxies, kept
                        // for readers that finished, go.
                        for (to, _) in watchers.remove(&id).unwrap_or_default() {
                            *version += 1;
                            let (version, update) = (*version, ProxyUpdate::Forgotten);
                            messages.push_back(Message::Update { to, id, version, update });
                        }
                    }
                }
                out.swap(kept, index);
                kept += 1;
            }
            out.truncate(kept);
            let (mut forgotten, mut references) = (Vec::new(), Vec::new());
            scheduler.take_proxy_changes(&mut forgotten, &mut references);
            for (id, taken) in references {
                messages.push_back(match taken {
                    false => Message::Release { id },
                    true => Message::Retain { id },
                });
            }
            for id in forgotten {
                messages.push_back(Message::Unwatch { id, from: shard });
            }
        }
        if scheduler.has_deferred() && !messages.cascaded.contains(&shard) {
            messages.cascaded.push(shard);
        }
        // Stored only when it changes: the line stays shared between readers otherwise.
        let ready = scheduler.has_ready();
        if self.ready[shard].0.load(Ordering::Relaxed) != ready {
            self.ready[shard].0.store(ready, Ordering::SeqCst);
        }
    }

    /// Delivers `messages`, and those they set off, each under its shard's lock alone.
    fn deliver(&self, messages: &mut Mail, out: &mut Vec<Action<P>>) {
        loop {
            let message = match messages.updates.pop_front() {
                Some(update) => update,
                None => {
                    if let Some(shard) = messages.cascaded.pop() {
                        self.in_shard(shard, out, messages, |scheduler, out| {
                            scheduler.flush_deferred(out);
                        });
                        continue;
                    }
                    match messages.others.pop_front() {
                        Some(other) => other,
                        None => return,
                    }
                }
            };
            match message {
                Message::Update { to, id, version, update } => {
                    self.in_shard(to, out, messages, |scheduler, out| {
                        scheduler.update_proxy(id, version, update, out);
                        scheduler.pump_ready(out);
                    });
                }
                Message::Unwatch { id, from } => {
                    let home = self.shard_of(id);
                    let mut locked = self.lock(home);
                    if let Some(watching) = locked.watchers.get_mut(&id) {
                        if let Some(at) = watching.iter().position(|(shard, _)| *shard == from) {
                            watching[at].1 -= 1;
                            if watching[at].1 == 0 {
                                watching.swap_remove(at);
                            }
                        }
                        if watching.is_empty() {
                            locked.watchers.remove(&id);
                        }
                    }
                }
                Message::Release { id } => {
                    self.in_shard(self.shard_of(id), out, messages, |scheduler, out| {
                        scheduler.handle(Event::Released { id }, out);
                    });
                }
                Message::Retain { id } => {
                    self.lock(self.shard_of(id)).scheduler.retain(id);
                }
            }
        }
    }

    /// Dispatches the ready tasks of flagged shards while slots are free: a slot freed in
    /// one shard serves the others' ready tasks.
    fn pump_flagged(&self, out: &mut Vec<Action<P>>) {
        let shards = self.shards.len();
        if shards == 1 {
            return;
        }
        if !self.pool.has_free() {
            return;
        }
        // Written only when a shard is pumped, so that most events touch no shared line.
        let start = self.next_pumped.load(Ordering::Relaxed);
        let mut messages = Mail::default();
        for offset in 0..shards {
            let shard = (start + offset) % shards;
            if offset > 0 && !self.pool.has_free() {
                return;
            }
            if self.ready[shard].0.load(Ordering::SeqCst) {
                self.next_pumped.store(shard + 1, Ordering::Relaxed);
                self.in_shard(shard, out, &mut messages, |scheduler, out| {
                    scheduler.pump_ready(out);
                });
            }
        }
        debug_assert!(messages.is_empty(), "a dispatch sends no update");
    }

    /// A submission: the proxies of its inputs in other shards first (each made, or taken
    /// once more, holding the input's shard and the task's, lower index first), then the
    /// task in its own shard, which holds each proxy it reads until it is forgotten.
    fn submit(&self, spec: TaskSpec<P>, out: &mut Vec<Action<P>>, messages: &mut Mail) {
        let home = self.shard_of(spec.id);
        // (input, how often the task lists it): one reference on the input per listing, as
        // one scheduler counts one dependent reference per listing.
        let mut read: Vec<(TaskId, u32)> = Vec::new();
        for &input in &spec.deps {
            if self.shard_of(input) == home {
                continue;
            }
            match read.iter_mut().find(|(id, _)| *id == input) {
                Some((_, listings)) => *listings += 1,
                None => read.push((input, 1)),
            }
        }
        let mut held: Vec<(TaskId, u32)> = Vec::with_capacity(read.len());
        for (input, listings) in read {
            let source = self.shard_of(input);
            let (mut at_source, mut at_home) = if source < home {
                let at_source = self.lock(source);
                (at_source, self.lock(home))
            } else {
                let at_home = self.lock(home);
                (self.lock(source), at_home)
            };
            let Some((state, error)) = at_source.scheduler.outcome_of(input) else {
                // Forgotten: the submission finds it missing, as one scheduler would (a
                // proxy kept for finished readers goes now rather than when told).
                at_home.scheduler.drop_proxy(input);
                continue;
            };
            for _ in 0..listings {
                at_source.scheduler.retain(input);
            }
            if at_home.scheduler.is_proxy(input) {
                at_home.scheduler.retain(input);
            } else {
                let payload = at_source.scheduler.payload(input).cloned().expect("held");
                let key = at_source.scheduler.key_of(input);
                let watching = at_source.watchers.entry(input).or_default();
                match watching.iter_mut().find(|(shard, _)| *shard == home) {
                    Some((_, proxies)) => *proxies += 1,
                    None => watching.push((home, 1)),
                }
                let version = at_source.version;
                at_home.scheduler.insert_proxy(input, key, payload, version, state, error);
            }
            held.push((input, listings));
        }
        let id = spec.id;
        let mut refused = false;
        self.in_shard(home, out, messages, |scheduler, out| {
            scheduler.handle(Event::Submitted(spec), out);
            if scheduler.state(id).is_none() {
                // Refused (a closed scheduler): the references it took go back.
                refused = true;
                for &(input, _) in &held {
                    scheduler.handle(Event::Released { id: input }, out);
                }
            }
        });
        if refused {
            for (input, listings) in held {
                for _ in 0..listings {
                    messages.push_back(Message::Release { id: input });
                }
            }
        }
    }

    /// A retry: the failed inputs in other shards (through failed proxies) run again first,
    /// in their own shards, so that their proxies wait again; then the task's own shard
    /// retries it as one scheduler would.
    fn retry(&self, id: TaskId, out: &mut Vec<Action<P>>, messages: &mut Mail) {
        if self.retry_outcome(id) != RetryOutcome::Rerunning {
            return;
        }
        let home = self.shard_of(id);
        let proxies = self.lock(home).scheduler.failed_proxies_in_retry(id);
        for input in proxies {
            self.retry(input, out, messages);
            self.deliver(messages, out);
        }
        self.in_shard(home, out, messages, |scheduler, out| {
            scheduler.handle(Event::RetryRequested { id }, out);
        });
    }

    /// The task that holds `key`, if it was submitted with a shared key and is still held
    /// (looked up in every shard).
    pub fn lookup(&self, key: &TaskKey) -> Option<TaskId> {
        (0..self.shards.len()).find_map(|shard| self.lock(shard).scheduler.lookup(key))
    }

    /// The payload of a held task.
    pub fn payload(&self, id: TaskId) -> Option<P> {
        self.lock(self.shard_of(id)).scheduler.payload(id).cloned()
    }

    /// The state of a task, or `None` once it was forgotten.
    pub fn state(&self, id: TaskId) -> Option<TaskState> {
        self.lock(self.shard_of(id)).scheduler.state(id)
    }

    /// What [`Event::CancelRequested`] for `id` would do now.
    pub fn cancel_outcome(&self, id: TaskId) -> CancelOutcome {
        self.lock(self.shard_of(id)).scheduler.cancel_outcome(id)
    }

    /// What [`Event::RetryRequested`] for `id` would do now.
    pub fn retry_outcome(&self, id: TaskId) -> RetryOutcome {
        let (outcome, proxies) = {
            let locked = self.lock(self.shard_of(id));
            (locked.scheduler.retry_outcome(id), locked.scheduler.failed_proxies_in_retry(id))
        };
        if outcome != RetryOutcome::Rerunning {
            return outcome;
        }
        for input in proxies {
            let input_outcome = self.retry_outcome(input);
            if input_outcome != RetryOutcome::Rerunning {
                return input_outcome;
            }
        }
        outcome
    }

    /// See [`Scheduler::is_withdrawing`].
    pub fn is_withdrawing(&self, id: TaskId) -> bool {
        self.lock(self.shard_of(id)).scheduler.is_withdrawing(id)
    }

    /// Task counts by state and totals, summed over the shards (each read under its own
    /// lock: not one instant's while events run).
    pub fn counts(&self) -> SchedulerCounts {
        let mut total = SchedulerCounts::default();
        for shard in 0..self.shards.len() {
            let counts = self.lock(shard).scheduler.counts();
            total.waiting += counts.waiting;
            total.ready += counts.ready;
            total.running += counts.running;
            total.finished += counts.finished;
            total.failed += counts.failed;
            total.cancelled += counts.cancelled;
            total.total_finished += counts.total_finished;
            total.total_failed += counts.total_failed;
        }
        total
    }

    /// Worker tasks dispatched and not yet reported.
    pub fn in_flight(&self) -> usize {
        self.pool.in_flight.load(Ordering::SeqCst)
    }

    /// The tasks that have not finished, newest first (see [`Scheduler::unfinished`]).
    pub fn unfinished(&self) -> Vec<TaskId> {
        let mut unfinished: Vec<TaskId> = (0..self.shards.len())
            .flat_map(|shard| self.lock(shard).scheduler.unfinished())
            .collect();
        unfinished.sort_unstable_by(|a, b| b.cmp(a));
        unfinished
    }

    /// Checks the bookkeeping of every shard and between them; meant for tests, while no
    /// event runs (it holds every shard's lock at once, in index order).
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let all: Vec<MutexGuard<'_, Shard<P>>> =
            (0..self.shards.len()).map(|shard| self.lock(shard)).collect();
        let mut in_flight = 0;
        for (shard, locked) in all.iter().enumerate() {
            locked
                .scheduler
                .check_invariants()
                .map_err(|error| format!("shard {shard}: {error}"))?;
            in_flight += locked.scheduler.in_flight();
            for (id, _) in locked.scheduler.proxies() {
                let source = &all[self.shard_of(id)];
                let Some((state, _)) = source.scheduler.outcome_of(id) else {
                    return Err(format!("shard {shard}: a proxy of {id:?}, which is forgotten"));
                };
                let mirrored = match state {
                    TaskState::Ready | TaskState::Running => TaskState::Waiting,
                    other => other,
                };
                let proxy = locked.scheduler.state(id).expect("a proxy is held");
                if proxy != mirrored {
                    return Err(format!(
                        "shard {shard}: the proxy of {id:?} is {proxy:?}, its task {state:?}"
                    ));
                }
                let watched = source
                    .watchers
                    .get(&id)
                    .and_then(|watching| watching.iter().find(|(by, _)| *by == shard));
                if watched.map(|(_, references)| *references) != Some(1) {
                    return Err(format!("shard {shard}: its proxy of {id:?} is not watched once"));
                }
            }
            for (id, watching) in &locked.watchers {
                for (by, _) in watching {
                    if !all[*by].scheduler.is_proxy(*id) {
                        return Err(format!("{id:?} is watched by shard {by}, which has no proxy"));
                    }
                }
            }
            if locked.scheduler.has_deferred() {
                return Err(format!("shard {shard}: a cascade's references were not given back"));
            }
            if locked.scheduler.has_ready() && self.pool.has_free() {
                return Err(format!("shard {shard}: a ready task while a slot is free"));
            }
        }
        if in_flight != self.in_flight() {
            return Err(format!("{in_flight} slots held but the pool counts {}", self.in_flight()));
        }
        Ok(())
    }
}

/// The task an action is about.
fn action_id<P>(action: &Action<P>) -> TaskId {
    match action {
        Action::Dispatch { id, .. }
        | Action::Resolve { id, .. }
        | Action::Abort { id, .. }
        | Action::Withdraw { id, .. }
        | Action::Reset { id, .. }
        | Action::Discard { id, .. }
        | Action::Forget { id, .. } => *id,
    }
}
