//! The redis-rs implementation of [`Store`]: commands on a connection manager (which
//! reconnects by itself), blocking reads on a second one so they never hold up other
//! commands, and the owner-checked operations as Lua scripts kept in `.lua` files.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Script, Value};

use super::protocol::{self, DONE, ENTRY_KEY_TTL_MS, GROUP, Keys, Status, TaskEntry};
use super::store::{
    Cancelled, ClaimedEntry, CompletedAndBegun, Completion, ControlRead, DeadLetter, Dispatched,
    Fields, Joined, Left, Located, Ownership, ShareKeys, Store, StoreError, StoreResult,
    StreamEntry,
};

/// How a store connects: timeouts and reconnection back-off.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// How long one command may take before it fails (blocking reads get their block time
    /// on top).
    pub command_timeout: Duration,
    /// The longest a blocking read waits on the server.
    pub block: Duration,
    /// A CA certificate (PEM) to trust for `rediss://` instead of the system's roots.
    pub tls_root_certificate: Option<Vec<u8>>,
    /// The seed nodes of a Redis Cluster; empty for a single server.
    pub cluster_nodes: Vec<String>,
}

/// A connection to one server (a connection manager, which reconnects by itself) or to a
/// Redis Cluster (redis-rs's cluster client, which routes each command to the node that
/// holds its keys and follows `MOVED` and `ASK`).
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Connects to the Redis Cluster of `options.cluster_nodes`: one multiplexed connection per
/// node, commands answered within `response_timeout`.
pub async fn connect_cluster(
    options: &ConnectOptions,
    response_timeout: Duration,
    retries: u32,
) -> Result<ClusterConnection, StoreError> {
    let builder = redis::cluster::ClusterClientBuilder::new(options.cluster_nodes.iter().cloned())
        .connection_timeout(options.command_timeout)
        .response_timeout(response_timeout)
        .retries(retries);
    let builder = cluster_tls(builder, options)?;
    let client = builder.build().map_err(connect_failed)?;
    client.get_async_connection().await.map_err(connect_failed)
}

/// TLS for a cluster of `rediss://` nodes (redis-rs takes the mode from the first node),
/// trusting `options.tls_root_certificate` when one was given.
#[cfg(feature = "redis-tls")]
fn cluster_tls(
    builder: redis::cluster::ClusterClientBuilder,
    options: &ConnectOptions,
) -> Result<redis::cluster::ClusterClientBuilder, StoreError> {
    let secure = options.cluster_nodes.iter().any(|url| url.starts_with("rediss://"));
    match (&options.tls_root_certificate, secure) {
        (None, false) => Ok(builder),
        (Some(_), false) => Err(plain_url_with_certificate()),
        (root, true) => {
            // rustls needs a process-wide crypto provider; keep one the application installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Ok(match root {
                Some(root) => builder.certs(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root.clone()),
                }),
                None => builder,
            })
        }
    }
}

/// Without the `redis-tls` feature no TLS option can be set, and `rediss://` nodes were
/// refused by the config's check.
#[cfg(not(feature = "redis-tls"))]
#[allow(clippy::unnecessary_wraps)] // the same signature as with the feature
fn cluster_tls(
    builder: redis::cluster::ClusterClientBuilder,
    _options: &ConnectOptions,
) -> Result<redis::cluster::ClusterClientBuilder, StoreError> {
    Ok(builder)
}

/// A TLS root certificate given for plain `redis://` URLs.
fn plain_url_with_certificate() -> StoreError {
    StoreError {
        operation: "connect",
        source: "a TLS root certificate was given for a plain redis:// URL; use rediss:// \
                 to connect with TLS"
            .into(),
    }
}

/// Connects to the server of `url` (a connection manager) or, in cluster mode, to the
/// cluster of `options.cluster_nodes`, commands answered within `response_timeout`.
pub async fn connect_one(
    url: &str,
    options: &ConnectOptions,
    response_timeout: Duration,
    retries: usize,
) -> Result<Connection, StoreError> {
    if !options.cluster_nodes.is_empty() {
        let retries = u32::try_from(retries).unwrap_or(u32::MAX);
        return Ok(Connection::Cluster(connect_cluster(options, response_timeout, retries).await?));
    }
    let client = open_client(url, options)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.command_timeout))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(retries)
        .set_max_delay(Duration::from_secs(2));
    let manager =
        ConnectionManager::new_with_config(client, config).await.map_err(connect_failed)?;
    Ok(Connection::Single(manager))
}

/// A redis-rs client for `url`: plain, or TLS for `rediss://` (feature `redis-tls`).
pub fn open_client(url: &str, options: &ConnectOptions) -> Result<redis::Client, StoreError> {
    if url.starts_with("rediss://") {
        return open_tls_client(url, options);
    }
    if options.tls_root_certificate.is_some() {
        return Err(plain_url_with_certificate());
    }
    redis::Client::open(url).map_err(connect_failed)
}

#[cfg(feature = "redis-tls")]
fn open_tls_client(url: &str, options: &ConnectOptions) -> Result<redis::Client, StoreError> {
    // rustls needs a process-wide crypto provider; keep one the application installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &options.tls_root_certificate {
        Some(root) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates { client_tls: None, root_cert: Some(root.clone()) },
        )
        .map_err(connect_failed),
        None => redis::Client::open(url).map_err(connect_failed),
    }
}

#[cfg(not(feature = "redis-tls"))]
fn open_tls_client(_url: &str, _options: &ConnectOptions) -> Result<redis::Client, StoreError> {
    Err(StoreError {
        operation: "connect",
        source: "rediss:// URLs need TLS: enable taskweave's `redis-tls` feature".into(),
    })
}

/// The scripts, loaded once per process and reloaded by hash when a server lost them
/// (after a restart).
struct Scripts {
    complete: Script,
    dead_letter: Script,
    claim: Script,
    touch: Script,
    hand_back: Script,
    begin: Script,
    enqueue: Script,
    locate: Script,
    cancel: Script,
    forget: Script,
    /// Shared keys' records (`share.lua`).
    share: Script,
    /// `complete.lua` and `begin.lua` as functions, called by `complete_and_begin.lua`.
    complete_and_begin: Script,
}

/// `complete.lua` as sent: the function it shares with `begin.lua` first.
const COMPLETE_LUA: &str = concat!(include_str!("pending_of.lua"), include_str!("complete.lua"));
/// `begin.lua` as sent: the function it shares with `complete.lua` first.
const BEGIN_LUA: &str = concat!(include_str!("pending_of.lua"), include_str!("begin.lua"));

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            complete: Script::new(COMPLETE_LUA),
            dead_letter: Script::new(include_str!("dead_letter.lua")),
            claim: Script::new(include_str!("claim.lua")),
            touch: Script::new(include_str!("touch.lua")),
            hand_back: Script::new(include_str!("hand_back.lua")),
            begin: Script::new(BEGIN_LUA),
            enqueue: Script::new(include_str!("enqueue.lua")),
            locate: Script::new(include_str!("locate.lua")),
            cancel: Script::new(include_str!("cancel.lua")),
            forget: Script::new(include_str!("forget.lua")),
            share: Script::new(include_str!("share.lua")),
            complete_and_begin: Script::new(&format!(
                "{}\nlocal function complete(KEYS, ARGV)\n{}\nend\n\
                 local function begin(KEYS, ARGV)\n{}\nend\n{}",
                include_str!("pending_of.lua"),
                include_str!("complete.lua"),
                include_str!("begin.lua"),
                include_str!("complete_and_begin.lua"),
            )),
        }
    }
}

/// [`Store`] on a Redis server.
pub struct RedisStore {
    keys: Keys,
    /// Short commands and scripts, pipelined.
    commands: Connection,
    /// Blocking reads (`XREAD`/`XREADGROUP` with `BLOCK`) only.
    blocking: Connection,
    scripts: Scripts,
    /// About how many entries `dead_letter.lua` keeps in the dead-letter stream.
    dead_letter_cap: u64,
    /// Where to connect a third time, for a worker's blocking reads of the control stream
    /// (made at its first read: clients never read it).
    url: String,
    options: ConnectOptions,
    /// The control stream's connection, once made.
    control: futures::lock::Mutex<Option<Connection>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore").field("keys", &self.keys).finish_non_exhaustive()
    }
}

fn failed(operation: &'static str) -> impl FnOnce(RedisError) -> StoreError {
    move |error| StoreError { operation, source: Box::new(error) }
}

/// Connection errors, with a hint for the ones a user fixes in the URL.
fn connect_failed(error: RedisError) -> StoreError {
    let source: Box<dyn std::error::Error + Send + Sync> =
        if error.kind() == redis::ErrorKind::AuthenticationFailed {
            format!(
                "the server refused the credentials ({error}); check the user and password in \
                 the URL (redis://user:password@host:port)"
            )
            .into()
        } else if error.is_connection_refusal() || error.is_timeout() {
            format!("{error}; is redis-server running at that address?").into()
        } else {
            Box::new(error)
        };
    StoreError { operation: "connect", source }
}

fn malformed(operation: &'static str, what: &str) -> StoreError {
    StoreError { operation, source: format!("unexpected reply: {what}").into() }
}

impl RedisStore {
    /// Connects twice to `url`, or in cluster mode to the cluster of
    /// `options.cluster_nodes` (commands, blocking reads), and checks that the server answers.
    ///
    /// # Errors
    ///
    /// A `StoreError` when the server cannot be reached, refuses the credentials or does not
    /// answer.
    pub async fn connect(
        url: &str,
        keys: Keys,
        options: &ConnectOptions,
    ) -> StoreResult<RedisStore> {
        let commands = connect_one(url, options, options.command_timeout, 2).await?;
        let blocking =
            connect_one(url, options, options.command_timeout + options.block, 2).await?;
        let store = RedisStore {
            keys,
            commands,
            blocking,
            scripts: Scripts::new(),
            dead_letter_cap: super::DEFAULT_DEAD_LETTER_CAP,
            url: url.to_owned(),
            options: options.clone(),
            control: futures::lock::Mutex::new(None),
        };
        let mut connection = store.commands.clone();
        let _: Value =
            redis::cmd("PING").query_async(&mut connection).await.map_err(failed("PING"))?;
        Ok(store)
    }
}

impl RedisStore {
    /// Keeps about `cap` entries (at least 1) in the dead-letter stream, the oldest trimmed
    /// first.
    pub fn set_dead_letter_cap(&mut self, cap: u64) {
        self.dead_letter_cap = cap.max(1);
    }
}

/// Who needs the permissions [`RedisStore::check_access`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Worker,
}

impl RedisStore {
    /// Checks at start-up that the server's access control (ACL) lets this connection's
    /// user run every command a client or a worker of this queue sends, on this queue's
    /// keys, so that a missing permission fails here with a message naming it rather than
    /// later, one task at a time. Asks `ACL DRYRUN` for each command (Redis 7); where the
    /// user may not ask that (or the server is older), makes a harmless call of a script
    /// instead, which checks `EVALSHA` and `SCRIPT LOAD`.
    ///
    /// # Errors
    ///
    /// A `StoreError` naming the command the user may not run (`NOPERM`), or the error of
    /// a server that cannot be asked.
    pub async fn check_access(&self, role: Role) -> StoreResult<()> {
        let mut connection = self.commands.clone();
        let user: Option<String> =
            redis::cmd("ACL").arg("WHOAMI").query_async(&mut connection).await.ok();
        let mut denied = Vec::new();
        let mut dry_run = user.is_some();
        if let Some(user) = &user {
            // One round trip for them all.
            let commands = self.needed_commands(role);
            let mut pipeline = redis::pipe();
            pipeline.ignore_errors();
            for command in &commands {
                pipeline.cmd("ACL").arg("DRYRUN").arg(user).arg(command);
            }
            let answers: Vec<redis::RedisResult<Value>> =
                pipeline.query_async(&mut connection).await.map_err(failed("ACL DRYRUN"))?;
            for (command, answer) in commands.iter().zip(answers) {
                match answer {
                    Ok(Value::Okay) => {}
                    Ok(value) => match text_of(&value) {
                        Some(text) if text == "OK" => {}
                        Some(text) => denied.push(text),
                        None => denied.push(format!("{}: {value:?}", command[0])),
                    },
                    // No ACL DRYRUN for this user or server: test calls instead.
                    Err(_) => {
                        dry_run = false;
                        break;
                    }
                }
            }
        }
        if !dry_run {
            denied.clear();
            // touch.lua with no entries changes nothing.
            let touched: redis::RedisResult<Value> = self
                .scripts
                .touch
                .key(self.keys.tasks())
                .key(self.keys.starts())
                .arg(GROUP)
                .arg("permission-check")
                .invoke_async(&mut connection)
                .await;
            if let Err(error) = touched
                && (error.code() == Some("NOPERM") || error.to_string().contains("NOPERM"))
            {
                denied.push(error.to_string());
            }
        }
        if denied.is_empty() {
            return Ok(());
        }
        denied.sort();
        denied.dedup();
        let user = user.unwrap_or_else(|| "this connection's user".to_owned());
        let role = match role {
            Role::Client => "client",
            Role::Worker => "worker",
        };
        Err(StoreError {
            operation: "permission check",
            source: format!(
                "redis user {user:?} lacks permissions a taskweave {role} of queue {:?} needs: \
                 {}; grant them (for example `ACL SETUSER {user} +@read +@write +@stream \
                 +@scripting +@keyspace +time ~{}`) or connect as another user",
                self.keys.queue(),
                denied.join("; "),
                self.keys.namespace_pattern(),
            )
            .into(),
        })
    }

    /// The commands a client or a worker sends, with keys like the ones it uses, for
    /// `ACL DRYRUN`: its own commands and the ones its scripts call.
    fn needed_commands(&self, role: Role) -> Vec<Vec<String>> {
        let keys = &self.keys;
        let (tasks, starts, seq) = (keys.tasks(), keys.starts(), keys.sequence());
        let entry_of = keys.entry_of("check");
        let reply = keys.reply("check");
        let result = keys.result("check", 0);
        let workers = keys.workers();
        let heartbeat = keys.heartbeat("check");
        let control = keys.control();
        let (record, shared) = (keys.share_record("check"), keys.shared_result("check"));
        let mut commands: Vec<Vec<&str>> = vec![
            vec!["EVALSHA", self.scripts.touch.get_hash(), "1", &tasks],
            vec!["SCRIPT", "LOAD", "return 1"],
            vec!["XGROUP", "CREATE", &tasks, GROUP, "0", "MKSTREAM"],
            vec!["INCR", &seq],
            vec!["XPENDING", &tasks, GROUP, "-", "+", "1"],
            vec!["XRANGE", &tasks, "-", "+"],
            vec!["XACK", &tasks, GROUP, "0-1"],
            vec!["XDEL", &tasks, "0-1"],
            vec!["XADD", &tasks, "*", "f", "v"],
            vec!["GET", &entry_of],
            vec!["MGET", &entry_of],
            vec!["SET", &entry_of, "v", "PX", "1"],
            vec!["HGET", &starts, "f"],
            vec!["HDEL", &starts, "f"],
        ];
        match role {
            Role::Client => commands.extend([
                vec!["XREAD", "COUNT", "1", "STREAMS", &reply, "0-0"],
                vec!["XDEL", &reply, "0-1"],
                vec!["UNLINK", &result],
                // The held results' renewal.
                vec!["PEXPIRE", &result, "1"],
                vec!["DEL", &entry_of],
                // The live workers (`workers()`, and which entry format they read).
                vec!["SMEMBERS", &workers],
                vec!["MGET", &heartbeat],
                vec!["SREM", &workers, "check"],
                // The control stream (`Client::restart`, cancels of running tasks).
                vec!["XADD", &control, "MAXLEN", "~", "1", "*", "m", "v"],
                vec!["PEXPIRE", &control, "1"],
                // Shared keys (`share.lua`; its `TIME` is not checked here, so that a user
                // granted before shared keys existed still starts: without it a shared
                // key's submission fails naming the permission).
                vec!["HSET", &record, "f", "v"],
                vec!["HGETALL", &record],
                vec!["PEXPIREAT", &record, "1"],
                vec!["PEXPIREAT", &shared, "1"],
                vec!["EXISTS", &shared],
                vec!["GET", &shared],
                vec!["DEL", &record, &shared],
                vec!["TYPE", &reply],
                vec!["PTTL", &reply],
                vec!["XADD", &reply, "*", "f", "v"],
                vec!["PEXPIRE", &reply, "1"],
            ]),
            Role::Worker => commands.extend([
                vec!["XREVRANGE", &control, "+", "-", "COUNT", "1"],
                vec!["XREAD", "COUNT", "1", "STREAMS", &control, "0-0"],
                vec!["XREADGROUP", "GROUP", GROUP, "check", "COUNT", "1", "STREAMS", &tasks, ">"],
                vec!["XAUTOCLAIM", &tasks, GROUP, "check", "0", "0-0"],
                vec!["XCLAIM", &tasks, GROUP, "check", "0", "0-1", "JUSTID"],
                vec!["HSET", &starts, "f", "v"],
                vec!["HMGET", &starts, "f"],
                vec!["EXISTS", &entry_of],
                vec!["TYPE", &reply],
                vec!["XADD", &reply, "*", "f", "v"],
                vec!["PEXPIRE", &reply, "1"],
                vec!["SET", &result, "v", "PX", "1"],
                vec!["MGET", &result],
                vec!["SET", &heartbeat, "v", "PX", "1"],
                vec!["DEL", &heartbeat],
                vec!["SADD", &workers, "check"],
                vec!["SREM", &workers, "check"],
                // Passing on entries of tasks it does not run (the live workers), and
                // forgetting dead workers' consumers (forget.lua).
                vec!["SMEMBERS", &workers],
                vec!["MGET", &heartbeat],
                vec!["EXISTS", &heartbeat],
                vec!["XINFO", "CONSUMERS", &tasks, GROUP],
                vec!["XGROUP", "DELCONSUMER", &tasks, GROUP, "check"],
            ]),
        }
        let dead = keys.dead();
        if role == Role::Worker {
            commands.push(vec!["XADD", &dead, "*", "f", "v"]);
            commands.push(vec!["TYPE", &dead]);
        }
        commands
            .into_iter()
            .map(|command| command.into_iter().map(str::to_owned).collect())
            .collect()
    }
}

/// Text out of a reply value, if it is one.
fn bytes_of(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes.clone()),
        Value::SimpleString(text) => Some(text.as_bytes().to_vec()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes().to_vec()),
        Value::Int(number) => Some(number.to_string().into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        _ => None,
    }
}

fn text_of(value: &Value) -> Option<String> {
    bytes_of(value).and_then(|bytes| String::from_utf8(bytes).ok())
}

fn int_of(value: &Value) -> Option<i64> {
    match value {
        Value::Int(number) => Some(*number),
        other => text_of(other).and_then(|text| text.parse().ok()),
    }
}

fn items(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

/// The bytes of a reply value, moved out of it when it holds them (a bulk string).
fn into_bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        other => bytes_of(&other),
    }
}

/// The items of a list reply, moved out of it.
fn into_items(value: Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

/// Field-value pairs of an entry; a deleted entry (nil) has none. Moves the bytes out of
/// the reply rather than copying them: a stream read is most of what a worker and a client
/// receive.
fn into_fields(value: Value) -> Option<Fields> {
    match value {
        Value::Nil => Some(Vec::new()),
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(field, value)| Some((into_bytes(field)?, into_bytes(value)?)))
            .collect(),
        other => {
            let flat = into_items(other)?;
            if flat.len() % 2 != 0 {
                return None;
            }
            let mut fields = Vec::with_capacity(flat.len() / 2);
            let mut flat = flat.into_iter();
            while let (Some(field), Some(value)) = (flat.next(), flat.next()) {
                fields.push((into_bytes(field)?, into_bytes(value)?));
            }
            Some(fields)
        }
    }
}

/// Field-value pairs of an entry (see [`into_fields`]).
fn fields_of(value: &Value) -> Option<Fields> {
    into_fields(value.clone())
}

/// `[id, fields]` pairs of one stream, moved out of the reply.
fn into_entries(value: Value) -> Option<Vec<StreamEntry>> {
    into_items(value)?
        .into_iter()
        .map(|entry| {
            let mut parts = into_items(entry)?.into_iter();
            let id = String::from_utf8(into_bytes(parts.next()?)?).ok()?;
            let fields = match parts.next() {
                Some(fields) => into_fields(fields)?,
                None => Vec::new(),
            };
            Some(StreamEntry { id, fields })
        })
        .collect()
}

/// `[id, fields]` pairs of one stream (see [`into_entries`]).
fn entries_of(value: &Value) -> Option<Vec<StreamEntry>> {
    into_entries(value.clone())
}

/// The entries of an `XREAD`/`XREADGROUP` reply for one stream (nil when the block timed out).
/// For the decoding tests (the store reads with `read_reply_owned`, which moves the bytes).
#[cfg(feature = "sim")]
pub fn read_reply(value: &Value) -> Option<Vec<StreamEntry>> {
    read_reply_owned(value.clone())
}

/// The entries of an `XREAD`/`XREADGROUP` reply for one stream (nil when the block timed out),
/// moving their bytes out of the reply instead of copying them.
fn read_reply_owned(value: Value) -> Option<Vec<StreamEntry>> {
    match value {
        Value::Nil => Some(Vec::new()),
        Value::Map(streams) => {
            let mut all = Vec::new();
            for (_, entries) in streams {
                all.extend(into_entries(entries)?);
            }
            Some(all)
        }
        other => {
            let mut all = Vec::new();
            for stream in into_items(other)? {
                let entries = into_items(stream)?.into_iter().nth(1)?;
                all.extend(into_entries(entries)?);
            }
            Some(all)
        }
    }
}

pub fn ownership_of(value: &Value) -> Option<Ownership> {
    match int_of(value)? {
        1 => Some(Ownership::Done),
        0 => Some(Ownership::Gone),
        -1 => Some(Ownership::NotOwner),
        _ => None,
    }
}

/// An outcome's three keys to `complete.lua` (see there), in the order of its arguments
/// ([`outcome_args`]).
fn outcome_keys(command: &mut redis::Cmd, keys: &Keys, completion: &Completion) {
    command.arg(&completion.reply).arg(&completion.result).arg(keys.entry_of(&completion.rid));
}

/// An outcome's nine arguments to `complete.lua` (see there), after every outcome's keys
/// ([`outcome_keys`]). A packed reply (for a client of entry format 2) carries the rid, the
/// run's times and the body inside it, so those arguments are left empty then — the body
/// too unless the script stores it under the result key: each value is sent once.
fn outcome_args(command: &mut redis::Cmd, consumer: &str, completion: &Completion) {
    command.arg(&completion.entry_id);
    let stored = completion.status == Status::Ok && completion.store_result;
    if completion.packed_reply {
        command
            .arg("")
            .arg(completion.status.as_str())
            .arg(if stored { completion.body.as_slice() } else { b"" })
            .arg(completion.ttl_ms)
            .arg("")
            .arg("");
    } else {
        command
            .arg(&completion.rid)
            .arg(completion.status.as_str())
            .arg(&completion.body)
            .arg(completion.ttl_ms);
        match completion.run {
            Some(times) => command.arg(times.started_us).arg(times.finished_us),
            None => command.arg("").arg(""),
        };
    }
    command.arg(if completion.store_result { "1" } else { "0" });
    if completion.packed_reply {
        command.arg(completion.packed_reply(consumer));
    } else {
        command.arg("");
    }
}

/// The fields every task entry has, first and in this order: `enqueue.lua` holds their
/// names (its `FIXED`) and takes only their values. An entry of format version 2 has only
/// these ([`TaskEntry::fields`]).
const FIXED_ENTRY_FIELDS: [&str; 3] = ["v", "rid", protocol::PACKED_FIELD];

/// An entry's arguments to `enqueue.lua`: how many arguments of further fields follow the
/// values of the [`FIXED_ENTRY_FIELDS`], those values (found by name, so that the order of
/// [`TaskEntry::fields`] does not matter; an empty value for one it lacks, which decoding
/// rejects), then the further field-value pairs. An entry not [`packed`](TaskEntry::packed)
/// (format version 1: clients write packed ones, the model-against-Redis tests both) has no
/// `e` and gives its count negated, then all its fields as pairs.
fn enqueue_arguments(entry: &TaskEntry) -> Vec<Vec<u8>> {
    let mut fields: Vec<(&'static str, Option<Vec<u8>>)> =
        entry.fields().into_iter().map(|(field, value)| (field, Some(value))).collect();
    let mut arguments = Vec::with_capacity(1 + 2 * fields.len());
    arguments.push(Vec::new());
    if entry.packed {
        for fixed in FIXED_ENTRY_FIELDS {
            let value = fields
                .iter_mut()
                .find(|(field, value)| *field == fixed && value.is_some())
                .and_then(|(_, value)| value.take());
            arguments.push(value.unwrap_or_default());
        }
    }
    let mut further: i64 = 0;
    for (field, value) in fields {
        if let Some(value) = value {
            arguments.push(field.as_bytes().to_vec());
            arguments.push(value);
            further += 2;
        }
    }
    if !entry.packed {
        further = -further;
    }
    arguments[0] = further.to_string().into_bytes();
    arguments
}

/// The answers of `enqueue.lua`: each delivery's entry id, or `None` when it was reported
/// already.
fn enqueued_ids(ids: &[Value]) -> StoreResult<Vec<Option<String>>> {
    ids.iter()
        .map(|value| match text_of(value) {
            Some(id) if id == DONE => Ok(None),
            Some(id) => Ok(Some(id)),
            None => Err(malformed("enqueue", "not an entry id")),
        })
        .collect()
}

/// The reply of `claim.lua`: `{next cursor, {{id, deliveries, fields or false}, ...}}`.
///
/// # Errors
///
/// A malformed-reply `StoreError` when the reply does not have that shape.
pub fn claim_reply(value: &Value) -> StoreResult<(String, Vec<ClaimedEntry>)> {
    let parts = items(value).ok_or_else(|| malformed("claim", "not a list"))?;
    let next = parts.first().and_then(text_of).unwrap_or_else(|| "0-0".to_owned());
    let mut entries = Vec::new();
    for entry in parts.get(1).and_then(items).unwrap_or_default() {
        let parsed = items(entry).and_then(|parts| {
            let id = text_of(parts.first()?)?;
            let deliveries = int_of(parts.get(1)?)?;
            // A deleted entry comes back as `false` (nil in Lua): no fields.
            let fields = match parts.get(2) {
                Some(fields) => fields_of(fields).unwrap_or_default(),
                None => Vec::new(),
            };
            Some(ClaimedEntry {
                id,
                deliveries: u32::try_from(deliveries.max(0)).unwrap_or(u32::MAX),
                fields,
            })
        });
        entries.push(parsed.ok_or_else(|| malformed("claim", "not an entry"))?);
    }
    Ok((next, entries))
}

/// One reply of `begin.lua`: a count of starts, or why the caller may not start the entry.
///
/// # Errors
///
/// A malformed-reply `StoreError` when the reply is neither.
pub fn begin_reply(value: &Value) -> StoreResult<Result<u32, Ownership>> {
    match int_of(value) {
        Some(-1) => Ok(Err(Ownership::Gone)),
        Some(-2) => Ok(Err(Ownership::NotOwner)),
        Some(starts) if starts > 0 => Ok(Ok(u32::try_from(starts).unwrap_or(u32::MAX))),
        _ => Err(malformed("begin", "not a count of starts")),
    }
}

/// The reply of `MGET`: one value or nil per key.
///
/// # Errors
///
/// A malformed-reply `StoreError` when the reply is not a list.
pub fn values_reply(value: &Value) -> StoreResult<Vec<Option<Vec<u8>>>> {
    let values = items(value).ok_or_else(|| malformed("MGET", "not a list"))?;
    Ok(values.iter().map(bytes_of).collect())
}

/// A count returned by a script (`touch.lua`, `hand_back.lua`).
///
/// # Errors
///
/// A malformed-reply `StoreError` when the reply is not a count.
pub fn count_reply(operation: &'static str, value: &Value) -> StoreResult<usize> {
    int_of(value)
        .and_then(|count| usize::try_from(count).ok())
        .ok_or_else(|| malformed(operation, "not a count"))
}

/// About how many messages the control stream keeps (`MAXLEN ~`), and at most how many a
/// worker reads at once.
const CONTROL_MAXLEN: usize = 1_000;

/// How long the control stream lives after its last message.
const CONTROL_TTL_MS: u64 = 24 * 60 * 60 * 1_000;

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn is_busy_group(error: &RedisError) -> bool {
    error.code() == Some("BUSYGROUP")
}

fn is_no_script(error: &RedisError) -> bool {
    error.code() == Some("NOSCRIPT")
}

impl RedisStore {
    /// Runs a per-delivery script (`locate.lua`, `cancel.lua`) once for each of
    /// `deliveries`, pipelined: keys the task stream, the starts hash when `with_starts`, and
    /// the delivery's `entry_of` key; arguments the group and the delivery's entry id.
    async fn eval_per_delivery(
        &self,
        operation: &'static str,
        script: &Script,
        source: &str,
        deliveries: &[Dispatched],
        with_starts: bool,
    ) -> StoreResult<Vec<Value>> {
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let (stream, starts) = (self.keys.tasks(), self.keys.starts());
        self.eval_pipelined(operation, script, source, deliveries.len(), |index, command| {
            let delivery = &deliveries[index];
            command.arg(if with_starts { 3 } else { 2 }).arg(&stream);
            if with_starts {
                command.arg(&starts);
            }
            command
                .arg(self.keys.entry_of(&delivery.rid))
                .arg(GROUP)
                .arg(delivery.entry_id.as_deref().unwrap_or(""));
        })
        .await
    }

    /// Runs one `EVALSHA` of `script` per command in a pipeline (one round trip), loading
    /// the script and running again the commands the server had no script for (after a
    /// restart). `build(i)` makes the i-th command's `EVALSHA` arguments after the hash.
    async fn eval_pipelined(
        &self,
        operation: &'static str,
        script: &Script,
        source: &str,
        count: usize,
        build: impl Fn(usize, &mut redis::Cmd),
    ) -> StoreResult<Vec<Value>> {
        let mut answers: Vec<Option<Value>> = vec![None; count];
        // Two rounds: the second only for commands the server had no script for yet.
        for _round in 0..2 {
            let waiting: Vec<usize> = (0..count).filter(|&i| answers[i].is_none()).collect();
            if waiting.is_empty() {
                break;
            }
            let mut pipeline = redis::pipe();
            pipeline.ignore_errors();
            for &index in &waiting {
                let mut command = redis::cmd("EVALSHA");
                command.arg(script.get_hash());
                build(index, &mut command);
                pipeline.add_command(command);
            }
            let mut connection = self.commands.clone();
            let replies: Vec<redis::RedisResult<Value>> =
                pipeline.query_async(&mut connection).await.map_err(failed(operation))?;
            let mut missing_script = false;
            for (&index, reply) in waiting.iter().zip(replies) {
                match reply {
                    Ok(value) => answers[index] = Some(value),
                    Err(error) if is_no_script(&error) => missing_script = true,
                    Err(error) => return Err(failed(operation)(error)),
                }
            }
            if missing_script {
                let _: Value = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(source)
                    .query_async(&mut connection)
                    .await
                    .map_err(failed("SCRIPT LOAD"))?;
            }
        }
        answers
            .into_iter()
            .map(|answer| answer.ok_or_else(|| malformed(operation, "the script stayed missing")))
            .collect()
    }

    /// Runs `script` (`EVALSHA`; loaded, and run again, when the server has it not: after a
    /// restart) with `keys` keys, its keys and then its arguments written by `build` straight
    /// into the one command. redis-rs's `ScriptInvocation` copies each key and argument into
    /// an allocation of its own first, then into the command: a dozen allocations and copies
    /// per task for the worker's outcomes and the client's entries.
    async fn eval(
        &self,
        operation: &'static str,
        script: &Script,
        keys: usize,
        build: impl FnOnce(&mut redis::Cmd),
    ) -> StoreResult<Value> {
        let mut command = redis::cmd("EVALSHA");
        command.arg(script.get_hash()).arg(keys);
        build(&mut command);
        let mut connection = self.commands.clone();
        match command.query_async(&mut connection).await {
            Ok(value) => Ok(value),
            Err(error) if is_no_script(&error) => {
                script.load_async(&mut connection).await.map_err(failed("SCRIPT LOAD"))?;
                command.query_async(&mut connection).await.map_err(failed(operation))
            }
            Err(error) => Err(failed(operation)(error)),
        }
    }

    /// [`RedisStore::eval`] of a script that answers once per item of a batch
    /// (`enqueue.lua`, `begin.lua`, `complete.lua`), checking that it gave `count` answers.
    async fn eval_per_item(
        &self,
        operation: &'static str,
        script: &Script,
        keys: usize,
        count: usize,
        build: impl FnOnce(&mut redis::Cmd),
    ) -> StoreResult<Vec<Value>> {
        let value = self.eval(operation, script, keys, build).await?;
        match value {
            Value::Array(answers) if answers.len() == count => Ok(answers),
            Value::Array(_) => Err(malformed(operation, "not one answer per item of the batch")),
            _ => Err(malformed(operation, "not a list")),
        }
    }

    async fn complete_all(
        &self,
        consumer: &str,
        completions: &[Completion],
    ) -> StoreResult<Vec<Ownership>> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        // One script call for the whole batch (see complete.lua).
        let keys = 2 + 3 * completions.len();
        let script = &self.scripts.complete;
        let replies = self
            .eval_per_item("complete", script, keys, completions.len(), |command| {
                command.arg(self.keys.tasks()).arg(self.keys.starts());
                for completion in completions {
                    outcome_keys(command, &self.keys, completion);
                }
                command.arg(GROUP).arg(consumer);
                for completion in completions {
                    outcome_args(command, consumer, completion);
                }
            })
            .await?;
        replies
            .iter()
            .map(|value| ownership_of(value).ok_or_else(|| malformed("complete", "not 1, 0 or -1")))
            .collect()
    }

    /// Both in one script call (`complete_and_begin.lua`): one round trip and one script's
    /// fixed cost for a batch of outcomes and the starts of the runners' next entries.
    async fn complete_and_begin_all(
        &self,
        consumer: &str,
        completions: &[Completion],
        begins: &[String],
    ) -> StoreResult<CompletedAndBegun> {
        const OPERATION: &str = "complete and begin";
        let keys = 2 + 3 * completions.len();
        let script = &self.scripts.complete_and_begin;
        let value = self
            .eval(OPERATION, script, keys, |command| {
                command.arg(self.keys.tasks()).arg(self.keys.starts());
                for completion in completions {
                    outcome_keys(command, &self.keys, completion);
                }
                command.arg(GROUP).arg(consumer).arg(completions.len());
                for completion in completions {
                    outcome_args(command, consumer, completion);
                }
                for id in begins {
                    command.arg(id);
                }
            })
            .await?;
        let (completed, begun) = match items(&value) {
            Some([completed, begun]) => (items(completed), items(begun)),
            _ => (None, None),
        };
        let (Some(completed), Some(begun)) = (completed, begun) else {
            return Err(malformed(OPERATION, "not two lists"));
        };
        if completed.len() != completions.len() || begun.len() != begins.len() {
            return Err(malformed(OPERATION, "not one answer per item of the batch"));
        }
        let ownerships = completed
            .iter()
            .map(|value| ownership_of(value).ok_or_else(|| malformed(OPERATION, "not 1, 0 or -1")))
            .collect::<StoreResult<Vec<_>>>()?;
        let starts = begun.iter().map(begin_reply).collect::<StoreResult<Vec<_>>>()?;
        Ok((ownerships, starts))
    }

    async fn owner_checked_ids(
        &self,
        script: &Script,
        operation: &'static str,
        consumer: &str,
        ids: &[String],
        with_starts: bool,
        with_entry_prefix: bool,
    ) -> StoreResult<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut invocation = script.key(self.keys.tasks());
        if with_starts {
            invocation.key(self.keys.starts());
        }
        invocation.arg(GROUP).arg(consumer);
        if with_entry_prefix {
            // hand_back.lua: where the entry_of keys are, before the ids.
            invocation.arg(self.keys.entry_prefix());
        }
        for id in ids {
            invocation.arg(id);
        }
        let mut connection = self.commands.clone();
        let value: Value =
            invocation.invoke_async(&mut connection).await.map_err(failed(operation))?;
        count_reply(operation, &value)
    }
}

impl Store for RedisStore {
    fn enqueue<'a>(
        &'a self,
        entries: &'a [TaskEntry],
    ) -> BoxFuture<'a, StoreResult<Vec<Option<String>>>> {
        Box::pin(async move {
            if entries.is_empty() {
                return Ok(Vec::new());
            }
            // One script call for the whole batch (see enqueue.lua).
            let script = &self.scripts.enqueue;
            let keys = 1 + entries.len();
            let ids = self
                .eval_per_item("enqueue", script, keys, entries.len(), |command| {
                    command.arg(self.keys.tasks());
                    for entry in entries {
                        command.arg(self.keys.entry_of(&entry.rid));
                    }
                    command.arg(ENTRY_KEY_TTL_MS);
                    for entry in entries {
                        for argument in enqueue_arguments(entry) {
                            command.arg(argument);
                        }
                    }
                })
                .await?;
            enqueued_ids(&ids)
        })
    }

    fn enqueue_after_values<'a>(
        &'a self,
        values: &'a [(String, Vec<u8>)],
        ttl_ms: u64,
        entries: &'a [TaskEntry],
    ) -> BoxFuture<'a, StoreResult<Vec<Option<String>>>> {
        Box::pin(async move {
            if values.is_empty() {
                return self.enqueue(entries).await;
            }
            if entries.is_empty() {
                self.write_values(values, ttl_ms).await?;
                return Ok(Vec::new());
            }
            // The writes and enqueue.lua's EVALSHA (built by hand: a pipeline cannot hold a
            // script invocation) in one pipeline, in that order.
            let mut pipeline = redis::pipe();
            for (key, value) in values {
                pipeline.cmd("SET").arg(key).arg(value).arg("PX").arg(ttl_ms.max(1)).ignore();
            }
            let command = pipeline.cmd("EVALSHA").arg(self.scripts.enqueue.get_hash());
            command.arg(1 + entries.len()).arg(self.keys.tasks());
            for entry in entries {
                command.arg(self.keys.entry_of(&entry.rid));
            }
            command.arg(ENTRY_KEY_TTL_MS);
            for entry in entries {
                for argument in enqueue_arguments(entry) {
                    command.arg(argument);
                }
            }
            let mut connection = self.commands.clone();
            let replies: Vec<Value> = match pipeline.query_async(&mut connection).await {
                Ok(replies) => replies,
                // The server has not the script (yet, or after a restart): the values are
                // written; the enqueue loads it.
                Err(error) if is_no_script(&error) => return self.enqueue(entries).await,
                Err(error) => return Err(failed("enqueue")(error)),
            };
            let [reply] = replies.as_slice() else {
                return Err(malformed("enqueue", "not one reply for the script"));
            };
            let ids = items(reply).ok_or_else(|| malformed("enqueue", "not a list"))?;
            if ids.len() != entries.len() {
                return Err(malformed("enqueue", "not one answer per item of the batch"));
            }
            enqueued_ids(ids)
        })
    }

    fn locate<'a>(
        &'a self,
        deliveries: &'a [Dispatched],
    ) -> BoxFuture<'a, StoreResult<Vec<Located>>> {
        Box::pin(async move {
            let replies = self
                .eval_per_delivery(
                    "locate",
                    &self.scripts.locate,
                    include_str!("locate.lua"),
                    deliveries,
                    false,
                )
                .await?;
            replies
                .iter()
                .map(|value| match text_of(value).as_deref() {
                    Some("queued") => Ok(Located::Queued),
                    Some("done") => Ok(Located::Done),
                    Some("missing") => Ok(Located::Missing),
                    _ => Err(malformed("locate", "not queued, done or missing")),
                })
                .collect()
        })
    }

    fn cancel<'a>(
        &'a self,
        deliveries: &'a [Dispatched],
    ) -> BoxFuture<'a, StoreResult<Vec<Cancelled>>> {
        Box::pin(async move {
            let replies = self
                .eval_per_delivery(
                    "cancel",
                    &self.scripts.cancel,
                    include_str!("cancel.lua"),
                    deliveries,
                    true,
                )
                .await?;
            replies
                .iter()
                .map(|value| match int_of(value) {
                    Some(1) => Ok(Cancelled::Removed),
                    Some(-1) => Ok(Cancelled::Started),
                    Some(0) => Ok(Cancelled::NotQueued),
                    _ => Err(malformed("cancel", "not 1, 0 or -1")),
                })
                .collect()
        })
    }

    fn shares_keys(&self) -> bool {
        true
    }

    fn share_join<'a>(
        &'a self,
        share: &'a ShareKeys,
        client: &'a str,
        rid: &'a str,
        reply: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, StoreResult<Joined>> {
        Box::pin(async move {
            let mut invocation = self.scripts.share.key(&share.record);
            invocation
                .key(&share.result)
                .arg("join")
                .arg(client)
                .arg(rid)
                .arg(reply)
                .arg(millis(lease))
                .arg(self.keys.entry_prefix());
            let mut connection = self.commands.clone();
            let value: Value =
                invocation.invoke_async(&mut connection).await.map_err(failed("share join"))?;
            let answer = items(&value).unwrap_or_default();
            match answer.first().and_then(text_of).as_deref() {
                Some("run") => Ok(Joined::Run),
                Some("wait") => Ok(Joined::Wait),
                Some("done") => answer
                    .get(1)
                    .and_then(bytes_of)
                    .map(Joined::Done)
                    .ok_or_else(|| malformed("share join", "done without a result")),
                _ => Err(malformed("share join", "not run, wait or done")),
            }
        })
    }

    fn share_done<'a>(
        &'a self,
        share: &'a ShareKeys,
        rid: &'a str,
        status: Status,
        body: &'a [u8],
        deliveries: u32,
        reply_ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let mut invocation = self.scripts.share.key(&share.record);
            invocation
                .key(&share.result)
                .arg("done")
                .arg(rid)
                .arg(status.as_str())
                .arg(body)
                .arg(deliveries)
                .arg(millis(reply_ttl));
            let mut connection = self.commands.clone();
            let _: Value =
                invocation.invoke_async(&mut connection).await.map_err(failed("share done"))?;
            Ok(())
        })
    }

    fn share_leave<'a>(
        &'a self,
        share: &'a ShareKeys,
        client: &'a str,
        rid: &'a str,
    ) -> BoxFuture<'a, StoreResult<Left>> {
        Box::pin(async move {
            let mut invocation = self.scripts.share.key(&share.record);
            invocation.key(&share.result).arg("leave").arg(client).arg(rid);
            let mut connection = self.commands.clone();
            let value: Value =
                invocation.invoke_async(&mut connection).await.map_err(failed("share leave"))?;
            let answer = items(&value).unwrap_or_default();
            match answer.first().and_then(text_of).as_deref() {
                Some("kept") => Ok(Left::Kept),
                Some("last") => {
                    let run = answer.get(1).and_then(text_of).filter(|run| !run.is_empty());
                    Ok(Left::Last(run))
                }
                _ => Err(malformed("share leave", "not kept or last")),
            }
        })
    }

    fn share_refresh<'a>(
        &'a self,
        shares: &'a [ShareKeys],
        client: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, StoreResult<Vec<bool>>> {
        Box::pin(async move {
            if shares.is_empty() {
                return Ok(Vec::new());
            }
            let replies = self
                .eval_pipelined(
                    "share refresh",
                    &self.scripts.share,
                    include_str!("share.lua"),
                    shares.len(),
                    |index, command| {
                        let share = &shares[index];
                        command
                            .arg(2)
                            .arg(&share.record)
                            .arg(&share.result)
                            .arg("refresh")
                            .arg(client)
                            .arg(millis(lease));
                    },
                )
                .await?;
            replies
                .iter()
                .map(|value| {
                    match items(value).and_then(|answer| answer.first()).and_then(text_of) {
                        Some(answer) if answer == "kept" => Ok(true),
                        Some(answer) if answer == "gone" => Ok(false),
                        _ => Err(malformed("share refresh", "not kept or gone")),
                    }
                })
                .collect()
        })
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
            let mut connection = self.blocking.clone();
            // One pipeline: the deletions do not cost round trips of their own.
            let mut pipeline = redis::pipe();
            if !consumed.is_empty() {
                pipeline.cmd("XDEL").arg(reply).arg(consumed).ignore();
            }
            if !released.is_empty() {
                pipeline.cmd("UNLINK").arg(released).ignore();
            }
            pipeline
                .cmd("XREAD")
                .arg("COUNT")
                .arg(count)
                .arg("BLOCK")
                .arg(millis(block))
                .arg("STREAMS")
                .arg(reply)
                .arg(after);
            let values: Vec<Value> =
                pipeline.query_async(&mut connection).await.map_err(failed("XREAD"))?;
            let Ok([value]) = <[Value; 1]>::try_from(values) else {
                return Err(malformed("XREAD", "not one reply for the read"));
            };
            read_reply_owned(value).ok_or_else(|| malformed("XREAD", "not a stream read reply"))
        })
    }

    fn delete_stream_entries<'a>(
        &'a self,
        stream: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(());
            }
            let mut connection = self.commands.clone();
            let _: Value = redis::cmd("XDEL")
                .arg(stream)
                .arg(ids)
                .query_async(&mut connection)
                .await
                .map_err(failed("XDEL"))?;
            Ok(())
        })
    }

    fn delete_keys<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(());
            }
            let mut connection = self.commands.clone();
            let _: Value = redis::cmd("UNLINK")
                .arg(keys)
                .query_async(&mut connection)
                .await
                .map_err(failed("UNLINK"))?;
            Ok(())
        })
    }

    fn next_number(&self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let mut connection = self.commands.clone();
            let value: Value = redis::cmd("INCR")
                .arg(self.keys.sequence())
                .query_async(&mut connection)
                .await
                .map_err(failed("INCR"))?;
            int_of(&value)
                .and_then(|number| u64::try_from(number).ok())
                .ok_or_else(|| malformed("INCR", "not a number"))
        })
    }

    fn live_workers(&self) -> BoxFuture<'_, StoreResult<Vec<Vec<u8>>>> {
        Box::pin(async move {
            let mut connection = self.commands.clone();
            let members: Value = redis::cmd("SMEMBERS")
                .arg(self.keys.workers())
                .query_async(&mut connection)
                .await
                .map_err(failed("SMEMBERS"))?;
            let names: Vec<String> = items(&members)
                .ok_or_else(|| malformed("SMEMBERS", "not a set"))?
                .iter()
                .filter_map(text_of)
                .collect();
            if names.is_empty() {
                return Ok(Vec::new());
            }
            let heartbeat_keys: Vec<String> =
                names.iter().map(|name| self.keys.heartbeat(name)).collect();
            let values: Value = redis::cmd("MGET")
                .arg(&heartbeat_keys)
                .query_async(&mut connection)
                .await
                .map_err(failed("MGET"))?;
            let values = items(&values).ok_or_else(|| malformed("MGET", "not a list"))?;
            let mut live = Vec::new();
            let mut expired = Vec::new();
            for (name, value) in names.iter().zip(values) {
                match bytes_of(value) {
                    Some(announcement) => live.push(announcement),
                    None => expired.push(name.clone()),
                }
            }
            if !expired.is_empty() {
                // Forget workers whose heartbeat expired (they died without signing off).
                let _: Value = redis::cmd("SREM")
                    .arg(self.keys.workers())
                    .arg(&expired)
                    .query_async(&mut connection)
                    .await
                    .map_err(failed("SREM"))?;
            }
            Ok(live)
        })
    }

    fn ensure_group(&self) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let mut connection = self.commands.clone();
            let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.keys.tasks())
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut connection)
                .await;
            match created {
                Ok(_) => Ok(()),
                Err(error) if is_busy_group(&error) => Ok(()),
                Err(error) => Err(failed("XGROUP CREATE")(error)),
            }
        })
    }

    fn read_new<'a>(
        &'a self,
        consumer: &'a str,
        count: usize,
        block: Duration,
    ) -> BoxFuture<'a, StoreResult<Vec<StreamEntry>>> {
        Box::pin(async move {
            let mut connection = self.blocking.clone();
            let read: redis::RedisResult<Value> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(consumer)
                .arg("COUNT")
                .arg(count.max(1))
                .arg("BLOCK")
                .arg(millis(block))
                .arg("STREAMS")
                .arg(self.keys.tasks())
                .arg(">")
                .query_async(&mut connection)
                .await;
            let value = match read {
                Ok(value) => value,
                // The stream or group vanished (a server restart without persistence, or
                // someone deleted the key): make them again and report an empty read.
                Err(error) if error.code() == Some("NOGROUP") => {
                    self.ensure_group().await?;
                    return Ok(Vec::new());
                }
                Err(error) => return Err(failed("XREADGROUP")(error)),
            };
            read_reply_owned(value)
                .ok_or_else(|| malformed("XREADGROUP", "not a stream read reply"))
        })
    }

    fn claim_idle<'a>(
        &'a self,
        consumer: &'a str,
        min_idle: Duration,
        cursor: &'a str,
        count: usize,
    ) -> BoxFuture<'a, StoreResult<(String, Vec<ClaimedEntry>)>> {
        Box::pin(async move {
            let mut connection = self.commands.clone();
            let claimed: redis::RedisResult<Value> = self
                .scripts
                .claim
                .key(self.keys.tasks())
                .key(self.keys.starts())
                .arg(GROUP)
                .arg(consumer)
                .arg(millis(min_idle))
                .arg(cursor)
                .arg(count.max(1))
                .invoke_async(&mut connection)
                .await;
            let value = match claimed {
                Ok(value) => value,
                Err(error) if error.to_string().contains("NOGROUP") => {
                    self.ensure_group().await?;
                    return Ok(("0-0".to_owned(), Vec::new()));
                }
                Err(error) => return Err(failed("claim")(error)),
            };
            claim_reply(&value)
        })
    }

    fn complete<'a>(
        &'a self,
        consumer: &'a str,
        completions: &'a [Completion],
    ) -> BoxFuture<'a, StoreResult<Vec<Ownership>>> {
        Box::pin(self.complete_all(consumer, completions))
    }

    fn dead_letter<'a>(
        &'a self,
        consumer: &'a str,
        letter: &'a DeadLetter,
    ) -> BoxFuture<'a, StoreResult<Ownership>> {
        Box::pin(async move {
            let tasks = self.keys.tasks();
            let (reply, rid, status, body) = match &letter.notify {
                Some((notify, status, body)) => {
                    (notify.reply.clone(), notify.rid.clone(), status.as_str(), body.clone())
                }
                None => (tasks.clone(), String::new(), "", Vec::new()),
            };
            let entry_of = if rid.is_empty() { tasks.clone() } else { self.keys.entry_of(&rid) };
            let mut connection = self.commands.clone();
            let value: Value = self
                .scripts
                .dead_letter
                .key(&tasks)
                .key(self.keys.dead())
                .key(reply)
                .key(self.keys.starts())
                .key(entry_of)
                .arg(GROUP)
                .arg(&letter.entry_id)
                .arg(consumer)
                .arg(&letter.reason)
                .arg(rid)
                .arg(status)
                .arg(body)
                .arg(letter.ttl_ms)
                .arg(self.dead_letter_cap)
                .invoke_async(&mut connection)
                .await
                .map_err(failed("dead-letter"))?;
            ownership_of(&value).ok_or_else(|| malformed("dead-letter", "not 1, 0 or -1"))
        })
    }

    fn begin<'a>(
        &'a self,
        consumer: &'a str,
        entry_ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<Vec<Result<u32, Ownership>>>> {
        Box::pin(async move {
            if entry_ids.is_empty() {
                return Ok(Vec::new());
            }
            // One script call for the whole batch (see begin.lua).
            let script = &self.scripts.begin;
            let replies = self
                .eval_per_item("begin", script, 2, entry_ids.len(), |command| {
                    command.arg(self.keys.tasks()).arg(self.keys.starts()).arg(GROUP).arg(consumer);
                    for id in entry_ids {
                        command.arg(id);
                    }
                })
                .await?;
            replies.iter().map(begin_reply).collect()
        })
    }

    fn complete_and_begin<'a>(
        &'a self,
        consumer: &'a str,
        completions: &'a [Completion],
        begins: &'a [String],
    ) -> BoxFuture<'a, StoreResult<CompletedAndBegun>> {
        Box::pin(async move {
            if begins.is_empty() {
                return Ok((self.complete_all(consumer, completions).await?, Vec::new()));
            }
            if completions.is_empty() {
                return Ok((Vec::new(), self.begin(consumer, begins).await?));
            }
            self.complete_and_begin_all(consumer, completions, begins).await
        })
    }

    fn touch<'a>(
        &'a self,
        consumer: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<usize>> {
        Box::pin(self.owner_checked_ids(&self.scripts.touch, "touch", consumer, ids, true, false))
    }

    fn hand_back<'a>(
        &'a self,
        consumer: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, StoreResult<usize>> {
        let hand_back = &self.scripts.hand_back;
        Box::pin(self.owner_checked_ids(hand_back, "hand back", consumer, ids, true, true))
    }

    fn write_values<'a>(
        &'a self,
        values: &'a [(String, Vec<u8>)],
        ttl_ms: u64,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            if values.is_empty() {
                return Ok(());
            }
            // One pipeline: one round trip for the lot.
            let mut pipeline = redis::pipe();
            for (key, value) in values {
                pipeline.cmd("SET").arg(key).arg(value).arg("PX").arg(ttl_ms.max(1)).ignore();
            }
            let mut connection = self.commands.clone();
            let _: Value = pipeline.query_async(&mut connection).await.map_err(failed("SET"))?;
            Ok(())
        })
    }

    fn renew_values<'a>(
        &'a self,
        keys: &'a [String],
        ttl_ms: u64,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(());
            }
            // One pipeline: one round trip for the lot.
            let mut pipeline = redis::pipe();
            for key in keys {
                pipeline.cmd("PEXPIRE").arg(key).arg(ttl_ms.max(1)).ignore();
            }
            let mut connection = self.commands.clone();
            let _: Value =
                pipeline.query_async(&mut connection).await.map_err(failed("PEXPIRE"))?;
            Ok(())
        })
    }

    fn read_values<'a>(
        &'a self,
        keys: &'a [String],
    ) -> BoxFuture<'a, StoreResult<Vec<Option<Vec<u8>>>>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let mut connection = self.commands.clone();
            let value: Value = redis::cmd("MGET")
                .arg(keys)
                .query_async(&mut connection)
                .await
                .map_err(failed("MGET"))?;
            values_reply(&value)
        })
    }

    fn heartbeat<'a>(
        &'a self,
        worker: &'a str,
        announcement: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let mut connection = self.commands.clone();
            let () = redis::pipe()
                .cmd("SET")
                .arg(self.keys.heartbeat(worker))
                .arg(announcement)
                .arg("PX")
                .arg(millis(ttl))
                .ignore()
                .cmd("SADD")
                .arg(self.keys.workers())
                .arg(worker)
                .ignore()
                .query_async(&mut connection)
                .await
                .map_err(failed("heartbeat"))?;
            Ok(())
        })
    }

    fn forget_consumers(&self, min_idle: Duration) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let mut connection = self.commands.clone();
            let value: Value = self
                .scripts
                .forget
                .key(self.keys.tasks())
                .arg(GROUP)
                .arg(self.keys.heartbeat(""))
                .arg(millis(min_idle))
                .invoke_async(&mut connection)
                .await
                .map_err(failed("forget consumers"))?;
            items(&value)
                .ok_or_else(|| malformed("forget consumers", "not a list"))?
                .iter()
                .map(|name| {
                    text_of(name).ok_or_else(|| malformed("forget consumers", "not a name"))
                })
                .collect()
        })
    }

    fn request_retire<'a>(
        &'a self,
        worker: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let mut connection = self.commands.clone();
            let () = redis::cmd("SET")
                .arg(self.keys.retire(worker))
                .arg("1")
                .arg("PX")
                .arg(millis(ttl))
                .query_async(&mut connection)
                .await
                .map_err(failed("ask a worker to retire"))?;
            Ok(())
        })
    }

    fn request_run<'a>(
        &'a self,
        worker: &'a str,
        request: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let mut connection = self.commands.clone();
            let key = self.keys.run_requests(worker);
            let () = redis::pipe()
                .cmd("RPUSH")
                .arg(&key)
                .arg(request)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(millis(ttl))
                .ignore()
                .query_async(&mut connection)
                .await
                .map_err(failed("ask a worker to run a function"))?;
            Ok(())
        })
    }

    fn take_run_requests<'a>(
        &'a self,
        worker: &'a str,
        count: usize,
    ) -> BoxFuture<'a, StoreResult<Vec<Vec<u8>>>> {
        Box::pin(async move {
            let mut connection = self.commands.clone();
            let requests: Option<Vec<Vec<u8>>> = redis::cmd("LPOP")
                .arg(self.keys.run_requests(worker))
                .arg(count.max(1))
                .query_async(&mut connection)
                .await
                .map_err(failed("take run requests"))?;
            Ok(requests.unwrap_or_default())
        })
    }

    fn answer_run<'a>(
        &'a self,
        key: &'a str,
        answer: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let mut connection = self.commands.clone();
            let () = redis::cmd("SET")
                .arg(key)
                .arg(answer)
                .arg("PX")
                .arg(millis(ttl))
                .query_async(&mut connection)
                .await
                .map_err(failed("answer a run request"))?;
            Ok(())
        })
    }

    fn read_answers<'a>(
        &'a self,
        keys: &'a [String],
    ) -> BoxFuture<'a, StoreResult<Vec<Option<Vec<u8>>>>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let mut connection = self.commands.clone();
            let answers: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(keys)
                .query_async(&mut connection)
                .await
                .map_err(failed("read run answers"))?;
            Ok(answers)
        })
    }

    fn send_control<'a>(&'a self, message: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let mut connection = self.commands.clone();
            let key = self.keys.control();
            // Readers read only what comes after they started: a short stream suffices,
            // and it goes away a day after the last message.
            let () = redis::pipe()
                .cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(CONTROL_MAXLEN)
                .arg("*")
                .arg("m")
                .arg(message)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(CONTROL_TTL_MS)
                .ignore()
                .query_async(&mut connection)
                .await
                .map_err(failed("send a control message"))?;
            Ok(())
        })
    }

    fn read_control<'a>(
        &'a self,
        after: Option<&'a str>,
        block: Duration,
    ) -> BoxFuture<'a, StoreResult<Option<ControlRead>>> {
        Box::pin(async move {
            let key = self.keys.control();
            let Some(after) = after else {
                let mut connection = self.commands.clone();
                let last: Value = redis::cmd("XREVRANGE")
                    .arg(&key)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut connection)
                    .await
                    .map_err(failed("read the control stream"))?;
                let last = entries_of(&last)
                    .ok_or_else(|| malformed("XREVRANGE", "not a list of stream entries"))?
                    .pop()
                    .map_or_else(|| "0-0".to_owned(), |entry| entry.id);
                return Ok(Some((last, Vec::new())));
            };
            let mut slot = self.control.lock().await;
            let mut connection = match &*slot {
                Some(connection) => connection.clone(),
                None => {
                    let options = &self.options;
                    let made =
                        connect_one(&self.url, options, options.command_timeout + block, 2).await?;
                    slot.insert(made).clone()
                }
            };
            drop(slot);
            let value: Value = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(CONTROL_MAXLEN)
                .arg("BLOCK")
                .arg(millis(block).max(1))
                .arg("STREAMS")
                .arg(&key)
                .arg(after)
                .query_async(&mut connection)
                .await
                .map_err(failed("read the control stream"))?;
            let entries = read_reply_owned(value)
                .ok_or_else(|| malformed("XREAD", "not a stream read reply"))?;
            let last = entries.last().map_or_else(|| after.to_owned(), |entry| entry.id.clone());
            let messages = entries
                .into_iter()
                .filter_map(|entry| {
                    entry.fields.into_iter().find(|(field, _)| field == b"m").map(|(_, m)| m)
                })
                .collect();
            Ok(Some((last, messages)))
        })
    }

    fn retire_requested<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let mut connection = self.commands.clone();
            let flag: Option<String> = redis::cmd("GET")
                .arg(self.keys.retire(worker))
                .query_async(&mut connection)
                .await
                .map_err(failed("read the retire flag"))?;
            Ok(flag.is_some())
        })
    }

    fn sign_off<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let mut connection = self.commands.clone();
            let () = redis::pipe()
                .cmd("DEL")
                .arg(self.keys.heartbeat(worker))
                .ignore()
                .cmd("SREM")
                .arg(self.keys.workers())
                .arg(worker)
                .ignore()
                .query_async(&mut connection)
                .await
                .map_err(failed("sign off"))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::transport::redis::protocol::INLINE_RESULT_MAX;

    /// `enqueue.lua` puts the names of the fixed fields before their values and the further
    /// pairs after them: the entry it writes must be the entry's own fields, whatever their
    /// order in `TaskEntry::fields`.
    #[test]
    fn enqueue_arguments_name_every_field_of_the_entry_once() {
        let keys = Keys::new("tw", "q");
        let entry = TaskEntry {
            task: "add".into(),
            key: "add-01".into(),
            rid: "c1:1:1".into(),
            result: keys.result("c1", 1),
            reply: keys.reply("c1"),
            input: Some(b"[1,2]".to_vec()),
            deps: vec![],
            max_deliveries: 3,
            ttl_ms: 1000,
            resources: vec![("GPU".into(), 1)],
            inline_max: Some(INLINE_RESULT_MAX),
            packed: true,
        };
        // Packed (as clients write it), and one field per field (format version 1).
        for entry in [entry.clone(), TaskEntry { packed: false, ..entry }] {
            let arguments = enqueue_arguments(&entry);
            let count: i64 = std::str::from_utf8(&arguments[0]).unwrap().parse().unwrap();
            let fixed = if entry.packed { FIXED_ENTRY_FIELDS.len() } else { 0 };
            assert_eq!(arguments.len() as i64, 1 + fixed as i64 + count.abs());
            let written = entry_fields(&arguments, fixed);
            let expected: BTreeMap<Vec<u8>, Vec<u8>> = entry
                .fields()
                .into_iter()
                .map(|(name, value)| (name.as_bytes().to_vec(), value))
                .collect();
            assert_eq!(written.len(), expected.len(), "no field twice");
            assert_eq!(TaskEntry::decode(&written, &keys), Ok(entry));
            assert_eq!(written.into_iter().collect::<BTreeMap<_, _>>(), expected);
        }
    }

    /// The fields `enqueue.lua` writes from these arguments: the `fixed` names with their
    /// values, then the further pairs.
    fn entry_fields(arguments: &[Vec<u8>], fixed: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = FIXED_ENTRY_FIELDS[..fixed]
            .iter()
            .zip(&arguments[1..=fixed])
            .map(|(name, value)| (name.as_bytes().to_vec(), value.clone()))
            .collect();
        for pair in arguments[1 + fixed..].chunks(2) {
            fields.push((pair[0].clone(), pair[1].clone()));
        }
        fields
    }
}
