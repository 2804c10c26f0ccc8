//! taskweave on smol's global executor.
//!
//! ```text
//! cargo run --example smol_app --features smol
//! ```

use taskweave::runtimes::smol::SmolExecutor;

fn main() -> Result<(), taskweave::Error> {
    // `RUST_LOG=taskweave=debug` shows what the engine does, task by task (on stderr).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    smol::block_on(async {
        let client = taskweave::Client::builder()
            .executor(SmolExecutor::global())
            .workers(2)
            .build()
            .await?;
        println!("{client:?}");
        let future = client.submit(|x: i64| x + 1, 10);
        println!("submit(x + 1, 10) = {}", future.await?);
        let slow = client.submit_async(
            |ms: u64| async move {
                smol::Timer::after(std::time::Duration::from_millis(ms)).await;
                ms
            },
            20,
        );
        println!("async body slept {} ms on smol", slow.await?);
        client.close().await
    })
}
