//! Actors on the Redis transport, whose calls cross machines: a registered actor type
//! ([`RemoteActor`]), hosted on one worker process by a registered task ([`ActorHost`]) and
//! called through Redis ([`Client::remote_actor`], [`RemoteActorHandle`]).
//!
//! Built from the coordination primitives, so it needs nothing of the worker library beyond
//! registered tasks and [`worker_client`](crate::worker_client):
//!
//! - **Placement is the host task's delivery.** [`Client::remote_actor`] submits one
//!   `ActorHost<A>` task; the worker that runs it makes the state (`A::new`) and serves calls
//!   until the actor is released. Its stream entry is held by that worker and refreshed by its
//!   heartbeat: a lease that expires with the worker's `reclaim_after`. When the worker dies
//!   (SIGKILL), another worker of the queue that registers `ActorHost<A>` claims the entry and
//!   runs the host again: the actor is **restarted from its constructor** there, up to the
//!   host task's `allowed_failures` times.
//! - **Calls** go through the queue `actor:<id>:calls` in call order (one sender per handle
//!   group), each tagged with the *epoch* (the number of the host's start) the caller knows;
//!   replies come back through the queue `actor:<id>:replies`. Only the host reads the calls
//!   queue, so calls run one at a time in order.
//! - **Owner**: the process that made the actor holds a lease on the lock
//!   `actor:<id>:owner` while the actor has handles (10 s, refreshed by that process); an
//!   idle host checks it every second and ends when it is free, so an actor whose client
//!   process died does not hold its worker slot for ever.
//! - **Restarts**: a starting host takes the next epoch (the variable `actor:<id>:epoch`) and
//!   logs it to the topic `actor:<id>:events`. It drops, unrun, every queued call of an
//!   older epoch (the dead host may have run or half-run the ones before them). The handle's
//!   driver, subscribed to the topic, then settles every call still waiting from before the
//!   restart as the [`ActorRestartPolicy`] says: fail it with "actor restarted", or send it
//!   again, in its order, to the new host.
//!
//! Not yet: a handle cannot be found by name from another process (share the work through
//! tasks that hold none, or call from the process that made it); a worker's graceful
//! shutdown waits for the actors it hosts to be released (or their owner's lease to
//! expire); the actor's epoch variable, its queues' metadata and its topic stream stay in
//! Redis after it is released; the state is not persisted (a restart starts from `init`).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::coordination::Queue;
use super::core::{Core, Job, Value, panic_message};
use super::{Client, TaskFuture};
use crate::error::{Error, TaskError};
use crate::executor::ExecutorExt;
use crate::key::TaskKey;
use crate::task::Task;

/// An actor type whose calls cross machines: registered on the workers (through its host,
/// [`ActorHost`]) like a [`Task`], made from a serializable `Init`, called with serializable
/// `Call`s that each give a `Reply`.
///
/// # Examples
///
/// ```
/// use taskweave::{ActorHost, RemoteActor};
///
/// struct Counter(u64);
///
/// impl RemoteActor for Counter {
///     const NAME: &'static str = "counter";
///     type Init = u64;
///     type Call = u64;
///     type Reply = u64;
///     fn new(start: u64) -> Counter {
///         Counter(start)
///     }
///     fn handle(&mut self, by: u64) -> u64 {
///         self.0 += by;
///         self.0
///     }
/// }
///
/// // On the worker: `Worker::builder().register::<ActorHost<Counter>>()`.
/// let _ = std::marker::PhantomData::<ActorHost<Counter>>;
/// ```
pub trait RemoteActor: Sized + 'static {
    /// The name of the actor type, shared by clients and workers; it is also its host
    /// task's [`Task::NAME`], so it must differ from every task's name.
    const NAME: &'static str;
    /// What the constructor takes.
    type Init: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// One call.
    type Call: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// A call's answer.
    type Reply: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// Makes the actor's state, on the worker that hosts it (again after a restart).
    fn new(init: Self::Init) -> Self;
    /// Runs one call; calls run one at a time, in the order they were made.
    fn handle(&mut self, call: Self::Call) -> Self::Reply;
}

/// What to do with the calls that were waiting when the actor's worker died and the actor
/// was restarted on another worker.
///
/// # Examples
///
/// ```
/// use taskweave::ActorRestartPolicy;
/// assert_eq!(ActorRestartPolicy::default(), ActorRestartPolicy::FailPending);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActorRestartPolicy {
    /// Fail each with [`TaskError::Failed`] saying the actor restarted (the call may or may
    /// not have run on the dead worker). The default: nothing runs twice.
    #[default]
    FailPending,
    /// Send each again, in its order, to the restarted actor. A call that was running when
    /// the worker died runs again: use it for calls that may run twice.
    Retry,
}

/// The host task's input: which actor, made how.
#[doc(hidden)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostInput<I> {
    actor: String,
    init: I,
}

/// What the calls queue carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum ToHost<C> {
    Call {
        id: u64,
        epoch: u64,
        call: C,
    },
    /// The last handle was dropped: the host ends after the calls before this.
    Stop,
}

/// What the replies queue carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FromHost<R> {
    id: u64,
    reply: Result<R, String>,
}

fn calls_queue(actor: &str) -> String {
    format!("actor:{actor}:calls")
}

fn replies_queue(actor: &str) -> String {
    format!("actor:{actor}:replies")
}

fn epoch_variable(actor: &str) -> String {
    format!("actor:{actor}:epoch")
}

fn events_topic(actor: &str) -> String {
    format!("actor:{actor}:events")
}

/// The lock whose lease the handles' process holds while the actor has handles.
fn owner_lock(actor: &str) -> String {
    format!("actor:{actor}:owner")
}

/// How long the owner's lease outlives its process: a host whose handles' process died ends
/// within about this (plus [`OWNER_CHECK`]).
const OWNER_LEASE: std::time::Duration = std::time::Duration::from_secs(10);

/// How often an idle host checks that the owner's lease is held.
const OWNER_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The registered task that hosts an actor of type `A` on a worker: register it on the
/// workers that may host such actors (`Worker::builder().register::<ActorHost<A>>()`). Each
/// hosted actor takes one of the worker's task slots for as long as it lives.
///
/// # Examples
///
/// ```no_run
/// # use taskweave::{ActorHost, RemoteActor};
/// # struct Counter(u64);
/// # impl RemoteActor for Counter {
/// #     const NAME: &'static str = "counter";
/// #     type Init = u64; type Call = u64; type Reply = u64;
/// #     fn new(start: u64) -> Counter { Counter(start) }
/// #     fn handle(&mut self, by: u64) -> u64 { self.0 += by; self.0 }
/// # }
/// # async fn run() -> Result<(), taskweave::Error> {
/// let worker = taskweave::worker::Worker::builder()
///     .redis("redis://127.0.0.1:6379")
///     .concurrency(4)
///     .register::<ActorHost<Counter>>()
///     .start()
///     .await?;
/// # drop(worker);
/// # Ok(()) }
/// ```
pub struct ActorHost<A>(PhantomData<fn() -> A>);

impl<A: RemoteActor> Task for ActorHost<A> {
    const NAME: &'static str = A::NAME;
    type Input = HostInput<A::Init>;
    /// How many calls this run of the host served.
    type Output = u64;
    type Error = Error;

    fn run(input: HostInput<A::Init>) -> Result<u64, Error> {
        let HostInput { actor, init } = input;
        let client = crate::worker_client()?;
        let epochs = client.variable::<u64>(&epoch_variable(&actor));
        let epoch = epochs.blocking().get_timeout(std::time::Duration::ZERO)?.unwrap_or(0) + 1;
        epochs.blocking().set(epoch)?;
        if epoch > 1 {
            tracing::warn!(actor, epoch, "actor restarted from its constructor");
            client.blocking().log_event(&events_topic(&actor), epoch)?;
        }
        let calls = client.queue::<ToHost<A::Call>>(&calls_queue(&actor));
        let replies = client.queue::<FromHost<A::Reply>>(&replies_queue(&actor));
        let mut state = match catch_unwind(AssertUnwindSafe(|| A::new(init))) {
            Ok(state) => Ok(state),
            Err(panic) => Err(panic_message(&*panic)),
        };
        let owner = client.lock(owner_lock(&actor)).with_lease_timeout(OWNER_LEASE);
        let mut served = 0;
        loop {
            let Some(message) = calls.blocking().get_timeout(OWNER_CHECK)? else {
                // Idle: end if the process of the handles died without releasing the actor.
                if !owner.blocking().is_locked()? {
                    tracing::warn!(actor, "the actor's owner is gone: the actor ends");
                    return Ok(served);
                }
                continue;
            };
            match message {
                ToHost::Stop => return Ok(served),
                // Sent before this start: the caller settles it per its policy.
                ToHost::Call { epoch: sent, .. } if sent < epoch => {}
                ToHost::Call { id, call, .. } => {
                    let reply = match &mut state {
                        Ok(state) => {
                            catch_unwind(AssertUnwindSafe(|| state.handle(call))).map_err(|panic| {
                                format!(
                                    "the call panicked: {} (the actor keeps its state as the \
                                     call left it)",
                                    panic_message(&*panic)
                                )
                            })
                        }
                        Err(message) => Err(format!(
                            "the actor has no state: its constructor panicked ({message}); make \
                             a new actor"
                        )),
                    };
                    served += 1;
                    replies.blocking().put(FromHost { id, reply })?;
                }
            }
        }
    }
}

/// A typed, cloneable handle on an actor hosted by a worker process
/// ([`Client::remote_actor`]). The last handle's drop releases the actor: the calls made
/// before still run, then the host ends and gives its worker slot back.
pub struct RemoteActorHandle<A: RemoteActor> {
    shared: Arc<HandleShared<A>>,
}

impl<A: RemoteActor> Clone for RemoteActorHandle<A> {
    fn clone(&self) -> Self {
        RemoteActorHandle { shared: Arc::clone(&self.shared) }
    }
}

impl<A: RemoteActor> fmt::Debug for RemoteActorHandle<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteActorHandle").field("actor", &self.shared.actor).finish()
    }
}

struct HandleShared<A: RemoteActor> {
    actor: String,
    core: Arc<Core>,
    state: Arc<Mutex<Calls<A>>>,
    outbox: flume::Sender<ToHost<A::Call>>,
}

impl<A: RemoteActor> Drop for HandleShared<A> {
    fn drop(&mut self) {
        self.state.lock().released = true;
        let _ = self.outbox.send(ToHost::Stop);
    }
}

/// The calls sent and not answered, by id, with what the driver needs to settle them.
struct Calls<A: RemoteActor> {
    next_id: u64,
    /// The epoch the handles know (the host's start they send to).
    epoch: u64,
    waiting: BTreeMap<u64, Waiting<A>>,
    released: bool,
    policy: ActorRestartPolicy,
    /// Why the actor cannot answer any more, once its driver ended: later calls fail at
    /// once with it (nobody would read them).
    gone: Option<String>,
}

struct Waiting<A: RemoteActor> {
    job: Arc<Job>,
    call: A::Call,
    epoch: u64,
}

impl<A: RemoteActor> RemoteActorHandle<A> {
    /// Sends `call` to the actor; returns the future of its reply.
    ///
    /// # Errors
    ///
    /// Through the future: [`TaskError::Failed`] when the call panicked on the host, when
    /// the actor restarted before it answered (with [`ActorRestartPolicy::FailPending`]) or
    /// when the actor's host is gone (its restarts used up, or ended by
    /// [`Client::restart`]; every later call fails so at once); [`TaskError::ClientClosed`]
    /// after the client closed.
    pub fn call(&self, call: A::Call) -> TaskFuture<A::Reply> {
        let shared = &*self.shared;
        let core = &shared.core;
        let key = TaskKey::generated(A::NAME, core.fresh_token());
        let job = Job::new(core.next_id(), key, Vec::new(), super::actor::ActorCallBody, None);
        let future = TaskFuture::from_job(Arc::clone(&job), Arc::clone(core));
        if core.is_closed() {
            let key = job.key.clone();
            job.resolve(Err(TaskError::ClientClosed { key, operation: "an actor call" }));
            return future;
        }
        let mut calls = shared.state.lock();
        if let Some(why) = &calls.gone {
            job.resolve(Err(cannot_answer(&job, why)));
            return future;
        }
        let id = calls.next_id;
        calls.next_id += 1;
        let epoch = calls.epoch;
        calls.waiting.insert(id, Waiting { job, call: call.clone(), epoch });
        // Under the lock: resends after a restart and new calls keep one order.
        let _ = shared.outbox.send(ToHost::Call { id, epoch, call });
        future
    }

    /// The actor's id, which names its queues in Redis.
    pub fn id(&self) -> &str {
        &self.shared.actor
    }
}

impl Client {
    /// Places a new actor of the registered type `A` on a worker that registers
    /// [`ActorHost<A>`], made there by `A::new(init)`, and returns its handle.
    ///
    /// The actor is restarted from its constructor on another worker when its worker dies,
    /// at most `restarts` times; `policy` says what happens to the calls that were waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] on a closed client; [`Error::Coordination`] when the client's
    /// transport is not Redis's, or Redis refuses the actor's lease or topic.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use taskweave::{ActorHost, ActorRestartPolicy, RemoteActor};
    /// use taskweave::transport::redis::RedisTransport;
    ///
    /// struct Counter(u64);
    /// impl RemoteActor for Counter {
    ///     const NAME: &'static str = "counter";
    ///     type Init = u64;
    ///     type Call = u64;
    ///     type Reply = u64;
    ///     fn new(start: u64) -> Counter { Counter(start) }
    ///     fn handle(&mut self, by: u64) -> u64 { self.0 += by; self.0 }
    /// }
    ///
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// // Workers (any machine): `Worker::builder().register::<ActorHost<Counter>>()`.
    /// let transport = RedisTransport::connect("redis://127.0.0.1:6379").await?;
    /// let client = taskweave::Client::builder().transport(transport).build().await?;
    /// // Restarted up to 3 times when its worker dies; waiting calls then fail.
    /// let counter =
    ///     client.remote_actor::<Counter>(10, 3, ActorRestartPolicy::FailPending).await?;
    /// assert_eq!(counter.call(5).await?, 15);
    /// assert_eq!(counter.call(1).await?, 16);
    /// # Ok(()) }
    /// ```
    pub async fn remote_actor<A: RemoteActor>(
        &self,
        init: A::Init,
        restarts: u32,
        policy: ActorRestartPolicy,
    ) -> Result<RemoteActorHandle<A>, Error> {
        self.refuse_if_closed("remote_actor")?;
        let core = Arc::clone(self.core());
        let on_redis = core.transport.as_any().is_some_and(|transport| {
            transport.downcast_ref::<crate::transport::redis::RedisTransport>().is_some()
        });
        if !on_redis {
            return Err(Error::Coordination {
                primitive: "actor",
                name: A::NAME.to_owned(),
                problem: format!(
                    "remote actors need the Redis transport (this client's is {:?}); use \
                     client.actor(..) for an actor in this process",
                    core.transport.name()
                ),
            });
        }
        let actor = format!("{}-{:016x}", A::NAME, core.fresh_token());
        // Held while the actor has handles (the driver drops it when it ends): a host whose
        // owner died without releasing the actor sees the lease expire and ends.
        let owner = self.lock(owner_lock(&actor)).with_lease_timeout(OWNER_LEASE).acquire().await?;
        let events = self.subscribe::<u64>(&events_topic(&actor)).await?;
        let calls = self.queue::<ToHost<A::Call>>(&calls_queue(&actor));
        let replies = self.queue::<FromHost<A::Reply>>(&replies_queue(&actor));
        let host = self
            .task()
            .key(format!("actor-host-{actor}"))
            .allowed_failures(restarts)
            .submit_task::<ActorHost<A>>(HostInput { actor: actor.clone(), init });
        let state = Arc::new(Mutex::new(Calls {
            next_id: 0,
            epoch: 1,
            waiting: BTreeMap::new(),
            released: false,
            policy,
            gone: None,
        }));
        let (outbox, inbox) = flume::unbounded();
        let sender = send_calls(calls, inbox, actor.clone());
        let driver =
            drive(Arc::clone(&state), replies, events, host, outbox.clone(), actor.clone());
        let driver = async move {
            driver.await;
            drop(owner);
        };
        self.executor().spawn_task(sender)?;
        self.executor().spawn_task(driver)?;
        Ok(RemoteActorHandle { shared: Arc::new(HandleShared { actor, core, state, outbox }) })
    }
}

/// Puts the calls into the calls queue in order, and the stop last.
async fn send_calls<C: Serialize + DeserializeOwned + Clone + Send + Sync + 'static>(
    calls: Queue<ToHost<C>>,
    inbox: flume::Receiver<ToHost<C>>,
    actor: String,
) {
    while let Ok(message) = inbox.recv_async().await {
        let stop = matches!(message, ToHost::Stop);
        if let Err(error) = calls.put(message).await {
            tracing::warn!(actor, %error, "could not send a call to an actor");
        }
        if stop {
            return;
        }
    }
}

/// Settles the calls: replies, restarts, the host's end.
async fn drive<A: RemoteActor>(
    state: Arc<Mutex<Calls<A>>>,
    replies: Queue<FromHost<A::Reply>>,
    mut events: super::coordination::Subscription<u64>,
    host: TaskFuture<u64>,
    outbox: flume::Sender<ToHost<A::Call>>,
    actor: String,
) {
    let mut host = host.fuse();
    loop {
        {
            let calls = state.lock();
            if calls.released && calls.waiting.is_empty() {
                return;
            }
        }
        futures::select_biased! {
            reply = replies.get().fuse() => match reply {
                Ok(answer) => settle(&state, answer, &actor),
                Err(error) => return fail_all(&state, &format!("its replies are lost: {error}")),
            },
            epoch = events.next().fuse() => match epoch {
                Some(epoch) => restarted(&state, epoch, &outbox, &actor),
                None => return fail_all(&state, "its restart events ended"),
            },
            ended = host => {
                let why = match ended {
                    Ok(_) => {
                        // The host answered every call before the stop: read what is still
                        // on its way (bounded: a reply lost with Redis fails its call).
                        drain(&state, &replies, &actor).await;
                        "its host ended".to_owned()
                    }
                    Err(error) => format!("its host is gone ({error})"),
                };
                return fail_all(&state, &why);
            }
        }
    }
}

/// Publishes one reply in its call's future.
fn settle<A: RemoteActor>(state: &Mutex<Calls<A>>, answer: FromHost<A::Reply>, actor: &str) {
    let FromHost { id, reply } = answer;
    let waiting = state.lock().waiting.remove(&id);
    if let Some(Waiting { job, .. }) = waiting {
        let key = job.key.clone();
        job.resolve(reply.map(|reply| Arc::new(reply) as Value).map_err(|message| {
            TaskError::Failed { key, message: format!("actor {actor}: {message}") }
        }));
    }
}

/// Reads the replies still on their way after the host ended, for at most 5 s.
async fn drain<A: RemoteActor>(
    state: &Mutex<Calls<A>>,
    replies: &Queue<FromHost<A::Reply>>,
    actor: &str,
) {
    let deadline = std::time::Duration::from_secs(5);
    while !state.lock().waiting.is_empty() {
        match replies.get_timeout(deadline).await {
            Ok(Some(answer)) => settle(state, answer, actor),
            Ok(None) | Err(_) => return,
        }
    }
}

/// The host restarted with `epoch`: settle the calls sent before, per the policy.
fn restarted<A: RemoteActor>(
    state: &Mutex<Calls<A>>,
    epoch: u64,
    outbox: &flume::Sender<ToHost<A::Call>>,
    actor: &str,
) {
    let mut calls = state.lock();
    if epoch <= calls.epoch {
        return;
    }
    calls.epoch = epoch;
    let stale: Vec<u64> = calls
        .waiting
        .iter()
        .filter(|(_, waiting)| waiting.epoch < epoch)
        .map(|(id, _)| *id)
        .collect();
    match calls.policy {
        ActorRestartPolicy::FailPending => {
            for id in stale {
                if let Some(Waiting { job, .. }) = calls.waiting.remove(&id) {
                    let key = job.key.clone();
                    job.resolve(Err(TaskError::Failed {
                        key,
                        message: format!(
                            "actor {actor} restarted (its worker died) before the call \
                             answered; the call may or may not have run; the actor's state is \
                             new (made by its constructor again)"
                        ),
                    }));
                }
            }
        }
        ActorRestartPolicy::Retry => {
            for id in stale {
                if let Some(waiting) = calls.waiting.get_mut(&id) {
                    waiting.epoch = epoch;
                    let call = waiting.call.clone();
                    let _ = outbox.send(ToHost::Call { id, epoch, call });
                }
            }
        }
    }
}

/// Fails every waiting call: the actor cannot answer any more.
fn fail_all<A: RemoteActor>(state: &Mutex<Calls<A>>, why: &str) {
    let waiting = {
        let mut calls = state.lock();
        calls.gone = Some(why.to_owned());
        std::mem::take(&mut calls.waiting)
    };
    for (_, Waiting { job, .. }) in waiting {
        job.resolve(Err(cannot_answer(&job, why)));
    }
}

/// The error of a call the actor cannot answer, for `why`.
fn cannot_answer(job: &Job, why: &str) -> TaskError {
    TaskError::Failed {
        key: job.key.clone(),
        message: format!("the actor cannot answer: {why}; make a new actor"),
    }
}
