//! The smallest taskweave program: submit `x + 1` with 10, await it, print 11, close.
//!
//! Runs on the embedded executor, with no cargo feature:
//!
//! ```text
//! cargo run --example quickstart
//! ```

fn main() -> Result<(), taskweave::Error> {
    // `RUST_LOG=taskweave=debug` shows what the engine does, task by task (on stderr).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    // Any executor can drive the async code; the embedded one is used when none is named.
    futures::executor::block_on(async {
        let client = taskweave::Client::builder().build().await?;
        let future = client.submit(|x: i64| x + 1, 10); // submitting never blocks
        let result = future.await?;
        println!("{result}");
        client.close().await
    })
}
