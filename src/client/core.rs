//! The client core: the scheduler behind a lock, the jobs it schedules, and the code that
//! carries out the scheduler's actions.
//!
//! There is no scheduler task and no event channel: whoever produces an event (a submitting
//! thread, a worker reporting a result, a dropped handle) feeds it to the scheduler under a
//! short lock and then carries out the actions itself, after the lock is released. That keeps
//! a submit and a completion free of thread hops, and keeps the scheduler a plain value.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use futures::future::AbortHandle;
use parking_lot::Mutex;

use crate::error::{TaskError, bound_error_text};
use crate::executor::{BoxFuture, Executor};
use crate::scheduler::{
    Action, CancelOutcome, Event, KeyTokens, RetryOutcome, Scheduler, SchedulerCounts, TaskId,
    TaskKey, TaskSpec, TaskState,
};
use crate::transport::{CompletionSink, ReadyTask, Transport};

/// A task's value, shared by every handle and every dependent (no copy per reader).
pub(crate) type Value = Arc<dyn Any + Send + Sync>;

/// How a body ended, before the scheduler decides what that means for the task.
pub(crate) enum BodyOutcome {
    Value(Value),
    Failed(String),
    Panicked(String),
}

/// What a task runs: a blocking function of its dependencies' values, or an async one.
///
/// A job stores its body inline (see [`JobOf`]), so the body is a trait rather than a boxed
/// closure: one allocation per task fewer.
pub(crate) trait Body: Send + Sync + 'static {
    /// Whether the body is async (run on the executor; takes no worker).
    fn is_async(&self) -> bool;
    /// Runs a blocking body on the current thread.
    fn call_blocking(&self, inputs: &[Value]) -> Result<Value, String>;
    /// Starts an async body.
    fn call_async(&self, inputs: Vec<Value>) -> BoxFuture<Result<Value, String>>;
    /// The task was cancelled while it ran or waited for a worker: tell the body, if it
    /// listens (bodies submitted `_with_context` set their
    /// [`TaskContext`](super::context::TaskContext)'s flag). Called only on a cancel, so
    /// plain bodies pay nothing for it.
    fn cancel(&self) {}
}

/// A blocking body: reads its dependencies' values and returns its own.
pub(crate) struct BlockingBody<F>(pub(crate) F);

impl<F> Body for BlockingBody<F>
where
    F: Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
{
    fn is_async(&self) -> bool {
        false
    }

    fn call_blocking(&self, inputs: &[Value]) -> Result<Value, String> {
        (self.0)(inputs)
    }

    fn call_async(&self, _: Vec<Value>) -> BoxFuture<Result<Value, String>> {
        Box::pin(async { Err("internal error: a blocking task was run as an async one".into()) })
    }
}

/// An async body: the same, as a future run on the executor.
pub(crate) struct AsyncBody<F>(pub(crate) F);

impl<F> Body for AsyncBody<F>
where
    F: Fn(Vec<Value>) -> BoxFuture<Result<Value, String>> + Send + Sync + 'static,
{
    fn is_async(&self) -> bool {
        true
    }

    fn call_blocking(&self, _: &[Value]) -> Result<Value, String> {
        Err("internal error: an async task was run as a blocking one".into())
    }

    fn call_async(&self, inputs: Vec<Value>) -> BoxFuture<Result<Value, String>> {
        (self.0)(inputs)
    }
}

/// Encodes a registered task's input for the wire.
pub(crate) type InputEncoder = Box<dyn Fn() -> Result<Vec<u8>, String> + Send + Sync>;

/// A call of a registered [`Task`](crate::Task): what a transport whose workers live in other
/// processes sends instead of the body (a closure cannot cross machines).
pub(crate) struct RegisteredCall {
    /// The task's [`NAME`](crate::Task::NAME).
    pub(crate) name: &'static str,
    /// Encodes the input for the wire (`None` when the input is composed from the
    /// dependencies' outputs); only transports that leave the process call it, so the
    /// in-process transport never serializes a task without dependencies.
    pub(crate) encode_input: Option<InputEncoder>,
    /// Turns the output's wire bytes into the typed value (monomorphized for the task).
    pub(crate) decode_output: fn(&[u8]) -> Result<Value, String>,
    /// Turns the typed value into wire bytes (for registered tasks that depend on this one).
    pub(crate) encode_output: fn(&Value) -> Result<Vec<u8>, String>,
    /// How many deliveries may die with their worker (`TaskBuilder::allowed_failures`), for
    /// transports that redeliver by themselves.
    pub(crate) allowed_failures: u32,
}

/// One task: its identity, what it runs, what it reads, and where its outcome is published.
///
/// Generic over the body so that the closure is stored inline, in the job's own allocation;
/// everything outside this module sees the type-erased [`Job`].
pub(crate) struct JobOf<B: ?Sized> {
    pub(crate) id: TaskId,
    pub(crate) key: TaskKey,
    /// The jobs whose values this one reads, in argument order. Emptied once this job has
    /// its value; dropped iteratively (see `Drop`), so that long chains never recurse.
    deps: Mutex<Vec<Arc<Job>>>,
    /// Set for registered tasks: what remote workers run instead of `body`. Boxed: most
    /// tasks are closures, and a job's size is the client's memory per task.
    pub(crate) call: Option<Box<RegisteredCall>>,
    /// The published outcome, the wakers of everyone waiting for it, and the abort handle.
    /// One lock for all three: a job lives as long as its value is held, so its size is the
    /// client's memory per task (see `benches/overhead.rs`).
    cell: Mutex<Cell>,
    /// How many client handles ([`Handle`](super::future::Handle)s, one per `TaskFuture`)
    /// refer to the task. The scheduler hears only of the changes from none to some
    /// (`Submitted`, `Retained`) and from some to none (`Released`), so cloning and dropping
    /// a handle that is not the last one never takes the scheduler lock.
    ///
    /// **Invariant:** the scheduler's `client_refs` of the task equals the number of those
    /// changes up (under the scheduler lock) minus the number of changes down it has been
    /// told of; every change down is followed by one `Released` event.
    pub(crate) handles: AtomicUsize,
    /// What the task runs. Last: it is the unsized part of a [`Job`].
    body: B,
}

/// A job whose body type is erased: what the scheduler, the transports and the futures hold.
pub(crate) type Job = JobOf<dyn Body>;

#[derive(Default)]
struct Cell {
    /// Boxed error: most tasks succeed, and the box keeps every job 32 bytes smaller.
    outcome: Option<Result<Value, Box<TaskError>>>,
    wakers: Vec<Waker>,
    /// Stops a running async body when the task is cancelled.
    abort: Option<AbortHandle>,
    /// The value a body returned, stored before the worker reports it and kept until it is
    /// published in `outcome`. Dependents read it from here when they run in that gap: the
    /// scheduler may dispatch a dependent (on another thread, as soon as this task's report
    /// is under its lock) before the reporting thread has published the value.
    produced: Option<Value>,
}

impl<B: ?Sized> Drop for JobOf<B> {
    fn drop(&mut self) {
        // Dropping the last `Arc` of a job would drop its inputs, and theirs, recursively:
        // a chain of 100,000 failed jobs would overflow the stack. Unlink iteratively: a
        // dependency held only here gives up its own inputs before it is dropped. (One held
        // elsewhere too is dropped by its last holder, which unlinks in turn.)
        let mut unlinked = std::mem::take(self.deps.get_mut());
        while let Some(mut dep) = unlinked.pop() {
            if let Some(dep) = Arc::get_mut(&mut dep) {
                unlinked.append(dep.deps.get_mut());
            }
        }
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job").field("id", &self.id).field("key", &self.key).finish_non_exhaustive()
    }
}

impl Job {
    /// A job with one client handle (the submission's), carrying a registered call for
    /// transports that leave the process when `call` is set.
    pub(crate) fn new(
        id: TaskId,
        key: TaskKey,
        deps: Vec<Arc<Job>>,
        body: impl Body,
        call: Option<RegisteredCall>,
    ) -> Arc<Job> {
        Arc::new(JobOf {
            id,
            key,
            deps: Mutex::new(deps),
            call: call.map(Box::new),
            cell: Mutex::new(Cell::default()),
            handles: AtomicUsize::new(1),
            body,
        })
    }

    /// The keys of the jobs this one reads, in argument order (empty once it has its value).
    pub(crate) fn dep_keys(&self) -> Vec<TaskKey> {
        self.deps.lock().iter().map(|dep| dep.key.clone()).collect()
    }

    pub(crate) fn is_async(&self) -> bool {
        self.body.is_async()
    }

    fn dep_values(&self) -> Result<Vec<Value>, String> {
        self.deps
            .lock()
            .iter()
            .map(|dep| {
                let cell = dep.cell.lock();
                match (&cell.outcome, &cell.produced) {
                    (Some(Ok(value)), _) | (None, Some(value)) => Ok(Arc::clone(value)),
                    _ => Err(format!(
                        "internal error: dependency {} has no value; please report this",
                        dep.key
                    )),
                }
            })
            .collect()
    }

    /// Runs a blocking body on the current thread; a panic becomes `Panicked`.
    pub(crate) fn run_blocking(&self) -> BodyOutcome {
        let inputs = match self.dep_values() {
            Ok(inputs) => inputs,
            Err(message) => return BodyOutcome::Failed(message),
        };
        match catch_unwind(AssertUnwindSafe(|| self.body.call_blocking(&inputs))) {
            Ok(Ok(value)) => BodyOutcome::Value(value),
            Ok(Err(message)) => BodyOutcome::Failed(message),
            Err(panic) => BodyOutcome::Panicked(panic_message(&*panic)),
        }
    }

    /// Runs an async body; a panic while polling becomes `Panicked`.
    pub(crate) fn run_async(self: &Arc<Self>) -> BoxFuture<BodyOutcome> {
        use futures::FutureExt;
        let inputs = match self.dep_values() {
            Ok(inputs) => inputs,
            Err(message) => return Box::pin(async move { BodyOutcome::Failed(message) }),
        };
        let future = match catch_unwind(AssertUnwindSafe(|| self.body.call_async(inputs))) {
            Ok(future) => future,
            Err(panic) => {
                let message = panic_message(&*panic);
                return Box::pin(async move { BodyOutcome::Panicked(message) });
            }
        };
        Box::pin(AssertUnwindSafe(future).catch_unwind().map(|result| match result {
            Ok(Ok(value)) => BodyOutcome::Value(value),
            Ok(Err(message)) => BodyOutcome::Failed(message),
            Err(panic) => BodyOutcome::Panicked(panic_message(&*panic)),
        }))
    }

    pub(crate) fn set_abort_handle(&self, handle: AbortHandle) {
        self.cell.lock().abort = Some(handle);
    }

    fn abort(&self) {
        // A blocking body cannot be stopped from the outside; one that listens stops itself.
        self.body.cancel();
        let handle = self.cell.lock().abort.take();
        if let Some(handle) = handle {
            handle.abort();
        }
    }

    /// Publishes the outcome and wakes every waiter. A second outcome is ignored.
    fn resolve(&self, outcome: Result<Value, TaskError>) {
        let succeeded = outcome.is_ok();
        let wakers = {
            let mut cell = self.cell.lock();
            if cell.outcome.is_some() {
                return;
            }
            cell.produced = None;
            cell.outcome = Some(outcome.map_err(Box::new));
            std::mem::take(&mut cell.wakers)
        };
        // A finished job never reads its inputs again: let them go now. A failed one keeps
        // them for `TaskFuture::retry`.
        let deps = if succeeded { std::mem::take(&mut *self.deps.lock()) } else { Vec::new() };
        for waker in wakers {
            waker.wake();
        }
        drop(deps);
    }

    /// The outcome if published; otherwise registers `cx`'s waker.
    pub(crate) fn poll_outcome(&self, cx: &mut Context<'_>) -> Poll<Result<Value, TaskError>> {
        let mut cell = self.cell.lock();
        match &cell.outcome {
            Some(outcome) => Poll::Ready(unboxed(outcome)),
            None => {
                if !cell.wakers.iter().any(|waker| waker.will_wake(cx.waker())) {
                    cell.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// `None` while the task has no outcome; then whether the outcome is a value. Cheaper
    /// than [`peek_outcome`](Job::peek_outcome): nothing is cloned.
    pub(crate) fn status(&self) -> Option<bool> {
        self.cell.lock().outcome.as_ref().map(Result::is_ok)
    }

    /// Forgets `waker`, registered by [`poll_outcome`](Job::poll_outcome), for a waiter that
    /// stops waiting before the outcome: without it, a loop of timed-out waits would pile up
    /// one waker per wait until the task ends.
    pub(crate) fn unregister_waker(&self, waker: &Waker) {
        let mut removed = Vec::new();
        self.cell.lock().wakers.retain(|registered| {
            let keep = !registered.will_wake(waker);
            if !keep {
                // Dropped after the lock: a waker's drop may run arbitrary code.
                removed.push(registered.clone());
            }
            keep
        });
        drop(removed);
    }

    /// How many wakers wait for the outcome.
    #[cfg(test)]
    pub(crate) fn n_wakers(&self) -> usize {
        self.cell.lock().wakers.len()
    }

    /// Takes the published outcome (and a value produced but not yet published) back, so
    /// that another can be published. Returned so that the value is dropped after the lock:
    /// a value's drop may run arbitrary code.
    fn take_outcome(&self) -> (Option<Result<Value, Box<TaskError>>>, Option<Value>) {
        let mut cell = self.cell.lock();
        (cell.outcome.take(), cell.produced.take())
    }

    /// Moves the published value out if it is a `T` that nothing else holds (no reader has a
    /// copy of its `Arc`); leaves the outcome as it is otherwise. For a job nobody can reach
    /// any more (see `TaskFuture::try_unwrap`): it has no outcome afterwards.
    pub(crate) fn take_unshared_value<T: Any + Send + Sync>(&self) -> Option<T> {
        let mut cell = self.cell.lock();
        let value = match cell.outcome.take() {
            Some(Ok(value)) if value.is::<T>() && Arc::strong_count(&value) == 1 => value,
            other => {
                cell.outcome = other;
                return None;
            }
        };
        drop(cell);
        // Cannot fail: checked under the lock, and nobody else had the `Arc` to clone it.
        value.downcast::<T>().ok().and_then(|typed| Arc::try_unwrap(typed).ok())
    }

    /// The outcome if published, without waiting.
    pub(crate) fn peek_outcome(&self) -> Option<Result<Value, TaskError>> {
        self.cell.lock().outcome.as_ref().map(unboxed)
    }
}

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

/// How many jobs [`Core::submit_many`] submits under one hold of the scheduler lock: enough
/// to make the lock's cost small per job, few enough that a worker reporting a result waits
/// only a few microseconds.
const SUBMIT_BATCH: usize = 32;

/// A copy of a published outcome, as the futures return it.
fn unboxed(outcome: &Result<Value, Box<TaskError>>) -> Result<Value, TaskError> {
    match outcome {
        Ok(value) => Ok(Arc::clone(value)),
        Err(error) => Err(TaskError::clone(error)),
    }
}

/// Turns a panic payload into text.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

/// Options of one submission, as given by the user.
#[derive(Debug, Clone)]
pub(crate) struct SubmitOptions {
    pub(crate) key: Option<TaskKey>,
    pub(crate) priority: i32,
    pub(crate) retries: u32,
    pub(crate) allowed_failures: u32,
    pub(crate) pinned: bool,
}

impl Default for SubmitOptions {
    fn default() -> SubmitOptions {
        SubmitOptions {
            key: None,
            priority: 0,
            retries: 0,
            allowed_failures: crate::scheduler::DEFAULT_ALLOWED_FAILURES,
            pinned: false,
        }
    }
}

/// The shared heart of a client.
pub(crate) struct Core {
    scheduler: Mutex<Scheduler<Arc<Job>>>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) executor: Arc<dyn Executor>,
    next_id: AtomicU64,
    /// The tokens of this client's generated keys, from a random seed of its own.
    key_tokens: KeyTokens,
    closed: AtomicBool,
    /// Waiters to wake whenever a task fails: `gather`, which otherwise waits only for the
    /// last of its tasks (see `future::settle`), so that it still reports the first error in
    /// input order as soon as that task and the ones before it are done.
    failure_watchers: Mutex<FailureWatchers>,
    /// How many tasks were cancelled while a worker (or the executor) ran them, for
    /// [`ClientStats::cancelled_while_running`](super::ClientStats::cancelled_while_running).
    cancelled_while_running: AtomicU64,
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
    pub(crate) fn new(transport: Arc<dyn Transport>, executor: Arc<dyn Executor>) -> Core {
        let key_seed = [executor.random_seed(), executor.random_seed()];
        Core {
            scheduler: Mutex::new(Scheduler::new(transport.capacity())),
            transport,
            executor,
            next_id: AtomicU64::new(1),
            key_tokens: KeyTokens::new(key_seed),
            closed: AtomicBool::new(false),
            failure_watchers: Mutex::new(FailureWatchers::default()),
            cancelled_while_running: AtomicU64::new(0),
        }
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
        let mut actions = spare_actions();
        let job =
            Self::submit_locked(&mut self.scheduler.lock(), job, options, shared_key, &mut actions);
        self.apply(actions, None);
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
            {
                let mut scheduler = self.scheduler.lock();
                for (job, shared_key) in chunk.drain(..) {
                    let job =
                        Self::submit_locked(&mut scheduler, job, options, shared_key, &mut actions);
                    submitted.push(job);
                }
            }
            self.apply(actions, None);
        }
    }

    /// The part of a submission done under the scheduler lock; returns the job that holds the
    /// key.
    fn submit_locked(
        scheduler: &mut Scheduler<Arc<Job>>,
        job: Arc<Job>,
        options: &SubmitOptions,
        shared_key: bool,
        actions: &mut Vec<Action<Arc<Job>>>,
    ) -> Arc<Job> {
        if shared_key && let Some(existing_job) = Self::retain_shared(scheduler, &job.key, actions)
        {
            return existing_job;
        }
        let spec = TaskSpec {
            id: job.id,
            key: job.key.clone(),
            deps: job.deps.lock().iter().map(|dep| dep.id).collect(),
            priority: options.priority,
            retries: options.retries,
            allowed_failures: options.allowed_failures,
            uses_worker: !job.is_async(),
            pinned: options.pinned,
            shared_key,
            payload: Arc::clone(&job),
        };
        scheduler.handle(Event::Submitted(spec), actions);
        // Per-task events are at `trace`/`debug`: the macros check the level before the key
        // is formatted, so a disabled level costs one comparison.
        tracing::trace!(key = %job.key, "task submitted");
        job
    }

    /// The job that holds the shared `key`, with one more client handle, if there is one.
    fn retain_shared(
        scheduler: &mut Scheduler<Arc<Job>>,
        key: &TaskKey,
        actions: &mut Vec<Action<Arc<Job>>>,
    ) -> Option<Arc<Job>> {
        let existing = scheduler.lookup(key)?;
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
        let job = {
            // One hold of the lock: two scatters of one shared key find one task.
            let mut scheduler = self.scheduler.lock();
            match shared_key
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
            }
        };
        self.apply(actions, None);
        job
    }

    /// Feeds one event and carries out what the scheduler answers.
    pub(crate) fn feed(&self, event: Event<Arc<Job>>) {
        let mut actions = spare_actions();
        self.scheduler.lock().handle(event, &mut actions);
        self.apply(actions, None);
    }

    /// A worker reports the outcome of a body.
    pub(crate) fn complete(&self, job: &Arc<Job>, outcome: BodyOutcome) {
        if let BodyOutcome::Value(value) = &outcome {
            // Before the report: from the moment the scheduler hears of it, a dependent may
            // be dispatched and read this value, before `apply` below publishes it.
            job.cell.lock().produced = Some(Arc::clone(value));
        }
        let (event, value) = match outcome {
            BodyOutcome::Value(value) => (Event::Finished { id: job.id }, Some((job.id, value))),
            // Error text is bounded here, where every transport's outcome arrives.
            BodyOutcome::Failed(message) => (
                Event::Failed {
                    id: job.id,
                    error: TaskError::Failed {
                        key: job.key.clone(),
                        message: bound_error_text(message),
                    },
                },
                None,
            ),
            BodyOutcome::Panicked(message) => (
                Event::Failed {
                    id: job.id,
                    error: TaskError::Panicked {
                        key: job.key.clone(),
                        message: bound_error_text(message),
                    },
                },
                None,
            ),
        };
        let mut actions = spare_actions();
        self.scheduler.lock().handle(event, &mut actions);
        self.apply(actions, value);
    }

    /// Runs a failed job again, with the failed jobs it reads (see `Event::RetryRequested`),
    /// and says what was done.
    pub(crate) fn retry(&self, job: &Arc<Job>) -> RetryOutcome {
        if self.is_closed() {
            return RetryOutcome::ClientClosed;
        }
        let mut actions = spare_actions();
        let outcome = {
            let mut scheduler = self.scheduler.lock();
            let outcome = scheduler.retry_outcome(job.id);
            scheduler.handle(Event::RetryRequested { id: job.id }, &mut actions);
            outcome
        };
        self.apply(actions, None);
        outcome
    }

    /// Cancels a job and its dependents (see `Event::CancelRequested`), and says what was
    /// done.
    pub(crate) fn cancel(&self, job: &Arc<Job>, reason: &str) -> CancelOutcome {
        if self.is_closed() {
            return CancelOutcome::ClientClosed;
        }
        let mut actions = spare_actions();
        let outcome = {
            let mut scheduler = self.scheduler.lock();
            let outcome = scheduler.cancel_outcome(job.id);
            scheduler.handle(
                Event::CancelRequested { id: job.id, reason: reason.to_owned() },
                &mut actions,
            );
            outcome
        };
        self.apply(actions, None);
        outcome
    }

    /// The transport lost the worker running `job`.
    pub(crate) fn lost(&self, job: &Arc<Job>) {
        tracing::warn!(key = %job.key, "the worker running a task was lost");
        self.feed(Event::Lost { id: job.id });
    }

    /// The transport gave the task up with `error` (not one the task raised: no retry).
    pub(crate) fn given_up_with(&self, job: &Arc<Job>, error: TaskError) {
        self.feed(Event::Failed { id: job.id, error });
    }

    /// The transport itself gave the task up after its workers were lost `attempts` times
    /// (a transport that redelivers on its own, such as Redis with its dead-letter stream).
    pub(crate) fn gave_up(&self, job: &Arc<Job>, attempts: u32) {
        self.feed(Event::Failed {
            id: job.id,
            error: TaskError::WorkerLost { key: job.key.clone(), attempts },
        });
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
                            payload.resolve(Ok(value))
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
                Action::Reset { payload, .. } => {
                    tracing::debug!(key = %payload.key, "task reset to run again");
                    drop(payload.take_outcome());
                }
                Action::Discard { payload, .. } => {
                    tracing::debug!(key = %payload.key, "task outcome discarded");
                    drop(payload.take_outcome());
                    self.transport.release(&payload.key);
                }
                Action::Forget { payload, .. } => {
                    tracing::trace!(key = %payload.key, "task released");
                    self.transport.release(&payload.key)
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
        self.scheduler.lock().counts()
    }

    /// How many tasks were cancelled while they ran, since the client started.
    pub(crate) fn cancelled_while_running(&self) -> u64 {
        self.cancelled_while_running.load(Ordering::Relaxed)
    }

    /// The scheduler's state of one task.
    pub(crate) fn state(&self, id: TaskId) -> Option<TaskState> {
        self.scheduler.lock().state(id)
    }

    /// Stops accepting work, cancels what is unfinished and tells the transport to stop.
    /// Returns the transport's "stopped" future the first time, `None` after.
    pub(crate) fn shut_down(&self) -> Option<BoxFuture<()>> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return None;
        }
        self.feed(Event::Closed);
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
    CompletionSink::new(Arc::downgrade(core))
}
