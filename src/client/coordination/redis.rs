//! The coordination primitives on Redis: the [`Backend`] of a client on the Redis transport
//! (and of a worker process's coordination handle), so that locks, semaphores, events,
//! queues, variables and topics are shared by name by every client and worker of a
//! namespace, across processes and machines; published datasets too.
//!
//! # Layout
//!
//! Every key starts with `<ns>:coord:` (the namespace, not the queue: clients of different
//! queues share primitives), then the hash tag `{<kind>:<name>}`, which every key of one
//! name shares, so that each script's keys sit on one slot of a Redis Cluster:
//!
//! | key | type | what |
//! |---|---|---|
//! | `{lock:<name>}:leases`, `{semaphore:<name>}:leases` | sorted set | live lease ids, scored by expiry (ms, the server's clock); expires with its last lease |
//! | `{lock:<name>}:max`, `{semaphore:<name>}:max` | string | the name's `max_leases`, fixed by its first acquire |
//! | `{event:<name>}`, `{event:<name>}:generation` | string | present while the event is set; how many times it was set |
//! | `{queue:<name>}:items` | list | the items, JSON |
//! | `{queue:<name>}:meta` | hash | `type` (the item type's name), `capacity` |
//! | `{queue:<name>}:taken:<id>` | list | a get's receipt: what it took, until it has the reply |
//! | `{variable:<name>}` | hash | `type`, `state` (`unset`, `set`, `deleted`), `value` (JSON) |
//! | `{topic:<name>}` | stream | the messages (field `m`, JSON), about the last 10,000 |
//! | `{topic:<name>}:type` | string | the message type's name |
//! | `{dataset:<name>}` | string | a published dataset's value (JSON), with no expiry |
//! | `{dataset:<name>}:type` | string | the name of the Rust type it was published as |
//! | `{datasets}` | set | the published datasets' names (for `list_datasets`) |
//!
//! The datasets' index is the one key outside a name's slot: publishing writes the dataset
//! (one script), then adds its name to the index; unpublishing deletes the dataset, then
//! removes the name. `list_datasets` keeps only the listed names whose dataset exists, so a
//! step lost between the two (a process that died there) never lists a dataset that is gone;
//! one that is published but unlisted is listed again at its next publish attempt.
//!
//! Wake-ups travel on channels `<ns>:coord:wake:<kind>:<name>`: each backend holds one
//! pub/sub connection subscribed to `<ns>:coord:wake:*` (on a cluster, to one node: classic
//! pub/sub reaches every node) and wakes its local waiters of that
//! name, who then try their operation again. Every wait also re-checks on its own at least
//! every [`RECHECK`] (and when the earliest lease of a name expires), so a lost notification
//! (a dropped pub/sub connection) or a lease that expired without a release costs at most
//! that, never a hang.
//!
//! # Atomicity and drop safety
//!
//! Every operation is one Lua script (or one command): the checks and the change under a
//! name happen in one step on the server. The two operations that take something away from
//! the cluster's state, granting a lease and taking items from a queue, run each attempt as a
//! spawned task that reports back over a channel: if the caller's future was dropped while
//! the call was on the wire, the spawned task finds nobody to hand its result to and undoes
//! it (releases the lease, puts the items back at the front of the queue in their order), so
//! a dropped wait takes nothing.
//!
//! Values are JSON (the handles encode them, see `Item`); a name's type is the name of the
//! Rust type (`std::any::type_name`) its first user gave, and other types are refused.
//! Task futures cannot be stored in a queue or a variable on Redis (another process could
//! not read their values); a published dataset is a JSON copy of the task's value, made by
//! the publishing handle once the task has it (see `Client::publish_dataset`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use event_listener::Event as Wakeup;
use futures::future::{BoxFuture, Either, select};
use parking_lot::Mutex;
use redis::Value;

use crate::transport::redis::coordination_seam::{
    self as seam, Connector, Link, Op, RedisLinks, Script, arg,
};

use super::backend::{
    Backend, Encoded, Kind, LeaseId, Payload, PublishedCopy, SharedPayload, TopicFeed, TypeTag,
    problem, short_type_name,
};
use crate::error::Error;
use crate::executor::{Executor, ExecutorExt};
use crate::transport::redis::RedisConfig;

/// The longest a waiter sleeps before it tries again without a wake-up.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);
/// How long one blocking topic read waits on the server before it looks at `closed`.
const TOPIC_BLOCK: Duration = Duration::from_millis(500);
/// About how many messages a topic's stream keeps.
const TOPIC_KEEP: u64 = 10_000;

/// The coordination state of a Redis cluster, seen from one client or worker process.
/// Connects at its first use. Cheap to share: the state is behind an `Arc`.
pub(crate) struct RedisCoordination {
    shared: Arc<Shared>,
}

struct Shared {
    config: RedisConfig,
    /// `{ns}:coord:`
    prefix: String,
    executor: Arc<dyn Executor>,
    /// Where the state lives: a real server, or the simulation's model of one.
    connector: Arc<dyn Connector>,
    /// Made at the first operation.
    connection: futures::lock::Mutex<Option<Arc<dyn Link>>>,
    /// Local waiters per `{kind}:{name}`, woken by the pub/sub loop.
    wakeups: Mutex<HashMap<String, Arc<Wakeup>>>,
    closed: AtomicBool,
    /// Notified by `close`: every wait ends.
    closing: Wakeup,
    /// Dropped by `close` (or with the backend): the wake-up loop ends. Taken by the loop's
    /// start, which holds the receiving side.
    stop: Mutex<Option<flume::Receiver<()>>>,
    stop_sender: Mutex<Option<flume::Sender<()>>>,
    /// Lease ids: a random start for this process, then a counter, mixed.
    lease_seed: u64,
    next_lease: AtomicU64,
}

impl fmt::Debug for RedisCoordination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCoordination").field("prefix", &self.shared.prefix).finish()
    }
}

/// One try of a waiting operation.
enum Attempt<T> {
    Done(T),
    /// Not yet; try again when woken, or after the hint (a lease's expiry) at the latest.
    Again(Option<Duration>),
}

/// What a script answered: a status word and one value (a string, or a list for `items`).
struct Answer {
    status: String,
    value: Value,
}

impl Answer {
    fn text(&self) -> String {
        match &self.value {
            Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Value::SimpleString(text) => text.clone(),
            Value::Int(number) => number.to_string(),
            _ => String::new(),
        }
    }
}

fn answer(value: Value, operation: &'static str) -> Result<Answer, Error> {
    let Value::Array(mut parts) = value else {
        return Err(malformed(operation));
    };
    if parts.is_empty() {
        return Err(malformed(operation));
    }
    let value = if parts.len() > 1 { parts.swap_remove(1) } else { Value::Nil };
    let status = match &parts[0] {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(text) => text.clone(),
        _ => return Err(malformed(operation)),
    };
    Ok(Answer { status, value })
}

/// Whether `error` is Redis out of reach (worth trying again), not a refused call.
fn unreachable(error: &Error) -> bool {
    let Error::Transport(source) = error else { return false };
    source.downcast_ref::<crate::transport::redis::store::StoreError>().is_some_and(|error| {
        error.failure() == crate::transport::redis::store::Failure::Unreachable
    })
}

/// The integer a command or script answered.
fn integer(value: &Value, operation: &'static str) -> Result<i64, Error> {
    match value {
        Value::Int(number) => Ok(*number),
        _ => Err(malformed(operation)),
    }
}

fn malformed(operation: &'static str) -> Error {
    Error::Transport(format!("redis {operation} gave an unexpected reply").into())
}

/// The error for a name whose values are of another type than the handle's.
fn wrong_type(kind: Kind, name: &str, stored: &str, asked: TypeTag) -> Error {
    problem(
        kind,
        name,
        format!(
            "it holds values of type {}, and this handle asks for {}; use one type per name \
             (or another name)",
            short_type_name(stored),
            short_type_name(asked.name())
        ),
    )
}

/// The bytes of an [`Encoded`] payload (the handles encode for this backend).
fn bytes_of<'p>(
    kind: Kind,
    name: &str,
    payload: &'p (dyn std::any::Any + Send + Sync),
) -> Result<&'p [u8], Error> {
    payload
        .downcast_ref::<Encoded>()
        .map(|encoded| encoded.0.as_slice())
        .ok_or_else(|| problem(kind, name, "a value reached the redis backend unencoded (a bug)"))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// splitmix64: spreads a counter over 64 bits, so that lease ids from one random start look
/// random and never repeat within the process.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RedisCoordination {
    /// The coordination state of the namespace `config` names, reached through `executor`
    /// (its timers measure waits; background work runs on it).
    pub(crate) fn new(config: RedisConfig, executor: Arc<dyn Executor>) -> RedisCoordination {
        let connector = Arc::new(RedisLinks::new(config.clone(), TOPIC_BLOCK));
        RedisCoordination::on(config, connector, executor)
    }

    /// The coordination state `connector` reaches (a real server, or the simulation's model
    /// of one), under `config`'s namespace and timeouts.
    pub(crate) fn on(
        config: RedisConfig,
        connector: Arc<dyn Connector>,
        executor: Arc<dyn Executor>,
    ) -> RedisCoordination {
        // The executor's seed, and std's per-process random hash keys, so that two
        // processes (or two clients of one) never share a start.
        let process = {
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u32(std::process::id());
            hasher.finish()
        };
        let lease_seed = process ^ mix(executor.random_seed());
        let (stop_sender, stop_receiver) = flume::bounded(1);
        RedisCoordination {
            shared: Arc::new(Shared {
                prefix: format!("{}:coord:", config.namespace_name()),
                config,
                executor,
                connector,
                connection: futures::lock::Mutex::new(None),
                wakeups: Mutex::new(HashMap::new()),
                closed: AtomicBool::new(false),
                closing: Wakeup::new(),
                stop: Mutex::new(Some(stop_receiver)),
                stop_sender: Mutex::new(Some(stop_sender)),
                lease_seed,
                next_lease: AtomicU64::new(1),
            }),
        }
    }
}

impl Shared {
    /// The key of `kind` `name` with `suffix`: `{ns}:coord:{<kind>:<name>}<suffix>`. Every
    /// key of one name shares the hash tag `{<kind>:<name>}`, so that the scripts touching
    /// several of them stay on one slot of a Redis Cluster (the tag is the text from the
    /// first `{` to the first `}` after it, the same for every suffix even when a name or
    /// the namespace holds braces).
    fn key(&self, kind: Kind, name: &str, suffix: &str) -> String {
        format!("{}{{{}:{name}}}{suffix}", self.prefix, kind.as_str())
    }

    /// The set of the published datasets' names: `{ns}:coord:{datasets}`, a slot of its own.
    fn dataset_index(&self) -> String {
        format!("{}{{datasets}}", self.prefix)
    }

    fn channel(&self, kind: Kind, name: &str) -> String {
        format!("{}wake:{}:{name}", self.prefix, kind.as_str())
    }

    fn wakeup(&self, kind: Kind, name: &str) -> Arc<Wakeup> {
        let key = format!("{}:{name}", kind.as_str());
        let mut wakeups = self.wakeups.lock();
        Arc::clone(wakeups.entry(key).or_insert_with(|| Arc::new(Wakeup::new())))
    }

    fn check_open(&self, operation: &'static str) -> Result<(), Error> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed { operation });
        }
        Ok(())
    }

    /// Runs `op` on the command connection.
    async fn run(self: &Arc<Self>, op: Op) -> Result<Value, Error> {
        self.connection().await?.run(op).await
    }

    /// An id no other call of any process uses: lease ids and queue receipts.
    fn unique_id(&self) -> u64 {
        mix(self.lease_seed ^ self.next_lease.fetch_add(1, Ordering::Relaxed))
    }

    /// Deletes an answered get's receipt in the background (see [`RedisCoordination`]'s
    /// `pop_items`).
    fn forget_receipt(self: &Arc<Self>, receipt: String) {
        let shared = Arc::clone(self);
        let forget = async move {
            let Ok(connection) = shared.connection().await else { return };
            let outcome = connection.run(Op::Del(vec![receipt.clone()])).await;
            if let Err(error) = outcome {
                tracing::debug!(%error, %receipt, "a queue receipt is left to expire");
            }
        };
        if let Err(error) = self.executor.spawn_task(forget) {
            tracing::debug!(%error, "a queue receipt is left to expire");
        }
    }

    /// The command connection, made (with the pub/sub loop) at the first call.
    async fn connection(self: &Arc<Self>) -> Result<Arc<dyn Link>, Error> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = &*slot {
            return Ok(Arc::clone(connection));
        }
        let connection = self.connector.link().await?;
        // Subscribed before the first operation returns, so that no wake-up of a wait that
        // starts after it is missed.
        let stop = self.stop.lock().take();
        if let Some(stop) = stop {
            let pattern = format!("{}wake:*", self.prefix);
            let local_prefix = pattern.trim_end_matches('*').to_owned();
            let shared = Arc::downgrade(self);
            let wake: seam::Wake = Arc::new(move |channel: &str| {
                let Some(shared) = shared.upgrade() else { return false };
                if let Some(local) = channel.strip_prefix(&local_prefix) {
                    let wakeup = shared.wakeups.lock().get(local).cloned();
                    if let Some(wakeup) = wakeup {
                        wakeup.notify(usize::MAX);
                    }
                }
                true
            });
            let wakes =
                self.connector.wakeups(pattern, wake, stop, Arc::clone(&self.executor)).await;
            let _ = self.executor.spawn_task(wakes);
        }
        *slot = Some(Arc::clone(&connection));
        Ok(connection)
    }

    /// Runs `attempt` until it is done, sleeping between tries until a wake-up of
    /// `kind`/`name`, its hint or [`RECHECK`], for up to `wait` in all; `Ok(None)` when the
    /// wait runs out, [`Error::Closed`] once the backend closed.
    async fn wait_for<T, F, Fut>(
        &self,
        kind: Kind,
        name: &str,
        wait: Option<Duration>,
        operation: &'static str,
        mut attempt: F,
    ) -> Result<Option<T>, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Attempt<T>, Error>>,
    {
        let wakeup = self.wakeup(kind, name);
        let deadline = wait.map(|wait| self.executor.now() + wait);
        // Since when the tries have failed to reach Redis (a wait rides out an outage up to
        // the broker timeout, then fails with the error).
        let mut failing_since = None;
        loop {
            // Listening before trying: a wake-up during the try is not missed.
            let woken = wakeup.listen();
            let closing = self.closing.listen();
            self.check_open(operation)?;
            let hint = match attempt().await {
                Ok(Attempt::Done(value)) => return Ok(Some(value)),
                Ok(Attempt::Again(hint)) => {
                    failing_since = None;
                    hint
                }
                Err(error) if unreachable(&error) => {
                    let now = self.executor.now();
                    let since = *failing_since.get_or_insert(now);
                    if now.saturating_duration_since(since) >= self.config.broker_timeout_value() {
                        return Err(error);
                    }
                    tracing::debug!(%error, %name, "a coordination wait could not reach redis; trying again");
                    None
                }
                Err(error) => return Err(error),
            };
            let mut nap = hint.map_or(RECHECK, |hint| hint.min(RECHECK));
            if let Some(deadline) = deadline {
                let now = self.executor.now();
                if now >= deadline {
                    return Ok(None);
                }
                nap = nap.min(deadline - now);
            }
            let sleep = self.executor.sleep(nap);
            let woken = select(woken, closing);
            match select(Box::pin(woken), sleep).await {
                Either::Left(_) | Either::Right(_) => {}
            }
        }
    }

    /// Runs `call` in the caller's future; if that future is dropped while `call` is in
    /// flight, the rest of `call` moves to a task of its own and `undo` gets its result (so
    /// a dropped call takes nothing away). No extra task or thread hop when nobody drops it.
    async fn detached<T: Send + 'static>(
        &self,
        call: BoxFuture<'static, Result<T, Error>>,
        undo: impl FnOnce(T) -> BoxFuture<'static, ()> + Send + 'static,
    ) -> Result<T, Error> {
        let mut guard = Detach {
            call: Some(call),
            undo: Some(Box::new(undo)),
            executor: Arc::clone(&self.executor),
        };
        let outcome = std::future::poll_fn(|cx| {
            let call = guard.call.as_mut().expect("polled until it completes");
            call.as_mut().poll(cx)
        })
        .await;
        // Completed: nothing left for the drop to finish.
        guard.call = None;
        outcome
    }
}

/// A call in flight and what undoes its result: dropped before the call completed, it
/// finishes the call on the executor and undoes what it did.
struct Detach<T: Send + 'static> {
    call: Option<BoxFuture<'static, Result<T, Error>>>,
    undo: Option<Box<dyn FnOnce(T) -> BoxFuture<'static, ()> + Send>>,
    executor: Arc<dyn Executor>,
}

impl<T: Send + 'static> Drop for Detach<T> {
    fn drop(&mut self) {
        let (Some(call), Some(undo)) = (self.call.take(), self.undo.take()) else { return };
        let finish = async move {
            if let Ok(result) = call.await {
                undo(result).await;
            }
        };
        if let Err(error) = self.executor.spawn_task(finish) {
            tracing::warn!(%error, "a dropped coordination call could not be undone");
        }
    }
}

impl Backend for RedisCoordination {
    fn encodes(&self) -> bool {
        true
    }

    fn expires_leases(&self) -> bool {
        true
    }

    fn acquire_lease<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        max_leases: u32,
        lease_timeout: Duration,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<LeaseId>, Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let leases = shared.key(kind, name, ":leases");
            let max_key = shared.key(kind, name, ":max");
            let channel = shared.channel(kind, name);
            let timeout_ms = millis(lease_timeout);
            // One id for every try of this acquire: a try whose reply is lost after Redis
            // granted the lease is answered by the next one (`lease_acquire.lua`).
            let id = shared.unique_id();
            let id = LeaseId(id);
            shared
                .wait_for(kind, name, wait, "acquire", || {
                    let shared = Arc::clone(shared);
                    let (leases, max_key, channel) =
                        (leases.clone(), max_key.clone(), channel.clone());
                    async move {
                        let call = {
                            let shared = Arc::clone(&shared);
                            let leases = leases.clone();
                            Box::pin(async move {
                                let reply = shared
                                    .run(Op::script(
                                        Script::LeaseAcquire,
                                        vec![leases, max_key],
                                        vec![arg(max_leases), arg(timeout_ms), arg(id)],
                                    ))
                                    .await?;
                                answer(reply, "lease_acquire")
                            })
                                as BoxFuture<'static, Result<Answer, Error>>
                        };
                        let undo = {
                            let shared = Arc::clone(&shared);
                            move |answer: Answer| {
                                Box::pin(async move {
                                    if answer.status == "granted" {
                                        let _ = release(&shared, &leases, &channel, id).await;
                                    }
                                }) as BoxFuture<'static, ()>
                            }
                        };
                        let answer = shared.detached(call, undo).await?;
                        match answer.status.as_str() {
                            "granted" => Ok(Attempt::Done(id)),
                            "busy" => Ok(Attempt::Again(
                                answer.text().parse().ok().map(Duration::from_millis),
                            )),
                            "max" => Err(problem(
                                kind,
                                name,
                                format!(
                                    "it was made with max_leases {}, and this handle asks for \
                                     {max_leases}; give every handle of one name the same \
                                     max_leases",
                                    answer.text()
                                ),
                            )),
                            _ => Err(malformed("lease_acquire")),
                        }
                    }
                })
                .await
        })
    }

    fn refresh_lease<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        lease: LeaseId,
        lease_timeout: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let refreshed = shared
                .run(Op::script(
                    Script::LeaseRefresh,
                    vec![shared.key(kind, name, ":leases")],
                    vec![arg(millis(lease_timeout)), arg(lease)],
                ))
                .await?;
            Ok(integer(&refreshed, "lease_refresh")? == 1)
        })
    }

    fn release_lease<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        lease: LeaseId,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            release(shared, &shared.key(kind, name, ":leases"), &shared.channel(kind, name), lease)
                .await
        })
    }

    fn count_leases<'a>(&'a self, kind: Kind, name: &'a str) -> BoxFuture<'a, Result<u32, Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let count = shared
                .run(Op::script(
                    Script::LeaseCount,
                    vec![shared.key(kind, name, ":leases")],
                    Vec::new(),
                ))
                .await?;
            u32::try_from(integer(&count, "lease_count")?).map_err(|_| malformed("lease_count"))
        })
    }

    fn set_event<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            shared
                .run(Op::script(
                    Script::EventSet,
                    vec![
                        shared.key(Kind::Event, name, ""),
                        shared.key(Kind::Event, name, ":generation"),
                    ],
                    vec![arg(shared.channel(Kind::Event, name))],
                ))
                .await?;
            Ok(())
        })
    }

    fn clear_event<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            shared.run(Op::Del(vec![shared.key(Kind::Event, name, "")])).await?;
            Ok(())
        })
    }

    fn is_event_set<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move { is_set(&self.shared, name).await })
    }

    fn wait_event<'a>(
        &'a self,
        name: &'a str,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            // The generation the first look saw: a set after it ends the wait even if the
            // event was cleared again before a later look (as Dask's, asyncio's and
            // `threading`'s events do; the in-process backend keeps the same rule).
            let began = std::sync::Mutex::new(None::<u64>);
            let set = shared
                .wait_for(Kind::Event, name, wait, "wait", || async {
                    let (flag, generation) = event_state(shared, name).await?;
                    let mut began = began.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let first = *began.get_or_insert(generation);
                    Ok(if flag || generation != first {
                        Attempt::Done(())
                    } else {
                        Attempt::Again(None)
                    })
                })
                .await?;
            Ok(set.is_some())
        })
    }

    fn push_item<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        capacity: Option<usize>,
        item: Payload,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Result<(), Payload>, Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let bytes = bytes_of(Kind::Queue, name, &*item)?;
            let (items, meta) =
                (shared.key(Kind::Queue, name, ":items"), shared.key(Kind::Queue, name, ":meta"));
            let channel = shared.channel(Kind::Queue, name);
            let capacity_arg = capacity.map(|bound| bound.to_string()).unwrap_or_default();
            // One try is one script: the item is in the queue or not, whatever happens to
            // this future (a dropped put may or may not have queued its value).
            let pushed = shared
                .wait_for(Kind::Queue, name, wait, "put", || async {
                    let reply = shared
                        .run(Op::script(
                            Script::QueuePush,
                            vec![items.clone(), meta.clone()],
                            vec![
                                arg(tag.name()),
                                arg(&capacity_arg),
                                arg(&channel),
                                bytes.to_vec(),
                            ],
                        ))
                        .await?;
                    let answer = answer(reply, "queue_push")?;
                    match answer.status.as_str() {
                        "pushed" => Ok(Attempt::Done(())),
                        "full" => Ok(Attempt::Again(None)),
                        "type" => Err(wrong_type(Kind::Queue, name, &answer.text(), tag)),
                        "capacity" => Err(problem(
                            Kind::Queue,
                            name,
                            format!(
                                "it holds at most {} items, and this handle asks for a bound \
                                 of {capacity_arg}; give every bounded handle of one name the \
                                 same capacity (or use Client::queue, which takes the queue's)",
                                answer.text()
                            ),
                        )),
                        _ => Err(malformed("queue_push")),
                    }
                })
                .await?;
            Ok(match pushed {
                Some(()) => Ok(()),
                None => Err(item),
            })
        })
    }

    fn pop_items<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        n: usize,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<Payload>, Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let items = shared.key(Kind::Queue, name, ":items");
            let meta = shared.key(Kind::Queue, name, ":meta");
            let channel = shared.channel(Kind::Queue, name);
            // This get's receipt: every try of it names the same one, so that a try whose
            // reply is lost after the script took items is answered with those items by
            // the next try (`queue_pop.lua`). Kept for as long as tries go on.
            let receipt =
                shared.key(Kind::Queue, name, &format!(":taken:{:016x}", shared.unique_id()));
            let keep_receipt = millis(shared.config.broker_timeout_value() + RECHECK);
            let pop = |minimum: usize| {
                let shared = Arc::clone(shared);
                let (items, meta, channel, receipt) =
                    (items.clone(), meta.clone(), channel.clone(), receipt.clone());
                async move {
                    let call = {
                        let shared = Arc::clone(&shared);
                        let (items, channel, receipt) =
                            (items.clone(), channel.clone(), receipt.clone());
                        let type_name = tag.name();
                        Box::pin(async move {
                            let reply = shared
                                .run(Op::script(
                                    Script::QueuePop,
                                    vec![items, meta, receipt],
                                    vec![
                                        arg(type_name),
                                        arg(n),
                                        arg(minimum),
                                        arg(&channel),
                                        arg(keep_receipt),
                                    ],
                                ))
                                .await?;
                            answer(reply, "queue_pop")
                        }) as BoxFuture<'static, Result<Answer, Error>>
                    };
                    let undo = {
                        let shared = Arc::clone(&shared);
                        move |answer: Answer| {
                            Box::pin(async move {
                                let taken = taken_items(answer.value);
                                if taken.is_empty() {
                                    return;
                                }
                                let mut args = vec![arg(&channel)];
                                args.extend(taken);
                                let outcome = shared
                                    .run(Op::script(Script::QueueUnpop, vec![items, receipt], args))
                                    .await;
                                if let Err(error) = outcome {
                                    tracing::warn!(
                                        %error,
                                        "items taken by a dropped queue get could not be put back"
                                    );
                                }
                            }) as BoxFuture<'static, ()>
                        }
                    };
                    let answer = shared.detached(call, undo).await?;
                    match answer.status.as_str() {
                        "items" => Ok(Attempt::Done(taken_items(answer.value))),
                        "short" => Ok(Attempt::Again(None)),
                        "capacity" => Err(problem(
                            Kind::Queue,
                            name,
                            format!(
                                "a batch of {n} items was asked for, but the queue holds at \
                                 most {bound}; ask for at most {bound}",
                                bound = answer.text()
                            ),
                        )),
                        "type" => Err(wrong_type(Kind::Queue, name, &answer.text(), tag)),
                        _ => Err(malformed("queue_pop")),
                    }
                }
            };
            let mut taken = shared.wait_for(Kind::Queue, name, wait, "get", || pop(n)).await?;
            if taken.is_none() {
                // The wait ran out: take what is there.
                taken = match pop(1).await? {
                    Attempt::Done(taken) => Some(taken),
                    Attempt::Again(_) => None,
                };
            }
            if taken.is_some() {
                // Answered: the receipt has done its work. Dropped without waiting for it;
                // it expires by itself if this never reaches Redis.
                shared.forget_receipt(receipt);
            }
            Ok(taken
                .unwrap_or_default()
                .into_iter()
                .map(|bytes| Box::new(Encoded(bytes)) as Payload)
                .collect())
        })
    }

    fn count_items<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<usize, Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let length = shared.run(Op::Llen(shared.key(Kind::Queue, name, ":items"))).await?;
            usize::try_from(integer(&length, "LLEN")?).map_err(|_| malformed("LLEN"))
        })
    }

    fn set_variable<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        value: SharedPayload,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let bytes = bytes_of(Kind::Variable, name, &*value)?;
            let reply = shared
                .run(Op::script(
                    Script::VariableSet,
                    vec![shared.key(Kind::Variable, name, "")],
                    vec![
                        arg(tag.name()),
                        bytes.to_vec(),
                        arg(shared.channel(Kind::Variable, name)),
                    ],
                ))
                .await?;
            let answer = answer(reply, "variable_set")?;
            match answer.status.as_str() {
                "set" => Ok(()),
                "type" => Err(wrong_type(Kind::Variable, name, &answer.text(), tag)),
                _ => Err(malformed("variable_set")),
            }
        })
    }

    fn get_variable<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        wait: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<SharedPayload>, Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let key = shared.key(Kind::Variable, name, "");
            shared
                .wait_for(Kind::Variable, name, wait, "get", || async {
                    let reply = shared
                        .run(Op::script(
                            Script::VariableGet,
                            vec![key.clone()],
                            vec![arg(tag.name())],
                        ))
                        .await?;
                    let answer = answer(reply, "variable_get")?;
                    match answer.status.as_str() {
                        "set" => match answer.value {
                            Value::BulkString(bytes) => {
                                Ok(Attempt::Done(Arc::new(Encoded(bytes)) as SharedPayload))
                            }
                            _ => Err(malformed("variable_get")),
                        },
                        "unset" => Ok(Attempt::Again(None)),
                        "deleted" => Err(problem(
                            Kind::Variable,
                            name,
                            "it was deleted, so it has no value to get; set it again first",
                        )),
                        "type" => Err(wrong_type(Kind::Variable, name, &answer.text(), tag)),
                        _ => Err(malformed("variable_get")),
                    }
                })
                .await
        })
    }

    fn delete_variable<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            shared
                .run(Op::script(
                    Script::VariableDelete,
                    vec![shared.key(Kind::Variable, name, "")],
                    vec![arg(shared.channel(Kind::Variable, name))],
                ))
                .await?;
            Ok(())
        })
    }

    fn publish_dataset<'a>(
        &'a self,
        name: &'a str,
        tag: TypeTag,
        value: SharedPayload,
        replace: bool,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let bytes = bytes_of(Kind::Dataset, name, &*value)?;
            let reply = shared
                .run(Op::script(
                    Script::DatasetPublish,
                    vec![
                        shared.key(Kind::Dataset, name, ""),
                        shared.key(Kind::Dataset, name, ":type"),
                    ],
                    vec![arg(tag.name()), bytes.to_vec(), arg(u8::from(replace))],
                ))
                .await?;
            let answer = answer(reply, "dataset_publish")?;
            // Listed after it is published, and again when the name is found taken: an index
            // entry lost to a crash between the two steps comes back then.
            shared.run(Op::Sadd(shared.dataset_index(), name.to_owned())).await?;
            match answer.status.as_str() {
                "published" => Ok(()),
                "taken" => Err(super::backend::already_published(name)),
                _ => Err(malformed("dataset_publish")),
            }
        })
    }

    fn fetch_dataset<'a>(
        &'a self,
        name: &'a str,
        _tag: TypeTag,
    ) -> BoxFuture<'a, Result<SharedPayload, Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let reply = shared
                .run(Op::Mget(vec![
                    shared.key(Kind::Dataset, name, ""),
                    shared.key(Kind::Dataset, name, ":type"),
                ]))
                .await?;
            let (bytes, type_name): (Option<Vec<u8>>, Option<String>) =
                redis::from_redis_value(reply).map_err(|_| malformed("MGET"))?;
            let Some(bytes) = bytes else {
                return Err(super::backend::not_published(name));
            };
            let copy = PublishedCopy { type_name: type_name.unwrap_or_default(), bytes };
            Ok(Arc::new(copy) as SharedPayload)
        })
    }

    fn list_datasets(&self) -> BoxFuture<'_, Result<Vec<String>, Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let reply = shared.run(Op::Smembers(shared.dataset_index())).await?;
            let listed: Vec<String> =
                redis::from_redis_value(reply).map_err(|_| malformed("SMEMBERS"))?;
            // The index is a key of its own (a name's keys share the name's slot, the index
            // has another), so it is written in a second step: a name whose dataset is gone
            // (an unpublish racing a publish, or a process that died between the steps) is
            // left out here.
            let checks = listed.into_iter().map(|name| async move {
                let exists = shared.run(Op::Exists(shared.key(Kind::Dataset, &name, ""))).await?;
                Ok::<_, Error>((integer(&exists, "EXISTS")? == 1).then_some(name))
            });
            let mut names = futures::future::try_join_all(checks)
                .await?
                .into_iter()
                .flatten()
                .collect::<Vec<_>>();
            names.sort();
            Ok(names)
        })
    }

    fn unpublish_dataset<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let deleted = shared
                .run(Op::Del(vec![
                    shared.key(Kind::Dataset, name, ""),
                    shared.key(Kind::Dataset, name, ":type"),
                ]))
                .await?;
            shared.run(Op::Srem(shared.dataset_index(), name.to_owned())).await?;
            if integer(&deleted, "DEL")? == 0 {
                return Err(problem(
                    Kind::Dataset,
                    name,
                    "no dataset of this name is published, so there is nothing to unpublish",
                ));
            }
            Ok(())
        })
    }

    fn log_event<'a>(
        &'a self,
        topic: &'a str,
        tag: TypeTag,
        message: SharedPayload,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let bytes = bytes_of(Kind::Topic, topic, &*message)?;
            let reply = shared
                .run(Op::script(
                    Script::TopicLog,
                    vec![
                        shared.key(Kind::Topic, topic, ""),
                        shared.key(Kind::Topic, topic, ":type"),
                    ],
                    vec![arg(tag.name()), bytes.to_vec(), arg(TOPIC_KEEP)],
                ))
                .await?;
            let answer = answer(reply, "topic_log")?;
            match answer.status.as_str() {
                "logged" => Ok(()),
                "type" => Err(wrong_type(Kind::Topic, topic, &answer.text(), tag)),
                _ => Err(malformed("topic_log")),
            }
        })
    }

    fn subscribe_topic<'a>(
        &'a self,
        topic: &'a str,
        tag: TypeTag,
    ) -> BoxFuture<'a, Result<TopicFeed, Error>> {
        Box::pin(async move {
            let shared = &self.shared;
            let stream = shared.key(Kind::Topic, topic, "");
            let reply = shared
                .run(Op::script(
                    Script::TopicSubscribe,
                    vec![stream.clone(), shared.key(Kind::Topic, topic, ":type")],
                    vec![arg(tag.name())],
                ))
                .await?;
            let answer = answer(reply, "topic_subscribe")?;
            let from = match answer.status.as_str() {
                "from" => answer.text(),
                "type" => return Err(wrong_type(Kind::Topic, topic, &answer.text(), tag)),
                _ => return Err(malformed("topic_subscribe")),
            };
            // Its own connection: a blocking read would hold up every other command.
            let reader = shared.connection().await?.reader(TOPIC_BLOCK).await?;
            let feed = TopicReader {
                shared: Arc::clone(shared),
                connection: reader,
                stream,
                last: from,
                buffered: std::collections::VecDeque::new(),
            };
            Ok(Box::pin(futures::stream::unfold(feed, TopicReader::next)) as TopicFeed)
        })
    }

    fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.closing.notify(usize::MAX);
        self.shared.stop_sender.lock().take();
    }
}

/// The payloads of a `queue_pop` answer's item list.
fn taken_items(value: Value) -> Vec<Vec<u8>> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::BulkString(bytes) => Some(bytes),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

async fn release(
    shared: &Arc<Shared>,
    leases: &str,
    channel: &str,
    lease: LeaseId,
) -> Result<bool, Error> {
    let released = shared
        .run(Op::script(
            Script::LeaseRelease,
            vec![leases.to_owned()],
            vec![arg(lease), arg(channel)],
        ))
        .await?;
    Ok(integer(&released, "lease_release")? == 1)
}

/// Whether an event is set, and how many times it was set.
async fn event_state(shared: &Arc<Shared>, name: &str) -> Result<(bool, u64), Error> {
    let reply = shared
        .run(Op::Mget(vec![
            shared.key(Kind::Event, name, ""),
            shared.key(Kind::Event, name, ":generation"),
        ]))
        .await?;
    let (flag, generation): (Option<String>, Option<u64>) =
        redis::from_redis_value(reply).map_err(|_| malformed("MGET"))?;
    Ok((flag.is_some(), generation.unwrap_or(0)))
}

async fn is_set(shared: &Arc<Shared>, name: &str) -> Result<bool, Error> {
    let exists = shared.run(Op::Exists(shared.key(Kind::Event, name, ""))).await?;
    Ok(integer(&exists, "EXISTS")? == 1)
}

/// One subscription's reader: blocking `XREAD`s from the last message seen, on its own
/// connection, until the backend closes.
struct TopicReader {
    shared: Arc<Shared>,
    connection: Arc<dyn Link>,
    stream: String,
    last: String,
    buffered: std::collections::VecDeque<SharedPayload>,
}

impl TopicReader {
    async fn next(mut self) -> Option<(SharedPayload, TopicReader)> {
        let mut failures = 0u32;
        loop {
            if let Some(message) = self.buffered.pop_front() {
                return Some((message, self));
            }
            if self.shared.closed.load(Ordering::SeqCst) {
                return None;
            }
            let closing = self.shared.closing.listen();
            if self.shared.closed.load(Ordering::SeqCst) {
                return None;
            }
            let read = self.connection.read_topic(
                self.stream.clone(),
                self.last.clone(),
                256,
                TOPIC_BLOCK,
            );
            let reply = match select(read, closing).await {
                Either::Left((reply, _)) => reply,
                Either::Right(_) => return None,
            };
            match reply {
                Ok(messages) => {
                    failures = 0;
                    for (id, message) in messages {
                        self.last = id;
                        if let Some(bytes) = message {
                            self.buffered.push_back(Arc::new(Encoded(bytes)));
                        }
                    }
                }
                Err(error) => {
                    // The connection reconnects by itself; give up after a broker timeout's
                    // worth of failed reads (the subscription then ends).
                    failures += 1;
                    let give_up = self.shared.config.broker_timeout_value().as_millis()
                        / RECHECK.as_millis().max(1);
                    tracing::debug!(%error, "a topic read failed");
                    if u128::from(failures) > give_up.max(3) {
                        tracing::warn!(%error, topic = %self.stream, "a topic subscription ended: redis stayed unreachable");
                        return None;
                    }
                    self.shared.executor.sleep(RECHECK).await;
                }
            }
        }
    }
}
