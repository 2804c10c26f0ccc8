//! The storage seam: the few atomic stream operations that the client and the workers are
//! built on, apart from the Redis calls that carry them out.
//!
//! The policy — what to run, when an entry is poison, what to tell the client, when to hand
//! work back — lives in the transport and the worker, written against [`Store`]. The
//! redis-rs implementation ([`super::redis_store::RedisStore`]) maps each operation to
//! commands and Lua scripts; an in-memory model of the same operations can run the same
//! policy under a deterministic simulation.
//!
//! Every operation that changes an entry a worker holds is **owner-checked**: it takes effect
//! only if the caller is the entry's current owner in the consumer group, and reports
//! [`Ownership`] otherwise. That closes the gap `XACK` leaves open (it acknowledges for
//! anyone), so a slow worker whose entry was reclaimed cannot complete it behind the new
//! owner's back.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;

use super::protocol::{Notify, RunTimes, Status, TaskEntry, pack_fields, run_fields};

/// A stream entry's field-value pairs, as read (untrusted).
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// What a store operation failed with: which operation, and the backend's error.
#[derive(Debug)]
pub struct StoreError {
    pub operation: &'static str,
    pub source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis {} failed: {}", self.operation, self.source)
    }
}

impl StoreError {
    /// An operation this store does not implement (only ever called when it says it does).
    fn unsupported(operation: &'static str) -> StoreError {
        StoreError { operation, source: "not supported by this store".into() }
    }
}

/// What a failed store operation says about trying it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The broker could not be reached or did not answer (connection refused or dropped, a
    /// time-out, a server still loading or out of memory): the same call may work later.
    Unreachable,
    /// The server refused the call itself (a script error, a wrong type, a bad argument): the
    /// same call fails again, so retrying it is pointless.
    Refused,
    /// The server's access control (ACL) does not allow the call (`NOPERM`): nothing works
    /// until an operator grants the permission.
    Permission,
}

impl StoreError {
    /// How this failure is to be handled (see [`Failure`]). Errors that are not Redis's
    /// (the simulation's injected faults, a reply of an unexpected shape) count as
    /// [`Failure::Unreachable`].
    pub fn failure(&self) -> Failure {
        let Some(error) = self.source.downcast_ref::<redis::RedisError>() else {
            return Failure::Unreachable;
        };
        use redis::{ErrorKind, ServerErrorKind};
        let code = error.code().unwrap_or_default();
        if code == "NOPERM" || error.to_string().contains("NOPERM") {
            return Failure::Permission;
        }
        match error.kind() {
            ErrorKind::Server(
                ServerErrorKind::ResponseError
                | ServerErrorKind::ExecAbort
                | ServerErrorKind::CrossSlot
                | ServerErrorKind::NoScript,
            )
            | ErrorKind::UnexpectedReturnType
            | ErrorKind::Client => Failure::Refused,
            // Codes redis-rs does not know: OOM and BUSY pass, the others (WRONGTYPE, ...)
            // stay.
            ErrorKind::Extension if !matches!(code, "OOM" | "BUSY") => Failure::Refused,
            _ => Failure::Unreachable,
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

impl From<StoreError> for crate::Error {
    fn from(error: StoreError) -> crate::Error {
        crate::Error::Transport(Box::new(error))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What [`Store::complete_and_begin`] found: one [`Ownership`] per completion, and per
/// entry begun its count of starts or why it may not start.
pub type CompletedAndBegun = (Vec<Ownership>, Vec<Result<u32, Ownership>>);

/// One entry read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: String,
    pub fields: Fields,
}

/// An entry taken over from a worker that stopped touching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEntry {
    pub id: String,
    /// How many times the entry has been delivered, this claim included.
    pub deliveries: u32,
    pub fields: Fields,
}

/// What an owner-checked operation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The caller owned the entry; the operation took effect.
    Done,
    /// The entry is no longer pending (completed, dead-lettered or handed back before).
    Gone,
    /// Another consumer owns the entry now; nothing changed.
    NotOwner,
}

/// Where a delivery the client dispatched stands, as its reconciliation pass finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// Its entry is in the stream, or pending with a worker: it will run or be reclaimed.
    Queued,
    /// A worker reported it: the completion is in the client's reply stream.
    Done,
    /// Neither: the entry was trimmed, deleted, or lost with writes a restarted server
    /// forgot, and nothing will ever run it.
    Missing,
}

/// What a cancel did to a delivery's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The entry was removed before any worker began it: it will never run, and no
    /// completion will come.
    Removed,
    /// A worker has begun it: it runs to the end and reports as usual.
    Started,
    /// The delivery was reported already, or is not known: nothing to remove.
    NotQueued,
}

/// A delivery as the client knows it: its id (`rid`) and, if the client heard it, the id
/// of the stream entry that was written for it (used when its `entry_of` key is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    pub rid: String,
    pub entry_id: Option<String>,
}

/// What one read of the control stream gave: the id to read after next, and the messages.
pub type ControlRead = (String, Vec<Vec<u8>>);

/// A worker's outcome for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub entry_id: String,
    pub reply: String,
    pub result: String,
    pub rid: String,
    pub status: Status,
    pub body: Vec<u8>,
    pub ttl_ms: u64,
    /// When the worker ran it, for the client's task events (`None`: it did not run it,
    /// e.g. its dependencies' results were gone).
    pub run: Option<RunTimes>,
    /// Whether an output (status ok) is written under `result` too; false when the client
    /// keeps it from the reply (a small output, see `TaskEntry::inline_max`).
    pub store_result: bool,
    /// Whether the reply is written packed (`PACKED_REPLY_FIELD`): the entry was (format
    /// version 2), so its client reads packed replies.
    pub packed_reply: bool,
}

impl Completion {
    /// The reply's fields but `deliveries` (which `complete.lua` adds, from the pending
    /// list), packed ([`pack_fields`]): the same fields, under the same names, as an
    /// unpacked reply — `rid`, `status`, `body`, the run's (`worker` is `consumer`) and
    /// `stored` `0` for an output left out of the result key.
    pub fn packed_reply(&self, consumer: &str) -> Vec<u8> {
        let run = self.run.map(|times| run_fields(consumer, times));
        let mut fields: Vec<(&str, &[u8])> = vec![
            ("rid", self.rid.as_bytes()),
            ("status", self.status.as_str().as_bytes()),
            ("body", &self.body),
        ];
        for (name, value) in run.iter().flatten() {
            fields.push((name, value));
        }
        if self.status == Status::Ok && !self.store_result {
            fields.push(("stored", b"0"));
        }
        pack_fields(fields)
    }
}

/// The keys of one shared key's record and result (see `share.lua`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareKeys {
    pub record: String,
    pub result: String,
}

/// What a client joining a shared key is to do (see `share.lua`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// Its delivery is the key's run: enqueue it.
    Run,
    /// Another client's run is alive: its outcome is forwarded to this delivery's reply
    /// stream.
    Wait,
    /// The result exists: the output's JSON.
    Done(Vec<u8>),
}

/// What giving up a hold on a shared key left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Left {
    /// Another live client holds it.
    Kept,
    /// Nobody holds it any more: the result is deleted (the record too, unless a run is in
    /// flight: it stays findable until it expires); the delivery that was computing it, if
    /// one was.
    Last(Option<String>),
}

/// An entry to move to the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub entry_id: String,
    pub reason: String,
    /// The client to tell, with what.
    pub notify: Option<(Notify, Status, Vec<u8>)>,
    pub ttl_ms: u64,
}

/// The stream operations of one queue. See the docs of `src/transport/redis/store.rs`.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The bug planted in the server this store talks to (only the simulated one has any).
    #[cfg(feature = "__planted")]
    fn planted(&self) -> Option<crate::planted::PlantedBug> {
        None
    }

    // ---- the client's side ----

    /// Whether this store shares keys between clients (`share_*`); a store that does not
    /// gives each client its own run of a shared key, as before (the simulation's model).
    fn shares_keys(&self) -> bool {
        false
    }

    /// Holds the shared key `share` for `client` (a lease of `lease`) with its delivery
    /// `rid`, and says whether to run it, wait for another client's run (its outcome then
    /// comes on `reply`) or take the existing result. Called again while waiting, it takes
    /// over a run whose submitter died.
    fn share_join<'a>(
        &'a self,
        share: &'a ShareKeys,
        client: &'a str,
        rid: &'a str,
        reply: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, StoreResult<Joined>> {
        let _ = (share, client, rid, reply, lease);
        Box::pin(async { Err(StoreError::unsupported("share_join")) })
    }

    /// Forwards the outcome of the shared key's run `rid` to every delivery waiting for it;
    /// the key has no run any more. `reply_ttl` is the expiry of a reply stream it creates.
    fn share_done<'a>(
        &'a self,
        share: &'a ShareKeys,
        rid: &'a str,
        status: Status,
        body: &'a [u8],
        deliveries: u32,
        reply_ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let _ = (share, rid, status, body, deliveries, reply_ttl);
        Box::pin(async { Err(StoreError::unsupported("share_done")) })
    }

    /// Gives up `client`'s hold on a shared key (and the wait of its delivery `rid`).
    fn share_leave<'a>(
        &'a self,
        share: &'a ShareKeys,
        client: &'a str,
        rid: &'a str,
    ) -> BoxFuture<'a, StoreResult<Left>> {
        let _ = (share, client, rid);
        Box::pin(async { Err(StoreError::unsupported("share_leave")) })
    }

    /// Renews `client`'s holds on `shares` for `lease`, pipelined; says per key whether the
    /// record was still there.
    fn share_refresh<'a>(
        &'a self,
        shares: &'a [ShareKeys],
        client: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, StoreResult<Vec<bool>>> {
        let _ = (shares, client, lease);
        Box::pin(async { Err(StoreError::unsupported("share_refresh")) })
    }

    /// Appends task entries to the queue's stream, in order, each atomically with its
    /// `entry_of` key; returns their stream ids. Idempotent per delivery id (`rid`): an entry
    /// whose delivery was enqueued before is not added again (a resend after a lost reply),
    /// and its first id is returned — or `None` when it was reported already.
    fn enqueue<'a>(
        &'a self,
        entries: &'a [TaskEntry],
    ) -> BoxFuture<'a, StoreResult<Vec<Option<String>>>>;

    /// Where each delivery stands (in order): still queued or pending, reported, or gone.
    fn locate<'a>(
        &'a self,
        deliveries: &'a [Dispatched],
    ) -> BoxFuture<'a, StoreResult<Vec<Located>>>;

    /// Atomic per delivery: removes its entry if no worker has begun it (acknowledging it
    /// if a worker took it but did not begin it, whose `begin` then finds it gone).
    fn cancel<'a>(
        &'a self,
        deliveries: &'a [Dispatched],
    ) -> BoxFuture<'a, StoreResult<Vec<Cancelled>>>;

    /// Deletes the completions `consumed` from a reply stream (`XDEL`, the ones the last
    /// read returned) and the keys `released` (`UNLINK`: the entry_of keys of the
    /// deliveries those completions reported), then reads those after `after`, waiting up to
    /// `block` for one: one round trip for all three. On an error the deletions may or may
    /// not have been done.
    fn read_replies<'a>(
        &'a self,
        reply: &'a str,
        consumed: &'a [String],
        released: &'a [String],
        after: &'a str,
        count: usize,
        block: Duration,
    ) -> BoxFuture<'a, StoreResult<Vec<StreamEntry>>>;

    /// Deletes entries from a stream (`XDEL`; a pending entry stays pending, and its reclaim
    /// drops it). The client's reply loop deletes what it read through `read_replies`'
    /// `consumed` instead (in one pipeline with its next read); this stays for the
    /// simulation's model, which builds that call from it, and for the test that holds the
    /// model to Redis (both need `sim`).
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    fn delete_stream_entries<'a>(
        &'a self,
        stream: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// Deletes keys (released results, a closed client's reply stream).
    fn delete_keys<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, StoreResult<()>>;

    /// A number no other client or worker of this namespace gets.
    fn next_number(&self) -> BoxFuture<'_, StoreResult<u64>>;

    /// The announcements of the workers whose heartbeat has not expired.
    fn live_workers(&self) -> BoxFuture<'_, StoreResult<Vec<Vec<u8>>>>;

    // ---- the workers' side ----

    /// Creates the consumer group if it does not exist (reading from the stream's start).
    fn ensure_group(&self) -> BoxFuture<'_, StoreResult<()>>;

    /// Reads entries never delivered to anyone, taking ownership of them.
    fn read_new<'a>(
        &'a self,
        consumer: &'a str,
        count: usize,
        block: Duration,
    ) -> BoxFuture<'a, StoreResult<Vec<StreamEntry>>>;

    /// Takes ownership of entries idle for at least `min_idle`, scanning from `cursor`;
    /// returns the next cursor (`"0-0"` after a full pass) and the entries.
    fn claim_idle<'a>(
        &'a self,
        consumer: &'a str,
        min_idle: Duration,
        cursor: &'a str,
        count: usize,
    ) -> BoxFuture<'a, StoreResult<(String, Vec<ClaimedEntry>)>>;

    /// Owner-checked, atomic per entry: stores the result (status ok), tells the client,
    /// marks the delivery done, acknowledges and deletes the entry. One [`Ownership`] per completion, in order.
    fn complete<'a>(
        &'a self,
        consumer: &'a str,
        completions: &'a [Completion],
    ) -> BoxFuture<'a, StoreResult<Vec<Ownership>>>;

    /// Owner-checked, atomic: moves the entry to the dead-letter stream with a reason, tells
    /// the client if there is one to tell (and marks its delivery done), acknowledges and
    /// deletes the entry.
    fn dead_letter<'a>(
        &'a self,
        consumer: &'a str,
        letter: &'a DeadLetter,
    ) -> BoxFuture<'a, StoreResult<Ownership>>;

    /// Owner-checked, once per delivery: records that the caller takes each entry to run and
    /// returns how many deliveries of it have been taken to run, this one included (a
    /// repeated call for the same delivery counts once). Poison detection counts these.
    fn begin<'a>(
        &'a self,
        consumer: &'a str,
        entry_ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<Vec<Result<u32, Ownership>>>>;

    /// [`complete`](Store::complete) and [`begin`](Store::begin) together, both done when it
    /// returns: sent at once, so one round trip on a multiplexed connection. A worker
    /// reports a task's outcome with the start of its next task this way, and runs the next
    /// task only after both are written: its crash then never counts against the task
    /// before it, whose outcome is written by then.
    fn complete_and_begin<'a>(
        &'a self,
        consumer: &'a str,
        completions: &'a [Completion],
        begins: &'a [String],
    ) -> BoxFuture<'a, StoreResult<CompletedAndBegun>> {
        Box::pin(async move {
            let complete = async {
                if completions.is_empty() {
                    Ok(Vec::new())
                } else {
                    self.complete(consumer, completions).await
                }
            };
            let begin = async {
                if begins.is_empty() { Ok(Vec::new()) } else { self.begin(consumer, begins).await }
            };
            futures::future::try_join(complete, begin).await
        })
    }

    /// Owner-checked: resets the idle time of entries the caller is running.
    fn touch<'a>(
        &'a self,
        consumer: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<usize>>;

    /// Owner-checked: gives entries the caller has not started back to the queue (as new
    /// entries, whose ids their deliveries' `entry_of` keys then hold).
    fn hand_back<'a>(
        &'a self,
        consumer: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<usize>>;

    /// Writes values under result keys, each living `ttl_ms`: a client storing outputs it
    /// kept from their completions (see `TaskEntry::inline_max`) before it enqueues a
    /// dependent task that reads them.
    fn write_values<'a>(
        &'a self,
        values: &'a [(String, Vec<u8>)],
        ttl_ms: u64,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// Gives the result keys `keys` that exist `ttl_ms` more to live (from now); a missing
    /// key stays missing. A client renews the results it holds with it, so that they live
    /// as long as it holds them.
    fn renew_values<'a>(
        &'a self,
        keys: &'a [String],
        ttl_ms: u64,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// [`write_values`](Store::write_values), then [`enqueue`](Store::enqueue) `entries`
    /// (whose dependents may read those values), the writes done first; on Redis both in one
    /// pipeline, so a dependent costs no round trip more than any other task.
    fn enqueue_after_values<'a>(
        &'a self,
        values: &'a [(String, Vec<u8>)],
        ttl_ms: u64,
        entries: &'a [TaskEntry],
    ) -> BoxFuture<'a, StoreResult<Vec<Option<String>>>> {
        Box::pin(async move {
            if !values.is_empty() {
                self.write_values(values, ttl_ms).await?;
            }
            if entries.is_empty() { Ok(Vec::new()) } else { self.enqueue(entries).await }
        })
    }

    /// Reads result values by key (`None` for a missing one).
    fn read_values<'a>(
        &'a self,
        keys: &'a [String],
    ) -> BoxFuture<'a, StoreResult<Vec<Option<Vec<u8>>>>>;

    /// Announces a live worker for `ttl`.
    fn heartbeat<'a>(
        &'a self,
        worker: &'a str,
        announcement: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// Withdraws a worker's announcement.
    fn sign_off<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, StoreResult<()>>;

    /// Asks `worker` to retire (a flag that lives for `ttl`), for `Client::retire_workers`.
    /// The default (the simulation's model) keeps no flag: nobody is asked.
    fn request_retire<'a>(
        &'a self,
        worker: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let _ = (worker, ttl);
        Box::pin(async { Ok(()) })
    }

    /// Appends `request` to `worker`'s run requests (which live for `ttl`), for
    /// `Client::run_on_workers`. The default (the simulation's model) drops it: nobody answers.
    fn request_run<'a>(
        &'a self,
        worker: &'a str,
        request: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let _ = (worker, request, ttl);
        Box::pin(async { Ok(()) })
    }

    /// Takes up to `count` of `worker`'s run requests, oldest first; the default: none.
    fn take_run_requests<'a>(
        &'a self,
        worker: &'a str,
        count: usize,
    ) -> BoxFuture<'a, StoreResult<Vec<Vec<u8>>>> {
        let _ = (worker, count);
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Stores `answer` under `key` for `ttl`; the default: nowhere.
    fn answer_run<'a>(
        &'a self,
        key: &'a str,
        answer: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let _ = (key, answer, ttl);
        Box::pin(async { Ok(()) })
    }

    /// Reads the answers stored under `keys`, in order; the default: none.
    fn read_answers<'a>(
        &'a self,
        keys: &'a [String],
    ) -> BoxFuture<'a, StoreResult<Vec<Option<Vec<u8>>>>> {
        Box::pin(async move { Ok(vec![None; keys.len()]) })
    }

    /// Whether someone asked `worker` to retire; the default: never.
    fn retire_requested<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        let _ = worker;
        Box::pin(async { Ok(false) })
    }

    /// Appends `message` (a `ControlMessage`, JSON) to the queue's control stream, which
    /// every worker of the queue reads ([`read_control`](Store::read_control)). The default
    /// (the simulation's model) keeps none: nobody hears it.
    fn send_control<'a>(&'a self, message: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        let _ = message;
        Box::pin(async { Ok(()) })
    }

    /// Reads the control messages after the stream id `after`, waiting up to `block` for
    /// one; with `after` `None`, answers at once with the stream's last id (messages sent
    /// before are not for this reader) and no message. Returns the id to read after next
    /// and the messages, or `None` when this store has no control stream (the default).
    fn read_control<'a>(
        &'a self,
        after: Option<&'a str>,
        block: Duration,
    ) -> BoxFuture<'a, StoreResult<Option<ControlRead>>> {
        let _ = (after, block);
        Box::pin(async { Ok(None) })
    }

    /// Atomic: removes from the consumer group the consumers with no pending entry, no live
    /// announcement, and idle for at least `min_idle` (dead workers whose entries were taken
    /// over); returns their names.
    fn forget_consumers(&self, min_idle: Duration) -> BoxFuture<'_, StoreResult<Vec<String>>>;
}
