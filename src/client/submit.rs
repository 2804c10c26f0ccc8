//! [`TaskBuilder`]: submitting with options (key, purity, priority, retries) and dependencies.

use std::any::TypeId;
use std::fmt;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::marker::PhantomData;
use std::sync::Arc;

use super::core::{AsyncBody, BlockingBody, Body, Core, Job, RegisteredCall, SubmitOptions, Value};
use super::deps::{Dependencies, DependencyList, DependencyReader};
use super::{Client, TaskFuture};
use crate::executor::BoxFuture;
use crate::job::{Inputs, TaskFailure};
use crate::scheduler::{TaskId, TaskKey, prefix_for_type_name};

/// A new key for an impure submission of `F` to `core`'s client.
pub(crate) fn fresh_key<F>(core: &Core) -> TaskKey {
    TaskKey::generated(prefix_of::<F>(), core.fresh_token())
}

/// Replaces each detached job in `deps` (an actor call's, which the scheduler never hears
/// of) by a bridge task the scheduler schedules: an async task under the call's key that
/// waits for the call and gives its value (or fails with its error). Returns the new list and
/// the bridges' handles, which the caller keeps until the dependent is submitted.
pub(super) fn bridge_detached(core: &Arc<Core>, mut deps: Inputs) -> (Inputs, Vec<TaskFuture<()>>) {
    let mut bridges = Vec::new();
    for dep in deps.iter_mut().filter(|dep| dep.is_detached()) {
        let call = Arc::clone(dep);
        let body = AsyncBody(move |_: Vec<Value>| -> BoxFuture<Result<Value, TaskFailure>> {
            let call = Arc::clone(&call);
            Box::pin(async move {
                std::future::poll_fn(|cx| call.poll_outcome(cx))
                    .await
                    .map_err(TaskFailure::from_error)
            })
        });
        let bridge = Job::new(core.next_id(), dep.key.clone(), Vec::new(), body, None);
        let bridge = core.submit(bridge, &SubmitOptions::default(), false);
        *dep = Arc::clone(&bridge);
        bridges.push(TaskFuture::from_job(bridge, Arc::clone(core)));
    }
    (deps, bridges)
}

/// The key prefix of `F` (see [`prefix_for_type_name`]), remembered for the last type this
/// thread asked about: a loop of submissions of one function scans its type name once, not
/// once per task (the scan was about a tenth of a submission's instructions).
fn prefix_of<F>() -> &'static str {
    thread_local! {
        static LAST: std::cell::Cell<(&'static str, &'static str)> =
            const { std::cell::Cell::new(("", "")) };
    }
    let type_name = std::any::type_name::<F>();
    LAST.with(|last| {
        let (name, prefix) = last.get();
        // The same `&'static str` (address and length): the same type name.
        if std::ptr::eq(name, type_name) {
            return prefix;
        }
        let prefix = prefix_for_type_name(type_name);
        last.set((type_name, prefix));
        prefix
    })
}

/// The deterministic key of a pure submission of `F` with inputs hashed into `inputs`; `None`
/// when `F` captures variables (their values cannot be hashed, so it is never pure).
fn pure_key<F: 'static>(inputs: impl FnOnce(&mut DefaultHasher)) -> Option<TaskKey> {
    pure_token::<F>(inputs).map(|token| TaskKey::generated(prefix_of::<F>(), token))
}

/// The token of a pure submission of `F` (see [`pure_key`]).
fn pure_token<F: 'static>(inputs: impl FnOnce(&mut DefaultHasher)) -> Option<u64> {
    if size_of::<F>() != 0 {
        return None;
    }
    let mut hasher = DefaultHasher::new();
    TypeId::of::<F>().hash(&mut hasher);
    inputs(&mut hasher);
    Some(hasher.finish())
}

/// The key of a scattered `value` of type `T` by its content, with its token: equal values
/// of one type get one key.
fn content_key<T: Hash + 'static>(value: &T) -> (TaskKey, u64) {
    let mut hasher = DefaultHasher::new();
    TypeId::of::<T>().hash(&mut hasher);
    value.hash(&mut hasher);
    let token = hasher.finish();
    (TaskKey::generated(prefix_of::<T>(), token), token)
}

/// No dependencies: the task's function takes the argument given to `submit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDeps;

/// The task runs after `D` and its function takes their values.
#[derive(Debug, Clone, Copy)]
pub struct After<D>(D);

/// Every submission gets a new key (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Impure;

/// Submissions of the same function and inputs share one key, one task and one result.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pure;

/// Configures one or more submissions; made by [`Client::task`] or [`Client::after`].
///
/// The type parameters track the choices that change what `submit` accepts: `D` is
/// [`NoDeps`] or [`After`] (the function then takes the dependencies' values), `P` is
/// [`Impure`] or [`Pure`] (the argument must then be `Hash`).
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::new()?;
/// // Options: a retried, high-priority task.
/// let flaky = client.task().retries(2).priority(10).submit(|x: u32| x + 1, 1);
/// assert_eq!(flaky.result()?, 2);
/// // Dependencies: runs after `flaky`, receives its value.
/// let next = client.after(&flaky).submit(|x: u32| x * 100);
/// assert_eq!(next.result()?, 200);
/// // Purity: the same function and argument share one task.
/// fn square(x: u64) -> u64 { x * x }
/// let first = client.task().pure().submit(square, 12);
/// let again = client.task().pure().submit(square, 12);
/// assert_eq!(first.key(), again.key());
/// # Ok(()) }
/// ```
#[must_use = "a TaskBuilder does nothing until one of its submit methods is called"]
pub struct TaskBuilder<'c, D = NoDeps, P = Impure> {
    client: &'c Client,
    options: SubmitOptions,
    deps: D,
    _purity: PhantomData<P>,
}

impl<D, P> fmt::Debug for TaskBuilder<'_, D, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskBuilder")
            .field("options", &self.options)
            .field("pure", &(std::any::type_name::<P>() == std::any::type_name::<Pure>()))
            .finish_non_exhaustive()
    }
}

impl<'c> TaskBuilder<'c> {
    /// A builder with these options and none of `D`'s state (for a graph's nodes).
    pub(crate) fn clone_options(&self) -> TaskBuilder<'c> {
        TaskBuilder {
            client: self.client,
            options: self.options.clone(),
            deps: NoDeps,
            _purity: PhantomData,
        }
    }

    /// A builder with these options but no key.
    pub(crate) fn without_key(&self) -> TaskBuilder<'c> {
        let mut builder = self.clone_options();
        builder.options.key = None;
        builder
    }

    pub(crate) fn new(client: &'c Client) -> TaskBuilder<'c> {
        TaskBuilder { client, options: default_options(client), deps: NoDeps, _purity: PhantomData }
    }
}

impl<'c, D, P> TaskBuilder<'c, D, P> {
    /// Gives the task exactly this key. Another submission with the same key, while the
    /// first is held, returns the same task and result instead of running again.
    ///
    /// For the `map` methods the key is a prefix, as in Dask: each item gets
    /// `key-<token>`, the token drawn afresh (impure) or derived from the function and the
    /// item (pure). To give each item a key of your own, use
    /// [`map_with_keys`](TaskBuilder::map_with_keys).
    pub fn key(mut self, key: impl Into<TaskKey>) -> Self {
        self.options.key = Some(key.into());
        self
    }

    /// Among ready tasks, higher priorities run first; equal priorities run in submission
    /// order. The default is 0 (for a sub-task, submitted through
    /// [`TaskContext::client`](super::TaskContext::client), its parent's priority plus one,
    /// so that trees of tasks run depth first); negative values are fine.
    pub fn priority(mut self, priority: i32) -> Self {
        self.options.priority = priority;
        self
    }

    /// Re-runs the task up to `retries` more times when its body returns an error or panics.
    /// The final error says how many attempts were made.
    pub fn retries(mut self, retries: u32) -> Self {
        self.options.retries = retries;
        self
    }

    /// How many times the task may be lost with its worker (a crashed process on a
    /// distributed backend) before it fails with
    /// [`TaskError::WorkerLost`](crate::TaskError::WorkerLost). Separate from
    /// [`retries`](TaskBuilder::retries). Default
    /// [`DEFAULT_ALLOWED_FAILURES`](crate::scheduler::DEFAULT_ALLOWED_FAILURES): 3 (four
    /// deliveries), as in Dask.
    pub fn allowed_failures(mut self, allowed_failures: u32) -> Self {
        self.options.allowed_failures = allowed_failures;
        self
    }

    /// Makes the task need `amount` of the worker resource `name` (Dask's
    /// `resources={"GPU": 1}`): only a worker that declares at least that much runs it, and
    /// a worker runs its tasks that need a resource only while their sum stays within what
    /// it declared. Call it once per resource; a name given again keeps the last amount.
    ///
    /// For registered tasks ([`submit_task`](TaskBuilder::submit_task)) on a transport whose
    /// workers declare resources: on Redis,
    /// [`WorkerBuilder::resources`](crate::worker::WorkerBuilder::resources). A worker that
    /// lacks the resource gives the task back to the queue for one that has it; when no live
    /// worker of the queue declares enough for the worker's
    /// [`unrunnable_after`](crate::worker::WorkerBuilder::unrunnable_after) time, the task
    /// fails with a message naming the resource. The in-process pool declares none: a task
    /// that needs a resource fails there at once, as does a closure that needs one (a
    /// closure runs in this process only).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// // The in-process pool declares no GPU: a clear error, not a task waiting for ever.
    /// let future = client.task().resources("GPU", 1).submit(|x: u32| x + 1, 1);
    /// let error = future.result().unwrap_err();
    /// assert!(error.to_string().contains("GPU"), "{error}");
    /// # Ok(()) }
    /// ```
    pub fn resources(mut self, name: impl Into<String>, amount: u64) -> Self {
        let name = name.into();
        self.options.resources.retain(|(held, _)| *held != name);
        self.options.resources.push((name, amount));
        self
    }

    /// Makes the task pure: its key is derived from the function and its inputs, so that
    /// identical submissions share one task and one result (Dask's `pure=True`).
    ///
    /// Only functions that capture nothing (fn items and closures without captures) can be
    /// pure: a capturing closure's captured values cannot be hashed, so it keeps getting new
    /// keys. Inputs are the argument (which must be `Hash`) or the dependencies' keys.
    pub fn pure(self) -> TaskBuilder<'c, D, Pure> {
        TaskBuilder {
            client: self.client,
            options: self.options,
            deps: self.deps,
            _purity: PhantomData,
        }
    }

    /// Submits one job under `key`; `shared` keys are found again by later submissions.
    fn submit_keyed<T>(
        &self,
        key: (TaskKey, bool),
        deps: DependencyList,
        body: impl Body,
    ) -> TaskFuture<T> {
        self.submit_job(key, deps, body, None)
    }

    /// How many lost deliveries the submissions tolerate.
    pub(super) fn allowed_failures_option(&self) -> u32 {
        self.options.allowed_failures
    }

    /// The worker resources each submission's runs hold.
    pub(super) fn resources_option(&self) -> Vec<(String, u64)> {
        self.options.resources.clone()
    }

    /// Submits one job, carrying a registered task's call when it is one.
    pub(super) fn submit_job<T>(
        &self,
        key: (TaskKey, bool),
        deps: DependencyList,
        body: impl Body,
        call: Option<RegisteredCall>,
    ) -> TaskFuture<T> {
        self.submit_job_as(self.client.core().next_id(), key, deps, body, call)
    }

    /// [`submit_job`](TaskBuilder::submit_job) with the id given (a body that carries its
    /// task's context knows its id).
    pub(super) fn submit_job_as<T>(
        &self,
        id: TaskId,
        key: (TaskKey, bool),
        deps: DependencyList,
        body: impl Body,
        call: Option<RegisteredCall>,
    ) -> TaskFuture<T> {
        let (key, shared) = key;
        let core = self.client.core();
        let address = Arc::as_ptr(core) as usize;
        let foreign = deps.first_foreign(address);
        let foreign = foreign.and_then(|index| deps.jobs.iter().nth(index).map(Arc::clone));
        // Kept until the dependent is submitted, which holds them from then on.
        let (deps, _bridges) = match foreign {
            // Its task id means nothing to this client's scheduler: depend on nothing.
            Some(_) => (Inputs::default(), Vec::new()),
            None => bridge_detached(core, deps.jobs),
        };
        let refusal = foreign.map(|dep| {
            format!(
                "it depends on {}, a future of another client (a task can wait only \
                 for futures of its own client, or of a client of the same ClusterHandle); \
                 pass its value instead (gather it, then submit or scatter it on this client)",
                dep.key
            )
        });
        let job = match refusal.or_else(|| self.unplaceable(&key, call.as_ref())) {
            // Runs nowhere: fails at once with the reason (its own body never runs).
            Some(message) => Job::new(
                id,
                key,
                deps,
                BlockingBody(move |_: &[Value]| Err(TaskFailure::new(message.clone()))),
                None,
            ),
            None => Job::new(id, key, deps, body, call),
        };
        if self.client.refuse_if_detached(&job, "submit") {
            return TaskFuture::from_job(job, Arc::clone(core));
        }
        let job = core.submit(job, &self.options, shared);
        self.client.track(&job);
        if let Some(parent) = self.client.parent() {
            parent.adopt(&job);
        } else {
            adopt_in_running_task(core, &job);
        }
        TaskFuture::from_job(job, Arc::clone(core))
    }

    /// Why a task that needs resources cannot run on this client's transport, if it cannot:
    /// a closure (it runs in this process only, where no worker declares resources), or a
    /// registered task on the in-process pool (which declares none); or a resource asked
    /// for in no amount.
    fn unplaceable(&self, key: &TaskKey, call: Option<&RegisteredCall>) -> Option<String> {
        let resources = &self.options.resources;
        let (name, _) = resources.first()?;
        if let Some((name, _)) = resources.iter().find(|(_, amount)| *amount == 0) {
            return Some(format!(
                "task {key} asks for 0 of the resource {name:?}; ask for at least 1, or do not call resources() for it"
            ));
        }
        if call.is_none() {
            return Some(format!(
                "task {key} needs the worker resource {name:?}, but it is a closure, which runs in this process where no worker declares resources; make it a registered task (submit_task) for workers that declare {name:?}"
            ));
        }
        (self.client.core().transport.name() == "in-process").then(|| {
            format!(
                "task {key} needs the worker resource {name:?}, but the in-process pool declares no resources; run it on a Redis worker started with .resources({name:?}, n), or submit it without resources()"
            )
        })
    }

    /// A task builder's client, for the context of a body it submits.
    pub(super) fn client(&self) -> &Client {
        self.client
    }

    /// The priority the submissions get.
    pub(super) fn priority_option(&self) -> i32 {
        self.options.priority
    }

    /// A fresh generated key for `F`: under the parent task's key for a client handed to a
    /// task body (`parent/prefix-token`), else `prefix-token`.
    fn fresh<F>(&self) -> TaskKey {
        let core = self.client.core();
        match self.client.parent() {
            None => {
                // In a registered task's body on a Redis worker: a sub-task of that task.
                #[cfg(feature = "redis")]
                if let Some(parent) = crate::transport::redis::task_services::current_task_key() {
                    return TaskKey::named(format!(
                        "{parent}/{}",
                        TaskKey::generated(prefix_of::<F>(), core.fresh_token())
                    ));
                }
                fresh_key::<F>(core)
            }
            Some(parent) => TaskKey::named(format!(
                "{}/{}",
                parent.key(),
                TaskKey::generated(prefix_of::<F>(), core.fresh_token())
            )),
        }
    }

    /// A job without dependencies, and whether its key is shared, for
    /// [`submit_jobs`](TaskBuilder::submit_jobs).
    fn job(&self, key: (TaskKey, bool), body: impl Body) -> (Arc<Job>, bool) {
        let (key, shared) = key;
        let core = self.client.core();
        (Job::new(core.next_id(), key, Vec::new(), body, None), shared)
    }

    /// Submits many jobs with this builder's options, in order (`map`): the scheduler lock is
    /// taken once per batch rather than once per job.
    fn submit_jobs<T>(&self, jobs: impl Iterator<Item = (Arc<Job>, bool)>) -> Vec<TaskFuture<T>> {
        let core = self.client.core();
        let parent = self.client.parent();
        if self.client.is_detached_member() {
            return jobs
                .map(|(job, _)| {
                    self.client.refuse_if_detached(&job, "map");
                    TaskFuture::from_job(job, Arc::clone(core))
                })
                .collect();
        }
        core.submit_many(jobs, &self.options)
            .into_iter()
            .map(|job| {
                self.client.track(&job);
                if let Some(parent) = parent {
                    parent.adopt(&job);
                } else {
                    adopt_in_running_task(core, &job);
                }
                TaskFuture::from_job(job, Arc::clone(core))
            })
            .collect()
    }

    /// The explicit key if one was given, else the pure key if there is one, else a fresh
    /// key; and whether later submissions should find it.
    pub(super) fn key_or<F>(&self, pure: Option<TaskKey>) -> (TaskKey, bool) {
        match (&self.options.key, pure) {
            (Some(key), _) => (key.clone(), true),
            (None, Some(key)) => (key, true),
            (None, None) => (self.fresh::<F>(), false),
        }
    }

    /// The key of one item of a `map`: the builder's key is a prefix (Dask's `key=` in
    /// `map`), followed by the item's pure token, or by a fresh token when the map is impure
    /// (`pure` is `None`). Only pure keys are shared.
    pub(super) fn item_key<F>(&self, pure: Option<(TaskKey, u64)>) -> (TaskKey, bool) {
        match (&self.options.key, pure) {
            (Some(prefix), Some((_, token))) => {
                (TaskKey::prefixed(&prefix.to_string(), token), true)
            }
            (Some(prefix), None) => {
                (TaskKey::prefixed(&prefix.to_string(), self.client.core().fresh_token()), false)
            }
            (None, Some((key, _))) => (key, true),
            (None, None) => (self.fresh::<F>(), false),
        }
    }
}

/// The options a submission starts with: the defaults, except that a sub-task (submitted
/// through a client from [`TaskContext::client`](super::TaskContext::client)) starts one
/// priority above its parent, so that a tree of tasks runs depth first and keeps few bodies
/// waiting at once.
fn default_options(client: &Client) -> SubmitOptions {
    let mut options = SubmitOptions::default();
    if let Some(parent) = client.parent() {
        options.priority = parent.priority().saturating_add(1);
    }
    options
}

fn blocking_body<F, A, R>(function: F, argument: A) -> impl Body
where
    F: Fn(A) -> R + Send + Sync + 'static,
    A: Clone + Send + Sync + 'static,
    R: Send + Sync + 'static,
{
    BlockingBody(move |_: &[Value]| Ok(Arc::new(function(argument.clone())) as Value))
}

fn fallible_body<F, A, T, E>(function: F, argument: A) -> impl Body
where
    F: Fn(A) -> Result<T, E> + Send + Sync + 'static,
    A: Clone + Send + Sync + 'static,
    T: Send + Sync + 'static,
    E: fmt::Display,
{
    BlockingBody(move |_: &[Value]| match function(argument.clone()) {
        Ok(value) => Ok(Arc::new(value) as Value),
        Err(error) => Err(TaskFailure::new(error.to_string())),
    })
}

fn async_body<F, A, Fut, R>(function: F, argument: A) -> impl Body
where
    F: Fn(A) -> Fut + Send + Sync + 'static,
    A: Clone + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: Send + Sync + 'static,
{
    AsyncBody(move |_: Vec<Value>| -> BoxFuture<Result<Value, TaskFailure>> {
        let running = function(argument.clone());
        Box::pin(async move { Ok(Arc::new(running.await) as Value) })
    })
}

/// Options first, dependencies after.
impl<'c, P> TaskBuilder<'c, NoDeps, P> {
    /// Makes the task run after `deps` and receive their values, keeping the options set so
    /// far: `client.task().key("y").priority(3).after(&x)` is
    /// `client.after(&x).key("y").priority(3)`. See [`Client::after`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let x = client.submit(|x: i64| x + 1, 1);
    /// let y = client.task().key("y").priority(3).after(&x).submit(|x: i64| x * 10);
    /// assert_eq!(y.key().to_string(), "y");
    /// assert_eq!(y.result()?, 20);
    /// # Ok(()) }
    /// ```
    pub fn after<D: Dependencies>(self, deps: D) -> TaskBuilder<'c, After<D>, P> {
        TaskBuilder {
            client: self.client,
            options: self.options,
            deps: After(deps),
            _purity: PhantomData,
        }
    }
}

/// Methods for tasks without dependencies and with fresh keys.
impl TaskBuilder<'_, NoDeps, Impure> {
    /// Submits `function(argument)`; see [`Client::submit`].
    pub fn submit<F, A, R>(&self, function: F, argument: A) -> TaskFuture<R>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Clone + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        let key = self.key_or::<F>(None);
        self.submit_keyed(key, DependencyList::default(), blocking_body(function, argument))
    }

    /// Submits a fallible `function(argument)`; see [`Client::try_submit`].
    pub fn try_submit<F, A, T, E>(&self, function: F, argument: A) -> TaskFuture<T>
    where
        F: Fn(A) -> Result<T, E> + Send + Sync + 'static,
        A: Clone + Send + Sync + 'static,
        T: Send + Sync + 'static,
        E: fmt::Display,
    {
        let key = self.key_or::<F>(None);
        self.submit_keyed(key, DependencyList::default(), fallible_body(function, argument))
    }

    /// Submits an async `function(argument)`; see [`Client::submit_async`].
    pub fn submit_async<F, A, Fut, R>(&self, function: F, argument: A) -> TaskFuture<R>
    where
        F: Fn(A) -> Fut + Send + Sync + 'static,
        A: Clone + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: Send + Sync + 'static,
    {
        let key = self.key_or::<F>(None);
        self.submit_keyed(key, DependencyList::default(), async_body(function, argument))
    }

    /// Submits `function(item)` for every item; see [`Client::map`]. With a
    /// [`key`](TaskBuilder::key), the key is a prefix: each item gets `key-<fresh token>`,
    /// a new task that no other submission shares.
    #[must_use = "dropping the futures releases their tasks, which then may never run; keep them, or pass them to `client.fire_and_forget`"]
    pub fn map<F, I, R>(&self, function: F, items: I) -> Vec<TaskFuture<R>>
    where
        F: Fn(I::Item) -> R + Send + Sync + 'static,
        I: IntoIterator,
        I::Item: Clone + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        let function = Arc::new(function);
        let jobs = items.into_iter().map(|item| {
            let function = Arc::clone(&function);
            let key = self.item_key::<F>(None);
            self.job(key, blocking_body(move |item| function(item), item))
        });
        self.submit_jobs(jobs)
    }

    /// One task per item, each after the futures of its item; see
    /// [`Client::map_after_each`]. With a [`key`](TaskBuilder::key), the key is a prefix:
    /// `key-<fresh token>` per item.
    #[must_use = "dropping the futures releases their tasks, which then may never run; keep them, or pass them to `client.fire_and_forget`"]
    pub fn map_after_each<D, F, R>(
        &self,
        function: F,
        items: impl IntoIterator<Item = D>,
    ) -> Vec<TaskFuture<R>>
    where
        D: Dependencies,
        F: Fn(D::Values) -> R + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        let function = Arc::new(function);
        let base = self.without_key();
        items
            .into_iter()
            .map(|deps| {
                let function = Arc::clone(&function);
                // The user's key as a prefix, else the user's function's name (the wrapping
                // closure below would name it `closure`).
                let (key, _) = self.item_key::<F>(None);
                let builder = base.clone_options().key(key);
                builder.after(deps).submit(move |values| function(values))
            })
            .collect()
    }

    /// Submits `function(item)` for every `(key, item)` pair, each under exactly its key
    /// (Dask's `map` with a list of keys). As with [`key`](TaskBuilder::key), a key that is
    /// already held returns that task instead of running again.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let futures = client.task().map_with_keys(|x: i32| x * 2, [("a", 1), ("b", 2)]);
    /// assert_eq!(futures[1].key().to_string(), "b");
    /// assert_eq!(client.blocking().gather(&futures)?, vec![2, 4]);
    /// # Ok(()) }
    /// ```
    #[must_use = "dropping the futures releases their tasks, which then may never run; keep them, or pass them to `client.fire_and_forget`"]
    pub fn map_with_keys<F, K, T, I, R>(&self, function: F, keyed_items: I) -> Vec<TaskFuture<R>>
    where
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = (K, T)>,
        K: Into<TaskKey>,
        T: Clone + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        let function = Arc::new(function);
        let jobs = keyed_items.into_iter().map(|(key, item)| {
            let function = Arc::clone(&function);
            self.job((key.into(), true), blocking_body(move |item| function(item), item))
        });
        self.submit_jobs(jobs)
    }
}

/// Scattering: values put into the cluster as finished futures.
impl<P> TaskBuilder<'_, NoDeps, P> {
    /// Registers `value` as a finished task under `key` (and whether it is shared), or
    /// returns the task already holding a shared `key`.
    fn scatter_keyed<T: Send + Sync + 'static>(
        &self,
        key: (TaskKey, bool),
        value: T,
    ) -> TaskFuture<T> {
        let core = self.client.core();
        let (key, shared) = key;
        let job = Job::new(
            core.next_id(),
            key,
            Vec::new(),
            BlockingBody(|_: &[Value]| Err("a scattered value is never run".into())),
            None,
        );
        if self.client.refuse_if_detached(&job, "scatter") {
            return TaskFuture::from_job(job, Arc::clone(core));
        }
        let job = core.insert_value(job, Arc::new(value), shared);
        self.client.track(&job);
        TaskFuture::from_job(job, Arc::clone(core))
    }
}

impl TaskBuilder<'_, NoDeps, Impure> {
    /// Puts `value` into the cluster as a finished future; see [`Client::scatter`]. With a
    /// [`key`](TaskBuilder::key), the value is stored under exactly that key, and while it
    /// is held, another submission or scatter with that key gets this value.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let table = client.task().key("table").scatter(vec![1, 2, 3]);
    /// let again = client.task().key("table").scatter(vec![9]);
    /// assert_eq!(again.result()?, vec![1, 2, 3], "the key is held: its value is shared");
    /// # drop(table);
    /// # Ok(()) }
    /// ```
    pub fn scatter<T: Send + Sync + 'static>(&self, value: T) -> TaskFuture<T> {
        let key = self.key_or::<T>(None);
        self.scatter_keyed(key, value)
    }

    /// Scatters each value as its own future; see [`Client::scatter_each`]. With a
    /// [`key`](TaskBuilder::key), the key is a prefix: `key-<fresh token>` per value.
    #[must_use = "dropping the futures releases the scattered values"]
    pub fn scatter_each<T: Send + Sync + 'static>(
        &self,
        values: impl IntoIterator<Item = T>,
    ) -> Vec<TaskFuture<T>> {
        values
            .into_iter()
            .map(|value| self.scatter_keyed(self.item_key::<T>(None), value))
            .collect()
    }
}

/// Methods for pure tasks without dependencies: the key is derived from the function and the
/// argument.
impl TaskBuilder<'_, NoDeps, Pure> {
    /// Puts `value` into the cluster under a key derived from its content (Dask's
    /// `scatter(hash=True)`): equal values scattered while the first is held share one key
    /// and one stored value. The key reads `<type name>-<hash>`, or `<key>-<hash>` after
    /// [`key`](TaskBuilder::key).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let first = client.task().pure().scatter(String::from("config"));
    /// let second = client.task().pure().scatter(String::from("config"));
    /// assert_eq!(first.key(), second.key());
    /// # Ok(()) }
    /// ```
    pub fn scatter<T: Hash + Send + Sync + 'static>(&self, value: T) -> TaskFuture<T> {
        let key = self.item_key::<T>(Some(content_key(&value)));
        self.scatter_keyed(key, value)
    }

    /// Scatters each value as its own future under a key derived from its content.
    #[must_use = "dropping the futures releases the scattered values"]
    pub fn scatter_each<T: Hash + Send + Sync + 'static>(
        &self,
        values: impl IntoIterator<Item = T>,
    ) -> Vec<TaskFuture<T>> {
        values
            .into_iter()
            .map(|value| self.scatter_keyed(self.item_key::<T>(Some(content_key(&value))), value))
            .collect()
    }

    /// Submits `function(argument)` under a key derived from both.
    pub fn submit<F, A, R>(&self, function: F, argument: A) -> TaskFuture<R>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Clone + Hash + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        let key = self.key_or::<F>(pure_key::<F>(|hasher| argument.hash(hasher)));
        self.submit_keyed(key, DependencyList::default(), blocking_body(function, argument))
    }

    /// Submits a fallible `function(argument)` under a key derived from both.
    pub fn try_submit<F, A, T, E>(&self, function: F, argument: A) -> TaskFuture<T>
    where
        F: Fn(A) -> Result<T, E> + Send + Sync + 'static,
        A: Clone + Hash + Send + Sync + 'static,
        T: Send + Sync + 'static,
        E: fmt::Display,
    {
        let key = self.key_or::<F>(pure_key::<F>(|hasher| argument.hash(hasher)));
        self.submit_keyed(key, DependencyList::default(), fallible_body(function, argument))
    }

    /// Submits an async `function(argument)` under a key derived from both.
    pub fn submit_async<F, A, Fut, R>(&self, function: F, argument: A) -> TaskFuture<R>
    where
        F: Fn(A) -> Fut + Send + Sync + 'static,
        A: Clone + Hash + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: Send + Sync + 'static,
    {
        let key = self.key_or::<F>(pure_key::<F>(|hasher| argument.hash(hasher)));
        self.submit_keyed(key, DependencyList::default(), async_body(function, argument))
    }

    /// Submits `function(item)` for every item, each under a key derived from the function
    /// and the item: mapping the same function over the same items twice shares the tasks.
    /// With a [`key`](TaskBuilder::key), that key replaces the function's name as the
    /// prefix: `key-<token of the function and the item>`.
    #[must_use = "dropping the futures releases their tasks, which then may never run; keep them, or pass them to `client.fire_and_forget`"]
    pub fn map<F, I, R>(&self, function: F, items: I) -> Vec<TaskFuture<R>>
    where
        F: Fn(I::Item) -> R + Send + Sync + 'static,
        I: IntoIterator,
        I::Item: Clone + Hash + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        let function = Arc::new(function);
        let jobs = items.into_iter().map(|item| {
            let token = pure_token::<F>(|hasher| item.hash(hasher));
            let key = self.item_key::<F>(
                token.map(|token| (TaskKey::generated(prefix_of::<F>(), token), token)),
            );
            let function = Arc::clone(&function);
            self.job(key, blocking_body(move |item| function(item), item))
        });
        self.submit_jobs(jobs)
    }
}

impl<'c, D: Dependencies, P: 'static> TaskBuilder<'c, After<D>, P> {
    pub(crate) fn with_deps(client: &'c Client, deps: D) -> Self {
        TaskBuilder {
            client,
            options: default_options(client),
            deps: After(deps),
            _purity: PhantomData,
        }
    }

    /// The key for a function over these dependencies: pure ones hash the dependencies' keys.
    pub(super) fn dependent_key<F: 'static>(&self, list: &DependencyList) -> (TaskKey, bool) {
        let pure = if TypeId::of::<P>() == TypeId::of::<Pure>() {
            pure_key::<F>(|hasher| {
                for job in list.jobs.iter() {
                    job.key.hash(hasher);
                }
                list.lengths.hash(hasher);
            })
        } else {
            None
        };
        self.key_or::<F>(pure)
    }

    /// The dependencies' jobs, and the lengths of their slice parts for the body to read its
    /// inputs by (no allocation when there are none: futures and tuples of futures).
    pub(super) fn collect(&self) -> (DependencyList, Box<[usize]>) {
        let mut list = DependencyList::with_capacity(self.deps.0.count());
        self.deps.0.collect(&mut list);
        let lengths = Box::from(list.lengths.as_slice());
        (list, lengths)
    }

    /// Submits `function(values)`, run once every dependency finished, with their values.
    /// If a dependency fails, this task fails with
    /// [`TaskError::DependencyFailed`](crate::TaskError::DependencyFailed) carrying the root
    /// error; if one is cancelled, this one is cancelled too.
    pub fn submit<F, R>(&self, function: F) -> TaskFuture<R>
    where
        F: Fn(D::Values) -> R + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        self.submit_dependent::<F, R>(move |values| Ok(Arc::new(function(values)) as Value))
    }

    /// Like [`submit`](TaskBuilder::submit) for a function that can fail: an `Err` becomes
    /// [`TaskError::Failed`](crate::TaskError::Failed).
    pub fn try_submit<F, T, E>(&self, function: F) -> TaskFuture<T>
    where
        F: Fn(D::Values) -> Result<T, E> + Send + Sync + 'static,
        T: Send + Sync + 'static,
        E: fmt::Display,
    {
        self.submit_dependent::<F, T>(move |values| {
            function(values)
                .map(|value| Arc::new(value) as Value)
                .map_err(|error| TaskFailure::new(error.to_string()))
        })
    }

    /// Submits a blocking body over the dependencies' values, keyed by the user's `F`.
    fn submit_dependent<F: 'static, T>(
        &self,
        run: impl Fn(D::Values) -> Result<Value, TaskFailure> + Send + Sync + 'static,
    ) -> TaskFuture<T> {
        let (list, lengths) = self.collect();
        let key = self.dependent_key::<F>(&list);
        let body = BlockingBody(move |inputs: &[Value]| {
            let values =
                D::read(&mut DependencyReader::new(inputs, &lengths)).ok_or_else(|| {
                    "internal error: dependency values of an unexpected type".to_owned()
                })?;
            run(values)
        });
        self.submit_keyed(key, list, body)
    }

    /// Submits an async `function(values)`, run on the executor once every dependency
    /// finished.
    pub fn submit_async<F, Fut, R>(&self, function: F) -> TaskFuture<R>
    where
        F: Fn(D::Values) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: Send + Sync + 'static,
    {
        let (list, lengths) = self.collect();
        let key = self.dependent_key::<F>(&list);
        let body = AsyncBody(move |inputs: Vec<Value>| -> BoxFuture<Result<Value, TaskFailure>> {
            match D::read(&mut DependencyReader::new(&inputs, &lengths)) {
                Some(values) => {
                    let running = function(values);
                    Box::pin(async move { Ok(Arc::new(running.await) as Value) })
                }
                None => Box::pin(async {
                    Err("internal error: dependency values of an unexpected type".into())
                }),
            }
        });
        self.submit_keyed(key, list, body)
    }
}

/// In a registered task's body on a Redis worker: makes `job` a sub-task of that run, which
/// the worker cancels when the run is cancelled (its client cancelled it, or the worker
/// restarts). Elsewhere, nothing.
fn adopt_in_running_task(core: &Arc<Core>, job: &Arc<Job>) {
    #[cfg(feature = "redis")]
    if let Some(run) = crate::transport::redis::task_services::current_run() {
        let parent = crate::transport::redis::task_services::current_task_key().unwrap_or_default();
        let (core, job) = (Arc::downgrade(core), Arc::downgrade(job));
        run.on_cancel(Box::new(move || {
            if let (Some(core), Some(job)) = (core.upgrade(), job.upgrade())
                && job.status().is_none()
            {
                core.cancel(&job, &format!("its parent task {parent} was cancelled"));
            }
        }));
    }
    #[cfg(not(feature = "redis"))]
    let _ = (core, job);
}
