//! The coordination backend's storage seam: the few operations [`RedisCoordination`] sends to
//! Redis (one Lua script or one plain command each, see [`Op`]), its topic reads and its
//! wake-ups, apart from the connection that carries them.
//!
//! [`RedisLinks`] carries them to a real server or a Redis Cluster; the simulation's model of
//! Redis (`src/sim/redis/`) carries them out in memory, as the scripts do, so that the same
//! coordination code runs under the deterministic simulation, and `tests/model_vs_redis.rs`
//! checks that both answer every operation alike.
//!
//! [`RedisCoordination`]: crate::client::coordination::redis::RedisCoordination

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::{BoxFuture, Either, select};
use redis::{Script as RedisScript, Value};

use crate::error::Error;
use crate::executor::Executor;
use crate::transport::redis::RedisConfig;
use crate::transport::redis::redis_store::{Connection, connect_one, open_client};
use crate::transport::redis::store::StoreError;

/// How long the wake-up loop waits before it subscribes again after its subscription ended.
const RECHECK: Duration = Duration::from_secs(1);

/// The coordination scripts, each in its `.lua` file in `src/client/coordination/redis/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Script {
    LeaseAcquire,
    LeaseRefresh,
    LeaseRelease,
    LeaseCount,
    EventSet,
    QueuePush,
    QueuePop,
    QueueUnpop,
    VariableSet,
    VariableGet,
    VariableDelete,
    TopicLog,
    TopicSubscribe,
    DatasetPublish,
}

impl Script {
    /// Every script.
    pub const ALL: [Script; 14] = [
        Script::LeaseAcquire,
        Script::LeaseRefresh,
        Script::LeaseRelease,
        Script::LeaseCount,
        Script::EventSet,
        Script::QueuePush,
        Script::QueuePop,
        Script::QueueUnpop,
        Script::VariableSet,
        Script::VariableGet,
        Script::VariableDelete,
        Script::TopicLog,
        Script::TopicSubscribe,
        Script::DatasetPublish,
    ];

    /// The script's name, as errors name the operation.
    pub fn name(self) -> &'static str {
        match self {
            Script::LeaseAcquire => "lease_acquire",
            Script::LeaseRefresh => "lease_refresh",
            Script::LeaseRelease => "lease_release",
            Script::LeaseCount => "lease_count",
            Script::EventSet => "event_set",
            Script::QueuePush => "queue_push",
            Script::QueuePop => "queue_pop",
            Script::QueueUnpop => "queue_unpop",
            Script::VariableSet => "variable_set",
            Script::VariableGet => "variable_get",
            Script::VariableDelete => "variable_delete",
            Script::TopicLog => "topic_log",
            Script::TopicSubscribe => "topic_subscribe",
            Script::DatasetPublish => "dataset_publish",
        }
    }

    /// The script's Lua source.
    pub fn source(self) -> &'static str {
        match self {
            Script::LeaseAcquire => {
                include_str!("../../client/coordination/redis/lease_acquire.lua")
            }
            Script::LeaseRefresh => {
                include_str!("../../client/coordination/redis/lease_refresh.lua")
            }
            Script::LeaseRelease => {
                include_str!("../../client/coordination/redis/lease_release.lua")
            }
            Script::LeaseCount => include_str!("../../client/coordination/redis/lease_count.lua"),
            Script::EventSet => include_str!("../../client/coordination/redis/event_set.lua"),
            Script::QueuePush => include_str!("../../client/coordination/redis/queue_push.lua"),
            Script::QueuePop => include_str!("../../client/coordination/redis/queue_pop.lua"),
            Script::QueueUnpop => include_str!("../../client/coordination/redis/queue_unpop.lua"),
            Script::VariableSet => include_str!("../../client/coordination/redis/variable_set.lua"),
            Script::VariableGet => include_str!("../../client/coordination/redis/variable_get.lua"),
            Script::VariableDelete => {
                include_str!("../../client/coordination/redis/variable_delete.lua")
            }
            Script::TopicLog => include_str!("../../client/coordination/redis/topic_log.lua"),
            Script::TopicSubscribe => {
                include_str!("../../client/coordination/redis/topic_subscribe.lua")
            }
            Script::DatasetPublish => {
                include_str!("../../client/coordination/redis/dataset_publish.lua")
            }
        }
    }
}

/// One operation: a script with its keys and arguments, or one plain command. Every key of
/// one operation shares one hash tag (one slot of a Redis Cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Script {
        script: Script,
        keys: Vec<String>,
        args: Vec<Vec<u8>>,
    },
    /// `DEL key...`: how many existed.
    Del(Vec<String>),
    /// `LLEN key`.
    Llen(String),
    /// `MGET key...`: each value or nil.
    Mget(Vec<String>),
    /// `EXISTS key`.
    Exists(String),
    /// `SADD key member`: 1 if it was added.
    Sadd(String, String),
    /// `SREM key member`: 1 if it was there.
    Srem(String, String),
    /// `SMEMBERS key`: the members, in no particular order.
    Smembers(String),
}

impl Op {
    /// A script call; `args` as Redis sends them (numbers as their decimal text).
    pub fn script(script: Script, keys: Vec<String>, args: Vec<Vec<u8>>) -> Op {
        Op::Script { script, keys, args }
    }

    /// The operation's name, for errors.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Script { script, .. } => script.name(),
            Op::Del(_) => "DEL",
            Op::Llen(_) => "LLEN",
            Op::Mget(_) => "MGET",
            Op::Exists(_) => "EXISTS",
            Op::Sadd(..) => "SADD",
            Op::Srem(..) => "SREM",
            Op::Smembers(_) => "SMEMBERS",
        }
    }
}

/// An argument as Redis receives it: its text.
pub fn arg(value: impl fmt::Display) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// One message read from a topic's stream: its id and its field `m`, if it has one.
pub type TopicMessage = (String, Option<Vec<u8>>);

/// Called with the channel of each wake-up notification; `false` ends the wake-up loop (its
/// backend is gone).
pub type Wake = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A connection to where the coordination state lives.
pub trait Link: Send + Sync + 'static {
    /// Runs `op`; its reply as Redis gives it.
    fn run(&self, op: Op) -> BoxFuture<'static, Result<Value, Error>>;

    /// `XREAD COUNT count BLOCK block STREAMS stream after`: the messages after `after`,
    /// waiting up to `block` for the first one.
    fn read_topic(
        &self,
        stream: String,
        after: String,
        count: usize,
        block: Duration,
    ) -> BoxFuture<'static, Result<Vec<TopicMessage>, Error>>;

    /// A link of its own for blocking topic reads (a blocking read holds up every other
    /// command on its connection).
    fn reader(&self, block: Duration) -> BoxFuture<'static, Result<Arc<dyn Link>, Error>>;
}

/// How a backend reaches its coordination state: connects a [`Link`], and subscribes to
/// wake-ups.
pub trait Connector: Send + Sync + 'static {
    /// A new link.
    fn link(&self) -> BoxFuture<'static, Result<Arc<dyn Link>, Error>>;

    /// Subscribes to the channels matching `pattern` (once, before it returns, so that no
    /// notification published after it is missed while the subscription holds), and returns
    /// the loop that calls `wake` with each notification's channel until `stop` disconnects
    /// or `wake` says the backend is gone, subscribing again when its subscription ends.
    fn wakeups(
        &self,
        pattern: String,
        wake: Wake,
        stop: flume::Receiver<()>,
        executor: Arc<dyn Executor>,
    ) -> BoxFuture<'static, BoxFuture<'static, ()>>;
}

/// The real server (or Redis Cluster) of a [`RedisConfig`].
pub struct RedisLinks {
    config: RedisConfig,
    /// How long a command may take (a blocking read gets its block on top).
    block: Duration,
    scripts: Arc<Vec<(Script, RedisScript)>>,
}

impl RedisLinks {
    /// The server `config` names; blocking reads wait up to `block` on the server.
    pub fn new(config: RedisConfig, block: Duration) -> RedisLinks {
        let scripts =
            Script::ALL.iter().map(|script| (*script, RedisScript::new(script.source()))).collect();
        RedisLinks { config, block, scripts: Arc::new(scripts) }
    }
}

/// A connection to a real server or cluster, with the scripts it runs.
struct RedisLink {
    connection: Connection,
    scripts: Arc<Vec<(Script, RedisScript)>>,
    config: RedisConfig,
}

fn failed(operation: &'static str) -> impl FnOnce(redis::RedisError) -> Error {
    move |error| Error::Transport(Box::new(StoreError { operation, source: Box::new(error) }))
}

async fn connect(
    config: &RedisConfig,
    block: Duration,
    extra: Duration,
    scripts: Arc<Vec<(Script, RedisScript)>>,
) -> Result<RedisLink, Error> {
    let options = config.connect_options(block);
    let connection =
        connect_one(config.url(), &options, options.command_timeout + extra, 2).await?;
    Ok(RedisLink { connection, scripts, config: config.clone() })
}

impl Link for RedisLink {
    fn run(&self, op: Op) -> BoxFuture<'static, Result<Value, Error>> {
        let mut connection = self.connection.clone();
        let scripts = Arc::clone(&self.scripts);
        Box::pin(async move {
            let name = op.name();
            match op {
                Op::Script { script, keys, args } => {
                    let (_, code) = scripts
                        .iter()
                        .find(|(known, _)| *known == script)
                        .expect("every script is loaded");
                    let mut invocation = code.prepare_invoke();
                    for key in &keys {
                        invocation.key(key);
                    }
                    for arg in &args {
                        invocation.arg(arg.as_slice());
                    }
                    invocation.invoke_async(&mut connection).await.map_err(failed(name))
                }
                Op::Del(keys) => redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await
                    .map_err(failed(name)),
                Op::Llen(key) => redis::cmd("LLEN")
                    .arg(&key)
                    .query_async(&mut connection)
                    .await
                    .map_err(failed(name)),
                // One command, so that its values are read at one instant (its keys share a
                // hash tag: one slot on a cluster).
                Op::Mget(keys) => redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await
                    .map_err(failed(name)),
                Op::Exists(key) => redis::cmd("EXISTS")
                    .arg(&key)
                    .query_async(&mut connection)
                    .await
                    .map_err(failed(name)),
                Op::Sadd(key, member) | Op::Srem(key, member) => redis::cmd(name)
                    .arg(&key)
                    .arg(&member)
                    .query_async(&mut connection)
                    .await
                    .map_err(failed(name)),
                Op::Smembers(key) => redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(&mut connection)
                    .await
                    .map_err(failed(name)),
            }
        })
    }

    fn read_topic(
        &self,
        stream: String,
        after: String,
        count: usize,
        block: Duration,
    ) -> BoxFuture<'static, Result<Vec<TopicMessage>, Error>> {
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let mut command = redis::cmd("XREAD");
            command
                .arg("COUNT")
                .arg(count)
                .arg("BLOCK")
                .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1))
                .arg("STREAMS")
                .arg(&stream)
                .arg(&after);
            let reply: Option<redis::streams::StreamReadReply> =
                command.query_async(&mut connection).await.map_err(failed("XREAD"))?;
            let mut messages = Vec::new();
            for key in reply.into_iter().flat_map(|reply| reply.keys) {
                for entry in key.ids {
                    let message = match entry.map.get("m") {
                        Some(Value::BulkString(bytes)) => Some(bytes.clone()),
                        _ => None,
                    };
                    messages.push((entry.id, message));
                }
            }
            Ok(messages)
        })
    }

    fn reader(&self, block: Duration) -> BoxFuture<'static, Result<Arc<dyn Link>, Error>> {
        let (config, scripts) = (self.config.clone(), Arc::clone(&self.scripts));
        Box::pin(async move {
            let link = connect(&config, block, block, scripts).await?;
            Ok(Arc::new(link) as Arc<dyn Link>)
        })
    }
}

// `wakeups` answers the wake-up loop once subscribed: the outer future is the subscription.
#[allow(clippy::async_yields_async)]
impl Connector for RedisLinks {
    fn link(&self) -> BoxFuture<'static, Result<Arc<dyn Link>, Error>> {
        let (config, block, scripts) = (self.config.clone(), self.block, Arc::clone(&self.scripts));
        Box::pin(async move {
            let link = connect(&config, block, Duration::ZERO, scripts).await?;
            Ok(Arc::new(link) as Arc<dyn Link>)
        })
    }

    fn wakeups(
        &self,
        pattern: String,
        wake: Wake,
        stop: flume::Receiver<()>,
        executor: Arc<dyn Executor>,
    ) -> BoxFuture<'static, BoxFuture<'static, ()>> {
        let (config, block) = (self.config.clone(), self.block);
        Box::pin(async move {
            // Classic pub/sub reaches every node of a cluster: one node's subscription hears
            // what is published on any.
            let url =
                config.cluster_nodes().first().cloned().unwrap_or_else(|| config.url().into());
            let client = open_client(&url, &config.connect_options(block)).map_err(Error::from);
            let first = match &client {
                Ok(client) => subscribe(client, &pattern).await.map_err(failed("PSUBSCRIBE")),
                Err(_) => Err(Error::Transport("no client".into())),
            };
            if let Err(error) = &first {
                tracing::warn!(%error, "coordination wake-ups unavailable for now; waits re-check every second");
            }
            let Ok(client) = client else {
                return Box::pin(async {}) as BoxFuture<'static, ()>;
            };
            Box::pin(wake_loop(client, pattern, first.ok(), wake, stop, executor))
                as BoxFuture<'static, ()>
        })
    }
}

async fn subscribe(
    client: &redis::Client,
    pattern: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(pattern).await?;
    Ok(pubsub)
}

/// Calls `wake` with the channel of each notification, until `stop` disconnects or `wake`
/// says its backend is gone. When the pub/sub connection ends (Redis restarted or
/// unreachable) it subscribes again, every 1 s to 2 s, until that works or it is stopped;
/// meanwhile waits re-check every [`RECHECK`] by themselves, so nothing hangs.
async fn wake_loop(
    client: redis::Client,
    pattern: String,
    mut pubsub: Option<redis::aio::PubSub>,
    wake: Wake,
    stop: flume::Receiver<()>,
    executor: Arc<dyn Executor>,
) {
    loop {
        if let Some(connected) = pubsub.take() {
            let mut messages = connected.into_on_message();
            loop {
                let message = match select(messages.next(), stop.recv_async()).await {
                    Either::Left((Some(message), _)) => message,
                    Either::Left((None, _)) => break,
                    Either::Right(_) => return,
                };
                if !wake(message.get_channel_name()) {
                    return;
                }
            }
            tracing::debug!("the coordination pub/sub connection ended; subscribing again");
        }
        match select(executor.sleep(RECHECK), stop.recv_async()).await {
            Either::Left(_) => {}
            Either::Right(_) => return,
        }
        match select(Box::pin(subscribe(&client, &pattern)), stop.recv_async()).await {
            Either::Left((Ok(connected), _)) => pubsub = Some(connected),
            Either::Left((Err(error), _)) => {
                tracing::debug!(%error, "coordination wake-ups: subscribe failed")
            }
            Either::Right(_) => return,
        }
    }
}
