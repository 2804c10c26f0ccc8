//! An in-memory model of the Redis commands behind [`Store`], for the deterministic
//! simulation (features `redis` and `sim`).
//!
//! The model keeps what a Redis server keeps for this transport — streams with a consumer
//! group (last delivered id, pending entries with owner, delivery count and idle time),
//! strings with expiry, sets, a counter — and carries out each [`Store`] operation as the
//! commands and Lua scripts of `redis_store.rs` do: `XADD`, `XREADGROUP >`, the owner-checked
//! scripts, `XAUTOCLAIM` (which drops pending entries whose stream entry was deleted), and so
//! on. Time is the executor's: idle times and expiries follow virtual time, and stream ids
//! follow the executor's wall clock (kept monotonic, as Redis does when the clock goes back).
//!
//! Faults, drawn from the seed's `redis` stream: a command that fails before it runs, a
//! command whose reply is lost after it ran (an unknown result), and a delay before each
//! command (so replies of different connections arrive reordered); completions read from a
//! reply stream that come reordered within a read or twice (a notification delivered more
//! than once); an entry a worker already holds delivered to it again (as a reconnecting
//! consumer re-reading its pending entries gets it, with its delivery count raised).
//!
//! The model also keeps counters for the simulation's invariants: how many copies of each
//! delivery id were enqueued, and how many completions were published for it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use futures::future::{BoxFuture, Either, select};
use parking_lot::Mutex;

use crate::executor::Executor;
#[cfg(feature = "__planted")]
use crate::planted::PlantedBug;
use crate::runtimes::sim::{SimExecutor, SimRng};
use crate::transport::redis::protocol::{
    DONE, ENTRY_KEY_TTL_MS, Keys, MAX_TTL_MS, PACKED_REPLY_FIELD, TaskEntry,
};
use crate::transport::redis::store::{
    Cancelled, ClaimedEntry, CompletedAndBegun, Completion, DeadLetter, Dispatched, Fields,
    Located, Ownership, Store, StoreError, StoreResult, StreamEntry,
};

mod coordination;

pub use self::coordination::ModelLinks;

/// How many commands back a restart can lose.
const HISTORY: usize = 8;

/// A stream id: milliseconds and a sequence number.
type Id = (u64, u64);

fn parse_id(text: &str) -> Option<Id> {
    match text.split_once('-') {
        Some((ms, seq)) => Some((ms.parse().ok()?, seq.parse().ok()?)),
        None => Some((text.parse().ok()?, 0)),
    }
}

fn show_id(id: Id) -> String {
    format!("{}-{}", id.0, id.1)
}

/// One pending entry of a consumer group.
#[derive(Debug, Clone)]
struct Pending {
    owner: String,
    delivered_at: Instant,
    deliveries: u32,
}

#[derive(Debug, Clone, Default)]
struct Group {
    last_delivered: Id,
    pending: BTreeMap<Id, Pending>,
    /// The group's consumers (made by a read or claim that gave them entries), with when
    /// each last got some (about Redis's `idle`).
    consumers: BTreeMap<String, Instant>,
}

#[derive(Debug, Clone, Default)]
struct Stream {
    entries: BTreeMap<Id, Fields>,
    last: Id,
    group: Option<Group>,
    expires: Option<Instant>,
}

/// What the modelled server holds.
#[derive(Debug, Default, Clone)]
struct Data {
    streams: BTreeMap<String, Stream>,
    strings: BTreeMap<String, (Vec<u8>, Option<Instant>)>,
    sets: BTreeMap<String, BTreeSet<String>>,
    /// Bumped by every append, so that blocked readers look again.
    appends: u64,
    waiters: Vec<Waker>,
    /// Commands carried out, for statistics.
    commands: u64,
    /// Delivery ids (`rid`) of every task entry enqueued, with how many copies were
    /// enqueued (entries added for it: a resend after a lost reply adds none, as the enqueue
    /// is idempotent), and how many enqueues repeated one.
    enqueued_rids: BTreeMap<String, u32>,
    duplicate_enqueues: usize,
    /// Deliveries the client's reconciliation found missing (`locate`): neither in the
    /// stream, nor pending, nor reported.
    missing_located: usize,
    /// Completions published (to a reply stream) per delivery id.
    replies: BTreeMap<String, u32>,
    /// Entries delivered again to the consumer that held them: by the redelivery fault, or
    /// claimed by their own owner (which had not touched them within the reclaim time).
    repeat_deliveries: usize,
    /// Task keys (the entries' `key` field) of entries a cancel removed that no delivery had
    /// begun, with the number of the command that removed them (data: a restart that loses
    /// the cancel forgets it).
    cancel_removed: BTreeMap<String, u64>,
    /// The starts hash of each queue: per entry, how many deliveries started, and the
    /// `consumer/delivery` of the last one (as `begin.lua` keeps them).
    starts: BTreeMap<(String, Id), (u32, String)>,
    /// The coordination primitives' keys (see `coordination.rs`).
    coord: coordination::CoordData,
}

/// The faults the model injects; all off by default.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModelFaults {
    pub fail_before: f64,
    pub fail_after: f64,
    pub max_delay: Duration,
    /// Chance that one read of a reply stream returns its entries shuffled.
    pub reorder_replies: f64,
    /// Chance per completion read that it is returned twice.
    pub duplicate_replies: f64,
    /// Chance per read of new entries that it also returns one the reader already holds.
    pub duplicate_deliveries: f64,
}

/// The modelled server, shared by every connection ([`MemoryStore`]) to it.
pub struct Model {
    data: Mutex<Data>,
    /// The data before each of the last commands, newest last, for a restart that loses the
    /// last writes.
    history: Mutex<std::collections::VecDeque<Data>>,
    executor: SimExecutor,
    faults: Mutex<(ModelFaults, SimRng)>,
    /// The coordination backends' wake-up subscriptions: each gets the channel of every
    /// `PUBLISH` of a coordination script.
    coord_subscribers: Mutex<Vec<flume::Sender<String>>>,
    /// How many calls of each operation have run (see [`Model::commands_of`]).
    by_operation: Mutex<BTreeMap<&'static str, u64>>,
    /// The bug planted in this server and its clients' transports, if any.
    #[cfg(feature = "__planted")]
    pub(crate) planted: Option<PlantedBug>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model").field("commands", &self.data.lock().commands).finish()
    }
}

/// The error of an injected fault.
#[derive(Debug)]
struct InjectedFault(&'static str);

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InjectedFault {}

impl Model {
    pub fn new(executor: SimExecutor) -> Model {
        let rng = executor.rng("redis");
        Model {
            data: Mutex::new(Data::default()),
            history: Mutex::new(std::collections::VecDeque::new()),
            executor,
            faults: Mutex::new((ModelFaults::default(), rng)),
            coord_subscribers: Mutex::new(Vec::new()),
            by_operation: Mutex::new(BTreeMap::new()),
            #[cfg(feature = "__planted")]
            planted: None,
        }
    }

    pub fn set_faults(&self, faults: ModelFaults) {
        self.faults.lock().0 = faults;
    }

    pub fn faults(&self) -> ModelFaults {
        self.faults.lock().0
    }

    /// Draws `true` with probability `chance` from the `redis` stream (nothing is drawn when
    /// `chance` is zero, so a fault switched off leaves the stream as it was).
    fn draw(&self, chance: f64) -> bool {
        chance > 0.0 && self.faults.lock().1.chance(chance)
    }

    /// Reorders and duplicates completions read from a reply stream, as the faults say.
    fn disturb_replies(&self, mut entries: Vec<StreamEntry>) -> Vec<StreamEntry> {
        let faults = self.faults();
        if entries.len() > 1 && self.draw(faults.reorder_replies) {
            let mut guard = self.faults.lock();
            for index in (1..entries.len()).rev() {
                let other = guard.1.index(index + 1);
                entries.swap(index, other);
            }
            drop(guard);
            self.executor.note(format_args!("redis: {} completions read reordered", entries.len()));
        }
        if faults.duplicate_replies > 0.0 {
            let mut disturbed = Vec::with_capacity(entries.len());
            for entry in entries {
                let twice = self.draw(faults.duplicate_replies);
                if twice {
                    self.executor.note(format_args!("redis: completion {} read twice", entry.id));
                    disturbed.push(entry.clone());
                }
                disturbed.push(entry);
            }
            entries = disturbed;
        }
        entries
    }

    /// How many entries were delivered again to the consumer that held them.
    pub fn repeat_deliveries(&self) -> usize {
        self.data.lock().repeat_deliveries
    }

    /// Completions published beyond one per enqueued copy of their delivery id: a second
    /// accepted outcome for one entry.
    pub fn surplus_replies(&self) -> usize {
        let data = self.data.lock();
        data.replies
            .iter()
            .map(|(rid, replies)| {
                let copies = data.enqueued_rids.get(rid).copied().unwrap_or(0);
                replies.saturating_sub(copies) as usize
            })
            .sum()
    }

    fn now(&self) -> Instant {
        self.executor.now()
    }

    fn wall_ms(&self) -> u64 {
        let since = self.executor.wall_clock().duration_since(SystemTime::UNIX_EPOCH);
        since.map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }

    /// Runs one command against the data, with the injected faults around it.
    async fn command<T>(
        &self,
        operation: &'static str,
        run: impl FnOnce(&mut Data, Instant, u64) -> T,
    ) -> StoreResult<T> {
        let (faults, delay, fail_before, fail_after) = {
            let mut guard = self.faults.lock();
            let (faults, rng) = &mut *guard;
            let faults = *faults;
            let delay = if faults.max_delay > Duration::ZERO {
                rng.duration_up_to(faults.max_delay)
            } else {
                Duration::ZERO
            };
            let before = faults.fail_before > 0.0 && rng.chance(faults.fail_before);
            let after = faults.fail_after > 0.0 && rng.chance(faults.fail_after);
            (faults, delay, before, after)
        };
        let _ = faults;
        // A command reaches the server only once the caller yields (sends it): a task whose
        // node crashed in the step it issued the command from (a task body that crashed its
        // worker, the worker writing its outcome next) is never resumed, so nothing it would
        // have sent is run, as a process that died sends nothing more.
        YieldOnce(false).await;
        if delay > Duration::ZERO {
            self.executor.sleep(delay).await;
        }
        if fail_before {
            self.executor.note(format_args!("redis: {operation} failed before running"));
            return Err(StoreError {
                operation,
                source: Box::new(InjectedFault("connection reset before the command ran")),
            });
        }
        let (now, wall) = (self.now(), self.wall_ms());
        let (output, wake) = {
            let mut data = self.data.lock();
            {
                let mut history = self.history.lock();
                if history.len() == HISTORY {
                    history.pop_front();
                }
                // Wakers are not data: keep them out of the copy.
                let waiters = std::mem::take(&mut data.waiters);
                history.push_back(data.clone());
                data.waiters = waiters;
            }
            data.commands += 1;
            *self.by_operation.lock().entry(operation).or_default() += 1;
            let appends = data.appends;
            let output = run(&mut data, now, wall);
            let wake = if data.appends == appends {
                Vec::new()
            } else {
                std::mem::take(&mut data.waiters)
            };
            (output, wake)
        };
        for waker in wake {
            waker.wake();
        }
        if fail_after {
            self.executor.note(format_args!("redis: {operation} ran but its reply was lost"));
            return Err(StoreError {
                operation,
                source: Box::new(InjectedFault("connection lost after the command ran")),
            });
        }
        Ok(output)
    }

    /// Waits until something is appended anywhere, or `limit` passes.
    async fn wait_for_append(&self, limit: Duration) {
        let seen = self.data.lock().appends;
        let appended = Appended { model: self, seen };
        let timer = self.executor.sleep(limit);
        let appended = std::pin::pin!(appended);
        match select(appended, timer).await {
            Either::Left(_) | Either::Right(_) => {}
        }
    }

    /// The ids of the entries of `stream` pending with `consumer`, for the simulation's
    /// invariants.
    pub fn pending_of(&self, stream: &str, consumer: &str) -> Vec<String> {
        let data = self.data.lock();
        let Some(group) = data.streams.get(stream).and_then(|stream| stream.group.as_ref()) else {
            return Vec::new();
        };
        group
            .pending
            .iter()
            .filter(|(_, pending)| pending.owner == consumer)
            .map(|(id, _)| show_id(*id))
            .collect()
    }

    /// Counters for the simulation's invariants: entries in `stream`, and how many of them
    /// are pending.
    pub fn stream_counts(&self, stream: &str) -> (usize, usize) {
        let data = self.data.lock();
        match data.streams.get(stream) {
            Some(stream) => {
                (stream.entries.len(), stream.group.as_ref().map_or(0, |group| group.pending.len()))
            }
            None => (0, 0),
        }
    }

    /// Restarts the server, losing the effects of the last `lose_last` commands (at most 8),
    /// as a server whose append-only file was not yet synced does. Blocked readers wake up.
    pub fn restart(&self, lose_last: usize) -> usize {
        let wake = {
            let mut data = self.data.lock();
            let mut history = self.history.lock();
            let lose = lose_last.min(history.len());
            let mut restored = None;
            for _ in 0..lose {
                restored = history.pop_back();
            }
            let waiters = std::mem::take(&mut data.waiters);
            if let Some(mut restored) = restored {
                // The simulation's own counters are not data: they survive.
                restored.enqueued_rids = std::mem::take(&mut data.enqueued_rids);
                restored.replies = std::mem::take(&mut data.replies);
                restored.repeat_deliveries = data.repeat_deliveries;
                restored.duplicate_enqueues = data.duplicate_enqueues;
                restored.missing_located = data.missing_located;
                restored.commands = data.commands;
                restored.appends = data.appends + 1;
                *data = restored;
            }
            history.clear();
            self.executor.note(format_args!("redis: restarted, {lose} writes lost"));
            (waiters, lose)
        };
        let (waiters, lose) = wake;
        for waker in waiters {
            waker.wake();
        }
        lose
    }

    /// How many entries of the task stream `tasks` have a count of starts (each is two
    /// fields of the starts hash in Redis: the count and the last start). For
    /// `tests/model_vs_redis.rs`.
    pub fn started_entries(&self, tasks: &str) -> usize {
        self.data.lock().starts.keys().filter(|(stream, _)| stream == tasks).count()
    }

    /// How many task entries were enqueued again with a delivery id already enqueued.
    pub fn duplicate_enqueues(&self) -> usize {
        self.data.lock().duplicate_enqueues
    }

    /// How many deliveries the client's reconciliation found missing.
    pub fn missing_located(&self) -> usize {
        self.data.lock().missing_located
    }

    /// How many commands have run: a clock that orders what happens in the server.
    pub fn commands(&self) -> u64 {
        self.data.lock().commands
    }

    /// How many calls of `operation` (a store operation's name, as `"complete"` or
    /// `"begin"`) have run, a restart's lost writes included.
    pub fn commands_of(&self, operation: &str) -> u64 {
        self.by_operation.lock().get(operation).copied().unwrap_or(0)
    }

    /// The task keys of entries a cancel removed that no delivery had begun, with the
    /// [`commands`](Model::commands) count of the removal.
    pub fn cancel_removed(&self) -> BTreeMap<String, u64> {
        self.data.lock().cancel_removed.clone()
    }

    /// How many string keys (results, heartbeats, counters) are alive, whose names start
    /// with `prefix`.
    pub fn live_strings(&self, prefix: &str) -> usize {
        let now = self.now();
        let data = self.data.lock();
        data.strings
            .iter()
            .filter(|(key, (_, expires))| {
                key.starts_with(prefix) && expires.is_none_or(|expires| expires > now)
            })
            .count()
    }

    /// Appends `fields` to `stream` as a client with bad manners would (garbage entries).
    pub fn append_raw(&self, stream: &str, fields: Fields) {
        let wall = self.wall_ms();
        let wake = {
            let mut data = self.data.lock();
            // An entry that names a delivery is one copy of it, as if a client enqueued it:
            // its one reply is not a surplus.
            if let Some((_, rid)) = fields.iter().find(|(name, _)| name == b"rid") {
                let rid = String::from_utf8_lossy(rid).into_owned();
                *data.enqueued_rids.entry(rid).or_default() += 1;
            }
            xadd(&mut data, stream, wall, fields);
            std::mem::take(&mut data.waiters)
        };
        for waker in wake {
            waker.wake();
        }
    }

    /// Deletes every entry of `stream` (`XTRIM MAXLEN 0`), pending ones included.
    pub fn trim(&self, stream: &str) -> usize {
        let mut data = self.data.lock();
        data.streams.get_mut(stream).map_or(0, |stream| {
            let count = stream.entries.len();
            stream.entries.clear();
            count
        })
    }
}

/// Returns `Pending` once (waking itself), so that other tasks may run in between: the gap
/// between two round trips.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Resolves once something was appended after `seen`.
struct Appended<'a> {
    model: &'a Model,
    seen: u64,
}

impl Future for Appended<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut data = self.model.data.lock();
        if data.appends != self.seen {
            return Poll::Ready(());
        }
        if !data.waiters.iter().any(|waiter| waiter.will_wake(cx.waker())) {
            data.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

fn expired(expires: Option<Instant>, now: Instant) -> bool {
    expires.is_some_and(|expires| expires <= now)
}

/// Drops `key` if it has expired.
fn expire(data: &mut Data, key: &str, now: Instant) {
    if data.strings.get(key).is_some_and(|(_, expires)| expired(*expires, now)) {
        data.strings.remove(key);
    }
    if data.streams.get(key).is_some_and(|stream| expired(stream.expires, now)) {
        data.streams.remove(key);
    }
}

fn xadd(data: &mut Data, key: &str, wall_ms: u64, fields: Fields) -> Id {
    let stream = data.streams.entry(key.to_owned()).or_default();
    // Ids grow even when the wall clock goes back, as in Redis.
    let id =
        if wall_ms > stream.last.0 { (wall_ms, 0) } else { (stream.last.0, stream.last.1 + 1) };
    stream.last = id;
    stream.entries.insert(id, fields);
    data.appends += 1;
    id
}

fn owned_fields(entry: &TaskEntry) -> Fields {
    entry.fields().into_iter().map(|(field, value)| (field.as_bytes().to_vec(), value)).collect()
}

/// Publishes a completion for delivery `rid` on the client's `reply` stream (and counts it).
fn publish_reply(data: &mut Data, reply: &str, wall: u64, rid: &str, fields: Fields) {
    *data.replies.entry(rid.to_owned()).or_default() += 1;
    xadd(data, reply, wall, fields);
}

fn reply_fields(rid: &str, status: &str, body: &[u8], deliveries: u32) -> Fields {
    vec![
        (b"rid".to_vec(), rid.as_bytes().to_vec()),
        (b"status".to_vec(), status.as_bytes().to_vec()),
        (b"body".to_vec(), body.to_vec()),
        (b"deliveries".to_vec(), deliveries.to_string().into_bytes()),
    ]
}

/// What an owner check of `id` in the tasks stream found; `Some(deliveries)` when `consumer`
/// owns it.
fn owner_check(data: &Data, tasks: &str, id: Id, consumer: &str) -> Result<u32, Ownership> {
    let pending = data
        .streams
        .get(tasks)
        .and_then(|stream| stream.group.as_ref())
        .and_then(|group| group.pending.get(&id));
    match pending {
        None => Err(Ownership::Gone),
        Some(pending) if pending.owner != consumer => Err(Ownership::NotOwner),
        Some(pending) => Ok(pending.deliveries),
    }
}

/// Stores a completion's result (status ok) and publishes it on the client's reply stream.
fn store_outcome(
    data: &mut Data,
    keys: &Keys,
    completion: &Completion,
    consumer: &str,
    now: Instant,
    wall: u64,
    deliveries: u32,
) {
    let status = completion.status.as_str();
    if status == "ok" && completion.store_result {
        let expires = now + Duration::from_millis(completion.ttl_ms.max(1));
        data.strings.insert(completion.result.clone(), (completion.body.clone(), Some(expires)));
    }
    expire(data, &completion.reply, now);
    // As complete.lua: packed for a client of entry format 2, else one field per field.
    let fields = if completion.packed_reply {
        vec![
            (b"deliveries".to_vec(), deliveries.to_string().into_bytes()),
            (PACKED_REPLY_FIELD.as_bytes().to_vec(), completion.packed_reply(consumer)),
        ]
    } else {
        let mut fields = reply_fields(&completion.rid, status, &completion.body, deliveries);
        // The worker (the consumer) and its run's times, if it ran it.
        if let Some(times) = completion.run {
            let run = crate::transport::redis::protocol::run_fields(consumer, times);
            fields.extend(run.into_iter().map(|(name, value)| (name.as_bytes().to_vec(), value)));
        }
        // An output left out of its result key: the reply says so, and the client keeps it.
        if status == "ok" && !completion.store_result {
            fields.push((b"stored".to_vec(), b"0".to_vec()));
        }
        fields
    };
    publish_reply(data, &completion.reply, wall, &completion.rid, fields);
    set_expiry(data, &completion.reply, now, completion.ttl_ms);
    // The client's reconciliation pass must not take a reported delivery for a lost one.
    let marker = keys.entry_of(&completion.rid);
    set_string(data, marker, DONE.as_bytes(), now, completion.ttl_ms);
}

/// `XACK` + `XDEL` of one entry.
fn ack_and_delete(data: &mut Data, tasks: &str, id: Id) {
    data.starts.remove(&(tasks.to_owned(), id));
    if let Some(stream) = data.streams.get_mut(tasks) {
        if let Some(group) = &mut stream.group {
            group.pending.remove(&id);
        }
        stream.entries.remove(&id);
    }
}

/// `GET` of a string key (after expiring it).
fn get_string(data: &mut Data, key: &str, now: Instant) -> Option<Vec<u8>> {
    expire(data, key, now);
    data.strings.get(key).map(|(value, _)| value.clone())
}

/// `SET key value PX ttl_ms`.
fn set_string(data: &mut Data, key: String, value: &[u8], now: Instant, ttl_ms: u64) {
    let expires = now + Duration::from_millis(ttl_ms.max(1));
    data.strings.insert(key, (value.to_vec(), Some(expires)));
}

/// The entry id a delivery's `entry_of` key holds, else the one its client knows (as
/// `locate.lua` and `cancel.lua` choose); `Err(())` once the delivery is done.
fn entry_id_of(
    data: &mut Data,
    keys: &Keys,
    delivery: &Dispatched,
    now: Instant,
) -> Result<Option<Id>, ()> {
    match get_string(data, &keys.entry_of(&delivery.rid), now) {
        Some(value) if value == DONE.as_bytes() => Err(()),
        Some(value) => Ok(std::str::from_utf8(&value).ok().and_then(parse_id)),
        None => Ok(delivery.entry_id.as_deref().and_then(parse_id)),
    }
}

/// The value of a field of an entry.
fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a [u8]> {
    fields.iter().find(|(field, _)| field == name.as_bytes()).map(|(_, value)| value.as_slice())
}

fn set_expiry(data: &mut Data, key: &str, now: Instant, ttl_ms: u64) {
    let expires = now + Duration::from_millis(ttl_ms.max(1));
    if let Some(stream) = data.streams.get_mut(key) {
        stream.expires = Some(expires);
    }
}

/// Whether Redis takes `ttl_ms` as an expiry, as the scripts check it.
fn usable_ttl(ttl_ms: u64) -> bool {
    (1..=MAX_TTL_MS).contains(&ttl_ms)
}

/// A call the server refuses (a script's argument check), as redis-rs reports it.
fn refused(operation: &'static str, what: String) -> StoreError {
    let kind = redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError);
    StoreError { operation, source: Box::new(redis::RedisError::from((kind, "refused", what))) }
}

fn no_group(operation: &'static str) -> StoreError {
    StoreError { operation, source: "NOGROUP no such key or consumer group".into() }
}

/// One connection to the modelled server, for one queue.
pub struct MemoryStore {
    model: Arc<Model>,
    keys: Keys,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl MemoryStore {
    pub fn new(model: Arc<Model>, keys: Keys) -> MemoryStore {
        MemoryStore { model, keys }
    }

    #[cfg(feature = "__planted")]
    /// `complete` with the planted bug [`PlantedBug::RedisAckBeforeResult`]: the
    /// owner-checked acknowledgement in one round trip, the result and the notification in a
    /// second one. A failure or a crash in between loses the result; a retry finds the entry
    /// gone.
    async fn ack_then_store(
        &self,
        consumer: &str,
        completions: &[Completion],
    ) -> StoreResult<Vec<Ownership>> {
        let tasks = self.keys.tasks();
        let acknowledged = self
            .model
            .command("XACK", |data, _, _| {
                completions
                    .iter()
                    .map(|completion| {
                        let id = parse_id(&completion.entry_id).ok_or(Ownership::Gone)?;
                        let deliveries = owner_check(data, &tasks, id, consumer)?;
                        ack_and_delete(data, &tasks, id);
                        Ok(deliveries)
                    })
                    .collect::<Vec<Result<u32, Ownership>>>()
            })
            .await?;
        YieldOnce(false).await;
        self.model
            .command("SET + XADD", |data, now, wall| {
                for (completion, acknowledged) in completions.iter().zip(&acknowledged) {
                    if let Ok(deliveries) = acknowledged {
                        store_outcome(
                            data,
                            &self.keys,
                            completion,
                            consumer,
                            now,
                            wall,
                            *deliveries,
                        );
                    }
                }
            })
            .await?;
        Ok(acknowledged.iter().map(|outcome| outcome.err().unwrap_or(Ownership::Done)).collect())
    }

    /// Reads entries after `after` from `stream` (`XREAD`), waiting up to `block`.
    async fn blocking_read<T>(
        &self,
        operation: &'static str,
        block: Duration,
        mut read: impl FnMut(&mut Data, Instant) -> Result<Vec<T>, StoreError>,
    ) -> StoreResult<Vec<T>> {
        let deadline = self.model.now() + block;
        loop {
            let found = self.model.command(operation, |data, now, _| read(data, now)).await??;
            let now = self.model.now();
            if !found.is_empty() || now >= deadline {
                return Ok(found);
            }
            self.model.wait_for_append(deadline - now).await;
        }
    }
}

impl Store for MemoryStore {
    #[cfg(feature = "__planted")]
    fn planted(&self) -> Option<PlantedBug> {
        self.model.planted
    }

    fn enqueue<'a>(
        &'a self,
        entries: &'a [TaskEntry],
    ) -> BoxFuture<'a, StoreResult<Vec<Option<String>>>> {
        let tasks = self.keys.tasks();
        let keys = self.keys.clone();
        Box::pin(self.model.command("enqueue", move |data, now, wall| {
            entries
                .iter()
                .map(|entry| {
                    let marker = keys.entry_of(&entry.rid);
                    if let Some(existing) = get_string(data, &marker, now) {
                        let existing = String::from_utf8_lossy(&existing).into_owned();
                        return (existing != DONE).then_some(existing);
                    }
                    let copies = data.enqueued_rids.entry(entry.rid.clone()).or_default();
                    *copies += 1;
                    if *copies > 1 {
                        data.duplicate_enqueues += 1;
                    }
                    let id = show_id(xadd(data, &tasks, wall, owned_fields(entry)));
                    set_string(data, marker, id.as_bytes(), now, ENTRY_KEY_TTL_MS);
                    Some(id)
                })
                .collect()
        }))
    }

    fn locate<'a>(
        &'a self,
        deliveries: &'a [Dispatched],
    ) -> BoxFuture<'a, StoreResult<Vec<Located>>> {
        let tasks = self.keys.tasks();
        let keys = self.keys.clone();
        Box::pin(self.model.command("locate", move |data, now, _| {
            let located = deliveries
                .iter()
                .map(|delivery| {
                    let id = match entry_id_of(data, &keys, delivery, now) {
                        Err(()) => return Located::Done,
                        Ok(None) => return Located::Missing,
                        Ok(Some(id)) => id,
                    };
                    let stream = data.streams.get(&tasks);
                    let in_stream = stream.is_some_and(|stream| stream.entries.contains_key(&id));
                    let pending = stream
                        .and_then(|stream| stream.group.as_ref())
                        .is_some_and(|group| group.pending.contains_key(&id));
                    if in_stream || pending { Located::Queued } else { Located::Missing }
                })
                .collect::<Vec<_>>();
            // Counted for the simulation's check only when the delivery was never reported
            // either: a reconciliation pass works from a list taken earlier, so it may look
            // for a delivery whose completion the client read (and whose entry_of key it
            // deleted) meanwhile — that one is accounted for.
            data.missing_located += deliveries
                .iter()
                .zip(&located)
                .filter(|(delivery, located)| {
                    **located == Located::Missing && !data.replies.contains_key(&delivery.rid)
                })
                .count();
            located
        }))
    }

    fn cancel<'a>(
        &'a self,
        deliveries: &'a [Dispatched],
    ) -> BoxFuture<'a, StoreResult<Vec<Cancelled>>> {
        let tasks = self.keys.tasks();
        let keys = self.keys.clone();
        Box::pin(self.model.command("cancel", move |data, now, _| {
            deliveries
                .iter()
                .map(|delivery| {
                    let id = match entry_id_of(data, &keys, delivery, now) {
                        Err(()) | Ok(None) => return Cancelled::NotQueued,
                        Ok(Some(id)) => id,
                    };
                    let pending = data
                        .streams
                        .get(&tasks)
                        .and_then(|stream| stream.group.as_ref())
                        .and_then(|group| group.pending.get(&id))
                        .cloned();
                    if let Some(pending) = pending {
                        let begun = format!("{}/{}", pending.owner, pending.deliveries);
                        let last = data.starts.get(&(tasks.clone(), id)).map(|(_, last)| last);
                        if last == Some(&begun) {
                            return Cancelled::Started;
                        }
                    }
                    // For the simulation's check: an entry no delivery began never runs now.
                    let never_begun = !data.starts.contains_key(&(tasks.clone(), id));
                    let key = data
                        .streams
                        .get(&tasks)
                        .and_then(|stream| stream.entries.get(&id))
                        .and_then(|fields| field(fields, "key"))
                        .map(|key| String::from_utf8_lossy(key).into_owned());
                    ack_and_delete(data, &tasks, id);
                    data.strings.remove(&keys.entry_of(&delivery.rid));
                    if let (Some(key), true) = (key, never_begun) {
                        let command = data.commands;
                        data.cancel_removed.insert(key, command);
                    }
                    Cancelled::Removed
                })
                .collect()
        }))
    }

    fn read_replies<'a>(
        &'a self,
        reply: &'a str,
        consumed: &'a [String],
        released: &'a [String],
        after: &'a str,
        count: usize,
        block: Duration,
    ) -> BoxFuture<'a, StoreResult<Vec<StreamEntry>>> {
        Box::pin(async move {
            // The pipeline's `XDEL` and `UNLINK` first: a fault there fails the whole call,
            // as a lost connection fails the pipeline.
            if !consumed.is_empty() {
                self.delete_stream_entries(reply, consumed).await?;
            }
            if !released.is_empty() {
                self.delete_keys(released).await?;
            }
            let read = self.blocking_read("XREAD", block, move |data, now| {
                expire(data, reply, now);
                let after = parse_id(after).unwrap_or((0, 0));
                let Some(stream) = data.streams.get(reply) else { return Ok(Vec::new()) };
                // `XREAD COUNT 0` has no limit.
                let limit = if count == 0 { usize::MAX } else { count };
                Ok(stream
                    .entries
                    .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                    .take(limit)
                    .map(|(id, fields)| StreamEntry { id: show_id(*id), fields: fields.clone() })
                    .collect())
            });
            Ok(self.model.disturb_replies(read.await?))
        })
    }

    fn delete_stream_entries<'a>(
        &'a self,
        stream: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.model.command("XDEL", move |data, _, _| {
            if let Some(stream) = data.streams.get_mut(stream) {
                for id in ids.iter().filter_map(|id| parse_id(id)) {
                    stream.entries.remove(&id);
                }
            }
        }))
    }

    fn delete_keys<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, StoreResult<()>> {
        let (starts, tasks) = (self.keys.starts(), self.keys.tasks());
        Box::pin(self.model.command("UNLINK", move |data, _, _| {
            for key in keys {
                data.strings.remove(key);
                data.streams.remove(key);
                data.sets.remove(key);
                if *key == starts {
                    data.starts.retain(|(stream, _), _| *stream != tasks);
                }
            }
        }))
    }

    fn next_number(&self) -> BoxFuture<'_, StoreResult<u64>> {
        let key = self.keys.sequence();
        Box::pin(self.model.command("INCR", move |data, _, _| {
            let entry = data.strings.entry(key).or_insert_with(|| (b"0".to_vec(), None));
            let next = std::str::from_utf8(&entry.0)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            entry.0 = next.to_string().into_bytes();
            next
        }))
    }

    fn live_workers(&self) -> BoxFuture<'_, StoreResult<Vec<Vec<u8>>>> {
        let set = self.keys.workers();
        let keys = self.keys.clone();
        Box::pin(self.model.command("SMEMBERS", move |data, now, _| {
            let names: Vec<String> = data
                .sets
                .get(&set)
                .map(|names| names.iter().cloned().collect())
                .unwrap_or_default();
            let mut live = Vec::new();
            for name in names {
                let key = keys.heartbeat(&name);
                expire(data, &key, now);
                match data.strings.get(&key) {
                    Some((announcement, _)) => live.push(announcement.clone()),
                    None => {
                        if let Some(names) = data.sets.get_mut(&set) {
                            names.remove(&name);
                        }
                    }
                }
            }
            live
        }))
    }

    fn ensure_group(&self) -> BoxFuture<'_, StoreResult<()>> {
        let tasks = self.keys.tasks();
        Box::pin(self.model.command("XGROUP CREATE", move |data, _, _| {
            let stream = data.streams.entry(tasks).or_default();
            if stream.group.is_none() {
                stream.group = Some(Group::default());
            }
        }))
    }

    fn read_new<'a>(
        &'a self,
        consumer: &'a str,
        count: usize,
        block: Duration,
    ) -> BoxFuture<'a, StoreResult<Vec<StreamEntry>>> {
        let tasks = self.keys.tasks();
        let duplicate_deliveries = self.model.faults().duplicate_deliveries;
        Box::pin(async move {
            let read = self.blocking_read("XREADGROUP", block, |data, now| {
                let stream = data.streams.get_mut(&tasks).ok_or_else(|| no_group("XREADGROUP"))?;
                let Stream { entries, group, .. } = stream;
                let group = group.as_mut().ok_or_else(|| no_group("XREADGROUP"))?;
                let taken: Vec<(Id, Fields)> = entries
                    .range((
                        std::ops::Bound::Excluded(group.last_delivered),
                        std::ops::Bound::Unbounded,
                    ))
                    .take(count.max(1))
                    .map(|(id, fields)| (*id, fields.clone()))
                    .collect();
                // Redis 7.0 makes the consumer only when the read gives it something.
                if !taken.is_empty() {
                    group.consumers.insert(consumer.to_owned(), now);
                }
                for (id, _) in &taken {
                    group.last_delivered = *id;
                    group.pending.insert(
                        *id,
                        Pending { owner: consumer.to_owned(), delivered_at: now, deliveries: 1 },
                    );
                }
                let mut taken = taken;
                let mut redelivered = false;
                if !taken.is_empty() && self.model.draw(duplicate_deliveries) {
                    // Delivered again: the oldest other entry this consumer holds, as a
                    // consumer re-reading its pending entries (`XREADGROUP ... 0`) gets it.
                    let again = group.pending.iter_mut().find(|(id, pending)| {
                        pending.owner == consumer
                            && entries.contains_key(*id)
                            && !taken.iter().any(|(taken, _)| taken == *id)
                    });
                    if let Some((id, pending)) = again {
                        redelivered = true;
                        pending.deliveries += 1;
                        pending.delivered_at = now;
                        self.model.executor.note(format_args!(
                            "redis: entry {} delivered again to {consumer}",
                            show_id(*id)
                        ));
                        taken.push((*id, entries[id].clone()));
                    }
                }
                if redelivered {
                    data.repeat_deliveries += 1;
                }
                Ok(taken
                    .into_iter()
                    .map(|(id, fields)| StreamEntry { id: show_id(id), fields })
                    .collect())
            });
            match read.await {
                Err(error) if error.source.to_string().starts_with("NOGROUP") => {
                    self.ensure_group().await?;
                    Ok(Vec::new())
                }
                other => other,
            }
        })
    }

    fn claim_idle<'a>(
        &'a self,
        consumer: &'a str,
        min_idle: Duration,
        cursor: &'a str,
        count: usize,
    ) -> BoxFuture<'a, StoreResult<(String, Vec<ClaimedEntry>)>> {
        let tasks = self.keys.tasks();
        Box::pin(self.model.command("claim", move |data, now, _| {
            // Without the stream or its group, XAUTOCLAIM fails with NOGROUP and the store
            // makes them (`XGROUP CREATE .. MKSTREAM`), as a read does.
            let stream = data.streams.entry(tasks.clone()).or_default();
            let Stream { entries, group, .. } = stream;
            let Some(group) = group.as_mut() else {
                *group = Some(Group::default());
                return ("0-0".to_owned(), Vec::new());
            };
            let start = parse_id(cursor).unwrap_or((0, 0));
            // XAUTOCLAIM as Redis 7.0 runs it: it examines at most `count * 10` pending
            // entries from the cursor and stops once `count` of them were used up, where a
            // claimed entry and a deleted one (dropped from the pending list whatever its idle
            // time, and reported apart) both use one up; an entry not idle long enough is
            // skipped. The next cursor is the first pending entry not examined, or `0-0`.
            let mut remaining = count.max(1);
            let mut attempts = remaining.saturating_mul(10);
            let mut claimed = Vec::new();
            let mut dropped = Vec::new();
            let mut repeated = 0;
            let mut next = group.pending.range(start..).next().map(|(id, _)| *id);
            while attempts > 0 && remaining > 0 {
                let Some(id) = next else { break };
                attempts -= 1;
                next = group
                    .pending
                    .range((std::ops::Bound::Excluded(id), std::ops::Bound::Unbounded))
                    .next()
                    .map(|(id, _)| *id);
                let pending = group.pending.get_mut(&id).expect("found in the list");
                match entries.get(&id) {
                    None => {
                        group.pending.remove(&id);
                        dropped.push(id);
                        remaining -= 1;
                    }
                    Some(_) if now.saturating_duration_since(pending.delivered_at) < min_idle => {}
                    Some(fields) => {
                        if pending.owner == consumer {
                            repeated += 1;
                        }
                        pending.owner = consumer.to_owned();
                        pending.delivered_at = now;
                        pending.deliveries += 1;
                        claimed.push(ClaimedEntry {
                            id: show_id(id),
                            deliveries: pending.deliveries,
                            fields: fields.clone(),
                        });
                        remaining -= 1;
                    }
                }
            }
            let next = next.map_or_else(|| "0-0".to_owned(), show_id);
            // Redis 7.0 makes the claiming consumer only when it claims something.
            if !claimed.is_empty() {
                group.consumers.insert(consumer.to_owned(), now);
            }
            data.repeat_deliveries += repeated;
            // `claim.lua` forgets the starts of the entries XAUTOCLAIM dropped.
            for id in dropped {
                data.starts.remove(&(tasks.clone(), id));
            }
            (next, claimed)
        }))
    }

    fn complete<'a>(
        &'a self,
        consumer: &'a str,
        completions: &'a [Completion],
    ) -> BoxFuture<'a, StoreResult<Vec<Ownership>>> {
        let tasks = self.keys.tasks();
        let keys = self.keys.clone();
        #[cfg(feature = "__planted")]
        if self.model.planted == Some(PlantedBug::RedisAckBeforeResult) {
            return Box::pin(self.ack_then_store(consumer, completions));
        }
        #[cfg(feature = "__planted")]
        let check_owner = self.model.planted != Some(PlantedBug::RedisNoOwnerCheckOnComplete);
        #[cfg(not(feature = "__planted"))]
        let check_owner = true;
        // complete.lua checks every argument before its first write.
        if let Some(bad) = completions.iter().find(|c| !usable_ttl(c.ttl_ms)) {
            let refusal =
                refused("complete", format!("entry {} has ttl {}", bad.entry_id, bad.ttl_ms));
            return Box::pin(async move { Err(refusal) });
        }
        Box::pin(self.model.command("complete", move |data, now, wall| {
            completions
                .iter()
                .map(|completion| {
                    let Some(id) = parse_id(&completion.entry_id) else {
                        return Ownership::Gone;
                    };
                    let marker = keys.entry_of(&completion.rid);
                    let deliveries = match owner_check(data, &tasks, id, consumer) {
                        Ok(deliveries) => deliveries,
                        // Left the pending list unacknowledged (trimmed and dropped by a
                        // claim, or its stream lost) while its entry_of key still names it:
                        // nobody else can run it, so its outcome is accepted (complete.lua).
                        Err(Ownership::Gone)
                            if get_string(data, &marker, now).as_deref()
                                == Some(show_id(id).as_bytes()) =>
                        {
                            data.starts.get(&(tasks.clone(), id)).map_or(0, |(count, _)| *count)
                        }
                        Err(ownership) if check_owner => return ownership,
                        // The planted bug: a script without the owner check publishes anyway.
                        Err(_) => 0,
                    };
                    store_outcome(data, &keys, completion, consumer, now, wall, deliveries);
                    ack_and_delete(data, &tasks, id);
                    Ownership::Done
                })
                .collect()
        }))
    }

    fn dead_letter<'a>(
        &'a self,
        consumer: &'a str,
        letter: &'a DeadLetter,
    ) -> BoxFuture<'a, StoreResult<Ownership>> {
        let tasks = self.keys.tasks();
        let dead = self.keys.dead();
        let keys = self.keys.clone();
        // dead_letter.lua checks its arguments before its first write.
        if letter.notify.is_some() && !usable_ttl(letter.ttl_ms) {
            let refusal = refused(
                "dead-letter",
                format!("entry {} has ttl {}", letter.entry_id, letter.ttl_ms),
            );
            return Box::pin(async move { Err(refusal) });
        }
        Box::pin(self.model.command("dead-letter", move |data, now, wall| {
            let Some(id) = parse_id(&letter.entry_id) else { return Ownership::Gone };
            let deliveries = match owner_check(data, &tasks, id, consumer) {
                Ok(deliveries) => deliveries,
                Err(ownership) => return ownership,
            };
            let mut record: Fields = vec![
                (b"dead_reason".to_vec(), letter.reason.as_bytes().to_vec()),
                (b"dead_entry".to_vec(), letter.entry_id.as_bytes().to_vec()),
                (b"dead_deliveries".to_vec(), deliveries.to_string().into_bytes()),
                (b"dead_worker".to_vec(), consumer.as_bytes().to_vec()),
            ];
            if let Some(fields) =
                data.streams.get(&tasks).and_then(|stream| stream.entries.get(&id))
            {
                record.extend(fields.iter().take(64).cloned());
            }
            xadd(data, &dead, wall, record);
            if let Some((notify, status, body)) = &letter.notify {
                expire(data, &notify.reply, now);
                let fields = reply_fields(&notify.rid, status.as_str(), body, deliveries);
                publish_reply(data, &notify.reply, wall, &notify.rid, fields);
                set_expiry(data, &notify.reply, now, letter.ttl_ms);
                let marker = keys.entry_of(&notify.rid);
                set_string(data, marker, DONE.as_bytes(), now, letter.ttl_ms);
            }
            ack_and_delete(data, &tasks, id);
            Ownership::Done
        }))
    }

    fn begin<'a>(
        &'a self,
        consumer: &'a str,
        entry_ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<Vec<Result<u32, Ownership>>>> {
        let tasks = self.keys.tasks();
        Box::pin(self.model.command("begin", move |data, _, _| {
            entry_ids
                .iter()
                .map(|entry_id| {
                    let Some(id) = parse_id(entry_id) else { return Err(Ownership::Gone) };
                    let deliveries = owner_check(data, &tasks, id, consumer)?;
                    let marker = format!("{consumer}/{deliveries}");
                    let (count, last) = data.starts.entry((tasks.clone(), id)).or_default();
                    if *last != marker {
                        *last = marker;
                        *count += 1;
                    }
                    Ok(*count)
                })
                .collect()
        }))
    }

    /// As `complete_and_begin.lua`: the outcomes first, then the starts, the starts only if
    /// the outcomes were written. The script does both atomically; here they are two commands
    /// (a fault or another caller may come between them), which allows every order the
    /// script allows and more, so the simulation checks the worker against a superset.
    fn complete_and_begin<'a>(
        &'a self,
        consumer: &'a str,
        completions: &'a [Completion],
        begins: &'a [String],
    ) -> BoxFuture<'a, StoreResult<CompletedAndBegun>> {
        Box::pin(async move {
            let completed = if completions.is_empty() {
                Vec::new()
            } else {
                self.complete(consumer, completions).await?
            };
            let begun =
                if begins.is_empty() { Vec::new() } else { self.begin(consumer, begins).await? };
            Ok((completed, begun))
        })
    }

    fn touch<'a>(
        &'a self,
        consumer: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<usize>> {
        let tasks = self.keys.tasks();
        Box::pin(self.model.command("touch", move |data, now, _| {
            let Some(Stream { entries, group: Some(group), .. }) = data.streams.get_mut(&tasks)
            else {
                return 0;
            };
            let mut touched = 0;
            let mut dropped = Vec::new();
            for id in ids.iter().filter_map(|id| parse_id(id)) {
                if let Some(pending) = group.pending.get_mut(&id) {
                    if pending.owner != consumer {
                        continue;
                    }
                    if entries.contains_key(&id) {
                        pending.delivered_at = now;
                        touched += 1;
                    } else {
                        // XCLAIM drops a pending entry whose stream entry was deleted, and
                        // `touch.lua` forgets its starts.
                        group.pending.remove(&id);
                        dropped.push(id);
                    }
                }
            }
            for id in dropped {
                data.starts.remove(&(tasks.clone(), id));
            }
            touched
        }))
    }

    fn hand_back<'a>(
        &'a self,
        consumer: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<usize>> {
        let tasks = self.keys.tasks();
        let keys = self.keys.clone();
        Box::pin(self.model.command("hand back", move |data, _, wall| {
            let mut handed = 0;
            for id in ids.iter().filter_map(|id| parse_id(id)) {
                let Ok(deliveries) = owner_check(data, &tasks, id, consumer) else {
                    continue;
                };
                // The count of starts follows the entry, less this delivery's own start if
                // `begin` counted it (see `hand_back.lua`).
                let marker = format!("{consumer}/{deliveries}");
                let starts = data
                    .starts
                    .get(&(tasks.clone(), id))
                    .map_or(0, |(count, last)| count.saturating_sub(u32::from(*last == marker)));
                let fields = data
                    .streams
                    .get(&tasks)
                    .and_then(|stream| stream.entries.get(&id))
                    .cloned()
                    .filter(|fields| !fields.is_empty());
                if let Some(fields) = fields {
                    let rid = field(&fields, "rid").map(|rid| String::from_utf8_lossy(rid));
                    let marker = rid.map(|rid| keys.entry_of(&rid));
                    let new_id = xadd(data, &tasks, wall, fields.clone());
                    if starts > 0 {
                        data.starts.insert((tasks.clone(), new_id), (starts, String::new()));
                    }
                    // The delivery's entry_of key follows it (KEEPTTL).
                    if let Some((value, _)) = marker.and_then(|key| data.strings.get_mut(&key)) {
                        *value = show_id(new_id).into_bytes();
                    }
                }
                ack_and_delete(data, &tasks, id);
                handed += 1;
            }
            handed
        }))
    }

    fn write_values<'a>(
        &'a self,
        values: &'a [(String, Vec<u8>)],
        ttl_ms: u64,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.model.command("SET", move |data, now, _| {
            for (key, value) in values {
                set_string(data, key.clone(), value, now, ttl_ms);
            }
        }))
    }

    fn renew_values<'a>(
        &'a self,
        keys: &'a [String],
        ttl_ms: u64,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.model.command("PEXPIRE", move |data, now, _| {
            for key in keys {
                expire(data, key, now);
                if let Some((_, expires)) = data.strings.get_mut(key) {
                    *expires = Some(now + Duration::from_millis(ttl_ms.max(1)));
                }
            }
        }))
    }

    fn read_values<'a>(
        &'a self,
        keys: &'a [String],
    ) -> BoxFuture<'a, StoreResult<Vec<Option<Vec<u8>>>>> {
        Box::pin(self.model.command("MGET", move |data, now, _| {
            keys.iter()
                .map(|key| {
                    expire(data, key, now);
                    data.strings.get(key).map(|(value, _)| value.clone())
                })
                .collect()
        }))
    }

    fn heartbeat<'a>(
        &'a self,
        worker: &'a str,
        announcement: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let key = self.keys.heartbeat(worker);
        let set = self.keys.workers();
        Box::pin(self.model.command("heartbeat", move |data, now, _| {
            data.strings.insert(
                key,
                (announcement.to_vec(), Some(now + ttl.max(Duration::from_millis(1)))),
            );
            data.sets.entry(set).or_default().insert(worker.to_owned());
        }))
    }

    fn forget_consumers(&self, min_idle: Duration) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        let tasks = self.keys.tasks();
        let keys = self.keys.clone();
        Box::pin(self.model.command("forget consumers", move |data, now, _| {
            let Some(Stream { group: Some(group), .. }) = data.streams.get(&tasks) else {
                return Vec::new();
            };
            // As `forget.lua`: no pending entry, idle long enough, no live announcement.
            let candidates: Vec<String> = group
                .consumers
                .iter()
                .filter(|(name, seen)| {
                    now.saturating_duration_since(**seen) >= min_idle
                        && !group.pending.values().any(|pending| &pending.owner == *name)
                })
                .map(|(name, _)| name.clone())
                .collect();
            let mut removed = Vec::new();
            for name in candidates {
                let heartbeat = keys.heartbeat(&name);
                expire(data, &heartbeat, now);
                if data.strings.contains_key(&heartbeat) {
                    continue;
                }
                if let Some(Stream { group: Some(group), .. }) = data.streams.get_mut(&tasks) {
                    group.consumers.remove(&name);
                }
                removed.push(name);
            }
            removed
        }))
    }

    fn sign_off<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        let key = self.keys.heartbeat(worker);
        let set = self.keys.workers();
        Box::pin(self.model.command("sign off", move |data, _, _| {
            data.strings.remove(&key);
            if let Some(names) = data.sets.get_mut(&set) {
                names.remove(worker);
            }
        }))
    }
}
