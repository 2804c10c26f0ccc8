//! Submitting registered [`Task`]s: one definition, run in this process or by workers in
//! other processes, whichever transport the client has.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use super::core::{BlockingBody, InputEncoder, RegisteredCall, Value};
use super::deps::{Dependencies, DependencyList};
use super::submit::{After, Impure, NoDeps, Pure, TaskBuilder};
use super::{Client, TaskFuture};
use crate::job::TaskFailure;
use crate::scheduler::TaskKey;
use crate::task::{Task, dependency_input};

/// Decodes the JSON of `T`'s output into a shared value.
fn decode_output<T: Task>(bytes: &[u8]) -> Result<Value, TaskFailure> {
    serde_json::from_slice::<T::Output>(bytes)
        .map(|output| Arc::new(output) as Value)
        .map_err(TaskFailure::from_error)
}

/// Encodes a shared value of `T`'s output as JSON.
fn encode_output<T: Task>(value: &Value) -> Result<Vec<u8>, TaskFailure> {
    let output = value.downcast_ref::<T::Output>().ok_or_else(|| {
        TaskFailure::new(format!("the value of a {} task is not its output type", T::NAME))
    })?;
    serde_json::to_vec(output).map_err(|error| {
        TaskFailure::with_source(format!("the output of a {} task does not encode", T::NAME), error)
    })
}

fn run<T: Task>(input: T::Input) -> Result<Value, TaskFailure> {
    T::run(input)
        .map(|output| Arc::new(output) as Value)
        .map_err(|error| TaskFailure::new(error.to_string()))
}

fn call<T: Task>(
    encode_input: Option<InputEncoder>,
    allowed_failures: u32,
    resources: Vec<(String, u64)>,
    shared_key: bool,
) -> RegisteredCall {
    RegisteredCall {
        name: T::NAME,
        encode_input,
        decode_output: decode_output::<T>,
        encode_output: encode_output::<T>,
        allowed_failures,
        resources,
        shared_key,
    }
}

impl TaskBuilder<'_, NoDeps, Impure> {
    /// Submits the registered task `T` with `input`; see [`Client::submit_task`].
    pub fn submit_task<T: Task>(&self, input: T::Input) -> TaskFuture<T::Output> {
        let key = self.key_or::<T>(None);
        self.submit_task_keyed::<T>(key, input)
    }

    /// Submits `T` once per input, in order; see [`Client::map_task`]. With a
    /// [`key`](TaskBuilder::key), the key is a prefix: each input gets `key-<fresh token>`.
    #[must_use = "dropping the futures releases their tasks, which then may never run; keep them, or pass them to `client.fire_and_forget`"]
    pub fn map_task<T: Task>(
        &self,
        inputs: impl IntoIterator<Item = T::Input>,
    ) -> Vec<TaskFuture<T::Output>> {
        inputs
            .into_iter()
            .map(|input| self.submit_task_keyed::<T>(self.item_key::<T>(None), input))
            .collect()
    }
}

impl TaskBuilder<'_, NoDeps, Pure> {
    /// Submits the registered task `T` with `input` as a pure task: its key is derived from
    /// [`Task::NAME`] and the input's hash, so identical submissions share one task and one
    /// result (Dask's `pure=True`) — in this client, and on a transport that several client
    /// processes share (Redis), in every client of the queue: the first one computes it,
    /// the others wait for that run or take its result. The key does not depend on the
    /// binary (only on the name, the input, and the Rust version's `DefaultHasher`).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::Task;
    ///
    /// struct Square;
    /// impl Task for Square {
    ///     const NAME: &'static str = "square";
    ///     type Input = i64;
    ///     type Output = i64;
    ///     type Error = std::convert::Infallible;
    ///     fn run(x: i64) -> Result<i64, Self::Error> {
    ///         Ok(x * x)
    ///     }
    /// }
    ///
    /// let client = taskweave::Client::new()?;
    /// let first = client.task().pure().submit_task::<Square>(12);
    /// let again = client.task().pure().submit_task::<Square>(12);
    /// assert_eq!(first.key(), again.key());
    /// assert_eq!(again.result()?, 144);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn submit_task<T: Task>(&self, input: T::Input) -> TaskFuture<T::Output>
    where
        T::Input: Hash,
    {
        let mut hasher = DefaultHasher::new();
        T::NAME.hash(&mut hasher);
        input.hash(&mut hasher);
        let key = self.key_or::<T>(Some(TaskKey::generated(T::NAME, hasher.finish())));
        self.submit_task_keyed::<T>(key, input)
    }
}

impl<P> TaskBuilder<'_, NoDeps, P> {
    /// Submits `T` with `input` under `key` (and whether the key is shared).
    fn submit_task_keyed<T: Task>(
        &self,
        key: (crate::scheduler::TaskKey, bool),
        input: T::Input,
    ) -> TaskFuture<T::Output> {
        let input = Arc::new(input);
        let body_input = Arc::clone(&input);
        let body = BlockingBody(move |_: &[Value]| run::<T>(T::Input::clone(&body_input)));
        let encode = Box::new(move || serde_json::to_vec(&*input));
        let call =
            call::<T>(Some(encode), self.allowed_failures_option(), self.resources_option(), key.1);
        self.submit_job(key, DependencyList::default(), body, Some(call))
    }
}

impl<D: Dependencies, P: 'static> TaskBuilder<'_, After<D>, P> {
    /// Submits the registered task `T`, run once every dependency finished, with an input
    /// made of the dependencies' outputs.
    ///
    /// The input is the JSON array of the dependencies' outputs in dependency order, so `T`
    /// takes a tuple (`(A, B)` after `(&a, &b)`) or a `Vec` (after a slice of futures); after
    /// a single dependency it may also take that dependency's output itself. The
    /// dependencies must be registered tasks too: on a distributed transport, the worker
    /// reads their results from the broker by key; the client sends none of them.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::Task;
    ///
    /// struct Square;
    /// impl Task for Square {
    ///     const NAME: &'static str = "square";
    ///     type Input = i64;
    ///     type Output = i64;
    ///     type Error = std::convert::Infallible;
    ///     fn run(x: i64) -> Result<i64, Self::Error> {
    ///         Ok(x * x)
    ///     }
    /// }
    ///
    /// struct Sum;
    /// impl Task for Sum {
    ///     const NAME: &'static str = "sum";
    ///     type Input = Vec<i64>;
    ///     type Output = i64;
    ///     type Error = std::convert::Infallible;
    ///     fn run(values: Vec<i64>) -> Result<i64, Self::Error> {
    ///         Ok(values.iter().sum())
    ///     }
    /// }
    ///
    /// let client = taskweave::Client::new()?;
    /// let squares = client.map_task::<Square>(1..=3);
    /// let total = client.after(&squares).submit_task::<Sum>();
    /// assert_eq!(total.result()?, 14);
    /// // One dependency: its output is the input.
    /// let again = client.after(&total).submit_task::<Square>();
    /// assert_eq!(again.result()?, 196);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn submit_task<T: Task>(&self) -> TaskFuture<T::Output> {
        let (list, _) = self.collect();
        let key = self.dependent_key::<T>(&list);
        let encoders: Result<Vec<_>, String> = list
            .jobs
            .iter()
            .map(|job| match job.call() {
                Some(call) => Ok(call.encode_output),
                None => Err(format!(
                    "registered task {:?} depends on {}, which is not a registered task; only \
                     registered tasks' outputs can become a registered task's input",
                    T::NAME,
                    job.key
                )),
            })
            .collect();
        let body = BlockingBody(move |values: &[Value]| {
            let encoders = encoders.as_ref().map_err(Clone::clone)?;
            let outputs = values
                .iter()
                .zip(encoders)
                .map(|(value, encode)| encode(value))
                .collect::<Result<Vec<_>, _>>()?;
            run::<T>(dependency_input::<T>(&outputs)?)
        });
        let call = call::<T>(None, self.allowed_failures_option(), self.resources_option(), key.1);
        self.submit_job(key, list, body, Some(call))
    }
}

impl Client {
    /// Runs the registered task `T` with `input` and returns its future at once.
    ///
    /// Works on every transport: in this process `T::run` runs on a worker thread like a
    /// closure given to [`submit`](Client::submit); on a transport whose workers are other
    /// processes (Redis), the input travels as JSON under [`Task::NAME`] and the output comes
    /// back the same way. Options (key, priority, retries) go through
    /// [`task`](Client::task): `client.task().retries(2).submit_task::<T>(input)`;
    /// dependencies through [`after`](Client::after):
    /// `client.after(&a).submit_task::<T>()`. See [`crate::task`] for the model.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::Task;
    ///
    /// struct Double;
    /// impl Task for Double {
    ///     const NAME: &'static str = "double";
    ///     type Input = u32;
    ///     type Output = u32;
    ///     type Error = std::convert::Infallible;
    ///     fn run(x: u32) -> Result<u32, Self::Error> {
    ///         Ok(x * 2)
    ///     }
    /// }
    ///
    /// let client = taskweave::Client::new()?;
    /// assert_eq!(client.submit_task::<Double>(21).result()?, 42);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn submit_task<T: Task>(&self, input: T::Input) -> TaskFuture<T::Output> {
        self.task().submit_task::<T>(input)
    }

    /// Submits the registered task `T` once per input, in order; returns the futures in the
    /// same order.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::Task;
    ///
    /// struct Square;
    /// impl Task for Square {
    ///     const NAME: &'static str = "square";
    ///     type Input = i64;
    ///     type Output = i64;
    ///     type Error = std::convert::Infallible;
    ///     fn run(x: i64) -> Result<i64, Self::Error> {
    ///         Ok(x * x)
    ///     }
    /// }
    ///
    /// let client = taskweave::Client::new()?;
    /// let futures = client.map_task::<Square>(0..4);
    /// assert_eq!(client.blocking().gather(&futures)?, vec![0, 1, 4, 9]);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    #[must_use = "dropping the futures releases their tasks, which then may never run; keep them, or pass them to `client.fire_and_forget`"]
    pub fn map_task<T: Task>(
        &self,
        inputs: impl IntoIterator<Item = T::Input>,
    ) -> Vec<TaskFuture<T::Output>> {
        self.task().map_task::<T>(inputs)
    }
}
