//! The client core: the scheduler behind a lock, the jobs it schedules, and the code that
//! carries out the scheduler's actions.
//!
//! There is no scheduler task and no event channel: whoever produces an event (a submitting
//! thread, a worker reporting a result, a dropped handle) feeds it to the scheduler under a
//! short lock and then carries out the actions itself, after the lock is released. That keeps
//! a submit and a completion free of thread hops, and keeps the scheduler a plain value.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::Waker;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{TaskError, bound_error_text};
use crate::executor::{BoxFuture, Executor};
use crate::job::TaskOutcome;
pub(crate) use crate::job::{
    AsyncBody, BlockingBody, Body, InputEncoder, Job, RegisteredCall, Value, panic_message,
};
use crate::scheduler::{
    Action, CancelOutcome, Event, KeyTokens, RetryOutcome, Scheduler, SchedulerCounts, TaskId,
    TaskKey, TaskSpec, TaskState,
};
use crate::transport::{
    CompletionSink, EventClock, ReadyTask, Reports, RunReport, RunTimes, Transport,
};

#[cfg(feature = "dashboard")]
use super::events::SubmittedByName;
use super::events::{EventLog, EventRing, Stamp, UNKNOWN};

thread_local! {
    /// An empty action list with room, reused by the next event on this thread: without it,
    /// every completion and every release allocated (and freed) a list of its own.
    static SPARE_ACTIONS: std::cell::Cell<Vec<Action<Arc<Job>>>> =
        const { std::cell::Cell::new(Vec::new()) };
}

fn spare_actions() -> Vec<Action<Arc<Job>>> {
    SPARE_ACTIONS.take()
}

fn recycle_actions(mut actions: Vec<Action<Arc<Job>>>) {
    actions.clear();
    // Keep small lists only: a cascade's long list would pin its memory on this thread.
    // (`replace` rather than `set`: `LocalKey::set` goes through its lazy-initialisation
    // path on every call, measured at ~80 instructions per event.)
    if actions.capacity() <= 64 {
        drop(SPARE_ACTIONS.replace(actions));
    }
}

thread_local! {
    /// The submissions this thread holds back for one client's [`Core::submit_together`],
    /// while it runs.
    static HELD_BACK: std::cell::RefCell<Option<HeldBack>> =
        const { std::cell::RefCell::new(None) };
}

/// Submissions held back for [`Core::submit_together`]: whose (the core), the jobs in
/// submission order, each with its options, and the tasks whose last client handle was
/// dropped meanwhile, whose release the scheduler hears of after the held-back jobs (a
/// future dropped meanwhile must not release a task the scheduler has not yet heard of, or
/// one that a held-back dependent will need; and a graph's inner futures, dropped as it is
/// built, are then released in a few holds of the lock too).
///
/// **Invariant:** every task in `released` was submitted before, or is in `jobs`; every job
/// in `jobs` that reads one of them is in `jobs` too (its future existed when it was made).
struct HeldBack {
    core: Arc<Core>,
    jobs: Vec<(Arc<Job>, SubmitOptions)>,
    released: Vec<TaskId>,
}

/// Submits what this thread holds back for a [`Core::submit_together`] now, before the
/// thread blocks: a blocking wait inside [`Client::batch`](super::Client::batch) on one of
/// its own futures would otherwise wait for a task the scheduler never hears of.
pub(crate) fn submit_held_back_before_blocking() {
    let core = HELD_BACK.with_borrow(|held| held.as_ref().map(|held| Arc::clone(&held.core)));
    if let Some(core) = core {
        core.submit_held_back();
    }
}

/// How many jobs [`Core::submit_many`] submits under one hold of the scheduler lock: enough
/// to make the lock's cost small per job, few enough that a worker reporting a result waits
/// only a few microseconds.
const SUBMIT_BATCH: usize = 32;

/// Options of one submission, as given by the user.
#[derive(Debug, Clone)]
pub(crate) struct SubmitOptions {
    pub(crate) key: Option<TaskKey>,
    pub(crate) priority: i32,
    pub(crate) retries: u32,
    pub(crate) allowed_failures: u32,
    pub(crate) pinned: bool,
    /// The worker resources each run holds (registered tasks only).
    pub(crate) resources: Vec<(String, u64)>,
}

impl Default for SubmitOptions {
    fn default() -> SubmitOptions {
        SubmitOptions {
            key: None,
            priority: 0,
            retries: 0,
            allowed_failures: crate::scheduler::DEFAULT_ALLOWED_FAILURES,
            pinned: false,
            resources: Vec::new(),
        }
    }
}

/// The scheduler, under the client's one scheduler lock, with a handle to the task-event
/// ring, which has a short lock of its own (see [`Core::complete`]). Derefs to the scheduler.
pub(crate) struct Locked {
    scheduler: Scheduler<Arc<Job>>,
    /// The ring (the core's own), `None` when recording is off. Taken under the scheduler
    /// lock only when a failure or cancel without a run is recorded: the lock order is
    /// scheduler, then ring, and nothing takes the scheduler lock while it holds the ring's.
    events: Option<Arc<EventLog>>,
    /// Tasks submitted per name, counted once a dashboard asked (for its progress bars):
    /// here rather than in the ring, so that a submission takes no second lock.
    #[cfg(feature = "dashboard")]
    submitted: Option<Box<SubmittedByName>>,
}

impl Deref for Locked {
    type Target = Scheduler<Arc<Job>>;

    fn deref(&self) -> &Scheduler<Arc<Job>> {
        &self.scheduler
    }
}

impl DerefMut for Locked {
    fn deref_mut(&mut self) -> &mut Scheduler<Arc<Job>> {
        &mut self.scheduler
    }
}

/// The registered name of a job's task, for its events.
fn task_name(job: &Job) -> Option<&'static str> {
    job.call().map(|call| call.name)
}

/// Records the failures and cancels among `actions` that resolve a task without a run of
/// its own (a run's, `reported`'s, was recorded with its error), under the scheduler lock
/// the caller holds: the ring's lock is taken only if there is one (rarely). A dispatch's
/// time is stored after the lock, by [`record_queued`].
fn record_actions(
    ring: &EventLog,
    actions: &[Action<Arc<Job>>],
    stamp: &mut Stamp,
    reported: Option<TaskId>,
) {
    let mut held = None;
    for action in actions {
        if let Action::Resolve { id, payload, outcome: Err(error) } = action
            && Some(*id) != reported
        {
            held.get_or_insert_with(|| ring.lock()).failed(
                payload,
                task_name(payload),
                error,
                stamp,
            );
        }
    }
}

/// Stores the time of each dispatch among `actions` in its job (see `JobOf::queued_at`),
/// where its run's entry finds it. Called after the scheduler lock is let go and before
/// [`Core::apply`] hands the tasks to the transport: a task dispatched by a report is often
/// one the submitting thread made long before, whose job is not in this thread's cache, and
/// the scheduler lock need not wait for that miss. No earlier than the task was submitted:
/// a worker's report is stamped with when its run ended, which may precede a submission
/// that took the lock before the report.
fn record_queued(actions: &[Action<Arc<Job>>], stamp: &mut Stamp) {
    for action in actions {
        if let Action::Dispatch { payload, .. } = action {
            let submitted = payload.submitted_at.load(Ordering::Relaxed);
            let queued = match stamp.now() {
                queued if submitted != UNKNOWN => queued.max(submitted),
                queued => queued,
            };
            payload.queued_at.store(queued, Ordering::Relaxed);
        }
    }
}

fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}

/// The shared heart of a client.
pub(crate) struct Core {
    scheduler: Mutex<Locked>,
    /// The task-event ring, `None` when recording is off; its lock is never held while the
    /// scheduler lock is taken.
    events: Option<Arc<EventLog>>,
    /// The clock of the task events, whose time zero is when the client started.
    clock: Arc<EventClock>,
    /// Whether task events are recorded (fixed at construction).
    records: bool,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) executor: Arc<dyn Executor>,
    next_id: AtomicU64,
    /// The tokens of this client's generated keys, from a random seed of its own.
    key_tokens: KeyTokens,
    closed: AtomicBool,
    /// Waiters to wake whenever a task fails: `gather`, which otherwise waits only for the
    /// last of its tasks (see `future::until_gathered`), so that it still reports the first error in
    /// input order as soon as that task and the ones before it are done.
    failure_watchers: Mutex<FailureWatchers>,
    /// How many tasks were cancelled while a worker (or the executor) ran them, for
    /// [`ClientStats::cancelled_while_running`](super::ClientStats::cancelled_while_running).
    cancelled_while_running: AtomicU64,
    /// Set when the core serves a [`ClusterHandle`](super::ClusterHandle) (several clients):
    /// a shared key's task then computes once, and each submission of it gets a view of its
    /// own (see `cluster_handle::MirrorBody`). Unset, and never read on the way of a
    /// fresh-keyed task, for a client of its own.
    cluster: OnceLock<Weak<Core>>,
}

/// Wakers registered with [`Core::watch_failures`], by registration number.
#[derive(Default)]
struct FailureWatchers {
    next: u64,
    wakers: std::collections::HashMap<u64, Waker>,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("executor", &self.executor.name())
            .field("transport", &self.transport.name())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A core recording up to `events` task events (none: `0`).
    pub(crate) fn new(
        transport: Arc<dyn Transport>,
        executor: Arc<dyn Executor>,
        events: usize,
    ) -> Core {
        let key_seed = [executor.random_seed(), executor.random_seed()];
        let ring = (events > 0).then(|| Arc::new(EventLog::new(events)));
        Core {
            scheduler: Mutex::new(Locked {
                // The job carries its key: the scheduler reads it there (stored once).
                scheduler: Scheduler::with_keys_in_payload(transport.capacity(), |job| &job.key),
                events: ring.clone(),
                #[cfg(feature = "dashboard")]
                submitted: None,
            }),
            events: ring,
            clock: Arc::new(EventClock::new(&executor, events > 0)),
            records: events > 0,
            transport,
            executor,
            next_id: AtomicU64::new(1),
            key_tokens: KeyTokens::new(key_seed),
            closed: AtomicBool::new(false),
            failure_watchers: Mutex::new(FailureWatchers::default()),
            cancelled_while_running: AtomicU64::new(0),
            cluster: OnceLock::new(),
        }
    }

    /// Makes this core serve a [`ClusterHandle`](super::ClusterHandle): from now on, a
    /// shared key's submission gets a view of the shared task (see
    /// `cluster_handle::MirrorBody`).
    pub(crate) fn serve_cluster(self: &Arc<Core>) {
        let _ = self.cluster.set(Arc::downgrade(self));
    }

    /// A clock for one hold of the lock (read only if something is recorded).
    fn stamp(&self) -> Stamp<'_> {
        Stamp::new(&self.clock)
    }

    /// The time since the client started, on its executor's clock.
    pub(crate) fn elapsed(&self) -> Duration {
        self.executor.now().saturating_duration_since(self.clock.origin())
    }

    /// Whether task events are recorded.
    pub(crate) fn records_events(&self) -> bool {
        self.records
    }

    /// A clock for a submission, read before the lock is taken when events are recorded.
    fn submit_stamp(&self) -> Stamp<'_> {
        let mut stamp = self.stamp();
        if self.records {
            stamp.read();
        }
        stamp
    }

    /// Runs `read` on the task-event ring under the ring's lock (not the scheduler's);
    /// `None` when recording is off. Everything a run's report records is in the ring
    /// before the task's futures are resolved (see [`Core::complete`]).
    pub(crate) fn with_events<R>(&self, read: impl FnOnce(&mut EventRing) -> R) -> Option<R> {
        self.events.as_ref().map(|log| read(&mut log.lock()))
    }

    /// [`with_events`](Core::with_events), with the log the ring belongs to.
    pub(crate) fn with_event_log<R>(
        &self,
        read: impl FnOnce(&EventLog, &mut EventRing) -> R,
    ) -> Option<R> {
        self.events.as_ref().map(|log| read(log, &mut log.lock()))
    }

    /// Counts the tasks submitted from now on by name (see
    /// [`submitted_by_name`](Core::submitted_by_name)); a dashboard asks, for its progress
    /// bars. Tasks submitted before are not counted; nothing is counted with recording off.
    #[cfg(feature = "dashboard")]
    pub(crate) fn count_submissions(&self) {
        let mut locked = self.scheduler.lock();
        if locked.events.is_some() && locked.submitted.is_none() {
            locked.submitted = Some(Box::default());
        }
    }

    /// The tasks submitted per name since [`count_submissions`](Core::count_submissions),
    /// names in the order first submitted, at most
    /// [`SUBMITTED_NAMES`](super::events::SUBMITTED_NAMES) of them; the submissions of
    /// further names are counted in the second value.
    #[cfg(feature = "dashboard")]
    pub(crate) fn submitted_by_name(&self, into: &mut Vec<(Arc<str>, u64)>) -> u64 {
        into.clear();
        match &self.scheduler.lock().submitted {
            Some(counts) => counts.copy_into(into),
            None => 0,
        }
    }

    /// Plants `bug` in the scheduler (internal: see [`ClientBuilder::planted`](super::ClientBuilder::planted)).
    #[cfg(feature = "__planted")]
    pub(crate) fn plant(&self, bug: crate::planted::PlantedBug) {
        self.scheduler.lock().plant(bug);
    }

    /// Wakes `waker` at the next task failure. `registration` is `None` the first time and
    /// holds the registration afterwards (later calls replace the waker); end it with
    /// [`unwatch_failures`](Core::unwatch_failures).
    pub(crate) fn watch_failures(&self, registration: &mut Option<u64>, waker: &Waker) {
        let mut watchers = self.failure_watchers.lock();
        let id = *registration.get_or_insert_with(|| {
            watchers.next += 1;
            watchers.next
        });
        match watchers.wakers.get_mut(&id) {
            Some(registered) if registered.will_wake(waker) => {}
            Some(registered) => registered.clone_from(waker),
            None => {
                watchers.wakers.insert(id, waker.clone());
            }
        }
    }

    /// Ends a registration made with [`watch_failures`](Core::watch_failures).
    pub(crate) fn unwatch_failures(&self, registration: u64) {
        self.failure_watchers.lock().wakers.remove(&registration);
    }

    /// A task failed: wakes every watcher (they register again if they keep waiting).
    fn wake_failure_watchers(&self) {
        let wakers = {
            let mut watchers = self.failure_watchers.lock();
            if watchers.wakers.is_empty() {
                return;
            }
            std::mem::take(&mut watchers.wakers)
        };
        for waker in wakers.into_values() {
            waker.wake();
        }
    }

    /// On a closed client, resolves `job` with [`TaskError::ClientClosed`] naming `operation`
    /// and returns true: the job never reaches the scheduler (which has forgotten everything
    /// at close), so its future's state is `None`, as after any close. A close that races
    /// with the submission is caught by the scheduler instead, with the same error.
    fn refused_after_close(&self, job: &Arc<Job>, operation: &'static str) -> bool {
        if !self.is_closed() {
            return false;
        }
        tracing::debug!(key = %job.key, operation, "refused: the client is closed");
        job.resolve(Err(TaskError::ClientClosed { key: job.key.clone(), operation }));
        true
    }

    /// A token for a new generated key: unique within this client, unpredictable outside it.
    pub(crate) fn fresh_token(&self) -> u64 {
        self.key_tokens.next_token()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn next_id(&self) -> TaskId {
        TaskId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Submits a job; returns the job that holds the key (the given one, or an existing task
    /// with the same shared key).
    pub(crate) fn submit(
        &self,
        job: Arc<Job>,
        options: &SubmitOptions,
        shared_key: bool,
    ) -> Arc<Job> {
        if self.refused_after_close(&job, "submit") {
            return job;
        }
        if self.hold_back(&job, options, shared_key) {
            return job;
        }
        let mut actions = spare_actions();
        let mut stamp = self.submit_stamp();
        let job = self.submit_locked(
            &mut self.scheduler.lock(),
            job,
            options,
            shared_key,
            &mut actions,
            &mut stamp,
        );
        self.apply_stamped(actions, None, &mut stamp);
        job
    }

    /// Submits `jobs` (each with whether its key is shared) in order, exactly as calling
    /// [`submit`](Core::submit) for each would, but taking the scheduler lock once per
    /// [`SUBMIT_BATCH`] jobs instead of once per job: `map` over many items would otherwise
    /// contend with every worker's report for that lock. The jobs are made outside the lock.
    pub(crate) fn submit_many(
        &self,
        jobs: impl IntoIterator<Item = (Arc<Job>, bool)>,
        options: &SubmitOptions,
    ) -> Vec<Arc<Job>> {
        let mut jobs = jobs.into_iter();
        if self.is_closed() {
            return jobs
                .map(|(job, _)| {
                    self.refused_after_close(&job, "map");
                    job
                })
                .collect();
        }
        let mut submitted = Vec::with_capacity(jobs.size_hint().0);
        let mut chunk = Vec::with_capacity(SUBMIT_BATCH);
        loop {
            chunk.extend(jobs.by_ref().take(SUBMIT_BATCH));
            if chunk.is_empty() {
                return submitted;
            }
            let mut actions = spare_actions();
            // One clock reading per batch.
            let mut stamp = self.submit_stamp();
            {
                let mut locked = self.scheduler.lock();
                for (job, shared_key) in chunk.drain(..) {
                    let job = self.submit_locked(
                        &mut locked,
                        job,
                        options,
                        shared_key,
                        &mut actions,
                        &mut stamp,
                    );
                    submitted.push(job);
                }
            }
            self.apply_stamped(actions, None, &mut stamp);
        }
    }

    /// Runs `build`, holding back the fresh-keyed submissions it makes through this core on
    /// this thread, then submits them in order, under one hold of the scheduler lock per
    /// [`SUBMIT_BATCH`] jobs: a graph's submission then costs a few holds, not one per task.
    /// A submission with a shared key (which may find an existing task) first submits what
    /// is held back, then goes through at once.
    /// The last handle of a future dropped meanwhile releases its task after what is held
    /// back (see [`release`](Core::release)).
    pub(crate) fn submit_together<R>(self: &Arc<Self>, build: impl FnOnce() -> R) -> R {
        /// Submits what is held back even if `build` panics.
        struct Release<'a>(&'a Core);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                // Taken out first: a handle dropped while these are submitted (a value's
                // drop may run any code) then releases its task at once.
                if let Some(held) = HELD_BACK.take() {
                    self.0.submit_held(held.jobs, &held.released);
                }
            }
        }
        // Inside another call (of this client: it submits all at its end; of another: this
        // client's submissions go through at once, in order).
        if HELD_BACK.with_borrow(Option::is_some) {
            return build();
        }
        let core = Arc::clone(self);
        HELD_BACK.set(Some(HeldBack { core, jobs: Vec::new(), released: Vec::new() }));
        let _release = Release(self);
        build()
    }

    /// Holds `job` back if this thread runs [`submit_together`](Core::submit_together) for
    /// this core and its key is fresh; before a shared key, submits what is held back.
    fn hold_back(&self, job: &Arc<Job>, options: &SubmitOptions, shared_key: bool) -> bool {
        let held = HELD_BACK.with_borrow_mut(|held| match held {
            Some(held) if std::ptr::eq(Arc::as_ptr(&held.core), self) => {
                if shared_key {
                    return Some(false);
                }
                held.jobs.push((Arc::clone(job), options.clone()));
                Some(true)
            }
            _ => None,
        });
        match held {
            Some(true) => true,
            Some(false) => {
                self.submit_held_back();
                false
            }
            None => false,
        }
    }

    /// Submits the jobs [`hold_back`](Core::hold_back) kept, in order. Also called before
    /// anything that asks the scheduler about a task (its state, a cancel, a retry), so
    /// that a future made inside [`Client::batch`](super::Client::batch) is known to the
    /// scheduler by the time its caller uses it; one thread-local read when nothing is held.
    fn submit_held_back(&self) {
        let (jobs, released) = HELD_BACK.with_borrow_mut(|held| match held {
            Some(held) if std::ptr::eq(Arc::as_ptr(&held.core), self) => {
                (std::mem::take(&mut held.jobs), std::mem::take(&mut held.released))
            }
            _ => (Vec::new(), Vec::new()),
        });
        self.submit_held(jobs, &released);
    }

    /// Submits held-back `jobs`, then feeds the held-back releases.
    fn submit_held(&self, jobs: Vec<(Arc<Job>, SubmitOptions)>, released: &[TaskId]) {
        if jobs.is_empty() && released.is_empty() {
            return;
        }
        if self.is_closed() {
            for (job, _) in &jobs {
                self.refused_after_close(job, "submit");
            }
        } else {
            self.submit_in_batches(jobs);
        }
        // Then the releases held back, in one hold of the lock per `SUBMIT_BATCH` too.
        for ids in released.chunks(SUBMIT_BATCH) {
            self.feed_many(ids.iter().map(|&id| Event::Released { id }));
        }
    }

    /// The last client handle on task `id` was dropped: tells the scheduler, at once, or
    /// after the held-back jobs if this thread runs
    /// [`submit_together`](Core::submit_together) for this core (see [`HeldBack`]).
    pub(crate) fn release(&self, id: TaskId) {
        let held = HELD_BACK.with_borrow_mut(|held| match held {
            Some(held) if std::ptr::eq(Arc::as_ptr(&held.core), self) => {
                held.released.push(id);
                true
            }
            _ => false,
        });
        if !held {
            self.feed(Event::Released { id });
        }
    }

    /// Submits fresh-keyed `jobs` in order, one hold of the lock per [`SUBMIT_BATCH`].
    fn submit_in_batches(&self, jobs: Vec<(Arc<Job>, SubmitOptions)>) {
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            let mut actions = spare_actions();
            let mut stamp = self.submit_stamp();
            {
                let mut locked = self.scheduler.lock();
                for (job, options) in jobs.by_ref().take(SUBMIT_BATCH) {
                    // Fresh keys find no existing task: the job is its own.
                    self.submit_locked(&mut locked, job, &options, false, &mut actions, &mut stamp);
                }
            }
            self.apply_stamped(actions, None, &mut stamp);
        }
    }

    /// The part of a submission done under the scheduler lock; returns the job that holds the
    /// key.
    fn submit_locked(
        &self,
        locked: &mut Locked,
        job: Arc<Job>,
        options: &SubmitOptions,
        shared_key: bool,
        actions: &mut Vec<Action<Arc<Job>>>,
        stamp: &mut Stamp,
    ) -> Arc<Job> {
        if shared_key {
            if let Some(cluster) = self.cluster.get() {
                return self.submit_viewed(locked, job, options, actions, stamp, cluster);
            }
            if let Some(existing_job) = Self::retain_shared(locked, &job.key, actions) {
                return existing_job;
            }
        }
        Self::submit_record(locked, job, options, shared_key, actions, stamp)
    }

    /// The scheduler's part of a submission that makes a new task.
    fn submit_record(
        locked: &mut Locked,
        job: Arc<Job>,
        options: &SubmitOptions,
        shared_key: bool,
        actions: &mut Vec<Action<Arc<Job>>>,
        stamp: &mut Stamp,
    ) -> Arc<Job> {
        let Locked {
            scheduler,
            events,
            #[cfg(feature = "dashboard")]
            submitted,
        } = locked;
        // A list the scheduler had done with: a task reading one other allocates none.
        let mut deps = scheduler.spare_ids();
        job.dep_ids_into(&mut deps);
        let spec = TaskSpec {
            id: job.id,
            key: job.key.clone(),
            deps,
            priority: options.priority,
            retries: options.retries,
            allowed_failures: options.allowed_failures,
            uses_worker: !job.is_async(),
            pinned: options.pinned,
            shared_key,
            payload: Arc::clone(&job),
        };
        let from = actions.len();
        if events.is_some() {
            job.submitted_at.store(stamp.now(), Ordering::Relaxed);
        }
        scheduler.handle(Event::Submitted(spec), actions);
        if let Some(ring) = events {
            #[cfg(feature = "dashboard")]
            if let Some(counts) = submitted {
                counts.add(task_name(&job).unwrap_or_else(|| super::events::key_name(&job.key)));
            }
            record_actions(ring, &actions[from..], stamp, None);
        }
        // Per-task events are at `trace`/`debug`: the macros check the level before the key
        // is formatted, so a disabled level costs one comparison.
        tracing::trace!(key = %job.key, "task submitted");
        job
    }

    /// A shared key's submission on a core that serves a cluster: finds the task holding
    /// the key (or submits `job` as that task, reading the shared tasks behind any views
    /// among its dependencies), and returns a new view of it, which holds it with one
    /// client handle (see `cluster_handle::MirrorBody`).
    fn submit_viewed(
        &self,
        locked: &mut Locked,
        job: Arc<Job>,
        options: &SubmitOptions,
        actions: &mut Vec<Action<Arc<Job>>>,
        stamp: &mut Stamp,
        cluster: &Weak<Core>,
    ) -> Arc<Job> {
        let source = match Self::retain_shared(locked, &job.key, actions) {
            Some(existing_job) => existing_job,
            None => {
                // A shared task must not depend on one client's view: that client's cancel
                // would reach every other client's task through it.
                job.replace_deps(|dep| {
                    if let Some(view) = dep.body_as::<super::cluster_handle::MirrorBody>() {
                        *dep = Arc::clone(view.source());
                    }
                });
                Self::submit_record(locked, job, options, true, actions, stamp)
            }
        };
        self.view_locked(locked, source, options, actions, stamp, cluster)
    }

    /// A new view of `source` (whose client handle it takes over), submitted.
    fn view_locked(
        &self,
        locked: &mut Locked,
        source: Arc<Job>,
        options: &SubmitOptions,
        actions: &mut Vec<Action<Arc<Job>>>,
        stamp: &mut Stamp,
        cluster: &Weak<Core>,
    ) -> Arc<Job> {
        let view = Job::new(
            self.next_id(),
            source.key.clone(),
            vec![Arc::clone(&source)],
            super::cluster_handle::MirrorBody::new(source, Weak::clone(cluster)),
            None,
        );
        let options = SubmitOptions {
            key: None,
            priority: options.priority,
            retries: 0,
            allowed_failures: options.allowed_failures,
            pinned: options.pinned,
            resources: Vec::new(),
        };
        Self::submit_record(locked, view, &options, false, actions, stamp)
    }

    /// Gives up the hold a view (`job`, if it is one) has on its shared task, under the
    /// lock; `cancel` also cancels the shared task when no other view holds it and it is
    /// unfinished (nobody else waits for its run). The hold is given up once.
    fn release_view_locked(
        scheduler: &mut Scheduler<Arc<Job>>,
        job: &Arc<Job>,
        cancel: bool,
        actions: &mut Vec<Action<Arc<Job>>>,
    ) {
        let Some(view) = job.body_as::<super::cluster_handle::MirrorBody>() else { return };
        let Some(source) = view.take_hold() else { return };
        if source.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            let unfinished = scheduler.state(source.id).is_some_and(|state| !state.is_terminal());
            if cancel && unfinished {
                let reason = "every client that held it cancelled it".to_owned();
                scheduler.handle(Event::CancelRequested { id: source.id, reason }, actions);
            }
            scheduler.handle(Event::Released { id: source.id }, actions);
        }
    }

    /// Whether `job` is a view of a shared task (only on a core serving a cluster; one
    /// atomic load on any other).
    fn is_view(&self, job: &Job) -> bool {
        self.cluster.get().is_some() && job.body_as::<super::cluster_handle::MirrorBody>().is_some()
    }

    /// Gives up the hold a view has on its shared task, if it still has it.
    fn release_view(&self, job: &Arc<Job>) {
        let mut actions = spare_actions();
        Self::release_view_locked(&mut self.scheduler.lock(), job, false, &mut actions);
        self.apply(actions, None);
    }

    /// A closing cluster client gives up what `job` holds: an unfinished task is cancelled
    /// (a view, without the shared task another client holds), a finished view gives up its
    /// hold on the shared task (it keeps its own copy of the value).
    pub(crate) fn leave(&self, job: &Arc<Job>) {
        self.submit_held_back();
        if self.is_closed() {
            return;
        }
        let mut actions = spare_actions();
        {
            let mut locked = self.scheduler.lock();
            let unfinished = locked.state(job.id).is_some_and(|state| !state.is_terminal());
            if unfinished {
                let reason = "its client was closed".to_owned();
                locked.handle(Event::CancelRequested { id: job.id, reason }, &mut actions);
            }
            Self::release_view_locked(&mut locked, job, unfinished, &mut actions);
        }
        self.apply(actions, None);
    }

    /// The job that holds the shared `key`, with one more client handle, if there is one.
    fn retain_shared(
        scheduler: &mut Scheduler<Arc<Job>>,
        key: &TaskKey,
        actions: &mut Vec<Action<Arc<Job>>>,
    ) -> Option<Arc<Job>> {
        let existing = scheduler.lookup(key)?;
        // A cancelled task gives its key up (as in Dask, where a cancel forgets the key):
        // a new submission computes anew, even while a handle of the cancelled one lives
        // (`restart` tells the user to submit again).
        if scheduler.state(existing) == Some(TaskState::Cancelled) {
            return None;
        }
        let existing_job = scheduler.payload(existing).cloned()?;
        // The scheduler hears only of a change from no handles to some (see
        // `JobOf::handles`); the count changes under its lock here, so a last handle dropped
        // at the same time is told apart by its own count.
        if existing_job.handles.fetch_add(1, Ordering::AcqRel) == 0 {
            scheduler.handle(Event::Retained { id: existing }, actions);
        }
        Some(existing_job)
    }

    /// Registers a job whose value already exists (`scatter`); with a `shared_key`, an
    /// existing task holding that key is returned instead (its value, not this one).
    pub(crate) fn insert_value(&self, job: Arc<Job>, value: Value, shared_key: bool) -> Arc<Job> {
        if self.refused_after_close(&job, "scatter") {
            return job;
        }
        let mut actions = spare_actions();
        let mut stamp = self.stamp();
        let job = {
            // One hold of the lock: two scatters of one shared key find one task.
            let mut scheduler = self.scheduler.lock();
            let source = match shared_key
                .then(|| Self::retain_shared(&mut scheduler, &job.key, &mut actions))
                .flatten()
            {
                Some(existing_job) => existing_job,
                None => {
                    job.resolve(Ok(value));
                    let spec = TaskSpec {
                        id: job.id,
                        key: job.key.clone(),
                        deps: Vec::new(),
                        priority: 0,
                        retries: 0,
                        allowed_failures: 0,
                        uses_worker: false,
                        pinned: false,
                        shared_key,
                        payload: Arc::clone(&job),
                    };
                    scheduler.handle(Event::Scattered(spec), &mut actions);
                    job
                }
            };
            match self.cluster.get() {
                Some(cluster) if shared_key => {
                    let options = SubmitOptions::default();
                    self.view_locked(
                        &mut scheduler,
                        source,
                        &options,
                        &mut actions,
                        &mut stamp,
                        cluster,
                    )
                }
                _ => source,
            }
        };
        self.apply_stamped(actions, None, &mut stamp);
        job
    }

    /// Feeds one event and carries out what the scheduler answers.
    pub(crate) fn feed(&self, event: Event<Arc<Job>>) {
        let mut actions = spare_actions();
        let mut stamp = self.stamp();
        {
            let mut locked = self.scheduler.lock();
            let Locked { scheduler, events, .. } = &mut *locked;
            scheduler.handle(event, &mut actions);
            if let Some(ring) = events {
                record_actions(ring, &actions, &mut stamp, None);
            }
        }
        self.apply_stamped(actions, None, &mut stamp);
    }

    /// Feeds `events` in order under one hold of the lock, and carries out what the
    /// scheduler answers.
    fn feed_many(&self, events: impl Iterator<Item = Event<Arc<Job>>>) {
        let mut actions = spare_actions();
        let mut stamp = self.stamp();
        {
            let mut locked = self.scheduler.lock();
            let Locked { scheduler, events: ring, .. } = &mut *locked;
            for event in events {
                scheduler.handle(event, &mut actions);
            }
            if let Some(ring) = ring {
                record_actions(ring, &actions, &mut stamp, None);
            }
        }
        self.apply_stamped(actions, None, &mut stamp);
    }

    /// A worker reports how its run of `job` (its `attempt`th) ended, and when and where it
    /// ran if the transport says (`run`).
    pub(crate) fn complete(
        &self,
        job: &Arc<Job>,
        attempt: u32,
        outcome: TaskOutcome,
        run: Option<RunReport>,
    ) {
        let failed = |error| (Event::Failed { id: job.id, error }, None);
        let ran = !matches!(outcome, TaskOutcome::NotRun);
        let lost = matches!(outcome, TaskOutcome::Lost);
        let (event, value) = match outcome {
            TaskOutcome::Value(value) => {
                // Before the report: from the moment the scheduler hears of it, a dependent
                // may be dispatched and read this value, before `apply` below publishes it.
                job.set_produced(&value.0);
                (Event::Finished { id: job.id }, Some((job.id, value.0)))
            }
            // Error text is bounded here, where every transport's outcome arrives.
            TaskOutcome::Failed(failure) => failed(TaskError::Failed {
                key: job.key.clone(),
                message: bound_error_text(failure.into_message()),
            }),
            TaskOutcome::Panicked(message) => failed(TaskError::Panicked {
                key: job.key.clone(),
                message: bound_error_text(message),
            }),
            // A resolved (cancelled) task only gives its slot back; the scheduler ignores the
            // error. One that was not resolved fails with it.
            TaskOutcome::NotRun => failed(TaskError::Failed {
                key: job.key.clone(),
                message: format!(
                    "the transport ({}) reported task {} as not run although it was not \
                     cancelled; submit it again, and report this to the transport's authors",
                    self.transport.name(),
                    job.key
                ),
            }),
            TaskOutcome::Lost => {
                tracing::warn!(key = %job.key, "the worker running a task was lost");
                (Event::Lost { id: job.id }, None)
            }
        };
        // The run's times on the client's timeline, worked out before the lock (the lock is
        // held only to store them). A run starts no earlier than it was queued (a busy
        // in-process worker reports the previous run's end as the start; a remote worker's
        // clock may be skewed), and ends no earlier than it started. The queue time was
        // stored before the task was handed to the transport, so it is read here safely.
        let times = run.filter(|_| self.records).map(|run| {
            let stamp = self.stamp();
            let queued = job.queued_at.load(Ordering::Relaxed);
            let (started, finished) = match run.times {
                RunTimes::Instants { started, finished } => {
                    (stamp.nanos(started), stamp.nanos(finished))
                }
                RunTimes::Nanos { started, finished } => (started, finished),
            };
            let started = match started {
                started if queued != UNKNOWN => started.max(queued),
                started => started,
            };
            (started, finished.max(started), run.worker)
        });
        // The run's entry is recorded before the scheduler hears of the report, into the
        // reporting thread's staging area of the event log (its own short lock; see
        // `EventLog`): the scheduler lock's hold per completion is the same with recording on
        // as off (but for a failure's dependents, recorded under it), and every reader, which
        // moves the staged entries into the ring first, finds the entry once the task's
        // futures are resolved (after the scheduler's hold below). The run's end is the time
        // of everything this report does.
        let mut live = Vec::new();
        let mut stamp = match times {
            Some((_, finished, _)) => Stamp::at(&self.clock, finished),
            None => self.stamp(),
        };
        if let Some(ring) = self.events.as_ref().filter(|_| ran) {
            let error = match &event {
                Event::Failed { error, .. } => Some(error.clone()),
                _ => None,
            };
            let (worker, started) = match &times {
                Some((started, _, worker)) => (*worker, Some(*started)),
                None => (None, None),
            };
            let name = task_name(job);
            live = ring.ran(job, name, worker, started, attempt, error, lost, &mut stamp);
        }
        let mut actions = spare_actions();
        {
            let mut locked = self.scheduler.lock();
            let Locked { scheduler, events, .. } = &mut *locked;
            // Not run because the transport took it back, as the scheduler asked.
            let event = if !ran && scheduler.is_withdrawing(job.id) {
                Event::Withdrawn { id: job.id }
            } else {
                event
            };
            scheduler.handle(event, &mut actions);
            if let Some(ring) = events {
                record_actions(ring, &actions, &mut stamp, ran.then_some(job.id));
            }
        }
        self.apply_stamped(actions, value, &mut stamp);
        wake_all(live);
    }

    /// Runs a failed job again, with the failed jobs it reads (see `Event::RetryRequested`),
    /// and says what was done.
    pub(crate) fn retry(&self, job: &Arc<Job>) -> RetryOutcome {
        self.submit_held_back();
        if self.is_closed() {
            return RetryOutcome::ClientClosed;
        }
        let mut actions = spare_actions();
        let mut stamp = self.stamp();
        let outcome = {
            let mut locked = self.scheduler.lock();
            let Locked { scheduler, events, .. } = &mut *locked;
            let outcome = scheduler.retry_outcome(job.id);
            scheduler.handle(Event::RetryRequested { id: job.id }, &mut actions);
            if let Some(ring) = events {
                record_actions(ring, &actions, &mut stamp, None);
            }
            outcome
        };
        self.apply_stamped(actions, None, &mut stamp);
        outcome
    }

    /// Cancels a job and its dependents (see `Event::CancelRequested`), and says what was
    /// done.
    pub(crate) fn cancel(&self, job: &Arc<Job>, reason: &str) -> CancelOutcome {
        self.submit_held_back();
        if self.is_closed() {
            return CancelOutcome::ClientClosed;
        }
        if job.is_detached() {
            // An actor call: not the scheduler's; its runner skips it if it has not started.
            let outcome = match job.peek_outcome() {
                None => CancelOutcome::Cancelled,
                Some(Err(error)) if error.is_cancelled() => return CancelOutcome::AlreadyCancelled,
                Some(_) => CancelOutcome::CancelledAfterFinishing,
            };
            // Dropped after the new outcome is published: a value's drop may run any code.
            let _previous = job.take_outcome();
            let error = TaskError::Cancelled { key: job.key.clone(), reason: reason.to_owned() };
            job.resolve(Err(error));
            return outcome;
        }
        let mut actions = spare_actions();
        let mut stamp = self.stamp();
        let outcome = {
            let mut locked = self.scheduler.lock();
            let Locked { scheduler, events, .. } = &mut *locked;
            let outcome = scheduler.cancel_outcome(job.id);
            scheduler.handle(
                Event::CancelRequested { id: job.id, reason: reason.to_owned() },
                &mut actions,
            );
            // A view of a shared task (several clients): its client's cancel leaves the
            // task to the other clients that hold it.
            Self::release_view_locked(scheduler, job, true, &mut actions);
            if let Some(ring) = events {
                record_actions(ring, &actions, &mut stamp, None);
            }
            outcome
        };
        self.apply_stamped(actions, None, &mut stamp);
        outcome
    }

    /// Cancels every unfinished task with `reason` (`Client::restart`), newest first, so
    /// that each gets its own error rather than a cancelled dependency's; returns how many.
    pub(crate) fn cancel_unfinished(&self, reason: &str) -> usize {
        self.submit_held_back();
        if self.is_closed() {
            return 0;
        }
        let mut actions = spare_actions();
        let mut stamp = self.stamp();
        let cancelled = {
            let mut locked = self.scheduler.lock();
            let Locked { scheduler, events, .. } = &mut *locked;
            let unfinished = scheduler.unfinished();
            for &id in &unfinished {
                if scheduler.cancel_outcome(id) == CancelOutcome::Cancelled {
                    let reason = reason.to_owned();
                    scheduler.handle(Event::CancelRequested { id, reason }, &mut actions);
                }
            }
            if let Some(ring) = events {
                record_actions(ring, &actions, &mut stamp, None);
            }
            unfinished.len()
        };
        self.apply_stamped(actions, None, &mut stamp);
        cancelled
    }

    /// The blocking body of running task `id` is about to wait for other tasks: if the transport
    /// can run one more task meanwhile, the job's slot goes to the next ready task and this
    /// returns true; then [`rejoin`](Core::rejoin) must follow.
    pub(crate) fn secede(&self, id: TaskId) -> bool {
        if self.is_closed() || !self.transport.secede() {
            return false;
        }
        self.feed(Event::Seceded { id });
        true
    }

    /// The body of task `id` that [`secede`](Core::secede)d stopped waiting: it takes a slot again.
    pub(crate) fn rejoin(&self, id: TaskId) {
        self.feed(Event::Rejoined { id });
        self.transport.rejoin();
    }

    /// The transport gave the task up with `error` (not one the task raised: no retry).
    pub(crate) fn given_up_with(&self, job: &Arc<Job>, error: TaskError) {
        self.feed(Event::Failed { id: job.id, error });
    }

    /// [`apply`](Core::apply), after storing in each dispatched job its queue time,
    /// `stamp`'s, when task events are recorded (see [`record_queued`]).
    #[inline(always)]
    fn apply_stamped(
        &self,
        actions: Vec<Action<Arc<Job>>>,
        value: Option<(TaskId, Value)>,
        stamp: &mut Stamp,
    ) {
        if self.events.is_some() {
            record_queued(&actions, stamp);
        }
        self.apply(actions, value);
    }

    fn apply(&self, mut actions: Vec<Action<Arc<Job>>>, mut value: Option<(TaskId, Value)>) {
        let mut failed = false;
        for action in actions.drain(..) {
            match action {
                Action::Dispatch { payload, attempt, .. } => {
                    if attempt == 1 {
                        tracing::trace!(key = %payload.key, "task dispatched");
                    } else {
                        tracing::debug!(key = %payload.key, attempt, "task dispatched again");
                    }
                    self.transport.dispatch(ReadyTask::new(payload, attempt));
                }
                Action::Resolve { id, payload, outcome } => match outcome {
                    Ok(()) => match value.take() {
                        Some((value_id, value)) if value_id == id => {
                            tracing::debug!(key = %payload.key, "task finished");
                            payload.resolve(Ok(value));
                        }
                        _ => {
                            let error = TaskError::Failed {
                                key: payload.key.clone(),
                                message: "internal error: finished without a value".into(),
                            };
                            trace_failure(&error);
                            payload.resolve(Err(error));
                            failed = true;
                        }
                    },
                    Err(error) => {
                        trace_failure(&error);
                        payload.resolve(Err(error));
                        failed = true;
                    }
                },
                Action::Abort { id, payload } => {
                    tracing::debug!(key = %payload.key, "running task aborted");
                    self.cancelled_while_running.fetch_add(1, Ordering::Relaxed);
                    payload.abort();
                    self.transport.abort(id);
                }
                Action::Withdraw { id, payload } => {
                    tracing::trace!(key = %payload.key, "released while dispatched: withdrawn");
                    self.transport.withdraw(id);
                }
                Action::Reset { payload, .. } => {
                    tracing::debug!(key = %payload.key, "task reset to run again");
                    drop(payload.take_outcome());
                }
                Action::Discard { payload, .. } => {
                    tracing::debug!(key = %payload.key, "task outcome discarded");
                    drop(payload.take_outcome());
                    // A view's key is its shared task's: the transport's value is not its own.
                    if !self.is_view(&payload) {
                        self.transport.release(&payload.key);
                    }
                }
                Action::Forget { payload, .. } => {
                    tracing::trace!(key = %payload.key, "task released");
                    if self.is_view(&payload) {
                        // Its client let it go: so does it its shared task, now rather than
                        // whenever the last copy of the job is dropped.
                        self.release_view(&payload);
                    } else {
                        self.transport.release(&payload.key);
                    }
                }
            }
        }
        recycle_actions(actions);
        if failed {
            self.wake_failure_watchers();
        }
    }

    /// Task counts by state.
    pub(crate) fn counts(&self) -> SchedulerCounts {
        self.submit_held_back();
        self.scheduler.lock().counts()
    }

    /// How many tasks were cancelled while they ran, since the client started.
    pub(crate) fn cancelled_while_running(&self) -> u64 {
        self.cancelled_while_running.load(Ordering::Relaxed)
    }

    /// The scheduler's state of one task.
    pub(crate) fn state(&self, id: TaskId) -> Option<TaskState> {
        self.submit_held_back();
        self.scheduler.lock().state(id)
    }

    /// Stops accepting work, cancels what is unfinished and tells the transport to stop.
    /// Returns the transport's "stopped" future the first time, `None` after.
    pub(crate) fn shut_down(&self) -> Option<BoxFuture<()>> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return None;
        }
        self.feed(Event::Closed);
        // The live task streams end: wake them to see it.
        wake_all(self.with_events(EventRing::take_live).unwrap_or_default());
        Some(self.transport.close())
    }
}

/// Reports a task's final error at the level a user expects: its own failure (an error, a
/// panic, lost workers) once at `warn`; a cancellation, or a failure inherited from a
/// dependency (whose own failure was reported already), at `debug`.
fn trace_failure(error: &TaskError) {
    match error {
        TaskError::Cancelled { key, reason } => {
            tracing::debug!(key = %key, reason = %reason, "task cancelled");
        }
        TaskError::DependencyFailed { key, .. } => {
            tracing::debug!(key = %key, %error, "task not run: a dependency failed");
        }
        _ => tracing::warn!(key = %error.key(), %error, "task failed"),
    }
}

/// The sink the transport reports to; see [`CompletionSink`].
pub(crate) fn sink_for(core: &Arc<Core>) -> CompletionSink {
    let clock = core.records_events().then(|| Arc::clone(&core.clock));
    let core: Arc<dyn Reports> = Arc::clone(core) as Arc<dyn Reports>;
    CompletionSink::new(Arc::downgrade(&core), clock)
}

/// What the transport's [`CompletionSink`] reports to.
impl Reports for Core {
    fn complete(&self, job: &Arc<Job>, attempt: u32, outcome: TaskOutcome, run: Option<RunReport>) {
        Core::complete(self, job, attempt, outcome, run);
    }

    fn given_up_with(&self, job: &Arc<Job>, error: TaskError) {
        Core::given_up_with(self, job, error);
    }
}
