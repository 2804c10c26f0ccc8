//! taskweave from plain blocking code: no async, no runtime to set up.
//!
//! ```text
//! cargo run --example blocking
//! ```

fn main() -> Result<(), taskweave::Error> {
    // `RUST_LOG=taskweave=debug` shows what the engine does, task by task (on stderr).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let client = taskweave::Client::builder().workers(2).build_blocking()?;
    let future = client.submit(|x: i64| x + 1, 10);
    println!("submit(x + 1, 10) = {}", future.result()?);

    let lengths =
        client.map(|word: &'static str| word.len(), ["taskweave", "is", "blocking", "here"]);
    println!("lengths = {:?}", client.blocking().gather(&lengths)?);

    let parsed = client.try_submit(|text: &'static str| text.parse::<u8>(), "300");
    match parsed.result() {
        Ok(value) => println!("parsed {value}"),
        Err(error) => println!("as expected, {error}"),
    }
    client.blocking().close()
}
