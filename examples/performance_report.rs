//! A performance report: runs a mixed workload (two kinds of task, a failure, a retry, a slow
//! kind) on four workers and writes one self-contained HTML file of it, to open in a browser.
//!
//! ```text
//! cargo run --example performance_report -- [path, default performance-report.html]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const USAGE: &str = "usage: performance_report [PATH] (default performance-report.html)";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return std::process::ExitCode::SUCCESS;
    }
    let path = match args.as_slice() {
        [] => "performance-report.html".to_owned(),
        [path] if !path.starts_with('-') => path.clone(),
        _ => {
            eprintln!("performance_report: give one path for the report, not {args:?}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&path) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("performance_report: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = taskweave::Client::builder().workers(4).build_blocking()?;
    let total =
        futures::executor::block_on(taskweave::performance_report(&client, path, async {
            let quick = client.task().key("quick").map(|x: u64| x * 2, 0..2_000);
            let slow = client.task().key("slow").map(
                |x: u64| {
                    // Stands for real work: a task that takes a few milliseconds.
                    std::thread::sleep(Duration::from_millis(2 + x % 5));
                    x
                },
                0..200,
            );
            let failing = client.task().key("parse").try_submit(
                |line: String| line.parse::<u64>().map_err(|error| format!("{line:?}: {error}")),
                "forty-two".to_owned(),
            );
            let runs = Arc::new(AtomicU32::new(0));
            let flaky = client.task().key("flaky").retries(2).try_submit(
                // Fails on its first run only.
                move |_: ()| match runs.fetch_add(1, Ordering::SeqCst) {
                    0 => Err("the first run fails"),
                    _ => Ok(1u64),
                },
                (),
            );
            let quick: u64 = client.gather(&quick).await?.iter().sum();
            let slow: u64 = client.gather(&slow).await?.iter().sum();
            println!("parse failed as expected: {}", failing.await.unwrap_err());
            Ok::<u64, taskweave::Error>(quick + slow + flaky.await?)
        }))??;
    println!("total {total}; report written to {path}");
    client.blocking().close()?;
    Ok(())
}
