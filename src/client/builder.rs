//! [`ClientBuilder`]: how a client is configured.

use std::fmt;
use std::sync::Arc;

use super::Client;
use super::blocking::block_on_caller_thread;
use super::core::{Core, sink_for};
use crate::Error;
use crate::executor::Executor;
use crate::transport::{InProcessTransport, Transport};

/// Configures and starts a [`Client`].
///
/// # Examples
///
/// ```
/// # async fn run() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::builder()
///     .workers(4)
///     .build()
///     .await?;
/// println!("{client:?}");
/// # client.close().await }
/// # futures::executor::block_on(run()).unwrap();
/// ```
#[derive(Default)]
#[must_use = "a ClientBuilder does nothing until `build` or `build_blocking` is called"]
pub struct ClientBuilder {
    executor: Option<Arc<dyn Executor>>,
    workers: Option<usize>,
    transport: Option<Arc<dyn Transport>>,
    task_events: Option<usize>,
    #[cfg(feature = "redis")]
    coordination_redis: Option<crate::transport::redis::RedisConfig>,
    #[cfg(feature = "__planted")]
    planted: Option<crate::planted::PlantedBug>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("executor", &self.executor.as_ref().map(Executor::name))
            .field("workers", &self.workers)
            .field("transport", &self.transport)
            .field("task_events", &self.task_events)
            .finish()
    }
}

impl ClientBuilder {
    /// Keeps this client's coordination primitives — locks, semaphores, events, queues,
    /// variables and topics — in the Redis server `config` names, whatever the transport
    /// runs the tasks. With the default in-process transport, this is how several processes
    /// that each compute in-process (say, the replicas of a web service) share one rate
    /// limit, one lock or one queue by name. Clients on the Redis transport keep them there
    /// already; this setting chooses another server or namespace for them.
    ///
    /// Published datasets stay in-process only, and a queue or variable holds serde values
    /// only (a `TaskFuture` cannot cross processes): those calls answer
    /// [`Error::Coordination`], as on the Redis transport. The namespace of `config` scopes
    /// the names; its queue is not used.
    ///
    /// # Errors
    ///
    /// The build fails with [`Error::InvalidConfig`] when `config` is unusable (an empty
    /// namespace, a URL that is not `redis://` or `rediss://`). Redis is first reached at
    /// the first coordination call, which fails with [`Error::Transport`] if it cannot be.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// use taskweave::transport::redis::RedisConfig;
    ///
    /// // Every replica of the service builds its client so: tasks run in this process, and
    /// // at most 8 of them across all replicas call the payment provider at once.
    /// let client = taskweave::Client::builder()
    ///     .coordination_redis(RedisConfig::new("redis://127.0.0.1:6379").namespace("shop"))
    ///     .build()
    ///     .await?;
    /// let provider = client.semaphore("payment-provider", 8)?;
    /// let _lease = provider.acquire().await?;
    /// # client.close().await }
    /// ```
    #[cfg(feature = "redis")]
    pub fn coordination_redis(mut self, config: crate::transport::redis::RedisConfig) -> Self {
        self.coordination_redis = Some(config);
        self
    }

    /// Runs the client on `executor` instead of the ambient one.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::Executor;
    /// use taskweave::runtimes::embedded::EmbeddedExecutor;
    ///
    /// let client = taskweave::Client::builder()
    ///     .executor(EmbeddedExecutor::global())
    ///     .workers(1)
    ///     .build_blocking()?;
    /// assert_eq!(client.executor().name(), "embedded");
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn executor(mut self, executor: impl Executor) -> Self {
        self.executor = Some(Arc::new(executor));
        self
    }

    /// Runs the client on an executor that is already shared.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskweave::{Client, Executor};
    /// use taskweave::runtimes::embedded::EmbeddedExecutor;
    ///
    /// // Two clients on one executor.
    /// let executor: Arc<dyn Executor> = Arc::new(EmbeddedExecutor::global());
    /// let first = Client::builder().shared_executor(Arc::clone(&executor)).workers(1).build_blocking()?;
    /// let second = Client::builder().shared_executor(Arc::clone(&executor)).workers(1).build_blocking()?;
    /// assert!(Arc::ptr_eq(first.executor(), second.executor()));
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn shared_executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.executor = Some(executor);
        self
    }

    /// How many in-process workers to run (default: one per core). Must be at least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::{Client, Error};
    ///
    /// let client = Client::builder().workers(3).build_blocking()?;
    /// assert_eq!(client.stats().workers.len(), 3);
    /// // Zero is refused when the client is built.
    /// let refused = Client::builder().workers(0).build_blocking();
    /// assert!(matches!(refused, Err(Error::InvalidConfig { .. })));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Uses `transport` instead of the default in-process cluster.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::transport::InProcessTransport;
    ///
    /// let client = taskweave::Client::builder()
    ///     .transport(InProcessTransport::new(2))
    ///     .build_blocking()?;
    /// assert_eq!(client.stats().transport, "in-process");
    /// assert_eq!(client.stats().workers.len(), 2);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// See [`Transport`] for a transport of your own.
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// How many task events the client keeps (default
    /// [`DEFAULT_TASK_EVENTS`](crate::events::DEFAULT_TASK_EVENTS)); `0` switches recording off
    /// (nothing is recorded, no clock is read for it).
    ///
    /// Each entry takes [`TASK_EVENT_BYTES`](crate::events::TASK_EVENT_BYTES) bytes (plus a
    /// failure's error); a task makes one per run (or one when it fails or is cancelled
    /// without running). Once the ring is full, each new
    /// entry drops the oldest. See [`events`](crate::events) for what is recorded and what it
    /// costs.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().task_events(1_000).build_blocking()?;
    /// assert_eq!(client.task_event_counts().capacity, 1_000);
    /// # Ok(()) }
    /// ```
    pub fn task_events(mut self, capacity: usize) -> Self {
        self.task_events = Some(capacity);
        self
    }

    /// Starts the client.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(2).build().await?;
    /// assert_eq!(client.submit(|x: i32| x * 2, 21).await?, 42);
    /// client.close().await
    /// # }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for unusable settings (such as zero workers), or the error of
    /// a transport that cannot start.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it resolves starts nothing.
    pub async fn build(self) -> Result<Client, Error> {
        self.build_now()
    }

    /// Starts the client from blocking code.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::Client;
    ///
    /// let client = Client::builder().workers(1).build_blocking()?;
    /// assert_eq!(client.submit(|x: i32| x + 1, 1).result()?, 2);
    /// // Where async work runs (here, a task body on a worker), it is refused: use `build().await`.
    /// let nested = client.submit(|_: ()| Client::builder().build_blocking().is_err(), ());
    /// assert!(nested.result()?);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`build`](ClientBuilder::build), and [`Error::BlockingInAsyncContext`] inside async
    /// code (use `build().await` there).
    pub fn build_blocking(self) -> Result<Client, Error> {
        block_on_caller_thread(self.build())?
    }

    /// Plants `bug` in the client's scheduler and default in-process workers (internal: for
    /// the simulation's planted-bug tests; feature `__planted`).
    #[cfg(feature = "__planted")]
    #[doc(hidden)]
    pub fn planted(mut self, bug: crate::planted::PlantedBug) -> Self {
        self.planted = Some(bug);
        self
    }

    /// Starts the client without waiting for anything (the in-process transport starts at
    /// once).
    pub(crate) fn build_now(self) -> Result<Client, Error> {
        #[cfg(feature = "redis")]
        let coordination = self.coordination_redis.clone();
        let core = self.start_core()?;
        let client = Client::from_core(core);
        #[cfg(feature = "redis")]
        if let Some(config) = coordination {
            client.keep_coordination_in_redis(config);
        }
        Ok(client)
    }

    /// Starts a cluster: [`build_cluster`](ClientBuilder::build_cluster)'s work.
    pub(crate) fn build_cluster_now(self) -> Result<super::ClusterHandle, Error> {
        #[cfg(feature = "redis")]
        if self.coordination_redis.is_some() {
            return Err(Error::InvalidConfig {
                message: "coordination_redis: the clients of a ClusterHandle do not share \
                          coordination primitives yet; build the cluster without \
                          coordination_redis"
                    .into(),
            });
        }
        if self.transport.as_ref().is_some_and(|transport| transport.name() == "redis") {
            return Err(Error::InvalidConfig {
                message: "build_cluster: a ClusterHandle shares one in-process scheduler between \
                          its clients, and the Redis transport does not share keyed results \
                          between clients yet; build the cluster with the in-process workers, \
                          or build one client per process with build()"
                    .into(),
            });
        }
        Ok(super::ClusterHandle::start(self.start_core()?))
    }

    /// Checks the configuration, makes the core and starts its transport.
    fn start_core(self) -> Result<Arc<Core>, Error> {
        if self.workers == Some(0) {
            return Err(Error::InvalidConfig {
                message: "workers(0): a client needs at least one worker; use workers(1) or more"
                    .into(),
            });
        }
        if self.workers.is_some() && self.transport.is_some() {
            return Err(Error::InvalidConfig {
                message: "workers(..) configures the default in-process transport; with an \
                          explicit transport, configure the workers on the transport instead"
                    .into(),
            });
        }
        crate::executor::install_ambient_runtime_probe(crate::runtimes::in_ambient_runtime);
        let executor = match self.executor {
            Some(executor) => executor,
            None => crate::runtimes::ambient_executor(),
        };
        let transport = match self.transport {
            Some(transport) => transport,
            None => {
                let workers = self.workers.unwrap_or_else(default_worker_count);
                let transport = InProcessTransport::new(workers);
                #[cfg(feature = "__planted")]
                let transport = match self.planted {
                    Some(bug) => transport.planted(bug),
                    None => transport,
                };
                Arc::new(transport)
            }
        };
        #[cfg(feature = "redis")]
        if let Some(config) = &self.coordination_redis {
            config.check()?;
            if let Err(error) = redis::IntoConnectionInfo::into_connection_info(config.url()) {
                return Err(Error::InvalidConfig {
                    message: format!(
                        "coordination_redis: {:?} is not a Redis URL ({error}); use \
                         redis://host:port or rediss://host:port",
                        config.url_without_password()
                    ),
                });
            }
        }
        let events = self.task_events.unwrap_or(crate::events::DEFAULT_TASK_EVENTS);
        let core = Arc::new(Core::new(Arc::clone(&transport), Arc::clone(&executor), events));
        #[cfg(feature = "__planted")]
        if let Some(bug) = self.planted {
            core.plant(bug);
        }
        transport.start(executor, sink_for(&core))?;
        tracing::debug!(
            executor = core.executor.name(),
            transport = transport.name(),
            "client started"
        );
        Ok(core)
    }
}

/// One worker per core the process may use.
fn default_worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
