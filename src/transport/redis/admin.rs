//! Operators' tooling for the Redis backend: queue statistics, workers and dead letters
//! ([`RedisAdmin`]), the calls behind the `taskweave-admin` example.
//!
//! An admin handle talks to Redis directly, on a connection of its own: it needs no client,
//! starts no background loop and submits nothing, so it is safe to point at a production
//! queue.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{RedisError, Script, Value};

use super::protocol::{self, GROUP, Keys};
use super::redis_store::{Connection, connect_one, open_client};
use super::{RedisConfig, WorkerInfo};
use crate::Error;

/// How many entries the dead-letter stream of a queue keeps unless its workers are told
/// otherwise ([`WorkerBuilder::dead_letter_cap`](crate::worker::WorkerBuilder::dead_letter_cap)):
/// each new dead letter trims it to about this many (`XADD MAXLEN ~`, in whole stream nodes,
/// so up to about 100 more), the oldest first. [`RedisAdmin::trim_dead_letters`] trims it to an exact length.
pub const DEFAULT_DEAD_LETTER_CAP: u64 = 10_000;

/// How many dead letters one `XRANGE` or `requeue.lua` call handles.
const PAGE: usize = 256;

/// The fields `dead_letter.lua` writes before an entry's own.
const DEAD_FIELDS: [&str; 4] = ["dead_reason", "dead_entry", "dead_deliveries", "dead_worker"];

/// An operator's handle on one queue of a Redis server: statistics, workers and dead letters.
///
/// Cheap to clone; clones share one connection. [`for_queue`](RedisAdmin::for_queue) gives a
/// handle on another queue over the same connection.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), taskweave::Error> {
/// use taskweave::transport::redis::RedisAdmin;
///
/// let admin = RedisAdmin::connect("redis://127.0.0.1:6379").await?;
/// let stats = admin.queue_stats().await?;
/// println!("{}: {} waiting, {} pending", stats.queue, stats.waiting, stats.pending);
/// for letter in admin.dead_letters(10).await? {
///     println!("{} {}: {}", letter.id, letter.task.as_deref().unwrap_or("?"), letter.reason);
/// }
/// admin.requeue_all_dead_letters().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisAdmin {
    keys: Keys,
    namespace: String,
    /// The server's URL without its password, for messages.
    broker: String,
    connection: Connection,
}

impl std::fmt::Debug for RedisAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdmin")
            .field("broker", &self.broker)
            .field("queue", &self.keys.queue())
            .finish_non_exhaustive()
    }
}

/// Configures and connects a [`RedisAdmin`].
#[derive(Debug, Clone)]
#[must_use = "a RedisAdminBuilder does nothing until `connect` is called"]
pub struct RedisAdminBuilder {
    /// The server, namespace, queue, command timeout and TLS settings (the broker timeout
    /// is not used: an admin call fails at once when Redis cannot be reached).
    config: RedisConfig,
}

/// A queue's state, from [`RedisAdmin::queue_stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// The queue's name.
    pub queue: String,
    /// Entries in the task stream: waiting ones and those workers hold.
    pub length: u64,
    /// Entries no worker has taken yet.
    pub waiting: u64,
    /// Entries workers have taken and not yet reported (running, or taken ahead).
    pub pending: u64,
    /// How long the oldest waiting entry has waited (`None` when none waits).
    pub oldest_waiting: Option<Duration>,
    /// Entries in the dead-letter stream.
    pub dead_letters: u64,
    /// Each consumer of the queue's group, live or not.
    pub consumers: Vec<ConsumerStats>,
}

/// One consumer (worker) of a queue's group, in [`QueueStats::consumers`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// The consumer's name: the worker's name in [`WorkerInfo::name`].
    pub name: String,
    /// Entries it holds.
    pub pending: u64,
    /// How long since it last read, claimed or acknowledged anything. A live worker with
    /// entries renews them every third of its reclaim time; a consumer idle for longer than
    /// that while holding entries is stuck or dead, and its entries are taken over.
    pub idle: Duration,
    /// How long the oldest entry it holds has gone without being renewed (`None` when it
    /// holds none).
    pub oldest_pending_idle: Option<Duration>,
    /// Whether its worker's heartbeat is current.
    pub alive: bool,
}

/// One entry of a queue's dead-letter stream, from [`RedisAdmin::dead_letters`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its id in the dead-letter stream (what [`RedisAdmin::requeue_dead_letter`] takes).
    pub id: String,
    /// Why it could not be run.
    pub reason: String,
    /// The id it had in the task stream.
    pub entry: String,
    /// How many times it had been delivered to a worker.
    pub deliveries: u64,
    /// The worker that dead-lettered it.
    pub worker: String,
    /// When it was dead-lettered (from its id).
    pub dead_at: SystemTime,
    /// The registered task's name (`None` for an entry without one).
    pub task: Option<String>,
    /// The task's key.
    pub key: Option<String>,
    /// The delivery id: `{client}:{task id}:{attempt}`.
    pub rid: Option<String>,
    /// Bytes of its input (`input` or `deps` field).
    pub input_bytes: usize,
    /// The entry's own fields, as they were in the task stream (values as text, with
    /// invalid UTF-8 replaced), those of an entry of format version 2 unpacked (its `v`,
    /// `rid`, then the fields its `e` holds).
    pub fields: Vec<(String, String)>,
}

impl RedisAdminBuilder {
    /// Replaces the server, namespace, queue, command timeout and TLS settings with
    /// `config`'s (the same [`RedisConfig`] a client's transport and workers take).
    pub fn redis_config(mut self, config: RedisConfig) -> Self {
        self.config = config;
        self
    }

    /// The namespace every key starts with; see [`RedisConfig::namespace`].
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config = self.config.namespace(namespace);
        self
    }

    /// The queue the calls look at; see [`RedisConfig::queue`].
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.config = self.config.queue(queue);
        self
    }

    /// How long one Redis command may take; see [`RedisConfig::command_timeout`].
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.command_timeout(timeout);
        self
    }

    /// Trusts this CA certificate (PEM) for a `rediss://` server; see
    /// [`RedisConfig::tls_root_certificate`].
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.config = self.config.tls_root_certificate(pem);
        self
    }

    /// Connects and checks that the server answers.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an empty queue or namespace; [`Error::Transport`] with a
    /// message that says what to change when the URL is not a Redis URL, the server cannot
    /// be reached, needs a password the URL lacks (`NOAUTH`), refuses the credentials, or
    /// speaks TLS to a plain `redis://` URL.
    pub async fn connect(self) -> Result<RedisAdmin, Error> {
        let RedisAdminBuilder { config } = self;
        config.check()?;
        let url = config.url();
        let broker = config.url_without_password();
        let options = config.connect_options(Duration::ZERO);
        let command_timeout = config.command_timeout_value();
        if !url.contains("://") {
            return Err(transport(format!(
                "'{broker}' is not a Redis URL: write redis://[user:password@]host:port[/db], \
                 or rediss://... for TLS"
            )));
        }
        if config.is_cluster() {
            let mut connection =
                connect_one(url, &options, command_timeout, 1).await.map_err(|error| {
                    transport(format!(
                        "cannot reach the Redis Cluster through {broker} ({}); check the node \
                         URLs given to RedisConfig::cluster",
                        error.source
                    ))
                })?;
            let _: Value = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .map_err(|error| connect_error(url, &broker, &error))?;
            return Ok(RedisAdmin {
                keys: config.keys(),
                namespace: config.namespace_name().to_owned(),
                broker,
                connection,
            });
        }
        let client = open_client(url, &options).map_err(|error| {
            transport(format!(
                "cannot use '{broker}' ({}): write redis://[user:password@]host:port[/db], or \
                 rediss://... for TLS",
                error.source
            ))
        })?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(command_timeout))
            .set_response_timeout(Some(command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let mut connection = ConnectionManager::new_with_config(client, manager)
            .await
            .map_err(|error| connect_error(url, &broker, &error))?;
        let _: Value = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(|error| connect_error(url, &broker, &error))?;
        Ok(RedisAdmin {
            keys: config.keys(),
            namespace: config.namespace_name().to_owned(),
            broker,
            connection: Connection::Single(connection),
        })
    }
}

fn transport(message: String) -> Error {
    Error::Transport(message.into())
}

/// A connection failure, with what to change for the ones an operator fixes in the URL.
fn connect_error(url: &str, broker: &str, error: &RedisError) -> Error {
    let text = error.to_string();
    if text.contains("NOAUTH") {
        return transport(format!(
            "the server at {broker} needs a password (NOAUTH: it refuses every command until \
             the client authenticates): put it in the URL, redis://:password@host:port, or \
             redis://user:password@host:port for an ACL user"
        ));
    }
    if error.kind() == redis::ErrorKind::AuthenticationFailed || text.contains("WRONGPASS") {
        return transport(format!(
            "the server at {broker} refused the credentials ({text}); check the user and \
             password in the URL (redis://user:password@host:port)"
        ));
    }
    if error.is_connection_refusal() {
        return transport(format!(
            "cannot connect to {broker} ({text}); is redis-server running at that address?"
        ));
    }
    if url.starts_with("redis://") {
        // A TLS server closes the connection (or says nothing) when a plain client speaks.
        return transport(format!(
            "no answer from {broker} ({text}); if the server there speaks TLS, use \
             rediss://host:port (taskweave's `redis-tls` feature); otherwise check that it is \
             a Redis server and reachable"
        ));
    }
    transport(format!("cannot connect to {broker}: {text}"))
}

fn failed(broker: &str, operation: &str) -> impl FnOnce(RedisError) -> Error {
    let broker = broker.to_owned();
    let operation = operation.to_owned();
    move |error| transport(format!("{operation} on {broker} failed: {error}"))
}

fn malformed(operation: &str, what: &str) -> Error {
    transport(format!("{operation}: unexpected reply from redis ({what})"))
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Some(text.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(number) => Some(number.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Int(number) => u64::try_from(*number).ok(),
        other => text(other)?.parse().ok(),
    }
}

fn items(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        Value::Nil => Some(&[]),
        _ => None,
    }
}

/// A reply of field-value pairs (a RESP2 flat array or a RESP3 map) by field name.
fn pairs(value: &Value) -> HashMap<String, Value> {
    match value {
        Value::Map(map) => {
            map.iter().filter_map(|(name, value)| Some((text(name)?, value.clone()))).collect()
        }
        Value::Array(items) => items
            .chunks_exact(2)
            .filter_map(|pair| Some((text(&pair[0])?, pair[1].clone())))
            .collect(),
        _ => HashMap::new(),
    }
}

/// The milliseconds part of a stream id (`1700000000000-0`).
fn id_millis(id: &str) -> Option<u64> {
    id.split_once('-').map_or(id, |(millis, _)| millis).parse().ok()
}

/// A stream entry's fields, names as text.
type EntryFields = Vec<(String, Vec<u8>)>;

/// Stream entries from an `XRANGE` reply: `(id, fields)`.
fn entries(value: &Value) -> Option<Vec<(String, EntryFields)>> {
    items(value)?
        .iter()
        .map(|entry| {
            let parts = items(entry)?;
            let id = text(parts.first()?)?;
            let fields = items(parts.get(1)?)?
                .chunks_exact(2)
                .filter_map(|pair| {
                    let value = match &pair[1] {
                        Value::BulkString(bytes) => bytes.clone(),
                        other => text(other)?.into_bytes(),
                    };
                    Some((text(&pair[0])?, value))
                })
                .collect();
            Some((id, fields))
        })
        .collect()
}

impl DeadLetter {
    fn decode(id: String, fields: EntryFields) -> DeadLetter {
        let mut letter = DeadLetter {
            dead_at: UNIX_EPOCH + Duration::from_millis(id_millis(&id).unwrap_or(0)),
            id,
            reason: String::new(),
            entry: String::new(),
            deliveries: 0,
            worker: String::new(),
            task: None,
            key: None,
            rid: None,
            input_bytes: 0,
            fields: Vec::new(),
        };
        let mut own = true;
        for (name, value) in fields {
            if own && DEAD_FIELDS.contains(&name.as_str()) {
                let value_text = String::from_utf8_lossy(&value).into_owned();
                match name.as_str() {
                    "dead_reason" => letter.reason = value_text,
                    "dead_entry" => letter.entry = value_text,
                    "dead_deliveries" => letter.deliveries = value_text.parse().unwrap_or(0),
                    _ => letter.worker = value_text,
                }
                continue;
            }
            own = false;
            // An entry of format version 2 holds its fields packed in one: shown one by one.
            let unpacked =
                (name == protocol::PACKED_FIELD).then(|| protocol::unpack_fields(&value)).flatten();
            match unpacked {
                Some(inner) => {
                    for (name, value) in inner {
                        letter.original(String::from_utf8_lossy(&name).into_owned(), &value);
                    }
                }
                None => letter.original(name, &value),
            }
        }
        letter
    }

    /// Notes one of the original entry's fields.
    fn original(&mut self, name: String, value: &[u8]) {
        let value_text = String::from_utf8_lossy(value).into_owned();
        match name.as_str() {
            "task" if self.task.is_none() => self.task = Some(value_text.clone()),
            "key" if self.key.is_none() => self.key = Some(value_text.clone()),
            "rid" if self.rid.is_none() => self.rid = Some(value_text.clone()),
            "input" | "deps" => self.input_bytes += value.len(),
            _ => {}
        }
        self.fields.push((name, value_text));
    }
}

impl RedisAdmin {
    /// Connects to the server at `url` for the default namespace and queue; see
    /// [`builder`](RedisAdmin::builder) for others.
    ///
    /// # Errors
    ///
    /// As [`RedisAdminBuilder::connect`].
    pub async fn connect(url: impl Into<String>) -> Result<RedisAdmin, Error> {
        RedisAdmin::builder(url).connect().await
    }

    /// Starts configuring an admin handle for the server at `url`
    /// (`redis://[user:password@]host:port[/db]`, or `rediss://` with `redis-tls`).
    pub fn builder(url: impl Into<String>) -> RedisAdminBuilder {
        RedisAdminBuilder { config: RedisConfig::new(url) }
    }

    /// A handle on `queue` of the same namespace, over the same connection.
    #[must_use]
    pub fn for_queue(&self, queue: &str) -> RedisAdmin {
        RedisAdmin { keys: self.keys.for_queue(queue), ..self.clone() }
    }

    /// The queue this handle looks at.
    pub fn queue(&self) -> &str {
        self.keys.queue()
    }

    /// The queues of this namespace that have a task stream, sorted by name.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when Redis cannot be asked.
    pub async fn queues(&self) -> Result<Vec<String>, Error> {
        // A cluster's queue keys start with the hash tag `{ns:queue}`.
        let (prefix, suffix) = if self.keys.is_cluster() {
            (format!("{{{}:", self.namespace), "}:tasks")
        } else {
            (format!("{}:", self.namespace), ":tasks")
        };
        let pattern = format!("{prefix}*{suffix}");
        let keys = match &self.connection {
            Connection::Single(_) => self.scan_streams(&pattern, None).await?,
            Connection::Cluster(_) => {
                // SCAN sees one node's keys: ask every master.
                let mut keys = Vec::new();
                for (host, port) in self.masters().await? {
                    let route = SingleNodeRoutingInfo::ByAddress { host, port };
                    keys.extend(self.scan_streams(&pattern, Some(route)).await?);
                }
                keys
            }
        };
        let mut queues: Vec<String> = keys
            .iter()
            .filter_map(|key| Some(key.strip_prefix(&prefix)?.strip_suffix(suffix)?.to_owned()))
            .collect();
        queues.sort();
        queues.dedup();
        Ok(queues)
    }

    /// The stream keys matching `pattern` on the server, or on the cluster node of `route`.
    async fn scan_streams(
        &self,
        pattern: &str,
        route: Option<SingleNodeRoutingInfo>,
    ) -> Result<Vec<String>, Error> {
        let mut connection = self.connection.clone();
        let mut cursor = 0_u64;
        let mut found = Vec::new();
        // SCAN ends when the cursor comes back to 0; a server keeps that promise, and the
        // bound below keeps a broken one from looping forever.
        for _ in 0..1_000_000 {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000).arg("TYPE");
            scan.arg("stream");
            let answer: Value = match (&mut connection, &route) {
                (Connection::Cluster(cluster), Some(route)) => cluster
                    .route_command(scan, RoutingInfo::SingleNode(route.clone()))
                    .await
                    .map_err(failed(&self.broker, "SCAN"))?,
                _ => {
                    scan.query_async(&mut connection).await.map_err(failed(&self.broker, "SCAN"))?
                }
            };
            let (next, keys): (u64, Vec<String>) = redis::from_redis_value(answer)
                .map_err(|error| malformed("SCAN", &error.to_string()))?;
            found.extend(keys);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        Ok(found)
    }

    /// The host and port of every master of the cluster (`CLUSTER NODES`).
    async fn masters(&self) -> Result<Vec<(String, u16)>, Error> {
        let mut connection = self.connection.clone();
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "CLUSTER NODES"))?;
        // `<id> <ip:port@cport[,hostname]> <flags> ...`, one node a line.
        let masters: Vec<(String, u16)> = nodes
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let (_, address, flags) = (fields.next()?, fields.next()?, fields.next()?);
                let flags: Vec<&str> = flags.split(',').collect();
                if !flags.contains(&"master") || flags.contains(&"fail") {
                    return None;
                }
                let address = address.split(['@', ',']).next()?;
                let (host, port) = address.rsplit_once(':')?;
                Some((host.to_owned(), port.parse().ok()?))
            })
            .collect();
        if masters.is_empty() {
            return Err(transport(format!(
                "the Redis Cluster at {} lists no reachable master (CLUSTER NODES); check the \
                 cluster with redis-cli --cluster check",
                self.broker
            )));
        }
        Ok(masters)
    }

    /// The workers of this queue whose heartbeat is current.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when Redis cannot be asked.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let mut connection = self.connection.clone();
        let names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.workers())
            .query_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "SMEMBERS"))?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = names.iter().map(|name| self.keys.heartbeat(name)).collect();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "MGET"))?;
        let mut workers: Vec<WorkerInfo> = values
            .iter()
            .flatten()
            .filter_map(|raw| serde_json::from_slice::<WorkerInfo>(raw).ok())
            .collect();
        workers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(workers)
    }

    /// The queue's state: stream length, waiting and pending entries, the age of the oldest
    /// waiting entry, dead letters, and each consumer's pending entries and idle time.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when Redis cannot be asked or answers something unexpected.
    pub async fn queue_stats(&self) -> Result<QueueStats, Error> {
        let mut connection = self.connection.clone();
        let tasks = self.keys.tasks();
        let (length, dead_letters, time): (u64, u64, (u64, u64)) = redis::pipe()
            .cmd("XLEN")
            .arg(&tasks)
            .cmd("XLEN")
            .arg(self.keys.dead())
            .cmd("TIME")
            .query_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "XLEN"))?;
        let now_ms = time.0 * 1000 + time.1 / 1000;
        let mut stats = QueueStats {
            queue: self.keys.queue().to_owned(),
            length,
            waiting: 0,
            pending: 0,
            oldest_waiting: None,
            dead_letters,
            consumers: Vec::new(),
        };
        if length == 0 && !self.exists(&tasks).await? {
            return Ok(stats);
        }
        let groups: Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&tasks)
            .query_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "XINFO GROUPS"))?;
        let group = items(&groups)
            .ok_or_else(|| malformed("XINFO GROUPS", "not a list"))?
            .iter()
            .map(pairs)
            .find(|group| group.get("name").and_then(text).as_deref() == Some(GROUP));
        let Some(group) = group else {
            // No workers' group yet: everything waits.
            stats.waiting = length;
            stats.oldest_waiting = self.oldest_after(&tasks, "-", now_ms).await?;
            return Ok(stats);
        };
        stats.pending = group.get("pending").and_then(number).unwrap_or(0);
        stats.waiting = group
            .get("lag")
            .and_then(number)
            .unwrap_or_else(|| length.saturating_sub(stats.pending));
        let last = group.get("last-delivered-id").and_then(text).unwrap_or_else(|| "0-0".into());
        stats.oldest_waiting = self.oldest_after(&tasks, &format!("({last}"), now_ms).await?;
        if stats.oldest_waiting.is_none() {
            stats.waiting = 0;
        }
        let consumers: Value = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&tasks)
            .arg(GROUP)
            .query_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "XINFO CONSUMERS"))?;
        let live: Vec<String> = self.workers().await?.into_iter().map(|w| w.name).collect();
        for consumer in
            items(&consumers).ok_or_else(|| malformed("XINFO CONSUMERS", "not a list"))?
        {
            let consumer = pairs(consumer);
            let Some(name) = consumer.get("name").and_then(text) else { continue };
            let pending = consumer.get("pending").and_then(number).unwrap_or(0);
            let idle = Duration::from_millis(consumer.get("idle").and_then(number).unwrap_or(0));
            let oldest_pending_idle =
                if pending > 0 { self.oldest_pending_idle(&tasks, &name).await? } else { None };
            let alive = live.contains(&name);
            stats.consumers.push(ConsumerStats { name, pending, idle, oldest_pending_idle, alive });
        }
        stats.consumers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(stats)
    }

    async fn exists(&self, key: &str) -> Result<bool, Error> {
        let mut connection = self.connection.clone();
        redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "EXISTS"))
    }

    /// The age of the first entry of `stream` after `start` (an `XRANGE` bound).
    async fn oldest_after(
        &self,
        stream: &str,
        start: &str,
        now_ms: u64,
    ) -> Result<Option<Duration>, Error> {
        let mut connection = self.connection.clone();
        let found: Value = redis::cmd("XRANGE")
            .arg(stream)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "XRANGE"))?;
        let found = entries(&found).ok_or_else(|| malformed("XRANGE", "not a list of entries"))?;
        Ok(found
            .first()
            .and_then(|(id, _)| id_millis(id))
            .map(|millis| Duration::from_millis(now_ms.saturating_sub(millis))))
    }

    /// The longest idle time among the first entries `consumer` holds.
    async fn oldest_pending_idle(
        &self,
        stream: &str,
        consumer: &str,
    ) -> Result<Option<Duration>, Error> {
        let mut connection = self.connection.clone();
        let pending: Value = redis::cmd("XPENDING")
            .arg(stream)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(100)
            .arg(consumer)
            .query_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "XPENDING"))?;
        let idle = items(&pending)
            .ok_or_else(|| malformed("XPENDING", "not a list"))?
            .iter()
            .filter_map(|entry| number(items(entry)?.get(2)?))
            .max();
        Ok(idle.map(Duration::from_millis))
    }

    /// Up to `limit` dead letters of this queue, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when Redis cannot be asked.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, Error> {
        self.dead_letters_after("-", limit).await
    }

    async fn dead_letters_after(
        &self,
        start: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, Error> {
        let mut connection = self.connection.clone();
        let found: Value = redis::cmd("XRANGE")
            .arg(self.keys.dead())
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "XRANGE"))?;
        let found = entries(&found).ok_or_else(|| malformed("XRANGE", "not a list of entries"))?;
        Ok(found.into_iter().map(|(id, fields)| DeadLetter::decode(id, fields)).collect())
    }

    /// The dead letter `id` (as [`DeadLetter::id`]), or `None` when there is none.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `id` is not a stream id; [`Error::Transport`] when Redis
    /// cannot be asked.
    pub async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, Error> {
        check_id(id)?;
        let mut connection = self.connection.clone();
        let found: Value = redis::cmd("XRANGE")
            .arg(self.keys.dead())
            .arg(id)
            .arg(id)
            .query_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "XRANGE"))?;
        let found = entries(&found).ok_or_else(|| malformed("XRANGE", "not a list of entries"))?;
        Ok(found.into_iter().next().map(|(id, fields)| DeadLetter::decode(id, fields)))
    }

    /// Puts dead letter `id` back on the task stream as a new entry, which a worker then
    /// takes and runs (with a fresh count of starts, so a poison task is dead-lettered
    /// again after `max_deliveries` crashes). Returns the new entry's id, or `None` when
    /// there is no such dead letter.
    ///
    /// The run's outcome goes where the original's would have: its result key and its
    /// client's reply stream. A client that is still waiting for that delivery gets it; but
    /// the dead-lettering already told the submitting client (its future failed, or was
    /// retried under `allowed_failures`), so usually nobody waits, and the late outcome is
    /// dropped by the client as a superseded delivery. Requeue is for tasks whose effect
    /// matters (after fixing what made them fail), not for resolving futures.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `id` is not a stream id; [`Error::Transport`] when Redis
    /// cannot be asked, or the queue's task key holds something other than a stream.
    pub async fn requeue_dead_letter(&self, id: &str) -> Result<Option<String>, Error> {
        check_id(id)?;
        let new = self.requeue(&[id.to_owned()]).await?;
        Ok(new.into_iter().next().filter(|new| !new.is_empty()))
    }

    /// Puts every dead letter of this queue back on the task stream (see
    /// [`requeue_dead_letter`](RedisAdmin::requeue_dead_letter)), oldest first, and returns
    /// how many. Dead letters added meanwhile (by workers dead-lettering a requeued entry
    /// again) are left for the next call.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when Redis cannot be asked; the ones requeued before stay
    /// requeued.
    pub async fn requeue_all_dead_letters(&self) -> Result<usize, Error> {
        // Only the dead letters there now: ids up to the newest one at the start.
        let mut connection = self.connection.clone();
        let newest: Value = redis::cmd("XREVRANGE")
            .arg(self.keys.dead())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "XREVRANGE"))?;
        let newest = entries(&newest).ok_or_else(|| malformed("XREVRANGE", "not a list"))?;
        let Some((end, _)) = newest.into_iter().next() else { return Ok(0) };
        let mut start = "-".to_owned();
        let mut requeued = 0;
        loop {
            let found: Value = redis::cmd("XRANGE")
                .arg(self.keys.dead())
                .arg(&start)
                .arg(&end)
                .arg("COUNT")
                .arg(PAGE)
                .query_async(&mut connection)
                .await
                .map_err(failed(&self.broker, "XRANGE"))?;
            let found = entries(&found).ok_or_else(|| malformed("XRANGE", "not a list"))?;
            let Some((last, _)) = found.last() else { break };
            start = format!("({last}");
            let ids: Vec<String> = found.iter().map(|(id, _)| id.clone()).collect();
            requeued += self.requeue(&ids).await?.iter().filter(|new| !new.is_empty()).count();
            if ids.len() < PAGE {
                break;
            }
        }
        Ok(requeued)
    }

    async fn requeue(&self, ids: &[String]) -> Result<Vec<String>, Error> {
        let mut connection = self.connection.clone();
        Script::new(include_str!("requeue.lua"))
            .key(self.keys.tasks())
            .key(self.keys.dead())
            .arg(GROUP)
            .arg(self.keys.entry_prefix())
            .arg(ids)
            .invoke_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "requeue.lua"))
    }

    /// Deletes every dead letter of this queue and returns how many there were.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when Redis cannot be asked.
    pub async fn purge_dead_letters(&self) -> Result<u64, Error> {
        let mut connection = self.connection.clone();
        let (length, _): (u64, Value) = redis::pipe()
            .atomic()
            .cmd("XLEN")
            .arg(self.keys.dead())
            .cmd("UNLINK")
            .arg(self.keys.dead())
            .query_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "UNLINK"))?;
        Ok(length)
    }

    /// Trims this queue's dead-letter stream to its newest `keep` entries and returns how
    /// many were deleted. Workers cap it by themselves at about their
    /// [`dead_letter_cap`](crate::worker::WorkerBuilder::dead_letter_cap); this trims it
    /// exactly.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when Redis cannot be asked.
    pub async fn trim_dead_letters(&self, keep: u64) -> Result<u64, Error> {
        let mut connection = self.connection.clone();
        redis::cmd("XTRIM")
            .arg(self.keys.dead())
            .arg("MAXLEN")
            .arg(keep)
            .query_async(&mut connection)
            .await
            .map_err(failed(&self.broker, "XTRIM"))
    }
}

/// Checks that `id` is a stream id (`1700000000000-0` or `1700000000000`).
fn check_id(id: &str) -> Result<(), Error> {
    let (millis, sequence) = id.split_once('-').unwrap_or((id, "0"));
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if digits(millis) && digits(sequence) {
        Ok(())
    } else {
        Err(Error::InvalidConfig {
            message: format!(
                "'{id}' is not a dead-letter id: pass an id as the list shows it, such as \
                 1700000000000-0"
            ),
        })
    }
}
