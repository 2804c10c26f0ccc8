//! [`Delayed`]: task graphs built without a client, submitted in one call with
//! [`Client::persist`] or [`Client::compute`] (Dask's `delayed`).

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use super::{Client, Dependencies, TaskBuilder, TaskFuture};

/// The value type of type-erased futures inside a graph walk (never constructed).
pub(crate) struct ErasedValue(());

/// Submits one node, given the futures of its inputs in order.
type SubmitNode =
    dyn Fn(TaskBuilder<'_>, &[TaskFuture<ErasedValue>]) -> TaskFuture<ErasedValue> + Send + Sync;

/// One node of a graph: its inputs and how to submit it once they are submitted.
struct Node {
    inputs: Vec<Arc<Node>>,
    submit: Box<SubmitNode>,
}

/// A task not yet submitted: a node of a graph, built without a client.
///
/// Build leaves with [`delayed`], dependents with [`Delayed::then`] or [`delayed_after`],
/// then submit the whole graph with [`Client::persist`] (futures back at once) or
/// [`Client::compute`] (await the value). A node used by several others is submitted once.
///
/// # Examples
///
/// ```
/// use taskweave::{delayed, delayed_after};
///
/// # fn main() -> Result<(), taskweave::Error> {
/// let x = delayed(|n: i64| n + 1, 1);
/// let y = x.then(|x: i64| x * 10);
/// let total = delayed_after((&x, &y), |(x, y): (i64, i64)| x + y);
///
/// let client = taskweave::Client::new()?;
/// let future = client.persist(&total); // the whole graph is submitted here
/// assert_eq!(future.result()?, 22);
/// # Ok(()) }
/// ```
pub struct Delayed<T> {
    node: Arc<Node>,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for Delayed<T> {
    fn clone(&self) -> Self {
        Delayed { node: Arc::clone(&self.node), _value: PhantomData }
    }
}

impl<T> fmt::Debug for Delayed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delayed").field("inputs", &self.node.inputs.len()).finish_non_exhaustive()
    }
}

/// A graph leaf: `function(argument)`, submitted later.
pub fn delayed<F, A, R>(function: F, argument: A) -> Delayed<R>
where
    F: Fn(A) -> R + Clone + Send + Sync + 'static,
    A: Clone + Send + Sync + 'static,
    R: Send + Sync + 'static,
{
    let submit = move |builder: TaskBuilder<'_>, _: &[TaskFuture<ErasedValue>]| {
        builder.submit(function.clone(), argument.clone()).retype()
    };
    Delayed {
        node: Arc::new(Node { inputs: Vec::new(), submit: Box::new(submit) }),
        _value: PhantomData,
    }
}

/// A graph node that runs after `inputs` with their values, as [`Client::after`] does for
/// futures: `inputs` is a `&Delayed<T>`, a tuple of up to four, or a slice of `Delayed<T>`.
pub fn delayed_after<I, F, R>(inputs: I, function: F) -> Delayed<R>
where
    I: DelayedInputs,
    F: Fn(<I::Futures as Dependencies>::Values) -> R + Clone + Send + Sync + 'static,
    R: Send + Sync + 'static,
{
    let mut graph_inputs = GraphInputs::default();
    inputs.collect(&mut graph_inputs);
    let GraphInputs { nodes, shape } = graph_inputs;
    let submit = move |builder: TaskBuilder<'_>, futures: &[TaskFuture<ErasedValue>]| {
        let mut submitted = SubmittedInputs { futures: futures.iter(), shape: shape.iter() };
        let typed = I::futures(&mut submitted);
        builder.after(typed).submit(function.clone()).retype()
    };
    Delayed {
        node: Arc::new(Node { inputs: nodes, submit: Box::new(submit) }),
        _value: PhantomData,
    }
}

impl<T: Clone + Send + Sync + 'static> Delayed<T> {
    /// A node that runs `function` on this node's value.
    pub fn then<F, R>(&self, function: F) -> Delayed<R>
    where
        F: Fn(T) -> R + Clone + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        delayed_after(self, function)
    }
}

/// What a [`delayed_after`] node can depend on: `&Delayed<T>`, tuples of up to four of
/// those, or slices of `Delayed<T>`. Sealed; its methods are internal.
pub trait DelayedInputs: sealed::Sealed {
    /// The futures these inputs become once submitted.
    type Futures: Dependencies;

    #[doc(hidden)]
    fn collect(&self, inputs: &mut GraphInputs);

    #[doc(hidden)]
    fn futures(submitted: &mut SubmittedInputs<'_>) -> Self::Futures;
}

mod sealed {
    pub trait Sealed {}
}

/// Internal: the nodes a graph node reads, and the lengths of its slice inputs.
#[doc(hidden)]
#[derive(Default)]
pub struct GraphInputs {
    nodes: Vec<Arc<Node>>,
    shape: Vec<usize>,
}

/// Internal: the submitted futures of a node's inputs, read back into their shape.
#[doc(hidden)]
pub struct SubmittedInputs<'a> {
    futures: std::slice::Iter<'a, TaskFuture<ErasedValue>>,
    shape: std::slice::Iter<'a, usize>,
}

impl SubmittedInputs<'_> {
    fn next<T>(&mut self) -> TaskFuture<T> {
        // The walk submits exactly the collected inputs, in order.
        self.futures.next().expect("one submitted future per input").clone().retype()
    }
}

impl<T> sealed::Sealed for &Delayed<T> {}
impl<T: Clone + Send + Sync + 'static> DelayedInputs for &Delayed<T> {
    type Futures = TaskFuture<T>;

    fn collect(&self, inputs: &mut GraphInputs) {
        inputs.nodes.push(Arc::clone(&self.node));
    }

    fn futures(submitted: &mut SubmittedInputs<'_>) -> TaskFuture<T> {
        submitted.next()
    }
}

impl<T> sealed::Sealed for &[Delayed<T>] {}
impl<T: Clone + Send + Sync + 'static> DelayedInputs for &[Delayed<T>] {
    type Futures = Vec<TaskFuture<T>>;

    fn collect(&self, inputs: &mut GraphInputs) {
        inputs.shape.push(self.len());
        inputs.nodes.extend(self.iter().map(|delayed| Arc::clone(&delayed.node)));
    }

    fn futures(submitted: &mut SubmittedInputs<'_>) -> Vec<TaskFuture<T>> {
        let length = submitted.shape.next().copied().unwrap_or(0);
        (0..length).map(|_| submitted.next()).collect()
    }
}

macro_rules! tuple_inputs {
    ($($name:ident),+) => {
        impl<$($name: DelayedInputs),+> sealed::Sealed for ($($name,)+) {}
        impl<$($name: DelayedInputs),+> DelayedInputs for ($($name,)+) {
            type Futures = ($($name::Futures,)+);

            #[allow(non_snake_case)]
            fn collect(&self, inputs: &mut GraphInputs) {
                let ($($name,)+) = self;
                $($name.collect(inputs);)+
            }

            fn futures(submitted: &mut SubmittedInputs<'_>) -> Self::Futures {
                ($($name::futures(submitted),)+)
            }
        }
    };
}

tuple_inputs!(A);
tuple_inputs!(A, B);
tuple_inputs!(A, B, C);
tuple_inputs!(A, B, C, D);

impl Client {
    /// Submits the graph behind `delayed` — every node not yet submitted in this call, each
    /// once, inputs first — and returns the future of its output at once (Dask's
    /// `persist`). The nodes reach the scheduler together, after the walk, in one hold of
    /// its lock per 32 tasks. For options, use [`TaskBuilder::persist`].
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::delayed;
    ///
    /// let client = taskweave::Client::new()?;
    /// let graph = delayed(|x: i64| x + 1, 1).then(|x: i64| x * 10);
    /// let future = client.persist(&graph); // the whole graph is submitted; nothing waits
    /// assert_eq!(future.result()?, 20);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn persist<T>(&self, delayed: &Delayed<T>) -> TaskFuture<T> {
        self.task().persist(delayed)
    }

    /// Submits the graph behind `delayed` and waits for its output (Dask's `compute`).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::{delayed, delayed_after};
    ///
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let x = delayed(|n: i64| n + 1, 1);
    /// let y = x.then(|x: i64| x * 10);
    /// let total = delayed_after((&x, &y), |(x, y): (i64, i64)| x + y);
    /// let client = taskweave::Client::builder().workers(2).build().await?;
    /// assert_eq!(client.compute(&total).await?, 22);
    /// client.close().await
    /// # }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// The output task's error as [`Error::Task`](crate::Error::Task) (a failure inside the
    /// graph arrives as [`TaskError::DependencyFailed`](crate::TaskError::DependencyFailed)
    /// naming the root).
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future releases the graph's output; tasks already running
    /// finish, queued ones that nothing else needs do not start.
    pub async fn compute<T: Clone + 'static>(
        &self,
        delayed: &Delayed<T>,
    ) -> Result<T, crate::Error> {
        self.task().compute(delayed).await
    }
}

impl TaskBuilder<'_> {
    /// Submits the graph behind `delayed` with this builder's options, as
    /// [`Client::persist`] does: priority, retries and allowed failures apply to every node
    /// submitted; a [`key`](TaskBuilder::key) names the output node only.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// use taskweave::delayed;
    /// let client = taskweave::Client::new()?;
    /// let total = delayed(|x: i64| x + 1, 1).then(|x: i64| x * 10);
    /// let future = client.task().key("total").retries(2).priority(5).persist(&total);
    /// assert_eq!(future.key().to_string(), "total");
    /// assert_eq!(future.result()?, 20);
    /// # Ok(()) }
    /// ```
    #[allow(clippy::missing_panics_doc, reason = "every input is submitted before its node")]
    pub fn persist<T>(&self, delayed: &Delayed<T>) -> TaskFuture<T> {
        // Inner nodes get the options without the key (a key names one task).
        let inner = self.without_key();
        // Iterative post-order walk: graphs of any depth, shared nodes submitted once.
        let mut submitted: HashMap<*const Node, TaskFuture<ErasedValue>> = HashMap::new();
        let mut stack: Vec<(Arc<Node>, bool)> = vec![(Arc::clone(&delayed.node), false)];
        let root = Arc::as_ptr(&delayed.node);
        // The whole graph reaches the scheduler together, in a few holds of its lock; every
        // future stays in `submitted` until then.
        self.client().core().submit_together(|| {
            while let Some((node, inputs_done)) = stack.pop() {
                let address = Arc::as_ptr(&node);
                if submitted.contains_key(&address) {
                    continue;
                }
                if inputs_done {
                    let inputs: Vec<TaskFuture<ErasedValue>> = node
                        .inputs
                        .iter()
                        .map(|input| submitted[&Arc::as_ptr(input)].clone())
                        .collect();
                    let builder =
                        if address == root { self.clone_options() } else { inner.clone_options() };
                    let future = (node.submit)(builder, &inputs);
                    submitted.insert(address, future);
                } else {
                    let inputs: Vec<Arc<Node>> = node.inputs.clone();
                    stack.push((node, true));
                    for input in inputs.into_iter().rev() {
                        if !submitted.contains_key(&Arc::as_ptr(&input)) {
                            stack.push((input, false));
                        }
                    }
                }
            }
        });
        submitted.remove(&root).expect("the root was submitted").retype()
    }

    /// Submits the graph behind `delayed` with this builder's options (see
    /// [`persist`](TaskBuilder::persist)) and waits for its output.
    ///
    /// # Errors
    ///
    /// As [`Client::compute`].
    ///
    /// # Cancel safety
    ///
    /// As [`Client::compute`].
    pub async fn compute<T: Clone + 'static>(
        &self,
        delayed: &Delayed<T>,
    ) -> Result<T, crate::Error> {
        Ok(self.persist(delayed).await?)
    }
}
