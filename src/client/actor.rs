//! Actors: one stateful object living on its own runner, called one call at a time
//! ([`Client::actor`], [`Actor`]).
//!
//! An actor is a value of the user's type `A`, made by its constructor on the actor's runner
//! (a dedicated loop of the client's executor: [`Executor::spawn_dedicated`]) and owned by it.
//! A call is a closure `FnOnce(&mut A) -> R` put into the actor's mailbox; the runner takes
//! the calls out in the order they were made and runs them one at a time, each publishing its
//! return value in the call's [`TaskFuture`]. Calls skip the scheduler: the mailbox is the
//! only queue, and the call's future is resolved by the runner itself, so a round trip is one
//! wake-up of the runner and one of the caller.
//!
//! **Invariant:** a call's job is never known to the scheduler ("detached", see
//! `Body::is_detached`): its outcome is published only by the runner (or by a cancel before it
//! ran, `Core::cancel`), and a task that depends on it depends on a bridge task instead (see
//! `submit::bridge_detached`). **Invariant:** calls run in the order their `call` returned,
//! never two at once; the mailbox is drained only by the runner, which registers its waker
//! under the mailbox lock, so a call pushed after its last look is never missed.

use std::any::type_name;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::Poll;

use futures::task::AtomicWaker;
use parking_lot::Mutex;

use super::core::{Core, Job, Value, panic_message};
use super::{Client, TaskFuture};
use crate::error::{Error, TaskError};
use crate::job::{Body, BoxFuture, TaskFailure};
use crate::key::{TaskKey, prefix_for_type_name};

/// A typed, cloneable handle on one actor: a stateful object of type `A` placed on a runner of
/// its own by [`Client::actor`]. Dask's `client.submit(Class, actor=True)`.
///
/// [`call`](Actor::call) puts a closure into the actor's mailbox and returns the
/// [`TaskFuture`] of its result. Calls run one at a time, in the order they were made (from
/// any handle, any thread), each with `&mut A`: the state is the actor's alone, so it needs no
/// lock, and every call sees what the previous ones left.
///
/// # Life
///
/// - **Placement**: the constructor runs on the actor's runner, a dedicated loop of the
///   client's executor (one thread per live actor with the default driver, parked while the
///   mailbox is empty), before the first call. The runner lives in this process on every
///   transport.
/// - **Release**: the actor lives as long as a handle does. When the last handle drops, the
///   calls already made still run (their futures get their results), then the state is
///   dropped on the runner and the runner ends. Nothing waits for that: dropping a handle
///   never blocks. A call's closure that holds a handle of its own actor keeps it alive until
///   it has run.
/// - **Panics**: a call that panics fails its own future with
///   [`TaskError::Panicked`], naming the actor; the actor keeps its state as the call left
///   it (as a `parking_lot` mutex does: no poisoning) and runs the next calls. A constructor
///   that panics leaves no state: every call fails with [`TaskError::Failed`] saying so.
/// - **Cancel**: [`TaskFuture::cancel`] on a call that has not started takes it out of the
///   order (it never runs); a call that started runs to its end.
/// - **Closing the client** does not stop an actor: the calls made before go on; a call made
///   on a closed client fails at once with [`TaskError::ClientClosed`].
///
/// # Calls and tasks
///
/// A handle is `Clone + Send + Sync`: capture a clone in a task's closure to call the actor
/// from inside the task. A call's future is a `TaskFuture` like any other: await it, take its
/// [`result`](TaskFuture::result) (the blocking twin), [`gather`](crate::Client::gather) many,
/// or make a task depend on it with [`Client::after`] (the dependent waits for the call).
/// A call must not wait for another call of its own actor: that call runs only after it.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::new()?;
/// let counter = client.actor(|| 0_u64)?;
/// let first = counter.call(|n| { *n += 1; *n });
/// let second = counter.call(|n| { *n += 10; *n });
/// assert_eq!(first.result()?, 1);
/// assert_eq!(second.result()?, 11);
///
/// // A task holding a handle calls the actor too (a blocking body waits through its
/// // context, which lends its worker meanwhile; an async body awaits the call).
/// let inside = counter.clone();
/// let from_task = client.try_submit_with_context(
///     move |context: &taskweave::TaskContext, by: u64| {
///         context.result(&inside.call(move |n| { *n += by; *n }))
///     },
///     100,
/// );
/// assert_eq!(from_task.result()?, 111);
/// // A task may also depend on a call: it runs once the call has its value.
/// let doubled = client.after(&counter.call(|n| *n)).submit(|n: u64| n * 2);
/// assert_eq!(doubled.result()?, 222);
/// # Ok(()) }
/// ```
pub struct Actor<A> {
    handles: Arc<Handles<A>>,
}

/// What every handle shares; its drop (the last handle's) releases the actor.
struct Handles<A> {
    mailbox: Arc<Mailbox<A>>,
    core: Arc<Core>,
    key: TaskKey,
    /// The key prefix of the actor's calls (`Counter` for an actor of type `Counter`).
    prefix: &'static str,
}

impl<A> Drop for Handles<A> {
    fn drop(&mut self) {
        self.mailbox.queue.lock().released = true;
        self.mailbox.runner.wake();
    }
}

/// The calls waiting for the runner.
struct Mailbox<A> {
    queue: Mutex<Queue<A>>,
    runner: AtomicWaker,
}

struct Queue<A> {
    calls: VecDeque<Call<A>>,
    /// The last handle was dropped: the runner ends once the calls are done.
    released: bool,
}

/// One call: its future's job, and the closure that computes its value.
struct Call<A> {
    job: Arc<Job>,
    run: Box<dyn FnOnce(&mut A) -> Value + Send>,
}

impl<A> Clone for Actor<A> {
    fn clone(&self) -> Self {
        Actor { handles: Arc::clone(&self.handles) }
    }
}

/// Shows the actor's key: `Actor { key: Counter-3f2a.. }`.
impl<A> fmt::Debug for Actor<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Actor").field("key", &format_args!("{}", self.handles.key)).finish()
    }
}

impl<A: Send + 'static> Actor<A> {
    /// Puts `call` into the actor's mailbox; returns the future of its result.
    ///
    /// The call runs after every call made before it, with `&mut` access to the actor's
    /// state; no two calls run at once. It does not go through the scheduler. Its future is
    /// keyed `<actor type>-<token>`.
    ///
    /// # Errors
    ///
    /// Through the future: [`TaskError::Panicked`] when the call panics (the actor keeps
    /// its state and goes on), [`TaskError::Failed`] when the actor's constructor panicked,
    /// [`TaskError::ClientClosed`] when the client was closed before the call,
    /// [`TaskError::Cancelled`] when the future was cancelled before the call ran.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::new()?;
    /// let log = client.actor(Vec::<String>::new)?;
    /// for word in ["a", "b", "c"] {
    ///     drop(log.call(move |log| log.push(word.to_owned())));
    /// }
    /// assert_eq!(log.call(|log| log.join("")).result()?, "abc");
    /// let broken = log.call(|_| -> u8 { panic!("no such entry") });
    /// assert!(broken.result().unwrap_err().to_string().contains("no such entry"));
    /// assert_eq!(log.call(|log| log.len()).result()?, 3, "the state outlives the panic");
    /// # Ok(()) }
    /// ```
    pub fn call<R, F>(&self, call: F) -> TaskFuture<R>
    where
        F: FnOnce(&mut A) -> R + Send + 'static,
        R: Send + Sync + 'static,
    {
        let handles = &*self.handles;
        let core = &handles.core;
        let key = TaskKey::generated(handles.prefix, core.fresh_token());
        let job = Job::new(core.next_id(), key, Vec::new(), ActorCallBody, None);
        let future = TaskFuture::from_job(Arc::clone(&job), Arc::clone(core));
        if core.is_closed() {
            let key = job.key.clone();
            job.resolve(Err(TaskError::ClientClosed { key, operation: "an actor call" }));
            return future;
        }
        let run: Box<dyn FnOnce(&mut A) -> Value + Send> =
            Box::new(move |state: &mut A| Arc::new(call(state)) as Value);
        let was_empty = {
            let mut queue = handles.mailbox.queue.lock();
            let was_empty = queue.calls.is_empty();
            queue.calls.push_back(Call { job, run });
            was_empty
        };
        // A runner that has not taken the calls before this one will take this one too.
        if was_empty {
            handles.mailbox.runner.wake();
        }
        future
    }

    /// The actor's key, unique in the client: `<type>-<token>`, as a task's.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// struct Counter(u64);
    /// let client = taskweave::Client::new()?;
    /// let counter = client.actor(|| Counter(0))?;
    /// assert!(counter.key().to_string().starts_with("Counter-"));
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> &TaskKey {
        &self.handles.key
    }
}

impl Client {
    /// Places a new actor, made by `init`, on a runner of its own, and returns its handle
    /// (Dask's `client.submit(Class, actor=True)`; see [`Actor`]).
    ///
    /// `init` runs on the actor's runner before the first call; calls may be made at once.
    /// The actor lives until its last handle is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the client is closed; [`Error::ThreadSpawn`] when the
    /// executor cannot start the actor's runner. A panic in `init` is not an error here: it
    /// fails every call (see [`Actor`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// struct Model { weights: Vec<f64> }
    /// impl Model {
    ///     fn step(&mut self, gradient: f64) -> f64 {
    ///         self.weights.iter_mut().for_each(|w| *w -= gradient);
    ///         self.weights[0]
    ///     }
    /// }
    ///
    /// let client = taskweave::Client::builder().build().await?;
    /// let model = client.actor(|| Model { weights: vec![1.0; 4] })?;
    /// assert_eq!(model.call(|m| m.step(0.25)).await?, 0.75);
    /// assert_eq!(model.call(|m| m.step(0.25)).await?, 0.5);
    /// # Ok(()) }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub fn actor<A, F>(&self, init: F) -> Result<Actor<A>, Error>
    where
        A: Send + 'static,
        F: FnOnce() -> A + Send + 'static,
    {
        self.refuse_if_closed("actor")?;
        let core = Arc::clone(self.core());
        let prefix = prefix_for_type_name(type_name::<A>());
        let key = TaskKey::generated(prefix, core.fresh_token());
        let mailbox = Arc::new(Mailbox {
            queue: Mutex::new(Queue { calls: VecDeque::new(), released: false }),
            runner: AtomicWaker::new(),
        });
        let runner = run_actor(Arc::clone(&mailbox), init, key.clone());
        core.executor.spawn_dedicated(&format!("actor-{key}"), Box::pin(runner))?;
        Ok(Actor { handles: Arc::new(Handles { mailbox, core, key, prefix }) })
    }
}

/// The actor's runner: makes the state, then runs the calls in order until the last handle
/// is dropped and the mailbox is empty.
async fn run_actor<A, F>(mailbox: Arc<Mailbox<A>>, init: F, key: TaskKey)
where
    F: FnOnce() -> A,
{
    let mut state = match catch_unwind(AssertUnwindSafe(init)) {
        Ok(state) => Ok(state),
        Err(panic) => {
            let message = panic_message(&*panic);
            tracing::warn!(actor = %key, message, "an actor's constructor panicked");
            Err(message)
        }
    };
    let mut batch = VecDeque::new();
    loop {
        let released = poll_fn(|cx| {
            let mut queue = mailbox.queue.lock();
            if !queue.calls.is_empty() {
                std::mem::swap(&mut batch, &mut queue.calls);
                return Poll::Ready(false);
            }
            if queue.released {
                return Poll::Ready(true);
            }
            // Under the lock: a call pushed after this look wakes this waker.
            mailbox.runner.register(cx.waker());
            Poll::Pending
        })
        .await;
        if released {
            break;
        }
        for call in batch.drain(..) {
            run_call(&key, &mut state, call);
        }
    }
    tracing::debug!(actor = %key, "actor released");
    // The state is dropped here, on the runner, after the last call.
    drop(state);
}

/// Runs one call and publishes its outcome; a call cancelled before it ran is skipped.
fn run_call<A>(actor: &TaskKey, state: &mut Result<A, String>, call: Call<A>) {
    let Call { job, run } = call;
    if job.status().is_some() {
        return;
    }
    let outcome = match state {
        Ok(state) => match catch_unwind(AssertUnwindSafe(|| run(state))) {
            Ok(value) => Ok(value),
            Err(panic) => Err(TaskError::Panicked {
                key: job.key.clone(),
                message: format!(
                    "{} (a call of actor {actor}; the actor keeps its state as the call left it \
                     and runs the next calls)",
                    panic_message(&*panic)
                ),
            }),
        },
        Err(message) => Err(TaskError::Failed {
            key: job.key.clone(),
            message: format!(
                "actor {actor} has no state: its constructor panicked ({message}); make a new \
                 actor"
            ),
        }),
    };
    tracing::trace!(key = %job.key, actor = %actor, "actor call ran");
    job.resolve(outcome);
}

/// The body of a call's job: never run (the runner runs the call), only marks the job as
/// detached from the scheduler.
pub(super) struct ActorCallBody;

impl Body for ActorCallBody {
    fn is_async(&self) -> bool {
        false
    }

    fn call_blocking(&self, _: &[Value]) -> Result<Value, TaskFailure> {
        Err(TaskFailure::new("internal error: an actor call was run as a task; please report this"))
    }

    fn call_async(&self, _: Vec<Value>) -> BoxFuture<Result<Value, TaskFailure>> {
        Box::pin(async {
            Err(TaskFailure::new(
                "internal error: an actor call was run as a task; please report this",
            ))
        })
    }

    fn is_detached(&self) -> bool {
        true
    }
}
