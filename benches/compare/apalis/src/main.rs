//! apalis 1.x on Redis: pushes N trivial jobs (`inc`), runs 2 workers, and prints the jobs
//! per second from the first push to the last job done. Arguments: the Redis URL, N, and
//! optionally a poll interval in ms (apalis's default otherwise).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_redis::{Config, RedisStorage};

static DONE: AtomicUsize = AtomicUsize::new(0);

async fn inc(x: u64) -> Result<u64, BoxDynError> {
    DONE.fetch_add(1, Ordering::Relaxed);
    Ok(x + 1)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).cloned().unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let n: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let poll: Option<u64> = args.get(3).and_then(|ms| ms.parse().ok());
    let conn = apalis_redis::connect(url).await.expect("connect to redis");
    let config = Config::default().queue("apalis-compare");
    let mut storage = RedisStorage::new(conn).with_config(config);
    let started = Instant::now();
    for i in 0..n as u64 {
        storage.push(i).await.expect("push a job");
    }
    let pushed = started.elapsed();
    for name in ["w1", "w2"] {
        let backend = storage.clone();
        match poll {
            Some(ms) => tokio::spawn(
                WorkerBuilder::new(name)
                    .backend(backend.poll_with_interval(Duration::from_millis(ms)))
                    .build(inc)
                    .run(),
            ),
            None => tokio::spawn(WorkerBuilder::new(name).backend(backend).build(inc).run()),
        };
    }
    while DONE.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if started.elapsed() > Duration::from_secs(600) {
            eprintln!("apalis: only {} of {n} jobs done in 10 minutes", DONE.load(Ordering::Relaxed));
            std::process::exit(1);
        }
    }
    let took = started.elapsed();
    println!(
        "apalis poll={} n={n} pushed in {:.2} s, all done in {:.2} s: {:.0} jobs/s",
        poll.map_or("default".to_owned(), |ms| format!("{ms}ms")),
        pushed.as_secs_f64(),
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    std::process::exit(0);
}
