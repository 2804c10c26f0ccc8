//! Recursions through tasks that launch tasks, for the conformance cases and for
//! `benches/subtasks.rs`: fib(n), where every body submits its two sub-tasks through its
//! context and waits for them. fib(n) submits as many tasks as fib's call tree has calls
//! (21,891 for fib(20)).

use crate::{Client, Error, TaskContext, TaskFuture};

/// fib(n) through tasks with blocking bodies: each submits two sub-tasks and waits for them
/// through its context.
pub fn blocking_fib(client: &Client, n: u64) -> TaskFuture<u64> {
    client.try_submit_with_context(
        |context: &TaskContext, n: u64| -> Result<u64, Error> {
            if n < 2 {
                return Ok(n);
            }
            let client = context.client()?;
            let parts = [blocking_fib(&client, n - 1), blocking_fib(&client, n - 2)];
            Ok(context.gather(&parts)?.iter().sum())
        },
        n,
    )
}

/// fib(n) through tasks with async bodies, each awaiting its two sub-tasks.
pub fn async_fib(client: &Client, n: u64) -> TaskFuture<Result<u64, String>> {
    client.submit_async_with_context(
        |context: TaskContext, n: u64| async move {
            if n < 2 {
                return Ok(n);
            }
            let client = context.client().map_err(|error| error.to_string())?;
            let parts = (async_fib(&client, n - 1), async_fib(&client, n - 2));
            match client.gather((&parts.0, &parts.1)).await {
                Ok((Ok(a), Ok(b))) => Ok(a + b),
                Ok((Err(error), _) | (_, Err(error))) => Err(error),
                Err(error) => Err(error.to_string()),
            }
        },
        n,
    )
}
