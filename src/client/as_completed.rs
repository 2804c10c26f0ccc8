//! [`Client::as_completed`]: futures in the order their tasks finish, with more added on the
//! way.
//!
//! # How it works
//!
//! An [`AsCompleted`] keeps its pending futures in a `FuturesUnordered`, so a poll only
//! touches the futures whose task resolved since the last one (each task wakes the waker its
//! future registered), never the whole set. Futures added through [`AsCompleted::add`] or an
//! [`AsCompletedAdder`] go to a small shared queue first; the stream moves them into the set
//! when it is polled, and an add wakes a stream that is waiting. The stream ends when both
//! are empty: nothing is pending.
//!
//! Every poll moves everything the set has finished into a queue of finished futures before
//! it yields the queue's first. The set yields in the order its futures were woken, but a
//! future added and not looked at yet sits in that order where it was added: were the stream
//! to yield as soon as the set gives one, a dependent that finished since could be yielded
//! before its input, which finished first but was added later. Looked at all at once, every
//! future that is not finished when first looked at is queued in the order its task finished
//! (a task publishes its outcome, and wakes, before its dependents are dispatched); those
//! finished already when added come first, in the order given.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use futures::stream::{FuturesUnordered, Stream, StreamExt};
use parking_lot::Mutex;

use super::blocking::block_on_caller_thread;
use super::future::read_value;
use super::outcome_waiter::{OutcomeWaiter, WaitedOutcome};
use super::{BlockingClient, Client, TaskFuture};
use crate::error::{Error, TaskError};
use crate::executor::{BoxFuture, Executor};

/// Futures added but not yet moved into the pending set, and who to wake when one comes.
struct Incoming<T> {
    futures: Vec<TaskFuture<T>>,
    /// The waker of the last poll that found nothing to yield.
    waker: Option<Waker>,
}

/// The engine behind every form of the stream.
struct Queue<T> {
    incoming: Arc<Mutex<Incoming<T>>>,
    pending: FuturesUnordered<OutcomeWaiter<T>>,
    /// Finished, in the order they finished, and not yielded yet.
    finished: VecDeque<WaitedOutcome<T>>,
    /// The clock of [`AsCompleted::timeout`]: the client's executor, or else that of a
    /// future in the stream.
    executor: Option<Arc<dyn Executor>>,
}

impl<T> Queue<T> {
    fn new(futures: impl IntoIterator<Item = TaskFuture<T>>) -> Queue<T> {
        Queue {
            incoming: Arc::new(Mutex::new(Incoming { futures: Vec::new(), waker: None })),
            pending: futures.into_iter().map(OutcomeWaiter::new).collect(),
            finished: VecDeque::new(),
            executor: None,
        }
    }

    /// The executor to measure a timeout with, if one is known yet.
    fn executor(&self) -> Option<Arc<dyn Executor>> {
        if let Some(executor) = &self.executor {
            return Some(Arc::clone(executor));
        }
        let from_pending = self.pending.iter().next().map(|waiter| waiter.future().clone());
        let from_finished = || self.finished.front().map(|(future, _)| future.clone());
        let future = from_pending
            .or_else(from_finished)
            .or_else(|| self.incoming.lock().futures.first().cloned())?;
        Some(Arc::clone(&future.handle.core.executor))
    }

    /// Every future not yielded yet, in no particular order.
    fn into_pending(mut self) -> Vec<TaskFuture<T>> {
        self.take_incoming();
        let finished = std::mem::take(&mut self.finished).into_iter().map(|(future, _)| future);
        let pending = std::mem::take(&mut self.pending).into_iter();
        finished.chain(pending.map(|waiter| waiter.future().clone())).collect()
    }

    fn adder(&self) -> AsCompletedAdder<T> {
        AsCompletedAdder { incoming: Arc::clone(&self.incoming) }
    }

    fn len(&self) -> usize {
        self.finished.len() + self.pending.len() + self.incoming.lock().futures.len()
    }

    fn take_incoming(&mut self) {
        let added = std::mem::take(&mut self.incoming.lock().futures);
        self.pending.extend(added.into_iter().map(OutcomeWaiter::new));
    }

    /// Moves every future the set has finished into `finished`, in the order the set gives
    /// them (see the module's documentation for why all of them).
    fn collect_finished(&mut self, cx: &mut Context<'_>) {
        // Ends: each turn takes a future out of the set, and the set returns `Pending` or
        // `None` when it has no more (also when it stops to let others run, after waking
        // itself).
        while let Poll::Ready(Some(item)) = self.pending.poll_next_unpin(cx) {
            self.finished.push_back(item);
        }
    }

    /// The next finished future with its outcome; `None` when nothing is pending.
    fn poll_one(&mut self, cx: &mut Context<'_>) -> Poll<Option<WaitedOutcome<T>>> {
        loop {
            self.take_incoming();
            self.collect_finished(cx);
            // An add may have come in since `take_incoming`: check under the lock, and leave
            // the waker there only when nothing did, so that no add goes unnoticed.
            let mut incoming = self.incoming.lock();
            if let Some(item) = self.finished.pop_front() {
                return Poll::Ready(Some(item));
            }
            if !incoming.futures.is_empty() {
                continue;
            }
            if self.pending.is_empty() {
                return Poll::Ready(None);
            }
            incoming.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
    }

    /// Everything finished by now (at least one), in the order it finished; `None` when
    /// nothing is pending.
    fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<Vec<WaitedOutcome<T>>>> {
        let Some(first) = ready!(self.poll_one(cx)) else {
            return Poll::Ready(None);
        };
        self.take_incoming();
        self.collect_finished(cx);
        let mut batch = Vec::with_capacity(1 + self.finished.len());
        batch.push(first);
        batch.extend(self.finished.drain(..));
        Poll::Ready(Some(batch))
    }
}

/// A cloneable handle that adds futures to an [`AsCompleted`] (or its
/// [`with_results`](AsCompleted::with_results) or [`batches`](AsCompleted::batches) form) from
/// anywhere: another task, another thread, a callback.
///
/// An added future is yielded like the others, once its task is done. A future added after
/// the stream ended (returned `None`) makes it yield again when polled again.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// # async fn run() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::builder().workers(2).build().await?;
/// // A task that waits for the other thread, so the stream cannot end before the add.
/// let (release, gate) = flume::bounded::<()>(1);
/// let gated = client.submit(move |_: ()| gate.recv().is_ok(), ());
/// let mut completed = client.as_completed(vec![gated]);
/// let adder = completed.adder();
/// let producer = client.clone();
/// std::thread::spawn(move || {
///     adder.add(producer.submit(|x: bool| x, true));
///     release.send(()).unwrap();
/// });
/// let mut seen = 0;
/// while let Some(future) = completed.next().await {
///     assert!(future.await?);
///     seen += 1;
/// }
/// assert_eq!(seen, 2);
/// # Ok(()) }
/// # futures::executor::block_on(run()).unwrap();
/// ```
pub struct AsCompletedAdder<T> {
    incoming: Arc<Mutex<Incoming<T>>>,
}

impl<T> Clone for AsCompletedAdder<T> {
    fn clone(&self) -> Self {
        AsCompletedAdder { incoming: Arc::clone(&self.incoming) }
    }
}

impl<T> fmt::Debug for AsCompletedAdder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompletedAdder").finish_non_exhaustive()
    }
}

impl<T> AsCompletedAdder<T> {
    /// Adds one future; wakes the stream if it is waiting.
    pub fn add(&self, future: TaskFuture<T>) {
        self.update(std::iter::once(future));
    }

    /// Adds several futures; wakes the stream if it is waiting.
    pub fn update(&self, futures: impl IntoIterator<Item = TaskFuture<T>>) {
        push(&self.incoming, futures);
    }
}

/// Queues `futures` for the stream and wakes it if it is waiting.
fn push<T>(incoming: &Mutex<Incoming<T>>, futures: impl IntoIterator<Item = TaskFuture<T>>) {
    // Collected before taking the lock: the iterator is user code (it may submit, or even
    // look at the stream), and the waker runs after the lock is released.
    let mut futures: Vec<_> = futures.into_iter().collect();
    let waker = {
        let mut incoming = incoming.lock();
        incoming.futures.append(&mut futures);
        incoming.waker.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// The methods every form of the stream shares.
macro_rules! queue_methods {
    () => {
        /// Adds a future to the stream; it is yielded once its task is done.
        ///
        /// Takes `&self`, so it can be called in the body of a
        /// `while let Some(..) = stream.next().await` loop. To add from elsewhere, use an
        /// [`adder`](Self::adder).
        pub fn add(&self, future: TaskFuture<T>) {
            push(&self.queue.incoming, std::iter::once(future));
        }

        /// Adds several futures to the stream.
        pub fn update(&self, futures: impl IntoIterator<Item = TaskFuture<T>>) {
            push(&self.queue.incoming, futures);
        }

        /// A cloneable handle that adds futures to this stream from another task or thread.
        pub fn adder(&self) -> AsCompletedAdder<T> {
            self.queue.adder()
        }

        /// How many futures have not been yielded yet.
        pub fn len(&self) -> usize {
            self.queue.len()
        }

        /// Whether every future has been yielded: the stream would end now.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }
    };
}

/// A [`Stream`] of futures in the order their tasks finish (a value or an error alike), as
/// Dask's `as_completed`. Made by [`Client::as_completed`].
///
/// Each future is yielded exactly once; the stream ends when nothing is pending. A future
/// whose task was finished already when it was given (or added) comes in the order given;
/// any other comes in the order its task finished, so a dependent never comes before its
/// input. Futures can be added while iterating, with [`add`](AsCompleted::add) from the loop body or with an
/// [`adder`](AsCompleted::adder) from elsewhere. Other forms:
/// [`with_results`](AsCompleted::with_results) yields each future with its result,
/// [`batches`](AsCompleted::batches) yields everything finished so far at once, and
/// `with_results().batches()` does both. For blocking code,
/// [`BlockingClient::as_completed`] is an [`Iterator`].
///
/// Polling costs one wake-up per finished task, not a pass over every pending future.
///
/// # Drop behaviour
///
/// The stream owns the handles it was given. Dropping it cancels nothing; like dropping any
/// handle, it releases the tasks that no other handle holds (see [`TaskFuture`]). Keep clones
/// of the futures to keep their tasks.
///
/// # Examples
///
/// Start a few tasks, and from each finished one start another, until 10 have run:
///
/// ```
/// use futures::StreamExt;
/// # async fn run() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::builder().workers(2).build().await?;
/// let mut completed = client.as_completed(client.map(|x: u64| x * x, 0..3));
/// let (mut started, mut sum) = (3, 0);
/// while let Some(future) = completed.next().await {
///     sum += future.await?;
///     if started < 10 {
///         completed.add(client.submit(|x: u64| x * x, started));
///         started += 1;
///     }
/// }
/// assert_eq!(sum, (0..10).map(|x| x * x).sum::<u64>());
/// # Ok(()) }
/// # futures::executor::block_on(run()).unwrap();
/// ```
///
/// # Cancel safety
///
/// `next()` is cancel safe: a future is only removed from the stream when it is yielded.
pub struct AsCompleted<T> {
    queue: Queue<T>,
}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted").field("len", &self.len()).finish()
    }
}

impl<T> AsCompleted<T> {
    /// A stream over `futures`; the same as [`Client::as_completed`].
    pub fn new(futures: impl IntoIterator<Item = TaskFuture<T>>) -> AsCompleted<T> {
        AsCompleted { queue: Queue::new(futures) }
    }

    queue_methods!();

    /// Yields each future together with its result, `(future, result)`, as Dask's
    /// `with_results=True`. Reading the result copies the value (hence `T: Clone`).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(2).build().await?;
    /// let mut results = client.as_completed(client.map(|x: i32| x + 1, 0..4)).with_results();
    /// let mut values = Vec::new();
    /// while let Some((_future, result)) = results.next().await {
    ///     values.push(result?);
    /// }
    /// values.sort();
    /// assert_eq!(values, vec![1, 2, 3, 4]);
    /// # Ok(()) }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub fn with_results(self) -> AsCompletedWithResults<T>
    where
        T: Clone + 'static,
    {
        AsCompletedWithResults { queue: self.queue }
    }

    /// Yields, each time, every future that is done by then (at least one), as Dask's
    /// `as_completed(..).batches()`: fewer wake-ups when tasks finish faster than the
    /// consumer handles them.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use taskweave::ReturnWhen;
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(2).build().await?;
    /// let futures = client.map(|x: i32| x, 0..5);
    /// client.wait(&futures, ReturnWhen::AllCompleted, None).await?;
    /// let mut batches = client.as_completed(futures).batches();
    /// assert_eq!(batches.next().await.map(|batch| batch.len()), Some(5));
    /// assert!(batches.next().await.is_none());
    /// # Ok(()) }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub fn batches(self) -> AsCompletedBatches<T> {
        AsCompletedBatches { queue: self.queue }
    }

    /// Stops waiting `limit` after this call, as Dask's `as_completed(.., timeout=..)`:
    /// yields `Ok(future)` in completion order, and if some future is still pending when
    /// `limit` has passed, one `Err(Error::Timeout)`, then ends.
    ///
    /// Time is measured by the client's executor (for a stream made with
    /// [`AsCompleted::new`], by that of its futures; with none yet, from the first poll that
    /// has one). Nothing is cancelled: take the futures not yielded with
    /// [`into_pending`](AsCompletedTimeout::into_pending) to wait for them again, or cancel
    /// them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(2).build().await?;
    /// let (release, gate) = flume::bounded::<()>(1);
    /// let quick = client.submit(|x: i32| x, 1);
    /// (&quick).await?; // done before the clock starts
    /// let stuck = client.submit(move |_: ()| if gate.recv().is_ok() { 2 } else { 0 }, ());
    /// let mut completed = client.as_completed(vec![quick, stuck]).timeout(Duration::from_millis(50));
    /// assert_eq!(completed.next().await.unwrap()?.await?, 1);
    /// assert!(matches!(completed.next().await, Some(Err(taskweave::Error::Timeout { .. }))));
    /// assert!(completed.next().await.is_none());
    /// assert_eq!(completed.into_pending().len(), 1, "the stuck task was not cancelled");
    /// release.send(()).unwrap();
    /// # Ok(()) }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub fn timeout(self, limit: Duration) -> AsCompletedTimeout<T> {
        let timer = self.queue.executor().map(|executor| Mutex::new(executor.sleep(limit)));
        AsCompletedTimeout { queue: self.queue, limit, timer, timed_out: false }
    }
}

/// The [`timeout`](AsCompleted::timeout) form of [`AsCompleted`]: yields `Ok(future)` in
/// completion order, then `Err(Error::Timeout)` once if the time limit passes with futures
/// still pending, then ends.
///
/// # Cancel safety
///
/// `next()` is cancel safe, as for [`AsCompleted`].
pub struct AsCompletedTimeout<T> {
    queue: Queue<T>,
    limit: Duration,
    /// Fires when the limit has passed; made late only when no executor was known yet. In
    /// a mutex only so that the stream is `Sync` (a boxed future is not); polling goes
    /// through `get_mut`, which takes no lock.
    timer: Option<Mutex<BoxFuture<()>>>,
    timed_out: bool,
}

impl<T> fmt::Debug for AsCompletedTimeout<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompletedTimeout")
            .field("len", &self.len())
            .field("limit", &self.limit)
            .field("timed_out", &self.timed_out)
            .finish()
    }
}

impl<T> AsCompletedTimeout<T> {
    queue_methods!();

    /// The futures not yielded yet (after a timeout: the unfinished ones), to wait for again
    /// or to cancel.
    pub fn into_pending(self) -> Vec<TaskFuture<T>> {
        self.queue.into_pending()
    }
}

impl<T> Stream for AsCompletedTimeout<T> {
    type Item = Result<TaskFuture<T>, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(None);
        }
        // A future done by now is yielded even if the limit has passed too.
        if let Poll::Ready(item) = this.queue.poll_one(cx) {
            return Poll::Ready(item.map(|(future, _)| Ok(future)));
        }
        if this.timer.is_none() {
            this.timer =
                this.queue.executor().map(|executor| Mutex::new(executor.sleep(this.limit)));
        }
        let expired =
            this.timer.as_mut().is_some_and(|timer| timer.get_mut().as_mut().poll(cx).is_ready());
        if !expired {
            return Poll::Pending;
        }
        this.timed_out = true;
        Poll::Ready(Some(Err(Error::Timeout { after: this.limit })))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.timed_out { (0, Some(0)) } else { (0, None) }
    }
}

impl<T> Stream for AsCompleted<T> {
    type Item = TaskFuture<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TaskFuture<T>>> {
        self.get_mut().queue.poll_one(cx).map(|item| item.map(|(future, _)| future))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // More may be added, so there is no upper bound.
        (self.len(), None)
    }
}

/// The [`with_results`](AsCompleted::with_results) form of [`AsCompleted`]: yields
/// `(future, result)` in completion order.
///
/// # Cancel safety
///
/// `next()` is cancel safe, as for [`AsCompleted`].
pub struct AsCompletedWithResults<T> {
    queue: Queue<T>,
}

impl<T> fmt::Debug for AsCompletedWithResults<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompletedWithResults").field("len", &self.len()).finish()
    }
}

impl<T> AsCompletedWithResults<T> {
    queue_methods!();

    /// Yields, each time, every future done by then with its result (at least one), as Dask's
    /// `as_completed(.., with_results=True).batches()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use taskweave::ReturnWhen;
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(2).build().await?;
    /// let futures = client.map(|x: i32| x * 2, 0..4);
    /// client.wait(&futures, ReturnWhen::AllCompleted, None).await?;
    /// let mut batches = client.as_completed(futures).with_results().batches();
    /// let batch = batches.next().await.unwrap();
    /// let mut values: Vec<i32> = batch.into_iter().map(|(_, result)| result.unwrap()).collect();
    /// values.sort();
    /// assert_eq!(values, vec![0, 2, 4, 6]);
    /// # Ok(()) }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub fn batches(self) -> AsCompletedResultBatches<T> {
        AsCompletedResultBatches { queue: self.queue }
    }
}

impl<T: Clone + 'static> Stream for AsCompletedWithResults<T> {
    type Item = (TaskFuture<T>, Result<T, TaskError>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().queue.poll_one(cx).map(|item| {
            item.map(|(future, outcome)| {
                let result = read_value(future.key(), outcome);
                (future, result)
            })
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), None)
    }
}

/// The [`batches`](AsCompleted::batches) form of [`AsCompleted`]: yields every future done
/// by then, in a `Vec` of at least one.
///
/// # Cancel safety
///
/// `next()` is cancel safe, as for [`AsCompleted`].
pub struct AsCompletedBatches<T> {
    queue: Queue<T>,
}

impl<T> fmt::Debug for AsCompletedBatches<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompletedBatches").field("len", &self.len()).finish()
    }
}

impl<T> AsCompletedBatches<T> {
    queue_methods!();
}

impl<T> Stream for AsCompletedBatches<T> {
    type Item = Vec<TaskFuture<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .queue
            .poll_batch(cx)
            .map(|batch| batch.map(|batch| batch.into_iter().map(|(future, _)| future).collect()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::from(!self.is_empty()), None)
    }
}

/// The [`batches`](AsCompletedWithResults::batches) form of [`AsCompletedWithResults`]: yields
/// every future done by then with its result, in a `Vec` of at least one.
///
/// # Cancel safety
///
/// `next()` is cancel safe, as for [`AsCompleted`].
pub struct AsCompletedResultBatches<T> {
    queue: Queue<T>,
}

impl<T> fmt::Debug for AsCompletedResultBatches<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompletedResultBatches").field("len", &self.len()).finish()
    }
}

impl<T> AsCompletedResultBatches<T> {
    queue_methods!();
}

impl<T: Clone + 'static> Stream for AsCompletedResultBatches<T> {
    type Item = Vec<(TaskFuture<T>, Result<T, TaskError>)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().queue.poll_batch(cx).map(|batch| {
            batch.map(|batch| {
                batch
                    .into_iter()
                    .map(|(future, outcome)| {
                        let result = read_value(future.key(), outcome);
                        (future, result)
                    })
                    .collect()
            })
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::from(!self.is_empty()), None)
    }
}

impl Client {
    /// A [`Stream`] of `futures` in the order their tasks finish, to which more can be added
    /// while iterating; see [`AsCompleted`].
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(2).build().await?;
    /// let completed = client.as_completed(client.map(|x: i32| x * 2, 0..5));
    /// let mut values: Vec<i32> = completed.then(|future| async move { future.await.unwrap() }).collect().await;
    /// values.sort();
    /// assert_eq!(values, vec![0, 2, 4, 6, 8]);
    /// # Ok(()) }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub fn as_completed<T>(
        &self,
        futures: impl IntoIterator<Item = TaskFuture<T>>,
    ) -> AsCompleted<T> {
        let mut completed = AsCompleted::new(futures);
        completed.queue.executor = Some(Arc::clone(self.executor()));
        completed
    }
}

/// The blocking twin of an [`AsCompleted`] stream (or of its
/// [`with_results`](BlockingAsCompleted::with_results) and
/// [`batches`](BlockingAsCompleted::batches) forms): an [`Iterator`] that blocks the calling
/// thread until the next task is done. Made by [`BlockingClient::as_completed`].
///
/// Each item is a `Result` because a blocking wait is refused inside async code
/// ([`Error::BlockingInAsyncContext`]); it is never anything else.
///
/// # Examples
///
/// ```
/// let client = taskweave::Client::new()?;
/// let mut completed = client.blocking().as_completed(client.map(|x: u64| x + 1, 0..3));
/// let mut total = 0;
/// while let Some(future) = completed.next() {
///     let value = future?.result()?;
///     total += value;
///     if value < 3 {
///         completed.add(client.submit(|x: u64| x * 10, value));
///     }
/// }
/// assert_eq!(total, (1 + 2 + 3) + (10 + 20));
/// # Ok::<(), taskweave::Error>(())
/// ```
pub struct BlockingAsCompleted<S> {
    stream: S,
}

impl<S: fmt::Debug> fmt::Debug for BlockingAsCompleted<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BlockingAsCompleted").field(&self.stream).finish()
    }
}

impl<S: Stream + Unpin> Iterator for BlockingAsCompleted<S> {
    type Item = Result<S::Item, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        block_on_caller_thread(self.stream.next()).transpose()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, None)
    }
}

impl<T> BlockingAsCompleted<AsCompleted<T>> {
    /// Yields `(future, result)` pairs; see [`AsCompleted::with_results`].
    pub fn with_results(self) -> BlockingAsCompleted<AsCompletedWithResults<T>>
    where
        T: Clone + 'static,
    {
        BlockingAsCompleted { stream: self.stream.with_results() }
    }

    /// Yields everything done by then; see [`AsCompleted::batches`].
    pub fn batches(self) -> BlockingAsCompleted<AsCompletedBatches<T>> {
        BlockingAsCompleted { stream: self.stream.batches() }
    }

    /// Stops waiting `limit` after this call; see [`AsCompleted::timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let client = taskweave::Client::new()?;
    /// let (release, gate) = flume::bounded::<()>(1);
    /// let stuck = client.submit(move |_: ()| gate.recv().is_ok(), ());
    /// let mut completed = client.blocking().as_completed(vec![stuck]).timeout(Duration::from_millis(20));
    /// assert!(matches!(completed.next(), Some(Err(taskweave::Error::Timeout { .. }))));
    /// assert!(completed.next().is_none());
    /// release.send(()).unwrap();
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn timeout(self, limit: Duration) -> BlockingAsCompletedTimeout<T> {
        BlockingAsCompletedTimeout { stream: self.stream.timeout(limit) }
    }
}

/// The blocking twin of [`AsCompletedTimeout`]: an [`Iterator`] of `Ok(future)` in
/// completion order, then `Err(Error::Timeout)` once if the time limit passes first, then
/// the end. Made by [`BlockingAsCompleted::timeout`].
///
/// An item is also `Err(Error::BlockingInAsyncContext)` when called inside async code.
pub struct BlockingAsCompletedTimeout<T> {
    stream: AsCompletedTimeout<T>,
}

impl<T> fmt::Debug for BlockingAsCompletedTimeout<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BlockingAsCompletedTimeout").field(&self.stream).finish()
    }
}

impl<T> Iterator for BlockingAsCompletedTimeout<T> {
    type Item = Result<TaskFuture<T>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match block_on_caller_thread(self.stream.next()) {
            Ok(item) => item,
            Err(refused) => Some(Err(refused)),
        }
    }
}

impl<T> BlockingAsCompletedTimeout<T> {
    /// How many futures have not been yielded yet.
    pub fn len(&self) -> usize {
        self.stream.len()
    }

    /// Whether every future has been yielded.
    pub fn is_empty(&self) -> bool {
        self.stream.is_empty()
    }

    /// The futures not yielded yet; see [`AsCompletedTimeout::into_pending`].
    pub fn into_pending(self) -> Vec<TaskFuture<T>> {
        self.stream.into_pending()
    }
}

impl<T> BlockingAsCompleted<AsCompletedWithResults<T>> {
    /// Yields everything done by then, with results; see
    /// [`AsCompletedWithResults::batches`].
    pub fn batches(self) -> BlockingAsCompleted<AsCompletedResultBatches<T>> {
        BlockingAsCompleted { stream: self.stream.batches() }
    }
}

/// The stream's adding methods, on its blocking twin.
macro_rules! blocking_queue_methods {
    ($stream:ident) => {
        impl<T> BlockingAsCompleted<$stream<T>> {
            /// Adds a future; it is yielded once its task is done. Callable in the body of a
            /// `while let Some(..) = iterator.next()` loop.
            pub fn add(&self, future: TaskFuture<T>) {
                self.stream.add(future);
            }

            /// Adds several futures.
            pub fn update(&self, futures: impl IntoIterator<Item = TaskFuture<T>>) {
                self.stream.update(futures);
            }

            /// A cloneable handle that adds futures from another thread.
            pub fn adder(&self) -> AsCompletedAdder<T> {
                self.stream.adder()
            }

            /// How many futures have not been yielded yet.
            pub fn len(&self) -> usize {
                self.stream.len()
            }

            /// Whether every future has been yielded.
            pub fn is_empty(&self) -> bool {
                self.stream.is_empty()
            }
        }
    };
}

blocking_queue_methods!(AsCompleted);
blocking_queue_methods!(AsCompletedWithResults);
blocking_queue_methods!(AsCompletedBatches);
blocking_queue_methods!(AsCompletedResultBatches);

impl BlockingClient<'_> {
    /// The blocking twin of [`Client::as_completed`]: an [`Iterator`] of futures in the
    /// order their tasks finish; see [`BlockingAsCompleted`].
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let futures = client.map(|x: u64| x * 2, 0..4);
    /// let mut total = 0;
    /// for future in client.blocking().as_completed(futures) {
    ///     total += future?.result()?; // finished: `result` does not wait
    /// }
    /// assert_eq!(total, 12);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn as_completed<T>(
        &self,
        futures: impl IntoIterator<Item = TaskFuture<T>>,
    ) -> BlockingAsCompleted<AsCompleted<T>> {
        BlockingAsCompleted { stream: AsCompleted::new(futures) }
    }
}
