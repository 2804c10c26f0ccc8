//! The wire format: key names, the fields of a task entry and of a completion.
//!
//! Everything read from Redis is untrusted: decoding returns an error that says what was
//! wrong, and never panics.

use std::fmt;

/// The version written in every task entry (`v`). A worker rejects entries of a version it
/// does not read to the dead-letter stream instead of misreading them, and tells the client
/// why.
///
/// Version 2 (issue 19): the entry has three fields, `v`, `rid` and [`PACKED_FIELD`], which
/// holds every other field packed into one value ([`pack_fields`]): Redis parses, stores and
/// sends back 6 items per entry instead of about 22, which costs it measurably less CPU per
/// task. Workers read both versions; clients write version 2, which a worker older than it
/// refuses, saying that the workers must be upgraded.
pub const FORMAT_VERSION: &str = "2";

/// [`FORMAT_VERSION`] as a number: the newest entry format this version's workers read,
/// which they announce ([`WorkerInfo::entry_format`](crate::transport::WorkerInfo::entry_format)),
/// and which a client writes once every live worker of its queue announces it.
pub const ENTRY_FORMAT: u32 = 2;

/// The version of entries whose fields are each a stream field (clients before version 2;
/// still read).
pub const UNPACKED_FORMAT_VERSION: &str = "1";

/// The field of a version-2 entry that holds its other fields, packed ([`pack_fields`]).
pub const PACKED_FIELD: &str = "e";

/// The field of a packed completion (written for an entry of format version 2, whose client
/// reads it) that holds every field but `deliveries`, packed ([`pack_fields`]).
pub const PACKED_REPLY_FIELD: &str = "p";

/// Packs field-value pairs into one value: per pair, the name's length in decimal, `:`, the
/// name, the value's length, `:`, the value. Any bytes may appear in names and values.
pub fn pack_fields<'a>(fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut packed = Vec::with_capacity(128);
    for (name, value) in fields {
        for part in [name.as_bytes(), value] {
            push_decimal(&mut packed, part.len());
            packed.push(b':');
            packed.extend_from_slice(part);
        }
    }
    packed
}

/// Appends `number` in decimal, without a `String` of its own.
fn push_decimal(out: &mut Vec<u8>, number: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = number;
    loop {
        at -= 1;
        // A digit: `rest % 10` is below 10.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The pairs [`pack_fields`] packed, or `None` when `packed` is not in that form (a length
/// that is not a number, or runs past the end; a name without a value).
pub fn unpack_fields(packed: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut rest = packed;
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let name = unpack_part(&mut rest)?;
        let value = unpack_part(&mut rest)?;
        fields.push((name, value));
    }
    Some(fields)
}

/// One length-prefixed part at the start of `rest` (see [`pack_fields`]), which moves past it.
fn unpack_part(rest: &mut &[u8]) -> Option<Vec<u8>> {
    // A length of at most 19 digits (a `usize` of any size fits; a longer one is garbage).
    let colon = rest.iter().take(20).position(|&byte| byte == b':')?;
    let digits = &rest[..colon];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let len: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let body = rest.get(colon + 1..)?;
    let part = body.get(..len)?.to_vec();
    *rest = &body[len..];
    Some(part)
}

/// The longest time to live a result or a completion may have, in milliseconds (365 days).
/// Redis refuses an expiry whose end does not fit its clock (`PX` past about 2^63 ms from
/// now); a bound far below that keeps every entry's `ttl_ms` usable, whatever the server's
/// clock says.
pub const MAX_TTL_MS: u64 = 365 * 24 * 3600 * 1000;

/// The largest output, in bytes, a client lets the worker leave out of Redis (entry field
/// `inline_max`): the completion carries it anyway, so the client keeps such an output
/// itself and writes its result key only when a dependent task needs it there. Larger
/// outputs are stored under their result key by the worker, as before; a client holds at
/// most this many bytes per output it keeps.
pub const INLINE_RESULT_MAX: u64 = 256;

/// The largest `inline_max` an entry may carry (1 MiB).
pub const MAX_INLINE_MAX: u64 = 1 << 20;

/// The consumer group every worker of a queue joins.
pub const GROUP: &str = "workers";

/// Key names of one queue under one namespace (see `ARCHITECTURE.md` for the layout).
///
/// On a single server (standalone) the names are `{ns}:{queue}:tasks`, `{ns}:seq`,
/// `{ns}:result:..`, `{ns}:reply:..` and so on, as they always were. On a Redis Cluster every
/// key of one queue, the namespace-wide ones included, starts with the hash tag
/// `{ns:queue}` instead, so that all of them live in one slot (every script's keys on one
/// shard) while different queues spread over the shards.
#[derive(Debug, Clone)]
pub struct Keys {
    namespace: String,
    queue: String,
    /// The start of every key of this queue: `ns:queue`, or `{ns:queue}` on a cluster.
    queue_prefix: String,
    /// The start of the keys a standalone server shares between the queues of a namespace
    /// (sequence, results, replies): `ns`, or the queue's `{ns:queue}` on a cluster.
    shared_prefix: String,
    cluster: bool,
}

impl Keys {
    /// The keys of `queue` on a single server (standalone): today's names, unchanged.
    pub fn new(namespace: &str, queue: &str) -> Keys {
        Keys {
            namespace: namespace.to_owned(),
            queue: queue.to_owned(),
            queue_prefix: format!("{namespace}:{queue}"),
            shared_prefix: namespace.to_owned(),
            cluster: false,
        }
    }

    /// The keys of `queue` on a Redis Cluster: every one starts with the hash tag
    /// `{namespace:queue}`.
    pub fn clustered(namespace: &str, queue: &str) -> Keys {
        let tag = format!("{{{namespace}:{queue}}}");
        Keys {
            namespace: namespace.to_owned(),
            queue: queue.to_owned(),
            queue_prefix: tag.clone(),
            shared_prefix: tag,
            cluster: true,
        }
    }

    /// The keys of another queue of the same namespace, in the same mode.
    pub fn for_queue(&self, queue: &str) -> Keys {
        if self.cluster {
            Keys::clustered(&self.namespace, queue)
        } else {
            Keys::new(&self.namespace, queue)
        }
    }

    /// Whether these are the keys of a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// An ACL key pattern that covers every key of this namespace.
    pub fn namespace_pattern(&self) -> String {
        if self.cluster {
            format!("{{{}:*", self.namespace)
        } else {
            format!("{}:*", self.namespace)
        }
    }

    /// The stream of task entries, read by the consumer group [`GROUP`].
    pub fn tasks(&self) -> String {
        format!("{}:tasks", self.queue_prefix)
    }

    /// How many deliveries of each pending entry have started running (poison detection).
    pub fn starts(&self) -> String {
        format!("{}:starts", self.queue_prefix)
    }

    /// Where the delivery `rid` is: the id of the stream entry that carries it, or `done`
    /// once a worker reported it (see `ARCHITECTURE.md`). Written with the entry, so that a
    /// resent enqueue finds it and adds no second entry, and read by the client's
    /// reconciliation pass and by a cancel.
    pub fn entry_of(&self, rid: &str) -> String {
        format!("{}:entry:{rid}", self.queue_prefix)
    }

    /// The prefix of every [`entry_of`](Keys::entry_of) key of this queue.
    pub fn entry_prefix(&self) -> String {
        format!("{}:entry:", self.queue_prefix)
    }

    /// Entries that could not be run: undecodable, unknown, or poison.
    pub fn dead(&self) -> String {
        format!("{}:dead", self.queue_prefix)
    }

    /// The set of worker names that announced themselves on this queue.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.queue_prefix)
    }

    /// One worker's heartbeat (a value with an expiry).
    pub fn heartbeat(&self, worker: &str) -> String {
        format!("{}{worker}", self.heartbeat_prefix())
    }

    /// The prefix of every [`heartbeat`](Keys::heartbeat) key of this queue.
    pub fn heartbeat_prefix(&self) -> String {
        format!("{}:worker:", self.queue_prefix)
    }

    /// The flag that asks `worker` to retire (`Client::retire_workers`).
    pub fn retire(&self, worker: &str) -> String {
        format!("{}:retire:{worker}", self.queue_prefix)
    }

    /// The list of requests for `worker` to run a function once (`Client::run_on_workers`).
    pub fn run_requests(&self, worker: &str) -> String {
        format!("{}:run:{worker}", self.queue_prefix)
    }

    /// Where `worker` answers the run request `id`.
    pub fn run_answer(&self, id: &str, worker: &str) -> String {
        format!("{}:ran:{id}:{worker}", self.queue_prefix)
    }

    /// The queue's control stream: [`ControlMessage`]s every worker of the queue reads
    /// (`Client::restart`, cancels of running tasks).
    pub fn control(&self) -> String {
        format!("{}:control", self.queue_prefix)
    }

    /// A counter that hands out client and worker numbers (per namespace on one server, per
    /// queue on a cluster).
    pub fn sequence(&self) -> String {
        format!("{}:seq", self.shared_prefix)
    }

    /// The prefix of every result key.
    pub fn result_prefix(&self) -> String {
        format!("{}:result:", self.shared_prefix)
    }

    /// The result of one task of one client.
    pub fn result(&self, client: &str, task: u64) -> String {
        format!("{}{client}:{task}", self.result_prefix())
    }

    /// The record of a shared key `key` (pure, or given explicitly) that several clients of
    /// this queue may submit: its run, holders and waiters (`share.lua`).
    pub fn share_record(&self, key: &str) -> String {
        format!("{}:share:{key}", self.queue_prefix)
    }

    /// The result of the shared key `key` of this queue: one for every client that holds it
    /// (under [`result_prefix`](Keys::result_prefix), where workers write results).
    pub fn shared_result(&self, key: &str) -> String {
        format!("{}shared:{}:{key}", self.result_prefix(), self.queue)
    }

    /// The prefix of every client's reply stream.
    pub fn reply_prefix(&self) -> String {
        format!("{}:reply:", self.shared_prefix)
    }

    /// The stream a client reads its completions from.
    pub fn reply(&self, client: &str) -> String {
        format!("{}{client}", self.reply_prefix())
    }
}

/// One task entry, as the client writes it and a worker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEntry {
    /// The registered task's name.
    pub task: String,
    /// The task's key, for logs and error messages.
    pub key: String,
    /// Identifies this delivery attempt in the client's completions.
    pub rid: String,
    /// Where the output goes (dependents and the client read it by this key).
    pub result: String,
    /// The client's reply stream.
    pub reply: String,
    /// The input as JSON, unless it is composed from dependencies.
    pub input: Option<Vec<u8>>,
    /// Result keys whose values, as a JSON array, make the input.
    pub deps: Vec<String>,
    /// How many deliveries may die before the entry goes to the dead-letter stream.
    pub max_deliveries: u32,
    /// How long results and replies live, in milliseconds.
    pub ttl_ms: u64,
    /// The worker resources one run holds (name, amount of at least 1; each name once).
    pub resources: Vec<(String, u64)>,
    /// The largest output the worker may leave out of Redis (not write under `result`),
    /// because the client keeps it from the completion (`INLINE_RESULT_MAX`); `None`:
    /// always write it (a shared key's result, which other clients read, or an entry of a
    /// client older than this field). A worker older than the field writes every output.
    pub inline_max: Option<u64>,
    /// Written in entry format version 2 (the fields packed, see [`TaskEntry::fields`]):
    /// its client reads completions packed too, so the worker writes them packed (field
    /// `p`); `false` for an entry of an older client (version 1), which reads only one
    /// field per field.
    pub packed: bool,
}

impl TaskEntry {
    /// The entry's fields as they are written: with [`packed`](TaskEntry::packed)
    /// ([`FORMAT_VERSION`] 2), `v`, `rid`, and the others of
    /// [`unpacked_fields`](TaskEntry::unpacked_fields) packed into [`PACKED_FIELD`]; else
    /// the unpacked fields.
    pub fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let unpacked = self.unpacked_fields();
        if !self.packed {
            return unpacked;
        }
        let packed = pack_fields(
            unpacked
                .iter()
                .filter(|(name, _)| !matches!(*name, "v" | "rid"))
                .map(|(name, value)| (*name, value.as_slice())),
        );
        vec![
            ("v", FORMAT_VERSION.as_bytes().to_vec()),
            ("rid", self.rid.as_bytes().to_vec()),
            (PACKED_FIELD, packed),
        ]
    }

    /// The entry's fields one by one, as clients before format version 2 wrote them
    /// ([`UNPACKED_FORMAT_VERSION`]; workers still read them), in that order.
    pub fn unpacked_fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut fields = vec![
            ("v", UNPACKED_FORMAT_VERSION.as_bytes().to_vec()),
            ("task", self.task.as_bytes().to_vec()),
            ("key", self.key.as_bytes().to_vec()),
            ("rid", self.rid.as_bytes().to_vec()),
            ("result", self.result.as_bytes().to_vec()),
            ("reply", self.reply.as_bytes().to_vec()),
            ("max_deliveries", self.max_deliveries.to_string().into_bytes()),
            ("ttl_ms", self.ttl_ms.to_string().into_bytes()),
        ];
        if let Some(input) = &self.input {
            fields.push(("input", input.clone()));
        }
        if !self.deps.is_empty() {
            let deps = serde_json::to_vec(&self.deps).unwrap_or_default();
            fields.push(("deps", deps));
        }
        if !self.resources.is_empty() {
            let resources: std::collections::BTreeMap<&str, u64> =
                self.resources.iter().map(|(name, amount)| (name.as_str(), *amount)).collect();
            fields.push(("resources", serde_json::to_vec(&resources).unwrap_or_default()));
        }
        if let Some(inline_max) = self.inline_max {
            fields.push(("inline_max", inline_max.to_string().into_bytes()));
        }
        fields
    }

    /// Decodes an entry read from the stream. `keys` says which reply and result keys are
    /// acceptable (a garbage entry must not make a worker write to arbitrary keys).
    ///
    /// # Errors
    ///
    /// A [`Rejection`] saying which field is missing or invalid; decoding never panics.
    pub fn decode(fields: &[(Vec<u8>, Vec<u8>)], keys: &Keys) -> Result<TaskEntry, Rejection> {
        let version = fields.iter().find(|(field, _)| field == b"v").map(|(_, value)| value);
        if version.map(Vec::as_slice) != Some(FORMAT_VERSION.as_bytes()) {
            return TaskEntry::decode_unpacked(fields, keys);
        }
        // Version 2: `rid` and the packed fields (a field of the same name inside the packed
        // value is ignored: the outer `rid` is the one the scripts read).
        let outer = |name: &str| {
            fields.iter().find(|(field, _)| field == name.as_bytes()).map(|(_, value)| value)
        };
        let rid = outer("rid").cloned().unwrap_or_default();
        let Some(inner) = outer(PACKED_FIELD).and_then(|packed| unpack_fields(packed)) else {
            return Err(Rejection {
                reason: format!(
                    "the entry (format version {FORMAT_VERSION}) has no field `{PACKED_FIELD}` \
                     of packed fields"
                ),
                notify: None,
            });
        };
        let mut expanded = Vec::with_capacity(inner.len() + 2);
        expanded.push((b"v".to_vec(), UNPACKED_FORMAT_VERSION.as_bytes().to_vec()));
        expanded.push((b"rid".to_vec(), rid));
        expanded.extend(inner.into_iter().filter(|(name, _)| name != b"v" && name != b"rid"));
        TaskEntry::decode_unpacked(&expanded, keys).map(|entry| TaskEntry { packed: true, ..entry })
    }

    /// Decodes an entry of one stream field per field ([`UNPACKED_FORMAT_VERSION`]), or a
    /// version-2 entry unpacked.
    fn decode_unpacked(fields: &[(Vec<u8>, Vec<u8>)], keys: &Keys) -> Result<TaskEntry, Rejection> {
        let get = |name: &str| {
            fields.iter().find(|(field, _)| field == name.as_bytes()).map(|(_, value)| value)
        };
        let text = |name: &str| get(name).and_then(|value| std::str::from_utf8(value).ok());
        // Who to tell, if the entry says so in a form we can trust.
        let reply = text("reply").filter(|reply| reply.starts_with(&keys.reply_prefix()));
        let rid = text("rid").filter(|rid| !rid.is_empty());
        let notify = match (reply, rid) {
            (Some(reply), Some(rid)) => {
                Some(Notify { reply: reply.to_owned(), rid: rid.to_owned() })
            }
            _ => None,
        };
        let reject = |reason: String| Rejection { reason, notify: notify.clone() };
        if fields.is_empty() {
            return Err(reject("the entry has no fields (was it deleted?)".into()));
        }
        match text("v") {
            Some(UNPACKED_FORMAT_VERSION) => {}
            Some(other) => {
                return Err(reject(format!(
                    "the entry has format version {other:?}, this worker reads versions \
                     {UNPACKED_FORMAT_VERSION:?} and {FORMAT_VERSION:?}; upgrade the workers \
                     to the taskweave version of the client"
                )));
            }
            None => return Err(reject("the entry has no format version field `v`".into())),
        }
        let required = |name: &str| {
            text(name)
                .map(str::to_owned)
                .ok_or_else(|| reject(format!("the entry has no text field `{name}`")))
        };
        let task = required("task")?;
        let key = required("key")?;
        let rid = required("rid")?;
        let result = required("result")?;
        if !result.starts_with(&keys.result_prefix()) {
            return Err(reject(format!(
                "the entry's result key {result:?} is not under {:?}",
                keys.result_prefix()
            )));
        }
        let reply = required("reply")?;
        if !reply.starts_with(&keys.reply_prefix()) {
            return Err(reject(format!(
                "the entry's reply stream {reply:?} is not under {:?}",
                keys.reply_prefix()
            )));
        }
        if rid.is_empty() {
            return Err(reject("the entry's `rid` is empty".into()));
        }
        if result.len() == keys.result_prefix().len() || reply.len() == keys.reply_prefix().len() {
            return Err(reject("the entry's result key or reply stream has no name".into()));
        }
        // A number in `low..=high`, or a rejection that says which field and what is allowed:
        // an out-of-range value must never reach a script (an unusable `ttl_ms` made
        // complete.lua fail half-way, and its worker retry forever).
        let number = |name: &str, low: u64, high: u64| {
            let text = required(name)?;
            match text.parse::<u64>() {
                Ok(value) if (low..=high).contains(&value) => Ok(value),
                _ => Err(reject(format!(
                    "the entry's field `{name}` is {text:?}, not a whole number from {low} to \
                     {high}; entries must be written by a taskweave client"
                ))),
            }
        };
        let max_deliveries = number("max_deliveries", 1, u64::from(u32::MAX))?;
        let max_deliveries = u32::try_from(max_deliveries).unwrap_or(u32::MAX);
        let ttl_ms = number("ttl_ms", 1, MAX_TTL_MS)?;
        let inline_max = match get("inline_max") {
            Some(_) => Some(number("inline_max", 0, MAX_INLINE_MAX)?),
            None => None,
        };
        let input = get("input").cloned();
        let deps = match get("deps") {
            Some(raw) => serde_json::from_slice::<Vec<String>>(raw)
                .map_err(|error| reject(format!("the entry's `deps` is not a list: {error}")))?,
            None => Vec::new(),
        };
        if let Some(bad) = deps.iter().find(|dep| !dep.starts_with(&keys.result_prefix())) {
            return Err(reject(format!("the entry's dependency key {bad:?} is not a result key")));
        }
        if input.is_none() && deps.is_empty() {
            return Err(reject("the entry has neither `input` nor `deps`".into()));
        }
        let resources = match get("resources") {
            Some(raw) => serde_json::from_slice::<std::collections::BTreeMap<String, u64>>(raw)
                .ok()
                .filter(|resources| {
                    resources.iter().all(|(name, amount)| !name.is_empty() && *amount > 0)
                })
                .ok_or_else(|| {
                    reject(
                        "the entry's `resources` is not a map of resource names to whole numbers of at least 1"
                            .into(),
                    )
                })?
                .into_iter()
                .collect(),
            None => Vec::new(),
        };
        Ok(TaskEntry {
            task,
            key,
            rid,
            result,
            reply,
            input,
            deps,
            max_deliveries,
            ttl_ms,
            resources,
            inline_max,
            packed: false,
        })
    }
}

/// A request for a worker to run a registered task once (`Client::run_on_workers`), as JSON
/// in the worker's [`run_requests`](Keys::run_requests) list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunRequest {
    /// Names the request: the worker answers under [`Keys::run_answer`] of it.
    pub id: String,
    /// The registered task's name.
    pub task: String,
    /// The input, as JSON text.
    pub input: String,
    /// How long the answer lives, in milliseconds.
    pub ttl_ms: u64,
}

/// A worker's answer to a [`RunRequest`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunAnswer {
    /// `ok` (then `body` is the output as JSON text), `failed`, `panicked` or `rejected`
    /// (then `body` says why).
    pub status: String,
    /// The output, or what went wrong.
    pub body: String,
}

/// A message to every worker of a queue, as JSON in the queue's [`control`](Keys::control)
/// stream (field `m`). Read from Redis: a message that does not decode is ignored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControlMessage {
    /// `Client::restart`: each worker signals a cancel to every task it runs, hands the
    /// entries it took ahead back, drops the client its tasks shared, and answers under
    /// [`Keys::run_answer`] of `id`.
    Restart {
        /// Names the request.
        id: String,
        /// How long the answers live, in milliseconds.
        ttl_ms: u64,
    },
    /// A client cancelled these deliveries while a worker ran them: the worker running one
    /// signals the cancel to its body and cancels its sub-tasks.
    Cancel {
        /// The deliveries (`rid`s).
        rids: Vec<String>,
    },
}

/// The value of an [`entry_of`](Keys::entry_of) key once the delivery was reported.
pub const DONE: &str = "done";

/// How long an [`entry_of`](Keys::entry_of) key lives when its client does not delete it (a
/// client that died): long enough for any queue to drain.
pub const ENTRY_KEY_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

/// Where to tell a client about an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub reply: String,
    pub rid: String,
}

/// Why an entry cannot be run, and whom to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub notify: Option<Notify>,
}

/// How a delivery ended, as a worker reports it to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `body` is the output's JSON.
    Ok,
    /// The task returned an error; `body` is its text.
    Failed,
    /// The task panicked; `body` is the message.
    Panicked,
    /// The entry was delivered too often without finishing; `body` is the message.
    Lost,
    /// The worker could not run the entry (unknown task, bad input); `body` says why.
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Panicked => "panicked",
            Status::Lost => "lost",
            Status::Rejected => "rejected",
        }
    }

    pub fn parse(text: &[u8]) -> Option<Status> {
        Some(match text {
            b"ok" => Status::Ok,
            b"failed" => Status::Failed,
            b"panicked" => Status::Panicked,
            b"lost" => Status::Lost,
            b"rejected" => Status::Rejected,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a worker ran a delivery, on its own wall clock: microseconds since the Unix epoch.
/// Written with the completion (fields `started_us`, `finished_us`, and `worker` for the
/// worker's name) for the client's task events; a worker older than these fields writes
/// none, and a client older than them ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunTimes {
    pub started_us: u64,
    pub finished_us: u64,
}

impl RunTimes {
    /// The run from `started` to `finished`, wall-clock times (one before the epoch counts
    /// as the epoch).
    pub fn new(started: std::time::SystemTime, finished: std::time::SystemTime) -> RunTimes {
        RunTimes { started_us: micros(started), finished_us: micros(finished) }
    }
}

/// A wall-clock time in microseconds since the Unix epoch (one before the epoch counts as
/// the epoch).
pub fn micros(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
}

/// A run as a completion reports it: who ran it, and when on that worker's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedRun {
    pub worker: String,
    pub times: RunTimes,
}

/// The fields a completion carries for its run, after `deliveries` (as complete.lua writes
/// them; a packed completion holds them packed, `Completion::packed_reply`).
pub fn run_fields(worker: &str, times: RunTimes) -> [(&'static str, Vec<u8>); 3] {
    [
        ("worker", worker.as_bytes().to_vec()),
        ("started_us", times.started_us.to_string().into_bytes()),
        ("finished_us", times.finished_us.to_string().into_bytes()),
    ]
}

/// One completion, as a client reads it from its reply stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub rid: String,
    pub status: Status,
    pub body: Vec<u8>,
    pub deliveries: u32,
    /// Who ran it and when, if the worker said (see `RunTimes`).
    pub run: Option<ReportedRun>,
    /// Whether the output is under the entry's result key too: false when the worker left
    /// it out (field `stored` = `0`; see [`TaskEntry::inline_max`]) and the client keeps it.
    /// A worker older than the field stores every output (no field: true).
    pub stored: bool,
}

impl Reply {
    /// Decodes a completion read from a reply stream.
    ///
    /// # Errors
    ///
    /// A text saying which field is missing or invalid; decoding never panics.
    pub fn decode(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Reply, String> {
        let packed = fields.iter().find(|(field, _)| field == PACKED_REPLY_FIELD.as_bytes());
        let Some((_, packed)) = packed else {
            return Reply::decode_unpacked(fields);
        };
        // Packed (for an entry of format version 2): every field but `deliveries` inside.
        let mut inner = unpack_fields(packed)
            .ok_or_else(|| format!("a reply whose `{PACKED_REPLY_FIELD}` does not unpack"))?;
        inner.extend(
            fields.iter().filter(|(field, _)| field != PACKED_REPLY_FIELD.as_bytes()).cloned(),
        );
        Reply::decode_unpacked(&inner)
    }

    /// Decodes a completion of one stream field per field (or a packed one, unpacked).
    fn decode_unpacked(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Reply, String> {
        let get = |name: &str| {
            fields.iter().find(|(field, _)| field == name.as_bytes()).map(|(_, value)| value)
        };
        let rid = get("rid")
            .and_then(|rid| std::str::from_utf8(rid).ok())
            .ok_or("a reply without a text `rid`")?
            .to_owned();
        let status = get("status")
            .and_then(|status| Status::parse(status))
            .ok_or("a reply without a known `status`")?;
        let body = get("body").cloned().unwrap_or_default();
        let number = |name: &str| -> Option<u64> {
            get(name).and_then(|text| std::str::from_utf8(text).ok())?.parse().ok()
        };
        let deliveries = number("deliveries").and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        // Optional: a worker older than them writes none, and a run that does not read well
        // (a start after the end) is left out rather than failing the completion.
        let run = match (get("worker"), number("started_us"), number("finished_us")) {
            (Some(worker), Some(started_us), Some(finished_us)) if started_us <= finished_us => {
                std::str::from_utf8(worker).ok().filter(|worker| !worker.is_empty()).map(|worker| {
                    ReportedRun {
                        worker: worker.to_owned(),
                        times: RunTimes { started_us, finished_us },
                    }
                })
            }
            _ => None,
        };
        let stored = get("stored").is_none_or(|stored| stored.as_slice() != b"0");
        Ok(Reply { rid, status, body, deliveries, run, stored })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new("tw", "q")
    }

    /// Standalone key names are exactly those of earlier versions (a mixed-version deploy
    /// shares them); cluster names carry the queue's hash tag `{ns:queue}`, every one.
    #[test]
    fn standalone_key_names_are_unchanged_and_cluster_names_share_one_hash_tag() {
        let single = Keys::new("taskweave", "images");
        let names = [
            single.tasks(),
            single.starts(),
            single.entry_of("c1:2:1"),
            single.dead(),
            single.workers(),
            single.heartbeat("w1"),
            single.sequence(),
            single.result("c1", 2),
            single.reply("c1"),
            single.namespace_pattern(),
        ];
        assert_eq!(
            names,
            [
                "taskweave:images:tasks",
                "taskweave:images:starts",
                "taskweave:images:entry:c1:2:1",
                "taskweave:images:dead",
                "taskweave:images:workers",
                "taskweave:images:worker:w1",
                "taskweave:seq",
                "taskweave:result:c1:2",
                "taskweave:reply:c1",
                "taskweave:*",
            ]
        );
        assert!(!single.is_cluster());
        // A shared key's record lives with the queue; its result where workers may write.
        assert_eq!(single.share_record("report"), "taskweave:images:share:report");
        assert_eq!(single.shared_result("report"), "taskweave:result:shared:images:report");
        assert!(single.shared_result("report").starts_with(&single.result_prefix()));
        assert_eq!(single.for_queue("mail").tasks(), "taskweave:mail:tasks");

        let cluster = Keys::clustered("taskweave", "images");
        let names = [
            cluster.tasks(),
            cluster.starts(),
            cluster.entry_of("c1:2:1"),
            cluster.dead(),
            cluster.workers(),
            cluster.heartbeat("w1"),
            cluster.sequence(),
            cluster.result("c1", 2),
            cluster.reply("c1"),
            cluster.share_record("report"),
            cluster.shared_result("report"),
        ];
        for name in &names {
            assert!(name.starts_with("{taskweave:images}:"), "{name}");
        }
        assert_eq!(cluster.result_prefix(), "{taskweave:images}:result:");
        assert_eq!(cluster.namespace_pattern(), "{taskweave:*");
        assert_eq!(cluster.for_queue("mail").tasks(), "{taskweave:mail}:tasks");
    }

    fn entry() -> TaskEntry {
        TaskEntry {
            task: "add".into(),
            key: "add-01".into(),
            rid: "c1:1:1".into(),
            result: keys().result("c1", 1),
            reply: keys().reply("c1"),
            input: Some(b"[1,2]".to_vec()),
            deps: vec![],
            max_deliveries: 3,
            ttl_ms: 1000,
            resources: vec![],
            inline_max: Some(INLINE_RESULT_MAX),
            packed: true,
        }
    }

    #[test]
    fn resources_go_through_and_bad_ones_are_refused_saying_why() {
        let entry = TaskEntry { resources: vec![("GPU".into(), 2), ("RAM".into(), 1)], ..entry() };
        assert_eq!(TaskEntry::decode(&owned(entry.fields()), &keys()), Ok(entry.clone()));
        for bad in [&b"{\"GPU\":0}"[..], b"{\"\":1}", b"[1]", b"{\"GPU\":-1}"] {
            let mut fields = owned(entry.unpacked_fields());
            fields.retain(|(name, _)| name != b"resources");
            fields.push((b"resources".to_vec(), bad.to_vec()));
            let rejection = TaskEntry::decode(&fields, &keys()).unwrap_err();
            assert!(rejection.reason.contains("`resources`"), "{}", rejection.reason);
        }
    }

    fn owned(fields: Vec<(&'static str, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
        fields.into_iter().map(|(name, value)| (name.as_bytes().to_vec(), value)).collect()
    }

    #[test]
    fn an_entry_decodes_to_what_was_encoded() {
        let decoded = TaskEntry::decode(&owned(entry().fields()), &keys()).unwrap();
        assert_eq!(decoded, entry());
    }

    #[test]
    fn an_entry_is_written_packed_and_one_written_unpacked_still_decodes() {
        let fields = owned(entry().fields());
        let names: Vec<&[u8]> = fields.iter().map(|(name, _)| name.as_slice()).collect();
        assert_eq!(names, [&b"v"[..], b"rid", PACKED_FIELD.as_bytes()]);
        assert_eq!(fields[0].1, FORMAT_VERSION.as_bytes());
        let older = TaskEntry { packed: false, ..entry() };
        let decoded = TaskEntry::decode(&owned(older.fields()), &keys());
        assert_eq!(decoded, Ok(older));
        // Further fields packed: every one of them but `v` and `rid`, in order.
        let inner = unpack_fields(&fields[2].1).unwrap();
        let unpacked = owned(entry().unpacked_fields());
        assert_eq!(
            inner,
            unpacked[..]
                .iter()
                .filter(|(name, _)| name != b"v" && name != b"rid")
                .cloned()
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_announced_entry_format_is_the_written_version() {
        assert_eq!(FORMAT_VERSION, ENTRY_FORMAT.to_string());
    }

    #[test]
    fn packed_fields_round_trip_any_bytes_and_bad_packing_is_refused() {
        let value = [0u8, b':', b'9', 0xff, b'\n'];
        let pairs: [(&str, &[u8]); 3] = [("a", b""), ("", &value), ("x:y", b"12:34")];
        let packed = pack_fields(pairs);
        let expected: Vec<(Vec<u8>, Vec<u8>)> =
            pairs.iter().map(|(name, value)| (name.as_bytes().to_vec(), value.to_vec())).collect();
        assert_eq!(unpack_fields(&packed), Some(expected));
        assert_eq!(unpack_fields(b""), Some(Vec::new()));
        let long = vec![b'x'; 1_203];
        let mut expected = b"2:ab1203:".to_vec();
        expected.extend_from_slice(&long);
        expected.extend_from_slice(b"0:10:xxxxxxxxxx");
        assert_eq!(pack_fields([("ab", long.as_slice()), ("", &long[..10])]), expected);
        for bad in [&b"1:a"[..], b"1:a2:b", b"x:a1:b", b":a1:b", b"1:a9:b", b"-1:a1:b"] {
            assert_eq!(unpack_fields(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let mut fields = owned(entry().fields());
        fields[2].1 = b"4:task".to_vec();
        let rejection = TaskEntry::decode(&fields, &keys()).unwrap_err();
        assert!(rejection.reason.contains("packed"), "{}", rejection.reason);
        fields.pop();
        let rejection = TaskEntry::decode(&fields, &keys()).unwrap_err();
        assert!(rejection.reason.contains("packed"), "{}", rejection.reason);
    }

    #[test]
    fn garbage_is_rejected_with_a_reason_and_no_one_to_tell() {
        let garbage = vec![(b"hello".to_vec(), b"world".to_vec())];
        let rejection = TaskEntry::decode(&garbage, &keys()).unwrap_err();
        assert_eq!(rejection.reason, "the entry has no format version field `v`");
        assert_eq!(rejection.notify, None);
    }

    #[test]
    fn another_version_is_rejected_and_the_client_is_told() {
        let mut fields = owned(entry().unpacked_fields());
        fields[0].1 = b"99".to_vec();
        let rejection = TaskEntry::decode(&fields, &keys()).unwrap_err();
        assert!(rejection.reason.contains("format version \"99\""), "{}", rejection.reason);
        let notify = rejection.notify.unwrap();
        assert_eq!(notify.reply, "tw:reply:c1");
        assert_eq!(notify.rid, "c1:1:1");
    }

    #[test]
    fn foreign_reply_and_result_keys_are_refused() {
        let mut bad = entry();
        bad.result = "some:other:key".into();
        let rejection = TaskEntry::decode(&owned(bad.fields()), &keys()).unwrap_err();
        assert!(rejection.reason.contains("result key"), "{}", rejection.reason);
        let mut bad = entry();
        bad.reply = "elsewhere".into();
        let rejection = TaskEntry::decode(&owned(bad.fields()), &keys()).unwrap_err();
        assert!(rejection.reason.contains("reply stream"), "{}", rejection.reason);
        assert_eq!(rejection.notify, None, "a foreign reply stream is never written to");
    }

    #[test]
    fn out_of_range_numbers_and_empty_names_are_rejected_with_the_field_named() {
        let cases: [(&str, &[u8], &str); 7] = [
            ("ttl_ms", b"18446744073709551615", "`ttl_ms`"),
            ("ttl_ms", b"0", "`ttl_ms`"),
            ("ttl_ms", b"-5", "`ttl_ms`"),
            ("max_deliveries", b"0", "`max_deliveries`"),
            ("max_deliveries", b"4294967296", "`max_deliveries`"),
            ("rid", b"", "`rid` is empty"),
            ("result", b"tw:result:", "no name"),
        ];
        for (field, value, expected) in cases {
            let mut fields = owned(entry().unpacked_fields());
            let slot = fields.iter_mut().find(|(name, _)| name == field.as_bytes()).unwrap();
            slot.1 = value.to_vec();
            let rejection = TaskEntry::decode(&fields, &keys()).unwrap_err();
            assert!(rejection.reason.contains(expected), "{field}: {}", rejection.reason);
            // Told unless it is the delivery id that is missing.
            assert_eq!(rejection.notify.is_some(), field != "rid", "{field}");
        }
        let mut fields = owned(entry().unpacked_fields());
        fields.iter_mut().find(|(name, _)| name == b"ttl_ms").unwrap().1 =
            MAX_TTL_MS.to_string().into_bytes();
        assert_eq!(TaskEntry::decode(&fields, &keys()).unwrap().ttl_ms, MAX_TTL_MS);
    }

    #[test]
    fn a_reply_carries_its_run_and_a_bad_run_is_left_out() {
        let times = RunTimes { started_us: 1_000, finished_us: 1_500 };
        let mut fields = vec![
            ("rid", b"c1:1:1".to_vec()),
            ("status", b"failed".to_vec()),
            ("body", b"boom".to_vec()),
            ("deliveries", b"1".to_vec()),
        ];
        fields.extend(run_fields("host-7", times));
        let reply = Reply::decode(&owned(fields.clone())).unwrap();
        assert_eq!(reply.run, Some(ReportedRun { worker: "host-7".into(), times }));
        for (field, bad) in [
            ("started_us", b"2000".to_vec()),
            ("finished_us", b"soon".to_vec()),
            ("worker", Vec::new()),
            ("worker", vec![0xff, 0xfe]),
        ] {
            let mut fields = owned(fields.clone());
            fields.iter_mut().find(|(name, _)| name == field.as_bytes()).unwrap().1 = bad;
            let reply = Reply::decode(&fields).unwrap();
            assert_eq!(reply.run, None, "{field}");
            assert_eq!(reply.status, Status::Failed);
        }
    }

    #[test]
    fn replies_decode_and_unknown_statuses_are_errors() {
        let fields = owned(vec![
            ("rid", b"c1:1:1".to_vec()),
            ("status", b"ok".to_vec()),
            ("body", b"3".to_vec()),
            ("deliveries", b"2".to_vec()),
        ]);
        let reply = Reply::decode(&fields).unwrap();
        assert_eq!(reply.status, Status::Ok);
        assert_eq!(reply.deliveries, 2);
        // Written by a worker from before the run fields: no run, still a completion.
        assert_eq!(reply.run, None);
        let fields = owned(vec![("rid", b"x".to_vec()), ("status", b"maybe".to_vec())]);
        assert_eq!(Reply::decode(&fields).unwrap_err(), "a reply without a known `status`");
    }
}
