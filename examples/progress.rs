//! A progress bar over 10,000 tasks, like Dask's `progress()`: done / total, rate, ETA and
//! failures, finishing when every task has an outcome.
//!
//! ```sh
//! cargo run --example progress
//! ```
//!
//! The bar is drawn only when stderr is a terminal; `RUST_LOG=taskweave=warn` adds the
//! engine's own events (one line per failed task).

use std::time::Duration;

use tracing_subscriber::EnvFilter;

fn main() -> Result<(), taskweave::Error> {
    // Log lines and the bar share stderr: by default only errors are logged, so that the
    // expected failures below (each a `warn` event) do not scroll the bar away.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .init();

    let client = taskweave::Client::builder().workers(4).build_blocking()?;
    // Each task stands for a small piece of blocking work of about a millisecond; every
    // thousandth one fails, to show failures being counted.
    let futures: Vec<_> = (0..10_000u32)
        .map(|index| {
            client.try_submit(
                |index: u32| {
                    std::thread::sleep(Duration::from_millis(1));
                    if index % 1000 == 999 {
                        Err(format!("item {index} is corrupt"))
                    } else {
                        Ok(index)
                    }
                },
                index,
            )
        })
        .collect();
    let summary = taskweave::progress(&futures).blocking()?;
    println!(
        "{} tasks: {} finished, {} failed, {} cancelled",
        summary.total, summary.finished, summary.failed, summary.cancelled
    );
    client.blocking().close()
}
