//! taskweave on async-std. async-std is discontinued upstream; new code should use smol
//! (`examples/smol_app.rs`). This adapter stays for applications still on async-std.
//!
//! ```text
//! cargo run --example async_std_app --features async-std
//! ```

fn main() -> Result<(), taskweave::Error> {
    // `RUST_LOG=taskweave=debug` shows what the engine does, task by task (on stderr).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    async_std::task::block_on(async {
        // Inside an async-std task, the client picks async-std up as its ambient runtime.
        let client = taskweave::Client::builder().workers(2).build().await?;
        println!("{client:?}");
        let future = client.submit(|x: i64| x + 1, 10);
        println!("submit(x + 1, 10) = {}", future.await?);
        client.close().await
    })
}
