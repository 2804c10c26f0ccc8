//! taskweave inside a tokio application: the client picks up the ambient runtime.
//!
//! ```text
//! cargo run --example tokio_app --features tokio
//! ```

#[tokio::main]
async fn main() -> Result<(), taskweave::Error> {
    // `RUST_LOG=taskweave=debug` shows what the engine does, task by task (on stderr).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let client = taskweave::Client::builder().workers(2).build().await?;
    println!("{client:?}");
    let future = client.submit(|x: i64| x + 1, 10);
    println!("submit(x + 1, 10) = {}", future.await?);
    let cubes = client.map(|x: i64| x * x * x, 1..=5);
    println!("cubes = {:?}", client.gather(&cubes).await?);
    client.close().await
}
