//! Tasks that launch tasks: fib(n) where every body submits its two sub-tasks through its
//! context and waits for them, on one and on two workers, with blocking and with async bodies.
//!
//! ```sh
//! cargo bench --features testing --bench subtasks                 # fib(16) and fib(20), 5 runs each
//! cargo bench --features testing --bench subtasks -- --n 18 --runs 9
//! ```
//!
//! A blocking body that waits gives its worker back: the in-process transport runs a stand-in
//! worker loop meanwhile, so the recursion cannot deadlock on one worker. The table gives the
//! median wall time of `--runs` runs (and the range), the tasks per second, and the time per
//! task; the async rows are the same recursion without any stand-in (the body yields
//! instead), for comparison. Each run builds its own client on the embedded executor, as an
//! application would, and closes it. The recursions are `taskweave::testing::recursion`'s,
//! which the conformance cases run too (hence the `testing` feature).

use std::time::{Duration, Instant};

use taskweave::Client;
use taskweave::testing::recursion::{async_fib, blocking_fib};

/// The number of tasks fib(n) submits, root included.
fn tasks_of_fib(n: u64) -> u64 {
    let (mut calls_before, mut calls) = (1, 1);
    for _ in 1..n {
        (calls_before, calls) = (calls, calls + calls_before + 1);
    }
    if n == 0 { 1 } else { calls }
}

fn expected_fib(n: u64) -> u64 {
    let (mut a, mut b) = (0, 1);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}

/// One run: a fresh client of `workers` workers computes fib(n); its wall time.
fn run_once(n: u64, workers: usize, blocking: bool) -> Duration {
    let client = Client::builder().workers(workers).build_blocking().expect("build a client");
    let started = Instant::now();
    let value = if blocking {
        blocking_fib(&client, n).result().expect("fib through blocking bodies")
    } else {
        async_fib(&client, n).result().expect("fib through async bodies").expect("a value")
    };
    let elapsed = started.elapsed();
    assert_eq!(value, expected_fib(n), "fib({n})");
    client.blocking().close().expect("close the client");
    elapsed
}

fn main() {
    let mut sizes = vec![16, 20];
    let mut runs = 5;
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--n" => {
                let n = arguments.next().and_then(|n| n.parse().ok()).filter(|n| *n <= 25);
                let Some(n) = n else {
                    eprintln!("subtasks: --n needs a whole number up to 25");
                    std::process::exit(2);
                };
                sizes = vec![n];
            }
            "--runs" => {
                let count = arguments.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0);
                let Some(count) = count else {
                    eprintln!("subtasks: --runs needs a whole number above 0");
                    std::process::exit(2);
                };
                runs = count;
            }
            "--bench" => {}
            other => {
                eprintln!("subtasks: unknown argument {other}; use --n N, --runs N");
                std::process::exit(2);
            }
        }
    }
    println!(
        "{:<10} {:>4} {:>8} {:>8} {:>22} {:>12} {:>10}",
        "bodies", "n", "workers", "tasks", "median ms [range]", "tasks/s", "µs/task"
    );
    for &n in &sizes {
        for workers in [1, 2] {
            for blocking in [true, false] {
                let mut times: Vec<Duration> =
                    (0..runs).map(|_| run_once(n, workers, blocking)).collect();
                times.sort();
                let median = times[times.len() / 2];
                let tasks = tasks_of_fib(n);
                println!(
                    "{:<10} {:>4} {:>8} {:>8} {:>10.1} [{:.1}–{:.1}] {:>12.0} {:>10.2}",
                    if blocking { "blocking" } else { "async" },
                    n,
                    workers,
                    tasks,
                    median.as_secs_f64() * 1e3,
                    times[0].as_secs_f64() * 1e3,
                    times[times.len() - 1].as_secs_f64() * 1e3,
                    tasks as f64 / median.as_secs_f64(),
                    median.as_secs_f64() * 1e6 / tasks as f64,
                );
            }
        }
    }
}
