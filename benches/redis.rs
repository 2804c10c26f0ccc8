//! The Redis Streams backend end to end: a real `redis-server` on a loopback port, 2 worker
//! processes, and a client submitting trivial registered tasks.
//!
//! ```sh
//! cargo bench --features redis --bench redis                      # under a minute
//! cargo bench --features redis --bench redis -- --quick
//! cargo bench --features redis --bench redis -- --concurrency 2 --prefetch 8  # worker defaults, 2 cores
//! cargo bench --features redis --bench redis -- --json rows.json  # the same rows as JSON
//! ```
//!
//! Workloads (the Celery ones of `benches/compare/`, so that the numbers compare one to one):
//! `submit_task` × N then `gather`, `map_task` over N inputs then `gather`, and sequential
//! round trips. The worker processes are this benchmark's own binary started with
//! `--worker URL N P` (N tasks at a time each, `--concurrency N`, default 4; P entries taken
//! ahead, `--prefetch P`, default 64), so nothing else needs building. The rows are named like the in-process ones (`submit+gather` is
//! `submit_task` × N then `gather`, `map+gather` is `map_task`), executor `redis-embedded`. Needs
//! `redis-server` on the `PATH` (`apt-get install redis-server`).

use std::convert::Infallible;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use taskweave::transport::redis::RedisTransport;
use taskweave::worker::Worker;
use taskweave::{Client, Task};

#[allow(unreachable_pub)]
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

/// The trivial task (Dask's and Celery's `inc`).
struct Inc;

impl Task for Inc {
    const NAME: &'static str = "inc";
    type Input = u64;
    type Output = u64;
    type Error = Infallible;

    fn run(input: u64) -> Result<u64, Infallible> {
        Ok(input + 1)
    }
}

/// How many worker processes.
const WORKER_PROCESSES: usize = 2;

/// How many tasks each worker process runs at once (`--concurrency N`). Each is a thread, and
/// on the 2-core benchmark machine more threads than cores only add switching between them.
const DEFAULT_CONCURRENCY: usize = 4;

/// How many entries each worker process takes ahead of the ones it runs (`--prefetch P`, the
/// worker's [`prefetch`](taskweave::worker::WorkerBuilder::prefetch)). A trivial task costs a
/// few Redis commands and no time, so what bounds throughput is round trips, and a worker
/// that holds more entries reads, begins and reports them in bigger batches. The Celery
/// comparison runs with the same kind of setting (`worker_prefetch_multiplier = 64`). The
/// worker's own default is 8 (entries taken ahead count towards `allowed_failures` when a
/// worker dies); `BENCHMARKS.md` gives the throughput with it too.
const DEFAULT_PREFETCH: usize = 64;

/// Kills the worker processes when the run ends, however it ends.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if arguments.get(1).map(String::as_str) == Some("--worker") {
        let concurrency = arguments[3].parse().expect("a task count");
        run_worker(&arguments[2], concurrency, arguments[4].parse().expect("an entry count"));
        return;
    }
    let quick = arguments.iter().any(|argument| argument == "--quick");
    let concurrency = count_option(&arguments, "--concurrency", DEFAULT_CONCURRENCY);
    let prefetch = count_option(&arguments, "--prefetch", DEFAULT_PREFETCH);
    let json = arguments.iter().position(|argument| argument == "--json").map(|index| {
        arguments.get(index + 1).cloned().unwrap_or_else(|| {
            eprintln!("redis: --json needs a file path");
            std::process::exit(2)
        })
    });
    let (batch, round_trips, repeats): (&[usize], usize, usize) =
        if quick { (&[1_000], 200, 1) } else { (&[1_000, 10_000], 1_000, 3) };

    let server = redis_server::RedisServer::start();
    let url = server.url();
    let this_binary = std::env::current_exe().expect("find this binary");
    let _workers = Workers(
        (0..WORKER_PROCESSES)
            .map(|_| {
                Command::new(&this_binary)
                    .args(["--worker", &url, &concurrency.to_string(), &prefetch.to_string()])
                    .spawn()
                    .expect("start a worker process")
            })
            .collect(),
    );

    let rows = futures::executor::block_on(async move {
        let redis = RedisTransport::connect(url).await.expect("connect to redis-server");
        let client = Client::builder()
            .transport(redis.clone())
            .build()
            .await
            .expect("build a client on the Redis transport");
        wait_for_workers(&redis).await;
        // Warm up: connections, scripts, consumer groups.
        let warm = client.map_task::<Inc>(0..200);
        client.gather(&warm).await.expect("warm-up tasks succeed");

        let mut rows = Vec::new();
        for &n in batch {
            let mut samples = Vec::with_capacity(repeats);
            for _ in 0..repeats {
                let started = Instant::now();
                let futures: Vec<_> = (0..n as u64).map(|i| client.submit_task::<Inc>(i)).collect();
                let values = client.gather(&futures).await.expect("tasks succeed");
                drop(futures);
                samples.push(started.elapsed());
                check_incremented(&values);
            }
            let took = median(samples);
            rows.push(("submit+gather", n, n as f64 / took.as_secs_f64(), "tasks/s"));
            rows.push(("submit+gather", n, micros(took) / n as f64, "us/task"));
        }
        for &n in batch {
            let mut samples = Vec::with_capacity(repeats);
            for _ in 0..repeats {
                let started = Instant::now();
                let futures = client.map_task::<Inc>(0..n as u64);
                let values = client.gather(&futures).await.expect("tasks succeed");
                drop(futures);
                samples.push(started.elapsed());
                check_incremented(&values);
            }
            let took = median(samples);
            rows.push(("map+gather", n, n as f64 / took.as_secs_f64(), "tasks/s"));
            rows.push(("map+gather", n, micros(took) / n as f64, "us/task"));
        }
        let mut samples = Vec::with_capacity(round_trips);
        for i in 0..round_trips as u64 {
            let started = Instant::now();
            let value = client.submit_task::<Inc>(i).await.expect("task succeeds");
            samples.push(started.elapsed());
            assert_eq!(value, i + 1);
        }
        samples.sort();
        let p50 = samples[samples.len() / 2];
        let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
        rows.push(("round trip", round_trips, micros(p50), "us p50"));
        rows.push(("round trip", round_trips, micros(p99), "us p99"));
        client.close().await.expect("close the client");
        rows
    });

    println!();
    println!(
        "({WORKER_PROCESSES} worker processes, each running {concurrency} tasks at once and \
         taking {prefetch} ahead)"
    );
    println!("{:<20} {:<16} {:>8} {:>14} {:<8}", "workload", "executor", "n", "value", "unit");
    println!("{}", "-".repeat(70));
    for (workload, n, value, unit) in &rows {
        println!("{workload:<20} {:<16} {n:>8} {value:>14.1} {unit:<8}", "redis-embedded");
    }
    if let Some(path) = json {
        let objects: Vec<String> = rows
            .iter()
            .map(|(workload, n, value, unit)| {
                format!(
                    "  {{\"workload\": \"{workload}\", \"executor\": \"redis-embedded\", \
                     \"n\": {n}, \"value\": {value}, \"unit\": \"{unit}\", \
                     \"baseline_ratio\": null}}"
                )
            })
            .collect();
        std::fs::write(&path, format!("[\n{}\n]\n", objects.join(",\n")))
            .expect("write the JSON file");
        println!("wrote {} rows to {path}", rows.len());
    }
}

/// The number after `option` on the command line, or `default` without the option.
fn count_option(arguments: &[String], option: &str, default: usize) -> usize {
    let Some(index) = arguments.iter().position(|argument| argument == option) else {
        return default;
    };
    arguments.get(index + 1).and_then(|n| n.parse().ok()).unwrap_or_else(|| {
        eprintln!("redis: {option} needs a whole number");
        std::process::exit(2)
    })
}

/// A worker process: runs `Inc`, `concurrency` tasks at a time with `prefetch` entries taken
/// ahead, until it is killed.
fn run_worker(url: &str, concurrency: usize, prefetch: usize) {
    let worker = Worker::builder()
        .redis(url)
        .concurrency(concurrency)
        .prefetch(prefetch)
        .register::<Inc>()
        .run();
    if let Err(error) = futures::executor::block_on(worker) {
        eprintln!("redis bench worker failed: {error}");
        std::process::exit(1);
    }
}

/// Waits (at most a minute) until both worker processes have joined the queue.
async fn wait_for_workers(redis: &RedisTransport) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let joined = redis.workers().await.map(|workers| workers.len()).unwrap_or(0);
        if joined >= WORKER_PROCESSES {
            return;
        }
        assert!(Instant::now() < deadline, "the worker processes did not join within a minute");
        // Polling a registry that has no change notification: look again shortly.
        async_io::Timer::after(Duration::from_millis(20)).await;
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn check_incremented(values: &[u64]) {
    for (index, value) in values.iter().enumerate() {
        assert_eq!(*value, index as u64 + 1, "gather returned a wrong value");
    }
}
