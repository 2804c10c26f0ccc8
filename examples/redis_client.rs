//! A client of the Redis backend: submits `add(i, i)` for i in 0..N to a queue, gathers the
//! results and prints `sum=<value>` (which is N·(N−1)) as its last line.
//!
//! With Redis and at least one `redis_worker` running:
//!
//! ```text
//! cargo run --example redis_client --features redis -- --redis redis://127.0.0.1:6379 --queue demo --tasks 10000
//! ```
//!
//! Flags: `--redis URL` (default `redis://127.0.0.1:6379`), `--queue NAME` (default `demo`),
//! `--tasks N` (default 10000), `--sleep-ms M` (each task sleeps M ms).

#[path = "support/demo_tasks.rs"]
mod demo_tasks;

use std::time::Instant;

use demo_tasks::{Add, AddInput, flag, number_flag};
use taskweave::transport::redis::RedisTransport;

fn main() {
    // `RUST_LOG=taskweave=debug` shows what the engine does, task by task (on stderr).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let url = flag(&args, "--redis").unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let queue = flag(&args, "--queue").unwrap_or_else(|| "demo".into());
    let tasks = number_flag(&args, "--tasks", 10_000);
    let sleep_ms = number_flag(&args, "--sleep-ms", 0);
    let tasks = i64::try_from(tasks).unwrap_or(i64::MAX);

    let run = async {
        let redis = RedisTransport::builder(url).queue(queue).connect().await?;
        // The one line that differs from an in-process client.
        let client = taskweave::Client::builder().transport(redis).build().await?;
        let started = Instant::now();
        let futures = client.map_task::<Add>((0..tasks).map(|i| AddInput { a: i, b: i, sleep_ms }));
        let values = client.gather(&futures).await?;
        let elapsed = started.elapsed();
        let sum: i64 = values.iter().sum();
        eprintln!(
            "{} tasks in {:.3} s ({:.0} tasks/s)",
            values.len(),
            elapsed.as_secs_f64(),
            values.len() as f64 / elapsed.as_secs_f64()
        );
        client.close().await?;
        Ok::<i64, taskweave::Error>(sum)
    };
    match futures::executor::block_on(run) {
        Ok(sum) => println!("sum={sum}"),
        Err(error) => {
            eprintln!("client failed: {error}");
            std::process::exit(1);
        }
    }
}
