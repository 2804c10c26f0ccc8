//! The cost of the in-process coordination primitives, next to the plain async primitives
//! doing the same work.
//!
//! ```sh
//! cargo bench --bench coordination             # about 20 seconds
//! cargo bench --bench coordination -- --quick  # a few seconds
//! ```
//!
//! Workloads, each on the embedded executor, tokio (multi-thread) and smol, with a client of
//! 2 in-process workers:
//!
//! - `lock acquire/release`: one caller takes and drops an uncontended `client.lock(..)`
//!   guard; the time per pair. Raw: `futures::lock::Mutex` lock + unlock.
//! - `lock contended`: 4 async tasks share one lock, each taking it in turn with a yield
//!   inside; the time per acquire/release pair (wake-ups included). Raw: the same on a
//!   `futures::lock::Mutex`.
//! - `queue put+get`: one caller puts and gets one item of a `client.queue::<u64>(..)`; the
//!   time per pair. Raw: `async_channel::unbounded` send + recv.
//! - `queue round trip p50`: an async task echoes items from one queue into another; the
//!   caller's put-to-get time, median. Raw: the same with two `async_channel`s.
//! - `actor call p50`: one caller awaits one `actor.call(..)` at a time (a counter
//!   incremented by each call); the call-to-value time, median. Raw: a thread that owns the
//!   counter and answers requests from a `flume` channel through oneshot replies.
//!
//! With the `redis` feature, the same primitives on the Redis transport against a real
//! `redis-server` (started on a free loopback port; embedded executor), next to plain
//! redis-rs commands doing the same work:
//!
//! - `redis lock acquire/release`: one caller takes and releases an uncontended lock (two
//!   scripts). Raw: `SET key NX PX` + `DEL`, a hand-rolled lock without lease checks.
//! - `redis queue put+get`: one caller puts and gets one item (two scripts). Raw: `RPUSH` +
//!   `LPOP`.
//! - `redis queue round trip p50`: a task of a second client echoes items from one queue
//!   into another; the caller's put-to-get time, median (wake-ups through pub/sub). Raw: the
//!   same with `RPUSH` and `BLPOP` on dedicated connections.
//!
//! - `redis actor call p50`: one caller awaits one call at a time of a
//!   `client.remote_actor(..)` hosted by a worker in this process (the call and its reply
//!   each cross a queue); median. Raw: the `RPUSH`/`BLPOP` echo of `redis queue rt p50`.
//!
//! ```sh
//! cargo bench --bench coordination --features redis -- --quick --redis-only
//! ```
//!
//! `-- --only=actor` runs only the workloads whose name contains `actor` (in-process; the
//! Redis rows still need `--features redis`).
//!
//! Each figure is the median of several repetitions. See `BENCHMARKS.md` for the latest run.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use taskweave::Client;
// As `benches/overhead.rs` does: mount the runtime adapters' own sources, so that a plain
// `cargo bench` (no features) covers tokio and smol too.
use taskweave::{Error, executor};

#[allow(dead_code, unreachable_pub)]
#[path = "../runtimes/smol.rs"]
mod smol_adapter;
#[allow(dead_code, unreachable_pub)]
#[path = "../runtimes/tokio.rs"]
mod tokio_adapter;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

#[derive(Debug, Clone, Copy)]
enum Flavour {
    Embedded,
    TokioMultiThread,
    Smol,
}

impl Flavour {
    const ALL: [Flavour; 3] = [Flavour::Embedded, Flavour::TokioMultiThread, Flavour::Smol];

    fn name(self) -> &'static str {
        match self {
            Flavour::Embedded => "embedded",
            Flavour::TokioMultiThread => "tokio-mt",
            Flavour::Smol => "smol",
        }
    }

    fn block_on<T: Send + 'static>(self, future: BoxFuture<T>) -> T {
        match self {
            Flavour::Embedded => futures::executor::block_on(future),
            Flavour::TokioMultiThread => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("start a tokio runtime")
                .block_on(future),
            Flavour::Smol => smol::block_on(future),
        }
    }

    async fn client(self) -> Client {
        let builder = Client::builder().workers(2);
        let builder = match self {
            Flavour::Embedded => {
                builder.executor(taskweave::runtimes::embedded::EmbeddedExecutor::global())
            }
            Flavour::TokioMultiThread => builder
                .executor(tokio_adapter::TokioExecutor::current().expect("inside a tokio runtime")),
            Flavour::Smol => builder.executor(smol_adapter::SmolExecutor::global()),
        };
        builder.build().await.expect("build a client")
    }
}

async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

fn per_op(elapsed: Duration, n: usize) -> f64 {
    elapsed.as_secs_f64() * 1e9 / n as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

// ---------------------------------------------------------------------------------------------
// Workloads: each returns nanoseconds per operation (or the median latency).

async fn lock_uncontended(client: &Client, n: usize) -> f64 {
    let lock = client.lock("bench");
    let started = Instant::now();
    for _ in 0..n {
        let guard = lock.acquire().await.unwrap();
        drop(guard);
    }
    per_op(started.elapsed(), n)
}

async fn raw_lock_uncontended(n: usize) -> f64 {
    let lock = futures::lock::Mutex::new(0_u64);
    let started = Instant::now();
    for _ in 0..n {
        *lock.lock().await += 1;
    }
    per_op(started.elapsed(), n)
}

const CONTENDERS: usize = 4;

async fn lock_contended(client: &Client, n: usize) -> f64 {
    let lock = client.lock("contended");
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONTENDERS)
        .map(|_| {
            let lock = lock.clone();
            client.submit_async(
                move |rounds: usize| {
                    let lock = lock.clone();
                    async move {
                        for _ in 0..rounds {
                            let _guard = lock.acquire().await.unwrap();
                            yield_now().await;
                        }
                    }
                },
                n / CONTENDERS,
            )
        })
        .collect();
    client.gather(&tasks).await.unwrap();
    per_op(started.elapsed(), n)
}

async fn raw_lock_contended(client: &Client, n: usize) -> f64 {
    let lock = Arc::new(futures::lock::Mutex::new(()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONTENDERS)
        .map(|_| {
            let lock = Arc::clone(&lock);
            // Spawned through the client only to run on the same executor; the work is the
            // raw mutex's.
            client.submit_async(
                move |rounds: usize| {
                    let lock = Arc::clone(&lock);
                    async move {
                        for _ in 0..rounds {
                            let _guard = lock.lock().await;
                            yield_now().await;
                        }
                    }
                },
                n / CONTENDERS,
            )
        })
        .collect();
    client.gather(&tasks).await.unwrap();
    per_op(started.elapsed(), n)
}

async fn queue_put_get(client: &Client, n: usize) -> f64 {
    let queue = client.queue::<u64>("bench");
    let started = Instant::now();
    for i in 0..n as u64 {
        queue.put(i).await.unwrap();
        assert_eq!(queue.get().await.unwrap(), i);
    }
    per_op(started.elapsed(), n)
}

async fn raw_queue_put_get(n: usize) -> f64 {
    let (sender, receiver) = async_channel::unbounded::<u64>();
    let started = Instant::now();
    for i in 0..n as u64 {
        sender.send(i).await.unwrap();
        assert_eq!(receiver.recv().await.unwrap(), i);
    }
    per_op(started.elapsed(), n)
}

async fn queue_round_trip(client: &Client, n: usize) -> f64 {
    let (ping, pong) = (client.queue::<u64>("ping"), client.queue::<u64>("pong"));
    let echo = {
        let (ping, pong) = (ping.clone(), pong.clone());
        client.submit_async(
            move |n: usize| {
                let (ping, pong) = (ping.clone(), pong.clone());
                async move {
                    for _ in 0..n {
                        let item = ping.get().await.unwrap();
                        pong.put(item).await.unwrap();
                    }
                }
            },
            n,
        )
    };
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let started = Instant::now();
        ping.put(i).await.unwrap();
        assert_eq!(pong.get().await.unwrap(), i);
        samples.push(started.elapsed().as_secs_f64() * 1e9);
    }
    echo.await.unwrap();
    median(samples)
}

async fn raw_queue_round_trip(client: &Client, n: usize) -> f64 {
    let (ping_sender, ping) = async_channel::unbounded::<u64>();
    let (pong_sender, pong) = async_channel::unbounded::<u64>();
    let echo = client.submit_async(
        move |n: usize| {
            let (ping, pong_sender) = (ping.clone(), pong_sender.clone());
            async move {
                for _ in 0..n {
                    let item = ping.recv().await.unwrap();
                    pong_sender.send(item).await.unwrap();
                }
            }
        },
        n,
    );
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let started = Instant::now();
        ping_sender.send(i).await.unwrap();
        assert_eq!(pong.recv().await.unwrap(), i);
        samples.push(started.elapsed().as_secs_f64() * 1e9);
    }
    echo.await.unwrap();
    median(samples)
}

async fn actor_round_trip(client: &Client, n: usize) -> f64 {
    let actor = client.actor(|| 0_u64).expect("place an actor");
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let started = Instant::now();
        let value = actor
            .call(|count| {
                *count += 1;
                *count
            })
            .await
            .unwrap();
        samples.push(started.elapsed().as_secs_f64() * 1e9);
        assert_eq!(value, i + 1);
    }
    median(samples)
}

/// A thread that owns the state and answers requests from a channel, each with a oneshot:
/// an actor by hand.
async fn raw_actor_round_trip(n: usize) -> f64 {
    type Request = futures::channel::oneshot::Sender<u64>;
    let (requests, inbox) = flume::unbounded::<Request>();
    let owner = std::thread::spawn(move || {
        let mut count = 0_u64;
        while let Ok(reply) = inbox.recv() {
            count += 1;
            let _ = reply.send(count);
        }
    });
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let started = Instant::now();
        let (reply, answer) = futures::channel::oneshot::channel();
        requests.send(reply).unwrap();
        let value = answer.await.unwrap();
        samples.push(started.elapsed().as_secs_f64() * 1e9);
        assert_eq!(value, i + 1);
    }
    drop(requests);
    owner.join().unwrap();
    median(samples)
}

// ---------------------------------------------------------------------------------------------

struct Row {
    workload: &'static str,
    executor: &'static str,
    n: usize,
    taskweave_ns: f64,
    raw_ns: f64,
}

/// Whether the workload is among those asked for (`--only=<part of its name>`; all by default).
fn wanted(workload: &str) -> bool {
    std::env::args()
        .find_map(|argument| argument.strip_prefix("--only=").map(str::to_owned))
        .is_none_or(|only| workload.contains(&only))
}

fn run(flavour: Flavour, n: usize, repeats: usize) -> Vec<Row> {
    flavour.block_on(Box::pin(async move {
        let client = flavour.client().await;
        let mut rows = Vec::new();
        let mut measure = |workload, n, taskweave: Vec<f64>, raw: Vec<f64>| {
            rows.push(Row {
                workload,
                executor: flavour.name(),
                n,
                taskweave_ns: median(taskweave),
                raw_ns: median(raw),
            })
        };
        if wanted("lock acquire/release") {
            let (mut tw, mut raw) = (Vec::new(), Vec::new());
            for _ in 0..repeats {
                tw.push(lock_uncontended(&client, n).await);
                raw.push(raw_lock_uncontended(n).await);
            }
            measure("lock acquire/release", n, tw, raw);
        }
        if wanted("lock contended (4)") {
            let (mut tw, mut raw) = (Vec::new(), Vec::new());
            for _ in 0..repeats {
                tw.push(lock_contended(&client, n / 10).await);
                raw.push(raw_lock_contended(&client, n / 10).await);
            }
            measure("lock contended (4)", n / 10, tw, raw);
        }
        if wanted("queue put+get") {
            let (mut tw, mut raw) = (Vec::new(), Vec::new());
            for _ in 0..repeats {
                tw.push(queue_put_get(&client, n).await);
                raw.push(raw_queue_put_get(n).await);
            }
            measure("queue put+get", n, tw, raw);
        }
        if wanted("queue round trip p50") {
            let (mut tw, mut raw) = (Vec::new(), Vec::new());
            for _ in 0..repeats {
                tw.push(queue_round_trip(&client, n / 10).await);
                raw.push(raw_queue_round_trip(&client, n / 10).await);
            }
            measure("queue round trip p50", n / 10, tw, raw);
        }
        if wanted("actor call p50") {
            let (mut tw, mut raw) = (Vec::new(), Vec::new());
            for _ in 0..repeats {
                tw.push(actor_round_trip(&client, n / 10).await);
                raw.push(raw_actor_round_trip(n / 10).await);
            }
            measure("actor call p50", n / 10, tw, raw);
        }
        client.close().await.expect("close the client");
        rows
    }))
}

fn main() {
    let quick = std::env::args().any(|argument| argument == "--quick");
    let redis_only = std::env::args().any(|argument| argument == "--redis-only");
    let (n, repeats) = if quick { (10_000, 3) } else { (100_000, 5) };
    let started = Instant::now();
    let mut rows = Vec::new();
    if !redis_only {
        for flavour in Flavour::ALL {
            eprintln!("coordination: {} ...", flavour.name());
            rows.extend(run(flavour, n, repeats));
        }
    }
    #[cfg(feature = "redis")]
    {
        eprintln!("coordination: redis ...");
        rows.extend(on_redis::run(n / 20, repeats));
    }
    #[cfg(not(feature = "redis"))]
    eprintln!("coordination: no redis rows (build with --features redis)");
    println!();
    println!(
        "{:<24} {:<10} {:>8} {:>14} {:>12} {:>10}",
        "workload", "executor", "n", "taskweave ns", "raw ns", "vs raw"
    );
    println!("{}", "-".repeat(83));
    for row in &rows {
        println!(
            "{:<24} {:<10} {:>8} {:>14.0} {:>12.0} {:>9.2}x",
            row.workload,
            row.executor,
            row.n,
            row.taskweave_ns,
            row.raw_ns,
            row.taskweave_ns / row.raw_ns
        );
    }
    println!("\n(took {:.1} s)", started.elapsed().as_secs_f64());
}

#[cfg(feature = "redis")]
#[allow(unreachable_pub)]
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

/// The primitives on the Redis transport (feature `redis`).
#[cfg(feature = "redis")]
mod on_redis {
    use super::*;

    use super::redis_server;
    use taskweave::ExecutorExt;
    use taskweave::transport::redis::RedisTransport;

    async fn client(url: &str) -> Client {
        let transport = RedisTransport::connect(url).await.expect("connect to redis");
        Client::builder().transport(transport).build().await.expect("build a redis client")
    }

    async fn connection(url: &str) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(url).expect("a redis url");
        client.get_multiplexed_async_connection().await.expect("connect to redis")
    }

    async fn raw_lock(url: &str, n: usize) -> f64 {
        let mut connection = connection(url).await;
        let started = Instant::now();
        for _ in 0..n {
            let taken: Option<String> = redis::cmd("SET")
                .arg("raw-lock")
                .arg("me")
                .arg("NX")
                .arg("PX")
                .arg(30_000)
                .query_async(&mut connection)
                .await
                .unwrap();
            assert!(taken.is_some());
            let _: i64 =
                redis::cmd("DEL").arg("raw-lock").query_async(&mut connection).await.unwrap();
        }
        per_op(started.elapsed(), n)
    }

    async fn raw_queue_put_get(url: &str, n: usize) -> f64 {
        let mut connection = connection(url).await;
        let started = Instant::now();
        for i in 0..n as u64 {
            let _: i64 = redis::cmd("RPUSH")
                .arg("raw-queue")
                .arg(i)
                .query_async(&mut connection)
                .await
                .unwrap();
            let item: u64 =
                redis::cmd("LPOP").arg("raw-queue").query_async(&mut connection).await.unwrap();
            assert_eq!(item, i);
        }
        per_op(started.elapsed(), n)
    }

    async fn queue_round_trip(caller: &Client, echo: &Client, n: usize) -> f64 {
        let (ping, pong) = (caller.queue::<u64>("ping"), caller.queue::<u64>("pong"));
        let (echo_ping, echo_pong) = (echo.queue::<u64>("ping"), echo.queue::<u64>("pong"));
        let (done, finished) = futures::channel::oneshot::channel();
        echo.executor()
            .spawn_task(async move {
                for _ in 0..n {
                    let item = echo_ping.get().await.unwrap();
                    echo_pong.put(item).await.unwrap();
                }
                let _ = done.send(());
            })
            .unwrap();
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let started = Instant::now();
            ping.put(i).await.unwrap();
            assert_eq!(pong.get().await.unwrap(), i);
            samples.push(started.elapsed().as_secs_f64() * 1e9);
        }
        finished.await.unwrap();
        median(samples)
    }

    async fn raw_queue_round_trip(client: &Client, url: &str, n: usize) -> f64 {
        let (mut caller, mut caller_blocking) = (connection(url).await, connection(url).await);
        let (mut echo, mut echo_blocking) = (connection(url).await, connection(url).await);
        let (done, finished) = futures::channel::oneshot::channel();
        client
            .executor()
            .spawn_task(async move {
                for _ in 0..n {
                    let (_, item): (String, u64) = redis::cmd("BLPOP")
                        .arg("raw-ping")
                        .arg(0)
                        .query_async(&mut echo_blocking)
                        .await
                        .unwrap();
                    let _: i64 = redis::cmd("RPUSH")
                        .arg("raw-pong")
                        .arg(item)
                        .query_async(&mut echo)
                        .await
                        .unwrap();
                }
                let _ = done.send(());
            })
            .unwrap();
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let started = Instant::now();
            let _: i64 =
                redis::cmd("RPUSH").arg("raw-ping").arg(i).query_async(&mut caller).await.unwrap();
            let (_, item): (String, u64) = redis::cmd("BLPOP")
                .arg("raw-pong")
                .arg(0)
                .query_async(&mut caller_blocking)
                .await
                .unwrap();
            assert_eq!(item, i);
            samples.push(started.elapsed().as_secs_f64() * 1e9);
        }
        finished.await.unwrap();
        median(samples)
    }

    /// The actor of `redis actor call p50`: a counter.
    struct BenchCounter(u64);

    impl taskweave::RemoteActor for BenchCounter {
        const NAME: &'static str = "bench-counter";
        type Init = u64;
        type Call = u64;
        type Reply = u64;
        fn new(start: u64) -> BenchCounter {
            BenchCounter(start)
        }
        fn handle(&mut self, by: u64) -> u64 {
            self.0 += by;
            self.0
        }
    }

    /// One caller awaits one call at a time of an actor hosted by a worker in this process.
    async fn actor_round_trip(caller: &Client, url: &str, n: usize) -> f64 {
        use taskweave::{ActorHost, ActorRestartPolicy};
        let worker = taskweave::worker::Worker::builder()
            .redis(url)
            .concurrency(1)
            .register::<ActorHost<BenchCounter>>()
            .start()
            .await
            .expect("start a worker");
        let counter = caller
            .remote_actor::<BenchCounter>(0, 0, ActorRestartPolicy::FailPending)
            .await
            .expect("place an actor");
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let started = Instant::now();
            assert_eq!(counter.call(1).await.unwrap(), i + 1);
            samples.push(started.elapsed().as_secs_f64() * 1e9);
        }
        drop(counter);
        worker.shutdown();
        worker.stopped().await;
        median(samples)
    }

    pub(super) fn run(n: usize, repeats: usize) -> Vec<Row> {
        let server = redis_server::RedisServer::start();
        let url = server.url();
        futures::executor::block_on(async move {
            let (caller, echo) = (client(&url).await, client(&url).await);
            let mut rows = Vec::new();
            let mut measure = |workload, n, taskweave: Vec<f64>, raw: Vec<f64>| {
                rows.push(Row {
                    workload,
                    executor: "embedded",
                    n,
                    taskweave_ns: median(taskweave),
                    raw_ns: median(raw),
                })
            };
            if wanted("redis lock acq/rel") {
                let (mut tw, mut raw) = (Vec::new(), Vec::new());
                for _ in 0..repeats {
                    tw.push(lock_uncontended(&caller, n).await);
                    raw.push(raw_lock(&url, n).await);
                }
                measure("redis lock acq/rel", n, tw, raw);
            }
            if wanted("redis queue put+get") {
                let (mut tw, mut raw) = (Vec::new(), Vec::new());
                for _ in 0..repeats {
                    tw.push(queue_put_get(&caller, n).await);
                    raw.push(raw_queue_put_get(&url, n).await);
                }
                measure("redis queue put+get", n, tw, raw);
            }
            if wanted("redis queue rt p50") {
                let (mut tw, mut raw) = (Vec::new(), Vec::new());
                for _ in 0..repeats {
                    tw.push(queue_round_trip(&caller, &echo, n).await);
                    raw.push(raw_queue_round_trip(&caller, &url, n).await);
                }
                measure("redis queue rt p50", n, tw, raw);
            }
            if wanted("redis actor call p50") {
                let (mut tw, mut raw) = (Vec::new(), Vec::new());
                for _ in 0..repeats {
                    tw.push(actor_round_trip(&caller, &url, n).await);
                    raw.push(raw_queue_round_trip(&caller, &url, n).await);
                }
                measure("redis actor call p50", n, tw, raw);
            }
            caller.close().await.unwrap();
            echo.close().await.unwrap();
            rows
        })
    }
}
