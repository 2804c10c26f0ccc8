//! What crosses the seam between the client and the transports: a job (what to run, what it
//! reads, where its outcome goes) and how one run of it ended ([`TaskOutcome`]).
//!
//! A neutral module: the client makes jobs and the scheduler schedules them, the transports
//! carry and run them, and it imports neither (only `error` and `key`; see `tests/tidy.rs`).
//! Its public items are re-exported by [`transport`](crate::transport).

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures::future::{AbortHandle, Abortable};
use parking_lot::Mutex;

use crate::error::TaskError;
use crate::key::{TaskId, TaskKey};

thread_local! {
    /// An empty list of inputs with room, reused by the next blocking run on this thread.
    static SPARE_INPUTS: std::cell::Cell<Vec<Value>> = const { std::cell::Cell::new(Vec::new()) };
}

/// How many times a task may be lost with its worker before it fails with
/// [`TaskError::WorkerLost`], unless `allowed_failures` says otherwise: 3 (four deliveries in
/// all), Dask's default (`distributed.scheduler.allowed-failures`).
pub const DEFAULT_ALLOWED_FAILURES: u32 = 3;

/// A task's value, shared by every handle and every dependent (no copy per reader).
pub(crate) type Value = Arc<dyn Any + Send + Sync>;

/// A boxed, sendable future (the same type as [`executor::BoxFuture`](crate::executor::BoxFuture)).
pub(crate) type BoxFuture<T> = futures::future::BoxFuture<'static, T>;

/// A task's value, as a worker produced it: opaque to transports, which only carry it from
/// [`ReadyTask::run`](crate::transport::ReadyTask::run) (or
/// [`decode_output`](crate::transport::ReadyTask::decode_output)) to
/// [`CompletionSink::complete`](crate::transport::CompletionSink::complete).
#[derive(Clone)]
pub struct TaskValue(pub(crate) Value);

impl fmt::Debug for TaskValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TaskValue(..)")
    }
}

/// Why a task body failed: the text the task's future will report
/// ([`TaskError::Failed`](crate::TaskError::Failed)), and the typed error behind it when
/// there is one (see [`std::error::Error::source`]).
///
/// # Examples
///
/// ```
/// use std::error::Error as _;
/// use taskweave::transport::TaskFailure;
///
/// let cause = "x".parse::<u8>().unwrap_err();
/// let failure = TaskFailure::with_source("the input is not a byte", cause);
/// assert_eq!(failure.message(), "the input is not a byte: invalid digit found in string");
/// assert!(failure.source().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct TaskFailure {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl TaskFailure {
    /// A failure described by `message` alone (an error reported as text by a remote worker,
    /// say).
    pub fn new(message: impl Into<String>) -> TaskFailure {
        TaskFailure { message: message.into(), source: None }
    }

    /// A failure caused by `source`: its text is `"{context}: {source}"`.
    pub fn with_source(
        context: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> TaskFailure {
        TaskFailure { message: format!("{context}: {source}"), source: Some(Arc::new(source)) }
    }

    /// The failure that is `error` itself: its text is the error's.
    pub fn from_error(error: impl std::error::Error + Send + Sync + 'static) -> TaskFailure {
        TaskFailure { message: error.to_string(), source: Some(Arc::new(error)) }
    }

    /// The full text of the failure, cause included.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The text, without the cause.
    pub(crate) fn into_message(self) -> String {
        self.message
    }
}

impl From<String> for TaskFailure {
    fn from(message: String) -> TaskFailure {
        TaskFailure::new(message)
    }
}

impl From<&str> for TaskFailure {
    fn from(message: &str) -> TaskFailure {
        TaskFailure::new(message)
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// How one run of a task ended, as a worker (or the transport) reports it to
/// [`CompletionSink::complete`](crate::transport::CompletionSink::complete).
///
/// # Examples
///
/// ```
/// use taskweave::transport::TaskOutcome;
///
/// let outcome = TaskOutcome::Panicked("index out of bounds".into());
/// assert!(!outcome.is_value());
/// assert!(matches!(TaskOutcome::NotRun, TaskOutcome::NotRun));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TaskOutcome {
    /// The body returned a value (from [`ReadyTask::run`](crate::transport::ReadyTask::run),
    /// [`run_async`](crate::transport::ReadyTask::run_async) or
    /// [`decode_output`](crate::transport::ReadyTask::decode_output)).
    Value(TaskValue),
    /// The body returned an error ([`TaskError::Failed`](crate::TaskError::Failed) once
    /// reported; retried if the task allows retries).
    Failed(TaskFailure),
    /// The body panicked with this message
    /// ([`TaskError::Panicked`](crate::TaskError::Panicked) once reported).
    Panicked(String),
    /// The task was not started: it was already resolved (cancelled) when a worker got to it
    /// ([`ReadyTask::is_resolved`](crate::transport::ReadyTask::is_resolved)), or the
    /// transport removed it before any worker took it. Only gives the task's slot back; a
    /// task reported not run that was not resolved fails, saying so.
    NotRun,
    /// The worker running the task died (or its delivery vanished): the scheduler runs it
    /// again or, past its allowed failures, fails it with
    /// [`TaskError::WorkerLost`](crate::TaskError::WorkerLost).
    Lost,
}

impl TaskOutcome {
    /// A body that returned an error with this text.
    pub fn failed(message: impl Into<String>) -> TaskOutcome {
        TaskOutcome::Failed(TaskFailure::new(message))
    }

    /// A body that panicked with this message.
    pub fn panicked(message: impl Into<String>) -> TaskOutcome {
        TaskOutcome::Panicked(message.into())
    }

    /// The outcome of an async body that never ran to the end because its executor dropped
    /// it (for example, the runtime shut down).
    pub fn dropped_by_executor() -> TaskOutcome {
        TaskOutcome::failed(
            "the executor dropped the task before it finished (has the runtime shut down?)",
        )
    }

    /// Whether the body produced a value.
    pub fn is_value(&self) -> bool {
        matches!(self, TaskOutcome::Value(_))
    }
}

/// A run as a transport reports it with its outcome
/// ([`CompletionSink::complete_run`](crate::transport::CompletionSink::complete_run)): who ran
/// the task and when, on the client executor's clock.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, Instant};
/// use taskweave::transport::TaskRun;
///
/// let started = Instant::now();
/// let run = TaskRun::new(Some(Arc::from("worker-0")), started, started + Duration::from_millis(3));
/// assert_eq!(run.worker.as_deref(), Some("worker-0"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TaskRun {
    /// The worker's name.
    pub worker: Option<Arc<str>>,
    /// When the body started ([`Executor::now`](crate::Executor::now) of the client's
    /// executor).
    pub started: Instant,
    /// When it returned.
    pub finished: Instant,
}

impl TaskRun {
    /// A run by `worker` from `started` to `finished`.
    pub fn new(worker: Option<Arc<str>>, started: Instant, finished: Instant) -> TaskRun {
        TaskRun { worker, started, finished }
    }
}

/// What a task runs: a blocking function of its dependencies' values, or an async one.
///
/// A job stores its body inline (see [`JobOf`]), so the body is a trait rather than a boxed
/// closure: one allocation per task fewer.
pub(crate) trait Body: Send + Sync + 'static {
    /// Whether the body is async (run on the executor; takes no worker).
    fn is_async(&self) -> bool;
    /// Runs a blocking body on the current thread.
    fn call_blocking(&self, inputs: &[Value]) -> Result<Value, TaskFailure>;
    /// Starts an async body.
    fn call_async(&self, inputs: Vec<Value>) -> BoxFuture<Result<Value, TaskFailure>>;
    /// The task was cancelled while it ran or waited for a worker: tell the body, if it
    /// listens (bodies submitted `_with_context` set their
    /// [`TaskContext`](crate::TaskContext)'s flag). Called only on a cancel, so
    /// plain bodies pay nothing for it.
    fn cancel(&self) {}
    /// Whether the job is resolved outside the scheduler, which never hears of it (an actor
    /// call's, resolved by the actor's runner).
    fn is_detached(&self) -> bool {
        false
    }
    /// The body as `Any`, for the one kind of body the client looks into (a cluster
    /// client's view of a shared task, `client::cluster_handle::MirrorBody`); `None` for the
    /// others.
    fn as_any(&self) -> Option<&dyn Any> {
        None
    }
    /// The registered call of a registered task's body (see [`Job::call`]).
    fn registered_call(&self) -> Option<&RegisteredCall> {
        None
    }
    /// Where an async body's run is stopped from (see [`WithAbort`]); `None` for the others.
    fn async_run(&self) -> Option<&Mutex<AsyncRun>> {
        None
    }
}

/// The `Body` methods a wrapper around a body (`WithCall`, `WithAbort`) hands to the body it
/// wraps, in its `body` field; the wrapper writes only the methods it answers itself.
macro_rules! forward_to_inner_body {
    () => {
        fn is_async(&self) -> bool {
            self.body.is_async()
        }

        fn call_blocking(&self, inputs: &[Value]) -> Result<Value, TaskFailure> {
            self.body.call_blocking(inputs)
        }

        fn call_async(&self, inputs: Vec<Value>) -> BoxFuture<Result<Value, TaskFailure>> {
            self.body.call_async(inputs)
        }

        fn cancel(&self) {
            self.body.cancel();
        }

        fn is_detached(&self) -> bool {
            self.body.is_detached()
        }

        fn as_any(&self) -> Option<&dyn Any> {
            self.body.as_any()
        }
    };
}

/// A registered task's body: the body, and the call transports that leave the process send
/// instead.
struct WithCall<B> {
    call: RegisteredCall,
    body: B,
}

impl<B: Body> Body for WithCall<B> {
    forward_to_inner_body!();

    fn registered_call(&self) -> Option<&RegisteredCall> {
        Some(&self.call)
    }

    fn async_run(&self) -> Option<&Mutex<AsyncRun>> {
        self.body.async_run()
    }
}

/// An async body with the handle that stops its run when the task is cancelled. In the body,
/// not the job: a blocking body (most tasks) has no use for it, and a field of the job would
/// cost every task its size (a job's size is the client's memory per task).
struct WithAbort<B> {
    run: Mutex<AsyncRun>,
    body: B,
}

/// Where an async body's run stands, for a cancel ([`Job::abort`]) to stop it.
#[derive(Default)]
pub(crate) enum AsyncRun {
    /// Not started since the job was made or reset (a retry).
    #[default]
    NotStarted,
    /// Started: this handle stops it.
    Running(AbortHandle),
    /// Aborted, possibly before it started: a run that has not begun must not begin. The
    /// scheduler asks for the abort before it publishes the cancel, so a run that starts in
    /// between finds this, not the outcome.
    Aborted,
}

impl<B: Body> Body for WithAbort<B> {
    forward_to_inner_body!();

    fn registered_call(&self) -> Option<&RegisteredCall> {
        self.body.registered_call()
    }

    fn async_run(&self) -> Option<&Mutex<AsyncRun>> {
        Some(&self.run)
    }
}

/// Why a job's run did not begin (see `JobOf::dep_values_into`).
enum NotStarted {
    /// It was aborted first (see `Slot::Aborted`): it reports [`TaskOutcome::NotRun`].
    Aborted,
    /// An input had no value (an internal error): it fails with this.
    Failed(TaskFailure),
}

/// A blocking body: reads its dependencies' values and returns its own.
pub(crate) struct BlockingBody<F>(pub(crate) F);

impl<F> Body for BlockingBody<F>
where
    F: Fn(&[Value]) -> Result<Value, TaskFailure> + Send + Sync + 'static,
{
    fn is_async(&self) -> bool {
        false
    }

    fn call_blocking(&self, inputs: &[Value]) -> Result<Value, TaskFailure> {
        (self.0)(inputs)
    }

    fn call_async(&self, _: Vec<Value>) -> BoxFuture<Result<Value, TaskFailure>> {
        Box::pin(async {
            Err(TaskFailure::new("internal error: a blocking task was run as an async one"))
        })
    }
}

/// An async body: the same, as a future run on the executor.
pub(crate) struct AsyncBody<F>(pub(crate) F);

impl<F> Body for AsyncBody<F>
where
    F: Fn(Vec<Value>) -> BoxFuture<Result<Value, TaskFailure>> + Send + Sync + 'static,
{
    fn is_async(&self) -> bool {
        true
    }

    fn call_blocking(&self, _: &[Value]) -> Result<Value, TaskFailure> {
        Err(TaskFailure::new("internal error: an async task was run as a blocking one"))
    }

    fn call_async(&self, inputs: Vec<Value>) -> BoxFuture<Result<Value, TaskFailure>> {
        (self.0)(inputs)
    }
}

/// Encodes a registered task's input for the wire.
pub(crate) type InputEncoder = Box<dyn Fn() -> Result<Vec<u8>, serde_json::Error> + Send + Sync>;

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
    pub(crate) decode_output: fn(&[u8]) -> Result<Value, TaskFailure>,
    /// Turns the typed value into wire bytes (for registered tasks that depend on this one).
    pub(crate) encode_output: fn(&Value) -> Result<Vec<u8>, TaskFailure>,
    /// How many deliveries may die with their worker (`TaskBuilder::allowed_failures`), for
    /// transports that redeliver by themselves.
    pub(crate) allowed_failures: u32,
    /// Whether its key is shared (pure, or given explicitly): other clients of a cluster
    /// that submit the same key share its run and result.
    pub(crate) shared_key: bool,
    /// The worker resources one run holds (`TaskBuilder::resources`): name and amount, each
    /// name once.
    pub(crate) resources: Vec<(String, u64)>,
}

/// One task: its identity, what it runs, what it reads, and where its outcome is published.
///
/// Generic over its tail (a [`Tail`]: the outcome's cell with the jobs it reads, and the
/// body) so that the closure and the list of inputs are stored inline, in the job's own
/// allocation; everything outside this module sees the type-erased [`Job`].
pub(crate) struct JobOf<T: ?Sized + JobTail> {
    pub(crate) id: TaskId,
    pub(crate) key: TaskKey,
    /// How many client handles (the client's `Handle`s, one per `TaskFuture`)
    /// refer to the task. The scheduler hears only of the changes from none to some
    /// (`Submitted`, `Retained`) and from some to none (`Released`), so cloning and dropping
    /// a handle that is not the last one never takes the scheduler lock.
    ///
    /// **Invariant:** the scheduler's `client_refs` of the task equals the number of those
    /// changes up (under the scheduler lock) minus the number of changes down it has been
    /// told of; every change down is followed by one `Released` event.
    pub(crate) handles: AtomicUsize,
    /// When the task was submitted and last queued (dispatched), in nanoseconds since its
    /// client started, for the client's task events (`u64::MAX`: not recorded). Kept here,
    /// where the core writes anyway, so that a task's events take one entry of the ring
    /// (written when a run ends or the task fails) instead of three.
    pub(crate) submitted_at: AtomicU64,
    pub(crate) queued_at: AtomicU64,
    /// The outcome's cell (with the jobs this one reads) and what the task runs (with its
    /// [`RegisteredCall`] for a registered task, see [`Job::call`]). Last: it is the
    /// unsized part of a [`Job`].
    tail: T,
}

/// A job whose tail's type is erased: what the scheduler, the transports and the futures
/// hold.
pub(crate) type Job = JobOf<dyn JobTail>;

/// One input of a job: the job whose value it reads, until this one has its own value.
type Input = Option<Arc<Job>>;

/// The part of a job whose type depends on what it reads and what it runs: its cell and its
/// body, seen through this trait once the type is erased. It is the body too (forwarding to
/// it): a body's method is then one dynamic call, not two.
pub(crate) trait JobTail: Body {
    /// The published outcome, the wakers of everyone waiting for it, and the jobs this one
    /// reads. One lock for all three: a job lives as long as its value is held, so its size
    /// is the client's memory per task (see `benches/overhead.rs`), and a lock of its own
    /// would take 8 bytes more.
    fn cell(&self) -> &Mutex<JobCell<dyn InputSlots>>;
    /// The same, for the job's last owner.
    fn cell_mut(&mut self) -> &mut JobCell<dyn InputSlots>;
}

/// A job's tail: its cell, whose list of inputs is `S` (an array of as many as it reads,
/// when that is few: no allocation of its own), and its body `B`.
pub(crate) struct Tail<S, B> {
    cell: Mutex<JobCell<S>>,
    body: B,
}

impl<S: InputSlots, B: Body> JobTail for Tail<S, B> {
    fn cell(&self) -> &Mutex<JobCell<dyn InputSlots>> {
        &self.cell
    }

    fn cell_mut(&mut self) -> &mut JobCell<dyn InputSlots> {
        self.cell.get_mut()
    }
}

impl<S: InputSlots, B: Body> Body for Tail<S, B> {
    forward_to_inner_body!();

    fn registered_call(&self) -> Option<&RegisteredCall> {
        self.body.registered_call()
    }

    fn async_run(&self) -> Option<&Mutex<AsyncRun>> {
        self.body.async_run()
    }
}

/// Where a job keeps the jobs it reads: an array of one or two inline, none for a task
/// without dependencies (most tasks: no bytes at all), a boxed slice for more.
pub(crate) trait InputSlots: Send + Sync + 'static {
    /// The inputs, in argument order; `None` once taken.
    fn slots(&self) -> &[Input];
    /// The same, to replace one (see [`Job::replace_deps`]).
    fn slots_mut(&mut self) -> &mut [Input];
    /// Takes every input out (to be dropped after the cell's lock).
    fn take_all(&mut self) -> TakenInputs;
}

/// Inputs taken out of a job's cell, dropped by their holder after the lock.
pub(crate) enum TakenInputs {
    /// At most two (from an inline array).
    Few([Input; 2]),
    /// From a boxed slice.
    Many(Box<[Input]>),
}

impl TakenInputs {
    fn into_jobs(self) -> impl Iterator<Item = Arc<Job>> {
        let (few, many) = match self {
            TakenInputs::Few(few) => (Some(few), None),
            TakenInputs::Many(many) => (None, Some(many)),
        };
        few.into_iter().flatten().chain(many.into_iter().flat_map(Vec::from)).flatten()
    }

    fn is_empty(&self) -> bool {
        match self {
            TakenInputs::Few(few) => few.iter().all(Option::is_none),
            TakenInputs::Many(many) => many.iter().all(Option::is_none),
        }
    }
}

/// Arrays of up to two inputs.
macro_rules! inline_input_slots {
    ($($n:literal),+) => {
        $(
            impl InputSlots for [Input; $n] {
                fn slots(&self) -> &[Input] {
                    self
                }

                fn slots_mut(&mut self) -> &mut [Input] {
                    self
                }

                fn take_all(&mut self) -> TakenInputs {
                    let mut taken = [None, None];
                    for (slot, input) in taken.iter_mut().zip(self.iter_mut()) {
                        *slot = input.take();
                    }
                    TakenInputs::Few(taken)
                }
            }
        )+
    };
}

inline_input_slots!(0, 1, 2);

impl InputSlots for Box<[Input]> {
    fn slots(&self) -> &[Input] {
        self
    }

    fn slots_mut(&mut self) -> &mut [Input] {
        self
    }

    fn take_all(&mut self) -> TakenInputs {
        TakenInputs::Many(std::mem::take(self))
    }
}

/// The jobs a new job will read, in argument order, as a submission gathers them: one or
/// two (most dependent tasks) without an allocation.
pub(crate) struct Inputs(InputsRepr);

enum InputsRepr {
    /// Up to two, filled from the front.
    Few([Input; 2]),
    Many(Vec<Arc<Job>>),
}

impl Default for Inputs {
    fn default() -> Inputs {
        Inputs(InputsRepr::Few([None, None]))
    }
}

impl From<Vec<Arc<Job>>> for Inputs {
    fn from(jobs: Vec<Arc<Job>>) -> Inputs {
        let mut inputs = Inputs::with_capacity(jobs.len());
        jobs.into_iter().for_each(|job| inputs.push(job));
        inputs
    }
}

impl Inputs {
    /// An empty list with room for `n` jobs.
    pub(crate) fn with_capacity(n: usize) -> Inputs {
        if n <= 2 { Inputs::default() } else { Inputs(InputsRepr::Many(Vec::with_capacity(n))) }
    }

    /// Appends `job`.
    pub(crate) fn push(&mut self, job: Arc<Job>) {
        match &mut self.0 {
            InputsRepr::Few([first @ None, _]) => *first = Some(job),
            InputsRepr::Few([Some(_), second @ None]) => *second = Some(job),
            InputsRepr::Few([first @ Some(_), second @ Some(_)]) => {
                let jobs = [first.take(), second.take(), Some(job)];
                self.0 = InputsRepr::Many(jobs.into_iter().flatten().collect());
            }
            InputsRepr::Many(jobs) => jobs.push(job),
        }
    }

    /// How many jobs there are.
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            InputsRepr::Few(few) => few.iter().flatten().count(),
            InputsRepr::Many(jobs) => jobs.len(),
        }
    }

    /// The jobs, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Job>> {
        let (few, many): (&[Input], &[Arc<Job>]) = match &self.0 {
            InputsRepr::Few(few) => (few, &[]),
            InputsRepr::Many(jobs) => (&[], jobs),
        };
        few.iter().flatten().chain(many)
    }

    /// The jobs, in order, to replace some.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Arc<Job>> {
        let (few, many): (&mut [Input], &mut [Arc<Job>]) = match &mut self.0 {
            InputsRepr::Few(few) => (few, &mut []),
            InputsRepr::Many(jobs) => (&mut [], jobs),
        };
        few.iter_mut().flatten().chain(many)
    }
}

/// A job's cell (see [`JobTail::cell`]), with its list of inputs `S`.
pub(crate) struct JobCell<S: ?Sized> {
    /// The value produced or the outcome published, in one field: a task has at most one of
    /// them at a time (one field is 16 bytes less per job than two).
    slot: Slot,
    wakers: Wakers,
    /// The jobs whose values this one reads, in argument order. Emptied once this job has
    /// its value; dropped iteratively (see `Drop`), so that long chains never recurse.
    /// Inline (an array of as many as it reads, when that is few), not a list of its own:
    /// one allocation per dependent task fewer, and none of a job's bytes for a task that
    /// reads nothing. Locked with the outcome: a job reading its inputs holds its own cell
    /// and then each input's, in turn; as dependencies form no cycle, that order cannot
    /// deadlock.
    inputs: S,
}

/// The wakers of everyone waiting for a job's outcome, in 8 bytes rather than a `Vec`'s 24
/// (a job's size is the client's memory per task): none costs nothing, the first one
/// allocation (as a `Vec`'s first push would), and further ones go to a `Vec` beside it.
#[derive(Default)]
struct Wakers(Option<Box<WakerList>>);

struct WakerList {
    first: Waker,
    more: Vec<Waker>,
}

impl Wakers {
    fn iter(&self) -> impl Iterator<Item = &Waker> {
        self.0.iter().flat_map(|list| std::iter::once(&list.first).chain(&list.more))
    }

    /// Adds `waker` unless one that wakes the same task is there already.
    fn register(&mut self, waker: &Waker) {
        if self.iter().any(|registered| registered.will_wake(waker)) {
            return;
        }
        match &mut self.0 {
            None => self.0 = Some(Box::new(WakerList { first: waker.clone(), more: Vec::new() })),
            Some(list) => list.more.push(waker.clone()),
        }
    }

    /// Takes out every registered waker that wakes the same task as `waker`, returned so
    /// that the caller drops them after its lock (a waker's drop may run arbitrary code).
    fn remove(&mut self, waker: &Waker) -> Vec<Waker> {
        let mut removed = Vec::new();
        let Some(list) = &mut self.0 else { return removed };
        list.more.retain(|registered| {
            let keep = !registered.will_wake(waker);
            if !keep {
                removed.push(registered.clone());
            }
            keep
        });
        if list.first.will_wake(waker) {
            // The order of wakers does not matter: the last one takes the first's place.
            match list.more.pop() {
                Some(next) => removed.push(std::mem::replace(&mut list.first, next)),
                None => removed.extend(self.0.take().map(|list| list.first)),
            }
        }
        removed
    }

    fn wake_all(self) {
        if let Some(list) = self.0 {
            list.first.wake();
            list.more.into_iter().for_each(Waker::wake);
        }
    }
}

/// What a job's cell holds of its run's result.
#[derive(Default)]
enum Slot {
    /// Nothing yet.
    #[default]
    Empty,
    /// The value a body returned, stored before the worker reports it and kept until it is
    /// published. Dependents read it from here when they run in that gap: the scheduler may
    /// dispatch a dependent (on another thread, as soon as this task's report is under its
    /// lock) before the reporting thread has published the value.
    Produced(Value),
    /// The published outcome. Boxed error: most tasks succeed, and the box keeps every job
    /// 32 bytes smaller.
    Published(Result<Value, Box<TaskError>>),
    /// Aborted before any outcome: the task was cancelled while dispatched, and its outcome
    /// (the cancel) is about to be published. A run that has not begun must not begin: the
    /// scheduler asks for the abort before it publishes the cancel, so a worker that takes
    /// the task in between finds this, not the outcome. Not an outcome itself; the published
    /// one replaces it, and a reset for a retry empties it.
    Aborted,
}

impl JobCell<dyn InputSlots> {
    /// Whether the job was made reading nothing (most tasks): its slots are an empty array.
    /// Read from the size in the slots' vtable, without a call, so that a task without
    /// dependencies pays nothing for the list it does not have.
    fn reads_nothing(&self) -> bool {
        size_of_val(&self.inputs) == 0
    }
}

impl<S: ?Sized> JobCell<S> {
    /// The published outcome, if any.
    fn outcome(&self) -> Option<&Result<Value, Box<TaskError>>> {
        match &self.slot {
            Slot::Published(outcome) => Some(outcome),
            Slot::Empty | Slot::Produced(_) | Slot::Aborted => None,
        }
    }
}

impl<T: ?Sized + JobTail> Drop for JobOf<T> {
    fn drop(&mut self) {
        // Dropping the last `Arc` of a job would drop its inputs, and theirs, recursively:
        // a chain of 100,000 failed jobs would overflow the stack. Unlink iteratively: a
        // dependency held only here gives up its own inputs before it is dropped. (One held
        // elsewhere too is dropped by its last holder, which unlinks in turn.) A job that
        // had its value gave its inputs up already: nothing to do, nothing allocated.
        let cell = self.tail.cell_mut();
        if cell.reads_nothing() {
            return;
        }
        let taken = cell.inputs.take_all();
        if taken.is_empty() {
            return;
        }
        let mut unlinked: Vec<Arc<Job>> = taken.into_jobs().collect();
        while let Some(mut dep) = unlinked.pop() {
            if let Some(dep) = Arc::get_mut(&mut dep) {
                unlinked.extend(dep.tail.cell_mut().inputs.take_all().into_jobs());
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
    /// A job with one client handle (the submission's) that reads `inputs`, carrying a
    /// registered call for transports that leave the process when `call` is set.
    pub(crate) fn new(
        id: TaskId,
        key: TaskKey,
        inputs: impl Into<Inputs>,
        body: impl Body,
        call: Option<RegisteredCall>,
    ) -> Arc<Job> {
        fn made<S: InputSlots, B: Body>(id: TaskId, key: TaskKey, inputs: S, body: B) -> Arc<Job> {
            let cell = JobCell { slot: Slot::Empty, wakers: Wakers::default(), inputs };
            Arc::new(JobOf {
                id,
                key,
                handles: AtomicUsize::new(1),
                submitted_at: AtomicU64::new(u64::MAX),
                queued_at: AtomicU64::new(u64::MAX),
                tail: Tail { cell: Mutex::new(cell), body },
            })
        }
        /// The inputs inline when there are one or two (an array that size, in the job's
        /// own allocation), else a boxed slice.
        fn with_inputs<B: Body>(id: TaskId, key: TaskKey, inputs: Inputs, body: B) -> Arc<Job> {
            match inputs.0 {
                InputsRepr::Few([None, _]) => made::<[Input; 0], B>(id, key, [], body),
                InputsRepr::Few([first @ Some(_), None]) => made(id, key, [first], body),
                InputsRepr::Few([first, second]) => made(id, key, [first, second], body),
                InputsRepr::Many(jobs) => {
                    let slots: Box<[Input]> = jobs.into_iter().map(Some).collect();
                    made(id, key, slots, body)
                }
            }
        }
        let inputs = inputs.into();
        // The call inside the body: most tasks are closures without one, and a field for it
        // would cost every job its size (a job's size is the client's memory per task).
        // Likewise the abort handle, which only async bodies use.
        let is_async = body.is_async();
        match call {
            Some(call) if is_async => {
                let body = WithAbort { run: Mutex::default(), body };
                with_inputs(id, key, inputs, WithCall { call, body })
            }
            Some(call) => with_inputs(id, key, inputs, WithCall { call, body }),
            None if is_async => {
                with_inputs(id, key, inputs, WithAbort { run: Mutex::default(), body })
            }
            None => with_inputs(id, key, inputs, body),
        }
    }

    fn cell(&self) -> &Mutex<JobCell<dyn InputSlots>> {
        self.tail.cell()
    }

    /// What the task runs (its tail forwards to its body).
    fn body(&self) -> &dyn Body {
        &self.tail
    }

    /// The registered call, for a registered task.
    pub(crate) fn call(&self) -> Option<&RegisteredCall> {
        self.body().registered_call()
    }

    /// The keys of the jobs this one reads, in argument order (empty once it has its value).
    pub(crate) fn dep_keys(&self) -> Vec<TaskKey> {
        self.cell().lock().inputs.slots().iter().flatten().map(|dep| dep.key.clone()).collect()
    }

    /// Appends the ids of the jobs this one reads to `ids`, in argument order.
    pub(crate) fn dep_ids_into(&self, ids: &mut Vec<TaskId>) {
        let cell = self.cell().lock();
        if !cell.reads_nothing() {
            ids.extend(cell.inputs.slots().iter().flatten().map(|dep| dep.id));
        }
    }

    /// Calls `replace` on each job this one reads, to put another in its place.
    pub(crate) fn replace_deps(&self, replace: impl FnMut(&mut Arc<Job>)) {
        self.cell().lock().inputs.slots_mut().iter_mut().flatten().for_each(replace);
    }

    pub(crate) fn is_async(&self) -> bool {
        self.body().is_async()
    }

    /// The body, if it is a `T` (see `Body::as_any`).
    pub(crate) fn body_as<T: Any>(&self) -> Option<&T> {
        self.body().as_any()?.downcast_ref()
    }

    /// Whether the job is resolved outside the scheduler (see `Body::is_detached`).
    pub(crate) fn is_detached(&self) -> bool {
        self.body().is_detached()
    }

    fn dep_values(&self) -> Result<Vec<Value>, NotStarted> {
        let mut inputs = Vec::new();
        self.dep_values_into(&mut inputs)?;
        Ok(inputs)
    }

    /// Appends the values of the jobs this one reads to `inputs`, in argument order.
    fn dep_values_into(&self, inputs: &mut Vec<Value>) -> Result<(), NotStarted> {
        self.dep_values_unless(inputs, false)
    }

    /// [`dep_values_into`](JobOf::dep_values_into), which also refuses (as aborted) a job
    /// whose outcome is published already when `unless_resolved` is set: the check a worker
    /// makes before a run, in the lock the run takes anyway to read its inputs.
    fn dep_values_unless(
        &self,
        inputs: &mut Vec<Value>,
        unless_resolved: bool,
    ) -> Result<(), NotStarted> {
        let cell = self.cell().lock();
        if matches!(cell.slot, Slot::Aborted) || (unless_resolved && cell.outcome().is_some()) {
            return Err(NotStarted::Aborted);
        }
        if cell.reads_nothing() {
            return Ok(());
        }
        let deps = cell.inputs.slots();
        inputs.reserve(deps.len());
        for dep in deps.iter().flatten() {
            let cell = dep.cell().lock();
            match &cell.slot {
                Slot::Published(Ok(value)) | Slot::Produced(value) => {
                    inputs.push(Arc::clone(value));
                }
                _ => {
                    return Err(NotStarted::Failed(TaskFailure::new(format!(
                        "internal error: dependency {} has no value; please report this",
                        dep.key
                    ))));
                }
            }
        }
        Ok(())
    }

    /// Runs a blocking body on the current thread; a panic becomes `Panicked`.
    pub(crate) fn run_blocking(&self) -> TaskOutcome {
        self.run_blocking_unless(false)
    }

    /// Runs a blocking body on the current thread unless (with `unless_resolved`) the task
    /// is resolved already (cancelled while it waited), when it reports
    /// [`TaskOutcome::NotRun`] without starting: [`ReadyTask::is_resolved`] and the run in
    /// one look at the job's cell.
    ///
    /// [`ReadyTask::is_resolved`]: crate::transport::ReadyTask::is_resolved
    pub(crate) fn run_blocking_unless(&self, unless_resolved: bool) -> TaskOutcome {
        // The inputs' list is reused from the last run on this thread (no allocation per
        // task); a body that runs another on this thread meanwhile just makes its own.
        let mut inputs = SPARE_INPUTS.take();
        let outcome = match self.dep_values_unless(&mut inputs, unless_resolved) {
            Err(NotStarted::Aborted) => TaskOutcome::NotRun,
            Err(NotStarted::Failed(failure)) => TaskOutcome::Failed(failure),
            Ok(()) => match catch_unwind(AssertUnwindSafe(|| self.body().call_blocking(&inputs))) {
                Ok(Ok(value)) => TaskOutcome::Value(TaskValue(value)),
                Ok(Err(failure)) => TaskOutcome::Failed(failure),
                Err(panic) => TaskOutcome::Panicked(panic_message(&*panic)),
            },
        };
        // Emptied before it goes back: dropping a value may run any code, this included.
        inputs.clear();
        if inputs.capacity() <= 64 {
            drop(SPARE_INPUTS.replace(inputs));
        }
        outcome
    }

    /// Runs an async body; a panic while polling becomes `Panicked`. A cancel while it runs
    /// ([`abort`](Job::abort)) stops it, and it reports [`TaskOutcome::NotRun`].
    pub(crate) fn run_async(self: &Arc<Self>) -> BoxFuture<TaskOutcome> {
        use futures::FutureExt;
        let (handle, registration) = AbortHandle::new_pair();
        if let Some(run) = self.body().async_run() {
            let mut run = run.lock();
            // Aborted before it started: the scheduler asks for the abort of a cancelled
            // task before it publishes the cancel, so the outcome below may not be there yet.
            if matches!(*run, AsyncRun::Aborted) {
                return Box::pin(async { TaskOutcome::NotRun });
            }
            *run = AsyncRun::Running(handle);
        }
        // Cancelled between its dispatch and now (the first poll of the transport's future):
        // it must not start (found by the simulation).
        if self.cell().lock().outcome().is_some() {
            return Box::pin(async { TaskOutcome::NotRun });
        }
        let inputs = match self.dep_values() {
            Ok(inputs) => inputs,
            Err(NotStarted::Aborted) => return Box::pin(async { TaskOutcome::NotRun }),
            Err(NotStarted::Failed(failure)) => {
                return Box::pin(async move { TaskOutcome::Failed(failure) });
            }
        };
        let future = match catch_unwind(AssertUnwindSafe(|| self.body().call_async(inputs))) {
            Ok(future) => future,
            Err(panic) => {
                let message = panic_message(&*panic);
                return Box::pin(async move { TaskOutcome::Panicked(message) });
            }
        };
        let caught = AssertUnwindSafe(future).catch_unwind();
        Box::pin(Abortable::new(caught, registration).map(|result| match result {
            Ok(Ok(Ok(value))) => TaskOutcome::Value(TaskValue(value)),
            Ok(Ok(Err(failure))) => TaskOutcome::Failed(failure),
            Ok(Err(panic)) => TaskOutcome::Panicked(panic_message(&*panic)),
            Err(futures::future::Aborted) => TaskOutcome::NotRun,
        }))
    }

    /// The task was cancelled while it ran or waited: tells a body that listens, and stops a
    /// running async body.
    pub(crate) fn abort(&self) {
        // A blocking body cannot be stopped from the outside once it runs; one that listens
        // stops itself. One that has not begun never will (see `Slot::Aborted`).
        self.body().cancel();
        {
            let mut cell = self.cell().lock();
            if matches!(cell.slot, Slot::Empty) {
                cell.slot = Slot::Aborted;
            }
        }
        let Some(run) = self.body().async_run() else { return };
        let previous = std::mem::replace(&mut *run.lock(), AsyncRun::Aborted);
        if let AsyncRun::Running(handle) = previous {
            handle.abort();
        }
    }

    /// Keeps a value a body produced until it is published (see `JobCell::produced`).
    pub(crate) fn set_produced(&self, value: &Value) {
        let mut cell = self.cell().lock();
        // A task resolved meanwhile (cancelled) keeps that outcome; the value is not read.
        if cell.outcome().is_none() {
            cell.slot = Slot::Produced(Arc::clone(value));
        }
    }

    /// Publishes the outcome and wakes every waiter. A second outcome is ignored.
    pub(crate) fn resolve(&self, outcome: Result<Value, TaskError>) {
        let succeeded = outcome.is_ok();
        let (wakers, deps) = {
            let mut cell = self.cell().lock();
            if cell.outcome().is_some() {
                return;
            }
            cell.slot = Slot::Published(outcome.map_err(Box::new));
            // A finished job never reads its inputs again: let them go (after the lock). A
            // failed one keeps them for `TaskFuture::retry`.
            let deps = (succeeded && !cell.reads_nothing()).then(|| cell.inputs.take_all());
            (std::mem::take(&mut cell.wakers), deps)
        };
        wakers.wake_all();
        drop(deps);
    }

    /// The outcome if published; otherwise registers `cx`'s waker.
    pub(crate) fn poll_outcome(&self, cx: &mut Context<'_>) -> Poll<Result<Value, TaskError>> {
        let mut cell = self.cell().lock();
        match cell.outcome() {
            Some(outcome) => Poll::Ready(unboxed(outcome)),
            None => {
                cell.wakers.register(cx.waker());
                Poll::Pending
            }
        }
    }

    /// `None` while the task has no outcome; then whether the outcome is a value. Cheaper
    /// than [`peek_outcome`](Job::peek_outcome): nothing is cloned.
    pub(crate) fn status(&self) -> Option<bool> {
        self.cell().lock().outcome().map(Result::is_ok)
    }

    /// Forgets `waker`, registered by [`poll_outcome`](Job::poll_outcome), for a waiter that
    /// stops waiting before the outcome: without it, a loop of timed-out waits would pile up
    /// one waker per wait until the task ends.
    pub(crate) fn unregister_waker(&self, waker: &Waker) {
        // Dropped after the lock: a waker's drop may run arbitrary code.
        let removed = self.cell().lock().wakers.remove(waker);
        drop(removed);
    }

    /// How many wakers wait for the outcome.
    #[cfg(test)]
    pub(crate) fn n_wakers(&self) -> usize {
        self.cell().lock().wakers.iter().count()
    }

    /// Takes the published outcome (and a value produced but not yet published) back, so
    /// that another can be published, and lets an aborted async body run again (a retry).
    /// Returned so that the value is dropped after the lock: a value's drop may run
    /// arbitrary code.
    pub(crate) fn take_outcome(&self) -> (Option<Result<Value, Box<TaskError>>>, Option<Value>) {
        if let Some(run) = self.body().async_run() {
            *run.lock() = AsyncRun::NotStarted;
        }
        match std::mem::take(&mut self.cell().lock().slot) {
            Slot::Empty | Slot::Aborted => (None, None),
            Slot::Produced(value) => (None, Some(value)),
            Slot::Published(outcome) => (Some(outcome), None),
        }
    }

    /// Moves the published value out if it is a `T` that nothing else holds (no reader has a
    /// copy of its `Arc`); leaves the outcome as it is otherwise. For a job nobody can reach
    /// any more (see `TaskFuture::try_unwrap`): it has no outcome afterwards.
    pub(crate) fn take_unshared_value<T: Any + Send + Sync>(&self) -> Option<T> {
        let mut cell = self.cell().lock();
        let value = match std::mem::take(&mut cell.slot) {
            Slot::Published(Ok(value)) if value.is::<T>() && Arc::strong_count(&value) == 1 => {
                value
            }
            other => {
                cell.slot = other;
                return None;
            }
        };
        drop(cell);
        // Cannot fail: checked under the lock, and nobody else had the `Arc` to clone it.
        value.downcast::<T>().ok().and_then(|typed| Arc::try_unwrap(typed).ok())
    }

    /// The outcome if published, without waiting.
    pub(crate) fn peek_outcome(&self) -> Option<Result<Value, TaskError>> {
        self.cell().lock().outcome().map(unboxed)
    }
}

/// A copy of a published outcome, as the futures return it.
pub(crate) fn unboxed(outcome: &Result<Value, Box<TaskError>>) -> Result<Value, TaskError> {
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

#[cfg(test)]
mod size_tests {
    use super::*;

    /// A body of no bytes, to weigh the rest of a job.
    struct NoBody;

    impl Body for NoBody {
        fn is_async(&self) -> bool {
            false
        }

        fn call_blocking(&self, _: &[Value]) -> Result<Value, TaskFailure> {
            Ok(Arc::new(()))
        }

        fn call_async(&self, _: Vec<Value>) -> BoxFuture<Result<Value, TaskFailure>> {
            Box::pin(async { Ok(Arc::new(()) as Value) })
        }
    }

    /// A job lives as long as its task's value is held, and one is made per task: its size
    /// is the client's memory per pending task with the scheduler's record (see
    /// `benches/overhead.rs`). A field added to it shows up here, to be weighed against that.
    /// A task that reads nothing (most) spends no byte on a list of inputs; one that reads
    /// one or two keeps them inline, 16 bytes each, instead of a list of its own.
    #[test]
    fn a_job_takes_96_bytes_besides_its_body_and_16_per_inline_input() {
        assert_eq!(size_of::<JobOf<Tail<[Input; 0], NoBody>>>(), 96);
        assert_eq!(size_of::<JobOf<Tail<[Input; 1], NoBody>>>(), 112);
        assert_eq!(size_of::<JobOf<Tail<[Input; 2], NoBody>>>(), 128);
        assert_eq!(size_of::<JobCell<[Input; 0]>>(), 32);
    }

    fn async_job(started: &Arc<std::sync::atomic::AtomicBool>) -> Arc<Job> {
        let started = Arc::clone(started);
        let body = AsyncBody(move |_: Vec<Value>| -> BoxFuture<Result<Value, TaskFailure>> {
            started.store(true, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Ok(Arc::new(1_u8) as Value) })
        });
        Job::new(TaskId(1), TaskKey::named("async"), Vec::new(), body, None)
    }

    /// Runs `job`'s async body to its end, which comes at the first poll here.
    fn run_now(job: &Arc<Job>) -> TaskOutcome {
        use futures::FutureExt;
        job.run_async().now_or_never().expect("the run ends at its first poll")
    }

    /// The scheduler asks for a cancelled task's abort before it publishes the cancel: an
    /// async body whose run begins in between must not start. Reset for a retry, it runs.
    #[test]
    fn an_async_task_aborted_before_it_starts_does_not_start() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        let started = Arc::new(AtomicBool::new(false));
        let job = async_job(&started);
        job.abort();
        let outcome = run_now(&job);
        assert!(matches!(outcome, TaskOutcome::NotRun), "{outcome:?}");
        assert!(!started.load(SeqCst), "the body was started after its abort");
        drop(job.take_outcome());
        let outcome = run_now(&job);
        assert!(outcome.is_value(), "{outcome:?}");
        assert!(started.load(SeqCst));
    }

    /// The same window for a blocking body, which a worker starts on its own thread: aborted
    /// (the cancel about to be published), it does not start; reset for a retry, it runs.
    #[test]
    fn a_blocking_task_aborted_before_it_starts_does_not_start() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        let started = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&started);
        let body = BlockingBody(move |_: &[Value]| -> Result<Value, TaskFailure> {
            flag.store(true, SeqCst);
            Ok(Arc::new(1_u8) as Value)
        });
        let job = Job::new(TaskId(1), TaskKey::named("blocking"), Vec::new(), body, None);
        job.abort();
        let outcome = job.run_blocking();
        assert!(matches!(outcome, TaskOutcome::NotRun), "{outcome:?}");
        assert!(!started.load(SeqCst), "the body was started after its abort");
        drop(job.take_outcome());
        let outcome = job.run_blocking();
        assert!(outcome.is_value(), "{outcome:?}");
        assert!(started.load(SeqCst));
    }

    /// An abort that comes once the body has produced its value changes nothing: the value
    /// stays for its dependents until the cancel is published.
    #[test]
    fn an_abort_after_the_value_was_produced_keeps_the_value() {
        let body = BlockingBody(|_: &[Value]| -> Result<Value, TaskFailure> {
            Ok(Arc::new(7_u8) as Value)
        });
        let job = Job::new(TaskId(1), TaskKey::named("produced"), Vec::new(), body, None);
        let TaskOutcome::Value(value) = job.run_blocking() else { panic!("no value") };
        job.set_produced(&value.0);
        job.abort();
        let (outcome, produced) = job.take_outcome();
        assert!(outcome.is_none());
        assert_eq!(produced.and_then(|value| value.downcast_ref::<u8>().copied()), Some(7));
    }

    /// A job that a cancel reached while it waited, without its abort (published first): it
    /// does not start either.
    #[test]
    fn an_async_task_resolved_before_it_starts_does_not_start() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        let started = Arc::new(AtomicBool::new(false));
        let job = async_job(&started);
        job.resolve(Err(TaskError::Cancelled { key: job.key.clone(), reason: "test".into() }));
        let outcome = run_now(&job);
        assert!(matches!(outcome, TaskOutcome::NotRun), "{outcome:?}");
        assert!(!started.load(SeqCst));
    }

    #[test]
    fn wakers_are_registered_once_per_task_and_each_can_be_taken_back() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        struct Flag(AtomicBool);
        impl futures::task::ArcWake for Flag {
            fn wake_by_ref(flag: &Arc<Self>) {
                flag.0.store(true, SeqCst);
            }
        }
        let flags: Vec<Arc<Flag>> =
            (0..3).map(|_| Arc::new(Flag(AtomicBool::new(false)))).collect();
        let wakers: Vec<Waker> =
            flags.iter().map(|flag| futures::task::waker(flag.clone())).collect();
        let mut list = Wakers::default();
        for waker in wakers.iter().chain(&wakers) {
            list.register(waker);
        }
        assert_eq!(list.iter().count(), 3, "a waker registered twice is kept once");
        assert_eq!(list.remove(&wakers[0]).len(), 1, "the first one taken back");
        assert!(list.remove(&wakers[0]).is_empty(), "and only once");
        assert_eq!(list.iter().count(), 2);
        list.wake_all();
        let woken: Vec<bool> = flags.iter().map(|flag| flag.0.load(SeqCst)).collect();
        assert_eq!(woken, [false, true, true]);
        let mut list = Wakers::default();
        list.register(&wakers[1]);
        list.register(&wakers[2]);
        assert_eq!(list.remove(&wakers[2]).len(), 1);
        assert_eq!(list.remove(&wakers[1]).len(), 1);
        assert!(list.0.is_none(), "an emptied list holds no allocation");
    }
}
