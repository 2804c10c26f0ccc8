//! A runtime taskweave has never heard of: a hand-written thread pool implementing the
//! public `Executor` trait (see `examples/support/thread_pool_executor.rs`), proving the
//! trait is all a runtime needs.
//!
//! ```text
//! cargo run --example custom_runtime
//! ```

#[path = "support/thread_pool_executor.rs"]
mod thread_pool_executor;

use thread_pool_executor::ThreadPoolExecutor;

fn main() -> Result<(), taskweave::Error> {
    // `RUST_LOG=taskweave=debug` shows what the engine does, task by task (on stderr).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let client = taskweave::Client::builder()
        .executor(ThreadPoolExecutor::new(2))
        .workers(2)
        .build_blocking()?;
    let squares = client.map(|x: u64| x * x, 1..=10);
    let total: u64 = client.blocking().gather(&squares)?.iter().sum();
    // An async body runs on the custom executor itself.
    let doubled = client.submit_async(|x: u64| async move { x * 2 }, total).result()?;
    println!("{client:?}");
    println!("sum of squares 1..=10 = {total}, doubled on the custom executor = {doubled}");
    client.blocking().close()
}
