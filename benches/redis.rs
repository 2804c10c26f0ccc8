//! The Redis Streams backend end to end: a real `redis-server` on a loopback port, 2 worker
//! processes, and a client submitting trivial registered tasks.
//!
//! ```sh
//! cargo bench --features redis --bench redis                      # under a minute
//! cargo bench --features redis --bench redis -- --quick
//! cargo bench --features redis --bench redis -- --concurrency 2 --prefetch 8  # worker defaults, 2 cores
//! cargo bench --features redis --bench redis -- --json rows.json  # the same rows as JSON
//! cargo bench --features redis --bench redis -- --defaults        # the worker's own defaults
//! cargo bench --features redis --bench redis -- --defaults --commandstats 10000
//! cargo bench --features redis --bench redis -- --defaults --long 12 5000
//! ```
//!
//! `--commandstats N` runs only `submit_task` × N then `gather` and prints what redis-server
//! did per task (`INFO commandstats` after `CONFIG RESETSTAT`: calls and µs by command, and
//! its CPU time from `INFO cpu`), figures that the load of a shared machine does not move.
//! `--long N MS` submits N tasks that each sleep MS milliseconds and prints how long they
//! took in all: a worker that takes too many ahead keeps the other one idle.
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

/// A long task: sleeps its input in milliseconds.
struct Sleep;

impl Task for Sleep {
    const NAME: &'static str = "sleep";
    type Input = u64;
    type Output = u64;
    type Error = Infallible;

    fn run(millis: u64) -> Result<u64, Infallible> {
        std::thread::sleep(Duration::from_millis(millis));
        Ok(millis)
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
/// worker's own default is adaptive (up to 64 for tasks this short, none for long ones;
/// `--defaults` runs with it); `BENCHMARKS.md` gives the throughput with it too.
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
        // "default" leaves the worker's own default.
        let concurrency = arguments[3].parse().ok();
        run_worker(&arguments[2], concurrency, arguments[4].parse().ok());
        return;
    }
    let quick = arguments.iter().any(|argument| argument == "--quick");
    let defaults = arguments.iter().any(|argument| argument == "--defaults");
    let concurrency = count_option(&arguments, "--concurrency", DEFAULT_CONCURRENCY);
    let prefetch = count_option(&arguments, "--prefetch", DEFAULT_PREFETCH);
    // `--defaults` leaves both to the worker, except a `--concurrency` given with it.
    let (concurrency, prefetch) = if defaults {
        let given = arguments.iter().any(|argument| argument == "--concurrency");
        let concurrency = if given { concurrency.to_string() } else { "default".to_owned() };
        (concurrency, "default".to_owned())
    } else {
        (concurrency.to_string(), prefetch.to_string())
    };
    let commandstats = arguments
        .iter()
        .position(|argument| argument == "--commandstats")
        .map(|_| count_option(&arguments, "--commandstats", 10_000));
    let long = arguments.iter().position(|argument| argument == "--long").map(|index| {
        let number = |offset: usize| -> u64 {
            arguments.get(index + offset).and_then(|n| n.parse().ok()).unwrap_or_else(|| {
                eprintln!("redis: --long needs a task count and a duration in ms");
                std::process::exit(2)
            })
        };
        (number(1), number(2))
    });
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
                    .args(["--worker", &url, &concurrency, &prefetch])
                    .spawn()
                    .expect("start a worker process")
            })
            .collect(),
    );

    let stats_url = url.clone();
    let worker_pids: Vec<u32> = _workers.0.iter().map(Child::id).collect();
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
        drop(warm);

        if let Some(n) = commandstats {
            let mut connection = redis::Client::open(stats_url.as_str())
                .and_then(|client| client.get_connection())
                .expect("connect for INFO");
            // redis-server's CPU while nothing is submitted (heartbeats, blocked reads timing
            // out, `serverCron`): the share of the figure below that is not work per task.
            let idle_before = used_cpu(&mut connection);
            async_io::Timer::after(IDLE_WINDOW).await;
            let idle = used_cpu(&mut connection) - idle_before;
            let () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut connection).expect("reset");
            let cpu_before = used_cpu(&mut connection);
            let processes_before = process_ticks(&worker_pids);
            let started = Instant::now();
            let futures: Vec<_> = (0..n as u64).map(|i| client.submit_task::<Inc>(i)).collect();
            let values = client.gather(&futures).await.expect("tasks succeed");
            let took = started.elapsed();
            drop(futures);
            check_incremented(&values);
            // Let the releases (UNLINK) and reply deletions of the dropped futures land.
            async_io::Timer::after(Duration::from_millis(300)).await;
            let cpu = used_cpu(&mut connection) - cpu_before;
            let processes = process_ticks(&worker_pids);
            let info: String =
                redis::cmd("INFO").arg("commandstats").query(&mut connection).expect("INFO");
            print_commandstats(&info, n, cpu.total(), took);
            let stats: String =
                redis::cmd("INFO").arg("stats").query(&mut connection).expect("INFO stats");
            print_server_stats(&stats, n, cpu, idle, took + Duration::from_millis(300));
            let per_task = |ticks: u64| ticks as f64 * 1e4 / n as f64;
            println!(
                "{:<24} {:>25.2}",
                "client CPU us/task",
                per_task(processes.0 - processes_before.0)
            );
            println!(
                "{:<24} {:>25.2}",
                "workers' CPU us/task",
                per_task(processes.1 - processes_before.1)
            );
            client.close().await.expect("close the client");
            return Vec::new();
        }
        if let Some((n, millis)) = long {
            let started = Instant::now();
            let futures: Vec<_> = (0..n).map(|_| client.submit_task::<Sleep>(millis)).collect();
            client.gather(&futures).await.expect("tasks succeed");
            println!(
                "{n} tasks of {millis} ms on {WORKER_PROCESSES} worker processes: {:.2} s",
                started.elapsed().as_secs_f64()
            );
            client.close().await.expect("close the client");
            return Vec::new();
        }

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

    if rows.is_empty() {
        return;
    }
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
/// ahead (the worker's defaults where `None`), until it is killed.
fn run_worker(url: &str, concurrency: Option<usize>, prefetch: Option<usize>) {
    let mut builder = Worker::builder().redis(url).register::<Inc>().register::<Sleep>();
    if let Some(concurrency) = concurrency {
        builder = builder.concurrency(concurrency);
    }
    if let Some(prefetch) = prefetch {
        builder = builder.prefetch(prefetch);
    }
    let worker = builder.run();
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

/// CPU time so far, in ticks of 10 ms (`/proc/PID/stat`, user + system): this process's,
/// and the sum over `workers`. Zero where `/proc` cannot be read (not Linux).
fn process_ticks(workers: &[u32]) -> (u64, u64) {
    let ticks = |pid: &str| -> u64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0 };
        // The fields after the command name (which may hold spaces) in parentheses: utime
        // and stime are the 12th and 13th of them.
        let Some((_, fields)) = stat.rsplit_once(')') else { return 0 };
        fields
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|field| field.parse::<u64>().ok())
            .sum()
    };
    (ticks("self"), workers.iter().map(|pid| ticks(&pid.to_string())).sum())
}

/// How long `--commandstats` watches redis-server's CPU with no task submitted.
const IDLE_WINDOW: Duration = Duration::from_secs(1);

/// redis-server's CPU time, in seconds: in system calls and in its own code.
#[derive(Clone, Copy)]
struct ServerCpu {
    system: f64,
    user: f64,
}

impl ServerCpu {
    fn total(self) -> f64 {
        self.system + self.user
    }
}

impl std::ops::Sub for ServerCpu {
    type Output = ServerCpu;

    fn sub(self, earlier: ServerCpu) -> ServerCpu {
        ServerCpu { system: self.system - earlier.system, user: self.user - earlier.user }
    }
}

/// redis-server's CPU time so far (`INFO cpu`).
fn used_cpu(connection: &mut redis::Connection) -> ServerCpu {
    let info: String = redis::cmd("INFO").arg("cpu").query(connection).expect("INFO cpu");
    let field = |wanted: &str| -> f64 { info_field(&info, wanted).unwrap_or(0.0) };
    ServerCpu { system: field("used_cpu_sys"), user: field("used_cpu_user") }
}

/// The number in the `name:value` line of an `INFO` reply, if there is one.
fn info_field(info: &str, wanted: &str) -> Option<f64> {
    info.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| *name == wanted)
        .and_then(|(_, value)| value.trim().parse().ok())
}

/// Prints where redis-server's CPU went per task: system calls against its own code, the
/// socket reads (one per request a client's pipeline sends) and reply writes, the bytes, and
/// the CPU an idle second costs it, scaled to how long the run (and its 300 ms after) lasted.
fn print_server_stats(
    stats: &str,
    tasks: usize,
    cpu: ServerCpu,
    idle: ServerCpu,
    watched: Duration,
) {
    let n = tasks as f64;
    let per_task = |name: &str| info_field(stats, name).unwrap_or(f64::NAN) / n;
    println!("{:<24} {:>25.2}", "  of which system us/task", cpu.system * 1e6 / n);
    println!("{:<24} {:>25.2}", "  of which user us/task", cpu.user * 1e6 / n);
    let idle_per_second = idle.total() / IDLE_WINDOW.as_secs_f64();
    println!("{:<24} {:>25.1}", "idle CPU us/s", idle_per_second * 1e6);
    println!(
        "{:<24} {:>25.2}",
        "  idle share us/task",
        idle_per_second * watched.as_secs_f64() * 1e6 / n
    );
    println!("{:<24} {:>25.3}", "commands processed/task", per_task("total_commands_processed"));
    println!("{:<24} {:>25.3}", "socket reads/task", per_task("total_reads_processed"));
    println!("{:<24} {:>25.3}", "socket writes/task", per_task("total_writes_processed"));
    println!("{:<24} {:>25.1}", "bytes in/task", per_task("total_net_input_bytes"));
    println!("{:<24} {:>25.1}", "bytes out/task", per_task("total_net_output_bytes"));
}

/// Prints `INFO commandstats` per task: calls and µs by command (commands run by scripts are
/// counted too, and their time is inside the script's), then redis-server's CPU per task.
fn print_commandstats(info: &str, tasks: usize, cpu_seconds: f64, took: Duration) {
    let mut rows: Vec<(String, f64, f64)> = info
        .lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter_map(|line| {
            let (name, stats) = line.split_once(':')?;
            let field = |key: &str| -> Option<f64> {
                stats.split(',').find_map(|pair| pair.strip_prefix(key)?.parse().ok())
            };
            Some((name.to_owned(), field("calls=")?, field("usec=")?))
        })
        .filter(|(name, _, _)| !matches!(name.as_str(), "info" | "config|resetstat"))
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    let n = tasks as f64;
    println!();
    println!("redis-server per task, {tasks} tasks (submit_task × N, gather, release)");
    println!("{:<24} {:>12} {:>12}", "command", "calls/task", "usec/task");
    println!("{}", "-".repeat(50));
    for (name, calls, usec) in &rows {
        println!("{name:<24} {:>12.3} {:>12.2}", calls / n, usec / n);
    }
    let script_calls: f64 =
        rows.iter().filter(|(name, _, _)| name.starts_with("eval")).map(|row| row.1).sum();
    let all_calls: f64 = rows.iter().map(|row| row.1).sum();
    println!("{}", "-".repeat(50));
    println!("{:<24} {:>12.3}", "commands (all)", all_calls / n);
    println!("{:<24} {:>12.3}", "script calls", script_calls / n);
    println!("{:<24} {:>25.2}", "redis-server CPU us/task", cpu_seconds * 1e6 / n);
    println!("{:<24} {:>25.0}", "tasks/s (this run)", n / took.as_secs_f64());
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
