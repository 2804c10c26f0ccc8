//! [`RedisConfig`]: how a client's transport or a worker reaches Redis, and which queue it
//! uses. One type, so that the fields, their defaults, their checks and their docs live once;
//! [`RedisTransportBuilder`](super::RedisTransportBuilder) and
//! [`WorkerBuilder`](crate::worker::WorkerBuilder) hold one and forward their setters to it.

use std::time::Duration;

use super::protocol::Keys;
use super::redis_store::ConnectOptions;
use crate::Error;

/// The namespace every key starts with unless configured otherwise.
pub const DEFAULT_NAMESPACE: &str = "taskweave";
/// The queue clients and workers use unless configured otherwise.
pub const DEFAULT_QUEUE: &str = "default";
/// How long one command may take unless configured otherwise (or the broker timeout, if
/// shorter).
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach a Redis server and which queue to use: the settings a client's
/// [`RedisTransport`](super::RedisTransport) and a [`Worker`](crate::worker::Worker) share.
///
/// The builders of both have the same setters (they forward here); build one `RedisConfig`
/// to give a client and the workers of one program the same settings with
/// [`RedisTransport::builder_with`](super::RedisTransport::builder_with) and
/// [`WorkerBuilder::redis_config`](crate::worker::WorkerBuilder::redis_config).
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), taskweave::Error> {
/// use std::time::Duration;
/// use taskweave::transport::redis::{RedisConfig, RedisTransport};
///
/// let redis = RedisConfig::new("redis://127.0.0.1:6379")
///     .namespace("shop")
///     .queue("images")
///     .broker_timeout(Duration::from_secs(30));
/// let transport = RedisTransport::builder_with(redis.clone()).connect().await?;
/// let worker = taskweave::worker::Worker::builder().redis_config(redis);
/// # let _ = (transport, worker);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a RedisConfig does nothing until it is given to a transport, worker or admin builder"]
pub struct RedisConfig {
    url: String,
    namespace: String,
    queue: String,
    /// `None`: the default, [`DEFAULT_COMMAND_TIMEOUT`] or the broker timeout if shorter.
    command_timeout: Option<Duration>,
    broker_timeout: Duration,
    tls_root_certificate: Option<Vec<u8>>,
    /// The seed nodes of a Redis Cluster; empty for a single server.
    cluster_nodes: Vec<String>,
    /// Cluster mode (set by [`RedisConfig::cluster`], even with no nodes, so that the check
    /// can say so).
    cluster: bool,
}

impl RedisConfig {
    /// The settings for the server at `url` (`redis://[user:password@]host:port[/db]`, or
    /// `rediss://` for TLS with the `redis-tls` feature), everything else at its default.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            queue: DEFAULT_QUEUE.to_owned(),
            command_timeout: None,
            broker_timeout: Duration::from_secs(60),
            tls_root_certificate: None,
            cluster_nodes: Vec::new(),
            cluster: false,
        }
    }

    /// The settings for a **Redis Cluster** reached through the seed nodes `nodes` (some or
    /// all of its masters, `redis://[user:password@]host:port` each), everything else at its
    /// default: cluster mode.
    ///
    /// In cluster mode every key of one queue (its task stream, dead letters, workers, the
    /// client and worker counter, and the results and reply streams of its clients) starts
    /// with the hash tag `{namespace:queue}`, so that they all live on one shard and every
    /// script runs on one node, while different queues spread over the shards. Commands and
    /// blocking reads go through redis-rs's cluster client, which follows `MOVED` and `ASK`
    /// redirections and learns a new layout after a failover or resharding.
    ///
    /// Clients and workers of one queue must agree on the mode: the key names differ from a
    /// single server's (whose names stay as they were). The namespace and queue names may
    /// not contain `{` or `}`. [`RedisAdmin::queues`](super::RedisAdmin::queues) scans
    /// every master. With the `redis-tls` feature the nodes may be `rediss://` URLs (all
    /// of them: a cluster serves TLS on every node or none), and
    /// [`tls_root_certificate`](Self::tls_root_certificate) applies to every node. The
    /// coordination primitives ([`Client::lock`](crate::Client::lock), queues, events, ...)
    /// work in cluster mode too: each name's keys share one hash tag (`{<kind>:<name>}`), so
    /// different names spread over the shards.
    /// Starting a transport, worker or admin handle with an unusable cluster config fails
    /// with [`Error::InvalidConfig`] (no node, a name with braces, `redis://` and `rediss://`
    /// nodes mixed, a `rediss://` node without the `redis-tls` feature).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// use taskweave::transport::redis::{RedisConfig, RedisTransport};
    ///
    /// let redis = RedisConfig::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .queue("images");
    /// let transport = RedisTransport::builder_with(redis.clone()).connect().await?;
    /// let worker = taskweave::worker::Worker::builder().redis_config(redis);
    /// # let _ = (transport, worker);
    /// # Ok(()) }
    /// ```
    pub fn cluster<I>(nodes: I) -> RedisConfig
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let cluster_nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        let url = cluster_nodes.first().cloned().unwrap_or_default();
        RedisConfig { cluster_nodes, cluster: true, ..RedisConfig::new(url) }
    }

    /// Whether this is the configuration of a Redis Cluster (made with
    /// [`cluster`](RedisConfig::cluster)).
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The seed nodes of a Redis Cluster (empty for a single server).
    pub fn cluster_nodes(&self) -> &[String] {
        &self.cluster_nodes
    }

    /// The server's URL (with its password, if it has one; see
    /// [`url_without_password`](RedisConfig::url_without_password) for logs).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's URL without its password (`redis://user@host:port/db`), for messages and
    /// logs.
    pub fn url_without_password(&self) -> String {
        without_password(&self.url)
    }

    /// The server to use (see [`new`](RedisConfig::new)); this leaves cluster mode.
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self.cluster_nodes.clear();
        self.cluster = false;
        self
    }

    /// The namespace every key starts with (default `"taskweave"`); clients and workers
    /// must agree on it. Must not be empty.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The queue (default `"default"`): a client submits to it, a worker reads it. Must not
    /// be empty.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// How long one Redis command may take before it counts as failed (default 5 s, or the
    /// [broker timeout](Self::broker_timeout) if that is shorter; at least 10 ms).
    ///
    /// It may not be longer than the broker timeout: a hung server is only noticed once a
    /// command's timeout has passed, so the broker timeout could not be kept (connecting
    /// fails with [`Error::InvalidConfig`] saying so).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = Some(timeout.max(Duration::from_millis(10)));
        self
    }

    /// How long Redis may stay unreachable before the client or worker gives up (default
    /// 60 s; at least 10 ms). Until then both retry with back-off and lose nothing. A
    /// shorter broker timeout than the default command timeout (5 s) shortens that too.
    ///
    /// - A client then fails every pending future with
    ///   [`TaskError::BrokerUnavailable`](crate::TaskError::BrokerUnavailable), which names
    ///   the server (without its password) and the last error, and so does every task
    ///   dispatched until it answers again; see
    ///   [`RedisTransport::health`](super::RedisTransport::health).
    /// - A worker that cannot read its queue, or send its heartbeat (sent also while every
    ///   slot is busy and it reads nothing), for this long stops, and reports the error
    ///   ([`Worker::error`](crate::worker::Worker::error);
    ///   [`run`](crate::worker::WorkerBuilder::run) returns it), so that its supervisor
    ///   restarts it or an operator hears of it. The entries it held are reclaimed by other
    ///   workers after the reclaim time.
    pub fn broker_timeout(mut self, timeout: Duration) -> Self {
        self.broker_timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// Trusts this CA certificate (PEM) for a `rediss://` server instead of the system's
    /// roots (feature `redis-tls`), for servers with certificates of a private CA.
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificate = Some(pem.into());
        self
    }

    pub(crate) fn namespace_name(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn queue_name(&self) -> &str {
        &self.queue
    }

    pub(crate) fn command_timeout_value(&self) -> Duration {
        self.command_timeout.unwrap_or(DEFAULT_COMMAND_TIMEOUT.min(self.broker_timeout))
    }

    pub(crate) fn broker_timeout_value(&self) -> Duration {
        self.broker_timeout
    }

    /// The keys of the queue.
    pub(crate) fn keys(&self) -> Keys {
        if self.is_cluster() {
            Keys::clustered(&self.namespace, &self.queue)
        } else {
            Keys::new(&self.namespace, &self.queue)
        }
    }

    /// How the store connects: this config's timeouts and TLS, and blocking reads of
    /// `block`.
    pub(crate) fn connect_options(&self, block: Duration) -> ConnectOptions {
        ConnectOptions {
            command_timeout: self.command_timeout_value(),
            block,
            tls_root_certificate: self.tls_root_certificate.clone(),
            cluster_nodes: self.cluster_nodes.clone(),
        }
    }

    /// Checks what Redis would refuse later.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an empty queue or namespace name, and in cluster mode
    /// for a name with `{` or `}`, for `redis://` and `rediss://` nodes mixed, and for a
    /// `rediss://` node without the `redis-tls` feature; for a command timeout longer than
    /// the broker timeout.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if let Some(command_timeout) = self.command_timeout.filter(|t| *t > self.broker_timeout) {
            return Err(Error::InvalidConfig {
                message: format!(
                    "the Redis command timeout ({command_timeout:?}) is longer than the broker \
                     timeout ({:?}): a server that stops answering is only noticed once a \
                     command's timeout has passed, so the broker timeout could not be kept; \
                     lower .command_timeout(..) or raise .broker_timeout(..)",
                    self.broker_timeout
                ),
            });
        }
        if self.is_cluster() {
            if self.cluster_nodes.is_empty() {
                return Err(Error::InvalidConfig {
                    message: "RedisConfig::cluster was given no node; give the URL of at least \
                              one node of the cluster (redis://host:port)"
                        .into(),
                });
            }
            if let Some(bad) = [&self.namespace, &self.queue]
                .into_iter()
                .find(|name| name.contains('{') || name.contains('}'))
            {
                return Err(Error::InvalidConfig {
                    message: format!(
                        "the Redis queue or namespace name {bad:?} contains '{{' or '}}', which \
                         in cluster mode would break the queue's hash tag; choose a name \
                         without braces"
                    ),
                });
            }
            let secure =
                self.cluster_nodes.iter().filter(|url| url.starts_with("rediss://")).count();
            if secure != 0 && secure != self.cluster_nodes.len() {
                return Err(Error::InvalidConfig {
                    message: format!(
                        "the nodes of one Redis Cluster were given with both redis:// and \
                         rediss:// URLs ({}); a cluster serves TLS on every node or on none, so \
                         give every node the same scheme",
                        self.cluster_nodes
                            .iter()
                            .map(|url| without_password(url))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            #[cfg(not(feature = "redis-tls"))]
            if let Some(tls) = self.cluster_nodes.iter().find(|url| url.starts_with("rediss://")) {
                return Err(Error::InvalidConfig {
                    message: format!(
                        "the cluster node {} is a TLS (rediss://) URL, and TLS needs taskweave's \
                         `redis-tls` feature; enable it, or use redis:// node URLs",
                        without_password(tls)
                    ),
                });
            }
        }
        if self.queue.is_empty() || self.namespace.is_empty() {
            return Err(Error::InvalidConfig {
                message: format!(
                    "a Redis queue and namespace need non-empty names (got queue {:?}, \
                     namespace {:?}); set them with .queue(..) and .namespace(..)",
                    self.queue, self.namespace
                ),
            });
        }
        Ok(())
    }
}

/// `url` without its password (`redis://user@host:port/db`), for messages and logs.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
            if user.is_empty() {
                format!("{scheme}://{host}{path}")
            } else {
                format!("{scheme}://{user}@{host}{path}")
            }
        }
        None => url.to_owned(),
    }
}
