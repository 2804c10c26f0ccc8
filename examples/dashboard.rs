//! The live dashboard over a mixed workload: quick tasks, tasks that fail, flaky tasks that
//! succeed on a retry, and a slow kind of task, submitted in waves while the dashboard shows
//! the task stream, progress per task name, workers and failures.
//!
//! ```sh
//! cargo run --example dashboard --features dashboard
//! # then open the URL it prints; or run briefly:
//! cargo run --example dashboard --features dashboard -- --seconds 5 --port 0
//! ```
//!
//! Flags: `--seconds N` stops after N seconds (default: run until Ctrl-C), `--port P` serves
//! on 127.0.0.1:P (default 8787; 0 picks a free port). With `--seconds`, it also writes a
//! performance report of the whole run (`dashboard-report.html` in the system's temporary
//! directory) and prints its path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use taskweave::{Client, PerformanceReport, ReturnWhen};

/// A quick piece of work.
fn load(index: u64) -> u64 {
    std::thread::sleep(Duration::from_micros(300 + index % 7 * 100));
    index * 2
}

/// Fails for one input in 25, with a message that says which.
fn transform(index: u64) -> Result<u64, String> {
    std::thread::sleep(Duration::from_millis(1 + index % 3));
    if index % 25 == 7 {
        Err(format!("record {index} is malformed: expected a number"))
    } else {
        Ok(index + 1)
    }
}

/// Fails about every other run, so that its retries show.
fn flaky(index: u64) -> Result<u64, String> {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    std::thread::sleep(Duration::from_millis(2));
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    if (run ^ index).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 63 == 1 {
        Err(format!("upstream timed out for item {index}"))
    } else {
        Ok(index)
    }
}

/// The slow kind.
fn slow_report(index: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(150 + index % 5 * 50));
    index
}

struct Flags {
    seconds: Option<u64>,
    port: u16,
}

fn flags() -> Result<Flags, String> {
    let mut flags = Flags { seconds: None, port: 8787 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--seconds" => {
                let text = value("--seconds")?;
                flags.seconds =
                    Some(text.parse().map_err(|_| format!("--seconds {text}: not a number"))?);
            }
            "--port" => {
                let text = value("--port")?;
                flags.port = text.parse().map_err(|_| format!("--port {text}: not a port"))?;
            }
            other => {
                return Err(format!("unknown flag {other}; use --seconds N and --port P"));
            }
        }
    }
    Ok(flags)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = flags()?;
    let client = Client::builder().workers(4).build_blocking()?;
    let dashboard = client.serve_dashboard(("127.0.0.1", flags.port))?;
    println!("taskweave dashboard: {}", dashboard.url());
    println!("metrics: {}metrics", dashboard.url());

    let started = Instant::now();
    let report = PerformanceReport::start(&client);
    let deadline = flags.seconds.map(Duration::from_secs);
    let mut wave = 0u64;
    while deadline.is_none_or(|deadline| started.elapsed() < deadline) {
        // One wave: many quick tasks, some failing, some flaky with retries, a few slow ones,
        // and a summary that depends on the quick ones.
        let base = wave * 1000;
        let loads = client.map(load, base..base + 400);
        let transforms: Vec<_> =
            (base..base + 200).map(|index| client.try_submit(transform, index)).collect();
        let flakies: Vec<_> = (base..base + 50)
            .map(|index| client.task().retries(3).try_submit(flaky, index))
            .collect();
        let slow = client.map(slow_report, base..base + 8);
        let total =
            client.after(&loads[..]).submit(|values: Vec<u64>| values.into_iter().sum::<u64>());
        let all = ReturnWhen::AllCompleted;
        client.blocking().wait(&loads, all, None)?;
        client.blocking().wait(&transforms, all, None)?;
        client.blocking().wait(&flakies, all, None)?;
        client.blocking().wait(&slow, all, None)?;
        let failed = transforms.iter().filter(|future| future.result().is_err()).count();
        println!(
            "wave {wave}: sum {} ({failed} of {} transforms failed)",
            total.result()?,
            transforms.len()
        );
        wave += 1;
    }
    let path = std::env::temp_dir().join("dashboard-report.html");
    report.write(&path)?;
    println!("performance report: {}", path.display());
    drop(report);
    dashboard.stop();
    client.blocking().close()?;
    Ok(())
}
