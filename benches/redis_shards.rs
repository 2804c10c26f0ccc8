//! Redis Cluster throughput with one shard against three: a real three-master cluster on
//! loopback, three queues, one worker process per queue, and one client per queue submitting
//! trivial registered tasks at the same time.
//!
//! ```sh
//! cargo bench --features redis --bench redis_shards                 # 5 rounds, 10,000 tasks per queue
//! cargo bench --features redis --bench redis_shards -- --quick      # 1 round, 2,000 per queue
//! cargo bench --features redis --bench redis_shards -- --rounds 3 --tasks 5000
//! ```
//!
//! Redis Cluster needs three masters, so both layouts run on the same cluster and differ only
//! in the queue names: **one shard** uses three queues whose hash tags fall on the same
//! master, **three shards** three queues on three different masters (taskweave shards by
//! queue: every key of a queue carries the tag `{namespace:queue}`). The rounds alternate
//! between the layouts, so that a change in the machine's load hits both alike. Per round and
//! layout the table gives the tasks per second of all three queues together (from the first
//! submit to the last value) and the CPU time each master's redis-server spent per task
//! (`INFO cpu`), which shows how the broker's work spreads: on a machine with as many cores
//! as processes, a shard's CPU per task is what bounds its throughput. The worker processes
//! are this benchmark's own binary started with `--worker QUEUE URL...`. Needs
//! `redis-server` and `redis-cli` on the `PATH` (`apt-get install redis-server`).

use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use taskweave::transport::redis::{RedisConfig, RedisTransport};
use taskweave::worker::Worker;
use taskweave::{Client, Task};

#[allow(unreachable_pub)]
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

#[allow(unreachable_pub)]
#[path = "../tests/support/redis_cluster.rs"]
mod redis_cluster;

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

/// Queues, worker processes and clients per layout.
const QUEUES: usize = 3;

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if arguments.get(1).map(String::as_str) == Some("--worker") {
        run_worker(&arguments[2], arguments[3..].to_vec());
        return;
    }
    let quick = arguments.iter().any(|argument| argument == "--quick");
    let rounds = count_option(&arguments, "--rounds", if quick { 1 } else { 5 });
    let tasks = count_option(&arguments, "--tasks", if quick { 2_000 } else { 10_000 });

    let cluster = redis_cluster::RedisCluster::start(3);
    let urls = cluster.urls();
    let (one_shard, three_shards) = layouts(&cluster);
    println!("queues, one shard:    {one_shard:?} (all on one master)");
    println!("queues, three shards: {three_shards:?} (one per master)");
    println!(
        "{rounds} rounds of {tasks} tasks per queue, {QUEUES} queues, one worker process per \
         queue (the worker's defaults)\n"
    );
    println!("| round | layout | tasks/s (3 queues) | redis-server CPU per task, by master (µs) |");
    println!("|---|---|---:|---|");
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=rounds {
        // Alternate which layout goes first, so neither always runs on a warmer machine.
        let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for layout in order {
            let queues = if layout == 0 { &one_shard } else { &three_shards };
            let (rate, cpu) = run_layout(&cluster, &urls, queues, tasks);
            rates[layout].push(rate);
            let cpu: Vec<String> = cpu.iter().map(|micros| format!("{micros:.1}")).collect();
            let name = if layout == 0 { "one shard" } else { "three shards" };
            println!("| {round} | {name} | {rate:.0} | {} |", cpu.join(" / "));
        }
    }
    let one = median(&rates[0]);
    let three = median(&rates[1]);
    println!(
        "\nmedian: one shard {one:.0} tasks/s, three shards {three:.0} tasks/s ({:.2}×)",
        three / one
    );
}

/// The queue names of both layouts: three on the master of `q0`, and three on three masters.
fn layouts(cluster: &redis_cluster::RedisCluster) -> (Vec<String>, Vec<String>) {
    let master = |queue: &str| cluster.node_of(&format!("{{taskweave:{queue}}}:tasks"));
    let names = (0..10_000).map(|i| format!("shard-{i}"));
    let first = "shard-0".to_owned();
    let home = master(&first);
    let mut one_shard = vec![first.clone()];
    let mut three_shards = vec![first];
    let mut masters_used = vec![home];
    for name in names.skip(1) {
        let node = master(&name);
        if node == home && one_shard.len() < QUEUES {
            one_shard.push(name);
        } else if !masters_used.contains(&node) && three_shards.len() < QUEUES {
            masters_used.push(node);
            three_shards.push(name);
        }
        if one_shard.len() == QUEUES && three_shards.len() == QUEUES {
            return (one_shard, three_shards);
        }
    }
    panic!("no queue names found for both layouts");
}

/// Runs `tasks` tasks on each of `queues` at once: one worker process and one client per
/// queue. Returns the tasks per second of all queues together and each master's redis-server
/// CPU per task in µs.
fn run_layout(
    cluster: &redis_cluster::RedisCluster,
    urls: &[String],
    queues: &[String],
    tasks: usize,
) -> (f64, Vec<f64>) {
    let me = std::env::current_exe().expect("the benchmark's own path");
    let mut workers: Vec<Child> = queues
        .iter()
        .map(|queue| {
            Command::new(&me)
                .arg("--worker")
                .arg(queue)
                .args(urls)
                // Its start-up line would cut through the table; a failure shows as a worker
                // that never joins (`wait_for_worker` says so within a minute).
                .stderr(Stdio::null())
                .spawn()
                .expect("start a worker process")
        })
        .collect();
    let mut connections: Vec<redis::Connection> =
        (0..3).map(|index| cluster.connection(index)).collect();
    let took = futures::executor::block_on(async {
        let mut clients = Vec::new();
        for queue in queues {
            let config = RedisConfig::cluster(urls.to_vec()).queue(queue.as_str());
            let transport =
                RedisTransport::builder_with(config).connect().await.expect("connect a client");
            wait_for_worker(&transport).await;
            let client =
                Client::builder().transport(transport).build().await.expect("build a client");
            clients.push(client);
        }
        let cpu_before: Vec<f64> = connections.iter_mut().map(used_cpu).collect();
        let started = Instant::now();
        let runs = clients.iter().map(|client| async move {
            let futures: Vec<_> = (0..tasks as u64).map(|i| client.submit_task::<Inc>(i)).collect();
            let values = client.gather(&futures).await.expect("every task gives its value");
            assert!(values.iter().enumerate().all(|(i, value)| *value == i as u64 + 1));
        });
        futures::future::join_all(runs).await;
        let took = started.elapsed();
        let cpu_after: Vec<f64> = connections.iter_mut().map(used_cpu).collect();
        for client in clients {
            client.close().await.expect("close a client");
        }
        (took, cpu_before, cpu_after)
    });
    for worker in &mut workers {
        let _ = worker.kill();
        let _ = worker.wait();
    }
    let (took, before, after) = took;
    let all = (tasks * queues.len()) as f64;
    let cpu = before.iter().zip(&after).map(|(b, a)| (a - b) * 1e6 / all).collect();
    (all / took.as_secs_f64(), cpu)
}

/// A worker process for `queue` on the cluster of `urls`, with the worker's defaults, until
/// it is killed.
fn run_worker(queue: &str, urls: Vec<String>) {
    let config = RedisConfig::cluster(urls).queue(queue);
    let worker = Worker::builder().redis_config(config).register::<Inc>().run();
    if let Err(error) = futures::executor::block_on(worker) {
        eprintln!("redis_shards worker failed: {error}");
        std::process::exit(1);
    }
}

/// Waits (at most a minute) until the queue's worker process has joined it.
async fn wait_for_worker(redis: &RedisTransport) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if redis.workers().await.map(|workers| !workers.is_empty()).unwrap_or(false) {
            return;
        }
        assert!(Instant::now() < deadline, "the worker process did not join within a minute");
        // Polling a registry that has no change notification: look again shortly.
        async_io::Timer::after(Duration::from_millis(20)).await;
    }
}

/// redis-server's CPU time so far (user + system), in seconds.
fn used_cpu(connection: &mut redis::Connection) -> f64 {
    let info: String = redis::cmd("INFO").arg("cpu").query(connection).expect("INFO cpu");
    info.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            matches!(name, "used_cpu_sys" | "used_cpu_user")
                .then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

fn count_option(arguments: &[String], option: &str, default: usize) -> usize {
    let Some(index) = arguments.iter().position(|argument| argument == option) else {
        return default;
    };
    arguments.get(index + 1).and_then(|n| n.parse().ok()).unwrap_or_else(|| {
        eprintln!("redis_shards: {option} needs a whole number");
        std::process::exit(2)
    })
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
