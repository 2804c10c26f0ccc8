//! [`SimRedis`]: the Redis transport and workers on an in-memory model of Redis, inside the
//! deterministic simulation (features `redis` and `sim`).
//!
//! `memory_store.rs` holds the model (`Model`, and `MemoryStore`, its implementation of the
//! transport's `Store` seam). [`internals`] hands the crate-private seam to the tests that
//! check the model against a real `redis-server` and fuzz the decoders
//! (`tests/model_vs_redis.rs`, `tests/decode_fuzz.rs`); it is not an API.

// Crate-private; `pub` items only for `internals` (see `transport::redis`'s `store`).
#[allow(unreachable_pub, missing_docs)]
mod memory_store;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use self::memory_store::{MemoryStore, Model, ModelFaults, ModelLinks};
use crate::Error;
use crate::runtimes::sim::SimExecutor;
use crate::transport::redis::protocol::Keys;
use crate::transport::redis::{RedisTransport, RedisTransportBuilder};
use crate::worker::{Worker, WorkerBuilder};

/// An in-memory Redis server for a [`SimExecutor`]: clients and workers connect to it instead
/// of a real server, and the real claim, acknowledge and dead-letter logic runs against a
/// model of the stream commands, in virtual time, with seeded faults.
///
/// # Examples
///
/// ```
/// use taskweave::runtimes::sim::{SimConfig, SimExecutor};
/// use taskweave::sim::redis::SimRedis;
/// use taskweave::transport::redis::RedisTransport;
/// use taskweave::{Client, Task, worker::Worker};
///
/// struct Double;
/// impl Task for Double {
///     const NAME: &'static str = "double";
///     type Input = i64;
///     type Output = i64;
///     type Error = std::convert::Infallible;
///     fn run(x: i64) -> Result<i64, Self::Error> {
///         Ok(x * 2)
///     }
/// }
///
/// let sim = SimExecutor::new(SimConfig::new(1));
/// let redis = SimRedis::new(&sim);
/// let value = sim.block_on(async {
///     let builder = Worker::builder().executor(sim.clone()).concurrency(1).register::<Double>();
///     let worker = redis.start_worker(builder).await?;
///     let transport = redis.connect(RedisTransport::builder("redis://sim")).await?;
///     let client = Client::builder().executor(sim.clone()).transport(transport).build().await?;
///     let value = client.submit_task::<Double>(21).await?;
///     client.close().await?;
///     worker.shutdown();
///     worker.stopped().await;
///     Ok::<i64, taskweave::Error>(value)
/// })??;
/// assert_eq!(value, 42);
/// sim.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SimRedis {
    model: Arc<Model>,
}

impl fmt::Debug for SimRedis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimRedis").field("model", &self.model).finish()
    }
}

impl SimRedis {
    /// An empty server whose time and faults come from `executor`.
    pub fn new(executor: &SimExecutor) -> SimRedis {
        SimRedis { model: Arc::new(Model::new(executor.clone())) }
    }

    /// An empty server with `bug` planted in it and in the transports that connect to it
    /// (internal: for the simulation's planted-bug tests).
    #[cfg(feature = "__planted")]
    #[doc(hidden)]
    pub fn with_planted(executor: &SimExecutor, bug: crate::planted::PlantedBug) -> SimRedis {
        let mut model = Model::new(executor.clone());
        model.planted = Some(bug);
        SimRedis { model: Arc::new(model) }
    }

    /// Injects faults into every command, drawn from the seed's `redis` stream: it fails
    /// before running with probability `fail_before`, runs but loses its reply (an unknown
    /// result) with probability `fail_after`, and is delayed by up to `max_delay`.
    pub fn set_faults(&self, fail_before: f64, fail_after: f64, max_delay: Duration) {
        let faults = self.model.faults();
        self.model.set_faults(ModelFaults { fail_before, fail_after, max_delay, ..faults });
    }

    /// Injects faults into message delivery, drawn from the seed's `redis` stream: a read of
    /// a client's reply stream returns its completions shuffled with probability `reorder`,
    /// each completion read is returned twice with probability `duplicate` (a notification
    /// delivered more than once), and a worker's read of new entries also returns an entry
    /// it already holds with probability `redeliver` (its delivery count raised, as a
    /// consumer re-reading its pending entries after a reconnect gets it).
    pub fn set_delivery_faults(&self, reorder: f64, duplicate: f64, redeliver: f64) {
        let faults = self.model.faults();
        self.model.set_faults(ModelFaults {
            reorder_replies: reorder,
            duplicate_replies: duplicate,
            duplicate_deliveries: redeliver,
            ..faults
        });
    }

    /// How many completions were published beyond one per enqueued copy of their task entry:
    /// a second accepted outcome for one entry (a slow worker's result accepted after the
    /// entry was reclaimed, say). Always 0 unless Redis lost writes in a restart.
    pub fn surplus_completions(&self) -> usize {
        self.model.surplus_replies()
    }

    /// How many times an entry was delivered to the worker that already held it: by the
    /// redelivery fault (see [`set_delivery_faults`](SimRedis::set_delivery_faults)), or
    /// claimed by that worker itself after it had not touched it within the reclaim time
    /// (a worker paused between taking an entry and running it).
    pub fn repeat_deliveries(&self) -> usize {
        self.model.repeat_deliveries()
    }

    /// Connects a client transport configured by `builder` (its URL is ignored). Its
    /// clients' coordination primitives (`Client::lock` and the others) live in this model
    /// too, under the builder's namespace: the real Redis coordination backend runs against
    /// the model of its scripts.
    ///
    /// # Errors
    ///
    /// As [`RedisTransportBuilder::connect`], including injected faults.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing behind but a consumer group and a number taken.
    pub async fn connect(&self, builder: RedisTransportBuilder) -> Result<RedisTransport, Error> {
        let keys = builder.keys();
        let config = RedisTransport::config_of(&builder);
        let store = Arc::new(MemoryStore::new(Arc::clone(&self.model), keys.clone()));
        let transport = builder.connect_store(store, keys).await?;
        // Its clients' coordination primitives live in the model too.
        transport.keep_coordination_on(config, Arc::new(ModelLinks::new(Arc::clone(&self.model))));
        Ok(transport)
    }

    /// Starts a worker configured by `builder` (its URL, if any, is ignored). Its loops run
    /// on the executor given to the builder: start it inside
    /// [`SimExecutor::spawn_node`] to be able to crash it.
    ///
    /// # Errors
    ///
    /// As [`WorkerBuilder::start`], including injected faults.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it resolves starts nothing.
    pub async fn start_worker(&self, builder: WorkerBuilder) -> Result<Worker, Error> {
        let keys = builder.keys();
        let store = Arc::new(MemoryStore::new(Arc::clone(&self.model), keys.clone()));
        builder.start_on(store, keys).await
    }

    /// How many entries the stream of `queue` (in `namespace`) holds, and how many of them
    /// are pending (delivered, not acknowledged).
    pub fn queue_counts(&self, namespace: &str, queue: &str) -> (usize, usize) {
        self.model.stream_counts(&Keys::new(namespace, queue).tasks())
    }

    /// The ids of the entries of `queue`'s stream pending with the consumer (worker)
    /// `consumer`.
    pub fn pending_of(&self, namespace: &str, queue: &str, consumer: &str) -> Vec<String> {
        self.model.pending_of(&Keys::new(namespace, queue).tasks(), consumer)
    }

    /// How many entries the dead-letter stream of `queue` holds.
    pub fn dead_letters(&self, namespace: &str, queue: &str) -> usize {
        self.model.stream_counts(&Keys::new(namespace, queue).dead()).0
    }

    /// How many results of `namespace` are stored and not expired.
    pub fn stored_results(&self, namespace: &str) -> usize {
        self.model.live_strings(&Keys::new(namespace, "").result_prefix())
    }

    /// How many task entries were added for a delivery id that had one already. A client
    /// resends a batch when it did not get the reply to the first enqueue (an unknown
    /// result); the enqueue is idempotent per delivery, so this stays 0 unless that breaks.
    pub fn duplicate_enqueues(&self) -> usize {
        self.model.duplicate_enqueues()
    }

    /// How many deliveries a client's reconciliation pass found missing: their entry neither
    /// in the stream, nor pending with a worker, nor reported. Only a trim, a restart that
    /// lost writes, or a defect (a result lost after its entry was acknowledged) does that.
    pub fn missing_located(&self) -> usize {
        self.model.missing_located()
    }

    /// How many commands the server has run: a clock that orders events in the server (see
    /// [`cancel_removed`](SimRedis::cancel_removed)).
    pub fn commands(&self) -> u64 {
        self.model.commands()
    }

    /// How many calls of one store operation the server has run: `"complete"` counts the
    /// calls that write workers' outcomes (with or without starts), `"begin"` those that
    /// record starts (a call that does both counts once under each).
    pub fn commands_of(&self, operation: &str) -> u64 {
        self.model.commands_of(operation)
    }

    /// The task keys of entries a cancel removed that no delivery had begun, each with the
    /// [`commands`](SimRedis::commands) count of the removal: no worker can begin that entry
    /// after it. A restart that loses the cancel forgets it.
    pub fn cancel_removed(&self) -> std::collections::BTreeMap<String, u64> {
        self.model.cancel_removed()
    }

    /// Restarts the server, losing the effects of its last `lose_last` commands (at most 8),
    /// as a server whose append-only file had not been synced does; returns how many were
    /// lost. Blocked readers wake up and read again.
    pub fn restart(&self, lose_last: usize) -> usize {
        self.model.restart(lose_last)
    }

    /// Appends an entry with these fields to the stream of `queue`, as a client with bad
    /// manners would.
    pub fn append_raw(&self, namespace: &str, queue: &str, fields: Vec<(Vec<u8>, Vec<u8>)>) {
        self.model.append_raw(&Keys::new(namespace, queue).tasks(), fields);
    }

    /// Deletes every entry of the stream of `queue`, pending ones included (`XTRIM MAXLEN
    /// 0`); returns how many went.
    pub fn trim_queue(&self, namespace: &str, queue: &str) -> usize {
        self.model.trim(&Keys::new(namespace, queue).tasks())
    }
}

/// The Redis transport's crate-private store seam, for taskweave's own tests only
/// (`tests/model_vs_redis.rs` runs the same operations on the model and on a real
/// `redis-server`; `tests/decode_fuzz.rs` fuzzes every decoder of what crosses Redis). Not an
/// API: hidden, only with feature `sim`, and free to change in any release.
#[doc(hidden)]
pub mod internals {
    pub use super::memory_store::{MemoryStore, Model, ModelLinks};
    pub use crate::transport::redis::coordination_seam::{
        Connector, Link, Op, RedisLinks, Script, TopicMessage, arg,
    };
    pub use crate::transport::redis::protocol::{
        GROUP, Keys, Notify, Reply, Status, TaskEntry, pack_fields, unpack_fields,
    };
    pub use crate::transport::redis::redis_store::{
        ConnectOptions, RedisStore, begin_reply, claim_reply, count_reply, ownership_of,
        read_reply, values_reply,
    };
    pub use crate::transport::redis::store::{
        Cancelled, Completion, DeadLetter, Dispatched, Fields, Located, Ownership, Store,
        StoreResult, StreamEntry,
    };

    /// A dependent task's input composed from its dependencies' stored outputs, as a worker
    /// composes it (for fuzzing).
    pub fn dependency_input<T: crate::Task>(outputs: &[Vec<u8>]) -> Result<T::Input, String> {
        crate::task::dependency_input::<T>(outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::SimRedis;
    use crate::runtimes::sim::{SimConfig, SimExecutor};
    use crate::transport::redis::RedisTransport;
    use crate::worker::Worker;
    use crate::{Client, Task};

    struct Inc;

    impl Task for Inc {
        const NAME: &'static str = "inc";
        type Input = u64;
        type Output = u64;
        type Error = std::convert::Infallible;
        fn run(input: u64) -> Result<u64, Self::Error> {
            Ok(input + 1)
        }
    }

    /// Runners of a worker that finish trivial tasks at about the same time write their
    /// outcomes (and the starts of their next entries) in one call, not one call for the
    /// first to finish and another for the rest (issue 19: script calls per task). 400
    /// trivial tasks on one worker with 4 runners: 100 write calls would be the fewest.
    #[test]
    fn runners_of_trivial_tasks_write_together() {
        const TASKS: u64 = 400;
        let sim = SimExecutor::new(SimConfig::new(7));
        let redis = SimRedis::new(&sim);
        let per_task = sim
            .block_on(async {
                let builder =
                    Worker::builder().executor(sim.clone()).concurrency(4).register::<Inc>();
                let worker = redis.start_worker(builder).await?;
                let transport = redis.connect(RedisTransport::builder("redis://sim")).await?;
                let client =
                    Client::builder().executor(sim.clone()).transport(transport).build().await?;
                // Warm up: the worker measures the tasks' run time.
                let warm = client.map_task::<Inc>(0..50);
                client.gather(&warm).await?;
                let before = redis.commands_of("complete");
                let futures = client.map_task::<Inc>(0..TASKS);
                let values = client.gather(&futures).await?;
                let per_task = (redis.commands_of("complete") - before) as f64 / TASKS as f64;
                assert_eq!(values, (1..=TASKS).collect::<Vec<_>>());
                client.close().await?;
                worker.shutdown();
                worker.stopped().await;
                Ok::<f64, crate::Error>(per_task)
            })
            .expect("the simulation ends")
            .expect("the tasks run");
        sim.shutdown();
        eprintln!("write calls per task: {per_task:.3}");
        // 0.42 when the first runner back wrote at once (the others in a second call).
        assert!(per_task < 0.33, "{per_task:.3} write calls per task, not about one per 4");
    }

    /// The server of [`a_worker_with_every_slot_held_stops_once_redis_stays_away`], which
    /// its task's body takes out of reach.
    static GOING_AWAY: parking_lot::Mutex<Option<SimRedis>> = parking_lot::Mutex::new(None);

    /// A task whose run makes every command of [`GOING_AWAY`] fail from then on.
    struct RedisGoesAway;

    impl Task for RedisGoesAway {
        const NAME: &'static str = "redis-goes-away";
        type Input = u64;
        type Output = u64;
        type Error = std::convert::Infallible;
        fn run(input: u64) -> Result<u64, Self::Error> {
            if let Some(redis) = GOING_AWAY.lock().as_ref() {
                redis.set_faults(1.0, 0.0, std::time::Duration::ZERO);
            }
            Ok(input)
        }
    }

    /// A worker whose one slot is held while Redis is out of reach (its runner retries
    /// writing the result for the reclaim time, at least 30 s) stops with the error once
    /// Redis has stayed away for its broker timeout. Before the heartbeat measured the
    /// broker timeout too, only the reader did, and it reads nothing while every slot is
    /// held: the worker stopped only after the runner gave up, over 30 s in.
    #[test]
    fn a_worker_with_every_slot_held_stops_once_redis_stays_away() {
        use std::time::Duration;

        use crate::ExecutorExt;

        let sim = SimExecutor::new(SimConfig::new(11));
        let redis = SimRedis::new(&sim);
        *GOING_AWAY.lock() = Some(redis.clone());
        let outcome = sim
            .block_on(async {
                let builder = Worker::builder()
                    .executor(sim.clone())
                    .concurrency(1)
                    // No entry taken ahead: the reader waits for the one slot.
                    .prefetch(0)
                    .reclaim_after(Duration::from_millis(300))
                    .broker_timeout(Duration::from_secs(1))
                    .register::<RedisGoesAway>();
                let worker = redis.start_worker(builder).await?;
                let transport = redis.connect(RedisTransport::builder("redis://sim")).await?;
                let client =
                    Client::builder().executor(sim.clone()).transport(transport).build().await?;
                let task = client.submit_task::<RedisGoesAway>(1);
                let stopped = sim.timeout(Duration::from_secs(20), worker.stopped()).await;
                let error = worker.error();
                redis.set_faults(0.0, 0.0, Duration::ZERO);
                drop(task);
                client.close().await?;
                Ok::<_, crate::Error>((stopped.is_ok(), error))
            })
            .expect("the simulation ends")
            .expect("the client and the worker start");
        sim.shutdown();
        *GOING_AWAY.lock() = None;
        let (stopped, error) = outcome;
        assert!(stopped, "the worker did not stop within 20 s of virtual time");
        assert!(matches!(error, Some(crate::Error::Transport(_))), "{error:?}");
    }
}
