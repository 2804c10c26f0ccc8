//! Complex control flow on futures: a fetch → parse → aggregate pipeline built as a graph, a
//! flaky step saved by `retries`, `wait(FirstException)` cancelling the rest of a batch when
//! one step fails for good, and a timeout that cancels nothing.
//!
//! Runs on the embedded default, with no cargo feature:
//!
//! ```text
//! cargo run --example control_flow
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use taskweave::{Client, ReturnWhen, TaskError, delayed, delayed_after};

/// Pretends to download a page: deterministic text per page number.
fn fetch(page: u32) -> String {
    std::thread::sleep(Duration::from_millis(5));
    (0..=page).map(|i| format!("{} ", i * page)).collect()
}

/// Parses a page into numbers.
fn parse(text: String) -> Vec<u64> {
    text.split_whitespace().filter_map(|word| word.parse().ok()).collect()
}

fn main() -> Result<(), taskweave::Error> {
    // `RUST_LOG=taskweave=debug` shows what the engine does, task by task (on stderr).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let client = Client::builder().workers(2).build_blocking()?;

    // 1. A graph built without the client, submitted in one call: fetch -> parse -> aggregate.
    let parsed: Vec<_> = (1..=4).map(|page| delayed(fetch, page).then(parse)).collect();
    let total = delayed_after(parsed.as_slice(), |pages: Vec<Vec<u64>>| {
        pages.iter().flatten().sum::<u64>()
    });
    println!("pipeline: sum of all parsed numbers = {}", client.blocking().compute(&total)?);

    // 2. A flaky step: fails twice, then succeeds; `retries(3)` hides that from its users.
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let flaky = client.task().retries(3).try_submit(
        move |page: u32| {
            let call = counter.fetch_add(1, Ordering::SeqCst) + 1;
            if call < 3 { Err(format!("connection reset (call {call})")) } else { Ok(fetch(page)) }
        },
        7,
    );
    let words = client.after(&flaky).submit(|text: String| text.split_whitespace().count());
    println!("flaky fetch: {} words after {} calls", words.result()?, calls.load(Ordering::SeqCst));

    // 3. A batch where one step fails for good: stop at the first failure and cancel the rest.
    let (never, gate) = flume::bounded::<()>(0);
    let batch: Vec<_> = (0..6u32)
        .map(|step| {
            let gate = gate.clone();
            client.try_submit(
                move |step: u32| match step {
                    0 => Err("step 0: the input file is corrupt".to_string()),
                    _ => {
                        // The other steps are slow: they wait until the batch is over.
                        let _ = gate.recv_timeout(Duration::from_secs(30));
                        Ok(step)
                    }
                },
                step,
            )
        })
        .collect();
    let outcome = client.blocking().wait(&batch, ReturnWhen::FirstException, None)?;
    for (future, error) in outcome.failed() {
        println!("batch: {} failed for good: {error}", future.key());
    }
    client.cancel(&outcome.not_done);
    drop(never); // let the running steps finish; their results are discarded
    for (step, future) in batch.iter().enumerate() {
        let what = match future.result() {
            Ok(value) => format!("finished with {value}"),
            Err(error) => match error.as_task_error() {
                Some(task_error) if task_error.is_cancelled() => "cancelled".to_string(),
                Some(TaskError::Failed { message, .. }) => format!("failed: {message}"),
                _ => format!("{error}"),
            },
        };
        println!("batch: step {step} ({}) {what}", future.key());
    }

    // 4. A timeout: the wait gives up, the task does not.
    let slow = client.submit(
        |ms: u64| {
            std::thread::sleep(Duration::from_millis(ms));
            ms
        },
        200,
    );
    match client.blocking().wait(
        std::slice::from_ref(&slow),
        ReturnWhen::AllCompleted,
        Some(Duration::from_millis(20)),
    ) {
        Err(error) => println!("timeout: {error}"),
        Ok(_) => println!("timeout: the slow task was unexpectedly fast"),
    }
    println!("timeout: the slow task still finished with {}", slow.result()?);

    client.blocking().close()
}
