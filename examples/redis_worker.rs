//! A worker process for the Redis backend: runs the demo tasks (`add`, and the poison task
//! `crash`) from a queue until Ctrl-C or SIGTERM.
//!
//! Start Redis, then this in one terminal and `redis_client` in another:
//!
//! ```text
//! cargo run --example redis_worker --features redis -- --redis redis://127.0.0.1:6379 --queue demo --concurrency 2
//! ```
//!
//! Flags: `--redis URL` (default `redis://127.0.0.1:6379`), `--queue NAME` (default `demo`),
//! `--concurrency N` (default 2), `--sleep-ms M` (every task sleeps at least M ms),
//! `--reclaim-after-ms T` (how long a dead worker's task waits before this one takes it over;
//! default 30000), `--prefetch P` (entries taken ahead of the running ones; default: the
//! worker's adaptive amount),
//! `--tasks a,b` (the tasks to register, of `add`, `mul` and `crash`; default all three),
//! `--unrunnable-after-ms U` (how long an entry of a task no live worker registers waits for
//! one; default 300000).

#[path = "support/demo_tasks.rs"]
mod demo_tasks;

use std::sync::atomic::Ordering;
use std::time::Duration;

use demo_tasks::{Add, Crash, Mul, flag, number_flag};
use taskweave::worker::Worker;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "taskweave=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let url = flag(&args, "--redis").unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let queue = flag(&args, "--queue").unwrap_or_else(|| "demo".into());
    let concurrency = number_flag(&args, "--concurrency", 2);
    let reclaim_after = number_flag(&args, "--reclaim-after-ms", 30_000);
    // Without the flag, the worker's own (adaptive) default.
    let prefetch = flag(&args, "--prefetch").map(|_| number_flag(&args, "--prefetch", 0));
    let unrunnable_after = number_flag(&args, "--unrunnable-after-ms", 300_000);
    let tasks = flag(&args, "--tasks").unwrap_or_else(|| "add,mul,crash".into());
    demo_tasks::WORKER_SLEEP_MS.store(number_flag(&args, "--sleep-ms", 0), Ordering::Relaxed);

    let mut worker = Worker::builder()
        .redis(url)
        .queue(queue)
        .concurrency(usize::try_from(concurrency).unwrap_or(1))
        .reclaim_after(Duration::from_millis(reclaim_after))
        .unrunnable_after(Duration::from_millis(unrunnable_after));
    if let Some(prefetch) = prefetch {
        worker = worker.prefetch(usize::try_from(prefetch).unwrap_or(usize::MAX));
    }
    for task in tasks.split(',') {
        worker = match task {
            "add" => worker.register::<Add>(),
            "mul" => worker.register::<Mul>(),
            "crash" => worker.register::<Crash>(),
            other => {
                eprintln!("--tasks: unknown task {other:?}; pick from add, mul and crash");
                std::process::exit(2)
            }
        };
    }
    let worker = worker.run();
    // The embedded executor drives the worker: no runtime feature needed.
    if let Err(error) = futures::executor::block_on(worker) {
        eprintln!("worker failed: {error}");
        std::process::exit(1);
    }
}
